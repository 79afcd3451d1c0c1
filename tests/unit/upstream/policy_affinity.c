/* stream_affinity: golden values (versions and instances must agree),
 * spread by weight, and minimal movement when nodes come and go. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "upstream/upstream.h"
#include "tests/unit/support.h"

#define fx test_fx

static struct fx setup(const char *nodes)
{
    char text[8192];
    snprintf(text, sizeof(text),
             "listeners: [{name: rtmp, address: 127.0.0.1:1935}]\n"
             "pools: {p: {nodes: [%s]}}\n"
             "routes: [{name: r, pool: p, policy: stream_affinity}]\n",
             nodes);
    return test_fx_load(text, 2);
}

static void teardown(struct fx *f) { test_fx_free(f); }

static const char *pick(struct fx *f, const char *app, const char *stream, int role,
                        unsigned worker)
{
    struct ups_request req = {.listener = "rtmp", .role = role, .app = app, .stream = stream,
                              .worker = worker};
    struct ups_candidates c;
    assert_non_null(ups_route_select(f->snap, &req, &c));
    return c.n ? c.node[0]->name : "none";
}

static void test_golden_hash(void **st)
{
    /* Pinned, and computed by an independent implementation (a few lines
     * of Python: FNV-1a 64 over name, 0xff, app, '/', stream; splitmix64's
     * finaliser). Changing them breaks agreement between versions. */
    assert_true(ups_affinity_hash("origin-a", "live", "s1") == 0xe9d7e814a5ed6816ULL);
    assert_true(ups_affinity_hash("origin-b", "live", "s1") == 0x205fdee3dc863722ULL);
    assert_true(ups_affinity_hash("origin-a", "live", "s2") == 0x11c5a5651b2f04ffULL);
}

static const char NODES3[] = "{name: origin-a, address: 127.0.0.1:1}, "
                             "{name: origin-b, address: 127.0.0.1:2}, "
                             "{name: origin-c, address: 127.0.0.1:3}";

static void test_golden_picks_and_agreement(void **st)
{
    struct fx f = setup(NODES3);
    /* Publish and play of a stream meet; every worker agrees. */
    static const struct { const char *stream, *node; } want[] = {
        {"s1", "origin-a"}, {"s2", "origin-b"}, {"s3", "origin-b"}, {"camera7", "origin-b"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_string_equal(pick(&f, "live", want[i].stream, CONF_ROLE_PUBLISH, 0), want[i].node);
        assert_string_equal(pick(&f, "live", want[i].stream, CONF_ROLE_PLAY, 1), want[i].node);
    }
    /* A second instance built from the same config agrees. */
    struct fx g = setup(NODES3);
    char s[32];
    for (int i = 0; i < 200; i++) {
        snprintf(s, sizeof(s), "stream%d", i);
        assert_string_equal(pick(&f, "live", s, CONF_ROLE_PLAY, 0),
                            pick(&g, "live", s, CONF_ROLE_PUBLISH, 1));
    }
    teardown(&g);
    teardown(&f);
}

static void test_spread_follows_weight(void **st)
{
    struct fx f = setup("{name: a, address: 127.0.0.1:1, weight: 1}, "
                        "{name: b, address: 127.0.0.1:2, weight: 2}, "
                        "{name: c, address: 127.0.0.1:3, weight: 3}");
    int count[3] = {0};
    char s[32];
    for (int i = 0; i < 6000; i++) {
        snprintf(s, sizeof(s), "k%d", i);
        count[pick(&f, "live", s, CONF_ROLE_PLAY, 0)[0] - 'a']++;
    }
    print_message("6000 keys over weights 1:2:3: %d %d %d\n", count[0], count[1], count[2]);
    assert_in_range(count[0], 900, 1100);
    assert_in_range(count[1], 1850, 2150);
    assert_in_range(count[2], 2800, 3200);
    teardown(&f);
}

static void test_minimal_movement(void **st)
{
    struct fx three = setup(NODES3);
    struct fx four = setup("{name: origin-a, address: 127.0.0.1:1}, "
                           "{name: origin-b, address: 127.0.0.1:2}, "
                           "{name: origin-c, address: 127.0.0.1:3}, "
                           "{name: origin-d, address: 127.0.0.1:4}");
    int moved = 0, to_d = 0;
    char s[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(s, sizeof(s), "k%d", i);
        const char *before = pick(&three, "live", s, CONF_ROLE_PLAY, 0);
        const char *after = pick(&four, "live", s, CONF_ROLE_PLAY, 0);
        if (strcmp(before, after) != 0) {
            moved++;
            if (strcmp(after, "origin-d") == 0)
                to_d++;
        }
    }
    /* Adding a node moves only the keys it now wins: about a quarter. */
    print_message("adding a 4th node moved %d of 4000 keys\n", moved);
    assert_int_equal(moved, to_d);
    assert_in_range(moved, 850, 1150);
    teardown(&four);
    teardown(&three);
}

static void test_full_node_falls_back_consistently(void **st)
{
    struct fx f = setup("{name: origin-a, address: 127.0.0.1:1, max_sessions: 1}, "
                        "{name: origin-b, address: 127.0.0.1:2}, "
                        "{name: origin-c, address: 127.0.0.1:3}");
    struct ups_request req = {.listener = "rtmp", .role = CONF_ROLE_PLAY, .app = "live",
                              .stream = "s1"};
    struct ups_candidates c;
    ups_route_select(f.snap, &req, &c);
    assert_string_equal(c.node[0]->name, "origin-a"); /* scores: a, c, b */
    const char *second = c.node[1]->name;
    assert_string_equal(second, "origin-c");
    assert_true(ups_node_acquire(c.node[0]));
    ups_route_select(f.snap, &req, &c);
    assert_string_equal(c.node[0]->name, second); /* the next by score, every time */
    ups_node_release(&f.snap->pools[0].nodes[0]);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_hash),
        cmocka_unit_test(test_golden_picks_and_agreement),
        cmocka_unit_test(test_spread_follows_weight),
        cmocka_unit_test(test_minimal_movement),
        cmocka_unit_test(test_full_node_falls_back_consistently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
