/* libFuzzer target: AMF0/AMF3 command decoding, and walking what it built. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb/rtmp/amf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct amf_doc *doc, int32_t i, size_t depth)
{
    size_t n = 0;
    if (depth > 64)
        abort(); /* the depth limit must hold */
    for (; i >= 0; i = doc->v[i].next) {
        if ((size_t)i >= doc->n)
            abort();
        n++;
        n += walk(doc, doc->v[i].first, depth + 1);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct amf_value arena[256];
    struct amf_limits lim = {16, 1024, 256};
    struct amf_doc doc = {.v = arena, .cap = 256};
    if (size < 1)
        return 0;
    if (amf_decode_command(data + 1, size - 1, data[0] & 1, &lim, &doc) == 0) {
        size_t seen = 0;
        for (size_t t = 0; t < doc.n_top; t++) {
            const struct amf_value *v = amf_top(&doc, t);
            seen += 1 + walk(&doc, v->first, 1);
            amf_get(&doc, v, "app");
        }
        if (seen != doc.n)
            abort(); /* every value reachable exactly once */
    }
    return 0;
}
