/* PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's spec
 * defines them: parsing on listeners that sit behind an L4 balancer, and
 * writing toward nodes with send_proxy. Pure: no I/O. */
#ifndef LB_PROXY_PROTO_H
#define LB_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum pp_result { PP_NEED_MORE, PP_DONE, PP_ERROR };
enum pp_accept { PP_V1 = 1, PP_V2 = 2, PP_ANY = 3 };

/* The longest header accepted: v1 is at most 107 bytes; v2 is 16 + a
 * 16-bit length, capped here (TLVs beyond this are refused). */
#define PP_MAX_HEADER 1024

struct pp_header {
    int version;    /* 1 or 2 */
    bool local;     /* v2 LOCAL or v1 UNKNOWN: no address (health checks) */
    struct sockaddr_storage src, dst;
    socklen_t len;  /* of src/dst, 0 when local */
    size_t size;    /* header bytes to consume */
};

/* Parses the start of p[0..n). NEED_MORE: not enough bytes yet (nothing is
 * consumed; call again with more). DONE: *h filled, h->size bytes are the
 * header. ERROR: *why says what is wrong (wrong signature, a version the
 * listener does not accept, malformed, oversized). */
enum pp_result pp_parse(const uint8_t *p, size_t n, enum pp_accept accept, struct pp_header *h,
                        const char **why);

/* Writes a header for a TCP connection from src to dst (same family).
 * Returns bytes written, 0 if cap is too small. */
size_t pp_write_v1(uint8_t *out, size_t cap, const struct sockaddr *src,
                   const struct sockaddr *dst);
size_t pp_write_v2(uint8_t *out, size_t cap, const struct sockaddr *src,
                   const struct sockaddr *dst);

#endif
