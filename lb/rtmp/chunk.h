/* RTMP chunk stream decoder. Pure and resumable: the caller keeps its bytes
 * in one buffer and presents the unconsumed tail again with more appended
 * when told NEED_MORE. Events point into the caller's buffer, so a caller may
 * patch payload bytes in place before forwarding them. See RTMP-NOTES.md §2. */
#ifndef LB_RTMP_CHUNK_H
#define LB_RTMP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTMP_DEFAULT_CHUNK_SIZE 128
#define RTMP_MAX_CS_SLOTS 64 /* distinct chunk streams one decoder tracks */

enum rtmp_msg_type {
    RTMP_MSG_SET_CHUNK_SIZE = 1,
    RTMP_MSG_ABORT = 2,
    RTMP_MSG_ACK = 3,
    RTMP_MSG_USER_CONTROL = 4,
    RTMP_MSG_WIN_ACK_SIZE = 5,
    RTMP_MSG_SET_PEER_BW = 6,
    RTMP_MSG_AUDIO = 8,
    RTMP_MSG_VIDEO = 9,
    RTMP_MSG_DATA_AMF3 = 15,
    RTMP_MSG_COMMAND_AMF3 = 17,
    RTMP_MSG_DATA_AMF0 = 18,
    RTMP_MSG_COMMAND_AMF0 = 20,
};

struct rtmp_cs {
    uint32_t csid;
    bool seen;
    bool ext;          /* last 24-bit timestamp field was 0xFFFFFF */
    uint32_t ext_value;
    uint32_t timestamp;
    uint32_t delta;
    uint32_t len;
    uint8_t type;
    uint32_t msid;
    uint32_t left;     /* payload bytes still to come in this message; 0 = boundary */
    uint8_t last_fmt;  /* fmt of the chunk that started the current message */
};

struct rtmp_chunk_limits {
    uint32_t max_chunk_size; /* largest Set Chunk Size accepted */
    uint32_t max_msg_len;    /* largest message accepted */
    uint32_t max_csid;       /* highest chunk stream id accepted */
};

enum rtmp_ev_type {
    RTMP_EV_NEED_MORE,
    RTMP_EV_MSG_START,
    RTMP_EV_PAYLOAD,
    RTMP_EV_MSG_END,
    RTMP_EV_ERROR,
};

struct rtmp_chunk_ev {
    enum rtmp_ev_type type;
    /* MSG_START, PAYLOAD, MSG_END: the message */
    uint32_t csid;
    uint8_t fmt; /* MSG_START: the header format that started it */
    uint8_t msg_type;
    uint32_t len;
    uint32_t timestamp;
    uint32_t msid;
    /* MSG_START: the first peek_len payload bytes (in the caller's buffer),
     * at least min(peek, len, chunk payload). PAYLOAD: the bytes. */
    const uint8_t *data;
    size_t data_len;
    uint32_t offset; /* PAYLOAD: where data starts within the message */
    const char *error;
};

struct rtmp_chunk_dec {
    uint32_t chunk_size;
    struct rtmp_chunk_limits lim;
    uint32_t peek; /* bytes of payload MSG_START must show */
    struct rtmp_cs cs[RTMP_MAX_CS_SLOTS];
    size_t n_cs;
    struct rtmp_cs *cur;  /* stream whose chunk payload is being read */
    uint32_t chunk_left;  /* payload bytes left in the current chunk */
    bool in_payload;
    bool end_pending;     /* MSG_END owed for cur */
    uint64_t messages;
};

void rtmp_chunk_init(struct rtmp_chunk_dec *d, const struct rtmp_chunk_limits *lim,
                     uint32_t peek);
/* One event from p[0..n). *used: bytes consumed (the caller drops them from
 * the front of its buffer, or advances its offset). */
void rtmp_chunk_next(struct rtmp_chunk_dec *d, const uint8_t *p, size_t n, size_t *used,
                     struct rtmp_chunk_ev *ev);
/* A Set Chunk Size message was read from this stream: it applies from the
 * next chunk. Returns -1 if the size is out of bounds. */
int rtmp_chunk_set_size(struct rtmp_chunk_dec *d, uint32_t size);
/* True when every chunk stream is between messages. */
bool rtmp_chunk_at_boundary(const struct rtmp_chunk_dec *d);
/* The header state of one chunk stream, or NULL if never seen. */
const struct rtmp_cs *rtmp_chunk_stream(const struct rtmp_chunk_dec *d, uint32_t csid);

/* Writes a message with timestamp 0: a fmt0 chunk, then fmt3 continuations
 * every chunk_size bytes (a payload <= 128 bytes is one chunk at any chunk
 * size). Returns bytes written, or 0 if out is too small. */
size_t rtmp_chunk_write(uint8_t *out, size_t cap, uint32_t csid, uint8_t type, uint32_t msid,
                        const uint8_t *payload, size_t len, uint32_t chunk_size);
/* The same for a single chunk (len <= 128 guarantees it). */
size_t rtmp_chunk_write_fmt0(uint8_t *out, size_t cap, uint32_t csid, uint8_t type,
                             uint32_t msid, const uint8_t *payload, size_t len);

#endif
