/* The batching arithmetic of lb/session/coalesce.c on a fake clock: the
 * first media goes at once, every byte that arrives is flushed within the
 * bound, flushes of one worker share a grid, a quiet stream drops the mark
 * and its next bytes raise it again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lb/session/internal.h"

static void test_off_is_never_delayed(void **st)
{
    (void)st;
    struct lb_coalesce c;
    lb_coalesce_start(&c, 0);
    assert_int_equal(lb_coalesce_after(&c, 1000, 100000, false), LB_COAL_KEEP);
    assert_false(c.high);
    assert_int_equal(c.due, 0);
}

static void test_first_media_not_delayed(void **st)
{
    (void)st;
    struct lb_coalesce c;
    lb_coalesce_start(&c, 20);
    /* Below the warm-up: no mark, no flush pending (each write goes at once). */
    assert_int_equal(lb_coalesce_after(&c, 100, LB_COALESCE_WARM - 1, false), LB_COAL_KEEP);
    assert_false(c.high);
    assert_int_equal(c.due, 0);
    /* The byte that ends the warm-up: batching starts. */
    assert_int_equal(lb_coalesce_after(&c, 101, 1, false), LB_COAL_HIGH);
    assert_true(c.high);
    assert_true(c.due > 101 && c.due <= 101 + 20);
    assert_int_equal(lb_coalesce_after(&c, 102, 1500, false), LB_COAL_KEEP);
}

static void test_due_bound_and_grid(void **st)
{
    (void)st;
    uint32_t bounds[] = {1, 2, 3, 10, 20, 999, 1000};
    for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++)
        for (uint64_t now = 0; now < 3000; now += 7) {
            uint64_t d = lb_coalesce_due(now, bounds[b]);
            assert_true(d > now);
            assert_true(d <= now + bounds[b]);
            uint64_t g = bounds[b] / 4 ? bounds[b] / 4 : 1;
            assert_int_equal(d % g, 0);
        }
    /* Sessions drained at different moments of one grid step flush together. */
    assert_int_equal(lb_coalesce_due(1001, 20), lb_coalesce_due(1004, 20));
}

/* A stream of messages on a fake clock: no byte waits longer than the bound. */
static void test_steady_stream_bounded_delay(void **st)
{
    (void)st;
    struct lb_coalesce c;
    lb_coalesce_start(&c, 20);
    c.warm = 0;
    uint64_t now = 5000, waiting_since = 0, pending = 0, flushes = 0, max_wait = 0;
    assert_int_equal(lb_coalesce_after(&c, now, 1000, false), LB_COAL_HIGH);
    /* One message of 1600 bytes every 14 ms (nginx-rtmp at ~70 writes/s),
     * below the mark: only flushes move them. */
    for (uint64_t t = now + 1; t < now + 2000; t++) {
        if (t % 14 == 0) {
            if (!pending)
                waiting_since = t;
            pending += 1600;
        }
        if (c.due && t >= c.due) {
            if (pending && t - waiting_since > max_wait)
                max_wait = t - waiting_since;
            assert_int_equal(lb_coalesce_after(&c, t, pending, true), LB_COAL_KEEP);
            pending = 0;
            flushes++;
        }
        assert_true(c.due != 0); /* never left without a flush while data flows */
    }
    assert_true(max_wait <= 20);
    /* ~2000 ms / 15..20 ms per flush, against ~143 messages. */
    assert_true(flushes <= 2000 / 15 + 1);
    assert_true(flushes >= 2000 / 20 - 1);
}

static void test_quiet_stream_drops_the_mark(void **st)
{
    (void)st;
    struct lb_coalesce c;
    lb_coalesce_start(&c, 10);
    c.warm = 0;
    assert_int_equal(lb_coalesce_after(&c, 100, 500, false), LB_COAL_HIGH);
    uint64_t due = c.due;
    /* A flush finds nothing: one more look within the bound; a second
     * empty one: the mark goes down, no more flushes. */
    assert_int_equal(lb_coalesce_after(&c, due, 0, true), LB_COAL_KEEP);
    assert_true(c.high);
    assert_true(c.due > due && c.due <= due + 10);
    due = c.due;
    assert_int_equal(lb_coalesce_after(&c, due, 0, true), LB_COAL_LOW);
    assert_false(c.high);
    assert_int_equal(c.due, 0);
    /* Its next byte woke us at once; the mark goes up again. */
    assert_int_equal(lb_coalesce_after(&c, due + 500, 200, false), LB_COAL_HIGH);
    assert_true(c.high);
    assert_true(c.due > due + 500);
    /* A write event that found nothing new keeps the pending flush. */
    uint64_t d2 = c.due;
    assert_int_equal(lb_coalesce_after(&c, due + 501, 0, false), LB_COAL_KEEP);
    assert_int_equal(c.due, d2);
    c.due = 0;
    assert_int_equal(lb_coalesce_after(&c, due + 502, 0, false), LB_COAL_KEEP);
    assert_true(c.due > due + 502 && c.due <= due + 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_is_never_delayed),
        cmocka_unit_test(test_first_media_not_delayed),
        cmocka_unit_test(test_due_bound_and_grid),
        cmocka_unit_test(test_steady_stream_bounded_delay),
        cmocka_unit_test(test_quiet_stream_drops_the_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
