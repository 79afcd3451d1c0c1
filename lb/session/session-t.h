/* Session types: what a worker lends its sessions (lb_shost), process
 * settings sessions read (lb_env), the pipe pool, one session. */
#ifndef LB_SESSION_SESSION_T_H
#define LB_SESSION_SESSION_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lb/admin/metrics.h"
#include "lb/front/front.h"
#include "lb/perip.h"
#include "lb/reason.h"
#include "lb/xprt/xprt.h"
#include "upstream/upstream-t.h"

struct hc_index;
struct lb_pubreg;
struct lb_pp_in;

/* What became of a dial started during the client's RTMP handshake
 * (listeners[].early_dial): the play or publish took the connection
 * (ADOPTED), routed elsewhere (DROPPED: the node went down, or a takeover
 * pinned another), the client left or failed before it (UNUSED), or every
 * candidate failed and routing waited for the command (FAILED). */
enum lb_early_outcome { LB_EARLY_ADOPTED, LB_EARLY_DROPPED, LB_EARLY_UNUSED, LB_EARLY_FAILED,
                        LB_EARLY__COUNT };

/* Process settings every worker reads; a reload stores new values. */
struct lb_env {
    _Atomic int64_t connect_ms;
    _Atomic int64_t handshake_ms;
    _Atomic int64_t idle_ms;
    _Atomic int64_t half_close_ms;
    _Atomic int64_t takeover_ms; /* publisher takeover: the wait's bound */
    _Atomic int64_t drain_ms;
    _Atomic int64_t upgrade_drain_ms; /* after a handover; 0: until each session ends */
    _Atomic unsigned max_sessions; /* effective, after the fd budget */
    _Atomic unsigned max_sessions_per_ip;   /* 0: no limit */
    _Atomic unsigned max_handshakes_per_ip; /* 0: no limit */
    _Atomic unsigned max_early_dials;       /* limits.max_early_dials */
    _Atomic unsigned early_pending;         /* sessions with an early dial not yet routed */
    struct lb_perip *perip;
    _Atomic uint64_t perip_refused[2]; /* sessions, handshakes */
    _Atomic uint64_t perip_log_ms;     /* last refusal line (rate limit) */
    _Atomic uint64_t perip_unlogged;   /* refusals since that line */
    /* Fixed for the process (workers read them unlocked). */
    struct lb_front_limits lim;
    struct hc_index *index;
    struct lb_pubreg *pubreg; /* live publishes (takeover); NULL: none */
    _Atomic unsigned sessions; /* live, all workers */
    _Atomic uint64_t sessions_total;
    _Atomic uint64_t sessions_refused;
    _Atomic uint64_t pipes_created;
    _Atomic uint64_t pipe_fallbacks; /* transfers copied for want of a pipe */
    _Atomic uint64_t ends[LB_REASON__COUNT]; /* sessions ended, by reason */
    /* Per listener (index in the config), for /metrics. */
    struct lb_lstat {
        _Atomic uint64_t accepted;
        _Atomic uint64_t refused; /* max_sessions or out of descriptors */
        _Atomic int32_t coalesce_ms; /* listeners[].coalesce in force; 0: off */
        _Atomic bool early_dial;     /* listeners[].early_dial in force */
        _Atomic uint64_t early[LB_EARLY__COUNT]; /* early dials, by outcome */
    } *lstats;
    size_t n_lstats;
    struct lb_histo preroute; /* accept -> route decided, seconds */
};

/* ---- pipes (DESIGN.md "Splice") --------------------------------------- */

struct lb_pipe {
    int rfd;
    int wfd;
};

/* Per worker. Pipes are borrowed only while bytes are in flight. */
struct lb_pipepool {
    struct lb_pipe *idle; /* stack of empty pipes */
    size_t n_idle;
    size_t max_idle;
    size_t n_out;  /* borrowed now */
    size_t n_live; /* idle + borrowed */
    size_t max_live;
    size_t pipe_size; /* bytes one pipe holds */
    _Atomic size_t in_use; /* n_out for the control thread (relaxed: this worker's line) */
    uint64_t created;   /* by this worker */
    uint64_t fallbacks; /* transfers this worker copied for want of a pipe */
    _Atomic uint64_t *created_all; /* the process's counters (metrics) */
};

#ifndef LB_PIPE_SIZE
#define LB_PIPE_SIZE (256 * 1024)
#endif

/* What a worker lends its sessions. */
struct lb_session;
struct lb_shost {
    uv_loop_t *loop;
    unsigned worker_id;
    struct lb_env *env;
    struct lb_pipepool pipes;
    struct ups_snapshot *snap; /* the worker's current; sessions take a ref */
    struct lb_session *sessions;
    unsigned n_sessions;
    void (*on_gone)(struct lb_shost *h); /* a session's memory went */
    /* Sessions waiting for a dial slot (dialq.c), oldest first, and the
     * tick that retries them while any wait (slots free on other workers). */
    struct lb_session *dq_head, *dq_tail;
    unsigned n_dq;
    uv_timer_t dq_timer;
    bool dq_timer_init;
};

/* Batching the wake-ups of one direction (origin -> client): a high
 * receive low-water mark on the source keeps epoll quiet while messages
 * trickle in, and a flush at most `ms` after the last pump moves what came
 * (coalesce.c). An empty flush drops the mark (the stream went quiet: its
 * next byte wakes us at once); the next bytes raise it again. */
struct lb_coalesce {
    uint32_t ms;    /* bound on the added delay; 0: off */
    uint64_t warm;  /* bytes still moved at once (the first media) */
    bool high;      /* the high low-water mark is set on the source */
    uint64_t due;   /* loop ms of the next flush; 0: none */
    uint8_t empty;  /* flushes in a row that found nothing */
};

/* Empty flushes in a row before the mark drops: a gap between two writes
 * a little longer than the bound costs one cheap empty read, not a
 * setsockopt down, a lone wake-up and a setsockopt up. */
#ifndef LB_COALESCE_QUIET
#define LB_COALESCE_QUIET 2
#endif

#ifndef LB_COALESCE_LOWAT
#define LB_COALESCE_LOWAT (64 * 1024) /* the mark: only bursts wake us */
#endif
#ifndef LB_COALESCE_WARM
#define LB_COALESCE_WARM (64 * 1024) /* after the hand-over: never delayed */
#endif

/* A listener as its sessions see it. */
struct lb_listen_info {
    const char *name;
    int mode;           /* enum conf_mode */
    int proxy_protocol; /* enum conf_proxy_protocol */
    const struct lb_phase_ops *phase; /* NULL: by mode (tests choose their own) */
    size_t index; /* in the config: its TLS contexts in the snapshot's set */
    bool tls;     /* RTMPS: a TLS handshake before the front door */
    const struct lb_http_opts *http;  /* mode http */
};

/* ---- one session -------------------------------------------------------- */

/* PROXY -> [TLS ->] FRONT -> DIALING -> CONNECTED -> SPLICING, and FAILING (an
 * error is on its way to the client) or CLOSING from any of them. A failed
 * node sends CONNECTED back to DIALING. */
#define LB_SSTATE_MAP(X) \
    X(PROXY, "proxy")    \
    X(TLS, "tls")        \
    X(FRONT, "front")    \
    X(DIALING, "dialing") \
    X(CONNECTED, "connected") \
    X(SPLICING, "splicing") \
    X(FAILING, "failing") \
    X(CLOSING, "closing")

enum lb_sstate {
#define X(e, n) LB_SS_##e,
    LB_SSTATE_MAP(X)
#undef X
};

enum lb_dir_state {
    LB_DIR_READ,  /* waiting for the source to be readable */
    LB_DIR_WRITE, /* bytes in flight, waiting for the destination */
    LB_DIR_DONE,  /* EOF seen and propagated */
};

/* One direction moved by the core: src -> (pipe | buffer) -> dst. */
struct lb_dir {
    bool pumped;   /* the core moves it (the phase is done with it) */
    bool wanted;   /* the phase asked; starts once its buffer is flushed */
    struct lb_pipe pipe;
    bool has_pipe;
    char *buf;      /* copy fallback when no pipe can be had */
    size_t pending; /* bytes held in pipe or buf */
    size_t off;     /* buf: where pending starts */
    enum lb_dir_state state;
    uint64_t bytes;
};

struct lb_session {
    struct lb_session *prev, *next; /* host's list */
    struct lb_shost *h;
    enum lb_sstate state;
    struct lb_conn client, upstream;
    uv_poll_t cpoll, upoll;
    int cev, uev;     /* events the polls are started with */
    bool upoll_open;
    bool redial;      /* the upstream poll is closing: dial the next node after */
    uv_timer_t timer;
    uint64_t timer_due; /* 0: not armed */
    int open_handles;
    struct lb_dir c2u, u2c;
    struct lb_coalesce coal; /* u2c, once spliced */
    /* Storm protection (dialq.c): a dial slot of s->node held, or a place
     * in the worker's queue for one. */
    bool dial_slot;
    bool dial_queued;
    uint64_t dial_queued_ns;
    struct lb_session *dq_prev, *dq_next;
    struct lb_front f;
    struct lb_front_limits lim; /* this session's copy: a reload does not move it */
    struct lb_pp_in *pp_in;     /* PROXY: the header read so far */
    bool front_live;   /* f.ops->free not yet called */
    bool rtmp_mode;    /* half_close applies */
    struct ups_snapshot *snap;
    struct ups_stream_view streams;
    struct ups_candidates cands;
    size_t next_cand;
    struct ups_node *node; /* acquired (counted in its sessions) */
    const struct ups_node *log_node; /* the last node dialled, for the access log */
    uint64_t credited_in, credited_out; /* phase bytes already counted on earlier nodes */
    bool indexed;          /* a routed publish in the stream index */
    /* A dial started during the client's handshake (listeners[].early_dial)
     * that the ROUTE has not yet taken or dropped: s->node and the route
     * are a guess until then, not counted as routed. */
    bool early;
    uint64_t t_accept_ns;
    uint64_t t_last_ms;     /* last byte, loop time */
    uint64_t hs_deadline;   /* PROXY, TLS: accept + handshake */
    bool u_tls_hs;          /* DIALING: the node's TLS handshake is under way */
    int kick_depth;         /* settle: rounds run for bytes waiting inside TLS */
    char fail_detail[160];  /* the next lb__node_failed's text, when set */
    uint64_t dial_deadline; /* DIALING */
    uint64_t half_deadline; /* SPLICING with one side closed */
    uint64_t linger_deadline; /* FAILING */
    bool client_shut;       /* FAILING: our FIN sent */
    int64_t preroute_us;    /* accept -> route decided; -1: not routed */
    const struct lb_listen_info *lst;
    struct sockaddr_storage peer;  /* the client (from a PROXY header if any) */
    struct sockaddr_storage local; /* the address it connected to */
    bool local_known;
    struct lb_perip_key ip_key; /* limits per address: counted in env->perip */
    bool ip_counted;            /* lb_perip_enter admitted it */
    bool ip_routed;             /* ... and lb_perip_routed ran */
    char client_text[64];
    char country[4];
    char continent[4];
    enum lb_reason close_req; /* set by steps below the event handlers */
    enum lb_reason reason;    /* the end */
    int sys_error;            /* errno behind a *_error reason */
    enum lb_reason end_first; /* which side closed first */
};

#endif
