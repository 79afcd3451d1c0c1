/* geo/: lookups against a database written at test time
 * (tests/geo/make_test_mmdb.pl), centroids, distance; and the geo_nearest
 * policy's ordering through the real router. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "geo/geo.h"
#include "upstream/upstream.h"

static const char *db_path;

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void test_lookups(void **st)
{
    char err[256];
    struct geo_db *db = geo_open(db_path, err, sizeof(err));
    assert_non_null(db);
    struct geo_info gi;
    struct sockaddr_in a = v4("203.0.113.77");
    assert_true(geo_lookup(db, (struct sockaddr *)&a, &gi));
    assert_string_equal(gi.country, "JP");
    assert_string_equal(gi.continent, "AS");
    assert_true(gi.has_location);
    assert_true(fabs(gi.lat - 35.68) < 1e-6 && fabs(gi.lon - 139.69) < 1e-6);
    assert_int_equal(gi.asn, 64500);
    a = v4("198.51.100.1");
    assert_true(geo_lookup(db, (struct sockaddr *)&a, &gi));
    assert_string_equal(gi.country, "US");
    assert_int_equal(gi.asn, 0); /* not in the database */
    assert_string_equal(gi.continent, "NA");
    a = v4("100.64.0.9"); /* country only */
    assert_true(geo_lookup(db, (struct sockaddr *)&a, &gi));
    assert_string_equal(gi.country, "HK");
    assert_false(gi.has_location);
    a = v4("127.0.0.1");
    assert_false(geo_lookup(db, (struct sockaddr *)&a, &gi));
    /* An IPv4-mapped IPv6 client finds the IPv4 network. */
    struct sockaddr_in6 m = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.0.2.4", &m.sin6_addr);
    assert_true(geo_lookup(db, (struct sockaddr *)&m, &gi));
    assert_string_equal(gi.country, "DE");
    geo_unref(db);
}

static void test_centroids_and_distance(void **st)
{
    char err[256];
    struct geo_db *db = geo_open(db_path, err, sizeof(err));
    double lat, lon;
    assert_true(geo_country_centroid(db, "JP", &lat, &lon));
    assert_true(fabs(lat - 35.68) < 1e-6 && fabs(lon - 139.69) < 1e-6);
    assert_true(geo_country_centroid(db, "de", &lat, &lon)); /* case-insensitive */
    assert_false(geo_country_centroid(db, "HK", &lat, &lon)); /* no located network */
    assert_false(geo_country_centroid(db, "FR", &lat, &lon));
    geo_unref(db);
    /* Tokyo-Frankfurt is about 9330 km; a point to itself is 0. */
    double d = geo_distance_km(35.68, 139.69, 50.11, 8.68);
    assert_true(d > 9300 && d < 9370);
    assert_true(geo_distance_km(10, 20, 10, 20) < 1e-9);
    /* Across the antimeridian: Fiji to Samoa is short. */
    assert_true(geo_distance_km(-17.7, 178.0, -13.8, -172.0) < 1200);
}

static void test_bad_files(void **st)
{
    char err[256];
    assert_null(geo_open("/nonexistent.mmdb", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open /nonexistent.mmdb"));
}

static void test_geo_nearest_order(void **st)
{
    const char *text =
        "geo: {database: x}\n"
        "listeners: [{name: r, address: 127.0.0.1:1935}]\n"
        "pools:\n"
        "  p:\n"
        "    nodes:\n"
        "      - {name: nowhere, address: 127.0.0.1:4}\n"
        "      - {name: fra, address: 127.0.0.1:1, location: {lat: 50.11, lon: 8.68}}\n"
        "      - {name: tyo, address: 127.0.0.1:2, location: {lat: 35.68, lon: 139.69}}\n"
        "      - {name: iad, address: 127.0.0.1:3, location: {lat: 39.04, lon: -77.49}}\n"
        "routes: [{name: n, pool: p, policy: geo_nearest}]\n";
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[128];
    struct conf *c = conf_load_buffer("t.yaml", text, strlen(text), &opts, &errs);
    assert_non_null(c);
    struct ups_snapshot *s = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
    assert_non_null(s);
    struct ups_candidates cand;
    struct ups_request req = {.listener = "r", .role = CONF_ROLE_PLAY, .app = "live",
                              .stream = "x", .has_location = true, .lat = 37.5, .lon = 127.0};
    ups_route_select(s, &req, &cand); /* Seoul */
    assert_int_equal(cand.n, 4);
    assert_string_equal(cand.node[0]->name, "tyo");
    assert_string_equal(cand.node[1]->name, "fra");
    assert_string_equal(cand.node[2]->name, "iad");
    assert_string_equal(cand.node[3]->name, "nowhere"); /* no location: last */
    req.lat = 40.7, req.lon = -74.0; /* New York */
    ups_route_select(s, &req, &cand);
    assert_string_equal(cand.node[0]->name, "iad");
    req.has_location = false; /* unknown client: config order */
    ups_route_select(s, &req, &cand);
    assert_string_equal(cand.node[0]->name, "nowhere");
    assert_string_equal(cand.node[1]->name, "fra");
    ups_snapshot_unref(s);
    conf_free(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TEST.mmdb\n", argv[0]);
        return 2;
    }
    db_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_centroids_and_distance),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_geo_nearest_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
