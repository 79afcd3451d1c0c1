/* A bounded FIFO of finished log lines, the pure part (no locks, no I/O):
 * a byte ring of variable-length entries. A push that does not fit is
 * dropped and counted; the next line that fits carries the count of lines
 * dropped just before it, so the writer can say so in the right place. */
#ifndef LB_LOGQ_H
#define LB_LOGQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lb_logq {
    unsigned char *ring;
    size_t cap;     /* bytes */
    size_t head;    /* next byte to read */
    size_t used;    /* bytes held */
    size_t entries; /* lines held */
    uint32_t dropped_pending; /* dropped since the last line that fitted */
    uint64_t dropped_total;
};

/* One line taken out of the queue. */
struct lb_logq_entry {
    int sink;                /* the caller's tag (main log, access log) */
    uint32_t dropped_before; /* lines dropped just before this one */
    size_t len;
};

/* Returns 0, or -1 when the ring cannot be allocated. */
int lb_logq_init(struct lb_logq *q, size_t cap);
void lb_logq_free(struct lb_logq *q);
/* Copies the line in; false (and counted) when it does not fit. */
bool lb_logq_push(struct lb_logq *q, int sink, const void *line, size_t len);
/* Takes the oldest line into out (out_cap must hold the longest line ever
 * pushed; a longer one is cut to out_cap). False when empty. */
bool lb_logq_pop(struct lb_logq *q, struct lb_logq_entry *e, void *out, size_t out_cap);
/* Lines dropped that no later line has reported yet. */
uint32_t lb_logq_take_pending(struct lb_logq *q);

#endif
