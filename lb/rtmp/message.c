#include "lb/rtmp/message.h"

#include <stdlib.h>
#include <string.h>

void rtmp_asm_init(struct rtmp_asm *a, uint32_t types, uint32_t budget, bool positions)
{
    memset(a, 0, sizeof(*a));
    a->types = types;
    a->budget = budget;
    a->positions = positions;
}

void rtmp_asm_init_spans(struct rtmp_asm *a, uint32_t types, uint32_t budget)
{
    rtmp_asm_init(a, types, budget, false);
    a->spans = true;
}

/* Spans are worth it while pieces are big; with tiny chunks a copy is
 * smaller than the list of where they are. */
#define SPAN_MIN_PIECE 64

static void release(struct rtmp_asm *a, struct rtmp_asm_slot *s)
{
    a->held -= s->len;
    free(s->data);
    free(s->pos);
    free(s->span);
    memset(s, 0, sizeof(*s));
}

/* Spans mode: remember where the piece is; a tiny piece turns the slot
 * into a copy (gathering what it had so far). -1: out of memory. */
static int add_span(struct rtmp_asm *a, struct rtmp_asm_slot *s, size_t at, uint32_t off,
                    size_t len)
{
    if (!s->data && len < SPAN_MIN_PIECE && off + len < s->len) {
        s->data = malloc(s->len ? s->len : 1);
        if (!s->data)
            return -1;
        uint32_t o = 0;
        for (uint32_t i = 0; i < s->n_span; i++) {
            memcpy(s->data + o, a->base + s->span[i].at, s->span[i].len);
            o += s->span[i].len;
        }
        free(s->span);
        s->span = NULL;
        s->n_span = s->cap_span = 0;
    }
    if (s->data) {
        memcpy(s->data + off, a->base + at, len);
        return 0;
    }
    if (s->n_span == s->cap_span) {
        uint32_t cap = s->cap_span ? s->cap_span * 2 : 4;
        struct rtmp_asm_span *n = realloc(s->span, cap * sizeof(*n));
        if (!n)
            return -1;
        s->span = n;
        s->cap_span = cap;
    }
    s->span[s->n_span++] = (struct rtmp_asm_span){at, (uint32_t)len};
    return 0;
}

/* Spans mode, at the end: the message in one piece. */
static int gather(struct rtmp_asm *a, struct rtmp_asm_slot *s)
{
    if (s->data)
        return 0;
    s->data = malloc(s->len ? s->len : 1);
    if (!s->data)
        return -1;
    uint32_t o = 0;
    for (uint32_t i = 0; i < s->n_span; i++) {
        memcpy(s->data + o, a->base + s->span[i].at, s->span[i].len);
        o += s->span[i].len;
    }
    return 0;
}

void rtmp_asm_free(struct rtmp_asm *a)
{
    for (size_t i = 0; i < RTMP_ASM_SLOTS; i++)
        if (a->slot[i].used)
            release(a, &a->slot[i]);
}

static struct rtmp_asm_slot *find(struct rtmp_asm *a, uint32_t csid)
{
    for (size_t i = 0; i < RTMP_ASM_SLOTS; i++)
        if (a->slot[i].used && !a->slot[i].done && a->slot[i].csid == csid)
            return &a->slot[i];
    return NULL;
}

static enum rtmp_asm_result start(struct rtmp_asm *a, const struct rtmp_chunk_ev *ev, size_t at,
                                  const char **why)
{
    struct rtmp_asm_slot *s = NULL;
    for (size_t i = 0; i < RTMP_ASM_SLOTS && !s; i++)
        if (!a->slot[i].used)
            s = &a->slot[i];
    if (!s) {
        *why = "too many messages interleaved";
        return RTMP_ASM_ERROR;
    }
    if (ev->len > a->budget - a->held) {
        *why = "messages in progress exceed the assembly budget";
        return RTMP_ASM_ERROR;
    }
    if (!a->spans)
        s->data = malloc(ev->len ? ev->len : 1);
    uint32_t n_pos = ev->len < RTMP_ASM_POS ? ev->len : RTMP_ASM_POS;
    if (a->positions)
        s->pos = malloc(sizeof(size_t) * (n_pos ? n_pos : 1));
    if ((!a->spans && !s->data) || (a->positions && !s->pos)) {
        free(s->data);
        free(s->pos);
        s->data = NULL;
        s->pos = NULL;
        *why = "out of memory";
        return RTMP_ASM_ERROR;
    }
    s->used = true;
    s->csid = ev->csid;
    s->type = ev->msg_type;
    s->len = ev->len;
    s->got = 0;
    s->start = at;
    a->held += ev->len;
    return RTMP_ASM_MORE;
}

enum rtmp_asm_result rtmp_asm_feed(struct rtmp_asm *a, const struct rtmp_chunk_ev *ev, size_t at,
                                   struct rtmp_msg *out, const char **why)
{
    for (size_t i = 0; i < RTMP_ASM_SLOTS; i++)
        if (a->slot[i].done)
            release(a, &a->slot[i]);

    bool wanted = ev->msg_type < 32 && (a->types & RTMP_TYPE_BIT(ev->msg_type));
    if (!wanted)
        return RTMP_ASM_MORE;
    if (ev->type == RTMP_EV_MSG_START)
        return start(a, ev, at, why);

    struct rtmp_asm_slot *s = find(a, ev->csid);
    if (!s)
        return RTMP_ASM_MORE;
    if (ev->type == RTMP_EV_PAYLOAD) {
        if (ev->offset > s->len || ev->data_len > s->len - ev->offset) {
            *why = "payload beyond the message length";
            return RTMP_ASM_ERROR;
        }
        if (a->spans) {
            if (add_span(a, s, at, ev->offset, ev->data_len) < 0) {
                *why = "out of memory";
                return RTMP_ASM_ERROR;
            }
        } else {
            memcpy(s->data + ev->offset, ev->data, ev->data_len);
        }
        for (size_t k = 0; s->pos && k < ev->data_len && ev->offset + k < RTMP_ASM_POS; k++)
            s->pos[ev->offset + k] = at + k;
        s->got += (uint32_t)ev->data_len;
        return RTMP_ASM_MORE;
    }
    if (ev->type != RTMP_EV_MSG_END)
        return RTMP_ASM_MORE;
    if (a->spans && gather(a, s) < 0) {
        *why = "out of memory";
        return RTMP_ASM_ERROR;
    }
    s->done = true;
    *out = (struct rtmp_msg){.csid = s->csid, .type = s->type, .len = s->len, .data = s->data,
                             .start = s->start, .pos = s->pos,
                             .n_pos = s->len < RTMP_ASM_POS ? s->len : RTMP_ASM_POS};
    return RTMP_ASM_MESSAGE;
}

size_t rtmp_asm_first_open(const struct rtmp_asm *a)
{
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < RTMP_ASM_SLOTS; i++)
        if (a->slot[i].used && !a->slot[i].done && a->slot[i].start < first)
            first = a->slot[i].start;
    return first;
}
