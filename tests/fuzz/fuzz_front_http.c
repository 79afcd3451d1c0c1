/* libFuzzer: the http phase's request parser and path patterns. The first
 * byte sets the piece size the bytes arrive in (requests come split at any
 * byte); each complete request's path is matched against the default
 * patterns, then the parser is reset for the next (pipelined) one. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb/front/http_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lb_httpreq p; /* large: off the stack */
    if (size < 1)
        return 0;
    size_t piece = (size_t)(data[0] % 64) + 1;
    const char *in = (const char *)data + 1;
    size_t left = size - 1;
    lb_httpreq_init(&p, 2048);
    while (left) {
        size_t n = left < piece ? left : piece, used;
        enum lb_httpreq_res r = lb_httpreq_feed(&p, in, n, &used);
        if (used > n)
            __builtin_trap();
        if (r == LB_HTTPREQ_ERROR) {
            if (p.status < 400 || p.status > 499 || !p.why)
                __builtin_trap();
            break;
        }
        if (r == LB_HTTPREQ_DONE) {
            char app[LB_HTTPREQ_MAX_NAME + 1], stream[LB_HTTPREQ_MAX_NAME + 1], ip[64];
            const char *q = strchr(p.url, '?');
            size_t plen = q ? (size_t)(q - p.url) : p.url_len;
            for (size_t i = 0; i < lb_http_n_default_paths; i++)
                if (lb_http_path_match(lb_http_default_paths[i], p.url, plen, "live", app,
                                       sizeof(app), stream, sizeof(stream)) &&
                    (!stream[0] || strlen(stream) > LB_HTTPREQ_MAX_NAME || strchr(stream, '/')))
                    __builtin_trap();
            lb_http_path_match("/{app}-{stream}-{seq}/x", p.url, plen, NULL, app, sizeof(app),
                               stream, sizeof(stream));
            if (p.xff_len)
                lb_httpreq_xff_last(p.xff, ip, sizeof(ip));
            lb_httpreq_next(&p);
        }
        in += used;
        left -= used;
        if (r == LB_HTTPREQ_NEED_MORE && used == 0 && n)
            __builtin_trap(); /* NEED_MORE consumes what it was given */
    }
    return 0;
}
