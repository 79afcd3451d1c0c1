/* Health, the pure parts: rise/fall with a fake clock, jitter bounds, the
 * slow-start ramp, backups engaging and releasing with node health, stats
 * documents (a real nginx-rtmp /stat capture; SRS from its documented
 * format) and the stream index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "health/hc.h"
#include "health/streams.h"
#include "upstream/upstream.h"
#include "tests/unit/support.h"

static const char *dir;

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof(buf) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void test_rise_fall(void **st)
{
    struct hc_params p = {.interval_ms = 2000, .jitter_ms = 200, .timeout_ms = 1000, .rise = 2,
                          .fall = 3};
    struct hc_state s = {.up = true};
    uint64_t now = 1000;
    /* Two failures are not enough; a success in between resets the run. */
    assert_false(hc_apply(&s, &p, false, now += 2000));
    assert_false(hc_apply(&s, &p, false, now += 2000));
    assert_false(hc_apply(&s, &p, true, now += 2000));
    assert_false(hc_apply(&s, &p, false, now += 2000));
    assert_false(hc_apply(&s, &p, false, now += 2000));
    assert_true(s.up);
    assert_true(hc_apply(&s, &p, false, now += 2000)); /* third in a row: down */
    assert_false(s.up);
    assert_int_equal(s.since_ms, now);
    assert_false(hc_apply(&s, &p, false, now += 2000)); /* stays down, no new transition */
    assert_false(hc_apply(&s, &p, true, now += 2000));
    assert_false(hc_apply(&s, &p, false, now += 2000)); /* rise run broken */
    assert_false(hc_apply(&s, &p, true, now += 2000));
    assert_true(hc_apply(&s, &p, true, now += 2000)); /* two in a row: up */
    assert_true(s.up);
    assert_int_equal(s.since_ms, now);
}

static void test_jitter_bounds(void **st)
{
    struct hc_params p = {.interval_ms = 2000, .jitter_ms = 200};
    assert_int_equal(hc_next_delay(&p, 0.0), 1800);
    assert_int_equal(hc_next_delay(&p, 0.5), 2000);
    assert_true(hc_next_delay(&p, 0.999999) <= 2200 && hc_next_delay(&p, 0.999999) >= 2199);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t d = hc_next_delay(&p, i / 1000.0);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo >= 1800 && hi <= 2200);
    struct hc_params big = {.interval_ms = 100, .jitter_ms = 1000}; /* capped at interval */
    assert_true(hc_next_delay(&big, 0.0) >= 1);
    assert_true(hc_next_delay(&big, 0.99) <= 200);
    assert_string_equal(hc_result_name(HC_L4_TIMEOUT), "L4_TIMEOUT");
    assert_string_equal(hc_result_text(HC_L7_RTMP_REJECT), "RTMP connect rejected");
}

static struct test_fx setup(const char *nodes, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "listeners: [{name: r, address: 127.0.0.1:1935, mode: tcp}]\n"
             "pools: {p: {%s nodes: [%s]}}\n"
             "routes: [{name: r, pool: p}]\n",
             extra, nodes);
    return test_fx_load(text, 1);
}

static const char *pick(struct test_fx *f, uint64_t now)
{
    struct ups_request req = {.listener = "r", .l4 = true, .now_ms = now};
    struct ups_candidates c;
    ups_route_select(f->snap, &req, &c);
    return c.n ? c.node[0]->name : "none";
}

static void test_slow_start_ramp(void **st)
{
    struct test_fx f = setup("{name: a, address: 127.0.0.1:1, weight: 100}", "slow_start: 10s,");
    struct ups_node *a = &f.snap->pools[0].nodes[0];
    atomic_store(&a->live->up_since_ms, 1000);
    assert_int_equal(ups_effective_weight(a, 1000), 10);   /* a tenth at once */
    assert_int_equal(ups_effective_weight(a, 6000), 55);   /* half way */
    assert_int_equal(ups_effective_weight(a, 10999), 99);
    assert_int_equal(ups_effective_weight(a, 11000), 100); /* done */
    assert_int_equal(ups_effective_weight(a, 500), 100);   /* clock before: no ramp */
    test_fx_free(&f);

    /* In the weighted policy: a recovering node gets its share gradually. */
    f = setup("{name: a, address: 127.0.0.1:1, weight: 10}, {name: b, address: 127.0.0.1:2, "
              "weight: 10}",
              "slow_start: 10s,");
    atomic_store(&f.snap->pools[0].nodes[0].live->up_since_ms, 1000);
    int a_early = 0, a_late = 0;
    for (int i = 0; i < 110; i++)
        a_early += strcmp(pick(&f, 1000), "a") == 0; /* a at weight 1 vs b at 10 */
    for (int i = 0; i < 100; i++)
        a_late += strcmp(pick(&f, 20000), "a") == 0; /* ramp over: equal */
    print_message("slow start: a got %d of 110 at the start, %d of 100 after\n", a_early, a_late);
    assert_in_range(a_early, 9, 11);
    assert_in_range(a_late, 49, 51);
    test_fx_free(&f);
}

static void test_backup_engages_and_releases(void **st)
{
    struct test_fx f = setup("{name: a, address: 127.0.0.1:1}, {name: b, address: 127.0.0.1:2}, "
                        "{name: k, address: 127.0.0.1:3, backup: true}",
                        "health: {type: tcp},");
    struct ups_node *n = f.snap->pools[0].nodes;
    assert_true(n[0].checked && n[0].fall == 3);
    assert_string_not_equal(pick(&f, 0), "k");
    atomic_store(&n[0].live->health, UPS_DOWN);
    assert_string_equal(pick(&f, 0), "b");
    assert_string_equal(pick(&f, 0), "b");
    atomic_store(&n[1].live->admin, UPS_DRAINING); /* b takes no new sessions */
    assert_string_equal(pick(&f, 0), "k");         /* no primary: the backup */
    atomic_store(&n[1].live->admin, UPS_ENABLED);
    atomic_store(&n[1].live->health, UPS_DOWN);
    assert_string_equal(pick(&f, 0), "k");
    atomic_store(&n[0].live->health, UPS_UP); /* a primary rises: backup released */
    for (int i = 0; i < 5; i++)
        assert_string_equal(pick(&f, 0), "a");
    atomic_store(&n[0].live->admin, UPS_DISABLED);
    atomic_store(&n[2].live->health, UPS_DOWN);
    assert_string_equal(pick(&f, 0), "none"); /* nothing available at all */
    test_fx_free(&f);
}

static void test_nginx_stat(void **st)
{
    size_t len;
    const char *doc = slurp("nginx-stat.xml", &len);
    struct hc_stream s[16];
    int n = hc_parse_nginx_stat(doc, len, s, 16, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(s[0].app, "live");
    assert_string_equal(s[0].name, "cam1");
    assert_true(s[0].publishing);
    assert_int_equal(s[0].clients, 2); /* publisher + one player */
    assert_string_equal(s[1].name, "cam2");
    assert_int_equal(s[1].clients, 1);
    assert_int_equal(hc_parse_nginx_stat("<html/>", 7, s, 16, NULL), -1);
    assert_int_equal(hc_parse_nginx_stat("<rtmp><server>", 14, s, 16, NULL), -1);
    assert_int_equal(hc_parse_nginx_stat(doc, len, s, 1, NULL), 1); /* capped, not overrun */
}

static void test_srs_streams(void **st)
{
    size_t len;
    const char *doc = slurp("srs-streams.json", &len);
    struct hc_stream s[16];
    int n = hc_parse_srs_streams(doc, len, s, 16, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(s[0].app, "live");
    assert_string_equal(s[0].name, "livestream");
    assert_true(s[0].publishing);
    assert_int_equal(s[0].clients, 3);
    assert_int_equal(s[0].bw_in, 1210000);
    assert_false(s[1].publishing); /* publish.active false: not live there */
    assert_int_equal(hc_parse_srs_streams("{\"code\":1000}", 13, s, 16, NULL), -1);
    assert_int_equal(hc_parse_srs_streams("not json", 8, s, 16, NULL), -1);
}

static void test_index(void **st)
{
    struct hc_index *x = hc_index_new();
    char node[64];
    struct hc_stream b[2] = {{.app = "live", .name = "cam1", .publishing = true},
                             {.app = "live", .name = "idle", .publishing = false}};
    hc_index_set_node(x, "p", "b", b, 2);
    assert_true(hc_index_lookup(x, "p", "live", "cam1", node, sizeof(node)));
    assert_string_equal(node, "b");
    assert_false(hc_index_lookup(x, "p", "live", "idle", node, sizeof(node)));
    assert_false(hc_index_lookup(x, "other", "live", "cam1", node, sizeof(node)));
    /* A publish we routed wins over stats, and counts references. */
    hc_index_add_publish(x, "p", "a", "live", "cam1");
    hc_index_add_publish(x, "p", "a", "live", "cam1");
    assert_true(hc_index_lookup(x, "p", "live", "cam1", node, sizeof(node)));
    assert_string_equal(node, "a");
    hc_index_remove_publish(x, "p", "a", "live", "cam1");
    assert_true(hc_index_lookup(x, "p", "live", "cam1", node, sizeof(node)));
    assert_string_equal(node, "a");
    hc_index_remove_publish(x, "p", "a", "live", "cam1");
    assert_true(hc_index_lookup(x, "p", "live", "cam1", node, sizeof(node)));
    assert_string_equal(node, "b"); /* back to what stats say */
    hc_index_set_node(x, "p", "b", NULL, 0); /* b's stats now empty */
    assert_false(hc_index_lookup(x, "p", "live", "cam1", node, sizeof(node)));
    assert_int_equal(hc_index_count(x), 0);
    hc_index_free(x);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR-WITH-STATS-DOCUMENTS\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rise_fall),       cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_slow_start_ramp), cmocka_unit_test(test_backup_engages_and_releases),
        cmocka_unit_test(test_nginx_stat),      cmocka_unit_test(test_srs_streams),
        cmocka_unit_test(test_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
