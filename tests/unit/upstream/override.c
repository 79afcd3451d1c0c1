/* The runtime override layer: set/clear, apply to a snapshot, survive a
 * rebuilt snapshot (reload), discard what the new config lacks, persist and
 * load, and shrug off a corrupt state file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include "../support.h"

static const char CONF1[] =
    "listeners: [{name: l, address: 127.0.0.1:1935, mode: tcp}]\n"
    "pools:\n"
    "  hk: {nodes: [{name: a, address: 127.0.0.1:1, weight: 2},\n"
    "               {name: b, address: 127.0.0.1:2}]}\n"
    "  sg: {nodes: [{name: c, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: main, match: {}, pool: hk, policy: weighted}\n"
    "  - {name: other, match: {listener: l}, pool: sg}\n";

/* The reload: a's weight changed in the file, b gone, route "other" gone. */
static const char CONF2[] =
    "listeners: [{name: l, address: 127.0.0.1:1935, mode: tcp}]\n"
    "pools:\n"
    "  hk: {nodes: [{name: a, address: 127.0.0.1:1, weight: 5}]}\n"
    "  sg: {nodes: [{name: c, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: main, match: {}, pool: hk, policy: weighted}\n";

static struct ups_node *node(struct ups_snapshot *s, const char *pool, const char *name)
{
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++)
            if (!strcmp(s->pools[p].name, pool) && !strcmp(s->pools[p].nodes[i].name, name))
                return &s->pools[p].nodes[i];
    fail_msg("no node %s/%s", pool, name);
    return NULL;
}

static const char *first_candidate(struct ups_snapshot *s)
{
    struct ups_request req = {.listener = "l", .l4 = true};
    struct ups_candidates c;
    const struct ups_route *r = ups_route_select(s, &req, &c);
    assert_non_null(r);
    return c.n ? c.node[0]->name : "-";
}

static struct ups_snapshot *rebuild(struct conf *c, struct ups_snapshot *prev,
                                    struct ups_overrides *o, struct ups_msgs *msgs)
{
    char err[256];
    struct ups_snapshot *s = ups_snapshot_build(c, prev, 1, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(ups_ovr_apply(o, s, msgs), 0);
    return s;
}

static void test_set_and_apply(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new();
    struct ups_msgs msgs = {0};
    char err[256];

    assert_int_equal(ups_ovr_set_weight(o, fx.snap, "hk", "b", 7, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_state(o, fx.snap, "hk", "a", "draining", 0, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_pool(o, fx.snap, "other", "hk", err, sizeof(err)), 0);
    assert_int_equal(
        ups_ovr_set_route_policy(o, fx.snap, "main", "least_sessions", err, sizeof(err)), 0);
    assert_int_equal(o->n_nodes, 2);
    assert_int_equal(o->n_routes, 2);

    struct ups_snapshot *s = rebuild(fx.conf, fx.snap, o, &msgs);
    assert_int_equal(msgs.n, 0);
    assert_int_equal(node(s, "hk", "b")->weight, 7);
    assert_int_equal(node(s, "hk", "a")->weight, 2);
    assert_int_equal(atomic_load(&node(s, "hk", "a")->live->admin), UPS_DRAINING);
    assert_int_equal(atomic_load(&node(s, "hk", "b")->live->admin), UPS_ENABLED);
    assert_string_equal(s->routes[0].ops->name, "least_sessions");
    assert_int_equal(s->routes[0].policy, CONF_POLICY_LEAST_SESSIONS);
    assert_string_equal(s->routes[1].pool->name, "hk");
    /* the router sees it: a drains, so b is the only candidate */
    assert_string_equal(first_candidate(s), "b");

    /* Validation: nothing changes on a bad value. */
    uint64_t changes = o->changes;
    assert_int_equal(ups_ovr_set_weight(o, s, "hk", "b", 0, err, sizeof(err)), -1);
    assert_string_equal(err, "weight must be 1..1000 (got 0)");
    assert_int_equal(ups_ovr_set_weight(o, s, "hk", "b", 1001, err, sizeof(err)), -1);
    assert_int_equal(ups_ovr_set_weight(o, s, "hk", "zz", 3, err, sizeof(err)), -1);
    assert_string_equal(err, "pool \"hk\" has no node \"zz\"");
    assert_int_equal(ups_ovr_set_weight(o, s, "xx", "a", 3, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown pool \"xx\"");
    assert_int_equal(ups_ovr_set_state(o, s, "hk", "a", "paused", 0, err, sizeof(err)), -1);
    assert_string_equal(err, "state must be enabled, draining or disabled (got \"paused\")");
    assert_int_equal(ups_ovr_set_state(o, s, "hk", "a", "disabled", 5, err, sizeof(err)), -1);
    assert_int_equal(ups_ovr_set_route_pool(o, s, "main", "nope", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown pool \"nope\"");
    assert_int_equal(ups_ovr_set_route_pool(o, s, "nope", "hk", err, sizeof(err)), -1);
    assert_string_equal(err, "unknown route \"nope\"");
    assert_int_equal(ups_ovr_set_route_policy(o, s, "main", "random", err, sizeof(err)), -1);
    assert_int_equal(ups_ovr_set_route_policy(o, s, "main", "geo_nearest", err, sizeof(err)),
                     -1);
    assert_string_equal(err, "geo_nearest needs geo.database");
    assert_int_equal(o->changes, changes);
    assert_int_equal(ups_ovr_find_node(o, "hk", "b")->weight, 7);

    /* Clear one by one; the entry goes when nothing is left in it. */
    assert_true(ups_ovr_clear_state(o, "hk", "a"));
    assert_false(ups_ovr_clear_state(o, "hk", "a"));
    assert_null(ups_ovr_find_node(o, "hk", "a"));
    assert_true(ups_ovr_clear_route_policy(o, "main"));
    assert_null(ups_ovr_find_route(o, "main"));
    struct ups_snapshot *s2 = rebuild(fx.conf, s, o, &msgs);
    assert_int_equal(atomic_load(&node(s2, "hk", "a")->live->admin), UPS_ENABLED);
    assert_string_equal(s2->routes[0].ops->name, "weighted");
    assert_int_equal(node(s2, "hk", "b")->weight, 7);
    assert_int_equal(ups_ovr_clear_all(o), 2);
    assert_int_equal(o->n_nodes + o->n_routes, 0);

    ups_snapshot_unref(s2);
    ups_snapshot_unref(s);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

static void test_survives_reload_and_discards_stale(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new();
    struct ups_msgs msgs = {0};
    char err[256];
    assert_int_equal(ups_ovr_set_weight(o, fx.snap, "hk", "a", 9, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_state(o, fx.snap, "hk", "b", "disabled", 0, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_pool(o, fx.snap, "main", "sg", err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_pool(o, fx.snap, "other", "hk", err, sizeof(err)), 0);

    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    struct conf *c2 = conf_load_buffer("t2.yaml", CONF2, strlen(CONF2), &opts, &errs);
    assert_non_null(c2);
    struct ups_snapshot *s = rebuild(c2, fx.snap, o, &msgs);
    /* kept: a's weight over the file's new 5, and main's swap to sg */
    assert_int_equal(node(s, "hk", "a")->weight, 9);
    assert_string_equal(s->routes[0].pool->name, "sg");
    assert_string_equal(first_candidate(s), "c");
    /* reported and discarded: b (gone from hk) and route other */
    assert_int_equal(msgs.n, 2);
    assert_string_equal(msgs.msg[0],
                        "override of node hk/b discarded: the configuration has no such node");
    assert_string_equal(msgs.msg[1],
                        "override of route other discarded: the configuration has no such route");
    assert_null(ups_ovr_find_node(o, "hk", "b"));
    assert_null(ups_ovr_find_route(o, "other"));
    assert_int_equal(o->n_nodes, 1);
    assert_int_equal(o->n_routes, 1);
    ups_msgs_free(&msgs);

    /* A second reload finds nothing stale. */
    struct ups_snapshot *s2 = rebuild(c2, s, o, &msgs);
    assert_int_equal(msgs.n, 0);
    assert_int_equal(node(s2, "hk", "a")->weight, 9);

    ups_snapshot_unref(s2);
    ups_snapshot_unref(s);
    conf_free(c2);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

static char path[128]; /* the state file, in the group's temporary directory */

/* The reload: pool sg gone (main's swap target), a moved to a new address
 * (a new live record: the state must follow the name), b unchanged. */
static const char CONF3[] =
    "listeners: [{name: l, address: 127.0.0.1:1935, mode: tcp}]\n"
    "pools:\n"
    "  hk: {nodes: [{name: a, address: 127.0.0.1:11, weight: 2},\n"
    "               {name: b, address: 127.0.0.1:2}]}\n"
    "routes:\n"
    "  - {name: main, match: {}, pool: hk, policy: weighted}\n"
    "  - {name: other, match: {listener: l}, pool: hk}\n";

static void test_reload_edge_cases(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new();
    struct ups_msgs msgs = {0};
    char err[256];
    assert_int_equal(ups_ovr_set_state(o, fx.snap, "hk", "a", "disabled", 0, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_pool(o, fx.snap, "main", "sg", err, sizeof(err)), 0);
    assert_int_equal(
        ups_ovr_set_route_policy(o, fx.snap, "main", "least_sessions", err, sizeof(err)), 0);
    struct ups_snapshot *s1 = rebuild(fx.conf, fx.snap, o, &msgs);
    assert_int_equal(msgs.n, 0);
    struct ups_node_live *old_a = node(s1, "hk", "a")->live;
    assert_int_equal(atomic_load(&old_a->admin), UPS_DISABLED);

    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    struct conf *c3 = conf_load_buffer("t3.yaml", CONF3, strlen(CONF3), &opts, &errs);
    assert_non_null(c3);
    uint64_t changes = o->changes;
    struct ups_snapshot *s2 = rebuild(c3, s1, o, &msgs);
    /* The swap to a pool the file dropped is reported and undone; the
     * policy half of the same override stays. */
    assert_int_equal(msgs.n, 1);
    assert_string_equal(msgs.msg[0],
                        "override of route main discarded: pool sg is no longer in the "
                        "configuration");
    ups_msgs_free(&msgs);
    assert_string_equal(s2->routes[0].pool->name, "hk");
    assert_string_equal(s2->routes[0].ops->name, "least_sessions");
    const struct ups_route_override *ro = ups_ovr_find_route(o, "main");
    assert_non_null(ro);
    assert_null(ro->pool);
    assert_true(ro->has_policy);
    assert_true(o->changes > changes); /* the caller saves the state file again */
    /* a moved: a new live record, and the state override is on it. */
    struct ups_node *a2 = node(s2, "hk", "a");
    assert_ptr_not_equal(a2->live, old_a);
    assert_int_equal(atomic_load(&a2->live->admin), UPS_DISABLED);
    assert_string_equal(first_candidate(s2), "b");

    /* The saved file holds what survived, nothing stale. */
    assert_int_equal(ups_ovr_save(o, path, err, sizeof(err)), 0);
    struct ups_overrides *o2 = ups_ovr_new();
    ups_ovr_load(o2, path, &msgs);
    assert_int_equal(msgs.n, 0);
    json_object *j = ups_ovr_to_json(o2);
    assert_string_equal(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
                        "{\"version\":1,\"nodes\":[{\"pool\":\"hk\",\"node\":\"a\","
                        "\"state\":\"disabled\"}],\"routes\":[{\"route\":\"main\","
                        "\"policy\":\"least_sessions\"}]}");
    json_object_put(j);

    /* Cleared, then the next build: a is enabled again, on the live record
     * it shares with the snapshot still in force. */
    assert_true(ups_ovr_clear_state(o, "hk", "a"));
    struct ups_snapshot *s3 = rebuild(c3, s2, o, &msgs);
    assert_int_equal(msgs.n, 0);
    assert_ptr_equal(node(s3, "hk", "a")->live, a2->live);
    assert_int_equal(atomic_load(&a2->live->admin), UPS_ENABLED);

    ups_snapshot_unref(s3);
    ups_snapshot_unref(s2);
    ups_snapshot_unref(s1);
    conf_free(c3);
    ups_ovr_free(o2);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

static void test_patch_bodies(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new();
    char err[256];
    struct {
        const char *body, *want;
    } bad[] = {
        {"[1]", "the body must be a JSON object"},
        {"{}", "the body names nothing to change"},
        {"{\"weight\": -3}", "weight must be 1..1000 (got -3)"},
        {"{\"weight\": 2.5}", "weight must be an integer or null"},
        {"{\"weight\": \"7\"}", "weight must be an integer or null"},
        {"{\"weigth\": 7}", "unknown field \"weigth\" (expected: weight, state, close_after)"},
        {"{\"state\": \"off\"}", "state must be enabled, draining or disabled (got \"off\")"},
        {"{\"state\": \"disabled\", \"close_after\": \"60s\"}",
         "close_after goes with \"state\": \"draining\""},
        {"{\"state\": \"draining\", \"close_after\": \"soon\"}",
         "close_after must be a duration like \"60s\" or null"},
        {"{\"weight\": 3, \"state\": 1}", "state must be a string or null"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_object *b = json_tokener_parse(bad[i].body);
        assert_non_null(b);
        assert_int_equal(ups_ovr_patch_node(o, fx.snap, "hk", "a", b, 1000, err, sizeof(err)),
                         -1);
        assert_string_equal(err, bad[i].want);
        json_object_put(b);
    }
    assert_int_equal(o->n_nodes, 0); /* all or nothing: the weight of the last one stayed out */

    json_object *b = json_tokener_parse(
        "{\"weight\": 4, \"state\": \"draining\", \"close_after\": \"60s\"}");
    assert_int_equal(ups_ovr_patch_node(o, fx.snap, "hk", "a", b, 1000, err, sizeof(err)), 0);
    json_object_put(b);
    const struct ups_node_override *n = ups_ovr_find_node(o, "hk", "a");
    assert_non_null(n);
    assert_int_equal(n->weight, 4);
    assert_int_equal(n->state, UPS_DRAINING);
    assert_int_equal(n->close_at_ms, 61000);

    b = json_tokener_parse("{\"weight\": null}");
    assert_int_equal(ups_ovr_patch_node(o, fx.snap, "hk", "a", b, 1000, err, sizeof(err)), 0);
    json_object_put(b);
    n = ups_ovr_find_node(o, "hk", "a");
    assert_false(n->has_weight);
    assert_true(n->has_state);
    b = json_tokener_parse("{\"state\": null}");
    assert_int_equal(ups_ovr_patch_node(o, fx.snap, "hk", "a", b, 1000, err, sizeof(err)), 0);
    json_object_put(b);
    assert_null(ups_ovr_find_node(o, "hk", "a"));

    b = json_tokener_parse("{\"pool\": \"sg\", \"policy\": \"stream_affinity\"}");
    assert_int_equal(ups_ovr_patch_route(o, fx.snap, "main", b, err, sizeof(err)), 0);
    json_object_put(b);
    assert_string_equal(ups_ovr_find_route(o, "main")->pool, "sg");
    b = json_tokener_parse("{\"pool\": \"mars\"}");
    assert_int_equal(ups_ovr_patch_route(o, fx.snap, "main", b, err, sizeof(err)), -1);
    assert_string_equal(err, "pool must name a pool (got \"mars\")");
    json_object_put(b);
    b = json_tokener_parse("{\"pool\": null, \"policy\": null}");
    assert_int_equal(ups_ovr_patch_route(o, fx.snap, "main", b, err, sizeof(err)), 0);
    json_object_put(b);
    assert_null(ups_ovr_find_route(o, "main"));
    b = json_tokener_parse("{\"pool\": \"sg\"}");
    assert_int_equal(ups_ovr_patch_route(o, fx.snap, "nope", b, err, sizeof(err)), -1);
    assert_string_equal(err, "unknown route \"nope\"");
    json_object_put(b);

    ups_ovr_free(o);
    test_fx_free(&fx);
}

/* ---- persistence ---------------------------------------------------------- */

static char dir[64];

static int setup(void **st)
{
    snprintf(dir, sizeof(dir), "/tmp/rtmplb-ovr-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/state.json", dir);
    return 0;
}

static int teardown(void **st)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_persist_and_load(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new(), *o2 = ups_ovr_new();
    struct ups_msgs msgs = {0};
    char err[256];
    assert_int_equal(ups_ovr_set_weight(o, fx.snap, "hk", "a", 9, err, sizeof(err)), 0);
    assert_int_equal(
        ups_ovr_set_state(o, fx.snap, "hk", "b", "draining", 1700000000123, err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_pool(o, fx.snap, "main", "sg", err, sizeof(err)), 0);
    assert_int_equal(ups_ovr_set_route_policy(o, fx.snap, "other", "stream_affinity", err,
                                              sizeof(err)),
                     0);
    assert_int_equal(ups_ovr_save(o, path, err, sizeof(err)), 0);

    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */

    ups_ovr_load(o2, path, &msgs);
    assert_int_equal(msgs.n, 0);
    json_object *a = ups_ovr_to_json(o), *b = ups_ovr_to_json(o2);
    assert_string_equal(json_object_to_json_string(a), json_object_to_json_string(b));
    assert_string_equal(
        json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN),
        "{\"version\":1,\"nodes\":[{\"pool\":\"hk\",\"node\":\"a\",\"weight\":9},"
        "{\"pool\":\"hk\",\"node\":\"b\",\"state\":\"draining\",\"close_at_ms\":1700000000123}],"
        "\"routes\":[{\"route\":\"main\",\"pool\":\"sg\"},"
        "{\"route\":\"other\",\"policy\":\"stream_affinity\"}]}");
    json_object_put(a);
    json_object_put(b);

    /* A restart with the state file: the loaded layer applies as before. */
    struct ups_snapshot *s = rebuild(fx.conf, NULL, o2, &msgs);
    assert_int_equal(msgs.n, 0);
    assert_int_equal(node(s, "hk", "a")->weight, 9);
    assert_int_equal(atomic_load(&node(s, "hk", "b")->live->admin), UPS_DRAINING);
    assert_string_equal(s->routes[0].pool->name, "sg");
    assert_string_equal(s->routes[1].ops->name, "stream_affinity");

    /* Saving again replaces the file (an empty set too). */
    ups_ovr_clear_all(o);
    assert_int_equal(ups_ovr_save(o, path, err, sizeof(err)), 0);
    ups_ovr_load(o2, path, &msgs);
    assert_int_equal(o2->n_nodes + o2->n_routes, 0);
    assert_int_equal(msgs.n, 0);

    /* An unwritable place: an error, not a crash. */
    assert_int_equal(ups_ovr_save(o, "/nonexistent-dir/state.json", err, sizeof(err)), -1);
    assert_string_equal(err,
                        "cannot create /nonexistent-dir/state.json.tmp: No such file or directory");

    ups_snapshot_unref(s);
    ups_ovr_free(o);
    ups_ovr_free(o2);
    test_fx_free(&fx);
}

static void test_corrupt_and_stale_file(void **st)
{
    struct test_fx fx = test_fx_load(CONF1, 1);
    struct ups_overrides *o = ups_ovr_new();
    struct ups_msgs msgs = {0};
    char want[256];

    unlink(path);
    ups_ovr_load(o, path, &msgs); /* first start: no file, no complaint */
    assert_int_equal(msgs.n, 0);

    const char *corrupt[] = {"{\"nodes\": [", "", "[]", "{\"nodes\": []} trailing", "\x01\x02"};
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
        write_file(corrupt[i]);
        ups_ovr_load(o, path, &msgs);
        assert_int_equal(msgs.n, 1);
        snprintf(want, sizeof(want),
                 "%s: not a JSON object (corrupt?); starting without saved overrides", path);
        assert_string_equal(msgs.msg[0], want);
        assert_int_equal(o->n_nodes + o->n_routes, 0);
        ups_msgs_free(&msgs);
    }

    /* Good entries load; bad ones are reported; stale ones go at apply. */
    write_file("{\"nodes\": [{\"pool\": \"hk\", \"node\": \"a\", \"weight\": 3},\n"
               "  {\"pool\": \"hk\", \"node\": \"b\", \"weight\": -1},\n"
               "  {\"pool\": \"hk\", \"node\": \"b\", \"state\": \"sleepy\"},\n"
               "  {\"pool\": \"gone\", \"node\": \"x\", \"state\": \"disabled\"}],\n"
               " \"routes\": [{\"route\": \"main\", \"policy\": \"bogus\"},\n"
               "  {\"route\": \"old\", \"pool\": \"sg\"}], \"extra\": 1}\n");
    ups_ovr_load(o, path, &msgs);
    assert_int_equal(msgs.n, 3);
    snprintf(want, sizeof(want), "%s: nodes[1] ignored: {\"pool\":\"hk\",\"node\":\"b\",\"weight\":-1}",
             path);
    assert_string_equal(msgs.msg[0], want);
    assert_int_equal(o->n_nodes, 2);
    assert_int_equal(o->n_routes, 1);
    ups_msgs_free(&msgs);

    struct ups_snapshot *s = rebuild(fx.conf, NULL, o, &msgs);
    assert_int_equal(msgs.n, 2);
    assert_string_equal(msgs.msg[0],
                        "override of node gone/x discarded: the configuration has no such node");
    assert_string_equal(msgs.msg[1],
                        "override of route old discarded: the configuration has no such route");
    assert_int_equal(node(s, "hk", "a")->weight, 3);
    assert_int_equal(o->n_nodes, 1);
    assert_int_equal(o->n_routes, 0);
    ups_msgs_free(&msgs);

    ups_snapshot_unref(s);
    ups_ovr_free(o);
    test_fx_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_apply),
        cmocka_unit_test(test_survives_reload_and_discards_stale),
        cmocka_unit_test(test_reload_edge_cases),
        cmocka_unit_test(test_patch_bodies),
        cmocka_unit_test(test_persist_and_load),
        cmocka_unit_test(test_corrupt_and_stale_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
