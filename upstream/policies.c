/* The table of built-in policies. */
#include "upstream/upstream.h"

#include <stddef.h>

static const struct ups_policy_ops *const all[] = {
    &ups_policy_weighted,
    &ups_policy_least_sessions,
    &ups_policy_stream_affinity,
};

const struct ups_policy_ops *ups_policy_find(int policy)
{
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->policy == policy)
            return all[i];
    return NULL;
}
