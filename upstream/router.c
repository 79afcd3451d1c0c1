/* The router: (snapshot, request) -> route and ordered candidates. */
#include "upstream/upstream.h"

#include <fnmatch.h>
#include <string.h>

static bool in_list(char *const *l, size_t n, const char *v)
{
    if (!v || !*v)
        return false; /* an unmapped client matches no geo route */
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i], v) == 0)
            return true;
    return false;
}

/* Geo keys are known for every session (tcp too), from the client address. */
static bool geo_matches(const struct ups_route *r, const struct ups_request *req)
{
    if (r->n_country && !in_list(r->country, r->n_country, req->country))
        return false;
    if (r->n_continent && !in_list(r->continent, r->n_continent, req->continent))
        return false;
    return true;
}

const char *ups_request_arg(const struct ups_request *req, const char *key)
{
    for (size_t i = 0; req->args && i < req->n_args; i++)
        if (strcmp(req->args[i].key, key) == 0)
            return req->args[i].value;
    return NULL;
}

/* Every arg of the route is in the request, with the same value. */
static bool args_match(const struct ups_route *r, const struct ups_request *req)
{
    for (size_t i = 0; i < r->n_args; i++) {
        const char *v = ups_request_arg(req, r->args[i].key);
        if (!v || strcmp(v, r->args[i].value) != 0)
            return false;
    }
    return true;
}

bool ups_route_matches(const struct ups_route *r, const struct ups_request *req)
{
    return ups_route_matches_stream(r, req) && (req->l4 || args_match(r, req));
}

bool ups_route_matches_stream(const struct ups_route *r, const struct ups_request *req)
{
    if (r->listener && (!req->listener || strcmp(r->listener, req->listener) != 0))
        return false;
    if (!geo_matches(r, req))
        return false;
    if (req->l4) /* a tcp listener has no role, app, stream or args to match */
        return r->role == CONF_ROLE_ANY && !r->app && !r->stream && !r->n_args;
    if (r->role != CONF_ROLE_ANY && r->role != req->role)
        return false;
    if (r->app && fnmatch(r->app, req->app ? req->app : "", 0) != 0)
        return false;
    if (r->stream && fnmatch(r->stream, req->stream ? req->stream : "", 0) != 0)
        return false;
    return true;
}

/* Eligible nodes of one tier, in pool order, but `skip`. */
static size_t tier(const struct ups_pool *pool, bool backup, const struct ups_node *skip,
                   bool http, struct ups_node **out)
{
    size_t n = 0;
    for (size_t i = 0; i < pool->n_nodes; i++) {
        struct ups_node *node = &pool->nodes[i];
        if (http && !node->http_addrlen)
            continue; /* it serves no http viewers */
        if (node != skip && node->backup == backup && ups_node_available(node))
            out[n++] = node;
    }
    return n;
}

/* stream_location: the node where a played stream is live, if it may
 * serve: up, not disabled (draining still serves what is only there), and
 * with room. Backups count: the stream is only there. */
struct ups_node *ups_route_stream_node(const struct ups_route *r, const struct ups_request *req,
                                       struct ups_node **where)
{
    char name[1024];
    if (where)
        *where = NULL;
    if (req->l4 || !req->streams || !req->streams->locate ||
        !req->streams->locate(req->streams->ctx, r->pool->name, req->app, req->stream, name,
                              sizeof(name)))
        return NULL;
    for (size_t i = 0; i < r->pool->n_nodes; i++) {
        struct ups_node *n = &r->pool->nodes[i];
        if (strcmp(n->name, name) != 0)
            continue;
        if (where)
            *where = n;
        if (req->http && !n->http_addrlen)
            return NULL;
        if (atomic_load(&n->live->health) != UPS_UP ||
            atomic_load(&n->live->admin) == UPS_DISABLED || !ups_node_has_room(n))
            return NULL;
        return n;
    }
    return NULL;
}

/* A takeover's node: up, not disabled (a draining node still keeps what
 * is there), with room. */
static struct ups_node *pinned(const struct ups_route *r, const struct ups_request *req)
{
    for (size_t i = 0; i < r->pool->n_nodes; i++) {
        struct ups_node *n = &r->pool->nodes[i];
        if (strcmp(n->name, req->pin_node) != 0)
            continue;
        if (atomic_load(&n->live->health) != UPS_UP ||
            atomic_load(&n->live->admin) == UPS_DISABLED || !ups_node_has_room(n))
            return NULL;
        return n;
    }
    return NULL;
}

static struct ups_node *located(const struct ups_route *r, const struct ups_request *req)
{
    if (req->pin_node && !req->l4 && req->role == CONF_ROLE_PUBLISH)
        return pinned(r, req);
    if (r->policy != CONF_POLICY_STREAM_LOCATION || req->role != CONF_ROLE_PLAY)
        return NULL;
    return ups_route_stream_node(r, req, NULL);
}

void ups_route_candidates(const struct ups_snapshot *s, const struct ups_route *r,
                          const struct ups_request *req, struct ups_candidates *out)
{
    struct ups_request rq = *req;
    /* Pools hold at most 1024 nodes (conf); order into stack buffers. */
    struct ups_node *in[1024], *ordered[1024];
    struct ups_node *first = located(r, req);

    rq.worker %= s->n_workers; /* policy state has one row per worker */
    out->n = 0;
    out->n_primary = 0;
    out->not_live = false;
    if (!first && r->require_live && r->policy == CONF_POLICY_STREAM_LOCATION &&
        req->role == CONF_ROLE_PLAY) {
        struct ups_node *where;
        ups_route_stream_node(r, req, &where);
        if (!where) { /* live nowhere: no fallback to affinity */
            out->not_live = true;
            return;
        }
    }
    if (first)
        out->node[out->n++] = first;
    for (int backup = 0; backup <= 1; backup++) {
        size_t n = tier(r->pool, backup, first, req->http, in);
        if (n > 0) {
            size_t m = r->ops->order(r->state, &rq, in, n, ordered);
            for (size_t k = 0; k < m && out->n < UPS_MAX_CANDIDATES; k++)
                out->node[out->n++] = ordered[k];
        }
        if (!backup)
            out->n_primary = out->n;
    }
}

const struct ups_route *ups_route_find(const struct ups_snapshot *s, const struct ups_request *req)
{
    if (req->at_connect)
        return ups_route_find_connect(s, req);
    for (size_t i = 0; i < s->n_routes; i++)
        if (ups_route_matches(&s->routes[i], req))
            return &s->routes[i];
    return NULL;
}

const struct ups_route *ups_route_find_connect(const struct ups_snapshot *s,
                                               const struct ups_request *req)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct ups_route *r = &s->routes[i];
        if (r->listener && (!req->listener || strcmp(r->listener, req->listener) != 0))
            continue;
        if (r->app && fnmatch(r->app, req->app ? req->app : "", 0) != 0)
            continue;
        if (!geo_matches(r, req))
            continue;
        /* The first route that may match decides: route_on: stream waits
         * for the stream name (and its args: a route with args may match
         * once they are known, whatever the tcUrl said, since the stream's
         * own args come first). */
        return r->route_on == CONF_ROUTE_ON_CONNECT ? r : NULL;
    }
    return NULL;
}

/* Whether a route's node is the same whatever the stream. */
static bool stream_blind(const struct ups_route *r)
{
    switch (r->policy) {
    case CONF_POLICY_WEIGHTED:
    case CONF_POLICY_LEAST_SESSIONS:
    case CONF_POLICY_GEO_NEAREST:
        return true;
    default: /* stream_affinity, stream_location: only with one node to pick */
        return r->pool->n_nodes == 1 && !r->require_live;
    }
}

const struct ups_route *ups_route_find_early(const struct ups_snapshot *s,
                                             const struct ups_request *req)
{
    if (req->l4 || req->http)
        return NULL;
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct ups_route *r = &s->routes[i];
        if (r->listener && (!req->listener || strcmp(r->listener, req->listener) != 0))
            continue;
        if (!geo_matches(r, req))
            continue;
        /* The first route that may match decides, and only if it matches
         * whatever the client says next. */
        if (r->role != CONF_ROLE_ANY || r->app || r->stream || r->n_args ||
            r->route_on != CONF_ROUTE_ON_STREAM || !stream_blind(r))
            return NULL;
        return r;
    }
    return NULL;
}

int ups_ertmp_at_connect(const struct ups_snapshot *s, const struct ups_request *req)
{
    /* Routing happens on publish or play: a route taking every stream (and
     * any args) of a role hides the later routes for that role. */
    enum { PUB = 1, PLAY = 2 };
    unsigned covered = 0;
    bool any = false;
    for (size_t i = 0; i < s->n_routes && covered != (PUB | PLAY); i++) {
        const struct ups_route *r = &s->routes[i];
        unsigned roles = r->role == CONF_ROLE_PUBLISH ? PUB : r->role == CONF_ROLE_PLAY ? PLAY
                                                                                        : PUB | PLAY;
        if ((roles & ~covered) == 0)
            continue;
        if (r->listener && (!req->listener || strcmp(r->listener, req->listener) != 0))
            continue;
        if (r->app && fnmatch(r->app, req->app ? req->app : "", 0) != 0)
            continue;
        if (!geo_matches(r, req))
            continue;
        any = true;
        if (r->pool->ertmp == CONF_ERTMP_OFF)
            return CONF_ERTMP_OFF;
        if (!r->stream && r->n_args == 0)
            covered |= roles;
    }
    return any ? CONF_ERTMP_FORWARD : CONF_ERTMP_OFF;
}

const struct ups_route *ups_route_select(const struct ups_snapshot *s,
                                         const struct ups_request *req,
                                         struct ups_candidates *out)
{
    const struct ups_route *r = ups_route_find(s, req);
    out->n = 0;
    out->n_primary = 0;
    out->not_live = false;
    if (r)
        ups_route_candidates(s, r, req, out);
    return r;
}
