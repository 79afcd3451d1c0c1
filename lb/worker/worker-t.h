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
