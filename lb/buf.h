/* A growable byte buffer with a hard limit: bytes are appended at the end
 * and consumed from the front. Memory goes back to the allocator when the
 * buffer empties, so idle sessions hold none. Every append is checked. */
#ifndef LB_BUF_H
#define LB_BUF_H

#include <stddef.h>
#include <stdint.h>

struct lb_buf {
    uint8_t *data;
    size_t len; /* end of the bytes held */
    size_t off; /* consumed from the front */
    size_t cap;
};

/* Room for `more` bytes past len without exceeding `limit` in all. 0, or -1
 * (over the limit, or out of memory). */
int lb_buf_reserve(struct lb_buf *b, size_t more, size_t limit);
/* 0, or -1 without changing b. */
int lb_buf_append(struct lb_buf *b, const void *p, size_t n, size_t limit);
/* Drops n bytes from the front; frees the memory when nothing is left. */
void lb_buf_consume(struct lb_buf *b, size_t n);
void lb_buf_free(struct lb_buf *b);

static inline size_t lb_buf_pending(const struct lb_buf *b) { return b->len - b->off; }
static inline const uint8_t *lb_buf_head(const struct lb_buf *b) { return b->data + b->off; }

#endif
