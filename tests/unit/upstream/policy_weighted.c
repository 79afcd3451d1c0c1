/* Smooth weighted round robin, backups, max_sessions and least_sessions,
 * through the real config loader and router. */
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

#define fixture test_fx

/* A snapshot of one tcp listener and one pool described by nodes_yaml. */
static struct fixture setup(const char *nodes_yaml, const char *policy, unsigned workers)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "listeners: [{name: front, address: 127.0.0.1:1935, mode: tcp}]\n"
             "pools:\n  p:\n    nodes:\n%s"
             "routes: [{name: r, pool: p, policy: %s}]\n",
             nodes_yaml, policy);
    return test_fx_load(text, workers);
}

static void teardown(struct fixture *f) { test_fx_free(f); }

static const struct ups_node *pick(struct fixture *f, unsigned worker, struct ups_candidates *c)
{
    struct ups_request req = {.listener = "front", .l4 = true, .worker = worker};
    struct ups_candidates local;
    if (!c)
        c = &local;
    const struct ups_route *r = ups_route_select(f->snap, &req, c);
    assert_non_null(r);
    return c->n ? c->node[0] : NULL;
}

static void test_swrr_sequence_5_1_1(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, weight: 5}\n"
                             "      - {name: b, address: 127.0.0.1:2, weight: 1}\n"
                             "      - {name: c, address: 127.0.0.1:3, weight: 1}\n",
                             "weighted", 1);
    /* nginx's documented sequence for 5,1,1, twice over: the cycle repeats. */
    const char *want = "aabacaaaabacaa";
    char got[16] = {0};
    for (size_t i = 0; i < strlen(want); i++)
        got[i] = pick(&f, 0, NULL)->name[0];
    assert_string_equal(got, want);
    teardown(&f);
}

static void test_swrr_distribution_1000(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, weight: 3}\n"
                             "      - {name: b, address: 127.0.0.1:2, weight: 2}\n"
                             "      - {name: c, address: 127.0.0.1:3, weight: 1}\n",
                             "weighted", 1);
    int count[3] = {0};
    for (int i = 0; i < 1000; i++)
        count[pick(&f, 0, NULL)->name[0] - 'a']++;
    /* Exact to within one pick of 1000 * w / 6. */
    assert_in_range(count[0], 499, 501);
    assert_in_range(count[1], 332, 334);
    assert_in_range(count[2], 166, 168);
    assert_int_equal(count[0] + count[1] + count[2], 1000);
    teardown(&f);
}

static void test_workers_have_their_own_state(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, weight: 2}\n"
                             "      - {name: b, address: 127.0.0.1:2, weight: 1}\n",
                             "weighted", 2);
    char w0[7] = {0}, w1[7] = {0};
    for (int i = 0; i < 6; i++) {
        w0[i] = pick(&f, 0, NULL)->name[0];
        if (i % 2 == 0) /* worker 1 interleaves less often: no effect on its order */
            w1[i / 2] = pick(&f, 1, NULL)->name[0];
    }
    for (int i = 3; i < 6; i++)
        w1[i] = pick(&f, 1, NULL)->name[0];
    assert_string_equal(w0, "abaaba");
    assert_string_equal(w1, "abaaba");
    teardown(&f);
}

static void test_fallback_order(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, weight: 1}\n"
                             "      - {name: b, address: 127.0.0.1:2, weight: 5}\n"
                             "      - {name: k, address: 127.0.0.1:4, backup: true}\n"
                             "      - {name: c, address: 127.0.0.1:3, weight: 3}\n",
                             "weighted", 1);
    struct ups_candidates c;
    pick(&f, 0, &c);
    /* The pick, then the other primaries heaviest first, then the backup. */
    assert_int_equal(c.n, 4);
    assert_int_equal(c.n_primary, 3);
    assert_string_equal(c.node[0]->name, "b");
    assert_string_equal(c.node[1]->name, "c");
    assert_string_equal(c.node[2]->name, "a");
    assert_string_equal(c.node[3]->name, "k");
    teardown(&f);
}

static void test_backups_only_when_primaries_full(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, max_sessions: 1}\n"
                             "      - {name: b, address: 127.0.0.1:2, max_sessions: 1}\n"
                             "      - {name: k, address: 127.0.0.1:3, backup: true}\n",
                             "weighted", 1);
    struct ups_candidates c;
    struct ups_node *a = &f.snap->pools[0].nodes[0], *b = &f.snap->pools[0].nodes[1];

    for (int i = 0; i < 10; i++)
        assert_int_not_equal(pick(&f, 0, &c)->name[0], 'k');
    assert_true(ups_node_acquire(a));
    assert_string_equal(pick(&f, 0, &c)->name, "b"); /* a is full */
    assert_true(ups_node_acquire(b));
    assert_string_equal(pick(&f, 0, &c)->name, "k"); /* every primary full */
    assert_int_equal(c.n, 1);
    assert_int_equal(c.n_primary, 0);
    ups_node_release(a);
    assert_string_equal(pick(&f, 0, &c)->name, "a"); /* a primary has room again */
    ups_node_release(b);
    teardown(&f);
}

static void test_max_sessions(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, max_sessions: 2}\n",
                             "weighted", 1);
    struct ups_node *a = &f.snap->pools[0].nodes[0];
    struct ups_candidates c;

    assert_true(ups_node_acquire(a));
    assert_true(ups_node_acquire(a));
    assert_false(ups_node_acquire(a));
    assert_int_equal(atomic_load(&a->live->sessions), 2);
    assert_null(pick(&f, 0, &c)); /* route matches, but no node can take it */
    assert_int_equal(c.n, 0);
    ups_node_release(a);
    assert_true(ups_node_acquire(a));
    ups_node_release(a);
    ups_node_release(a);
    assert_int_equal(atomic_load(&a->live->sessions), 0);
    teardown(&f);
}

static void test_least_sessions(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1, weight: 1}\n"
                             "      - {name: b, address: 127.0.0.1:2, weight: 2}\n",
                             "least_sessions", 1);
    struct ups_node *a = &f.snap->pools[0].nodes[0], *b = &f.snap->pools[0].nodes[1];
    /* Fill greedily as a proxy would: always the first candidate. */
    for (int i = 0; i < 30; i++)
        assert_true(ups_node_acquire((struct ups_node *)pick(&f, 0, NULL)));
    /* Sessions end up proportional to weight: 10 and 20. */
    assert_int_equal(atomic_load(&a->live->sessions), 10);
    assert_int_equal(atomic_load(&b->live->sessions), 20);
    teardown(&f);
}

static void test_least_sessions_uses_stats_clients(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1}\n"
                             "      - {name: b, address: 127.0.0.1:2}\n",
                             "least_sessions", 1);
    struct ups_node *a = &f.snap->pools[0].nodes[0];
    atomic_store(&a->live->stats_clients, 50); /* others' clients on a */
    for (int i = 0; i < 10; i++)
        assert_string_equal(pick(&f, 0, NULL)->name, "b");
    assert_true(ups_node_acquire(&f.snap->pools[0].nodes[1]));
    assert_string_equal(pick(&f, 0, NULL)->name, "b"); /* 1 < 50 */
    ups_node_release(&f.snap->pools[0].nodes[1]);
    teardown(&f);
}

static void test_reload_keeps_node_counters(void **st)
{
    struct fixture f = setup("      - {name: a, address: 127.0.0.1:1}\n"
                             "      - {name: b, address: 127.0.0.1:2}\n",
                             "weighted", 1);
    char err[128];
    struct ups_node *a = &f.snap->pools[0].nodes[0];
    assert_true(ups_node_acquire(a));
    struct ups_snapshot *next = ups_snapshot_build(f.conf, f.snap, 1, err, sizeof(err));
    assert_non_null(next);
    assert_ptr_equal(next->pools[0].nodes[0].live, a->live);
    assert_int_equal(atomic_load(&next->pools[0].nodes[0].live->sessions), 1);
    assert_true(next->generation > f.snap->generation);
    ups_node_release(&next->pools[0].nodes[0]);
    ups_snapshot_unref(next);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swrr_sequence_5_1_1),
        cmocka_unit_test(test_swrr_distribution_1000),
        cmocka_unit_test(test_workers_have_their_own_state),
        cmocka_unit_test(test_fallback_order),
        cmocka_unit_test(test_backups_only_when_primaries_full),
        cmocka_unit_test(test_max_sessions),
        cmocka_unit_test(test_least_sessions),
        cmocka_unit_test(test_least_sessions_uses_stats_clients),
        cmocka_unit_test(test_reload_keeps_node_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
