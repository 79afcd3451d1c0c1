/* The registry of live publishes (publisher takeover): claims, conflicts,
 * the successor hand-over, the kick, the decision, threads. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf-t.h"
#include "lb/pubreg.h"

static struct sockaddr_storage addr4(const char *a, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, a, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage addr6(const char *a, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, a, &in6->sin6_addr), 1);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* A fake kick: records what it was asked. */
struct kicks {
    unsigned n;
    unsigned worker;
    uint64_t id;
    struct lb_pubreg *release_now; /* release the kicked claim at once */
};

static void fake_kick(void *arg, unsigned worker, uint64_t id)
{
    struct kicks *k = arg;
    k->n++;
    k->worker = worker;
    k->id = id;
    if (k->release_now)
        lb_pubreg_release(k->release_now, id);
}

static void test_claim_release(void **unused)
{
    (void)unused;
    struct lb_pubreg *g = lb_pubreg_new();
    struct sockaddr_storage a = addr4("192.0.2.1", 5000);
    struct lb_pub_who who = {2, SA(a), "192.0.2.1:5000", 100};
    struct lb_pub_owner old;
    uint64_t id = 0, id2 = 0, id3 = 0;

    assert_int_equal(lb_pubreg_claim(g, "pub", "live", "s1", &who, &id, NULL), LB_PUB_CLAIMED);
    assert_true(id != 0);
    assert_int_equal(lb_pubreg_status(g, id), LB_PUB_OWNER);
    assert_int_equal(lb_pubreg_count(g), 1);
    /* Another stream, another route: no conflict. */
    assert_int_equal(lb_pubreg_claim(g, "pub", "live", "s2", &who, &id2, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_claim(g, "other", "live", "s1", &who, &id3, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_count(g), 3);
    /* The same key: held, and the holder is described. */
    lb_pubreg_set_node(g, id, "origins", "origin-a");
    uint64_t none = 0;
    struct sockaddr_storage b = addr4("198.51.100.9", 6000);
    struct lb_pub_who who2 = {0, SA(b), "198.51.100.9:6000", 200};
    assert_int_equal(lb_pubreg_claim(g, "pub", "live", "s1", &who2, &none, &old), LB_PUB_HELD);
    assert_int_equal(none, 0);
    assert_int_equal(old.id, id);
    assert_int_equal(old.worker, 2);
    assert_string_equal(old.client, "192.0.2.1:5000");
    assert_string_equal(old.pool, "origins");
    assert_string_equal(old.node, "origin-a");
    assert_int_equal(old.since_ms, 100);
    assert_true(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(old.addr), SA(a)));
    /* App and stream stay apart, whatever '/' they hold. */
    assert_int_equal(lb_pubreg_claim(g, "pub", "live/s1", "", &who, &none, NULL), LB_PUB_CLAIMED);
    lb_pubreg_release(g, none);
    uint64_t x1 = 0, x2 = 0;
    assert_int_equal(lb_pubreg_claim(g, "pub", "live", "a/b", &who, &x1, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_claim(g, "pub", "live/a", "b", &who, &x2, NULL), LB_PUB_CLAIMED);
    lb_pubreg_release(g, x1);
    lb_pubreg_release(g, x2);

    lb_pubreg_release(g, id);
    assert_int_equal(lb_pubreg_status(g, id), LB_PUB_GONE);
    assert_int_equal(lb_pubreg_count(g), 2);
    lb_pubreg_release(g, id); /* twice: ignored */
    lb_pubreg_release(g, 987654); /* unknown: ignored */
    assert_int_equal(lb_pubreg_claim(g, "pub", "live", "s1", &who2, &id, NULL), LB_PUB_CLAIMED);
    lb_pubreg_release(g, id);
    lb_pubreg_release(g, id2);
    lb_pubreg_release(g, id3);
    assert_int_equal(lb_pubreg_count(g), 0);
    lb_pubreg_free(g);
}

static void test_takeover_hands_the_key_over(void **unused)
{
    (void)unused;
    struct lb_pubreg *g = lb_pubreg_new();
    struct kicks k = {0};
    lb_pubreg_set_kick(g, fake_kick, &k);
    struct sockaddr_storage a = addr4("192.0.2.1", 5000), a2 = addr4("192.0.2.1", 5001);
    struct lb_pub_who old_who = {3, SA(a), "old", 0}, new_who = {1, SA(a2), "new", 50};
    struct lb_pub_owner old;
    uint64_t id = 0, nid = 0, third = 0;

    assert_int_equal(lb_pubreg_claim(g, "r", "live", "s", &old_who, &id, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_claim(g, "r", "live", "s", &new_who, &nid, &old), LB_PUB_HELD);
    assert_int_equal(lb_pubreg_take(g, "r", "live", "s", old.id, &new_who, &nid, &old),
                     LB_PUB_CLAIMED);
    /* The holder's own worker was asked to end exactly the holder. */
    assert_int_equal(k.n, 1);
    assert_int_equal(k.worker, 3);
    assert_int_equal(k.id, id);
    assert_int_equal(lb_pubreg_status(g, nid), LB_PUB_WAITING);
    assert_int_equal(lb_pubreg_status(g, id), LB_PUB_OWNER);
    /* A third publisher meanwhile: a takeover is pending, nothing changes. */
    assert_int_equal(lb_pubreg_claim(g, "r", "live", "s", &new_who, &third, &old),
                     LB_PUB_PENDING);
    assert_int_equal(old.id, id);
    assert_int_equal(lb_pubreg_take(g, "r", "live", "s", id, &new_who, &third, NULL),
                     LB_PUB_PENDING);
    assert_int_equal(k.n, 1);
    /* The holder ends: the successor holds the key, nobody else got in. */
    lb_pubreg_release(g, id);
    assert_int_equal(lb_pubreg_status(g, id), LB_PUB_GONE);
    assert_int_equal(lb_pubreg_status(g, nid), LB_PUB_OWNER);
    assert_int_equal(lb_pubreg_count(g), 1);
    assert_int_equal(lb_pubreg_claim(g, "r", "live", "s", &old_who, &third, &old), LB_PUB_HELD);
    assert_int_equal(old.id, nid);
    assert_string_equal(old.client, "new");
    /* A take naming a holder that is no longer there: refused. */
    assert_int_equal(lb_pubreg_take(g, "r", "live", "s", id, &old_who, &third, &old), LB_PUB_HELD);
    assert_int_equal(old.id, nid);
    lb_pubreg_release(g, nid);
    assert_int_equal(lb_pubreg_count(g), 0);
    lb_pubreg_free(g);
}

static void test_successor_gives_up(void **unused)
{
    (void)unused;
    struct lb_pubreg *g = lb_pubreg_new();
    struct kicks k = {0};
    lb_pubreg_set_kick(g, fake_kick, &k);
    struct lb_pub_who w = {0, NULL, "c", 0};
    uint64_t id = 0, nid = 0, again = 0;

    assert_int_equal(lb_pubreg_claim(g, "r", "a", "s", &w, &id, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_take(g, "r", "a", "s", id, &w, &nid, NULL), LB_PUB_CLAIMED);
    /* The waiting one times out (or its client left): the holder stays,
     * and a later takeover may be queued again. */
    lb_pubreg_release(g, nid);
    assert_int_equal(lb_pubreg_status(g, nid), LB_PUB_GONE);
    assert_int_equal(lb_pubreg_status(g, id), LB_PUB_OWNER);
    assert_int_equal(lb_pubreg_take(g, "r", "a", "s", id, &w, &again, NULL), LB_PUB_CLAIMED);
    assert_int_equal(k.n, 2);
    lb_pubreg_release(g, id);
    assert_int_equal(lb_pubreg_status(g, again), LB_PUB_OWNER);
    lb_pubreg_release(g, again);
    assert_int_equal(lb_pubreg_count(g), 0);
    lb_pubreg_free(g);
}

static void test_kick_that_releases_at_once(void **unused)
{
    (void)unused;
    /* The kick may run the holder's release before take returns (a holder
     * on the caller's own thread): the registry lock is not held then. */
    struct lb_pubreg *g = lb_pubreg_new();
    struct kicks k = {0};
    k.release_now = g;
    lb_pubreg_set_kick(g, fake_kick, &k);
    struct lb_pub_who w = {0, NULL, "c", 0};
    uint64_t id = 0, nid = 0;
    assert_int_equal(lb_pubreg_claim(g, "r", "a", "s", &w, &id, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_take(g, "r", "a", "s", id, &w, &nid, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_status(g, nid), LB_PUB_OWNER);
    /* A take after the holder went is an ordinary claim. */
    lb_pubreg_release(g, nid);
    uint64_t late = 0;
    assert_int_equal(lb_pubreg_take(g, "r", "a", "s", nid, &w, &late, NULL), LB_PUB_CLAIMED);
    assert_int_equal(lb_pubreg_status(g, late), LB_PUB_OWNER);
    assert_int_equal(k.n, 1);
    lb_pubreg_release(g, late);
    lb_pubreg_free(g);
}

static void test_decision(void **unused)
{
    (void)unused;
    struct sockaddr_storage a1 = addr4("192.0.2.1", 5000), a1b = addr4("192.0.2.1", 6000),
                            a2 = addr4("192.0.2.2", 5000), v6 = addr6("2001:db8::1", 5000),
                            v6b = addr6("2001:db8::1", 7000), v6c = addr6("2001:db8::2", 5000),
                            mapped = addr6("::ffff:192.0.2.1", 5000);
    /* auto: the same address (another port: a reconnect) takes over. */
    assert_true(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(a1), SA(a1b)));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(a1), SA(a2)));
    assert_true(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(v6), SA(v6b)));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(v6), SA(v6c)));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(a1), SA(mapped)));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, NULL, SA(a1)));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(a1), NULL));
    struct sockaddr_storage none;
    memset(&none, 0, sizeof(none)); /* a holder without an IP address */
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_AUTO, SA(none), SA(none)));
    /* takeover and reject whatever the addresses. */
    assert_true(lb_pubreg_decide_takeover(CONF_PUBCONF_TAKEOVER, SA(a1), SA(a2)));
    assert_true(lb_pubreg_decide_takeover(CONF_PUBCONF_TAKEOVER, NULL, NULL));
    assert_false(lb_pubreg_decide_takeover(CONF_PUBCONF_REJECT, SA(a1), SA(a1b)));
}

static void test_outcomes(void **unused)
{
    (void)unused;
    struct lb_pubreg *g = lb_pubreg_new();
    lb_pubreg_count_outcome(g, LB_PUB_OUT_TAKEOVER);
    lb_pubreg_count_outcome(g, LB_PUB_OUT_REJECT);
    lb_pubreg_count_outcome(g, LB_PUB_OUT_REJECT);
    lb_pubreg_count_outcome(g, LB_PUB_OUT__COUNT); /* out of range: ignored */
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_TAKEOVER), 1);
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_REJECT), 2);
    assert_int_equal(lb_pubreg_outcomes(g, LB_PUB_OUT_TIMEOUT), 0);
    assert_string_equal(lb_pub_outcome_name(LB_PUB_OUT_TAKEOVER), "takeover");
    assert_string_equal(lb_pub_outcome_name(LB_PUB_OUT_REJECT), "reject");
    assert_string_equal(lb_pub_outcome_name(LB_PUB_OUT_TIMEOUT), "timeout");
    lb_pubreg_free(g);
}

/* Threads racing for the same keys: each key has exactly one holder at
 * any time; every claim is released; the registry ends empty. */
#define THREADS 4
#define ROUNDS 20000
#define KEYS 8

struct racer {
    struct lb_pubreg *g;
    unsigned idx;
    _Atomic int *holders; /* per key */
    unsigned won, lost, bad;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct lb_pub_who w = {r->idx, NULL, "t", 0};
    for (unsigned i = 0; i < ROUNDS; i++) {
        unsigned k = (i * 7 + r->idx) % KEYS;
        char stream[16];
        snprintf(stream, sizeof(stream), "s%u", k);
        uint64_t id = 0;
        enum lb_pub_claim c = lb_pubreg_claim(r->g, "r", "live", stream, &w, &id, NULL);
        if (c == LB_PUB_CLAIMED) {
            if (atomic_fetch_add(&r->holders[k], 1) != 0)
                r->bad++;
            atomic_fetch_sub(&r->holders[k], 1);
            lb_pubreg_release(r->g, id);
            r->won++;
        } else if (c == LB_PUB_HELD) {
            r->lost++;
        } else {
            r->bad++;
        }
    }
    return NULL;
}

static void test_threads(void **unused)
{
    (void)unused;
    struct lb_pubreg *g = lb_pubreg_new();
    _Atomic int holders[KEYS] = {0};
    struct racer rs[THREADS];
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        rs[i] = (struct racer){.g = g, .idx = i, .holders = holders};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    unsigned won = 0, total = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].bad, 0);
        won += rs[i].won;
        total += rs[i].won + rs[i].lost;
    }
    assert_int_equal(total, THREADS * ROUNDS);
    assert_true(won > 0);
    assert_int_equal(lb_pubreg_count(g), 0);
    lb_pubreg_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_release),
        cmocka_unit_test(test_takeover_hands_the_key_over),
        cmocka_unit_test(test_successor_gives_up),
        cmocka_unit_test(test_kick_that_releases_at_once),
        cmocka_unit_test(test_decision),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
