/* Storm protection: at most max_dials dials in flight to a node from all
 * workers together (an atomic count in the node's live state), so a burst
 * of new sessions reaches an origin at a pace its listen queue absorbs. A
 * dial is in flight from connect() until the node answers (its first byte:
 * it accepted the connection, which left its listen queue), takes the
 * session (the hand-over, for protocols where the client speaks first), or
 * fails it. Sessions beyond the limit wait in
 * their worker's queue, oldest first, up to dial_queue per node (all
 * workers); a full queue sends the session to its next candidate, and so
 * does its dial deadline (dial.c attempt_ms: timeouts.connect from when it
 * began to wait; the last candidate of an rtmp or http session, its
 * handshake deadline).
 * Slots free on any worker, so while sessions wait a 1 ms tick retries. */
#include "lb/session/internal.h"

#include "lb/log.h"
#include "upstream/upstream.h"

#include <errno.h>

#define TICK_MS 1

static void tick(uv_timer_t *t);

/* A slot of n, if one is free. */
static bool take_slot(struct ups_node *n)
{
    unsigned cur = atomic_load(&n->live->dialing);
    while (cur < n->max_dials)
        if (atomic_compare_exchange_weak(&n->live->dialing, &cur, cur + 1))
            return true;
    return false;
}

static void unlink_queued(struct lb_session *s)
{
    struct lb_shost *h = s->h;
    if (s->dq_prev)
        s->dq_prev->dq_next = s->dq_next;
    else
        h->dq_head = s->dq_next;
    if (s->dq_next)
        s->dq_next->dq_prev = s->dq_prev;
    else
        h->dq_tail = s->dq_prev;
    s->dq_prev = s->dq_next = NULL;
    s->dial_queued = false;
    h->n_dq--;
    atomic_fetch_sub(&s->node->live->dial_waiting, 1);
    if (!h->n_dq && h->dq_timer_init)
        uv_timer_stop(&h->dq_timer);
}

bool lb__dialq_take(struct lb_session *s, struct ups_node *n)
{
    struct lb_shost *h = s->h;
    if (!n->max_dials || take_slot(n)) {
        s->dial_slot = n->max_dials != 0;
        return true;
    }
    if (atomic_fetch_add(&n->live->dial_waiting, 1) >= n->dial_queue) {
        atomic_fetch_sub(&n->live->dial_waiting, 1);
        atomic_fetch_add(&n->live->dial_queue_full, 1);
        return false;
    }
    if (!h->dq_timer_init) {
        if (uv_timer_init(h->loop, &h->dq_timer) < 0) {
            atomic_fetch_sub(&n->live->dial_waiting, 1);
            s->dial_slot = false;
            return true; /* no tick: dial at once rather than wait forever */
        }
        h->dq_timer.data = h;
        h->dq_timer_init = true;
    }
    s->dial_queued = true;
    s->dial_queued_ns = uv_hrtime();
    s->dq_prev = h->dq_tail;
    s->dq_next = NULL;
    if (h->dq_tail)
        h->dq_tail->dq_next = s;
    else
        h->dq_head = s;
    h->dq_tail = s;
    if (h->n_dq++ == 0)
        uv_timer_start(&h->dq_timer, tick, TICK_MS, TICK_MS);
    atomic_fetch_add(&n->live->dial_waits_total, 1);
    return false;
}

static void count_wait(struct lb_session *s)
{
    uint64_t us = (uv_hrtime() - s->dial_queued_ns) / 1000;
    atomic_fetch_add(&s->node->live->dial_wait_us_total, us);
}

void lb__dialq_leave(struct lb_session *s)
{
    if (s->dial_queued) {
        count_wait(s);
        unlink_queued(s);
    }
    if (s->dial_slot) {
        s->dial_slot = false;
        if (s->node)
            atomic_fetch_sub(&s->node->live->dialing, 1);
    }
}

void lb__dialq_timeout(struct lb_session *s)
{
    struct ups_node *n = s->node;
    atomic_fetch_add(&n->live->dial_wait_timeouts, 1);
    lb_log_msg(LB_LOG_WARN, "dial_queue",
               "client %s: node %s had no free dial slot (max_dials %u) in time; "
               "next candidate",
               s->client_text, n->name, n->max_dials);
    lb__dialq_leave(s);
    ups_node_release(n);
    s->node = NULL;
    s->f.node = NULL;
    s->dial_deadline = 0;
    lb__dial_next(s);
}

/* Oldest first: each waiting session whose node has a free slot dials. A
 * dial may fail at once and queue the session again (at the tail): the
 * walk stops at the tail it started with. */
static void tick(uv_timer_t *t)
{
    struct lb_shost *h = t->data;
    struct lb_session *last = h->dq_tail;
    struct lb_session *s = h->dq_head;
    while (s) {
        struct lb_session *next = s == last ? NULL : s->dq_next;
        if (take_slot(s->node)) {
            count_wait(s);
            unlink_queued(s);
            s->dial_slot = true;
            lb__dial_start(s);
            lb__settle(s);
        }
        s = next;
    }
}

void lb_dialq_close(struct lb_shost *h)
{
    if (h->dq_timer_init)
        uv_close((uv_handle_t *)&h->dq_timer, NULL);
    h->dq_timer_init = false;
}
