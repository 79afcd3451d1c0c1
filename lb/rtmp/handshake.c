/* RTMP handshake: simple (echo) and FP9 digest schemes. */
#include "lb/rtmp/handshake.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

/* "Genuine Adobe Flash Player 001" + 32-byte tail; the first 30 bytes sign C1. */
const uint8_t rtmp_hs_fp_key[62] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l',
    'a', 's', 'h', ' ', 'P', 'l', 'a', 'y', 'e', 'r', ' ', '0', '0', '1', 0xF0, 0xEE,
    0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB,
    0x31, 0xAE};

/* "Genuine Adobe Flash Media Server 001" + the same tail; 36 bytes sign S1. */
const uint8_t rtmp_hs_fms_key[68] = {
    'G', 'e', 'n', 'u', 'i', 'n', 'e', ' ', 'A', 'd', 'o', 'b', 'e', ' ', 'F', 'l', 'a',
    's', 'h', ' ', 'M', 'e', 'd', 'i', 'a', ' ', 'S', 'e', 'r', 'v', 'e', 'r', ' ', '0',
    '0', '1', 0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8,
    0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};

static void ossl_rand(uint8_t *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        memset(p, 0x5a, n); /* handshake randomness protects nothing */
}

size_t rtmp_hs_digest_offset(const uint8_t *c1, enum rtmp_hs_scheme scheme)
{
    size_t base = (size_t)scheme;
    unsigned sum = (unsigned)c1[base] + c1[base + 1] + c1[base + 2] + c1[base + 3];
    return sum % 728 + base + 4;
}

static void hmac(const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
                 uint8_t out[RTMP_HS_DIGEST_LEN])
{
    unsigned outlen = RTMP_HS_DIGEST_LEN;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen);
}

void rtmp_hs_digest(const uint8_t *buf, size_t off, const uint8_t *key, size_t keylen,
                    uint8_t out[RTMP_HS_DIGEST_LEN])
{
    uint8_t msg[RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN];
    memcpy(msg, buf, off);
    memcpy(msg + off, buf + off + RTMP_HS_DIGEST_LEN, RTMP_HS_SIZE - off - RTMP_HS_DIGEST_LEN);
    hmac(key, keylen, msg, sizeof(msg), out);
}

static bool digest_ok(const uint8_t *c1, enum rtmp_hs_scheme scheme)
{
    uint8_t d[RTMP_HS_DIGEST_LEN];
    size_t off = rtmp_hs_digest_offset(c1, scheme);
    rtmp_hs_digest(c1, off, rtmp_hs_fp_key, 30, d);
    return memcmp(d, c1 + off, RTMP_HS_DIGEST_LEN) == 0;
}

enum rtmp_hs_scheme rtmp_hs_find_client_digest(const uint8_t *c1)
{
    if (digest_ok(c1, RTMP_HS_SCHEME_772))
        return RTMP_HS_SCHEME_772;
    if (digest_ok(c1, RTMP_HS_SCHEME_8))
        return RTMP_HS_SCHEME_8;
    return RTMP_HS_SCHEME_NONE;
}

void rtmp_hs_server_init(struct rtmp_hs_server *hs, void (*rnd)(uint8_t *, size_t))
{
    memset(hs, 0, sizeof(*hs));
    hs->rnd = rnd ? rnd : ossl_rand;
}

/* S0 S1 S2 for a client C1: digest scheme if C1 carries a valid digest,
 * else the simple echo. */
static void make_response(struct rtmp_hs_server *hs)
{
    const uint8_t *c1 = hs->c0c1 + 1;
    uint8_t *s1 = hs->out + 1, *s2 = hs->out + 1 + RTMP_HS_SIZE;

    hs->out[0] = 3;
    hs->scheme = rtmp_hs_find_client_digest(c1);
    hs->kind = hs->scheme ? RTMP_HS_DIGEST : RTMP_HS_SIMPLE;
    hs->rnd(s1 + 8, RTMP_HS_SIZE - 8);
    memset(s1, 0, 4); /* time 0 */
    if (hs->kind == RTMP_HS_SIMPLE) {
        memset(s1 + 4, 0, 4); /* version 0: the client expects no digest */
        memcpy(s2, c1, RTMP_HS_SIZE);
        return;
    }
    /* A server version >= 3 makes ffmpeg players verify; we sign properly. */
    s1[4] = 0x0D;
    s1[5] = 0x0E;
    s1[6] = 0x0A;
    s1[7] = 0x0D;
    size_t off = rtmp_hs_digest_offset(s1, hs->scheme);
    rtmp_hs_digest(s1, off, rtmp_hs_fms_key, 36, s1 + off);

    uint8_t key2[RTMP_HS_DIGEST_LEN];
    size_t coff = rtmp_hs_digest_offset(c1, hs->scheme);
    hmac(rtmp_hs_fms_key, sizeof(rtmp_hs_fms_key), c1 + coff, RTMP_HS_DIGEST_LEN, key2);
    hs->rnd(s2, RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN);
    hmac(key2, sizeof(key2), s2, RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN,
         s2 + RTMP_HS_SIZE - RTMP_HS_DIGEST_LEN);
}

enum rtmp_hs_result rtmp_hs_server_feed(struct rtmp_hs_server *hs, const uint8_t *p, size_t n,
                                        size_t *used)
{
    size_t take;

    *used = 0;
    if (hs->state == 0) {
        take = sizeof(hs->c0c1) - hs->have;
        if (take > n)
            take = n;
        memcpy(hs->c0c1 + hs->have, p, take);
        hs->have += take;
        *used += take;
        if (hs->have >= 1 && hs->c0c1[0] != 3)
            return RTMP_HS_ERROR;
        if (hs->have < sizeof(hs->c0c1))
            return RTMP_HS_NEED_MORE;
        make_response(hs);
        hs->out_ready = true;
        hs->state = 1;
        hs->have = 0;
        p += take;
        n -= take;
    }
    if (hs->state == 1) {
        take = RTMP_HS_SIZE - hs->have; /* C2 is read and not checked */
        if (take > n)
            take = n;
        hs->have += take;
        *used += take;
        if (hs->have < RTMP_HS_SIZE)
            return RTMP_HS_NEED_MORE;
        hs->state = 2;
    }
    return RTMP_HS_DONE;
}

void rtmp_hs_client_init(struct rtmp_hs_client *hs, void (*rnd)(uint8_t *, size_t))
{
    memset(hs, 0, sizeof(*hs));
    hs->c0c1[0] = 3;
    (rnd ? rnd : ossl_rand)(hs->c0c1 + 9, RTMP_HS_SIZE - 8); /* time 0, version 0 */
}

enum rtmp_hs_result rtmp_hs_client_feed(struct rtmp_hs_client *hs, const uint8_t *p, size_t n,
                                        size_t *used)
{
    size_t take = sizeof(hs->s0s1s2) - hs->have;
    if (take > n)
        take = n;
    memcpy(hs->s0s1s2 + hs->have, p, take);
    hs->have += take;
    *used = take;
    if (hs->have >= 1 && hs->s0s1s2[0] != 3)
        return RTMP_HS_ERROR;
    return hs->have < sizeof(hs->s0s1s2) ? RTMP_HS_NEED_MORE : RTMP_HS_DONE;
}

const uint8_t *rtmp_hs_client_c2(const struct rtmp_hs_client *hs) { return hs->s0s1s2 + 1; }
