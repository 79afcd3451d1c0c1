/* The session core: owns the client and upstream sockets, their polls, the
 * timer, both directions, the state and the access-log line. Event
 * handlers are the only places a session closes: steps below them ask
 * (lb__close_req) and the handler settles at its end (lb__settle).
 *
 * Before the hand-over a phase (lb/front/) owns the bytes: the core calls
 * it when the side it wants is readable, flushes what it queued, and
 * carries out the action it answers. A direction the phase hands over is
 * pumped (pump.c) once the phase's buffer for it is flushed; when both
 * are, the phase is freed and only splicing remains. */
#include "lb/session/internal.h"

#include "health/streams.h"
#include "health/view.h"
#include "lb/log.h"
#include "lb/net.h"
#include "lb/tls/tls.h"
#include "lb/xprt/tls.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISCARD_CHUNK 4096

static const char *const state_names[] = {
#define X(e, n) n,
    LB_SSTATE_MAP(X)
#undef X
};

/* allowed[from] is the set of states a session may move to. */
#define BIT(x) (1u << (x))
static const unsigned allowed[] = {
    [LB_SS_PROXY] = BIT(LB_SS_TLS) | BIT(LB_SS_FRONT) | BIT(LB_SS_CLOSING),
    [LB_SS_TLS] = BIT(LB_SS_FRONT) | BIT(LB_SS_CLOSING),
    [LB_SS_FRONT] = BIT(LB_SS_DIALING) | BIT(LB_SS_FAILING) | BIT(LB_SS_CLOSING),
    /* DIALING -> FRONT: an early dial whose candidates all failed (the
     * session routes again on the client's command). */
    [LB_SS_DIALING] = BIT(LB_SS_FRONT) | BIT(LB_SS_CONNECTED) | BIT(LB_SS_FAILING) |
                      BIT(LB_SS_CLOSING),
    [LB_SS_CONNECTED] = BIT(LB_SS_DIALING) | BIT(LB_SS_SPLICING) | BIT(LB_SS_FAILING) |
                        BIT(LB_SS_CLOSING),
    [LB_SS_SPLICING] = BIT(LB_SS_CLOSING),
    [LB_SS_FAILING] = BIT(LB_SS_CLOSING),
    [LB_SS_CLOSING] = 0,
};

void lb__set_state(struct lb_session *s, enum lb_sstate to)
{
    if (!(allowed[s->state] & BIT(to))) {
        lb_log_msg(LB_LOG_ERROR, "bug", "session %s: bad transition %s -> %s", s->client_text,
                   state_names[s->state], state_names[to]);
        abort();
    }
    s->state = to;
}

uint64_t lb__now(const struct lb_session *s) { return uv_now(s->h->loop); }

void lb__close_req(struct lb_session *s, enum lb_reason r, int err)
{
    if (s->close_req != LB_REASON_NONE)
        return;
    s->close_req = r;
    s->sys_error = err;
}

static void on_client_event(uv_poll_t *h, int status, int events);
static void on_upstream_event(uv_poll_t *h, int status, int events);
static void client_io(struct lb_session *s, int status, int events);
static void upstream_io(struct lb_session *s, int status, int events);
#define KICK_ROUNDS 8
static void on_timer(uv_timer_t *t);

void lb__apply(struct lb_session *s, struct lb_action a)
{
    switch (a.kind) {
    case LB_ACT_CONTINUE:
        return;
    case LB_ACT_ROUTE:
        lb__route(s);
        return;
    case LB_ACT_DIAL:
        lb__node_failed(s, a.reason, 0);
        return;
    case LB_ACT_SPLICE:
        if (a.dirs & LB_SPLICE_C2U)
            s->c2u.wanted = true;
        if (a.dirs & LB_SPLICE_U2C)
            s->u2c.wanted = true;
        return;
    case LB_ACT_FAIL:
        lb__begin_failing(s, a.reason);
        return;
    case LB_ACT_CLOSE:
        lb__close_req(s, a.reason, 0);
        return;
    case LB_ACT_EARLY:
        lb__route_early(s);
        return;
    case LB_ACT_LET_GO:
        lb__early_let_go(s);
        return;
    }
}

/* Logs refusals at most once a second (all workers together): an address
 * that floods must not flood the log too. */
static void log_refusal(struct lb_session *s, enum lb_perip_verdict v, unsigned limit)
{
    struct lb_env *env = s->h->env;
    uint64_t now = lb__now(s), last = atomic_load(&env->perip_log_ms);
    if (last && now - last < 1000) {
        atomic_fetch_add(&env->perip_unlogged, 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&env->perip_log_ms, &last, now ? now : 1)) {
        atomic_fetch_add(&env->perip_unlogged, 1);
        return;
    }
    char key[64];
    uint64_t more = atomic_exchange(&env->perip_unlogged, 0);
    lb_perip_key_text(&s->ip_key, key, sizeof(key));
    char tail[96] = "";
    if (more)
        snprintf(tail, sizeof(tail), "; %llu other refusals since the last such line",
                 (unsigned long long)more);
    lb_log_msg(LB_LOG_WARN, "per_ip_limit", "refused %s on listener %s: %s=%u reached%s", key,
               s->lst->name,
               v == LB_PERIP_SESSIONS ? "max_sessions_per_ip" : "max_handshakes_per_ip", limit,
               tail);
}

/* The per-address limits, once the client's address is final (after a
 * PROXY header). false: refused, the close is requested. */
static bool admit(struct lb_session *s)
{
    struct lb_env *env = s->h->env;
    unsigned ms = atomic_load(&env->max_sessions_per_ip);
    unsigned mh = atomic_load(&env->max_handshakes_per_ip);
    if ((!ms && !mh) || !env->perip || !lb_perip_key((struct sockaddr *)&s->peer, &s->ip_key))
        return true;
    enum lb_perip_verdict v = lb_perip_enter(env->perip, &s->ip_key, ms, mh);
    if (v == LB_PERIP_OK) {
        s->ip_counted = true;
        return true;
    }
    bool sess = v == LB_PERIP_SESSIONS;
    atomic_fetch_add(&env->perip_refused[sess ? 0 : 1], 1);
    log_refusal(s, v, sess ? ms : mh);
    lb__close_req(s, sess ? LB_REASON_PER_IP_SESSIONS : LB_REASON_PER_IP_HANDSHAKES, 0);
    return false;
}

void lb__front_start(struct lb_session *s)
{
    /* timeouts.handshake runs from accept: a TLS handshake spent some. */
    uint64_t spent = (uv_hrtime() - s->t_accept_ns) / 1000000;
    s->lim.handshake_ms = s->lim.handshake_ms > spent + 1 ? s->lim.handshake_ms - spent : 1;
    lb__set_state(s, LB_SS_FRONT);
    if (s->f.ops->create(&s->f) < 0) {
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
        return;
    }
    s->front_live = true;
    s->f.req.listener = s->lst->name;
    s->f.req.worker = s->h->worker_id;
    s->f.req.streams = &s->streams;
    lb__fill_geo(s, &s->f.req); /* the client's address is final now (PROXY) */
    s->f.now_ms = lb__now(s);
    lb__apply(s, s->f.ops->start(&s->f));
}

/* ---- TLS on the client side ------------------------------------------------ */

static void tls_log(struct lb_session *s, enum lb_log_level lvl, const char *event,
                    const char *detail)
{
    struct lb_logline l;
    lb_log_begin(&l, lvl, event);
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "listener", s->lst->name);
    lb_log_str(&l, "detail", detail);
    lb_log_end(&l);
}

/* After the PROXY header (if any): the TLS handshake, or the front door. */
void lb__after_proxy(struct lb_session *s)
{
    /* The per-address limits, before any TLS: a TLS handshake is part of
     * the pre-route phase and counts as one. */
    if (!admit(s))
        return;
    if (!s->lst->tls) {
        lb__front_start(s);
        return;
    }
    lb__set_state(s, LB_SS_TLS);
}

/* The TLS listener's first byte must start a TLS record (0x16, a
 * handshake); plain RTMP starts with 0x03. Then the handshake itself. */
static void tls_client_step(struct lb_session *s)
{
    char why[200];
    enum lb_tls_result res;

    if (s->client.ops != &lb_xprt_tls) {
        uint8_t b;
        ssize_t n = s->client.ops->peek(&s->client, &b, 1);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            lb_tls_count(LB_TLS_SIDE_CLIENT, LB_TLS_CLOSED, LB_TLS_V_UNKNOWN);
            lb__close_req(s, n == 0 ? LB_REASON_CLIENT_CLOSED_IN_HANDSHAKE : LB_REASON_CLIENT_ERROR,
                          n == 0 ? 0 : (int)-n);
            return;
        }
        if (b != 0x16) {
            snprintf(why, sizeof(why),
                     "not TLS on a TLS listener (first byte 0x%02x%s): closed", b,
                     b == 0x03 ? ", plain RTMP: the client should use rtmps://" : "");
            tls_log(s, LB_LOG_WARN, "tls_wrong_protocol", why);
            lb_tls_count(LB_TLS_SIDE_CLIENT, LB_TLS_NOT_TLS, LB_TLS_V_UNKNOWN);
            lb__close_req(s, LB_REASON_NOT_TLS, 0);
            return;
        }
        const struct lb_tls_set *set = s->snap->tls;
        const struct lb_tls_server *srv =
            set && s->lst->index < set->n_listeners ? &set->listeners[s->lst->index] : NULL;
        if (!srv || !srv->n_certs || lb_tls_accept(&s->client, srv->certs[0].ctx) < 0) {
            lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
            return;
        }
    }
    int rc = lb_tls_handshake(&s->client, LB_TLS_SIDE_CLIENT, &res, why, sizeof(why));
    if (rc == -EAGAIN)
        return;
    if (rc < 0) {
        tls_log(s, LB_LOG_WARN, "tls_handshake_failed", why);
        lb__close_req(s, res == LB_TLS_CLOSED ? LB_REASON_CLIENT_CLOSED_IN_HANDSHAKE
                                              : LB_REASON_TLS_HANDSHAKE, 0);
        return;
    }
    lb__front_start(s);
}

/* ---- settling after each event -------------------------------------------- */

/* Writes what the phase queued, as far as the socket takes it. 0, or the
 * write's error (negative errno): the caller decides what it ends. */
static int flush_buf(struct lb_buf *b, struct lb_conn *c)
{
    while (lb_buf_pending(b)) {
        ssize_t n = c->ops->write(c, lb_buf_head(b), lb_buf_pending(b));
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        lb_buf_consume(b, (size_t)n);
    }
    return 0;
}

/* Batching origin -> client (struct lb_coalesce): plays of an rtmp
 * listener (never a publisher's stream), every session of a tcp listener
 * that asks for it; raw sockets only. Before the phase goes (its role). */
static void coalesce_begin(struct lb_session *s)
{
    const struct lb_env *env = s->h->env;
    int32_t ms = s->lst->index < env->n_lstats
                     ? atomic_load(&env->lstats[s->lst->index].coalesce_ms)
                     : 0;
    if (ms <= 0 || !s->upstream.ops->rcvlowat || (s->rtmp_mode && s->f.role != CONF_ROLE_PLAY))
        return;
    lb_coalesce_start(&s->coal, (uint32_t)ms);
}

/* A direction the phase handed over starts once its buffer is out. */
static void promote(struct lb_session *s)
{
    if (s->c2u.wanted && !s->c2u.pumped && !lb_buf_pending(&s->f.to_upstream)) {
        s->c2u.pumped = true;
        s->c2u.state = LB_DIR_READ;
    }
    if (s->u2c.wanted && !s->u2c.pumped && !lb_buf_pending(&s->f.to_client)) {
        s->u2c.pumped = true;
        s->u2c.state = LB_DIR_READ;
    }
    if (s->state == LB_SS_CONNECTED && s->c2u.pumped && s->u2c.pumped) {
        coalesce_begin(s);
        lb__dialq_leave(s); /* the node took the session: its dial is done */
        lb__front_free(s); /* the hand-over: only splicing from here */
        lb__set_state(s, LB_SS_SPLICING);
        s->t_last_ms = lb__now(s);
    }
}

static uint64_t min_due(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

static uint64_t next_due(const struct lb_session *s)
{
    uint64_t idle = (uint64_t)atomic_load(&s->h->env->idle_ms);
    switch (s->state) {
    case LB_SS_PROXY:
    case LB_SS_TLS:
        return s->hs_deadline;
    case LB_SS_FRONT:
    case LB_SS_CONNECTED:
        return s->f.deadline_ms;
    case LB_SS_DIALING:
        return min_due(s->dial_deadline, s->f.deadline_ms);
    case LB_SS_SPLICING:
        return min_due(min_due(idle ? s->t_last_ms + idle : 0, s->half_deadline), s->coal.due);
    case LB_SS_FAILING:
        return s->linger_deadline;
    default:
        return 0;
    }
}

static int pending_reader(const struct lb_session *s);

static void arm_timer(struct lb_session *s)
{
    uint64_t due = next_due(s), now = lb__now(s);
    /* Bytes left inside TLS after the rounds settle allows: soon. */
    if (pending_reader(s))
        due = min_due(due, now + 1);
    if (!due) {
        if (s->timer_due)
            uv_timer_stop(&s->timer);
        s->timer_due = 0;
        return;
    }
    if (s->timer_due && s->timer_due <= due)
        return; /* fires early and re-arms: no timer work per event */
    s->timer_due = due;
    /* Never 0: a timer re-armed at 0 from its own callback runs again in
     * the same pass of the loop. */
    uv_timer_start(&s->timer, on_timer, due > now ? due - now : 1, 0);
}

static void set_poll(uv_poll_t *h, int *cur, int want, uv_poll_cb cb)
{
    if (want == *cur)
        return;
    if (want)
        uv_poll_start(h, want, cb);
    else
        uv_poll_stop(h);
    *cur = want;
}

static void half_close_check(struct lb_session *s)
{
    if (s->state != LB_SS_SPLICING || !s->rtmp_mode || s->half_deadline)
        return;
    if ((s->c2u.state == LB_DIR_DONE) != (s->u2c.state == LB_DIR_DONE)) {
        uint64_t hc = (uint64_t)atomic_load(&s->h->env->half_close_ms);
        if (hc)
            s->half_deadline = lb__now(s) + hc;
    }
}

/* Whether the client / the node is to be read now (bytes waiting inside a
 * TLS transport are read without a poll event). */
static bool client_reads(const struct lb_session *s, unsigned wants)
{
    return s->state == LB_SS_FAILING || (s->c2u.pumped && s->c2u.state == LB_DIR_READ) ||
           (wants & LB_WANT_CLIENT);
}

static bool upstream_reads(const struct lb_session *s, unsigned wants)
{
    return s->upoll_open && s->state != LB_SS_DIALING &&
           ((s->u2c.pumped && s->u2c.state == LB_DIR_READ) || (wants & LB_WANT_UPSTREAM));
}

/* 1: the client, 2: the node has bytes waiting inside its transport that
 * the session would read now. */
static int pending_reader(const struct lb_session *s)
{
    /* Raw sockets (no pending op) leave at the first two tests. */
    bool cp = lb_conn_pending(&s->client), up = lb_conn_pending(&s->upstream);
    if ((!cp && !up) || s->state == LB_SS_PROXY || s->state == LB_SS_TLS ||
        s->state == LB_SS_CLOSING)
        return 0;
    unsigned wants = s->front_live ? s->f.ops->wants(&s->f) : 0;
    if (cp && client_reads(s, wants))
        return 1;
    if (up && upstream_reads(s, wants))
        return 2;
    return 0;
}

static void rearm(struct lb_session *s)
{
    int cev = 0, uev = 0;
    unsigned wants = s->front_live ? s->f.ops->wants(&s->f) : 0;
    /* The events a read or a write waits for (a TLS read may need the
     * socket writable); UV_READABLE and UV_WRITABLE on raw sockets. */
    int crd = lb_conn_want(&s->client, UV_READABLE), cwr = lb_conn_want(&s->client, UV_WRITABLE);
    int urd = lb_conn_want(&s->upstream, UV_READABLE);
    int uwr = lb_conn_want(&s->upstream, UV_WRITABLE);

    if (s->state == LB_SS_TLS) {
        cev = s->client.ops == &lb_xprt_tls ? lb_tls_hs_events(&s->client) : UV_READABLE;
    } else if (s->state == LB_SS_PROXY || s->state == LB_SS_FAILING) {
        cev = s->state == LB_SS_FAILING ? crd : UV_READABLE;
        if (s->state == LB_SS_FAILING && lb_buf_pending(&s->f.to_client))
            cev |= cwr;
    } else {
        if (lb_buf_pending(&s->f.to_client))
            cev |= cwr;
        if (client_reads(s, wants))
            cev |= crd;
        if (s->u2c.pumped && s->u2c.state == LB_DIR_WRITE)
            cev |= cwr;
        if (s->upoll_open && s->state != LB_SS_DIALING) {
            if (lb_buf_pending(&s->f.to_upstream))
                uev |= uwr;
            if (upstream_reads(s, wants))
                uev |= urd;
            if (s->c2u.pumped && s->c2u.state == LB_DIR_WRITE)
                uev |= uwr;
        }
    }
    set_poll(&s->cpoll, &s->cev, cev, on_client_event);
    if (s->upoll_open && s->state != LB_SS_DIALING)
        set_poll(&s->upoll, &s->uev, uev, on_upstream_event);
}

/* After every event: flush, promote, close if asked or finished, re-poll. */
void lb__settle(struct lb_session *s)
{
    if (s->state == LB_SS_CLOSING)
        return;
    /* Twice: a flush may complete a hand-over whose pump then has work. */
    for (int round = 0; round < 2 && s->close_req == LB_REASON_NONE; round++) {
        int err = flush_buf(&s->f.to_client, &s->client);
        if (err < 0) {
            lb__close_req(s, LB_REASON_CLIENT_ERROR, -err);
            break;
        }
        if (s->upoll_open && s->state == LB_SS_CONNECTED &&
            (err = flush_buf(&s->f.to_upstream, &s->upstream)) < 0) {
            if (!s->early) {
                lb__close_req(s, LB_REASON_UPSTREAM_ERROR, -err);
                break;
            }
            /* The client has asked nothing of this node yet: the next one. */
            lb__early_write_failed(s, -err);
            continue;
        }
        promote(s);
    }
    /* No RTMP peer half-closes on purpose: a client gone before the
     * hand-over is gone (not the origin's fault when it closes next). */
    if (s->rtmp_mode && s->front_live && s->c2u.state == LB_DIR_DONE)
        lb__close_req(s, LB_REASON_CLIENT_CLOSED, 0);
    if (s->state == LB_SS_FAILING && s->close_req == LB_REASON_NONE &&
        !lb_buf_pending(&s->f.to_client) && !s->client_shut) {
        s->client.ops->shutdown(&s->client);
        s->client_shut = true;
    }
    if (s->close_req != LB_REASON_NONE) {
        /* A failing session ends with the reason it failed for. */
        lb__close_now(s, s->state == LB_SS_FAILING ? s->reason : s->close_req);
        return;
    }
    if (s->state == LB_SS_SPLICING && s->c2u.state == LB_DIR_DONE &&
        s->u2c.state == LB_DIR_DONE) {
        lb__close_now(s, s->end_first != LB_REASON_NONE ? s->end_first : LB_REASON_CLIENT_CLOSED);
        return;
    }
    half_close_check(s);
    /* Plaintext waiting inside a TLS transport: no poll event will say
     * so. Read it now, a bounded number of rounds (then the timer). */
    int who = s->kick_depth < KICK_ROUNDS ? pending_reader(s) : 0;
    if (who) {
        s->kick_depth++;
        if (who == 1)
            client_io(s, 0, lb_conn_want(&s->client, UV_READABLE));
        else
            upstream_io(s, 0, lb_conn_want(&s->upstream, UV_READABLE));
        lb__settle(s);
        s->kick_depth--;
        return;
    }
    rearm(s);
    arm_timer(s);
}

/* ---- events ------------------------------------------------------------------ */

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err ? err : ECONNRESET;
}

/* FAILING: read and drop what the client still sends; its EOF ends it. */
static void discard_client(struct lb_session *s)
{
    uint8_t sink[DISCARD_CHUNK];
    for (int i = 0; i < 64; i++) {
        ssize_t n = s->client.ops->read(&s->client, sink, sizeof(sink));
        if (n == -EAGAIN)
            return;
        if (n <= 0) { /* what is still queued goes first, if it can */
            if (lb_buf_pending(&s->f.to_client))
                (void)flush_buf(&s->f.to_client, &s->client);
            lb__close_req(s, s->reason, 0);
            return;
        }
    }
}

static void client_io(struct lb_session *s, int status, int events)
{
    int rd = lb_conn_want(&s->client, UV_READABLE), wr = lb_conn_want(&s->client, UV_WRITABLE);

    if (status < 0) { /* POLLERR: libuv stopped the handle */
        s->cev = 0;
        if (s->state == LB_SS_TLS)
            lb_tls_count(LB_TLS_SIDE_CLIENT, LB_TLS_CLOSED, LB_TLS_V_UNKNOWN);
        lb__close_req(s, s->state == LB_SS_FAILING ? s->reason : LB_REASON_CLIENT_ERROR,
                      sock_error(s->client.fd));
    } else if (s->state == LB_SS_PROXY) {
        lb__proxy_readable(s);
    } else if (s->state == LB_SS_TLS) {
        tls_client_step(s);
    } else if (s->state == LB_SS_FAILING) {
        if (events & rd)
            discard_client(s);
    } else {
        if ((events & rd) && s->c2u.pumped && s->c2u.state == LB_DIR_READ)
            lb__pump(s, &s->c2u, true);
        else if ((events & rd) && s->front_live && (s->f.ops->wants(&s->f) & LB_WANT_CLIENT)) {
            s->f.now_ms = lb__now(s);
            lb__apply(s, s->f.ops->on_client_data(&s->f));
        }
        if ((events & wr) && s->close_req == LB_REASON_NONE && s->u2c.pumped &&
            s->u2c.state == LB_DIR_WRITE)
            lb__pump(s, &s->u2c, false);
    }
}

static void on_client_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    client_io(s, status, events);
    lb__settle(s);
}

static void on_upstream_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    upstream_io(s, status, events);
    lb__settle(s);
}

static void upstream_io(struct lb_session *s, int status, int events)
{
    int rd = lb_conn_want(&s->upstream, UV_READABLE), wr = lb_conn_want(&s->upstream, UV_WRITABLE);

    if (status < 0) {
        s->uev = 0;
        int err = sock_error(s->upstream.fd);
        if (s->u2c.pumped || !s->front_live) {
            lb__close_req(s, LB_REASON_UPSTREAM_ERROR, err);
        } else {
            /* Let the phase tell the client: it reads the error as EOF. */
            s->f.now_ms = lb__now(s);
            lb__apply(s, s->f.ops->on_upstream_data(&s->f));
            if (s->state == LB_SS_CONNECTED && s->close_req == LB_REASON_NONE && s->early)
                lb__early_write_failed(s, err); /* the client asked nothing of it yet */
            else if (s->state == LB_SS_CONNECTED && s->close_req == LB_REASON_NONE)
                lb__close_req(s, LB_REASON_UPSTREAM_ERROR, err);
        }
    } else {
        if ((events & rd) && s->dial_slot) /* the node answers: it accepted us */
            lb__dialq_leave(s);
        if ((events & rd) && s->u2c.pumped && s->u2c.state == LB_DIR_READ)
            lb__pump(s, &s->u2c, false);
        else if ((events & rd) && s->front_live && (s->f.ops->wants(&s->f) & LB_WANT_UPSTREAM)) {
            s->f.now_ms = lb__now(s);
            lb__apply(s, s->f.ops->on_upstream_data(&s->f));
        }
        if ((events & wr) && s->close_req == LB_REASON_NONE && s->c2u.pumped &&
            s->c2u.state == LB_DIR_WRITE && s->state != LB_SS_DIALING)
            lb__pump(s, &s->c2u, true);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct lb_session *s = t->data;
    uint64_t now = lb__now(s);
    uint64_t idle = (uint64_t)atomic_load(&s->h->env->idle_ms);

    s->timer_due = 0;
    int who = pending_reader(s);
    if (who == 1)
        client_io(s, 0, lb_conn_want(&s->client, UV_READABLE));
    else if (who == 2)
        upstream_io(s, 0, lb_conn_want(&s->upstream, UV_READABLE));
    if (s->close_req != LB_REASON_NONE || s->state == LB_SS_CLOSING) {
        lb__settle(s);
        return;
    }
    switch (s->state) {
    case LB_SS_TLS:
        if (now >= s->hs_deadline) {
            lb_tls_count(LB_TLS_SIDE_CLIENT, LB_TLS_TIMEOUT, lb_tls_conn_version(&s->client));
            tls_log(s, LB_LOG_WARN, "tls_handshake_failed",
                    "no complete TLS handshake within timeouts.handshake");
            lb__close_req(s, LB_REASON_TLS_HANDSHAKE, 0);
        }
        break;
    case LB_SS_PROXY:
        if (now >= s->hs_deadline) {
            lb_log_msg(LB_LOG_WARN, "proxy_protocol",
                       "client %s: no complete PROXY header within timeouts.handshake",
                       s->client_text);
            lb__close_req(s, LB_REASON_PROXY_TIMEOUT, 0);
        }
        break;
    case LB_SS_DIALING:
        if (s->dial_queued && now >= s->dial_deadline) {
            lb__dialq_timeout(s);
            break;
        }
        if (s->dial_deadline && now >= s->dial_deadline && s->upoll_open) {
            if (s->u_tls_hs) {
                lb_tls_count(LB_TLS_SIDE_ORIGIN, LB_TLS_TIMEOUT, LB_TLS_V_UNKNOWN);
                snprintf(s->fail_detail, sizeof(s->fail_detail),
                         "did not finish the TLS handshake in time (timeouts.connect)");
                lb__node_failed(s, LB_REASON_ORIGIN_TLS, 0);
            } else {
                lb__node_failed(s, LB_REASON_DIAL_FAILED, ETIMEDOUT);
            }
            break;
        }
        __attribute__((fallthrough)); /* the phase's own deadline */
    case LB_SS_FRONT:
    case LB_SS_CONNECTED:
        if (s->front_live && s->f.deadline_ms && now >= s->f.deadline_ms) {
            s->f.now_ms = now;
            lb__apply(s, s->f.ops->on_timer(&s->f));
            /* A phase that let its deadline pass without moving it has no
             * use for the timer: never spin on a due deadline. */
            if (s->front_live && s->f.deadline_ms && now >= s->f.deadline_ms)
                s->f.deadline_ms = 0;
        }
        break;
    case LB_SS_SPLICING:
        if (s->coal.due && now >= s->coal.due) {
            lb__coalesce_flush(s);
            if (s->close_req != LB_REASON_NONE)
                break;
        }
        if (s->half_deadline && now >= s->half_deadline)
            lb__close_req(s, LB_REASON_HALF_CLOSED, 0);
        else if (idle && now - s->t_last_ms >= idle)
            lb__close_req(s, LB_REASON_IDLE_TIMEOUT, 0);
        break;
    case LB_SS_FAILING:
        if (now >= s->linger_deadline)
            lb__close_req(s, s->reason, 0);
        break;
    default:
        break;
    }
    lb__settle(s);
}

/* ---- start ---------------------------------------------------------------- */

void lb_session_start(struct lb_shost *h, const struct lb_listen_info *l, int fd,
                      const struct sockaddr *sa, socklen_t salen)
{
    struct lb_env *env = h->env;
    struct lb_session *s = calloc(1, sizeof(*s));
    int one = 1;

    if (!s || uv_timer_init(h->loop, &s->timer) < 0) {
        free(s);
        close(fd);
        atomic_fetch_sub(&env->sessions, 1);
        return;
    }
    s->timer.data = s;
    if (uv_poll_init_socket(h->loop, &s->cpoll, fd) < 0) {
        /* The timer is a handle already: it must be closed, not freed. */
        s->h = h;
        s->state = LB_SS_CLOSING;
        s->open_handles = 1;
        h->n_sessions++;
        close(fd);
        atomic_fetch_sub(&env->sessions, 1);
        uv_close((uv_handle_t *)&s->timer, lb__on_handle_closed);
        return;
    }
    s->cpoll.data = s;
    s->open_handles = 2;
    s->h = h;
    s->lst = l;
    s->client = (struct lb_conn){.ops = &lb_xprt_raw, .fd = fd};
    s->upstream = (struct lb_conn){.ops = &lb_xprt_raw, .fd = -1};
    s->t_accept_ns = uv_hrtime();
    s->preroute_us = -1;
    memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
    lb_sockaddr_text(sa, s->client_text, sizeof(s->client_text));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->snap = ups_snapshot_ref(h->snap);
    s->streams = hc_index_view(env->index);
    s->rtmp_mode = l->mode == CONF_MODE_RTMP || l->mode == CONF_MODE_HTTP;
    s->f.ops = l->phase                     ? l->phase
               : l->mode == CONF_MODE_RTMP ? &lb_phase_rtmp
               : l->mode == CONF_MODE_HTTP ? &lb_phase_http
                                           : &lb_phase_tcp;
    s->f.http = l->http;
    s->f.peer = (const struct sockaddr *)&s->peer;
    s->f.client = &s->client;
    s->lim = env->lim;
    s->lim.handshake_ms = (uint64_t)atomic_load(&env->handshake_ms);
    s->lim.connect_ms = (uint64_t)atomic_load(&env->connect_ms);
    s->lim.takeover_ms = (uint64_t)atomic_load(&env->takeover_ms);
    s->lim.idle_ms = (uint64_t)atomic_load(&env->idle_ms);
    s->f.lim = &s->lim;
    s->f.snap = s->snap;
    s->f.client_text = s->client_text;
    s->f.pubreg = env->pubreg;

    s->next = h->sessions;
    if (h->sessions)
        h->sessions->prev = s;
    h->sessions = s;
    h->n_sessions++;

    s->hs_deadline = lb__now(s) + (uint64_t)atomic_load(&env->handshake_ms);
    if (l->proxy_protocol != CONF_PP_OFF) {
        s->state = LB_SS_PROXY;
        if (lb__proxy_begin(s) < 0)
            lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
    } else {
        s->state = LB_SS_PROXY; /* PROXY -> [TLS ->] FRONT is the one way in */
        lb__after_proxy(s);
    }
    lb__settle(s);
}
