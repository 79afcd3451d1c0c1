/* stream_affinity: weighted rendezvous (highest random weight) hashing of
 * "app/stream" over the eligible nodes. Every node gets a score
 * -weight / ln(u), u a uniform hash of (node name, key) in (0,1); the
 * highest wins and the rest follow by score, so fallbacks are stable too.
 * A publish and every play of a stream meet on one node; adding or removing
 * a node moves only the keys it wins or held; instances with the same
 * config agree, with no shared state (node names, not addresses, are
 * hashed). Golden values in tests/unit/upstream/policy_affinity.c pin the
 * hash across versions. */
#include "upstream/upstream.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* splitmix64's finaliser: spreads FNV's weak low bits over all 64. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t ups_affinity_hash(const char *node, const char *app, const char *stream)
{
    static const unsigned char sep = 0xff; /* never in a node name */
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, node, strlen(node));
    h = fnv1a(h, &sep, 1);
    h = fnv1a(h, app ? app : "", app ? strlen(app) : 0);
    h = fnv1a(h, "/", 1);
    h = fnv1a(h, stream ? stream : "", stream ? strlen(stream) : 0);
    return mix(h);
}

double ups_affinity_score(const char *node, unsigned weight, const char *app, const char *stream)
{
    uint64_t h = ups_affinity_hash(node, app, stream);
    double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0; /* (0,1) */
    return -(double)weight / log(u);
}

static size_t aff_order(void *state, const struct ups_request *req, struct ups_node *const *in,
                        size_t n, struct ups_node **out)
{
    double score[1024];
    (void)state;
    for (size_t i = 0; i < n; i++) {
        score[i] = ups_affinity_score(in[i]->name, in[i]->weight, req->app, req->stream);
        out[i] = in[i];
    }
    ups_sort_desc(out, score, 0, n);
    return n;
}

const struct ups_policy_ops ups_policy_stream_affinity = {
    .name = "stream_affinity",
    .policy = CONF_POLICY_STREAM_AFFINITY,
    .create = ups_policy_stateless_create,
    .destroy = ups_policy_stateless_destroy,
    .order = aff_order,
};
