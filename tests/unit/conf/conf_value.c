/* Scalar parsers: durations, sizes, integers, booleans, addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static void test_durations(void **st)
{
    static const struct { const char *in; int64_t ms; } good[] = {
        {"0", 0}, {"500ms", 500}, {"10s", 10000}, {"2m", 120000}, {"1h", 3600000}, {"0s", 0}};
    static const char *bad[] = {"", "10", "s", "10 s", "-1s", "1.5s", "10sec", "1d",
                                "99999999999999999999s", "9223372036854775807h"};
    const char *err;
    int64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(conf_parse_duration_ms(good[i].in, &v, &err), 0);
        assert_int_equal(v, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(conf_parse_duration_ms(bad[i], &v, &err), -1);
}

static void test_sizes(void **st)
{
    static const struct { const char *in; int64_t b; } good[] = {
        {"0", 0}, {"4096", 4096}, {"64KiB", 65536}, {"1MiB", 1048576}, {"2GiB", 2147483648LL},
        {"7B", 7}};
    static const char *bad[] = {"", "64KB", "64k", "1 MiB", "-1", "MiB", "1.5MiB"};
    const char *err;
    int64_t v;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(conf_parse_size(good[i].in, &v, &err), 0);
        assert_int_equal(v, good[i].b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(conf_parse_size(bad[i], &v, &err), -1);
}

static void test_ints_and_bools(void **st)
{
    const char *err;
    int64_t v;
    bool b;
    assert_int_equal(conf_parse_int("42", &v, &err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(conf_parse_int("-3", &v, &err), 0);
    assert_int_equal(v, -3);
    assert_int_equal(conf_parse_int("4x", &v, &err), -1);
    assert_int_equal(conf_parse_int("", &v, &err), -1);
    assert_int_equal(conf_parse_int("99999999999999999999", &v, &err), -1);
    assert_string_equal(err, "number too large");
    assert_int_equal(conf_parse_bool("true", &b, &err), 0);
    assert_true(b);
    assert_int_equal(conf_parse_bool("Off", &b, &err), 0);
    assert_false(b);
    assert_int_equal(conf_parse_bool("1", &b, &err), -1);
}

static void test_addresses(void **st)
{
    struct conf_addr a;
    char err[128];

    assert_int_equal(conf_parse_addr("127.0.0.1:1935", false, false, &a, err, sizeof(err)), 0);
    assert_int_equal(a.ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 1935);
    assert_string_equal(a.text, "127.0.0.1:1935");
    free(a.text);
    assert_int_equal(conf_parse_addr("[::1]:80", false, false, &a, err, sizeof(err)), 0);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    free(a.text);
    assert_int_equal(conf_parse_addr("[::]:1935", false, true, &a, err, sizeof(err)), 0);
    free(a.text);

    assert_int_equal(conf_parse_addr("::1:80", false, false, &a, err, sizeof(err)), -1);
    assert_int_equal(conf_parse_addr("127.0.0.1:0", false, false, &a, err, sizeof(err)), -1);
    assert_int_equal(conf_parse_addr("127.0.0.1:x", false, false, &a, err, sizeof(err)), -1);
    assert_int_equal(conf_parse_addr(":80", false, false, &a, err, sizeof(err)), -1);
    assert_int_equal(conf_parse_addr("[::1]80", false, false, &a, err, sizeof(err)), -1);
    assert_int_equal(conf_parse_addr("origin.example:1935", false, false, &a, err, sizeof(err)), -1);
    assert_string_equal(err, "\"origin.example\" is not a numeric IP address");
    /* With resolution allowed, names resolve. */
    assert_int_equal(conf_parse_addr("localhost:1935", true, false, &a, err, sizeof(err)), 0);
    free(a.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_ints_and_bools),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
