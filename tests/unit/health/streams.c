/* The stream index: set_node replaces one node's stats entries and nothing
 * else, clear_node forgets a node's stats (routed publishes stay), and the
 * cost of replacing one node does not grow with the rest of the index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "health/streams.h"

static struct hc_stream live(const char *app, const char *name)
{
    struct hc_stream s;
    memset(&s, 0, sizeof(s));
    snprintf(s.app, sizeof(s.app), "%s", app);
    snprintf(s.name, sizeof(s.name), "%s", name);
    s.publishing = true;
    return s;
}

static const char *where(struct hc_index *x, const char *pool, const char *stream)
{
    static char node[64];
    return hc_index_lookup(x, pool, "live", stream, node, sizeof(node)) ? node : "-";
}

static void test_set_node_replaces_only_that_node(void **st)
{
    struct hc_index *x = hc_index_new();
    struct hc_stream a[] = {live("live", "s1"), live("live", "s2")};
    struct hc_stream b[] = {live("live", "s3")};
    hc_index_set_node(x, "p", "a", a, 2);
    hc_index_set_node(x, "p", "b", b, 1);
    hc_index_set_node(x, "q", "a", b, 1); /* same node name, other pool */
    assert_int_equal(hc_index_count(x), 4);
    assert_int_equal(hc_index_count_node(x, "p", "a"), 2);

    struct hc_stream a2[] = {live("live", "s2"), live("live", "s4")};
    a2[1].publishing = false; /* players only: not live there */
    hc_index_set_node(x, "p", "a", a2, 2);
    assert_string_equal(where(x, "p", "s1"), "-");
    assert_string_equal(where(x, "p", "s2"), "a");
    assert_string_equal(where(x, "p", "s4"), "-");
    assert_string_equal(where(x, "p", "s3"), "b");
    assert_string_equal(where(x, "q", "s3"), "a");
    assert_int_equal(hc_index_count_node(x, "p", "a"), 1);
    assert_int_equal(hc_index_count(x), 3);

    /* Names that would collide if simply concatenated stay apart. */
    hc_index_set_node(x, "ab", "c", a, 1);
    hc_index_set_node(x, "a", "bc", b, 1);
    hc_index_clear_node(x, "a", "bc");
    assert_int_equal(hc_index_count_node(x, "ab", "c"), 1);
    assert_int_equal(hc_index_count_node(x, "a", "bc"), 0);
    hc_index_free(x);
}

static void test_clear_node(void **st)
{
    struct hc_index *x = hc_index_new();
    struct hc_stream a[] = {live("live", "s1"), live("live", "s2")};
    hc_index_set_node(x, "p", "a", a, 2);
    hc_index_set_node(x, "p", "b", a, 1);
    hc_index_add_publish(x, "p", "a", "live", "routed");
    assert_int_equal(hc_index_count(x), 4);

    hc_index_clear_node(x, "p", "a");
    assert_int_equal(hc_index_count_node(x, "p", "a"), 0);
    assert_string_equal(where(x, "p", "s2"), "-");
    assert_string_equal(where(x, "p", "s1"), "b");      /* b's own report stays */
    assert_string_equal(where(x, "p", "routed"), "a");  /* our publish stays */
    assert_int_equal(hc_index_count(x), 2);

    hc_index_clear_node(x, "p", "a");       /* twice: nothing to do */
    hc_index_clear_node(x, "p", "unknown"); /* never reported */
    assert_int_equal(hc_index_count(x), 2);

    hc_index_remove_publish(x, "p", "a", "live", "routed");
    hc_index_set_node(x, "p", "a", a, 2); /* the node answers again */
    assert_string_equal(where(x, "p", "s2"), "a");
    assert_int_equal(hc_index_count(x), 3);
    hc_index_set_node(x, "p", "b", NULL, 0);
    hc_index_set_node(x, "p", "a", NULL, 0);
    assert_int_equal(hc_index_count(x), 0);
    hc_index_free(x);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* 100k entries on 1000 nodes; replacing one small node 10000 times. A scan
 * of the whole table per call (the old code) needs seconds for this; an
 * index per node needs milliseconds. The bound is far from both. */
static void test_set_node_cost_does_not_grow_with_index(void **st)
{
    enum { NODES = 1000, PER = 100, CALLS = 10000 };
    static struct hc_stream many[PER];
    struct hc_index *x = hc_index_new();
    char node[32];
    for (int i = 0; i < NODES; i++) {
        for (int j = 0; j < PER; j++) {
            char name[32];
            snprintf(name, sizeof(name), "n%d-s%d", i, j);
            many[j] = live("live", name);
        }
        snprintf(node, sizeof(node), "node%d", i);
        hc_index_set_node(x, "p", node, many, PER);
    }
    assert_int_equal(hc_index_count(x), NODES * PER);

    struct hc_stream one = live("live", "hot");
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++)
        hc_index_set_node(x, "p", "small", &one, 1);
    double took = now_s() - t0;
    print_message("%d set_node calls on a %d-entry index: %.3f s\n", CALLS, NODES * PER, took);
    assert_true(took < 2.0);
    assert_int_equal(hc_index_count(x), NODES * PER + 1);
    assert_string_equal(where(x, "p", "n999-s99"), "node999");
    hc_index_free(x);
}

/* ---- hook entries (SRS http_hooks) ---- */

static uint64_t fake_now = 1000;
static uint64_t fake_clock(void) { return fake_now; }

struct seen {
    char line[8][96];
    size_t n;
};

static void collect(void *arg, const char *pool, const char *node, const char *app,
                    const char *stream, uint64_t expires_in_ms)
{
    struct seen *s = arg;
    if (s->n < 8)
        snprintf(s->line[s->n++], sizeof(s->line[0]), "%s/%s %s/%s %llu", pool, node, app, stream,
                 (unsigned long long)expires_in_ms);
}

static void test_hooks_publish_unpublish(void **st)
{
    struct hc_index *x = hc_index_new();
    uint64_t ev;
    hc_index_set_clock(x, fake_clock);
    fake_now = 1000;
    assert_string_equal(where(x, "p", "h1"), "-");
    assert_int_equal(hc_index_hook_publish(x, "p", "b", "live", "h1", &ev), 0);
    assert_int_equal(ev, 0);
    assert_string_equal(where(x, "p", "h1"), "b"); /* at once, no stats poll */
    assert_string_equal(where(x, "q", "h1"), "-"); /* only in its pool */
    assert_int_equal(hc_index_hook_publish(x, "p", "b", "live", "h1", NULL), 1); /* again */
    assert_int_equal(hc_index_count_hooks(x, NULL), 1);

    /* The same stream name in another app is another stream. */
    assert_int_equal(hc_index_hook_publish(x, "p", "a", "other", "h1", NULL), 0);
    assert_string_equal(where(x, "p", "h1"), "b");

    struct seen seen = {0};
    hc_index_each_hook(x, collect, &seen);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.line[0], "p/b live/h1 86400000");
    assert_string_equal(seen.line[1], "p/a other/h1 86400000");

    /* Stats and hooks: stats clearing does not touch hooks, and back. */
    struct hc_stream s1 = live("live", "h1");
    hc_index_set_node(x, "p", "c", &s1, 1);
    hc_index_clear_node(x, "p", "b");
    assert_string_equal(where(x, "p", "h1"), "b");     /* hooks before stats */
    assert_true(hc_index_hook_unpublish(x, "p", "b", "live", "h1"));
    assert_false(hc_index_hook_unpublish(x, "p", "b", "live", "h1")); /* twice: none left */
    assert_string_equal(where(x, "p", "h1"), "c");     /* the stats still say c */
    hc_index_add_publish(x, "p", "d", "live", "h1");
    hc_index_hook_publish(x, "p", "b", "live", "h1", NULL);
    assert_string_equal(where(x, "p", "h1"), "d");     /* our routed publish first */

    /* A node down (or gone): its hook entries go, and only its. */
    assert_int_equal(hc_index_clear_hooks(x, "p", "b"), 1);
    assert_int_equal(hc_index_clear_hooks(x, "p", "b"), 0);
    assert_int_equal(hc_index_count_hooks(x, NULL), 1); /* a's other/h1 */
    hc_index_free(x);
}

static void test_hooks_expire_and_touch(void **st)
{
    struct hc_index *x = hc_index_new();
    hc_index_set_clock(x, fake_clock);
    hc_index_set_hook_limits(x, 100, 10000);
    fake_now = 5000;
    hc_index_hook_publish(x, "p", "a", "live", "old", NULL);
    fake_now = 9000;
    hc_index_hook_publish(x, "p", "a", "live", "young", NULL);
    fake_now = 14000;
    assert_true(hc_index_hook_touch(x, "p", "a", "live", "old")); /* a play: confirmed */
    assert_false(hc_index_hook_touch(x, "p", "a", "live", "never"));
    fake_now = 19500; /* young expired at 19000; old lives to 24000 */
    assert_string_equal(where(x, "p", "young"), "-");
    assert_string_equal(where(x, "p", "old"), "a");
    assert_int_equal(hc_index_count_hooks(x, NULL), 1);
    assert_false(hc_index_hook_touch(x, "p", "a", "live", "young")); /* expired: not revived */
    fake_now = 24000;
    assert_string_equal(where(x, "p", "old"), "-");
    hc_index_hook_publish(x, "p", "a", "live", "new", NULL); /* sweeps the expired */
    assert_int_equal(hc_index_count(x), 1);
    hc_index_free(x);
}

static void test_hooks_bounded(void **st)
{
    struct hc_index *x = hc_index_new();
    char name[32];
    uint64_t ev = 0;
    uint64_t evicted = 0;
    hc_index_set_clock(x, fake_clock);
    hc_index_set_hook_limits(x, 3, 1000000);
    fake_now = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        assert_int_equal(hc_index_hook_publish(x, "p", "a", "live", name, &ev), 0);
        assert_int_equal(ev, 0);
        fake_now++;
    }
    hc_index_hook_touch(x, "p", "a", "live", "s0"); /* s1 is now the least recently confirmed */
    assert_int_equal(hc_index_hook_publish(x, "p", "a", "live", "s3", &ev), 0);
    assert_int_equal(ev, 1);
    assert_string_equal(where(x, "p", "s1"), "-");
    assert_string_equal(where(x, "p", "s0"), "a");
    assert_string_equal(where(x, "p", "s3"), "a");
    assert_int_equal(hc_index_count_hooks(x, &evicted), 3);
    assert_int_equal(evicted, 1);
    /* A burst never grows it past the bound. */
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "b%d", i);
        hc_index_hook_publish(x, "p", "n", "live", name, NULL);
    }
    assert_int_equal(hc_index_count_hooks(x, &evicted), 3);
    assert_int_equal(hc_index_count(x), 3);
    assert_int_equal(evicted, 1001);
    hc_index_free(x);
}

/* What a node itself says (stats, hooks), apart from this instance's own
 * routed publishes: a takeover waits on it. */
static void test_reported_by_the_node(void **st)
{
    struct hc_index *x = hc_index_new();
    hc_index_set_clock(x, fake_clock);
    hc_index_add_publish(x, "p", "a", "live", "s1");
    assert_string_equal(where(x, "p", "s1"), "a");
    assert_false(hc_index_reported(x, "p", "a", "live", "s1")); /* only ours */
    struct hc_stream a[] = {live("live", "s1")};
    hc_index_set_node(x, "p", "a", a, 1);
    assert_true(hc_index_reported(x, "p", "a", "live", "s1"));
    assert_false(hc_index_reported(x, "p", "b", "live", "s1")); /* another node */
    assert_false(hc_index_reported(x, "q", "a", "live", "s1")); /* another pool */
    assert_false(hc_index_reported(x, "p", "a", "live", "s2"));
    hc_index_remove_publish(x, "p", "a", "live", "s1");
    assert_true(hc_index_reported(x, "p", "a", "live", "s1"));
    hc_index_set_node(x, "p", "a", NULL, 0); /* the next poll: gone */
    assert_false(hc_index_reported(x, "p", "a", "live", "s1"));
    /* A hook says so until it expires. */
    hc_index_set_hook_limits(x, 10, 1000);
    assert_int_equal(hc_index_hook_publish(x, "p", "b", "live", "h", NULL), 0);
    assert_true(hc_index_reported(x, "p", "b", "live", "h"));
    fake_now += 2000;
    assert_false(hc_index_reported(x, "p", "b", "live", "h"));
    hc_index_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_node_replaces_only_that_node),
        cmocka_unit_test(test_clear_node),
        cmocka_unit_test(test_set_node_cost_does_not_grow_with_index),
        cmocka_unit_test(test_hooks_publish_unpublish),
        cmocka_unit_test(test_hooks_expire_and_touch),
        cmocka_unit_test(test_hooks_bounded),
        cmocka_unit_test(test_reported_by_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
