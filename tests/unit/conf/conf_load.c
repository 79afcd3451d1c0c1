/* Config loading: one test per error class, each asserting the exact
 * "file:line:col: path: message", plus defaults and a full valid config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static const char BASE[] = "listeners:\n"                  /* 1 */
                           "  - name: front\n"              /* 2 */
                           "    address: 127.0.0.1:1935\n"  /* 3 */
                           "    mode: tcp\n"                /* 4 */
                           "pools:\n"                       /* 5 */
                           "  origins:\n"                   /* 6 */
                           "    nodes:\n"                   /* 7 */
                           "      - name: a\n"              /* 8 */
                           "        address: 127.0.0.1:1936\n" /* 9 */
                           "routes:\n"                      /* 10 */
                           "  - name: all\n"                /* 11 */
                           "    pool: origins\n";           /* 12 */

static struct conf *load(const char *text, struct conf_errors *errs)
{
    struct conf_load_opts opts = {.resolve_names = false};
    return conf_load_buffer("t.yaml", text, strlen(text), &opts, errs);
}

/* Loading text must fail with exactly one error, equal to want. */
static void expect_error(const char *text, const char *want)
{
    struct conf_errors errs;
    struct conf *c = load(text, &errs);
    if (c || errs.n != 1 || strcmp(errs.msg[0], want) != 0) {
        print_error("config:\n%s\nwant: %s\ngot %zu errors:\n", text, want, errs.n);
        for (size_t i = 0; i < errs.n; i++)
            print_error("  %s\n", errs.msg[i]);
    }
    assert_null(c);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.msg[0], want);
    conf_errors_free(&errs);
}

/* BASE with one line replaced (1-based) or text inserted before it. */
static char *edit(int line, const char *replacement, bool insert)
{
    static char out[4096];
    const char *p = BASE;
    size_t used = 0;
    for (int n = 1; *p; n++) {
        const char *eol = strchr(p, '\n');
        size_t len = (size_t)(eol - p) + 1;
        if (n == line) {
            used += (size_t)snprintf(out + used, sizeof(out) - used, "%s", replacement);
            if (insert) {
                memcpy(out + used, p, len);
                used += len;
            }
        } else {
            memcpy(out + used, p, len);
            used += len;
        }
        p = eol + 1;
    }
    out[used] = '\0';
    return out;
}

static void test_valid_base_and_defaults(void **st)
{
    struct conf_errors errs;
    struct conf *c = load(BASE, &errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    assert_int_equal(c->workers, 0); /* auto */
    assert_int_equal(c->log.format, CONF_LOG_TEXT);
    assert_int_equal(c->log.level, CONF_LOG_INFO);
    assert_string_equal(c->log.access_log, "stderr");
    assert_int_equal(c->timeouts.handshake_ms, 10000);
    assert_int_equal(c->timeouts.connect_ms, 3000);
    assert_int_equal(c->timeouts.idle_ms, 60000);
    assert_int_equal(c->timeouts.drain_ms, 30000);
    assert_int_equal(c->limits.max_sessions, 20000);
    assert_int_equal(c->limits.preroute_bytes, 65536);
    assert_int_equal(c->limits.max_early_dials, 256);
    assert_int_equal(c->n_listeners, 1);
    assert_string_equal(c->listeners[0].name, "front");
    assert_int_equal(c->listeners[0].mode, CONF_MODE_TCP);
    assert_false(c->listeners[0].early_dial);
    assert_int_equal(c->n_pools, 1);
    assert_string_equal(c->pools[0].name, "origins");
    assert_int_equal(c->pools[0].n_nodes, 1);
    assert_int_equal(c->pools[0].nodes[0].weight, 1);
    assert_false(c->pools[0].nodes[0].backup);
    assert_int_equal(c->pools[0].nodes[0].max_sessions, 0);
    assert_int_equal(c->routes[0].policy, CONF_POLICY_WEIGHTED);
    assert_false(c->routes[0].match.present);
    conf_free(c);
}

static void test_full_config(void **st)
{
    const char *text = "workers: 3\n"
                       "log: {format: json, level: warn, access_log: off}\n"
                       "timeouts: {handshake: 5s, connect: 250ms, idle: 2m, drain: 1h}\n"
                       "limits: {max_sessions: 500, preroute_bytes: 1MiB}\n"
                       "listeners:\n"
                       "  - {name: a, address: '[::1]:1935', mode: tcp}\n"
                       "  - {name: b, address: 127.0.0.2:1935, mode: tcp}\n"
                       "pools:\n"
                       "  p:\n"
                       "    nodes:\n"
                       "      - {name: x, address: 127.0.0.1:1, weight: 1000, max_sessions: 7}\n"
                       "      - {name: y, address: '[::1]:2', backup: true}\n"
                       "routes:\n"
                       "  - name: r\n"
                       "    match: {listener: b}\n"
                       "    pool: p\n"
                       "    policy: least_sessions\n"
                       "  - {name: s, match: {}, pool: p}\n";
    struct conf_errors errs;
    struct conf *c = load(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(c);
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->log.format, CONF_LOG_JSON);
    assert_int_equal(c->log.level, CONF_LOG_WARN);
    assert_string_equal(c->log.access_log, "off");
    assert_int_equal(c->timeouts.handshake_ms, 5000);
    assert_int_equal(c->timeouts.connect_ms, 250);
    assert_int_equal(c->timeouts.idle_ms, 120000);
    assert_int_equal(c->timeouts.drain_ms, 3600000);
    assert_int_equal(c->limits.max_sessions, 500);
    assert_int_equal(c->limits.preroute_bytes, 1 << 20);
    assert_int_equal(c->listeners[0].address.ss.ss_family, AF_INET6);
    assert_int_equal(c->pools[0].nodes[0].weight, 1000);
    assert_int_equal(c->pools[0].nodes[0].max_sessions, 7);
    assert_true(c->pools[0].nodes[1].backup);
    assert_string_equal(c->routes[0].match.listener, "b");
    assert_int_equal(c->routes[0].policy, CONF_POLICY_LEAST_SESSIONS);
    assert_true(c->routes[1].match.present);
    conf_free(c);
}

static void test_unknown_key(void **st)
{
    expect_error(edit(9, "        wieght: 2\n", true),
                 "t.yaml:9:9: pools.origins.nodes[0].wieght: unknown key (expected one of: "
                 "name, address, weight, backup, max_sessions, send_proxy, max_dials, dial_queue, tls, stats, location, http)");
}

static void test_duplicate_key(void **st)
{
    expect_error(edit(1, "workers: 2\nworkers: 3\n", true),
                 "t.yaml:2:1: workers: duplicate key (first at line 1)");
}

static void test_wrong_type(void **st)
{
    expect_error(edit(1, "log: text\n", true), "t.yaml:1:6: log: must be a mapping (got a scalar)");
    expect_error("listeners: [{name: f, address: 127.0.0.1:1, mode: tcp}]\n"
                 "pools:\n"
                 "  origins:\n"
                 "    nodes: {name: a}\n"
                 "routes: [{name: r, pool: origins}]\n",
                 "t.yaml:4:12: pools.origins.nodes: must be a list of nodes (got a mapping)");
}

static void test_out_of_range(void **st)
{
    expect_error(edit(9, "        weight: 0\n", true),
                 "t.yaml:9:17: pools.origins.nodes[0].weight: must be 1..1000 (got 0)");
    expect_error(edit(1, "workers: 0\n", true), "t.yaml:1:10: workers: must be 1..256 (got 0)");
    expect_error(edit(1, "workers: many\n", true),
                 "t.yaml:1:10: workers: must be a whole number or auto (got \"many\")");
    expect_error(edit(1, "timeouts: {connect: 2h}\n", true),
                 "t.yaml:1:21: timeouts.connect: must be 10ms..600000ms (got 2h)");
}

static void test_bad_duration(void **st)
{
    expect_error(edit(1, "timeouts:\n  idle: 3 seconds\n", true),
                 "t.yaml:2:9: timeouts.idle: must be a duration like 500ms, 10s, 2m or 1h "
                 "(got \"3 seconds\")");
    expect_error(edit(1, "timeouts:\n  idle: 30\n", true),
                 "t.yaml:2:9: timeouts.idle: must be a duration like 500ms, 10s, 2m or 1h "
                 "(got \"30\")");
}

static void test_bad_size(void **st)
{
    expect_error(edit(1, "limits:\n  preroute_bytes: 64KB\n", true),
                 "t.yaml:2:19: limits.preroute_bytes: must be a size like 4096, 64KiB, 1MiB or "
                 "1GiB (got \"64KB\")");
}

static void test_bad_bool(void **st)
{
    expect_error(edit(9, "        backup: maybe\n", true),
                 "t.yaml:9:17: pools.origins.nodes[0].backup: must be true or false (got "
                 "\"maybe\")");
}

static void test_bad_address(void **st)
{
    expect_error(edit(9, "        address: 127.0.0.1\n", false),
                 "t.yaml:9:18: pools.origins.nodes[0].address: must be HOST:PORT or "
                 "[IPV6]:PORT (got \"127.0.0.1\")");
    expect_error(edit(3, "    address: 127.0.0.1:70000\n", false),
                 "t.yaml:3:14: listeners[0].address: port must be 1..65535 (got \"70000\")");
}

static void test_bad_enum(void **st)
{
    expect_error(edit(12, "    pool: origins\n    policy: roundrobin\n", false),
                 "t.yaml:13:13: routes[0].policy: must be one of: weighted, least_sessions, "
                 "stream_affinity, stream_location, geo_nearest (got \"roundrobin\")");
}

static void test_tls_shape(void **st)
{
    expect_error(edit(12, "    pool: origins\n    policy: geo_nearest\n", false),
                 "t.yaml:11:5: routes[0].policy: geo_nearest needs geo.database");
    /* tls: a list of certificates, each with cert and key; a known version */
    expect_error(edit(4, "    mode: tcp\n    tls: {certificates: []}\n", false),
                 "t.yaml:5:25: listeners[0].tls.certificates: must have at least one "
                 "certificate");
    expect_error(edit(4, "    mode: tcp\n    tls: {certificates: [{cert: a}]}\n", false),
                 "t.yaml:5:26: listeners[0].tls.certificates[0].key: is required");
    expect_error(edit(4,
                      "    mode: tcp\n    tls: {certificates: [{cert: a, key: b}], "
                      "min_version: \"1.1\"}\n",
                      false),
                 "t.yaml:5:59: listeners[0].tls.min_version: must be one of: 1.2, 1.3 (got "
                 "\"1.1\")");
    /* "tls:" alone turns TLS on: a listener then lacks its certificates */
    expect_error(edit(4, "    mode: tcp\n    tls:\n", false),
                 "t.yaml:5:9: listeners[0].tls.certificates: is required");
}

static void test_tls_keys(void **st)
{
    struct conf_errors errs;
    const char *text =
        "listeners:\n"
        "  - {name: s, address: 127.0.0.1:1935, tls: {certificates: [{cert: a.pem, key: a.key},"
        " {cert: b.pem, key: b.key}], min_version: \"1.3\"}}\n"
        "pools:\n"
        "  o:\n"
        "    nodes:\n"
        "      - {name: a, address: 127.0.0.1:1936, tls: {sni: o.example, ca: ca.pem}}\n"
        "      - {name: b, address: 127.0.0.1:1937, tls: {verify: false}}\n"
        "      - {name: c, address: 127.0.0.1:1938}\n"
        "      - name: d\n"
        "        address: 127.0.0.1:1939\n"
        "        tls:\n"
        "routes: [{name: r, pool: o}]\n";
    struct conf *c = load(text, &errs);
    assert_non_null(c);
    assert_true(c->listeners[0].tls.present);
    assert_int_equal(c->listeners[0].tls.n_certs, 2);
    assert_string_equal(c->listeners[0].tls.certs[1].key, "b.key");
    assert_int_equal(c->listeners[0].tls.min_version, CONF_TLS_1_3);
    const struct conf_node *n = c->pools[0].nodes;
    assert_true(n[0].tls.present && n[0].tls.verify);
    assert_string_equal(n[0].tls.sni, "o.example");
    assert_string_equal(n[0].tls.ca, "ca.pem");
    assert_true(n[1].tls.present && !n[1].tls.verify);
    assert_false(n[2].tls.present);
    assert_true(n[3].tls.present && n[3].tls.verify && !n[3].tls.ca); /* "tls:" alone */
    conf_free(c);
}

static void test_missing_required(void **st)
{
    expect_error(edit(12, "    policy: weighted\n", false),
                 "t.yaml:11:5: routes[0].pool: is required");
    expect_error("pools: {}\nroutes: [{name: r, pool: p}]\n"
                 "listeners: [{name: x, address: 127.0.0.1:1, mode: tcp}]\n",
                 "t.yaml:1:8: pools: must have at least one pool");
}

static void test_duplicate_names(void **st)
{
    expect_error(edit(10, "      - name: a\n        address: 127.0.0.1:1937\n", true),
                 "t.yaml:10:15: pools.origins.nodes[1].name: duplicate node name \"a\" in pool "
                 "\"origins\" (first at line 8)");
    expect_error(edit(5, "  - name: front\n    address: 127.0.0.1:1940\n    mode: tcp\n", true),
                 "t.yaml:5:11: listeners[1].name: duplicate listener name \"front\" (first at "
                 "line 2)");
    expect_error(edit(10, "  origins:\n    nodes: [{name: b, address: 127.0.0.1:2}]\n", true),
                 "t.yaml:10:3: pools.origins: duplicate pool name (first at line 6)");
}

static void test_unknown_pool(void **st)
{
    expect_error(edit(12, "    pool: edges\n", false),
                 "t.yaml:12:11: routes[0].pool: unknown pool \"edges\" (pools: origins)");
}

static void test_unknown_listener(void **st)
{
    expect_error(edit(12, "    pool: origins\n    match: {listener: back}\n", false),
                 "t.yaml:13:23: routes[0].match.listener: unknown listener \"back\"");
}

static void test_tcp_listener_without_route(void **st)
{
    expect_error(edit(12, "    pool: origins\n    match: {app: live}\n", false),
                 "t.yaml:2:5: listeners[0]: no route can take sessions from tcp listener "
                 "\"front\" (it needs a route whose match names no role, app or stream)");
}

static void test_rtmp_default_mode(void **st)
{
    struct conf_errors errs;
    struct conf *c = load(edit(4, "", false), &errs);
    assert_non_null(c);
    assert_int_equal(c->listeners[0].mode, CONF_MODE_RTMP);
    conf_free(c);
}

static void test_route_on_connect_needs_no_stream(void **st)
{
    expect_error(edit(12, "    pool: origins\n    route_on: connect\n    match: {role: play}\n",
                      false),
                 "t.yaml:11:5: routes[0].route_on: route_on: connect routes before role and "
                 "stream are known: its match may name only listener and app");
}

/* A second route after BASE's, lines 13-15, whose match is line 15. */
static char *with_args_route(const char *match_line, const char *route_on)
{
    static char text[4096];
    snprintf(text, sizeof(text), "%s  - name: hk\n    pool: origins%s\n%s", BASE, route_on,
             match_line);
    return text;
}

static void test_route_args(void **st)
{
    struct conf_errors errs;
    const char *text = with_args_route("    match: {args: {line: hk, quality: \"\", n: 1}}\n", "");
    struct conf *c = load(text, &errs);
    assert_non_null(c);
    assert_int_equal(errs.n, 0);
    assert_int_equal(c->n_routes, 2);
    assert_int_equal(c->routes[0].match.n_args, 0);
    assert_null(c->routes[0].match.args);
    const struct conf_match *m = &c->routes[1].match;
    assert_int_equal(m->n_args, 3);
    assert_string_equal(m->args[0], "line");
    assert_string_equal(m->args[1], "hk");
    assert_string_equal(m->args[2], "quality");
    assert_string_equal(m->args[3], "");
    assert_string_equal(m->args[4], "n");
    assert_string_equal(m->args[5], "1");
    assert_int_equal(m->args_mark.line, 15);
    conf_free(c);

    expect_error(with_args_route("    match: {args: [line, hk]}\n", ""),
                 "t.yaml:15:19: routes[1].match.args: must be a mapping of names to values "
                 "(got a list)");
    expect_error(with_args_route("    match: {args: {}}\n", ""),
                 "t.yaml:15:19: routes[1].match.args: must give 1..16 names (got 0)");
    expect_error(with_args_route("    match: {args: {line: }}\n", ""),
                 "t.yaml:15:26: routes[1].match.args.line: needs a value (\"\" for an empty one)");
    expect_error(with_args_route("    match: {args: {line: {a: b}}}\n", ""),
                 "t.yaml:15:26: routes[1].match.args.line: must be a single value (got a mapping)");
    expect_error(with_args_route("    match: {args: {line: a, line: b}}\n", ""),
                 "t.yaml:15:29: routes[1].match.args.line: duplicate name");
    expect_error(with_args_route("    match: {args: {\"a=b\": x}}\n", ""),
                 "t.yaml:15:20: routes[1].match.args.a=b: a name must be non-empty, without '=', "
                 "'&' or '?'");
    char many[600] = "    match: {args: {";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sk%d: v", i ? ", " : "", i);
    strcat(many, "}}\n");
    expect_error(with_args_route(many, ""),
                 "t.yaml:15:19: routes[1].match.args: must give 1..16 names (got 17)");
    /* route_on: connect is chosen before the stream (and its args) is read. */
    expect_error(with_args_route("    match: {args: {line: hk}}\n", "\n    route_on: connect"),
                 "t.yaml:16:19: routes[1].match.args: a route_on: connect route is chosen at "
                 "connect, before the stream's args are known: it may not match args");
}

static void test_geo_and_proxy_keys(void **st)
{
    struct conf_errors errs;
    const char *text =
        "geo: {database: /x.mmdb}\n"
        "listeners: [{name: r, address: 127.0.0.1:1935, proxy_protocol: any}]\n"
        "pools:\n"
        "  p:\n"
        "    nodes:\n"
        "      - {name: a, address: 127.0.0.1:1, send_proxy: v2,\n"
        "         location: {country: JP, lat: 35.6, lon: 139.7}}\n"
        "      - {name: b, address: 127.0.0.1:2, location: {country: HK}}\n"
        "routes:\n"
        "  - {name: asia, match: {country: [JP, KR], continent: [AS]}, pool: p,\n"
        "     policy: geo_nearest}\n";
    struct conf *c = load(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(c);
    assert_string_equal(c->geo.database, "/x.mmdb");
    assert_int_equal(c->listeners[0].proxy_protocol, CONF_PP_ANY);
    assert_int_equal(c->pools[0].nodes[0].send_proxy, CONF_PP_V2);
    assert_true(c->pools[0].nodes[0].location.present);
    assert_true(c->pools[0].nodes[0].location.lat == 35.6);
    assert_string_equal(c->pools[0].nodes[1].location.country, "HK");
    assert_int_equal(c->routes[0].match.n_country, 2);
    assert_string_equal(c->routes[0].match.country[1], "KR");
    assert_string_equal(c->routes[0].match.continent[0], "AS");
    conf_free(c);

    expect_error(edit(12, "    pool: origins\n    match: {country: [jp]}\n", false),
                 "t.yaml:13:23: routes[0].match.country[0]: must be an ISO 3166 country code "
                 "like JP (got \"jp\")");
    expect_error(edit(12, "    pool: origins\n    match: {continent: [EUROPE]}\n", false),
                 "t.yaml:13:25: routes[0].match.continent[0]: must be a continent code: AF, AN, "
                 "AS, EU, NA, OC or SA (got \"EUROPE\")");
    expect_error(edit(12, "    pool: origins\n    match: {country: [JP]}\n", false),
                 "t.yaml:13:22: routes[0].match: matching on country or continent needs "
                 "geo.database");
    expect_error(edit(9, "        location: {lat: 91, lon: 0}\n", true),
                 "t.yaml:9:25: pools.origins.nodes[0].location.lat: must be -90..90 (got 91)");
    expect_error(edit(4, "    mode: tcp\n    proxy_protocol: v3\n", false),
                 "t.yaml:5:21: listeners[0].proxy_protocol: must be one of: off, v1, v2, any "
                 "(got \"v3\")");
}

static void test_health_keys(void **st)
{
    struct conf_errors errs;
    const char *text =
        "listeners: [{name: r, address: 127.0.0.1:1935}]\n"
        "pools:\n"
        "  p:\n"
        "    health: {type: rtmp, app: live, interval: 500ms, timeout: 200ms, rise: 1, fall: 2}\n"
        "    slow_start: 30s\n"
        "    nodes:\n"
        "      - {name: a, address: 127.0.0.1:1,\n"
        "         stats: {kind: nginx-rtmp, url: \"http://127.0.0.1:8080/stat\"}}\n"
        "  q:\n"
        "    health: {}\n"
        "    nodes: [{name: b, address: 127.0.0.1:2, stats: {kind: srs, url: \"http://127.0.0.1\"}}]\n"
        "routes: [{name: r, pool: p, policy: stream_location}]\n";
    struct conf *c = load(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(c);
    struct conf_pool *p = &c->pools[0], *q = &c->pools[1];
    assert_int_equal(p->health.type, CONF_HC_RTMP);
    assert_int_equal(p->health.interval_ms, 500);
    assert_int_equal(p->health.jitter_ms, 50); /* a tenth of interval by default */
    assert_int_equal(p->slow_start_ms, 30000);
    assert_string_equal(p->nodes[0].stats.path, "/stat");
    assert_string_equal(p->nodes[0].stats.host, "127.0.0.1:8080");
    assert_int_equal(q->health.type, CONF_HC_TCP); /* defaults: tcp, 2s, 1s, rise 2, fall 3 */
    assert_int_equal(q->health.interval_ms, 2000);
    assert_int_equal(q->health.timeout_ms, 1000);
    assert_int_equal(q->health.rise, 2);
    assert_int_equal(q->health.fall, 3);
    assert_string_equal(q->nodes[0].stats.path, "/"); /* port 80, path / */
    conf_free(c);

    expect_error(edit(6, "  origins:\n    health: {interval: 1s, timeout: 2s}\n", false),
                 "t.yaml:7:13: pools.origins.health.timeout: must be shorter than interval "
                 "(1000ms)");
    expect_error(edit(6, "  origins:\n    health: {type: http}\n", false),
                 "t.yaml:7:13: pools.origins.health.type: http probes GET a path on the node's "
                 "stats host, and node \"a\" has no stats");
    expect_error(edit(9, "        stats: {kind: nginx-rtmp, url: \"ftp://x/stat\"}\n", true),
                 "t.yaml:9:16: pools.origins.nodes[0].stats.url: must be http://HOST:PORT/PATH "
                 "(got \"ftp://x/stat\")");
}

static void test_rtmp_limits(void **st)
{
    struct conf_errors errs;
    char text[1024];
    snprintf(text, sizeof(text),
             "limits: {max_chunk_size: 1MiB, max_message_size: 32KiB, max_amf_depth: 8, "
             "max_amf_string: 1KiB}\n%s",
             BASE);
    struct conf *c = load(text, &errs);
    assert_non_null(c);
    assert_int_equal(c->limits.max_chunk_size, 1 << 20);
    assert_int_equal(c->limits.max_message_size, 32768);
    assert_int_equal(c->limits.max_amf_depth, 8);
    assert_int_equal(c->limits.max_amf_string, 1024);
    conf_free(c);
    c = load(BASE, &errs); /* defaults */
    assert_int_equal(c->limits.max_chunk_size, 65536);
    assert_int_equal(c->limits.max_message_size, 16384);
    assert_int_equal(c->limits.max_amf_depth, 16);
    assert_int_equal(c->limits.max_amf_string, 4096);
    conf_free(c);
    expect_error(edit(1, "limits: {max_amf_depth: 100}\n", true),
                 "t.yaml:1:25: limits.max_amf_depth: must be 2..64 (got 100)");
}

static void test_yaml_syntax(void **st)
{
    expect_error("listeners:\n  - name: [unclosed\n",
                 "t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' (while "
                 "parsing a flow sequence, line 2)");
    expect_error("", "t.yaml:1:1: config is empty");
    expect_error("- a\n- b\n", "t.yaml:1:1: must be a mapping (got a list)");
}

static void test_second_document(void **st)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s---\nworkers: 2\n", BASE);
    expect_error(text, "t.yaml:14:1: only one YAML document is allowed in a config file");
}

static void test_size_cap(void **st)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false, .max_bytes = 16};
    struct conf *c = conf_load_buffer("t.yaml", BASE, strlen(BASE), &opts, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 1);
    char want[64];
    snprintf(want, sizeof(want), "t.yaml:1:1: config is too large (%zu bytes, limit 16)",
             strlen(BASE));
    assert_string_equal(errs.msg[0], want);
    conf_errors_free(&errs);
}

static void test_many_errors_all_reported(void **st)
{
    struct conf_errors errs;
    struct conf *c = load("workers: 0\nlog: {level: loud}\nfoo: 1\n", &errs);
    assert_null(c);
    /* workers, log.level, foo, then the three required keys. */
    assert_int_equal(errs.n, 6);
    assert_string_equal(errs.msg[3], "t.yaml:1:1: listeners: is required");
    conf_errors_free(&errs);
}

/* mode: http listeners, a node's http address, a route's require_live. */
static void test_http_listener(void **st)
{
    const char *ok = "listeners:\n"
                     "  - {name: web, address: 127.0.0.1:8081, mode: http,\n"
                     "     http: {paths: [\"/{app}/{stream}.flv\", \"/hls/{stream}-{seq}.ts\"],\n"
                     "            app: tv, trust_x_forwarded_for: true, add_forwarded: both,\n"
                     "            max_header: 8KiB, keepalive: 5s}}\n"
                     "  - {name: plain, address: 127.0.0.1:8082, mode: http}\n"
                     "pools:\n"
                     "  origins:\n"
                     "    nodes: [{name: a, address: 127.0.0.1:1936, http: {address: 127.0.0.1:8080}}]\n"
                     "routes:\n"
                     "  - {name: all, pool: origins, policy: stream_location, require_live: true}\n";
    struct conf_errors errs;
    struct conf *c = load(ok, &errs);
    if (!c)
        for (size_t i = 0; i < errs.n; i++)
            print_error("  %s\n", errs.msg[i]);
    assert_non_null(c);
    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->mode, CONF_MODE_HTTP);
    assert_int_equal(l->http.n_paths, 2);
    assert_string_equal(l->http.paths[1], "/hls/{stream}-{seq}.ts");
    assert_string_equal(l->http.app, "tv");
    assert_true(l->http.trust_x_forwarded_for);
    assert_int_equal(l->http.add_forwarded, CONF_FWD_BOTH);
    assert_int_equal(l->http.max_header, 8192);
    assert_int_equal(l->http.keepalive_ms, 5000);
    /* Defaults. */
    assert_int_equal(c->listeners[1].http.n_paths, 0);
    assert_false(c->listeners[1].http.trust_x_forwarded_for);
    assert_int_equal(c->listeners[1].http.add_forwarded, CONF_FWD_OFF);
    assert_int_equal(c->listeners[1].http.max_header, 16384);
    assert_int_equal(c->listeners[1].http.keepalive_ms, 30000);
    assert_true(c->pools[0].nodes[0].http.present);
    assert_string_equal(c->pools[0].nodes[0].http.address.text, "127.0.0.1:8080");
    assert_true(c->routes[0].require_live);
    assert_string_equal(conf_mode_name(CONF_MODE_HTTP), "http");
    conf_free(c);

    expect_error(edit(4, "    mode: http\n    http: {paths: [\"/{app}/x.flv\"]}\n", false),
                 "t.yaml:5:20: listeners[0].http.paths[0]: must contain {stream} (got \"/{app}/x.flv\")");
    expect_error(edit(4, "    mode: http\n    http: {paths: [\"/{app}{stream}\"]}\n", false),
                 "t.yaml:5:20: listeners[0].http.paths[0]: must put text between two placeholders "
                 "(got \"/{app}{stream}\")");
    expect_error(edit(4, "    mode: http\n    http: {paths: [\"/{stream}/{stream}.flv\"]}\n", false),
                 "t.yaml:5:20: listeners[0].http.paths[0]: may name each placeholder only once "
                 "(got \"/{stream}/{stream}.flv\")");
    expect_error(edit(4, "    mode: http\n    http: {paths: [\"/{who}/{stream}\"]}\n", false),
                 "t.yaml:5:20: listeners[0].http.paths[0]: knows only {app}, {stream} and {seq} "
                 "(got \"/{who}/{stream}\")");
    expect_error(edit(4, "    mode: tcp\n    http: {keepalive: 1s}\n", false),
                 "t.yaml:5:11: listeners[0].http: only a listener with mode: http takes it");
    expect_error(edit(4, "    mode: http\n    early_dial: true\n", false),
                 "t.yaml:5:17: listeners[0].early_dial: only a listener with mode: rtmp takes it "
                 "(a tcp listener always dials at once; an http one routes on its request)");
    expect_error(edit(12, "    pool: origins\n    require_live: true\n", false),
                 "t.yaml:13:19: routes[0].require_live: needs policy: stream_location (it knows "
                 "where streams are live)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_base_and_defaults),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_size),
        cmocka_unit_test(test_bad_bool),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_tls_shape),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_unknown_pool),
        cmocka_unit_test(test_unknown_listener),
        cmocka_unit_test(test_tcp_listener_without_route),
        cmocka_unit_test(test_rtmp_default_mode),
        cmocka_unit_test(test_route_on_connect_needs_no_stream),
        cmocka_unit_test(test_route_args),
        cmocka_unit_test(test_rtmp_limits),
        cmocka_unit_test(test_geo_and_proxy_keys),
        cmocka_unit_test(test_health_keys),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_second_document),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_many_errors_all_reported),
        cmocka_unit_test(test_http_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
