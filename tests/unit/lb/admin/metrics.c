/* The Prometheus text writer: exact text for counters, gauges, escaping and
 * histograms; misuse is reported, not written. With --dump it prints a
 * sample exposition for `promtool check metrics` (a ctest of its own). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lb/admin/metrics.h"

static const double LAT[] = {0.005, 0.01, 0.1, 1};

/* What rtmplb will expose, in small: every kind of line. */
static void sample(struct lb_metrics *m)
{
    struct lb_label node[] = {{"pool", "origins"}, {"node", "origin-a"}};
    struct lb_label node_b[] = {{"pool", "origins"}, {"node", "b \"quoted\" \\ and\nnewline"}};
    lb_metrics_family(m, "rtmplb_node_sessions", LB_METRIC_GAUGE, "Live sessions on a node.");
    lb_metrics_u64(m, node, 2, 3);
    lb_metrics_u64(m, node_b, 2, 0);
    lb_metrics_family(m, "rtmplb_node_sessions_total", LB_METRIC_COUNTER,
                      "Sessions that reached a node.\nSecond line \\ backslash.");
    lb_metrics_u64(m, node, 2, 18446744073709551615ull);
    lb_metrics_family(m, "rtmplb_reloads_total", LB_METRIC_COUNTER, "Reloads by result.");
    lb_metrics_u64(m, (struct lb_label[]){{"result", "ok"}}, 1, 2);
    lb_metrics_family(m, "rtmplb_build_info", LB_METRIC_GAUGE, "Version.");
    lb_metrics_double(m, (struct lb_label[]){{"version", "0.1.0"}}, 1, 1);
    lb_metrics_family(m, "rtmplb_up_ratio", LB_METRIC_GAUGE, "A fraction.");
    lb_metrics_double(m, NULL, 0, 0.1);
    lb_metrics_family(m, "rtmplb_probe_seconds", LB_METRIC_HISTOGRAM, "Probe latency.");
    uint64_t counts[] = {1, 2, 0, 3, 4};
    lb_metrics_histogram(m, node, 2, LAT, 4, counts, 12.5);
    lb_metrics_histogram(m, NULL, 0, LAT, 4, (uint64_t[]){0, 0, 0, 0, 0}, 0);
}

static const char WANT[] =
    "# HELP rtmplb_node_sessions Live sessions on a node.\n"
    "# TYPE rtmplb_node_sessions gauge\n"
    "rtmplb_node_sessions{pool=\"origins\",node=\"origin-a\"} 3\n"
    "rtmplb_node_sessions{pool=\"origins\",node=\"b \\\"quoted\\\" \\\\ and\\nnewline\"} 0\n"
    "# HELP rtmplb_node_sessions_total Sessions that reached a node.\\nSecond line \\\\ "
    "backslash.\n"
    "# TYPE rtmplb_node_sessions_total counter\n"
    "rtmplb_node_sessions_total{pool=\"origins\",node=\"origin-a\"} 18446744073709551615\n"
    "# HELP rtmplb_reloads_total Reloads by result.\n"
    "# TYPE rtmplb_reloads_total counter\n"
    "rtmplb_reloads_total{result=\"ok\"} 2\n"
    "# HELP rtmplb_build_info Version.\n"
    "# TYPE rtmplb_build_info gauge\n"
    "rtmplb_build_info{version=\"0.1.0\"} 1\n"
    "# HELP rtmplb_up_ratio A fraction.\n"
    "# TYPE rtmplb_up_ratio gauge\n"
    "rtmplb_up_ratio 0.1\n"
    "# HELP rtmplb_probe_seconds Probe latency.\n"
    "# TYPE rtmplb_probe_seconds histogram\n"
    "rtmplb_probe_seconds_bucket{pool=\"origins\",node=\"origin-a\",le=\"0.005\"} 1\n"
    "rtmplb_probe_seconds_bucket{pool=\"origins\",node=\"origin-a\",le=\"0.01\"} 3\n"
    "rtmplb_probe_seconds_bucket{pool=\"origins\",node=\"origin-a\",le=\"0.1\"} 3\n"
    "rtmplb_probe_seconds_bucket{pool=\"origins\",node=\"origin-a\",le=\"1\"} 6\n"
    "rtmplb_probe_seconds_bucket{pool=\"origins\",node=\"origin-a\",le=\"+Inf\"} 10\n"
    "rtmplb_probe_seconds_sum{pool=\"origins\",node=\"origin-a\"} 12.5\n"
    "rtmplb_probe_seconds_count{pool=\"origins\",node=\"origin-a\"} 10\n"
    "rtmplb_probe_seconds_bucket{le=\"0.005\"} 0\n"
    "rtmplb_probe_seconds_bucket{le=\"0.01\"} 0\n"
    "rtmplb_probe_seconds_bucket{le=\"0.1\"} 0\n"
    "rtmplb_probe_seconds_bucket{le=\"1\"} 0\n"
    "rtmplb_probe_seconds_bucket{le=\"+Inf\"} 0\n"
    "rtmplb_probe_seconds_sum 0\n"
    "rtmplb_probe_seconds_count 0\n";

static void test_exact_text(void **st)
{
    struct lb_metrics m;
    lb_metrics_init(&m);
    sample(&m);
    assert_false(m.failed);
    assert_string_equal(m.buf, WANT);
    assert_int_equal(m.len, strlen(WANT));
    lb_metrics_free(&m);
}

static void test_special_values_and_redeclare(void **st)
{
    struct lb_metrics m;
    lb_metrics_init(&m);
    lb_metrics_family(&m, "g", LB_METRIC_GAUGE, "h");
    lb_metrics_double(&m, NULL, 0, INFINITY);
    lb_metrics_family(&m, "g", LB_METRIC_GAUGE, "h"); /* same family again: nothing new */
    lb_metrics_double(&m, NULL, 0, -INFINITY);
    lb_metrics_double(&m, NULL, 0, NAN);
    lb_metrics_double(&m, NULL, 0, 1.0 / 3);
    lb_metrics_double(&m, NULL, 0, 1e21);
    assert_false(m.failed);
    assert_string_equal(m.buf, "# HELP g h\n# TYPE g gauge\ng +Inf\ng -Inf\ng NaN\n"
                               "g 0.3333333333333333\ng 1e+21\n");
    lb_metrics_free(&m);
}

static void expect_misuse(void (*f)(struct lb_metrics *), const char *why)
{
    struct lb_metrics m;
    lb_metrics_init(&m);
    f(&m);
    assert_true(m.failed);
    assert_string_equal(m.why, why);
    lb_metrics_free(&m);
}

static void split_family(struct lb_metrics *m)
{
    lb_metrics_family(m, "a", LB_METRIC_GAUGE, "x");
    lb_metrics_family(m, "b", LB_METRIC_GAUGE, "x");
    lb_metrics_family(m, "a", LB_METRIC_GAUGE, "x");
}
static void bad_name(struct lb_metrics *m) { lb_metrics_family(m, "9a-b", LB_METRIC_GAUGE, "x"); }
static void bad_label(struct lb_metrics *m)
{
    lb_metrics_family(m, "a", LB_METRIC_GAUGE, "x");
    lb_metrics_u64(m, (struct lb_label[]){{"no-dash", "v"}}, 1, 1);
}
static void le_label(struct lb_metrics *m)
{
    lb_metrics_family(m, "a", LB_METRIC_HISTOGRAM, "x");
    lb_metrics_histogram(m, (struct lb_label[]){{"le", "v"}}, 1, LAT, 1, (uint64_t[]){1, 1}, 1);
}
static void sample_in_histogram(struct lb_metrics *m)
{
    lb_metrics_family(m, "a", LB_METRIC_HISTOGRAM, "x");
    lb_metrics_u64(m, NULL, 0, 1);
}
static void unsorted_bounds(struct lb_metrics *m)
{
    lb_metrics_family(m, "a", LB_METRIC_HISTOGRAM, "x");
    lb_metrics_histogram(m, NULL, 0, (double[]){1, 0.5}, 2, (uint64_t[]){1, 1, 1}, 1);
}

static void test_misuse(void **st)
{
    expect_misuse(split_family, "a family's samples must be written together");
    expect_misuse(bad_name, "invalid metric name");
    expect_misuse(bad_label, "invalid label name");
    expect_misuse(le_label, "invalid label name");
    expect_misuse(sample_in_histogram, "a sample outside a counter or gauge family");
    expect_misuse(unsorted_bounds, "histogram bounds must ascend");
}

static void test_atomic_histogram(void **st)
{
    struct lb_histo h;
    lb_histo_init(&h, LAT, 4);
    double obs[] = {0.001, 0.005, 0.0051, 0.5, 2, 30};
    for (size_t i = 0; i < 6; i++)
        lb_histo_observe(&h, obs[i]);
    struct lb_metrics m;
    lb_metrics_init(&m);
    lb_metrics_family(&m, "lat_seconds", LB_METRIC_HISTOGRAM, "x");
    lb_metrics_histo(&m, NULL, 0, &h);
    assert_false(m.failed);
    assert_string_equal(m.buf, "# HELP lat_seconds x\n# TYPE lat_seconds histogram\n"
                               "lat_seconds_bucket{le=\"0.005\"} 2\n"
                               "lat_seconds_bucket{le=\"0.01\"} 3\n"
                               "lat_seconds_bucket{le=\"0.1\"} 3\n"
                               "lat_seconds_bucket{le=\"1\"} 4\n"
                               "lat_seconds_bucket{le=\"+Inf\"} 6\n"
                               "lat_seconds_sum 32.5111\n"
                               "lat_seconds_count 6\n");
    lb_metrics_free(&m);
}

static void test_grows(void **st)
{
    struct lb_metrics m;
    lb_metrics_init(&m);
    lb_metrics_family(&m, "big", LB_METRIC_GAUGE, "x");
    char v[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(v, sizeof(v), "n%d", i);
        lb_metrics_u64(&m, (struct lb_label[]){{"node", v}}, 1, (uint64_t)i);
    }
    assert_false(m.failed);
    assert_int_equal(m.len, strlen(m.buf));
    assert_non_null(strstr(m.buf, "big{node=\"n19999\"} 19999\n"));
    lb_metrics_free(&m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dump") == 0) {
        struct lb_metrics m;
        lb_metrics_init(&m);
        sample(&m);
        fputs(m.failed ? "" : m.buf, stdout);
        int bad = m.failed;
        lb_metrics_free(&m);
        return bad;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text),
        cmocka_unit_test(test_special_values_and_redeclare),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_atomic_histogram),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
