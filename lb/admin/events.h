/* Recent events for GET /api/v1/events: node transitions (probes and
 * passive failures, from any thread), reloads and override changes. A
 * bounded ring under a mutex: the oldest event goes when it is full. */
#ifndef LB_ADMIN_EVENTS_H
#define LB_ADMIN_EVENTS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define LB_EVENTS_MAX 512

/* kind: "node_up", "node_down", "reload", "reload_failed", "override",
 * "overrides_cleared", "drain_deadline"; pool/node may be NULL; text is a
 * human sentence. */
void lb_event_add(const char *kind, const char *pool, const char *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"events": [{"seq", "time_ms", "kind", "pool"?, "node"?, "text"}...]},
 * newest last; at most limit (0: all kept), only those with seq > since. */
json_object *lb_events_json(size_t limit, uint64_t since);
/* Events recorded since the process started (tests). */
uint64_t lb_events_count(void);

#endif
