/* Stock origins' control requests, the pure part: nginx-rtmp notify forms,
 * the answer (302 / 2xx / 4xx / 503) from routes and a fake stream index,
 * the Location nginx-rtmp can parse, SRS hook documents, the secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "lb/admin/compat.h"
#include "tests/unit/support.h"
#include "upstream/upstream.h"

/* ---- forms ---- */

static void test_form_nginx_post_body(void **st)
{
    /* What nginx-rtmp's notify POSTs for a play (netcall session fields,
     * then the call's own, then the client's args verbatim). */
    static const char body[] =
        "app=live&flashver=LNX%2009%2C0%2C124%2C2&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive"
        "&pageurl=&addr=203.0.113.7&clientid=12&call=play&name=cam%201&start=4294966296"
        "&duration=0&reset=0&line=hk&flag&&token=a+b";
    struct lb_compat_form f;
    const char *why = NULL;
    lb_compat_form_init(&f);
    assert_int_equal(lb_compat_form_parse(&f, body, strlen(body), &why), 0);
    assert_string_equal(lb_compat_form_get(&f, "app"), "live");
    assert_string_equal(lb_compat_form_get(&f, "flashver"), "LNX 09,0,124,2");
    assert_string_equal(lb_compat_form_get(&f, "tcurl"), "rtmp://127.0.0.1:1935/live");
    assert_string_equal(lb_compat_form_get(&f, "swfurl"), "");
    assert_string_equal(lb_compat_form_get(&f, "name"), "cam 1");
    assert_string_equal(lb_compat_form_get(&f, "addr"), "203.0.113.7");
    assert_string_equal(lb_compat_form_get(&f, "flag"), ""); /* no '=' */
    assert_string_equal(lb_compat_form_get(&f, "token"), "a b");
    assert_null(lb_compat_form_get(&f, "nope"));
    assert_int_equal(f.n, 15);
    /* A second part (the URL's query and then the body): first one wins. */
    static const char more[] = "app=other&node=edge";
    assert_int_equal(lb_compat_form_parse(&f, more, strlen(more), &why), 0);
    assert_string_equal(lb_compat_form_get(&f, "app"), "live");
    assert_string_equal(lb_compat_form_get(&f, "node"), "edge");
    /* Earlier fields stay valid after a second buffer was added. */
    assert_string_equal(f.f[0].value, "live");
    lb_compat_form_free(&f);
}

static void test_form_bad(void **st)
{
    static const char *const bad[] = {"a=%zz", "a=%4", "%00=1", "a=b%00", "x=%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct lb_compat_form f;
        const char *why = NULL;
        lb_compat_form_init(&f);
        assert_int_equal(lb_compat_form_parse(&f, bad[i], strlen(bad[i]), &why), -1);
        assert_non_null(why);
        lb_compat_form_free(&f);
    }
    char many[LB_COMPAT_MAX_FIELDS * 4 + 8] = "";
    for (int i = 0; i <= LB_COMPAT_MAX_FIELDS; i++)
        strcat(many, "a=1&");
    struct lb_compat_form f;
    const char *why = NULL;
    lb_compat_form_init(&f);
    assert_int_equal(lb_compat_form_parse(&f, many, strlen(many), &why), -1);
    assert_string_equal(why, "too many fields");
    lb_compat_form_free(&f);
    /* Empty input, only separators: no field, no error. */
    lb_compat_form_init(&f);
    assert_int_equal(lb_compat_form_parse(&f, "&&&", 3, &why), 0);
    assert_int_equal(lb_compat_form_parse(&f, "", 0, &why), 0);
    assert_int_equal(f.n, 0);
    lb_compat_form_free(&f);
}

static void test_reserved(void **st)
{
    assert_true(lb_compat_reserved_field("call"));
    assert_true(lb_compat_reserved_field("tcurl"));
    assert_true(lb_compat_reserved_field("node"));
    assert_true(lb_compat_reserved_field("secret"));
    assert_false(lb_compat_reserved_field("line"));
    assert_false(lb_compat_reserved_field("token"));
}

/* ---- the answer ---- */

static const char TEXT[] =
    "listeners:\n"
    "  - {name: rtmp, address: 127.0.0.1:1935}\n"
    "  - {name: other, address: 127.0.0.1:1936}\n"
    "pools:\n"
    "  origins:\n"
    "    nodes:\n"
    "      - {name: a, address: 127.0.0.1:2001}\n"
    "      - {name: b, address: 127.0.0.1:2002}\n"
    "  hk:\n"
    "    nodes: [{name: h, address: '[::1]:2003'}]\n"
    "  dead:\n"
    "    nodes: [{name: d, address: 127.0.0.1:2004}]\n"
    "routes:\n"
    "  - {name: line-hk, match: {args: {line: hk}}, pool: hk}\n"
    "  - {name: other, match: {listener: other}, pool: dead}\n"
    "  - {name: pub, match: {role: publish, app: live}, pool: origins,"
    " policy: stream_affinity}\n"
    "  - {name: play, match: {role: play, app: live}, pool: origins, policy: weighted}\n";

/* A fake stream index: one stream, on one node of one pool. */
struct fake_index {
    const char *pool, *node, *stream;
};

static bool fake_locate(void *ctx, const char *pool, const char *app, const char *stream,
                        char *node, size_t cap)
{
    const struct fake_index *x = ctx;
    (void)app;
    if (!x->stream || strcmp(pool, x->pool) != 0 || strcmp(stream, x->stream) != 0)
        return false;
    snprintf(node, cap, "%s", x->node);
    return true;
}

static struct ups_node *node_named(struct ups_snapshot *s, const char *pool, const char *name)
{
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++)
            if (!strcmp(s->pools[p].name, pool) && !strcmp(s->pools[p].nodes[i].name, name))
                return &s->pools[p].nodes[i];
    return NULL;
}

static int ask(struct ups_snapshot *s, struct fake_index *x, const char *listener, int role,
               const char *stream, const struct ups_arg *args, size_t n_args, const char *self,
               struct lb_compat_answer *a)
{
    struct ups_stream_view v = {.locate = fake_locate, .ctx = x};
    struct ups_request q = {.listener = listener, .role = role, .app = "live", .stream = stream,
                            .args = args, .n_args = n_args, .streams = &v};
    struct lb_compat_self me = {.node = self};
    lb_compat_decide(s, &q, &me, a);
    return a->status;
}

static void test_decide(void **st)
{
    struct test_fx fx = test_fx_load(TEXT, 1);
    struct ups_snapshot *s = fx.snap;
    struct lb_compat_answer a;
    struct fake_index x = {"origins", "b", "cam"};

    /* A play goes where the index says, whatever the route's policy. */
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "edge", &a), 302);
    assert_int_equal(a.verdict, LB_COMPAT_REDIRECT);
    assert_string_equal(a.node->name, "b");
    assert_string_equal(a.route->name, "play");
    /* Asked by b itself: serve it there. */
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "b", &a), 200);
    assert_int_equal(a.verdict, LB_COMPAT_SELF);
    /* Asked by a: relay from b. */
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "a", &a), 302);
    /* Who asks unknown: never 2xx. */
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, NULL, &a), 302);
    /* A stream that is nowhere: 404. */
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "ghost", NULL, 0, "edge", &a), 404);
    assert_int_equal(a.verdict, LB_COMPAT_NOWHERE);
    assert_non_null(strstr(a.reason, "origins"));
    /* Live on a node that is down: 503, saying so. */
    struct ups_node *b = node_named(s, "origins", "b");
    atomic_store(&b->live->health, UPS_DOWN);
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "edge", &a), 503);
    assert_non_null(strstr(a.reason, "b, which is down"));
    atomic_store(&b->live->health, UPS_UP);
    /* Draining still serves what is only there. */
    atomic_store(&b->live->admin, UPS_DRAINING);
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "edge", &a), 302);
    atomic_store(&b->live->admin, UPS_DISABLED);
    assert_int_equal(ask(s, &x, "rtmp", CONF_ROLE_PLAY, "cam", NULL, 0, "edge", &a), 503);
    assert_non_null(strstr(a.reason, "disabled"));
    atomic_store(&b->live->admin, UPS_ENABLED);

    /* A publish follows the route's policy (affinity): same answer each
     * time, the node affinity ranks first. */
    struct fake_index none = {0};
    double sa = ups_affinity_score("a", 1, "live", "cam");
    double sb = ups_affinity_score("b", 1, "live", "cam");
    const char *want = sa > sb ? "a" : "b";
    assert_int_equal(ask(s, &none, "rtmp", CONF_ROLE_PUBLISH, "cam", NULL, 0, "edge", &a), 302);
    assert_string_equal(a.node->name, want);
    assert_string_equal(a.route->name, "pub");
    assert_int_equal(ask(s, &none, "rtmp", CONF_ROLE_PUBLISH, "cam", NULL, 0, want, &a), 200);
    /* Its node down: the other one. */
    struct ups_node *w = node_named(s, "origins", want);
    atomic_store(&w->live->health, UPS_DOWN);
    assert_int_equal(ask(s, &none, "rtmp", CONF_ROLE_PUBLISH, "cam", NULL, 0, "edge", &a), 302);
    assert_string_not_equal(a.node->name, want);
    /* Both down: 503. */
    atomic_store(&node_named(s, "origins", a.node->name)->live->health, UPS_DOWN);
    assert_int_equal(ask(s, &none, "rtmp", CONF_ROLE_PUBLISH, "cam", NULL, 0, "edge", &a), 503);
    assert_int_equal(a.verdict, LB_COMPAT_NO_NODE);
    atomic_store(&node_named(s, "origins", "a")->live->health, UPS_UP);
    atomic_store(&node_named(s, "origins", "b")->live->health, UPS_UP);

    /* The client's args pick a route (a player's swap-line choice). */
    struct ups_arg hk[] = {{"line", "hk"}};
    struct fake_index inhk = {"hk", "h", "cam"};
    assert_int_equal(ask(s, &inhk, "rtmp", CONF_ROLE_PLAY, "cam", hk, 1, "edge", &a), 302);
    assert_string_equal(a.route->name, "line-hk");
    assert_string_equal(a.node->name, "h");
    /* The listener picks listener-matched routes. */
    assert_int_equal(ask(s, &none, "other", CONF_ROLE_PUBLISH, "cam", NULL, 0, "edge", &a), 302);
    assert_string_equal(a.route->name, "other");
    /* No route: 403. */
    struct ups_request q = {.listener = "rtmp", .role = CONF_ROLE_PUBLISH, .app = "vod",
                            .stream = "x"};
    lb_compat_decide(s, &q, NULL, &a);
    assert_int_equal(a.status, 403);
    assert_null(a.route);
    test_fx_free(&fx);
}

static void test_location(void **st)
{
    struct test_fx fx = test_fx_load(TEXT, 1);
    char out[256];
    const struct ups_node *a = node_named(fx.snap, "origins", "a");
    const struct ups_node *h = node_named(fx.snap, "hk", "h");
    assert_int_equal(lb_compat_location(a, "live", "cam", out, sizeof(out)), 30);
    assert_string_equal(out, "rtmp://127.0.0.1:2001/live/cam");
    assert_true(lb_compat_location(h, "live", "a/b", out, sizeof(out)) > 0);
    assert_string_equal(out, "rtmp://[::1]:2003/live/a/b");
    assert_int_equal(lb_compat_location(a, "li/ve", "cam", out, sizeof(out)), -1);
    assert_int_equal(lb_compat_location(a, "live", "c m", out, sizeof(out)), -1);
    assert_int_equal(lb_compat_location(a, "live", "c\r\nX: y", out, sizeof(out)), -1);
    assert_int_equal(lb_compat_location(a, "live", "c?x=1", out, sizeof(out)), -1);
    assert_int_equal(lb_compat_location(a, "", "cam", out, sizeof(out)), -1);
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(lb_compat_location(a, "live", longname, out, sizeof(out)), -1);
    test_fx_free(&fx);
}

/* ---- SRS hooks ---- */

static void test_srs_documents(void **st)
{
    /* As SRS documents them (v5: client_id a string; v3: a number). */
    static const char pub[] =
        "{\"server_id\":\"vid-0xk989d\",\"service_id\":\"plnp5j0q\",\"action\":\"on_publish\","
        "\"client_id\":\"341w361a\",\"ip\":\"127.0.0.1\",\"vhost\":\"__defaultVhost__\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://127.0.0.1:1935/live\",\"stream\":\"livestream\","
        "\"param\":\"?secret=x\",\"stream_url\":\"/live/livestream\",\"stream_id\":\"vid-124q9y3\"}";
    static const char play3[] =
        "{\"action\":\"on_play\",\"client_id\":1985,\"ip\":\"192.168.1.10\",\"vhost\":\"video."
        "test.com\",\"app\":\"live\",\"stream\":\"livestream\",\"param\":\"\",\"pageUrl\":\"\"}";
    static const char conn[] =
        "{\"action\":\"on_connect\",\"client_id\":\"x\",\"ip\":\"1.2.3.4\",\"vhost\":\"v\","
        "\"app\":\"live\",\"tcUrl\":\"rtmp://h/live\",\"pageUrl\":\"\"}";
    struct lb_srs_hook h;
    char err[256];
    assert_int_equal(lb_compat_srs_parse(pub, strlen(pub), &h, err, sizeof(err)), 0);
    assert_int_equal(h.action, LB_SRS_ON_PUBLISH);
    assert_string_equal(h.app, "live");
    assert_string_equal(h.stream, "livestream");
    assert_string_equal(h.client_id, "341w361a");
    assert_string_equal(h.vhost, "__defaultVhost__");
    assert_int_equal(lb_compat_srs_parse(play3, strlen(play3), &h, err, sizeof(err)), 0);
    assert_int_equal(h.action, LB_SRS_ON_PLAY);
    assert_string_equal(h.client_id, "1985");
    assert_int_equal(lb_compat_srs_parse(conn, strlen(conn), &h, err, sizeof(err)), 0);
    assert_int_equal(h.action, LB_SRS_OTHER);
    static const char stop[] = " {\"action\":\"on_stop\",\"app\":\"a\",\"stream\":\"s\"}\n";
    assert_int_equal(lb_compat_srs_parse(stop, strlen(stop), &h, err, sizeof(err)), 0);
    assert_int_equal(h.action, LB_SRS_ON_STOP);
}

static void test_srs_bad(void **st)
{
    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"", "needs a JSON object"},
        {"{\"action\":", "not JSON"},
        {"[1,2]", "must be a JSON object"},
        {"{\"action\":\"on_publish\"} x", "trailing"},
        {"{}", "\"action\" is required"},
        {"{\"action\":7}", "must be a string"},
        {"{\"action\":\"on_fire\",\"app\":\"a\",\"stream\":\"s\"}", "unknown action"},
        {"{\"action\":\"on_publish\",\"stream\":\"s\"}", "\"app\" is required"},
        {"{\"action\":\"on_publish\",\"app\":\"a\"}", "\"stream\" is required"},
        {"{\"action\":\"on_publish\",\"app\":\"\",\"stream\":\"s\"}", "\"app\" is required"},
        {"{\"action\":\"on_publish\",\"app\":\"a/b\",\"stream\":\"s\"}", "'/'"},
        {"{\"action\":\"on_publish\",\"app\":\"a\",\"stream\":\"s\\u0000x\"}", "NUL"},
        {"{\"action\":\"on_publish\",\"app\":\"a\",\"stream\":\"s\\nx\"}", "control"},
        {"{\"action\":\"on_publish\",\"app\":1,\"stream\":\"s\"}", "must be a string"},
        {"{\"action\":\"on_play\",\"app\":\"a\",\"stream\":\"s\",\"client_id\":[1]}",
         "must be a string"},
        {"{\"action\":\"on_publish\",\"app\":\"a\",\"stream\":\"s\",\"x\":[[[[[[[[[[1]]]]]]]]]]}",
         "not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct lb_srs_hook h;
        char err[256] = "";
        assert_int_equal(lb_compat_srs_parse(bad[i].doc, strlen(bad[i].doc), &h, err, sizeof(err)),
                         -1);
        if (!strstr(err, bad[i].why))
            fail_msg("doc %zu: error \"%s\" lacks \"%s\"", i, err, bad[i].why);
    }
    char longapp[400] = "{\"action\":\"on_publish\",\"stream\":\"s\",\"app\":\"";
    size_t n = strlen(longapp);
    memset(longapp + n, 'a', 200);
    strcpy(longapp + n + 200, "\"}");
    struct lb_srs_hook h;
    char err[256];
    assert_int_equal(lb_compat_srs_parse(longapp, strlen(longapp), &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "longer than 127"));
}

static void test_secret(void **st)
{
    unsigned char want[32];
    lb_compat_secret_hash("s3cret", want);
    assert_true(lb_compat_secret_ok(want, "s3cret"));
    assert_false(lb_compat_secret_ok(want, "s3cre"));
    assert_false(lb_compat_secret_ok(want, "s3cret "));
    assert_false(lb_compat_secret_ok(want, ""));
    assert_false(lb_compat_secret_ok(want, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_nginx_post_body),
        cmocka_unit_test(test_form_bad),
        cmocka_unit_test(test_reserved),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_location),
        cmocka_unit_test(test_srs_documents),
        cmocka_unit_test(test_srs_bad),
        cmocka_unit_test(test_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
