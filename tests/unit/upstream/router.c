/* Route matching: first match wins; tcp listeners skip routes that need
 * role, app or stream; globs on app and stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "upstream/upstream.h"

static const char TEXT[] =
    "listeners:\n"
    "  - {name: a, address: 127.0.0.1:1935, mode: tcp}\n"
    "  - {name: b, address: 127.0.0.1:1936, mode: tcp}\n"
    "pools:\n"
    "  p1: {nodes: [{name: n1, address: 127.0.0.1:1}]}\n"
    "  p2: {nodes: [{name: n2, address: 127.0.0.1:2}]}\n"
    "  p3: {nodes: [{name: n3, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: pub, match: {role: publish, app: 'live*'}, pool: p3}\n"
    "  - {name: only-b, match: {listener: b}, pool: p2}\n"
    "  - {name: rest, match: {}, pool: p1}\n";

static const char *route_for(struct ups_snapshot *s, const char *listener, bool l4, int role,
                             const char *app)
{
    struct ups_request req = {.listener = listener, .l4 = l4, .role = role, .app = app,
                              .stream = "s"};
    struct ups_candidates c;
    const struct ups_route *r = ups_route_select(s, &req, &c);
    return r ? r->name : "none";
}

static void test_matching(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", TEXT, strlen(TEXT), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    assert_string_equal(route_for(s, "a", true, 0, NULL), "rest");
    assert_string_equal(route_for(s, "b", true, 0, NULL), "only-b");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "live"), "pub");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "livestream"), "pub");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PLAY, "live"), "rest");
    assert_string_equal(route_for(s, "a", false, CONF_ROLE_PUBLISH, "vod"), "rest");
    assert_string_equal(route_for(s, "b", false, CONF_ROLE_PUBLISH, "live"), "pub");

    ups_snapshot_unref(s);
    conf_free(c);
}

/* stream_location inside the router: a fake stream index says where. */
static const char LOC[] =
    "listeners: [{name: a, address: 127.0.0.1:1935}]\n"
    "pools:\n"
    "  o: {nodes: [{name: p1, address: 127.0.0.1:1}, {name: p2, address: 127.0.0.1:2},\n"
    "              {name: bk, address: 127.0.0.1:3, backup: true}]}\n"
    "routes: [{name: r, pool: o, policy: stream_location}]\n";

static const char *where;

static bool fake_locate(void *ctx, const char *pool, const char *app, const char *stream,
                        char *node, size_t cap)
{
    if (!where || strcmp(pool, "o") != 0)
        return false;
    snprintf(node, cap, "%s", where);
    return true;
}

static const char *first_for(struct ups_snapshot *s, int role, size_t *n)
{
    struct ups_stream_view view = {.locate = fake_locate, .ctx = NULL};
    struct ups_request req = {.listener = "a", .role = role, .app = "live", .stream = "s",
                              .streams = &view};
    struct ups_candidates c;
    assert_non_null(ups_route_select(s, &req, &c));
    *n = c.n;
    return c.n ? c.node[0]->name : "none";
}

static struct ups_node *node_named(struct ups_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->pools[0].n_nodes; i++)
        if (strcmp(s->pools[0].nodes[i].name, name) == 0)
            return &s->pools[0].nodes[i];
    fail();
    return NULL;
}

static void test_stream_location_serves_from_backup_and_draining(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    size_t n;
    struct conf *c = conf_load_buffer("t.yaml", LOC, strlen(LOC), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    /* Live only on the backup, while both primaries are up: played from it. */
    where = "bk";
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 3); /* then the primaries, as fallbacks */
    /* Publishes are not located: the backup stays last. */
    assert_string_not_equal(first_for(s, CONF_ROLE_PUBLISH, &n), "bk");
    /* Live on a draining primary: still played from there. */
    where = "p2";
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DRAINING);
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "p2");
    assert_int_equal(n, 3); /* then p1, then the backup: p2 only because it has it */
    /* Down or disabled: not there, whatever the index says. */
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DISABLED);
    assert_string_equal(first_for(s, CONF_ROLE_PLAY, &n), "p1");
    atomic_store(&node_named(s, "p2")->live->admin, UPS_ENABLED);
    atomic_store(&node_named(s, "bk")->live->health, UPS_DOWN);
    where = "bk";
    assert_string_not_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 2);
    /* A name the pool does not have, and no index at all: affinity order. */
    atomic_store(&node_named(s, "bk")->live->health, UPS_UP);
    where = "elsewhere";
    assert_string_not_equal(first_for(s, CONF_ROLE_PLAY, &n), "bk");
    assert_int_equal(n, 3);
    where = NULL;

    ups_snapshot_unref(s);
    conf_free(c);
}

/* A takeover's publish goes back to the old publish's node (pin_node),
 * whatever the policy would pick, while that node may serve. */
static const char PIN[] =
    "listeners: [{name: a, address: 127.0.0.1:1935}]\n"
    "pools:\n"
    "  o: {nodes: [{name: p1, address: 127.0.0.1:1}, {name: p2, address: 127.0.0.1:2},\n"
    "              {name: p3, address: 127.0.0.1:3}, {name: bk, address: 127.0.0.1:4, backup: true}]}\n"
    "routes: [{name: r, pool: o, policy: weighted, publish_conflict: takeover}]\n";

static const char *pinned_first(struct ups_snapshot *s, int role, const char *pin, size_t *n)
{
    struct ups_request req = {.listener = "a", .role = role, .app = "live", .stream = "s",
                              .pin_node = pin};
    struct ups_candidates c;
    const struct ups_route *r = ups_route_select(s, &req, &c);
    assert_non_null(r);
    assert_int_equal(r->publish_conflict, CONF_PUBCONF_TAKEOVER);
    *n = c.n;
    for (size_t i = 1; i < c.n; i++) /* never twice */
        assert_ptr_not_equal(c.node[i], c.node[0]);
    return c.n ? c.node[0]->name : "none";
}

static void test_pin_node(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    size_t n;
    struct conf *c = conf_load_buffer("t.yaml", PIN, strlen(PIN), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    /* Weighted round robin would move on each time: the pin holds. */
    for (int i = 0; i < 6; i++) {
        assert_string_equal(pinned_first(s, CONF_ROLE_PUBLISH, "p3", &n), "p3");
        assert_int_equal(n, 4); /* then the others as fallbacks */
    }
    /* Even a backup, and a draining node: the origin's stream is there. */
    assert_string_equal(pinned_first(s, CONF_ROLE_PUBLISH, "bk", &n), "bk");
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DRAINING);
    assert_string_equal(pinned_first(s, CONF_ROLE_PUBLISH, "p2", &n), "p2");
    /* Down or disabled: the policy's order, without it. */
    atomic_store(&node_named(s, "p2")->live->admin, UPS_DISABLED);
    assert_string_not_equal(pinned_first(s, CONF_ROLE_PUBLISH, "p2", &n), "p2");
    atomic_store(&node_named(s, "p2")->live->admin, UPS_ENABLED);
    atomic_store(&node_named(s, "p3")->live->health, UPS_DOWN);
    assert_string_not_equal(pinned_first(s, CONF_ROLE_PUBLISH, "p3", &n), "p3");
    assert_int_equal(n, 3); /* p1, p2, then the backup */
    atomic_store(&node_named(s, "p3")->live->health, UPS_UP);
    /* Plays ignore it; an unknown name is no pin. */
    const char *a = pinned_first(s, CONF_ROLE_PLAY, "p3", &n);
    const char *b = pinned_first(s, CONF_ROLE_PLAY, "p3", &n);
    assert_string_not_equal(a, b); /* round robin moved on */
    assert_string_not_equal(pinned_first(s, CONF_ROLE_PUBLISH, "nope", &n), "nope");
    assert_int_equal(n, 4);

    ups_snapshot_unref(s);
    conf_free(c);
}

static const char ARGS_TEXT[] =
    "listeners:\n"
    "  - {name: r, address: 127.0.0.1:1935}\n"
    "  - {name: t, address: 127.0.0.1:1936, mode: tcp}\n"
    "pools:\n"
    "  pa: {nodes: [{name: a, address: 127.0.0.1:1}]}\n"
    "  pb: {nodes: [{name: b, address: 127.0.0.1:2}]}\n"
    "  phk: {nodes: [{name: hk, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: line-b, match: {app: live, args: {line: b}}, pool: pb}\n"
    "  - {name: line-hk-hd, match: {args: {line: hk, q: hd}}, pool: phk}\n"
    "  - {name: conn, match: {app: vod}, pool: pa, route_on: connect}\n"
    "  - {name: tcp, match: {listener: t}, pool: pa}\n"
    "  - {name: default, match: {app: live}, pool: pa}\n";

/* The route for a play of app/room1 with these args (key, value, ...). */
static const char *route_args(struct ups_snapshot *s, const char *app, const char *const *kv,
                              size_t n)
{
    struct ups_arg args[8];
    for (size_t i = 0; i < n; i++)
        args[i] = (struct ups_arg){kv[2 * i], kv[2 * i + 1]};
    struct ups_request req = {.listener = "r", .role = CONF_ROLE_PLAY, .app = app,
                              .stream = "room1", .args = args, .n_args = n};
    struct ups_candidates c;
    const struct ups_route *r = ups_route_select(s, &req, &c);
    if (r) /* the stream it is stays the same: args only pick the route */
        assert_int_equal(c.n, 1);
    return r ? r->name : "none";
}

#define ROUTE(app, ...)                                                                            \
    route_args(s, app, (const char *const[]){__VA_ARGS__},                                         \
               sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *) / 2)

static void test_args(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", ARGS_TEXT, strlen(ARGS_TEXT), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(s->routes[0].n_args, 1);
    assert_string_equal(s->routes[0].args[0].key, "line");
    assert_string_equal(s->routes[0].args[0].value, "b");

    assert_string_equal(route_args(s, "live", NULL, 0), "default");
    assert_string_equal(ROUTE("live", "line", "b"), "line-b");
    assert_string_equal(ROUTE("live", "x", "1", "line", "b"), "line-b");
    assert_string_equal(ROUTE("live", "line", "B"), "default"); /* values are exact */
    assert_string_equal(ROUTE("live", "Line", "b"), "default"); /* keys too */
    assert_string_equal(ROUTE("live", "line", "b2"), "default");
    assert_string_equal(ROUTE("live", "line", ""), "default");
    assert_string_equal(ROUTE("other", "line", "b"), "none"); /* args do not replace app */
    /* Every arg of a route must be there and equal. */
    assert_string_equal(ROUTE("live", "line", "hk"), "default");
    assert_string_equal(ROUTE("live", "q", "hd"), "default");
    assert_string_equal(ROUTE("live", "q", "hd", "line", "hk"), "line-hk-hd");
    assert_string_equal(ROUTE("other", "q", "hd", "line", "hk"), "line-hk-hd");
    assert_string_equal(ROUTE("live", "q", "sd", "line", "hk"), "default");
    /* The first of a key wins: the stream's args come before the tcUrl's. */
    assert_string_equal(ROUTE("live", "line", "a", "line", "b"), "default");
    assert_string_equal(ROUTE("live", "line", "b", "line", "a"), "line-b");

    /* ups_route_matches_stream ignores args; ups_route_matches does not. */
    struct ups_request plain = {.listener = "r", .role = CONF_ROLE_PLAY, .app = "live",
                                .stream = "room1"};
    assert_true(ups_route_matches_stream(&s->routes[0], &plain));
    assert_false(ups_route_matches(&s->routes[0], &plain));
    assert_null(ups_request_arg(&plain, "line"));

    /* A tcp session has no args: a route with args never takes it. */
    struct ups_request tcp = {.listener = "t", .l4 = true};
    struct ups_candidates cands;
    const struct ups_route *r = ups_route_select(s, &tcp, &cands);
    assert_non_null(r);
    assert_string_equal(r->name, "tcp");
    assert_false(ups_route_matches_stream(&s->routes[1], &tcp));

    /* At connect, a route with args may still match once the stream's args
     * are read: routing waits (NULL) even if the tcUrl's args disagree. */
    struct ups_arg tc[] = {{"line", "zz"}};
    struct ups_request at = {.listener = "r", .app = "live", .at_connect = true, .args = tc,
                             .n_args = 1};
    assert_null(ups_route_find_connect(s, &at));
    at.app = "vod"; /* line-hk-hd matches any app: it comes first */
    assert_null(ups_route_find_connect(s, &at));

    ups_snapshot_unref(s);
    conf_free(c);
}

/* Early dial: only a first route that takes everything the client may say
 * next, with a node that does not depend on the stream. */
static const char EARLY[] =
    "geo: {database: /nonexistent.mmdb}\n"
    "listeners:\n"
    "  - {name: w, address: 127.0.0.1:1935}\n"
    "  - {name: aff1, address: 127.0.0.1:1936}\n"
    "  - {name: aff2, address: 127.0.0.1:1937}\n"
    "  - {name: app, address: 127.0.0.1:1938}\n"
    "  - {name: args, address: 127.0.0.1:1939}\n"
    "  - {name: conn, address: 127.0.0.1:1940}\n"
    "  - {name: geo, address: 127.0.0.1:1941}\n"
    "  - {name: loc, address: 127.0.0.1:1942}\n"
    "  - {name: role, address: 127.0.0.1:1943}\n"
    "  - {name: tcp, address: 127.0.0.1:1944, mode: tcp}\n"
    "pools:\n"
    "  one: {nodes: [{name: n1, address: 127.0.0.1:1}]}\n"
    "  two: {nodes: [{name: n2, address: 127.0.0.1:2}, {name: n3, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: w, match: {listener: w}, pool: two, policy: least_sessions}\n"
    "  - {name: aff1, match: {listener: aff1}, pool: one, policy: stream_affinity}\n"
    "  - {name: aff2, match: {listener: aff2}, pool: two, policy: stream_affinity}\n"
    "  - {name: app, match: {listener: app, app: live}, pool: two}\n"
    "  - {name: args, match: {listener: args, args: {line: b}}, pool: two}\n"
    "  - {name: conn, match: {listener: conn}, pool: two, route_on: connect}\n"
    "  - {name: geo-jp, match: {listener: geo, country: [JP]}, pool: one, policy: geo_nearest}\n"
    "  - {name: geo, match: {listener: geo}, pool: two}\n"
    "  - {name: loc, match: {listener: loc}, pool: two, policy: stream_location,\n"
    "     require_live: true}\n"
    "  - {name: role, match: {listener: role, role: play}, pool: two}\n"
    "  - {name: rest, match: {}, pool: two}\n";

static const char *early_for(struct ups_snapshot *s, const char *listener, const char *country)
{
    struct ups_request req = {.listener = listener, .country = country, .l4 = !strcmp(listener, "tcp")};
    const struct ups_route *r = ups_route_find_early(s, &req);
    return r ? r->name : "none";
}

static void test_find_early(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", EARLY, strlen(EARLY), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(early_for(s, "w", NULL), "w");       /* least_sessions */
    assert_string_equal(early_for(s, "aff1", NULL), "aff1"); /* affinity, one node */
    assert_string_equal(early_for(s, "aff2", NULL), "none"); /* affinity, two nodes */
    assert_string_equal(early_for(s, "app", NULL), "none");  /* needs the app */
    assert_string_equal(early_for(s, "args", NULL), "none"); /* needs the args */
    assert_string_equal(early_for(s, "conn", NULL), "none"); /* routes at connect */
    assert_string_equal(early_for(s, "geo", "JP"), "geo-jp"); /* geo is known at once */
    assert_string_equal(early_for(s, "geo", "US"), "geo");
    assert_string_equal(early_for(s, "loc", NULL), "none");  /* the stream decides */
    assert_string_equal(early_for(s, "role", NULL), "none"); /* needs the role */
    assert_string_equal(early_for(s, "other", NULL), "rest");
    assert_string_equal(early_for(s, "tcp", NULL), "none");  /* tcp dials at accept anyway */
    ups_snapshot_unref(s);
    conf_free(c);
}

/* E-RTMP at connect: every pool the session may still reach must forward. */
static const char ERTMP[] =
    "listeners:\n"
    "  - {name: a, address: 127.0.0.1:1935}\n"
    "  - {name: b, address: 127.0.0.1:1936}\n"
    "pools:\n"
    "  fwd: {nodes: [{name: n1, address: 127.0.0.1:1}]}\n"
    "  fwd2: {ertmp: forward, nodes: [{name: n2, address: 127.0.0.1:2}]}\n"
    "  legacy: {ertmp: 'off', nodes: [{name: n3, address: 127.0.0.1:3}]}\n"
    "routes:\n"
    "  - {name: hevc, match: {app: hevc}, pool: fwd}\n"
    "  - {name: after-catch-all, match: {app: hevc}, pool: legacy}\n"
    "  - {name: pub, match: {app: live, role: publish}, pool: fwd}\n"
    "  - {name: play, match: {app: live, role: play}, pool: fwd2}\n"
    "  - {name: mixed-pub, match: {app: mixed, role: publish}, pool: fwd}\n"
    "  - {name: mixed-cam, match: {app: mixed, stream: 'cam*'}, pool: legacy}\n"
    "  - {name: b-only, match: {listener: b, app: live}, pool: legacy}\n";

static int ertmp_for(struct ups_snapshot *s, const char *listener, const char *app)
{
    struct ups_request req = {.listener = listener, .app = app, .at_connect = true};
    return ups_ertmp_at_connect(s, &req);
}

static void test_ertmp_at_connect(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", ERTMP, strlen(ERTMP), &opts, &errs);
    assert_non_null(c);
    assert_int_equal(c->pools[0].ertmp, CONF_ERTMP_FORWARD); /* the default */
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);

    /* the first route takes every role and stream of hevc: the next is unreachable */
    assert_int_equal(ertmp_for(s, "a", "hevc"), CONF_ERTMP_FORWARD);
    /* publish and play both land in forwarding pools */
    assert_int_equal(ertmp_for(s, "a", "live"), CONF_ERTMP_FORWARD);
    /* a publish to cam1 would reach the legacy pool */
    assert_int_equal(ertmp_for(s, "a", "mixed"), CONF_ERTMP_OFF);
    /* on listener b, a route to the legacy pool can match live too */
    assert_int_equal(ertmp_for(s, "b", "live"), CONF_ERTMP_FORWARD);
    /* no route: nothing to promise */
    assert_int_equal(ertmp_for(s, "a", "nothing"), CONF_ERTMP_OFF);

    ups_snapshot_unref(s);
    conf_free(c);
}

/* http requests: only nodes with an http address are candidates (the
 * stream's own node too); require_live: a stream live nowhere has none. */
static const char HTTP[] =
    "listeners: [{name: a, address: 127.0.0.1:1935, mode: http}]\n"
    "pools:\n"
    "  o: {nodes: [{name: p1, address: 127.0.0.1:1, http: {address: 127.0.0.1:11}},\n"
    "              {name: p2, address: 127.0.0.1:2},\n"
    "              {name: bk, address: 127.0.0.1:3, backup: true, http: {address: 127.0.0.1:13}}]}\n"
    "routes: [{name: r, pool: o, policy: stream_location, require_live: true}]\n";

static void test_http_and_require_live(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", HTTP, strlen(HTTP), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);
    struct ups_stream_view view = {.locate = fake_locate, .ctx = NULL};
    struct ups_request req = {.listener = "a", .role = CONF_ROLE_PLAY, .app = "live",
                              .stream = "s", .streams = &view, .http = true};
    struct ups_candidates cands;

    assert_string_equal(node_named(s, "p1")->http_address_text, "127.0.0.1:11");
    assert_null(node_named(s, "p2")->http_address_text);
    /* Live nowhere: not found, no affinity fallback. */
    where = NULL;
    assert_non_null(ups_route_select(s, &req, &cands));
    assert_int_equal(cands.n, 0);
    assert_true(cands.not_live);
    /* Live on p1: p1 first, then the other http-capable nodes (bk, backup). */
    where = "p1";
    ups_route_select(s, &req, &cands);
    assert_false(cands.not_live);
    assert_int_equal(cands.n, 2);
    assert_string_equal(cands.node[0]->name, "p1");
    assert_string_equal(cands.node[1]->name, "bk");
    /* Live on p2, which serves no http: it is known, so no 404, but only
     * http nodes are candidates. */
    where = "p2";
    ups_route_select(s, &req, &cands);
    assert_false(cands.not_live);
    assert_int_equal(cands.n, 2);
    assert_string_equal(cands.node[0]->name, "p1");
    /* The same play from RTMP reaches p2. */
    req.http = false;
    ups_route_select(s, &req, &cands);
    assert_string_equal(cands.node[0]->name, "p2");
    assert_int_equal(cands.n, 3);
    where = NULL;
    ups_snapshot_unref(s);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_stream_location_serves_from_backup_and_draining),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_pin_node),
        cmocka_unit_test(test_ertmp_at_connect),
        cmocka_unit_test(test_find_early),
        cmocka_unit_test(test_http_and_require_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
