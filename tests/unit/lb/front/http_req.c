/* The http phase's pure parts (lb/front/http_req.c): path patterns (a
 * table of paths that name a stream and paths that must not), the request
 * parser split at every byte, pipelined requests, every refusal, and the
 * X-Forwarded-For entry that is trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/front/http_req.h"

/* ---- path patterns ----------------------------------------------------------- */

struct path_case {
    const char *pattern, *path, *app, *stream; /* app NULL: no match */
};

static const struct path_case path_cases[] = {
    {"/{app}/{stream}.flv", "/live/room.flv", "live", "room"},
    {"/{app}/{stream}.flv", "/live/room.v2.flv", "live", "room.v2"},
    {"/{app}/{stream}.m3u8", "/live/room.m3u8", "live", "room"},
    {"/{app}/{stream}-{seq}.ts", "/live/room-12.ts", "live", "room"},
    {"/{app}/{stream}-{seq}.ts", "/live/cam-1-23.ts", "live", "cam-1"},
    {"/{app}/{stream}-{seq}.m4s", "/live/a-0.m4s", "live", "a"},
    {"/{app}/{stream}.flv", "/live/a%20b.flv", "live", "a b"},
    {"/hls/{stream}/index.m3u8", "/hls/show/index.m3u8", "deflt", "show"},
    {"/hls/{stream}/{seq}.ts", "/hls/show/17.ts", "deflt", "show"},
    /* no match */
    {"/{app}/{stream}.flv", "/live/room.m3u8", NULL, NULL},
    {"/{app}/{stream}.flv", "/live/.flv", NULL, NULL},
    {"/{app}/{stream}.flv", "/a/b/c.flv", NULL, NULL},
    {"/{app}/{stream}.flv", "/live/room.flv/x", NULL, NULL},
    {"/{app}/{stream}-{seq}.ts", "/live/room-x.ts", NULL, NULL},
    {"/{app}/{stream}-{seq}.ts", "/live/room-.ts", NULL, NULL},
    {"/{app}/{stream}.flv", "/live/a%2Fb.flv", NULL, NULL}, /* a decoded '/' */
    {"/{app}/{stream}.flv", "/live/a%00b.flv", NULL, NULL},
    {"/{app}/{stream}.flv", "/", NULL, NULL},
    {"/{app}/{stream}.flv", "", NULL, NULL},
};

static void test_path_patterns(void **state)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *c = &path_cases[i];
        char app[64] = "", stream[64] = "";
        bool ok = lb_http_path_match(c->pattern, c->path, strlen(c->path), "deflt", app,
                                     sizeof(app), stream, sizeof(stream));
        if (ok != (c->app != NULL))
            fail_msg("case %zu: %s against %s: %s", i, c->path, c->pattern,
                     ok ? "matched" : "no match");
        if (ok) {
            assert_string_equal(app, c->app);
            assert_string_equal(stream, c->stream);
        }
    }
}

static void test_path_bounds(void **state)
{
    char app[8], stream[8];
    /* A capture longer than the caller's room is refused, not cut. */
    assert_false(lb_http_path_match("/{app}/{stream}.flv", "/live/abcdefghij.flv", 20, "x", app,
                                    sizeof(app), stream, sizeof(stream)));
    assert_true(lb_http_path_match("/{app}/{stream}.flv", "/live/abcdefg.flv", 17, "x", app,
                                   sizeof(app), stream, sizeof(stream)));
    assert_string_equal(stream, "abcdefg");
    /* The path length is what is matched: a query after it is not. */
    const char *url = "/live/room.flv?line=hk";
    assert_true(lb_http_path_match("/{app}/{stream}.flv", url, 14, "x", app, sizeof(app), stream,
                                   sizeof(stream)));
    assert_string_equal(stream, "room");
    /* The defaults, in order: flv, m3u8, then segments. */
    assert_int_equal(lb_http_n_default_paths, 5);
    assert_string_equal(lb_http_default_paths[0], "/{app}/{stream}.flv");
}

/* The fuzz campaign found a URL of dashes that took 0.7 s against
 * "/{app}-{stream}-{seq}/x": the split search is bounded now. */
static void test_path_match_work_bounded(void **state)
{
    (void)state;
    static char path[LB_HTTPREQ_MAX_URL + 1];
    char app[64], stream[64];
    size_t n = LB_HTTPREQ_MAX_URL - 2;
    path[0] = '/';
    memset(path + 1, '-', n - 1);
    memcpy(path + n, "/x", 2);
    n += 2;
    /* Unbounded this is about (n^2)/2 splits for each of n: billions. */
    assert_true(lb_http_path_match_cost("/{app}-{stream}-{seq}/x", path, n) <=
                LB_HTTP_MATCH_STEPS + 1);
    assert_false(lb_http_path_match("/{app}-{stream}-{seq}/x", path, n, "x", app, sizeof(app),
                                     stream, sizeof(stream)));
    /* A long segment against a default pattern: an honest no match, well
     * inside the bound (one split per byte). */
    unsigned cost = lb_http_path_match_cost("/{app}/{stream}-{seq}.ts", path, n);
    assert_true(cost > 1000);
    assert_true(cost < LB_HTTP_MATCH_STEPS);
    /* {seq} is tried only over the digits that start there. */
    assert_true(lb_http_path_match_cost("/{app}/{stream}-{seq}.ts", "/live/a-123456.ts", 17) < 16);
    assert_true(lb_http_path_match("/{app}/{stream}-{seq}.ts", "/live/a-b-12.ts", 15, "x", app,
                                   sizeof(app), stream, sizeof(stream)));
    assert_string_equal(stream, "a-b");
}

/* ---- the request parser --------------------------------------------------------- */

static const char GOOD[] = "GET /live/room.flv?line=hk HTTP/1.1\r\nHost: lb\r\n"
                           "X-Forwarded-For: 198.51.100.1\r\nx-forwarded-for: 203.0.113.7\r\n"
                           "User-Agent: t\r\n\r\n";

static void test_request_split_at_every_byte(void **state)
{
    static struct lb_httpreq p;
    size_t len = strlen(GOOD);
    for (size_t cut = 0; cut <= len; cut++) {
        size_t used;
        lb_httpreq_init(&p, 4096);
        enum lb_httpreq_res r = lb_httpreq_feed(&p, GOOD, cut, &used);
        if (cut < len) {
            assert_int_equal(r, LB_HTTPREQ_NEED_MORE);
            assert_int_equal(used, cut);
            r = lb_httpreq_feed(&p, GOOD + cut, len - cut, &used);
            assert_int_equal(cut + used, len);
        } else {
            assert_int_equal(used, len);
        }
        assert_int_equal(r, LB_HTTPREQ_DONE);
        assert_string_equal(p.url, "/live/room.flv?line=hk");
        assert_string_equal(p.xff, "198.51.100.1, 203.0.113.7");
        assert_true(p.keep_alive);
        assert_int_equal(p.minor, 1);
    }
}

static void test_request_pipelined(void **state)
{
    static struct lb_httpreq p;
    const char two[] = "GET /live/a.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "HEAD /live/b-3.ts HTTP/1.0\r\n\r\n";
    size_t used, first = strlen("GET /live/a.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n");
    lb_httpreq_init(&p, 4096);
    assert_int_equal(lb_httpreq_feed(&p, two, strlen(two), &used), LB_HTTPREQ_DONE);
    assert_int_equal(used, first);
    assert_string_equal(p.url, "/live/a.m3u8");
    lb_httpreq_next(&p);
    assert_int_equal(lb_httpreq_feed(&p, two + used, strlen(two) - used, &used), LB_HTTPREQ_DONE);
    assert_int_equal(used, strlen(two) - first);
    assert_string_equal(p.url, "/live/b-3.ts");
    assert_int_equal(p.method, HTTP_HEAD);
    assert_false(p.keep_alive); /* HTTP/1.0 without keep-alive */
    assert_int_equal(p.xff_len, 0);
}

struct bad_case {
    const char *req;
    int status;
};

static void test_request_refusals(void **state)
{
    static struct lb_httpreq p;
    static char big[8192];
    int n = snprintf(big, sizeof(big), "GET /live/a.flv HTTP/1.1\r\nX-Pad: ");
    memset(big + n, 'p', sizeof(big) - (size_t)n - 8);
    memcpy(big + sizeof(big) - 8, "\r\n\r\n", 5);
    static char long_url[LB_HTTPREQ_MAX_URL + 64];
    memcpy(long_url, "GET /", 5);
    memset(long_url + 5, 'a', LB_HTTPREQ_MAX_URL + 10);
    strcpy(long_url + 5 + LB_HTTPREQ_MAX_URL + 10, " HTTP/1.1\r\n\r\n");
    const struct bad_case cases[] = {
        {"GARBAGE\x01 / HTTP/9\r\n\r\n", 400},
        {"GET /a HTTP/1.1\r\nHost x\r\n\r\n", 400},
        {"POST /live/a.flv HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405},
        {"GET /live/a.flv HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 413},
        {"GET /live/a.flv HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413},
        {"GET http://h/live/a.flv HTTP/1.1\r\n\r\n", 400},
        {"GET /live/a.flv HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400},
        {big, 431},
        {long_url, 414}, /* LB_HTTPREQ_MAX_URL, within the header bound */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t used;
        lb_httpreq_init(&p, 6000);
        enum lb_httpreq_res r = lb_httpreq_feed(&p, cases[i].req, strlen(cases[i].req), &used);
        if (r != LB_HTTPREQ_ERROR || p.status != cases[i].status)
            fail_msg("case %zu: result %d status %d (want %d)", i, r, p.status, cases[i].status);
        assert_non_null(p.why);
        /* Sticky: more bytes do not revive it. */
        assert_int_equal(lb_httpreq_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used),
                         LB_HTTPREQ_ERROR);
    }
    /* The header bound first when it is the smaller one. */
    lb_httpreq_init(&p, 2048);
    size_t used;
    assert_int_equal(lb_httpreq_feed(&p, long_url, strlen(long_url), &used), LB_HTTPREQ_ERROR);
    assert_int_equal(p.status, 431);
}

static void test_xff_last(void **state)
{
    char ip[64];
    assert_true(lb_httpreq_xff_last("198.51.100.1, 203.0.113.7", ip, sizeof(ip)));
    assert_string_equal(ip, "203.0.113.7");
    assert_true(lb_httpreq_xff_last(" 2001:db8::1 ", ip, sizeof(ip)));
    assert_string_equal(ip, "2001:db8::1");
    assert_false(lb_httpreq_xff_last("203.0.113.7, unknown", ip, sizeof(ip)));
    assert_false(lb_httpreq_xff_last("", ip, sizeof(ip)));
    assert_false(lb_httpreq_xff_last("203.0.113.7:4000", ip, sizeof(ip)));
    assert_false(lb_httpreq_xff_last("203.0.113.7", ip, 4)); /* no room */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_patterns),
        cmocka_unit_test(test_path_bounds),
        cmocka_unit_test(test_path_match_work_bounded),
        cmocka_unit_test(test_request_split_at_every_byte),
        cmocka_unit_test(test_request_pipelined),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_xff_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
