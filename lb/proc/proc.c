/* The process: descriptor budget, listening sockets, worker threads, and
 * the control loop on the main thread (signals: stop, drain, reload, log
 * reopening). */
#include "lb/proc/proc.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/probe.h"
#include "health/streams.h"
#include "lb/admin/events.h"
#include "lb/log.h"
#include "lb/tls/tls.h"
#include "lb/net.h"
#include "lb/perip.h"
#include "lb/pubreg.h"
#include "lb/proc/upgrade.h"
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Descriptors kept back for listeners, loops, logs and accept's spare fd. */
#define FD_RESERVE_BASE 32
#define FD_RESERVE_PER_WORKER 8

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
    /* Only an explicit setting the limit can't honour is worth a line. */
    if (max > srv->fd_capacity && srv->conf->limits.max_sessions_mark.line)
        lb_log_msg(LB_LOG_WARN, "capacity",
                   "limits.max_sessions %u is more than the open-file limit allows; "
                   "refusing sessions beyond %u (raise `ulimit -Hn` to lift this)",
                   max, srv->fd_capacity);
}

/* ---- control loop ----------------------------------------------------- */

static void close_control(struct lb_server *srv)
{
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    uv_close((uv_handle_t *)&srv->sig_usr1, NULL);
    uv_close((uv_handle_t *)&srv->sig_usr2, NULL);
    uv_close((uv_handle_t *)&srv->worker_done, NULL);
    uv_close((uv_handle_t *)&srv->tls_keys, NULL);
    if (srv->replies_open) {
        lb_wreply_close(&srv->replies);
        srv->replies_open = false;
    }
}

/* A worker's thread says it finished draining. */
static void worker_finished(void *arg)
{
    struct lb_server *srv = arg;
    atomic_fetch_sub(&srv->workers_running, 1);
    uv_async_send(&srv->worker_done);
}

static void on_worker_done(uv_async_t *a)
{
    struct lb_server *srv = a->data;
    if (atomic_load(&srv->workers_running) > 0)
        return;
    if (srv->ctl)
        srv->ctl->stop(srv);
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
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";

    if (srv->stopping) {
        lb_log_msg(LB_LOG_WARN, "stop", "second %s: closing all sessions now", name);
        for (unsigned i = 0; i < srv->n_workers; i++)
            lb_worker_command(&srv->workers[i], LB_CMD_FORCE);
        return;
    }
    srv->stopping = true;
    lb_log_msg(LB_LOG_INFO, "stop", "%s: no longer accepting; draining %u sessions for up to %lldms",
               name, atomic_load(&srv->env.sessions), (long long)atomic_load(&srv->env.drain_ms));
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_command(&srv->workers[i], LB_CMD_STOP);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct lb_server *srv = h->data;
    if (srv->stopping)
        return;
    if (signum == SIGHUP)
        (void)lb_proc_reload(srv, NULL);
    else if (signum == SIGUSR1)
        lb_proc_reopen_logs(srv);
    else
        lb_upgrade_start(srv);
}

void lb_proc_handover(struct lb_server *srv, int64_t drain_ms)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    if (srv->ctl)
        srv->ctl->stop(srv); /* the API is the new process's now */
    /* Workers read drain_ms when they stop; 0 there means "close now". */
    atomic_store(&srv->env.drain_ms, drain_ms > 0 ? drain_ms : INT64_C(1) << 40);
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_command(&srv->workers[i], LB_CMD_STOP);
}

/* ---- start ------------------------------------------------------------ */

static int probe_port(const struct lb_listener_spec *l)
{
    /* SO_REUSEPORT would let a second rtmplb on the same port silently
     * take half the connections: probe with a plain bind first. */
    int probe = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (probe < 0)
        return 0;
    (void)setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(probe, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
        int err = errno;
        close(probe);
        lb_log_msg(LB_LOG_ERROR, "listen", "listener %s: cannot listen on %s: %s%s", l->name,
                   l->address_text, strerror(err),
                   err == EADDRINUSE ? " (is another rtmplb running?)" : "");
        return -1;
    }
    close(probe);
    return 0;
}

static int bind_listeners(struct lb_server *srv)
{
    for (unsigned w = 0; w < srv->n_workers; w++) {
        srv->workers[w].listeners = calloc(srv->n_listeners, sizeof(struct lb_wlistener));
        if (!srv->workers[w].listeners)
            return -1;
        srv->workers[w].n_listeners = srv->n_listeners;
        for (size_t i = 0; i < srv->n_listeners; i++)
            srv->workers[w].listeners[i].fd = -1;
    }
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct lb_listener_spec *l = &srv->listeners[i];
        unsigned taken = 0;
        for (unsigned w = 0; w < srv->n_workers; w++) {
            int fd = lb_upgrade_take((struct sockaddr *)&l->addr, l->addrlen);
            if (fd < 0)
                break;
            srv->workers[w].listeners[i].fd = fd;
            taken++;
        }
        /* A port the old process hands over is in use by design; a new
         * one must be free (SO_REUSEPORT would share it silently). */
        if (!taken && probe_port(l) < 0)
            return -1;
        for (unsigned w = taken; w < srv->n_workers; w++) {
            int err = 0;
            int fd = lb_listen_socket((struct sockaddr *)&l->addr, l->addrlen, &err);
            if (fd < 0) {
                lb_log_msg(LB_LOG_ERROR, "listen", "listener %s: cannot listen on %s: %s",
                           l->name, l->address_text, strerror(err));
                return -1;
            }
            srv->workers[w].listeners[i].fd = fd;
        }
        for (unsigned w = 0; w < srv->n_workers; w++)
            srv->workers[w].listeners[i].info =
                (struct lb_listen_info){l->name, l->mode, l->proxy_protocol, NULL, i, l->tls,
                                        &l->http};
        static const char *const pp[] = {"", ", PROXY v1", ", PROXY v2", ", PROXY v1/v2"};
        char inh[32] = "";
        if (taken)
            snprintf(inh, sizeof(inh), ", %u inherited", taken);
        lb_log_msg(LB_LOG_INFO, "listening", "listener %s on %s (mode %s%s%s, %u sockets%s)",
                   l->name, l->address_text, conf_mode_name(l->mode), pp[l->proxy_protocol & 3],
                   l->tls ? ", TLS" : "", srv->n_workers, inh);
        if (l->tls)
            lb_log_msg(LB_LOG_INFO, "tls_path",
                       "listener %s: TLS in userspace (OpenSSL, copied through a bounded "
                       "buffer; no splice on its TLS legs): %s",
                       l->name, srv->ktls_why);
    }
    return 0;
}

static void free_server(struct lb_server *srv)
{
    for (unsigned w = 0; srv->workers && w < srv->n_workers; w++) {
        struct lb_worker *wk = &srv->workers[w];
        for (size_t i = 0; wk->listeners && !wk->started && i < wk->n_listeners; i++)
            if (wk->listeners[i].fd >= 0)
                close(wk->listeners[i].fd);
        free(wk->listeners);
    }
    free(srv->workers);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        free(srv->listeners[i].name);
        free(srv->listeners[i].address_text);
        for (size_t k = 0; k < srv->listeners[i].http.n_paths; k++)
            free((char *)srv->listeners[i].http.paths[k]);
        free((char *)srv->listeners[i].http.app);
    }
    free(srv->listeners);
    ups_snapshot_unref(srv->snap);
    geo_unref(srv->geo);
    lb_tls_set_unref(srv->tls);
    hc_index_free(srv->env.index);
    lb_perip_free(srv->env.perip);
    lb_pubreg_free(srv->env.pubreg);
    ups_ovr_free(srv->ovr);
    free(srv->env.lstats);
    if (srv->access_fd > 2)
        close(srv->access_fd);
    if (srv->retired_fd > 2)
        close(srv->retired_fd);
    conf_free(srv->conf);
}

static int copy_listeners(struct lb_server *srv, const struct conf *conf)
{
    srv->n_listeners = conf->n_listeners;
    srv->listeners = calloc(conf->n_listeners, sizeof(*srv->listeners));
    if (!srv->listeners)
        return -1;
    for (size_t i = 0; i < conf->n_listeners; i++) {
        const struct conf_listener *cl = &conf->listeners[i];
        struct lb_listener_spec *l = &srv->listeners[i];
        l->name = strdup(cl->name);
        l->address_text = strdup(cl->address.text);
        l->mode = cl->mode;
        l->proxy_protocol = cl->proxy_protocol;
        l->tls = cl->tls.present;
        memcpy(&l->addr, &cl->address.ss, cl->address.len);
        l->addrlen = cl->address.len;
        if (!l->name || !l->address_text)
            return -1;
        l->http = (struct lb_http_opts){
            .trust_xff = cl->http.trust_x_forwarded_for,
            .add_forwarded = cl->http.add_forwarded,
            .max_header = (uint32_t)cl->http.max_header,
            .keepalive_ms = (uint64_t)cl->http.keepalive_ms,
        };
        for (size_t k = 0; k < cl->http.n_paths && k < LB_HTTP_MAX_PATHS; k++) {
            if (!(l->http.paths[k] = strdup(cl->http.paths[k])))
                return -1;
            l->http.n_paths = k + 1;
        }
        if (cl->http.app && !(l->http.app = strdup(cl->http.app)))
            return -1;
    }
    return 0;
}

static void fixed_limits(struct lb_server *srv, const struct conf *conf)
{
    /* Parser limits are fixed for the process: workers read them unlocked. */
    srv->env.lim = (struct lb_front_limits){
        .preroute_bytes = (uint32_t)conf->limits.preroute_bytes,
        .max_chunk_size = (uint32_t)conf->limits.max_chunk_size,
        .max_message_size = (uint32_t)conf->limits.max_message_size,
        .max_amf_depth = (uint32_t)conf->limits.max_amf_depth,
        .max_amf_string = (uint32_t)conf->limits.max_amf_string,
    };
}

/* Session ticket keys: a new one now and then; the previous one still
 * opens tickets (lb/tls). */
static void on_tls_keys(uv_timer_t *t) { lb_tls_keys_rotate(); }

static int start_control(struct lb_server *srv)
{
    int rc;
    if ((rc = uv_loop_init(&srv->loop)) < 0)
        return rc;
    uv_signal_t *sigs[] = {&srv->sig_term, &srv->sig_int, &srv->sig_hup, &srv->sig_usr1,
                           &srv->sig_usr2};
    int nums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < 5; i++) {
        if ((rc = uv_signal_init(&srv->loop, sigs[i])) < 0)
            return rc;
        sigs[i]->data = srv;
        rc = uv_signal_start(sigs[i], i < 2 ? on_stop_signal : on_signal, nums[i]);
        if (rc < 0)
            return rc;
    }
    if ((rc = uv_async_init(&srv->loop, &srv->worker_done, on_worker_done)) < 0)
        return rc;
    if ((rc = uv_timer_init(&srv->loop, &srv->tls_keys)) < 0)
        return rc;
    uv_timer_start(&srv->tls_keys, on_tls_keys, LB_TLS_KEY_ROTATE_MS, LB_TLS_KEY_ROTATE_MS);
    uv_unref((uv_handle_t *)&srv->tls_keys);
    srv->worker_done.data = srv;
    if ((rc = lb_wreply_init(&srv->replies, &srv->loop)) < 0)
        return rc;
    srv->replies_open = true;
    srv->health = hc_engine_new(&srv->loop, srv->env.index);
    if (!srv->health)
        return UV_ENOMEM;
    hc_engine_apply(srv->health, srv->conf, srv->snap);
    char err[512];
    if (srv->ctl && srv->ctl->start(srv, err, sizeof(err)) < 0) {
        lb_log_msg(LB_LOG_ERROR, "admin", "admin.address %s: %s", srv->conf->admin.address.text,
                   err);
        return UV_EINVAL;
    }
    return 0;
}

static void free_wreq(struct lb_wreq *r)
{
    free(r->sessions);
    free(r);
}

/* Publisher takeover (lb/pubreg.h), from any worker: the holder's own
 * worker ends it on its loop. A holder is a live session, so its worker
 * still runs. */
static void kick_publisher(void *arg, unsigned worker, uint64_t id)
{
    struct lb_server *srv = arg;
    if (worker >= srv->n_workers)
        return;
    struct lb_wreq *r = calloc(1, sizeof(*r));
    if (!r) {
        lb_log_msg(LB_LOG_ERROR, "takeover", "out of memory: cannot end publish %llu",
                   (unsigned long long)id);
        return;
    }
    r->kind = LB_WREQ_TAKEOVER;
    r->pub_id = id;
    r->done = free_wreq;
    lb_worker_request(&srv->workers[worker], r);
}

static int start_workers(struct lb_server *srv)
{
    atomic_store(&srv->workers_running, srv->n_workers);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct lb_worker *w = &srv->workers[i];
        w->id = i;
        w->host.env = &srv->env;
        w->host.snap = ups_snapshot_ref(srv->snap);
        w->pipes_max = srv->pipes_per_worker;
        w->on_finished = worker_finished;
        w->replies = &srv->replies;
        w->finished_arg = srv;
        int rc = lb_worker_start(w);
        if (rc < 0) {
            lb_log_msg(LB_LOG_ERROR, "start", "worker %u: %s", i, uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* pid_file: written (temp file, rename) once this process serves, so after a
 * SIGUSR2 upgrade it names the new process; removed at exit only while it
 * still names this one. Failures are logged, never fatal. */
static char *pid_path;

static void pid_file_write(const char *path)
{
    char tmp[4096], text[32];
    int n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int len = snprintf(text, sizeof(text), "%d\n", (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp) || len < 0) {
        lb_log_msg(LB_LOG_ERROR, "pid_file", "%s: path too long", path);
        return;
    }
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (f) {
        ok = fputs(text, f) != EOF;
        ok = (fclose(f) == 0) && ok;
    }
    if (!ok || rename(tmp, path) != 0) {
        lb_log_msg(LB_LOG_ERROR, "pid_file", "%s: %s", path, strerror(errno));
        unlink(tmp);
        return;
    }
    pid_path = strdup(path);
}

static void pid_file_remove(void)
{
    if (!pid_path)
        return;
    char text[32] = "";
    FILE *f = fopen(pid_path, "r");
    if (f) {
        if (!fgets(text, sizeof(text), f))
            text[0] = '\0';
        fclose(f);
        if (atoi(text) == (int)getpid())
            unlink(pid_path);
    }
    free(pid_path);
    pid_path = NULL;
}

int lb_proc_run(const char *conf_path, struct conf *conf, const struct lb_control_ops *ctl)
{
    static struct lb_server srv; /* one per process; workers point into it */
    char err[512];

    memset(&srv, 0, sizeof(srv));
    srv.ctl = ctl;
    srv.conf_path = (char *)conf_path;
    srv.conf = conf;
    srv.retired_fd = -1;
    lb_log_configure((enum lb_log_level)conf->log.level,
                     conf->log.format == CONF_LOG_JSON ? LB_LOG_JSON : LB_LOG_TEXT);
    srv.access_fd = lb_proc_open_access_log(conf);
    if (srv.access_fd == -2) {
        conf_free(conf);
        return 1;
    }
    lb_log_set_access_fd(srv.access_fd);
    srv.n_workers = conf->workers ? (unsigned)conf->workers : uv_available_parallelism();
    if (srv.n_workers == 0)
        srv.n_workers = 1;
    srv.workers = calloc(srv.n_workers, sizeof(*srv.workers));
    srv.env.index = hc_index_new();
    srv.env.perip = lb_perip_new();
    srv.env.pubreg = lb_pubreg_new();
    if (srv.env.pubreg)
        lb_pubreg_set_kick(srv.env.pubreg, kick_publisher, &srv);
    srv.ovr = ups_ovr_new();
    srv.env.lstats = calloc(conf->n_listeners, sizeof(*srv.env.lstats));
    srv.env.n_lstats = conf->n_listeners;
    static const double preroute_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1,    2.5,   5, 10};
    lb_histo_init(&srv.env.preroute, preroute_bounds,
                  sizeof(preroute_bounds) / sizeof(preroute_bounds[0]));
    if (!srv.workers || !srv.env.index || !srv.env.perip || !srv.env.pubreg || !srv.ovr || !srv.env.lstats ||
        copy_listeners(&srv, conf) < 0) {
        lb_log_msg(LB_LOG_ERROR, "start", "out of memory");
        free_server(&srv);
        return 1;
    }
    plan_descriptors(&srv);
    lb_proc_apply_settings(&srv, conf);
    fixed_limits(&srv, conf);
    if (lb_proc_open_geo(conf, &srv.geo) < 0) {
        free_server(&srv);
        return 2;
    }
    if (lb_proc_open_tls(conf, &srv.tls, err, sizeof(err)) < 0) {
        free_server(&srv);
        return 2;
    }
    if (srv.tls) {
        /* kTLS would let both legs splice; tried once, and the path each
         * listener takes is logged. */
        bool k = lb_tls_ktls_probe(srv.ktls_why, sizeof(srv.ktls_why));
        lb_log_msg(LB_LOG_INFO, "ktls", "kTLS %s: %s", k ? "offered by the kernel (this build "
                   "still uses userspace TLS)" : "unavailable", srv.ktls_why);
    }
    if (conf->admin.state_file) {
        struct ups_msgs msgs = {0};
        ups_ovr_load(srv.ovr, conf->admin.state_file, &msgs);
        for (size_t i = 0; i < msgs.n; i++)
            lb_log_msg(LB_LOG_WARN, "state_file", "%s", msgs.msg[i]);
        ups_msgs_free(&msgs);
        if (srv.ovr->n_nodes || srv.ovr->n_routes)
            lb_log_msg(LB_LOG_INFO, "state_file", "%zu node and %zu route overrides from %s",
                       srv.ovr->n_nodes, srv.ovr->n_routes, conf->admin.state_file);
    }
    srv.snap = lb_proc_build(&srv, conf, srv.geo, srv.tls, err, sizeof(err));
    if (!srv.snap) {
        lb_log_msg(LB_LOG_ERROR, "start", "%s", err);
        free_server(&srv);
        return 1;
    }
    if (bind_listeners(&srv) < 0) {
        free_server(&srv);
        return 1;
    }
    /* From here on no worker or probe ever waits for the log's sink. */
    if (lb_log_start() < 0)
        lb_log_msg(LB_LOG_WARN, "start", "no log writer thread: log lines are written in place");
    int rc = start_control(&srv);
    if (rc < 0) {
        lb_log_msg(LB_LOG_ERROR, "start", "control loop: %s", uv_strerror(rc));
        exit(1);
    }
    if (start_workers(&srv) < 0)
        exit(1); /* threads may be running: nothing sane to unwind */
    lb_upgrade_close_unused();
    lb_log_msg(LB_LOG_INFO, "started",
               "rtmplb %s pid %d: %u workers, %zu listeners, %zu pools, %zu routes, "
               "max_sessions %u",
               RTMPLB_VERSION, (int)getpid(), srv.n_workers, conf->n_listeners, conf->n_pools,
               conf->n_routes, atomic_load(&srv.env.max_sessions));
    if (conf->pid_file)
        pid_file_write(conf->pid_file);
    lb_upgrade_ready();

    uv_run(&srv.loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < srv.n_workers; i++)
        uv_thread_join(&srv.workers[i].thread);
    uv_loop_close(&srv.loop);
    lb_log_msg(LB_LOG_INFO, "stopped",
               "pid %d: %llu sessions served, %llu refused", (int)getpid(),
               (unsigned long long)atomic_load(&srv.env.sessions_total),
               (unsigned long long)atomic_load(&srv.env.sessions_refused));
    pid_file_remove();
    lb_log_stop(2000); /* bounded: a stuck sink must not keep us from exiting */
    free_server(&srv);
    return 0;
}
