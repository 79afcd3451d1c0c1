/* The log queue: lines come out in the order they went in, across the
 * ring's wrap; a line that does not fit is dropped and counted, and the
 * next line that fits carries the count. Then the whole writer: with
 * stderr a pipe nobody reads, logging never blocks, and once the pipe is
 * read again the lines come out in order with "N log lines dropped" exactly
 * where the gaps are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lb/log.h"
#include "lb/logq.h"

static void test_order_and_wrap(void **st)
{
    struct lb_logq q;
    char line[64], out[64];
    struct lb_logq_entry e;
    (void)st;
    assert_int_equal(lb_logq_init(&q, 200), 0);
    /* 300 lines through a 200-byte ring: it wraps many times, at every
     * possible offset (lengths vary). */
    for (int i = 0, next = 0; i < 300; i++) {
        int n = snprintf(line, sizeof(line), "line %d%.*s", i, i % 7, "xxxxxxx");
        assert_true(lb_logq_push(&q, i % 2, line, (size_t)n));
        if (i % 3 == 2) { /* keep 1-3 lines in flight */
            while (lb_logq_pop(&q, &e, out, sizeof(out))) {
                int k = snprintf(line, sizeof(line), "line %d%.*s", next, next % 7, "xxxxxxx");
                assert_int_equal(e.len, (size_t)k);
                assert_memory_equal(out, line, e.len);
                assert_int_equal(e.sink, next % 2);
                assert_int_equal(e.dropped_before, 0);
                next++;
            }
        }
    }
    assert_int_equal(q.dropped_total, 0);
    lb_logq_free(&q);
}

static void test_full_drops_and_counts(void **st)
{
    struct lb_logq q;
    char out[64];
    struct lb_logq_entry e;
    (void)st;
    assert_int_equal(lb_logq_init(&q, 100), 0);
    /* Each entry is 12 bytes of header + 20: three fit, the next five
     * do not. */
    const char *l20 = "abcdefghijklmnopqrst";
    for (int i = 0; i < 3; i++)
        assert_true(lb_logq_push(&q, 0, l20, 20));
    for (int i = 0; i < 5; i++)
        assert_false(lb_logq_push(&q, 0, l20, 20));
    assert_int_equal(q.dropped_total, 5);
    assert_true(lb_logq_pop(&q, &e, out, sizeof(out)));
    assert_int_equal(e.dropped_before, 0);
    /* Room again: the next line carries the five. */
    assert_true(lb_logq_push(&q, 1, "after", 5));
    assert_false(lb_logq_push(&q, 0, l20, 20));
    assert_true(lb_logq_pop(&q, &e, out, sizeof(out)));
    assert_true(lb_logq_pop(&q, &e, out, sizeof(out)));
    assert_int_equal(e.dropped_before, 0);
    assert_true(lb_logq_pop(&q, &e, out, sizeof(out)));
    assert_int_equal(e.sink, 1);
    assert_int_equal(e.dropped_before, 5);
    assert_memory_equal(out, "after", 5);
    assert_false(lb_logq_pop(&q, &e, out, sizeof(out)));
    /* The drop after it is pending until taken. */
    assert_int_equal(lb_logq_take_pending(&q), 1);
    assert_int_equal(lb_logq_take_pending(&q), 0);
    assert_int_equal(q.dropped_total, 6);
    /* A line longer than the whole ring is dropped, never cut. */
    char big[150];
    memset(big, 'b', sizeof(big));
    assert_false(lb_logq_push(&q, 0, big, sizeof(big)));
    assert_int_equal(q.dropped_total, 7);
    lb_logq_free(&q);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads what is in the pipe now into text (bounded). */
static void drain(int fd, char **text, size_t *len, size_t *cap)
{
    for (int i = 0; i < 100000; i++) {
        if (*cap - *len < 65536) {
            *cap = *cap * 2 + 65536;
            *text = realloc(*text, *cap);
            assert_non_null(*text);
        }
        ssize_t n = read(fd, *text + *len, *cap - *len - 1);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    (*text)[*len] = '\0';
}

static void test_stuck_sink_never_blocks(void **st)
{
    int p[2];
    (void)st;
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(p[1], 2) == 2);
    lb_log_configure(LB_LOG_INFO, LB_LOG_TEXT);
    lb_log_set_access_fd(-1);
    assert_int_equal(lb_log_start(), 0);
    alarm(30); /* a blocked logger fails the test instead of hanging it */

    /* ~600 KB of lines: more than the pipe and the queue hold together. */
    const int lines = 6000;
    double t0 = now_s();
    for (int i = 0; i < lines; i++)
        lb_log_msg(LB_LOG_INFO, "test_line", "seq %d %s", i,
                   "padding padding padding padding padding padding padding padding");
    double took = now_s() - t0;
    uint64_t dropped = lb_log_dropped_total();
    fprintf(stdout, "# %d lines logged in %.3f s with nobody reading, %llu dropped\n", lines,
            took, (unsigned long long)dropped);
    assert_true(took < 5.0);
    assert_true(dropped > 0);
    /* The reader comes back: the writer catches up and reports. */
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; i < 400 && (!text || !strstr(text, "log lines dropped")); i++) {
        drain(p[0], &text, &len, &cap);
        usleep(10000);
    }
    lb_log_msg(LB_LOG_INFO, "test_line", "seq %d last", lines);
    for (int i = 0; i < 100; i++) {
        drain(p[0], &text, &len, &cap);
        if (strstr(text, "last"))
            break;
        usleep(10000);
    }
    assert_true(lb_log_stop(2000));
    drain(p[0], &text, &len, &cap);
    dup2(saved, 2);
    close(saved);
    close(p[0]);
    close(p[1]);
    alarm(0);

    /* Every line whole and in order; each "N log lines dropped" equals the
     * gap it stands in. */
    long expect = 0, reported = 0;
    unsigned kept = 0;
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        const char *d = strstr(ln, " log_dropped dropped=");
        if (d) {
            long n = strtol(d + strlen(" log_dropped dropped="), NULL, 10);
            assert_true(n > 0);
            assert_non_null(strstr(ln, "log lines dropped"));
            expect += n;
            reported += n;
            continue;
        }
        const char *s = strstr(ln, "msg=\"seq ");
        assert_non_null(s);
        long seq = strtol(s + strlen("msg=\"seq "), NULL, 10);
        assert_int_equal(seq, expect);
        expect = seq + 1;
        kept++;
    }
    assert_int_equal(expect, lines + 1);
    assert_int_equal((uint64_t)reported, dropped);
    assert_int_equal(kept + reported, lines + 1);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_wrap),
        cmocka_unit_test(test_full_drops_and_counts),
        cmocka_unit_test(test_stuck_sink_never_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
