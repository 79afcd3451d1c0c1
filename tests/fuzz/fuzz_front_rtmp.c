/* libFuzzer target: the rtmp phase (the front door) as the session core
 * drives it, through fake transports. Input: a 2-byte length L, then L
 * client bytes, then the origin's bytes; every fifth byte of a piece-size
 * stream decides how reads are split, so replies arrive cut anywhere. The
 * phase must never crash, leak, overrun, or answer with an action that is
 * not allowed in its state. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
    const uint8_t *p;
    size_t n, pos;
    size_t piece; /* bytes per read */
};

static ssize_t f_read(struct lb_conn *c, void *buf, size_t len)
{
    struct feed *f = c->ctx;
    if (f->pos == f->n)
        return -EAGAIN;
    size_t k = f->n - f->pos;
    if (k > f->piece)
        k = f->piece;
    if (k > len)
        k = len;
    memcpy(buf, f->p + f->pos, k);
    f->pos += k;
    return (ssize_t)k;
}

static const struct lb_xprt_ops fake = {
    .name = "fake", .read = f_read, .write = fx_write, .shutdown = fx_shutdown,
    .quickack = fx_quickack,
};

static struct ups_snapshot *snapshot(void)
{
    static const char text[] =
        "listeners: [{name: l, address: 127.0.0.1:1935}]\n"
        "pools: {p: {nodes: [{name: a, address: 127.0.0.1:1}, {name: b, address: 127.0.0.1:2}]}}\n"
        "routes:\n"
        "  - {name: auth, match: {app: auth}, pool: p, route_on: connect}\n"
        "  - {name: r, pool: p}\n";
    static struct ups_snapshot *s;
    return fx_snapshot(&s, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t lc = (size_t)data[0] << 8 | data[1];
    const uint8_t *rest = data + 2;
    size_t left = size - 2;
    if (lc > left)
        lc = left;
    struct feed cf = {rest, lc, 0, 1 + (lc % 97)};
    struct feed of = {rest + lc, left - lc, 0, 1 + ((left - lc) % 89)};
    struct lb_conn client = {&fake, -1, &cf}, upstream = {&fake, -1, &of};
    struct lb_front_limits lim = {.preroute_bytes = 16384, .max_chunk_size = 65536,
                                  .max_message_size = 8192, .max_amf_depth = 8,
                                  .max_amf_string = 1024, .handshake_ms = 1000,
                                  .connect_ms = 500};
    struct ups_snapshot *snap = snapshot();
    struct lb_front f = {.ops = &lb_phase_rtmp, .client = &client, .lim = &lim, .snap = snap,
                         .client_text = "fuzz", .now_ms = 1};

    if (f.ops->create(&f) < 0)
        return 0;
    struct lb_action a = f.ops->start(&f);
    for (int i = 0; i < 64 && a.kind == LB_ACT_CONTINUE && cf.pos < cf.n; i++)
        a = f.ops->on_client_data(&f);
    if (a.kind == LB_ACT_ROUTE) {
        f.route = &snap->routes[0];
        f.node = &snap->pools[0].nodes[0];
        for (int dial = 0; dial < 3; dial++) {
            f.upstream = &upstream;
            f.dials++;
            a = f.ops->on_upstream_connected(&f);
            lb_buf_free(&f.to_upstream);
            for (int i = 0; i < 4096 && (a.kind == LB_ACT_CONTINUE || a.kind == LB_ACT_SPLICE) &&
                            of.pos < of.n && (f.ops->wants(&f) & LB_WANT_UPSTREAM);
                 i++) {
                a = f.ops->on_upstream_data(&f);
                lb_buf_free(&f.to_client); /* the core flushed it */
            }
            if (a.kind != LB_ACT_DIAL)
                break;
        }
        if (a.kind == LB_ACT_DIAL || (a.kind == LB_ACT_CONTINUE && f.ops->wants(&f))) {
            f.now_ms += 10000;
            a = f.ops->on_timer(&f);
        }
    } else if (a.kind == LB_ACT_CONTINUE) {
        f.now_ms += 10000;
        a = f.ops->on_timer(&f);
        if (a.kind != LB_ACT_CLOSE)
            abort(); /* a handshake deadline always closes */
    }
    f.ops->free(&f);
    lb_buf_free(&f.to_client);
    lb_buf_free(&f.to_upstream);
    free(f.app);
    free(f.stream);
    return 0;
}
