/* The admin API, what only the workers know: live sessions and the
 * streams they routed, gathered by request/response from every worker and
 * answered through a deferred HTTP reply; closing a node's sessions. */
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
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESSIONS_DEFAULT_LIMIT 100
#define SESSIONS_MAX_LIMIT 10000

/* ---- requests to the workers ---------------------------------------------- */

enum gather_what { G_SESSIONS, G_STREAMS, G_PAGE, G_RATES };

#define PAGE_SESSIONS 50

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
        if (res)
            lb_http_reply_error(res, 503, "rtmplb is stopping");
        free(g);
        return;
    }
    if (res) {
        g->d = lb_http_defer(res);
        if (!g->d) {
            lb_http_reply_error(res, 500, "out of memory");
            free(g);
            return;
        }
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
void lb__admin_close_node_sessions(struct lb_server *srv, const char *pool, const char *node,
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
    json_object_object_add(j, "worker", lb__admin_u64(s->worker));
    json_object_object_add(j, "age_ms", lb__admin_u64(s->age_ms));
    json_object_object_add(j, "bytes_from_client", lb__admin_u64(s->bytes_in));
    json_object_object_add(j, "bytes_to_client", lb__admin_u64(s->bytes_out));
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
    bool routed, stats, hook;
    unsigned publishers, players, clients;
    uint64_t bw_in;
};

struct streams_acc {
    struct stream_entry *e;
    size_t n, cap;
    /* Open-addressing index over e (entry index + 1; 0 empty), 2 * cap
     * slots: thousands of streams (stats, hooks) must not cost n^2
     * compares on the control thread. */
    size_t *idx;
};

static size_t key_hash(const char *app, const char *stream, const char *pool, const char *node)
{
    const char *part[4] = {app, stream, pool, node};
    const size_t cap[4] = {sizeof(((struct stream_entry *)0)->app),
                           sizeof(((struct stream_entry *)0)->stream),
                           sizeof(((struct stream_entry *)0)->pool),
                           sizeof(((struct stream_entry *)0)->node)};
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int k = 0; k < 4; k++) {
        /* as stored: a field keeps at most cap - 1 bytes */
        for (size_t i = 0; part[k][i] && i < cap[k] - 1; i++)
            h = (h ^ (unsigned char)part[k][i]) * 0x100000001b3ULL;
        h = (h ^ 0xffu) * 0x100000001b3ULL;
    }
    return (size_t)h;
}

static struct stream_entry *stream_slot(struct streams_acc *a, const char *app, const char *stream,
                                        const char *pool, const char *node)
{
    size_t h = key_hash(app, stream, pool, node);
    for (size_t i = a->idx ? h & (2 * a->cap - 1) : 0; a->idx && a->idx[i];
         i = (i + 1) & (2 * a->cap - 1)) {
        struct stream_entry *e = &a->e[a->idx[i] - 1];
        if (!strcmp(e->app, app) && !strcmp(e->stream, stream) && !strcmp(e->pool, pool) &&
            !strcmp(e->node, node))
            return e;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64; /* a power of two: the index masks */
        struct stream_entry *p = realloc(a->e, cap * sizeof(*p));
        if (!p)
            return NULL;
        a->e = p;
        size_t *idx = calloc(2 * cap, sizeof(*idx));
        if (!idx)
            return NULL; /* a->cap unchanged: the old index still fits */
        free(a->idx);
        a->idx = idx;
        a->cap = cap;
        for (size_t k = 0; k < a->n; k++) {
            const struct stream_entry *o = &a->e[k];
            size_t j = key_hash(o->app, o->stream, o->pool, o->node) & (2 * cap - 1);
            while (idx[j])
                j = (j + 1) & (2 * cap - 1);
            idx[j] = k + 1;
        }
    }
    struct stream_entry *e = &a->e[a->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->app, sizeof(e->app), "%s", app);
    snprintf(e->stream, sizeof(e->stream), "%s", stream);
    snprintf(e->pool, sizeof(e->pool), "%s", pool);
    snprintf(e->node, sizeof(e->node), "%s", node);
    size_t j = key_hash(e->app, e->stream, e->pool, e->node) & (2 * a->cap - 1);
    while (a->idx[j])
        j = (j + 1) & (2 * a->cap - 1);
    a->idx[j] = a->n;
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

static void hook_stream(void *arg, const char *pool, const char *node, const char *app,
                        const char *stream, uint64_t expires_in_ms)
{
    struct stream_entry *e = stream_slot(arg, app, stream, pool, node);
    (void)expires_in_ms;
    if (e)
        e->hook = true;
}

static json_object *streams_json(struct gather *g)
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
    hc_index_each_hook(g->srv->env.index, hook_stream, &a);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < a.n; i++) {
        const struct stream_entry *e = &a.e[i];
        if (!e->routed && !e->stats && !e->hook)
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
        if (e->hook)
            json_object_array_add(src, json_object_new_string("hook"));
        json_object_object_add(j, "sources", src);
        json_object_object_add(j, "publishers_here", lb__admin_u64(e->publishers));
        json_object_object_add(j, "players_here", lb__admin_u64(e->players));
        if (e->stats) {
            json_object_object_add(j, "clients", lb__admin_u64(e->clients));
            json_object_object_add(j, "bw_in", lb__admin_u64(e->bw_in));
        }
        json_object_array_add(arr, j);
    }
    free(a.e);
    free(a.idx);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "streams", arr);
    return root;
}

static json_object *sessions_json(struct gather *g);

static void rates_answer(struct gather *g);

static void gather_answer(struct gather *g)
{
    struct lb_http_response res;
    memset(&res, 0, sizeof(res));
    if (g->what == G_RATES) {
        rates_answer(g);
        free(g->all);
        free(g);
        return;
    }
    if (g->what == G_STREAMS) {
        lb_http_reply_json(&res, 200, streams_json(g));
    } else if (g->what == G_PAGE) {
        struct lb_page_state st = {0};
        if (g->srv->admin)
            lb__admin_page_fill(g->srv->admin, &st);
        st.streams = streams_json(g);
        st.sessions = sessions_json(g);
        lb__admin_page_reply(&res, &st);
        json_object_put(st.upstreams);
        json_object_put(st.routes);
        json_object_put(st.process);
        json_object_put(st.events);
        json_object_put(st.streams);
        json_object_put(st.sessions);
    } else {
        lb_http_reply_json(&res, 200, sessions_json(g));
    }
    lb_http_finish(g->d, &res);
    free(g->all);
    free(g);
}

/* One page of the sessions wanted, oldest first. */
static json_object *sessions_json(struct gather *g)
{
    if (g->n) /* qsort(NULL, 0) is undefined */
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
    json_object_object_add(root, "total", lb__admin_u64(total));
    json_object_object_add(root, "offset", lb__admin_u64(g->offset));
    json_object_object_add(root, "limit", lb__admin_u64(g->limit));
    json_object_object_add(root, "sessions", arr);
    return root;
}

/* A non-negative integer query value; -1 when malformed. */
long long lb__admin_query_uint(const struct lb_http_request *req, const char *name, long long def)
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

bool lb__admin_query_copy(const struct lb_http_request *req, const char *name, char *out, size_t cap,
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

void lb__admin_sessions(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    long long limit = lb__admin_query_uint(req, "limit", SESSIONS_DEFAULT_LIMIT);
    long long offset = lb__admin_query_uint(req, "offset", 0);
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
    if (!lb__admin_query_copy(req, "node", g->node, sizeof(g->node), res) ||
        !lb__admin_query_copy(req, "stream", g->stream, sizeof(g->stream), res) ||
        !lb__admin_query_copy(req, "pool", g->pool, sizeof(g->pool), res)) {
        free(g);
        return;
    }
    gather_start(g, res);
}

void lb__admin_streams(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
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

void lb__admin_page_gather(struct lb_admin *a, struct lb_http_response *res)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) {
        lb_http_reply_error(res, 500, "out of memory");
        return;
    }
    g->srv = a->srv;
    g->what = G_PAGE;
    g->limit = PAGE_SESSIONS;
    gather_start(g, res);
}

/* ---- bitrates ---------------------------------------------------------------- */

/* A node's bytes so far: those of its closed sessions (its counters, added
 * at close) and those of its live ones (from the workers). The rate is the
 * difference from the last sample; a session closing between a worker's
 * answer and this read may be counted twice once (a spike, never < 0). */
static void rates_answer(struct gather *g)
{
    struct lb_server *srv = g->srv;
    const struct ups_snapshot *s = srv->snap;
    uint64_t now = uv_now(&srv->loop);
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {
            const struct ups_node *n = &s->pools[p].nodes[i];
            struct ups_node_live *l = n->live;
            uint64_t in = atomic_load(&l->bytes_from_client);
            uint64_t out = atomic_load(&l->bytes_to_client);
            for (size_t k = 0; k < g->n; k++) {
                const struct lb_wsession *w = &g->all[k];
                if (strcmp(w->node, n->name) == 0 && strcmp(w->pool, s->pools[p].name) == 0) {
                    in += w->bytes_in;
                    out += w->bytes_out;
                }
            }
            if (l->rate_at_ms && now > l->rate_at_ms) {
                uint64_t dt = now - l->rate_at_ms;
                atomic_store(&l->bps_from_client,
                             in > l->rate_in ? (in - l->rate_in) * 8000 / dt : 0);
                atomic_store(&l->bps_to_client,
                             out > l->rate_out ? (out - l->rate_out) * 8000 / dt : 0);
            }
            l->rate_in = in;
            l->rate_out = out;
            l->rate_at_ms = now ? now : 1;
        }
}

void lb__admin_sample_rates(struct lb_admin *a)
{
    struct gather *g = calloc(1, sizeof(*g));
    if (!g)
        return;
    g->srv = a->srv;
    g->what = G_RATES;
    gather_start(g, NULL);
}
