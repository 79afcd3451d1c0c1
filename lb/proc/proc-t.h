/* The process: listeners, workers, the control loop and what it owns. */
#ifndef LB_PROC_PROC_T_H
#define LB_PROC_PROC_T_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf/conf-t.h"
#include "lb/session/session-t.h"
#include "lb/worker/worker-t.h"

struct geo_db;
struct hc_engine;
struct hc_index;

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
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1, sig_usr2;
    uv_async_t worker_done;
    unsigned n_workers;
    struct lb_worker *workers;
    struct lb_listener_spec *listeners;
    size_t n_listeners;
    struct ups_snapshot *snap; /* control thread's reference */
    struct geo_db *geo;        /* the database of the current config, or NULL */
    struct hc_engine *health;  /* probes, control thread */
    struct lb_env env;         /* what workers read */
    int access_fd;             /* -1 = off, 2 = stderr */
    int retired_fd;            /* a replaced access log, closed at the next swap */
    bool stopping;
    _Atomic unsigned workers_running;
    unsigned fd_capacity; /* sessions the open-file limit allows */
    size_t pipes_per_worker;
};

#endif
