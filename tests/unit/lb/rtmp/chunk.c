/* Chunk decoder: every fmt, 1/2/3-byte csids, extended timestamps in both
 * styles, chunk size changes, interleaving, limits, and the same input split
 * at every byte boundary. The chunker here is written independently of the
 * decoder, from the format description in RTMP-NOTES.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lb/rtmp/chunk.h"

static const struct rtmp_chunk_limits LIM = {1 << 24, 1 << 20, 65599};

/* ---- an independent chunker ------------------------------------------- */

struct out {
    uint8_t b[1 << 16];
    size_t n;
};

static void put(struct out *o, const void *p, size_t n)
{
    assert_true(o->n + n <= sizeof(o->b));
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_basic(struct out *o, int fmt, uint32_t csid)
{
    uint8_t b[3];
    if (csid < 64) {
        b[0] = (uint8_t)(fmt << 6 | csid);
        put(o, b, 1);
    } else if (csid < 320) {
        b[0] = (uint8_t)(fmt << 6);
        b[1] = (uint8_t)(csid - 64);
        put(o, b, 2);
    } else {
        b[0] = (uint8_t)(fmt << 6 | 1);
        b[1] = (uint8_t)((csid - 64) & 0xff);
        b[2] = (uint8_t)((csid - 64) >> 8);
        put(o, b, 3);
    }
}

static void put24(struct out *o, uint32_t v)
{
    uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 3);
}

static void put32be(struct out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(o, b, 4);
}

/* One message as chunks. ts_field: the value for the header (absolute for
 * fmt0, delta otherwise); adobe: repeat the extended timestamp in fmt3
 * continuations. */
static void put_msg(struct out *o, int fmt, uint32_t csid, uint32_t ts_field, uint8_t type,
                    uint32_t msid, const uint8_t *payload, uint32_t len, uint32_t chunk,
                    bool adobe)
{
    bool ext = ts_field >= 0xffffff;
    put_basic(o, fmt, csid);
    if (fmt <= 2)
        put24(o, ext ? 0xffffff : ts_field);
    if (fmt <= 1) {
        put24(o, len);
        put(o, &type, 1);
    }
    if (fmt == 0) {
        uint8_t m[4] = {(uint8_t)msid, (uint8_t)(msid >> 8), (uint8_t)(msid >> 16),
                        (uint8_t)(msid >> 24)};
        put(o, m, 4);
    }
    if (ext)
        put32be(o, ts_field);
    uint32_t off = 0;
    while (off < len || (len == 0 && off == 0)) {
        uint32_t n = len - off < chunk ? len - off : chunk;
        if (off > 0) {
            put_basic(o, 3, csid);
            if (ext && adobe)
                put32be(o, ts_field);
        }
        put(o, payload + off, n);
        off += n;
        if (len == 0)
            break;
    }
}

/* ---- decoding harness ---------------------------------------------------- */

struct msg {
    uint32_t csid, len, ts, msid;
    uint8_t type;
    uint8_t *data;
};

struct result {
    struct msg m[64];
    size_t n;
    const char *error;
};

/* Feeds in pieces of `step` bytes (0: all at once), keeping the unconsumed
 * tail as a real caller would; applies Set Chunk Size messages. */
static void decode(const uint8_t *in, size_t n, size_t step, uint32_t peek, struct result *r)
{
    struct rtmp_chunk_dec d;
    uint8_t buf[1 << 16];
    size_t have = 0, fed = 0;
    memset(r, 0, sizeof(*r));
    rtmp_chunk_init(&d, &LIM, peek);
    for (;;) {
        size_t add = step ? step : n;
        if (add > n - fed)
            add = n - fed;
        memcpy(buf + have, in + fed, add);
        have += add;
        fed += add;
        size_t pos = 0;
        for (;;) {
            struct rtmp_chunk_ev ev;
            size_t used;
            rtmp_chunk_next(&d, buf + pos, have - pos, &used, &ev);
            pos += used;
            if (ev.type == RTMP_EV_NEED_MORE)
                break;
            if (ev.type == RTMP_EV_ERROR) {
                r->error = ev.error;
                return;
            }
            struct msg *m = &r->m[r->n];
            if (ev.type == RTMP_EV_MSG_START) {
                m->csid = ev.csid;
                m->len = ev.len;
                m->ts = ev.timestamp;
                m->msid = ev.msid;
                m->type = ev.msg_type;
                m->data = calloc(1, ev.len + 1);
                if (peek)
                    assert_true(ev.data_len >= (peek < ev.len ? peek : ev.len) ||
                                ev.data_len >= d.chunk_size);
            } else if (ev.type == RTMP_EV_PAYLOAD) {
                assert_true(ev.offset + ev.data_len <= m->len);
                memcpy(m->data + ev.offset, ev.data, ev.data_len);
            } else if (ev.type == RTMP_EV_MSG_END) {
                if (m->type == RTMP_MSG_SET_CHUNK_SIZE && m->len == 4) {
                    uint32_t sz = (uint32_t)m->data[0] << 24 | (uint32_t)m->data[1] << 16 |
                                  (uint32_t)m->data[2] << 8 | m->data[3];
                    assert_int_equal(rtmp_chunk_set_size(&d, sz), 0);
                }
                r->n++;
            }
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        if (fed == n)
            break;
    }
}

static void free_result(struct result *r)
{
    for (size_t i = 0; i <= r->n && i < 64; i++)
        free(r->m[i].data);
}

static uint8_t pattern[5000];

static void fill_pattern(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
}

/* A stream exercising everything: built once, decoded many ways. */
static void build_stream(struct out *o)
{
    uint8_t scs[4] = {0, 0, 0x10, 0}; /* Set Chunk Size 4096 */
    fill_pattern();
    o->n = 0;
    put_msg(o, 0, 3, 0, 20, 0, pattern, 300, 128, false);        /* spans 3 chunks */
    put_msg(o, 1, 3, 40, 20, 0, pattern + 1, 10, 128, false);     /* fmt1: delta 40 */
    put_msg(o, 2, 3, 40, 20, 0, pattern + 2, 10, 128, false);     /* fmt2: same len */
    put_msg(o, 3, 3, 0, 20, 0, pattern + 3, 10, 128, false);      /* fmt3: new msg, delta 40 */
    put_msg(o, 0, 70, 5, 8, 1, pattern + 4, 200, 128, false);     /* 2-byte csid */
    put_msg(o, 0, 400, 6, 9, 1, pattern + 5, 130, 128, false);    /* 3-byte csid */
    put_msg(o, 0, 4, 0x1234567, 9, 1, pattern + 6, 300, 128, true);  /* ext ts, Adobe */
    put_msg(o, 0, 5, 0x1000000, 9, 1, pattern + 7, 300, 128, false); /* ext ts, plain */
    put_msg(o, 0, 2, 0, RTMP_MSG_SET_CHUNK_SIZE, 0, scs, 4, 128, false);
    put_msg(o, 0, 6, 9, 9, 1, pattern + 8, 4500, 4096, false);    /* at the new size */
    put_msg(o, 0, 7, 0, 18, 1, pattern, 0, 4096, false);          /* empty message */
}

static void check_stream(const struct result *r)
{
    static const struct { uint32_t csid, len, ts; uint8_t type; size_t off; } want[] = {
        {3, 300, 0, 20, 0},       {3, 10, 40, 20, 1},   {3, 10, 80, 20, 2},
        {3, 10, 120, 20, 3},      {70, 200, 5, 8, 4},   {400, 130, 6, 9, 5},
        {4, 300, 0x1234567, 9, 6}, {5, 300, 0x1000000, 9, 7}, {2, 4, 0, 1, 0},
        {6, 4500, 9, 9, 8},       {7, 0, 0, 18, 0},
    };
    assert_null(r->error);
    assert_int_equal(r->n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(r->m[i].csid, want[i].csid);
        assert_int_equal(r->m[i].len, want[i].len);
        assert_int_equal(r->m[i].ts, want[i].ts);
        assert_int_equal(r->m[i].type, want[i].type);
        if (want[i].type != 1)
            assert_memory_equal(r->m[i].data, pattern + want[i].off, want[i].len);
    }
    assert_int_equal(r->m[4].msid, 1);
}

static void test_whole(void **st)
{
    static struct out o;
    struct result r;
    build_stream(&o);
    decode(o.b, o.n, 0, 0, &r);
    check_stream(&r);
    free_result(&r);
}

static void test_split_at_every_boundary(void **st)
{
    static struct out o;
    build_stream(&o);
    for (size_t step = 1; step <= 13; step++) {
        struct result r;
        decode(o.b, o.n, step, 0, &r);
        check_stream(&r);
        free_result(&r);
    }
    /* Every two-piece split. */
    for (size_t cut = 1; cut < o.n; cut++) {
        struct result r;
        decode(o.b, o.n, cut, 0, &r);
        check_stream(&r);
        free_result(&r);
    }
}

static void test_peek_shows_first_bytes(void **st)
{
    static struct out o;
    build_stream(&o);
    for (size_t step = 1; step <= 5; step++) {
        struct result r;
        decode(o.b, o.n, step, 32, &r);
        check_stream(&r);
        free_result(&r);
    }
}

static void expect_error(const uint8_t *in, size_t n, const char *want)
{
    struct result r;
    decode(in, n, 0, 0, &r);
    assert_non_null(r.error);
    assert_string_equal(r.error, want);
    free_result(&r);
}

static void test_errors(void **st)
{
    static struct out o;
    fill_pattern();
    /* fmt2 on a chunk stream never seen. */
    o.n = 0;
    put_msg(&o, 2, 9, 0, 0, 0, pattern, 4, 128, false);
    expect_error(o.b, o.n, "first chunk of a chunk stream lacks a message header");
    /* csid 0 encoded as one byte is the 2-byte form; csid 1 style too; a
     * real csid below 2 cannot be encoded, so check the length limit. */
    o.n = 0;
    put_msg(&o, 0, 3, 0, 20, 0, pattern, 10, 128, false);
    uint8_t huge[12] = {0x03, 0, 0, 0, 0x7f, 0xff, 0xff, 20, 0, 0, 0, 0};
    expect_error(huge, sizeof(huge), "message longer than the limit");
    /* A new message header while a message is half read. */
    o.n = 0;
    put_basic(&o, 0, 3);
    put24(&o, 0);
    put24(&o, 300);
    uint8_t t = 20;
    put(&o, &t, 1);
    put(&o, "\0\0\0\0", 4);
    put(&o, pattern, 128);
    put_msg(&o, 0, 3, 0, 20, 0, pattern, 10, 128, false);
    expect_error(o.b, o.n, "new message header in the middle of a message");
    /* More chunk streams than slots. */
    o.n = 0;
    for (uint32_t c = 0; c < RTMP_MAX_CS_SLOTS + 1; c++)
        put_msg(&o, 0, 64 + c, 0, 8, 1, pattern, 1, 128, false);
    expect_error(o.b, o.n, "too many chunk streams");
}

static void test_chunk_size_bounds(void **st)
{
    struct rtmp_chunk_dec d;
    struct rtmp_chunk_limits lim = {65536, 1 << 20, 65599};
    rtmp_chunk_init(&d, &lim, 0);
    assert_int_equal(rtmp_chunk_set_size(&d, 0), -1);
    assert_int_equal(rtmp_chunk_set_size(&d, 65537), -1);
    assert_int_equal(rtmp_chunk_set_size(&d, 0x80000000u), -1);
    assert_int_equal(rtmp_chunk_set_size(&d, 4096), 0);
    assert_int_equal(d.chunk_size, 4096);
}

static void test_write_fmt0(void **st)
{
    uint8_t out[200], payload[20];
    struct result r;
    memset(payload, 0xab, sizeof(payload));
    size_t n = rtmp_chunk_write_fmt0(out, sizeof(out), 3, 20, 1, payload, sizeof(payload));
    assert_int_equal(n, 32);
    decode(out, n, 0, 0, &r);
    assert_null(r.error);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.m[0].msid, 1);
    assert_memory_equal(r.m[0].data, payload, 20);
    free_result(&r);
    assert_int_equal(rtmp_chunk_write_fmt0(out, 20, 3, 20, 1, payload, sizeof(payload)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),          cmocka_unit_test(test_split_at_every_boundary),
        cmocka_unit_test(test_peek_shows_first_bytes), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_chunk_size_bounds), cmocka_unit_test(test_write_fmt0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
