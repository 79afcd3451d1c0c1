/* Runtime overrides (override.h): a small table of what the operator
 * changed, applied to each snapshot the control thread builds, and saved to
 * admin.state_file so it outlives the process. */
#include "upstream/override.h"

#include "conf/conf.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- names, messages ----------------------------------------------------- */

static const char *const admin_names[] = {"enabled", "draining", "disabled"};

const char *ups_admin_name(int state)
{
    return state >= 0 && state <= UPS_DISABLED ? admin_names[state] : "?";
}

int ups_admin_from_name(const char *name)
{
    for (int i = 0; name && i <= UPS_DISABLED; i++)
        if (strcmp(admin_names[i], name) == 0)
            return i;
    return -1;
}

static void msg(struct ups_msgs *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(struct ups_msgs *m, const char *fmt, ...)
{
    char *s;
    va_list ap;
    if (!m)
        return;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    if (m->n < UPS_MSGS_MAX)
        m->msg[m->n++] = s;
    else {
        m->dropped++;
        free(s);
    }
}

void ups_msgs_free(struct ups_msgs *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->msg[i]);
    m->n = 0;
    m->dropped = 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the table --------------------------------------------------------- */

struct ups_overrides *ups_ovr_new(void) { return calloc(1, sizeof(struct ups_overrides)); }

static void free_node(struct ups_node_override *n)
{
    free(n->pool);
    free(n->node);
}

static void free_route(struct ups_route_override *r)
{
    free(r->route);
    free(r->pool);
}

size_t ups_ovr_clear_all(struct ups_overrides *o)
{
    size_t n = o->n_nodes + o->n_routes;
    for (size_t i = 0; i < o->n_nodes; i++)
        free_node(&o->nodes[i]);
    for (size_t i = 0; i < o->n_routes; i++)
        free_route(&o->routes[i]);
    free(o->nodes);
    free(o->routes);
    o->nodes = NULL;
    o->routes = NULL;
    o->n_nodes = o->n_routes = 0;
    if (n)
        o->changes++;
    return n;
}

void ups_ovr_free(struct ups_overrides *o)
{
    if (!o)
        return;
    ups_ovr_clear_all(o);
    free(o);
}

static struct ups_node_override *find_node(const struct ups_overrides *o, const char *pool,
                                           const char *node)
{
    for (size_t i = 0; i < o->n_nodes; i++)
        if (strcmp(o->nodes[i].pool, pool) == 0 && strcmp(o->nodes[i].node, node) == 0)
            return &o->nodes[i];
    return NULL;
}

static struct ups_route_override *find_route(const struct ups_overrides *o, const char *route)
{
    for (size_t i = 0; i < o->n_routes; i++)
        if (strcmp(o->routes[i].route, route) == 0)
            return &o->routes[i];
    return NULL;
}

const struct ups_node_override *ups_ovr_find_node(const struct ups_overrides *o, const char *pool,
                                                  const char *node)
{
    return find_node(o, pool, node);
}

const struct ups_route_override *ups_ovr_find_route(const struct ups_overrides *o,
                                                    const char *route)
{
    return find_route(o, route);
}

static struct ups_node_override *get_node(struct ups_overrides *o, const char *pool,
                                          const char *node)
{
    struct ups_node_override *n = find_node(o, pool, node);
    if (n)
        return n;
    n = realloc(o->nodes, (o->n_nodes + 1) * sizeof(*n));
    if (!n)
        return NULL;
    o->nodes = n;
    n = &o->nodes[o->n_nodes];
    memset(n, 0, sizeof(*n));
    n->pool = strdup(pool);
    n->node = strdup(node);
    if (!n->pool || !n->node) {
        free_node(n);
        return NULL;
    }
    o->n_nodes++;
    return n;
}

static struct ups_route_override *get_route(struct ups_overrides *o, const char *route)
{
    struct ups_route_override *r = find_route(o, route);
    if (r)
        return r;
    r = realloc(o->routes, (o->n_routes + 1) * sizeof(*r));
    if (!r)
        return NULL;
    o->routes = r;
    r = &o->routes[o->n_routes];
    memset(r, 0, sizeof(*r));
    r->route = strdup(route);
    if (!r->route) {
        free_route(r);
        return NULL;
    }
    o->n_routes++;
    return r;
}

/* Drops entries that no longer override anything. */
static void compact(struct ups_overrides *o)
{
    size_t j = 0;
    for (size_t i = 0; i < o->n_nodes; i++) {
        if (o->nodes[i].has_weight || o->nodes[i].has_state)
            o->nodes[j++] = o->nodes[i];
        else
            free_node(&o->nodes[i]);
    }
    o->n_nodes = j;
    j = 0;
    for (size_t i = 0; i < o->n_routes; i++) {
        if (o->routes[i].pool || o->routes[i].has_policy)
            o->routes[j++] = o->routes[i];
        else
            free_route(&o->routes[i]);
    }
    o->n_routes = j;
}

/* ---- lookups in a snapshot ---------------------------------------------- */

static struct ups_pool *snap_pool(const struct ups_snapshot *s, const char *pool)
{
    for (size_t p = 0; s && p < s->n_pools; p++)
        if (strcmp(s->pools[p].name, pool) == 0)
            return &s->pools[p];
    return NULL;
}

static struct ups_node *snap_node(const struct ups_snapshot *s, const char *pool, const char *node)
{
    struct ups_pool *p = snap_pool(s, pool);
    for (size_t i = 0; p && i < p->n_nodes; i++)
        if (strcmp(p->nodes[i].name, node) == 0)
            return &p->nodes[i];
    return NULL;
}

static struct ups_route *snap_route(const struct ups_snapshot *s, const char *route)
{
    for (size_t r = 0; s && r < s->n_routes; r++)
        if (strcmp(s->routes[r].name, route) == 0)
            return &s->routes[r];
    return NULL;
}

static int check_node(const struct ups_snapshot *s, const char *pool, const char *node, char *err,
                      size_t errlen)
{
    if (!snap_pool(s, pool))
        return fail(err, errlen, "unknown pool \"%s\"", pool);
    if (!snap_node(s, pool, node))
        return fail(err, errlen, "pool \"%s\" has no node \"%s\"", pool, node);
    return 0;
}

static int check_weight(int64_t w, char *err, size_t errlen)
{
    if (w < 1 || w > UPS_OVR_WEIGHT_MAX)
        return fail(err, errlen, "weight must be 1..%d (got %lld)", UPS_OVR_WEIGHT_MAX,
                    (long long)w);
    return 0;
}

static int check_policy(const struct ups_snapshot *s, const char *policy, int *out, char *err,
                        size_t errlen)
{
    int p = conf_policy_from_name(policy);
    *out = -1; /* written on every path */
    if (p < 0 || !ups_policy_find(p))
        return fail(err, errlen,
                    "unknown policy \"%s\" (weighted, least_sessions, stream_affinity, "
                    "stream_location, geo_nearest)",
                    policy ? policy : "");
    if (p == CONF_POLICY_GEO_NEAREST && !s->geo)
        return fail(err, errlen, "geo_nearest needs geo.database");
    *out = p;
    return 0;
}

/* ---- setters ------------------------------------------------------------ */

int ups_ovr_set_weight(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                       const char *node, int64_t weight, char *err, size_t errlen)
{
    if (check_node(s, pool, node, err, errlen) < 0 || check_weight(weight, err, errlen) < 0)
        return -1;
    struct ups_node_override *n = get_node(o, pool, node);
    if (!n)
        return fail(err, errlen, "out of memory");
    n->has_weight = true;
    n->weight = (unsigned)weight;
    o->changes++;
    return 0;
}

int ups_ovr_set_state(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                      const char *node, const char *state, int64_t close_at_ms, char *err,
                      size_t errlen)
{
    if (check_node(s, pool, node, err, errlen) < 0)
        return -1;
    int st = ups_admin_from_name(state);
    if (st < 0)
        return fail(err, errlen, "state must be enabled, draining or disabled (got \"%s\")",
                    state ? state : "");
    if (close_at_ms < 0 || (close_at_ms && st != UPS_DRAINING))
        return fail(err, errlen, "close_after goes with state \"draining\" only");
    struct ups_node_override *n = get_node(o, pool, node);
    if (!n)
        return fail(err, errlen, "out of memory");
    n->has_state = true;
    n->state = st;
    n->close_at_ms = close_at_ms;
    n->close_done = false;
    o->changes++;
    return 0;
}

int ups_ovr_set_route_pool(struct ups_overrides *o, const struct ups_snapshot *s,
                           const char *route, const char *pool, char *err, size_t errlen)
{
    if (!snap_route(s, route))
        return fail(err, errlen, "unknown route \"%s\"", route);
    if (!pool || !snap_pool(s, pool))
        return fail(err, errlen, "unknown pool \"%s\"", pool ? pool : "");
    char *copy = strdup(pool);
    struct ups_route_override *r = copy ? get_route(o, route) : NULL;
    if (!r) {
        free(copy);
        return fail(err, errlen, "out of memory");
    }
    free(r->pool);
    r->pool = copy;
    o->changes++;
    return 0;
}

int ups_ovr_set_route_policy(struct ups_overrides *o, const struct ups_snapshot *s,
                             const char *route, const char *policy, char *err, size_t errlen)
{
    int p;
    if (!snap_route(s, route))
        return fail(err, errlen, "unknown route \"%s\"", route);
    if (check_policy(s, policy, &p, err, errlen) < 0)
        return -1;
    struct ups_route_override *r = get_route(o, route);
    if (!r)
        return fail(err, errlen, "out of memory");
    r->has_policy = true;
    r->policy = p;
    o->changes++;
    return 0;
}

bool ups_ovr_clear_weight(struct ups_overrides *o, const char *pool, const char *node)
{
    struct ups_node_override *n = find_node(o, pool, node);
    if (!n || !n->has_weight)
        return false;
    n->has_weight = false;
    compact(o);
    o->changes++;
    return true;
}

bool ups_ovr_clear_state(struct ups_overrides *o, const char *pool, const char *node)
{
    struct ups_node_override *n = find_node(o, pool, node);
    if (!n || !n->has_state)
        return false;
    n->has_state = false;
    n->close_at_ms = 0;
    compact(o);
    o->changes++;
    return true;
}

bool ups_ovr_clear_route_pool(struct ups_overrides *o, const char *route)
{
    struct ups_route_override *r = find_route(o, route);
    if (!r || !r->pool)
        return false;
    free(r->pool);
    r->pool = NULL;
    compact(o);
    o->changes++;
    return true;
}

bool ups_ovr_clear_route_policy(struct ups_overrides *o, const char *route)
{
    struct ups_route_override *r = find_route(o, route);
    if (!r || !r->has_policy)
        return false;
    r->has_policy = false;
    compact(o);
    o->changes++;
    return true;
}

/* ---- API bodies --------------------------------------------------------- */

static bool only_keys(json_object *body, const char *const *keys, char *err, size_t errlen)
{
    if (!json_object_is_type(body, json_type_object)) {
        fail(err, errlen, "the body must be a JSON object");
        return false;
    }
    if (json_object_object_length(body) == 0) {
        fail(err, errlen, "the body names nothing to change");
        return false;
    }
    json_object_object_foreach(body, key, val) {
        (void)val;
        bool known = false;
        for (size_t i = 0; keys[i]; i++)
            known = known || strcmp(keys[i], key) == 0;
        if (!known) {
            char list[128] = "";
            for (size_t i = 0; keys[i]; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                         keys[i]);
            fail(err, errlen, "unknown field \"%s\" (expected: %s)", key, list);
            return false;
        }
    }
    return true;
}

/* *present: the key is there; returns its value (NULL for JSON null). */
static json_object *field(json_object *body, const char *key, bool *present)
{
    json_object *v = NULL;
    *present = json_object_object_get_ex(body, key, &v);
    return v;
}

int ups_ovr_patch_node(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                       const char *node, json_object *body, int64_t now_ms, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"weight", "state", "close_after", NULL};
    bool has_w, has_s, has_c;
    if (check_node(s, pool, node, err, errlen) < 0 || !only_keys(body, keys, err, errlen))
        return -1;
    json_object *w = field(body, "weight", &has_w);
    json_object *st = field(body, "state", &has_s);
    json_object *ca = field(body, "close_after", &has_c);

    int64_t weight = 0, close_at = 0;
    if (w) {
        if (!json_object_is_type(w, json_type_int))
            return fail(err, errlen, "weight must be an integer or null");
        weight = json_object_get_int64(w);
        if (check_weight(weight, err, errlen) < 0)
            return -1;
    }
    if (st && !json_object_is_type(st, json_type_string))
        return fail(err, errlen, "state must be a string or null");
    int state = st ? ups_admin_from_name(json_object_get_string(st)) : -1;
    if (st && state < 0)
        return fail(err, errlen, "state must be enabled, draining or disabled (got \"%s\")",
                    json_object_get_string(st));
    if (ca) {
        int64_t ms;
        const char *why;
        if (!json_object_is_type(ca, json_type_string) ||
            conf_parse_duration_ms(json_object_get_string(ca), &ms, &why) < 0 || ms < 0)
            return fail(err, errlen, "close_after must be a duration like \"60s\" or null");
        const struct ups_node_override *cur = find_node(o, pool, node);
        int eff = st ? state : cur && cur->has_state ? cur->state : UPS_ENABLED;
        if (eff != UPS_DRAINING)
            return fail(err, errlen, "close_after goes with \"state\": \"draining\"");
        close_at = now_ms + (ms ? ms : 1);
    }

    if (has_w && w)
        ups_ovr_set_weight(o, s, pool, node, weight, err, errlen);
    else if (has_w)
        ups_ovr_clear_weight(o, pool, node);
    if (has_s && st)
        ups_ovr_set_state(o, s, pool, node, json_object_get_string(st), close_at, err, errlen);
    else if (has_s)
        ups_ovr_clear_state(o, pool, node);
    else if (has_c) { /* close_after alone: a new deadline (or none) for the drain */
        struct ups_node_override *n = find_node(o, pool, node);
        if (n && n->has_state && n->state == UPS_DRAINING) {
            n->close_at_ms = close_at;
            n->close_done = false;
        }
        o->changes++;
    }
    return 0;
}

int ups_ovr_patch_route(struct ups_overrides *o, const struct ups_snapshot *s, const char *route,
                        json_object *body, char *err, size_t errlen)
{
    static const char *const keys[] = {"pool", "policy", NULL};
    bool has_p, has_x;
    int policy;
    if (!snap_route(s, route))
        return fail(err, errlen, "unknown route \"%s\"", route);
    if (!only_keys(body, keys, err, errlen))
        return -1;
    json_object *p = field(body, "pool", &has_p);
    json_object *x = field(body, "policy", &has_x);
    if (p && (!json_object_is_type(p, json_type_string) ||
              !snap_pool(s, json_object_get_string(p))))
        return fail(err, errlen, "pool must name a pool (got %s)",
                    json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN));
    if (x && !json_object_is_type(x, json_type_string))
        return fail(err, errlen, "policy must be a string or null");
    if (x && check_policy(s, json_object_get_string(x), &policy, err, errlen) < 0)
        return -1;
    if (p && ups_ovr_set_route_pool(o, s, route, json_object_get_string(p), err, errlen) < 0)
        return -1;
    if (has_p && !p)
        ups_ovr_clear_route_pool(o, route);
    if (x && ups_ovr_set_route_policy(o, s, route, json_object_get_string(x), err, errlen) < 0)
        return -1;
    if (has_x && !x)
        ups_ovr_clear_route_policy(o, route);
    return 0;
}

/* ---- apply -------------------------------------------------------------- */

int ups_ovr_apply(struct ups_overrides *o, struct ups_snapshot *s, struct ups_msgs *msgs)
{
    /* Every node: the override's state, else enabled (live state is shared
     * with older snapshots, so a cleared override must be undone here). */
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++)
            atomic_store(&s->pools[p].nodes[i].live->admin, UPS_ENABLED);

    bool stale = false;
    for (size_t i = 0; i < o->n_nodes; i++) {
        struct ups_node_override *no = &o->nodes[i];
        struct ups_node *n = snap_node(s, no->pool, no->node);
        if (!n) {
            msg(msgs, "override of node %s/%s discarded: the configuration has no such node",
                no->pool, no->node);
            no->has_weight = no->has_state = false;
            stale = true;
            continue;
        }
        if (no->has_weight)
            n->weight = no->weight;
        if (no->has_state)
            atomic_store(&n->live->admin, no->state);
    }
    for (size_t i = 0; i < o->n_routes; i++) {
        struct ups_route_override *ro = &o->routes[i];
        struct ups_route *r = snap_route(s, ro->route);
        if (!r) {
            msg(msgs, "override of route %s discarded: the configuration has no such route",
                ro->route);
            free(ro->pool);
            ro->pool = NULL;
            ro->has_policy = false;
            stale = true;
            continue;
        }
        struct ups_pool *pool = r->pool;
        const struct ups_policy_ops *ops = r->ops;
        if (ro->pool) {
            pool = snap_pool(s, ro->pool);
            if (!pool) {
                msg(msgs,
                    "override of route %s discarded: pool %s is no longer in the configuration",
                    ro->route, ro->pool);
                free(ro->pool);
                ro->pool = NULL;
                stale = true;
                pool = r->pool;
            }
        }
        if (ro->has_policy) {
            ops = ups_policy_find(ro->policy);
            if (!ops || (ro->policy == CONF_POLICY_GEO_NEAREST && !s->geo)) {
                msg(msgs, "policy override of route %s discarded: %s is not available now",
                    ro->route, conf_policy_name(ro->policy));
                ro->has_policy = false;
                stale = true;
                ops = r->ops;
            }
        }
        if (pool == r->pool && ops == r->ops)
            continue;
        void *state = ops->create(pool, s->n_workers);
        if (!state)
            return -1;
        r->ops->destroy(r->state);
        r->state = state;
        r->ops = ops;
        r->policy = ops->policy;
        r->pool = pool;
    }
    if (stale) {
        compact(o);
        o->changes++;
    }
    return 0;
}

/* ---- persistence -------------------------------------------------------- */

json_object *ups_ovr_to_json(const struct ups_overrides *o)
{
    json_object *root = json_object_new_object(), *nodes = json_object_new_array(),
                *routes = json_object_new_array();
    for (size_t i = 0; i < o->n_nodes; i++) {
        const struct ups_node_override *n = &o->nodes[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "pool", json_object_new_string(n->pool));
        json_object_object_add(j, "node", json_object_new_string(n->node));
        if (n->has_weight)
            json_object_object_add(j, "weight", json_object_new_int64(n->weight));
        if (n->has_state)
            json_object_object_add(j, "state", json_object_new_string(ups_admin_name(n->state)));
        if (n->close_at_ms)
            json_object_object_add(j, "close_at_ms", json_object_new_int64(n->close_at_ms));
        json_object_array_add(nodes, j);
    }
    for (size_t i = 0; i < o->n_routes; i++) {
        const struct ups_route_override *r = &o->routes[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "route", json_object_new_string(r->route));
        if (r->pool)
            json_object_object_add(j, "pool", json_object_new_string(r->pool));
        if (r->has_policy)
            json_object_object_add(j, "policy",
                                   json_object_new_string(conf_policy_name(r->policy)));
        json_object_array_add(routes, j);
    }
    json_object_object_add(root, "version", json_object_new_int(1));
    json_object_object_add(root, "nodes", nodes);
    json_object_object_add(root, "routes", routes);
    return root;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ups_ovr_save(const struct ups_overrides *o, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return fail(err, errlen, "%s: path too long", path);
    json_object *j = ups_ovr_to_json(o);
    const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd < 0) {
        fail(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
        fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        fail(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* The rename is durable once the directory is. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        fail(err, errlen, "cannot sync the directory of %s: %s", path, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        goto out;
    }
    close(dfd);
    rc = 0;
out:
    json_object_put(j);
    return rc;
}

static const char *str_field(json_object *j, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return *s ? s : NULL;
}

static void load_node(struct ups_overrides *o, const char *path, size_t i, json_object *j,
                      struct ups_msgs *msgs)
{
    const char *pool = str_field(j, "pool"), *node = str_field(j, "node");
    json_object *w = NULL, *c = NULL;
    const char *state = str_field(j, "state");
    bool has_w = json_object_object_get_ex(j, "weight", &w);
    bool has_c = json_object_object_get_ex(j, "close_at_ms", &c);
    int st = state ? ups_admin_from_name(state) : -1;
    int64_t wv = has_w && json_object_is_type(w, json_type_int) ? json_object_get_int64(w) : 0;
    int64_t cv = has_c && json_object_is_type(c, json_type_int) ? json_object_get_int64(c) : 0;
    if (!pool || !node || (has_w && (wv < 1 || wv > UPS_OVR_WEIGHT_MAX)) ||
        (json_object_object_get_ex(j, "state", NULL) && st < 0) || (!has_w && !state) ||
        (has_c && (cv <= 0 || st != UPS_DRAINING))) {
        msg(msgs, "%s: nodes[%zu] ignored: %s", path, i,
            json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        return;
    }
    struct ups_node_override *n = get_node(o, pool, node);
    if (!n)
        return;
    if (has_w) {
        n->has_weight = true;
        n->weight = (unsigned)wv;
    }
    if (state) {
        n->has_state = true;
        n->state = st;
        n->close_at_ms = cv;
    }
}

static void load_route(struct ups_overrides *o, const char *path, size_t i, json_object *j,
                       struct ups_msgs *msgs)
{
    const char *route = str_field(j, "route"), *pool = str_field(j, "pool");
    const char *policy = str_field(j, "policy");
    int p = policy ? conf_policy_from_name(policy) : -1;
    if (!route || (json_object_object_get_ex(j, "pool", NULL) && !pool) ||
        (json_object_object_get_ex(j, "policy", NULL) && p < 0) || (!pool && !policy)) {
        msg(msgs, "%s: routes[%zu] ignored: %s", path, i,
            json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        return;
    }
    struct ups_route_override *r = get_route(o, route);
    if (!r)
        return;
    if (pool) {
        free(r->pool);
        r->pool = strdup(pool);
    }
    if (policy) {
        r->has_policy = true;
        r->policy = p;
    }
}

#define STATE_FILE_MAX (4u << 20)

void ups_ovr_load(struct ups_overrides *o, const char *path, struct ups_msgs *msgs)
{
    ups_ovr_clear_all(o);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            msg(msgs, "%s: cannot open (%s); starting without saved overrides", path,
                strerror(errno));
        return;
    }
    char *buf = malloc(STATE_FILE_MAX + 1);
    size_t len = 0;
    ssize_t r = 0;
    while (buf && len < STATE_FILE_MAX &&
           ((r = read(fd, buf + len, STATE_FILE_MAX - len)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            len += (size_t)r;
    close(fd);
    if (!buf || r < 0 || len >= STATE_FILE_MAX) {
        msg(msgs, "%s: cannot read it whole; starting without saved overrides", path);
        free(buf);
        return;
    }
    struct json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
    bool complete = tok && json_tokener_get_error(tok) == json_tokener_success &&
                    tok->char_offset == (int)len;
    /* trailing whitespace is fine */
    if (tok && root && !complete && json_tokener_get_error(tok) == json_tokener_success) {
        complete = true;
        for (size_t k = (size_t)tok->char_offset; k < len; k++)
            complete = complete && (buf[k] == ' ' || buf[k] == '\n' || buf[k] == '\t' ||
                                    buf[k] == '\r');
    }
    if (tok)
        json_tokener_free(tok);
    free(buf);
    json_object *nodes = NULL, *routes = NULL;
    if (!root || !complete || !json_object_is_type(root, json_type_object)) {
        msg(msgs, "%s: not a JSON object (corrupt?); starting without saved overrides", path);
        json_object_put(root);
        return;
    }
    json_object_object_get_ex(root, "nodes", &nodes);
    json_object_object_get_ex(root, "routes", &routes);
    if ((nodes && !json_object_is_type(nodes, json_type_array)) ||
        (routes && !json_object_is_type(routes, json_type_array)))
        msg(msgs, "%s: \"nodes\" and \"routes\" must be lists; ignoring what is not", path);
    for (size_t i = 0; json_object_is_type(nodes, json_type_array) &&
                       i < json_object_array_length(nodes);
         i++)
        load_node(o, path, i, json_object_array_get_idx(nodes, i), msgs);
    for (size_t i = 0; json_object_is_type(routes, json_type_array) &&
                       i < json_object_array_length(routes);
         i++)
        load_route(o, path, i, json_object_array_get_idx(routes, i), msgs);
    json_object_put(root);
}
