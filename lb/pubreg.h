/* The registry of live publishes (publisher takeover, issue 12 item 4):
 * which session of which worker publishes app/stream on a route, from
 * whose address, to which node. Shared by every worker behind one mutex:
 * it is touched a few times per publish, never on the data path.
 *
 * A publish claims its key before it is routed. When the key is held, the
 * route's publish_conflict decides (lb_pubreg_decide): reject, or take
 * over: the newcomer is queued as the holder's successor and the holder's
 * worker is asked to end it (the kick). When the holder releases, the
 * successor holds the key; it polls lb_pubreg_status to learn so. */
#ifndef LB_PUBREG_H
#define LB_PUBREG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct lb_pubreg;

#define LB_PUB_NAME_MAX 64

/* A copy of one claim, for logs and decisions. */
struct lb_pub_owner {
    uint64_t id;
    unsigned worker;
    struct sockaddr_storage addr;
    char client[64];
    char pool[LB_PUB_NAME_MAX]; /* "" until its node answered */
    char node[LB_PUB_NAME_MAX];
    uint64_t since_ms; /* when it claimed (the caller's clock) */
};

/* What a claimant learns. */
enum lb_pub_claim {
    LB_PUB_CLAIMED = 0,  /* the key is ours */
    LB_PUB_HELD = 1,     /* another session holds it (*old) */
    LB_PUB_PENDING = 2,  /* held, and a takeover of it is already waiting */
    LB_PUB_NOMEM = -1,
};

enum lb_pub_status { LB_PUB_GONE, LB_PUB_WAITING, LB_PUB_OWNER };

/* A conflict's outcome; the registry counts them (metrics). */
#define LB_PUB_OUTCOME_MAP(X)                                                     \
    X(TAKEOVER, "takeover", "the old publish was ended and the new one routed")   \
    X(REJECT, "reject", "the new publish was refused, the old one untouched")     \
    X(TIMEOUT, "timeout", "the old publish did not end within timeouts.takeover")

enum lb_pub_outcome {
#define X(e, n, t) LB_PUB_OUT_##e,
    LB_PUB_OUTCOME_MAP(X)
#undef X
    LB_PUB_OUT__COUNT
};
const char *lb_pub_outcome_name(enum lb_pub_outcome o);

/* Ends the session holding claim `id` on worker `worker` (any thread). */
typedef void (*lb_pub_kick_fn)(void *arg, unsigned worker, uint64_t id);

struct lb_pubreg *lb_pubreg_new(void);
void lb_pubreg_free(struct lb_pubreg *g);
/* Set once before the workers start. */
void lb_pubreg_set_kick(struct lb_pubreg *g, lb_pub_kick_fn kick, void *arg);

/* The holder's identity for a new claim. */
struct lb_pub_who {
    unsigned worker;
    const struct sockaddr *addr; /* may be NULL (not an IP client) */
    const char *client;          /* for logs */
    uint64_t now_ms;
};

/* Claims route + app/stream. CLAIMED: *id is the claim. HELD, PENDING:
 * *old (may be NULL) is a copy of the holder's claim; nothing changed. */
enum lb_pub_claim lb_pubreg_claim(struct lb_pubreg *g, const char *route, const char *app,
                                  const char *stream, const struct lb_pub_who *who, uint64_t *id,
                                  struct lb_pub_owner *old);
/* Takeover: queues a successor claim (*id) behind the holder, whose id the
 * caller saw as old_id, and kicks the holder's worker. CLAIMED: queued
 * (the key is free already: *id holds it at once, see lb_pubreg_status);
 * HELD: the holder is no longer old_id (*old, may be NULL: the new one);
 * PENDING: another takeover waits already. */
enum lb_pub_claim lb_pubreg_take(struct lb_pubreg *g, const char *route, const char *app,
                                 const char *stream, uint64_t old_id, const struct lb_pub_who *who,
                                 uint64_t *id, struct lb_pub_owner *old);
/* OWNER: the claim holds its key; WAITING: a successor behind a holder;
 * GONE: no such claim. */
enum lb_pub_status lb_pubreg_status(struct lb_pubreg *g, uint64_t id);
/* The node a claim's publish reached (routed-to node, for a successor). */
void lb_pubreg_set_node(struct lb_pubreg *g, uint64_t id, const char *pool, const char *node);
/* The claim's session ended (or gave up waiting). A holder's successor, if
 * any, then holds the key. Unknown ids are ignored. */
void lb_pubreg_release(struct lb_pubreg *g, uint64_t id);
/* Keys held (tests, metrics). */
size_t lb_pubreg_count(struct lb_pubreg *g);

void lb_pubreg_count_outcome(struct lb_pubreg *g, enum lb_pub_outcome o);
uint64_t lb_pubreg_outcomes(struct lb_pubreg *g, enum lb_pub_outcome o);

/* The decision (enum conf_publish_conflict policy): takeover or reject.
 * auto takes over only when both addresses are IP addresses and equal
 * (ports aside: a reconnect comes from a new port). */
bool lb_pubreg_decide_takeover(int policy, const struct sockaddr *old, const struct sockaddr *new_);

#endif
