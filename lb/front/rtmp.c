/* The rtmp phase, client side (DESIGN.md "RTMP front door"): the handshake
 * as a server, the local answers to connect and createStream, the routing
 * request on publish/play, and the error replies. The origin side (upstream
 * handshake, replay, patch, hand-over) is in rtmp_up.c.
 *
 * route_on: connect skips the local answers: it routes on connect, and the
 * origin's own answers reach the client untouched. */
#include "lb/front/rtmp-int.h"
#include "lb/log.h"
#include "lb/rtmp/bytes.h"
#include "lb/rtmp/command.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 16384
#define OUT_LIMIT (1u << 20)

static struct rtmp_phase *st(const struct lb_front *f) { return f->state; }

static const char *const state_names[] = {"handshake", "local", "takeover", "routed", "upstream_handshake",
                                          "patch", "handover", "failed"};

/* ---- errors ------------------------------------------------------------- */

static const char *fail_code(const struct lb_front *f)
{
    const struct rtmp_phase *r = f->state;
    if (r->fail_code)
        return r->fail_code;
    return f->role == CONF_ROLE_PUBLISH ? "NetStream.Publish.Denied"
                                         : "NetStream.Play.StreamNotFound";
}

/* Queues an RTMP error for the client, at a message boundary of what it
 * has been sent (the caller forwarded nothing partial), chunked at the
 * client's current chunk size. The core flushes it, lingers, closes. */
struct lb_action lb_rp_fail(struct lb_front *f, enum lb_reason reason, const char *fmt, ...)
{
    struct rtmp_phase *r = st(f);
    uint8_t msg[1024];
    size_t n = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    if (f->role != CONF_ROLE_ANY && r->connected)
        n = rtmp_reply_status_error(msg, sizeof(msg), fail_code(f), f->message, r->client_chunk);
    else if (r->have_connect_tid)
        n = rtmp_reply_connect_rejected(msg, sizeof(msg), r->connect_tid, f->message,
                                        r->client_chunk);
    if (n && lb_buf_append(&f->to_client, msg, n, RP_COUT_LIMIT + sizeof(msg)) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    r->st = RP_FAILED;
    f->deadline_ms = 0;
    return (struct lb_action){.kind = LB_ACT_FAIL, .reason = reason};
}

static struct lb_action protocol_error(struct lb_front *f, enum lb_reason reason, const char *why)
{
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_WARN, "rtmp_protocol");
    lb_log_str(&l, "client", f->client_text);
    lb_log_str(&l, "reason", lb_reason_name(reason));
    lb_log_str(&l, "detail", why);
    lb_log_end(&l);
    return lb_act_close(reason);
}

/* ---- transaction ids the client already has answers for ---------------- */

/* This node failed before any of its bytes reached the client: the core
 * counts it against the node and dials the next candidate. */
struct lb_action lb_rp_retry(struct lb_front *f, enum lb_reason why)
{
    struct rtmp_phase *r = st(f);
    lb_rp_free_origin_side(r);
    r->st = RP_ROUTED;
    f->deadline_ms = r->origin_deadline;
    return (struct lb_action){.kind = LB_ACT_DIAL, .reason = why};
}

bool lb_rp_tid_take(struct rtmp_phase *r, double tid, bool *create_stream, bool remove)
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

static int remember_tid(struct rtmp_phase *r, double tid, bool create_stream)
{
    if (r->n_t == RP_MAX_TIDS)
        return -1;
    r->t[r->n_t++] = (struct rp_tid){tid, create_stream};
    return 0;
}

/* ---- routing ------------------------------------------------------------- */

static int set_name(char **dst, const char *v)
{
    char *c = strdup(v);
    if (!c)
        return -1;
    free(*dst);
    *dst = c;
    return 0;
}

/* f->req.args from the stream's query and the tcUrl's (the stream's come
 * first, so they win on a key both carry). -1: out of memory. */
static int set_args(struct lb_front *f, const char *stream_query)
{
    struct rtmp_phase *r = st(f);
    const char *tq = r->tc_query ? r->tc_query : "";
    size_t sl = strlen(stream_query), tl = strlen(tq);
    struct rtmp_arg split[UPS_MAX_ARGS];

    free(r->args);
    r->args = NULL;
    f->req.args = NULL;
    f->req.n_args = 0;
    if (sl == 0 && tl == 0)
        return 0;
    r->args = malloc(sizeof(*r->args) + sl + tl + 2);
    if (!r->args)
        return -1;
    char *sq = r->args->text, *tcq = sq + sl + 1;
    memcpy(sq, stream_query, sl + 1);
    memcpy(tcq, tq, tl + 1);
    size_t n = rtmp_args_split(sq, split, UPS_MAX_ARGS);
    n += rtmp_args_split(tcq, split + n, UPS_MAX_ARGS - n);
    for (size_t i = 0; i < n; i++)
        r->args->a[i] = (struct ups_arg){split[i].key, split[i].value};
    f->req.args = r->args->a;
    f->req.n_args = n;
    return 0;
}

struct lb_action lb_rp_route(struct lb_front *f, int role)
{
    struct rtmp_phase *r = st(f);
    f->role = role;
    f->req.l4 = false;
    f->req.role = role;
    f->req.app = f->app;
    f->req.stream = f->stream;
    f->req.at_connect = role == CONF_ROLE_ANY;
    r->st = RP_ROUTED;
    r->origin_deadline = f->now_ms + f->lim->handshake_ms;
    f->deadline_ms = r->origin_deadline;
    /* The client's commands are read: their decoder goes, b stays for the replay. */
    free(r->cdec);
    r->cdec = NULL;
    rtmp_asm_free(&r->cas);
    return lb_act(LB_ACT_ROUTE);
}

static struct lb_action rp_dials_failed(struct lb_front *f, enum lb_reason why)
{
    const char *pool = f->route ? f->route->pool->name : "?";
    const char *what = f->role == CONF_ROLE_PUBLISH ? "publish" : "play";
    switch (why) {
    case LB_REASON_NO_ROUTE:
        return lb_rp_fail(f, why, "rtmplb: no route for %s %s/%s", what, f->app,
                          f->stream ? f->stream : "");
    case LB_REASON_NOT_FOUND: /* route require_live */
        return lb_rp_fail(f, why, "rtmplb: %s/%s is not live on any node of pool %s", f->app,
                          f->stream ? f->stream : "", pool);
    case LB_REASON_NO_NODE:
        if (f->role == CONF_ROLE_ANY)
            return lb_rp_fail(f, why, "rtmplb: no node of pool %s can take app %s now", pool,
                              f->app);
        return lb_rp_fail(f, why, "rtmplb: no node of pool %s can take %s/%s now", pool, f->app,
                          f->stream ? f->stream : "");
    default:
        /* With the handshake's own failures, the last node's says most. */
        if (f->last_failure != LB_REASON_NONE)
            why = f->last_failure;
        return lb_rp_fail(f, why, "rtmplb: every node of pool %s failed (%u tried); last: %s",
                          pool, f->dials, f->last_failure_text);
    }
}

/* ---- LOCAL: the client's commands --------------------------------------- */

static struct lb_action reply(struct lb_front *f, size_t n, const uint8_t *msg)
{
    if (n == 0 || lb_buf_append(&f->to_client, msg, n, OUT_LIMIT) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action on_connect(struct lb_front *f, const struct rtmp_cmd *cmd)
{
    struct rtmp_phase *r = st(f);
    uint8_t msg[RTMP_REPLY_CONNECT_MAX + 64];

    if (r->connected || r->have_connect_tid)
        return lb_act(LB_ACT_CONTINUE); /* a second connect goes to the origin as is */
    r->connect_tid = cmd->tid;
    r->have_connect_tid = true;
    if (set_name(&f->app, cmd->app) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (cmd->tc_args[0] && set_name(&r->tc_query, cmd->tc_args) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    struct ups_request q = f->req;
    q.app = f->app;
    q.at_connect = true;
    if (ups_route_find_connect(f->snap, &q)) {
        r->passthrough = true;
        return lb_rp_route(f, CONF_ROLE_ANY);
    }
    /* E-RTMP: the pools this session may reach decide what the reply
     * promises (ups_ertmp_at_connect); media passes untouched either way. */
    bool ex = ups_ertmp_at_connect(f->snap, &q) == CONF_ERTMP_FORWARD;
    struct lb_action a = reply(f, rtmp_reply_connect(msg, sizeof(msg), cmd->tid,
                                                     cmd->object_encoding,
                                                     ex ? &cmd->caps : NULL), msg);
    if (a.kind != LB_ACT_CONTINUE)
        return a;
    if (remember_tid(r, cmd->tid, false) < 0)
        return lb_act_close(LB_REASON_CLIENT_TOO_MANY);
    r->connected = true;
    r->dirty |= 1u << 2 | 1u << 3;
    return a;
}

static struct lb_action command(struct lb_front *f, const struct rtmp_msg *m)
{
    struct rtmp_phase *r = st(f);
    struct rtmp_cmd cmd;
    const char *why = NULL;
    uint8_t msg[512];

    if (rtmp_cmd_parse(m->data, m->len, m->type == RTMP_MSG_COMMAND_AMF3, &r->amf, &cmd, &why) < 0)
        return protocol_error(f, LB_REASON_CLIENT_AMF, why);
    switch (cmd.kind) {
    case RTMP_CMD_CONNECT:
        return on_connect(f, &cmd);
    case RTMP_CMD_CREATE_STREAM: {
        if (!r->connected)
            return protocol_error(f, LB_REASON_CLIENT_CS_BEFORE_CONNECT, "createStream before connect");
        struct lb_action a = reply(f, rtmp_reply_create_stream(msg, sizeof(msg), cmd.tid, 1), msg);
        if (a.kind == LB_ACT_CONTINUE && remember_tid(r, cmd.tid, true) < 0)
            return protocol_error(f, LB_REASON_CLIENT_TOO_MANY, "too many commands awaiting answers");
        return a;
    }
    case RTMP_CMD_PUBLISH:
    case RTMP_CMD_PLAY:
        if (!r->connected)
            return protocol_error(f, LB_REASON_CLIENT_PUB_BEFORE_CONNECT, "publish or play before connect");
        if (set_name(&f->stream, cmd.stream) < 0 || set_args(f, cmd.stream_args) < 0)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        if (cmd.kind == RTMP_CMD_PUBLISH)
            return lb_rp_publish(f);
        return lb_rp_route(f, CONF_ROLE_PLAY);
    default:
        return lb_act(LB_ACT_CONTINUE);
    }
}

static struct lb_action message(struct lb_front *f, const struct rtmp_msg *m)
{
    struct rtmp_phase *r = st(f);
    if (m->type == RTMP_MSG_SET_CHUNK_SIZE) {
        uint32_t v;
        if (rtmp_scs_value(m->data, m->len, &v) && rtmp_chunk_set_size(r->cdec, v) < 0)
            return protocol_error(f, LB_REASON_CLIENT_CHUNK_SIZE, "Set Chunk Size out of bounds");
        return lb_act(LB_ACT_CONTINUE);
    }
    return command(f, m);
}

/* Parses b from b_parsed until it needs more bytes or the session moves on. */
static struct lb_action parse_local(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);

    while (r->st == RP_LOCAL) {
        struct rtmp_chunk_ev ev;
        struct rtmp_msg m;
        const char *why = NULL;
        size_t used;
        /* An empty buffer may have no memory yet; the decoder may still owe
         * an event, so it is called all the same. */
        const uint8_t *p = r->b.data ? r->b.data + r->b_parsed : (const uint8_t *)"";
        rtmp_chunk_next(r->cdec, p, r->b.len - r->b_parsed, &used, &ev);
        r->b_parsed += used;
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_ERROR)
            return protocol_error(f, LB_REASON_CLIENT_PROTOCOL, ev.error);
        r->cas.base = r->b.data;
        size_t at = ev.type == RTMP_EV_PAYLOAD ? (size_t)(ev.data - r->b.data) : 0;
        enum rtmp_asm_result ar = rtmp_asm_feed(&r->cas, &ev, at, &m, &why);
        if (ar == RTMP_ASM_ERROR)
            return protocol_error(f, LB_REASON_CLIENT_INTERLEAVED, why);
        if (ar == RTMP_ASM_MESSAGE) {
            struct lb_action a = message(f, &m);
            if (a.kind != LB_ACT_CONTINUE)
                return a;
        }
    }
    return lb_act(LB_ACT_CONTINUE);
}

/* ---- HANDSHAKE ----------------------------------------------------------- */

static struct lb_action enter_local(struct lb_front *f, const uint8_t *rest, size_t n)
{
    struct rtmp_phase *r = st(f);
    free(r->hs);
    r->hs = NULL;
    r->cdec = malloc(sizeof(*r->cdec));
    if (!r->cdec)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    struct rtmp_chunk_limits lim = {f->lim->max_chunk_size, f->lim->max_message_size, 65599};
    rtmp_chunk_init(r->cdec, &lim, 0);
    /* Commands are assembled from b itself: a command in progress costs
     * only the list of where its pieces are. */
    rtmp_asm_init_spans(&r->cas,
                        RTMP_TYPE_BIT(RTMP_MSG_SET_CHUNK_SIZE) |
                            RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF0) |
                            RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF3),
                        f->lim->max_message_size);
    r->st = RP_LOCAL;
    if (n > f->lim->preroute_bytes)
        return protocol_error(f, LB_REASON_PREROUTE_LIMIT, "limits.preroute_bytes exceeded");
    if (lb_buf_append(&r->b, rest, n, f->lim->preroute_bytes) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    return parse_local(f);
}

static struct lb_action handshake_bytes(struct lb_front *f, const uint8_t *p, size_t n)
{
    struct rtmp_phase *r = st(f);
    size_t used;
    enum rtmp_hs_result hr = rtmp_hs_server_feed(r->hs, p, n, &used);
    if (hr == RTMP_HS_ERROR && p[0] == 0x16)
        return protocol_error(f, LB_REASON_TLS_ON_PLAIN,
                              "TLS ClientHello on a plain listener (the client uses rtmps:// "
                              "on a listener without tls): closed");
    if (hr == RTMP_HS_ERROR) {
        char why[64];
        snprintf(why, sizeof(why), "not an RTMP handshake (first byte 0x%02x)", p[0]);
        return protocol_error(f, LB_REASON_BAD_HANDSHAKE, why);
    }
    if (r->hs->out_ready) {
        r->hs->out_ready = false;
        f->hs_kind = r->hs->kind == RTMP_HS_DIGEST ? "digest" : "simple";
        if (lb_buf_append(&f->to_client, r->hs->out, sizeof(r->hs->out), OUT_LIMIT) < 0)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        r->ask_early = true; /* a real RTMP client: its node may be dialled now */
    }
    if (hr == RTMP_HS_DONE)
        return enter_local(f, p + used, n - used);
    return lb_act(LB_ACT_CONTINUE);
}

/* ---- events --------------------------------------------------------------- */

/* Room in b for the next read: up to READ_CHUNK, never past the budget. */
static ssize_t read_into_b(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    size_t left = f->lim->preroute_bytes - r->b.len;
    size_t want = left < READ_CHUNK ? left : READ_CHUNK;
    if (want == 0)
        return -ENOBUFS;
    /* Past the first read's worth, grow straight to the budget: doubling
     * would leave a trail of freed halves behind each session. */
    size_t more = r->b.cap && r->b.len + want > r->b.cap ? left : want;
    if (lb_buf_reserve(&r->b, more, f->lim->preroute_bytes) < 0)
        return -ENOMEM;
    ssize_t n = lb_front_read_client(f, r->b.data + r->b.len, want);
    if (n > 0)
        r->b.len += (size_t)n;
    return n;
}

static struct lb_action rp_client_data(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    uint8_t tmp[READ_CHUNK];

    while (r->st == RP_HANDSHAKE || r->st == RP_LOCAL) {
        bool hs = r->st == RP_HANDSHAKE;
        ssize_t n = hs ? lb_front_read_client(f, tmp, sizeof(tmp)) : read_into_b(f);
        if (n == -EAGAIN)
            break;
        if (n == -ENOBUFS) {
            char why[96];
            snprintf(why, sizeof(why), "%zu bytes without publish or play (limits.preroute_bytes)",
                     r->b.len);
            return protocol_error(f, LB_REASON_PREROUTE_LIMIT, why);
        }
        if (n == -ENOMEM)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        if (n < 0)
            return lb_act_close(LB_REASON_CLIENT_ERROR);
        if (n == 0)
            return lb_act_close(hs ? LB_REASON_CLIENT_CLOSED_IN_HANDSHAKE : LB_REASON_CLIENT_CLOSED);
        struct lb_action a = hs ? handshake_bytes(f, tmp, (size_t)n) : parse_local(f);
        if (a.kind != LB_ACT_CONTINUE) {
            r->ask_early = false; /* routed, failed or closed: too late for it */
            return a;
        }
    }
    /* After this event's bytes, so a client that sent more than C0C1 is
     * read through first. */
    if (r->ask_early) {
        r->ask_early = false;
        return lb_act(LB_ACT_EARLY);
    }
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action rp_timer(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    switch (r->st) {
    case RP_HANDSHAKE:
    case RP_LOCAL: {
        if (r->early == RPE_HS && f->now_ms >= r->early_deadline &&
            f->now_ms < r->client_deadline)
            return lb_rp_early_timeout(f);
        char why[96];
        snprintf(why, sizeof(why), "no publish or play within timeouts.handshake (%s)",
                 state_names[r->st]);
        return protocol_error(f, LB_REASON_HANDSHAKE_TIMEOUT, why);
    }
    case RP_UP_HS:
        if (f->now_ms < r->origin_deadline)
            return lb_rp_retry(f, LB_REASON_ORIGIN_TIMEOUT);
        /* fall through */
    case RP_ROUTED:
    case RP_PATCH:
        return lb_rp_fail(f, LB_REASON_ORIGIN_TIMEOUT, "origin %s did not answer in time",
                          f->node ? f->node->name : "?");
    case RP_TAKEOVER:
        return lb_rp_takeover_timer(f);
    case RP_HANDOVER: /* a side never took what was queued for it */
        return lb_act_close(LB_REASON_IDLE_TIMEOUT);
    default:
        return lb_act(LB_ACT_CONTINUE);
    }
}

static unsigned rp_wants(const struct lb_front *f)
{
    const struct rtmp_phase *r = st(f);
    if (r->st == RP_TAKEOVER) /* only an early node, if any, is read meanwhile */
        return r->early != RPE_NONE ? LB_WANT_UPSTREAM : 0;
    switch (r->st) {
    case RP_HANDSHAKE:
    case RP_LOCAL:
        /* An early node is read too: its handshake, then only to see it
         * close (what it says before the replay waits in uin). */
        return r->early != RPE_NONE ? LB_WANT_CLIENT | LB_WANT_UPSTREAM : LB_WANT_CLIENT;
    case RP_UP_HS:
        return LB_WANT_UPSTREAM;
    case RP_PATCH:
        return lb_buf_pending(&f->to_client) < RP_COUT_HIGH ? LB_WANT_UPSTREAM : 0;
    default:
        return 0;
    }
}

static int rp_create(struct lb_front *f)
{
    struct rtmp_phase *r = calloc(1, sizeof(*r));
    if (!r)
        return -1;
    r->hs = malloc(sizeof(*r->hs));
    if (!r->hs) {
        free(r);
        return -1;
    }
    rtmp_hs_server_init(r->hs, NULL);
    r->st = RP_HANDSHAKE;
    r->client_chunk = RTMP_DEFAULT_CHUNK_SIZE;
    r->amf.max_depth = f->lim->max_amf_depth;
    r->amf.max_string = f->lim->max_amf_string;
    r->amf.max_values = 128;
    f->state = r;
    f->role = CONF_ROLE_ANY;
    f->hs_kind = "none";
    return 0;
}

static struct lb_action rp_start(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    f->deadline_ms = f->now_ms + f->lim->handshake_ms;
    r->client_deadline = f->deadline_ms;
    return lb_act(LB_ACT_CONTINUE);
}

void lb_rp_free_origin_side(struct rtmp_phase *r)
{
    free(r->hc);
    r->hc = NULL;
    free(r->udec);
    r->udec = NULL;
    rtmp_asm_free(&r->uas);
    lb_buf_free(&r->uin);
    r->uin_base = r->uin_parsed = r->uin_whole = 0;
    r->u_scs_seen = false;
    r->early = RPE_NONE;
}

static void rp_free(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    if (!r)
        return;
    free(r->hs);
    free(r->cdec);
    rtmp_asm_free(&r->cas);
    lb_buf_free(&r->b);
    lb_rp_free_origin_side(r);
    free(r->tc_query);
    free(r->take_old);
    free(r->args);
    f->req.args = NULL;
    f->req.pin_node = NULL; /* it pointed into take_old */
    f->req.n_args = 0;
    free(r);
    f->state = NULL;
}

const struct lb_phase_ops lb_phase_rtmp = {
    .name = "rtmp",
    .create = rp_create,
    .start = rp_start,
    .on_client_data = rp_client_data,
    .on_upstream_connected = lb_rp_upstream_connected,
    .on_upstream_data = lb_rp_upstream_data,
    .on_timer = rp_timer,
    .on_adopted = lb_rp_adopted,
    .on_early_gone = lb_rp_early_gone,
    .on_dials_failed = rp_dials_failed,
    .wants = rp_wants,
    .free = rp_free,
};
