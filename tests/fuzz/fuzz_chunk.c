/* libFuzzer target: the chunk decoder as a real caller drives it: pieces of
 * input appended to a buffer, unconsumed tails kept, Set Chunk Size applied. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/rtmp/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Per chunk stream progress: messages on different streams interleave. */
struct prog {
    uint32_t csid, len, got;
    uint8_t type;
    uint8_t scs[4];
};

static struct prog *find(struct prog *t, size_t *n, uint32_t csid)
{
    for (size_t i = 0; i < *n; i++)
        if (t[i].csid == csid)
            return &t[i];
    if (*n == RTMP_MAX_CS_SLOTS)
        abort(); /* the decoder must refuse more streams than it tracks */
    memset(&t[*n], 0, sizeof(t[*n]));
    t[*n].csid = csid;
    return &t[(*n)++];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[1 << 17];
    struct rtmp_chunk_limits lim = {1 << 16, 1 << 16, 65599};
    struct rtmp_chunk_dec d;
    struct prog tab[RTMP_MAX_CS_SLOTS];
    size_t n_tab = 0, have = 0, fed = 0, step;

    if (size < 2 || size > sizeof(buf))
        return 0;
    step = data[0] ? data[0] : 1;
    rtmp_chunk_init(&d, &lim, data[1] & 1 ? 32 : 0);
    data += 2;
    size -= 2;
    while (fed < size) {
        size_t add = size - fed < step ? size - fed : step;
        memcpy(buf + have, data + fed, add);
        have += add;
        fed += add;
        size_t pos = 0;
        for (;;) {
            struct rtmp_chunk_ev ev;
            size_t used;
            rtmp_chunk_next(&d, buf + pos, have - pos, &used, &ev);
            if (used > have - pos)
                abort();
            pos += used;
            if (ev.type == RTMP_EV_NEED_MORE)
                break;
            if (ev.type == RTMP_EV_ERROR)
                return 0;
            struct prog *p = find(tab, &n_tab, ev.csid);
            if (ev.type == RTMP_EV_MSG_START) {
                if (p->got != p->len || ev.len > lim.max_msg_len)
                    abort(); /* a new message only at a boundary, within the limit */
                p->len = ev.len;
                p->type = ev.msg_type;
                p->got = 0;
            } else if (ev.type == RTMP_EV_PAYLOAD) {
                if (ev.offset != p->got || p->got + ev.data_len > p->len)
                    abort(); /* in order, within the length */
                for (size_t k = 0; k < ev.data_len && p->got + k < 4; k++)
                    p->scs[p->got + k] = ev.data[k];
                p->got += (uint32_t)ev.data_len;
            } else if (ev.type == RTMP_EV_MSG_END) {
                if (p->got != p->len)
                    abort(); /* complete */
                if (p->type == 1 && p->len == 4)
                    rtmp_chunk_set_size(&d, (uint32_t)p->scs[0] << 24 | (uint32_t)p->scs[1] << 16 |
                                                (uint32_t)p->scs[2] << 8 | p->scs[3]);
            }
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    return 0;
}
