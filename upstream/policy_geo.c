/* geo_nearest: a tier's nodes by great-circle distance from the client.
 * Nodes without a location (none declared, and no centroid for their
 * country in the database) go last; so does everything, in config order,
 * when the client's location is unknown. */
#include "geo/geo.h"
#include "upstream/upstream.h"

#include <stdlib.h>

static size_t geo_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                        size_t n, struct ups_node **out)
{
    double key[1024];
    (void)state;
    for (size_t i = 0; i < n; i++) {
        out[i] = in[i];
        if (req->has_location && in[i]->has_location)
            key[i] = -geo_distance_km(req->lat, req->lon, in[i]->lat, in[i]->lon);
        else
            key[i] = -1e9; /* unknown: after every located node, in config order */
    }
    ups_sort_desc(out, key, 0, n);
    return n;
}

const struct ups_policy_ops ups_policy_geo_nearest = {
    .name = "geo_nearest",
    .policy = CONF_POLICY_GEO_NEAREST,
    .create = ups_policy_stateless_create,
    .destroy = ups_policy_stateless_destroy,
    .order = geo_order,
};
