/* AMF0/AMF3: round trips through the encoders, real command shapes, and
 * malformed input (truncation at every length, bad markers, depth bombs,
 * huge lengths, too many values), each an error, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lb/rtmp/amf.h"

static const struct amf_limits LIM = {16, 4096, 256};

static int decode(const uint8_t *p, size_t n, bool amf3, struct amf_doc *doc)
{
    static struct amf_value arena[512];
    doc->v = arena;
    doc->cap = 512;
    return amf_decode_command(p, n, amf3, &LIM, doc);
}

/* connect("connect", 1, {app, tcUrl, objectEncoding}) as ffmpeg sends it. */
static size_t build_connect(uint8_t *buf, size_t cap)
{
    uint8_t *p = buf, *end = buf + cap;
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, "live");
    p = amf0_put_key(p, end, "type");
    p = amf0_put_string(p, end, "nonprivate");
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, "rtmp://127.0.0.1:1935/live");
    p = amf0_put_key(p, end, "fpad");
    p = amf0_put_bool(p, end, false);
    p = amf0_put_key(p, end, "capabilities");
    p = amf0_put_number(p, end, 15);
    p = amf0_put_object_end(p, end);
    assert_non_null(p);
    return (size_t)(p - buf);
}

static void test_connect_round_trip(void **st)
{
    uint8_t buf[512];
    struct amf_doc doc;
    size_t n = build_connect(buf, sizeof(buf));
    assert_int_equal(decode(buf, n, false, &doc), 0);
    assert_int_equal(doc.n_top, 3);
    assert_true(amf_str_eq(amf_top(&doc, 0), "connect"));
    assert_int_equal(amf_top(&doc, 1)->type, AMF_NUMBER);
    assert_true(amf_top(&doc, 1)->num == 1.0);
    const struct amf_value *obj = amf_top(&doc, 2);
    assert_int_equal(obj->type, AMF_OBJECT);
    assert_int_equal(obj->len, 5);
    assert_true(amf_str_eq(amf_get(&doc, obj, "app"), "live"));
    assert_true(amf_str_eq(amf_get(&doc, obj, "tcUrl"), "rtmp://127.0.0.1:1935/live"));
    assert_true(amf_get(&doc, obj, "capabilities")->num == 15.0);
    assert_int_equal(amf_get(&doc, obj, "fpad")->type, AMF_BOOLEAN);
    assert_null(amf_get(&doc, obj, "missing"));
}

static void test_all_amf0_types(void **st)
{
    /* null, undefined, ECMA array, strict array, date, long string, typed object */
    static const uint8_t in[] = {
        0x05, 0x06,
        0x08, 0, 0, 0, 1, 0, 1, 'k', 0x00, 0x40, 0x45, 0, 0, 0, 0, 0, 0, 0, 0, 0x09,
        0x0A, 0, 0, 0, 2, 0x01, 1, 0x02, 0, 1, 'x',
        0x0B, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0, 0,
        0x0C, 0, 0, 0, 3, 'a', 'b', 'c',
        0x10, 0, 1, 'T', 0, 1, 'p', 0x05, 0, 0, 0x09,
    };
    struct amf_doc doc;
    assert_int_equal(decode(in, sizeof(in), false, &doc), 0);
    assert_int_equal(doc.n_top, 7);
    assert_int_equal(amf_top(&doc, 0)->type, AMF_NULL);
    assert_int_equal(amf_top(&doc, 1)->type, AMF_UNDEFINED);
    const struct amf_value *ecma = amf_top(&doc, 2);
    assert_int_equal(ecma->type, AMF_ARRAY);
    assert_true(amf_get(&doc, ecma, "k")->num == 42.0);
    assert_int_equal(amf_top(&doc, 3)->len, 2);
    assert_int_equal(amf_top(&doc, 4)->type, AMF_DATE);
    assert_true(amf_str_eq(amf_top(&doc, 5), "abc"));
    assert_int_equal(amf_get(&doc, amf_top(&doc, 6), "p")->type, AMF_NULL);
}

static void test_amf3_command(void **st)
{
    /* A type-17 body: 0x00, then AMF0 values, one switching to AMF3 (0x11). */
    uint8_t buf[256], *p = buf, *end = buf + sizeof(buf);
    *p++ = 0x00;
    p = amf0_put_string(p, end, "publish");
    p = amf0_put_number(p, end, 5);
    p = amf0_put_null(p, end);
    *p++ = 0x11;
    *p++ = 0x06;
    p = amf3_put_string(p, end, "stream1");
    *p++ = 0x11;
    p = amf3_put_integer(p, end, -5);
    *p++ = 0x11;
    p = amf3_put_integer(p, end, 300000);
    *p++ = 0x11;
    p = amf3_put_double(p, end, 2.5);
    /* AMF3 object {a: "stream1" (by reference), b: true}, dynamic, anonymous */
    *p++ = 0x11;
    *p++ = 0x0A;
    p = amf3_put_u29(p, end, 0x0B); /* inline, inline traits, dynamic, 0 sealed */
    p = amf3_put_string(p, end, "");
    p = amf3_put_string(p, end, "a");
    *p++ = 0x06;
    p = amf3_put_u29(p, end, 0 << 1); /* reference to string 0: "stream1" */
    p = amf3_put_string(p, end, "b");
    *p++ = 0x03;
    p = amf3_put_string(p, end, "");
    /* AMF3 array: one named, two dense */
    *p++ = 0x11;
    *p++ = 0x09;
    p = amf3_put_u29(p, end, 2 << 1 | 1);
    p = amf3_put_string(p, end, "n");
    *p++ = 0x01;
    p = amf3_put_string(p, end, "");
    *p++ = 0x02;
    *p++ = 0x00;
    assert_non_null(p);

    struct amf_doc doc;
    assert_int_equal(decode(buf, (size_t)(p - buf), true, &doc), 0);
    assert_int_equal(doc.n_top, 9);
    assert_true(amf_str_eq(amf_top(&doc, 0), "publish"));
    assert_true(amf_str_eq(amf_top(&doc, 3), "stream1"));
    assert_true(amf_top(&doc, 4)->num == -5.0);
    assert_true(amf_top(&doc, 5)->num == 300000.0);
    assert_true(amf_top(&doc, 6)->num == 2.5);
    const struct amf_value *obj = amf_top(&doc, 7);
    assert_int_equal(obj->type, AMF_OBJECT);
    assert_true(amf_str_eq(amf_get(&doc, obj, "a"), "stream1"));
    assert_true(amf_get(&doc, obj, "b")->num == 1.0);
    const struct amf_value *arr = amf_top(&doc, 8);
    assert_int_equal(arr->type, AMF_ARRAY);
    assert_int_equal(arr->len, 3); /* one named, two dense */
    assert_int_equal(amf_get(&doc, arr, "n")->type, AMF_NULL);
}

static void test_u29_round_trip(void **st)
{
    static const int32_t vals[] = {0, 1, 127, 128, 16383, 16384, 2097151, 2097152,
                                   268435455, -1, -268435456};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t buf[16], *p = buf;
        *p++ = 0x11;
        p = amf3_put_integer(p, buf + sizeof(buf), vals[i]);
        struct amf_doc doc;
        assert_int_equal(decode(buf, (size_t)(p - buf), false, &doc), 0);
        assert_true(amf_top(&doc, 0)->num == (double)vals[i]);
    }
}

static void expect_error(const uint8_t *p, size_t n, const char *want)
{
    struct amf_doc doc;
    assert_int_equal(decode(p, n, false, &doc), -1);
    assert_non_null(doc.error);
    if (want)
        assert_string_equal(doc.error, want);
}

static void test_truncated_everywhere(void **st)
{
    uint8_t buf[512];
    size_t n = build_connect(buf, sizeof(buf));
    /* Every strict prefix that cuts a value is an error; prefixes that end
     * between top-level values are valid shorter commands. */
    size_t ok_cuts[] = {0, 10, 19};
    for (size_t cut = 0; cut < n; cut++) {
        struct amf_doc doc;
        int rc = decode(buf, cut, false, &doc);
        bool boundary = false;
        for (size_t k = 0; k < 3; k++)
            boundary |= cut == ok_cuts[k];
        assert_int_equal(rc, boundary ? 0 : -1);
    }
}

static void test_bad_markers(void **st)
{
    static const uint8_t unknown[] = {0x0E};
    expect_error(unknown, 1, "unknown AMF0 type marker");
    static const uint8_t ref[] = {0x07, 0, 1};
    expect_error(ref, 3, "AMF0 references are not supported");
    static const uint8_t stray_end[] = {0x09};
    expect_error(stray_end, 1, "unexpected AMF object end");
    static const uint8_t empty_key[] = {0x03, 0, 0, 0x05};
    expect_error(empty_key, 4, "AMF object property with an empty name");
    static const uint8_t amf3_bad[] = {0x11, 0x0D};
    expect_error(amf3_bad, 2, "unknown AMF3 type marker");
    static const uint8_t amf3_objref[] = {0x11, 0x0A, 0x02};
    expect_error(amf3_objref, 3, "AMF3 object and trait references are not supported");
    static const uint8_t amf3_strref[] = {0x11, 0x06, 0x04};
    expect_error(amf3_strref, 3, "AMF3 string reference out of range");
}

static void test_depth_bomb(void **st)
{
    uint8_t buf[4096];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) { /* {a:{a:{a:...}}} */
        buf[n++] = 0x03;
        buf[n++] = 0;
        buf[n++] = 1;
        buf[n++] = 'a';
    }
    expect_error(buf, n, "AMF nesting deeper than the limit");
    n = 0;
    for (int i = 0; i < 800; i++) { /* strict arrays of strict arrays */
        buf[n++] = 0x0A;
        buf[n++] = 0, buf[n++] = 0, buf[n++] = 0, buf[n++] = 1;
    }
    expect_error(buf, n, "AMF nesting deeper than the limit");
}

static void test_huge_lengths(void **st)
{
    static const uint8_t long_str[] = {0x0C, 0xff, 0xff, 0xff, 0xff, 'x'};
    expect_error(long_str, sizeof(long_str), "AMF string longer than the limit");
    static const uint8_t str[] = {0x02, 0x20, 0x00, 'x'}; /* 8192 > 4096 */
    expect_error(str, sizeof(str), "AMF string longer than the limit");
    static const uint8_t arr[] = {0x0A, 0x7f, 0xff, 0xff, 0xff};
    expect_error(arr, sizeof(arr), "AMF array longer than the limit");
    static const uint8_t amf3_str[] = {0x11, 0x06, 0xff, 0xff, 0xff, 0xff};
    expect_error(amf3_str, sizeof(amf3_str), "AMF string longer than the limit");
}

static void test_too_many_values(void **st)
{
    uint8_t buf[4096];
    size_t n = 0;
    buf[n++] = 0x0A;
    buf[n++] = 0, buf[n++] = 0, buf[n++] = 1, buf[n++] = 0; /* 256 elements */
    for (int i = 0; i < 256; i++)
        buf[n++] = 0x05;
    expect_error(buf, n, "too many AMF values");
}

static void test_encoder_overflow(void **st)
{
    uint8_t buf[9];
    assert_null(amf0_put_string(buf, buf + sizeof(buf), "a long string"));
    assert_null(amf0_put_number(NULL, buf + sizeof(buf), 1)); /* NULL stays NULL */
    assert_ptr_equal(amf0_put_number(buf, buf + sizeof(buf), 1), buf + 9); /* exact fit */
    assert_null(amf0_put_number(buf, buf + 8, 1));
}

/* AMF0 bytes written by hand from Adobe's AMF0 specification (markers:
 * 0x00 number, 0x01 boolean, 0x02 string, 0x03 object, 0x05 null, 0x08 ECMA
 * array, 0x0A strict array; 00 00 09 ends an object), not produced by our
 * writers: decoded by our reader, then the part our writers cover is
 * re-encoded and must be the same bytes. */
static const uint8_t HAND[] = {
    0x02, 0x00, 0x07, 'c', 'o', 'n', 'n', 'e', 'c', 't',           /* "connect" */
    0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0,                           /* 1.0 */
    0x03,                                                         /* object */
    0x00, 0x03, 'a', 'p', 'p', 0x02, 0x00, 0x04, 'l', 'i', 'v', 'e', /* app: "live" */
    0x00, 0x04, 'f', 'p', 'a', 'd', 0x01, 0x00,                   /* fpad: false */
    0x00, 0x0C, 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's',
    0x00, 0x40, 0x6D, 0xE0, 0, 0, 0, 0, 0,                        /* capabilities: 239.0 */
    0x00, 0x00, 0x09,                                             /* object end */
    0x05,                                                         /* null */
    0x01, 0x01,                                                   /* true */
    0x00, 0xC0, 0x8F, 0x40, 0, 0, 0, 0, 0,                        /* -1000.0 */
    /* end of what our writers can produce */
    0x08, 0x00, 0x00, 0x00, 0x01,                                 /* ECMA array, count 1 */
    0x00, 0x01, 'k', 0x00, 0x40, 0x04, 0, 0, 0, 0, 0, 0,          /* k: 2.5 */
    0x00, 0x00, 0x09,
    0x0A, 0x00, 0x00, 0x00, 0x02,                                 /* strict array of 2 */
    0x00, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0,                           /* -1.0 */
    0x02, 0x00, 0x01, 'x',                                        /* "x" */
};
#define HAND_WRITABLE 78 /* bytes up to and including -1000.0 */

static const struct amf_value *child(const struct amf_doc *doc, const struct amf_value *v, int k)
{
    int32_t i = v->first;
    while (k-- > 0 && i >= 0)
        i = doc->v[i].next;
    assert_true(i >= 0);
    return &doc->v[i];
}

static void test_hand_written_amf0(void **st)
{
    struct amf_doc doc = {0};
    assert_int_equal(HAND[HAND_WRITABLE], 0x08);
    assert_int_equal(decode(HAND, sizeof(HAND), false, &doc), 0);
    assert_int_equal(doc.n_top, 8);

    const struct amf_value *v = amf_top(&doc, 0);
    assert_int_equal(v->type, AMF_STRING);
    assert_true(amf_str_eq(v, "connect"));
    v = amf_top(&doc, 1);
    assert_int_equal(v->type, AMF_NUMBER);
    assert_true(v->num == 1.0);
    const struct amf_value *obj = amf_top(&doc, 2);
    assert_int_equal(obj->type, AMF_OBJECT);
    assert_int_equal(obj->len, 3);
    assert_true(amf_str_eq(amf_get(&doc, obj, "app"), "live"));
    v = amf_get(&doc, obj, "fpad");
    assert_int_equal(v->type, AMF_BOOLEAN);
    assert_true(v->num == 0);
    v = amf_get(&doc, obj, "capabilities");
    assert_int_equal(v->type, AMF_NUMBER);
    assert_true(v->num == 239.0);
    assert_null(amf_get(&doc, obj, "tcUrl"));
    assert_int_equal(amf_top(&doc, 3)->type, AMF_NULL);
    v = amf_top(&doc, 4);
    assert_int_equal(v->type, AMF_BOOLEAN);
    assert_true(v->num == 1);
    assert_true(amf_top(&doc, 5)->num == -1000.0);
    const struct amf_value *ecma = amf_top(&doc, 6);
    assert_int_equal(ecma->type, AMF_ARRAY);
    assert_int_equal(ecma->len, 1);
    v = amf_get(&doc, ecma, "k");
    assert_non_null(v);
    assert_true(v->num == 2.5);
    const struct amf_value *strict = amf_top(&doc, 7);
    assert_int_equal(strict->type, AMF_ARRAY);
    assert_int_equal(strict->len, 2);
    assert_true(child(&doc, strict, 0)->num == -1.0);
    assert_null(child(&doc, strict, 0)->key);
    assert_true(amf_str_eq(child(&doc, strict, 1), "x"));

    /* Re-encoded by our writers: the same bytes. */
    uint8_t out[128], *p = out, *end = out + sizeof(out);
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1.0);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, "live");
    p = amf0_put_key(p, end, "fpad");
    p = amf0_put_bool(p, end, false);
    p = amf0_put_key(p, end, "capabilities");
    p = amf0_put_number(p, end, 239.0);
    p = amf0_put_object_end(p, end);
    p = amf0_put_null(p, end);
    p = amf0_put_bool(p, end, true);
    p = amf0_put_number(p, end, -1000.0);
    assert_non_null(p);
    assert_int_equal(p - out, HAND_WRITABLE);
    assert_memory_equal(out, HAND, HAND_WRITABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_written_amf0),
        cmocka_unit_test(test_connect_round_trip), cmocka_unit_test(test_all_amf0_types),
        cmocka_unit_test(test_amf3_command),       cmocka_unit_test(test_u29_round_trip),
        cmocka_unit_test(test_truncated_everywhere), cmocka_unit_test(test_bad_markers),
        cmocka_unit_test(test_depth_bomb),         cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_too_many_values),    cmocka_unit_test(test_encoder_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
