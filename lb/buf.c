#include "lb/buf.h"

#include <stdlib.h>
#include <string.h>

int lb_buf_reserve(struct lb_buf *b, size_t more, size_t limit)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more <= b->cap)
        return 0;
    if (b->off) { /* reuse what was consumed before growing */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap)
            return 0;
    }
    if (more > limit || b->len > limit - more)
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > limit)
        cap = limit;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int lb_buf_append(struct lb_buf *b, const void *p, size_t n, size_t limit)
{
    if (n == 0)
        return 0;
    if (lb_buf_reserve(b, n, limit) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void lb_buf_consume(struct lb_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        lb_buf_free(b);
}

void lb_buf_free(struct lb_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}
