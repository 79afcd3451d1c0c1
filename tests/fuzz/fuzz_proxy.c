/* libFuzzer target: the PROXY v1/v2 parser; a DONE must describe a header
 * that fits the input, and re-parsing every prefix must never say DONE
 * with a different size. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pp_header h, h2;
    const char *why;
    if (size < 1)
        return 0;
    enum pp_accept acc = (enum pp_accept)(1 + data[0] % 3);
    data++;
    size--;
    enum pp_result r = pp_parse(data, size, acc, &h, &why);
    if (r == PP_DONE) {
        if (h.size == 0 || h.size > size || h.size > PP_MAX_HEADER)
            abort();
        if (pp_parse(data, h.size, acc, &h2, &why) != PP_DONE || h2.size != h.size)
            abort();
        if (h.size > 1 && pp_parse(data, h.size - 1, acc, &h2, &why) == PP_DONE)
            abort(); /* one byte short must never be a whole header */
    } else if (r == PP_ERROR && !why) {
        abort();
    }
    return 0;
}
