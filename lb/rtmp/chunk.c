/* RTMP chunk stream decoder. */
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/bytes.h"

#include <string.h>

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

void rtmp_chunk_init(struct rtmp_chunk_dec *d, const struct rtmp_chunk_limits *lim,
                     uint32_t peek)
{
    memset(d, 0, sizeof(*d));
    d->chunk_size = RTMP_DEFAULT_CHUNK_SIZE;
    d->lim = *lim;
    d->peek = peek;
}

int rtmp_chunk_set_size(struct rtmp_chunk_dec *d, uint32_t size)
{
    if (size < 1 || size > 0x7fffffff || size > d->lim.max_chunk_size)
        return -1;
    d->chunk_size = size;
    return 0;
}

bool rtmp_chunk_at_boundary(const struct rtmp_chunk_dec *d)
{
    for (size_t i = 0; i < d->n_cs; i++)
        if (d->cs[i].left)
            return false;
    return !d->in_payload && !d->end_pending;
}

const struct rtmp_cs *rtmp_chunk_stream(const struct rtmp_chunk_dec *d, uint32_t csid)
{
    for (size_t i = 0; i < d->n_cs; i++)
        if (d->cs[i].csid == csid)
            return &d->cs[i];
    return NULL;
}

static void fail(struct rtmp_chunk_ev *ev, const char *why)
{
    ev->type = RTMP_EV_ERROR;
    ev->error = why;
}

static void describe(struct rtmp_chunk_ev *ev, const struct rtmp_cs *cs)
{
    ev->csid = cs->csid;
    ev->msg_type = cs->type;
    ev->len = cs->len;
    ev->timestamp = cs->timestamp;
    ev->msid = cs->msid;
}

/* Parses one chunk header at p. Returns header length, 0 if more bytes are
 * needed, or -1 on error (ev filled). On success *cs_out is the stream and
 * *new_msg tells whether this chunk starts a message. State is committed
 * only on success. */
static long parse_header(struct rtmp_chunk_dec *d, const uint8_t *p, size_t n,
                         struct rtmp_cs **cs_out, bool *new_msg, struct rtmp_chunk_ev *ev)
{
    size_t pos;
    uint32_t csid;

    if (n < 1)
        return 0;
    uint8_t fmt = p[0] >> 6;
    switch (p[0] & 0x3f) {
    case 0:
        if (n < 2)
            return 0;
        csid = 64u + p[1];
        pos = 2;
        break;
    case 1:
        if (n < 3)
            return 0;
        csid = 64u + p[1] + 256u * p[2];
        pos = 3;
        break;
    default:
        csid = p[0] & 0x3f;
        pos = 1;
    }
    if (csid < 2) {
        fail(ev, "chunk stream id below 2");
        return -1;
    }
    if (csid > d->lim.max_csid) {
        fail(ev, "chunk stream id above the limit");
        return -1;
    }

    struct rtmp_cs *cs = NULL;
    for (size_t i = 0; i < d->n_cs; i++)
        if (d->cs[i].csid == csid)
            cs = &d->cs[i];

    static const size_t mh_len[4] = {11, 7, 3, 0};
    if (n < pos + mh_len[fmt])
        return 0;
    const uint8_t *mh = p + pos;
    pos += mh_len[fmt];

    struct rtmp_cs next;
    if (cs) {
        next = *cs;
    } else {
        if (fmt >= 2) {
            fail(ev, "first chunk of a chunk stream lacks a message header");
            return -1;
        }
        if (d->n_cs == RTMP_MAX_CS_SLOTS) {
            fail(ev, "too many chunk streams");
            return -1;
        }
        memset(&next, 0, sizeof(next));
        next.csid = csid;
    }

    bool starts = next.left == 0;
    if (!starts && fmt != 3) {
        fail(ev, "new message header in the middle of a message");
        return -1;
    }

    uint32_t field = 0;
    if (fmt <= 2) {
        field = be24(mh);
        next.ext = field == 0xffffff;
    }
    if (fmt <= 1) {
        next.len = be24(mh + 3);
        next.type = mh[6];
    }
    if (fmt == 0)
        next.msid = le32(mh + 7);

    /* Extended timestamp: always after a 0xFFFFFF field in fmt 0-2 and on a
     * fmt3 that starts a message; on a fmt3 continuation only in the Adobe
     * style, recognised by the value repeating (RTMP-NOTES.md §2). */
    uint32_t ts_value = field;
    if (next.ext) {
        if (n < pos + 4)
            return 0;
        uint32_t v = rtmp_get_be32(p + pos);
        if (fmt <= 2 || starts) {
            ts_value = v;
            next.ext_value = v;
            pos += 4;
        } else if (v == next.ext_value) {
            pos += 4;
        }
    }

    if (starts) {
        if (fmt == 0) {
            next.timestamp = ts_value;
            next.delta = 0;
        } else if (fmt <= 2) {
            next.delta = ts_value;
            next.timestamp += ts_value;
        } else {
            next.timestamp += next.delta;
        }
        if (next.len > d->lim.max_msg_len) {
            fail(ev, "message longer than the limit");
            return -1;
        }
        next.left = next.len;
        next.last_fmt = fmt;
    }
    next.seen = true;

    /* MSG_START must be able to show the first payload bytes. */
    if (starts && d->peek) {
        uint32_t want = d->peek;
        if (want > next.len)
            want = next.len;
        if (want > d->chunk_size)
            want = d->chunk_size;
        if (n < pos + want)
            return 0;
    }

    if (!cs) {
        cs = &d->cs[d->n_cs++];
    }
    *cs = next;
    *cs_out = cs;
    *new_msg = starts;
    return (long)pos;
}

void rtmp_chunk_next(struct rtmp_chunk_dec *d, const uint8_t *p, size_t n, size_t *used,
                     struct rtmp_chunk_ev *ev)
{
    memset(ev, 0, sizeof(*ev));
    *used = 0;

    for (;;) {
        if (d->end_pending) {
            d->end_pending = false;
            ev->type = RTMP_EV_MSG_END;
            describe(ev, d->cur);
            d->messages++;
            return;
        }
        if (d->in_payload) {
            if (d->chunk_left == 0) {
                d->in_payload = false;
                if (d->cur->left == 0) {
                    d->end_pending = true;
                }
                continue;
            }
            if (*used == n) {
                ev->type = RTMP_EV_NEED_MORE;
                return;
            }
            size_t take = n - *used;
            if (take > d->chunk_left)
                take = d->chunk_left;
            ev->type = RTMP_EV_PAYLOAD;
            describe(ev, d->cur);
            ev->data = p + *used;
            ev->data_len = take;
            ev->offset = d->cur->len - d->cur->left;
            d->chunk_left -= (uint32_t)take;
            d->cur->left -= (uint32_t)take;
            *used += take;
            return;
        }

        struct rtmp_cs *cs;
        bool new_msg;
        long h = parse_header(d, p + *used, n - *used, &cs, &new_msg, ev);
        if (h < 0)
            return;
        if (h == 0) {
            ev->type = RTMP_EV_NEED_MORE;
            return;
        }
        *used += (size_t)h;
        d->cur = cs;
        d->chunk_left = cs->left < d->chunk_size ? cs->left : d->chunk_size;
        d->in_payload = true;
        if (new_msg) {
            ev->type = RTMP_EV_MSG_START;
            ev->fmt = cs->last_fmt;
            describe(ev, cs);
            ev->data = p + *used;
            size_t peek = n - *used;
            if (peek > d->chunk_left)
                peek = d->chunk_left;
            ev->data_len = peek;
            return;
        }
    }
}

size_t rtmp_chunk_write(uint8_t *out, size_t cap, uint32_t csid, uint8_t type, uint32_t msid,
                        const uint8_t *payload, size_t len, uint32_t chunk_size)
{
    size_t chunks = chunk_size ? (len + chunk_size - 1) / chunk_size : 0;
    size_t need = 12 + len + (chunks > 1 ? chunks - 1 : 0);
    if (csid < 2 || csid > 63 || len > 0xffffff || chunk_size == 0 || cap < need)
        return 0;
    out[0] = (uint8_t)csid; /* fmt 0 */
    out[1] = out[2] = out[3] = 0; /* timestamp 0 */
    out[4] = (uint8_t)(len >> 16);
    out[5] = (uint8_t)(len >> 8);
    out[6] = (uint8_t)len;
    out[7] = type;
    out[8] = (uint8_t)msid;
    out[9] = (uint8_t)(msid >> 8);
    out[10] = (uint8_t)(msid >> 16);
    out[11] = (uint8_t)(msid >> 24);
    size_t n = 12;
    for (size_t off = 0; off < len; off += chunk_size) {
        if (off > 0)
            out[n++] = (uint8_t)(0xc0 | csid); /* fmt 3 */
        size_t k = len - off < chunk_size ? len - off : chunk_size;
        memcpy(out + n, payload + off, k);
        n += k;
    }
    return n;
}

size_t rtmp_chunk_write_fmt0(uint8_t *out, size_t cap, uint32_t csid, uint8_t type,
                             uint32_t msid, const uint8_t *payload, size_t len)
{
    if (len > RTMP_DEFAULT_CHUNK_SIZE)
        return 0;
    return rtmp_chunk_write(out, cap, csid, type, msid, payload, len, RTMP_DEFAULT_CHUNK_SIZE);
}
