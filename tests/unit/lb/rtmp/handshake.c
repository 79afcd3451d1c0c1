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

/* ---- Independent vectors ---------------------------------------------
 * Produced by tests/unit/lb/rtmp/fp9_vectors.py (Python hmac/hashlib, written
 * from RTMP-NOTES.md, sharing nothing with lb/rtmp/handshake.c: not even the
 * keys), run once and pasted below. The inputs are the patterns that script
 * describes; pattern_c1() and pattern_rnd() build the same bytes here. */
/* scheme 772: C1 digest at 942, S1 digest at 1458 */
static const uint8_t c1_digest_772[32] = {
    0x80, 0x0b, 0xff, 0x09, 0x30, 0x6b, 0x57, 0x03, 0xcd, 0xc8, 0x9a, 0x81,
    0x29, 0x09, 0x0d, 0x04, 0x16, 0xf2, 0x3e, 0x51, 0x77, 0x13, 0x8c, 0xeb,
    0x24, 0x13, 0x75, 0x23, 0xab, 0x8d, 0x6d, 0xfd};
static const uint8_t s1_digest_772[32] = {
    0x43, 0x7c, 0x05, 0x8b, 0xa4, 0x94, 0xa9, 0xad, 0x93, 0x7c, 0x9f, 0x1a,
    0xa5, 0x99, 0x73, 0x6b, 0xaf, 0xb8, 0x22, 0x0c, 0x4c, 0x45, 0xaa, 0x23,
    0xdd, 0x04, 0x03, 0xa1, 0x7f, 0x2d, 0x23, 0x10};
static const uint8_t s2_digest_772[32] = {
    0x41, 0x53, 0x34, 0x72, 0x7b, 0x91, 0x83, 0x4f, 0x2c, 0x5f, 0xfe, 0x8a,
    0x66, 0x28, 0x21, 0xee, 0xa5, 0x24, 0xa1, 0xdf, 0x60, 0x27, 0xb3, 0x6a,
    0xc6, 0x4a, 0xf3, 0xad, 0xf9, 0x15, 0x99, 0xe1};
/* scheme 8: C1 digest at 290, S1 digest at 422 */
static const uint8_t c1_digest_8[32] = {
    0xf8, 0x9f, 0x1f, 0x7a, 0xf0, 0x3c, 0x88, 0xaa, 0xda, 0x02, 0x00, 0x58,
    0x34, 0x15, 0xae, 0x45, 0xa0, 0x83, 0xc4, 0x50, 0x5d, 0xe9, 0x8c, 0xa5,
    0xdd, 0x41, 0x6f, 0x5e, 0x7d, 0x6b, 0x73, 0x74};
static const uint8_t s1_digest_8[32] = {
    0xff, 0xb6, 0x93, 0x62, 0xcf, 0x65, 0x6f, 0x40, 0xae, 0x92, 0xe8, 0xcc,
    0xa4, 0xe4, 0x68, 0xae, 0xec, 0xc1, 0x67, 0x3d, 0xb0, 0xa5, 0x79, 0x6f,
    0x3c, 0xe3, 0x77, 0xeb, 0x6a, 0x5e, 0xc4, 0x8e};
static const uint8_t s2_digest_8[32] = {
    0x00, 0x9c, 0x29, 0x53, 0x1d, 0xf4, 0xd5, 0x2c, 0x94, 0x11, 0x14, 0x2b,
    0x6b, 0x08, 0x16, 0x5b, 0x6f, 0x0d, 0xa9, 0x0b, 0xa0, 0xc3, 0x63, 0x4d,
    0x74, 0x8a, 0x18, 0xab, 0xe4, 0x3f, 0x85, 0xd1};

static void pattern_c1(uint8_t c1[1536])
{
    for (size_t i = 0; i < 1536; i++)
        c1[i] = (uint8_t)(i * 7 + 3);
    c1[4] = 9, c1[5] = 0, c1[6] = 124, c1[7] = 2;
}

/* Depends on n only, so the vectors hold whatever order the server asks. */
static void pattern_rnd(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + n);
}

static void check_vectors(size_t base, size_t coff, size_t soff, const uint8_t *c1_digest,
                          const uint8_t *s1_digest, const uint8_t *s2_digest)
{
    uint8_t c0c1[1537], c2[1536] = {0}, d[32];
    c0c1[0] = 3;
    pattern_c1(c0c1 + 1);
    /* Our offset and our HMAC with our key give Python's client digest. */
    assert_int_equal(rtmp_hs_digest_offset(c0c1 + 1, (enum rtmp_hs_scheme)base), coff);
    rtmp_hs_digest(c0c1 + 1, coff, rtmp_hs_fp_key, 30, d);
    assert_memory_equal(d, c1_digest, 32);
    /* A C1 signed by Python is found at its scheme (and only there). */
    memcpy(c0c1 + 1 + coff, c1_digest, 32);
    assert_int_equal(rtmp_hs_find_client_digest(c0c1 + 1), base);

    struct rtmp_hs_server hs;
    size_t used;
    rtmp_hs_server_init(&hs, pattern_rnd);
    assert_int_equal(rtmp_hs_server_feed(&hs, c0c1, 1537, &used), RTMP_HS_NEED_MORE);
    assert_true(hs.out_ready);
    assert_int_equal(rtmp_hs_server_feed(&hs, c2, 1536, &used), RTMP_HS_DONE);
    const uint8_t *s1 = hs.out + 1, *s2 = hs.out + 1537;
    static const uint8_t head[8] = {0, 0, 0, 0, 0x0D, 0x0E, 0x0A, 0x0D};
    assert_memory_equal(s1, head, 8);
    assert_memory_equal(s1 + soff, s1_digest, 32);   /* FMS36 digest of S1 */
    assert_memory_equal(s2 + 1504, s2_digest, 32);   /* HMAC(HMAC(FMS68, C1 digest), R) */
}

static void test_independent_vectors_772(void **st)
{
    check_vectors(772, 942, 1458, c1_digest_772, s1_digest_772, s2_digest_772);
}

static void test_independent_vectors_8(void **st)
{
    check_vectors(8, 290, 422, c1_digest_8, s1_digest_8, s2_digest_8);
}

static void test_keys_are_adobes(void **st)
{
    static const uint8_t tail[32] = {
        0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
        0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};
    assert_memory_equal(rtmp_hs_fp_key, "Genuine Adobe Flash Player 001", 30);
    assert_memory_equal(rtmp_hs_fp_key + 30, tail, 32);
    assert_memory_equal(rtmp_hs_fms_key, "Genuine Adobe Flash Media Server 001", 36);
    assert_memory_equal(rtmp_hs_fms_key + 36, tail, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_independent_vectors_772),
        cmocka_unit_test(test_independent_vectors_8),
        cmocka_unit_test(test_keys_are_adobes),
        cmocka_unit_test(test_digest_at_772),      cmocka_unit_test(test_digest_at_8),
        cmocka_unit_test(test_simple_fallback),    cmocka_unit_test(test_byte_at_a_time_and_leftover),
        cmocka_unit_test(test_bad_version),        cmocka_unit_test(test_client_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
