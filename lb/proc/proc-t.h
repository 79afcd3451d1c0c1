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
struct lb_admin;
struct ups_overrides;
struct hc_engine;
struct hc_index;
struct lb_tls_set;

#define LB_MAX_ROUTE_STATS 256

struct lb_listener_spec {
    char *name;
    int mode;
    int proxy_protocol;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *address_text;
    bool tls; /* RTMPS: fixed for the process, like the address */
    struct lb_http_opts http; /* mode http; its strings owned here */
};

struct lb_server;

/* The admin server as the process sees it: main.c hands these in, so the
 * process never includes the admin module (which calls down into it). */
struct lb_control_ops {
    int (*start)(struct lb_server *srv, char *err, size_t errlen);
    void (*reloaded)(struct lb_server *srv, const char *token);
    void (*stop)(struct lb_server *srv);
    /* The listening socket, to hand over on an upgrade (-1: none). */
    int (*listen_fd)(struct lb_server *srv);
};

struct lb_server {
    const struct lb_control_ops *ctl; /* NULL: no admin server */
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
    struct lb_tls_set *tls;    /* the TLS contexts of the current config, or NULL */
    uv_timer_t tls_keys;       /* rotates the session ticket keys */
    char ktls_why[128];        /* what the kTLS probe found */
    struct hc_engine *health;  /* probes, control thread */
    struct lb_env env;         /* what workers read */
    int access_fd;             /* -1 = off, 2 = stderr */
    int retired_fd;            /* a replaced access log, closed at the next swap */
    bool stopping;
    _Atomic unsigned workers_running;
    unsigned fd_capacity; /* sessions the open-file limit allows */
    size_t pipes_per_worker;
    /* The control plane. */
    struct lb_admin *admin;    /* the admin API, when admin is configured */
    struct ups_overrides *ovr; /* runtime overrides, applied to every snapshot */
    struct lb_wreply_q replies; /* workers' answers to requests */
    bool replies_open;
    _Atomic uint64_t reloads_ok, reloads_failed;
    /* The last reload (control thread): wall clock (0: none yet), result. */
    int64_t last_reload_ms;
    bool last_reload_ok;
    char last_reload_error[512]; /* as long as any reason given to refused() */
    /* Sessions routed per route and role, by route name; kept across
     * reloads (a route dropped by a reload keeps its slot). Never moves. */
    struct lb_route_stat {
        char name[64];
        _Atomic uint64_t by_role[3]; /* tcp/unknown, publish, play */
    } route_stats[LB_MAX_ROUTE_STATS];
    size_t n_route_stats;
};

#endif
