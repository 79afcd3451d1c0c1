/* Routing (through upstream/'s router) and dialing the candidates in
 * order. A node that refuses, times out or fails its handshake counts as a
 * passive failure (health/) and the next candidate is tried; when none is
 * left the phase tells the client. */
#include "lb/session/internal.h"

#include "geo/geo.h"
#include "health/passive.h"
#include "health/streams.h"
#include "conf/conf.h"
#include "lb/log.h"
#include "lb/net.h"
#include "lb/proxy_proto.h"
#include "lb/tls/tls.h"
#include "lb/xprt/tls.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

void lb__fill_geo(struct lb_session *s, struct ups_request *req)
{
    struct geo_info gi;
    if (!s->snap->geo || !geo_lookup(s->snap->geo, (struct sockaddr *)&s->peer, &gi))
        return;
    snprintf(s->country, sizeof(s->country), "%s", gi.country);
    snprintf(s->continent, sizeof(s->continent), "%s", gi.continent);
    req->country = s->country;
    req->continent = s->continent;
    req->has_location = gi.has_location;
    req->lat = gi.lat;
    req->lon = gi.lon;
}

/* The client's address from a header the listener trusts (the phase read
 * it): routing (geo) and the logs use it from now on. */
static void take_fwd_addr(struct lb_session *s)
{
    if (!s->f.fwd_set)
        return;
    s->f.fwd_set = false;
    memcpy(&s->peer, &s->f.fwd_addr, sizeof(s->peer));
    lb_sockaddr_text((struct sockaddr *)&s->peer, s->client_text, sizeof(s->client_text));
    s->country[0] = s->continent[0] = '\0';
    s->f.req.country = s->f.req.continent = NULL;
    s->f.req.has_location = false;
    lb__fill_geo(s, &s->f.req);
}

/* Keep-alive (http): the phase routes the next request while connected.
 * The node's leg goes (not a failure: it answered); the next dial starts
 * once its poll is closed. */
static void let_go(struct lb_session *s)
{
    struct ups_node *n = s->node;
    if (n) {
        atomic_fetch_add(&n->live->bytes_from_client, s->f.client_bytes - s->credited_in);
        atomic_fetch_add(&n->live->bytes_to_client, s->f.upstream_bytes - s->credited_out);
        s->credited_in = s->f.client_bytes;
        s->credited_out = s->f.upstream_bytes;
        ups_node_release(n);
    }
    s->node = NULL;
    s->f.node = NULL;
    s->f.upstream = NULL;
    s->f.dials = 0;
    s->dial_deadline = 0;
    lb_buf_free(&s->f.to_upstream);
    lb__set_state(s, LB_SS_DIALING);
}

void lb__early_count(struct lb_session *s, enum lb_early_outcome o)
{
    struct lb_env *env = s->h->env;
    atomic_fetch_sub(&env->early_pending, 1); /* every outcome ends the early dial */
    if (s->lst->index < env->n_lstats)
        atomic_fetch_add(&env->lstats[s->lst->index].early[o], 1);
}

/* The phase saw the client start an RTMP handshake: when the listener's
 * route is certain already (ups_route_find_early), its node is dialled now,
 * and the node's TCP and RTMP handshakes overlap the client's instead of
 * following its play. Nothing counts as routed until the ROUTE takes it. */
void lb__route_early(struct lb_session *s)
{
    const struct lb_env *env = s->h->env;
    struct ups_request *req = &s->f.req;
    if (s->state != LB_SS_FRONT || s->lst->mode != CONF_MODE_RTMP ||
        s->lst->index >= env->n_lstats || !atomic_load(&env->lstats[s->lst->index].early_dial))
        return;
    req->now_ms = lb__now(s);
    const struct ups_route *r = ups_route_find_early(s->snap, req);
    if (!r)
        return;
    /* Clients that stop after their handshake must not take the nodes'
     * connections: past the bound, sessions dial on their command. */
    struct lb_env *e = s->h->env;
    unsigned cap = atomic_load(&e->max_early_dials);
    unsigned cur = atomic_load(&e->early_pending);
    do {
        if (cur >= cap)
            return;
    } while (!atomic_compare_exchange_weak(&e->early_pending, &cur, cur + 1));
    ups_route_candidates(s->snap, r, req, &s->cands);
    if (s->cands.n == 0 || s->cands.not_live) {
        atomic_fetch_sub(&e->early_pending, 1);
        return;
    }
    s->f.route = r;
    s->next_cand = 0;
    s->early = true;
    lb__set_state(s, LB_SS_DIALING);
    lb__dial_next(s);
}

/* Every candidate of the early dial failed (each counted against its
 * node): the session is back where it was, and the client's command
 * routes it as if nothing had been tried. */
/* No early leg left (its handle closed or closing): no route, no
 * candidates, back in FRONT until the client's command routes it. */
static void back_to_front(struct lb_session *s)
{
    s->f.route = NULL;
    s->cands.n = 0;
    s->next_cand = 0;
    s->f.dials = 0;
    s->log_node = NULL;
    s->dial_deadline = 0;
    lb__set_state(s, LB_SS_FRONT);
}

static void early_failed(struct lb_session *s)
{
    s->early = false;
    lb__early_count(s, LB_EARLY_FAILED);
    s->f.last_failure = LB_REASON_NONE;
    s->f.last_failure_text[0] = '\0';
    back_to_front(s);
}

/* At the ROUTE after an early dial whose route the command confirms:
 * whether the node dialled may still take the session. Its place in the
 * policy's order was drawn at the dial (a second draw would skew weighted
 * and least_sessions rotations), and the session already counts in its
 * max_sessions. A takeover keeps it only when it pins this very node. */
static bool early_keeps(const struct lb_session *s, const struct ups_request *req)
{
    const struct ups_node *n = s->node;
    if (!n || atomic_load(&n->live->health) != UPS_UP ||
        atomic_load(&n->live->admin) != UPS_ENABLED)
        return false;
    return !req->pin_node || strcmp(req->pin_node, n->name) == 0;
}

/* The early dial goes: the route chose otherwise, or its leg is of no
 * use. Its node is not at fault (no passive failure); the phase forgets it. */
static void early_drop(struct lb_session *s)
{
    s->early = false;
    lb__early_count(s, LB_EARLY_DROPPED);
    if (s->f.ops->on_early_gone)
        s->f.ops->on_early_gone(&s->f);
    lb__dialq_leave(s);
    if (s->node)
        ups_node_release(s->node);
    s->node = NULL;
    s->f.node = NULL;
    s->f.upstream = NULL;
    s->log_node = NULL;
    s->f.dials = 0;
    s->dial_deadline = 0;
    s->f.upstream_bytes = 0;
    lb_buf_free(&s->f.to_upstream);
    if (s->state == LB_SS_CONNECTED)
        lb__set_state(s, LB_SS_DIALING);
}

static void routed_notes(struct lb_session *s);

/* The early dial is the session's, and the candidates drawn with it stay
 * its fallbacks. */
static void early_adopt(struct lb_session *s)
{
    s->early = false;
    lb__early_count(s, LB_EARLY_ADOPTED);
    if (s->state == LB_SS_CONNECTED)
        routed_notes(s);
    lb__apply(s, s->f.ops->on_adopted(&s->f));
}

void lb__early_let_go(struct lb_session *s)
{
    if (!s->early)
        return;
    early_drop(s);
    /* Its handle closes at the end of this loop pass: a ROUTE before then
     * waits for that (redial; lb__on_handle_closed dials only if DIALING). */
    if (s->upoll_open) {
        lb__upoll_close(s, true);
    } else if (s->upstream.fd >= 0) {
        close(s->upstream.fd);
        s->upstream.fd = -1;
    }
    back_to_front(s);
}

void lb__early_write_failed(struct lb_session *s, int err)
{
    if (s->f.ops->on_early_gone)
        s->f.ops->on_early_gone(&s->f);
    lb__node_failed(s, LB_REASON_ORIGIN_CLOSED, err);
}

static void count_role(const struct ups_route *r, const struct ups_request *req)
{
    if (r && r->role_sessions)
        atomic_fetch_add(&r->role_sessions[req->l4 || req->role < 0 || req->role > 2 ? 0 : req->role],
                         1);
}

/* The phase asked to route f.req: the router picks, then the dials start. */
void lb__route(struct lb_session *s)
{
    struct ups_request *req = &s->f.req;
    bool early = s->early;
    bool again = !early && s->state == LB_SS_CONNECTED;
    const struct ups_route *early_route = s->f.route;
    req->now_ms = lb__now(s);
    take_fwd_addr(s);
    if (again) {
        let_go(s);
    } else {
        s->preroute_us = (int64_t)((uv_hrtime() - s->t_accept_ns) / 1000);
        lb_histo_observe(&s->h->env->preroute, (double)s->preroute_us / 1e6);
    }
    if (s->ip_counted && !s->ip_routed) {
        lb_perip_routed(s->h->env->perip, &s->ip_key);
        s->ip_routed = true;
    }
    const struct ups_route *r;
    if (early) {
        r = ups_route_find(s->snap, req);
        bool keep = r && r == early_route && s->f.ops->on_adopted && early_keeps(s, req);
        if (keep) {
            s->f.route = r;
            count_role(r, req);
            early_adopt(s);
            return;
        }
        early_drop(s); /* before the candidates: it no longer counts on its node */
        s->cands.n = s->cands.n_primary = 0;
        s->cands.not_live = false;
        if (r)
            ups_route_candidates(s->snap, r, req, &s->cands);
    } else {
        r = ups_route_select(s->snap, req, &s->cands);
    }
    s->f.route = r;
    s->next_cand = 0;
    count_role(r, req);
    if (!r || s->cands.not_live) {
        lb__apply(s, s->f.ops->on_dials_failed(&s->f, r ? LB_REASON_NOT_FOUND : LB_REASON_NO_ROUTE));
        return;
    }
    if (s->state != LB_SS_DIALING)
        lb__set_state(s, LB_SS_DIALING);
    if (s->upoll_open) {
        lb__upoll_close(s, true); /* the next dial starts once the handle is closed */
        return;
    }
    if (s->redial)
        return; /* an early dial's handle is closing: its callback dials next */
    if (s->upstream.fd >= 0)
        close(s->upstream.fd);
    s->upstream.fd = -1;
    lb__dial_next(s);
}

static const char *err_text(enum lb_reason why, int err)
{
    if (err == ETIMEDOUT)
        return "timeout";
    if (err)
        return strerror(err);
    return lb_reason_text(why);
}

void lb__node_failed(struct lb_session *s, enum lb_reason why, int err)
{
    struct ups_node *n = s->node;
    struct lb_logline l;
    const char *text = err_text(why, err);

    if (!n) {
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, 0);
        return;
    }
    if (s->fail_detail[0])
        text = s->fail_detail;
    lb__dialq_leave(s);
    hc_passive_failure(n, text);
    s->f.last_failure = why == LB_REASON_DIAL_FAILED ? LB_REASON_NONE : why;
    switch (why) {
    case LB_REASON_ORIGIN_TIMEOUT:
        text = "did not answer the RTMP handshake in time";
        break;
    case LB_REASON_ORIGIN_CLOSED:
        text = "closed the connection during the RTMP handshake";
        break;
    case LB_REASON_ORIGIN_PROTOCOL:
        text = "answered with a bad handshake";
        break;
    case LB_REASON_ORIGIN_TLS: /* fail_detail says what */
        break;
    default:
        break;
    }
    /* (the result is used: a long node name or detail is cut, knowingly) */
    if (snprintf(s->f.last_failure_text, sizeof(s->f.last_failure_text), "origin %s %s%s", n->name,
             why == LB_REASON_DIAL_FAILED ? "refused or timed out: " : "", text) < 0)
        s->f.last_failure_text[0] = '\0';
    lb_log_begin(&l, LB_LOG_WARN, "dial_failed");
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "app", s->f.app);
    lb_log_str(&l, "stream", s->f.stream);
    lb_log_str(&l, "pool", n->pool->name);
    lb_log_str(&l, "node", n->name);
    lb_log_str(&l, "upstream", s->f.req.http && n->http_address_text ? n->http_address_text
                                                                       : n->address_text);
    lb_log_str(&l, "error", text);
    lb_log_u64(&l, "attempt", s->f.dials);
    lb_log_str(&l, "next", s->next_cand < s->cands.n ? s->cands.node[s->next_cand]->name : "none");
    lb_log_end(&l);
    s->fail_detail[0] = '\0';

    if (s->indexed) {
        hc_index_remove_publish(s->h->env->index, n->pool->name, n->name, s->f.app, s->f.stream);
        s->indexed = false;
    }
    ups_node_release(n);
    s->dial_deadline = 0;
    s->node = NULL;
    s->f.node = NULL;
    s->f.upstream = NULL;
    s->f.upstream_bytes = s->credited_out; /* what earlier nodes sent stays counted */
    lb_buf_free(&s->f.to_upstream);
    if (s->state != LB_SS_DIALING)
        lb__set_state(s, LB_SS_DIALING);
    if (s->upoll_open) {
        lb__upoll_close(s, true); /* the next dial starts once the handle is closed */
        return;
    }
    lb_conn_release(&s->upstream);
    s->u_tls_hs = false;
    if (s->upstream.fd >= 0)
        close(s->upstream.fd);
    s->upstream.fd = -1;
    lb__dial_next(s);
}

static void connected(struct lb_session *s)
{
    struct ups_node *n = s->node;
    int one = 1;
    uint8_t pp[PP_MAX_HEADER];

    /* The poll stays started: settle re-points it (events and callback) in
     * one uv_poll_start. A stop then start costs libuv two epoll_ctl calls
     * (ADD fails with EEXIST, then MOD). */
    s->uev = -1;
    s->dial_deadline = 0;
    if (n->tls)
        lb__dialq_leave(s); /* its TLS handshake answered: accepted */
    hc_passive_success(n);
    (void)setsockopt(s->upstream.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    lb__set_state(s, LB_SS_CONNECTED);
    s->f.upstream = &s->upstream;
    /* An RTMPS node had its PROXY header before the TLS handshake. */
    size_t k = n->tls ? 0 : lb__proxy_header_out(s, pp, sizeof(pp));
    if (k && lb_buf_append(&s->f.to_upstream, pp, k, sizeof(pp)) < 0) {
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
        return;
    }
    if (!s->early) /* an early dial is noted when the route takes it */
        routed_notes(s);
    s->f.now_ms = lb__now(s);
    lb__apply(s, s->f.ops->on_upstream_connected(&s->f));
}

/* A routed session connected to its node: the stream index learns of a
 * publish, and the log says where the session went. */
static void routed_notes(struct lb_session *s)
{
    struct ups_node *n = s->node;
    atomic_fetch_add(&n->live->sessions_total, 1);
    if (s->f.role == CONF_ROLE_PUBLISH && s->f.app && s->f.stream && !s->indexed) {
        hc_index_add_publish(s->h->env->index, n->pool->name, n->name, s->f.app, s->f.stream);
        s->indexed = true;
    }
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_INFO, "routed");
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "listener", s->lst->name);
    if (s->f.hs_kind) {
        lb_log_str(&l, "role", conf_role_name(s->f.role));
        lb_log_str(&l, "app", s->f.app);
        lb_log_str(&l, "stream", s->f.stream);
    }
    lb_log_str(&l, "route", s->f.route->name);
    lb_log_str(&l, "pool", n->pool->name);
    lb_log_str(&l, "node", n->name);
    lb_log_u64(&l, "attempt", s->f.dials);
    lb_log_end(&l);
}

/* An RTMPS node: the TLS handshake after connect, within the dial's
 * deadline (attempt_ms: timeouts.connect, or more for the last candidate
 * of an rtmp session), before the phase hears of the node. A
 * failure (a verification failure too) is this node's: next candidate. */
static void on_dial_tls_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    enum lb_tls_result res;

    if (status < 0) {
        lb_tls_count(LB_TLS_SIDE_ORIGIN, LB_TLS_CLOSED, LB_TLS_V_UNKNOWN);
        snprintf(s->fail_detail, sizeof(s->fail_detail), "TLS handshake: %s",
                 strerror(ECONNRESET));
        lb__node_failed(s, LB_REASON_ORIGIN_TLS, 0);
        lb__settle(s);
        return;
    }
    int rc = lb_tls_handshake(&s->upstream, LB_TLS_SIDE_ORIGIN, &res, s->fail_detail,
                              sizeof(s->fail_detail));
    if (rc == -EAGAIN) {
        s->uev = lb_tls_hs_events(&s->upstream);
        uv_poll_start(&s->upoll, s->uev, on_dial_tls_event);
        return;
    }
    if (rc < 0) {
        lb__node_failed(s, LB_REASON_ORIGIN_TLS, 0);
    } else {
        s->u_tls_hs = false;
        connected(s);
    }
    lb__settle(s);
}

static void tls_begin(struct lb_session *s)
{
    uint8_t pp[PP_MAX_HEADER];
    size_t k = lb__proxy_header_out(s, pp, sizeof(pp));
    /* A fresh socket takes a PROXY header (<= 232 bytes) whole. */
    if (k && send(s->upstream.fd, pp, k, MSG_NOSIGNAL) != (ssize_t)k) {
        lb__node_failed(s, LB_REASON_DIAL_FAILED, errno ? errno : EIO);
        return;
    }
    if (lb_tls_connect(&s->upstream, s->node->tls) < 0) {
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, ENOMEM);
        return;
    }
    s->u_tls_hs = true;
    on_dial_tls_event(&s->upoll, 0, UV_WRITABLE);
}

void lb__on_dial_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(s->upstream.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (status == 0 && soerr == 0 && s->node->tls) {
        tls_begin(s); /* settles itself */
        return;
    }
    if (status == 0 && soerr == 0)
        connected(s);
    else
        lb__node_failed(s, LB_REASON_DIAL_FAILED, soerr ? soerr : ECONNREFUSED);
    lb__settle(s);
}

/* Not the node's fault: this process is out of descriptors or memory. */
static bool local_shortage(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static uint64_t attempt_ms(const struct lb_session *s);

void lb__dial_start(struct lb_session *s)
{
    struct ups_node *n = s->node;
    s->f.dials++;
    s->f.last_candidate = s->rtmp_mode && s->next_cand >= s->cands.n;
    /* http listeners dial the node's http address (the router kept only
     * nodes that have one). */
    bool http = s->f.req.http && n->http_addrlen;
    const struct sockaddr_storage *addr = http ? &n->http_addr : &n->addr;
    socklen_t addrlen = http ? n->http_addrlen : n->addrlen;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && !local_shortage(errno)) { /* e.g. no IPv6 here: this node's fault */
        lb__node_failed(s, LB_REASON_DIAL_FAILED, errno);
        return;
    }
    if (fd < 0) { /* out of descriptors or memory: not the node's fault */
        int err = errno;
        lb__dialq_leave(s);
        ups_node_release(n);
        s->node = NULL;
        s->f.node = NULL;
        lb_log_msg(LB_LOG_WARN, "dial", "client %s: no socket for node %s: %s", s->client_text,
                   n->name, strerror(err));
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, err);
        return;
    }
    s->upstream.fd = fd;
    if (connect(fd, (const struct sockaddr *)addr, addrlen) < 0 && errno != EINPROGRESS) {
        lb__node_failed(s, LB_REASON_DIAL_FAILED, errno);
        return;
    }
    int rc = uv_poll_init_socket(s->h->loop, &s->upoll, fd);
    if (rc < 0) {
        lb_log_msg(LB_LOG_ERROR, "dial", "client %s: cannot poll a socket: %s", s->client_text,
                   uv_strerror(rc));
        lb__close_req(s, LB_REASON_INTERNAL_ERROR, 0);
        return;
    }
    s->upoll.data = s;
    s->upoll_open = true;
    s->open_handles++;
    uv_poll_start(&s->upoll, UV_WRITABLE, lb__on_dial_event);
    s->uev = UV_WRITABLE;
    s->dial_deadline = lb__now(s) + attempt_ms(s);
}

/* How long one node may take (its dial queue, the connect, TLS, and its
 * answer to the RTMP handshake): timeouts.connect when another candidate
 * could take the session after it. The last candidate of an rtmp or http
 * session (rtmp_mode) has what is left of the session's handshake deadline
 * (accept + timeouts.handshake), at least timeouts.connect: a storm
 * against one origin, or an origin slow under load, is then served late
 * rather than refused while the client still waits. tcp sessions, and
 * later requests of an http keep-alive connection, get timeouts.connect. */
static uint64_t attempt_ms(const struct lb_session *s)
{
    uint64_t wait = (uint64_t)atomic_load(&s->h->env->connect_ms);
    if (s->next_cand < s->cands.n || !s->rtmp_mode)
        return wait;
    uint64_t now = lb__now(s);
    return s->hs_deadline > now + wait ? s->hs_deadline - now : wait;
}

void lb__dial_next(struct lb_session *s)
{
    while (s->next_cand < s->cands.n) {
        struct ups_node *n = s->cands.node[s->next_cand++];
        if (!ups_node_acquire(n))
            continue; /* filled up since routing */
        s->node = n;
        s->log_node = n;
        s->f.node = n;
        if (!lb__dialq_take(s, n)) {
            if (s->dial_queued) {
                s->dial_deadline = lb__now(s) + attempt_ms(s);
                return;
            }
            ups_node_release(n); /* its queue is full: the next candidate */
            s->node = NULL;
            s->f.node = NULL;
            continue;
        }
        lb__dial_start(s);
        return;
    }
    s->dial_deadline = 0;
    if (s->early) {
        early_failed(s);
        return;
    }
    lb__apply(s, s->f.ops->on_dials_failed(&s->f, s->f.dials ? LB_REASON_DIAL_FAILED
                                                              : LB_REASON_NO_NODE));
}
