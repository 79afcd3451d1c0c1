/* libFuzzer target: the server and client handshakes on arbitrary bytes,
 * fed in pieces whose sizes the input also chooses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb/rtmp/handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void zero_rnd(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] ? data[0] : 1;
    data++;
    size--;

    struct rtmp_hs_server hs;
    rtmp_hs_server_init(&hs, zero_rnd);
    size_t pos = 0;
    enum rtmp_hs_result r = RTMP_HS_NEED_MORE;
    while (r == RTMP_HS_NEED_MORE && pos < size) {
        size_t n = size - pos < step ? size - pos : step, used;
        r = rtmp_hs_server_feed(&hs, data + pos, n, &used);
        if (used > n)
            abort();
        pos += used;
    }
    if (r == RTMP_HS_DONE && (pos != 1537 + 1536 || !hs.out_ready || hs.out[0] != 3))
        abort();

    struct rtmp_hs_client hc;
    size_t used;
    rtmp_hs_client_init(&hc, zero_rnd);
    if (rtmp_hs_client_feed(&hc, data, size, &used) == RTMP_HS_DONE && used != 3073)
        abort();
    return 0;
}
