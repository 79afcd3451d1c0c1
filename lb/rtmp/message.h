/* Message assembly on top of the chunk decoder: collects whole messages of
 * chosen types from rtmp_chunk_next's events. Pure, bounded: at most
 * RTMP_ASM_SLOTS messages in progress at once (one per chunk stream), and
 * at most `budget` payload bytes held across them. With positions on, it
 * also remembers where in the caller's byte stream each of the first
 * RTMP_ASM_POS payload bytes sits, so the caller can patch them in place
 * (the front door zeroes an origin reply's transaction id that way, even
 * when it straddles chunks). Used by the front door and the health probe. */
#ifndef LB_RTMP_MESSAGE_H
#define LB_RTMP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb/rtmp/chunk.h"

#define RTMP_ASM_SLOTS 4
#define RTMP_ASM_POS 64

struct rtmp_asm_slot {
    bool used;
    bool done; /* handed out; freed at the next feed */
    uint32_t csid;
    uint8_t type;
    uint32_t len, got;
    uint8_t *data;
    size_t start; /* stream position of the message's first chunk header */
    size_t *pos;  /* positions of payload bytes [0, min(len, RTMP_ASM_POS)) */
    struct rtmp_asm_span *span; /* spans mode: where each piece sits */
    uint32_t n_span, cap_span;
};

struct rtmp_asm_span {
    size_t at;
    uint32_t len;
};

struct rtmp_asm {
    struct rtmp_asm_slot slot[RTMP_ASM_SLOTS];
    uint32_t types;  /* bit t set: collect messages of type t (t < 32) */
    uint32_t budget; /* payload bytes held across slots */
    uint32_t held;
    bool positions;
    /* Spans mode: the caller keeps every byte in one buffer (`base`, set
     * before each feed; it may move, positions do not), so a message in
     * progress costs only where its pieces are; it is gathered when whole. */
    bool spans;
    const uint8_t *base;
};

/* A complete message; valid until the next rtmp_asm_feed or free. */
struct rtmp_msg {
    uint32_t csid;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
    size_t start;
    const size_t *pos; /* NULL without positions */
    uint32_t n_pos;
};

enum rtmp_asm_result { RTMP_ASM_MORE, RTMP_ASM_MESSAGE, RTMP_ASM_ERROR };

#define RTMP_TYPE_BIT(t) (1u << (t))

void rtmp_asm_init(struct rtmp_asm *a, uint32_t types, uint32_t budget, bool positions);
/* Spans mode (see struct rtmp_asm); positions stay off. */
void rtmp_asm_init_spans(struct rtmp_asm *a, uint32_t types, uint32_t budget);
void rtmp_asm_free(struct rtmp_asm *a);
/* Feeds one decoder event. at: the stream position of ev->data (PAYLOAD),
 * or of the chunk header that began the message (MSG_START). MESSAGE: *out
 * holds a complete message. ERROR: *why says which bound was hit. */
enum rtmp_asm_result rtmp_asm_feed(struct rtmp_asm *a, const struct rtmp_chunk_ev *ev, size_t at,
                                   struct rtmp_msg *out, const char **why);
/* The lowest stream position of a message still being assembled, or
 * SIZE_MAX when none is (bytes before it are free to forward). */
size_t rtmp_asm_first_open(const struct rtmp_asm *a);

#endif
