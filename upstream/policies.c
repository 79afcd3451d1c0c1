/* The table of built-in policies. */
#include "upstream/upstream.h"

#include <stddef.h>
#include <stdlib.h>

static const struct ups_policy_ops *const all[] = {
    &ups_policy_weighted,
    &ups_policy_least_sessions,
    &ups_policy_stream_affinity,
    &ups_policy_geo_nearest,
    &ups_policy_stream_location,
};

const struct ups_policy_ops *ups_policy_find(int policy)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->policy == policy)
            return all[i];
    return NULL;
}

void ups_sort_desc(struct ups_node **nodes, double *key, size_t from, size_t n)
{
    for (size_t i = from + 1; i < n; i++) {
        struct ups_node *x = nodes[i];
        double kx = key[i];
        size_t j = i;
        while (j > from && key[j - 1] < kx) {
            nodes[j] = nodes[j - 1];
            key[j] = key[j - 1];
            j--;
        }
        nodes[j] = x;
        key[j] = kx;
    }
}

void *ups_policy_stateless_create(const struct ups_pool *pool, unsigned n_workers)
{
    (void)pool;
    (void)n_workers;
    return malloc(1); /* non-NULL means success */
}

void ups_policy_stateless_destroy(void *state) { free(state); }
