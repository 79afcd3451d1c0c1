/* Moving one direction of a session once the phase is done with it:
 * src -> pipe -> dst with splice(2) through the transports, or a small
 * copy when no pipe can be had (or a transport cannot splice). Each
 * direction is READ (wait for the source), WRITE (bytes in flight, wait
 * for the destination: backpressure, the source is not read), or DONE
 * (EOF seen and passed on). At most one pipe's worth is held. */
#include "lb/session/internal.h"

#include <errno.h>
#include <stdlib.h>

#define COPY_CHUNK (16 * 1024)
#define PUMP_BUDGET (1u << 20) /* bytes per wake-up, so one session can't starve others */

void lb__dir_release(struct lb_session *s, struct lb_dir *d)
{
    if (d->has_pipe) {
        lb_pipe_put(&s->h->pipes, &d->pipe, d->pending == 0);
        d->has_pipe = false;
    }
    free(d->buf);
    d->buf = NULL;
    d->pending = 0;
}

/* A pipe if both transports splice and one is free, else a copy buffer. */
static int take_buffer(struct lb_session *s, struct lb_dir *d, struct lb_conn *src,
                       struct lb_conn *dst)
{
    if (src->ops->can_splice && dst->ops->can_splice && lb_pipe_get(&s->h->pipes, &d->pipe)) {
        d->has_pipe = true;
        return 0;
    }
    s->h->pipes.fallbacks++;
    atomic_fetch_add(&s->h->env->pipe_fallbacks, 1);
    d->buf = malloc(COPY_CHUNK);
    return d->buf ? 0 : -ENOMEM;
}

static ssize_t flush(struct lb_dir *d, struct lb_conn *dst)
{
    while (d->pending > 0) {
        ssize_t n = d->has_pipe ? dst->ops->splice_out(dst, d->pipe.rfd, d->pending)
                                : dst->ops->write(dst, d->buf + d->off, d->pending);
        if (n < 0)
            return n;
        d->pending -= (size_t)n;
        d->off += (size_t)n;
    }
    return 0;
}

static bool pump_dir(struct lb_session *s, struct lb_dir *d, bool c2u)
{
    struct lb_conn *src = c2u ? &s->client : &s->upstream;
    struct lb_conn *dst = c2u ? &s->upstream : &s->client;
    enum lb_reason src_err = c2u ? LB_REASON_CLIENT_ERROR : LB_REASON_UPSTREAM_ERROR;
    enum lb_reason dst_err = c2u ? LB_REASON_UPSTREAM_ERROR : LB_REASON_CLIENT_ERROR;
    size_t moved = 0;

    for (;;) {
        ssize_t n = flush(d, dst);
        if (n == -EAGAIN) {
            d->state = LB_DIR_WRITE;
            return true;
        }
        if (n < 0) {
            lb__close_req(s, dst_err, (int)-n);
            return false;
        }
        lb__dir_release(s, d); /* empty: give the pipe back (idle sessions hold none) */
        if (d->state == LB_DIR_DONE)
            return true;
        if (moved >= PUMP_BUDGET) {
            d->state = LB_DIR_READ;
            return true;
        }
        if (take_buffer(s, d, src, dst) < 0) {
            lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
            return false;
        }
        size_t want = d->has_pipe ? s->h->pipes.pipe_size : COPY_CHUNK;
        n = d->has_pipe ? src->ops->splice_in(src, d->pipe.wfd, want)
                        : src->ops->read(src, d->buf, want);
        if (n == -EAGAIN) {
            lb__dir_release(s, d);
            d->state = LB_DIR_READ;
            return true;
        }
        if (n < 0) {
            lb__close_req(s, src_err, (int)-n);
            return false;
        }
        if (n == 0) { /* EOF: pass the half-close on */
            lb__dir_release(s, d);
            dst->ops->shutdown(dst);
            d->state = LB_DIR_DONE;
            if (s->end_first == LB_REASON_NONE)
                s->end_first = c2u ? LB_REASON_CLIENT_CLOSED : LB_REASON_UPSTREAM_CLOSED;
            return true;
        }
        d->pending = (size_t)n;
        d->off = 0;
        d->bytes += (uint64_t)n;
        moved += (size_t)n;
        s->t_last_ms = lb__now(s);
        /* A short read drained the socket: after flushing, wait for the
         * next readiness instead of paying a syscall for a sure EAGAIN. */
        if ((size_t)n < want)
            moved = PUMP_BUDGET;
    }
}

/* The coalesced direction after a pump: re-arm its flush, and move the
 * source's low-water mark up (batch) or down (quiet: no delay). */
static void coalesce_after(struct lb_session *s, uint64_t moved, bool flush)
{
    struct lb_coalesce *c = &s->coal;
    if (s->u2c.state != LB_DIR_READ) {
        c->due = 0; /* bytes in flight: the client's writable event drives */
        return;
    }
    enum lb_coal_mark m = lb_coalesce_after(c, lb__now(s), moved, flush);
    if (m == LB_COAL_KEEP)
        return;
    int rc = s->upstream.ops->rcvlowat(&s->upstream, m == LB_COAL_HIGH ? LB_COALESCE_LOWAT : 1);
    if (rc < 0) { /* cannot batch this socket: never delay it */
        c->ms = 0;
        c->high = false;
        c->due = 0;
        if (m == LB_COAL_HIGH)
            (void)s->upstream.ops->rcvlowat(&s->upstream, 1);
    }
}

bool lb__pump(struct lb_session *s, struct lb_dir *d, bool c2u)
{
    uint64_t before = d->bytes;
    bool ok = pump_dir(s, d, c2u);
    if (ok && !c2u && s->coal.ms)
        coalesce_after(s, d->bytes - before, false);
    return ok;
}

void lb__coalesce_flush(struct lb_session *s)
{
    s->coal.due = 0;
    if (!s->u2c.pumped || s->u2c.state != LB_DIR_READ)
        return;
    uint64_t before = s->u2c.bytes;
    if (pump_dir(s, &s->u2c, false) && s->coal.ms)
        coalesce_after(s, s->u2c.bytes - before, true);
}
