/* A worker thread: its loop, its listening sockets, its sessions. */
#ifndef LB_WORKER_WORKER_T_H
#define LB_WORKER_WORKER_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lb/session/session-t.h"

struct lb_wlistener {
    struct lb_worker *w;
    struct lb_listen_info info; /* name owned by the process */
    int fd;
    uv_poll_t poll;
    bool open;
};

#define LB_CMD_STOP 1u  /* stop accepting, drain */
#define LB_CMD_FORCE 2u /* close every session now */
#define LB_CMD_EXIT 4u  /* drained: close the loop */

/* ---- request/response with the control thread (DESIGN.md) ---------------
 * The control thread never walks a worker's lists: it queues a request on
 * the worker (wake), the worker answers it on its own loop and posts it
 * back on the process's reply queue (an async handle of the control loop),
 * where done() runs. */
enum lb_wreq_kind {
    LB_WREQ_SESSIONS,   /* copy every live session into sessions[] */
    LB_WREQ_CLOSE_NODE, /* end the sessions on pool/node with reason */
    LB_WREQ_TAKEOVER,   /* end the session holding publish claim pub_id (taken over) */
};

/* One live session as the admin API shows it. */
struct lb_wsession {
    char client[64];
    char listener[48];
    char role[8]; /* "publish", "play", "tcp", "-" (not yet known) */
    char app[128];
    char stream[256];
    char route[64];
    char pool[64];
    char node[64];
    char country[4];
    const char *state; /* static: LB_SSTATE_MAP names */
    unsigned worker;
    uint64_t age_ms;
    uint64_t bytes_in, bytes_out; /* from the client, to the client */
};

struct lb_wreq {
    struct lb_wreq *next;
    int kind; /* enum lb_wreq_kind */
    unsigned worker; /* the worker that answered */
    /* LB_WREQ_CLOSE_NODE */
    char pool[128], node[128];
    int reason; /* enum lb_reason */
    unsigned closed;
    /* LB_WREQ_TAKEOVER (closed counts it too) */
    uint64_t pub_id;
    /* LB_WREQ_SESSIONS: heap array, the receiver frees it */
    struct lb_wsession *sessions;
    size_t n_sessions;
    /* Runs on the control loop with the answer. */
    void (*done)(struct lb_wreq *r);
    void *arg;
};

struct lb_wreply_q {
    uv_mutex_t mu;
    struct lb_wreq *head, *tail;
    uv_async_t async;
    bool closed; /* the control loop is going: answers are dropped */
};

struct lb_worker {
    unsigned id;
    uv_thread_t thread;
    bool started;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t drain_timer;
    uv_timer_t accept_pause;
    struct lb_wlistener *listeners;
    size_t n_listeners;
    struct lb_shost host; /* sessions, pipes, snapshot */
    size_t pipes_max;
    _Atomic(struct ups_snapshot *) next_snap;
    _Atomic unsigned cmd;
    uv_mutex_t inbox_mu;
    struct lb_wreq *inbox; /* requests, oldest first */
    struct lb_wreply_q *replies;
    bool stopping;
    bool finished;
    int reserve_fd; /* spare descriptor for EMFILE in accept */
    uint64_t last_refuse_log_ms;
    /* Told (from the worker's thread) once it has no session left while
     * stopping. */
    void (*on_finished)(void *arg);
    void *finished_arg;
};

#endif
