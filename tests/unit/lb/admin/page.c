/* The status page's snapshot: HTML escaping, the tables filled from the
 * JSON views (hostile stream and client names escaped), the shell without
 * the right to read, the size bound, and the page embedded at build time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/page.h"
#include "lb/admin/views.h"

#include "../../support.h"

static const char TMPL[] = "<html><body><h1>t</h1>" LB_PAGE_MARKER "<script>x()</script></body></html>";

static void test_escape(void **st)
{
    (void)st;
    char *s = lb_html_escape("a<b>&\"c'd");
    assert_string_equal(s, "a&lt;b&gt;&amp;&quot;c&#39;d");
    free(s);
    s = lb_html_escape(NULL);
    assert_string_equal(s, "");
    free(s);
    s = lb_html_escape("plain text, no change");
    assert_string_equal(s, "plain text, no change");
    free(s);
    s = lb_html_escape("&amp;");
    assert_string_equal(s, "&amp;amp;");
    free(s);
}

static void test_no_read(void **st)
{
    (void)st;
    size_t len = 0;
    char *html = lb_page_render(TMPL, strlen(TMPL), NULL, 0, &len);
    assert_non_null(html);
    assert_int_equal(strlen(html), len);
    assert_non_null(strstr(html, "data-state=\"no-token\""));
    assert_non_null(strstr(html, "admin token is needed"));
    assert_null(strstr(html, "<table"));
    assert_null(strstr(html, LB_PAGE_MARKER));
    /* What comes before and after the marker is kept, in order. */
    assert_true(strncmp(html, "<html><body><h1>t</h1><section", 30) == 0);
    assert_non_null(strstr(html, "</section><script>x()</script></body></html>"));
    free(html);
}

static json_object *parse(const char *s)
{
    json_object *j = json_tokener_parse(s);
    assert_non_null(j);
    return j;
}

static const char CONF[] = "listeners: [{name: rtmp, address: 127.0.0.1:1935}]\n"
                           "pools:\n"
                           "  hk:\n"
                           "    nodes:\n"
                           "      - {name: a, address: 127.0.0.1:1, weight: 10}\n"
                           "      - {name: b, address: 127.0.0.1:2}\n"
                           "routes:\n"
                           "  - {name: pub, match: {role: publish, app: 'li<ve>*'}, pool: hk}\n";

static void test_tables(void **st)
{
    (void)st;
    struct test_fx fx = test_fx_load(CONF, 1);
    struct ups_node *a = &fx.snap->pools[0].nodes[0];
    atomic_store(&a->live->sessions, 3);
    atomic_store(&a->live->health, UPS_DOWN);
    atomic_store(&a->live->health_since_ms, 1000000 - 65000);
    atomic_store(&a->live->bps_from_client, 2500000);
    atomic_store(&a->live->last_probe, 2); /* HC_L4_TIMEOUT + 1 */
    atomic_store(&a->live->last_probe_us, 1500);
    struct lb_page_state ps = {
        .upstreams = lb_view_upstreams(fx.snap, NULL, fx.conf, 0),
        .routes = lb_view_routes(fx.snap, NULL, fx.conf),
        .streams = parse("{\"streams\": [{\"app\": \"live\", \"stream\": \"<script>alert(1)</script>\","
                         " \"pool\": \"hk\", \"node\": \"a\", \"sources\": [\"routed\"],"
                         " \"publishers_here\": 1, \"players_here\": 2}]}"),
        .sessions = parse("{\"total\": 7, \"offset\": 0, \"limit\": 50, \"sessions\": [{\"client\":"
                          " \"127.0.0.1:5\", \"role\": \"play\", \"app\": \"live\", \"stream\":"
                          " \"a\\\"b'c&d\", \"pool\": \"hk\", \"node\": \"a\", \"state\": \"splicing\","
                          " \"age_ms\": 125000, \"bytes_from_client\": 2048,"
                          " \"bytes_to_client\": 3145728}]}"),
        .process = parse("{\"version\": \"9.9\", \"uptime_ms\": 3723000, \"config_path\": \"/e/r.yaml\","
                         " \"config_hash\": \"00ff\", \"generation\": 4, \"reload\": {\"ok\": 1,"
                         " \"failed\": 1, \"last\": {\"time_ms\": 990000, \"ok\": false, \"error\":"
                         " \"bad <yaml>\"}}, \"descriptors\": {\"open\": 12, \"limit\": 1024,"
                         " \"session_capacity\": 400, \"max_sessions\": 400}}"),
        .events = parse("{\"events\": [{\"seq\": 1, \"time_ms\": 995000, \"kind\": \"node_down\","
                        " \"pool\": \"hk\", \"node\": \"a\", \"text\": \"L4 <timeout>\"}]}"),
        .now_ms = 1000000,
    };
    size_t len = 0;
    char *html = lb_page_render(TMPL, strlen(TMPL), &ps, 0, &len);
    assert_non_null(html);
    assert_int_equal(strlen(html), len);
    assert_non_null(strstr(html, "data-state=\"filled\""));
    /* Names from clients and from the config are escaped, never raw. */
    assert_null(strstr(html, "<script>alert"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(html, "a&quot;b&#39;c&amp;d"));
    assert_non_null(strstr(html, "li&lt;ve&gt;*"));
    assert_non_null(strstr(html, "bad &lt;yaml&gt;"));
    assert_non_null(strstr(html, "L4 &lt;timeout&gt;"));
    /* State in words, numbers with units. */
    assert_non_null(strstr(html, "<tr data-node=\"a\">"));
    assert_non_null(strstr(html, "down for 1 min 5 s"));
    assert_non_null(strstr(html, "2.50 Mbit/s"));
    assert_non_null(strstr(html, "L4_TIMEOUT, 1.5 ms"));
    assert_non_null(strstr(html, "2 min 5 s"));
    assert_non_null(strstr(html, "2.0 KiB"));
    assert_non_null(strstr(html, "3.00 MiB"));
    assert_non_null(strstr(html, "1 shown of 7"));
    assert_non_null(strstr(html, "1 h 2 min"));
    assert_non_null(strstr(html, "refused: bad"));
    assert_null(strstr(html, "cut short"));
    free(html);

    /* The size bound: rows stop, and the page says so, still well formed. */
    html = lb_page_render(TMPL, strlen(TMPL), &ps, 64, &len);
    assert_non_null(html);
    assert_non_null(strstr(html, "cut short"));
    assert_null(strstr(html, "alert(1)"));
    assert_non_null(strstr(html, "</section><script>x()</script></body></html>"));
    free(html);

    json_object_put(ps.upstreams);
    json_object_put(ps.routes);
    json_object_put(ps.streams);
    json_object_put(ps.sessions);
    json_object_put(ps.process);
    json_object_put(ps.events);
    test_fx_free(&fx);
}

static void test_embedded_page(void **st)
{
    (void)st;
    /* The real page: self-contained (no external asset) and with one marker. */
    const char *p = (const char *)lb_status_html;
    assert_true(lb_status_html_len > 1000);
    assert_int_equal(p[lb_status_html_len], '\0');
    const char *m = strstr(p, LB_PAGE_MARKER);
    assert_non_null(m);
    assert_null(strstr(m + 1, LB_PAGE_MARKER));
    assert_null(strstr(p, "src=\"http"));
    assert_null(strstr(p, "href=\"http"));
    assert_null(strstr(p, "@import"));
    size_t len = 0;
    char *html = lb_page_render(p, lb_status_html_len, NULL, 0, &len);
    assert_non_null(html);
    assert_int_equal(len, lb_status_html_len - strlen(LB_PAGE_MARKER) + strlen(strstr(html, "<section")) -
                              strlen(strstr(html, "</section>")) + strlen("</section>"));
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_no_read),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_embedded_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
