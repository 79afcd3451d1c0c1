/* Admin read views: the JSON of GET /api/v1/upstreams and /api/v1/routes
 * from a snapshot built from inline YAML, with and without overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
    atomic_store(&fx.snap->pools[0].nodes[1].live->health, UPS_DOWN);

    json_object *v = lb_view_upstreams(fx.snap, NULL, fx.conf, 6000); /* 5 s into 10 s */
    char want[2048];
    snprintf(want, sizeof(want),
             "{\"generation\":%llu,\"pools\":["
             "{\"name\":\"hk\",\"nodes\":["
             "{\"name\":\"a\",\"address\":\"127.0.0.1:1\",\"state\":\"up\",\"admin\":\"enabled\","
             "\"weight\":10,\"effective_weight\":5,\"config_weight\":10,\"backup\":false,"
             "\"max_sessions\":0,\"sessions\":3,\"sessions_total\":40,\"bytes_from_client\":1000,"
             "\"bytes_to_client\":2000,\"dial_failures\":2,\"passive_failures\":0,"
             "\"overridden\":[],\"override\":null},"
             "{\"name\":\"b\",\"address\":\"127.0.0.1:2\",\"state\":\"down\",\"admin\":\"enabled\","
             "\"weight\":1,\"effective_weight\":1,\"config_weight\":1,\"backup\":true,"
             "\"max_sessions\":5,\"sessions\":0,\"sessions_total\":0,\"bytes_from_client\":0,"
             "\"bytes_to_client\":0,\"dial_failures\":0,\"passive_failures\":0,"
             "\"overridden\":[],\"override\":null}]},"
             "{\"name\":\"sg\",\"nodes\":["
             "{\"name\":\"c\",\"address\":\"[::1]:3\",\"state\":\"up\",\"admin\":\"enabled\","
             "\"weight\":1,\"effective_weight\":1,\"config_weight\":1,\"backup\":false,"
             "\"max_sessions\":0,\"sessions\":0,\"sessions_total\":0,\"bytes_from_client\":0,"
             "\"bytes_to_client\":0,\"dial_failures\":0,\"passive_failures\":0,"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upstreams),
        cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
