/* The admin API's read views, as pure functions of the routing snapshot in
 * force, the override layer and (optionally) the config it was built from:
 * GET /api/v1/upstreams and GET /api/v1/routes. No I/O; the control thread
 * calls them and hands the JSON to the HTTP server. */
#ifndef LB_ADMIN_VIEWS_H
#define LB_ADMIN_VIEWS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf-t.h"
#include "upstream/override-t.h"
#include "upstream/upstream-t.h"

/* {"generation": G, "pools": [{"name", "nodes": [{"name", "address", "state":
 * "up"|"down", "admin": "enabled"|"draining"|"disabled", "weight" (in
 * force), "effective_weight" (slow start), "config_weight", "backup",
 * "max_sessions", "sessions", "sessions_total", "bytes_from_client",
 * "bytes_to_client", "dial_failures", "passive_failures", "state_since_ms" (wall
 * clock, null: since start), "bitrate_from_client_bps", "bitrate_to_client_bps",
 * "stats_streams", "stats_clients", "stats_bw_in_bps", "last_probe": {"result",
 * "text", "latency_ms", "time_ms"} | null, "overridden":
 * ["weight", "state"], "override": {"weight", "state", "close_at_ms"} |
 * null}]}]}. o and c may be NULL; now_ms is the clock slow start uses. */
json_object *lb_view_upstreams(const struct ups_snapshot *s, const struct ups_overrides *o,
                               const struct conf *c, uint64_t now_ms);

/* {"generation": G, "routes": [{"name", "match": {"listener", "role",
 * "app", "stream", "country", "continent"} (only the keys it uses), "pool",
 * "policy", "route_on", "overridden": bool, "override": {"pool", "policy"}
 * | null, "config": {"pool", "policy"} (when c is given)}]} */
json_object *lb_view_routes(const struct ups_snapshot *s, const struct ups_overrides *o,
                            const struct conf *c);

/* GET /api/v1/lines: the lines (pools) a play of app/stream on listener
 * may reach for a caller from country/continent (NULL: unknown), whatever
 * args it adds. Routes are taken in order, matched on everything but args
 * (ups_route_matches_stream); a route is left out when an earlier one
 * matching too asks for a subset of its args (it would take its sessions),
 * and the first without args ends the list (it takes every session left).
 * One line per pool: the route with the fewest args that reaches it.
 * {"app", "stream", "listener", "lines": [{"pool", "route", "policy",
 * "args": {k: v}, "default": bool (a URL without args lands here), "url":
 * "rtmp://HOST/app/stream[?k=v&...]", "nodes": {"up", "total",
 * "available"}}]}. host is "ADDR:PORT" for the URLs. */
struct lb_lines_query {
    const char *listener;
    const char *host;
    const char *app, *stream;
    const char *country, *continent;
    /* An http listener's lines: http://HOST/APP/STREAM.SUFFIX URLs
     * (suffix "flv" or "m3u8"); NULL: rtmp:// URLs. */
    const char *http_suffix;
    bool tls; /* the listener speaks TLS: rtmps:// or https:// */
};
json_object *lb_view_lines(const struct ups_snapshot *s, const struct lb_lines_query *q);

/* The host:port of rtmp:// URLs for a listener bound to addr: its own
 * address, or when it listens on every address (0.0.0.0, ::), the host of
 * the request's Host header (NULL, or not a plain host name or address:
 * "localhost") with the listener's port. Returns out. */
const char *lb_view_url_host(const struct sockaddr *addr, const char *host_header, char *out,
                             size_t cap);

#endif
