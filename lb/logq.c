#include "lb/logq.h"

#include <stdlib.h>
#include <string.h>

/* Each entry: a header, then len bytes; both may wrap around the end. */
struct hdr {
    uint32_t len;
    uint32_t dropped_before;
    int32_t sink;
};

int lb_logq_init(struct lb_logq *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->ring = malloc(cap);
    if (!q->ring)
        return -1;
    q->cap = cap;
    return 0;
}

void lb_logq_free(struct lb_logq *q)
{
    free(q->ring);
    memset(q, 0, sizeof(*q));
}

static void put(struct lb_logq *q, size_t at, const void *p, size_t n)
{
    at %= q->cap;
    size_t first = q->cap - at < n ? q->cap - at : n;
    memcpy(q->ring + at, p, first);
    memcpy(q->ring, (const unsigned char *)p + first, n - first);
}

static void get(const struct lb_logq *q, size_t at, void *p, size_t n)
{
    at %= q->cap;
    size_t first = q->cap - at < n ? q->cap - at : n;
    memcpy(p, q->ring + at, first);
    memcpy((unsigned char *)p + first, q->ring, n - first);
}

bool lb_logq_push(struct lb_logq *q, int sink, const void *line, size_t len)
{
    size_t need = sizeof(struct hdr) + len;
    if (len > UINT32_MAX || need > q->cap - q->used) {
        if (q->dropped_pending < UINT32_MAX)
            q->dropped_pending++;
        q->dropped_total++;
        return false;
    }
    struct hdr h = {(uint32_t)len, q->dropped_pending, sink};
    size_t tail = q->head + q->used;
    put(q, tail, &h, sizeof(h));
    put(q, tail + sizeof(h), line, len);
    q->used += need;
    q->entries++;
    q->dropped_pending = 0;
    return true;
}

bool lb_logq_pop(struct lb_logq *q, struct lb_logq_entry *e, void *out, size_t out_cap)
{
    struct hdr h;
    if (!q->entries)
        return false;
    get(q, q->head, &h, sizeof(h));
    e->sink = h.sink;
    e->dropped_before = h.dropped_before;
    e->len = h.len < out_cap ? h.len : out_cap;
    get(q, q->head + sizeof(h), out, e->len);
    q->head = (q->head + sizeof(h) + h.len) % q->cap;
    q->used -= sizeof(h) + h.len;
    q->entries--;
    return true;
}

uint32_t lb_logq_take_pending(struct lb_logq *q)
{
    uint32_t n = q->dropped_pending;
    q->dropped_pending = 0;
    return n;
}
