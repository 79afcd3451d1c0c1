/* Configuration at run time: settings, the access log, the geo database,
 * and reload, which is all-or-nothing: everything the new file needs is
 * opened and built first, and only then is anything switched. */
#include "lb/proc/proc.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/probe.h"
#include "lb/log.h"
#include "lb/worker/worker.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void apply_log_settings(const struct conf *c)
{
    lb_log_configure((enum lb_log_level)c->log.level,
                     c->log.format == CONF_LOG_JSON ? LB_LOG_JSON : LB_LOG_TEXT);
}

int lb_proc_open_access_log(const struct conf *c)
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

/* Swaps the access log without closing a descriptor a worker may be
 * writing to: a file replaces a file in place (dup2, atomic); any other
 * change retires the old descriptor, closed at the next swap. */
static void swap_access_log(struct lb_server *srv, int fd)
{
    if (fd > 2 && srv->access_fd > 2) {
        dup2(fd, srv->access_fd);
        close(fd);
        return;
    }
    lb_log_set_access_fd(fd);
    if (srv->retired_fd > 2)
        close(srv->retired_fd);
    srv->retired_fd = srv->access_fd > 2 ? srv->access_fd : -1;
    srv->access_fd = fd;
}

void lb_proc_reopen_logs(struct lb_server *srv)
{
    int fd = lb_proc_open_access_log(srv->conf);
    if (fd == -2)
        return; /* logged; the old file stays */
    if (fd > 2)
        swap_access_log(srv, fd);
    lb_log_msg(LB_LOG_INFO, "logs_reopened", "access log %s", srv->conf->log.access_log);
}

void lb_proc_apply_settings(struct lb_server *srv, const struct conf *c)
{
    struct lb_env *env = &srv->env;
    atomic_store(&env->connect_ms, c->timeouts.connect_ms);
    atomic_store(&env->handshake_ms, c->timeouts.handshake_ms);
    atomic_store(&env->idle_ms, c->timeouts.idle_ms);
    atomic_store(&env->half_close_ms, c->timeouts.half_close_ms);
    atomic_store(&env->drain_ms, c->timeouts.drain_ms);
    unsigned max = (unsigned)c->limits.max_sessions;
    if (srv->fd_capacity && max > srv->fd_capacity)
        max = srv->fd_capacity;
    atomic_store(&env->max_sessions, max);
}

/* ---- geo ---------------------------------------------------------------- */

static void release_geo(void *db) { geo_unref(db); }

int lb_proc_open_geo(const struct conf *c, struct geo_db **out)
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
void lb_proc_attach_geo(struct ups_snapshot *snap, struct geo_db *db)
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

/* ---- reload ---------------------------------------------------------------- */

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

static void refused(const char *what)
{
    lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s; keeping the running configuration", what);
}

void lb_proc_reload(struct lb_server *srv)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = true};
    char err[256];

    struct conf *c = conf_load_file(srv->conf_path, &opts, &errs);
    if (!c) {
        for (size_t i = 0; i < errs.n; i++)
            lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s", errs.msg[i]);
        refused("the file is invalid");
        conf_errors_free(&errs);
        return;
    }
    /* Open and build everything first ... */
    struct geo_db *geo;
    if (lb_proc_open_geo(c, &geo) < 0) {
        refused("the geo database cannot be opened");
        conf_free(c);
        return;
    }
    int afd = lb_proc_open_access_log(c);
    if (afd == -2) {
        refused("the access log cannot be opened");
        geo_unref(geo);
        conf_free(c);
        return;
    }
    struct ups_snapshot *snap = ups_snapshot_build(c, srv->snap, srv->n_workers, err, sizeof(err));
    if (!snap) {
        refused(err);
        if (afd > 2)
            close(afd);
        geo_unref(geo);
        conf_free(c);
        return;
    }
    /* ... then switch. */
    if (!same_listeners(srv, c))
        lb_log_msg(LB_LOG_WARN, "reload",
                   "listener changes need a restart; keeping the current listeners");
    lb_proc_attach_geo(snap, geo);
    geo_unref(srv->geo);
    srv->geo = geo;
    if (srv->health)
        hc_engine_apply(srv->health, c, snap);
    if (afd > 2 || afd != srv->access_fd)
        swap_access_log(srv, afd);
    apply_log_settings(c);
    lb_proc_apply_settings(srv, c);
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_publish_snapshot(&srv->workers[i], snap);
    ups_snapshot_unref(srv->snap);
    srv->snap = snap;
    conf_free(srv->conf);
    srv->conf = c;
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_INFO, "reloaded");
    lb_log_str(&l, "file", srv->conf_path);
    lb_log_u64(&l, "generation", snap->generation);
    lb_log_u64(&l, "pools", c->n_pools);
    lb_log_u64(&l, "routes", c->n_routes);
    lb_log_end(&l);
}
