/* The http phase (HTTP-FLV / HLS viewers, DESIGN.md "Inside lb/"): read one
 * request (http_req.c), name the stream from its path, route it as a play,
 * replay it verbatim to the node's http address (plus X-Forwarded-For /
 * Forwarded when configured), then pass the answer back.
 *
 *   REQ ──ROUTE──▶ DIAL ──connected──▶ HEAD ──▶ BODY ──complete──▶ REQ (keep-alive)
 *                                        │                  └──▶ DONE (not kept)
 *                                        └─ not length-delimited (live FLV) or not
 *                                           kept: SPLICE both ways, the node's
 *                                           close ends it
 *
 * Length-delimited answers (playlists, segments) are copied through the
 * phase while llhttp finds their end, so that the next request on the
 * connection, for another stream, is routed anew. */
#include "lb/front/front.h"
#include "lb/front/http_req.h"

#include "conf/conf-t.h"
#include "lb/rtmp/command.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HP_READ_CHUNK 16384
#define HP_COPY_CHUNK 65536
#define HP_HIGH_WATER (512 * 1024) /* queued for the client: stop reading the node */
#define HP_DONE_POLL_MS 20
/* Larger answers are spliced like live FLV (some origins give live FLV a
 * huge Content-Length): nothing is expected after them on the connection. */
#define HP_COPY_MAX (64ull * 1024 * 1024)

#define HP_STATE_MAP(X) \
    X(REQ, "request")   \
    X(DIAL, "dial")     \
    X(HEAD, "head")     \
    X(BODY, "body")     \
    X(DONE, "done")

enum hp_state {
#define X(e, n) HP_##e,
    HP_STATE_MAP(X)
#undef X
};

struct hp {
    enum hp_state st;
    struct lb_httpreq req;
    char *in; /* client bytes not yet replayed: the request, then pipelined ones */
    size_t in_len, in_cap;
    size_t parsed;  /* bytes of in the parser has seen */
    size_t req_len; /* the complete request's length at the start of in; 0: none */
    char *replay;   /* what the node is sent for it */
    size_t replay_len;
    bool is_head;   /* the request is HEAD: its answer has no body */
    bool keep;      /* the client may send another request after this one */
    bool reused;    /* the request went to an already connected node */
    unsigned requests;
    llhttp_t rsp;
    llhttp_settings_t rsp_set;
    bool rsp_head_done, rsp_done, rsp_sent;
    bool rsp_stream; /* not length-delimited: splice */
    uint64_t done_until;
    char *args_text;
    struct ups_arg args[UPS_MAX_ARGS];
};

#define HP(f) ((struct hp *)(f)->state)

static const char *const hp_state_names[] = {
#define X(e, n) n,
    HP_STATE_MAP(X)
#undef X
};

/* allowed[from]: the states a request cycle may move to. */
#define HP_BIT(x) (1u << (x))
static const unsigned hp_allowed[] = {
    [HP_REQ] = HP_BIT(HP_DIAL) | HP_BIT(HP_HEAD),
    [HP_DIAL] = HP_BIT(HP_DIAL) | HP_BIT(HP_HEAD),
    [HP_HEAD] = HP_BIT(HP_DIAL) | HP_BIT(HP_BODY),
    [HP_BODY] = HP_BIT(HP_BODY) | HP_BIT(HP_DIAL) | HP_BIT(HP_REQ) | HP_BIT(HP_DONE),
    [HP_DONE] = 0,
};

static void hp_move(struct lb_front *f, enum hp_state to)
{
    struct hp *h = HP(f);
    if (!(hp_allowed[h->st] & HP_BIT(to))) {
        fprintf(stderr, "rtmplb bug: http phase of %s: bad transition %s -> %s\n",
                f->client_text ? f->client_text : "?", hp_state_names[h->st], hp_state_names[to]);
        abort();
    }
    h->st = to;
}

/* ---- errors as HTTP ----------------------------------------------------- */

static const char *status_text(int code)
{
    switch (code) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static struct lb_action fail_http(struct lb_front *f, enum lb_reason why, int code,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static struct lb_action fail_http(struct lb_front *f, enum lb_reason why, int code,
                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    char head[512];
    size_t blen = strlen(f->message) + 1;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n",
                     code, status_text(code), blen, code == 503 ? "Retry-After: 5\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) ||
        lb_buf_append(&f->to_client, head, (size_t)n, SIZE_MAX) < 0 ||
        lb_buf_append(&f->to_client, f->message, blen - 1, SIZE_MAX) < 0 ||
        lb_buf_append(&f->to_client, "\n", 1, SIZE_MAX) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    return (struct lb_action){.kind = LB_ACT_FAIL, .reason = why};
}

/* ---- the node's answer -------------------------------------------------- */

static int rsp_headers_complete(llhttp_t *llh)
{
    struct lb_front *f = llh->data;
    struct hp *h = HP(f);
    h->rsp_head_done = true;
    if (llhttp_get_status_code(llh) < 200)
        return 0; /* 1xx: another head follows */
    /* Live HTTP-FLV is not length-delimited: it ends when the node closes
     * (or never, chunked): nothing can follow it on this connection. HEAD,
     * 204 and 304 answers have no body. */
    bool delimited = ((llh->flags & F_CONTENT_LENGTH) && llh->content_length <= HP_COPY_MAX) ||
                     h->is_head || llhttp_get_status_code(llh) == 204 ||
                     llhttp_get_status_code(llh) == 304;
    h->rsp_stream = !delimited;
    return h->is_head ? 1 : 0; /* HEAD: no body follows */
}

static int rsp_message_complete(llhttp_t *llh)
{
    struct lb_front *f = llh->data;
    struct hp *h = HP(f);
    if (llhttp_get_status_code(llh) < 200)
        return 0;
    h->rsp_done = true;
    return HPE_PAUSED;
}

static void rsp_reset(struct lb_front *f)
{
    struct hp *h = HP(f);
    llhttp_settings_init(&h->rsp_set);
    h->rsp_set.on_headers_complete = rsp_headers_complete;
    h->rsp_set.on_message_complete = rsp_message_complete;
    llhttp_init(&h->rsp, HTTP_RESPONSE, &h->rsp_set);
    h->rsp.data = f;
    h->rsp_head_done = h->rsp_done = h->rsp_sent = h->rsp_stream = false;
}

/* ---- the request -------------------------------------------------------- */

static bool same_name(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int set_name(char **dst, const char *v)
{
    char *c = strdup(v);
    if (!c)
        return -1;
    free(*dst);
    *dst = c;
    return 0;
}

/* The client address an added header names: the one that connected. */
static void peer_text(const struct lb_front *f, char *out, size_t cap, bool forwarded_syntax)
{
    char ip[INET6_ADDRSTRLEN] = "unknown";
    const struct sockaddr *sa = f->peer;
    bool v6 = false;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], ip, sizeof(ip));
        else {
            inet_ntop(AF_INET6, a, ip, sizeof(ip));
            v6 = true;
        }
    }
    if (forwarded_syntax && v6)
        snprintf(out, cap, "\"[%s]\"", ip);
    else
        snprintf(out, cap, "%s", ip);
}

/* The request as the node gets it: the client's bytes, with the configured
 * headers inserted before the blank line that ends them. */
static int build_replay(struct lb_front *f)
{
    struct hp *h = HP(f);
    char extra[256] = "", ip[64];
    int mode = f->http ? f->http->add_forwarded : CONF_FWD_OFF;
    size_t el = 0;
    if (mode == CONF_FWD_XFF || mode == CONF_FWD_BOTH) {
        peer_text(f, ip, sizeof(ip), false);
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, "X-Forwarded-For: %s\r\n", ip);
    }
    if (mode == CONF_FWD_FORWARDED || mode == CONF_FWD_BOTH) {
        peer_text(f, ip, sizeof(ip), true);
        bool tls = f->client && f->client->ops && f->client->ops->secure;
        el += (size_t)snprintf(extra + el, sizeof(extra) - el, "Forwarded: for=%s;proto=%s\r\n",
                               ip, tls ? "https" : "http");
    }
    /* The request ends with CRLF CRLF (or a bare LF llhttp let pass). */
    size_t cut = h->req_len;
    if (cut >= 2 && h->in[cut - 2] == '\r' && h->in[cut - 1] == '\n')
        cut -= 2;
    else if (cut >= 1 && h->in[cut - 1] == '\n')
        cut -= 1;
    free(h->replay);
    h->replay = malloc(h->req_len + el + 1);
    if (!h->replay)
        return -1;
    memcpy(h->replay, h->in, cut);
    memcpy(h->replay + cut, extra, el);
    memcpy(h->replay + cut + el, h->in + cut, h->req_len - cut);
    h->replay_len = h->req_len + el;
    return 0;
}

/* The query of url into f->req.args (decoded; route match.args). */
static int set_args(struct lb_front *f, const char *query)
{
    struct hp *h = HP(f);
    struct rtmp_arg split[UPS_MAX_ARGS];
    free(h->args_text);
    h->args_text = NULL;
    f->req.args = NULL;
    f->req.n_args = 0;
    if (!query || !*query)
        return 0;
    if (!(h->args_text = strdup(query)))
        return -1;
    size_t n = rtmp_args_split(h->args_text, split, UPS_MAX_ARGS);
    for (size_t i = 0; i < n; i++)
        h->args[i] = (struct ups_arg){split[i].key, split[i].value};
    f->req.args = h->args;
    f->req.n_args = n;
    return 0;
}

static void take_xff(struct lb_front *f)
{
    struct hp *h = HP(f);
    char ip[INET6_ADDRSTRLEN + 1];
    if (!f->http || !f->http->trust_xff || !h->req.xff_len || h->req.xff_long ||
        !lb_httpreq_xff_last(h->req.xff, ip, sizeof(ip)))
        return;
    memset(&f->fwd_addr, 0, sizeof(f->fwd_addr));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&f->fwd_addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&f->fwd_addr;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1)
        a4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1)
        a6->sin6_family = AF_INET6;
    else
        return;
    f->fwd_set = true;
}

/* A complete request is at the start of in: name its stream, then route
 * it, or send it to the node already connected for that stream. */
static struct lb_action on_request(struct lb_front *f)
{
    struct hp *h = HP(f);
    char app[LB_HTTPREQ_MAX_NAME + 1], stream[LB_HTTPREQ_MAX_NAME + 1];
    char *url = h->req.url;
    char *q = strchr(url, '?');
    size_t plen = q ? (size_t)(q - url) : strlen(url);
    const char *const *paths = f->http && f->http->n_paths ? f->http->paths : lb_http_default_paths;
    size_t n_paths = f->http && f->http->n_paths ? f->http->n_paths : lb_http_n_default_paths;
    const char *def_app = f->http && f->http->app ? f->http->app : "live";
    bool found = false;

    for (size_t i = 0; i < n_paths && !found; i++)
        found = lb_http_path_match(paths[i], url, plen, def_app, app, sizeof(app), stream,
                                   sizeof(stream));
    h->is_head = h->req.method == HTTP_HEAD;
    h->keep = h->req.keep_alive && f->http && f->http->keepalive_ms > 0;
    if (!found)
        return fail_http(f, LB_REASON_NOT_FOUND, 404, "rtmplb: no stream in path %.*s",
                         (int)(plen > 100 ? 100 : plen), url);
    bool same = f->upstream && h->requests > 0 && same_name(f->app, app) &&
                same_name(f->stream, stream);
    if (set_name(&f->app, app) < 0 || set_name(&f->stream, stream) < 0 ||
        set_args(f, q ? q + 1 : NULL) < 0 || build_replay(f) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    take_xff(f);
    f->req.l4 = false;
    f->req.http = true;
    f->req.role = CONF_ROLE_PLAY;
    f->req.app = f->app;
    f->req.stream = f->stream;
    f->req.at_connect = false;
    h->reused = same && !f->fwd_set;
    if (h->reused) { /* keep-alive, same stream: the same node answers */
        if (lb_buf_append(&f->to_upstream, h->replay, h->replay_len, SIZE_MAX) < 0)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        rsp_reset(f);
        hp_move(f, HP_HEAD);
        f->deadline_ms = f->now_ms + f->lim->handshake_ms;
        return lb_act(LB_ACT_CONTINUE);
    }
    hp_move(f, HP_DIAL);
    f->deadline_ms = 0; /* the core bounds each dial (timeouts.connect) */
    return lb_act(LB_ACT_ROUTE);
}

/* Feeds what the parser has not seen; routes a complete request. */
static struct lb_action try_request(struct lb_front *f)
{
    struct hp *h = HP(f);
    size_t used;
    enum lb_httpreq_res r =
        lb_httpreq_feed(&h->req, h->in + h->parsed, h->in_len - h->parsed, &used);
    h->parsed += used;
    if (r == LB_HTTPREQ_ERROR)
        return fail_http(f, LB_REASON_CLIENT_HTTP, h->req.status, "rtmplb: %s", h->req.why);
    if (r == LB_HTTPREQ_NEED_MORE) {
        if (h->in_len >= h->in_cap)
            return fail_http(f, LB_REASON_CLIENT_HTTP, 431,
                             "rtmplb: request header fields too large");
        if (h->req.started && h->in_len && f->deadline_ms > f->now_ms + f->lim->handshake_ms)
            f->deadline_ms = f->now_ms + f->lim->handshake_ms; /* a request began: bound it */
        return lb_act(LB_ACT_CONTINUE);
    }
    h->req_len = h->parsed;
    return on_request(f);
}

/* The answer is complete: the next request (maybe already here), or the end. */
static struct lb_action next_request(struct lb_front *f)
{
    struct hp *h = HP(f);
    memmove(h->in, h->in + h->req_len, h->in_len - h->req_len);
    h->in_len -= h->req_len;
    h->parsed = 0;
    h->req_len = 0;
    h->requests++;
    lb_httpreq_next(&h->req);
    hp_move(f, HP_REQ);
    f->deadline_ms = f->now_ms + f->http->keepalive_ms;
    if (h->in_len)
        return try_request(f);
    return lb_act(LB_ACT_CONTINUE);
}

/* ---- ops ------------------------------------------------------------------ */

static int hp_create(struct lb_front *f)
{
    struct hp *h = calloc(1, sizeof(*h));
    uint32_t max = f->http ? f->http->max_header : 16384;
    if (!h)
        return -1;
    h->in_cap = (size_t)max + 1;
    h->in = malloc(h->in_cap);
    if (!h->in) {
        free(h);
        return -1;
    }
    lb_httpreq_init(&h->req, max);
    f->state = h;
    return 0;
}

static struct lb_action hp_start(struct lb_front *f)
{
    f->hs_kind = "http";
    f->role = CONF_ROLE_PLAY;
    f->deadline_ms = f->now_ms + f->lim->handshake_ms;
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action hp_client_data(struct lb_front *f)
{
    struct hp *h = HP(f);
    if (h->st != HP_REQ)
        return lb_act(LB_ACT_CONTINUE);
    size_t room = h->in_cap - h->in_len;
    if (room == 0)
        return try_request(f);
    ssize_t n = lb_front_read_client(f, h->in + h->in_len, room < HP_READ_CHUNK ? room
                                                                                : HP_READ_CHUNK);
    if (n == -EAGAIN)
        return lb_act(LB_ACT_CONTINUE);
    if (n == 0)
        return lb_act_close(h->in_len || h->requests == 0 ? LB_REASON_CLIENT_CLOSED_IN_HANDSHAKE
                                                          : LB_REASON_CLIENT_CLOSED);
    if (n < 0)
        return lb_act_close(LB_REASON_CLIENT_ERROR);
    h->in_len += (size_t)n;
    return try_request(f);
}

static struct lb_action hp_connected(struct lb_front *f)
{
    struct hp *h = HP(f);
    if (lb_buf_append(&f->to_upstream, h->replay, h->replay_len, SIZE_MAX) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    rsp_reset(f);
    hp_move(f, HP_HEAD);
    f->deadline_ms = f->now_ms + f->lim->handshake_ms;
    return lb_act(LB_ACT_CONTINUE);
}

/* The node failed before a byte of its answer reached the client: the next
 * candidate gets the request (a reused connection the node had closed
 * while idle is no failure: route afresh). */
static struct lb_action node_failed(struct lb_front *f, enum lb_reason why)
{
    struct hp *h = HP(f);
    if (h->rsp_sent)
        return lb_act_close(why == LB_REASON_ORIGIN_CLOSED ? LB_REASON_UPSTREAM_CLOSED
                                                           : LB_REASON_UPSTREAM_ERROR);
    if (h->reused) {
        h->reused = false;
        hp_move(f, HP_DIAL);
        f->deadline_ms = 0;
        return lb_act(LB_ACT_ROUTE);
    }
    hp_move(f, HP_DIAL);
    f->deadline_ms = 0;
    return (struct lb_action){.kind = LB_ACT_DIAL, .reason = why};
}

/* Bytes of the answer to the client; false: out of memory. */
static bool forward(struct lb_front *f, const uint8_t *p, size_t n)
{
    if (!n)
        return true;
    HP(f)->rsp_sent = true;
    return lb_buf_append(&f->to_client, p, n, SIZE_MAX) == 0;
}

static struct lb_action hp_upstream_data(struct lb_front *f)
{
    struct hp *h = HP(f);
    uint8_t buf[HP_COPY_CHUNK];
    if (h->st != HP_HEAD && h->st != HP_BODY)
        return lb_act(LB_ACT_CONTINUE);
    ssize_t n = lb_front_read_upstream(f, buf, sizeof(buf));
    if (n == -EAGAIN)
        return lb_act(LB_ACT_CONTINUE);
    if (n < 0)
        return node_failed(f, LB_REASON_UPSTREAM_ERROR);
    if (n == 0) {
        llhttp_finish(&h->rsp);
        if (!h->rsp_done)
            return node_failed(f, LB_REASON_ORIGIN_CLOSED);
        return lb_act_close(LB_REASON_UPSTREAM_CLOSED);
    }
    f->deadline_ms = f->now_ms + (f->lim->idle_ms ? f->lim->idle_ms : f->lim->handshake_ms);
    bool had_head = h->rsp_head_done;
    llhttp_errno_t e = llhttp_execute(&h->rsp, (const char *)buf, (size_t)n);
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (!h->rsp_sent) {
            snprintf(f->last_failure_text, sizeof(f->last_failure_text),
                     "node answered with a malformed HTTP response");
            return node_failed(f, LB_REASON_ORIGIN_PROTOCOL);
        }
        return lb_act_close(LB_REASON_ORIGIN_PROTOCOL);
    }
    if (h->rsp_head_done)
        hp_move(f, HP_BODY);
    if (h->rsp_head_done && !had_head && (h->rsp_stream || !h->keep) && !h->rsp_done) {
        /* Live FLV, or a connection the client will not reuse: splice from
         * here; the node's close ends the session. Pipelined client bytes
         * go first. */
        if (!forward(f, buf, (size_t)n) ||
            lb_buf_append(&f->to_upstream, h->in + h->req_len, h->in_len - h->req_len,
                          SIZE_MAX) < 0)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        h->in_len = h->req_len;
        hp_move(f, HP_DONE);
        f->deadline_ms = 0;
        return lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
    }
    size_t used = (size_t)n;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&h->rsp);
        if (pos && pos >= (const char *)buf && pos <= (const char *)buf + n)
            used = (size_t)(pos - (const char *)buf);
    }
    if (!forward(f, buf, used))
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (!h->rsp_done)
        return lb_act(LB_ACT_CONTINUE);
    /* Complete. Bytes past the answer were never asked for: dropped. */
    if (h->keep && llhttp_should_keep_alive(&h->rsp))
        return next_request(f);
    if (!llhttp_should_keep_alive(&h->rsp))
        return lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C); /* the node closes */
    /* The node would keep it, the client may not: close once it is out. */
    hp_move(f, HP_DONE);
    h->done_until = f->now_ms + (f->lim->idle_ms ? f->lim->idle_ms : 60000);
    f->deadline_ms = f->now_ms + 1;
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action hp_timer(struct lb_front *f)
{
    struct hp *h = HP(f);
    switch (h->st) {
    case HP_REQ:
        if (h->in_len == 0 && h->requests > 0)
            return lb_act_close(LB_REASON_IDLE_TIMEOUT); /* keep-alive ran out */
        return fail_http(f, LB_REASON_HANDSHAKE_TIMEOUT, 408,
                         "rtmplb: no complete request within timeouts.handshake");
    case HP_HEAD:
        if (!h->rsp_head_done)
            return node_failed(f, LB_REASON_ORIGIN_TIMEOUT);
        return lb_act_close(LB_REASON_IDLE_TIMEOUT);
    case HP_BODY:
        return lb_act_close(LB_REASON_IDLE_TIMEOUT);
    case HP_DONE:
        if (lb_buf_pending(&f->to_client) && f->now_ms < h->done_until) {
            f->deadline_ms = f->now_ms + HP_DONE_POLL_MS;
            return lb_act(LB_ACT_CONTINUE);
        }
        return lb_act_close(LB_REASON_UPSTREAM_CLOSED);
    default:
        return lb_act(LB_ACT_CONTINUE);
    }
}

static struct lb_action hp_dials_failed(struct lb_front *f, enum lb_reason why)
{
    const char *app = f->app ? f->app : "", *stream = f->stream ? f->stream : "";
    switch (why) {
    case LB_REASON_NO_ROUTE:
        return fail_http(f, why, 404, "rtmplb: no route for %s/%s", app, stream);
    case LB_REASON_NOT_FOUND:
        return fail_http(f, why, 404, "rtmplb: %s/%s is not live on any node", app, stream);
    default:
        if (f->last_failure_text[0] && why == LB_REASON_DIAL_FAILED)
            return fail_http(f, why, 503, "rtmplb: no node can serve %s/%s now (%s)", app,
                             stream, f->last_failure_text);
        return fail_http(f, why, 503, "rtmplb: no node can serve %s/%s now", app, stream);
    }
}

static unsigned hp_wants(const struct lb_front *f)
{
    const struct hp *h = HP(f);
    switch (h->st) {
    case HP_REQ:
        return LB_WANT_CLIENT;
    case HP_HEAD:
    case HP_BODY:
        return lb_buf_pending(&f->to_client) < HP_HIGH_WATER ? LB_WANT_UPSTREAM : 0;
    default:
        return 0;
    }
}

static void hp_free(struct lb_front *f)
{
    struct hp *h = HP(f);
    if (!h)
        return;
    free(h->in);
    free(h->replay);
    free(h->args_text);
    free(h);
    f->state = NULL;
    f->req.args = NULL;
    f->req.n_args = 0;
}

const struct lb_phase_ops lb_phase_http = {
    .name = "http",
    .create = hp_create,
    .start = hp_start,
    .on_client_data = hp_client_data,
    .on_upstream_connected = hp_connected,
    .on_upstream_data = hp_upstream_data,
    .on_timer = hp_timer,
    .on_dials_failed = hp_dials_failed,
    .wants = hp_wants,
    .free = hp_free,
};
