/* The admin API's read views, as pure functions of the routing snapshot in
 * force, the override layer and (optionally) the config it was built from:
 * GET /api/v1/upstreams and GET /api/v1/routes. No I/O; the control thread
 * calls them and hands the JSON to the HTTP server. */
#ifndef LB_ADMIN_VIEWS_H
#define LB_ADMIN_VIEWS_H

#include <json-c/json.h>
#include <stdint.h>

#include "conf/conf-t.h"
#include "upstream/override-t.h"
#include "upstream/upstream-t.h"

/* {"generation": G, "pools": [{"name", "nodes": [{"name", "address", "state":
 * "up"|"down", "admin": "enabled"|"draining"|"disabled", "weight" (in
 * force), "effective_weight" (slow start), "config_weight", "backup",
 * "max_sessions", "sessions", "sessions_total", "bytes_from_client",
 * "bytes_to_client", "dial_failures", "passive_failures", "overridden":
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

#endif
