/* least_sessions: fewest live sessions relative to weight. A node's count
 * is the larger of this instance's own live sessions on it (exact and
 * current, but blind to other instances and to clients that reach the node
 * directly) and the clients its stats last reported (all sources, but as old
 * as the last poll; 0 for nodes without stats). Ties rotate per worker, so
 * an idle pool is not filled node by node. */
#include "upstream/upstream.h"

#include <stdlib.h>

struct ls_state {
    unsigned n_workers;
    struct {
        size_t next;
        char pad[56];
    } rot[];
};

static void *ls_create(const struct ups_pool *pool, unsigned n_workers)
{
    struct ls_state *st = calloc(1, sizeof(*st) + sizeof(st->rot[0]) * n_workers);
    if (st)
        st->n_workers = n_workers;
    return st;
}

static void ls_destroy(void *state) { free(state); }

static size_t ls_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                       size_t n, struct ups_node **out)
{
    struct ls_state *st = state;
    size_t start = st->rot[req->worker].next++ % n;

    /* Rotated copy, then a stable sort on -sessions/weight: equal loads
     * keep the rotation, so ties are spread round robin. */
    double load[1024];
    for (size_t i = 0; i < n; i++) {
        out[i] = in[(start + i) % n];
        unsigned own = atomic_load(&out[i]->live->sessions);
        unsigned seen = atomic_load(&out[i]->live->stats_clients);
        load[i] = -(double)(own > seen ? own : seen) / out[i]->weight;
    }
    ups_sort_desc(out, load, 0, n);
    return n;
}

const struct ups_policy_ops ups_policy_least_sessions = {
    .name = "least_sessions",
    .policy = CONF_POLICY_LEAST_SESSIONS,
    .create = ls_create,
    .destroy = ls_destroy,
    .order = ls_order,
};
