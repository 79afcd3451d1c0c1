/* The RTMP front door (../shared/DESIGN.md "RTMP front door").
 *
 *   HANDSHAKE  read C0C1, answer S0S1S2 at once (simple or FP9 digest), read C2
 *   LOCAL      decode the client's chunks; answer connect and createStream;
 *              buffer every byte after C2 in B; on publish/play: route
 *   ROUTED     dialing candidates (session.c)
 *   UP_HS      plain client handshake with the origin, then C2 + B verbatim
 *   PATCH      origin -> client forwarded verbatim while parsed; the origin's
 *              replies to the commands already answered get their
 *              transaction id zeroed in place; client -> origin is spliced
 *   HANDOVER   every such reply seen: flush, then splice both ways
 *   FAILING    an error reply is on its way to the client; then close
 *
 * route_on: connect skips LOCAL's answers: it routes on connect and hands
 * over as soon as B is replayed, so the origin's own answers reach the
 * client untouched. */
#include "lb/lb.h"
#include "lb/log.h"
#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/command.h"
#include "lb/rtmp/handshake.h"
#include "health/streams.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TIDS 8
#define MAX_ASM 4
#define UIN_CAP (256 * 1024)  /* origin bytes held while patching */
#define COUT_HIGH (256 * 1024) /* stop reading the origin above this */
#define FAIL_LINGER_MS 1000

enum fd_state { FD_HANDSHAKE, FD_LOCAL, FD_ROUTED, FD_UP_HS, FD_PATCH, FD_HANDOVER, FD_FAILING };

static const char *fd_state_name[] = {"handshake", "local", "routed", "upstream_handshake",
                                      "patch", "handover", "failing"};

struct buf {
    uint8_t *data;
    size_t len;
    size_t off; /* consumed from the front (output buffers) */
    size_t cap;
};

struct assembly {
    bool used;
    uint32_t csid;
    uint8_t type;
    uint32_t len, got;
    uint8_t *data;
};

struct lb_rtmp {
    enum fd_state st;
    bool passthrough; /* route_on: connect */
    bool connected;   /* connect answered by us */
    bool c2u_active;  /* B replayed: client -> origin is spliced */
    double connect_tid;
    bool have_connect_tid;
    struct {
        double tid;
        bool create_stream;
    } t[MAX_TIDS];
    size_t n_t;
    struct rtmp_hs_server hs;
    struct rtmp_hs_client hc;
    struct buf b; /* client bytes after C2: the replay */
    size_t b_parsed;
    struct rtmp_chunk_dec cdec;
    struct assembly as[MAX_ASM];
    struct amf_limits amf;
    struct buf cout; /* to the client */
    struct buf uout; /* to the origin */
    struct buf uin;  /* from the origin, while patching */
    size_t uin_parsed;
    struct rtmp_chunk_dec udec;
    bool u_scs_seen;
    uint32_t u_scs_csid, u_scs_value;
    bool u_scs_pending;
    uint64_t dirty; /* chunk streams the client saw our headers on */
    uint32_t client_chunk; /* the client's read chunk size */
    char failure[160];
};

/* ---- buffers ------------------------------------------------------------ */

static int buf_reserve(struct buf *b, size_t more, size_t limit)
{
    if (b->len + more <= b->cap)
        return 0;
    if (b->len + more > limit)
        return -1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int buf_append(struct buf *b, const void *p, size_t n, size_t limit)
{
    if (n == 0)
        return 0;
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (buf_reserve(b, n, limit) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

/* Writes what it can. Returns 0 (maybe partial), or an errno. */
static int buf_flush(struct buf *b, int fd)
{
    while (b->off < b->len) {
        ssize_t n = send(fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return errno;
        }
        b->off += (size_t)n;
    }
    b->off = b->len = 0;
    return 0;
}

/* ---- plumbing ------------------------------------------------------------ */

static void on_client(uv_poll_t *h, int status, int events);
static void on_upstream(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *t);
static void rearm(struct lb_session *s);

static void set_fd_state(struct lb_session *s, enum fd_state to)
{
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_DEBUG, "rtmp_state");
    lb_log_str(&l, "client", s->client);
    lb_log_str(&l, "from", fd_state_name[s->rtmp->st]);
    lb_log_str(&l, "to", fd_state_name[to]);
    lb_log_end(&l);
    s->rtmp->st = to;
}

void lb_rtmp_free(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    if (!r)
        return;
    buf_free(&r->b);
    buf_free(&r->cout);
    buf_free(&r->uout);
    buf_free(&r->uin);
    for (size_t i = 0; i < MAX_ASM; i++)
        free(r->as[i].data);
    free(r);
    s->rtmp = NULL;
}

static void close_now(struct lb_session *s, const char *reason)
{
    lb_session_close(s, reason);
}

static const char *fail_code(const struct lb_session *s)
{
    return s->role == CONF_ROLE_PUBLISH ? "NetStream.Publish.Denied"
                                         : "NetStream.Play.StreamNotFound";
}

/* Tells the client why in RTMP, at a message boundary of what it has been
 * sent, then closes once that is flushed (or after a short linger). */
static void fail(struct lb_session *s, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct lb_session *s, const char *reason, const char *fmt, ...)
{
    struct lb_rtmp *r = s->rtmp;
    uint8_t msg[1024];
    size_t n = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->failure, sizeof(r->failure), fmt, ap);
    va_end(ap);
    snprintf(s->reason, sizeof(s->reason), "%s", reason);

    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_WARN, "rtmp_refused");
    lb_log_str(&l, "client", s->client);
    lb_log_str(&l, "app", s->app);
    lb_log_str(&l, "stream", s->stream);
    lb_log_str(&l, "reason", reason);
    lb_log_str(&l, "detail", r->failure);
    lb_log_end(&l);

    if (s->role != CONF_ROLE_ANY && r->connected)
        n = rtmp_reply_status_error(msg, sizeof(msg), fail_code(s), r->failure, r->client_chunk);
    else if (r->have_connect_tid)
        n = rtmp_reply_connect_rejected(msg, sizeof(msg), r->connect_tid, r->failure,
                                        r->client_chunk);
    if (n == 0 || buf_append(&r->cout, msg, n, SIZE_MAX / 2) < 0) {
        close_now(s, reason);
        return;
    }
    set_fd_state(s, FD_FAILING);
    uv_timer_start(&s->timer, on_timer, FAIL_LINGER_MS, 0);
    rearm(s);
}

/* ---- routing ------------------------------------------------------------- */

static void set_names(struct lb_session *s, const char *app, const char *stream)
{
    if (app && !s->app)
        s->app = strdup(app);
    if (stream) {
        free(s->stream);
        s->stream = strdup(stream);
    }
}

/* The routing decision is made now, whatever its outcome. */
static void decided(struct lb_session *s, const struct ups_route *route)
{
    s->preroute_us = (int64_t)lb_session_age_us(s);
    s->route = route;
}

static void routed(struct lb_session *s, const struct ups_route *route)
{
    decided(s, route);
    set_fd_state(s, FD_ROUTED);
    uv_timer_stop(&s->timer);
    rearm(s);
    lb_session_dial(s);
}

static void route_stream(struct lb_session *s, int role)
{
    struct ups_request req = {.listener = s->listener, .l4 = false, .role = role,
                              .app = s->app, .stream = s->stream, .worker = s->w->id,
                              .now_ms = uv_now(&s->w->loop)};
    char located[128];
    lb_session_geo(s, &req);
    s->role = role;
    const struct ups_route *route = ups_route_find(s->snap, &req);
    decided(s, route);
    if (!route) {
        fail(s, "no_route", "rtmplb: no route for %s %s/%s", role == CONF_ROLE_PUBLISH ? "publish" : "play",
             s->app, s->stream);
        return;
    }
    /* stream_location: a play goes where the stream is live (stream index). */
    if (route->policy == CONF_POLICY_STREAM_LOCATION && role == CONF_ROLE_PLAY &&
        hc_index_lookup(s->w->srv->index, route->pool->name, s->app, s->stream, located,
                        sizeof(located)))
        req.located = located;
    ups_route_candidates(s->snap, route, &req, &s->cands);
    if (s->cands.n == 0) {
        fail(s, "no_node", "rtmplb: no node of pool %s can take %s/%s now", route->pool->name,
             s->app, s->stream);
        return;
    }
    routed(s, route);
}

void lb_rtmp_dials_failed(struct lb_session *s)
{
    const char *pool = s->route ? s->route->pool->name : "?";
    if (s->dials == 0)
        fail(s, "no_node", "rtmplb: no node of pool %s can take %s/%s now", pool, s->app,
             s->stream ? s->stream : "");
    else
        fail(s, "dial_failed", "rtmplb: every node of pool %s failed (%u tried)", pool, s->dials);
}

/* ---- client side: LOCAL ---------------------------------------------------- */

static bool tid_known(struct lb_rtmp *r, double tid, bool *create_stream, bool remove)
{
    for (size_t i = 0; i < r->n_t; i++) {
        if (r->t[i].tid != tid)
            continue;
        *create_stream = r->t[i].create_stream;
        if (remove)
            r->t[i] = r->t[--r->n_t];
        return true;
    }
    return false;
}

static int remember_tid(struct lb_rtmp *r, double tid, bool create_stream)
{
    if (r->n_t == MAX_TIDS)
        return -1;
    r->t[r->n_t].tid = tid;
    r->t[r->n_t].create_stream = create_stream;
    r->n_t++;
    return 0;
}

static int reply(struct lb_session *s, size_t n, const uint8_t *msg)
{
    if (n == 0 || buf_append(&s->rtmp->cout, msg, n, 1 << 20) < 0) {
        close_now(s, "internal_error");
        return -1;
    }
    return 0;
}

/* A whole command or control message from the client. Returns -1 when the
 * session failed or moved on (stop parsing). */
static int client_message(struct lb_session *s, uint8_t type, const uint8_t *data, uint32_t len)
{
    struct lb_rtmp *r = s->rtmp;
    uint8_t msg[512];

    if (type == RTMP_MSG_SET_CHUNK_SIZE) {
        if (len < 4)
            return 0;
        uint32_t v = ((uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                      (uint32_t)data[2] << 8 | data[3]) & 0x7fffffff;
        if (rtmp_chunk_set_size(&r->cdec, v) < 0) {
            close_now(s, "client_protocol:chunk_size");
            return -1;
        }
        return 0;
    }

    struct rtmp_cmd cmd;
    const char *why = NULL;
    if (rtmp_cmd_parse(data, len, type == RTMP_MSG_COMMAND_AMF3, &r->amf, &cmd, &why) < 0) {
        snprintf(s->reason, sizeof(s->reason), "client_protocol:amf");
        lb_log_msg(LB_LOG_WARN, "rtmp_protocol", "client %s: bad command: %s", s->client, why);
        close_now(s, s->reason);
        return -1;
    }
    switch (cmd.kind) {
    case RTMP_CMD_CONNECT: {
        if (r->connected || r->have_connect_tid)
            return 0; /* a second connect goes to the origin as is */
        r->connect_tid = cmd.tid;
        r->have_connect_tid = true;
        set_names(s, cmd.app, NULL);
        struct ups_request req = {.listener = s->listener, .app = s->app, .worker = s->w->id,
                                  .now_ms = uv_now(&s->w->loop)};
        lb_session_geo(s, &req);
        const struct ups_route *route = ups_route_select_connect(s->snap, &req, &s->cands);
        if (route) {
            r->passthrough = true;
            if (s->cands.n == 0) {
                decided(s, route);
                fail(s, "no_node", "rtmplb: no node of pool %s can take app %s now",
                     route->pool->name, s->app);
                return -1;
            }
            routed(s, route);
            return -1;
        }
        if (reply(s, rtmp_reply_connect(msg, sizeof(msg), cmd.tid, cmd.object_encoding), msg) < 0 ||
            remember_tid(r, cmd.tid, false) < 0)
            return -1;
        r->connected = true;
        r->dirty |= 1u << 2 | 1u << 3;
        return 0;
    }
    case RTMP_CMD_CREATE_STREAM:
        if (!r->connected) {
            close_now(s, "client_protocol:createStream_before_connect");
            return -1;
        }
        if (reply(s, rtmp_reply_create_stream(msg, sizeof(msg), cmd.tid, 1), msg) < 0)
            return -1;
        if (remember_tid(r, cmd.tid, true) < 0) {
            close_now(s, "client_protocol:too_many_commands");
            return -1;
        }
        return 0;
    case RTMP_CMD_PUBLISH:
    case RTMP_CMD_PLAY:
        if (!r->connected) {
            close_now(s, "client_protocol:publish_before_connect");
            return -1;
        }
        set_names(s, NULL, cmd.stream);
        route_stream(s, cmd.kind == RTMP_CMD_PUBLISH ? CONF_ROLE_PUBLISH : CONF_ROLE_PLAY);
        return -1;
    default:
        return 0;
    }
}

static struct assembly *assembly_for(struct lb_rtmp *r, uint32_t csid)
{
    for (size_t i = 0; i < MAX_ASM; i++)
        if (r->as[i].used && r->as[i].csid == csid)
            return &r->as[i];
    return NULL;
}

/* Parses B from b_parsed until it needs more bytes or the session moves on. */
static void parse_local(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;

    while (r->st == FD_LOCAL) {
        struct rtmp_chunk_ev ev;
        size_t used;
        rtmp_chunk_next(&r->cdec, r->b.data + r->b_parsed, r->b.len - r->b_parsed, &used, &ev);
        r->b_parsed += used;
        if (ev.type == RTMP_EV_NEED_MORE)
            return;
        if (ev.type == RTMP_EV_ERROR) {
            snprintf(s->reason, sizeof(s->reason), "client_protocol");
            lb_log_msg(LB_LOG_WARN, "rtmp_protocol", "client %s: %s", s->client, ev.error);
            close_now(s, s->reason);
            return;
        }
        bool wanted = ev.msg_type == RTMP_MSG_SET_CHUNK_SIZE ||
                      ev.msg_type == RTMP_MSG_COMMAND_AMF0 || ev.msg_type == RTMP_MSG_COMMAND_AMF3;
        if (ev.type == RTMP_EV_MSG_START && wanted) {
            struct assembly *a = NULL;
            for (size_t i = 0; i < MAX_ASM && !a; i++)
                if (!r->as[i].used)
                    a = &r->as[i];
            if (!a) {
                close_now(s, "client_protocol:interleaved_commands");
                return;
            }
            uint8_t *d = realloc(a->data, ev.len ? ev.len : 1);
            if (!d) {
                close_now(s, "internal_error");
                return;
            }
            *a = (struct assembly){.used = true, .csid = ev.csid, .type = ev.msg_type,
                                   .len = ev.len, .data = d};
        } else if (ev.type == RTMP_EV_PAYLOAD) {
            struct assembly *a = assembly_for(r, ev.csid);
            if (a) {
                memcpy(a->data + ev.offset, ev.data, ev.data_len);
                a->got += (uint32_t)ev.data_len;
            }
        } else if (ev.type == RTMP_EV_MSG_END) {
            struct assembly *a = assembly_for(r, ev.csid);
            if (a) {
                a->used = false;
                if (client_message(s, a->type, a->data, a->len) < 0)
                    return;
            }
        }
    }
}

/* Reads what the client sent during HANDSHAKE/LOCAL. */
static void client_read(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    struct lb_server *srv = s->w->srv;
    uint8_t tmp[16384];

    for (;;) {
        uint8_t *dst;
        size_t room;
        if (r->st == FD_HANDSHAKE) {
            dst = tmp;
            room = sizeof(tmp);
        } else {
            if (buf_reserve(&r->b, 4096, srv->preroute_bytes) < 0) {
                if (r->b.len >= srv->preroute_bytes) {
                    lb_log_msg(LB_LOG_WARN, "rtmp_protocol",
                               "client %s: sent %zu bytes without publish or play "
                               "(limits.preroute_bytes)",
                               s->client, r->b.len);
                    close_now(s, "preroute_limit");
                } else {
                    close_now(s, "internal_error");
                }
                return;
            }
            dst = r->b.data + r->b.len;
            room = r->b.cap - r->b.len;
            if (room > srv->preroute_bytes - r->b.len)
                room = srv->preroute_bytes - r->b.len;
        }
        ssize_t n = recv(s->cfd, dst, room, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            snprintf(s->reason, sizeof(s->reason), "client_error:%s",
                     uv_err_name(uv_translate_sys_error(errno)));
            close_now(s, s->reason);
            return;
        }
        if (n == 0) {
            close_now(s, r->st == FD_HANDSHAKE ? "client_closed_in_handshake" : "client_closed");
            return;
        }
        s->c2u.bytes += (uint64_t)n;
        /* Clients write commands in small pieces without TCP_NODELAY and
         * some (releaseStream, FCPublish) get no answer: ACK at once so
         * their Nagle does not wait out our delayed ACK (40 ms a time). */
        int one = 1;
        setsockopt(s->cfd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        if (r->st == FD_HANDSHAKE) {
            size_t used;
            enum rtmp_hs_result hr = rtmp_hs_server_feed(&r->hs, tmp, (size_t)n, &used);
            if (hr == RTMP_HS_ERROR) {
                lb_log_msg(LB_LOG_WARN, "rtmp_protocol",
                           "client %s: not an RTMP handshake (first byte 0x%02x)", s->client,
                           tmp[0]);
                close_now(s, "bad_handshake");
                return;
            }
            if (r->hs.out_ready) {
                r->hs.out_ready = false;
                s->hs_kind = r->hs.kind == RTMP_HS_DIGEST ? "digest" : "simple";
                if (reply(s, sizeof(r->hs.out), r->hs.out) < 0)
                    return;
            }
            if (hr == RTMP_HS_DONE) {
                set_fd_state(s, FD_LOCAL);
                if (buf_append(&r->b, tmp + used, (size_t)n - used, srv->preroute_bytes) < 0) {
                    close_now(s, "preroute_limit");
                    return;
                }
            }
        } else {
            r->b.len += (size_t)n;
        }
        if (r->st == FD_LOCAL)
            parse_local(s);
        if (s->state == LB_SS_CLOSING || !s->rtmp || s->rtmp->st != FD_LOCAL)
            return;
    }
}

/* ---- origin side ----------------------------------------------------------- */

void lb_rtmp_upstream_connected(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;

    if (s->role == CONF_ROLE_PUBLISH && s->app && s->stream) {
        hc_index_add_publish(s->w->srv->index, s->node->pool->name, s->node->name, s->app,
                             s->stream);
        s->indexed = true;
    }

    set_fd_state(s, FD_UP_HS);
    rtmp_hs_client_init(&r->hc, NULL);
    uint8_t pp[64];
    size_t ppn = lb_session_proxy_header(s, pp, sizeof(pp)); /* before our handshake */
    if (buf_append(&r->uout, pp, ppn, 1 << 20) < 0 ||
        buf_append(&r->uout, r->hc.c0c1, sizeof(r->hc.c0c1), 1 << 20) < 0) {
        close_now(s, "internal_error");
        return;
    }
    uv_timer_start(&s->timer, on_timer, lb_session_handshake_ms(s), 0);
    s->uev = -1; /* the dial's poll callback gives way to ours */
    rearm(s);
}

/* The origin's reply to a command we answered: zero its transaction id in
 * place (the client ignores a _result for an id it does not wait for), and
 * check createStream gave 1. Returns -1 when the session failed. */
static int patch_command(struct lb_session *s, const struct rtmp_chunk_ev *ev, size_t msg_pos)
{
    struct lb_rtmp *r = s->rtmp;
    char name[16];
    double tid;
    bool amf3 = ev->msg_type == RTMP_MSG_COMMAND_AMF3;
    long off = rtmp_peek_name_tid(ev->data, ev->data_len, amf3, name, sizeof(name), &tid);
    bool is_cs;

    if (off < 0 || (strcmp(name, "_result") != 0 && strcmp(name, "_error") != 0))
        return 0;
    if (!tid_known(r, tid, &is_cs, false))
        return 0;
    /* On failure the client gets what preceded this message, then our error. */
    if (strcmp(name, "_error") == 0) {
        buf_append(&r->cout, r->uin.data, msg_pos, SIZE_MAX / 2);
        fail(s, "origin_rejected", "origin %s rejected %s", s->node->name,
             is_cs ? "createStream" : "connect");
        return -1;
    }
    if (is_cs) {
        const uint8_t *p = ev->data + off + 8;
        size_t left = ev->data_len - (size_t)off - 8;
        double id = -1;
        if (left >= 10 && p[0] == 0x05 && p[1] == 0x00) {
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = u << 8 | p[2 + i];
            memcpy(&id, &u, sizeof(id));
        }
        if (id != 1.0) {
            buf_append(&r->cout, r->uin.data, msg_pos, SIZE_MAX / 2);
            fail(s, "origin_protocol", "origin %s gave stream id %g; rtmplb promised 1",
                 s->node->name, id);
            return -1;
        }
    }
    uint8_t *t = r->uin.data + (ev->data - r->uin.data) + off;
    memset(t, 0, 8);
    tid_known(r, tid, &is_cs, true);
    return 0;
}

/* Parses what the origin sent since the last call, patching as it goes, and
 * queues it for the client. */
static void patch(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    size_t fwd = 0; /* bytes of uin ready to forward */

    while (r->n_t > 0) {
        struct rtmp_chunk_ev ev;
        size_t used, at = r->uin_parsed;
        rtmp_chunk_next(&r->udec, r->uin.data + at, r->uin.len - at, &used, &ev);
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_ERROR) {
            buf_append(&r->cout, r->uin.data, at, SIZE_MAX / 2);
            fail(s, "origin_protocol", "origin %s broke the RTMP chunk stream: %s",
                 s->node->name, ev.error);
            return;
        }
        if (ev.type == RTMP_EV_MSG_START) {
            if (!r->u_scs_seen && ev.len > 128) {
                buf_append(&r->cout, r->uin.data, at, SIZE_MAX / 2);
                fail(s, "origin_protocol",
                     "origin %s sent a %u-byte message before its Set Chunk Size",
                     s->node->name, ev.len);
                return;
            }
            if (ev.csid < 64 && (r->dirty >> ev.csid & 1)) {
                if (ev.fmt != 0) {
                    buf_append(&r->cout, r->uin.data, at, SIZE_MAX / 2);
                    fail(s, "origin_protocol",
                         "origin %s compressed a header on chunk stream %u", s->node->name,
                         ev.csid);
                    return;
                }
                r->dirty &= ~(1ull << ev.csid);
            }
            if (ev.msg_type == RTMP_MSG_SET_CHUNK_SIZE && ev.data_len >= 4) {
                r->u_scs_pending = true;
                r->u_scs_csid = ev.csid;
                r->u_scs_value = ((uint32_t)ev.data[0] << 24 | (uint32_t)ev.data[1] << 16 |
                                  (uint32_t)ev.data[2] << 8 | ev.data[3]) & 0x7fffffff;
            }
            if ((ev.msg_type == RTMP_MSG_COMMAND_AMF0 || ev.msg_type == RTMP_MSG_COMMAND_AMF3) &&
                patch_command(s, &ev, at) < 0)
                return;
        } else if (ev.type == RTMP_EV_MSG_END && r->u_scs_pending && ev.csid == r->u_scs_csid) {
            r->u_scs_pending = false;
            r->u_scs_seen = true;
            if (rtmp_chunk_set_size(&r->udec, r->u_scs_value) < 0) {
                buf_append(&r->cout, r->uin.data, at, SIZE_MAX / 2);
                fail(s, "origin_protocol", "origin %s set chunk size %u", s->node->name,
                     r->u_scs_value);
                return;
            }
            r->client_chunk = r->u_scs_value; /* forwarded verbatim */
        }
        r->uin_parsed += used;
        fwd = r->uin_parsed;
    }
    if (r->n_t == 0)
        fwd = r->uin.len; /* all replies seen: the rest goes as it is */
    if (fwd && buf_append(&r->cout, r->uin.data, fwd, SIZE_MAX / 2) < 0) {
        close_now(s, "internal_error");
        return;
    }
    if (r->uin.len > fwd)
        memmove(r->uin.data, r->uin.data + fwd, r->uin.len - fwd);
    r->uin.len -= fwd;
    r->uin_parsed -= fwd < r->uin_parsed ? fwd : r->uin_parsed;
    if (r->n_t == 0)
        set_fd_state(s, FD_HANDOVER);
}

static void upstream_gone(struct lb_session *s, int err)
{
    /* Closing during its handshake counts against the node (passive health). */
    if (s->rtmp && s->rtmp->st == FD_UP_HS)
        lb_session_passive_failure(s, s->node, "closed during the RTMP handshake");
    if (err)
        fail(s, "origin_closed", "origin %s: %s", s->node->name, strerror(err));
    else
        fail(s, "origin_closed", "origin %s closed the connection", s->node->name);
}

static void upstream_read(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    uint8_t tmp[16384];

    for (;;) {
        if (r->st == FD_PATCH && buf_pending(&r->cout) >= COUT_HIGH)
            return; /* the client is slow: backpressure */
        uint8_t *dst = tmp;
        size_t room = sizeof(tmp);
        if (r->st == FD_PATCH) {
            if (buf_reserve(&r->uin, 16384, UIN_CAP) < 0) {
                fail(s, "origin_protocol", "origin %s: message too large while patching",
                     s->node->name);
                return;
            }
            dst = r->uin.data + r->uin.len;
            room = r->uin.cap - r->uin.len;
        }
        ssize_t n = recv(s->ufd, dst, room, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            upstream_gone(s, errno);
            return;
        }
        if (n == 0) {
            upstream_gone(s, 0);
            return;
        }
        s->u2c.bytes += (uint64_t)n;
        int one = 1; /* the origin writes its replies in pieces too */
        setsockopt(s->ufd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        if (r->st == FD_UP_HS) {
            size_t used;
            enum rtmp_hs_result hr = rtmp_hs_client_feed(&r->hc, tmp, (size_t)n, &used);
            if (hr == RTMP_HS_ERROR) {
                fail(s, "origin_protocol", "origin %s answered with a bad handshake",
                     s->node->name);
                return;
            }
            if (hr == RTMP_HS_NEED_MORE)
                continue;
            s->u2c.bytes -= 1 + 2 * RTMP_HS_SIZE; /* the origin's handshake is not the client's */
            if (buf_append(&r->uout, rtmp_hs_client_c2(&r->hc), RTMP_HS_SIZE, 1 << 20) < 0 ||
                buf_append(&r->uout, r->b.data, r->b.len, 1 << 24) < 0) {
                close_now(s, "internal_error");
                return;
            }
            /* Client bytes already counted when received; B is theirs. */
            buf_free(&r->b);
            if (r->passthrough) {
                /* Origin bytes after S2 go straight to the client. */
                if (buf_append(&r->cout, tmp + used, (size_t)n - used, SIZE_MAX / 2) < 0) {
                    close_now(s, "internal_error");
                    return;
                }
                set_fd_state(s, FD_HANDOVER);
                return;
            }
            set_fd_state(s, FD_PATCH);
            if (buf_append(&r->uin, tmp + used, (size_t)n - used, UIN_CAP) < 0) {
                close_now(s, "internal_error");
                return;
            }
            patch(s);
        } else {
            r->uin.len += (size_t)n;
            patch(s);
        }
        if (s->state == LB_SS_CLOSING || !s->rtmp || r->st != FD_PATCH)
            return;
    }
}

/* Both buffers flushed after HANDOVER: splice both ways from here on. */
static void maybe_handover(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    if (r->st != FD_HANDOVER || buf_pending(&r->cout) || buf_pending(&r->uout) || !r->c2u_active)
        return;
    lb_rtmp_free(s);
    s->u2c.state = LB_DIR_READ; /* c2u has been spliced since B went out */
    lb_session_splice(s, false);
}

/* ---- events ----------------------------------------------------------------- */

static bool gone(struct lb_session *s) { return s->state == LB_SS_CLOSING || !s->rtmp; }

static void on_client(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    struct lb_rtmp *r = s->rtmp;

    if (status < 0) {
        s->cev = 0;
        close_now(s, "client_error");
        return;
    }
    if (events & UV_READABLE) {
        if (r->st == FD_HANDSHAKE || r->st == FD_LOCAL)
            client_read(s);
        else if (r->c2u_active && s->c2u.state == LB_DIR_READ && !lb_session_pump_c2u(s))
            return;
        if (gone(s))
            return;
    }
    if (events & UV_WRITABLE) {
        int err = buf_flush(&r->cout, s->cfd);
        if (err) {
            snprintf(s->reason, sizeof(s->reason), "client_error:%s",
                     uv_err_name(uv_translate_sys_error(err)));
            close_now(s, s->reason);
            return;
        }
        if (r->st == FD_FAILING && !buf_pending(&r->cout)) {
            close_now(s, s->reason);
            return;
        }
        if (r->st == FD_PATCH && s->ufd >= 0)
            upstream_read(s); /* room again below COUT_HIGH */
        if (gone(s))
            return;
        maybe_handover(s);
        if (gone(s))
            return;
    }
    rearm(s);
}

static void on_upstream(uv_poll_t *h, int status, int events)
{
    struct lb_session *s = h->data;
    struct lb_rtmp *r = s->rtmp;

    if (status < 0) {
        s->uev = 0;
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s->ufd, SOL_SOCKET, SO_ERROR, &err, &len);
        upstream_gone(s, err ? err : ECONNRESET);
        return;
    }
    if (events & UV_WRITABLE) {
        if (buf_pending(&r->uout)) {
            int err = buf_flush(&r->uout, s->ufd);
            if (err) {
                upstream_gone(s, err);
                return;
            }
            if (!buf_pending(&r->uout) && r->st >= FD_PATCH && r->st != FD_FAILING &&
                !r->c2u_active) {
                r->c2u_active = true; /* B is out: the client's bytes now flow raw */
                s->c2u.state = LB_DIR_READ;
            }
        } else if (r->c2u_active && s->c2u.state == LB_DIR_WRITE && !lb_session_pump_c2u(s)) {
            return;
        }
        if (gone(s))
            return;
    }
    if ((events & UV_READABLE) && (r->st == FD_UP_HS || r->st == FD_PATCH)) {
        upstream_read(s);
        if (gone(s))
            return;
    }
    /* Flush what is queued for the client right away. */
    if (buf_pending(&s->rtmp->cout)) {
        int err = buf_flush(&s->rtmp->cout, s->cfd);
        if (err) {
            close_now(s, "client_error");
            return;
        }
        if (s->rtmp->st == FD_FAILING && !buf_pending(&s->rtmp->cout)) {
            close_now(s, s->reason);
            return;
        }
    }
    maybe_handover(s);
    if (gone(s))
        return;
    rearm(s);
}

static void rearm(struct lb_session *s)
{
    struct lb_rtmp *r = s->rtmp;
    int cev = 0, uev = 0;

    if (r->st == FD_HANDSHAKE || r->st == FD_LOCAL)
        cev |= UV_READABLE;
    if (buf_pending(&r->cout))
        cev |= UV_WRITABLE;
    if (r->st != FD_FAILING && r->c2u_active) {
        if (s->c2u.state == LB_DIR_READ)
            cev |= UV_READABLE;
        if (s->c2u.state == LB_DIR_WRITE)
            uev |= UV_WRITABLE;
    }
    if (s->ufd >= 0 && s->state == LB_SS_UPSTREAM && r->st != FD_FAILING) {
        if (r->st == FD_UP_HS || (r->st == FD_PATCH && buf_pending(&r->cout) < COUT_HIGH))
            uev |= UV_READABLE;
        if (buf_pending(&r->uout) || (r->st >= FD_PATCH && !r->c2u_active))
            uev |= UV_WRITABLE;
    }
    lb_session_set_poll(&s->cpoll, &s->cev, cev, on_client);
    if (s->upoll_open && s->state == LB_SS_UPSTREAM)
        lb_session_set_poll(&s->upoll, &s->uev, uev, on_upstream);
}

static void on_timer(uv_timer_t *t)
{
    struct lb_session *s = t->data;
    struct lb_rtmp *r = s->rtmp;

    switch (r->st) {
    case FD_HANDSHAKE:
    case FD_LOCAL:
        lb_log_msg(LB_LOG_WARN, "rtmp_timeout",
                   "client %s: no publish or play within timeouts.handshake (%s)", s->client,
                   fd_state_name[r->st]);
        close_now(s, "handshake_timeout");
        return;
    case FD_FAILING:
        close_now(s, s->reason);
        return;
    default:
        fail(s, "origin_timeout", "origin %s did not answer in time", s->node ? s->node->name : "?");
        return;
    }
}

void lb_rtmp_start(struct lb_session *s)
{
    struct lb_server *srv = s->w->srv;
    struct lb_rtmp *r = calloc(1, sizeof(*r));

    if (!r) {
        lb_session_close(s, "internal_error");
        return;
    }
    s->rtmp = r;
    s->role = CONF_ROLE_ANY;
    s->hs_kind = "none";
    r->st = FD_HANDSHAKE;
    r->client_chunk = RTMP_DEFAULT_CHUNK_SIZE;
    rtmp_hs_server_init(&r->hs, NULL);
    struct rtmp_chunk_limits lim = {srv->max_chunk_size, srv->max_message_size, 65599};
    rtmp_chunk_init(&r->cdec, &lim, 0);
    /* Origin side: any message size (media may follow), peek enough bytes
     * of each command to read its name, id and createStream's result. */
    struct rtmp_chunk_limits ulim = {0x7fffffff, 0xffffff, 65599};
    rtmp_chunk_init(&r->udec, &ulim, 32);
    r->amf.max_depth = srv->max_amf_depth;
    r->amf.max_string = srv->max_amf_string;
    r->amf.max_values = 128;
    uv_timer_start(&s->timer, on_timer, lb_session_handshake_ms(s), 0);
    s->cev = -1;
    rearm(s);
}
