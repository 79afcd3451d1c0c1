/* Route matching: first match wins; tcp listeners skip routes that need
 * role, app or stream; globs on app and stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "conf/conf.h"
#include "upstream/upstream.h"

static const char TEXT[] =
    "listeners:\n"
    "  - {name: a, address: 127.0.0.1:1935, mode: tcp}\n"
    "  - {name: b, address: 127.0.0.1:1936, mode: tcp}\n"
    "pools:\n"
    "  p1: {nodes: [{name: n1, address: 127.0.0.1:1}]}\n"
    "  p2: {nodes: [{name: n2, address: 127.0.0.1:2}]}\n"
    "  p3: {nodes: [{name: n3, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: pub, match: {role: publish, app: 'live*'}, pool: p3}\n"
    "  - {name: only-b, match: {listener: b}, pool: p2}\n"
    "  - {name: rest, match: {}, pool: p1}\n";

static const char *route_for(struct ups_snapshot *s, const char *listener, bool l4, int role,
                             const char *app)
{
    struct ups_request req = {.listener = listener, .l4 = l4, .role = role, .app = app,
                              .stream = "s"};
    struct ups_candidates c;
    const struct ups_route *r = ups_route_select(s, &req, &c);
    return r ? r->name : "none";
}

static void test_matching(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", TEXT, strlen(TEXT), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    assert_string_equal(route_for(s, "a", true, 0, NULL), "rest");
    assert_string_equal(route_for(s, "b", true, 0, NULL), "only-b");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "live"), "pub");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "livestream"), "pub");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PLAY, "live"), "rest");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "vod"), "rest");
    assert_string_equal(route_for(s, "b", false, CONF_ROLE_PUBLISH, "live"), "pub");

    ups_snapshot_unref(s);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matching)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
