/* Handshake: digest found and verified at both offsets, simple fallback,
 * S1 signature and S2 derivation checked against an independent HMAC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#include "lb/rtmp/handshake.h"

static uint32_t seed = 1;
static void test_rnd(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* HMAC-SHA256 through OpenSSL 3's EVP_MAC, not the code under test. */
static void ref_hmac(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen, uint8_t out[32])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 32;
    assert_int_equal(EVP_MAC_init(ctx, key, klen, params), 1);
    EVP_MAC_update(ctx, a, alen);
    if (blen)
        EVP_MAC_update(ctx, b, blen);
    EVP_MAC_final(ctx, out, &outl, 32);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

static size_t ref_offset(const uint8_t *buf, size_t base)
{
    return (buf[base] + buf[base + 1] + buf[base + 2] + buf[base + 3]) % 728 + base + 4;
}

/* A C1 signed like Flash/ffmpeg: digest of everything but itself. */
static void make_digest_c1(uint8_t c1[1536], size_t base)
{
    test_rnd(c1, 1536);
    c1[4] = 9, c1[5] = 0, c1[6] = 124, c1[7] = 2;
    size_t off = ref_offset(c1, base);
    ref_hmac(rtmp_hs_fp_key, 30, c1, off, c1 + off + 32, 1536 - off - 32, c1 + off);
}

static void run_server(struct rtmp_hs_server *hs, const uint8_t *c0c1, const uint8_t *c2)
{
    size_t used;
    rtmp_hs_server_init(hs, test_rnd);
    assert_int_equal(rtmp_hs_server_feed(hs, c0c1, 1537, &used), RTMP_HS_NEED_MORE);
    assert_int_equal(used, 1537);
    assert_true(hs->out_ready);
    assert_int_equal(rtmp_hs_server_feed(hs, c2, 1536, &used), RTMP_HS_DONE);
    assert_int_equal(used, 1536);
}

static void check_digest_response(size_t base)
{
    uint8_t c0c1[1537], c2[1536] = {0}, d[32];
    struct rtmp_hs_server hs;
    c0c1[0] = 3;
    make_digest_c1(c0c1 + 1, base);
    assert_int_equal(rtmp_hs_find_client_digest(c0c1 + 1), base);
    run_server(&hs, c0c1, c2);
    assert_int_equal(hs.kind, RTMP_HS_DIGEST);
    assert_int_equal(hs.out[0], 3);

    /* S1: non-zero version, FMS-key digest at the client's scheme. */
    const uint8_t *s1 = hs.out + 1, *s2 = hs.out + 1537;
    assert_true(s1[4] >= 3);
    size_t off = ref_offset(s1, base);
    ref_hmac(rtmp_hs_fms_key, 36, s1, off, s1 + off + 32, 1536 - off - 32, d);
    assert_memory_equal(d, s1 + off, 32);

    /* S2 = R | HMAC(HMAC(FMS68, C1 digest), R). */
    uint8_t key2[32];
    size_t coff = ref_offset(c0c1 + 1, base);
    ref_hmac(rtmp_hs_fms_key, 68, c0c1 + 1 + coff, 32, NULL, 0, key2);
    ref_hmac(key2, 32, s2, 1504, NULL, 0, d);
    assert_memory_equal(d, s2 + 1504, 32);
}

static void test_digest_at_772(void **st) { check_digest_response(772); }
static void test_digest_at_8(void **st) { check_digest_response(8); }

static void test_simple_fallback(void **st)
{
    uint8_t c0c1[1537], c2[1536] = {0};
    struct rtmp_hs_server hs;
    c0c1[0] = 3;
    test_rnd(c0c1 + 1, 1536);
    memset(c0c1 + 5, 0, 4); /* version 0, librtmp/GStreamer style */
    run_server(&hs, c0c1, c2);
    assert_int_equal(hs.kind, RTMP_HS_SIMPLE);
    assert_memory_equal(hs.out + 1537, c0c1 + 1, 1536); /* S2 echoes C1 */
    static const uint8_t zero[4];
    assert_memory_equal(hs.out + 1 + 4, zero, 4); /* S1 version 0 */

    /* A digest that does not verify is treated as none. */
    make_digest_c1(c0c1 + 1, 772);
    c0c1[1 + ref_offset(c0c1 + 1, 772)] ^= 1;
    assert_int_equal(rtmp_hs_find_client_digest(c0c1 + 1), RTMP_HS_SCHEME_NONE);
}

static void test_byte_at_a_time_and_leftover(void **st)
{
    uint8_t in[1537 + 1536 + 5], c2[1536] = {0};
    struct rtmp_hs_server hs;
    size_t used, pos = 0;
    in[0] = 3;
    make_digest_c1(in + 1, 8);
    memcpy(in + 1537, c2, 1536);
    memcpy(in + 3073, "after", 5);
    rtmp_hs_server_init(&hs, test_rnd);
    enum rtmp_hs_result r = RTMP_HS_NEED_MORE;
    while (r == RTMP_HS_NEED_MORE) {
        r = rtmp_hs_server_feed(&hs, in + pos, 1, &used);
        pos += used;
    }
    assert_int_equal(r, RTMP_HS_DONE);
    assert_int_equal(pos, 3073); /* the bytes after C2 are the caller's */
    assert_int_equal(hs.kind, RTMP_HS_DIGEST);
}

static void test_bad_version(void **st)
{
    struct rtmp_hs_server hs;
    size_t used;
    uint8_t bad[1] = {6}; /* RTMPE */
    rtmp_hs_server_init(&hs, test_rnd);
    assert_int_equal(rtmp_hs_server_feed(&hs, bad, 1, &used), RTMP_HS_ERROR);
    uint8_t http[] = "GET / HTTP/1.1\r\n";
    rtmp_hs_server_init(&hs, test_rnd);
    assert_int_equal(rtmp_hs_server_feed(&hs, http, sizeof(http) - 1, &used), RTMP_HS_ERROR);
}

static void test_client_side(void **st)
{
    struct rtmp_hs_client hc;
    uint8_t s[3073 + 3];
    size_t used;
    rtmp_hs_client_init(&hc, test_rnd);
    assert_int_equal(hc.c0c1[0], 3);
    static const uint8_t zero[8];
    assert_memory_equal(hc.c0c1 + 1, zero, 8); /* time 0, version 0: plain */
    s[0] = 3;
    test_rnd(s + 1, 3072 + 3);
    assert_int_equal(rtmp_hs_client_feed(&hc, s, 100, &used), RTMP_HS_NEED_MORE);
    assert_int_equal(rtmp_hs_client_feed(&hc, s + 100, sizeof(s) - 100, &used), RTMP_HS_DONE);
    assert_int_equal(used, 3073 - 100);
    assert_memory_equal(rtmp_hs_client_c2(&hc), s + 1, 1536);
    s[0] = 4;
    rtmp_hs_client_init(&hc, test_rnd);
    assert_int_equal(rtmp_hs_client_feed(&hc, s, 10, &used), RTMP_HS_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_at_772),      cmocka_unit_test(test_digest_at_8),
        cmocka_unit_test(test_simple_fallback),    cmocka_unit_test(test_byte_at_a_time_and_leftover),
        cmocka_unit_test(test_bad_version),        cmocka_unit_test(test_client_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
