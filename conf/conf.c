/* Config loading: pass one is libyaml's document loader (nodes keep their
 * file positions), pass two walks the schema tables below (conf_schema.c),
 * pass three checks what spans several keys (names, references). */
#include "conf/conf.h"
#include "conf/conf-internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OFF(type, member) offsetof(type, member)
#define AT(obj, off, type) ((type *)((char *)(obj) + (off)))

/* ---- enums ------------------------------------------------------------ */

static const struct conf_enum_val log_formats[] = {
    {"text", CONF_LOG_TEXT, NULL}, {"json", CONF_LOG_JSON, NULL}, {NULL, 0, NULL}};
static const struct conf_enum_val log_levels[] = {{"debug", CONF_LOG_DEBUG, NULL},
                                                  {"info", CONF_LOG_INFO, NULL},
                                                  {"warn", CONF_LOG_WARN, NULL},
                                                  {"error", CONF_LOG_ERROR, NULL},
                                                  {NULL, 0, NULL}};
static const struct conf_enum_val modes[] = {
    {"rtmp", CONF_MODE_RTMP, NULL}, {"tcp", CONF_MODE_TCP, NULL}, {"http", CONF_MODE_HTTP, NULL},
    {NULL, 0, NULL}};
static const struct conf_enum_val forwardeds[] = {{"off", CONF_FWD_OFF, NULL},
                                                  {"x-forwarded-for", CONF_FWD_XFF, NULL},
                                                  {"forwarded", CONF_FWD_FORWARDED, NULL},
                                                  {"both", CONF_FWD_BOTH, NULL},
                                                  {NULL, 0, NULL}};

/* An http path pattern: an absolute path whose {placeholders} are {app},
 * {stream} (required) or {seq}, each at most once, never two in a row
 * (lb/front/http_req.c matches them, within a bounded number of steps). */
static const char *check_http_path(const char *v)
{
    static const char *const names[] = {"{app}", "{stream}", "{seq}"};
    bool stream = false, prev_ph = false, seen[3] = {false, false, false};
    if (v[0] != '/')
        return "must start with /";
    if (strlen(v) > 255)
        return "must be at most 255 bytes";
    for (const char *p = v; *p;) {
        if (*p == '}')
            return "has a } without {";
        if (*p != '{') {
            if (*p == '?' || *p == '#' || *p == ' ')
                return "must be a path without ?, # or spaces";
            p++;
            prev_ph = false;
            continue;
        }
        size_t k = 0;
        while (k < 3 && strncmp(p, names[k], strlen(names[k])) != 0)
            k++;
        if (k == 3)
            return "knows only {app}, {stream} and {seq}";
        if (prev_ph)
            return "must put text between two placeholders";
        if (seen[k])
            return "may name each placeholder only once";
        seen[k] = true;
        stream |= k == 1;
        prev_ph = true;
        p += strlen(names[k]);
    }
    return stream ? NULL : "must contain {stream}";
}
static const struct conf_enum_val policies[] = {
    {"weighted", CONF_POLICY_WEIGHTED, NULL},
    {"least_sessions", CONF_POLICY_LEAST_SESSIONS, NULL},
    {"stream_affinity", CONF_POLICY_STREAM_AFFINITY, NULL},
    {"stream_location", CONF_POLICY_STREAM_LOCATION, NULL},
    {"geo_nearest", CONF_POLICY_GEO_NEAREST, NULL},
    {NULL, 0, NULL}};
static const struct conf_enum_val roles[] = {
    {"publish", CONF_ROLE_PUBLISH, NULL}, {"play", CONF_ROLE_PLAY, NULL}, {NULL, 0, NULL}};
static const struct conf_enum_val pp_listen[] = {{"off", CONF_PP_OFF, NULL},
                                                 {"v1", CONF_PP_V1, NULL},
                                                 {"v2", CONF_PP_V2, NULL},
                                                 {"any", CONF_PP_ANY, NULL},
                                                 {NULL, 0, NULL}};
static const struct conf_enum_val pp_send[] = {
    {"off", CONF_PP_OFF, NULL}, {"v1", CONF_PP_V1, NULL}, {"v2", CONF_PP_V2, NULL}, {NULL, 0, NULL}};

static const struct conf_enum_val hc_types[] = {
    {"tcp", CONF_HC_TCP, NULL}, {"rtmp", CONF_HC_RTMP, NULL}, {"http", CONF_HC_HTTP, NULL},
    {NULL, 0, NULL}};
static const struct conf_enum_val ertmps[] = {
    {"forward", CONF_ERTMP_FORWARD, NULL}, {"off", CONF_ERTMP_OFF, NULL}, {NULL, 0, NULL}};
static const struct conf_enum_val stats_kinds[] = {{"nginx-rtmp", CONF_STATS_NGINX_RTMP, NULL},
                                                   {"srs", CONF_STATS_SRS, NULL},
                                                   {NULL, 0, NULL}};

static const char *check_country(const char *v)
{
    return strlen(v) == 2 && v[0] >= 'A' && v[0] <= 'Z' && v[1] >= 'A' && v[1] <= 'Z'
               ? NULL
               : "must be an ISO 3166 country code like JP";
}

static const char *check_continent(const char *v)
{
    static const char *codes[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};
    for (size_t i = 0; i < 7; i++)
        if (strcmp(v, codes[i]) == 0)
            return NULL;
    return "must be a continent code: AF, AN, AS, EU, NA, OC or SA";
}

static const struct conf_enum_val route_ons[] = {{"stream", CONF_ROUTE_ON_STREAM, NULL},
                                                 {"connect", CONF_ROUTE_ON_CONNECT, NULL},
                                                 {NULL, 0, NULL}};
static const struct conf_enum_val publish_conflicts[] = {
    {"auto", CONF_PUBCONF_AUTO, NULL},
    {"takeover", CONF_PUBCONF_TAKEOVER, NULL},
    {"reject", CONF_PUBCONF_REJECT, NULL},
    {NULL, 0, NULL}};

/* ---- schema ----------------------------------------------------------- */

#define F_END {NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL}
#define F_UNSUP(k, why) {k, CK_UNSUPPORTED, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, why, NULL}

static void conf_init(void *obj)
{
    struct conf *c = obj;
    c->workers = 0;
    c->log.format = CONF_LOG_TEXT;
    c->log.level = CONF_LOG_INFO;
    c->timeouts.handshake_ms = 10000;
    c->timeouts.connect_ms = 3000;
    c->timeouts.idle_ms = 60000;
    c->timeouts.drain_ms = 30000;
    c->timeouts.half_close_ms = 5000;
    c->timeouts.takeover_ms = 5000;
    c->limits.max_sessions = 20000;
    c->limits.max_sessions_per_ip = 0;
    c->limits.max_early_dials = CONF_DEFAULT_MAX_EARLY_DIALS;
    c->limits.preroute_bytes = 64 * 1024;
    c->limits.max_chunk_size = 64 * 1024;
    c->limits.max_message_size = 16 * 1024;
    c->limits.max_amf_depth = 16;
    c->limits.max_amf_string = 4096;
}

static void listener_init(void *obj)
{
    struct conf_listener *l = obj;
    l->mode = CONF_MODE_RTMP;
    l->tls.min_version = CONF_TLS_1_2;
    l->http.max_header = 16 * 1024;
    l->http.keepalive_ms = 30000;
    l->coalesce_ms = CONF_DEFAULT_COALESCE_MS;
}

static const struct conf_enum_val tls_versions[] = {
    {"1.2", CONF_TLS_1_2, NULL}, {"1.3", CONF_TLS_1_3, NULL}, {NULL, 0, NULL}};

#define LOFF(member) OFF(struct conf_listener, member)
static const struct conf_field listener_http_fields[] = {
    {"paths", CK_STRLIST, LOFF(http.paths), 0, 0, 0, 0, NULL, NULL, LOFF(http.n_paths),
     CONF_HTTP_MAX_PATHS, NULL, check_http_path},
    {"app", CK_STR, LOFF(http.app), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"trust_x_forwarded_for", CK_BOOL, LOFF(http.trust_x_forwarded_for), 0, 0, 0, 0, NULL, NULL,
     0, 0, NULL, NULL},
    {"add_forwarded", CK_ENUM, LOFF(http.add_forwarded), 0, 0, 0, 0, forwardeds, NULL, 0, 0,
     NULL, NULL},
    {"max_header", CK_SIZE, LOFF(http.max_header), 0, 0, 1024, 1024 * 1024, NULL, NULL, 0, 0,
     NULL, NULL},
    {"keepalive", CK_DURATION, LOFF(http.keepalive_ms), 0, 0, 0, 3600000, NULL, NULL, 0, 0, NULL,
     NULL},
    F_END};
/* Fields carry offsets from struct conf_listener (the walk gets the listener). */
static const struct conf_type listener_http_type = {"http", 0, LOFF(http.mark), CONF_NO_OFF,
                                                    LOFF(http.present), NULL,
                                                    listener_http_fields};

static void node_init(void *obj)
{
    struct conf_node *n = obj;
    n->weight = 1;
    n->max_dials = CONF_DEFAULT_MAX_DIALS;
    n->dial_queue = CONF_DEFAULT_DIAL_QUEUE;
    n->tls.verify = true;
    n->location.lat = NAN;
    n->location.lon = NAN;
}

static void route_init(void *obj)
{
    struct conf_route *r = obj;
    r->policy = CONF_POLICY_WEIGHTED;
    r->route_on = CONF_ROUTE_ON_STREAM;
    r->publish_conflict = CONF_PUBCONF_AUTO;
}

static const struct conf_field log_fields[] = {
    {"format", CK_ENUM, OFF(struct conf, log.format), 0, 0, 0, 0, log_formats, NULL, 0, 0, NULL, NULL},
    {"level", CK_ENUM, OFF(struct conf, log.level), 0, 0, 0, 0, log_levels, NULL, 0, 0, NULL, NULL},
    {"access_log", CK_STR, OFF(struct conf, log.access_log), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    F_END};

#define DUR(key, member, lo, hi) \
    {key, CK_DURATION, OFF(struct conf, member), 0, 0, lo, hi, NULL, NULL, 0, 0, NULL, NULL}
static const struct conf_field timeout_fields[] = {
    DUR("handshake", timeouts.handshake_ms, 100, 600000),
    DUR("connect", timeouts.connect_ms, 10, 600000),
    DUR("idle", timeouts.idle_ms, 0, 86400000),
    DUR("drain", timeouts.drain_ms, 0, 3600000),
    DUR("upgrade_drain", timeouts.upgrade_drain_ms, 0, 604800000),
    DUR("half_close", timeouts.half_close_ms, 0, 3600000),
    DUR("takeover", timeouts.takeover_ms, 100, 60000),
    F_END};

static const struct conf_field limit_fields[] = {
    {"max_sessions", CK_INT, OFF(struct conf, limits.max_sessions), CF_MARK,
     OFF(struct conf, limits.max_sessions_mark), 1, 1000000, NULL, NULL, 0, 0, NULL, NULL},
    {"max_sessions_per_ip", CK_INT, OFF(struct conf, limits.max_sessions_per_ip), 0, 0, 0, 1000000,
     NULL, NULL, 0, 0, NULL, NULL},
    {"max_handshakes_per_ip", CK_INT, OFF(struct conf, limits.max_handshakes_per_ip), 0, 0, 0,
     1000000, NULL, NULL, 0, 0, NULL, NULL},
    {"max_early_dials", CK_INT, OFF(struct conf, limits.max_early_dials), 0, 0, 0, 1000000, NULL,
     NULL, 0, 0, NULL, NULL},
    {"preroute_bytes", CK_SIZE, OFF(struct conf, limits.preroute_bytes), 0, 0, 4096, 16 << 20,
     NULL, NULL, 0, 0, NULL, NULL},
    {"max_chunk_size", CK_SIZE, OFF(struct conf, limits.max_chunk_size), 0, 0, 128, 16 << 20,
     NULL, NULL, 0, 0, NULL, NULL},
    {"max_message_size", CK_SIZE, OFF(struct conf, limits.max_message_size), 0, 0, 1024, 16 << 20,
     NULL, NULL, 0, 0, NULL, NULL},
    {"max_amf_depth", CK_INT, OFF(struct conf, limits.max_amf_depth), 0, 0, 2, 64, NULL, NULL, 0,
     0, NULL, NULL},
    {"max_amf_string", CK_SIZE, OFF(struct conf, limits.max_amf_string), 0, 0, 256, 1 << 20, NULL,
     NULL, 0, 0, NULL, NULL},
    F_END};

/* log, timeouts and limits are embedded in struct conf itself: their fields
 * carry offsets from the start of struct conf, so the sub-walk gets the
 * root object (off 0). */
static const struct conf_type log_type = {"log", 0, CONF_NO_OFF, CONF_NO_OFF, CONF_NO_OFF, NULL,
                                          log_fields};
static const struct conf_type timeouts_type = {"timeouts", 0, CONF_NO_OFF, CONF_NO_OFF,
                                               CONF_NO_OFF, NULL, timeout_fields};
static const struct conf_type limits_type = {"limits", 0, CONF_NO_OFF, CONF_NO_OFF, CONF_NO_OFF,
                                             NULL, limit_fields};

static const struct conf_field tls_cert_fields[] = {
    {"cert", CK_STR, OFF(struct conf_tls_cert, cert), CF_REQUIRED, 0, 0, 0, NULL, NULL, 0, 0, NULL,
     NULL},
    {"key", CK_STR, OFF(struct conf_tls_cert, key), CF_REQUIRED, 0, 0, 0, NULL, NULL, 0, 0, NULL,
     NULL},
    F_END};
static const struct conf_type tls_cert_type = {"certificate", sizeof(struct conf_tls_cert),
                                               OFF(struct conf_tls_cert, mark), CONF_NO_OFF,
                                               CONF_NO_OFF, NULL, tls_cert_fields};
static const struct conf_field tls_listen_fields[] = {
    {"certificates", CK_SEQ, OFF(struct conf_tls_listen, certs), CF_REQUIRED | CF_NONEMPTY, 0, 0,
     0, NULL, &tls_cert_type, OFF(struct conf_tls_listen, n_certs), CONF_MAX_TLS_CERTS, NULL,
     NULL},
    {"min_version", CK_ENUM, OFF(struct conf_tls_listen, min_version), 0, 0, 0, 0, tls_versions,
     NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type tls_listen_type = {
    "tls", sizeof(struct conf_tls_listen), OFF(struct conf_tls_listen, mark), CONF_NO_OFF,
    OFF(struct conf_tls_listen, present), NULL, tls_listen_fields};

static const struct conf_field listener_fields[] = {
    {"name", CK_STR, OFF(struct conf_listener, name), CF_REQUIRED | CF_MARK,
     OFF(struct conf_listener, name_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"address", CK_ADDR, OFF(struct conf_listener, address), CF_REQUIRED | CF_MARK | CF_PASSIVE,
     OFF(struct conf_listener, address_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"mode", CK_ENUM, OFF(struct conf_listener, mode), CF_MARK, OFF(struct conf_listener, mode_mark),
     0, 0, modes, NULL, 0, 0, NULL, NULL},
    {"proxy_protocol", CK_ENUM, OFF(struct conf_listener, proxy_protocol), 0, 0, 0, 0, pp_listen,
     NULL, 0, 0, NULL, NULL},
    {"tls", CK_STRUCT, OFF(struct conf_listener, tls), CF_NULL_PRESENT, 0, 0, 0, NULL,
     &tls_listen_type, 0, 0, NULL, NULL},
    {"http", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &listener_http_type, 0, 0, NULL, NULL},
    {"coalesce", CK_DURATION, OFF(struct conf_listener, coalesce_ms), CF_MARK,
     OFF(struct conf_listener, coalesce_mark), 0, 1000, NULL, NULL, 0, 0, NULL, NULL},
    {"early_dial", CK_BOOL, OFF(struct conf_listener, early_dial), CF_MARK,
     OFF(struct conf_listener, early_dial_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type listener_type = {
    "listener", sizeof(struct conf_listener), OFF(struct conf_listener, mark), CONF_NO_OFF,
    CONF_NO_OFF, listener_init, listener_fields};

static const struct conf_field location_fields[] = {
    {"country", CK_STR, OFF(struct conf_node, location.country), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL,
     NULL},
    {"lat", CK_DOUBLE, OFF(struct conf_node, location.lat), 0, 0, -90, 90, NULL, NULL, 0, 0, NULL,
     NULL},
    {"lon", CK_DOUBLE, OFF(struct conf_node, location.lon), 0, 0, -180, 180, NULL, NULL, 0, 0,
     NULL, NULL},
    F_END};
/* Fields carry offsets from struct conf_node (the walk gets the node). */
static const struct conf_type location_type = {"location", 0, OFF(struct conf_node, location.mark),
                                               CONF_NO_OFF, OFF(struct conf_node, location.present),
                                               NULL, location_fields};

static const struct conf_field stats_fields[] = {
    {"kind", CK_ENUM, OFF(struct conf_node, stats.kind), CF_REQUIRED, 0, 0, 0, stats_kinds, NULL, 0,
     0, NULL, NULL},
    {"url", CK_STR, OFF(struct conf_node, stats.url), CF_REQUIRED, 0, 0, 0, NULL, NULL, 0, 0, NULL,
     NULL},
    F_END};
static const struct conf_type stats_type = {"stats", 0, OFF(struct conf_node, stats.mark),
                                            CONF_NO_OFF, OFF(struct conf_node, stats.present), NULL,
                                            stats_fields};

static const struct conf_field node_tls_fields[] = {
    {"sni", CK_STR, OFF(struct conf_node, tls.sni), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"verify", CK_BOOL, OFF(struct conf_node, tls.verify), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL,
     NULL},
    {"ca", CK_STR, OFF(struct conf_node, tls.ca), CF_MARK, OFF(struct conf_node, tls.ca_mark), 0, 0,
     NULL, NULL, 0, 0, NULL, NULL},
    F_END};
/* Fields carry offsets from struct conf_node (the walk gets the node). */
static const struct conf_type node_tls_type = {"tls", 0, OFF(struct conf_node, tls.mark),
                                               CONF_NO_OFF, OFF(struct conf_node, tls.present),
                                               NULL, node_tls_fields};
static const struct conf_field node_http_fields[] = {
    {"address", CK_ADDR, OFF(struct conf_node, http.address), CF_REQUIRED, 0, 0, 0, NULL, NULL, 0,
     0, NULL, NULL},
    F_END};
static const struct conf_type node_http_type = {"http", 0, OFF(struct conf_node, http.mark),
                                                CONF_NO_OFF, OFF(struct conf_node, http.present),
                                                NULL, node_http_fields};

static const struct conf_field node_fields[] = {
    {"name", CK_STR, OFF(struct conf_node, name), CF_REQUIRED | CF_MARK,
     OFF(struct conf_node, name_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"address", CK_ADDR, OFF(struct conf_node, address), CF_REQUIRED, 0, 0, 0, NULL, NULL, 0, 0,
     NULL, NULL},
    {"weight", CK_INT, OFF(struct conf_node, weight), 0, 0, 1, 1000, NULL, NULL, 0, 0, NULL, NULL},
    {"backup", CK_BOOL, OFF(struct conf_node, backup), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"max_sessions", CK_INT, OFF(struct conf_node, max_sessions), 0, 0, 0, 1000000, NULL, NULL, 0,
     0, NULL, NULL},
    {"send_proxy", CK_ENUM, OFF(struct conf_node, send_proxy), 0, 0, 0, 0, pp_send, NULL, 0, 0,
     NULL, NULL},
    {"max_dials", CK_INT, OFF(struct conf_node, max_dials), 0, 0, 0, 100000, NULL, NULL, 0, 0,
     NULL, NULL},
    {"dial_queue", CK_INT, OFF(struct conf_node, dial_queue), 0, 0, 0, 1000000, NULL, NULL, 0, 0,
     NULL, NULL},
    /* "tls:" alone: RTMPS with the defaults, never silently plain */
    {"tls", CK_STRUCT, 0, CF_NULL_PRESENT, 0, 0, 0, NULL, &node_tls_type, 0, 0, NULL, NULL},
    {"stats", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &stats_type, 0, 0, NULL, NULL},
    {"location", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &location_type, 0, 0, NULL, NULL},
    {"http", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &node_http_type, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type node_type = {"node", sizeof(struct conf_node),
                                           OFF(struct conf_node, mark), CONF_NO_OFF, CONF_NO_OFF,
                                           node_init, node_fields};

#define HDUR(key, member, lo, hi) \
    {key, CK_DURATION, OFF(struct conf_pool, member), 0, 0, lo, hi, NULL, NULL, 0, 0, NULL, NULL}
static const struct conf_field health_fields[] = {
    {"type", CK_ENUM, OFF(struct conf_pool, health.type), 0, 0, 0, 0, hc_types, NULL, 0, 0, NULL,
     NULL},
    {"app", CK_STR, OFF(struct conf_pool, health.app), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"url", CK_STR, OFF(struct conf_pool, health.url), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    HDUR("interval", health.interval_ms, 100, 3600000),
    HDUR("timeout", health.timeout_ms, 10, 60000),
    HDUR("jitter", health.jitter_ms, 0, 3600000),
    {"rise", CK_INT, OFF(struct conf_pool, health.rise), 0, 0, 1, 100, NULL, NULL, 0, 0, NULL, NULL},
    {"fall", CK_INT, OFF(struct conf_pool, health.fall), 0, 0, 1, 100, NULL, NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type health_type = {"health", 0, OFF(struct conf_pool, health.mark),
                                             CONF_NO_OFF, OFF(struct conf_pool, health.present),
                                             NULL, health_fields};

static void pool_init(void *obj)
{
    struct conf_pool *p = obj;
    p->health.type = CONF_HC_TCP;
    p->health.interval_ms = 2000;
    p->health.timeout_ms = 1000;
    p->health.jitter_ms = -1;
    p->health.rise = 2;
    p->health.fall = 3;
    p->ertmp = CONF_ERTMP_FORWARD;
}

static const struct conf_field pool_fields[] = {
    {"nodes", CK_SEQ, OFF(struct conf_pool, nodes), CF_REQUIRED | CF_NONEMPTY, 0, 0, 0, NULL,
     &node_type, OFF(struct conf_pool, n_nodes), 1024, NULL, NULL},
    {"health", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &health_type, 0, 0, NULL, NULL},
    {"slow_start", CK_DURATION, OFF(struct conf_pool, slow_start_ms), 0, 0, 0, 3600000, NULL, NULL,
     0, 0, NULL, NULL},
    {"ertmp", CK_ENUM, OFF(struct conf_pool, ertmp), 0, 0, 0, 0, ertmps, NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type pool_type = {"pool", sizeof(struct conf_pool),
                                           OFF(struct conf_pool, mark), OFF(struct conf_pool, name),
                                           CONF_NO_OFF, pool_init, pool_fields};

static const struct conf_field match_fields[] = {
    {"listener", CK_STR, OFF(struct conf_match, listener), CF_MARK,
     OFF(struct conf_match, listener_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"role", CK_ENUM, OFF(struct conf_match, role), 0, 0, 0, 0, roles, NULL, 0, 0, NULL, NULL},
    {"app", CK_STR, OFF(struct conf_match, app), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"stream", CK_STR, OFF(struct conf_match, stream), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"country", CK_STRLIST, OFF(struct conf_match, country), CF_MARK,
     OFF(struct conf_match, geo_mark), 0, 0, NULL, NULL, OFF(struct conf_match, n_country), 300,
     NULL, check_country},
    {"continent", CK_STRLIST, OFF(struct conf_match, continent), CF_MARK,
     OFF(struct conf_match, geo_mark), 0, 0, NULL, NULL, OFF(struct conf_match, n_continent), 7,
     NULL, check_continent},
    {"args", CK_STRMAP, OFF(struct conf_match, args), CF_MARK, OFF(struct conf_match, args_mark),
     0, 0, NULL, NULL, OFF(struct conf_match, n_args), CONF_MAX_ROUTE_ARGS, NULL, NULL},
    F_END};
static const struct conf_type match_type = {"match", sizeof(struct conf_match), CONF_NO_OFF,
                                            CONF_NO_OFF, OFF(struct conf_match, present), NULL,
                                            match_fields};

static const struct conf_field route_fields[] = {
    {"name", CK_STR, OFF(struct conf_route, name), CF_REQUIRED | CF_MARK,
     OFF(struct conf_route, name_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"match", CK_STRUCT, OFF(struct conf_route, match), 0, 0, 0, 0, NULL, &match_type, 0, 0, NULL, NULL},
    {"pool", CK_STR, OFF(struct conf_route, pool), CF_REQUIRED | CF_MARK,
     OFF(struct conf_route, pool_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"policy", CK_ENUM, OFF(struct conf_route, policy), 0, 0, 0, 0, policies, NULL, 0, 0, NULL, NULL},
    {"route_on", CK_ENUM, OFF(struct conf_route, route_on), 0, 0, 0, 0, route_ons, NULL, 0, 0,
     NULL, NULL},
    {"publish_conflict", CK_ENUM, OFF(struct conf_route, publish_conflict), 0, 0, 0, 0,
     publish_conflicts, NULL, 0, 0, NULL, NULL},
    {"require_live", CK_BOOL, OFF(struct conf_route, require_live), CF_MARK,
     OFF(struct conf_route, require_live_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type route_type = {"route", sizeof(struct conf_route),
                                            OFF(struct conf_route, mark), CONF_NO_OFF, CONF_NO_OFF,
                                            route_init, route_fields};

static const struct conf_field geo_fields[] = {
    {"database", CK_STR, OFF(struct conf, geo.database), CF_REQUIRED | CF_MARK,
     OFF(struct conf, geo.database_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    F_END};
static const struct conf_type geo_type = {"geo", 0, CONF_NO_OFF, CONF_NO_OFF, CONF_NO_OFF, NULL,
                                          geo_fields};

static const struct conf_field admin_fields[] = {
    {"address", CK_ADDR, OFF(struct conf, admin.address), CF_MARK | CF_PASSIVE,
     OFF(struct conf, admin.address_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"token_file", CK_STR, OFF(struct conf, admin.token_file), CF_MARK,
     OFF(struct conf, admin.token_file_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"public_read", CK_BOOL, OFF(struct conf, admin.public_read), 0, 0, 0, 0, NULL, NULL, 0, 0,
     NULL, NULL},
    {"state_file", CK_STR, OFF(struct conf, admin.state_file), CF_MARK,
     OFF(struct conf, admin.state_file_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"hooks_secret_file", CK_STR, OFF(struct conf, admin.hooks_secret_file), CF_MARK,
     OFF(struct conf, admin.hooks_secret_file_mark), 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    F_END};
/* Fields carry offsets from struct conf (the walk gets the root). */
static const struct conf_type admin_type = {"admin", 0, OFF(struct conf, admin.mark), CONF_NO_OFF,
                                            OFF(struct conf, admin.present), NULL, admin_fields};

static const struct conf_field root_fields[] = {
    {"workers", CK_WORKERS, OFF(struct conf, workers), 0, 0, 1, 256, NULL, NULL, 0, 0, NULL, NULL},
    {"pid_file", CK_STR, OFF(struct conf, pid_file), 0, 0, 0, 0, NULL, NULL, 0, 0, NULL, NULL},
    {"log", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &log_type, 0, 0, NULL, NULL},
    {"timeouts", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &timeouts_type, 0, 0, NULL, NULL},
    {"limits", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &limits_type, 0, 0, NULL, NULL},
    {"listeners", CK_SEQ, OFF(struct conf, listeners), CF_REQUIRED | CF_NONEMPTY, 0, 0, 0, NULL,
     &listener_type, OFF(struct conf, n_listeners), 64, NULL, NULL},
    {"geo", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &geo_type, 0, 0, NULL, NULL},
    {"admin", CK_STRUCT, 0, 0, 0, 0, 0, NULL, &admin_type, 0, 0, NULL, NULL},
    {"pools", CK_NAMED_MAP, OFF(struct conf, pools), CF_REQUIRED | CF_NONEMPTY, 0, 0, 0, NULL,
     &pool_type, OFF(struct conf, n_pools), 256, NULL, NULL},
    {"routes", CK_SEQ, OFF(struct conf, routes), CF_REQUIRED | CF_NONEMPTY, 0, 0, 0, NULL,
     &route_type, OFF(struct conf, n_routes), 1024, NULL, NULL},
    F_END};
static const struct conf_type root_type = {"config", sizeof(struct conf), CONF_NO_OFF,
                                           CONF_NO_OFF, CONF_NO_OFF, conf_init, root_fields};

/* ---- the schema, for the reference docs -------------------------------- */

/* Defaults that are not in the init functions: filled in after the walk
 * (conf_load_buffer, cross_check). */
static const struct {
    const char *path, *def;
} computed_defaults[] = {
    {"log.access_log", CONF_DEFAULT_ACCESS_LOG},
    {"admin.address", CONF_ADMIN_DEFAULT_ADDRESS},
    {"pools.*.health.app", CONF_DEFAULT_HEALTH_APP},
    {"pools.*.health.url", CONF_DEFAULT_HEALTH_URL},
    {"pools.*.health.jitter", "interval/10"},
};

static const char *const kind_names[] = {
    [CK_STR] = "string",       [CK_INT] = "integer",     [CK_WORKERS] = "integer|auto",
    [CK_DURATION] = "duration", [CK_SIZE] = "size",       [CK_BOOL] = "bool",
    [CK_ENUM] = "enum",        [CK_ADDR] = "address",    [CK_STRUCT] = "mapping",
    [CK_SEQ] = "list",         [CK_NAMED_MAP] = "map",   [CK_UNSUPPORTED] = "unsupported",
    [CK_DOUBLE] = "number",    [CK_STRLIST] = "list",    [CK_STRMAP] = "map",
};

/* A value as a config file would spell it: 10s, 500ms, 2m, 64KiB, 1MiB. */
static void spell(const struct conf_field *f, void *obj, char *buf, size_t len)
{
    int64_t v;
    snprintf(buf, len, "-");
    switch (f->kind) {
    case CK_STR: {
        const char *s = *AT(obj, f->off, char *);
        if (s)
            snprintf(buf, len, "%s", s);
        return;
    }
    case CK_INT:
        snprintf(buf, len, "%lld", (long long)*AT(obj, f->off, int64_t));
        return;
    case CK_WORKERS:
        v = *AT(obj, f->off, int64_t);
        if (v == 0)
            snprintf(buf, len, "auto");
        else
            snprintf(buf, len, "%lld", (long long)v);
        return;
    case CK_DURATION:
        v = *AT(obj, f->off, int64_t);
        if (v < 0)
            return;
        if (v >= 60000 && v % 60000 == 0)
            snprintf(buf, len, "%lldm", (long long)(v / 60000));
        else if (v % 1000 == 0)
            snprintf(buf, len, "%llds", (long long)(v / 1000));
        else
            snprintf(buf, len, "%lldms", (long long)v);
        return;
    case CK_SIZE:
        v = *AT(obj, f->off, int64_t);
        if (v > 0 && v % (1 << 20) == 0)
            snprintf(buf, len, "%lldMiB", (long long)(v >> 20));
        else if (v > 0 && v % 1024 == 0)
            snprintf(buf, len, "%lldKiB", (long long)(v >> 10));
        else
            snprintf(buf, len, "%lld", (long long)v);
        return;
    case CK_BOOL:
        snprintf(buf, len, "%s", *AT(obj, f->off, bool) ? "true" : "false");
        return;
    case CK_ENUM:
        for (const struct conf_enum_val *e = f->enums; e->name; e++)
            if (e->value == *AT(obj, f->off, int)) {
                snprintf(buf, len, "%s", e->name);
                return;
            }
        return;
    case CK_DOUBLE: {
        double d = *AT(obj, f->off, double);
        if (!isnan(d))
            snprintf(buf, len, "%g", d);
        return;
    }
    default:
        return;
    }
}

static void dump_type(FILE *out, const struct conf_type *t, const char *prefix, void *obj);

static void dump_elements(FILE *out, const struct conf_field *f, const char *path)
{
    char sub[256];
    int n = snprintf(sub, sizeof(sub), "%s%s", path, f->kind == CK_SEQ ? "[]" : ".*");
    if (n < 0 || (size_t)n >= sizeof(sub))
        return;
    char *elem = calloc(1, f->sub->size);
    if (!elem)
        return;
    if (f->sub->init)
        f->sub->init(elem);
    dump_type(out, f->sub, sub, elem);
    conf__free_struct(f->sub, elem);
    free(elem);
}

static void dump_type(FILE *out, const struct conf_type *t, const char *prefix, void *obj)
{
    for (const struct conf_field *f = t->fields; f->key; f++) {
        char path[256], def[128];
        int n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", f->key);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        spell(f, obj, def, sizeof(def));
        for (size_t i = 0; i < sizeof(computed_defaults) / sizeof(computed_defaults[0]); i++)
            if (strcmp(computed_defaults[i].path, path) == 0)
                snprintf(def, sizeof(def), "%s", computed_defaults[i].def);
        if (f->flags & CF_REQUIRED)
            snprintf(def, sizeof(def), "required");
        char kind[300];
        snprintf(kind, sizeof(kind), "%s", kind_names[f->kind]);
        if (f->kind == CK_ENUM) {
            size_t used = 0;
            for (const struct conf_enum_val *e = f->enums; e->name; e++) {
                int k = snprintf(kind + used, sizeof(kind) - used, "%s%s", used ? "|" : "",
                                 e->name);
                if (k < 0 || (size_t)k >= sizeof(kind) - used)
                    break;
                used += (size_t)k;
            }
        }
        fprintf(out, "%s\t%s\t%s\n", path, kind, def);
        if (f->kind == CK_STRUCT)
            dump_type(out, f->sub, path, AT(obj, f->off, char));
        else if (f->kind == CK_SEQ || f->kind == CK_NAMED_MAP)
            dump_elements(out, f, path);
    }
}

void conf_schema_dump(FILE *out)
{
    struct conf *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    conf_init(c);
    dump_type(out, &root_type, "", c);
    conf__free_struct(&root_type, c);
    free(c);
}

/* ---- names ------------------------------------------------------------ */

const char *conf_policy_name(int policy)
{
    for (const struct conf_enum_val *e = policies; e->name; e++)
        if (e->value == policy)
            return e->name;
    return "?";
}

int conf_policy_from_name(const char *name)
{
    for (const struct conf_enum_val *e = policies; e->name; e++)
        if (name && strcmp(e->name, name) == 0)
            return e->value;
    return -1;
}

const char *conf_mode_name(int mode)
{
    return mode == CONF_MODE_TCP ? "tcp" : mode == CONF_MODE_HTTP ? "http" : "rtmp";
}

const char *conf_role_name(int role)
{
    return role == CONF_ROLE_PUBLISH ? "publish" : role == CONF_ROLE_PLAY ? "play" : "-";
}

const struct conf_pool *conf_find_pool(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_pools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return &c->pools[i];
    return NULL;
}

/* ---- pass three: what spans several keys ------------------------------ */

static bool same_addr(const struct conf_addr *a, const struct conf_addr *b)
{
    return a->len == b->len && a->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static bool route_takes_tcp(const struct conf_route *r, const char *listener)
{
    const struct conf_match *m = &r->match;
    if (m->role != CONF_ROLE_ANY || m->app || m->stream || m->n_args)
        return false;
    return !m->listener || strcmp(m->listener, listener) == 0;
}

static void cross_check(struct conf_ctx *ctx, struct conf *c)
{
    char path[128];

    for (size_t i = 0; i < c->n_listeners; i++) {
        struct conf_listener *l = &c->listeners[i];
        snprintf(path, sizeof(path), "listeners[%zu]", i);
        for (size_t j = 0; j < i; j++) {
            struct conf_listener *o = &c->listeners[j];
            if (l->name && o->name && strcmp(l->name, o->name) == 0) {
                snprintf(path, sizeof(path), "listeners[%zu].name", i);
                conf__error(ctx, l->name_mark, path,
                            "duplicate listener name \"%s\" (first at line %u)", l->name,
                            o->name_mark.line);
            }
            if (same_addr(&l->address, &o->address)) {
                snprintf(path, sizeof(path), "listeners[%zu].address", i);
                conf__error(ctx, l->address_mark, path,
                            "address %s is already used by listener \"%s\"", l->address.text,
                            o->name ? o->name : "?");
            }
        }
    }

    for (size_t i = 0; i < c->n_listeners; i++) {
        struct conf_listener *l = &c->listeners[i];
        if (l->http.present && l->mode != CONF_MODE_HTTP) {
            snprintf(path, sizeof(path), "listeners[%zu].http", i);
            conf__error(ctx, l->http.mark, path, "only a listener with mode: http takes it");
        }
        if (l->early_dial_mark.line && l->mode != CONF_MODE_RTMP) {
            snprintf(path, sizeof(path), "listeners[%zu].early_dial", i);
            conf__error(ctx, l->early_dial_mark, path,
                        "only a listener with mode: rtmp takes it (a tcp listener always dials "
                        "at once; an http one routes on its request)");
        }
    }

    for (size_t r = 0; r < c->n_routes; r++) {
        struct conf_route *rt = &c->routes[r];
        if (rt->require_live && rt->policy != CONF_POLICY_STREAM_LOCATION) {
            snprintf(path, sizeof(path), "routes[%zu].require_live", r);
            conf__error(ctx, rt->require_live_mark, path,
                        "needs policy: stream_location (it knows where streams are live)");
        }
    }

    for (size_t i = 0; i < c->n_listeners && c->admin.address.len; i++)
        if (same_addr(&c->admin.address, &c->listeners[i].address))
            conf__error(ctx, c->admin.address_mark, "admin.address",
                        "address %s is already used by listener \"%s\"", c->admin.address.text,
                        c->listeners[i].name ? c->listeners[i].name : "?");

    for (size_t p = 0; p < c->n_pools; p++) {
        struct conf_pool *pool = &c->pools[p];
        if (pool->health.present) {
            struct conf_health *h = &pool->health;
            if (h->jitter_ms < 0)
                h->jitter_ms = h->interval_ms / 10;
            if (h->timeout_ms >= h->interval_ms) {
                snprintf(path, sizeof(path), "pools.%s.health.timeout", pool->name);
                conf__error(ctx, h->mark, path, "must be shorter than interval (%lldms)",
                            (long long)h->interval_ms);
            }
            if (!h->app)
                h->app = strdup(CONF_DEFAULT_HEALTH_APP);
            if (!h->url)
                h->url = strdup(CONF_DEFAULT_HEALTH_URL);
        }
        for (size_t i = 0; i < pool->n_nodes; i++) {
            struct conf_node *n = &pool->nodes[i];
            if (n->stats.present && n->stats.url) {
                /* http://HOST:PORT/PATH */
                char hostport[300], err[256];
                const char *u = n->stats.url;
                const char *rest = strncmp(u, "http://", 7) == 0 ? u + 7 : NULL;
                const char *slash = rest ? strchr(rest, '/') : NULL;
                size_t hl = rest ? (slash ? (size_t)(slash - rest) : strlen(rest)) : 0;
                snprintf(path, sizeof(path), "pools.%s.nodes[%zu].stats.url", pool->name, i);
                if (!rest || hl == 0 || hl >= sizeof(hostport)) {
                    conf__error(ctx, n->stats.mark, path,
                                "must be http://HOST:PORT/PATH (got \"%s\")", u);
                } else {
                    memcpy(hostport, rest, hl);
                    hostport[hl] = '\0';
                    if (!strchr(hostport, ':') || hostport[hl - 1] == ']')
                        snprintf(hostport + hl, sizeof(hostport) - hl, ":80");
                    if (conf_parse_addr(hostport, ctx->resolve, false, &n->stats.addr, err,
                                        sizeof(err)) < 0)
                        conf__error(ctx, n->stats.mark, path, "%s", err);
                    n->stats.path = strdup(slash ? slash : "/");
                    n->stats.host = strndup(rest, hl);
                }
            }
            if (pool->health.present && pool->health.type == CONF_HC_HTTP && !n->stats.present) {
                snprintf(path, sizeof(path), "pools.%s.health.type", pool->name);
                conf__error(ctx, pool->health.mark, path,
                            "http probes GET a path on the node's stats host, and node \"%s\" "
                            "has no stats",
                            n->name ? n->name : "?");
            }
            if (n->location.present && isnan(n->location.lat) != isnan(n->location.lon)) {
                snprintf(path, sizeof(path), "pools.%s.nodes[%zu].location", pool->name, i);
                conf__error(ctx, n->location.mark, path, "give both lat and lon, or neither");
            } else if (n->location.present && isnan(n->location.lat) && !n->location.country) {
                snprintf(path, sizeof(path), "pools.%s.nodes[%zu].location", pool->name, i);
                conf__error(ctx, n->location.mark, path, "needs lat and lon, or a country");
            }
        }
        for (size_t i = 0; i < pool->n_nodes; i++)
            for (size_t j = 0; j < i; j++) {
                struct conf_node *a = &pool->nodes[i], *b = &pool->nodes[j];
                if (a->name && b->name && strcmp(a->name, b->name) == 0) {
                    snprintf(path, sizeof(path), "pools.%s.nodes[%zu].name", pool->name, i);
                    conf__error(ctx, a->name_mark, path,
                                "duplicate node name \"%s\" in pool \"%s\" (first at line %u)",
                                a->name, pool->name, b->name_mark.line);
                }
            }
    }

    for (size_t i = 0; i < c->n_routes; i++) {
        struct conf_route *r = &c->routes[i];
        for (size_t j = 0; j < i; j++)
            if (r->name && c->routes[j].name && strcmp(r->name, c->routes[j].name) == 0) {
                snprintf(path, sizeof(path), "routes[%zu].name", i);
                conf__error(ctx, r->name_mark, path,
                            "duplicate route name \"%s\" (first at line %u)", r->name,
                            c->routes[j].name_mark.line);
            }
        if (r->route_on == CONF_ROUTE_ON_CONNECT && r->match.n_args) {
            snprintf(path, sizeof(path), "routes[%zu].match.args", i);
            conf__error(ctx, r->match.args_mark, path,
                        "a route_on: connect route is chosen at connect, before the stream's "
                        "args are known: it may not match args");
        } else if (r->route_on == CONF_ROUTE_ON_CONNECT &&
            (r->match.role != CONF_ROLE_ANY || r->match.stream)) {
            snprintf(path, sizeof(path), "routes[%zu].route_on", i);
            conf__error(ctx, r->mark, path,
                        "route_on: connect routes before role and stream are known: its match "
                        "may name only listener and app");
        }
        if (r->pool && !conf_find_pool(c, r->pool)) {
            char names[256];
            size_t used = 0;
            names[0] = '\0';
            for (size_t p = 0; p < c->n_pools; p++) {
                int n = snprintf(names + used, sizeof(names) - used, "%s%s", p ? ", " : "",
                                 c->pools[p].name);
                if (n < 0 || (size_t)n >= sizeof(names) - used)
                    break;
                used += (size_t)n;
            }
            snprintf(path, sizeof(path), "routes[%zu].pool", i);
            conf__error(ctx, r->pool_mark, path, "unknown pool \"%s\" (pools: %s)", r->pool,
                        used ? names : "none");
        }
        if ((r->match.n_country || r->match.n_continent) && !c->geo.database) {
            snprintf(path, sizeof(path), "routes[%zu].match", i);
            conf__error(ctx, r->match.geo_mark, path,
                        "matching on country or continent needs geo.database");
        }
        if (r->policy == CONF_POLICY_GEO_NEAREST && !c->geo.database) {
            snprintf(path, sizeof(path), "routes[%zu].policy", i);
            conf__error(ctx, r->mark, path, "geo_nearest needs geo.database");
        }
        if (r->match.listener) {
            bool found = false;
            for (size_t l = 0; l < c->n_listeners; l++)
                if (c->listeners[l].name && strcmp(c->listeners[l].name, r->match.listener) == 0)
                    found = true;
            if (!found) {
                snprintf(path, sizeof(path), "routes[%zu].match.listener", i);
                conf__error(ctx, r->match.listener_mark, path, "unknown listener \"%s\"",
                            r->match.listener);
            }
        }
    }

    /* A tcp listener has no role/app/stream: some route must be able to take it. */
    if (ctx->errs->n == 0) {
        for (size_t i = 0; i < c->n_listeners; i++) {
            struct conf_listener *l = &c->listeners[i];
            if (l->mode != CONF_MODE_TCP)
                continue;
            bool taken = false;
            for (size_t r = 0; r < c->n_routes && !taken; r++)
                taken = route_takes_tcp(&c->routes[r], l->name);
            if (!taken) {
                snprintf(path, sizeof(path), "listeners[%zu]", i);
                conf__error(ctx, l->mark, path,
                            "no route can take sessions from tcp listener \"%s\" (it needs a "
                            "route whose match names no role, app or stream)",
                            l->name);
            }
        }
    }
}

/* ---- loading ---------------------------------------------------------- */

static void yaml_error(struct conf_ctx *ctx, yaml_parser_t *p)
{
    struct conf_mark m = {(unsigned)p->problem_mark.line + 1, (unsigned)p->problem_mark.column + 1};
    if (p->context)
        conf__error(ctx, m, NULL, "YAML syntax error: %s (%s, line %u)",
                    p->problem ? p->problem : "unknown", p->context,
                    (unsigned)p->context_mark.line + 1);
    else
        conf__error(ctx, m, NULL, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
}

struct conf *conf_load_buffer(const char *name, const char *buf, size_t len,
                              const struct conf_load_opts *opts, struct conf_errors *errs)
{
    struct conf_ctx ctx;
    yaml_parser_t parser;
    yaml_document_t doc;
    size_t max = opts && opts->max_bytes ? opts->max_bytes : CONF_MAX_FILE_BYTES;
    struct conf_mark top = {1, 1};

    memset(errs, 0, sizeof(*errs));
    memset(&ctx, 0, sizeof(ctx));
    ctx.file = name;
    ctx.errs = errs;
    ctx.resolve = opts ? opts->resolve_names : true;

    if (len > max) {
        conf__error(&ctx, top, NULL, "config is too large (%zu bytes, limit %zu)", len, max);
        return NULL;
    }
    if (!yaml_parser_initialize(&parser)) {
        conf__error(&ctx, top, NULL, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&ctx, &parser);
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        conf__error(&ctx, top, NULL, "config is empty");
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return NULL;
    }

    struct conf *c = calloc(1, sizeof(*c));
    if (!c) {
        conf__error(&ctx, top, NULL, "out of memory");
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return NULL;
    }
    conf_init(c);
    ctx.doc = &doc;
    conf__walk_struct(&ctx, &root_type, root, c);
    if (errs->n == 0 && !c->admin.address.text) {
        char err[128];
        if (conf_parse_addr(CONF_ADMIN_DEFAULT_ADDRESS, false, true, &c->admin.address, err,
                            sizeof(err)) < 0)
            conf__error(&ctx, top, "admin.address", "%s", err);
    }
    if (errs->n == 0)
        cross_check(&ctx, c);

    /* A second document in the stream is almost always a mistake. */
    yaml_document_t doc2;
    if (errs->n == 0 && yaml_parser_load(&parser, &doc2)) {
        yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
        if (r2)
            conf__error(&ctx, conf__mark(r2), NULL,
                        "only one YAML document is allowed in a config file");
        yaml_document_delete(&doc2);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);

    if (errs->n) {
        conf_free(c);
        return NULL;
    }
    c->path = strdup(name);
    c->log.access_log = c->log.access_log ? c->log.access_log : strdup(CONF_DEFAULT_ACCESS_LOG);
    if (!c->path || !c->log.access_log) {
        conf__error(&ctx, top, NULL, "out of memory");
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *conf_load_file(const char *path, const struct conf_load_opts *opts,
                            struct conf_errors *errs)
{
    size_t max = opts && opts->max_bytes ? opts->max_bytes : CONF_MAX_FILE_BYTES;
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len;

    memset(errs, 0, sizeof(*errs));
    if (!f) {
        char *msg;
        if (asprintf(&msg, "%s: cannot open: %s", path, strerror(errno)) >= 0)
            errs->msg[errs->n++] = msg;
        return NULL;
    }
    buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    len = fread(buf, 1, max + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        char *msg;
        if (asprintf(&msg, "%s: read error", path) >= 0)
            errs->msg[errs->n++] = msg;
        free(buf);
        return NULL;
    }
    struct conf *c = conf_load_buffer(path, buf, len, opts, errs);
    free(buf);
    return c;
}

void conf_free(struct conf *c)
{
    if (!c)
        return;
    for (size_t p = 0; p < c->n_pools && c->pools; p++)
        for (size_t i = 0; i < c->pools[p].n_nodes && c->pools[p].nodes; i++) {
            struct conf_node *n = &c->pools[p].nodes[i];
            free(n->stats.addr.text);
            free(n->stats.path);
            free(n->stats.host);
        }
    conf__free_struct(&root_type, c);
    free(c->path);
    free(c);
}

void conf_errors_free(struct conf_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msg[i]);
    errs->n = 0;
}
