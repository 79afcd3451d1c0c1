/* RTMP handshake, server side toward clients and client side toward
 * upstreams. Pure: no I/O; the caller feeds bytes and writes what it is
 * given. See ../shared/RTMP-NOTES.md section 1. */
#ifndef LB_RTMP_HANDSHAKE_H
#define LB_RTMP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTMP_HS_SIZE 1536
#define RTMP_HS_DIGEST_LEN 32

enum rtmp_hs_result { RTMP_HS_NEED_MORE, RTMP_HS_DONE, RTMP_HS_ERROR };
enum rtmp_hs_kind { RTMP_HS_SIMPLE, RTMP_HS_DIGEST };

/* Digest schemes by where the offset bytes sit in C1/S1. */
enum rtmp_hs_scheme { RTMP_HS_SCHEME_NONE = 0, RTMP_HS_SCHEME_772 = 772, RTMP_HS_SCHEME_8 = 8 };

/* Where the 32-byte digest sits in a 1536-byte C1/S1 for a scheme. */
size_t rtmp_hs_digest_offset(const uint8_t *c1, enum rtmp_hs_scheme scheme);
/* Verifies c1's digest with the Flash Player key at 772, then 8. Returns the
 * scheme found, or RTMP_HS_SCHEME_NONE. */
enum rtmp_hs_scheme rtmp_hs_find_client_digest(const uint8_t *c1);
/* HMAC-SHA256 of the 1536 bytes minus the 32 at off. */
void rtmp_hs_digest(const uint8_t *buf, size_t off, const uint8_t *key, size_t keylen,
                    uint8_t out[RTMP_HS_DIGEST_LEN]);

/* Keys (RTMP-NOTES.md): 30/36 bytes to sign C1/S1, 62/68 with the tail. */
extern const uint8_t rtmp_hs_fp_key[62];
extern const uint8_t rtmp_hs_fms_key[68];

/* Server side. Feed C0C1 then C2; after C0C1 the response S0S1S2 is in out.
 * rnd fills n random bytes (a seam for tests); NULL uses OpenSSL. */
struct rtmp_hs_server {
    uint8_t c0c1[1 + RTMP_HS_SIZE];
    size_t have;
    int state; /* 0: C0C1, 1: C2, 2: done */
    enum rtmp_hs_kind kind;
    enum rtmp_hs_scheme scheme;
    uint8_t out[1 + 2 * RTMP_HS_SIZE]; /* S0 S1 S2 */
    bool out_ready;
    void (*rnd)(uint8_t *p, size_t n);
};

void rtmp_hs_server_init(struct rtmp_hs_server *hs, void (*rnd)(uint8_t *, size_t));
/* Consumes up to n bytes (*used says how many). Returns NEED_MORE until C2
 * is complete; the bytes after C2 are the caller's (not consumed). After
 * C0C1, hs->out_ready is set: send hs->out (3073 bytes) at once. ERROR: C0
 * is not 3. */
enum rtmp_hs_result rtmp_hs_server_feed(struct rtmp_hs_server *hs, const uint8_t *p, size_t n,
                                        size_t *used);

/* Client side toward an upstream: the plain scheme (version 0). */
struct rtmp_hs_client {
    uint8_t c0c1[1 + RTMP_HS_SIZE];
    uint8_t s0s1s2[1 + 2 * RTMP_HS_SIZE];
    size_t have;
};
void rtmp_hs_client_init(struct rtmp_hs_client *hs, void (*rnd)(uint8_t *, size_t));
/* Feed S0S1S2. DONE: send C2 = the S1 echo (rtmp_hs_client_c2). ERROR: S0
 * is not 3. Bytes after S2 are not consumed. */
enum rtmp_hs_result rtmp_hs_client_feed(struct rtmp_hs_client *hs, const uint8_t *p, size_t n,
                                        size_t *used);
const uint8_t *rtmp_hs_client_c2(const struct rtmp_hs_client *hs);

#endif
