/* Routing state: nodes, pools ("lines"), routes, policies. Pure data: this
 * module does no I/O. See ../shared/DESIGN.md "Threads and shared state". */
#ifndef UPSTREAM_UPSTREAM_T_H
#define UPSTREAM_UPSTREAM_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Live counters of a node. They outlive one snapshot: a reload that keeps a
 * node (same pool, name and address) keeps its counters. Shared by all
 * workers, so every field is atomic. */
enum ups_health { UPS_UP = 0, UPS_DOWN = 1 };
enum ups_admin { UPS_ENABLED = 0, UPS_DRAINING = 1, UPS_DISABLED = 2 };

struct ups_node_live {
    _Atomic unsigned refs;
    _Atomic int health;             /* enum ups_health; starts up */
    _Atomic int admin;              /* enum ups_admin, the operator's */
    _Atomic uint64_t up_since_ms;   /* loop time it last came up (slow start) */
    _Atomic unsigned passive_fails; /* consecutive failed dials */
    _Atomic unsigned stats_clients; /* clients the node's stats report (all sources) */
    _Atomic uint64_t stats_bw_in;   /* bits/s into the node, from its stats */
    _Atomic unsigned stats_streams; /* live streams it reports */
    _Atomic unsigned sessions;       /* live, reserved at dial time */
    _Atomic uint64_t sessions_total; /* sessions that reached the node */
    _Atomic uint64_t dial_failures;
    /* Storm protection (lb/session/dialq.c): dials in flight from all
     * workers, sessions waiting for one, and what the waits cost. */
    _Atomic unsigned dialing;
    _Atomic unsigned dial_waiting;
    _Atomic uint64_t dial_waits_total;     /* sessions that waited */
    _Atomic uint64_t dial_wait_us_total;   /* their waits, summed */
    _Atomic uint64_t dial_wait_timeouts;   /* gave up waiting: next candidate */
    _Atomic uint64_t dial_queue_full;      /* skipped: the queue was full */
    _Atomic uint64_t bytes_from_client;
    _Atomic uint64_t bytes_to_client;
    /* For the admin API (status page). */
    _Atomic int64_t health_since_ms;   /* wall clock of the last up/down change; 0: start */
    _Atomic int last_probe;            /* enum hc_result + 1 of the last active probe; 0: none */
    _Atomic uint64_t last_probe_us;    /* its latency */
    _Atomic int64_t last_probe_at_ms;  /* wall clock it ended */
    _Atomic uint64_t bps_from_client;  /* bitrates from the byte counters, sampled by the */
    _Atomic uint64_t bps_to_client;    /* admin server every 2 s (0 without one) */
    uint64_t rate_in, rate_out, rate_at_ms; /* the admin's last sample (control thread) */
};

struct ups_pool;

struct ups_node {
    char *name;
    char *address_text;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* Where it serves HTTP-FLV / HLS viewers (http listeners dial it);
     * http_addrlen 0: it serves none, and http requests skip it. */
    char *http_address_text;
    struct sockaddr_storage http_addr;
    socklen_t http_addrlen;
    unsigned weight;
    bool backup;
    unsigned max_sessions; /* 0 = no limit */
    unsigned max_dials;    /* dials in flight (all workers); 0 = no limit */
    unsigned dial_queue;   /* sessions that may wait for a dial */
    int send_proxy;        /* enum conf_proxy_protocol: OFF, V1, V2 */
    bool checked;          /* its pool has health checks: passive failures count */
    unsigned fall;         /* the pool's fall, for passive failures */
    uint64_t slow_start_ms;
    char country[4];       /* declared location, "" if none */
    bool has_location;     /* lat/lon declared, or the country's centroid */
    double lat, lon;
    size_t index;          /* in its pool */
    struct ups_pool *pool;
    struct ups_node_live *live;
    /* RTMPS node: its client context (a struct lb_tls_client of the
     * snapshot's tls set; opaque here). NULL: plain. */
    const void *tls;
};

struct ups_pool {
    char *name;
    struct ups_node *nodes;
    size_t n_nodes;
    int ertmp; /* enum conf_ertmp */
};

/* A read-only view of the stream index (health/ implements it): the node
 * of `pool` where app/stream is live, copied into node. */
struct ups_stream_view {
    bool (*locate)(void *ctx, const char *pool, const char *app, const char *stream, char *node,
                   size_t cap);
    /* pool/node itself says app/stream is live there (stats, hooks), not
     * only this instance's routing; NULL: unknown. */
    bool (*reported)(void *ctx, const char *pool, const char *node, const char *app,
                     const char *stream);
    void *ctx;
};

/* A query argument of the stream name or tcUrl ("line=hk"), decoded. */
struct ups_arg {
    const char *key;
    const char *value;
};

/* Bound on the args a request carries (stream's first, then tcUrl's). */
#define UPS_MAX_ARGS 16

/* What the front door learned about a session. Strings are borrowed. */
struct ups_request {
    const char *listener;
    bool l4;         /* tcp-mode listener: no role, app or stream */
    int role;        /* enum conf_role */
    const char *app;
    const char *stream;
    /* Query args (stream's, then tcUrl's: the first of a key wins); they
     * select a route, never change which stream it is. */
    const struct ups_arg *args;
    size_t n_args;
    unsigned worker; /* index of the calling worker thread */
    uint64_t now_ms; /* monotonic, for slow start */
    bool http;       /* an http listener's request: only nodes with an http address */
    bool at_connect; /* rtmp connect of a route_on: connect route: role and stream unknown */
    const struct ups_stream_view *streams; /* stream_location lookups; NULL: none */
    /* Where the client is (geo database), when known. */
    const char *country;
    const char *continent;
    bool has_location;
    double lat, lon;
    /* A publish taking over another's name goes back to the node the old
     * one was on (the origin's stream lives there), first if it may serve;
     * NULL: none. */
    const char *pin_node;
};

/* A policy orders one tier (primaries, then backups) of eligible nodes.
 * state is per route and holds one row per worker, so workers never share
 * a writable cache line and never lock. */
struct ups_policy_ops {
    const char *name;
    int policy; /* enum conf_policy */
    void *(*create)(const struct ups_pool *pool, unsigned n_workers);
    void (*destroy)(void *state);
    /* Writes up to n nodes from in[] into out[] in the order to try them;
     * returns how many. in[] holds n eligible nodes of one tier. */
    size_t (*order)(void *state, const struct ups_request *req, struct ups_node *const *in,
                    size_t n, struct ups_node **out);
};

struct ups_route {
    char *name;
    char *listener; /* NULL = any */
    int role;       /* enum conf_role; CONF_ROLE_ANY = any */
    char *app;      /* glob or NULL */
    char *stream;   /* glob or NULL */
    char **country; /* NULL = any */
    size_t n_country;
    char **continent;
    size_t n_continent;
    struct ups_arg *args; /* all must equal the request's; owned */
    size_t n_args;
    struct ups_pool *pool;
    int policy;
    int route_on;
    int publish_conflict; /* enum conf_publish_conflict */
    bool require_live; /* stream_location plays of a stream live nowhere: no candidate */
    const struct ups_policy_ops *ops;
    void *state;
    /* Sessions routed here by role (0 tcp/unknown, 1 publish, 2 play):
     * counters the process owns and keeps across snapshots; NULL: none. */
    _Atomic uint64_t *role_sessions;
};

/* Immutable once published; reference counted (RCU style). */
struct ups_snapshot {
    _Atomic unsigned refs;
    uint64_t generation;
    unsigned n_workers;
    struct ups_pool *pools;
    size_t n_pools;
    struct ups_route *routes;
    size_t n_routes;
    /* The geo database these routes were built with (opaque here: upstream
     * does no I/O); released with the snapshot. */
    void *geo;
    void (*geo_release)(void *geo);
    /* The TLS contexts of this config (lb/tls, opaque here), likewise. */
    void *tls;
    void (*tls_release)(void *tls);
};

/* Bound on the nodes one session dials before giving up. */
#define UPS_MAX_CANDIDATES 8

struct ups_candidates {
    struct ups_node *node[UPS_MAX_CANDIDATES];
    size_t n;
    size_t n_primary; /* the first n_primary are primaries */
    bool not_live;    /* n == 0 because the route requires a live stream and it is not */
};

#endif
