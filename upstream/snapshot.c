/* Building and releasing routing snapshots. */
#include "upstream/upstream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t next_generation = 1;

struct ups_node_live *ups_node_live_ref(struct ups_node_live *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

void ups_node_live_unref(struct ups_node_live *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1)
        free(l);
}

/* The node of prev with the same pool, name and address, if any. */
static struct ups_node_live *find_live(const struct ups_snapshot *prev, const char *pool,
                                       const struct conf_node *cn)
{
    if (!prev)
        return NULL;
    for (size_t p = 0; p < prev->n_pools; p++) {
        const struct ups_pool *pp = &prev->pools[p];
        if (strcmp(pp->name, pool) != 0)
            continue;
        for (size_t i = 0; i < pp->n_nodes; i++) {
            const struct ups_node *n = &pp->nodes[i];
            if (strcmp(n->name, cn->name) == 0 && n->addrlen == cn->address.len &&
                memcmp(&n->addr, &cn->address.ss, n->addrlen) == 0)
                return n->live;
        }
    }
    return NULL;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static char **dup_list(char *const *l, size_t n)
{
    char **out = n ? calloc(n, sizeof(char *)) : NULL;
    for (size_t i = 0; out && i < n; i++)
        out[i] = strdup(l[i]);
    return out;
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

static void free_snapshot(struct ups_snapshot *s)
{
    for (size_t r = 0; r < s->n_routes; r++) {
        struct ups_route *rt = &s->routes[r];
        if (rt->ops && rt->state)
            rt->ops->destroy(rt->state);
        free(rt->name);
        free(rt->listener);
        free(rt->app);
        free(rt->stream);
        free_list(rt->country, rt->n_country);
        free_list(rt->continent, rt->n_continent);
        for (size_t a = 0; rt->args && a < rt->n_args; a++) {
            free((char *)rt->args[a].key);
            free((char *)rt->args[a].value);
        }
        free(rt->args);
    }
    free(s->routes);
    if (s->geo && s->geo_release)
        s->geo_release(s->geo);
    if (s->tls && s->tls_release)
        s->tls_release(s->tls);
    for (size_t p = 0; p < s->n_pools; p++) {
        struct ups_pool *pool = &s->pools[p];
        for (size_t i = 0; i < pool->n_nodes; i++) {
            free(pool->nodes[i].name);
            free(pool->nodes[i].address_text);
            free(pool->nodes[i].http_address_text);
            ups_node_live_unref(pool->nodes[i].live);
        }
        free(pool->nodes);
        free(pool->name);
    }
    free(s->pools);
    free(s);
}

struct ups_snapshot *ups_snapshot_build(const struct conf *c, const struct ups_snapshot *prev,
                                        unsigned n_workers, char *err, size_t errlen)
{
    struct ups_snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    atomic_init(&s->refs, 1);
    s->generation = atomic_fetch_add(&next_generation, 1);
    s->n_workers = n_workers ? n_workers : 1;

    s->pools = calloc(c->n_pools, sizeof(*s->pools));
    if (!s->pools)
        goto oom;
    s->n_pools = c->n_pools;
    for (size_t p = 0; p < c->n_pools; p++) {
        const struct conf_pool *cp = &c->pools[p];
        struct ups_pool *pool = &s->pools[p];
        pool->name = strdup(cp->name);
        pool->nodes = calloc(cp->n_nodes, sizeof(*pool->nodes));
        if (!pool->name || !pool->nodes)
            goto oom;
        pool->n_nodes = cp->n_nodes;
        pool->ertmp = cp->ertmp;
        for (size_t i = 0; i < cp->n_nodes; i++) {
            const struct conf_node *cn = &cp->nodes[i];
            struct ups_node *n = &pool->nodes[i];
            n->name = strdup(cn->name);
            n->address_text = strdup(cn->address.text);
            memcpy(&n->addr, &cn->address.ss, cn->address.len);
            n->addrlen = cn->address.len;
            if (cn->http.present && cn->http.address.len) {
                n->http_address_text = strdup(cn->http.address.text);
                memcpy(&n->http_addr, &cn->http.address.ss, cn->http.address.len);
                n->http_addrlen = cn->http.address.len;
            }
            n->weight = (unsigned)cn->weight;
            n->backup = cn->backup;
            n->max_sessions = (unsigned)cn->max_sessions;
            n->max_dials = (unsigned)cn->max_dials;
            n->dial_queue = (unsigned)cn->dial_queue;
            n->send_proxy = cn->send_proxy;
            n->checked = cp->health.present;
            n->fall = (unsigned)cp->health.fall;
            n->slow_start_ms = (uint64_t)cp->slow_start_ms;
            if (cn->location.country)
                snprintf(n->country, sizeof(n->country), "%s", cn->location.country);
            if (!isnan(cn->location.lat) && !isnan(cn->location.lon)) {
                n->has_location = true;
                n->lat = cn->location.lat;
                n->lon = cn->location.lon;
            }
            n->index = i;
            n->pool = pool;
            struct ups_node_live *old = find_live(prev, cp->name, cn);
            n->live = old ? ups_node_live_ref(old) : calloc(1, sizeof(*n->live));
            if (!n->name || !n->address_text || !n->live)
                goto oom;
            if (!old)
                atomic_init(&n->live->refs, 1);
        }
    }

    s->routes = calloc(c->n_routes, sizeof(*s->routes));
    if (!s->routes)
        goto oom;
    s->n_routes = c->n_routes;
    for (size_t r = 0; r < c->n_routes; r++) {
        const struct conf_route *cr = &c->routes[r];
        struct ups_route *rt = &s->routes[r];
        rt->name = strdup(cr->name);
        rt->listener = dup_or_null(cr->match.listener);
        rt->role = cr->match.role;
        rt->app = dup_or_null(cr->match.app);
        rt->stream = dup_or_null(cr->match.stream);
        rt->policy = cr->policy;
        rt->country = dup_list(cr->match.country, cr->match.n_country);
        rt->n_country = rt->country ? cr->match.n_country : 0;
        rt->continent = dup_list(cr->match.continent, cr->match.n_continent);
        rt->n_continent = rt->continent ? cr->match.n_continent : 0;
        rt->route_on = cr->route_on;
        rt->publish_conflict = cr->publish_conflict;
        rt->require_live = cr->require_live;
        if (cr->match.n_args) {
            rt->args = calloc(cr->match.n_args, sizeof(*rt->args));
            if (!rt->args)
                goto oom;
            rt->n_args = cr->match.n_args;
            for (size_t a = 0; a < rt->n_args; a++) {
                rt->args[a].key = strdup(cr->match.args[2 * a]);
                rt->args[a].value = strdup(cr->match.args[2 * a + 1]);
                if (!rt->args[a].key || !rt->args[a].value)
                    goto oom;
            }
        }
        if (!rt->name || (cr->match.listener && !rt->listener) || (cr->match.app && !rt->app) ||
            (cr->match.stream && !rt->stream))
            goto oom;
        for (size_t p = 0; p < s->n_pools; p++)
            if (strcmp(s->pools[p].name, cr->pool) == 0)
                rt->pool = &s->pools[p];
        if (!rt->pool) {
            snprintf(err, errlen, "route \"%s\": unknown pool \"%s\"", cr->name, cr->pool);
            free_snapshot(s);
            return NULL;
        }
        rt->ops = ups_policy_find(cr->policy);
        if (!rt->ops) {
            snprintf(err, errlen, "route \"%s\": policy %d is not built in", cr->name, cr->policy);
            free_snapshot(s);
            return NULL;
        }
        rt->state = rt->ops->create(rt->pool, s->n_workers);
        if (!rt->state)
            goto oom;
    }
    return s;

oom:
    snprintf(err, errlen, "out of memory building the routing snapshot");
    if (s)
        free_snapshot(s);
    return NULL;
}

struct ups_snapshot *ups_snapshot_ref(struct ups_snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void ups_snapshot_unref(struct ups_snapshot *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        free_snapshot(s);
}

bool ups_node_has_room(const struct ups_node *n)
{
    return n->max_sessions == 0 || atomic_load(&n->live->sessions) < n->max_sessions;
}

bool ups_node_available(const struct ups_node *n)
{
    return atomic_load(&n->live->health) == UPS_UP &&
           atomic_load(&n->live->admin) == UPS_ENABLED && ups_node_has_room(n);
}

unsigned ups_effective_weight(const struct ups_node *n, uint64_t now_ms)
{
    uint64_t since = atomic_load(&n->live->up_since_ms);
    if (!n->slow_start_ms || !since || now_ms < since || now_ms - since >= n->slow_start_ms)
        return n->weight;
    double f = 0.1 + 0.9 * (double)(now_ms - since) / (double)n->slow_start_ms;
    unsigned w = (unsigned)((double)n->weight * f);
    return w ? w : 1;
}

bool ups_node_acquire(struct ups_node *n)
{
    unsigned old = atomic_fetch_add(&n->live->sessions, 1);
    if (n->max_sessions && old >= n->max_sessions) {
        atomic_fetch_sub(&n->live->sessions, 1);
        return false;
    }
    return true;
}

void ups_node_release(struct ups_node *n) { atomic_fetch_sub(&n->live->sessions, 1); }
