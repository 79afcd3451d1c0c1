/* libFuzzer target: a whole RTMP session as the session core drives it.
 * The rtmp phase runs through fake transports while the input, read as a
 * list of events, decides everything the network and the core would: which
 * bytes the client sends and when, which bytes the origin answers and when,
 * how reads are cut, when the core flushes the output buffers, when the
 * clock jumps (deadlines), whether each dial connects or fails, and when
 * either side closes or resets. Routing uses the real router over a real
 * snapshot (connect-routed app, publish by stream_affinity, play by
 * stream_location, a default), so a session can fail over between nodes.
 *
 * Events: one byte OP, kind = OP % 8, arg = OP / 8 (0..31):
 *   0 client bytes  N = 1 + next byte (+ 256 * another byte when arg is odd);
 *                   arg 30: a plain handshake instead (C0 3, C1 and C2 zeros),
 *                   so inputs stay small and mutations land on the commands
 *   1 origin bytes  same (arg 30: S0 S1 S2); only read while a node is connected
 *   2 clock         now += (arg + 1) * 250 ms; on_timer once the deadline passed
 *   3 flush client  the core writes (arg + 1) * 97 bytes of to_client (31: all)
 *   4 flush origin  same for to_upstream
 *   5 client ends   EOF (arg even) or ECONNRESET, after what was sent
 *   6 origin ends   same for the connected node
 *   7 dial outcome  while dialing: connects (arg even) or fails
 * EARLY (the client's C0C1): the simulated core dials a node of pool p at
 * once, unless event 4 with arg 30 said it declines them from then on;
 * the phase's ROUTE then adopts that node when the command confirms the
 * route and no takeover pins another node (on_adopted), or drops it
 * (on_early_gone) and dials afresh; every early candidate failing, or the
 * phase letting the leg go (LET_GO), sends the session back to routing on
 * its command, as the core.
 * The session must never crash, leak, overrun, or answer with an action
 * its state does not allow (ROUTE once a routed node was dialled, SPLICE
 * without a connected node or before the ROUTE took it): those abort. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
    uint8_t buf[1 << 17];
    size_t n, pos;
    size_t piece; /* most bytes one read returns */
    int end;      /* 0: open; else the read result once drained (0 = EOF) */
};

static ssize_t f_read(struct lb_conn *c, void *buf, size_t len)
{
    struct feed *f = c->ctx;
    if (f->pos == f->n)
        return f->end ? (f->end > 0 ? 0 : f->end) : -EAGAIN;
    size_t k = f->n - f->pos;
    if (k > f->piece)
        k = f->piece;
    if (k > len)
        k = len;
    memcpy(buf, f->buf + f->pos, k);
    f->pos += k;
    return (ssize_t)k;
}
static ssize_t f_peek(struct lb_conn *c, void *buf, size_t len)
{
    struct feed *f = c->ctx;
    size_t k = f->n - f->pos < len ? f->n - f->pos : len;
    memcpy(buf, f->buf + f->pos, k);
    return k ? (ssize_t)k : -EAGAIN;
}

static const struct lb_xprt_ops fake = {
    .name = "fake", .read = f_read, .write = fx_write, .shutdown = fx_shutdown,
    .quickack = fx_quickack, .peek = f_peek,
};

static struct ups_snapshot *snapshot(void)
{
    static const char text[] =
        "listeners: [{name: l, address: 127.0.0.1:1935}]\n"
        "pools:\n"
        "  p: {nodes: [{name: a, address: 127.0.0.1:1}, {name: b, address: 127.0.0.1:2},\n"
        "              {name: c, address: 127.0.0.1:3, backup: true}]}\n"
        "  q: {nodes: [{name: d, address: 127.0.0.1:4}]}\n"
        "routes:\n"
        "  - {name: auth, match: {app: auth}, pool: q, route_on: connect}\n"
        "  - {name: pub, match: {role: publish}, pool: p, policy: stream_affinity}\n"
        "  - {name: play, match: {role: play, app: \"live*\"}, pool: p, policy: stream_location}\n"
        "  - {name: rest, match: {stream: \"x*\"}, pool: q}\n";
    static struct ups_snapshot *s;
    return fx_snapshot(&s, text);
}

enum st { S_FRONT, S_DIALING, S_CONNECTED, S_DONE };

struct sim {
    struct lb_front f;
    enum st st;
    struct ups_candidates cands;
    size_t next;
    unsigned spliced;
    struct lb_conn upstream;
    struct feed *of;
    bool early;    /* the node leg was dialled at EARLY; no ROUTE has taken it */
    bool no_early; /* the core declines EARLY */
};

static void apply(struct sim *s, struct lb_action a);

/* The core's lb__dial_next: the next candidate, or the phase hears that
 * every dial failed. Dials wait for a "dial outcome" event. */
static void dial_next(struct sim *s)
{
    if (s->next < s->cands.n) {
        s->f.node = s->cands.node[s->next++];
        s->f.dials++;
        s->f.last_candidate = s->next >= s->cands.n;
        s->st = S_DIALING;
        return;
    }
    s->f.node = NULL;
    if (s->early) { /* as the core: routing waits for the client's command */
        s->early = false;
        s->st = S_FRONT;
        s->f.route = NULL;
        s->f.dials = 0;
        return;
    }
    s->st = S_DIALING; /* as the core: on_dials_failed is called while dialing */
    apply(s, s->f.ops->on_dials_failed(&s->f, s->f.dials ? LB_REASON_DIAL_FAILED
                                                         : LB_REASON_NO_NODE));
}

/* The node leg goes (a drop, or a failure), with what was queued for it. */
static void leg_gone(struct sim *s)
{
    s->f.node = NULL;
    s->f.upstream = NULL;
    s->f.upstream_bytes = 0;
    lb_buf_free(&s->f.to_upstream);
    s->of->n = s->of->pos = 0; /* a new connection: nothing of the old one */
    s->of->end = 0;
}

/* The core's lb__node_failed. */
static void node_failed(struct sim *s, enum lb_reason why)
{
    s->f.last_failure = why == LB_REASON_DIAL_FAILED ? LB_REASON_NONE : why;
    snprintf(s->f.last_failure_text, sizeof(s->f.last_failure_text), "origin %s failed",
             s->f.node ? s->f.node->name : "?");
    leg_gone(s);
    dial_next(s);
}

static void apply(struct sim *s, struct lb_action a)
{
    if (s->st == S_DONE)
        return;
    switch (a.kind) {
    case LB_ACT_CONTINUE:
        return;
    case LB_ACT_ROUTE: {
        if (!s->early && (s->st != S_FRONT || s->f.upstream))
            abort(); /* routing twice, or with a node already dialled */
        s->f.req.now_ms = s->f.now_ms;
        if (s->early) {
            s->early = false;
            const struct ups_route *er = s->f.route;
            const char *pin = s->f.req.pin_node;
            if (s->f.node && ups_route_find(s->f.snap, &s->f.req) == er &&
                (!pin || strcmp(pin, s->f.node->name) == 0)) {
                apply(s, s->f.ops->on_adopted(&s->f)); /* as the core: the early draw stays */
                return;
            }
            s->f.ops->on_early_gone(&s->f); /* dropped: routed afresh */
            leg_gone(s);
            s->st = S_FRONT;
            s->f.dials = 0;
        }
        const struct ups_route *r = ups_route_select(s->f.snap, &s->f.req, &s->cands);
        s->f.route = r;
        s->next = 0;
        if (!r) {
            s->st = S_DIALING;
            apply(s, s->f.ops->on_dials_failed(&s->f, LB_REASON_NO_ROUTE));
            return;
        }
        dial_next(s);
        return;
    }
    case LB_ACT_DIAL:
        if (!s->f.node)
            abort(); /* no node to give up on */
        node_failed(s, a.reason);
        return;
    case LB_ACT_SPLICE:
        if (s->st != S_CONNECTED || !s->f.upstream || !a.dirs || s->early)
            abort(); /* nothing to splice to, or a node no ROUTE took */
        s->spliced |= a.dirs;
        return;
    case LB_ACT_FAIL:
    case LB_ACT_CLOSE:
        s->st = S_DONE;
        return;
    case LB_ACT_LET_GO:
        if (!s->early || !s->f.upstream)
            abort(); /* no early leg to let go */
        s->early = false;
        leg_gone(s);
        s->st = S_FRONT;
        s->f.route = NULL;
        s->f.dials = 0;
        return;
    case LB_ACT_EARLY: {
        if (s->st != S_FRONT || s->f.upstream || s->early)
            abort(); /* asked twice, or after routing */
        if (s->no_early)
            return;
        const struct ups_route *r = &s->f.snap->routes[1]; /* pool p */
        ups_route_candidates(s->f.snap, r, &s->f.req, &s->cands);
        s->f.route = r;
        s->next = 0;
        s->early = true;
        dial_next(s);
        return;
    }
    }
    abort(); /* not an action */
}

static void flush(struct lb_buf *b, unsigned arg)
{
    size_t k = arg == 31 ? lb_buf_pending(b) : (size_t)(arg + 1) * 97;
    if (k > lb_buf_pending(b))
        k = lb_buf_pending(b);
    lb_buf_consume(b, k);
}

/* Appends N input bytes to a feed; returns the input position after them. */
static size_t take(struct feed *fd, const uint8_t *data, size_t size, size_t i, unsigned arg)
{
    if (arg == 30) { /* the plain handshake: version 3, then 3072 zeros */
        size_t n = 1 + 2 * 1536;
        if (n <= sizeof(fd->buf) - fd->n) {
            memset(fd->buf + fd->n, 0, n);
            fd->buf[fd->n] = 3;
            fd->n += n;
        }
        return i;
    }
    if (i >= size)
        return size;
    size_t n = 1 + (size_t)data[i++];
    if ((arg & 1) && i < size)
        n += 256 * (size_t)data[i++];
    if (n > size - i)
        n = size - i;
    if (n > sizeof(fd->buf) - fd->n)
        n = sizeof(fd->buf) - fd->n;
    memcpy(fd->buf + fd->n, data + i, n);
    fd->n += n;
    fd->piece = 1 + (arg * 131 + n) % 4096;
    return i + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct feed cf, of;
    static const struct lb_front_limits lim = {
        .preroute_bytes = 16384, .max_chunk_size = 65536, .max_message_size = 8192,
        .max_amf_depth = 8, .max_amf_string = 1024, .handshake_ms = 5000, .connect_ms = 1500};
    cf.n = cf.pos = 0, cf.end = 0, cf.piece = 4096;
    of.n = of.pos = 0, of.end = 0, of.piece = 4096;

    struct lb_conn client = {&fake, -1, &cf};
    struct sim s = {.of = &of};
    s.upstream = (struct lb_conn){&fake, -1, &of};
    s.f = (struct lb_front){.ops = &lb_phase_rtmp, .client = &client, .lim = &lim,
                            .snap = snapshot(), .client_text = "fuzz", .now_ms = 1};
    struct lb_front *f = &s.f;
    if (f->ops->create(f) < 0)
        return 0;
    apply(&s, f->ops->start(f));

    for (size_t i = 0; i < size && s.st != S_DONE && s.spliced != 3;) {
        uint8_t op = data[i++];
        unsigned kind = op % 8, arg = op / 8;
        switch (kind) {
        case 0:
            i = take(&cf, data, size, i, arg);
            if (!(s.spliced & LB_SPLICE_C2U) && (f->ops->wants(f) & LB_WANT_CLIENT))
                apply(&s, f->ops->on_client_data(f));
            break;
        case 1:
            if (s.st != S_CONNECTED) { /* bytes for a node nobody dialled: skip them */
                i = i < size ? i + 1 + (size_t)data[i] : size;
                break;
            }
            i = take(&of, data, size, i, arg);
            if (!(s.spliced & LB_SPLICE_U2C) && (f->ops->wants(f) & LB_WANT_UPSTREAM))
                apply(&s, f->ops->on_upstream_data(f));
            break;
        case 2:
            f->now_ms += (uint64_t)(arg + 1) * 250;
            if (f->deadline_ms && f->now_ms >= f->deadline_ms) {
                apply(&s, f->ops->on_timer(f));
                if (s.st != S_DONE && f->deadline_ms && f->now_ms >= f->deadline_ms)
                    f->deadline_ms = 0; /* as the core: never spin on a due deadline */
            }
            break;
        case 3:
            flush(&f->to_client, arg);
            break;
        case 4:
            if (arg == 30)
                s.no_early = true;
            else if (s.st == S_CONNECTED)
                flush(&f->to_upstream, arg);
            break;
        case 5:
            cf.end = arg & 1 ? -ECONNRESET : 1;
            if (!(s.spliced & LB_SPLICE_C2U) && (f->ops->wants(f) & LB_WANT_CLIENT))
                apply(&s, f->ops->on_client_data(f));
            break;
        case 6:
            if (s.st != S_CONNECTED)
                break;
            of.end = arg & 1 ? -ECONNRESET : 1;
            if (!(s.spliced & LB_SPLICE_U2C))
                apply(&s, f->ops->on_upstream_data(f)); /* an error reads as EOF */
            if ((arg & 1) && s.st == S_CONNECTED)
                s.st = S_DONE; /* as the core: a socket error then closes */
            break;
        case 7:
            if (s.st != S_DIALING || !f->node)
                break;
            if (arg & 1) {
                node_failed(&s, LB_REASON_DIAL_FAILED);
            } else {
                f->upstream = &s.upstream;
                s.st = S_CONNECTED;
                apply(&s, f->ops->on_upstream_connected(f));
            }
            break;
        }
    }
    f->ops->free(f);
    lb_buf_free(&f->to_client);
    lb_buf_free(&f->to_upstream);
    free(f->app);
    free(f->stream);
    return 0;
}
