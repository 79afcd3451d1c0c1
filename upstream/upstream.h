#ifndef UPSTREAM_UPSTREAM_H
#define UPSTREAM_UPSTREAM_H

#include "conf/conf-t.h"
#include "upstream/upstream-t.h"

/* Builds a snapshot from a validated config. prev (may be NULL) lends its
 * node counters to nodes that survive. Returns NULL with a message in err. */
struct ups_snapshot *ups_snapshot_build(const struct conf *c, const struct ups_snapshot *prev,
                                        unsigned n_workers, char *err, size_t errlen);
struct ups_snapshot *ups_snapshot_ref(struct ups_snapshot *s);
struct ups_node_live *ups_node_live_ref(struct ups_node_live *l);
void ups_node_live_unref(struct ups_node_live *l);
void ups_snapshot_unref(struct ups_snapshot *s);

/* The router: first route matching req, and the nodes to try, in order.
 * Returns NULL when no route matches (out->n = 0). out->n may be 0 with a
 * route when no node can take the session (all full). A play routed by
 * stream_location goes first to the node where req->streams says the
 * stream is live, even a backup or a draining one (the stream is only
 * there), as long as it is up, not disabled and has room; likewise a
 * publish with req->pin_node (a takeover) goes first to that node. With
 * req->at_connect, only a route_on: connect route can match (see
 * ups_route_find_connect). */
const struct ups_route *ups_route_select(const struct ups_snapshot *s,
                                         const struct ups_request *req,
                                         struct ups_candidates *out);
bool ups_route_matches(const struct ups_route *r, const struct ups_request *req);
/* Matches everything but args: listener, geo, role, app, stream (what
 * decides the lines a viewer may choose between). */
bool ups_route_matches_stream(const struct ups_route *r, const struct ups_request *req);
/* The request's value of an arg (the first with that key), or NULL. */
const char *ups_request_arg(const struct ups_request *req, const char *key);
/* The first route matching req, without choosing nodes; then the nodes to
 * try for it, in order (what ups_route_select does in one step). */
const struct ups_route *ups_route_find(const struct ups_snapshot *s, const struct ups_request *req);
void ups_route_candidates(const struct ups_snapshot *s, const struct ups_route *r,
                          const struct ups_request *req, struct ups_candidates *out);

/* The node of r's pool where the stream index says req's app/stream is
 * live, if it may serve a play (up, not disabled, room), whatever r's
 * policy; NULL otherwise. *where (may be NULL) is the node the index names
 * even when it may not serve (NULL: the index does not know the stream). */
struct ups_node *ups_route_stream_node(const struct ups_route *r, const struct ups_request *req,
                                       struct ups_node **where);

/* Reserve a session slot on a node (respects max_sessions); release it when
 * the session ends or the dial fails. */
bool ups_node_acquire(struct ups_node *n);
void ups_node_release(struct ups_node *n);
bool ups_node_has_room(const struct ups_node *n);
/* Up, enabled, and below max_sessions: may take a new session. */
bool ups_node_available(const struct ups_node *n);
/* Weight now: during slow start it grows from a tenth of the weight to all
 * of it over slow_start_ms after the node came up. */
unsigned ups_effective_weight(const struct ups_node *n, uint64_t now_ms);

const struct ups_policy_ops *ups_policy_find(int policy);
/* create/destroy for policies that keep no state. */
void *ups_policy_stateless_create(const struct ups_pool *pool, unsigned n_workers);
void ups_policy_stateless_destroy(void *state);
/* Stable insertion sort of nodes[from..n) by key, highest first (tiers are
 * small; stability keeps rotation and config order on ties). */
void ups_sort_desc(struct ups_node **nodes, double *key, size_t from, size_t n);
extern const struct ups_policy_ops ups_policy_weighted;
extern const struct ups_policy_ops ups_policy_least_sessions;
extern const struct ups_policy_ops ups_policy_stream_affinity;
extern const struct ups_policy_ops ups_policy_geo_nearest;
extern const struct ups_policy_ops ups_policy_stream_location;
uint64_t ups_affinity_hash(const char *node, const char *app, const char *stream);
double ups_affinity_score(const char *node, unsigned weight, const char *app, const char *stream);

/* At connect time (role and stream unknown): the route, if the first route
 * that can match listener and app says route_on: connect; else NULL (route
 * later, on publish/play). */
const struct ups_route *ups_route_find_connect(const struct ups_snapshot *s,
                                               const struct ups_request *req);

/* Right after the RTMP handshake starts (only listener and geo known): the
 * route every publish or play of this session will take, when the first
 * route that can match listener and geo matches every role, app, stream
 * and args, routes on the stream, and picks its node the same whatever the
 * stream (weighted, least_sessions, geo_nearest, or a pool of one node);
 * else NULL. The session may then dial that route's node while the client
 * is still in its handshake (listeners[].early_dial). */
const struct ups_route *ups_route_find_early(const struct ups_snapshot *s,
                                             const struct ups_request *req);

/* At connect time (role and stream unknown): what the local connect reply
 * says of Enhanced RTMP (enum conf_ertmp). Every route that a publish or a
 * play on this listener and app could still reach (routes behind one that
 * takes every stream of the same role are not) leads to a pool the session
 * may land in: CONF_ERTMP_FORWARD only when all those pools say forward;
 * CONF_ERTMP_OFF when one says off, or when no route can match (the session
 * will be refused anyway). */
int ups_ertmp_at_connect(const struct ups_snapshot *s, const struct ups_request *req);

#endif
