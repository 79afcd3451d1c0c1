/* libFuzzer target: the admin request parser (lb/admin/http_parse.c), fed
 * in pieces whose size the first byte chooses, with route matching and
 * query decoding run on every request it completes. Invariants: the parser
 * never consumes more than it was given, a completed request has a URL and
 * a body of the length it says, and errors carry a 4xx/5xx status. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct lb_http_pattern ROUTES[] = {
    {"GET", "/api/v1/upstreams"},
    {"POST", "/api/v1/pools/{pool}/nodes/{node}"},
    {"POST", "/api/v1/routes/{route}"},
    {"DELETE", "/api/v1/overrides"},
    {"GET", "/api/v1/locate"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + data[0] % 64;
    const char *p = (const char *)data + 1;
    size_t left = size - 1;
    struct lb_http_parser ps;
    char allow[64];
    lb_http_parser_init(&ps, 2048, 1024);
    for (int guard = 0; left && guard < 100000; guard++) {
        size_t n = left < piece ? left : piece, used = 0;
        int status = 0;
        const char *why = NULL;
        enum lb_http_parse_result r = lb_http_parser_feed(&ps, p, n, &used, &status, &why);
        if (used > n)
            abort();
        p += used;
        left -= used;
        if (r == LB_HTTP_ERROR) {
            if (status < 400 || status > 599 || !why)
                abort();
            break;
        }
        if (r == LB_HTTP_REQUEST) {
            if (!ps.req.url || !ps.req.body || strlen(ps.req.body) > ps.req.body_len ||
                ps.req.body_len > 1024)
                abort();
            int m = lb_http_match(&ps, ROUTES, sizeof(ROUTES[0]),
                                  sizeof(ROUTES) / sizeof(ROUTES[0]), allow, sizeof(allow));
            if (m >= 0 && (!ps.req.path || ps.req.path[0] != '/'))
                abort();
            if (m == 1 && (!lb_http_param(&ps.req, "pool") || !lb_http_param(&ps.req, "node")))
                abort();
            for (size_t i = 0; i < ps.req.n_query; i++)
                if (lb_http_query(&ps.req, ps.req.query[i].name) == NULL)
                    abort();
            lb_http_parser_next(&ps);
        }
    }
    lb_http_parser_free(&ps);
    return 0;
}
