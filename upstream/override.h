#ifndef UPSTREAM_OVERRIDE_H
#define UPSTREAM_OVERRIDE_H

#include <json-c/json.h>

#include "upstream/override-t.h"
#include "upstream/upstream-t.h"

struct ups_overrides *ups_ovr_new(void);
void ups_ovr_free(struct ups_overrides *o);
void ups_msgs_free(struct ups_msgs *m);

/* Setters check the value and that the pool/node/route exists in s (the
 * snapshot in force); they return 0, or -1 with why in err (nothing
 * changed). Clearers return whether there was something to clear. */
int ups_ovr_set_weight(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                       const char *node, int64_t weight, char *err, size_t errlen);
/* state: "enabled" | "draining" | "disabled"; close_at_ms (wall clock, 0 =
 * none) only with "draining". */
int ups_ovr_set_state(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                      const char *node, const char *state, int64_t close_at_ms, char *err,
                      size_t errlen);
int ups_ovr_set_route_pool(struct ups_overrides *o, const struct ups_snapshot *s,
                           const char *route, const char *pool, char *err, size_t errlen);
/* policy: a policy name (conf_policy_from_name); geo_nearest needs a geo
 * database in s. */
int ups_ovr_set_route_policy(struct ups_overrides *o, const struct ups_snapshot *s,
                             const char *route, const char *policy, char *err, size_t errlen);
bool ups_ovr_clear_weight(struct ups_overrides *o, const char *pool, const char *node);
bool ups_ovr_clear_state(struct ups_overrides *o, const char *pool, const char *node);
bool ups_ovr_clear_route_pool(struct ups_overrides *o, const char *route);
bool ups_ovr_clear_route_policy(struct ups_overrides *o, const char *route);
/* Back to the config's values; returns how many entries went. */
size_t ups_ovr_clear_all(struct ups_overrides *o);

const struct ups_node_override *ups_ovr_find_node(const struct ups_overrides *o, const char *pool,
                                                  const char *node);
const struct ups_route_override *ups_ovr_find_route(const struct ups_overrides *o,
                                                    const char *route);

/* The body of POST /api/v1/pools/{pool}/nodes/{node}: {"weight": N|null,
 * "state": S|null, "close_after": "60s"|null}; and of POST
 * /api/v1/routes/{route}: {"pool": P|null, "policy": X|null}. null clears
 * that override. All or nothing: unknown keys, wrong types, bad values or
 * an empty object change nothing and return -1 with why in err. now_ms is
 * the wall clock (for close_after). */
int ups_ovr_patch_node(struct ups_overrides *o, const struct ups_snapshot *s, const char *pool,
                       const char *node, json_object *body, int64_t now_ms, char *err,
                       size_t errlen);
int ups_ovr_patch_route(struct ups_overrides *o, const struct ups_snapshot *s, const char *route,
                        json_object *body, char *err, size_t errlen);

/* Applies o to a snapshot freshly built from the config and not yet
 * published: node weights; every node's operator state (live->admin: the
 * override's, else enabled); route pools and policies (with fresh policy
 * state). An override naming a pool, node or route s lacks is reported in
 * msgs and removed from o. Returns 0, or -1 (out of memory: s is unusable). */
int ups_ovr_apply(struct ups_overrides *o, struct ups_snapshot *s, struct ups_msgs *msgs);

/* {"nodes": [{"pool","node","weight","state","close_at_ms"}...],
 *  "routes": [{"route","pool","policy"}...]}: for the state file and the
 * API's list of overrides. A new reference. */
json_object *ups_ovr_to_json(const struct ups_overrides *o);
/* Persists to path: a temporary file beside it, fsync, rename, fsync of the
 * directory. Returns 0, or -1 with why in err (the old file stays). */
int ups_ovr_save(const struct ups_overrides *o, const char *path, char *err, size_t errlen);
/* Replaces o's contents with path's. A missing file is an empty set; a
 * corrupt file, or entries that cannot be read, are reported in msgs and
 * ignored (never fatal). Stale names are found by the next apply. */
void ups_ovr_load(struct ups_overrides *o, const char *path, struct ups_msgs *msgs);

const char *ups_admin_name(int state);
int ups_admin_from_name(const char *name); /* -1 if unknown */

#endif
