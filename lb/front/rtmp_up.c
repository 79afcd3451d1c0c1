/* The rtmp phase, origin side: a plain client handshake with the node, the
 * replay of the client's bytes, and the patch of the node's replies to the
 * commands the client already had answers for (their transaction id is
 * zeroed in place, so lengths, chunk boundaries and header state stay as
 * the node wrote them). Every command message is held back until whole, so
 * a reply split across chunks, reads or both is patched all the same. */
#include "lb/front/rtmp-int.h"
#include "lb/rtmp/bytes.h"
#include "lb/pubreg.h"
#include "lb/rtmp/command.h"
#include "upstream/upstream-t.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UP_READ 16384

static struct rtmp_phase *st(const struct lb_front *f) { return f->state; }

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The client is still in its handshake or commands, or its publish waits
 * for a takeover: an early node is not yet the session's. */
static bool client_side(const struct rtmp_phase *r)
{
    return r->st == RP_HANDSHAKE || r->st == RP_LOCAL || r->st == RP_TAKEOVER;
}

/* The phase's deadline with an early node beside the client (a takeover
 * keeps its own: its wait ends in the ROUTE, which bounds the node). */
static void early_deadline(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    if (r->st != RP_HANDSHAKE && r->st != RP_LOCAL)
        return;
    f->deadline_ms = r->early == RPE_HS ? min_u64(r->early_deadline, r->client_deadline)
                                        : r->client_deadline;
}

/* The early node's side goes; the client's side goes on untouched. */
void lb_rp_early_gone(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    if (r->early == RPE_NONE)
        return;
    lb_rp_free_origin_side(r);
    f->upstream_bytes = 0;
    early_deadline(f);
}

/* The early node failed before the ROUTE: the core counts it against the
 * node and dials the next candidate early, or gives up and routes on the
 * client's command. */
static struct lb_action early_retry(struct lb_front *f, enum lb_reason why)
{
    lb_rp_early_gone(f);
    return (struct lb_action){.kind = LB_ACT_DIAL, .reason = why};
}

struct lb_action lb_rp_early_timeout(struct lb_front *f)
{
    return early_retry(f, LB_REASON_ORIGIN_TIMEOUT);
}

struct lb_action lb_rp_upstream_connected(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);

    /* A retry after a failed node starts the origin side afresh: nothing
     * of the failed node reached the client. */
    lb_rp_free_origin_side(r);
    /* A takeover of this publish goes back to this node. */
    if (f->pub_id && f->pubreg && f->node && !client_side(r))
        lb_pubreg_set_node(f->pubreg, f->pub_id, f->node->pool->name, f->node->name);
    r->hc = malloc(sizeof(*r->hc));
    r->udec = malloc(sizeof(*r->udec));
    if (!r->hc || !r->udec)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    rtmp_hs_client_init(r->hc, NULL);
    /* The node's side may carry any message (media follows); its commands
     * and Set Chunk Size are collected whole. */
    struct rtmp_chunk_limits ulim = {0xffffff, 0xffffff, 65599};
    rtmp_chunk_init(r->udec, &ulim, 0);
    rtmp_asm_init(&r->uas,
                  RTMP_TYPE_BIT(RTMP_MSG_SET_CHUNK_SIZE) | RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF0) |
                      RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF3),
                  RP_UIN_CAP, true);
    if (lb_buf_append(&f->to_upstream, r->hc->c0c1, sizeof(r->hc->c0c1), 1u << 20) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (client_side(r)) {
        /* Early: the node's handshake beside the client's, within
         * timeouts.connect (the last candidate: what the client has). */
        r->early = RPE_HS;
        r->early_deadline = f->last_candidate ? r->client_deadline
                                              : f->now_ms + f->lim->connect_ms;
        early_deadline(f);
        return lb_act(LB_ACT_CONTINUE);
    }
    r->st = RP_UP_HS;
    /* The node answers the RTMP handshake within timeouts.connect, or, as
     * the last candidate, within what the client still waits. */
    uint64_t hs_end = f->last_candidate ? r->origin_deadline : f->now_ms + f->lim->connect_ms;
    f->deadline_ms = hs_end < r->origin_deadline ? hs_end : r->origin_deadline;
    return lb_act(LB_ACT_CONTINUE);
}

/* Forwards uin[0, n) to the client. */
static int forward(struct lb_front *f, size_t n)
{
    struct rtmp_phase *r = st(f);
    if (n == 0)
        return 0;
    if (lb_buf_append(&f->to_client, r->uin.data, n, RP_COUT_LIMIT) < 0)
        return -1;
    memmove(r->uin.data, r->uin.data + n, r->uin.len - n);
    r->uin.len -= n;
    r->uin_base += n;
    r->uin_parsed -= n;
    r->uin_whole -= n;
    /* The client reads at a new chunk size once it has the message. */
    if (r->next_chunk_at && r->uin_base >= r->next_chunk_at) {
        r->client_chunk = r->next_chunk;
        r->next_chunk_at = 0;
    }
    return 0;
}

/* On a failed check the client gets what preceded the offending message,
 * then the error. */
static struct lb_action origin_fail(struct lb_front *f, size_t msg_start, enum lb_reason reason,
                                    const char *what)
{
    struct rtmp_phase *r = st(f);
    size_t keep = msg_start > r->uin_base ? msg_start - r->uin_base : 0;
    if (keep > r->uin.len)
        keep = r->uin.len;
    if (forward(f, keep) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    return lb_rp_fail(f, reason, "origin %s %s", f->node->name, what);
}

/* A whole command from the node. Returns CONTINUE, or the failure. */
static struct lb_action reply(struct lb_front *f, const struct rtmp_msg *m)
{
    struct rtmp_phase *r = st(f);
    char name[16], what[96];
    double tid;
    bool cs;
    long off = rtmp_peek_name_tid(m->data, m->len, m->type == RTMP_MSG_COMMAND_AMF3, name,
                                  sizeof(name), &tid);

    if (off < 0 || (strcmp(name, "_result") != 0 && strcmp(name, "_error") != 0))
        return lb_act(LB_ACT_CONTINUE);
    if (!lb_rp_tid_take(r, tid, &cs, false))
        return lb_act(LB_ACT_CONTINUE);
    if (strcmp(name, "_error") == 0)
        return origin_fail(f, m->start, LB_REASON_ORIGIN_REJECTED,
                           cs ? "rejected createStream" : "rejected connect");
    if (cs) {
        const uint8_t *p = m->data + off + 8;
        size_t left = m->len - (size_t)off - 8;
        double id = -1;
        if (left >= 10 && p[0] == 0x05 && p[1] == 0x00)
            id = rtmp_get_be_double(p + 2);
        if (id != 1.0) {
            snprintf(what, sizeof(what), "gave stream id %g; rtmplb promised 1", id);
            return origin_fail(f, m->start, LB_REASON_ORIGIN_PROTOCOL, what);
        }
    }
    if ((size_t)off + 8 > m->n_pos)
        return origin_fail(f, m->start, LB_REASON_ORIGIN_PROTOCOL, "sent an unreadable reply");
    for (size_t k = 0; k < 8; k++)
        r->uin.data[m->pos[off + k] - r->uin_base] = 0;
    lb_rp_tid_take(r, tid, &cs, true);
    return lb_act(LB_ACT_CONTINUE);
}

/* Checks one decoder event of the node's stream. */
static struct lb_action check(struct lb_front *f, const struct rtmp_chunk_ev *ev, size_t at)
{
    struct rtmp_phase *r = st(f);
    char what[96];

    if (ev->type != RTMP_EV_MSG_START)
        return lb_act(LB_ACT_CONTINUE);
    if (!r->u_scs_seen && ev->len > RTMP_DEFAULT_CHUNK_SIZE) {
        snprintf(what, sizeof(what), "sent a %u-byte message before its Set Chunk Size", ev->len);
        return origin_fail(f, at, LB_REASON_ORIGIN_PROTOCOL, what);
    }
    if (ev->csid < 64 && (r->dirty >> ev->csid & 1)) {
        if (ev->fmt != 0) {
            snprintf(what, sizeof(what), "compressed a header on chunk stream %u", ev->csid);
            return origin_fail(f, at, LB_REASON_ORIGIN_PROTOCOL, what);
        }
        r->dirty &= ~(1ull << ev->csid);
    }
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action message(struct lb_front *f, const struct rtmp_msg *m)
{
    struct rtmp_phase *r = st(f);
    char what[64];
    if (m->type != RTMP_MSG_SET_CHUNK_SIZE)
        return reply(f, m);
    uint32_t v;
    if (!rtmp_scs_value(m->data, m->len, &v))
        return lb_act(LB_ACT_CONTINUE);
    if ((m->data[0] & 0x80) || rtmp_chunk_set_size(r->udec, v) < 0) {
        snprintf(what, sizeof(what), "set chunk size %u", rtmp_get_be32(m->data));
        return origin_fail(f, m->start, LB_REASON_ORIGIN_PROTOCOL, what);
    }
    r->u_scs_seen = true;
    /* Forwarded verbatim: the client reads at it too, once it has it.
     * Position of its end: the decoder has just consumed it. */
    r->next_chunk = v;
    r->next_chunk_at = r->uin_base + r->uin_parsed;
    return lb_act(LB_ACT_CONTINUE);
}

/* Parses what the node sent since the last call, patching as it goes, and
 * queues for the client everything before the first incomplete command. */
static struct lb_action patch(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);

    while (r->n_t > 0) {
        struct rtmp_chunk_ev ev;
        struct rtmp_msg m;
        const char *why = NULL;
        size_t used, at = r->uin_parsed;
        const uint8_t *p = r->uin.data ? r->uin.data + at : (const uint8_t *)"";
        rtmp_chunk_next(r->udec, p, r->uin.len - at, &used, &ev);
        /* Always advance: a chunk header may be consumed before NEED_MORE. */
        r->uin_parsed += used;
        if (!r->udec->in_payload || r->udec->chunk_left == 0)
            r->uin_whole = r->uin_parsed;
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_ERROR) {
            char what[128];
            snprintf(what, sizeof(what), "broke the RTMP chunk stream: %s", ev.error);
            return origin_fail(f, r->uin_base + at, LB_REASON_ORIGIN_PROTOCOL, what);
        }
        struct lb_action a = check(f, &ev, r->uin_base + at);
        if (a.kind != LB_ACT_CONTINUE)
            return a;
        size_t ev_at = r->uin_base + (ev.type == RTMP_EV_PAYLOAD
                                          ? (size_t)(ev.data - r->uin.data)
                                          : at);
        enum rtmp_asm_result ar = rtmp_asm_feed(&r->uas, &ev, ev_at, &m, &why);
        if (ar == RTMP_ASM_ERROR)
            return origin_fail(f, r->uin_base + at, LB_REASON_ORIGIN_PROTOCOL, why);
        if (ar == RTMP_ASM_MESSAGE) {
            a = message(f, &m);
            if (a.kind != LB_ACT_CONTINUE)
                return a;
        }
    }
    bool done = r->n_t == 0;
    /* Only whole chunks go before the hand-over: an error we may still
     * have to send must start where the client expects a chunk header. */
    size_t open = rtmp_asm_first_open(&r->uas);
    size_t fwd = r->uin_whole;
    if (done)
        fwd = r->uin.len; /* every reply seen: the rest goes as it is */
    else if (open != SIZE_MAX && open - r->uin_base < fwd)
        fwd = open - r->uin_base;
    if (forward(f, fwd) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (!done)
        return lb_act(LB_ACT_CONTINUE);
    r->st = RP_HANDOVER;
    /* The origin deadline still bounds the flush before the splice. */
    f->deadline_ms = r->origin_deadline;
    lb_rp_free_origin_side(r);
    return lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
}

/* S0S1S2 read: C2 goes out, and what followed it is the node's stream. */
static int c2_out(struct lb_front *f, const uint8_t *rest, size_t n)
{
    struct rtmp_phase *r = st(f);
    f->upstream_bytes -= 1 + 2 * RTMP_HS_SIZE; /* the node's handshake is not the client's */
    if (lb_buf_append(&f->to_upstream, rtmp_hs_client_c2(r->hc), RTMP_HS_SIZE, 1u << 20) < 0 ||
        lb_buf_append(&r->uin, rest, n, RP_UIN_CAP) < 0)
        return -1;
    free(r->hc);
    r->hc = NULL;
    return 0;
}

/* The node's handshake is done: the client's bytes after C2 go verbatim,
 * and the node's answer is parsed (and patched) as it comes. */
static struct lb_action replay_now(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    if (lb_buf_append(&f->to_upstream, r->b.data, r->b.len,
                      (size_t)f->lim->preroute_bytes + 2 * RTMP_HS_SIZE) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    lb_buf_free(&r->b);
    r->st = RP_PATCH;
    f->deadline_ms = r->origin_deadline;
    struct lb_action a = patch(f);
    if (a.kind == LB_ACT_CONTINUE) /* the client's bytes flow raw once the replay is out */
        return lb_act_splice(LB_SPLICE_C2U);
    return a;
}

struct lb_action lb_rp_adopted(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    /* A takeover of this publish goes back to this node. */
    if (f->pub_id && f->pubreg && f->node)
        lb_pubreg_set_node(f->pubreg, f->pub_id, f->node->pool->name, f->node->name);
    enum rp_early e = r->early;
    r->early = RPE_NONE;
    switch (e) {
    case RPE_READY:
        return replay_now(f);
    case RPE_HS: /* the handshake goes on as after a dial at the ROUTE */
        r->st = RP_UP_HS;
        f->deadline_ms = f->last_candidate ? r->origin_deadline
                                           : min_u64(r->early_deadline, r->origin_deadline);
        return lb_act(LB_ACT_CONTINUE);
    default: /* still dialling: on_upstream_connected starts as usual */
        return lb_act(LB_ACT_CONTINUE);
    }
}

/* One read from the node: its handshake into tmp, anything after it onto
 * uin. -ENOBUFS: uin is at its cap. */
static ssize_t read_origin(struct lb_front *f, uint8_t *tmp, size_t cap)
{
    struct rtmp_phase *r = st(f);
    if (r->hc)
        return lb_front_read_upstream(f, tmp, cap);
    if (lb_buf_reserve(&r->uin, UP_READ, RP_UIN_CAP) < 0)
        return -ENOBUFS;
    ssize_t n = lb_front_read_upstream(f, r->uin.data + r->uin.len, r->uin.cap - r->uin.len);
    if (n > 0)
        r->uin.len += (size_t)n;
    return n;
}

/* An early node's bytes while the client is still on its side: the
 * handshake's answer (C2 goes at once, the replay when the ROUTE takes
 * this node), then anything before the replay (kept in uin), or its
 * close. */
static struct lb_action early_data(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    uint8_t tmp[UP_READ];

    for (int round = 0; round < 4 && r->early != RPE_NONE; round++) {
        ssize_t n = read_origin(f, tmp, sizeof(tmp));
        if (n == -EAGAIN)
            break;
        if (n == -ENOBUFS) /* RP_UIN_CAP unasked: not an origin to keep */
            return early_retry(f, LB_REASON_ORIGIN_PROTOCOL);
        if (n <= 0 && r->early == RPE_READY) {
            /* It answered its handshake, then closed while the client had
             * not yet asked for anything (an idle timeout): not a failure. */
            lb_rp_early_gone(f);
            return lb_act(LB_ACT_LET_GO);
        }
        if (n <= 0)
            return early_retry(f, LB_REASON_ORIGIN_CLOSED);
        if (r->early == RPE_READY)
            continue;
        size_t used;
        enum rtmp_hs_result hr = rtmp_hs_client_feed(r->hc, tmp, (size_t)n, &used);
        if (hr == RTMP_HS_ERROR)
            return early_retry(f, LB_REASON_ORIGIN_PROTOCOL);
        if (hr == RTMP_HS_NEED_MORE)
            continue;
        if (c2_out(f, tmp + used, (size_t)n - used) < 0)
            return lb_act_close(LB_REASON_INTERNAL_ERROR);
        r->early = RPE_READY;
        early_deadline(f);
    }
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action upstream_gone(struct lb_front *f, ssize_t err)
{
    struct rtmp_phase *r = st(f);
    /* Before anything of this node reached the client: try the next one. */
    if (r->st == RP_UP_HS)
        return lb_rp_retry(f, LB_REASON_ORIGIN_CLOSED);
    if (err)
        return lb_rp_fail(f, LB_REASON_ORIGIN_CLOSED, "origin %s: %s", f->node->name,
                          strerror((int)-err));
    return lb_rp_fail(f, LB_REASON_ORIGIN_CLOSED, "origin %s closed the connection",
                      f->node->name);
}

struct lb_action lb_rp_upstream_data(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    uint8_t tmp[UP_READ];

    if (client_side(r))
        return r->early != RPE_NONE ? early_data(f) : lb_act(LB_ACT_CONTINUE);
    while (r->st == RP_UP_HS || r->st == RP_PATCH) {
        if (r->st == RP_PATCH && lb_buf_pending(&f->to_client) >= RP_COUT_HIGH)
            break; /* the client is slow: backpressure */
        ssize_t n = read_origin(f, tmp, sizeof(tmp));
        if (n == -EAGAIN)
            break;
        if (n == -ENOBUFS)
            return lb_rp_fail(f, LB_REASON_ORIGIN_PROTOCOL,
                              "origin %s: message too large while patching", f->node->name);
        if (n <= 0)
            return upstream_gone(f, n);
        struct lb_action a;
        if (r->st == RP_UP_HS) {
            size_t used;
            enum rtmp_hs_result hr = rtmp_hs_client_feed(r->hc, tmp, (size_t)n, &used);
            if (hr == RTMP_HS_ERROR)
                return lb_rp_retry(f, LB_REASON_ORIGIN_PROTOCOL);
            if (hr == RTMP_HS_NEED_MORE)
                continue;
            if (c2_out(f, tmp + used, (size_t)n - used) < 0)
                return lb_act_close(LB_REASON_INTERNAL_ERROR);
            a = replay_now(f);
        } else {
            a = patch(f);
        }
        if (a.kind != LB_ACT_CONTINUE)
            return a;
    }
    return lb_act(LB_ACT_CONTINUE);
}
