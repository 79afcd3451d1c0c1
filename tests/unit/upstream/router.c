/* Route matching: first match wins; tcp listeners skip routes that need
 * role, app or stream; globs on app and stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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

/* stream_location inside the router: a fake stream index says where. */
static const char LOC[] =
    "listeners: [{name: a, address: 127.0.0.1:1935}]\n"
    "pools:\n"
    "  o: {nodes: [{name: p1, address: 127.0.0.1:1}, {name: p2, address: 127.0.0.1:2},\n"
    "              {name: bk, address: 127.0.0.1:3, backup: true}]}\n"
    "routes: [{name: r, pool: o, policy: stream_location}]\n";

static const char *where;

static bool fake_locate(void *ctx, const char *pool, const char *app, const char *stream,
                        char *node, size_t cap)
{
    if (!where || strcmp(pool, "o") != 0)
        return false;
    snprintf(node, cap, "%s", where);
    return true;
}

static const char *first_for(struct ups_snapshot *s, int role, size_t *n)
{
    struct ups_stream_view view = {fake_locate, NULL};
    struct ups_request req = {.listener = "a", .role = role, .app = "live", .stream = "s",
                              .streams = &view};
    struct ups_candidates c;
    assert_non_null(ups_route_select(s, &req, &c));
    *n = c.n;
    return c.n ? c.node[0]->name : "none";
}

static struct ups_node *node_named(struct ups_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->pools[0].n_nodes; i++)
        if (strcmp(s->pools[0].nodes[i].name, name) == 0)
            return &s->pools[0].nodes[i];
    fail();
    return NULL;
}

static void test_stream_location_serves_from_backup_and_draining(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    size_t n;
    struct conf *c = conf_load_buffer("t.yaml", LOC, strlen(LOC), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    /* Live only on the backup, while both primaries are up: played from it. */
    where = "bk";
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 3); /* then the primaries, as fallbacks */
    /* Publishes are not located: the backup stays last. */
    assert_string_not_equal(first_for(s, CONF_ROLE_PUBLISH, &n), "bk");
    /* Live on a draining primary: still played from there. */
    where = "p2";
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DRAINING);
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "p2");
    assert_int_equal(n, 3); /* then p1, then the backup: p2 only because it has it */
    /* Down or disabled: not there, whatever the index says. */
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DISABLED);
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "p1");
    atomic_store(&node_named(s, "p2")->live->admin, UPS_ENABLED);
    atomic_store(&node_named(s, "bk")->live->health, UPS_DOWN);
    where = "bk";
    assert_string_not_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 2);
    /* A name the pool does not have, and no index at all: affinity order. */
    atomic_store(&node_named(s, "bk")->live->health, UPS_UP);
    where = "elsewhere";
    assert_string_not_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 3);
    where = NULL;

    ups_snapshot_unref(s);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_stream_location_serves_from_backup_and_draining),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
