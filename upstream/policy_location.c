/* stream_location: a play goes to the node where its stream is live (the
 * caller looks it up in the stream index and names it in req->located);
 * an unknown stream, or one live on a node that is not available, falls
 * back to stream_affinity's order, which is where its publisher was sent. */
#include "upstream/upstream.h"

#include <string.h>

static void *loc_create(const struct ups_pool *pool, unsigned n_workers)
{
    return ups_policy_stream_affinity.create(pool, n_workers);
}

static void loc_destroy(void *state) { ups_policy_stream_affinity.destroy(state); }

static size_t loc_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                        size_t n, struct ups_node **out)
{
    size_t m = ups_policy_stream_affinity.order(state, req, in, n, out);
    if (!req->located)
        return m;
    for (size_t i = 0; i < m; i++) {
        if (strcmp(out[i]->name, req->located) != 0)
            continue;
        struct ups_node *x = out[i];
        memmove(out + 1, out, i * sizeof(out[0]));
        out[0] = x;
        break;
    }
    return m;
}

const struct ups_policy_ops ups_policy_stream_location = {
    .name = "stream_location",
    .policy = CONF_POLICY_STREAM_LOCATION,
    .create = loc_create,
    .destroy = loc_destroy,
    .order = loc_order,
};
