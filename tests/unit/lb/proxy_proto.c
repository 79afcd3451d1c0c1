/* PROXY protocol v1/v2: round trips through the writers, every prefix, and
 * the errors: wrong signature, wrong version for the listener, truncated,
 * oversized, malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lb/proxy_proto.h"

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

/* Every strict prefix is NEED_MORE; the whole is DONE with the sizes right,
 * and bytes after the header are left alone. */
static void check_stream(const uint8_t *hdr, size_t n, enum pp_accept acc, struct pp_header *h)
{
    uint8_t buf[256];
    const char *why;
    for (size_t k = 0; k < n; k++)
        assert_int_equal(pp_parse(hdr, k, acc, h, &why), PP_NEED_MORE);
    memcpy(buf, hdr, n);
    memcpy(buf + n, "\x03RTMP", 5); /* the client's first bytes follow */
    assert_int_equal(pp_parse(buf, n + 5, acc, h, &why), PP_DONE);
    assert_int_equal(h->size, n);
}

static void test_v1_round_trip(void **st)
{
    uint8_t out[128];
    struct pp_header h;
    struct sockaddr_in s = v4("203.0.113.7", 50000), d = v4("10.1.2.3", 1935);
    size_t n = pp_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    assert_int_equal(n, strlen("PROXY TCP4 203.0.113.7 10.1.2.3 50000 1935\r\n"));
    assert_memory_equal(out, "PROXY TCP4 203.0.113.7 10.1.2.3 50000 1935\r\n", n);
    check_stream(out, n, PP_V1, &h);
    assert_int_equal(h.version, 1);
    assert_memory_equal(&((struct sockaddr_in *)&h.src)->sin_addr, &s.sin_addr, 4);
    assert_int_equal(((struct sockaddr_in *)&h.src)->sin_port, htons(50000));

    struct sockaddr_in6 s6 = v6("2001:db8::1", 4000), d6 = v6("2001:db8::2", 1935);
    n = pp_write_v1(out, sizeof(out), (struct sockaddr *)&s6, (struct sockaddr *)&d6);
    check_stream(out, n, PP_ANY, &h);
    assert_int_equal(h.src.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&h.src)->sin6_addr, &s6.sin6_addr, 16);

    static const uint8_t unknown[] = "PROXY UNKNOWN\r\n";
    check_stream(unknown, sizeof(unknown) - 1, PP_V1, &h);
    assert_true(h.local);
}

static void test_v2_round_trip(void **st)
{
    uint8_t out[128];
    struct pp_header h;
    struct sockaddr_in s = v4("198.51.100.9", 4242), d = v4("127.0.0.1", 1935);
    size_t n = pp_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    assert_int_equal(n, 28);
    check_stream(out, n, PP_V2, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_memory_equal(&((struct sockaddr_in *)&h.src)->sin_addr, &s.sin_addr, 4);
    assert_int_equal(((struct sockaddr_in *)&h.src)->sin_port, htons(4242));

    struct sockaddr_in6 s6 = v6("2001:db8::7", 1), d6 = v6("::1", 2);
    n = pp_write_v2(out, sizeof(out), (struct sockaddr *)&s6, (struct sockaddr *)&d6);
    assert_int_equal(n, 52);
    check_stream(out, n, PP_ANY, &h);
    assert_memory_equal(&((struct sockaddr_in6 *)&h.src)->sin6_addr, &s6.sin6_addr, 16);

    /* With TLVs after the addresses: skipped, counted in the size. */
    uint8_t tlv[128];
    n = pp_write_v2(tlv, sizeof(tlv), (struct sockaddr *)&s, (struct sockaddr *)&d);
    tlv[15] = 12 + 7;
    memcpy(tlv + 28, "\x04\x00\x04" "abcd", 7);
    check_stream(tlv, 35, PP_V2, &h);
    assert_int_equal(h.size, 35);

    /* LOCAL (a balancer's own health check): no address. */
    static const uint8_t local[16] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                      0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
    check_stream(local, 16, PP_V2, &h);
    assert_true(h.local);
}

static void expect_error(const void *p, size_t n, enum pp_accept acc, const char *want)
{
    struct pp_header h;
    const char *why = NULL;
    assert_int_equal(pp_parse(p, n, acc, &h, &why), PP_ERROR);
    assert_string_equal(why, want);
}

static void expect_error_s(const char *text, enum pp_accept acc, const char *want)
{
    expect_error(text, strlen(text), acc, want);
}

static void test_errors(void **st)
{
    expect_error_s("\x03\x00\x00\x00", PP_ANY, "no PROXY header"); /* RTMP, no header */
    expect_error_s("GET / HTTP/1.1\r\n", PP_V1, "no PROXY v1 header");
    expect_error_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PP_V2, "no PROXY v2 header");
    uint8_t v2[28];
    struct sockaddr_in s = v4("1.2.3.4", 1), d = v4("5.6.7.8", 2);
    pp_write_v2(v2, sizeof(v2), (struct sockaddr *)&s, (struct sockaddr *)&d);
    expect_error(v2, sizeof(v2), PP_V1, "no PROXY v1 header");

    expect_error_s("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PP_V1, "malformed PROXY v1 header");
    expect_error_s("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", PP_V1, "PROXY v1 address is not IPv4");
    expect_error_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n", PP_V1, "PROXY v1 port out of range");
    expect_error_s("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", PP_V1,
                 "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
    expect_error_s("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", PP_V1, "malformed PROXY v1 header");
    char longline[200];
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    expect_error(longline, sizeof(longline), PP_V1, "PROXY v1 header longer than 107 bytes");

    uint8_t bad[28];
    memcpy(bad, v2, 28);
    bad[12] = 0x31; /* version 3 */
    expect_error(bad, 28, PP_V2, "PROXY v2 header with a version other than 2");
    memcpy(bad, v2, 28);
    bad[14] = 0xff; /* 65280 bytes of TLV: oversized */
    expect_error(bad, 28, PP_V2, "PROXY v2 header longer than the limit");
    memcpy(bad, v2, 28);
    bad[15] = 4; /* IPv4 with 4 address bytes: truncated */
    expect_error(bad, 20, PP_V2, "PROXY v2 IPv4 addresses truncated");
    memcpy(bad, v2, 28);
    bad[13] = 0x12; /* UDP */
    expect_error(bad, 28, PP_V2, "PROXY v2 family is not TCP over IPv4 or IPv6");
    memcpy(bad, v2, 28);
    bad[12] = 0x22; /* command 2 */
    expect_error(bad, 28, PP_V2, "PROXY v2 command is neither LOCAL nor PROXY");
}

/* ---- Independent vectors: bytes written out by hand from HAProxy's
 * proxy-protocol.txt (section 2.1 for v1, 2.2 for v2), not produced by our
 * writer. Each must be what pp_write_* produces and parse back to the
 * addresses it carries. */
static const uint8_t V2_SIGNATURE[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void test_v2_spec_bytes(void **st)
{
    /* 198.51.100.9:4242 -> 127.0.0.1:1935, TCP over IPv4. */
    static const uint8_t want4[28] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21,                   /* version 2, command PROXY */
        0x11,                   /* AF_INET, STREAM */
        0x00, 0x0C,             /* 12 address bytes follow */
        198, 51, 100, 9,        /* source address */
        127, 0, 0, 1,           /* destination address */
        0x10, 0x92,             /* source port 4242 */
        0x07, 0x8F};            /* destination port 1935 */
    /* [2001:db8::7]:1 -> [::1]:65535, TCP over IPv6. */
    static const uint8_t want6[52] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21, 0x21, 0x00, 0x24, /* v2 PROXY, AF_INET6 STREAM, 36 bytes */
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x00, 0x01,
        0xFF, 0xFF};
    uint8_t out[128];
    struct pp_header h;
    assert_memory_equal(want4, V2_SIGNATURE, 12);

    struct sockaddr_in s = v4("198.51.100.9", 4242), d = v4("127.0.0.1", 1935);
    size_t n = pp_write_v2(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    assert_int_equal(n, sizeof(want4));
    assert_memory_equal(out, want4, sizeof(want4));
    check_stream(want4, sizeof(want4), PP_V2, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_int_equal(h.src.ss_family, AF_INET);
    assert_memory_equal(&((struct sockaddr_in *)&h.src)->sin_addr, &s.sin_addr, 4);
    assert_int_equal(((struct sockaddr_in *)&h.src)->sin_port, htons(4242));
    assert_memory_equal(&((struct sockaddr_in *)&h.dst)->sin_addr, &d.sin_addr, 4);
    assert_int_equal(((struct sockaddr_in *)&h.dst)->sin_port, htons(1935));

    struct sockaddr_in6 s6 = v6("2001:db8::7", 1), d6 = v6("::1", 65535);
    n = pp_write_v2(out, sizeof(out), (struct sockaddr *)&s6, (struct sockaddr *)&d6);
    assert_int_equal(n, sizeof(want6));
    assert_memory_equal(out, want6, sizeof(want6));
    check_stream(want6, sizeof(want6), PP_ANY, &h);
    assert_int_equal(h.src.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&h.src)->sin6_addr, &s6.sin6_addr, 16);
    assert_int_equal(((struct sockaddr_in6 *)&h.src)->sin6_port, htons(1));
    assert_memory_equal(&((struct sockaddr_in6 *)&h.dst)->sin6_addr, &d6.sin6_addr, 16);
    assert_int_equal(((struct sockaddr_in6 *)&h.dst)->sin6_port, htons(65535));
}

/* The spec's worst case: "PROXY TCP6" with two full-length IPv6 addresses
 * and 5-digit ports is 104 bytes with CRLF; the spec sizes a reader's
 * buffer at 107 + 1 = 108. Any caller holding a v1 header needs 108 bytes
 * (a 64-byte buffer cannot hold this line). */
static void test_v1_spec_lines(void **st)
{
    static const char want4[] = "PROXY TCP4 192.0.2.1 198.51.100.22 56324 443\r\n";
    static const char want6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    uint8_t out[108];
    struct pp_header h;
    assert_int_equal(strlen(want6), 104);

    struct sockaddr_in s = v4("192.0.2.1", 56324), d = v4("198.51.100.22", 443);
    size_t n = pp_write_v1(out, sizeof(out), (struct sockaddr *)&s, (struct sockaddr *)&d);
    assert_int_equal(n, strlen(want4));
    assert_memory_equal(out, want4, n);
    check_stream((const uint8_t *)want4, strlen(want4), PP_V1, &h);
    assert_int_equal(((struct sockaddr_in *)&h.dst)->sin_port, htons(443));
    assert_memory_equal(&((struct sockaddr_in *)&h.dst)->sin_addr, &d.sin_addr, 4);

    struct sockaddr_in6 s6 = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    struct sockaddr_in6 d6 = s6;
    memset(out, 0, sizeof(out));
    n = pp_write_v1(out, sizeof(out), (struct sockaddr *)&s6, (struct sockaddr *)&d6);
    assert_int_equal(n, strlen(want6));
    assert_memory_equal(out, want6, n);
    check_stream((const uint8_t *)want6, strlen(want6), PP_ANY, &h);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.src.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&h.src)->sin6_addr, &s6.sin6_addr, 16);
    assert_int_equal(((struct sockaddr_in6 *)&h.dst)->sin6_port, htons(65535));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_round_trip),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_v2_spec_bytes),
        cmocka_unit_test(test_v1_spec_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
