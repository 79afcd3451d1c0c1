/* Big-endian readers shared by every RTMP decoder here: one place decodes
 * a Set Chunk Size body and an AMF0 number. */
#ifndef LB_RTMP_BYTES_H
#define LB_RTMP_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t rtmp_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline double rtmp_get_be_double(const uint8_t *p)
{
    uint64_t u = 0;
    double d;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* The chunk size a Set Chunk Size body announces (top bit ignored, as every
 * peer does). False when the body is too short. */
static inline bool rtmp_scs_value(const uint8_t *body, size_t len, uint32_t *size)
{
    if (len < 4)
        return false;
    *size = rtmp_get_be32(body) & 0x7fffffffu;
    return true;
}

#endif
