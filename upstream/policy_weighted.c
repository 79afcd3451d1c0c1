/* weighted: smooth weighted round robin, nginx's algorithm. For each pick,
 * every eligible node's current weight grows by its weight; the largest
 * wins and gives back the total. Weights 5,1,1 give a a b a c a a: spread
 * out, not bursts. State is one row of current weights per worker. */
#include "upstream/upstream.h"

#include <stdlib.h>
#include <string.h>

struct wrr_state {
    size_t n_nodes;
    size_t stride; /* row length, padded to a cache line */
    int64_t cur[];
};

static void *wrr_create(const struct ups_pool *pool, unsigned n_workers)
{
    size_t stride = (pool->n_nodes + 7) & ~(size_t)7; /* 8 x int64 = 64 bytes */
    struct wrr_state *st = calloc(1, sizeof(*st) + sizeof(int64_t) * stride * n_workers);
    if (!st)
        return NULL;
    st->n_nodes = pool->n_nodes;
    st->stride = stride;
    return st;
}

static void wrr_destroy(void *state) { free(state); }

static size_t wrr_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                        size_t n, struct ups_node **out)
{
    struct wrr_state *st = state;
    int64_t *cur = st->cur + (size_t)req->worker * st->stride;
    int64_t total = 0;
    size_t best = 0;

    for (size_t i = 0; i < n; i++) {
        size_t idx = in[i]->index;
        int64_t w = ups_effective_weight(in[i], req->now_ms); /* slow start */
        cur[idx] += w;
        total += w;
        if (cur[idx] > cur[in[best]->index])
            best = i;
    }
    cur[in[best]->index] -= total;

    /* The pick first; the others as fallbacks, heaviest first (stable). */
    double weight[1024];
    out[0] = in[best];
    size_t m = 1;
    for (size_t i = 0; i < n; i++)
        if (i != best) {
            weight[m] = in[i]->weight;
            out[m++] = in[i];
        }
    ups_sort_desc(out, weight, 1, m);
    return m;
}

const struct ups_policy_ops ups_policy_weighted = {
    .name = "weighted",
    .policy = CONF_POLICY_WEIGHTED,
    .create = wrr_create,
    .destroy = wrr_destroy,
    .order = wrr_order,
};
