/* The admin section and timeouts.half_close: defaults, values, located
 * errors; the token file checks `rtmplb -t` runs (exists, not readable by
 * everyone, non-empty, one printable line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

#define BASE                                                            \
    "listeners: [{name: front, address: 127.0.0.1:1935, mode: tcp}]\n" \
    "pools: {origins: {nodes: [{name: a, address: 127.0.0.1:1936}]}}\n" \
    "routes: [{name: all, pool: origins}]\n"

static struct conf *load(const char *text, struct conf_errors *errs)
{
    struct conf_load_opts opts = {.resolve_names = false};
    return conf_load_buffer("t.yaml", text, strlen(text), &opts, errs);
}

static struct conf *load_ok(const char *text)
{
    struct conf_errors errs;
    struct conf *c = load(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(c);
    return c;
}

static void expect_error(const char *text, const char *want)
{
    struct conf_errors errs;
    struct conf *c = load(text, &errs);
    if (c || errs.n != 1 || strcmp(errs.msg[0], want) != 0)
        for (size_t i = 0; i < errs.n; i++)
            print_error("got: %s\n", errs.msg[i]);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msg[0], want);
    conf_errors_free(&errs);
}

static void test_defaults(void **st)
{
    struct conf *c = load_ok(BASE);
    assert_false(c->admin.present);
    assert_string_equal(c->admin.address.text, "127.0.0.1:8080");
    const struct sockaddr_in *in = (const struct sockaddr_in *)&c->admin.address.ss;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 8080);
    assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_null(c->admin.token_file);
    assert_null(c->admin.state_file);
    assert_false(c->admin.public_read);
    assert_int_equal(c->timeouts.half_close_ms, 5000);
    conf_free(c);
}

static void test_values(void **st)
{
    struct conf *c = load_ok(BASE "admin:\n"
                                  "  address: '[::1]:9090'\n"
                                  "  token_file: /etc/rtmplb/token\n"
                                  "  public_read: true\n"
                                  "  state_file: /var/lib/rtmplb/state.json\n"
                                  "timeouts: {half_close: 750ms}\n");
    assert_true(c->admin.present);
    assert_int_equal(c->admin.address.ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)&c->admin.address.ss)->sin6_port), 9090);
    assert_string_equal(c->admin.token_file, "/etc/rtmplb/token");
    assert_string_equal(c->admin.state_file, "/var/lib/rtmplb/state.json");
    assert_true(c->admin.public_read);
    assert_int_equal(c->timeouts.half_close_ms, 750);
    assert_int_equal(c->admin.token_file_mark.line, 6);
    assert_int_equal(c->admin.token_file_mark.col, 15);
    conf_free(c);

    /* "admin:" alone: all defaults, and the section counts as present. */
    c = load_ok(BASE "admin:\n");
    assert_string_equal(c->admin.address.text, "127.0.0.1:8080");
    conf_free(c);
}

static void test_errors(void **st)
{
    expect_error(BASE "admin: {address: nowhere}\n",
                 "t.yaml:4:18: admin.address: must be HOST:PORT or [IPV6]:PORT (got "
                 "\"nowhere\")");
    expect_error(BASE "admin: {public_read: maybe}\n",
                 "t.yaml:4:22: admin.public_read: must be true or false (got \"maybe\")");
    expect_error(BASE "admin: {token: x}\n",
                 "t.yaml:4:9: admin.token: unknown key (expected one of: address, token_file, "
                 "public_read, state_file, hooks_secret_file)");
    expect_error(BASE "admin: {token_file: ''}\n",
                 "t.yaml:4:21: admin.token_file: must not be empty");
    expect_error(BASE "admin: {address: 127.0.0.1:1935}\n",
                 "t.yaml:4:18: admin.address: address 127.0.0.1:1935 is already used by "
                 "listener \"front\"");
    expect_error(BASE "timeouts: {half_close: soon}\n",
                 "t.yaml:4:24: timeouts.half_close: must be a duration like 500ms, 10s, 2m or 1h "
                 "(got \"soon\")");
    expect_error(BASE "limits: {max_handshakes_per_ip: -1}\n",
                 "t.yaml:4:33: limits.max_handshakes_per_ip: must be 0..1000000 (got -1)");
}

/* ---- token file --------------------------------------------------------- */

static char dir[64];

static int setup(void **st)
{
    snprintf(dir, sizeof(dir), "/tmp/rtmplb-token-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes content with mode to dir/name; returns the path (static). */
static const char *token_file(const char *name, const char *content, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* Loads BASE with admin.token_file = path and runs the check. */
static int check(const char *path, char **token, char *err, size_t errlen)
{
    char text[1024];
    snprintf(text, sizeof(text), "%sadmin:\n  token_file: %s\n", BASE, path);
    struct conf *c = load_ok(text);
    int rc = conf_admin_token_load(c, token, err, errlen);
    conf_free(c);
    return rc;
}

static void expect_token_error(const char *path, const char *why)
{
    char *token = (char *)1, err[512], want[512];
    assert_int_equal(check(path, &token, err, sizeof(err)), -1);
    assert_null(token);
    snprintf(want, sizeof(want), "t.yaml:5:15: admin.token_file: %s", why);
    assert_string_equal(err, want);
}

static void test_token_ok(void **st)
{
    char *token, err[512];
    assert_int_equal(check(token_file("ok", "s3cr3t-T0ken\n", 0600), &token, err, sizeof(err)),
                     0);
    assert_string_equal(token, "s3cr3t-T0ken");
    free(token);
    /* group-readable is fine (a service group), CRLF is dropped */
    assert_int_equal(check(token_file("grp", "abc\r\n", 0640), &token, err, sizeof(err)), 0);
    assert_string_equal(token, "abc");
    free(token);
    /* no token file named: no token, no error */
    struct conf *c = load_ok(BASE);
    token = (char *)1;
    assert_int_equal(conf_admin_token_load(c, &token, err, sizeof(err)), 0);
    assert_null(token);
    conf_free(c);
}

static void test_token_errors(void **st)
{
    char why[512], path[128];
    snprintf(path, sizeof(path), "%s/missing", dir);
    snprintf(why, sizeof(why), "cannot open %s: No such file or directory", path);
    expect_token_error(path, why);

    const char *p = token_file("world", "abc\n", 0644);
    snprintf(why, sizeof(why), "%s is readable by everyone (mode 0644): run chmod o-r on it", p);
    expect_token_error(p, why);

    p = token_file("empty", "\n\n", 0600);
    snprintf(why, sizeof(why), "%s is empty", p);
    expect_token_error(p, why);

    p = token_file("spaces", "two words\n", 0600);
    snprintf(why, sizeof(why),
             "%s: the token must be one line of printable characters without spaces (byte 4 "
             "is not)",
             p);
    expect_token_error(p, why);

    snprintf(why, sizeof(why), "%s is not a regular file", dir);
    expect_token_error(dir, why);

    char big[CONF_TOKEN_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    p = token_file("big", big, 0600);
    snprintf(why, sizeof(why), "%s: the token is longer than %d bytes", p, CONF_TOKEN_MAX);
    expect_token_error(p, why);
}

/* admin.hooks_secret_file: the same file rules, its own key in errors. */
static void test_hooks_secret(void **st)
{
    char text[1024], err[512], *secret = (char *)1, *token = (char *)1;
    const char *p = token_file("hooks", "h00k-secret\n", 0600);
    snprintf(text, sizeof(text), "%sadmin:\n  hooks_secret_file: %s\n", BASE, p);
    struct conf *c = load_ok(text);
    assert_int_equal(conf_admin_hooks_secret_load(c, &secret, err, sizeof(err)), 0);
    assert_string_equal(secret, "h00k-secret");
    free(secret);
    assert_int_equal(conf_admin_token_load(c, &token, err, sizeof(err)), 0);
    assert_null(token); /* the two are apart */
    conf_free(c);

    p = token_file("hooks-world", "abc\n", 0644);
    snprintf(text, sizeof(text), "%sadmin:\n  hooks_secret_file: %s\n", BASE, p);
    c = load_ok(text);
    secret = (char *)1;
    assert_int_equal(conf_admin_hooks_secret_load(c, &secret, err, sizeof(err)), -1);
    assert_null(secret);
    char want[512];
    snprintf(want, sizeof(want),
             "t.yaml:5:22: admin.hooks_secret_file: %s is readable by everyone (mode 0644): run "
             "chmod o-r on it",
             p);
    assert_string_equal(err, want);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_token_ok),
        cmocka_unit_test(test_token_errors),
        cmocka_unit_test(test_hooks_secret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
