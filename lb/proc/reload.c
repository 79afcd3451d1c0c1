/* Configuration at run time: settings, the access log, the geo database,
 * and reload, which is all-or-nothing: everything the new file needs is
 * opened and built first, and only then is anything switched. */
#include "lb/proc/proc.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/passive.h"
#include "health/probe.h"
#include "health/streams.h"
#include "lb/admin/events.h"
#include "lb/log.h"
#include "lb/tls/tls.h"
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
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
    atomic_store(&env->takeover_ms, c->timeouts.takeover_ms);
    atomic_store(&env->drain_ms, c->timeouts.drain_ms);
    atomic_store(&env->upgrade_drain_ms, c->timeouts.upgrade_drain_ms);
    unsigned max = (unsigned)c->limits.max_sessions;
    if (srv->fd_capacity && max > srv->fd_capacity)
        max = srv->fd_capacity;
    atomic_store(&env->max_sessions, max);
    atomic_store(&env->max_sessions_per_ip, (unsigned)c->limits.max_sessions_per_ip);
    atomic_store(&env->max_handshakes_per_ip, (unsigned)c->limits.max_handshakes_per_ip);
    atomic_store(&env->max_early_dials, (unsigned)c->limits.max_early_dials);
    /* A reload keeps the listeners (same_listeners): index i is the same. */
    for (size_t i = 0; i < env->n_lstats && i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        bool set = l->mode == CONF_MODE_RTMP || l->coalesce_mark.line != 0;
        atomic_store(&env->lstats[i].coalesce_ms, set ? (int32_t)l->coalesce_ms : 0);
        atomic_store(&env->lstats[i].early_dial, l->mode == CONF_MODE_RTMP && l->early_dial);
    }
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

static void release_tls(void *tls) { lb_tls_set_unref(tls); }

int lb_proc_open_tls(const struct conf *c, struct lb_tls_set **out, char *err, size_t errlen)
{
    struct lb_tls_msgs msgs = {0};
    *out = lb_tls_set_build(c, (int64_t)time(NULL), &msgs);
    err[0] = '\0';
    for (size_t i = 0; i < msgs.n; i++) {
        lb_log_msg(msgs.warn[i] ? LB_LOG_WARN : LB_LOG_ERROR, "tls", "%s", msgs.msg[i]);
        if (!msgs.warn[i] && !err[0])
            snprintf(err, errlen, "%s", msgs.msg[i]);
    }
    int rc = msgs.errors ? -1 : 0;
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "%s: the TLS contexts cannot be built", c->path);
    lb_tls_msgs_free(&msgs);
    return rc;
}

/* The snapshot holds the TLS contexts for the sessions that use them; each
 * RTMPS node points at its client context. */
static void attach_tls(struct ups_snapshot *snap, struct lb_tls_set *tls)
{
    if (!tls)
        return;
    snap->tls = lb_tls_set_ref(tls);
    snap->tls_release = release_tls;
    for (size_t p = 0; p < snap->n_pools; p++)
        for (size_t i = 0; i < snap->pools[p].n_nodes; i++) {
            struct ups_node *n = &snap->pools[p].nodes[i];
            n->tls = lb_tls_set_node(tls, snap->pools[p].name, n->name);
        }
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

/* An http listener's settings are fixed for the process, like its address. */
static bool same_http(const struct lb_http_opts *o, const struct conf_listener *cl)
{
    const char *app = cl->http.app;
    if (o->trust_xff != cl->http.trust_x_forwarded_for ||
        o->add_forwarded != cl->http.add_forwarded ||
        o->max_header != (uint32_t)cl->http.max_header ||
        o->keepalive_ms != (uint64_t)cl->http.keepalive_ms || o->n_paths != cl->http.n_paths ||
        (o->app == NULL) != (app == NULL) || (app && strcmp(o->app, app) != 0))
        return false;
    for (size_t k = 0; k < o->n_paths; k++)
        if (strcmp(o->paths[k], cl->http.paths[k]) != 0)
            return false;
    return true;
}

static bool same_listeners(const struct lb_server *srv, const struct conf *c)
{
    if (c->n_listeners != srv->n_listeners)
        return false;
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct lb_listener_spec *l = &srv->listeners[i];
        const struct conf_listener *cl = &c->listeners[i];
        if (strcmp(l->name, cl->name) != 0 || l->mode != cl->mode ||
            l->proxy_protocol != cl->proxy_protocol || l->tls != cl->tls.present ||
            l->addrlen != cl->address.len ||
            memcmp(&l->addr, &cl->address.ss, l->addrlen) != 0 || !same_http(&l->http, cl))
            return false;
    }
    return true;
}

/* ---- snapshots: config + overrides ---------------------------------------- */

static _Atomic uint64_t *route_counters(struct lb_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_route_stats; i++)
        if (strcmp(srv->route_stats[i].name, name) == 0)
            return srv->route_stats[i].by_role;
    if (srv->n_route_stats >= LB_MAX_ROUTE_STATS || strlen(name) >= 64)
        return NULL;
    struct lb_route_stat *rs = &srv->route_stats[srv->n_route_stats++];
    snprintf(rs->name, sizeof(rs->name), "%s", name);
    return rs->by_role;
}

static void log_msgs(struct ups_msgs *m, const char *event)
{
    for (size_t i = 0; i < m->n; i++)
        lb_log_msg(LB_LOG_WARN, event, "%s", m->msg[i]);
    ups_msgs_free(m);
}

void lb_proc_save_overrides(struct lb_server *srv)
{
    char err[512];
    const char *path = srv->conf->admin.state_file;
    if (!path || !srv->ovr)
        return;
    if (ups_ovr_save(srv->ovr, path, err, sizeof(err)) < 0)
        lb_log_msg(LB_LOG_ERROR, "state_file", "cannot save overrides to %s: %s", path, err);
}

struct ups_snapshot *lb_proc_build(struct lb_server *srv, const struct conf *c,
                                   struct geo_db *geo, struct lb_tls_set *tls, char *err,
                                   size_t errlen)
{
    /* One policy row more than workers: the control thread's (locate). */
    struct ups_snapshot *snap = ups_snapshot_build(c, srv->snap, srv->n_workers + 1, err, errlen);
    if (!snap)
        return NULL;
    lb_proc_attach_geo(snap, geo);
    attach_tls(snap, tls);
    for (size_t i = 0; i < snap->n_routes; i++)
        snap->routes[i].role_sessions = route_counters(srv, snap->routes[i].name);
    if (srv->ovr) {
        struct ups_msgs msgs = {0};
        uint64_t before = srv->ovr->changes;
        if (ups_ovr_apply(srv->ovr, snap, &msgs) < 0) {
            ups_msgs_free(&msgs);
            ups_snapshot_unref(snap);
            snprintf(err, errlen, "out of memory applying the overrides");
            return NULL;
        }
        for (size_t i = 0; i < msgs.n; i++)
            lb_event_add("override", NULL, NULL, "%s", msgs.msg[i]);
        log_msgs(&msgs, "override_discarded");
        if (srv->ovr->changes != before)
            lb_proc_save_overrides(srv);
    }
    return snap;
}

static void publish(struct lb_server *srv, struct ups_snapshot *snap)
{
    for (unsigned i = 0; i < srv->n_workers; i++)
        lb_worker_publish_snapshot(&srv->workers[i], snap);
    ups_snapshot_unref(srv->snap);
    srv->snap = snap;
}

int lb_proc_apply_overrides(struct lb_server *srv, char *err, size_t errlen)
{
    struct ups_snapshot *snap = lb_proc_build(srv, srv->conf, srv->geo, srv->tls, err, errlen);
    if (!snap)
        return -1;
    publish(srv, snap);
    lb_proc_save_overrides(srv);
    return 0;
}

/* ---- reload ---------------------------------------------------------------- */

static void add_msg(struct ups_msgs *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_msg(struct ups_msgs *m, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    if (!m)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (m->n >= UPS_MSGS_MAX) {
        m->dropped++;
        return;
    }
    m->msg[m->n] = strdup(buf);
    if (m->msg[m->n])
        m->n++;
}

static int refused(struct lb_server *srv, struct ups_msgs *errs, const char *what)
{
    lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s; keeping the running configuration", what);
    add_msg(errs, "%s", what);
    atomic_fetch_add(&srv->reloads_failed, 1);
    srv->last_reload_ms = hc_wall_ms();
    srv->last_reload_ok = false;
    snprintf(srv->last_reload_error, sizeof(srv->last_reload_error), "%s", what);
    lb_event_add("reload_failed", NULL, NULL, "%s", what);
    return -1;
}

static const struct ups_node *find_node(const struct ups_snapshot *s, const char *pool,
                                        const char *node)
{
    for (size_t p = 0; p < s->n_pools; p++) {
        if (strcmp(s->pools[p].name, pool) != 0)
            continue;
        for (size_t i = 0; i < s->pools[p].n_nodes; i++)
            if (strcmp(s->pools[p].nodes[i].name, node) == 0)
                return &s->pools[p].nodes[i];
    }
    return NULL;
}

static const struct ups_route *find_route(const struct ups_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_routes; i++)
        if (strcmp(s->routes[i].name, name) == 0)
            return &s->routes[i];
    return NULL;
}

/* Logs what a reload changed; clears the stream index of removed nodes. */
static void log_changes(struct lb_server *srv, const struct ups_snapshot *old,
                        const struct ups_snapshot *now)
{
    unsigned added = 0, removed = 0, reweighted = 0, routes = 0, left = 0;
    for (size_t p = 0; p < now->n_pools; p++)
        for (size_t i = 0; i < now->pools[p].n_nodes; i++) {
            const struct ups_node *n = &now->pools[p].nodes[i];
            const struct ups_node *o = find_node(old, now->pools[p].name, n->name);
            if (!o || o->live != n->live) {
                added++;
                lb_log_msg(LB_LOG_INFO, "reload_node_added", "pool=%s node=%s address=%s",
                           now->pools[p].name, n->name, n->address_text);
            } else if (o->weight != n->weight) {
                reweighted++;
                lb_log_msg(LB_LOG_INFO, "reload_node_reweighted", "pool=%s node=%s weight=%u->%u",
                           now->pools[p].name, n->name, o->weight, n->weight);
            }
        }
    for (size_t p = 0; p < old->n_pools; p++)
        for (size_t i = 0; i < old->pools[p].n_nodes; i++) {
            const struct ups_node *o = &old->pools[p].nodes[i];
            const struct ups_node *n = find_node(now, old->pools[p].name, o->name);
            if (n && n->live == o->live)
                continue;
            removed++;
            unsigned live = atomic_load(&o->live->sessions);
            left += live;
            if (!n) {
                hc_index_clear_node(srv->env.index, old->pools[p].name, o->name);
                hc_index_clear_hooks(srv->env.index, old->pools[p].name, o->name);
            }
            lb_log_msg(LB_LOG_INFO, "reload_node_removed",
                       "pool=%s node=%s address=%s live_sessions=%u", old->pools[p].name, o->name,
                       o->address_text, live);
        }
    for (size_t i = 0; i < now->n_routes; i++) {
        const struct ups_route *r = &now->routes[i];
        const struct ups_route *o = find_route(old, r->name);
        if (!o || strcmp(o->pool->name, r->pool->name) != 0 || o->policy != r->policy ||
            i >= old->n_routes || strcmp(old->routes[i].name, r->name) != 0) {
            routes++;
            lb_log_msg(LB_LOG_INFO, "reload_route_changed", "route=%s pool=%s policy=%s%s",
                       r->name, r->pool->name, conf_policy_name(r->policy), o ? "" : " (new)");
        }
    }
    for (size_t i = 0; i < old->n_routes; i++)
        if (!find_route(now, old->routes[i].name)) {
            routes++;
            lb_log_msg(LB_LOG_INFO, "reload_route_changed", "route=%s removed",
                       old->routes[i].name);
        }
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_INFO, "reload_changes");
    lb_log_u64(&l, "nodes_added", added);
    lb_log_u64(&l, "nodes_removed", removed);
    lb_log_u64(&l, "nodes_reweighted", reweighted);
    lb_log_u64(&l, "routes_changed", routes);
    lb_log_u64(&l, "sessions_on_removed_nodes", left);
    lb_log_end(&l);
    lb_event_add("reload", NULL, NULL,
                 "generation %llu: %u nodes added, %u removed, %u reweighted, %u routes changed, "
                 "%u live sessions stay on removed nodes",
                 (unsigned long long)now->generation, added, removed, reweighted, routes, left);
}

int lb_proc_reload(struct lb_server *srv, struct ups_msgs *errs)
{
    struct conf_errors cerrs;
    struct conf_load_opts opts = {.resolve_names = true};
    char err[512];

    struct conf *c = conf_load_file(srv->conf_path, &opts, &cerrs);
    if (!c) {
        for (size_t i = 0; i < cerrs.n; i++) {
            lb_log_msg(LB_LOG_ERROR, "reload_failed", "%s", cerrs.msg[i]);
            add_msg(errs, "%s", cerrs.msg[i]);
        }
        char what[300];
        snprintf(what, sizeof(what), "the file is invalid%s%s", cerrs.n ? ": " : "",
                 cerrs.n ? cerrs.msg[0] : "");
        conf_errors_free(&cerrs);
        refused(srv, NULL, what);
        return -1;
    }
    /* Open and build everything first ... */
    struct geo_db *geo;
    if (lb_proc_open_geo(c, &geo) < 0) {
        snprintf(err, sizeof(err), "%s:%u:%u: geo.database: cannot be opened", c->path,
                 c->geo.database_mark.line, c->geo.database_mark.col);
        conf_free(c);
        return refused(srv, errs, err);
    }
    int afd = lb_proc_open_access_log(c);
    if (afd == -2) {
        snprintf(err, sizeof(err), "log.access_log: %s cannot be opened: %s", c->log.access_log,
                 strerror(errno));
        geo_unref(geo);
        conf_free(c);
        return refused(srv, errs, err);
    }
    char *token = NULL;
    if (c->admin.present && conf_admin_token_load(c, &token, err, sizeof(err)) < 0) {
        if (afd > 2)
            close(afd);
        geo_unref(geo);
        conf_free(c);
        return refused(srv, errs, err);
    }
    /* Checked here so a bad hooks secret refuses the whole reload; the
     * admin server reads it again once the reload is in (lb_admin_reloaded). */
    char *hsecret = NULL;
    if (c->admin.present && conf_admin_hooks_secret_load(c, &hsecret, err, sizeof(err)) < 0) {
        free(token);
        if (afd > 2)
            close(afd);
        geo_unref(geo);
        conf_free(c);
        return refused(srv, errs, err);
    }
    if (hsecret) {
        memset(hsecret, 0, strlen(hsecret));
        free(hsecret);
    }
    /* Certificates are re-read; a listener cannot start or stop TLS
     * without a restart (its sockets are fixed). */
    struct lb_tls_set *tls = NULL;
    for (size_t i = 0; i < c->n_listeners && i < srv->n_listeners; i++)
        if (c->listeners[i].tls.present != srv->listeners[i].tls) {
            snprintf(err, sizeof(err), "%s:%u:%u: listeners[%zu].tls: turning TLS %s on a "
                     "listener needs a restart", c->path, c->listeners[i].mark.line,
                     c->listeners[i].mark.col, i, srv->listeners[i].tls ? "off" : "on");
            free(token);
            if (afd > 2)
                close(afd);
            geo_unref(geo);
            conf_free(c);
            return refused(srv, errs, err);
        }
    struct ups_snapshot *snap = NULL;
    if (lb_proc_open_tls(c, &tls, err, sizeof(err)) == 0)
        snap = lb_proc_build(srv, c, geo, tls, err, sizeof(err));
    if (!snap) {
        lb_tls_set_unref(tls);
        free(token);
        if (afd > 2)
            close(afd);
        geo_unref(geo);
        conf_free(c);
        return refused(srv, errs, err);
    }
    /* ... then switch. */
    if (!same_listeners(srv, c))
        lb_log_msg(LB_LOG_WARN, "reload",
                   "listener changes (incl. http settings) need a restart; keeping the current listeners");
    geo_unref(srv->geo);
    srv->geo = geo;
    lb_tls_set_unref(srv->tls); /* live sessions keep theirs through their snapshot */
    srv->tls = tls;
    if (srv->health)
        hc_engine_apply(srv->health, c, snap);
    if (afd > 2 || afd != srv->access_fd)
        swap_access_log(srv, afd);
    apply_log_settings(c);
    lb_proc_apply_settings(srv, c);
    log_changes(srv, srv->snap, snap);
    publish(srv, snap);
    conf_free(srv->conf);
    srv->conf = c;
    if (srv->ctl)
        srv->ctl->reloaded(srv, token);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    atomic_fetch_add(&srv->reloads_ok, 1);
    srv->last_reload_ms = hc_wall_ms();
    srv->last_reload_ok = true;
    srv->last_reload_error[0] = '\0';
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_INFO, "reloaded");
    lb_log_str(&l, "file", srv->conf_path);
    lb_log_u64(&l, "generation", snap->generation);
    lb_log_u64(&l, "pools", c->n_pools);
    lb_log_u64(&l, "routes", c->n_routes);
    lb_log_end(&l);
    return 0;
}
