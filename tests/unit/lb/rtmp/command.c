/* RTMP commands: parsing, normalisation, the replies rtmplb writes (decoded
 * back through the chunk decoder and AMF), and the transaction-id peek. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lb/rtmp/chunk.h"
#include "lb/rtmp/command.h"

static const struct amf_limits LIM = {16, 4096, 128};

static void test_normalise(void **st)
{
    static const struct { const char *in, *out; } apps[] = {
        {"live", "live"},          {"live/", "live"},         {"live?token=1", "live"},
        {"live/_definst_", "live"}, {"live/_definst_/", "live"}, {"a/b", "a/b"},
        {"live//", "live"},
    };
    for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++) {
        char b[64];
        strcpy(b, apps[i].in);
        rtmp_normalise_app(b);
        assert_string_equal(b, apps[i].out);
    }
    char s[64] = "cam1?key=secret";
    rtmp_normalise_stream(s);
    assert_string_equal(s, "cam1");
    char app[64];
    rtmp_app_from_tcurl("rtmp://h.example:1935/live/_definst_?x=1", app, sizeof(app));
    assert_string_equal(app, "live");
    rtmp_app_from_tcurl("rtmp://h.example", app, sizeof(app));
    assert_string_equal(app, "");
}

static size_t connect_body(uint8_t *b, size_t cap, const char *app, const char *tc, int enc)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    if (app) {
        p = amf0_put_key(p, end, "app");
        p = amf0_put_string(p, end, app);
    }
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, tc);
    if (enc) {
        p = amf0_put_key(p, end, "objectEncoding");
        p = amf0_put_number(p, end, enc);
    }
    p = amf0_put_object_end(p, end);
    return (size_t)(p - b);
}

static void test_parse_commands(void **st)
{
    uint8_t b[512], *p, *end = b + sizeof(b);
    struct rtmp_cmd c;
    const char *why;
    size_t n = connect_body(b, sizeof(b), "live/?a=b", "rtmp://x/live", 3);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_int_equal(c.kind, RTMP_CMD_CONNECT);
    assert_string_equal(c.app, "live");
    assert_int_equal(c.object_encoding, 3);
    assert_true(c.tid == 1.0);
    n = connect_body(b, sizeof(b), NULL, "rtmp://x:1935/vod/_definst_", 0);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_string_equal(c.app, "vod"); /* from tcUrl when app is missing */

    p = b;
    p = amf0_put_string(p, end, "play");
    p = amf0_put_number(p, end, 4);
    p = amf0_put_null(p, end);
    p = amf0_put_string(p, end, "cam1?token=x");
    p = amf0_put_number(p, end, -2000);
    assert_int_equal(rtmp_cmd_parse(b, (size_t)(p - b), false, &LIM, &c, &why), 0);
    assert_int_equal(c.kind, RTMP_CMD_PLAY);
    assert_string_equal(c.stream, "cam1");

    /* The same as a type-17 (AMF3) command: a 0x00 format byte first. */
    uint8_t b3[512];
    b3[0] = 0;
    memcpy(b3 + 1, b, (size_t)(p - b));
    assert_int_equal(rtmp_cmd_parse(b3, (size_t)(p - b) + 1, true, &LIM, &c, &why), 0);
    assert_int_equal(c.kind, RTMP_CMD_PLAY);
    assert_string_equal(c.stream, "cam1");

    /* A stream name too long is an error, not a truncation. */
    char longname[400];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    p = b;
    p = amf0_put_string(p, end, "publish");
    p = amf0_put_number(p, end, 5);
    p = amf0_put_null(p, end);
    p = amf0_put_string(p, end, longname);
    assert_int_equal(rtmp_cmd_parse(b, (size_t)(p - b), false, &LIM, &c, &why), -1);
    assert_string_equal(why, "name or URL too long");
}

/* The queries normalising drops are kept raw: the tcUrl's (else the
 * app's) at connect, the stream's at publish/play. */
static void test_args_kept(void **st)
{
    uint8_t b[512], *p, *end = b + sizeof(b);
    struct rtmp_cmd c;
    const char *why;
    size_t n = connect_body(b, sizeof(b), "live", "rtmp://x:1935/live?line=hk&t=1", 0);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_string_equal(c.app, "live");
    assert_string_equal(c.tc_url, "rtmp://x:1935/live?line=hk&t=1");
    assert_string_equal(c.tc_args, "line=hk&t=1");
    n = connect_body(b, sizeof(b), "live?line=sg", "rtmp://x/live", 0);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_string_equal(c.app, "live");
    assert_string_equal(c.tc_args, "line=sg"); /* the tcUrl had none */
    n = connect_body(b, sizeof(b), NULL, "rtmp://x/live/_definst_?line=b", 0);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_string_equal(c.app, "live");
    assert_string_equal(c.tc_args, "line=b");
    n = connect_body(b, sizeof(b), "live", "rtmp://x/live", 0);
    assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
    assert_string_equal(c.tc_args, "");

    for (int pub = 0; pub <= 1; pub++) {
        p = b;
        p = amf0_put_string(p, end, pub ? "publish" : "play");
        p = amf0_put_number(p, end, 4);
        p = amf0_put_null(p, end);
        p = amf0_put_string(p, end, "room1?line=b&x=%41");
        assert_int_equal(rtmp_cmd_parse(b, (size_t)(p - b), false, &LIM, &c, &why), 0);
        assert_string_equal(c.stream, "room1"); /* the key stays normalised */
        assert_string_equal(c.stream_args, "line=b&x=%41");
        assert_string_equal(c.tc_args, "");
    }
    p = b;
    p = amf0_put_string(p, end, "play");
    p = amf0_put_number(p, end, 4);
    p = amf0_put_null(p, end);
    p = amf0_put_string(p, end, "room1");
    assert_int_equal(rtmp_cmd_parse(b, (size_t)(p - b), false, &LIM, &c, &why), 0);
    assert_string_equal(c.stream_args, "");
}

static void test_args_split(void **st)
{
    struct rtmp_arg a[4];
    char q1[] = "line=hk&empty=&flag&&=nokey&pct=a%20b%3D&bad=%zz&nul=%00";
    size_t n = rtmp_args_split(q1, a, 4);
    assert_int_equal(n, 4); /* bounded by cap */
    assert_string_equal(a[0].key, "line");
    assert_string_equal(a[0].value, "hk");
    assert_string_equal(a[1].key, "empty");
    assert_string_equal(a[1].value, "");
    assert_string_equal(a[2].key, "flag");
    assert_string_equal(a[2].value, "");
    assert_string_equal(a[3].key, "pct"); /* "" and "=nokey" dropped */
    assert_string_equal(a[3].value, "a b=");

    struct rtmp_arg b[8];
    char q2[] = "bad=%zz&nul=%00&k%3Dx=v&last=1%";
    n = rtmp_args_split(q2, b, 8);
    assert_int_equal(n, 4);
    assert_string_equal(b[0].value, "%zz"); /* malformed: kept as sent */
    assert_string_equal(b[1].value, "%00"); /* never a NUL */
    assert_string_equal(b[2].key, "k=x");
    assert_string_equal(b[2].value, "v");
    assert_string_equal(b[3].value, "1%");

    char q3[] = "";
    assert_int_equal(rtmp_args_split(q3, b, 8), 0);
    char q4[] = "a=1";
    assert_int_equal(rtmp_args_split(q4, b, 0), 0);
}

/* Decodes one or more messages from out; returns the last message's body. */
static size_t decode_all(const uint8_t *in, size_t n, uint32_t chunk, uint8_t *types,
                         size_t *count, uint8_t *last_body)
{
    struct rtmp_chunk_dec d;
    struct rtmp_chunk_limits lim = {1 << 20, 1 << 20, 65599};
    size_t pos = 0, used, len = 0;
    rtmp_chunk_init(&d, &lim, 0);
    rtmp_chunk_set_size(&d, chunk);
    *count = 0;
    for (;;) {
        struct rtmp_chunk_ev ev;
        rtmp_chunk_next(&d, in + pos, n - pos, &used, &ev);
        pos += used;
        assert_int_not_equal(ev.type, RTMP_EV_ERROR);
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_MSG_START)
            len = ev.len;
        if (ev.type == RTMP_EV_PAYLOAD)
            memcpy(last_body + ev.offset, ev.data, ev.data_len);
        if (ev.type == RTMP_EV_MSG_END)
            types[(*count)++] = ev.msg_type;
    }
    assert_int_equal(pos, n);
    return len;
}

static void test_connect_reply(void **st)
{
    uint8_t out[1024], body[1024], types[8];
    size_t count;
    for (int enc = 0; enc <= 3; enc += 3) {
        size_t n = rtmp_reply_connect(out, sizeof(out), 1, enc, NULL);
        assert_true(n > 0);
        size_t len = decode_all(out, n, 128, types, &count, body);
        assert_int_equal(count, 3);
        assert_int_equal(types[0], RTMP_MSG_WIN_ACK_SIZE);
        assert_int_equal(types[1], RTMP_MSG_SET_PEER_BW);
        assert_int_equal(types[2], RTMP_MSG_COMMAND_AMF0);
        assert_true(len <= 128); /* one chunk at any chunk size */
        if (enc == 0)
            assert_int_equal(len, 128);
        /* Exactly three one-chunk messages: no Set Chunk Size among them. */
        assert_int_equal(n, 12 + 4 + 12 + 5 + 12 + len);
        struct amf_value arena[32];
        struct amf_doc doc = {.v = arena, .cap = 32};
        assert_int_equal(amf_decode_command(body, len, false, &LIM, &doc), 0);
        assert_true(amf_str_eq(amf_top(&doc, 0), "_result"));
        const struct amf_value *info = amf_top(&doc, 3);
        assert_true(amf_str_eq(amf_get(&doc, info, "code"), "NetConnection.Connect.Success"));
        if (enc == 3)
            assert_true(amf_get(&doc, info, "objectEncoding")->num == 3.0);
    }
}

/* An E-RTMP v2 connect, as an encoder that wants HEVC/AV1/Opus sends it. */
static size_t ertmp_connect_body(uint8_t *b, size_t cap, int enc)
{
    uint8_t *p = b, *end = b + cap;
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, "live");
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, "rtmp://x/live");
    if (enc) {
        p = amf0_put_key(p, end, "objectEncoding");
        p = amf0_put_number(p, end, enc);
    }
    p = amf0_put_key(p, end, "fourCcList");
    p = amf0_put_strict_array(p, end, 6);
    p = amf0_put_string(p, end, "hvc1");
    p = amf0_put_string(p, end, "av01");
    p = amf0_put_string(p, end, "Opus");
    p = amf0_put_string(p, end, "toolong"); /* not a FourCC: skipped */
    p = amf0_put_number(p, end, 7);         /* not a string: skipped */
    p = amf0_put_string(p, end, "hvc1");    /* twice: kept once */
    p = amf0_put_key(p, end, "videoFourCcInfoMap");
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "*");
    p = amf0_put_number(p, end, 4);
    p = amf0_put_key(p, end, "hvc1");
    p = amf0_put_number(p, end, 3);
    p = amf0_put_object_end(p, end);
    /* an ECMA array, which the spec tells readers to take as an object */
    p = amf0_put_key(p, end, "audioFourCcInfoMap");
    if (p && end - p >= 5) {
        memcpy(p, "\x08\x00\x00\x00\x01", 5);
        p += 5;
    }
    p = amf0_put_key(p, end, "Opus");
    p = amf0_put_number(p, end, 3);
    p = amf0_put_object_end(p, end);
    p = amf0_put_key(p, end, "capsEx");
    p = amf0_put_number(p, end, 0x1f); /* 0x10 is no bit the spec defines */
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    return (size_t)(p - b);
}

static void assert_fourccs(const struct amf_doc *doc, const struct amf_value *v,
                           const char *const *want, size_t n, bool keys)
{
    assert_non_null(v);
    assert_int_equal(v->type, keys ? AMF_OBJECT : AMF_ARRAY);
    assert_int_equal(v->len, n);
    size_t i = 0;
    for (int32_t k = v->first; k >= 0; k = doc->v[k].next, i++) {
        const struct amf_value *e = &doc->v[k];
        if (keys) {
            assert_int_equal(e->key_len, strlen(want[i]));
            assert_memory_equal(e->key, want[i], e->key_len);
            assert_true(e->num == RTMP_FOURCC_CAN_FORWARD);
        } else {
            assert_true(amf_str_eq(e, want[i]));
        }
    }
}

static void test_ertmp_connect(void **st)
{
    static const char *const list[] = {"hvc1", "av01", "Opus"};
    static const char *const video[] = {"*", "hvc1"};
    static const char *const audio[] = {"Opus"};
    for (int enc = 0; enc <= 3; enc += 3) {
        uint8_t b[1024], out[RTMP_REPLY_CONNECT_MAX + 64], body[RTMP_REPLY_CONNECT_MAX], types[8];
        struct rtmp_cmd c;
        const char *why = NULL;
        size_t n = ertmp_connect_body(b, sizeof(b), enc);
        assert_int_equal(rtmp_cmd_parse(b, n, false, &LIM, &c, &why), 0);
        assert_int_equal(c.kind, RTMP_CMD_CONNECT);
        assert_string_equal(c.app, "live");
        assert_true(c.caps.list.present);
        assert_int_equal(c.caps.list.n, 3);
        for (size_t i = 0; i < 3; i++)
            assert_string_equal(c.caps.list.cc[i], list[i]);
        assert_int_equal(c.caps.video.n, 2);
        assert_string_equal(c.caps.video.cc[0], "*");
        assert_string_equal(c.caps.video.cc[1], "hvc1");
        assert_int_equal(c.caps.audio.n, 1);
        assert_string_equal(c.caps.audio.cc[0], "Opus");
        assert_true(c.caps.has_caps_ex);
        assert_int_equal(c.caps.caps_ex, 0x1f);

        size_t count, m = rtmp_reply_connect(out, sizeof(out), 1, c.object_encoding, &c.caps);
        assert_true(m > 0);
        size_t len = decode_all(out, m, 128, types, &count, body);
        assert_int_equal(count, 3); /* no Set Chunk Size, still */
        assert_int_equal(types[2], RTMP_MSG_COMMAND_AMF0);
        assert_true(len > 128); /* so it spans chunks of 128 */
        struct amf_value arena[64];
        struct amf_doc doc = {.v = arena, .cap = 64};
        assert_int_equal(amf_decode_command(body, len, false, &LIM, &doc), 0);
        assert_true(amf_str_eq(amf_top(&doc, 0), "_result"));
        const struct amf_value *props = amf_top(&doc, 2), *info = amf_top(&doc, 3);
        assert_true(amf_str_eq(amf_get(&doc, info, "code"), "NetConnection.Connect.Success"));
        assert_fourccs(&doc, amf_get(&doc, props, "fourCcList"), list, 3, false);
        assert_fourccs(&doc, amf_get(&doc, props, "videoFourCcInfoMap"), video, 2, true);
        assert_fourccs(&doc, amf_get(&doc, props, "audioFourCcInfoMap"), audio, 1, true);
        assert_true(amf_get(&doc, props, "capsEx")->num == 0x0f);
        if (enc == 0)
            assert_true(amf_str_eq(amf_get(&doc, props, "fmsVer"), "FMS/3,0,1,123"));
        else
            assert_true(amf_get(&doc, info, "objectEncoding")->num == 3.0);

        /* A legacy connect, or the caps withheld (ertmp: off): the 128-byte reply. */
        struct rtmp_caps none = {0};
        size_t l1 = rtmp_reply_connect(out, sizeof(out), 1, c.object_encoding, &none);
        size_t l2 = rtmp_reply_connect(body, sizeof(body), 1, c.object_encoding, NULL);
        assert_int_equal(l1, l2);
        assert_memory_equal(out, body, l1);
        assert_true(l1 <= 33 + 12 + 128);
    }
}

static void test_create_stream_reply_and_peek(void **st)
{
    uint8_t out[256], body[256], types[4];
    size_t count;
    size_t n = rtmp_reply_create_stream(out, sizeof(out), 4, 1);
    size_t len = decode_all(out, n, 128, types, &count, body);
    assert_int_equal(len, 29);
    char name[16];
    double tid;
    long off = rtmp_peek_name_tid(body, len, false, name, sizeof(name), &tid);
    assert_int_equal(off, 11); /* bytes 11..18: where the tid is zeroed */
    assert_string_equal(name, "_result");
    assert_true(tid == 4.0);
    assert_int_equal(rtmp_peek_name_tid(body, 15, false, name, sizeof(name), &tid), -1);
}

static void test_long_error_descriptions_are_chunked(void **st)
{
    char desc[300];
    memset(desc, 'd', sizeof(desc) - 1);
    desc[sizeof(desc) - 1] = '\0';
    for (uint32_t chunk = 128; chunk <= 4096; chunk *= 32) {
        uint8_t out[2048], body[2048], types[4];
        size_t count;
        size_t n = rtmp_reply_status_error(out, sizeof(out), "NetStream.Play.StreamNotFound",
                                           desc, chunk);
        assert_true(n > 0);
        size_t len = decode_all(out, n, chunk, types, &count, body);
        assert_int_equal(count, 1);
        struct amf_value arena[32];
        struct amf_doc doc = {.v = arena, .cap = 32};
        assert_int_equal(amf_decode_command(body, len, false, &LIM, &doc), 0);
        const struct amf_value *d = amf_get(&doc, amf_top(&doc, 3), "description");
        assert_int_equal(d->len, RTMP_DESC_MAX); /* cut, not dropped */
        assert_true(amf_str_eq(amf_get(&doc, amf_top(&doc, 3), "level"), "error"));
    }
    uint8_t out[1024];
    assert_true(rtmp_reply_connect_rejected(out, sizeof(out), 1, "nope", 128) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_parse_commands),
        cmocka_unit_test(test_args_kept),
        cmocka_unit_test(test_args_split),
        cmocka_unit_test(test_connect_reply),
        cmocka_unit_test(test_ertmp_connect),
        cmocka_unit_test(test_create_stream_reply_and_peek),
        cmocka_unit_test(test_long_error_descriptions_are_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
