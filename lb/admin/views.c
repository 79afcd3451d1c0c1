/* Admin read views (views.h). */
#include "lb/admin/views.h"

#include "conf/conf.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <string.h>

static json_object *u64(uint64_t v) { return json_object_new_int64((int64_t)v); }

static const struct conf_node *conf_node_of(const struct conf *c, const char *pool,
                                            const char *node)
{
    const struct conf_pool *p = c ? conf_find_pool(c, pool) : NULL;
    for (size_t i = 0; p && i < p->n_nodes; i++)
        if (strcmp(p->nodes[i].name, node) == 0)
            return &p->nodes[i];
    return NULL;
}

static const struct conf_route *conf_route_of(const struct conf *c, const char *route)
{
    for (size_t i = 0; c && i < c->n_routes; i++)
        if (strcmp(c->routes[i].name, route) == 0)
            return &c->routes[i];
    return NULL;
}

static json_object *node_view(const struct ups_pool *pool, const struct ups_node *n,
                              const struct ups_overrides *o, const struct conf *c,
                              uint64_t now_ms)
{
    const struct ups_node_live *l = n->live;
    json_object *j = json_object_new_object();
    json_object_object_add(j, "name", json_object_new_string(n->name));
    json_object_object_add(j, "address", json_object_new_string(n->address_text));
    json_object_object_add(
        j, "state", json_object_new_string(atomic_load(&l->health) == UPS_UP ? "up" : "down"));
    json_object_object_add(j, "admin",
                           json_object_new_string(ups_admin_name(atomic_load(&l->admin))));
    json_object_object_add(j, "weight", u64(n->weight));
    json_object_object_add(j, "effective_weight", u64(ups_effective_weight(n, now_ms)));
    const struct conf_node *cn = conf_node_of(c, pool->name, n->name);
    if (cn)
        json_object_object_add(j, "config_weight", json_object_new_int64(cn->weight));
    json_object_object_add(j, "backup", json_object_new_boolean(n->backup));
    json_object_object_add(j, "max_sessions", u64(n->max_sessions));
    json_object_object_add(j, "sessions", u64(atomic_load(&l->sessions)));
    json_object_object_add(j, "sessions_total", u64(atomic_load(&l->sessions_total)));
    json_object_object_add(j, "bytes_from_client", u64(atomic_load(&l->bytes_from_client)));
    json_object_object_add(j, "bytes_to_client", u64(atomic_load(&l->bytes_to_client)));
    json_object_object_add(j, "dial_failures", u64(atomic_load(&l->dial_failures)));
    json_object_object_add(j, "passive_failures", u64(atomic_load(&l->passive_fails)));

    const struct ups_node_override *no = o ? ups_ovr_find_node(o, pool->name, n->name) : NULL;
    json_object *marks = json_object_new_array(), *ov = NULL;
    if (no) {
        ov = json_object_new_object();
        if (no->has_weight) {
            json_object_array_add(marks, json_object_new_string("weight"));
            json_object_object_add(ov, "weight", u64(no->weight));
        }
        if (no->has_state) {
            json_object_array_add(marks, json_object_new_string("state"));
            json_object_object_add(ov, "state", json_object_new_string(ups_admin_name(no->state)));
            if (no->close_at_ms)
                json_object_object_add(ov, "close_at_ms", json_object_new_int64(no->close_at_ms));
        }
    }
    json_object_object_add(j, "overridden", marks);
    json_object_object_add(j, "override", ov);
    return j;
}

json_object *lb_view_upstreams(const struct ups_snapshot *s, const struct ups_overrides *o,
                               const struct conf *c, uint64_t now_ms)
{
    json_object *root = json_object_new_object(), *pools = json_object_new_array();
    json_object_object_add(root, "generation", u64(s->generation));
    for (size_t p = 0; p < s->n_pools; p++) {
        const struct ups_pool *pool = &s->pools[p];
        json_object *pj = json_object_new_object(), *nodes = json_object_new_array();
        json_object_object_add(pj, "name", json_object_new_string(pool->name));
        for (size_t i = 0; i < pool->n_nodes; i++)
            json_object_array_add(nodes, node_view(pool, &pool->nodes[i], o, c, now_ms));
        json_object_object_add(pj, "nodes", nodes);
        json_object_array_add(pools, pj);
    }
    json_object_object_add(root, "pools", pools);
    return root;
}

static json_object *str_list(char *const *l, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(l[i]));
    return a;
}

static json_object *match_view(const struct ups_route *r)
{
    json_object *m = json_object_new_object();
    if (r->listener)
        json_object_object_add(m, "listener", json_object_new_string(r->listener));
    if (r->role != CONF_ROLE_ANY)
        json_object_object_add(
            m, "role", json_object_new_string(r->role == CONF_ROLE_PUBLISH ? "publish" : "play"));
    if (r->app)
        json_object_object_add(m, "app", json_object_new_string(r->app));
    if (r->stream)
        json_object_object_add(m, "stream", json_object_new_string(r->stream));
    if (r->n_country)
        json_object_object_add(m, "country", str_list(r->country, r->n_country));
    if (r->n_continent)
        json_object_object_add(m, "continent", str_list(r->continent, r->n_continent));
    return m;
}

json_object *lb_view_routes(const struct ups_snapshot *s, const struct ups_overrides *o,
                            const struct conf *c)
{
    json_object *root = json_object_new_object(), *routes = json_object_new_array();
    json_object_object_add(root, "generation", u64(s->generation));
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct ups_route *r = &s->routes[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(r->name));
        json_object_object_add(j, "match", match_view(r));
        json_object_object_add(j, "pool", json_object_new_string(r->pool->name));
        json_object_object_add(j, "policy", json_object_new_string(r->ops->name));
        json_object_object_add(
            j, "route_on",
            json_object_new_string(r->route_on == CONF_ROUTE_ON_CONNECT ? "connect" : "stream"));
        const struct ups_route_override *ro = o ? ups_ovr_find_route(o, r->name) : NULL;
        json_object *ov = NULL;
        if (ro) {
            ov = json_object_new_object();
            if (ro->pool)
                json_object_object_add(ov, "pool", json_object_new_string(ro->pool));
            if (ro->has_policy)
                json_object_object_add(ov, "policy",
                                       json_object_new_string(conf_policy_name(ro->policy)));
        }
        json_object_object_add(j, "overridden", json_object_new_boolean(ro != NULL));
        json_object_object_add(j, "override", ov);
        const struct conf_route *cr = conf_route_of(c, r->name);
        if (cr) {
            json_object *cj = json_object_new_object();
            json_object_object_add(cj, "pool", json_object_new_string(cr->pool));
            json_object_object_add(cj, "policy",
                                   json_object_new_string(conf_policy_name(cr->policy)));
            json_object_object_add(j, "config", cj);
        }
        json_object_array_add(routes, j);
    }
    json_object_object_add(root, "routes", routes);
    return root;
}
