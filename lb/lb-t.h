/* Process, worker, listener, session and pipe-pool types. */
#ifndef LB_LB_T_H
#define LB_LB_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf/conf-t.h"
#include "upstream/upstream-t.h"

struct geo_db;
struct hc_engine;
struct hc_index;

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
    size_t n_out;   /* borrowed now */
    size_t n_live;  /* idle + borrowed */
    size_t max_live;
    uint64_t created;
    uint64_t fallbacks; /* transfers done by read/write copy */
    size_t pipe_size;   /* bytes one pipe holds */
};

/* Pipe capacity asked of the kernel (F_SETPIPE_SZ); 64 KiB if refused. */
#ifndef LB_PIPE_SIZE
#define LB_PIPE_SIZE (256 * 1024)
#endif

/* ---- sessions --------------------------------------------------------- */

/* FRONTDOOR (rtmp listeners: handshake, commands, routing) -> DIALING ->
 * UPSTREAM (rtmp: upstream handshake, replay, patch) -> SPLICING -> CLOSING.
 * tcp listeners start at DIALING and go straight to SPLICING. */
enum lb_session_state {
    LB_SS_PROXY, /* reading the PROXY protocol header */
    LB_SS_FRONTDOOR,
    LB_SS_DIALING,
    LB_SS_UPSTREAM,
    LB_SS_SPLICING,
    LB_SS_CLOSING,
};

enum lb_dir_state {
    LB_DIR_READ,  /* waiting for the source to be readable */
    LB_DIR_WRITE, /* bytes in flight, waiting for the destination */
    LB_DIR_DONE,  /* EOF seen and propagated */
};

/* One direction of a spliced session: src -> (pipe | buffer) -> dst. */
struct lb_dir {
    struct lb_pipe pipe;
    bool has_pipe;
    char *buf;      /* copy fallback when no pipe can be had */
    size_t pending; /* bytes held in pipe or buf */
    size_t off;     /* buf: where pending starts */
    enum lb_dir_state state;
    uint64_t bytes;
};

struct lb_worker;
struct lb_rtmp;

struct lb_session {
    struct lb_session *prev, *next; /* worker's list */
    struct lb_worker *w;
    enum lb_session_state state;
    int cfd, ufd;
    uv_poll_t cpoll, upoll;
    int cev, uev; /* events the polls are started with */
    bool upoll_open;
    uv_timer_t timer; /* dial deadline, then idle timeout */
    int open_handles;
    struct lb_dir c2u, u2c;
    struct ups_snapshot *snap;
    const struct ups_route *route;
    struct ups_candidates cands;
    size_t next_cand;
    struct ups_node *node; /* acquired (counted in its sessions) */
    unsigned dials;
    uint64_t t_accept_ns;
    uint64_t t_last_ms; /* last byte, loop time */
    const char *listener;
    struct lb_wlistener *lst;
    struct sockaddr_storage peer;  /* the client (from a PROXY header if any) */
    struct sockaddr_storage local; /* the address it connected to */
    bool local_known;              /* local filled (PROXY header or getsockname) */
    char client[64];
    char country[4];   /* from the geo database, "" if unknown */
    char continent[4];
    char reason[64];
    /* rtmp listeners */
    struct lb_rtmp *rtmp; /* front door state; freed at hand-over */
    char *app;
    char *stream;
    int role;               /* enum conf_role */
    bool indexed;           /* a routed publish in the stream index */
    const char *hs_kind;    /* "simple" / "digest" */
    int64_t preroute_us;    /* accept -> route decided; -1: not routed */
};

/* ---- workers and the process ------------------------------------------ */

struct lb_wlistener {
    struct lb_worker *w;
    const char *name; /* owned by the server */
    int mode;
    int proxy_protocol; /* enum conf_proxy_protocol */
    int fd;
    uv_poll_t poll;
    bool open;
};

#define LB_CMD_STOP 1u  /* stop accepting, drain */
#define LB_CMD_FORCE 2u /* close every session now */
#define LB_CMD_EXIT 4u  /* drained: close the loop */

struct lb_server;

struct lb_worker {
    struct lb_server *srv;
    unsigned id;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t drain_timer;
    uv_timer_t accept_pause;
    struct lb_wlistener *listeners;
    size_t n_listeners;
    struct lb_pipepool pipes;
    struct lb_session *sessions;
    unsigned n_sessions;
    struct ups_snapshot *snap;
    _Atomic(struct ups_snapshot *) next_snap;
    _Atomic unsigned cmd;
    bool stopping;
    bool finished;
    int reserve_fd; /* spare descriptor for EMFILE in accept */
    uint64_t last_emfile_log_ms;
};

struct lb_listener_spec {
    char *name;
    int mode;
    int proxy_protocol;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *address_text;
};

struct lb_server {
    char *conf_path;
    struct conf *conf;
    uv_loop_t loop; /* control loop, main thread */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t worker_done;
    unsigned n_workers;
    struct lb_worker *workers;
    struct lb_listener_spec *listeners;
    size_t n_listeners;
    struct ups_snapshot *snap; /* control thread's reference */
    struct geo_db *geo;        /* the database of the current config, or NULL */
    struct hc_engine *health;  /* probes, control thread */
    struct hc_index *index;    /* the stream index, shared */
    int access_fd;             /* -1 = off */
    bool stopping;
    _Atomic unsigned workers_running_atomic;

    /* Settings workers read; atomics so a reload can change them. */
    _Atomic int64_t connect_ms;
    _Atomic int64_t handshake_ms;
    _Atomic int64_t idle_ms;
    _Atomic int64_t drain_ms;
    _Atomic unsigned max_sessions; /* effective, after the fd budget */
    unsigned fd_capacity;          /* sessions the open-file limit allows */
    /* RTMP front door limits (read-only after start; reload keeps them). */
    uint32_t preroute_bytes;
    uint32_t max_chunk_size;
    uint32_t max_message_size;
    uint32_t max_amf_depth;
    uint32_t max_amf_string;
    size_t pipes_per_worker;

    _Atomic unsigned sessions;
    _Atomic uint64_t sessions_total;
    _Atomic uint64_t sessions_refused;
};

#endif
