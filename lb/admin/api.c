/* The admin API on the control loop (api.h). Read views come from the
 * snapshot in force and the override layer; live sessions from the workers
 * by request/response (lb_worker_request), answered through a deferred
 * HTTP reply once every worker has answered. */
#include "lb/admin/api.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/hc.h"
#include "health/probe.h"
#include "health/streams.h"
#include "health/view.h"
#include "lb/admin/events.h"
#include "lb/admin/http.h"
#include "lb/admin/metrics.h"
#include "lb/admin/views.h"
#include "lb/log.h"
#include "lb/proc/proc.h"
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SESSIONS_DEFAULT_LIMIT 100
#define SESSIONS_MAX_LIMIT 10000

struct lb_admin {
    struct lb_server *srv;
    struct lb_http_server *http;
    uv_timer_t drain_timer;
    int64_t drains_done_ms; /* deadlines up to here have fired */
    uint64_t t_start_ms;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_object *u64(uint64_t v) { return json_object_new_int64((int64_t)v); }

/* ---- requests to the workers ---------------------------------------------- */

enum gather_what { G_SESSIONS, G_STREAMS };

struct gather {
    struct lb_server *srv;
    struct lb_http_deferred *d;
    int what;
    unsigned waiting;
    struct lb_wsession *all;
    size_t n, cap;
    /* sessions: filters and page */
    char node[160], stream[256], pool[128];
    size_t limit, offset;
};

static void gather_answer(struct gather *g);

static void gather_done(struct lb_wreq *r)
{
    struct gather *g = r->arg;
    if (r->n_sessions) {
        if (g->n + r->n_sessions > g->cap) {
            size_t cap = g->n + r->n_sessions;
            struct lb_wsession *a = realloc(g->all, cap * sizeof(*a));
            if (a) {
                g->all = a;
                g->cap = cap;
            }
        }
        if (g->n + r->n_sessions <= g->cap) {
            memcpy(g->all + g->n, r->sessions, r->n_sessions * sizeof(*r->sessions));
            g->n += r->n_sessions;
        }
    }
    free(r->sessions);
    free(r);
    if (--g->waiting == 0)
        gather_answer(g);
}

/* Asks every worker for its sessions; g is answered and freed once all did. */
static void gather_start(struct gather *g, struct lb_http_response *res)
{
    struct lb_server *srv = g->srv;
    if (srv->stopping) {
        lb_http_reply_error(res, 503, "rtmplb is stopping");
        free(g);
        return;
    }
    g->d = lb_http_defer(res);
    if (!g->d) {
        lb_http_reply_error(res, 500, "out of memory");
        free(g);
        return;
    }
    g->waiting = srv->n_workers;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct lb_wreq *r = calloc(1, sizeof(*r));
        if (!r) {
            if (--g->waiting == 0)
                gather_answer(g);
            continue;
        }
        r->kind = LB_WREQ_SESSIONS;
        r->done = gather_done;
        r->arg = g;
        lb_worker_request(&srv->workers[i], r);
    }
}

static void close_done(struct lb_wreq *r)
{
    if (r->closed)
        lb_log_msg(LB_LOG_INFO, "admin_close", "worker %u closed %u sessions of %s/%s (%s)",
                   r->worker, r->closed, r->pool, r->node,
                   lb_reason_name((enum lb_reason)r->reason));
    free(r);
}

/* Every worker ends the sessions on pool/node with reason, on its loop. */
static void close_node_sessions(struct lb_server *srv, const char *pool, const char *node,
                                enum lb_reason reason)
{
    for (unsigned i = 0; i < srv->n_workers && !srv->stopping; i++) {
        struct lb_wreq *r = calloc(1, sizeof(*r));
        if (!r)
            continue;
        r->kind = LB_WREQ_CLOSE_NODE;
        snprintf(r->pool, sizeof(r->pool), "%s", pool);
        snprintf(r->node, sizeof(r->node), "%s", node);
        r->reason = reason;
        r->done = close_done;
        lb_worker_request(&srv->workers[i], r);
    }
}

/* ---- sessions and streams ------------------------------------------------------ */

static json_object *session_json(const struct lb_wsession *s)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "client", json_object_new_string(s->client));
    json_object_object_add(j, "listener", json_object_new_string(s->listener));
    json_object_object_add(j, "role", json_object_new_string(s->role));
    json_object_object_add(j, "app", s->app[0] ? json_object_new_string(s->app) : NULL);
    json_object_object_add(j, "stream", s->stream[0] ? json_object_new_string(s->stream) : NULL);
    json_object_object_add(j, "route", s->route[0] ? json_object_new_string(s->route) : NULL);
    json_object_object_add(j, "pool", s->pool[0] ? json_object_new_string(s->pool) : NULL);
    json_object_object_add(j, "node", s->node[0] ? json_object_new_string(s->node) : NULL);
    json_object_object_add(j, "country",
                           s->country[0] ? json_object_new_string(s->country) : NULL);
    json_object_object_add(j, "state", json_object_new_string(s->state));
    json_object_object_add(j, "worker", u64(s->worker));
    json_object_object_add(j, "age_ms", u64(s->age_ms));
    json_object_object_add(j, "bytes_from_client", u64(s->bytes_in));
    json_object_object_add(j, "bytes_to_client", u64(s->bytes_out));
    return j;
}

static bool session_wanted(const struct gather *g, const struct lb_wsession *s)
{
    if (g->node[0]) {
        /* node=NAME or node=POOL/NAME */
        const char *slash = strchr(g->node, '/');
        if (slash) {
            size_t pl = (size_t)(slash - g->node);
            if (strlen(s->pool) != pl || strncmp(s->pool, g->node, pl) != 0 ||
                strcmp(s->node, slash + 1) != 0)
                return false;
        } else if (strcmp(s->node, g->node) != 0) {
            return false;
        }
    }
    if (g->pool[0] && strcmp(s->pool, g->pool) != 0)
        return false;
    if (g->stream[0]) {
        /* stream=NAME or stream=APP/NAME */
        const char *slash = strchr(g->stream, '/');
        if (slash) {
            size_t al = (size_t)(slash - g->stream);
            if (strlen(s->app) != al || strncmp(s->app, g->stream, al) != 0 ||
                strcmp(s->stream, slash + 1) != 0)
                return false;
        } else if (strcmp(s->stream, g->stream) != 0) {
            return false;
        }
    }
    return true;
}

static int by_age(const void *a, const void *b)
{
    const struct lb_wsession *x = a, *y = b;
    if (x->age_ms != y->age_ms)
        return x->age_ms < y->age_ms ? 1 : -1; /* oldest first */
    return strcmp(x->client, y->client);
}

struct stream_entry {
    char app[128], stream[256], pool[64], node[64];
    bool routed, stats;
    unsigned publishers, players, clients;
    uint64_t bw_in;
};

struct streams_acc {
    struct stream_entry *e;
    size_t n, cap;
};

static struct stream_entry *stream_slot(struct streams_acc *a, const char *app, const char *stream,
                                        const char *pool, const char *node)
{
    for (size_t i = 0; i < a->n; i++) {
        struct stream_entry *e = &a->e[i];
        if (!strcmp(e->app, app) && !strcmp(e->stream, stream) && !strcmp(e->pool, pool) &&
            !strcmp(e->node, node))
            return e;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct stream_entry *p = realloc(a->e, cap * sizeof(*p));
        if (!p)
            return NULL;
        a->e = p;
        a->cap = cap;
    }
    struct stream_entry *e = &a->e[a->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->app, sizeof(e->app), "%s", app);
    snprintf(e->stream, sizeof(e->stream), "%s", stream);
    snprintf(e->pool, sizeof(e->pool), "%s", pool);
    snprintf(e->node, sizeof(e->node), "%s", node);
    return e;
}

static void stats_stream(void *arg, const char *pool, const char *node, const struct hc_stream *s)
{
    struct streams_acc *a = arg;
    if (!s->publishing)
        return;
    struct stream_entry *e = stream_slot(a, s->app, s->name, pool, node);
    if (!e)
        return;
    e->stats = true;
    e->clients = s->clients;
    e->bw_in = s->bw_in;
}

static void streams_answer(struct gather *g, struct lb_http_response *res)
{
    struct streams_acc a = {0};
    for (size_t i = 0; i < g->n; i++) {
        const struct lb_wsession *s = &g->all[i];
        if (!s->node[0] || !s->app[0] || !s->stream[0] || strcmp(s->role, "tcp") == 0)
            continue;
        if (strcmp(s->state, "splicing") != 0 && strcmp(s->state, "connected") != 0)
            continue;
        bool pub = strcmp(s->role, "publish") == 0;
        struct stream_entry *e = stream_slot(&a, s->app, s->stream, s->pool, s->node);
        if (!e)
            continue;
        if (pub) {
            e->routed = true;
            e->publishers++;
        } else {
            e->players++;
        }
    }
    if (g->srv->health)
        hc_engine_each_stream(g->srv->health, stats_stream, &a);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < a.n; i++) {
        const struct stream_entry *e = &a.e[i];
        if (!e->routed && !e->stats)
            continue; /* only players through us: the stream's origin is not known */
        json_object *j = json_object_new_object(), *src = json_object_new_array();
        json_object_object_add(j, "app", json_object_new_string(e->app));
        json_object_object_add(j, "stream", json_object_new_string(e->stream));
        json_object_object_add(j, "pool", json_object_new_string(e->pool));
        json_object_object_add(j, "node", json_object_new_string(e->node));
        if (e->routed)
            json_object_array_add(src, json_object_new_string("routed"));
        if (e->stats)
            json_object_array_add(src, json_object_new_string("stats"));
        json_object_object_add(j, "sources", src);
        json_object_object_add(j, "publishers_here", u64(e->publishers));
        json_object_object_add(j, "players_here", u64(e->players));
        if (e->stats) {
            json_object_object_add(j, "clients", u64(e->clients));
            json_object_object_add(j, "bw_in", u64(e->bw_in));
        }
        json_object_array_add(arr, j);
    }
    free(a.e);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "streams", arr);
    lb_http_reply_json(res, 200, root);
}

static void gather_answer(struct gather *g)
{
    struct lb_http_response res;
    memset(&res, 0, sizeof(res));
    if (g->what == G_STREAMS) {
        streams_answer(g, &res);
    } else {
        qsort(g->all, g->n, sizeof(*g->all), by_age);
        json_object *arr = json_object_new_array();
        size_t total = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (!session_wanted(g, &g->all[i]))
                continue;
            if (total >= g->offset && total < g->offset + g->limit)
                json_object_array_add(arr, session_json(&g->all[i]));
            total++;
        }
        json_object *root = json_object_new_object();
        json_object_object_add(root, "total", u64(total));
        json_object_object_add(root, "offset", u64(g->offset));
        json_object_object_add(root, "limit", u64(g->limit));
        json_object_object_add(root, "sessions", arr);
        lb_http_reply_json(&res, 200, root);
    }
    lb_http_finish(g->d, &res);
    free(g->all);
    free(g);
}

/* A non-negative integer query value; -1 when malformed. */
static long long query_uint(const struct lb_http_request *req, const char *name, long long def)
{
    const char *v = lb_http_query(req, name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < 0)
        return -1;
    return n;
}

static bool query_copy(const struct lb_http_request *req, const char *name, char *out, size_t cap,
                       struct lb_http_response *res)
{
    const char *v = lb_http_query(req, name);
    if (!v) {
        out[0] = '\0';
        return true;
    }
    if (strlen(v) >= cap) {
        lb_http_reply_error(res, 400, "query %s is too long", name);
        return false;
    }
    snprintf(out, cap, "%s", v);
    return true;
}

static void h_sessions(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    long long limit = query_uint(req, "limit", SESSIONS_DEFAULT_LIMIT);
    long long offset = query_uint(req, "offset", 0);
    if (limit < 0 || offset < 0) {
        lb_http_reply_error(res, 400, "limit and offset are non-negative integers");
        return;
    }
    if (limit > SESSIONS_MAX_LIMIT)
        limit = SESSIONS_MAX_LIMIT;
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        lb_http_reply_error(res, 500, "out of memory");
        return;
    }
    g->srv = a->srv;
    g->what = G_SESSIONS;
    g->limit = (size_t)limit;
    g->offset = (size_t)offset;
    if (!query_copy(req, "node", g->node, sizeof(g->node), res) ||
        !query_copy(req, "stream", g->stream, sizeof(g->stream), res) ||
        !query_copy(req, "pool", g->pool, sizeof(g->pool), res)) {
        free(g);
        return;
    }
    gather_start(g, res);
}

static void h_streams(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        lb_http_reply_error(res, 500, "out of memory");
        return;
    }
    g->srv = a->srv;
    g->what = G_STREAMS;
    gather_start(g, res);
}

/* ---- read views ------------------------------------------------------------ */

static void h_upstreams(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    (void)req;
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
    long long limit = query_uint(req, "limit", 100);
    long long since = query_uint(req, "since", 0);
    if (limit < 0 || since < 0) {
        lb_http_reply_error(res, 400, "limit and since are non-negative integers");
        return;
    }
    lb_http_reply_json(res, 200, lb_events_json((size_t)limit, (uint64_t)since));
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

/* The listener named, or the first rtmp one; NULL when none (answered 404). */
static const struct lb_listener_spec *find_listener(struct lb_server *srv, const char *name,
                                                    struct lb_http_response *res)
{
    for (size_t i = 0; i < srv->n_listeners; i++) {
        const struct lb_listener_spec *l = &srv->listeners[i];
        if (name ? strcmp(l->name, name) == 0 : l->mode == CONF_MODE_RTMP)
            return l;
    }
    if (name)
        lb_http_reply_error(res, 404, "no listener %s", name);
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
    const struct lb_listener_spec *ls = find_listener(srv, listener, res);
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
    };
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
                               json_object_new_string("no node of the pool can take it"));
        lb_http_reply_json(res, 503, root);
        return;
    }
    char url[1024];
    snprintf(url, sizeof(url), "rtmp://%s/%s/%s", c.node[0]->address_text, app, stream);
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
    const struct lb_listener_spec *ls = find_listener(srv, lb_http_query(req, "listener"), res);
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
        json_object_object_add(j, "weight", u64(no->weight));
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
        close_node_sessions(srv, pool, node, LB_REASON_ADMIN_DISABLED);
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
    json_object_object_add(j, "cleared", u64(n));
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
    json_object_object_add(j, "generation", u64(a->srv->snap->generation));
    lb_http_reply_json(res, 200, j);
}

/* ---- metrics ---------------------------------------------------------------------- */

static void probe_sample(void *arg, const char *pool, const char *node, const uint64_t *results,
                         size_t n);

static void metrics_write(struct lb_admin *a, struct lb_metrics *m)
{
    struct lb_server *srv = a->srv;
    const struct ups_snapshot *s = srv->snap;
    uint64_t now = uv_now(&srv->loop);
    char ver[32];
    snprintf(ver, sizeof(ver), "%s", RTMPLB_VERSION);

    lb_metrics_family(m, "rtmplb_build_info", LB_METRIC_GAUGE, "Version of this rtmplb build.");
    struct lb_label bl[] = {{"version", ver}};
    lb_metrics_u64(m, bl, 1, 1);
    lb_metrics_family(m, "rtmplb_config_generation", LB_METRIC_GAUGE,
                      "Generation of the routing snapshot in force (grows on every reload or "
                      "override change).");
    lb_metrics_u64(m, NULL, 0, s->generation);
    lb_metrics_family(m, "rtmplb_uptime_seconds", LB_METRIC_GAUGE, "Seconds since start.");
    lb_metrics_double(m, NULL, 0, (double)(now - a->t_start_ms) / 1000.0);

#define NODE_FAMILY(fname, type, help, expr)                                               \
    lb_metrics_family(m, fname, type, help);                                               \
    for (size_t p = 0; p < s->n_pools; p++)                                                \
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {                                 \
            const struct ups_node *n = &s->pools[p].nodes[i];                              \
            struct lb_label l[] = {{"pool", s->pools[p].name}, {"node", n->name}};         \
            lb_metrics_u64(m, l, 2, (uint64_t)(expr));                                     \
        }
    NODE_FAMILY("rtmplb_node_up", LB_METRIC_GAUGE, "1 when health checks say the node is up.",
                atomic_load(&n->live->health) == UPS_UP)
    lb_metrics_family(m, "rtmplb_node_admin_state", LB_METRIC_GAUGE,
                      "The operator's state of the node (1 for the state in force).");
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {
            const struct ups_node *n = &s->pools[p].nodes[i];
            int adm = atomic_load(&n->live->admin);
            for (int st = UPS_ENABLED; st <= UPS_DISABLED; st++) {
                struct lb_label l[] = {{"pool", s->pools[p].name},
                                       {"node", n->name},
                                       {"state", ups_admin_name(st)}};
                lb_metrics_u64(m, l, 3, adm == st);
            }
        }
    NODE_FAMILY("rtmplb_node_weight", LB_METRIC_GAUGE, "Weight in force (overrides included).",
                n->weight)
    NODE_FAMILY("rtmplb_node_effective_weight", LB_METRIC_GAUGE,
                "Weight now, during slow start less than the weight.",
                ups_effective_weight(n, now))
    NODE_FAMILY("rtmplb_node_sessions", LB_METRIC_GAUGE, "Live sessions on the node.",
                atomic_load(&n->live->sessions))
    NODE_FAMILY("rtmplb_node_sessions_total", LB_METRIC_COUNTER,
                "Sessions that reached the node.", atomic_load(&n->live->sessions_total))
    NODE_FAMILY("rtmplb_node_bytes_from_client_total", LB_METRIC_COUNTER,
                "Bytes clients sent to the node (ended sessions).",
                atomic_load(&n->live->bytes_from_client))
    NODE_FAMILY("rtmplb_node_bytes_to_client_total", LB_METRIC_COUNTER,
                "Bytes the node sent to clients (ended sessions).",
                atomic_load(&n->live->bytes_to_client))
    NODE_FAMILY("rtmplb_node_dial_failures_total", LB_METRIC_COUNTER,
                "Dials to the node that failed.", atomic_load(&n->live->dial_failures))
    NODE_FAMILY("rtmplb_node_passive_failures", LB_METRIC_GAUGE,
                "Consecutive sessions that failed to reach the node now.",
                atomic_load(&n->live->passive_fails))
    NODE_FAMILY("rtmplb_node_stats_clients", LB_METRIC_GAUGE,
                "Clients the node's own stats report.", atomic_load(&n->live->stats_clients))
#undef NODE_FAMILY

    static const char *const roles[] = {"tcp", "publish", "play"};
    lb_metrics_family(m, "rtmplb_route_sessions_total", LB_METRIC_COUNTER,
                      "Sessions routed by the route, by role.");
    for (size_t i = 0; i < srv->n_route_stats; i++)
        for (int r = 0; r < 3; r++) {
            struct lb_label l[] = {{"route", srv->route_stats[i].name}, {"role", roles[r]}};
            lb_metrics_u64(m, l, 2, atomic_load(&srv->route_stats[i].by_role[r]));
        }
    lb_metrics_family(m, "rtmplb_route_info", LB_METRIC_GAUGE,
                      "The pool and policy each route uses now (1).");
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct ups_route *r = &s->routes[i];
        struct lb_label l[] = {{"route", r->name},
                               {"pool", r->pool->name},
                               {"policy", conf_policy_name(r->policy)}};
        lb_metrics_u64(m, l, 3, 1);
    }

    lb_metrics_family(m, "rtmplb_listener_accepted_total", LB_METRIC_COUNTER,
                      "Connections accepted, by listener.");
    for (size_t i = 0; i < srv->env.n_lstats; i++) {
        struct lb_label l[] = {{"listener", srv->listeners[i].name}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.lstats[i].accepted));
    }
    lb_metrics_family(m, "rtmplb_listener_refused_total", LB_METRIC_COUNTER,
                      "Connections refused at accept (max_sessions, out of descriptors).");
    for (size_t i = 0; i < srv->env.n_lstats; i++) {
        struct lb_label l[] = {{"listener", srv->listeners[i].name}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.lstats[i].refused));
    }

    lb_metrics_family(m, "rtmplb_sessions", LB_METRIC_GAUGE, "Live sessions, all listeners.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.sessions));
    lb_metrics_family(m, "rtmplb_sessions_total", LB_METRIC_COUNTER, "Sessions accepted.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.sessions_total));
    lb_metrics_family(m, "rtmplb_session_ends_total", LB_METRIC_COUNTER,
                      "Sessions ended, by reason (the access log's reason=).");
    for (int r = 1; r < LB_REASON__COUNT; r++) {
        struct lb_label l[] = {{"reason", lb_reason_name((enum lb_reason)r)}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.ends[r]));
    }
    lb_metrics_family(m, "rtmplb_preroute_seconds", LB_METRIC_HISTOGRAM,
                      "Time from accept to the routing decision.");
    lb_metrics_histo(m, NULL, 0, &srv->env.preroute);

    lb_metrics_family(m, "rtmplb_pipes_created_total", LB_METRIC_COUNTER,
                      "Kernel pipes created for splice.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.pipes_created));
    lb_metrics_family(m, "rtmplb_pipes_in_use", LB_METRIC_GAUGE,
                      "Pipes lent to sessions with bytes in flight now.");
    uint64_t in_use = 0;
    for (unsigned i = 0; i < srv->n_workers; i++)
        in_use += atomic_load_explicit(&srv->workers[i].host.pipes.in_use, memory_order_relaxed);
    lb_metrics_u64(m, NULL, 0, in_use);
    lb_metrics_family(m, "rtmplb_pipe_fallbacks_total", LB_METRIC_COUNTER,
                      "Transfers copied through user space for want of a pipe.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.pipe_fallbacks));
    lb_metrics_family(m, "rtmplb_max_sessions", LB_METRIC_GAUGE,
                      "Sessions allowed now (limits.max_sessions capped by descriptors).");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.max_sessions));
    lb_metrics_family(m, "rtmplb_fd_session_capacity", LB_METRIC_GAUGE,
                      "Sessions the open-file limit leaves room for.");
    lb_metrics_u64(m, NULL, 0, srv->fd_capacity);
    lb_metrics_family(m, "rtmplb_fd_pipes_per_worker", LB_METRIC_GAUGE,
                      "Pipes each worker may hold.");
    lb_metrics_u64(m, NULL, 0, srv->pipes_per_worker);

    lb_metrics_family(m, "rtmplb_reloads_total", LB_METRIC_COUNTER, "Reloads, by result.");
    struct lb_label ok[] = {{"result", "ok"}}, bad[] = {{"result", "failed"}};
    lb_metrics_u64(m, ok, 1, atomic_load(&srv->reloads_ok));
    lb_metrics_u64(m, bad, 1, atomic_load(&srv->reloads_failed));

    size_t on = 0, or = 0;
    for (size_t i = 0; i < srv->ovr->n_nodes; i++)
        on += srv->ovr->nodes[i].has_weight + srv->ovr->nodes[i].has_state;
    for (size_t i = 0; i < srv->ovr->n_routes; i++)
        or += (srv->ovr->routes[i].pool != NULL) + srv->ovr->routes[i].has_policy;
    lb_metrics_family(m, "rtmplb_overrides", LB_METRIC_GAUGE,
                      "Runtime overrides in force, by kind.");
    struct lb_label kn[] = {{"kind", "node"}}, kr[] = {{"kind", "route"}};
    lb_metrics_u64(m, kn, 1, on);
    lb_metrics_u64(m, kr, 1, or);
    if (srv->health) {
        lb_metrics_family(m, "rtmplb_probe_results_total", LB_METRIC_COUNTER,
                          "Active health probes, by result (the layer that failed).");
        hc_engine_each_probe(srv->health, probe_sample, m);
        lb_metrics_family(m, "rtmplb_probe_duration_seconds", LB_METRIC_HISTOGRAM,
                          "Time an active health probe took.");
        lb_metrics_histo(m, NULL, 0, hc_engine_latency(srv->health));
    }
    lb_metrics_family(m, "rtmplb_admin_connections", LB_METRIC_GAUGE,
                      "Open admin HTTP connections.");
    lb_metrics_u64(m, NULL, 0, a->http ? lb_http_connections(a->http) : 0);
}

static void probe_sample(void *arg, const char *pool, const char *node, const uint64_t *results,
                         size_t n)
{
    struct lb_metrics *m = arg;
    for (size_t r = 0; r < n; r++) {
        struct lb_label l[] = {
            {"pool", pool}, {"node", node}, {"result", hc_result_name((enum hc_result)r)}};
        lb_metrics_u64(m, l, 3, results[r]);
    }
}

static void h_metrics(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_metrics m;
    (void)req;
    lb_metrics_init(&m);
    metrics_write(ud, &m);
    if (m.failed) {
        lb_http_reply_error(res, 500, "metrics: %s", m.why ? m.why : "out of memory");
    } else {
        lb_http_reply(res, 200, "text/plain; version=0.0.4; charset=utf-8", m.buf, m.len);
    }
    lb_metrics_free(&m);
}

/* ---- drain deadlines ------------------------------------------------------------- */

static void on_drain_timer(uv_timer_t *t)
{
    struct lb_admin *a = t->data;
    struct lb_server *srv = a->srv;
    int64_t now = wall_ms();
    for (size_t i = 0; i < srv->ovr->n_nodes; i++) {
        const struct ups_node_override *no = &srv->ovr->nodes[i];
        if (!no->has_state || no->state != UPS_DRAINING || !no->close_at_ms)
            continue;
        if (no->close_at_ms <= a->drains_done_ms || no->close_at_ms > now)
            continue;
        lb_log_msg(LB_LOG_INFO, "drain_deadline",
                   "pool=%s node=%s: closing the sessions still open", no->pool, no->node);
        lb_event_add("drain_deadline", no->pool, no->node, "drain deadline: closing what is left");
        close_node_sessions(srv, no->pool, no->node, LB_REASON_ADMIN_DRAINED);
    }
    a->drains_done_ms = now;
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
        if (!no->has_state || no->state != UPS_DRAINING || no->close_at_ms <= a->drains_done_ms)
            continue;
        if (!next || no->close_at_ms < next)
            next = no->close_at_ms;
    }
    uv_timer_stop(&a->drain_timer);
    if (!next)
        return;
    int64_t delay = next - wall_ms();
    uv_timer_start(&a->drain_timer, on_drain_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* ---- server ---------------------------------------------------------------------------- */

static const struct lb_http_route routes[] = {
    {{"GET", "/api/v1/upstreams"}, h_upstreams, false},
    {{"GET", "/api/v1/routes"}, h_routes, false},
    {{"GET", "/api/v1/sessions"}, h_sessions, false},
    {{"GET", "/api/v1/streams"}, h_streams, false},
    {{"GET", "/api/v1/events"}, h_events, false},
    {{"GET", "/api/v1/locate"}, h_locate, false},
    {{"GET", "/api/v1/lines"}, h_lines, false},
    {{"GET", "/api/v1/overrides"}, h_overrides, false},
    {{"DELETE", "/api/v1/overrides"}, h_clear, true},
    {{"POST", "/api/v1/pools/{pool}/nodes/{node}"}, h_node, true},
    {{"POST", "/api/v1/routes/{route}"}, h_route, true},
    {{"POST", "/api/v1/reload"}, h_reload, true},
    {{"GET", "/metrics"}, h_metrics, false},
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
    a->drains_done_ms = wall_ms();
    struct lb_http_config cfg = {
        .routes = routes,
        .n_routes = sizeof(routes) / sizeof(routes[0]),
        .ud = a,
        .token = token,
        .public_read = c->admin.public_read,
    };
    int rc = lb_http_start(&a->http, &srv->loop, (const struct sockaddr *)&c->admin.address.ss,
                           &cfg, err, errlen);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
    if (rc < 0) {
        free(a);
        return -1;
    }
    uv_timer_init(&srv->loop, &a->drain_timer);
    a->drain_timer.data = a;
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
    lb_admin_schedule_drains(srv);
}

static void admin_freed(uv_handle_t *h) { free(h->data); }

void lb_admin_stop(struct lb_server *srv)
{
    struct lb_admin *a = srv->admin;
    if (!a)
        return;
    srv->admin = NULL;
    lb_http_close(a->http, NULL, NULL);
    a->http = NULL;
    uv_close((uv_handle_t *)&a->drain_timer, admin_freed);
}

const struct lb_control_ops lb_admin_control = {
    .start = lb_admin_start,
    .reloaded = lb_admin_reloaded,
    .stop = lb_admin_stop,
};
