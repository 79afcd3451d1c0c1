/* Stock origins and edges as clients of rtmplb (COMPAT.md): the pure part
 * (no sockets, no clock). Form and query decoding of nginx-rtmp's notify
 * requests, the SRS http_hooks JSON, the shared-secret check, and the
 * answer a notify or oclp pull gets (a 302 to a node, 2xx "serve it
 * yourself", 4xx/5xx) as a function of the routing snapshot and the stream
 * index. api_compat.c wires them to the admin server; the fuzz target and
 * the unit tests drive them directly. */
#ifndef LB_ADMIN_COMPAT_H
#define LB_ADMIN_COMPAT_H

#include <stdbool.h>
#include <stddef.h>

#include "health/streams.h"
#include "upstream/upstream-t.h"

/* ---- application/x-www-form-urlencoded ---------------------------------- */

#define LB_COMPAT_MAX_FIELDS 64

struct lb_compat_field {
    const char *name; /* decoded, NUL-terminated; point into the form's buffer */
    const char *value;
};

struct lb_compat_form {
    struct lb_compat_field f[LB_COMPAT_MAX_FIELDS];
    size_t n;
    char *buf; /* owned */
};

/* Decodes "a=1&b=x%20y" ('+' is a space; a name without '=' has value "";
 * empty pieces are skipped). Appends to f (call lb_compat_form_init
 * first; a second call adds more fields). 0, or -1 with why in *why: a
 * malformed escape, a NUL byte, more than LB_COMPAT_MAX_FIELDS fields, out
 * of memory. */
void lb_compat_form_init(struct lb_compat_form *f);
int lb_compat_form_parse(struct lb_compat_form *f, const char *s, size_t len, const char **why);
/* The first value of name, or NULL. */
const char *lb_compat_form_get(const struct lb_compat_form *f, const char *name);
void lb_compat_form_free(struct lb_compat_form *f);

/* Fields nginx-rtmp's notify and oclp send about the session, and the keys
 * of the notify URL rtmplb reads itself: never a client's routing arg. */
bool lb_compat_reserved_field(const char *name);

/* ---- the answer to "where should this play/publish go" ------------------ */

enum lb_compat_verdict {
    LB_COMPAT_REDIRECT = 0, /* 302 Location: rtmp://node/app/name */
    LB_COMPAT_SELF,         /* 200: the asking node serves it itself */
    LB_COMPAT_NOWHERE,      /* 404: a play of a stream the index does not know */
    LB_COMPAT_NO_ROUTE,     /* 403: no route matches */
    LB_COMPAT_NO_NODE,      /* 503: no node of the route's pool can take it */
};

struct lb_compat_answer {
    enum lb_compat_verdict verdict;
    int status;
    const struct ups_route *route; /* NULL: none matched */
    const struct ups_node *node;   /* the node chosen (REDIRECT, SELF) */
    char reason[160];              /* for the body and the log line */
};

/* Who asks: the node name (and pool) from the notify URL's ?node=&pool=.
 * self_node NULL: unknown, so never LB_COMPAT_SELF. */
struct lb_compat_self {
    const char *pool; /* NULL: any pool */
    const char *node;
};

/* The choice, for q (role publish or play; its listener, args and geo
 * filled in): the first route matching q; plays go where the stream index
 * says the stream is live in that route's pool, whatever its policy (404
 * when it is nowhere, 503 when that node is down, disabled or full);
 * publishes go to the route policy's first candidate (503 when none).
 * Then SELF when the node is the asking one, else REDIRECT. */
void lb_compat_decide(const struct ups_snapshot *s, const struct ups_request *q,
                      const struct lb_compat_self *self, struct lb_compat_answer *a);

/* "rtmp://IP:PORT/app/name" for node into out: the host numeric (nginx-rtmp
 * parses it without a resolver; IPv6 in brackets). Returns the length, or
 * -1 when it does not fit cap or app/name hold bytes a header or an RTMP
 * URL cannot carry (controls, space, '?', '#', and '/' in app). */
int lb_compat_location(const struct ups_node *node, const char *app, const char *name, char *out,
                       size_t cap);

/* ---- SRS http_hooks -------------------------------------------------------- */

enum lb_srs_action {
    LB_SRS_ON_PUBLISH = 0,
    LB_SRS_ON_UNPUBLISH,
    LB_SRS_ON_PLAY,
    LB_SRS_ON_STOP,
    LB_SRS_OTHER, /* on_connect, on_close, on_dvr, on_hls, on_hls_notify: answered, ignored */
};

struct lb_srs_hook {
    enum lb_srs_action action;
    char action_name[32];
    char app[HC_APP_MAX];
    char stream[HC_NAME_MAX];
    char vhost[128];
    char client_id[64];
    char ip[64];
};

/* Validates one hook document: a JSON object (depth <= 8, nothing after
 * it) with "action" a known SRS action; for the four stream actions, "app"
 * and "stream" non-empty strings that fit (no NUL, no '/' in app, no
 * control bytes). Other documented fields are optional; if present,
 * client_id is a string or an integer, ip and vhost strings. 0, or -1 with
 * why in err. */
int lb_compat_srs_parse(const char *body, size_t len, struct lb_srs_hook *h, char *err,
                        size_t errlen);

/* ---- the shared secret ------------------------------------------------------- */

/* The SHA-256 of a secret, kept instead of the secret. */
void lb_compat_secret_hash(const char *secret, unsigned char out[32]);
/* given (may be NULL) matches the secret whose hash is want, in time that
 * does not depend on where they differ or on their lengths. */
bool lb_compat_secret_ok(const unsigned char want[32], const char *given);

#endif
