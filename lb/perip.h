/* Per-address session counts, shared by every worker (limits.
 * max_sessions_per_ip, max_handshakes_per_ip). An IPv4 address counts
 * alone; IPv6 addresses are grouped by their /64, the block one subscriber
 * usually gets. An entry lives while its address has a session, so memory
 * is bounded by the live sessions. Sharded locks: workers admitting
 * different addresses rarely wait for each other. */
#ifndef LB_PERIP_H
#define LB_PERIP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct lb_perip_key {
    uint8_t b[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6 with the low 64 bits zero */
};

enum lb_perip_verdict {
    LB_PERIP_OK,
    LB_PERIP_SESSIONS,   /* the address has max_sessions_per_ip sessions */
    LB_PERIP_HANDSHAKES, /* ... or max_handshakes_per_ip not yet routed */
};

struct lb_perip;

struct lb_perip *lb_perip_new(void);
void lb_perip_free(struct lb_perip *t);

/* false: not an IP address (nothing is counted for it). */
bool lb_perip_key(const struct sockaddr *sa, struct lb_perip_key *k);
/* The key as text: "192.0.2.7" or "2001:db8:1:2::/64". */
void lb_perip_key_text(const struct lb_perip_key *k, char *out, size_t cap);

/* Admits one session of k (0 = no limit): on OK it counts as a session and
 * as a handshake until lb_perip_routed; otherwise nothing changes. */
enum lb_perip_verdict lb_perip_enter(struct lb_perip *t, const struct lb_perip_key *k,
                                     unsigned max_sessions, unsigned max_handshakes);
/* The session was routed: no longer a handshake. */
void lb_perip_routed(struct lb_perip *t, const struct lb_perip_key *k);
/* The session ended (routed: lb_perip_routed ran for it). */
void lb_perip_leave(struct lb_perip *t, const struct lb_perip_key *k, bool routed);

/* Addresses with a live session (tests, metrics). */
size_t lb_perip_addresses(struct lb_perip *t);
/* The counts of k now (tests). */
void lb_perip_counts(struct lb_perip *t, const struct lb_perip_key *k, unsigned *sessions,
                     unsigned *handshakes);

#endif
