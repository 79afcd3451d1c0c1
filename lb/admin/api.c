/* The admin API on the control loop (api.h). Read views come from the
 * snapshot in force and the override layer; live sessions from the workers
 * by request/response (lb_worker_request), answered through a deferred
 * HTTP reply once every worker has answered. */
#include "lb/admin/api.h"
#include "lb/admin/api-int.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/hc.h"
#include "health/probe.h"
#include "health/streams.h"
#include "health/view.h"
#include "lb/admin/events.h"
#include "lb/admin/http.h"
#include "lb/admin/metrics.h"
#include "lb/admin/page.h"
#include "lb/admin/views.h"
#include "lb/log.h"
#include "lb/proc/proc.h"
#include "lb/proc/upgrade.h"
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>


static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_object *lb__admin_u64(uint64_t v) { return json_object_new_int64((int64_t)v); }

static void h_upstreams(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
    a->viewed_ms = uv_now(&a->srv->loop);
    lb_http_reply_json(res, 200,
                       lb_view_upstreams(a->srv->snap, a->srv->ovr, a->srv->conf,
                                         uv_now(&a->srv->loop)));
}

static void h_routes(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
    lb_http_reply_json(res, 200, lb_view_routes(a->srv->snap, a->srv->ovr, a->srv->conf));
}

static void h_overrides(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
    lb_http_reply_json(res, 200, ups_ovr_to_json(a->srv->ovr));
}

static void h_events(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    (void)ud;
    long long limit = lb__admin_query_uint(req, "limit", 100);
    long long since = lb__admin_query_uint(req, "since", 0);
    if (limit < 0 || since < 0) {
        lb_http_reply_error(res, 400, "limit and since are non-negative integers");
        return;
    }
    lb_http_reply_json(res, 200, lb_events_json((size_t)limit, (uint64_t)since));
}

/* ---- process --------------------------------------------------------------- */

/* FNV-1a 64 of the config file (read once per start and reload: the hash of
 * the file as it was when it was loaded, give or take an edit in between). */
static void hash_config(struct lb_admin *a)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    FILE *f = a->srv->conf_path ? fopen(a->srv->conf_path, "rb") : NULL;
    if (!f) {
        snprintf(a->conf_hash, sizeof(a->conf_hash), "unreadable");
        return;
    }
    unsigned char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 0x100000001b3ULL;
        }
    fclose(f);
    snprintf(a->conf_hash, sizeof(a->conf_hash), "%016llx", (unsigned long long)h);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

json_object *lb__admin_process_json(struct lb_admin *a)
{
    static const int policies[] = {CONF_POLICY_WEIGHTED, CONF_POLICY_LEAST_SESSIONS,
                                   CONF_POLICY_STREAM_AFFINITY, CONF_POLICY_STREAM_LOCATION,
                                   CONF_POLICY_GEO_NEAREST};
    struct lb_server *srv = a->srv;
    json_object *j = json_object_new_object();
    json_object_object_add(j, "version", json_object_new_string(RTMPLB_VERSION));
    json_object_object_add(j, "pid", json_object_new_int64(getpid()));
    json_object_object_add(j, "started_ms", json_object_new_int64(a->t_start_wall_ms));
    json_object_object_add(j, "uptime_ms", lb__admin_u64(uv_now(&srv->loop) - a->t_start_ms));
    json_object_object_add(j, "now_ms", json_object_new_int64(wall_ms()));
    json_object_object_add(j, "config_path",
                           srv->conf_path ? json_object_new_string(srv->conf_path) : NULL);
    json_object_object_add(j, "config_hash", json_object_new_string(a->conf_hash));
    json_object_object_add(j, "generation", lb__admin_u64(srv->snap->generation));
    json_object_object_add(j, "workers", lb__admin_u64(srv->n_workers));
    json_object *rl = json_object_new_object();
    json_object_object_add(rl, "ok", lb__admin_u64(atomic_load(&srv->reloads_ok)));
    json_object_object_add(rl, "failed", lb__admin_u64(atomic_load(&srv->reloads_failed)));
    json_object *last = NULL;
    if (srv->last_reload_ms) {
        last = json_object_new_object();
        json_object_object_add(last, "time_ms", json_object_new_int64(srv->last_reload_ms));
        json_object_object_add(last, "ok", json_object_new_boolean(srv->last_reload_ok));
        json_object_object_add(last, "error",
                               srv->last_reload_ok
                                   ? NULL
                                   : json_object_new_string(srv->last_reload_error));
    }
    json_object_object_add(rl, "last", last);
    json_object_object_add(j, "reload", rl);
    struct rlimit rl_nofile = {0};
    getrlimit(RLIMIT_NOFILE, &rl_nofile);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "open", json_object_new_int64(open_fds()));
    json_object_object_add(d, "limit", lb__admin_u64(rl_nofile.rlim_cur));
    json_object_object_add(d, "session_capacity", lb__admin_u64(srv->fd_capacity));
    json_object_object_add(d, "max_sessions", lb__admin_u64(atomic_load(&srv->env.max_sessions)));
    json_object_object_add(d, "pipes_per_worker", lb__admin_u64(srv->pipes_per_worker));
    json_object_object_add(j, "descriptors", d);
    json_object_object_add(j, "admin_connections", lb__admin_u64(lb_http_connections(a->http)));
    json_object *pl = json_object_new_array();
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
        json_object_array_add(pl, json_object_new_string(conf_policy_name(policies[i])));
    json_object_object_add(j, "policies", pl);
    return j;
}

static void h_process(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    (void)req;
    lb_http_reply_json(res, 200, lb__admin_process_json(ud));
}

/* Bitrates from the byte counters, every RATE_MS on the control loop, while
 * someone reads them (upstreams or the page in the last RATE_WATCH_MS): a
 * sample asks every worker for its sessions' bytes. */
#define RATE_MS 2000
#define RATE_WATCH_MS 30000
static void on_rate_timer(uv_timer_t *t)
{
    struct lb_admin *a = t->data;
    uint64_t now = uv_now(&a->srv->loop);
    if (!a->viewed_ms || now - a->viewed_ms > RATE_WATCH_MS || a->srv->stopping)
        return;
    lb__admin_sample_rates(a);
}

/* ---- status page ------------------------------------------------------------- */

void lb__admin_page_fill(struct lb_admin *a, struct lb_page_state *st)
{
    struct lb_server *srv = a->srv;
    st->upstreams = lb_view_upstreams(srv->snap, srv->ovr, srv->conf, uv_now(&srv->loop));
    st->routes = lb_view_routes(srv->snap, srv->ovr, srv->conf);
    st->process = lb__admin_process_json(a);
    st->events = lb_events_json(20, 0);
    st->now_ms = wall_ms();
}

static void page_headers(struct lb_http_response *res)
{
    lb_http_reply_header(res, "Cache-Control", "no-store");
    lb_http_reply_header(res, "X-Content-Type-Options", "nosniff");
    lb_http_reply_header(res, "Referrer-Policy", "no-referrer");
    lb_http_reply_header(res, "Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; style-src "
                         "'unsafe-inline'; connect-src 'self'; img-src data:; "
                         "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
}

void lb__admin_page_reply(struct lb_http_response *res, const struct lb_page_state *st)
{
    size_t len = 0;
    char *html = lb_page_render((const char *)lb_status_html, lb_status_html_len, st, 0, &len);
    if (!html) {
        lb_http_reply_error(res, 500, "out of memory");
        return;
    }
    lb_http_reply(res, 200, "text/html; charset=utf-8", html, len);
    free(html);
    page_headers(res);
}

static void h_page(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    a->viewed_ms = uv_now(&a->srv->loop);
    if (!req->may_read) {
        lb__admin_page_reply(res, NULL);
        return;
    }
    lb__admin_page_gather(a, res);
}

/* ---- locate ------------------------------------------------------------------ */

static const char *skip_reason(const struct ups_node *n, bool primary_chosen)
{
    if (atomic_load(&n->live->health) != UPS_UP)
        return "down";
    int adm = atomic_load(&n->live->admin);
    if (adm == UPS_DISABLED)
        return "disabled";
    if (adm == UPS_DRAINING)
        return "draining";
    if (!ups_node_has_room(n))
        return "full";
    if (n->backup && primary_chosen)
        return "backup";
    return "not_ranked";
}

/* http listeners: the file the URLs name (?format=flv, the default, or
 * m3u8); NULL: rtmp URLs. */
static const char *http_suffix(const struct lb_listener_spec *ls,
                               const struct lb_http_request *req)
{
    if (ls->mode != CONF_MODE_HTTP)
        return NULL;
    const char *f = lb_http_query(req, "format");
    return f && strcmp(f, "m3u8") == 0 ? "m3u8" : "flv";
}

/* The listener named, or the first rtmp one; NULL when none (answered 404). */
const struct lb_listener_spec *lb__admin_find_listener(struct lb_server *srv, const char *name,
                                                       const char *hint,
                                                       struct lb_http_response *res)
{
    for (size_t i = 0; i < srv->n_listeners; i++) {
        const struct lb_listener_spec *l = &srv->listeners[i];
        if (name ? strcmp(l->name, name) == 0 : l->mode == CONF_MODE_RTMP)
            return l;
    }
    if (name)
        lb_http_reply_error(res, 404, "no listener %s%s", name, hint ? hint : "");
    else
        lb_http_reply_error(res, 404, "no rtmp listener: name one with ?listener=");
    return NULL;
}

static void h_locate(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    struct lb_server *srv = a->srv;
    const struct ups_snapshot *snap = srv->snap;
    const char *app = lb_http_query(req, "app");
    const char *stream = lb_http_query(req, "stream");
    const char *role = lb_http_query(req, "role");
    const char *listener = lb_http_query(req, "listener");
    if (!app || !*app || !stream || !*stream) {
        lb_http_reply_error(res, 400, "app and stream are required");
        return;
    }
    int r = CONF_ROLE_PLAY;
    if (role && strcmp(role, "publish") == 0)
        r = CONF_ROLE_PUBLISH;
    else if (role && strcmp(role, "play") != 0) {
        lb_http_reply_error(res, 400, "role is publish or play");
        return;
    }
    const struct lb_listener_spec *ls = lb__admin_find_listener(srv, listener, NULL, res);
    if (!ls)
        return;
    listener = ls->name;
    struct ups_stream_view view = hc_index_view(srv->env.index);
    struct ups_request q = {
        .listener = listener,
        .role = r,
        .app = app,
        .stream = stream,
        .worker = srv->n_workers, /* the control thread's own policy row */
        .now_ms = uv_now(&srv->loop),
        .streams = &view,
        .country = lb_http_query(req, "country"),
        .continent = lb_http_query(req, "continent"),
        .http = ls->mode == CONF_MODE_HTTP,
    };
    const char *suffix = http_suffix(ls, req);
    struct ups_candidates c;
    const struct ups_route *route = ups_route_select(snap, &q, &c);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "app", json_object_new_string(app));
    json_object_object_add(root, "stream", json_object_new_string(stream));
    json_object_object_add(root, "role", json_object_new_string(r == CONF_ROLE_PUBLISH ? "publish"
                                                                                         : "play"));
    json_object_object_add(root, "listener", json_object_new_string(listener));
    if (!route) {
        json_object_object_add(root, "route", NULL);
        json_object_object_add(root, "url", NULL);
        json_object_object_add(root, "reason", json_object_new_string("no route matches"));
        lb_http_reply_json(res, 404, root);
        return;
    }
    json_object_object_add(root, "route", json_object_new_string(route->name));
    json_object_object_add(root, "pool", json_object_new_string(route->pool->name));
    json_object_object_add(root, "policy", json_object_new_string(conf_policy_name(route->policy)));
    const struct ups_route_override *ro = ups_ovr_find_route(srv->ovr, route->name);
    json_object_object_add(root, "route_overridden", json_object_new_boolean(ro != NULL));
    json_object *cands = json_object_new_array();
    for (size_t i = 0; i < c.n; i++) {
        const struct ups_node *n = c.node[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "node", json_object_new_string(n->name));
        json_object_object_add(j, "address", json_object_new_string(n->address_text));
        json_object_object_add(j, "backup", json_object_new_boolean(n->backup));
        json_object_array_add(cands, j);
    }
    json_object_object_add(root, "candidates", cands);
    json_object *skipped = json_object_new_array();
    for (size_t i = 0; i < route->pool->n_nodes; i++) {
        const struct ups_node *n = &route->pool->nodes[i];
        bool in = false;
        for (size_t k = 0; k < c.n; k++)
            in |= c.node[k] == n;
        if (in)
            continue;
        json_object *j = json_object_new_object();
        json_object_object_add(j, "node", json_object_new_string(n->name));
        json_object_object_add(j, "reason",
                               json_object_new_string(skip_reason(n, c.n_primary > 0)));
        json_object_array_add(skipped, j);
    }
    json_object_object_add(root, "skipped", skipped);
    if (c.n == 0) {
        json_object_object_add(root, "node", NULL);
        json_object_object_add(root, "url", NULL);
        json_object_object_add(root, "reason",
                               json_object_new_string(c.not_live
                                                          ? "the stream is live on no node "
                                                            "(the route requires it)"
                                                          : "no node of the pool can take it"));
        lb_http_reply_json(res, c.not_live ? 404 : 503, root);
        return;
    }
    char url[1024];
    if (suffix)
        snprintf(url, sizeof(url), "http://%s/%s/%s.%s", c.node[0]->http_address_text, app,
                 stream, suffix);
    else
        snprintf(url, sizeof(url), "%s://%s/%s/%s", c.node[0]->tls ? "rtmps" : "rtmp",
                 c.node[0]->address_text, app, stream);
    json_object_object_add(root, "node", json_object_new_string(c.node[0]->name));
    json_object_object_add(root, "url", json_object_new_string(url));
    lb_http_reply_json(res, 200, root);
}

/* ---- lines -------------------------------------------------------------------- */

/* The lines a viewer may switch between (a player's "swap line" button):
 * for the caller's own address (geo), every pool a play of app/stream may
 * reach, with the rtmp:// URL whose args select it. */
static void h_lines(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    struct lb_server *srv = a->srv;
    const char *app = lb_http_query(req, "app");
    const char *stream = lb_http_query(req, "stream");
    if (!app || !*app || !stream || !*stream) {
        lb_http_reply_error(res, 400, "app and stream are required");
        return;
    }
    if (strlen(app) >= 256 || strlen(stream) >= 256) {
        lb_http_reply_error(res, 400, "app and stream are at most 255 bytes");
        return;
    }
    const struct lb_listener_spec *ls =
        lb__admin_find_listener(srv, lb_http_query(req, "listener"), NULL, res);
    if (!ls)
        return;
    struct geo_info gi = {0};
    const struct geo_db *geo = srv->snap->geo;
    if (geo && req->peer)
        geo_lookup(geo, req->peer, &gi);
    char host[320];
    struct lb_lines_query q = {
        .listener = ls->name,
        .host = lb_view_url_host((const struct sockaddr *)&ls->addr, req->host, host,
                                 sizeof(host)),
        .app = app,
        .stream = stream,
        .country = gi.country,
        .continent = gi.continent,
        .http_suffix = http_suffix(ls, req),
        .tls = ls->tls,
    };
    lb_http_reply_json(res, 200, lb_view_lines(srv->snap, &q));
}

/* ---- mutations ---------------------------------------------------------------- */

static json_object *parse_body(const struct lb_http_request *req, struct lb_http_response *res)
{
    if (req->body_len == 0) {
        lb_http_reply_error(res, 400, "a JSON object body is required");
        return NULL;
    }
    /* Any Content-Type: `curl -d` sends a form type with JSON in it. */
    enum json_tokener_error jerr;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        lb_http_reply_error(res, 500, "out of memory");
        return NULL;
    }
    json_object *j = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
    jerr = json_tokener_get_error(tok);
    size_t used = tok->char_offset;
    json_tokener_free(tok);
    if (!j || jerr != json_tokener_success) {
        json_object_put(j);
        lb_http_reply_error(res, 400, "the body is not JSON: %s",
                            json_tokener_error_desc(jerr == json_tokener_success
                                                        ? json_tokener_error_parse_eof
                                                        : jerr));
        return NULL;
    }
    for (size_t i = used; i < req->body_len; i++)
        if (!strchr(" \t\r\n", req->body[i])) {
            json_object_put(j);
            lb_http_reply_error(res, 400, "the body is not JSON: trailing data");
            return NULL;
        }
    if (!json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        lb_http_reply_error(res, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static bool snap_has_node(const struct ups_snapshot *s, const char *pool, const char *node)
{
    for (size_t p = 0; p < s->n_pools; p++)
        if (strcmp(s->pools[p].name, pool) == 0)
            for (size_t i = 0; i < s->pools[p].n_nodes; i++)
                if (strcmp(s->pools[p].nodes[i].name, node) == 0)
                    return true;
    return false;
}

static json_object *node_override_json(const struct ups_overrides *o, const char *pool,
                                       const char *node)
{
    const struct ups_node_override *no = ups_ovr_find_node(o, pool, node);
    if (!no || (!no->has_weight && !no->has_state))
        return NULL;
    json_object *j = json_object_new_object();
    if (no->has_weight)
        json_object_object_add(j, "weight", lb__admin_u64(no->weight));
    if (no->has_state) {
        json_object_object_add(j, "state", json_object_new_string(ups_admin_name(no->state)));
        if (no->close_at_ms)
            json_object_object_add(j, "close_at_ms", json_object_new_int64(no->close_at_ms));
    }
    return j;
}

static void h_node(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    struct lb_server *srv = a->srv;
    const char *pool = lb_http_param(req, "pool"), *node = lb_http_param(req, "node");
    char err[512];
    if (!snap_has_node(srv->snap, pool, node)) {
        lb_http_reply_error(res, 404, "no node %s in pool %s", node, pool);
        return;
    }
    json_object *body = parse_body(req, res);
    if (!body)
        return;
    int64_t now = wall_ms();
    if (ups_ovr_patch_node(srv->ovr, srv->snap, pool, node, body, now, err, sizeof(err)) < 0) {
        json_object_put(body);
        lb_http_reply_error(res, 400, "%s", err);
        return;
    }
    json_object_put(body);
    if (lb_proc_apply_overrides(srv, err, sizeof(err)) < 0) {
        lb_http_reply_error(res, 500, "%s", err);
        return;
    }
    const struct ups_node_override *no = ups_ovr_find_node(srv->ovr, pool, node);
    const char *state = no && no->has_state ? ups_admin_name(no->state) : "enabled";
    char w[32] = "config";
    if (no && no->has_weight)
        snprintf(w, sizeof(w), "%u", no->weight);
    lb_log_msg(LB_LOG_INFO, "override", "pool=%s node=%s state=%s weight=%s close_at_ms=%lld",
               pool, node, state, w, (long long)(no && no->has_state ? no->close_at_ms : 0));
    lb_event_add("override", pool, node, "state %s, weight %s%s", state, w,
                 no && no->has_state && no->close_at_ms ? ", closing the rest at the deadline"
                                                        : "");
    if (no && no->has_state && no->state == UPS_DISABLED)
        lb__admin_close_node_sessions(srv, pool, node, LB_REASON_ADMIN_DISABLED);
    lb_admin_schedule_drains(srv);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "pool", json_object_new_string(pool));
    json_object_object_add(j, "node", json_object_new_string(node));
    json_object_object_add(j, "override", node_override_json(srv->ovr, pool, node));
    lb_http_reply_json(res, 200, j);
}

static void h_route(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    struct lb_server *srv = a->srv;
    const char *route = lb_http_param(req, "route");
    char err[512];
    bool known = false;
    for (size_t i = 0; i < srv->snap->n_routes; i++)
        known |= strcmp(srv->snap->routes[i].name, route) == 0;
    if (!known) {
        lb_http_reply_error(res, 404, "no route %s", route);
        return;
    }
    json_object *body = parse_body(req, res);
    if (!body)
        return;
    if (ups_ovr_patch_route(srv->ovr, srv->snap, route, body, err, sizeof(err)) < 0) {
        json_object_put(body);
        lb_http_reply_error(res, 400, "%s", err);
        return;
    }
    json_object_put(body);
    if (lb_proc_apply_overrides(srv, err, sizeof(err)) < 0) {
        lb_http_reply_error(res, 500, "%s", err);
        return;
    }
    const struct ups_route *r = NULL;
    for (size_t i = 0; i < srv->snap->n_routes; i++)
        if (strcmp(srv->snap->routes[i].name, route) == 0)
            r = &srv->snap->routes[i];
    lb_log_msg(LB_LOG_INFO, "override", "route=%s pool=%s policy=%s", route,
               r ? r->pool->name : "?", r ? conf_policy_name(r->policy) : "?");
    lb_event_add("override", NULL, NULL, "route %s: pool %s, policy %s", route,
                 r ? r->pool->name : "?", r ? conf_policy_name(r->policy) : "?");
    json_object *j = json_object_new_object();
    json_object_object_add(j, "route", json_object_new_string(route));
    json_object_object_add(j, "pool", r ? json_object_new_string(r->pool->name) : NULL);
    json_object_object_add(j, "policy",
                           r ? json_object_new_string(conf_policy_name(r->policy)) : NULL);
    json_object_object_add(j, "overridden",
                           json_object_new_boolean(ups_ovr_find_route(srv->ovr, route) != NULL));
    lb_http_reply_json(res, 200, j);
}

static void h_clear(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    char err[512];
    (void)req;
    size_t n = ups_ovr_clear_all(a->srv->ovr);
    if (lb_proc_apply_overrides(a->srv, err, sizeof(err)) < 0) {
        lb_http_reply_error(res, 500, "%s", err);
        return;
    }
    lb_log_msg(LB_LOG_INFO, "overrides_cleared", "cleared=%zu", n);
    lb_event_add("overrides_cleared", NULL, NULL, "%zu overrides cleared", n);
    lb_admin_schedule_drains(a->srv);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "cleared", lb__admin_u64(n));
    lb_http_reply_json(res, 200, j);
}

static void h_reload(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
    struct ups_msgs errs = {0};
    if (a->srv->stopping) {
        lb_http_reply_error(res, 503, "rtmplb is stopping");
        return;
    }
    int rc = lb_proc_reload(a->srv, &errs);
    json_object *j = json_object_new_object();
    if (rc < 0) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < errs.n; i++)
            json_object_array_add(arr, json_object_new_string(errs.msg[i]));
        char first[600];
        snprintf(first, sizeof(first), "reload refused: %s", errs.n ? errs.msg[0] : "error");
        json_object_object_add(j, "error", json_object_new_string(first));
        json_object_object_add(j, "errors", arr);
        ups_msgs_free(&errs);
        lb_http_reply_json(res, 422, j);
        return;
    }
    ups_msgs_free(&errs);
    json_object_object_add(j, "reloaded", json_object_new_boolean(true));
    json_object_object_add(j, "generation", lb__admin_u64(a->srv->snap->generation));
    lb_http_reply_json(res, 200, j);
}

/* ---- metrics ---------------------------------------------------------------------- */

/* Drain deadlines are wall-clock (they survive restarts in the state
 * file); the monotonic timer only says when to look again, and each
 * deadline's close runs once. */
static void on_drain_timer(uv_timer_t *t)
{
    struct lb_admin *a = t->data;
    struct lb_server *srv = a->srv;
    int64_t now = wall_ms();
    for (size_t i = 0; i < srv->ovr->n_nodes; i++) {
        struct ups_node_override *no = &srv->ovr->nodes[i];
        if (!no->has_state || no->state != UPS_DRAINING || !no->close_at_ms || no->close_done ||
            no->close_at_ms > now)
            continue;
        no->close_done = true;
        lb_log_msg(LB_LOG_INFO, "drain_deadline",
                   "pool=%s node=%s: closing the sessions still open", no->pool, no->node);
        lb_event_add("drain_deadline", no->pool, no->node, "drain deadline: closing what is left");
        lb__admin_close_node_sessions(srv, no->pool, no->node, LB_REASON_ADMIN_DRAINED);
    }
    lb_admin_schedule_drains(srv);
}

void lb_admin_schedule_drains(struct lb_server *srv)
{
    struct lb_admin *a = srv->admin;
    if (!a)
        return;
    int64_t next = 0;
    for (size_t i = 0; i < srv->ovr->n_nodes; i++) {
        const struct ups_node_override *no = &srv->ovr->nodes[i];
        if (!no->has_state || no->state != UPS_DRAINING || !no->close_at_ms || no->close_done)
            continue;
        if (!next || no->close_at_ms < next)
            next = no->close_at_ms;
    }
    uv_timer_stop(&a->drain_timer);
    if (!next)
        return;
    int64_t delay = next - wall_ms();
    /* Never 0 from the timer's own callback: 1 ms at least. */
    uv_timer_start(&a->drain_timer, on_drain_timer, delay > 0 ? (uint64_t)delay : 1, 0);
}

/* ---- server ---------------------------------------------------------------------------- */

static const struct lb_http_route routes[] = {
    {{"GET", "/"}, h_page, LB_HTTP_OPEN},
    {{"GET", "/api/v1/process"}, h_process, LB_HTTP_READ},
    {{"GET", "/api/v1/upstreams"}, h_upstreams, LB_HTTP_READ},
    {{"GET", "/api/v1/routes"}, h_routes, LB_HTTP_READ},
    {{"GET", "/api/v1/sessions"}, lb__admin_sessions, LB_HTTP_READ},
    {{"GET", "/api/v1/streams"}, lb__admin_streams, LB_HTTP_READ},
    {{"GET", "/api/v1/events"}, h_events, LB_HTTP_READ},
    {{"GET", "/api/v1/locate"}, h_locate, LB_HTTP_READ},
    {{"GET", "/api/v1/lines"}, h_lines, LB_HTTP_READ},
    {{"GET", "/api/v1/overrides"}, h_overrides, LB_HTTP_READ},
    {{"DELETE", "/api/v1/overrides"}, h_clear, LB_HTTP_WRITE},
    {{"POST", "/api/v1/pools/{pool}/nodes/{node}"}, h_node, LB_HTTP_WRITE},
    {{"POST", "/api/v1/routes/{route}"}, h_route, LB_HTTP_WRITE},
    {{"POST", "/api/v1/reload"}, h_reload, LB_HTTP_WRITE},
    {{"GET", "/metrics"}, lb__admin_metrics, LB_HTTP_READ},
    /* Stock origins and edges (COMPAT.md): open, ?secret= when configured. */
    {{"GET", "/nginx/on_play"}, lb__compat_on_play, LB_HTTP_OPEN},
    {{"POST", "/nginx/on_play"}, lb__compat_on_play, LB_HTTP_OPEN},
    {{"GET", "/nginx/on_publish"}, lb__compat_on_publish, LB_HTTP_OPEN},
    {{"POST", "/nginx/on_publish"}, lb__compat_on_publish, LB_HTTP_OPEN},
    {{"GET", "/oclp/v1/pull"}, lb__compat_oclp_pull, LB_HTTP_OPEN},
    {{"POST", "/api/v1/hooks/srs"}, lb__compat_srs_hook, LB_HTTP_OPEN},
};

int lb_admin_start(struct lb_server *srv, char *err, size_t errlen)
{
    const struct conf *c = srv->conf;
    char *token = NULL;
    if (!c->admin.present)
        return 0;
    if (conf_admin_token_load(c, &token, err, errlen) < 0)
        return -1;
    struct lb_admin *a = calloc(1, sizeof(*a));
    if (!a) {
        free(token);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->srv = srv;
    a->t_start_ms = uv_now(&srv->loop);
    a->t_start_wall_ms = wall_ms();
    hash_config(a);
    if (lb__compat_start(a, err, errlen) < 0) {
        free(token);
        free(a);
        return -1;
    }
    struct lb_http_config cfg = {
        .routes = routes,
        .n_routes = sizeof(routes) / sizeof(routes[0]),
        .ud = a,
        .token = token,
        .public_read = c->admin.public_read,
        /* After an upgrade: the old process's socket, already listening. */
        .listen_fd = lb_upgrade_take((const struct sockaddr *)&c->admin.address.ss,
                                     c->admin.address.len),
    };
    int rc = lb_http_start(&a->http, &srv->loop, (const struct sockaddr *)&c->admin.address.ss,
                           &cfg, err, errlen);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (rc < 0) {
        lb__compat_stop(a);
        free(a);
        return -1;
    }
    uv_timer_init(&srv->loop, &a->drain_timer);
    a->drain_timer.data = a;
    uv_timer_init(&srv->loop, &a->rate_timer);
    a->rate_timer.data = a;
    uv_timer_start(&a->rate_timer, on_rate_timer, RATE_MS, RATE_MS);
    srv->admin = a;
    lb_log_msg(LB_LOG_INFO, "admin", "admin API on %s (%s)", c->admin.address.text,
               c->admin.token_file ? "token from admin.token_file"
                                   : "no token: mutations are refused");
    lb_admin_schedule_drains(srv);
    return 0;
}

void lb_admin_reloaded(struct lb_server *srv, const char *token)
{
    struct lb_admin *a = srv->admin;
    if (!a)
        return;
    if (lb_http_set_auth(a->http, token, srv->conf->admin.public_read) < 0)
        lb_log_msg(LB_LOG_ERROR, "admin", "out of memory setting the new token");
    hash_config(a);
    lb__compat_reloaded(a);
    lb_admin_schedule_drains(srv);
}

static void admin_freed(uv_handle_t *h)
{
    struct lb_admin *a = h->data;
    if (++a->closed == 2)
        free(a);
}

void lb_admin_stop(struct lb_server *srv)
{
    struct lb_admin *a = srv->admin;
    if (!a)
        return;
    srv->admin = NULL;
    lb__compat_stop(a);
    lb_http_close(a->http, NULL, NULL);
    a->http = NULL;
    uv_close((uv_handle_t *)&a->drain_timer, admin_freed);
    uv_close((uv_handle_t *)&a->rate_timer, admin_freed);
}

static int admin_listen_fd(struct lb_server *srv)
{
    return srv->admin ? lb_http_listen_fd(srv->admin->http) : -1;
}

const struct lb_control_ops lb_admin_control = {
    .start = lb_admin_start,
    .reloaded = lb_admin_reloaded,
    .stop = lb_admin_stop,
    .listen_fd = admin_listen_fd,
};
