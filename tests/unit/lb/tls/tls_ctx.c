/* lb/tls/tls_ctx.c, the pure parts: certificate name matching and SNI
 * picking (the first certificate is the default), and the expiry verdict
 * `rtmplb -t` acts on (expired fails, within 14 days warns). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lb/tls/tls.h"

static void test_name_match(void **st)
{
    assert_true(lb_tls_name_match("live.example.com", "live.example.com"));
    assert_true(lb_tls_name_match("live.example.com", "LIVE.Example.COM"));
    assert_false(lb_tls_name_match("live.example.com", "live.example.com.evil"));
    assert_false(lb_tls_name_match("live.example.com", ""));
    assert_false(lb_tls_name_match("live.example.com", NULL));
    /* a wildcard stands for exactly one left-most label */
    assert_true(lb_tls_name_match("*.example.com", "a.example.com"));
    assert_false(lb_tls_name_match("*.example.com", "a.b.example.com"));
    assert_false(lb_tls_name_match("*.example.com", "example.com"));
    assert_false(lb_tls_name_match("*.example.com", ".example.com"));
    assert_false(lb_tls_name_match("*.example.com", "aexample.com"));
}

static void test_pick_cert(void **st)
{
    char *a[] = {"a.test"}, *b[] = {"b.test", "*.b.test"}, *c[] = {"c.test", "b.test"};
    struct lb_tls_cert certs[] = {
        {.names = a, .n_names = 1}, {.names = b, .n_names = 2}, {.names = c, .n_names = 2}};
    struct lb_tls_server srv = {.certs = certs, .n_certs = 3};
    assert_int_equal(lb_tls_pick_cert(&srv, NULL), 0);           /* no SNI: the default */
    assert_int_equal(lb_tls_pick_cert(&srv, "unknown.test"), 0); /* no match: the default */
    assert_int_equal(lb_tls_pick_cert(&srv, "a.test"), 0);
    assert_int_equal(lb_tls_pick_cert(&srv, "b.test"), 1);      /* the first that matches */
    assert_int_equal(lb_tls_pick_cert(&srv, "x.b.test"), 1);
    assert_int_equal(lb_tls_pick_cert(&srv, "C.TEST"), 2);
    struct lb_tls_server none = {.certs = NULL, .n_certs = 0};
    assert_int_equal(lb_tls_pick_cert(&none, "a.test"), 0);
}

static void test_expiry(void **st)
{
    const int64_t now = 1800000000, day = 86400;
    assert_int_equal(lb_tls_expiry_check(now - 1, now), LB_TLS_EXPIRY_EXPIRED);
    assert_int_equal(lb_tls_expiry_check(now, now), LB_TLS_EXPIRY_EXPIRED);
    assert_int_equal(lb_tls_expiry_check(now + 1, now), LB_TLS_EXPIRY_SOON);
    assert_int_equal(lb_tls_expiry_check(now + 14 * day, now), LB_TLS_EXPIRY_SOON);
    assert_int_equal(lb_tls_expiry_check(now + 14 * day + 1, now), LB_TLS_EXPIRY_OK);
    assert_int_equal(lb_tls_expiry_check(now + 365 * day, now), LB_TLS_EXPIRY_OK);
}

static void test_no_tls_builds_nothing(void **st)
{
    struct conf c = {0};
    struct conf_listener l = {.name = "plain"};
    c.listeners = &l;
    c.n_listeners = 1;
    c.path = "t.yaml";
    struct lb_tls_msgs m = {0};
    assert_null(lb_tls_set_build(&c, 0, &m));
    assert_int_equal(m.errors, 0);
    assert_int_equal(m.n, 0);
}

static void test_unreadable_files_are_located_errors(void **st)
{
    struct conf_tls_cert cert = {{3, 7}, "/nonexistent/a.pem", "/nonexistent/a.key"};
    struct conf_listener l = {.name = "s"};
    l.tls.present = true;
    l.tls.certs = &cert;
    l.tls.n_certs = 1;
    struct conf c = {0};
    c.listeners = &l;
    c.n_listeners = 1;
    c.path = "t.yaml";
    struct lb_tls_msgs m = {0};
    assert_null(lb_tls_set_build(&c, 0, &m));
    assert_int_equal(m.errors, 1);
    assert_string_equal(m.msg[0], "t.yaml:3:7: listeners[0].tls.certificates[0].cert: "
                                  "/nonexistent/a.pem: cannot be read: No such file or directory");
    lb_tls_msgs_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_match),
        cmocka_unit_test(test_pick_cert),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_no_tls_builds_nothing),
        cmocka_unit_test(test_unreadable_files_are_located_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
