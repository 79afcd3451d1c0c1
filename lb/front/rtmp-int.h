/* The rtmp phase's state, shared by its client side (rtmp.c) and its
 * origin side (rtmp_up.c). Private to lb/front/. */
#ifndef LB_FRONT_RTMP_INT_H
#define LB_FRONT_RTMP_INT_H

#include "lb/front/front.h"
#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/handshake.h"
#include "lb/rtmp/message.h"

struct lb_pub_owner;

#define RP_MAX_TIDS 8
#define RP_UIN_CAP (256 * 1024)  /* origin bytes held while patching */
#define RP_COUT_HIGH (256 * 1024) /* stop reading the origin above this */
/* to_client while patching: what is held back plus one read past the mark */
#define RP_COUT_LIMIT (RP_COUT_HIGH + RP_UIN_CAP + 16384)

/*   HANDSHAKE  read C0C1, answer S0S1S2 at once, read C2
 *   LOCAL      decode the client's chunks, answer connect/createStream,
 *              keep every byte after C2 in b; publish/play: ROUTE
 *   TAKEOVER   a publish whose stream another session publishes: waits
 *              for it to end and the origin to release the name
 *              (rtmp_takeover.c), then ROUTE to the same node
 *   ROUTED     the core dials
 *   UP_HS      plain client handshake with the node; then C2 + b verbatim
 *   PATCH      node -> client forwarded verbatim while parsed, the replies
 *              the client already had get their transaction id zeroed
 *   HANDOVER   every such reply seen: the core splices both ways
 *   FAILED     an error reply is queued for the client */
enum rp_state { RP_HANDSHAKE, RP_LOCAL, RP_TAKEOVER, RP_ROUTED, RP_UP_HS, RP_PATCH, RP_HANDOVER, RP_FAILED };

/* An early dial (listeners[].early_dial), while the client is still in
 * HANDSHAKE or LOCAL: the node's side goes on beside it.
 *   NONE   no node connected early
 *   HS     plain client handshake with the node (C0C1 sent)
 *   READY  S0S1S2 read and C2 sent; the node waits for the replay, and
 *          whatever it sends meanwhile is kept in uin
 * The ROUTE that takes the node (on_adopted) carries on from there: the
 * replay at once when READY, the rest of the handshake when HS. */
enum rp_early { RPE_NONE, RPE_HS, RPE_READY };

struct rp_tid {
    double tid;
    bool create_stream;
};

/* The args of the routing request: the stream's, then the tcUrl's, split
 * from copies of their queries held in text. */
struct rp_args {
    struct ups_arg a[UPS_MAX_ARGS];
    char text[];
};

struct rtmp_phase {
    enum rp_state st;
    bool passthrough; /* route_on: connect */
    bool connected;   /* connect answered by us */
    bool have_connect_tid;
    double connect_tid;
    struct rp_tid t[RP_MAX_TIDS];
    size_t n_t;
    uint64_t dirty;        /* chunk streams the client saw our headers on */
    uint32_t client_chunk; /* the client's read chunk size */
    uint64_t origin_deadline;
    uint64_t client_deadline; /* accept + timeouts.handshake: publish or play by then */
    bool ask_early;           /* C0C1 seen: EARLY once this event's bytes are read */
    enum rp_early early;
    uint64_t early_deadline;  /* the early node answers its handshake by then */
    struct amf_limits amf;
    char *tc_query;            /* connect's tcUrl (or app) query, NULL if none */
    struct rp_args *args;      /* what f->req.args points into; NULL if none */
    /* client side */
    struct rtmp_hs_server *hs; /* HANDSHAKE only */
    struct lb_buf b;           /* client bytes after C2: the replay */
    size_t b_parsed;
    struct rtmp_chunk_dec *cdec; /* LOCAL only */
    struct rtmp_asm cas;
    /* origin side */
    struct rtmp_hs_client *hc; /* UP_HS only */
    struct lb_buf uin;         /* from the origin, while patching */
    size_t uin_base;           /* stream position of uin's first byte */
    size_t uin_parsed;         /* bytes of uin the decoder has consumed */
    size_t uin_whole;          /* bytes of uin that end on a chunk boundary */
    struct rtmp_chunk_dec *udec;
    struct rtmp_asm uas;
    bool u_scs_seen;
    uint32_t next_chunk;  /* a Set Chunk Size parsed but not yet forwarded */
    size_t next_chunk_at; /* stream position where it ends; 0: none */
    /* publisher takeover (rtmp_takeover.c) */
    struct lb_pub_owner *take_old; /* the claim taken over; NULL: none */
    const char *take_wait;         /* how the name's release was awaited */
    uint64_t take_start, take_deadline, take_gone_ms;
    const char *fail_code; /* an error code other than the role's; NULL: the role's */
};

/* rtmp.c */
struct lb_action lb_rp_fail(struct lb_front *f, enum lb_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct lb_action lb_rp_retry(struct lb_front *f, enum lb_reason why);
bool lb_rp_tid_take(struct rtmp_phase *r, double tid, bool *create_stream, bool remove);
void lb_rp_free_origin_side(struct rtmp_phase *r);
/* Routes f->req as role: the client's commands are read, b stays. */
struct lb_action lb_rp_route(struct lb_front *f, int role);

/* rtmp_takeover.c */
/* A publish: claim its stream, or take it over, or refuse it. */
struct lb_action lb_rp_publish(struct lb_front *f);
struct lb_action lb_rp_takeover_timer(struct lb_front *f);

/* rtmp_up.c */
struct lb_action lb_rp_upstream_connected(struct lb_front *f);
struct lb_action lb_rp_upstream_data(struct lb_front *f);
struct lb_action lb_rp_adopted(struct lb_front *f);
void lb_rp_early_gone(struct lb_front *f);
/* HANDSHAKE or LOCAL with an early node: its handshake's deadline passed. */
struct lb_action lb_rp_early_timeout(struct lb_front *f);

#endif
