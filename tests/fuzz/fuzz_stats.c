/* libFuzzer target: node stats documents (nginx-rtmp /stat XML through
 * libxml2, SRS JSON through json-c) into streams. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health/streams.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hc_stream out[64];
    if (size < 1)
        return 0;
    struct hc_stats_report rep;
    int n = data[0] & 1 ? hc_parse_srs_streams((const char *)data + 1, size - 1, out, 64, &rep)
                        : hc_parse_nginx_stat((const char *)data + 1, size - 1, out, 64, &rep);
    if (n > 64)
        abort();
    if (n < 0 && (!rep.error[0] || strnlen(rep.error, sizeof(rep.error)) == sizeof(rep.error)))
        abort(); /* a refusal always says why */
    for (int i = 0; i < n; i++)
        if (strnlen(out[i].app, sizeof(out[i].app)) == sizeof(out[i].app) ||
            strnlen(out[i].name, sizeof(out[i].name)) == sizeof(out[i].name))
            abort(); /* always terminated */
    return 0;
}
