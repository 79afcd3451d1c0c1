/* The admin API's /metrics: Prometheus text format 0.0.4, label values
 * from closed sets only (listener, route, pool, node, role, reason). */
#include "lb/admin/api.h"
#include "lb/admin/api-int.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/hc.h"
#include "health/probe.h"
#include "health/streams.h"
#include "health/view.h"
#include "lb/admin/events.h"
#include "lb/admin/http.h"
#include "lb/admin/metrics.h"
#include "lb/admin/views.h"
#include "lb/log.h"
#include "lb/pubreg.h"
#include "lb/proc/proc.h"
#include "lb/tls/tls.h"
#include "lb/worker/worker.h"
#include "upstream/override.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void probe_sample(void *arg, const char *pool, const char *node, const uint64_t *results,
                         size_t n);

/* TLS: handshakes by side, result and version, and the seconds each
 * listener certificate has left (labels: listener, index in its list). */
static void tls_metrics(struct lb_server *srv, struct lb_metrics *m)
{
    static const char *const sides[] = {"client", "origin"};
    bool any = false;
    for (size_t i = 0; i < srv->n_listeners; i++)
        any |= srv->listeners[i].tls;
    if (!any && !srv->tls)
        return;
    lb_metrics_family(m, "rtmplb_tls_handshakes_total", LB_METRIC_COUNTER,
                      "TLS handshakes, by side (client: on a listener; origin: to an RTMPS "
                      "node), result and version.");
    for (int sd = 0; sd < LB_TLS_SIDE__COUNT; sd++)
        for (int r = 0; r < LB_TLS_RESULT__COUNT; r++)
            for (int v = 0; v < LB_TLS_V__COUNT; v++) {
                struct lb_label l[] = {{"side", sides[sd]},
                                       {"result", lb_tls_result_name((enum lb_tls_result)r)},
                                       {"version", lb_tls_ver_name((enum lb_tls_ver)v)}};
                lb_metrics_u64(m, l, 3, atomic_load(&lb_tls_stats.hs[sd][r][v]));
            }
    lb_metrics_family(m, "rtmplb_tls_resumed_total", LB_METRIC_COUNTER,
                      "TLS handshakes that resumed a session (tickets).");
    lb_metrics_u64(m, NULL, 0, atomic_load(&lb_tls_stats.resumed));
    if (!srv->tls)
        return;
    lb_metrics_family(m, "rtmplb_tls_certificate_expiry_seconds", LB_METRIC_GAUGE,
                      "Seconds until a listener certificate expires (negative: expired).");
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < srv->tls->n_listeners; i++) {
        const struct lb_tls_server *ts = &srv->tls->listeners[i];
        for (size_t k = 0; k < ts->n_certs; k++) {
            char idx[24];
            snprintf(idx, sizeof(idx), "%zu", k);
            struct lb_label l[] = {{"listener", ts->listener}, {"index", idx}};
            lb_metrics_double(m, l, 2, (double)(ts->certs[k].not_after - now));
        }
    }
}

static void metrics_write(struct lb_admin *a, struct lb_metrics *m)
{
    struct lb_server *srv = a->srv;
    const struct ups_snapshot *s = srv->snap;
    uint64_t now = uv_now(&srv->loop);
    char ver[32];
    snprintf(ver, sizeof(ver), "%s", RTMPLB_VERSION);

    lb_metrics_family(m, "rtmplb_build_info", LB_METRIC_GAUGE, "Version of this rtmplb build.");
    struct lb_label bl[] = {{"version", ver}};
    lb_metrics_u64(m, bl, 1, 1);
    lb_metrics_family(m, "rtmplb_config_generation", LB_METRIC_GAUGE,
                      "Generation of the routing snapshot in force (grows on every reload or "
                      "override change).");
    lb_metrics_u64(m, NULL, 0, s->generation);
    lb_metrics_family(m, "rtmplb_uptime_seconds", LB_METRIC_GAUGE, "Seconds since start.");
    lb_metrics_double(m, NULL, 0, (double)(now - a->t_start_ms) / 1000.0);

#define NODE_FAMILY(fname, type, help, expr)                                               \
    lb_metrics_family(m, fname, type, help);                                               \
    for (size_t p = 0; p < s->n_pools; p++)                                                \
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {                                 \
            const struct ups_node *n = &s->pools[p].nodes[i];                              \
            struct lb_label l[] = {{"pool", s->pools[p].name}, {"node", n->name}};         \
            lb_metrics_u64(m, l, 2, (uint64_t)(expr));                                     \
        }
    NODE_FAMILY("rtmplb_node_up", LB_METRIC_GAUGE, "1 when health checks say the node is up.",
                atomic_load(&n->live->health) == UPS_UP)
    lb_metrics_family(m, "rtmplb_node_admin_state", LB_METRIC_GAUGE,
                      "The operator's state of the node (1 for the state in force).");
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {
            const struct ups_node *n = &s->pools[p].nodes[i];
            int adm = atomic_load(&n->live->admin);
            for (int st = UPS_ENABLED; st <= UPS_DISABLED; st++) {
                struct lb_label l[] = {{"pool", s->pools[p].name},
                                       {"node", n->name},
                                       {"state", ups_admin_name(st)}};
                lb_metrics_u64(m, l, 3, adm == st);
            }
        }
    NODE_FAMILY("rtmplb_node_weight", LB_METRIC_GAUGE, "Weight in force (overrides included).",
                n->weight)
    NODE_FAMILY("rtmplb_node_effective_weight", LB_METRIC_GAUGE,
                "Weight now, during slow start less than the weight.",
                ups_effective_weight(n, now))
    NODE_FAMILY("rtmplb_node_sessions", LB_METRIC_GAUGE, "Live sessions on the node.",
                atomic_load(&n->live->sessions))
    NODE_FAMILY("rtmplb_node_sessions_total", LB_METRIC_COUNTER,
                "Sessions that reached the node.", atomic_load(&n->live->sessions_total))
    NODE_FAMILY("rtmplb_node_bytes_from_client_total", LB_METRIC_COUNTER,
                "Bytes clients sent to the node (ended sessions).",
                atomic_load(&n->live->bytes_from_client))
    NODE_FAMILY("rtmplb_node_bytes_to_client_total", LB_METRIC_COUNTER,
                "Bytes the node sent to clients (ended sessions).",
                atomic_load(&n->live->bytes_to_client))
    NODE_FAMILY("rtmplb_node_dial_failures_total", LB_METRIC_COUNTER,
                "Dials to the node that failed.", atomic_load(&n->live->dial_failures))
    NODE_FAMILY("rtmplb_node_dials_in_flight", LB_METRIC_GAUGE,
                "Dials to the node under way (all workers; bounded by max_dials).",
                atomic_load(&n->live->dialing))
    NODE_FAMILY("rtmplb_node_dial_queue_depth", LB_METRIC_GAUGE,
                "Sessions waiting for a dial slot of the node (bounded by dial_queue).",
                atomic_load(&n->live->dial_waiting))
    NODE_FAMILY("rtmplb_node_dial_waits_total", LB_METRIC_COUNTER,
                "Sessions that waited for a dial slot of the node.",
                atomic_load(&n->live->dial_waits_total))
    lb_metrics_family(m, "rtmplb_node_dial_wait_seconds_total", LB_METRIC_COUNTER,
                      "Time sessions spent waiting for a dial slot of the node.");
    for (size_t p = 0; p < s->n_pools; p++)
        for (size_t i = 0; i < s->pools[p].n_nodes; i++) {
            const struct ups_node *n = &s->pools[p].nodes[i];
            struct lb_label l[] = {{"pool", s->pools[p].name}, {"node", n->name}};
            lb_metrics_double(m, l, 2, (double)atomic_load(&n->live->dial_wait_us_total) / 1e6);
        }
    NODE_FAMILY("rtmplb_node_dial_wait_timeouts_total", LB_METRIC_COUNTER,
                "Sessions that found no dial slot in time (timeouts.connect; the handshake "
                "deadline for an rtmp or http session's last candidate).",
                atomic_load(&n->live->dial_wait_timeouts))
    NODE_FAMILY("rtmplb_node_dial_queue_full_total", LB_METRIC_COUNTER,
                "Sessions that skipped the node: its dial queue was full.",
                atomic_load(&n->live->dial_queue_full))
    NODE_FAMILY("rtmplb_node_passive_failures", LB_METRIC_GAUGE,
                "Consecutive sessions that failed to reach the node now.",
                atomic_load(&n->live->passive_fails))
    NODE_FAMILY("rtmplb_node_stats_clients", LB_METRIC_GAUGE,
                "Clients the node's own stats report.", atomic_load(&n->live->stats_clients))
#undef NODE_FAMILY

    static const char *const roles[] = {"tcp", "publish", "play"};
    lb_metrics_family(m, "rtmplb_route_sessions_total", LB_METRIC_COUNTER,
                      "Sessions routed by the route, by role.");
    for (size_t i = 0; i < srv->n_route_stats; i++)
        for (int r = 0; r < 3; r++) {
            struct lb_label l[] = {{"route", srv->route_stats[i].name}, {"role", roles[r]}};
            lb_metrics_u64(m, l, 2, atomic_load(&srv->route_stats[i].by_role[r]));
        }
    lb_metrics_family(m, "rtmplb_route_info", LB_METRIC_GAUGE,
                      "The pool and policy each route uses now (1).");
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct ups_route *r = &s->routes[i];
        struct lb_label l[] = {{"route", r->name},
                               {"pool", r->pool->name},
                               {"policy", conf_policy_name(r->policy)}};
        lb_metrics_u64(m, l, 3, 1);
    }

    lb_metrics_family(m, "rtmplb_listener_accepted_total", LB_METRIC_COUNTER,
                      "Connections accepted, by listener.");
    for (size_t i = 0; i < srv->env.n_lstats; i++) {
        struct lb_label l[] = {{"listener", srv->listeners[i].name}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.lstats[i].accepted));
    }
    lb_metrics_family(m, "rtmplb_listener_refused_total", LB_METRIC_COUNTER,
                      "Connections refused at accept (max_sessions, out of descriptors).");
    for (size_t i = 0; i < srv->env.n_lstats; i++) {
        struct lb_label l[] = {{"listener", srv->listeners[i].name}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.lstats[i].refused));
    }

    lb_metrics_family(m, "rtmplb_early_dials_total", LB_METRIC_COUNTER,
                      "Dials started during the client's RTMP handshake (listeners[].early_dial), "
                      "by listener and outcome: adopted (the play or publish used it), dropped "
                      "(routed to another node, or let go: the node closed it idle, or the operator "
                      "closed the node), unused (the client left or failed first), failed (every "
                      "candidate failed; routed on the command instead).");
    for (size_t i = 0; i < srv->env.n_lstats; i++) {
        static const char *const outcome[LB_EARLY__COUNT] = {"adopted", "dropped", "unused",
                                                             "failed"};
        if (srv->listeners[i].mode != CONF_MODE_RTMP)
            continue;
        for (int o = 0; o < LB_EARLY__COUNT; o++) {
            struct lb_label l[] = {{"listener", srv->listeners[i].name}, {"outcome", outcome[o]}};
            lb_metrics_u64(m, l, 2, atomic_load(&srv->env.lstats[i].early[o]));
        }
    }

    lb_metrics_family(m, "rtmplb_early_dials_pending", LB_METRIC_GAUGE,
                      "Sessions holding an early dial not yet taken by their play or publish "
                      "(bounded by limits.max_early_dials).");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.early_pending));

    lb_metrics_family(m, "rtmplb_sessions_refused_total", LB_METRIC_COUNTER,
                      "New sessions refused, by limit: max_sessions (or out of descriptors) at "
                      "accept, the per-address limits once the address is known.");
    {
        struct lb_label l[][1] = {{{"reason", "max_sessions"}},
                                  {{"reason", "per_ip_sessions"}},
                                  {{"reason", "per_ip_handshakes"}}};
        lb_metrics_u64(m, l[0], 1, atomic_load(&srv->env.sessions_refused));
        lb_metrics_u64(m, l[1], 1, atomic_load(&srv->env.perip_refused[0]));
        lb_metrics_u64(m, l[2], 1, atomic_load(&srv->env.perip_refused[1]));
    }
    lb_metrics_family(m, "rtmplb_publish_conflicts_total", LB_METRIC_COUNTER,
                      "Publishes of a stream this instance already carried on the same route, "
                      "by outcome (publish_conflict).");
    for (int o = 0; o < LB_PUB_OUT__COUNT; o++) {
        struct lb_label l[] = {{"outcome", lb_pub_outcome_name((enum lb_pub_outcome)o)}};
        lb_metrics_u64(m, l, 1,
                       srv->env.pubreg ? lb_pubreg_outcomes(srv->env.pubreg, (enum lb_pub_outcome)o)
                                       : 0);
    }
    lb_metrics_family(m, "rtmplb_publishes", LB_METRIC_GAUGE,
                      "Streams this instance carries a publish for (the takeover registry).");
    lb_metrics_u64(m, NULL, 0, srv->env.pubreg ? lb_pubreg_count(srv->env.pubreg) : 0);
    lb_metrics_family(m, "rtmplb_client_addresses", LB_METRIC_GAUGE,
                      "Client addresses (IPv6: /64 blocks) with a live session, counted while "
                      "a per-address limit is set.");
    lb_metrics_u64(m, NULL, 0, srv->env.perip ? lb_perip_addresses(srv->env.perip) : 0);

    lb_metrics_family(m, "rtmplb_sessions", LB_METRIC_GAUGE, "Live sessions, all listeners.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.sessions));
    lb_metrics_family(m, "rtmplb_sessions_total", LB_METRIC_COUNTER, "Sessions accepted.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.sessions_total));
    lb_metrics_family(m, "rtmplb_session_ends_total", LB_METRIC_COUNTER,
                      "Sessions ended, by reason (the access log's reason=).");
    for (int r = 1; r < LB_REASON__COUNT; r++) {
        struct lb_label l[] = {{"reason", lb_reason_name((enum lb_reason)r)}};
        lb_metrics_u64(m, l, 1, atomic_load(&srv->env.ends[r]));
    }
    lb_metrics_family(m, "rtmplb_preroute_seconds", LB_METRIC_HISTOGRAM,
                      "Time from accept to the routing decision.");
    lb_metrics_histo(m, NULL, 0, &srv->env.preroute);

    lb_metrics_family(m, "rtmplb_pipes_created_total", LB_METRIC_COUNTER,
                      "Kernel pipes created for splice.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.pipes_created));
    lb_metrics_family(m, "rtmplb_pipes_in_use", LB_METRIC_GAUGE,
                      "Pipes lent to sessions with bytes in flight now.");
    uint64_t in_use = 0;
    for (unsigned i = 0; i < srv->n_workers; i++)
        in_use += atomic_load_explicit(&srv->workers[i].host.pipes.in_use, memory_order_relaxed);
    lb_metrics_u64(m, NULL, 0, in_use);
    lb_metrics_family(m, "rtmplb_pipe_fallbacks_total", LB_METRIC_COUNTER,
                      "Transfers copied through user space for want of a pipe.");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.pipe_fallbacks));
    lb_metrics_family(m, "rtmplb_max_sessions", LB_METRIC_GAUGE,
                      "Sessions allowed now (limits.max_sessions capped by descriptors).");
    lb_metrics_u64(m, NULL, 0, atomic_load(&srv->env.max_sessions));
    lb_metrics_family(m, "rtmplb_fd_session_capacity", LB_METRIC_GAUGE,
                      "Sessions the open-file limit leaves room for.");
    lb_metrics_u64(m, NULL, 0, srv->fd_capacity);
    lb_metrics_family(m, "rtmplb_fd_pipes_per_worker", LB_METRIC_GAUGE,
                      "Pipes each worker may hold.");
    lb_metrics_u64(m, NULL, 0, srv->pipes_per_worker);

    lb_metrics_family(m, "rtmplb_reloads_total", LB_METRIC_COUNTER, "Reloads, by result.");
    struct lb_label ok[] = {{"result", "ok"}}, bad[] = {{"result", "failed"}};
    lb_metrics_u64(m, ok, 1, atomic_load(&srv->reloads_ok));
    lb_metrics_u64(m, bad, 1, atomic_load(&srv->reloads_failed));

    size_t on = 0, or = 0;
    for (size_t i = 0; i < srv->ovr->n_nodes; i++)
        on += srv->ovr->nodes[i].has_weight + srv->ovr->nodes[i].has_state;
    for (size_t i = 0; i < srv->ovr->n_routes; i++)
        or += (srv->ovr->routes[i].pool != NULL) + srv->ovr->routes[i].has_policy;
    lb_metrics_family(m, "rtmplb_overrides", LB_METRIC_GAUGE,
                      "Runtime overrides in force, by kind.");
    struct lb_label kn[] = {{"kind", "node"}}, kr[] = {{"kind", "route"}};
    lb_metrics_u64(m, kn, 1, on);
    lb_metrics_u64(m, kr, 1, or);
    if (srv->health) {
        lb_metrics_family(m, "rtmplb_probe_results_total", LB_METRIC_COUNTER,
                          "Active health probes, by result (the layer that failed).");
        hc_engine_each_probe(srv->health, probe_sample, m);
        lb_metrics_family(m, "rtmplb_probe_duration_seconds", LB_METRIC_HISTOGRAM,
                          "Time an active health probe took.");
        lb_metrics_histo(m, NULL, 0, hc_engine_latency(srv->health));
    }
    lb_metrics_family(m, "rtmplb_log_lines_dropped_total", LB_METRIC_COUNTER,
                      "Log lines dropped because the log sink was too slow (queue full).");
    lb_metrics_u64(m, NULL, 0, lb_log_dropped_total());
    tls_metrics(srv, m);
    lb_metrics_family(m, "rtmplb_admin_connections", LB_METRIC_GAUGE,
                      "Open admin HTTP connections.");
    lb_metrics_u64(m, NULL, 0, a->http ? lb_http_connections(a->http) : 0);
}

static void probe_sample(void *arg, const char *pool, const char *node, const uint64_t *results,
                         size_t n)
{
    struct lb_metrics *m = arg;
    for (size_t r = 0; r < n; r++) {
        struct lb_label l[] = {
            {"pool", pool}, {"node", node}, {"result", hc_result_name((enum hc_result)r)}};
        lb_metrics_u64(m, l, 3, results[r]);
    }
}

void lb__admin_metrics(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    struct lb_metrics m;
    (void)req;
    lb_metrics_init(&m);
    metrics_write(ud, &m);
    if (m.failed) {
        lb_http_reply_error(res, 500, "metrics: %s", m.why ? m.why : "out of memory");
    } else {
        lb_http_reply(res, 200, "text/plain; version=0.0.4; charset=utf-8", m.buf, m.len);
    }
    lb_metrics_free(&m);
}

/* ---- drain deadlines ------------------------------------------------------------- */
