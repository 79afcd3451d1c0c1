#include "lb/front/front.h"

ssize_t lb_front_read_client(struct lb_front *f, void *buf, size_t len)
{
    ssize_t n = lb_conn_read(f->client, buf, len);
    if (n > 0) {
        f->client_bytes += (uint64_t)n;
        f->client->ops->quickack(f->client);
    }
    return n;
}

ssize_t lb_front_read_upstream(struct lb_front *f, void *buf, size_t len)
{
    ssize_t n = lb_conn_read(f->upstream, buf, len);
    if (n > 0) {
        f->upstream_bytes += (uint64_t)n;
        f->upstream->ops->quickack(f->upstream);
    }
    return n;
}
