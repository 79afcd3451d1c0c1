/* The process: descriptor budget, listening sockets, worker threads, and
 * the control loop on the main thread (signals: stop, drain, reload). */
#include "conf/conf.h"
#include "geo/geo.h"
#include "health/probe.h"
#include "health/streams.h"
#include "lb/lb.h"
#include "lb/log.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Descriptors kept back for listeners, loops, logs and accept's spare fd. */
#define FD_RESERVE_BASE 32
#define FD_RESERVE_PER_WORKER 8

static void apply_log_settings(const struct conf *c)
{
    lb_log_configure((enum lb_log_level)c->log.level,
                     c->log.format == CONF_LOG_JSON ? LB_LOG_JSON : LB_LOG_TEXT);
}

/* Opens the access log named in c. Returns an fd, -1 for "off", or -2 on
 * error (logged). */
static int open_access_log(const struct conf *c)
{
    if (strcmp(c->log.access_log, "off") == 0)
        return -1;
    if (strcmp(c->log.access_log, "stderr") == 0)
        return 2;
    int fd = open(c->log.access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        lb_log_msg(LB_LOG_ERROR, "access_log", "cannot open %s: %s", c->log.access_log,
                   strerror(errno));
        return -2;
    }
    return fd;
}

/* Raise the soft open-file limit to the hard one, then split the budget:
 * two descriptors per session, two per pipe, a reserve for the rest. */
static void plan_descriptors(struct lb_server *srv)
{
    struct rlimit rl;
    rlim_t before;
    unsigned max = (unsigned)srv->conf->limits.max_sessions;

    getrlimit(RLIMIT_NOFILE, &rl);
    before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t nofile = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
    uint64_t reserve = FD_RESERVE_BASE + (uint64_t)FD_RESERVE_PER_WORKER * srv->n_workers +
                       2 * srv->n_listeners * srv->n_workers;
    uint64_t usable = nofile > reserve ? nofile - reserve : 0;
    uint64_t pipe_fds = usable / 8;
    if (pipe_fds < 4u * srv->n_workers)
        pipe_fds = 4u * srv->n_workers;
    uint64_t cap = usable > pipe_fds ? (usable - pipe_fds) / 2 : 0;
    if (cap < 1)
        cap = 1;
    srv->fd_capacity = (unsigned)(cap > 0xffffffffu ? 0xffffffffu : cap);
    srv->pipes_per_worker = (size_t)(pipe_fds / 2 / srv->n_workers);
    if (srv->pipes_per_worker < 2)
        srv->pipes_per_worker = 2;

    lb_log_msg(LB_LOG_INFO, "capacity",
               "open-file limit %llu (soft was %llu): room for %u sessions and %zu pipes "
               "per worker",
               (unsigned long long)nofile, (unsigned long long)before, srv->fd_capacity,
               srv->pipes_per_worker);
    if (max > srv->fd_capacity) {
        /* Only an explicit setting the limit can't honour is worth a warning. */
        lb_log_msg(srv->conf->limits.max_sessions_mark.line ? LB_LOG_WARN : LB_LOG_INFO,
                   "capacity",
                   "limits.max_sessions %u is more than the open-file limit allows; "
                   "refusing sessions beyond %u (raise `ulimit -Hn` to lift this)",
                   max, srv->fd_capacity);
        max = srv->fd_capacity;
    }
    atomic_store(&srv->max_sessions, max);
}

static void apply_settings(struct lb_server *srv, const struct conf *c)
{
    atomic_store(&srv->connect_ms, c->timeouts.connect_ms);
    atomic_store(&srv->handshake_ms, c->timeouts.handshake_ms);
    atomic_store(&srv->idle_ms, c->timeouts.idle_ms);
    atomic_store(&srv->drain_ms, c->timeouts.drain_ms);
    unsigned max = (unsigned)c->limits.max_sessions;
    if (srv->fd_capacity && max > srv->fd_capacity)
        max = srv->fd_capacity;
    atomic_store(&srv->max_sessions, max);
}

/* ---- geo ---------------------------------------------------------------- */

static void release_geo(void *db) { geo_unref(db); }

/* Opens the config's database (NULL and ok when none is configured).
 * Returns -1 on failure, logged. */
static int open_geo(const struct conf *c, struct geo_db **out)
{
    char err[512];
    *out = NULL;
    if (!c->geo.database)
        return 0;
    *out = geo_open(c->geo.database, err, sizeof(err));
    if (!*out) {
        lb_log_msg(LB_LOG_ERROR, "geo", "%s: geo.database: %s", c->path, err);
        return -1;
    }
    lb_log_msg(LB_LOG_INFO, "geo", "geo database %s loaded", c->geo.database);
    return 0;
}

/* The snapshot keeps the database alive for the sessions using it; nodes
 * that declare only a country get that country's centroid. */
static void attach_geo(struct ups_snapshot *snap, struct geo_db *db)
{
    if (!db)
        return;
    snap->geo = geo_ref(db);
    snap->geo_release = release_geo;
    for (size_t p = 0; p < snap->n_pools; p++)
        for (size_t i = 0; i < snap->pools[p].n_nodes; i++) {
            struct ups_node *n = &snap->pools[p].nodes[i];
            if (n->has_location || !n->country[0])
                continue;
            if (geo_country_centroid(db, n->country, &n->lat, &n->lon))
                n->has_location = true;
            else
                lb_log_msg(LB_LOG_WARN, "geo",
                           "node %s: the geo database has no location in country %s; "
                           "geo_nearest tries it last",
                           n->name, n->country);
        }
}

/* ---- control loop ----------------------------------------------------- */

static void close_control(struct lb_server *srv)
{
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    uv_close((uv_handle_t *)&srv->worker_done, NULL);
}

static void on_worker_done(uv_async_t *a)
{
    struct lb_server *srv = a->data;
    if (atomic_load(&srv->workers_running_atomic) > 0)
        return;
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_command(&srv->workers[i], LB_CMD_EXIT);
    if (srv->health) {
        hc_engine_close(srv->health, NULL, NULL);
        srv->health = NULL;
    }
    close_control(srv);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct lb_server *srv = h->data;

    if (srv->stopping) {
        lb_log_msg(LB_LOG_WARN, "stop", "second %s: closing all sessions now",
                   signum == SIGINT ? "SIGINT" : "SIGTERM");
        for (unsigned i = 0; i < srv->n_workers; i++)
            lb_worker_command(&srv->workers[i], LB_CMD_FORCE);
        return;
    }
    srv->stopping = true;
    lb_log_msg(LB_LOG_INFO, "stop",
               "%s: no longer accepting; draining %u sessions for up to %lldms",
               signum == SIGINT ? "SIGINT" : "SIGTERM", atomic_load(&srv->sessions),
               (long long)atomic_load(&srv->drain_ms));
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_command(&srv->workers[i], LB_CMD_STOP);
}

static bool same_listeners(const struct lb_server *srv, const struct conf *c)
{
    if (c->n_listeners != srv->n_listeners)
        return false;
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct lb_listener_spec *l = &srv->listeners[i];
        const struct conf_listener *cl = &c->listeners[i];
        if (strcmp(l->name, cl->name) != 0 || l->mode != cl->mode ||
            l->proxy_protocol != cl->proxy_protocol || l->addrlen != cl->address.len ||
            memcmp(&l->addr, &cl->address.ss, l->addrlen) != 0)
            return false;
    }
    return true;
}

static void reload(struct lb_server *srv)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = true};
    char err[256];

    struct conf *c = conf_load_file(srv->conf_path, &opts, &errs);
    if (!c) {
        for (size_t i = 0; i < errs.n; i++)
            lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s", errs.msg[i]);
        lb_log_msg(LB_LOG_ERROR, "reload_failed", "keeping the running configuration");
        conf_errors_free(&errs);
        return;
    }
    if (!same_listeners(srv, c))
        lb_log_msg(LB_LOG_WARN, "reload",
                   "listener changes need a restart; keeping the current listeners");
    struct geo_db *geo;
    if (open_geo(c, &geo) < 0) {
        lb_log_msg(LB_LOG_ERROR, "reload_failed", "keeping the running configuration");
        conf_free(c);
        return;
    }
    struct ups_snapshot *snap = ups_snapshot_build(c, srv->snap, srv->n_workers, err, sizeof(err));
    if (!snap) {
        lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s; keeping the running configuration", err);
        geo_unref(geo);
        conf_free(c);
        return;
    }
    attach_geo(snap, geo);
    geo_unref(srv->geo);
    srv->geo = geo;
    if (srv->health)
        hc_engine_apply(srv->health, c, snap);
    int afd = open_access_log(c);
    if (afd == -2) {
        lb_log_msg(LB_LOG_ERROR, "reload_failed", "keeping the running configuration");
        ups_snapshot_unref(snap);
        conf_free(c);
        return;
    }
    /* Swap the access log without closing a descriptor a worker may be
     * writing to: dup2 replaces it atomically (also how logs are rotated). */
    if (afd >= 0 && srv->access_fd > 2 && afd != 2) {
        dup2(afd, srv->access_fd);
        close(afd);
    } else {
        lb_log_set_access_fd(afd);
        srv->access_fd = afd;
    }
    apply_log_settings(c);
    apply_settings(srv, c);
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_publish_snapshot(&srv->workers[i], snap);
    ups_snapshot_unref(srv->snap);
    srv->snap = snap;
    conf_free(srv->conf);
    srv->conf = c;
    lb_log_msg(LB_LOG_INFO, "reloaded", "%s: generation %llu, %zu pools, %zu routes",
               srv->conf_path, (unsigned long long)snap->generation, c->n_pools, c->n_routes);
}

static void on_hup(uv_signal_t *h, int signum)
{
    struct lb_server *srv = h->data;
    if (!srv->stopping)
        reload(srv);
}

/* ---- start ------------------------------------------------------------ */

static int bind_listeners(struct lb_server *srv)
{
    for (unsigned w = 0; w < srv->n_workers; w++) {
        srv->workers[w].listeners = calloc(srv->n_listeners, sizeof(struct lb_wlistener));
        if (!srv->workers[w].listeners)
            return -1;
        srv->workers[w].n_listeners = srv->n_listeners;
    }
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct lb_listener_spec *l = &srv->listeners[i];
        /* SO_REUSEPORT would let a second rtmplb on the same port silently
         * take half the connections: probe with a plain bind first. */
        int probe = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (probe >= 0) {
            setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(probe, (struct sockaddr *)&l->addr, l->addrlen) < 0) {
                int err = errno;
                close(probe);
                lb_log_msg(LB_LOG_ERROR, "listen", "listener %s: cannot listen on %s: %s%s",
                           l->name, l->address_text, strerror(err),
                           err == EADDRINUSE ? " (is another rtmplb running?)" : "");
                return -1;
            }
            close(probe);
        }
        for (unsigned w = 0; w < srv->n_workers; w++) {
            int err = 0;
            int fd = lb_listen_socket((struct sockaddr *)&l->addr, l->addrlen, &err);
            if (fd < 0) {
                lb_log_msg(LB_LOG_ERROR, "listen", "listener %s: cannot listen on %s: %s",
                           l->name, l->address_text, strerror(err));
                return -1;
            }
            struct lb_wlistener *wl = &srv->workers[w].listeners[i];
            wl->fd = fd;
            wl->name = l->name;
            wl->mode = l->mode;
            wl->proxy_protocol = l->proxy_protocol;
        }
        static const char *pp[] = {"", ", PROXY v1", ", PROXY v2", ", PROXY v1/v2"};
        lb_log_msg(LB_LOG_INFO, "listening", "listener %s on %s (mode %s%s, %u sockets)", l->name,
                   l->address_text, conf_mode_name(l->mode), pp[l->proxy_protocol & 3],
                   srv->n_workers);
    }
    return 0;
}

static void free_server(struct lb_server *srv)
{
    for (unsigned w = 0; srv->workers && w < srv->n_workers; w++) {
        struct lb_worker *wk = &srv->workers[w];
        for (size_t i = 0; wk->listeners && !wk->thread && i < wk->n_listeners; i++)
            if (wk->listeners[i].fd > 0 && !wk->listeners[i].open)
                close(wk->listeners[i].fd);
        free(wk->listeners);
    }
    free(srv->workers);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        free(srv->listeners[i].name);
        free(srv->listeners[i].address_text);
    }
    free(srv->listeners);
    ups_snapshot_unref(srv->snap);
    geo_unref(srv->geo);
    hc_index_free(srv->index);
    if (srv->access_fd > 2)
        close(srv->access_fd);
    conf_free(srv->conf);
}

int lb_server_run(const char *conf_path, struct conf *conf)
{
    struct lb_server srv;
    char err[256];

    memset(&srv, 0, sizeof(srv));
    srv.conf_path = (char *)conf_path;
    srv.conf = conf;
    apply_log_settings(conf);
    srv.access_fd = open_access_log(conf);
    if (srv.access_fd == -2) {
        conf_free(conf);
        return 1;
    }
    lb_log_set_access_fd(srv.access_fd);

    srv.n_workers = conf->workers ? (unsigned)conf->workers : uv_available_parallelism();
    if (srv.n_workers == 0)
        srv.n_workers = 1;
    srv.n_listeners = conf->n_listeners;
    srv.listeners = calloc(conf->n_listeners, sizeof(*srv.listeners));
    srv.workers = calloc(srv.n_workers, sizeof(*srv.workers));
    if (!srv.listeners || !srv.workers) {
        lb_log_msg(LB_LOG_ERROR, "start", "out of memory");
        free_server(&srv);
        return 1;
    }
    for (size_t i = 0; i < conf->n_listeners; i++) {
        const struct conf_listener *cl = &conf->listeners[i];
        srv.listeners[i].name = strdup(cl->name);
        srv.listeners[i].address_text = strdup(cl->address.text);
        srv.listeners[i].mode = cl->mode;
        srv.listeners[i].proxy_protocol = cl->proxy_protocol;
        memcpy(&srv.listeners[i].addr, &cl->address.ss, cl->address.len);
        srv.listeners[i].addrlen = cl->address.len;
    }
    plan_descriptors(&srv);
    apply_settings(&srv, conf);
    /* Parser limits are fixed for the process: workers read them unlocked. */
    srv.preroute_bytes = (uint32_t)conf->limits.preroute_bytes;
    srv.max_chunk_size = (uint32_t)conf->limits.max_chunk_size;
    srv.max_message_size = (uint32_t)conf->limits.max_message_size;
    srv.max_amf_depth = (uint32_t)conf->limits.max_amf_depth;
    srv.max_amf_string = (uint32_t)conf->limits.max_amf_string;

    if (open_geo(conf, &srv.geo) < 0) {
        free_server(&srv);
        return 2;
    }
    srv.snap = ups_snapshot_build(conf, NULL, srv.n_workers, err, sizeof(err));
    if (!srv.snap) {
        lb_log_msg(LB_LOG_ERROR, "start", "%s", err);
        free_server(&srv);
        return 1;
    }
    attach_geo(srv.snap, srv.geo);
    srv.index = hc_index_new();
    if (bind_listeners(&srv) < 0) {
        free_server(&srv);
        return 1;
    }

    uv_loop_init(&srv.loop);
    uv_signal_init(&srv.loop, &srv.sig_term);
    uv_signal_init(&srv.loop, &srv.sig_int);
    uv_signal_init(&srv.loop, &srv.sig_hup);
    uv_async_init(&srv.loop, &srv.worker_done, on_worker_done);
    srv.sig_term.data = srv.sig_int.data = srv.sig_hup.data = srv.worker_done.data = &srv;
    uv_signal_start(&srv.sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&srv.sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&srv.sig_hup, on_hup, SIGHUP);

    srv.health = hc_engine_new(&srv.loop, srv.index);
    if (srv.health)
        hc_engine_apply(srv.health, conf, srv.snap);
    atomic_store(&srv.workers_running_atomic, srv.n_workers);
    for (unsigned i = 0; i < srv.n_workers; i++) {
        struct lb_worker *w = &srv.workers[i];
        w->srv = &srv;
        w->id = i;
        w->snap = ups_snapshot_ref(srv.snap);
        int rc = lb_worker_start(w);
        if (rc < 0) {
            lb_log_msg(LB_LOG_ERROR, "start", "worker %u: %s", i, uv_strerror(rc));
            exit(1); /* threads already running: nothing sane to unwind */
        }
    }
    lb_log_msg(LB_LOG_INFO, "started",
               "rtmplb %s pid %d: %u workers, %zu listeners, %zu pools, %zu routes, "
               "max_sessions %u",
               RTMPLB_VERSION, (int)getpid(), srv.n_workers, conf->n_listeners, conf->n_pools,
               conf->n_routes, atomic_load(&srv.max_sessions));

    uv_run(&srv.loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < srv.n_workers; i++)
        uv_thread_join(&srv.workers[i].thread);
    uv_loop_close(&srv.loop);
    lb_log_msg(LB_LOG_INFO, "stopped", "%llu sessions served, %llu refused",
               (unsigned long long)atomic_load(&srv.sessions_total),
               (unsigned long long)atomic_load(&srv.sessions_refused));
    free_server(&srv);
    return 0;
}
