#include "health/view.h"

static bool locate(void *ctx, const char *pool, const char *app, const char *stream, char *node,
                   size_t cap)
{
    return hc_index_lookup(ctx, pool, app, stream, node, cap);
}

static bool reported(void *ctx, const char *pool, const char *node, const char *app,
                     const char *stream)
{
    return hc_index_reported(ctx, pool, node, app, stream);
}

struct ups_stream_view hc_index_view(struct hc_index *x)
{
    return (struct ups_stream_view){
        .locate = x ? locate : NULL, .reported = x ? reported : NULL, .ctx = x};
}
