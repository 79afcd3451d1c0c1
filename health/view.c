#include "health/view.h"

static bool locate(void *ctx, const char *pool, const char *app, const char *stream, char *node,
                   size_t cap)
{
    return hc_index_lookup(ctx, pool, app, stream, node, cap);
}

struct ups_stream_view hc_index_view(struct hc_index *x)
{
    return (struct ups_stream_view){.locate = x ? locate : NULL, .ctx = x};
}
