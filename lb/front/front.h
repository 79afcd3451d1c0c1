/* Phases (DESIGN.md "Inside lb/"): what a session does before its bytes
 * are spliced. A phase reads and writes only through the transports and
 * the two output buffers of its `struct lb_front`, and answers each call
 * with an action; the session core owns the sockets, polls, the timer and
 * the close. A phase never closes anything and never touches a poll. */
#ifndef LB_FRONT_FRONT_H
#define LB_FRONT_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf-t.h"
#include "lb/buf.h"
#include "lb/reason.h"
#include "lb/xprt/xprt.h"
#include "upstream/upstream-t.h"

enum lb_act {
    LB_ACT_CONTINUE, /* wait for the next event */
    LB_ACT_ROUTE,    /* route front->req, then dial the candidates in order; when
                      * connected (keep-alive), the node's leg is let go first */
    LB_ACT_DIAL,     /* this node failed (a passive failure): dial the next one */
    LB_ACT_SPLICE,   /* the core moves these directions from now on */
    LB_ACT_FAIL,     /* to_client holds an error for the client: flush, linger, close */
    LB_ACT_CLOSE,    /* close now */
    LB_ACT_EARLY,    /* the client speaks the protocol: the core may dial now,
                      * when the listener's route cannot depend on what the
                      * client says next (ups_route_find_early); the phase
                      * hears of it through on_upstream_connected while
                      * still talking to the client, and at its ROUTE
                      * through on_adopted when the core keeps that node */
    LB_ACT_LET_GO,   /* the early node's leg is of no use (it closed while
                      * waiting for the client's command): the core lets it
                      * go, not a failure, and routes on the command */
};

#define LB_SPLICE_C2U 1u
#define LB_SPLICE_U2C 2u

struct lb_action {
    enum lb_act kind;
    enum lb_reason reason; /* FAIL, CLOSE, DIAL */
    unsigned dirs;         /* SPLICE: LB_SPLICE_* bits */
};

/* What the phase wants polled (the core adds writes for pending output). */
#define LB_WANT_CLIENT 1u
#define LB_WANT_UPSTREAM 2u

/* Read-only settings a phase works with. */
struct lb_front_limits {
    uint32_t preroute_bytes;
    uint32_t max_chunk_size;
    uint32_t max_message_size;
    uint32_t max_amf_depth;
    uint32_t max_amf_string;
    uint64_t handshake_ms; /* from accept to routing */
    uint64_t connect_ms;   /* one node: connect, and answer the RTMP handshake (not
                            * for the last candidate: see lb_front.last_candidate) */
    uint64_t takeover_ms;  /* publisher takeover: the old publish gone, its name released */
    uint64_t idle_ms;      /* no byte either way (http: while the phase copies) */
};

/* An http listener's settings (conf listeners[].http), fixed for the process. */
#define LB_HTTP_MAX_PATHS CONF_HTTP_MAX_PATHS
struct lb_http_opts {
    const char *paths[LB_HTTP_MAX_PATHS]; /* patterns (lb/front/http_req.c) */
    size_t n_paths;
    const char *app;          /* for a pattern without {app} */
    bool trust_xff;           /* client address from X-Forwarded-For */
    int add_forwarded;        /* enum conf_forwarded */
    uint32_t max_header;      /* request line + headers */
    uint64_t keepalive_ms;    /* 0: one request per connection */
};

/* The phase's view of its session, owned by the session core. */
struct lb_front {
    const struct lb_phase_ops *ops;
    void *state;
    struct lb_conn *client;
    struct lb_conn *upstream; /* NULL until a dial connected */
    struct lb_buf to_client;  /* flushed by the core before anything spliced */
    struct lb_buf to_upstream;
    uint64_t deadline_ms;     /* loop time for on_timer; 0 = none */
    uint64_t now_ms;          /* loop time of this call */
    const struct lb_front_limits *lim;
    const struct ups_snapshot *snap;
    const struct lb_http_opts *http; /* http listeners */
    const struct sockaddr *peer;     /* the client (PROXY header applied) */
    /* Set by the phase. */
    struct ups_request req;   /* ROUTE: what to route on */
    char *app, *stream;       /* owned; for the request and the access log */
    int role;                 /* enum conf_role */
    const char *hs_kind;      /* "simple" / "digest" / "none"; NULL: not RTMP */
    char message[160];        /* FAIL: the text the client was sent */
    uint64_t client_bytes;    /* read from the client by the phase */
    uint64_t upstream_bytes;  /* read from the node by the phase, for the client */
    /* The client's address from a trusted header (X-Forwarded-For), for
     * routing (geo) and the logs; taken by the core at ROUTE. */
    struct sockaddr_storage fwd_addr;
    bool fwd_set;
    /* Set by the core. */
    const struct ups_route *route;
    const struct ups_node *node; /* the node being dialled or connected */
    unsigned dials;
    bool last_candidate;          /* no other node follows this one: it may take
                                   * until the handshake deadline, not timeouts.connect */
    enum lb_reason last_failure;  /* of the last node that failed this session */
    char last_failure_text[128];
    const char *client_text;  /* for log lines */
    /* Publisher takeover (lb/pubreg.h): the registry of live publishes
     * (NULL: none); the client's address is peer above. */
    struct lb_pubreg *pubreg;
    /* Set by the phase: its claim on the stream it publishes (0: none).
     * The core releases it when the session ends or fails. */
    uint64_t pub_id;
};

struct lb_phase_ops {
    const char *name;
    /* Allocates f->state. -1: out of memory. */
    int (*create)(struct lb_front *f);
    struct lb_action (*start)(struct lb_front *f);
    struct lb_action (*on_client_data)(struct lb_front *f);
    struct lb_action (*on_upstream_connected)(struct lb_front *f);
    struct lb_action (*on_upstream_data)(struct lb_front *f);
    struct lb_action (*on_timer)(struct lb_front *f);
    /* After an EARLY dial, at ROUTE: the route chose the node already
     * dialled (f->upstream is set once it connected), and the phase goes
     * on with it. NULL for phases that never ask for EARLY. */
    struct lb_action (*on_adopted)(struct lb_front *f);
    /* The core let an early node's leg go without the phase asking (the
     * route chose another node, a write to it failed, the operator closed
     * its node): the phase forgets that side. */
    void (*on_early_gone)(struct lb_front *f);
    /* Routing or every dial failed (reason NO_ROUTE, NO_NODE, DIAL_FAILED). */
    struct lb_action (*on_dials_failed)(struct lb_front *f, enum lb_reason why);
    unsigned (*wants)(const struct lb_front *f); /* LB_WANT_* */
    void (*free)(struct lb_front *f);
};

extern const struct lb_phase_ops lb_phase_tcp;
extern const struct lb_phase_ops lb_phase_rtmp;
extern const struct lb_phase_ops lb_phase_http;

static inline struct lb_action lb_act(enum lb_act kind)
{
    return (struct lb_action){.kind = kind};
}
static inline struct lb_action lb_act_close(enum lb_reason r)
{
    return (struct lb_action){.kind = LB_ACT_CLOSE, .reason = r};
}
static inline struct lb_action lb_act_splice(unsigned dirs)
{
    return (struct lb_action){.kind = LB_ACT_SPLICE, .dirs = dirs};
}

/* Reads from the client / the node, counting the bytes. */
ssize_t lb_front_read_client(struct lb_front *f, void *buf, size_t len);
ssize_t lb_front_read_upstream(struct lb_front *f, void *buf, size_t len);

#endif
