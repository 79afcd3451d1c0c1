/* TLS (RTMPS) types: the contexts one config needs, built all-or-nothing,
 * reference-counted, and the process-wide handshake counters. Opaque
 * OpenSSL types only: files that never call SSL_* include this. */
#ifndef LB_TLS_TLS_T_H
#define LB_TLS_TLS_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssl_ctx_st SSL_CTX; /* as <openssl/types.h> declares it */

/* One certificate of a listener. */
struct lb_tls_cert {
    SSL_CTX *ctx;   /* this certificate's server context */
    char **names;   /* DNS names it serves (SANs, else its CN), lower case */
    size_t n_names;
    int64_t not_after; /* seconds since the epoch */
    char *file;
};

/* A listener's TLS: SNI picks among certs; certs[0] is the default. */
struct lb_tls_server {
    struct lb_tls_cert *certs;
    size_t n_certs; /* 0: a plain listener */
    const char *listener; /* owned by the set */
};

/* A node that speaks RTMPS. */
struct lb_tls_client {
    char *pool, *node;
    SSL_CTX *ctx;
    char *sni;   /* NULL: no SNI; the node's IP is verified */
    char *ip;    /* the node's address without port (verification without sni) */
    bool verify;
};

/* Everything one config's TLS needs. Snapshots hold a reference (sessions
 * hold their snapshot's); an SSL holds its own reference to its context,
 * so a live session keeps its context across reloads. */
struct lb_tls_set {
    _Atomic unsigned refs;
    struct lb_tls_server *listeners; /* by the config's listener index */
    size_t n_listeners;
    struct lb_tls_client *nodes;
    size_t n_nodes;
};

/* Messages of a build: errors (the set is not built) and warnings. */
#define LB_TLS_MSGS_MAX 32
struct lb_tls_msgs {
    char *msg[LB_TLS_MSGS_MAX];
    bool warn[LB_TLS_MSGS_MAX];
    size_t n;
    size_t errors;
};

/* Handshakes, by side, result and version (closed label sets). */
#define LB_TLS_RESULT_MAP(X)                                      \
    X(OK, "ok")                                                   \
    X(ERROR, "error")         /* a TLS alert or protocol error */ \
    X(NOT_TLS, "not_tls")     /* the first byte was not 0x16 */   \
    X(CLOSED, "closed")       /* the peer closed mid-handshake */ \
    X(TIMEOUT, "timeout")     /* timeouts.handshake / connect */  \
    X(VERIFY, "verify")       /* the origin's certificate failed verification */

enum lb_tls_result {
#define X(e, n) LB_TLS_##e,
    LB_TLS_RESULT_MAP(X)
#undef X
    LB_TLS_RESULT__COUNT
};

enum lb_tls_ver { LB_TLS_V_UNKNOWN, LB_TLS_V_1_2, LB_TLS_V_1_3, LB_TLS_V__COUNT };
enum lb_tls_side { LB_TLS_SIDE_CLIENT, LB_TLS_SIDE_ORIGIN, LB_TLS_SIDE__COUNT };

struct lb_tls_stats {
    _Atomic uint64_t hs[LB_TLS_SIDE__COUNT][LB_TLS_RESULT__COUNT][LB_TLS_V__COUNT];
    _Atomic uint64_t resumed;
};

enum lb_tls_expiry { LB_TLS_EXPIRY_OK, LB_TLS_EXPIRY_SOON, LB_TLS_EXPIRY_EXPIRED };

#endif
