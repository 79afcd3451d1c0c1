/* Shared by the files of the session core only. */
#ifndef LB_SESSION_INTERNAL_H
#define LB_SESSION_INTERNAL_H

#include "lb/session/session.h"

/* session.c */
void lb__set_state(struct lb_session *s, enum lb_sstate to);
/* Asks for the close; the event handler that runs this step closes. */
void lb__close_req(struct lb_session *s, enum lb_reason r, int err);
uint64_t lb__now(const struct lb_session *s);
void lb__apply(struct lb_session *s, struct lb_action a);
void lb__front_start(struct lb_session *s);
/* PROXY header done (or none): the TLS handshake or the front door. */
void lb__after_proxy(struct lb_session *s);
void lb__settle(struct lb_session *s);
void lb__upoll_close(struct lb_session *s, bool redial);

/* close.c */
void lb__close_now(struct lb_session *s, enum lb_reason r);
/* FAIL: the node's leg goes; the queued error drains, then a linger. */
void lb__begin_failing(struct lb_session *s, enum lb_reason r);
void lb__on_handle_closed(uv_handle_t *handle);
/* The phase and its buffers go (hand-over, or the end). */
void lb__front_free(struct lb_session *s);

/* pump.c: moves one direction; false when the session must close (the
 * close is requested). */
bool lb__pump(struct lb_session *s, struct lb_dir *d, bool c2u);
void lb__dir_release(struct lb_session *s, struct lb_dir *d);

/* pump.c: a flush of the coalesced direction (the timer's). */
void lb__coalesce_flush(struct lb_session *s);

/* coalesce.c: pure. What to do with the source's low-water mark after a
 * pump of the coalesced direction that left it waiting for its source;
 * moved: bytes that pump read; flush: the timer ran it. */
enum lb_coal_mark { LB_COAL_KEEP, LB_COAL_HIGH, LB_COAL_LOW };
void lb_coalesce_start(struct lb_coalesce *c, uint32_t ms);
uint64_t lb_coalesce_due(uint64_t now, uint32_t ms);
enum lb_coal_mark lb_coalesce_after(struct lb_coalesce *c, uint64_t now, uint64_t moved,
                                    bool flush);

/* dialq.c: storm protection. lb__dialq_take: true with a dial slot of n
 * taken (dial now); false: s waits in the queue (s->dial_queued) or, the
 * queue being full, must skip n (s->dial_queued false). */
bool lb__dialq_take(struct lb_session *s, struct ups_node *n);
/* The slot or the place in the queue goes (dial done, failed, or the end). */
void lb__dialq_leave(struct lb_session *s);
/* DIALING, waiting, its dial deadline passed: the next candidate. */
void lb__dialq_timeout(struct lb_session *s);

/* dial.c */
/* The client's country, continent and location, into req and s. */
void lb__fill_geo(struct lb_session *s, struct ups_request *req);
void lb__route(struct lb_session *s);
/* The phase's EARLY: dial the listener's certain route now, if any. */
void lb__route_early(struct lb_session *s);
/* An early dial ends (s->early just went false): its outcome counted for
 * the listener's metrics, its place under limits.max_early_dials freed. */
void lb__early_count(struct lb_session *s, enum lb_early_outcome o);
/* The early leg goes, not a failure (LB_ACT_LET_GO, the operator closed
 * its node): the session routes on the client's command. */
void lb__early_let_go(struct lb_session *s);
/* A write to the early leg failed, or its socket reported an error the
 * phase did not read: the node's fault (next candidate). */
void lb__early_write_failed(struct lb_session *s, int err);
void lb__dial_next(struct lb_session *s);
/* Connects to s->node (its dial slot taken). */
void lb__dial_start(struct lb_session *s);
/* The node failed this session (dial or handshake): passive failure, log,
 * next candidate. */
void lb__node_failed(struct lb_session *s, enum lb_reason why, int err);
void lb__on_dial_event(uv_poll_t *h, int status, int events);

/* proxy.c: -1 out of memory */
int lb__proxy_begin(struct lb_session *s);
void lb__proxy_readable(struct lb_session *s);
size_t lb__proxy_header_out(struct lb_session *s, uint8_t *out, size_t cap);

#endif
