/* The rtmp phase (lb/front/rtmp.c, rtmp_up.c) driven by hand: the test
 * plays the session core, with fake transports whose reads come from a
 * scripted byte queue (-EAGAIN when empty, 0 after EOF). Covers the local
 * answers, routing, the origin handshake, the replay, the patch of the
 * replayed replies' transaction ids (split at every byte, at several origin
 * chunk sizes), the hand-over, every failure path, and the memory a stalled
 * session holds (malloc is wrapped by the linker: see CMakeLists.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "lb/front/rtmp-int.h"
#include "lb/pubreg.h"
#include "lb/rtmp/amf.h"
#include "lb/rtmp/bytes.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/command.h"
#include "lb/rtmp/handshake.h"
#include "lb/rtmp/message.h"
#include "tests/unit/support.h"
#include "upstream/upstream.h"

/* ---- allocation counter (the linker's --wrap) ------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/* While counting, every block allocated through the wrapped calls is
 * remembered with its size; frees of blocks from before are ignored. */
#define TRACK_MAX 256
static struct {
    bool on;
    void *p[TRACK_MAX];
    size_t n[TRACK_MAX];
    size_t count;
    bool overflow;
} trk;

static void track_add(void *p, size_t n)
{
    if (!trk.on || !p)
        return;
    for (size_t i = 0; i < TRACK_MAX; i++)
        if (!trk.p[i]) {
            trk.p[i] = p;
            trk.n[i] = n;
            trk.count++;
            return;
        }
    trk.overflow = true;
}

static void track_del(void *p)
{
    if (!trk.on || !p)
        return;
    for (size_t i = 0; i < TRACK_MAX; i++)
        if (trk.p[i] == p) {
            trk.p[i] = NULL;
            trk.n[i] = 0;
            trk.count--;
            return;
        }
}

void *__wrap_malloc(size_t n)
{
    void *p = __real_malloc(n);
    track_add(p, n);
    return p;
}
void *__wrap_calloc(size_t k, size_t n)
{
    void *p = __real_calloc(k, n);
    track_add(p, k * n);
    return p;
}
void *__wrap_realloc(void *p, size_t n)
{
    void *q = __real_realloc(p, n);
    if (q) {
        track_del(p);
        track_add(q, n);
    }
    return q;
}
void __wrap_free(void *p)
{
    track_del(p);
    __real_free(p);
}

static void track_start(void)
{
    memset(&trk, 0, sizeof(trk));
    trk.on = true;
}

/* Bytes live now among the tracked blocks, except `except`. */
static size_t track_live(const void *except)
{
    size_t sum = 0;
    for (size_t i = 0; i < TRACK_MAX; i++)
        if (trk.p[i] && trk.p[i] != except)
            sum += trk.n[i];
    return sum;
}

/* ---- the fake transport ------------------------------------------------------ */

#define FAKE_CAP (1u << 15)

struct fake {
    struct lb_conn c;
    uint8_t in[FAKE_CAP];
    size_t in_len, in_off;
    bool eof;
    ssize_t err; /* a negative errno once the queue is empty */
    unsigned reads, quickacks;
};

static ssize_t fk_read(struct lb_conn *c, void *buf, size_t len)
{
    struct fake *f = c->ctx;
    f->reads++;
    if (f->in_off == f->in_len)
        return f->err ? f->err : f->eof ? 0 : -EAGAIN;
    size_t n = f->in_len - f->in_off;
    if (n > len)
        n = len;
    memcpy(buf, f->in + f->in_off, n);
    f->in_off += n;
    return (ssize_t)n;
}
static ssize_t fk_write(struct lb_conn *c, const void *buf, size_t len) { return -EPIPE; }
static int fk_shutdown(struct lb_conn *c) { return 0; }
static void fk_quickack(struct lb_conn *c) { ((struct fake *)c->ctx)->quickacks++; }
static ssize_t fk_peek(struct lb_conn *c, void *buf, size_t len) { return -EAGAIN; }

static const struct lb_xprt_ops fake_ops = {
    .name = "fake",
    .read = fk_read,
    .write = fk_write, /* a phase only queues: a write here is a defect */
    .shutdown = fk_shutdown,
    .can_splice = false,
    .quickack = fk_quickack,
    .peek = fk_peek,
};

static void fake_init(struct fake *f)
{
    f->in_len = f->in_off = 0;
    f->eof = false;
    f->err = 0;
    f->reads = f->quickacks = 0;
    f->c = (struct lb_conn){.ops = &fake_ops, .fd = -1, .ctx = f};
}

static void fake_push(struct fake *f, const uint8_t *p, size_t n)
{
    assert_true(f->in_len + n <= FAKE_CAP);
    memcpy(f->in + f->in_len, p, n);
    f->in_len += n;
}

/* ---- the snapshot ------------------------------------------------------------ */

static const char CONF[] =
    "listeners:\n"
    "  - {name: rtmp, address: 127.0.0.1:1935, mode: rtmp}\n"
    "  - {name: pass, address: 127.0.0.1:1936, mode: rtmp}\n"
    "pools:\n"
    "  origins: {nodes: [{name: o1, address: 127.0.0.1:1}, {name: o2, address: 127.0.0.1:2}]}\n"
    "routes:\n"
    "  - {name: at-connect, match: {listener: pass}, pool: origins, route_on: connect}\n"
    "  - {name: live, match: {app: live}, pool: origins}\n";

static struct test_fx fx;

static int group_setup(void **st)
{
    fx = test_fx_load(CONF, 1);
    return 0;
}
static int group_teardown(void **st)
{
    test_fx_free(&fx);
    return 0;
}

/* ---- the driver: the test plays the core --------------------------------------- */

#define MAX_ACTS 16
#define T0 1000u
#define HS_MS 5000u
#define CONNECT_MS 2000u

struct drv {
    struct lb_front f;
    struct lb_front_limits lim;
    struct fake cli, up;
    struct ups_candidates cands;
    struct lb_action act[MAX_ACTS]; /* every answer other than CONTINUE */
    size_t n_act;
    bool done; /* ROUTE, DIAL, FAIL or CLOSE seen: the phase waits for the core */
    unsigned early; /* EARLY answers: the core (this driver) declines unless a test dials */
};

static struct drv *drv_new(const char *listener, uint32_t preroute)
{
    struct drv *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    fake_init(&d->cli);
    fake_init(&d->up);
    d->lim = (struct lb_front_limits){.preroute_bytes = preroute,
                                      .max_chunk_size = 65536,
                                      .max_message_size = 65536,
                                      .max_amf_depth = 16,
                                      .max_amf_string = 4096,
                                      .handshake_ms = HS_MS,
                                      .connect_ms = CONNECT_MS};
    d->f.ops = &lb_phase_rtmp;
    d->f.client = &d->cli.c;
    d->f.lim = &d->lim;
    d->f.snap = fx.snap;
    d->f.req.listener = listener;
    d->f.client_text = "127.0.0.1:5555";
    d->f.now_ms = T0;
    assert_int_equal(d->f.ops->create(&d->f), 0);
    struct lb_action a = d->f.ops->start(&d->f);
    assert_int_equal(a.kind, LB_ACT_CONTINUE);
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
    assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_CLIENT);
    return d;
}

static void drv_free(struct drv *d)
{
    d->f.ops->free(&d->f);
    assert_null(d->f.state);
    lb_buf_free(&d->f.to_client);
    lb_buf_free(&d->f.to_upstream);
    free(d->f.app);
    free(d->f.stream);
    free(d);
}

static void record(struct drv *d, struct lb_action a)
{
    if (a.kind == LB_ACT_EARLY)
        d->early++;
    if (a.kind == LB_ACT_CONTINUE || a.kind == LB_ACT_EARLY)
        return;
    assert_true(d->n_act < MAX_ACTS);
    d->act[d->n_act++] = a;
    if (a.kind != LB_ACT_SPLICE)
        d->done = true;
    else if (a.dirs == (LB_SPLICE_C2U | LB_SPLICE_U2C))
        d->done = true;
}

/* Queues bytes and, if the phase wants that side, tells it (one event). */
static void feed(struct drv *d, bool upstream, const uint8_t *p, size_t n)
{
    struct fake *fk = upstream ? &d->up : &d->cli;
    fake_push(fk, p, n);
    if (d->done)
        return;
    unsigned want = d->f.ops->wants(&d->f);
    if (upstream && (want & LB_WANT_UPSTREAM))
        record(d, d->f.ops->on_upstream_data(&d->f));
    else if (!upstream && (want & LB_WANT_CLIENT))
        record(d, d->f.ops->on_client_data(&d->f));
}

/* Feeds p[0, n) in pieces: cut at a and b (when inside), and every `step`
 * bytes when step > 0. */
static void feed_split(struct drv *d, bool upstream, const uint8_t *p, size_t n, size_t a,
                       size_t b, size_t step)
{
    size_t pos = 0;
    while (pos < n) {
        size_t end = n;
        if (a > pos && a < end)
            end = a;
        if (b > pos && b < end)
            end = b;
        if (step && pos + step < end)
            end = pos + step;
        feed(d, upstream, p + pos, end - pos);
        pos = end;
    }
}

/* EOF or an error from one side, as the core reports it (readable). */
static void feed_end(struct drv *d, bool upstream, ssize_t err)
{
    struct fake *fk = upstream ? &d->up : &d->cli;
    fk->eof = true;
    fk->err = err;
    if (d->done)
        return;
    record(d, upstream ? d->f.ops->on_upstream_data(&d->f) : d->f.ops->on_client_data(&d->f));
}

/* What the core does on ROUTE, then on the dial's success. */
static struct lb_action drv_connect(struct drv *d)
{
    if (!d->f.route) {
        d->f.route = ups_route_select(d->f.snap, &d->f.req, &d->cands);
        assert_non_null(d->f.route);
        assert_true(d->cands.n >= 1);
    }
    fake_init(&d->up);
    d->f.node = d->cands.node[d->f.dials % d->cands.n];
    d->f.dials++;
    d->f.upstream = &d->up.c;
    d->done = false;
    d->n_act = 0;
    struct lb_action a = d->f.ops->on_upstream_connected(&d->f);
    assert_int_equal(a.kind, LB_ACT_CONTINUE);
    return a;
}

/* What the core does on DIAL: the node's leg and its output go. */
static void drv_node_failed(struct drv *d)
{
    d->f.upstream = NULL;
    d->f.node = NULL;
    d->f.upstream_bytes = 0;
    lb_buf_free(&d->f.to_upstream);
}

static struct lb_action last_act(const struct drv *d)
{
    assert_true(d->n_act > 0);
    return d->act[d->n_act - 1];
}

/* ---- building the client's bytes ---------------------------------------------- */

struct bytes {
    uint8_t b[16384];
    size_t n;
};

static void put(struct bytes *s, const void *p, size_t n)
{
    assert_true(s->n + n <= sizeof(s->b));
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void put_msg(struct bytes *s, uint32_t csid, uint8_t type, uint32_t msid,
                    const uint8_t *body, size_t len, uint32_t chunk)
{
    uint8_t out[8192];
    size_t k = rtmp_chunk_write(out, sizeof(out), csid, type, msid, body, len, chunk);
    assert_true(k > 0);
    put(s, out, k);
}

static void c0c1(struct bytes *s)
{
    uint8_t hs[1 + RTMP_HS_SIZE];
    hs[0] = 3;
    memset(hs + 1, 0, 8); /* time 0, version 0: the plain scheme */
    for (size_t i = 9; i < sizeof(hs); i++)
        hs[i] = (uint8_t)(i * 7 + 1);
    put(s, hs, sizeof(hs));
}

static size_t connect_body(uint8_t *b, size_t cap, double tid, const char *app)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, tid);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, app);
    p = amf0_put_key(p, end, "flashVer");
    p = amf0_put_string(p, end, "LNX 9,0,124,2");
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, "rtmp://127.0.0.1:1935/live?line=hk&token=tc");
    p = amf0_put_key(p, end, "fpad");
    p = amf0_put_bool(p, end, false);
    p = amf0_put_key(p, end, "capabilities");
    p = amf0_put_number(p, end, 15);
    p = amf0_put_key(p, end, "audioCodecs");
    p = amf0_put_number(p, end, 4071);
    p = amf0_put_key(p, end, "videoCodecs");
    p = amf0_put_number(p, end, 252);
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    return (size_t)(p - b);
}

static size_t simple_cmd(uint8_t *b, size_t cap, const char *name, double tid, const char *arg)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, name);
    p = amf0_put_number(p, end, tid);
    p = amf0_put_null(p, end);
    if (arg)
        p = amf0_put_string(p, end, arg);
    assert_non_null(p);
    return (size_t)(p - b);
}

/* The whole client: C0C1, C2, then commands; `cmds` is where C2 ends and
 * `routed` where the publish/play message ends (trailing bytes follow). */
struct client {
    struct bytes s;
    size_t cmds, routed;
};

enum { CL_PLAY, CL_PUBLISH };

static void build_client(struct client *c, int role, uint32_t chunk)
{
    uint8_t body[1024];
    size_t n;
    c->s.n = c->cmds = c->routed = 0;
    c0c1(&c->s);
    uint8_t c2[RTMP_HS_SIZE];
    for (size_t i = 0; i < sizeof(c2); i++)
        c2[i] = (uint8_t)(i ^ 0x5a);
    put(&c->s, c2, sizeof(c2));
    c->cmds = c->s.n;
    if (chunk != 128) {
        uint8_t v[4] = {(uint8_t)(chunk >> 24), (uint8_t)(chunk >> 16), (uint8_t)(chunk >> 8),
                        (uint8_t)chunk};
        put_msg(&c->s, 2, RTMP_MSG_SET_CHUNK_SIZE, 0, v, 4, 128);
    }
    n = connect_body(body, sizeof(body), 1, "live");
    assert_true(n > 128); /* two chunks at the default size */
    put_msg(&c->s, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk);
    if (role == CL_PUBLISH) {
        n = simple_cmd(body, sizeof(body), "releaseStream", 2, "cam1");
        put_msg(&c->s, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk);
        n = simple_cmd(body, sizeof(body), "FCPublish", 3, "cam1");
        put_msg(&c->s, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk);
    }
    n = simple_cmd(body, sizeof(body), "createStream", 4, NULL);
    put_msg(&c->s, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk);
    if (role == CL_PUBLISH) {
        uint8_t *p = body, *end = body + sizeof(body);
        p = amf0_put_string(p, end, "publish");
        p = amf0_put_number(p, end, 5);
        p = amf0_put_null(p, end);
        p = amf0_put_string(p, end, "cam1?key=secret");
        p = amf0_put_string(p, end, "live");
        put_msg(&c->s, 8, RTMP_MSG_COMMAND_AMF0, 1, body, (size_t)(p - body), chunk);
    } else {
        n = simple_cmd(body, sizeof(body), "play", 5, "cam1?token=x");
        put_msg(&c->s, 8, RTMP_MSG_COMMAND_AMF0, 1, body, n, chunk);
    }
    c->routed = c->s.n;
    /* Set Buffer Length, as players send right after play. */
    uint8_t sbl[10] = {0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8};
    put_msg(&c->s, 2, RTMP_MSG_USER_CONTROL, 0, sbl, sizeof(sbl), chunk);
}

/* ---- building the origin's bytes ---------------------------------------------- */

/* An origin stream with the stream position of every payload byte of the
 * messages whose transaction id the phase must zero. */
struct origin {
    struct bytes s;
    size_t zero[4][8]; /* stream positions of tid bytes to zero */
    size_t n_zero;
    size_t after_hs; /* where S2 ends */
};

/* Writes one message: fmt (0 or 1) for its first chunk, fmt 3 after. pos
 * receives each payload byte's stream position (may be NULL). */
static void o_msg(struct origin *o, uint8_t fmt, uint32_t csid, uint8_t type, uint32_t msid,
                  const uint8_t *body, size_t len, uint32_t chunk, size_t *pos)
{
    uint8_t h[12];
    size_t hn = 0;
    h[hn++] = (uint8_t)(fmt << 6 | csid);
    h[hn++] = 0; /* timestamp (delta) 0 */
    h[hn++] = 0;
    h[hn++] = 0;
    h[hn++] = (uint8_t)(len >> 16);
    h[hn++] = (uint8_t)(len >> 8);
    h[hn++] = (uint8_t)len;
    h[hn++] = type;
    if (fmt == 0) {
        h[hn++] = (uint8_t)msid;
        h[hn++] = (uint8_t)(msid >> 8);
        h[hn++] = (uint8_t)(msid >> 16);
        h[hn++] = (uint8_t)(msid >> 24);
    }
    put(&o->s, h, hn);
    for (size_t off = 0; off < len; off += chunk) {
        if (off) {
            uint8_t c3 = (uint8_t)(0xc0 | csid);
            put(&o->s, &c3, 1);
        }
        size_t k = len - off < chunk ? len - off : chunk;
        for (size_t i = 0; pos && i < k; i++)
            pos[off + i] = o->s.n + i;
        put(&o->s, body + off, k);
    }
}

static void o_u32msg(struct origin *o, uint8_t type, uint32_t v, size_t extra, uint8_t x)
{
    uint8_t b[5] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v, x};
    o_msg(o, 0, 2, type, 0, b, 4 + extra, 128, NULL);
}

static size_t connect_result(uint8_t *b, size_t cap, const char *name, double tid)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, name);
    p = amf0_put_number(p, end, tid);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "fmsVer");
    p = amf0_put_string(p, end, "FMS/3,5,7,7009");
    p = amf0_put_key(p, end, "capabilities");
    p = amf0_put_number(p, end, 31);
    p = amf0_put_key(p, end, "mode");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_end(p, end);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "level");
    p = amf0_put_string(p, end, strcmp(name, "_error") ? "status" : "error");
    p = amf0_put_key(p, end, "code");
    p = amf0_put_string(p, end, strcmp(name, "_error") ? "NetConnection.Connect.Success"
                                                       : "NetConnection.Connect.Rejected");
    p = amf0_put_key(p, end, "description");
    p = amf0_put_string(p, end, "Connection succeeded (a long description for several chunks).");
    p = amf0_put_key(p, end, "objectEncoding");
    p = amf0_put_number(p, end, 0);
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    return (size_t)(p - b);
}

static size_t on_status(uint8_t *b, size_t cap, const char *code)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, "onStatus");
    p = amf0_put_number(p, end, 0);
    p = amf0_put_null(p, end);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "level");
    p = amf0_put_string(p, end, "status");
    p = amf0_put_key(p, end, "code");
    p = amf0_put_string(p, end, code);
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    return (size_t)(p - b);
}

/* What can go wrong on the origin's side. */
enum o_fault {
    OF_NONE,
    OF_CONNECT_ERROR,  /* _error to connect */
    OF_CS_ERROR,       /* _error to createStream */
    OF_CS_ID3,         /* createStream gives stream id 3 */
    OF_FMT1_CSID2,     /* first message on csid 2 with a compressed header */
    OF_FMT1_CSID3,     /* first message on csid 3 with a compressed header */
    OF_SCS_ZERO,       /* Set Chunk Size 0 */
    OF_SCS_TOPBIT,     /* Set Chunk Size with the top bit set */
    OF_BIG_BEFORE_SCS, /* the 200-byte connect _result before any Set Chunk Size */
};

#define CONNECT_TID_OFF 11 /* 0x02, len, "_result", 0x00, then the number */

static void build_origin(struct origin *o, uint32_t chunk, enum o_fault fault)
{
    uint8_t body[1024];
    size_t map[1024], n;

    o->s.n = o->n_zero = o->after_hs = 0;
    uint8_t hs[1 + 2 * RTMP_HS_SIZE];
    hs[0] = 3;
    memset(hs + 1, 0, 8);
    for (size_t i = 9; i < sizeof(hs); i++)
        hs[i] = (uint8_t)(i * 13 + 5);
    put(&o->s, hs, sizeof(hs));
    o->after_hs = o->s.n;

    /* Window Ack Size, Set Peer Bandwidth, Set Chunk Size on csid 2. */
    if (fault == OF_FMT1_CSID2) {
        uint8_t b[4] = {0, 0x26, 0x25, 0xa0};
        o_msg(o, 1, 2, RTMP_MSG_WIN_ACK_SIZE, 0, b, 4, 128, NULL);
    } else {
        o_u32msg(o, RTMP_MSG_WIN_ACK_SIZE, 2500000, 0, 0);
    }
    o_u32msg(o, RTMP_MSG_SET_PEER_BW, 2500000, 1, 2);
    if (fault == OF_SCS_ZERO)
        o_u32msg(o, RTMP_MSG_SET_CHUNK_SIZE, 0, 0, 0);
    else if (fault == OF_SCS_TOPBIT)
        o_u32msg(o, RTMP_MSG_SET_CHUNK_SIZE, 0x80000000u | chunk, 0, 0);
    else if (fault != OF_BIG_BEFORE_SCS)
        o_u32msg(o, RTMP_MSG_SET_CHUNK_SIZE, chunk, 0, 0);
    if (fault == OF_BIG_BEFORE_SCS)
        chunk = 128;

    n = connect_result(body, sizeof(body), fault == OF_CONNECT_ERROR ? "_error" : "_result", 1);
    assert_true(n > 200);
    o_msg(o, fault == OF_FMT1_CSID3 ? 1 : 0, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk, map);
    for (size_t k = 0; k < 8; k++)
        o->zero[o->n_zero][k] = map[CONNECT_TID_OFF + k];
    o->n_zero++;

    n = simple_cmd(body, sizeof(body), "onBWDone", 0, NULL);
    o_msg(o, 1, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk, NULL);

    uint8_t *p = body, *end = body + sizeof(body);
    p = amf0_put_string(p, end, fault == OF_CS_ERROR ? "_error" : "_result");
    p = amf0_put_number(p, end, 4);
    p = amf0_put_null(p, end);
    p = amf0_put_number(p, end, fault == OF_CS_ID3 ? 3 : 1);
    o_msg(o, 1, 3, RTMP_MSG_COMMAND_AMF0, 0, body, (size_t)(p - body), chunk, map);
    for (size_t k = 0; k < 8; k++)
        o->zero[o->n_zero][k] = map[CONNECT_TID_OFF + k];
    o->n_zero++;

    /* Stream Begin, onStatus, then media: all spliced after the hand-over. */
    uint8_t sb[6] = {0, 0, 0, 0, 0, 1};
    o_msg(o, 0, 2, RTMP_MSG_USER_CONTROL, 0, sb, sizeof(sb), chunk, NULL);
    n = on_status(body, sizeof(body), "NetStream.Play.Start");
    o_msg(o, 0, 5, RTMP_MSG_COMMAND_AMF0, 1, body, n, chunk, NULL);
    for (size_t i = 0; i < 300; i++)
        body[i] = (uint8_t)(0xaf + i);
    o_msg(o, 0, 6, RTMP_MSG_AUDIO, 1, body, 300, chunk, NULL);
}

/* The origin's bytes after S2 as the client must see them. */
static void origin_expected(const struct origin *o, struct bytes *e)
{
    e->n = 0;
    put(e, o->s.b + o->after_hs, o->s.n - o->after_hs);
    for (size_t i = 0; i < o->n_zero; i++)
        for (size_t k = 0; k < 8; k++)
            e->b[o->zero[i][k] - o->after_hs] = 0;
}

/* ---- decoding what the client received ------------------------------------------- */

struct seen {
    char name[32];
    double tid;
    char code[64];
};

/* Decodes p[0, n) as an RTMP stream from a client's point of view: every
 * byte must belong to a chunk, and the stream must end at a message
 * boundary. Returns the number of command messages, the last in *last. */
static size_t decode_stream(const uint8_t *p, size_t n, struct seen *last)
{
    struct rtmp_chunk_dec dec;
    struct rtmp_chunk_limits lim = {0x7fffffff, 0xffffff, 65599};
    struct rtmp_asm as;
    size_t pos = 0, cmds = 0;

    rtmp_chunk_init(&dec, &lim, 0);
    rtmp_asm_init(&as, RTMP_TYPE_BIT(RTMP_MSG_SET_CHUNK_SIZE) | RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF0),
                  1u << 20, false);
    memset(last, 0, sizeof(*last));
    for (int guard = 0; guard < 100000; guard++) {
        struct rtmp_chunk_ev ev;
        struct rtmp_msg m;
        const char *why = NULL;
        size_t used;
        rtmp_chunk_next(&dec, p + pos, n - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        assert_int_not_equal(ev.type, RTMP_EV_ERROR);
        enum rtmp_asm_result r = rtmp_asm_feed(&as, &ev, 0, &m, &why);
        assert_int_not_equal(r, RTMP_ASM_ERROR);
        if (r != RTMP_ASM_MESSAGE)
            continue;
        if (m.type == RTMP_MSG_SET_CHUNK_SIZE) {
            assert_int_equal(rtmp_chunk_set_size(&dec, rtmp_get_be32(m.data) & 0x7fffffff), 0);
            continue;
        }
        struct amf_value arena[128];
        struct amf_doc doc = {.v = arena, .cap = 128};
        struct amf_limits al = {16, 4096, 128};
        assert_int_equal(amf_decode_command(m.data, m.len, false, &al, &doc), 0);
        const struct amf_value *nm = amf_top(&doc, 0), *tid = amf_top(&doc, 1);
        assert_non_null(nm);
        assert_int_equal(nm->type, AMF_STRING);
        memset(last, 0, sizeof(*last));
        snprintf(last->name, sizeof(last->name), "%.*s", (int)nm->len, nm->str);
        last->tid = tid && tid->type == AMF_NUMBER ? tid->num : -1;
        const struct amf_value *info = amf_top(&doc, 3);
        const struct amf_value *code = info ? amf_get(&doc, info, "code") : NULL;
        if (code && code->type == AMF_STRING)
            snprintf(last->code, sizeof(last->code), "%.*s", (int)code->len, code->str);
        cmds++;
    }
    assert_int_equal(pos, n);
    assert_true(rtmp_chunk_at_boundary(&dec));
    rtmp_asm_free(&as);
    return cmds;
}

/* ---- the happy path ---------------------------------------------------------------- */

/* The local answers the client must get after S0S1S2. */
static void local_expected(struct bytes *e)
{
    uint8_t out[1024];
    size_t k;
    e->n = 0;
    k = rtmp_reply_connect(out, sizeof(out), 1, 0, NULL);
    assert_true(k > 0);
    put(e, out, k);
    k = rtmp_reply_create_stream(out, sizeof(out), 4, 1);
    assert_true(k > 0);
    put(e, out, k);
}

/* Feeds the client (cut at ca/cb, or every cstep bytes) and checks the
 * ROUTE, the handshake answer and the local replies. */
static void client_until_route(struct drv *d, const struct client *c, size_t ca, size_t cb,
                               size_t cstep, int role)
{
    feed_split(d, false, c->s.b, c->s.n, ca, cb, cstep);
    assert_int_equal(d->n_act, 1);
    assert_int_equal(d->act[0].kind, LB_ACT_ROUTE);
    assert_int_equal(d->f.ops->wants(&d->f), 0);
    assert_int_equal(d->f.req.role, role == CL_PUBLISH ? CONF_ROLE_PUBLISH : CONF_ROLE_PLAY);
    assert_int_equal(d->f.role, d->f.req.role);
    assert_false(d->f.req.l4);
    assert_false(d->f.req.at_connect);
    assert_string_equal(d->f.req.app, "live");
    assert_string_equal(d->f.req.stream, "cam1");
    /* The args the names carried: the stream's first, then the tcUrl's. */
    assert_int_equal(d->f.req.n_args, 3);
    assert_string_equal(d->f.req.args[0].key, role == CL_PUBLISH ? "key" : "token");
    assert_string_equal(d->f.req.args[0].value, role == CL_PUBLISH ? "secret" : "x");
    assert_string_equal(d->f.req.args[1].key, "line");
    assert_string_equal(d->f.req.args[1].value, "hk");
    assert_string_equal(d->f.req.args[2].key, "token");
    assert_string_equal(d->f.req.args[2].value, "tc");
    assert_string_equal(ups_request_arg(&d->f.req, "token"), role == CL_PUBLISH ? "tc" : "x");
    assert_string_equal(d->f.hs_kind, "simple");
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
    /* Everything up to publish/play was read; the rest may wait. */
    assert_true(d->cli.in_off >= c->routed);
    assert_int_equal(d->f.client_bytes, d->cli.in_off);

    /* S0 S1 S2 (S2 echoes C1), then exactly the local answers. */
    struct bytes loc;
    local_expected(&loc);
    const uint8_t *tc = d->f.to_client.data;
    assert_int_equal(d->f.to_client.len, 1 + 2 * RTMP_HS_SIZE + loc.n);
    assert_int_equal(tc[0], 3);
    assert_memory_equal(tc + 1 + RTMP_HS_SIZE, c->s.b + 1, RTMP_HS_SIZE);
    assert_memory_equal(tc + 1 + 2 * RTMP_HS_SIZE, loc.b, loc.n);
}

/* After the hand-over: what the node got, and what the client got. */
static bool origin_outcome_ok(struct drv *d, const struct client *c, const struct origin *o,
                              const struct bytes *exp, size_t client_prefix)
{
    /* to_upstream: C0C1, C2 = S1's echo, then the client's bytes after C2 verbatim. */
    const struct lb_buf *tu = &d->f.to_upstream;
    size_t replay = d->cli.in_off - c->cmds;
    if (tu->len != 1 + 2 * RTMP_HS_SIZE + replay || tu->data[0] != 3 ||
        memcmp(tu->data + 1 + RTMP_HS_SIZE, o->s.b + 1, RTMP_HS_SIZE) != 0 ||
        memcmp(tu->data + 1 + 2 * RTMP_HS_SIZE, c->s.b + c->cmds, replay) != 0) {
        print_error("to_upstream differs\n");
        return false;
    }
    /* to_client: the prefix, then the origin's stream up to what the phase
     * read; the rest is left in the socket for the splice. */
    const struct lb_buf *tc = &d->f.to_client;
    size_t fwd = tc->len - client_prefix;
    size_t unread = d->up.in_len - d->up.in_off;
    if (fwd + unread != exp->n) {
        print_error("forwarded %zu + unread %zu != %zu\n", fwd, unread, exp->n);
        return false;
    }
    if (memcmp(tc->data + client_prefix, exp->b, fwd) != 0) {
        for (size_t i = 0; i < fwd; i++)
            if (tc->data[client_prefix + i] != exp->b[i]) {
                print_error("to_client differs at origin byte %zu: %02x, want %02x\n", i,
                            tc->data[client_prefix + i], exp->b[i]);
                break;
            }
        return false;
    }
    if (memcmp(d->up.in + d->up.in_off, exp->b + fwd, unread) != 0 && unread) {
        /* unread bytes are the origin's raw ones: patched ones must not be left */
        print_error("a reply to patch was left for the splice\n");
        return false;
    }
    if (d->f.upstream_bytes != d->up.in_off - o->after_hs) {
        print_error("upstream_bytes %llu, read %zu\n", (unsigned long long)d->f.upstream_bytes,
                    d->up.in_off - o->after_hs);
        return false;
    }
    /* Actions: SPLICE(C2U) at most once, then SPLICE(both) last. */
    if (d->n_act < 1 || d->n_act > 2) {
        print_error("%zu actions\n", d->n_act);
        return false;
    }
    struct lb_action a = d->act[d->n_act - 1];
    if (a.kind != LB_ACT_SPLICE || a.dirs != (LB_SPLICE_C2U | LB_SPLICE_U2C)) {
        print_error("last action %d dirs %u\n", a.kind, a.dirs);
        return false;
    }
    if (d->n_act == 2 && (d->act[0].kind != LB_ACT_SPLICE || d->act[0].dirs != LB_SPLICE_C2U)) {
        print_error("first action %d dirs %u\n", d->act[0].kind, d->act[0].dirs);
        return false;
    }
    /* After the hand-over the phase reads nothing; its deadline stays, to
     * bound the flush before the splice (a side that never drains). */
    if (d->f.ops->wants(&d->f) != 0 || d->f.deadline_ms == 0) {
        print_error("still wants %u / no deadline (%llu) after the hand-over\n",
                    d->f.ops->wants(&d->f), (unsigned long long)d->f.deadline_ms);
        return false;
    }
    return true;
}

/* A client of role, an origin at chunk size ochunk with no fault, and what
 * the client must get of the origin's bytes. */
static void session_bytes(struct client *c, int role, struct origin *o, uint32_t ochunk,
                          struct bytes *exp)
{
    build_client(c, role, 128);
    build_origin(o, ochunk, OF_NONE);
    origin_expected(o, exp);
}

/* One session: the client cut at (ca, cb, cstep), the origin at (oa, ob, ostep). */
static unsigned long n_runs;

static bool run_session(int role, uint32_t chunk, size_t ca, size_t cb, size_t cstep, size_t oa,
                        size_t ob, size_t ostep)
{
    static struct client c;
    static struct origin o;
    static struct bytes exp;
    n_runs++;
    session_bytes(&c, role, &o, chunk, &exp);

    struct drv *d = drv_new("rtmp", 64 * 1024);
    client_until_route(d, &c, ca, cb, cstep, role);
    size_t prefix = d->f.to_client.len;
    drv_connect(d);
    assert_int_equal(d->f.to_upstream.len, 1 + RTMP_HS_SIZE);
    assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_UPSTREAM);
    assert_int_equal(d->f.deadline_ms, T0 + CONNECT_MS);
    feed_split(d, true, o.s.b, o.s.n, oa, ob, ostep);
    bool ok = origin_outcome_ok(d, &c, &o, &exp, prefix);
    drv_free(d);
    return ok;
}

static void test_happy_path(void **st)
{
    assert_true(run_session(CL_PLAY, 128, 0, 0, 0, 0, 0, 0));
    assert_true(run_session(CL_PUBLISH, 4096, 0, 0, 0, 0, 0, 0));
}

static const uint32_t CHUNKS[] = {1, 2, 7, 29, 64, 128, 4096};

/* The patcher regression: the origin's bytes split at every offset (two
 * reads) and one byte at a time, at every chunk size. */
static void test_origin_split_everywhere(void **st)
{
    static struct origin o;
    for (size_t ci = 0; ci < sizeof(CHUNKS) / sizeof(CHUNKS[0]); ci++) {
        build_origin(&o, CHUNKS[ci], OF_NONE);
        for (size_t cut = 1; cut < o.s.n; cut++)
            if (!run_session(CL_PLAY, CHUNKS[ci], 0, 0, 0, cut, 0, 0)) {
                print_error("origin chunk size %u, split at %zu\n", CHUNKS[ci], cut);
                fail();
            }
        if (!run_session(CL_PUBLISH, CHUNKS[ci], 0, 0, 0, 0, 0, 1)) {
            print_error("origin chunk size %u, one byte at a time\n", CHUNKS[ci]);
            fail();
        }
        /* Two cuts around the connect reply's transaction id. */
        for (size_t k = 0; k < 8; k++)
            for (size_t j = 0; j < 8; j++)
                if (!run_session(CL_PLAY, CHUNKS[ci], 0, 0, 0, o.zero[0][k], o.zero[1][j] + 1,
                                 0)) {
                    print_error("chunk %u, cuts %zu/%zu\n", CHUNKS[ci], o.zero[0][k],
                                o.zero[1][j] + 1);
                    fail();
                }
    }
    print_message("%lu sessions, origin split everywhere\n", n_runs);
    assert_true(n_runs > 7 * 3000);
}

static void test_client_split_everywhere(void **st)
{
    static struct client c;
    build_client(&c, CL_PLAY, 128);
    for (size_t cut = 1; cut < c.s.n; cut++)
        if (!run_session(cut & 1 ? CL_PLAY : CL_PUBLISH, 128, cut, 0, 0, 0, 0, 0)) {
            print_error("client split at %zu\n", cut);
            fail();
        }
    assert_true(run_session(CL_PLAY, 29, 0, 0, 1, 0, 0, 0));
    assert_true(run_session(CL_PUBLISH, 7, 0, 0, 1, 0, 0, 1));
    /* The client's own chunk size (Set Chunk Size before connect). */
    static struct client c2;
    build_client(&c2, CL_PLAY, 4096);
    struct drv *d = drv_new("rtmp", 64 * 1024);
    feed_split(d, false, c2.s.b, c2.s.n, c2.cmds + 20, 0, 0);
    assert_int_equal(d->n_act, 1);
    assert_int_equal(d->act[0].kind, LB_ACT_ROUTE);
    assert_string_equal(d->f.stream, "cam1");
    drv_free(d);
}

/* A node that fails its handshake, then the next one works: the second
 * node sees the same replay and the client the same bytes. */
static void test_retry_after_origin_failure(void **st)
{
    static struct client c;
    static struct origin o;
    static struct bytes exp;
    session_bytes(&c, CL_PLAY, &o, 64, &exp);

    struct drv *d = drv_new("rtmp", 64 * 1024);
    client_until_route(d, &c, 0, 0, 0, CL_PLAY);
    size_t prefix = d->f.to_client.len;
    drv_connect(d);
    feed(d, true, o.s.b, 1000); /* part of S0S1S2, then the node goes */
    feed_end(d, true, 0);
    assert_int_equal(last_act(d).kind, LB_ACT_DIAL);
    assert_int_equal(last_act(d).reason, LB_REASON_ORIGIN_CLOSED);
    assert_int_equal(d->f.to_client.len, prefix); /* nothing of it reached the client */
    drv_node_failed(d);
    drv_connect(d);
    feed(d, true, o.s.b, o.s.n);
    assert_true(origin_outcome_ok(d, &c, &o, &exp, prefix));
    assert_int_equal(d->f.dials, 2);
    drv_free(d);
}

/* ---- origin failures ------------------------------------------------------------------ */

/* A session routed and connected to a node, waiting for S0S1S2. */
static struct drv *routed(int role, struct client *c)
{
    build_client(c, role, 128);
    struct drv *d = drv_new("rtmp", 64 * 1024);
    client_until_route(d, c, 0, 0, 0, role);
    drv_connect(d);
    return d;
}

static void check_dial(struct drv *d, enum lb_reason why, size_t prefix)
{
    struct lb_action a = last_act(d);
    assert_int_equal(a.kind, LB_ACT_DIAL);
    assert_int_equal(a.reason, why);
    assert_int_equal(d->f.to_client.len, prefix);
    assert_int_equal(d->f.ops->wants(&d->f), 0);
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS); /* the origin deadline */
}

static bool error_readable(const uint8_t *p, size_t n, const char *code);

/* FAIL with reason, and the client's stream ends with an error it can read. */
static void check_fail(struct drv *d, enum lb_reason why, size_t prefix, const char *code)
{
    struct lb_action a = last_act(d);
    struct seen last;
    assert_int_equal(a.kind, LB_ACT_FAIL);
    assert_int_equal(a.reason, why);
    assert_true(d->f.message[0] != '\0');
    assert_int_equal(d->f.ops->wants(&d->f), 0);
    assert_int_equal(d->f.deadline_ms, 0);
    assert_true(decode_stream(d->f.to_client.data + 1 + 2 * RTMP_HS_SIZE,
                              d->f.to_client.len - 1 - 2 * RTMP_HS_SIZE, &last) >= 3);
    assert_string_equal(last.name, "onStatus");
    assert_string_equal(last.code, code);
    assert_true(error_readable(d->f.to_client.data + 1 + 2 * RTMP_HS_SIZE,
                               d->f.to_client.len - 1 - 2 * RTMP_HS_SIZE, code));
    assert_true(d->f.to_client.len > prefix);
}

static void test_origin_handshake_failures(void **st)
{
    static struct client c;
    static struct origin o;
    build_origin(&o, 128, OF_NONE);

    /* EOF, and a socket error, during the handshake: the next node. */
    for (int k = 0; k < 3; k++) {
        struct drv *d = routed(CL_PLAY, &c);
        size_t prefix = d->f.to_client.len;
        if (k == 2)
            feed(d, true, o.s.b, 1 + RTMP_HS_SIZE + 10);
        feed_end(d, true, k == 1 ? -ECONNRESET : 0);
        check_dial(d, LB_REASON_ORIGIN_CLOSED, prefix);
        drv_free(d);
    }
    /* A bad S0. */
    {
        struct drv *d = routed(CL_PLAY, &c);
        size_t prefix = d->f.to_client.len;
        uint8_t bad[16] = {6};
        feed(d, true, bad, sizeof(bad));
        check_dial(d, LB_REASON_ORIGIN_PROTOCOL, prefix);
        drv_free(d);
    }
    /* The node's handshake deadline (connect_ms) before the origin
     * deadline: the next node; at the origin deadline: give up. */
    {
        struct drv *d = routed(CL_PLAY, &c);
        size_t prefix = d->f.to_client.len;
        feed(d, true, o.s.b, 100);
        d->f.now_ms = d->f.deadline_ms;
        assert_int_equal(d->f.now_ms, T0 + CONNECT_MS);
        record(d, d->f.ops->on_timer(&d->f));
        check_dial(d, LB_REASON_ORIGIN_TIMEOUT, prefix);
        drv_node_failed(d);
        d->f.now_ms = T0 + HS_MS - 100;
        drv_connect(d); /* the second node gets only what is left */
        assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
        d->f.now_ms = T0 + HS_MS;
        record(d, d->f.ops->on_timer(&d->f));
        check_fail(d, LB_REASON_ORIGIN_TIMEOUT, prefix, "NetStream.Play.StreamNotFound");
        drv_free(d);
    }
    /* The last candidate (no node would follow it) may answer until the
     * origin deadline: an origin slow under load serves late, not never. */
    {
        build_client(&c, CL_PLAY, 128);
        struct drv *d = drv_new("rtmp", 64 * 1024);
        client_until_route(d, &c, 0, 0, 0, CL_PLAY);
        size_t prefix = d->f.to_client.len;
        d->f.last_candidate = true;
        drv_connect(d);
        assert_int_equal(d->f.deadline_ms, T0 + HS_MS); /* not T0 + CONNECT_MS */
        feed(d, true, o.s.b, 100);
        assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
        d->f.now_ms = T0 + HS_MS;
        record(d, d->f.ops->on_timer(&d->f));
        check_fail(d, LB_REASON_ORIGIN_TIMEOUT, prefix, "NetStream.Play.StreamNotFound");
        drv_free(d);
    }
}

struct fault_case {
    enum o_fault fault;
    enum lb_reason reason;
};

static void test_origin_reply_failures(void **st)
{
    static const struct fault_case cases[] = {
        {OF_CONNECT_ERROR, LB_REASON_ORIGIN_REJECTED}, {OF_CS_ERROR, LB_REASON_ORIGIN_REJECTED},
        {OF_CS_ID3, LB_REASON_ORIGIN_PROTOCOL},        {OF_FMT1_CSID2, LB_REASON_ORIGIN_PROTOCOL},
        {OF_FMT1_CSID3, LB_REASON_ORIGIN_PROTOCOL},    {OF_SCS_ZERO, LB_REASON_ORIGIN_PROTOCOL},
        {OF_SCS_TOPBIT, LB_REASON_ORIGIN_PROTOCOL},    {OF_BIG_BEFORE_SCS, LB_REASON_ORIGIN_PROTOCOL},
    };
    static struct client c;
    static struct origin o;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int role = CL_PLAY; role <= CL_PUBLISH; role++)
            for (size_t step = 0; step <= 1; step++) {
                build_origin(&o, 64, cases[i].fault);
                struct drv *d = routed(role, &c);
                size_t prefix = d->f.to_client.len;
                feed_split(d, true, o.s.b, o.s.n, 0, 0, step);
                if (d->n_act == 0 || last_act(d).kind != LB_ACT_FAIL) {
                    print_error("fault %d: no FAIL (%zu actions)\n", cases[i].fault, d->n_act);
                    fail();
                }
                check_fail(d, cases[i].reason, prefix,
                           role == CL_PUBLISH ? "NetStream.Publish.Denied"
                                              : "NetStream.Play.StreamNotFound");
                /* What preceded the error is the origin's stream, verbatim. */
                size_t fwd = d->f.to_client.len - prefix;
                struct bytes exp;
                origin_expected(&o, &exp);
                uint8_t err[1024];
                size_t en = rtmp_reply_status_error(
                    err, sizeof(err),
                    role == CL_PUBLISH ? "NetStream.Publish.Denied" : "NetStream.Play.StreamNotFound",
                    d->f.message, cases[i].fault == OF_BIG_BEFORE_SCS ||
                                          cases[i].fault == OF_SCS_ZERO ||
                                          cases[i].fault == OF_SCS_TOPBIT || cases[i].fault == OF_FMT1_CSID2
                                      ? 128
                                      : 64);
                assert_true(fwd >= en);
                assert_memory_equal(d->f.to_client.data + prefix + fwd - en, err, en);
                assert_memory_equal(d->f.to_client.data + prefix, exp.b, fwd - en);
                drv_free(d);
            }
}

static void test_origin_eof_while_patching(void **st)
{
    static struct client c;
    static struct origin o;
    build_origin(&o, 64, OF_NONE);
    /* EOF after S0S1S2, after part of the connect reply, and after it. */
    size_t ends[] = {o.after_hs, o.zero[0][3], o.zero[0][7] + 40, o.zero[1][0]};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
        for (int err = 0; err <= 1; err++) {
            struct drv *d = routed(CL_PUBLISH, &c);
            size_t prefix = d->f.to_client.len;
            feed(d, true, o.s.b, ends[i]);
            assert_true(d->n_act <= 1); /* SPLICE(C2U) once the replay is out */
            feed_end(d, true, err ? -ECONNRESET : 0);
            check_fail(d, LB_REASON_ORIGIN_CLOSED, prefix, "NetStream.Publish.Denied");
            drv_free(d);
        }
}

/* KNOWN DEFECT (fails on the current code; keep until fixed in lb/):
 * the origin stops inside a chunk of a message the patcher does not
 * collect (here the 12-byte header of its first Window Acknowledgement
 * Size on csid 2 plus 2 of its 4 payload bytes), then closes or times out.
 * patch() in lb/front/rtmp_up.c forwards everything up to uin_parsed when
 * no collected message is open, so those 14 bytes reach to_client, and
 * lb_rp_fail appends the onStatus error right after them: the client's
 * chunk decoder reads the error's first 2 bytes as the Window Ack's
 * payload and the error itself is garbled. DESIGN.md wants the error "at a
 * message boundary". A fix would forward only whole chunks (or whole
 * messages) before the hand-over, or trim to_client back to the last
 * boundary in lb_rp_fail. */
/* True when p[0, n) decodes as whole chunks ending at a message boundary
 * and its last command is an onStatus with `code` (no assertions, so the
 * caller can free before failing). */
static bool error_readable(const uint8_t *p, size_t n, const char *code)
{
    struct rtmp_chunk_dec dec;
    struct rtmp_chunk_limits lim = {0x7fffffff, 0xffffff, 65599};
    struct rtmp_asm as;
    size_t pos = 0;
    bool ok = true, last_ok = false;

    rtmp_chunk_init(&dec, &lim, 0);
    rtmp_asm_init(&as, RTMP_TYPE_BIT(RTMP_MSG_SET_CHUNK_SIZE) | RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF0),
                  1u << 20, false);
    for (int guard = 0; guard < 100000 && ok; guard++) {
        struct rtmp_chunk_ev ev;
        struct rtmp_msg m;
        const char *why = NULL;
        size_t used;
        rtmp_chunk_next(&dec, p + pos, n - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        enum rtmp_asm_result r = ev.type == RTMP_EV_ERROR ? RTMP_ASM_ERROR
                                                          : rtmp_asm_feed(&as, &ev, 0, &m, &why);
        if (r == RTMP_ASM_ERROR) {
            ok = false;
            break;
        }
        if (r != RTMP_ASM_MESSAGE)
            continue;
        if (m.type == RTMP_MSG_SET_CHUNK_SIZE) {
            ok = m.len >= 4 && rtmp_chunk_set_size(&dec, rtmp_get_be32(m.data) & 0x7fffffff) == 0;
            continue;
        }
        struct amf_value arena[128];
        struct amf_doc doc = {.v = arena, .cap = 128};
        struct amf_limits al = {16, 4096, 128};
        last_ok = false;
        if (amf_decode_command(m.data, m.len, false, &al, &doc) < 0)
            continue;
        const struct amf_value *info = amf_top(&doc, 3);
        const struct amf_value *c = info ? amf_get(&doc, info, "code") : NULL;
        last_ok = amf_str_eq(amf_top(&doc, 0), "onStatus") && c && amf_str_eq(c, code);
    }
    ok = ok && pos == n && rtmp_chunk_at_boundary(&dec) && last_ok;
    rtmp_asm_free(&as);
    return ok;
}

static void test_origin_stops_mid_chunk_error_garbled(void **st)
{
    static struct client c;
    static struct origin o;
    build_origin(&o, 64, OF_NONE);
    bool readable[2];
    for (int k = 0; k < 2; k++) {
        struct drv *d = routed(CL_PLAY, &c);
        feed(d, true, o.s.b, o.after_hs + 14);
        if (k == 0) {
            feed_end(d, true, 0);
        } else {
            d->f.now_ms = d->f.deadline_ms;
            record(d, d->f.ops->on_timer(&d->f));
        }
        bool failed = d->n_act > 0 && last_act(d).kind == LB_ACT_FAIL &&
                      last_act(d).reason == (k ? LB_REASON_ORIGIN_TIMEOUT : LB_REASON_ORIGIN_CLOSED);
        readable[k] = error_readable(d->f.to_client.data + 1 + 2 * RTMP_HS_SIZE,
                                     d->f.to_client.len - 1 - 2 * RTMP_HS_SIZE,
                                     "NetStream.Play.StreamNotFound");
        drv_free(d);
        assert_true(failed);
    }
    if (!readable[0] || !readable[1])
        print_error("KNOWN DEFECT lb/front/rtmp_up.c patch(): a partial chunk was forwarded "
                    "before the error (EOF: %s, timeout: %s)\n",
                    readable[0] ? "readable" : "garbled", readable[1] ? "readable" : "garbled");
    assert_true(readable[0]);
    assert_true(readable[1]);
}

/* ---- client failures ------------------------------------------------------------------ */

static void expect_close(struct drv *d, enum lb_reason why)
{
    struct lb_action a = last_act(d);
    assert_int_equal(a.kind, LB_ACT_CLOSE);
    assert_int_equal(a.reason, why);
}

static void test_client_failures(void **st)
{
    static struct client c;
    build_client(&c, CL_PLAY, 128);
    uint8_t body[256];

    /* Not RTMP: HTTP, and RTMPE's 6. */
    const char *firsts[] = {"GET / HTTP/1.1\r\n", "\x06"};
    for (size_t i = 0; i < 2; i++) {
        struct drv *d = drv_new("rtmp", 4096);
        feed(d, false, (const uint8_t *)firsts[i], strlen(firsts[i]));
        expect_close(d, LB_REASON_BAD_HANDSHAKE);
        drv_free(d);
    }
    /* The preroute budget: exactly the bytes up to play is fine, one less
     * is not, whether they come in one read or in pieces. */
    size_t need = c.routed - c.cmds;
    for (size_t step = 0; step <= 100; step += 100) {
        struct drv *d = drv_new("rtmp", (uint32_t)need);
        feed_split(d, false, c.s.b, c.routed, 0, 0, step);
        assert_int_equal(last_act(d).kind, LB_ACT_ROUTE);
        drv_free(d);
        d = drv_new("rtmp", (uint32_t)need - 1);
        feed_split(d, false, c.s.b, c.s.n, 0, 0, step);
        assert_int_equal(d->n_act, 1);
        expect_close(d, LB_REASON_PREROUTE_LIMIT);
        drv_free(d);
    }
    /* Malformed AMF: a string longer than the message. */
    {
        struct drv *d = drv_new("rtmp", 4096);
        feed(d, false, c.s.b, c.cmds);
        uint8_t bad[] = {0x02, 0x00, 0x40, 'c', 'o', 'n'};
        uint8_t out[64];
        size_t k = rtmp_chunk_write(out, sizeof(out), 3, RTMP_MSG_COMMAND_AMF0, 0, bad,
                                    sizeof(bad), 128);
        feed(d, false, out, k);
        expect_close(d, LB_REASON_CLIENT_AMF);
        drv_free(d);
    }
    /* createStream, and play, before connect. */
    const char *cmds[] = {"createStream", "play"};
    const enum lb_reason why[] = {LB_REASON_CLIENT_CS_BEFORE_CONNECT,
                                  LB_REASON_CLIENT_PUB_BEFORE_CONNECT};
    for (size_t i = 0; i < 2; i++) {
        struct drv *d = drv_new("rtmp", 4096);
        feed(d, false, c.s.b, c.cmds);
        size_t n = simple_cmd(body, sizeof(body), cmds[i], 2, i ? "cam1" : NULL);
        uint8_t out[256];
        size_t k = rtmp_chunk_write(out, sizeof(out), 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, 128);
        feed(d, false, out, k);
        expect_close(d, why[i]);
        drv_free(d);
    }
    /* The handshake deadline: mid C0C1, and in LOCAL after connect. */
    size_t stops[] = {700, c.cmds + 200};
    for (size_t i = 0; i < 2; i++) {
        struct drv *d = drv_new("rtmp", 4096);
        feed(d, false, c.s.b, stops[i]);
        assert_int_equal(d->n_act, 0);
        d->f.now_ms = d->f.deadline_ms;
        record(d, d->f.ops->on_timer(&d->f));
        expect_close(d, LB_REASON_HANDSHAKE_TIMEOUT);
        drv_free(d);
    }
    /* The client leaves: in the handshake, and after it. */
    for (size_t i = 0; i < 2; i++) {
        struct drv *d = drv_new("rtmp", 4096);
        feed(d, false, c.s.b, stops[i]);
        feed_end(d, false, 0);
        expect_close(d, i ? LB_REASON_CLIENT_CLOSED : LB_REASON_CLIENT_CLOSED_IN_HANDSHAKE);
        drv_free(d);
    }
}

/* No route, or no node: the client gets a readable error. */
static void test_dials_failed(void **st)
{
    static struct client c;
    build_client(&c, CL_PLAY, 128);
    const enum lb_reason whys[] = {LB_REASON_NO_ROUTE, LB_REASON_NO_NODE, LB_REASON_DIAL_FAILED};
    for (size_t i = 0; i < 3; i++) {
        struct drv *d = drv_new("rtmp", 4096);
        client_until_route(d, &c, 0, 0, 0, CL_PLAY);
        size_t prefix = d->f.to_client.len;
        d->f.route = ups_route_select(d->f.snap, &d->f.req, &d->cands);
        snprintf(d->f.last_failure_text, sizeof(d->f.last_failure_text), "origin o1 refused");
        record(d, d->f.ops->on_dials_failed(&d->f, whys[i]));
        check_fail(d, whys[i], prefix, "NetStream.Play.StreamNotFound");
        drv_free(d);
    }
}

/* ---- early dial (listeners[].early_dial) ------------------------------------------------ */

/* Where the early node stands when the client's play arrives. */
enum early_at { EA_READY, EA_HS, EA_DIALING };

/* What the core does on EARLY when the route is certain: a node is being
 * dialled (f->node), and, but for EA_DIALING, connected at once. */
static void drv_early(struct drv *d, bool connect)
{
    assert_int_equal(d->early, 1);
    /* (the route "live": the test's routes match apps, so the core would
     * not dial early with them; the phase does not look) */
    d->f.route = &d->f.snap->routes[1];
    ups_route_candidates(d->f.snap, d->f.route, &d->f.req, &d->cands);
    assert_true(d->cands.n >= 1);
    d->f.node = d->cands.node[0];
    d->f.dials = 1;
    if (!connect)
        return;
    fake_init(&d->up);
    d->f.upstream = &d->up.c;
    record(d, d->f.ops->on_upstream_connected(&d->f));
}

/* One session whose node was dialled at C0C1: the origin's bytes up to
 * `oa` come before the client's commands (EA_READY: at least S0S1S2, and
 * what an origin says unasked waits in uin), the rest after the ROUTE
 * took the node. The node and the client see exactly what a dial at the
 * ROUTE gives them. */
static bool early_session(int role, enum early_at at, size_t oa, size_t ostep)
{
    static struct client c;
    static struct origin o;
    static struct bytes exp;
    session_bytes(&c, role, &o, 64, &exp);
    if (at == EA_READY && oa < o.after_hs)
        oa = o.after_hs;
    if (at != EA_READY)
        oa = at == EA_HS ? 700 : 0;

    struct drv *d = drv_new("rtmp", 64 * 1024);
    feed(d, false, c.s.b, 1 + RTMP_HS_SIZE); /* C0C1: S0S1S2 queued, EARLY asked */
    drv_early(d, at != EA_DIALING);
    if (at != EA_DIALING) {
        /* The client's handshake goes on beside the node's. */
        assert_int_equal(d->f.to_upstream.len, 1 + RTMP_HS_SIZE);
        assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_CLIENT | LB_WANT_UPSTREAM);
        assert_int_equal(d->f.deadline_ms, T0 + CONNECT_MS);
        feed_split(d, true, o.s.b, oa, 0, 0, ostep);
        assert_int_equal(d->n_act, 0);
        assert_int_equal(d->f.to_client.len, 1 + 2 * RTMP_HS_SIZE); /* nothing of the node's */
    }
    if (at == EA_READY) { /* C2 went at once; the node waits for the replay */
        assert_int_equal(d->f.to_upstream.len, 1 + 2 * RTMP_HS_SIZE);
        assert_memory_equal(d->f.to_upstream.data + 1 + RTMP_HS_SIZE, o.s.b + 1, RTMP_HS_SIZE);
        assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
        assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_CLIENT | LB_WANT_UPSTREAM);
    }
    feed(d, false, c.s.b + 1 + RTMP_HS_SIZE, c.s.n - 1 - RTMP_HS_SIZE);
    assert_int_equal(d->n_act, 1);
    assert_int_equal(d->act[0].kind, LB_ACT_ROUTE);
    assert_string_equal(d->f.req.stream, "cam1");
    size_t prefix = d->f.to_client.len;
    d->done = false;
    d->n_act = 0;
    record(d, d->f.ops->on_adopted(&d->f));
    if (at == EA_DIALING) { /* connected only now: as a dial at the ROUTE */
        assert_int_equal(d->n_act, 0);
        fake_init(&d->up);
        d->f.upstream = &d->up.c;
        record(d, d->f.ops->on_upstream_connected(&d->f));
        assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_UPSTREAM);
    } else if (at == EA_READY) { /* the replay went at once */
        assert_int_equal(d->f.to_upstream.len,
                         1 + 2 * RTMP_HS_SIZE + d->cli.in_off - c.cmds);
    } else {
        assert_int_equal(d->n_act, 0);
        assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_UPSTREAM);
        assert_int_equal(d->f.deadline_ms, T0 + CONNECT_MS);
    }
    feed_split(d, true, o.s.b + oa, o.s.n - oa, 0, 0, ostep);
    bool ok = origin_outcome_ok(d, &c, &o, &exp, prefix);
    drv_free(d);
    return ok;
}

static void test_early_dial(void **st)
{
    static struct origin o;
    build_origin(&o, 64, OF_NONE);
    for (int role = CL_PLAY; role <= CL_PUBLISH; role++) {
        assert_true(early_session(role, EA_HS, 0, 0));
        assert_true(early_session(role, EA_DIALING, 0, 0));
        assert_true(early_session(role, EA_READY, 0, 0));
        assert_true(early_session(role, EA_READY, 0, 1));
    }
    /* The origin's stream cut at every offset after its handshake: what
     * it says before the replay waits, then is read as its answer. */
    for (size_t cut = o.after_hs; cut <= o.s.n; cut++)
        if (!early_session(CL_PLAY, EA_READY, cut, 0)) {
            print_error("early node, origin bytes before the play: %zu\n", cut);
            fail();
        }
}

/* An early node that fails its handshake goes with a DIAL (a passive
 * failure, the next candidate), one that closes after it with a LET_GO
 * (not a failure); either way the client's side is as it was, and with no
 * node left the ROUTE dials afresh. A node that never answers its
 * handshake costs it timeouts.connect, not the client's deadline. The
 * core dropping the node (on_early_gone) leaves the phase as without it. */
static void test_early_dial_failures(void **st)
{
    static struct client c;
    static struct origin o;
    static struct bytes exp;
    session_bytes(&c, CL_PLAY, &o, 64, &exp);
    const size_t ends[] = {0, 700, o.after_hs, o.after_hs + 40};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        struct drv *d = drv_new("rtmp", 64 * 1024);
        feed(d, false, c.s.b, 1 + RTMP_HS_SIZE);
        drv_early(d, true);
        feed(d, true, o.s.b, ends[i]);
        feed_end(d, true, 0);
        if (ends[i] < o.after_hs) { /* in its handshake: the node's fault */
            assert_int_equal(last_act(d).kind, LB_ACT_DIAL);
            assert_int_equal(last_act(d).reason, LB_REASON_ORIGIN_CLOSED);
        } else { /* idle after it, closed: let go, no failure */
            assert_int_equal(last_act(d).kind, LB_ACT_LET_GO);
        }
        assert_int_equal(d->f.to_client.len, 1 + 2 * RTMP_HS_SIZE);
        assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_CLIENT);
        assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
        drv_node_failed(d); /* the core had no other candidate: routing waits */
        d->f.route = NULL;
        d->done = false;
        d->n_act = 0;
        feed(d, false, c.s.b + 1 + RTMP_HS_SIZE, c.s.n - 1 - RTMP_HS_SIZE);
        assert_int_equal(d->n_act, 1);
        assert_int_equal(last_act(d).kind, LB_ACT_ROUTE);
        size_t prefix = d->f.to_client.len;
        drv_connect(d);
        feed(d, true, o.s.b, o.s.n);
        assert_true(origin_outcome_ok(d, &c, &o, &exp, prefix));
        drv_free(d);
    }
    /* A garbled S0: the node's fault. */
    struct drv *d = drv_new("rtmp", 64 * 1024);
    feed(d, false, c.s.b, 1 + RTMP_HS_SIZE);
    drv_early(d, true);
    uint8_t bad[8] = {9, 0, 0, 0, 0, 0, 0, 0};
    feed(d, true, bad, sizeof(bad));
    assert_int_equal(last_act(d).kind, LB_ACT_DIAL);
    assert_int_equal(last_act(d).reason, LB_REASON_ORIGIN_PROTOCOL);
    drv_free(d);
    /* Silent: at T0 + connect the node goes; at T0 + handshake the client. */
    d = drv_new("rtmp", 64 * 1024);
    feed(d, false, c.s.b, 1 + RTMP_HS_SIZE);
    drv_early(d, true);
    d->f.now_ms = T0 + CONNECT_MS;
    record(d, d->f.ops->on_timer(&d->f));
    assert_int_equal(last_act(d).kind, LB_ACT_DIAL);
    assert_int_equal(last_act(d).reason, LB_REASON_ORIGIN_TIMEOUT);
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
    drv_node_failed(d);
    d->done = false;
    d->n_act = 0;
    d->f.now_ms = T0 + HS_MS;
    record(d, d->f.ops->on_timer(&d->f));
    assert_int_equal(last_act(d).kind, LB_ACT_CLOSE);
    assert_int_equal(last_act(d).reason, LB_REASON_HANDSHAKE_TIMEOUT);
    drv_free(d);
    /* Dropped by the core while READY (the ROUTE chose another node): the
     * phase forgets it, and a dial at the ROUTE starts afresh. */
    d = drv_new("rtmp", 64 * 1024);
    feed(d, false, c.s.b, 1 + RTMP_HS_SIZE);
    drv_early(d, true);
    feed(d, true, o.s.b, o.after_hs);
    d->f.ops->on_early_gone(&d->f);
    assert_int_equal(d->f.ops->wants(&d->f), LB_WANT_CLIENT);
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
    assert_int_equal(d->f.upstream_bytes, 0);
    drv_node_failed(d);
    d->f.route = NULL;
    feed(d, false, c.s.b + 1 + RTMP_HS_SIZE, c.s.n - 1 - RTMP_HS_SIZE);
    assert_int_equal(last_act(d).kind, LB_ACT_ROUTE);
    size_t pre = d->f.to_client.len;
    d->f.dials = 0;
    drv_connect(d);
    feed(d, true, o.s.b, o.s.n);
    assert_true(origin_outcome_ok(d, &c, &o, &exp, pre));
    drv_free(d);
    /* The last candidate may take what the client has. */
    d = drv_new("rtmp", 64 * 1024);
    feed(d, false, c.s.b, 1 + RTMP_HS_SIZE);
    d->f.last_candidate = true;
    drv_early(d, true);
    assert_int_equal(d->f.deadline_ms, T0 + HS_MS);
    drv_free(d);
}

/* ---- route_on: connect ---------------------------------------------------------------- */

static void test_route_on_connect(void **st)
{
    static struct client c;
    static struct origin o;
    build_client(&c, CL_PLAY, 128);
    build_origin(&o, 64, OF_NONE);

    struct drv *d = drv_new("pass", 64 * 1024);
    feed(d, false, c.s.b, c.s.n);
    assert_int_equal(d->n_act, 1);
    assert_int_equal(d->act[0].kind, LB_ACT_ROUTE);
    assert_true(d->f.req.at_connect);
    assert_int_equal(d->f.req.role, CONF_ROLE_ANY);
    assert_string_equal(d->f.req.app, "live");
    assert_null(d->f.req.stream);
    /* No local answers: only S0S1S2. */
    assert_int_equal(d->f.to_client.len, 1 + 2 * RTMP_HS_SIZE);
    size_t prefix = d->f.to_client.len;
    drv_connect(d);
    assert_string_equal(d->f.route->name, "at-connect");
    feed(d, true, o.s.b, o.s.n);
    /* The origin's answers pass untouched, the hand-over is at once. */
    assert_int_equal(last_act(d).kind, LB_ACT_SPLICE);
    assert_int_equal(last_act(d).dirs, LB_SPLICE_C2U | LB_SPLICE_U2C);
    size_t fwd = d->f.to_client.len - prefix;
    assert_int_equal(fwd + d->up.in_len - d->up.in_off, o.s.n - o.after_hs);
    assert_memory_equal(d->f.to_client.data + prefix, o.s.b + o.after_hs, fwd);
    assert_memory_equal(d->f.to_upstream.data + 1 + 2 * RTMP_HS_SIZE, c.s.b + c.cmds,
                        d->cli.in_off - c.cmds);
    drv_free(d);

    /* An _error to connect is the client's to read, not a failure. */
    build_origin(&o, 64, OF_CONNECT_ERROR);
    d = drv_new("pass", 64 * 1024);
    feed(d, false, c.s.b, c.s.n);
    drv_connect(d);
    feed(d, true, o.s.b, o.s.n);
    assert_int_equal(last_act(d).kind, LB_ACT_SPLICE);
    assert_memory_equal(d->f.to_client.data + prefix, o.s.b + o.after_hs,
                        d->f.to_client.len - prefix);
    drv_free(d);
}

/* ---- memory ----------------------------------------------------------------------------- */

/* What a stalled session's phase holds on the heap, beyond what the core
 * owns (to_client is flushed to the socket at once). */
static size_t stalled_bytes(size_t fed, const struct client *c, size_t *with_output)
{
    track_start();
    struct drv *d = drv_new("rtmp", 64 * 1024);
    /* The driver itself is test memory. */
    track_del(d);
    feed(d, false, c->s.b, fed);
    assert_int_equal(d->n_act, 0);
    size_t phase = track_live(d->f.to_client.data);
    *with_output = track_live(NULL);
    assert_false(trk.overflow);
    trk.on = false;
    drv_free(d);
    return phase;
}

static void test_memory_stalled_handshake(void **st)
{
    static struct client c;
    build_client(&c, CL_PLAY, 128);
    size_t out;
    size_t mid_c0c1 = stalled_bytes(700, &c, &out);
    print_message("stalled in C0C1: phase %zu bytes (with output %zu)\n", mid_c0c1, out);
    assert_true(mid_c0c1 > 0); /* the counter sees the phase's allocations */
    assert_true(mid_c0c1 <= 8192);
    size_t mid_c2 = stalled_bytes(1 + RTMP_HS_SIZE + 700, &c, &out);
    print_message("stalled in C2: phase %zu bytes (with S0S1S2 unsent %zu)\n", mid_c2, out);
    assert_true(mid_c2 <= 8192);
    size_t mid_connect = stalled_bytes(c.cmds + 100, &c, &out);
    print_message("stalled in connect: phase %zu bytes\n", mid_connect);
    /* LOCAL reserves a whole read (16 KiB) in the replay buffer up front:
     * bounded by the preroute budget, not by 8 KiB (reported, not a bound
     * the design states). */
    assert_true(mid_connect <= 64 * 1024 + 8192);
    print_message("sizeof rtmp_phase %zu, hs_server %zu, chunk_dec %zu\n",
                  sizeof(struct rtmp_phase), sizeof(struct rtmp_hs_server),
                  sizeof(struct rtmp_chunk_dec));
}

/* ---- publisher takeover ------------------------------------------------------------ */

struct kick_log {
    unsigned n, worker;
    uint64_t id;
};

static void kick_rec(void *arg, unsigned worker, uint64_t id)
{
    struct kick_log *k = arg;
    k->n++;
    k->worker = worker;
    k->id = id;
}

static struct sockaddr_storage v4(const char *a, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
    return ss;
}

/* A publish of live/cam1 from 127.0.0.1:5555 while `holder` publishes it. */
static struct drv *conflicting_publish(struct lb_pubreg *g, struct client *c)
{
    static struct sockaddr_storage me;
    me = v4("127.0.0.1", 5555);
    build_client(c, CL_PUBLISH, 128);
    struct drv *d = drv_new("rtmp", 64 * 1024);
    d->lim.takeover_ms = 3000;
    d->f.pubreg = g;
    d->f.peer = (const struct sockaddr *)&me;
    d->f.req.worker = 0;
    feed(d, false, c->s.b, c->s.n);
    return d;
}

static void on_timer_at(struct drv *d, uint64_t now)
{
    d->f.now_ms = now;
    record(d, d->f.ops->on_timer(&d->f));
}

static void test_takeover(void **st)
{
    static struct client c;
    struct lb_pubreg *g = lb_pubreg_new();
    struct kick_log k = {0};
    lb_pubreg_set_kick(g, kick_rec, &k);
    struct sockaddr_storage old_addr = v4("127.0.0.1", 4444);
    struct lb_pub_who holder = {1, (const struct sockaddr *)&old_addr, "127.0.0.1:4444", 10};
    uint64_t hid = 0;
    assert_int_equal(lb_pubreg_claim(g, "live", "live", "cam1", &holder, &hid, NULL),
                     LB_PUB_CLAIMED);
    lb_pubreg_set_node(g, hid, "origins", "o2");

    /* auto, same address: the holder's worker is asked to end it, and the
     * new publish waits without reading or routing. */
    struct drv *d = conflicting_publish(g, &c);
    assert_int_equal(d->n_act, 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.worker, 1);
    assert_int_equal(k.id, hid);
    assert_true(d->f.pub_id != 0 && d->f.pub_id != hid);
    assert_int_equal(lb_pubreg_status(g, d->f.pub_id), LB_PUB_WAITING);
    assert_int_equal(d->f.ops->wants(&d->f), 0);
    assert_true(d->f.deadline_ms > T0 && d->f.deadline_ms <= T0 + 100);
    on_timer_at(d, d->f.deadline_ms); /* the holder is still there */
    assert_int_equal(d->n_act, 0);
    /* It ends (its worker released the claim): a settle delay, then ROUTE
     * with the old node pinned. */
    lb_pubreg_release(g, hid);
    uint64_t t = d->f.deadline_ms;
    on_timer_at(d, t);
    assert_int_equal(d->n_act, 0);
    assert_true(d->f.deadline_ms >= t + 50);
    on_timer_at(d, d->f.deadline_ms);
    assert_int_equal(d->n_act, 1);
    assert_int_equal(d->act[0].kind, LB_ACT_ROUTE);
    assert_int_equal(d->f.req.role, CONF_ROLE_PUBLISH);
    assert_string_equal(d->f.req.pin_node, "o2");
    const struct ups_route *r = ups_route_select(d->f.snap, &d->f.req, &d->cands);
    assert_non_null(r);
    assert_string_equal(d->cands.node[0]->name, "o2");
    assert_int_equal(lb_pubreg_status(g, d->f.pub_id), LB_PUB_OWNER);
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_TAKEOVER), 1);
    /* The core releases the claim when the session ends. */
    lb_pubreg_release(g, d->f.pub_id);
    drv_free(d);
    assert_int_equal(lb_pubreg_count(g), 0);
    lb_pubreg_free(g);
}

static void test_takeover_refused_and_timeout(void **st)
{
    static struct client c;
    struct lb_pubreg *g = lb_pubreg_new();
    struct kick_log k = {0};
    lb_pubreg_set_kick(g, kick_rec, &k);
    struct sockaddr_storage other = v4("192.0.2.9", 4444), same = v4("127.0.0.1", 1);
    struct lb_pub_who holder = {0, (const struct sockaddr *)&other, "192.0.2.9:4444", 0};
    uint64_t hid = 0;
    assert_int_equal(lb_pubreg_claim(g, "live", "live", "cam1", &holder, &hid, NULL),
                     LB_PUB_CLAIMED);

    /* auto, another address: BadName, the holder untouched. */
    struct drv *d = conflicting_publish(g, &c);
    check_fail(d, LB_REASON_PUBLISH_CONFLICT, 0, "NetStream.Publish.BadName");
    assert_non_null(strstr(d->f.message, "192.0.2.9:4444"));
    assert_int_equal(d->f.pub_id, 0);
    assert_int_equal(k.n, 0);
    assert_int_equal(lb_pubreg_status(g, hid), LB_PUB_OWNER);
    drv_free(d);

    /* Same address, but the holder never ends: refused at timeouts.takeover,
     * and its own claim goes (the holder stays). */
    lb_pubreg_release(g, hid);
    holder.addr = (const struct sockaddr *)&same;
    assert_int_equal(lb_pubreg_claim(g, "live", "live", "cam1", &holder, &hid, NULL),
                     LB_PUB_CLAIMED);
    d = conflicting_publish(g, &c);
    assert_int_equal(d->n_act, 0);
    assert_int_equal(k.n, 1);
    for (int i = 0; i < 1000 && d->n_act == 0; i++)
        on_timer_at(d, d->f.deadline_ms);
    check_fail(d, LB_REASON_TAKEOVER_TIMEOUT, 0, "NetStream.Publish.Denied");
    assert_true(d->f.now_ms >= T0 + 3000);
    assert_int_equal(d->f.pub_id, 0);
    assert_int_equal(lb_pubreg_status(g, hid), LB_PUB_OWNER);
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_TIMEOUT), 1);
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_REJECT), 1);
    drv_free(d);
    lb_pubreg_release(g, hid);
    lb_pubreg_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_origin_split_everywhere),
        cmocka_unit_test(test_client_split_everywhere),
        cmocka_unit_test(test_retry_after_origin_failure),
        cmocka_unit_test(test_origin_handshake_failures),
        cmocka_unit_test(test_origin_reply_failures),
        cmocka_unit_test(test_origin_eof_while_patching),
        cmocka_unit_test(test_origin_stops_mid_chunk_error_garbled),
        cmocka_unit_test(test_client_failures),
        cmocka_unit_test(test_dials_failed),
        cmocka_unit_test(test_route_on_connect),
        cmocka_unit_test(test_early_dial),
        cmocka_unit_test(test_early_dial_failures),
        cmocka_unit_test(test_takeover),
        cmocka_unit_test(test_takeover_refused_and_timeout),
        cmocka_unit_test(test_memory_stalled_handshake),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
