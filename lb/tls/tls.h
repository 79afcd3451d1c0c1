/* TLS contexts (lb/tls/tls_ctx.c): built from a config all-or-nothing at
 * start and on reload; session ticket keys rotated on the control thread;
 * the checks of `rtmplb -t`. The per-connection transport is
 * lb/xprt/tls.c. */
#ifndef LB_TLS_TLS_H
#define LB_TLS_TLS_H

#include "conf/conf-t.h"
#include "lb/tls/tls-t.h"

/* Builds every context c needs; now is the time certificates are checked
 * against. NULL when c has no TLS at all (msgs->errors == 0) or on an
 * error (each in msgs as "FILE:LINE:COL: path: file: reason"). Warnings
 * (a certificate expiring within 14 days) are added either way. */
struct lb_tls_set *lb_tls_set_build(const struct conf *c, int64_t now, struct lb_tls_msgs *msgs);
struct lb_tls_set *lb_tls_set_ref(struct lb_tls_set *s);
void lb_tls_set_unref(struct lb_tls_set *s);
/* The node's client context, or NULL (a plain node). */
const struct lb_tls_client *lb_tls_set_node(const struct lb_tls_set *s, const char *pool,
                                            const char *node);
void lb_tls_msgs_free(struct lb_tls_msgs *m);

/* Session ticket keys: one process-wide pair (current, previous), so a
 * ticket stays good across a reload and for one rotation after. */
void lb_tls_keys_rotate(void);
#define LB_TLS_KEY_ROTATE_MS (3600u * 1000u)

/* Pure helpers (unit tested). */
/* host matches a certificate name: equal (case-insensitive), or a "*."
 * wildcard standing for exactly one left-most label. */
bool lb_tls_name_match(const char *pattern, const char *host);
/* The certificate SNI host picks: the first whose names match, else 0. */
size_t lb_tls_pick_cert(const struct lb_tls_server *srv, const char *host);
enum lb_tls_expiry lb_tls_expiry_check(int64_t not_after, int64_t now);

/* kTLS: whether the kernel offers the "tls" upper layer protocol (tried
 * once on a loopback connection). false with why. */
bool lb_tls_ktls_probe(char *why, size_t len);

extern struct lb_tls_stats lb_tls_stats;
const char *lb_tls_result_name(enum lb_tls_result r);
const char *lb_tls_ver_name(enum lb_tls_ver v);

#endif
