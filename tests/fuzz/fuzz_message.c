/* libFuzzer target: the message assembler over the chunk decoder, with
 * positions on. Every complete message's first bytes must sit exactly
 * where the assembler says they are in the input (the front door zeroes
 * transaction ids through those positions), and the budget must hold. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/rtmp/bytes.h"
#include "lb/rtmp/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rtmp_chunk_limits lim = {1 << 16, 1 << 16, 65599};
    struct rtmp_chunk_dec d;
    struct rtmp_asm a;
    size_t pos = 0;

    if (size < 1)
        return 0;
    rtmp_chunk_init(&d, &lim, 0);
    uint32_t types = RTMP_TYPE_BIT(1) | RTMP_TYPE_BIT(20) | RTMP_TYPE_BIT(17);
    if (data[0] & 2)
        rtmp_asm_init_spans(&a, types, 4096);
    else
        rtmp_asm_init(&a, types, 4096, data[0] & 1);
    data++;
    size--;
    a.base = data;
    for (int i = 0; i < 100000; i++) {
        struct rtmp_chunk_ev ev;
        struct rtmp_msg m;
        const char *why;
        size_t used, at = pos;
        rtmp_chunk_next(&d, data + pos, size - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_NEED_MORE || ev.type == RTMP_EV_ERROR)
            break;
        size_t ev_at = ev.type == RTMP_EV_PAYLOAD ? (size_t)(ev.data - data) : at;
        enum rtmp_asm_result r = rtmp_asm_feed(&a, &ev, ev_at, &m, &why);
        if (a.held > a.budget)
            abort();
        if (r == RTMP_ASM_ERROR)
            break;
        if (r != RTMP_ASM_MESSAGE)
            continue;
        if (m.len != 0 && !m.data)
            abort();
        for (uint32_t k = 0; m.pos && k < m.n_pos; k++)
            if (m.pos[k] >= size || data[m.pos[k]] != m.data[k])
                abort();
        uint32_t v;
        if (m.type == 1 && rtmp_scs_value(m.data, m.len, &v))
            rtmp_chunk_set_size(&d, v);
    }
    rtmp_asm_free(&a);
    return 0;
}
