/* One proxied session: route, dial the candidates in order, then move bytes
 * both ways with splice(2) until both directions have seen EOF.
 *
 * States: DIALING -> SPLICING -> CLOSING, or DIALING -> CLOSING.
 * Each direction is READ (wait for the source), WRITE (bytes in flight,
 * wait for the destination: backpressure, the source is not read), or DONE
 * (EOF seen and the destination shut down for writing). At most one pipe's
 * worth of bytes is held per direction. */
#include "lb/lb.h"
#include "geo/geo.h"
#include "lb/log.h"
#include "health/hc.h"
#include "health/streams.h"
#include "lb/proxy_proto.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_CHUNK (16 * 1024) /* copy fallback buffer */
#define PUMP_BUDGET (1u << 20) /* bytes per wake-up, so one session can't starve others */

static const char *state_name(enum lb_session_state st)
{
    static const char *names[] = {"proxy", "frontdoor", "dialing", "upstream", "splicing",
                                  "closing"};
    return names[st];
}

/* allowed[from] is a bit set of the states a session may move to. */
#define BIT(x) (1u << (x))
static const unsigned allowed[] = {
    [LB_SS_PROXY] = BIT(LB_SS_FRONTDOOR) | BIT(LB_SS_DIALING) | BIT(LB_SS_CLOSING),
    [LB_SS_FRONTDOOR] = BIT(LB_SS_DIALING) | BIT(LB_SS_CLOSING),
    [LB_SS_DIALING] = BIT(LB_SS_UPSTREAM) | BIT(LB_SS_SPLICING) | BIT(LB_SS_CLOSING),
    [LB_SS_UPSTREAM] = BIT(LB_SS_SPLICING) | BIT(LB_SS_CLOSING),
    [LB_SS_SPLICING] = BIT(LB_SS_CLOSING),
    [LB_SS_CLOSING] = 0,
};

static void set_state(struct lb_session *s, enum lb_session_state to)
{
    if (!(allowed[s->state] & BIT(to))) {
        lb_log_msg(LB_LOG_ERROR, "bug", "session %s: bad transition %s -> %s", s->client,
                   state_name(s->state), state_name(to));
        abort();
    }
    s->state = to;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- closing ---------------------------------------------------------- */

static void dial_next(struct lb_session *s);

/* The one close callback of a session's handles. While dialing, only the
 * upstream poll is ever closed (a failed dial): then the next dial starts.
 * Once closing, the memory goes with the last handle. */
static void on_handle_closed(uv_handle_t *h)
{
    struct lb_session *s = h->data;

    s->open_handles--;
    if (s->state == LB_SS_DIALING) {
        dial_next(s);
        return;
    }
    if (s->open_handles > 0)
        return;
    struct lb_worker *w = s->w;
    ups_snapshot_unref(s->snap);
    free(s->app);
    free(s->stream);
    free(s);
    lb_worker_session_gone(w);
}

static void dir_release(struct lb_session *s, struct lb_dir *d)
{
    if (d->has_pipe) {
        lb_pipe_put(&s->w->pipes, &d->pipe, d->pending == 0);
        d->has_pipe = false;
    }
    free(d->buf);
    d->buf = NULL;
    d->pending = 0;
}

static void access_log(struct lb_session *s)
{
    struct lb_logline l;
    uint64_t dur_ms = lb_session_age_us(s) / 1000;

    lb_log_begin_access(&l, "session");
    lb_log_str(&l, "client", s->client);
    lb_log_str(&l, "listener", s->listener);
    lb_log_str(&l, "route", s->route ? s->route->name : NULL);
    lb_log_str(&l, "pool", s->route ? s->route->pool->name : NULL);
    lb_log_str(&l, "node", s->node ? s->node->name : NULL);
    lb_log_str(&l, "upstream", s->node ? s->node->address_text : NULL);
    if (s->snap && s->snap->geo)
        lb_log_str(&l, "country", s->country[0] ? s->country : NULL);
    if (s->hs_kind) {
        static const char *roles[] = {"-", "publish", "play"};
        lb_log_str(&l, "role", roles[s->role]);
        lb_log_str(&l, "app", s->app);
        lb_log_str(&l, "stream", s->stream);
        lb_log_str(&l, "handshake", s->hs_kind);
        if (s->preroute_us >= 0)
            lb_log_fmt(&l, "preroute_ms", "%.3f", (double)s->preroute_us / 1000.0);
        else
            lb_log_str(&l, "preroute_ms", NULL);
    }
    lb_log_u64(&l, "dials", s->dials);
    lb_log_u64(&l, "bytes_in", s->c2u.bytes);
    lb_log_u64(&l, "bytes_out", s->u2c.bytes);
    lb_log_u64(&l, "duration_ms", dur_ms);
    lb_log_str(&l, "reason", s->reason);
    lb_log_end(&l);
}

void lb_session_close(struct lb_session *s, const char *reason)
{
    struct lb_server *srv = s->w->srv;

    if (s->state == LB_SS_CLOSING)
        return;
    set_state(s, LB_SS_CLOSING);
    if (!s->reason[0])
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
    access_log(s);

    if (s->node) {
        atomic_fetch_add(&s->node->live->bytes_from_client, s->c2u.bytes);
        atomic_fetch_add(&s->node->live->bytes_to_client, s->u2c.bytes);
        ups_node_release(s->node);
    }
    dir_release(s, &s->c2u);
    dir_release(s, &s->u2c);
    lb_rtmp_free(s);
    if (s->indexed)
        hc_index_remove_publish(srv->index, s->node->pool->name, s->node->name, s->app, s->stream);

    /* Unlink now: the worker's count drops when the memory goes. */
    if (s->prev)
        s->prev->next = s->next;
    else
        s->w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    atomic_fetch_sub(&srv->sessions, 1);

    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->cpoll, on_handle_closed);
    close(s->cfd); /* safe: the poll handle is no longer active */
    if (s->upoll_open) {
        uv_close((uv_handle_t *)&s->upoll, on_handle_closed);
        s->upoll_open = false;
    }
    if (s->ufd >= 0)
        close(s->ufd); /* after uv_close: never close a polled fd */
    s->ufd = -1;
}

static void close_with_errno(struct lb_session *s, const char *side, int err)
{
    snprintf(s->reason, sizeof(s->reason), "%s_error:%s", side, uv_err_name(uv_translate_sys_error(err)));
    lb_session_close(s, s->reason);
}

/* ---- splicing --------------------------------------------------------- */

enum pump_result { PUMP_OK, PUMP_SRC_ERR, PUMP_DST_ERR };

/* Moves bytes src -> dst until the source has nothing (READ), the
 * destination is full (WRITE), EOF is propagated (DONE), or the budget for
 * this wake-up is spent (READ: level-triggered polling calls again). */
static enum pump_result pump(struct lb_session *s, struct lb_dir *d, int src, int dst, int *err)
{
    size_t moved = 0;

    for (;;) {
        while (d->pending > 0) {
            ssize_t n;
            if (d->has_pipe)
                n = splice(d->pipe.rfd, NULL, dst, NULL, d->pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = send(dst, d->buf + d->off, d->pending, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    d->state = LB_DIR_WRITE;
                    return PUMP_OK;
                }
                *err = errno;
                return PUMP_DST_ERR;
            }
            d->pending -= (size_t)n;
            d->off += (size_t)n;
        }
        /* Empty: give the pipe back (idle sessions hold none). */
        dir_release(s, d);

        if (d->state == LB_DIR_DONE)
            return PUMP_OK;
        if (moved >= PUMP_BUDGET) {
            d->state = LB_DIR_READ;
            return PUMP_OK;
        }

        ssize_t n;
        if (!d->has_pipe && !d->buf) {
            if (lb_pipe_get(&s->w->pipes, &d->pipe)) {
                d->has_pipe = true;
            } else {
                s->w->pipes.fallbacks++;
                d->buf = malloc(COPY_CHUNK);
                if (!d->buf) {
                    *err = ENOMEM;
                    return PUMP_SRC_ERR;
                }
            }
        }
        size_t want = d->has_pipe ? s->w->pipes.pipe_size : COPY_CHUNK;
        if (d->has_pipe)
            n = splice(src, NULL, d->pipe.wfd, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        else
            n = recv(src, d->buf, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                dir_release(s, d);
                d->state = LB_DIR_READ;
                return PUMP_OK;
            }
            *err = errno;
            return PUMP_SRC_ERR;
        }
        if (n == 0) {
            /* EOF: pass the half-close on. */
            dir_release(s, d);
            shutdown(dst, SHUT_WR);
            d->state = LB_DIR_DONE;
            return PUMP_OK;
        }
        d->pending = (size_t)n;
        d->off = 0;
        d->bytes += (uint64_t)n;
        moved += (size_t)n;
        s->t_last_ms = uv_now(&s->w->loop);
        /* A short read drained the socket: after flushing, wait for the
         * next readiness instead of paying a syscall for a sure EAGAIN. */
        if ((size_t)n < want)
            moved = PUMP_BUDGET;
    }
}

static void on_client_event(uv_poll_t *h, int status, int events);
static void on_upstream_event(uv_poll_t *h, int status, int events);

void lb_session_set_poll(uv_poll_t *h, int *cur, int want, uv_poll_cb cb)
{
    /* *cur < 0 forces a restart: how a new callback takes over. */
    if (want == *cur)
        return;
    if (want)
        uv_poll_start(h, want, cb);
    else
        uv_poll_stop(h);
    *cur = want;
}

/* After pumping: stop when both directions are done, else poll for what
 * each direction waits on. */
static void rearm(struct lb_session *s)
{
    if (s->c2u.state == LB_DIR_DONE && s->u2c.state == LB_DIR_DONE) {
        lb_session_close(s, s->reason[0] ? s->reason : "closed");
        return;
    }
    int cev = (s->c2u.state == LB_DIR_READ ? UV_READABLE : 0) |
              (s->u2c.state == LB_DIR_WRITE ? UV_WRITABLE : 0);
    int uev = (s->u2c.state == LB_DIR_READ ? UV_READABLE : 0) |
              (s->c2u.state == LB_DIR_WRITE ? UV_WRITABLE : 0);
    lb_session_set_poll(&s->cpoll, &s->cev, cev, on_client_event);
    lb_session_set_poll(&s->upoll, &s->uev, uev, on_upstream_event);
}

/* Who closed first names a clean end. */
static void note_eof(struct lb_session *s, const struct lb_dir *d, enum lb_dir_state before,
                     const char *who)
{
    if (before != LB_DIR_DONE && d->state == LB_DIR_DONE && !s->reason[0])
        snprintf(s->reason, sizeof(s->reason), "%s", who);
}

static bool run_dir(struct lb_session *s, struct lb_dir *d, int src, int dst, const char *src_name,
                    const char *dst_name, const char *eof_reason)
{
    int err = 0;
    enum lb_dir_state before = d->state;
    enum pump_result r = pump(s, d, src, dst, &err);
    if (r != PUMP_OK) {
        close_with_errno(s, r == PUMP_SRC_ERR ? src_name : dst_name, err);
        return false;
    }
    note_eof(s, d, before, eof_reason);
    return true;
}

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err ? err : ECONNRESET;
}

static void on_client_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    if (status < 0) { /* POLLERR: libuv stopped the handle */
        s->cev = 0;
        close_with_errno(s, "client", sock_error(s->cfd));
        return;
    }
    if ((events & UV_READABLE) && s->c2u.state == LB_DIR_READ &&
        !run_dir(s, &s->c2u, s->cfd, s->ufd, "client", "upstream", "client_closed"))
        return;
    if ((events & UV_WRITABLE) && s->u2c.state == LB_DIR_WRITE &&
        !run_dir(s, &s->u2c, s->ufd, s->cfd, "upstream", "client", "upstream_closed"))
        return;
    rearm(s);
}

static void on_upstream_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    if (status < 0) {
        s->uev = 0;
        close_with_errno(s, "upstream", sock_error(s->ufd));
        return;
    }
    if ((events & UV_READABLE) && s->u2c.state == LB_DIR_READ &&
        !run_dir(s, &s->u2c, s->ufd, s->cfd, "upstream", "client", "upstream_closed"))
        return;
    if ((events & UV_WRITABLE) && s->c2u.state == LB_DIR_WRITE &&
        !run_dir(s, &s->c2u, s->cfd, s->ufd, "client", "upstream", "client_closed"))
        return;
    rearm(s);
}

static void on_idle_timer(uv_timer_t *t)
{
    struct lb_session *s = t->data;
    uint64_t idle = (uint64_t)atomic_load(&s->w->srv->idle_ms);
    uint64_t now = uv_now(&s->w->loop);

    if (idle == 0)
        return;
    if (now - s->t_last_ms >= idle) {
        lb_session_close(s, "idle_timeout");
        return;
    }
    uv_timer_start(&s->timer, on_idle_timer, idle - (now - s->t_last_ms), 0);
}

void lb_session_splice(struct lb_session *s, bool fresh)
{
    uint64_t idle = (uint64_t)atomic_load(&s->w->srv->idle_ms);

    set_state(s, LB_SS_SPLICING);
    s->t_last_ms = uv_now(&s->w->loop);
    uv_timer_stop(&s->timer);
    if (idle)
        uv_timer_start(&s->timer, on_idle_timer, idle, 0);
    if (fresh) {
        s->c2u.state = LB_DIR_READ;
        s->u2c.state = LB_DIR_READ;
    }
    /* Force both polls over to the splice callbacks. */
    s->cev = -1;
    s->uev = -1;
    rearm(s);
}

bool lb_session_pump_c2u(struct lb_session *s)
{
    return run_dir(s, &s->c2u, s->cfd, s->ufd, "client", "upstream", "client_closed");
}

uint64_t lb_session_handshake_ms(struct lb_session *s)
{
    return (uint64_t)atomic_load(&s->w->srv->handshake_ms);
}

uint64_t lb_session_age_us(const struct lb_session *s)
{
    return (uv_hrtime() - s->t_accept_ns) / 1000;
}

/* What is left of timeouts.handshake, counted from accept. */
static uint64_t handshake_left_ms(struct lb_session *s)
{
    uint64_t used = lb_session_age_us(s) / 1000, limit = lb_session_handshake_ms(s);
    return used < limit ? limit - used : 0;
}

/* ---- dialing ---------------------------------------------------------- */

/* Passive health: consecutive failed dials to a checked node count toward
 * its pool's fall; the probes bring it back after `rise` passes. Nodes
 * without checks are never marked down (nothing would bring them back). */
void lb_session_passive_failure(struct lb_session *s, struct ups_node *n, const char *why)
{
    if (!n->checked)
        return;
    unsigned fails = atomic_fetch_add(&n->live->passive_fails, 1) + 1;
    int up = UPS_UP;
    if (fails >= n->fall && atomic_compare_exchange_strong(&n->live->health, &up, UPS_DOWN)) {
        struct lb_logline l;
        lb_log_begin(&l, LB_LOG_WARN, "node_down");
        lb_log_str(&l, "pool", n->pool->name);
        lb_log_str(&l, "node", n->name);
        lb_log_str(&l, "check", hc_result_name(HC_PASSIVE));
        lb_log_fmt(&l, "reason", "%u sessions in a row failed to reach it", fails);
        lb_log_str(&l, "detail", why);
        lb_log_end(&l);
    }
}

static void dial_failed(struct lb_session *s, int err)
{
    struct lb_logline l;
    struct ups_node *n = s->node;

    atomic_fetch_add(&n->live->dial_failures, 1);
    lb_session_passive_failure(s, n, err == ETIMEDOUT ? "timeout" : strerror(err));
    lb_log_begin(&l, LB_LOG_WARN, "dial_failed");
    lb_log_str(&l, "client", s->client);
    lb_log_str(&l, "pool", n->pool->name);
    lb_log_str(&l, "node", n->name);
    lb_log_str(&l, "upstream", n->address_text);
    lb_log_str(&l, "error", err == ETIMEDOUT ? "timeout" : strerror(err));
    lb_log_u64(&l, "attempt", s->dials);
    lb_log_str(&l, "next", s->next_cand < s->cands.n ? s->cands.node[s->next_cand]->name : "none");
    lb_log_end(&l);

    ups_node_release(n);
    s->node = NULL;
    uv_timer_stop(&s->timer);
    if (s->upoll_open) {
        /* The next dial starts in the close callback, once the handle is free. */
        s->upoll_open = false;
        s->uev = 0;
        uv_close((uv_handle_t *)&s->upoll, on_handle_closed);
        close(s->ufd);
        s->ufd = -1;
    } else {
        if (s->ufd >= 0)
            close(s->ufd);
        s->ufd = -1;
        dial_next(s);
    }
}

static void on_dial_event(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(s->ufd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (status == 0 && soerr == 0) {
        uv_poll_stop(h);
        s->uev = 0;
        atomic_store(&s->node->live->passive_fails, 0);
        atomic_fetch_add(&s->node->live->sessions_total, 1);
        set_nodelay(s->ufd);
        if (s->rtmp) {
            set_state(s, LB_SS_UPSTREAM);
            lb_rtmp_upstream_connected(s);
            return;
        }
        uint8_t hdr[64];
        size_t n = lb_session_proxy_header(s, hdr, sizeof(hdr));
        /* A fresh socket's send buffer takes a PROXY header whole. */
        if (n && send(s->ufd, hdr, n, MSG_NOSIGNAL) != (ssize_t)n) {
            close_with_errno(s, "upstream", errno ? errno : EIO);
            return;
        }
        lb_session_splice(s, true);
        return;
    }
    dial_failed(s, soerr ? soerr : ECONNREFUSED);
}

static void on_dial_timeout(uv_timer_t *t)
{
    struct lb_session *s = t->data;
    dial_failed(s, ETIMEDOUT);
}

static void dial_next(struct lb_session *s)
{
    struct lb_server *srv = s->w->srv;

    while (s->next_cand < s->cands.n) {
        struct ups_node *n = s->cands.node[s->next_cand++];
        if (!ups_node_acquire(n))
            continue; /* filled up since routing */
        s->node = n;
        s->dials++;
        s->ufd = socket(n->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->ufd < 0) {
            dial_failed(s, errno);
            return;
        }
        if (connect(s->ufd, (const struct sockaddr *)&n->addr, n->addrlen) < 0 &&
            errno != EINPROGRESS) {
            dial_failed(s, errno);
            return;
        }
        if (uv_poll_init_socket(&s->w->loop, &s->upoll, s->ufd) < 0) {
            dial_failed(s, EIO);
            return;
        }
        s->upoll.data = s;
        s->upoll_open = true;
        s->open_handles++;
        uv_poll_start(&s->upoll, UV_WRITABLE, on_dial_event);
        s->uev = UV_WRITABLE;
        uv_timer_start(&s->timer, on_dial_timeout, (uint64_t)atomic_load(&srv->connect_ms), 0);
        return;
    }
    if (s->rtmp)
        lb_rtmp_dials_failed(s);
    else
        lb_session_close(s, s->dials ? "dial_failed" : "no_node");
}

void lb_session_dial(struct lb_session *s)
{
    if (s->state != LB_SS_DIALING) /* tcp sessions start there */
        set_state(s, LB_SS_DIALING);
    dial_next(s);
}

/* ---- start ------------------------------------------------------------ */

size_t lb_session_proxy_header(struct lb_session *s, uint8_t *out, size_t cap)
{
    if (!s->node || s->node->send_proxy == CONF_PP_OFF)
        return 0;
    if (!s->local_known) { /* only send_proxy needs it: not asked on every accept */
        socklen_t len = sizeof(s->local);
        getsockname(s->cfd, (struct sockaddr *)&s->local, &len);
        s->local_known = true;
    }
    const struct sockaddr *src = (const struct sockaddr *)&s->peer;
    const struct sockaddr *dst = (const struct sockaddr *)&s->local;
    return s->node->send_proxy == CONF_PP_V2 ? pp_write_v2(out, cap, src, dst)
                                             : pp_write_v1(out, cap, src, dst);
}

void lb_session_geo(struct lb_session *s, struct ups_request *req)
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

/* tcp listeners: route on listener (and geo) now, then dial. */
static void route_l4(struct lb_session *s)
{
    struct ups_request req = {.listener = s->listener, .l4 = true, .worker = s->w->id,
                              .now_ms = uv_now(&s->w->loop)};
    lb_session_geo(s, &req);
    s->route = ups_route_select(s->snap, &req, &s->cands);
    if (!s->route) {
        lb_session_close(s, "no_route");
        return;
    }
    lb_session_dial(s);
}

/* The header is read; the client's own bytes come next. */
static void after_proxy(struct lb_session *s)
{
    uv_timer_stop(&s->timer);
    if (s->lst->mode == CONF_MODE_RTMP) {
        set_state(s, LB_SS_FRONTDOOR);
        lb_rtmp_start(s);
    } else {
        route_l4(s);
    }
}

static void on_proxy_readable(uv_poll_t *h, int status, int events);

static void on_proxy_timer(uv_timer_t *t)
{
    struct lb_session *s = t->data;
    if (handshake_left_ms(s) == 0) {
        lb_log_msg(LB_LOG_WARN, "proxy_protocol", "client %s: no complete PROXY header within %llums",
                   s->client, (unsigned long long)lb_session_handshake_ms(s));
        lb_session_close(s, "proxy_timeout");
        return;
    }
    /* Part of a header is waiting unread: look again shortly (the poll is
     * level-triggered, so it would spin on the bytes we only peeked). */
    on_proxy_readable(&s->cpoll, 0, UV_READABLE);
}

static void on_proxy_readable(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    uint8_t buf[PP_MAX_HEADER];
    struct pp_header ph;
    const char *why = NULL;

    if (status < 0) {
        lb_session_close(s, "client_error");
        return;
    }
    ssize_t n = recv(s->cfd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!s->cev) { /* called from the retry timer: wait for bytes again */
            s->cev = UV_READABLE;
            uv_poll_start(&s->cpoll, UV_READABLE, on_proxy_readable);
            uv_timer_start(&s->timer, on_proxy_timer, handshake_left_ms(s), 0);
        }
        return;
    }
    if (n <= 0) {
        lb_session_close(s, n == 0 ? "client_closed" : "client_error");
        return;
    }
    enum pp_result r = pp_parse(buf, (size_t)n, (enum pp_accept)s->lst->proxy_protocol, &ph, &why);
    if (r == PP_NEED_MORE && (size_t)n < sizeof(buf)) {
        s->cev = 0;
        uv_poll_stop(&s->cpoll);
        uv_timer_start(&s->timer, on_proxy_timer, 10, 0);
        return;
    }
    if (r != PP_DONE) {
        struct lb_logline l;
        lb_log_begin(&l, LB_LOG_WARN, "proxy_protocol");
        lb_log_str(&l, "client", s->client);
        lb_log_str(&l, "listener", s->listener);
        lb_log_str(&l, "error", why ? why : "PROXY header too long");
        lb_log_end(&l);
        lb_session_close(s, "proxy_protocol");
        return;
    }
    /* Consume exactly the header: whatever follows stays in the socket. */
    ssize_t k = recv(s->cfd, buf, ph.size, 0);
    if (k != (ssize_t)ph.size) {
        lb_session_close(s, "client_error");
        return;
    }
    if (!ph.local) {
        memcpy(&s->peer, &ph.src, ph.len);
        memcpy(&s->local, &ph.dst, ph.len);
        s->local_known = true;
        lb_sockaddr_text((struct sockaddr *)&s->peer, s->client, sizeof(s->client));
    }
    s->cev = 0;
    uv_poll_stop(&s->cpoll);
    after_proxy(s);
}

void lb_session_start(struct lb_worker *w, struct lb_wlistener *l, int fd,
                      const struct sockaddr *sa, socklen_t salen)
{
    struct lb_session *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        atomic_fetch_sub(&w->srv->sessions, 1);
        return;
    }
    s->w = w;
    s->state = LB_SS_DIALING;
    s->cfd = fd;
    s->ufd = -1;
    s->lst = l;
    s->listener = l->name;
    s->t_accept_ns = uv_hrtime();
    memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
    lb_sockaddr_text(sa, s->client, sizeof(s->client));
    set_nodelay(fd);

    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
    uv_poll_init_socket(&w->loop, &s->cpoll, fd);
    s->cpoll.data = s;
    s->open_handles = 2;

    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->n_sessions++;

    s->snap = ups_snapshot_ref(w->snap);
    s->preroute_us = -1;
    if (l->proxy_protocol != CONF_PP_OFF) {
        s->state = LB_SS_PROXY;
        uv_timer_start(&s->timer, on_proxy_timer, lb_session_handshake_ms(s), 0);
        s->cev = UV_READABLE;
        uv_poll_start(&s->cpoll, UV_READABLE, on_proxy_readable);
        return;
    }
    if (l->mode == CONF_MODE_RTMP) {
        s->state = LB_SS_FRONTDOOR;
        lb_rtmp_start(s);
        return;
    }
    route_l4(s);
}
