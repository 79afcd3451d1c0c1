/* Admin read views: the JSON of GET /api/v1/upstreams and /api/v1/routes
 * from a snapshot built from inline YAML, with and without overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lb/admin/views.h"
#include "upstream/override.h"

#include "../../support.h"

static const char CONF[] =
    "listeners: [{name: rtmp, address: 127.0.0.1:1935}]\n"
    "pools:\n"
    "  hk:\n"
    "    slow_start: 10s\n"
    "    nodes:\n"
    "      - {name: a, address: 127.0.0.1:1, weight: 10}\n"
    "      - {name: b, address: 127.0.0.1:2, backup: true, max_sessions: 5}\n"
    "  sg: {nodes: [{name: c, address: '[::1]:3'}]}\n"
    "routes:\n"
    "  - {name: pub, match: {role: publish, app: 'live*'}, pool: hk, policy: stream_affinity}\n"
    "  - {name: rest, match: {listener: rtmp}, pool: sg}\n";

static const char *plain(json_object *j)
{
    return json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void test_upstreams(void **st)
{
    struct test_fx fx = test_fx_load(CONF, 1);
    struct ups_node *a = &fx.snap->pools[0].nodes[0];
    atomic_store(&a->live->sessions, 3);
    atomic_store(&a->live->sessions_total, 40);
    atomic_store(&a->live->bytes_from_client, 1000);
    atomic_store(&a->live->bytes_to_client, 2000);
    atomic_store(&a->live->dial_failures, 2);
    atomic_store(&a->live->up_since_ms, 1000); /* came up at 1s: slow start */
    atomic_store(&a->live->health_since_ms, 123456);
    atomic_store(&a->live->bps_from_client, 800);
    atomic_store(&a->live->bps_to_client, 1600);
    atomic_store(&a->live->stats_streams, 2);
    atomic_store(&a->live->stats_clients, 5);
    atomic_store(&a->live->stats_bw_in, 3000);
    atomic_store(&a->live->last_probe, 1); /* HC_OK + 1 */
    atomic_store(&a->live->last_probe_us, 2500);
    atomic_store(&a->live->last_probe_at_ms, 999);
    atomic_store(&fx.snap->pools[0].nodes[1].live->health, UPS_DOWN);

    json_object *v = lb_view_upstreams(fx.snap, NULL, fx.conf, 6000); /* 5 s into 10 s */
    char want[4096];
    snprintf(want, sizeof(want),
             "{\"generation\":%llu,\"pools\":["
             "{\"name\":\"hk\",\"nodes\":["
             "{\"name\":\"a\",\"address\":\"127.0.0.1:1\",\"state\":\"up\",\"admin\":\"enabled\","
             "\"weight\":10,\"effective_weight\":5,\"config_weight\":10,\"backup\":false,"
             "\"max_sessions\":0,\"sessions\":3,\"sessions_total\":40,\"bytes_from_client\":1000,"
             "\"bytes_to_client\":2000,\"dial_failures\":2,\"passive_failures\":0,"
             "\"state_since_ms\":123456,\"bitrate_from_client_bps\":800,"
             "\"bitrate_to_client_bps\":1600,\"stats_streams\":2,\"stats_clients\":5,"
             "\"stats_bw_in_bps\":3000,\"last_probe\":{\"result\":\"OK\",\"text\":\"ok\","
             "\"latency_ms\":2.5,\"time_ms\":999},"
             "\"overridden\":[],\"override\":null},"
             "{\"name\":\"b\",\"address\":\"127.0.0.1:2\",\"state\":\"down\",\"admin\":\"enabled\","
             "\"weight\":1,\"effective_weight\":1,\"config_weight\":1,\"backup\":true,"
             "\"max_sessions\":5,\"sessions\":0,\"sessions_total\":0,\"bytes_from_client\":0,"
             "\"bytes_to_client\":0,\"dial_failures\":0,\"passive_failures\":0,"
             "\"state_since_ms\":null,\"bitrate_from_client_bps\":0,\"bitrate_to_client_bps\":0,"
             "\"stats_streams\":0,\"stats_clients\":0,\"stats_bw_in_bps\":0,\"last_probe\":null,"
             "\"overridden\":[],\"override\":null}]},"
             "{\"name\":\"sg\",\"nodes\":["
             "{\"name\":\"c\",\"address\":\"[::1]:3\",\"state\":\"up\",\"admin\":\"enabled\","
             "\"weight\":1,\"effective_weight\":1,\"config_weight\":1,\"backup\":false,"
             "\"max_sessions\":0,\"sessions\":0,\"sessions_total\":0,\"bytes_from_client\":0,"
             "\"bytes_to_client\":0,\"dial_failures\":0,\"passive_failures\":0,"
             "\"state_since_ms\":null,\"bitrate_from_client_bps\":0,\"bitrate_to_client_bps\":0,"
             "\"stats_streams\":0,\"stats_clients\":0,\"stats_bw_in_bps\":0,\"last_probe\":null,"
             "\"overridden\":[],\"override\":null}]}]}",
             (unsigned long long)fx.snap->generation);
    assert_string_equal(plain(v), want);
    json_object_put(v);

    /* With overrides applied to a rebuilt snapshot: markers and values. */
    struct ups_overrides *o = ups_ovr_new();
    char err[256];
    struct ups_msgs msgs = {0};
    assert_int_equal(ups_ovr_set_weight(o, fx.snap, "hk", "a", 30, err, sizeof(err)), 0);
    assert_int_equal(
        ups_ovr_set_state(o, fx.snap, "hk", "a", "draining", 1700000000000, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_state(o, fx.snap, "sg", "c", "disabled", 0, err, sizeof(err)),
                     0);
    struct ups_snapshot *s = ups_snapshot_build(fx.conf, fx.snap, 1, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(ups_ovr_apply(o, s, &msgs), 0);
    v = lb_view_upstreams(s, o, fx.conf, 100000);
    json_object *pools = json_object_object_get(v, "pools");
    json_object *na = json_object_array_get_idx(
        json_object_object_get(json_object_array_get_idx(pools, 0), "nodes"), 0);
    json_object *nc = json_object_array_get_idx(
        json_object_object_get(json_object_array_get_idx(pools, 1), "nodes"), 0);
    assert_string_equal(plain(json_object_object_get(na, "overridden")), "[\"weight\",\"state\"]");
    assert_string_equal(plain(json_object_object_get(na, "override")),
                        "{\"weight\":30,\"state\":\"draining\",\"close_at_ms\":1700000000000}");
    assert_int_equal(json_object_get_int(json_object_object_get(na, "weight")), 30);
    assert_int_equal(json_object_get_int(json_object_object_get(na, "effective_weight")), 30);
    assert_int_equal(json_object_get_int(json_object_object_get(na, "config_weight")), 10);
    assert_string_equal(json_object_get_string(json_object_object_get(na, "admin")), "draining");
    assert_int_equal(json_object_get_int(json_object_object_get(na, "sessions")), 3); /* kept */
    assert_string_equal(json_object_get_string(json_object_object_get(nc, "admin")), "disabled");
    assert_string_equal(plain(json_object_object_get(nc, "overridden")), "[\"state\"]");
    json_object_put(v);
    ups_snapshot_unref(s);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

static void test_routes(void **st)
{
    struct test_fx fx = test_fx_load(CONF, 1);
    json_object *v = lb_view_routes(fx.snap, NULL, fx.conf);
    char want[1024];
    snprintf(want, sizeof(want),
             "{\"generation\":%llu,\"routes\":["
             "{\"name\":\"pub\",\"match\":{\"role\":\"publish\",\"app\":\"live*\"},\"pool\":\"hk\","
             "\"policy\":\"stream_affinity\",\"route_on\":\"stream\",\"overridden\":false,"
             "\"override\":null,\"config\":{\"pool\":\"hk\",\"policy\":\"stream_affinity\"}},"
             "{\"name\":\"rest\",\"match\":{\"listener\":\"rtmp\"},\"pool\":\"sg\","
             "\"policy\":\"weighted\",\"route_on\":\"stream\",\"overridden\":false,"
             "\"override\":null,\"config\":{\"pool\":\"sg\",\"policy\":\"weighted\"}}]}",
             (unsigned long long)fx.snap->generation);
    assert_string_equal(plain(v), want);
    json_object_put(v);

    /* Swap the line of "pub" to sg with least_sessions. */
    struct ups_overrides *o = ups_ovr_new();
    char err[256];
    json_object *body = json_tokener_parse("{\"pool\": \"sg\", \"policy\": \"least_sessions\"}");
    assert_int_equal(ups_ovr_patch_route(o, fx.snap, "pub", body, err, sizeof(err)), 0);
    json_object_put(body);
    struct ups_snapshot *s = ups_snapshot_build(fx.conf, fx.snap, 1, err, sizeof(err));
    assert_int_equal(ups_ovr_apply(o, s, NULL), 0);
    v = lb_view_routes(s, o, fx.conf);
    json_object *r0 = json_object_array_get_idx(json_object_object_get(v, "routes"), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(r0, "pool")), "sg");
    assert_string_equal(json_object_get_string(json_object_object_get(r0, "policy")),
                        "least_sessions");
    assert_true(json_object_get_boolean(json_object_object_get(r0, "overridden")));
    assert_string_equal(plain(json_object_object_get(r0, "override")),
                        "{\"pool\":\"sg\",\"policy\":\"least_sessions\"}");
    assert_string_equal(plain(json_object_object_get(r0, "config")),
                        "{\"pool\":\"hk\",\"policy\":\"stream_affinity\"}");
    json_object *r1 = json_object_array_get_idx(json_object_object_get(v, "routes"), 1);
    assert_false(json_object_get_boolean(json_object_object_get(r1, "overridden")));
    /* Without the config: no "config" key, the rest the same. */
    json_object *v2 = lb_view_routes(s, o, NULL);
    r0 = json_object_array_get_idx(json_object_object_get(v2, "routes"), 0);
    assert_null(json_object_object_get(r0, "config"));
    json_object_put(v2);
    json_object_put(v);
    ups_snapshot_unref(s);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

static const char LINES[] =
    "listeners:\n"
    "  - {name: rtmp, address: 127.0.0.1:1935}\n"
    "  - {name: x, address: 127.0.0.1:1936}\n"
    "pools:\n"
    "  pa: {nodes: [{name: a1, address: 127.0.0.1:1}, {name: a2, address: 127.0.0.1:2}]}\n"
    "  pb: {nodes: [{name: b1, address: 127.0.0.1:3}]}\n"
    "  phk: {nodes: [{name: hk1, address: 127.0.0.1:4}]}\n"
    "  pc: {nodes: [{name: c1, address: 127.0.0.1:5}]}\n"
    "routes:\n"
    "  - {name: pub, match: {role: publish}, pool: pc}\n"
    "  - {name: line-b, match: {args: {line: b}}, pool: pb}\n"
    "  - {name: line-b-hd, match: {args: {q: hd, line: b}}, pool: pc}\n" /* never reached */
    "  - {name: vod, match: {app: vod, args: {line: c}}, pool: pc}\n"
    "  - {name: line-hk, match: {stream: 'room*', args: {line: hk}}, pool: phk}\n"
    "  - {name: line-a, match: {args: {line: a}}, pool: pa}\n"
    "  - {name: on-x, match: {listener: x, args: {line: x}}, pool: pc}\n"
    "  - {name: odd, match: {stream: room1, args: {'k y': 'a b&c/=%'}}, pool: phk}\n"
    "  - {name: default, match: {role: play}, pool: pa}\n"
    "  - {name: after, match: {args: {line: z}}, pool: pc}\n"; /* after the catch-all */

static void test_lines(void **st)
{
    struct test_fx fx = test_fx_load(LINES, 1);
    atomic_store(&fx.snap->pools[0].nodes[1].live->health, UPS_DOWN);  /* a2 */
    atomic_store(&fx.snap->pools[1].nodes[0].live->admin, UPS_DRAINING); /* b1 */
    struct lb_lines_query q = {.listener = "rtmp", .host = "127.0.0.1:1935", .app = "live",
                               .stream = "room1"};
    json_object *v = lb_view_lines(fx.snap, &q);
    assert_string_equal(
        plain(v),
        "{\"app\":\"live\",\"stream\":\"room1\",\"listener\":\"rtmp\",\"country\":null,"
        "\"lines\":["
        "{\"pool\":\"pb\",\"route\":\"line-b\",\"policy\":\"weighted\",\"args\":{\"line\":\"b\"},"
        "\"default\":false,\"url\":\"rtmp://127.0.0.1:1935/live/room1?line=b\","
        "\"nodes\":{\"up\":1,\"total\":1,\"available\":0}},"
        "{\"pool\":\"phk\",\"route\":\"line-hk\",\"policy\":\"weighted\",\"args\":{\"line\":\"hk\"},"
        "\"default\":false,\"url\":\"rtmp://127.0.0.1:1935/live/room1?line=hk\","
        "\"nodes\":{\"up\":1,\"total\":1,\"available\":1}},"
        "{\"pool\":\"pa\",\"route\":\"default\",\"policy\":\"weighted\",\"args\":{},"
        "\"default\":true,\"url\":\"rtmp://127.0.0.1:1935/live/room1\","
        "\"nodes\":{\"up\":1,\"total\":2,\"available\":1}}]}");
    json_object_put(v);

    /* Another stream: line-hk matches no more; odd (room1 only) neither, and
     * without a route of its own phk is not offered. */
    q.stream = "cam";
    v = lb_view_lines(fx.snap, &q);
    json_object *lines = json_object_object_get(v, "lines");
    assert_int_equal(json_object_array_length(lines), 2);
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_array_get_idx(lines, 0), "pool")), "pb");
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_array_get_idx(lines, 1), "pool")), "pa");
    json_object_put(v);

    /* On listener x, with line-hk's pool reached only through the odd args,
     * which are percent-encoded in the URL; vod's app adds line c. */
    q.listener = "x";
    q.app = "vod";
    q.stream = "room1";
    q.host = "[::1]:1936";
    v = lb_view_lines(fx.snap, &q);
    lines = json_object_object_get(v, "lines");
    assert_int_equal(json_object_array_length(lines), 4); /* pb, pc (vod), phk, pa */
    json_object *pc = json_object_array_get_idx(lines, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(pc, "route")), "vod");
    assert_string_equal(json_object_get_string(json_object_object_get(pc, "url")),
                        "rtmp://[::1]:1936/vod/room1?line=c");
    json_object *hk = json_object_array_get_idx(lines, 2);
    assert_string_equal(json_object_get_string(json_object_object_get(hk, "route")), "line-hk");
    json_object_put(v);
    /* Order is where each pool is first reached: pa through line-a, then
     * on-x's pc; pa's URL is still the default one (fewest args). */
    q.stream = "x1";
    q.app = "live";
    v = lb_view_lines(fx.snap, &q);
    lines = json_object_object_get(v, "lines");
    assert_int_equal(json_object_array_length(lines), 3);
    static const char *const want[][2] = {{"pb", "line-b"}, {"pa", "default"}, {"pc", "on-x"}};
    for (size_t i = 0; i < 3; i++) {
        json_object *l = json_object_array_get_idx(lines, i);
        assert_string_equal(json_object_get_string(json_object_object_get(l, "pool")), want[i][0]);
        assert_string_equal(json_object_get_string(json_object_object_get(l, "route")),
                            want[i][1]);
    }
    json_object_put(v);

    /* Only publishes for this listener's app: no lines at all. */
    q.listener = "x";
    q.app = "live";
    q.stream = "s";
    fx.snap->routes[8].role = CONF_ROLE_PUBLISH; /* default */
    fx.snap->routes[5].role = CONF_ROLE_PUBLISH; /* line-a */
    fx.snap->routes[1].role = CONF_ROLE_PUBLISH; /* line-b */
    fx.snap->routes[6].role = CONF_ROLE_PUBLISH; /* on-x */
    fx.snap->routes[2].role = CONF_ROLE_PUBLISH; /* line-b-hd */
    v = lb_view_lines(fx.snap, &q);
    assert_int_equal(json_object_array_length(json_object_object_get(v, "lines")), 1);
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_array_get_idx(json_object_object_get(v, "lines"), 0),
                            "route")),
                        "after"); /* the catch-all no longer hides it */
    json_object_put(v);
    test_fx_free(&fx);
}

static void test_lines_url_encoding(void **st)
{
    struct test_fx fx = test_fx_load(
        "listeners: [{name: rtmp, address: 127.0.0.1:1935}]\n"
        "pools: {p: {nodes: [{name: n, address: 127.0.0.1:1}]}, q: {nodes: [{name: m, address: "
        "127.0.0.1:2}]}}\n"
        "routes:\n"
        "  - {name: odd, match: {args: {'k y': 'a b&c/=%~._-'}}, pool: q}\n"
        "  - {name: only-pub, match: {role: publish}, pool: p}\n",
        1);
    struct lb_lines_query q = {.listener = "rtmp", .host = "h:1", .app = "live",
                               .stream = "s"};
    json_object *v = lb_view_lines(fx.snap, &q);
    json_object *lines = json_object_object_get(v, "lines");
    assert_int_equal(json_object_array_length(lines), 1); /* plays have no default line */
    json_object *l = json_object_array_get_idx(lines, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(l, "url")),
                        "rtmp://h:1/live/s?k%20y=a%20b%26c%2F%3D%25~._-");
    assert_false(json_object_get_boolean(json_object_object_get(l, "default")));
    json_object_put(v);
    test_fx_free(&fx);
}

static void test_url_host(void **st)
{
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(1935)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(1935)};
    char out[300];
    const struct sockaddr *s4 = (const struct sockaddr *)&a4, *s6 = (const struct sockaddr *)&a6;
    /* Listening on every address: the Host header's host, the listener's port. */
    assert_string_equal(lb_view_url_host(s4, "live.example.com:8080", out, sizeof(out)),
                        "live.example.com:1935");
    assert_string_equal(lb_view_url_host(s4, "10.1.2.3", out, sizeof(out)), "10.1.2.3:1935");
    assert_string_equal(lb_view_url_host(s6, "[2001:db8::1]:8080", out, sizeof(out)),
                        "[2001:db8::1]:1935");
    assert_string_equal(lb_view_url_host(s4, NULL, out, sizeof(out)), "localhost:1935");
    static const char *const bad[] = {"", "a b", "x/y", "u@h", "[::1", "[zz]", "h:80x", "h:80:1",
                                      ":80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_string_equal(lb_view_url_host(s4, bad[i], out, sizeof(out)), "localhost:1935");
    /* A listener on one address: that address, whatever the Host says. */
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    assert_string_equal(lb_view_url_host(s4, "evil.example", out, sizeof(out)),
                        "192.0.2.7:1935");
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    assert_string_equal(lb_view_url_host(s6, NULL, out, sizeof(out)), "[::1]:1935");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstreams),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_lines_url_encoding),
        cmocka_unit_test(test_url_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
