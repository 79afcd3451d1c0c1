/* Runtime overrides: what the operator changed through the admin API, as a
 * layer on top of the config (DESIGN.md "Threads and shared state"). Owned
 * and changed by the control thread only; workers see its effect through the
 * snapshots it is applied to. */
#ifndef UPSTREAM_OVERRIDE_T_H
#define UPSTREAM_OVERRIDE_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ups_node_override {
    char *pool, *node;
    bool has_weight;
    unsigned weight; /* 1..1000 */
    bool has_state;
    int state;           /* enum ups_admin */
    int64_t close_at_ms; /* draining: wall-clock ms (Unix epoch) after which the
                            remaining sessions are closed; 0 = never */
    bool close_done;     /* this deadline's close has run (not persisted: after a
                            restart what is left is closed again) */
};

struct ups_route_override {
    char *route;
    char *pool; /* NULL: the config's */
    bool has_policy;
    int policy; /* enum conf_policy */
};

struct ups_overrides {
    struct ups_node_override *nodes;
    size_t n_nodes;
    struct ups_route_override *routes;
    size_t n_routes;
    uint64_t changes; /* bumped by every change: "save needed" for callers */
};

/* Reports that are not errors of the call (a stale override discarded, a
 * corrupt state file ignored): the caller logs them. */
#define UPS_MSGS_MAX 32
struct ups_msgs {
    char *msg[UPS_MSGS_MAX];
    size_t n;
    size_t dropped;
};

#define UPS_OVR_WEIGHT_MAX 1000

#endif
