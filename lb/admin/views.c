/* Admin read views (views.h). */
#include "lb/admin/views.h"

#include "conf/conf.h"
#include "health/hc.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
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
    int64_t since = atomic_load(&l->health_since_ms);
    json_object_object_add(j, "state_since_ms", since ? json_object_new_int64(since) : NULL);
    json_object_object_add(j, "bitrate_from_client_bps", u64(atomic_load(&l->bps_from_client)));
    json_object_object_add(j, "bitrate_to_client_bps", u64(atomic_load(&l->bps_to_client)));
    json_object_object_add(j, "stats_streams", u64(atomic_load(&l->stats_streams)));
    json_object_object_add(j, "stats_clients", u64(atomic_load(&l->stats_clients)));
    json_object_object_add(j, "stats_bw_in_bps", u64(atomic_load(&l->stats_bw_in)));
    int lp = atomic_load(&l->last_probe);
    json_object *probe = NULL;
    if (lp > 0 && lp <= HC_RESULT__COUNT) {
        probe = json_object_new_object();
        json_object_object_add(probe, "result",
                               json_object_new_string(hc_result_name((enum hc_result)(lp - 1))));
        json_object_object_add(probe, "text",
                               json_object_new_string(hc_result_text((enum hc_result)(lp - 1))));
        json_object_object_add(probe, "latency_ms",
                               json_object_new_double((double)atomic_load(&l->last_probe_us) /
                                                      1000.0));
        json_object_object_add(probe, "time_ms",
                               json_object_new_int64(atomic_load(&l->last_probe_at_ms)));
    }
    json_object_object_add(j, "last_probe", probe);

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

static json_object *args_view(const struct ups_route *r)
{
    json_object *a = json_object_new_object();
    for (size_t i = 0; i < r->n_args; i++)
        json_object_object_add(a, r->args[i].key, json_object_new_string(r->args[i].value));
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
    if (r->n_args)
        json_object_object_add(m, "args", args_view(r));
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

/* ---- lines ------------------------------------------------------------------ */

/* Every arg of sub is in r with the same value. */
static bool args_subset(const struct ups_route *sub, const struct ups_route *r)
{
    for (size_t i = 0; i < sub->n_args; i++) {
        size_t k = 0;
        while (k < r->n_args && strcmp(r->args[k].key, sub->args[i].key) != 0)
            k++;
        if (k == r->n_args || strcmp(r->args[k].value, sub->args[i].value) != 0)
            return false;
    }
    return true;
}

/* Appends s to out, percent-encoding all but RFC 3986 unreserved bytes. */
static void url_encode(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

static json_object *line_json(const struct ups_route *r, const struct lb_lines_query *q,
                              bool is_default)
{
    json_object *j = json_object_new_object();
    const struct ups_pool *p = r->pool;
    json_object_object_add(j, "pool", json_object_new_string(p->name));
    json_object_object_add(j, "route", json_object_new_string(r->name));
    json_object_object_add(j, "policy", json_object_new_string(r->ops->name));
    json_object_object_add(j, "args", args_view(r));
    json_object_object_add(j, "default", json_object_new_boolean(is_default));
    char url[2048];
    if (q->http_suffix)
        snprintf(url, sizeof(url), "%s://%s/%s/%s.%s", q->tls ? "https" : "http", q->host, q->app,
                 q->stream, q->http_suffix);
    else
        snprintf(url, sizeof(url), "%s://%s/%s/%s", q->tls ? "rtmps" : "rtmp", q->host, q->app,
                 q->stream);
    for (size_t i = 0; i < r->n_args; i++) {
        size_t n = strlen(url);
        snprintf(url + n, sizeof(url) - n, "%s", i ? "&" : "?");
        url_encode(url, sizeof(url), r->args[i].key);
        n = strlen(url);
        snprintf(url + n, sizeof(url) - n, "=");
        url_encode(url, sizeof(url), r->args[i].value);
    }
    json_object_object_add(j, "url", json_object_new_string(url));
    unsigned up = 0, avail = 0;
    for (size_t i = 0; i < p->n_nodes; i++) {
        up += atomic_load(&p->nodes[i].live->health) == UPS_UP;
        avail += ups_node_available(&p->nodes[i]);
    }
    json_object *h = json_object_new_object();
    json_object_object_add(h, "up", u64(up));
    json_object_object_add(h, "total", u64(p->n_nodes));
    json_object_object_add(h, "available", u64(avail));
    json_object_object_add(j, "nodes", h);
    return j;
}

json_object *lb_view_lines(const struct ups_snapshot *s, const struct lb_lines_query *q)
{
    struct ups_request req = {
        .listener = q->listener,
        .role = CONF_ROLE_PLAY,
        .app = q->app,
        .stream = q->stream,
        .country = q->country,
        .continent = q->continent,
        .http = q->http_suffix != NULL,
    };
    /* Routes are at most 1024 (conf). */
    const struct ups_route *reach[1024];
    size_t n = 0;
    const struct ups_route *dflt = NULL;
    for (size_t i = 0; i < s->n_routes && n < 1024 && !dflt; i++) {
        const struct ups_route *r = &s->routes[i];
        if (!ups_route_matches_stream(r, &req))
            continue;
        bool shadowed = false;
        for (size_t k = 0; k < n && !shadowed; k++)
            shadowed = args_subset(reach[k], r);
        if (shadowed)
            continue;
        reach[n++] = r;
        if (r->n_args == 0)
            dflt = r;
    }
    json_object *root = json_object_new_object(), *lines = json_object_new_array();
    json_object_object_add(root, "app", json_object_new_string(q->app));
    json_object_object_add(root, "stream", json_object_new_string(q->stream));
    json_object_object_add(root, "listener", json_object_new_string(q->listener));
    json_object_object_add(root, "country",
                           q->country && *q->country ? json_object_new_string(q->country) : NULL);
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = reach[k]->pool == reach[i]->pool;
        if (seen)
            continue;
        const struct ups_route *best = reach[i];
        for (size_t k = i + 1; k < n; k++)
            if (reach[k]->pool == best->pool && reach[k]->n_args < best->n_args)
                best = reach[k];
        json_object_array_add(lines, line_json(best, q, dflt && dflt->pool == best->pool));
    }
    json_object_object_add(root, "lines", lines);
    return root;
}

/* A Host header's host: a name or IPv4 of [A-Za-z0-9.-], or "[v6]". */
static bool host_part(const char *h, char *out, size_t cap)
{
    size_t len;
    if (h[0] == '[') {
        const char *end = strchr(h, ']');
        if (!end)
            return false;
        len = (size_t)(end - h) + 1;
        for (size_t i = 1; i + 1 < len; i++)
            if (!strchr("0123456789abcdefABCDEF:.", h[i]))
                return false;
    } else {
        len = strcspn(h, ":");
        for (size_t i = 0; i < len; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", h[i]))
                return false;
    }
    const char *rest = h + len;
    if (*rest == ':')
        rest += 1 + strspn(rest + 1, "0123456789");
    if (len == 0 || len >= cap || *rest)
        return false;
    memcpy(out, h, len);
    out[len] = '\0';
    return true;
}

const char *lb_view_url_host(const struct sockaddr *addr, const char *host_header, char *out,
                             size_t cap)
{
    char ip[INET6_ADDRSTRLEN], host[300];
    unsigned port = 0;
    bool any = false;
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
        port = ntohs(a6->sin6_port);
        any = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
        snprintf(host, sizeof(host), "[%s]", ip);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
        port = ntohs(a4->sin_port);
        any = a4->sin_addr.s_addr == htonl(INADDR_ANY);
        snprintf(host, sizeof(host), "%s", ip);
    }
    if (any && !(host_header && host_part(host_header, host, sizeof(host))))
        snprintf(host, sizeof(host), "localhost");
    snprintf(out, cap, "%s:%u", host, port);
    return out;
}
