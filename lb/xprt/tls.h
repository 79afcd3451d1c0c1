/* The TLS transport (lb/xprt/tls.c): OpenSSL on the session's own
 * non-blocking socket, behind lb_xprt_ops (no splice: bytes are copied
 * through a bounded buffer). Also a memory-BIO client for the health
 * probes, which own their sockets through libuv streams. Only this file's
 * .c calls SSL_*. */
#ifndef LB_XPRT_TLS_H
#define LB_XPRT_TLS_H

#include "lb/tls/tls-t.h"
#include "lb/xprt/xprt.h"

extern const struct lb_xprt_ops lb_xprt_tls;

/* Puts TLS on c (its fd stays): as the server with ctx, or as the client
 * of node cl. -ENOMEM. */
int lb_tls_accept(struct lb_conn *c, SSL_CTX *ctx);
int lb_tls_connect(struct lb_conn *c, const struct lb_tls_client *cl);
/* Drives the handshake: 0 done; -EAGAIN: poll for lb_tls_hs_events(c);
 * else failed, with the result and why (side: for the counters). */
int lb_tls_handshake(struct lb_conn *c, enum lb_tls_side side, enum lb_tls_result *res,
                     char *why, size_t len);
int lb_tls_hs_events(const struct lb_conn *c);
enum lb_tls_ver lb_tls_conn_version(const struct lb_conn *c);
/* Counts a handshake that ended before lb_tls_handshake could (timeout). */
void lb_tls_count(enum lb_tls_side side, enum lb_tls_result r, enum lb_tls_ver v);

/* Memory-BIO client: ciphertext in with feed, out with take_out. */
struct lb_tls_mem;
struct lb_tls_mem *lb_tls_mem_new(const struct lb_tls_client *cl);
void lb_tls_mem_free(struct lb_tls_mem *m);
int lb_tls_mem_feed(struct lb_tls_mem *m, const void *p, size_t n);
/* 0 done, -EAGAIN more input needed, else failed (res, why). */
int lb_tls_mem_handshake(struct lb_tls_mem *m, enum lb_tls_result *res, char *why, size_t len);
/* Plaintext: > 0 bytes, -EAGAIN, 0 EOF, < 0 error. */
ssize_t lb_tls_mem_read(struct lb_tls_mem *m, void *buf, size_t len);
int lb_tls_mem_write(struct lb_tls_mem *m, const void *p, size_t n);
/* Ciphertext to send: bytes copied into buf (0: nothing). */
size_t lb_tls_mem_take_out(struct lb_tls_mem *m, void *buf, size_t len);

#endif
