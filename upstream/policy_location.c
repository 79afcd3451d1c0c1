/* stream_location: the router puts the node where a played stream is live
 * first (router.c, from the request's stream-index view); the rest, and
 * every stream the index does not know, follow stream_affinity's order,
 * which is where its publisher was sent. */
#include "upstream/upstream.h"


static void *loc_create(const struct ups_pool *pool, unsigned n_workers)
{
    return ups_policy_stream_affinity.create(pool, n_workers);
}

static void loc_destroy(void *state) { ups_policy_stream_affinity.destroy(state); }

static size_t loc_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                        size_t n, struct ups_node **out)
{
    return ups_policy_stream_affinity.order(state, req, in, n, out);
}

const struct ups_policy_ops ups_policy_stream_location = {
    .name = "stream_location",
    .policy = CONF_POLICY_STREAM_LOCATION,
    .create = loc_create,
    .destroy = loc_destroy,
    .order = loc_order,
};
