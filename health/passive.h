/* Passive health (sessions that fail to reach a node) and the one place
 * node transitions are logged, for probes and passive failures alike. */
#ifndef HEALTH_PASSIVE_H
#define HEALTH_PASSIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "health/hc.h"
#include "upstream/upstream-t.h"

/* A session could not reach n (dial refused or timed out, handshake not
 * answered). Consecutive failures count toward the pool's fall; the probes
 * bring the node back after `rise` passes. Nodes without checks are never
 * marked down (nothing would bring them back). */
void hc_passive_failure(struct ups_node *n, const char *why);
/* A session reached n: the run of failures is over. */
void hc_passive_success(struct ups_node *n);

/* Logs node_up / node_down with the layer that decided it. */
void hc_log_transition(const char *pool, const char *node, bool up, enum hc_result r,
                       const char *reason, const char *detail, uint64_t checks);

/* The wall clock in ms (when a node changed state, when a probe ended). */
int64_t hc_wall_ms(void);

#endif
