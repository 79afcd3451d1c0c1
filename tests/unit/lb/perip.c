/* limits per client address: keys, counting, limits, concurrency. */
#include <arpa/inet.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lb/perip.h"

static struct lb_perip_key key4(const char *a)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct lb_perip_key k;
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    assert_true(lb_perip_key((struct sockaddr *)&in, &k));
    return k;
}

static struct lb_perip_key key6(const char *a)
{
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    struct lb_perip_key k;
    assert_int_equal(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
    assert_true(lb_perip_key((struct sockaddr *)&in6, &k));
    return k;
}

static void test_keys(void **st)
{
    (void)st;
    char text[64];
    struct lb_perip_key a = key6("2001:db8:1:2::1"), b = key6("2001:db8:1:2:ffff::9");
    struct lb_perip_key c = key6("2001:db8:1:3::1");
    assert_memory_equal(a.b, b.b, 16); /* one /64 */
    assert_memory_not_equal(a.b, c.b, 16);
    lb_perip_key_text(&a, text, sizeof(text));
    assert_string_equal(text, "2001:db8:1:2::/64");

    struct lb_perip_key v4 = key4("192.0.2.7"), mapped = key6("::ffff:192.0.2.7");
    assert_memory_equal(v4.b, mapped.b, 16); /* a v4-mapped client is the IPv4 one */
    assert_memory_not_equal(v4.b, key4("192.0.2.8").b, 16);
    lb_perip_key_text(&mapped, text, sizeof(text));
    assert_string_equal(text, "192.0.2.7");

    struct sockaddr un = {.sa_family = AF_UNIX};
    struct lb_perip_key k;
    assert_false(lb_perip_key(&un, &k));
}

static void test_limits(void **st)
{
    (void)st;
    struct lb_perip *t = lb_perip_new();
    struct lb_perip_key a = key4("10.0.0.1"), b = key4("10.0.0.2");
    unsigned s, h;

    /* max_handshakes 2: a third unrouted session is refused, a routed one
     * frees its slot, and another address is not affected. */
    assert_int_equal(lb_perip_enter(t, &a, 3, 2), LB_PERIP_OK);
    assert_int_equal(lb_perip_enter(t, &a, 3, 2), LB_PERIP_OK);
    assert_int_equal(lb_perip_enter(t, &a, 3, 2), LB_PERIP_HANDSHAKES);
    assert_int_equal(lb_perip_enter(t, &b, 3, 2), LB_PERIP_OK);
    lb_perip_counts(t, &a, &s, &h);
    assert_int_equal(s, 2);
    assert_int_equal(h, 2);
    lb_perip_routed(t, &a);
    assert_int_equal(lb_perip_enter(t, &a, 3, 2), LB_PERIP_OK);
    /* 3 sessions: max_sessions now, whatever the handshakes. */
    lb_perip_routed(t, &a);
    assert_int_equal(lb_perip_enter(t, &a, 3, 2), LB_PERIP_SESSIONS);
    assert_int_equal(lb_perip_enter(t, &a, 0, 0), LB_PERIP_OK); /* limits off: counted */
    lb_perip_counts(t, &a, &s, &h);
    assert_int_equal(s, 4);
    assert_int_equal(h, 2);
    assert_int_equal(lb_perip_addresses(t), 2);

    /* Leaving: the entry goes with its last session. */
    lb_perip_leave(t, &a, true);
    lb_perip_leave(t, &a, true);
    lb_perip_leave(t, &a, false);
    lb_perip_leave(t, &a, false);
    lb_perip_counts(t, &a, &s, &h);
    assert_int_equal(s, 0);
    assert_int_equal(h, 0);
    assert_int_equal(lb_perip_addresses(t), 1);
    lb_perip_leave(t, &b, false);
    assert_int_equal(lb_perip_addresses(t), 0);
    /* A leave for an address that has nothing (admitted while out of
     * memory) changes nothing. */
    lb_perip_leave(t, &b, false);
    assert_int_equal(lb_perip_addresses(t), 0);
    lb_perip_free(t);
}

/* Many addresses spread over the shards and chains, then all gone. */
static void test_many(void **st)
{
    (void)st;
    struct lb_perip *t = lb_perip_new();
    struct lb_perip_key k;
    for (unsigned i = 0; i < 50000; i++) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        lb_perip_key((struct sockaddr *)&in, &k);
        assert_int_equal(lb_perip_enter(t, &k, 1, 1), LB_PERIP_OK);
    }
    assert_int_equal(lb_perip_addresses(t), 50000);
    for (unsigned i = 0; i < 50000; i++) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        lb_perip_key((struct sockaddr *)&in, &k);
        assert_int_equal(lb_perip_enter(t, &k, 1, 1), LB_PERIP_SESSIONS);
        lb_perip_leave(t, &k, false);
    }
    assert_int_equal(lb_perip_addresses(t), 0);
    lb_perip_free(t);
}

/* Workers admit and release concurrently: nothing is lost or left over. */
struct worker_arg {
    struct lb_perip *t;
    int id;
    unsigned refused;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    struct lb_perip_key keys[8];
    for (int i = 0; i < 8; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.1.0.%d", i);
        keys[i] = key4(a);
    }
    for (int n = 0; n < 20000; n++) {
        struct lb_perip_key *k = &keys[(n + w->id) % 8];
        if (lb_perip_enter(w->t, k, 0, 3) != LB_PERIP_OK) {
            w->refused++;
            continue;
        }
        if (n % 2)
            lb_perip_routed(w->t, k);
        lb_perip_leave(w->t, k, n % 2);
    }
    return NULL;
}

static void test_threads(void **st)
{
    (void)st;
    struct lb_perip *t = lb_perip_new();
    pthread_t th[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){t, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(lb_perip_addresses(t), 0);
    for (int i = 0; i < 8; i++) {
        char a[32];
        unsigned s, h;
        snprintf(a, sizeof(a), "10.1.0.%d", i);
        struct lb_perip_key k = key4(a);
        lb_perip_counts(t, &k, &s, &h);
        assert_int_equal(s, 0);
        assert_int_equal(h, 0);
    }
    lb_perip_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
