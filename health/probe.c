/* Active health probes and node stats polling, on the control thread's
 * loop. One target per node that has checks or stats; each runs one probe
 * at a time on a jittered timer. Probes are data: connect (tcp), then an
 * RTMP handshake + connect (rtmp), or an HTTP GET (http); the result names
 * the layer that failed. Results move the node's shared state (atomics the
 * workers read) and every transition is logged with its reason. */
#include "health/probe.h"

#include <errno.h>
#include <limits.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "health/hc.h"
#include "health/passive.h"
#include "health/streams.h"
#include "lb/admin/metrics.h"
#include "lb/log.h"
#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/command.h"
#include "lb/rtmp/handshake.h"
#include "lb/rtmp/bytes.h"
#include "lb/rtmp/message.h"
#include "lb/tls/tls.h"
#include "lb/xprt/tls.h"

#define BODY_CAP HC_STATS_DOC_MAX
#define RTMP_IN_CAP (256u << 10)
#define MAX_STATS_STREAMS 4096

enum conn_kind { CONN_CHECK, CONN_STATS };

struct hc_target;

struct hc_conn {
    struct hc_target *t;
    enum conn_kind kind;
    int type; /* enum conf_health_type; stats polls are http */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_timer_t timer;
    uv_write_t w1, w2;
    int open_handles;
    bool connected, done;
    uint64_t started_ms;
    uint8_t rbuf[16384];
    uint8_t out[2048];
    /* rtmp */
    struct rtmp_hs_client hc;
    bool hs_done;
    uint8_t *in;
    size_t in_len;
    struct rtmp_chunk_dec dec;
    struct rtmp_asm as;
    /* tls: RTMPS nodes (checks only; stats are plain http) */
    struct lb_tls_mem *tls;
    bool tls_done;
    /* http */
    llhttp_t parser;
    llhttp_settings_t settings;
    bool complete;
    char *body;
    size_t body_len, body_cap;
    const char *why; /* why a callback stopped the parser */
    char why_buf[96];
};

struct hc_target {
    struct hc_engine *e;
    struct hc_target *next;
    char *pool, *node;
    struct ups_node_live *live;
    struct sockaddr_storage addr;
    bool check;
    struct hc_params p;
    int type;
    /* An RTMPS node: probes speak TLS (L6_TLS when that layer fails). The
     * target holds a reference to the set its client context lives in. */
    struct lb_tls_set *tls_set;
    const struct lb_tls_client *tls;
    char *app, *url;
    bool stats;
    int stats_kind;
    struct sockaddr_storage saddr;
    char *spath, *shost;
    uint64_t stats_interval_ms;
    bool stats_failing;
    unsigned stats_fail_run; /* failed polls in a row */
    unsigned stats_skipped;  /* streams the last poll left out (long names, over the cap) */
    struct hc_state st;
    uv_timer_t check_timer, stats_timer;
    int open_handles;
    bool closing;
    struct hc_conn *check_conn, *stats_conn;
    uint64_t checks;
    uint64_t results[HC_RESULT__COUNT]; /* active probes, by result */
    /* The node's last stats: its streams (app/name, publisher, clients,
     * bitrate), kept for the admin API; totals go to the shared state. */
    struct hc_stream *streams;
    size_t n_streams;
};

struct hc_engine {
    uv_loop_t *loop;
    struct hc_index *index;
    struct hc_target *targets;
    bool closing;
    unsigned open; /* targets not yet freed */
    void (*on_closed)(void *arg);
    void *arg;
    uint64_t seed;
    struct lb_histo latency; /* active probes, seconds */
};

static double rnd01(struct hc_engine *e)
{
    e->seed = e->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(e->seed >> 11) / 9007199254740992.0;
}

/* ---- results ------------------------------------------------------------- */

static void log_transition(struct hc_target *t, bool up, enum hc_result r, const char *detail)
{
    hc_log_transition(t->pool, t->node, up, r, up ? "passed rise checks" : NULL, detail,
                      t->checks);
}

static void check_result(struct hc_target *t, enum hc_result r, const char *detail)
{
    uint64_t now = uv_now(t->e->loop);
    t->checks++;
    if ((unsigned)r < HC_RESULT__COUNT)
        t->results[r]++;
    /* Passive failures may have marked the node down meanwhile (workers):
     * then it must pass `rise` probes like any down node. */
    if (t->st.up && atomic_load(&t->live->health) == UPS_DOWN) {
        t->st.up = false;
        t->st.ok_run = 0;
        t->st.since_ms = now;
    }
    if (!hc_apply(&t->st, &t->p, r == HC_OK, now))
        return;
    atomic_store(&t->live->health_since_ms, hc_wall_ms());
    if (t->st.up) {
        atomic_store(&t->live->passive_fails, 0);
        atomic_store(&t->live->up_since_ms, now ? now : 1);
        atomic_store(&t->live->health, UPS_UP);
    } else {
        atomic_store(&t->live->health, UPS_DOWN);
        /* What its hooks said dies with it (a restarted origin has nothing). */
        hc_index_clear_hooks(t->e->index, t->pool, t->node);
    }
    log_transition(t, t->st.up, r, detail);
}

static void log_stats_line(struct hc_target *t, enum lb_log_level level, const char *event,
                           const char *error)
{
    struct lb_logline l;
    lb_log_begin(&l, level, event);
    lb_log_str(&l, "pool", t->pool);
    lb_log_str(&l, "node", t->node);
    lb_log_fmt(&l, "url", "http://%s%s", t->shost ? t->shost : "-", t->spath ? t->spath : "");
    if (error)
        lb_log_str(&l, "error", error);
    lb_log_u64(&l, "failed_polls", t->stats_fail_run);
    lb_log_end(&l);
}

/* The node's stats stopped answering for `fall` polls in a row: what they
 * said is stale, so its streams leave the index (stream_location then falls
 * back) and its client counts stop steering least_sessions. */
static void stats_forget(struct hc_target *t)
{
    struct lb_logline l;
    size_t had = hc_index_count_node(t->e->index, t->pool, t->node);
    hc_index_clear_node(t->e->index, t->pool, t->node);
    atomic_store(&t->live->stats_clients, 0);
    atomic_store(&t->live->stats_bw_in, 0);
    atomic_store(&t->live->stats_streams, 0);
    free(t->streams);
    t->streams = NULL;
    t->n_streams = 0;
    lb_log_begin(&l, LB_LOG_WARN, "stats_cleared");
    lb_log_str(&l, "pool", t->pool);
    lb_log_str(&l, "node", t->node);
    lb_log_u64(&l, "streams", had);
    lb_log_u64(&l, "failed_polls", t->stats_fail_run);
    lb_log_end(&l);
}

/* Streams a readable document left out: said once per change, not per
 * poll. */
static void stats_skipped(struct hc_target *t, const struct hc_stats_report *rep)
{
    unsigned skipped = rep->long_names + rep->over_cap;
    if (skipped == t->stats_skipped)
        return;
    t->stats_skipped = skipped;
    struct lb_logline l;
    lb_log_begin(&l, skipped ? LB_LOG_WARN : LB_LOG_INFO, "stats_streams_skipped");
    lb_log_str(&l, "pool", t->pool);
    lb_log_str(&l, "node", t->node);
    lb_log_u64(&l, "long_names", rep->long_names);
    lb_log_u64(&l, "over_cap", rep->over_cap);
    lb_log_end(&l);
}

static void stats_result(struct hc_target *t, struct hc_conn *c, bool ok, const char *detail)
{
    static struct hc_stream streams[MAX_STATS_STREAMS];
    struct hc_stats_report rep = {0};
    int n = -1;
    if (ok)
        n = t->stats_kind == CONF_STATS_SRS
                ? hc_parse_srs_streams(c->body ? c->body : "", c->body_len, streams,
                                       MAX_STATS_STREAMS, &rep)
                : hc_parse_nginx_stat(c->body ? c->body : "", c->body_len, streams,
                                      MAX_STATS_STREAMS, &rep);
    /* The document is freed now: memory is held only while a poll runs. */
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    if (n < 0) {
        if (t->stats_fail_run < UINT_MAX)
            t->stats_fail_run++;
        if (!t->stats_failing)
            log_stats_line(t, LB_LOG_WARN, "stats_failed", ok ? rep.error : detail);
        t->stats_failing = true;
        unsigned fall = t->p.fall ? t->p.fall : 1;
        if (t->stats_fail_run == fall)
            stats_forget(t);
        return;
    }
    if (t->stats_failing)
        log_stats_line(t, LB_LOG_INFO, "stats_ok", NULL);
    stats_skipped(t, &rep);
    t->stats_failing = false;
    t->stats_fail_run = 0;
    hc_index_set_node(t->e->index, t->pool, t->node, streams, (size_t)n);
    unsigned clients = 0, live_streams = 0;
    uint64_t bw = 0;
    for (int i = 0; i < n; i++) {
        clients += streams[i].clients;
        bw += streams[i].bw_in;
        live_streams += streams[i].publishing;
    }
    atomic_store(&t->live->stats_clients, clients); /* for least_sessions */
    atomic_store(&t->live->stats_bw_in, bw);
    atomic_store(&t->live->stats_streams, live_streams);
    struct hc_stream *keep = n ? malloc(sizeof(*keep) * (size_t)n) : NULL;
    if (keep || n == 0) {
        if (n)
            memcpy(keep, streams, sizeof(*keep) * (size_t)n);
        free(t->streams);
        t->streams = keep;
        t->n_streams = (size_t)n;
    }
}

/* ---- connections ------------------------------------------------------------ */

static void schedule(struct hc_target *t, enum conn_kind kind);

static void conn_handle_closed(uv_handle_t *h)
{
    struct hc_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->in);
    rtmp_asm_free(&c->as);
    free(c->body);
    lb_tls_mem_free(c->tls);
    free(c);
}

static void finish(struct hc_conn *c, enum hc_result r, const char *detail)
{
    struct hc_target *t = c->t;
    if (c->done)
        return;
    c->done = true;
    if (c->kind == CONN_CHECK) {
        t->check_conn = NULL;
        if (!t->closing) {
            uint64_t took = uv_now(t->e->loop) - c->started_ms;
            lb_histo_observe(&t->e->latency, (double)took / 1000.0);
            atomic_store(&t->live->last_probe_us, took * 1000);
            atomic_store(&t->live->last_probe_at_ms, hc_wall_ms());
            atomic_store(&t->live->last_probe, (int)r + 1);
            check_result(t, r, detail);
        }
    } else {
        t->stats_conn = NULL;
        if (!t->closing)
            stats_result(t, c, r == HC_OK, detail);
    }
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    if (!t->closing)
        schedule(t, c->kind);
}

static void on_timeout(uv_timer_t *tm)
{
    struct hc_conn *c = tm->data;
    char d[128];
    unsigned long long took = (unsigned long long)(uv_now(c->t->e->loop) - c->started_ms);
    /* One deadline for the whole poll, from connect to the last byte: a
     * document trickled a byte at a time fails like a silent node. */
    if (c->kind == CONN_STATS && c->connected)
        snprintf(d, sizeof(d), "no whole response within %llums (%zu body bytes so far)", took,
                 c->body_len);
    else if (c->tls && c->connected && !c->tls_done)
        snprintf(d, sizeof(d), "no TLS handshake within %llums", took);
    else
        snprintf(d, sizeof(d), "no %s within %llums", c->connected ? "answer" : "connection",
                 took);
    finish(c, !c->connected ? HC_L4_TIMEOUT : c->tls && !c->tls_done ? HC_L6_TLS : HC_L7_TIMEOUT,
           d);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hc_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void on_written(uv_write_t *w, int status)
{
    struct hc_conn *c = w->data;
    /* Once connected, a failed write is the peer closing or resetting: what
     * it sent before that, or the read side's error, names the layer (a node
     * that answers garbage and closes is not "refused"); the deadline bounds
     * the rest. */
    if (status < 0 && status != UV_ECANCELED && !c->connected)
        finish(c, HC_L4_REFUSED, uv_strerror(status));
}

/* TLS records on their way to the node: each write owns its bytes. */
struct tls_write {
    uv_write_t w;
    size_t len;
    uint8_t data[];
};

static void on_tls_written(uv_write_t *w, int status)
{
    struct hc_conn *c = w->data;
    free((struct tls_write *)w); /* w is the first member */
    if (status < 0 && status != UV_ECANCELED)
        finish(c, HC_L4_REFUSED, uv_strerror(status));
}

/* Sends what TLS has for the node. */
static void tls_flush(struct hc_conn *c)
{
    uint8_t tmp[16384];
    size_t n;
    while (!c->done && (n = lb_tls_mem_take_out(c->tls, tmp, sizeof(tmp))) > 0) {
        struct tls_write *tw = malloc(sizeof(*tw) + n);
        if (!tw) {
            finish(c, HC_L6_TLS, "out of memory");
            return;
        }
        memcpy(tw->data, tmp, n);
        tw->len = n;
        tw->w.data = c;
        uv_buf_t b = uv_buf_init((char *)tw->data, (unsigned)n);
        int rc = uv_write(&tw->w, (uv_stream_t *)&c->tcp, &b, 1, on_tls_written);
        if (rc < 0) {
            free(tw);
            finish(c, HC_L4_REFUSED, uv_strerror(rc));
            return;
        }
    }
}

static void write_buf(struct hc_conn *c, uv_write_t *w, const void *p, size_t n)
{
    if (c->tls) {
        if (lb_tls_mem_write(c->tls, p, n) < 0)
            finish(c, HC_L6_TLS, "TLS write failed");
        else
            tls_flush(c);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    w->data = c;
    int rc = uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc < 0)
        finish(c, HC_L4_REFUSED, uv_strerror(rc));
}

/* What the origin said when it refused connect: "_error:
 * NetConnection.Connect.Rejected (description)", from the info object. */
static void describe_refusal(const struct rtmp_msg *m, const char *name, char *out, size_t cap)
{
    struct amf_value arena[64];
    struct amf_doc doc = {.v = arena, .cap = 64};
    struct amf_limits lim = {8, 512, 64};
    const struct amf_value *info = NULL, *code = NULL, *desc = NULL;
    if (amf_decode_command(m->data, m->len, m->type == RTMP_MSG_COMMAND_AMF3, &lim, &doc) == 0) {
        for (size_t i = 2; i < doc.n_top && !info; i++) {
            const struct amf_value *v = amf_top(&doc, i);
            if (v && v->type == AMF_OBJECT)
                info = v;
        }
        code = info ? amf_get(&doc, info, "code") : NULL;
        desc = info ? amf_get(&doc, info, "description") : NULL;
    }
    int cl = code && code->type == AMF_STRING ? (int)(code->len < 96 ? code->len : 96) : 1;
    int dl = desc && desc->type == AMF_STRING ? (int)(desc->len < 160 ? desc->len : 160) : 0;
    snprintf(out, cap, "connect answered %s: %.*s%s%.*s%s", name, cl,
             code && code->type == AMF_STRING ? code->str : "-", dl ? " (" : "", dl,
             dl ? desc->str : "", dl ? ")" : "");
}

/* RTMP: after the handshake, read until the answer to connect. */
static void rtmp_input(struct hc_conn *c, const uint8_t *p, size_t n)
{
    if (!c->hs_done) {
        size_t used;
        enum rtmp_hs_result r = rtmp_hs_client_feed(&c->hc, p, n, &used);
        if (r == RTMP_HS_ERROR) {
            finish(c, HC_L6_RTMP_HANDSHAKE, "the server's S0 is not 3");
            return;
        }
        if (r == RTMP_HS_NEED_MORE)
            return;
        c->hs_done = true;
        /* C2, then connect(app) on csid 3 at the default chunk size. */
        uint8_t body[512], *q = body, *end = body + sizeof(body);
        char tc[300];
        snprintf(tc, sizeof(tc), "rtmp://%s/%s", c->t->node, c->t->app);
        q = amf0_put_string(q, end, "connect");
        q = amf0_put_number(q, end, 1);
        q = amf0_put_object_start(q, end);
        q = amf0_put_key(q, end, "app");
        q = amf0_put_string(q, end, c->t->app);
        q = amf0_put_key(q, end, "flashVer");
        q = amf0_put_string(q, end, "rtmplb-health");
        q = amf0_put_key(q, end, "tcUrl");
        q = amf0_put_string(q, end, tc);
        q = amf0_put_object_end(q, end);
        memcpy(c->out, rtmp_hs_client_c2(&c->hc), RTMP_HS_SIZE);
        size_t k = q ? rtmp_chunk_write(c->out + RTMP_HS_SIZE, sizeof(c->out) - RTMP_HS_SIZE, 3,
                                        RTMP_MSG_COMMAND_AMF0, 0, body, (size_t)(q - body), 128)
                     : 0;
        if (!k) {
            finish(c, HC_L7_RTMP_REJECT, "connect command does not fit");
            return;
        }
        write_buf(c, &c->w2, c->out, RTMP_HS_SIZE + k);
        p += used;
        n -= used;
    }
    if (c->in_len + n > RTMP_IN_CAP) {
        finish(c, HC_L7_RTMP_REJECT, "too much data before the answer to connect");
        return;
    }
    if (!c->in && !(c->in = malloc(RTMP_IN_CAP))) {
        finish(c, HC_L7_RTMP_REJECT, "out of memory");
        return;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    size_t pos = 0;
    for (;;) {
        struct rtmp_chunk_ev ev;
        size_t used;
        rtmp_chunk_next(&c->dec, c->in + pos, c->in_len - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_ERROR) {
            finish(c, HC_L7_RTMP_REJECT, ev.error);
            return;
        }
        struct rtmp_msg m;
        const char *why = NULL;
        enum rtmp_asm_result ar = rtmp_asm_feed(&c->as, &ev, 0, &m, &why);
        if (ar == RTMP_ASM_ERROR) {
            finish(c, HC_L7_RTMP_REJECT, why);
            return;
        }
        if (ar != RTMP_ASM_MESSAGE)
            continue;
        uint32_t sz;
        char name[16];
        double tid;
        if (m.type == RTMP_MSG_SET_CHUNK_SIZE) {
            if (rtmp_scs_value(m.data, m.len, &sz) && rtmp_chunk_set_size(&c->dec, sz) < 0) {
                finish(c, HC_L7_RTMP_REJECT, "Set Chunk Size out of bounds");
                return;
            }
        } else if (rtmp_peek_name_tid(m.data, m.len, false, name, sizeof(name), &tid) >= 0 &&
                   tid == 1.0) {
            bool ok = strcmp(name, "_result") == 0 &&
                      memmem(m.data, m.len, "NetConnection.Connect.Success", 29);
            char refusal[320];
            if (!ok)
                describe_refusal(&m, name, refusal, sizeof(refusal));
            finish(c, ok ? HC_OK : HC_L7_RTMP_REJECT, ok ? "connect accepted" : refusal);
            return;
        }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static int on_http_body(llhttp_t *p, const char *at, size_t len)
{
    struct hc_conn *c = p->data;
    if (c->kind != CONN_STATS)
        return 0;
    if (c->body_len + len > BODY_CAP) {
        snprintf(c->why_buf, sizeof(c->why_buf), "body over %u bytes", BODY_CAP);
        c->why = c->why_buf;
        return -1;
    }
    if (c->body_len + len + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : 65536;
        while (cap < c->body_len + len + 1)
            cap *= 2;
        if (cap > BODY_CAP + 1)
            cap = BODY_CAP + 1;
        char *b = realloc(c->body, cap);
        if (!b)
            return -1;
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

/* A declared length over the cap fails at once, before any of it is read. */
static int on_http_headers(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    if (c->kind == CONN_STATS && (p->flags & F_CONTENT_LENGTH) && p->content_length > BODY_CAP) {
        snprintf(c->why_buf, sizeof(c->why_buf), "Content-Length %llu over %u bytes",
                 (unsigned long long)p->content_length, BODY_CAP);
        c->why = c->why_buf;
        return -1;
    }
    return 0;
}

static int on_http_complete(llhttp_t *p)
{
    struct hc_conn *c = p->data;
    c->complete = true;
    return HPE_PAUSED;
}

static void http_done(struct hc_conn *c)
{
    char d[64];
    int status = c->parser.status_code;
    snprintf(d, sizeof(d), "HTTP %d", status);
    finish(c, status >= 200 && status < 300 ? HC_OK : HC_L7_HTTP_STATUS, d);
}

static void plain_input(struct hc_conn *c, const uint8_t *p, size_t n);
static void send_request(struct hc_conn *c);

/* TLS: ciphertext in; the handshake, then plaintext to the probe. */
static void tls_input(struct hc_conn *c, const uint8_t *p, size_t n)
{
    char why[200];
    enum lb_tls_result res;
    if (lb_tls_mem_feed(c->tls, p, n) < 0) {
        finish(c, HC_L6_TLS, "out of memory");
        return;
    }
    if (!c->tls_done) {
        int rc = lb_tls_mem_handshake(c->tls, &res, why, sizeof(why));
        tls_flush(c);
        if (c->done || rc == -EAGAIN)
            return;
        if (rc < 0) {
            finish(c, HC_L6_TLS, why);
            return;
        }
        c->tls_done = true;
        send_request(c);
    }
    uint8_t tmp[16384];
    for (int i = 0; i < 64 && !c->done; i++) {
        ssize_t k = lb_tls_mem_read(c->tls, tmp, sizeof(tmp));
        tls_flush(c); /* a read may answer (TLS 1.3 key update) */
        if (k == -EAGAIN || c->done)
            return;
        if (k <= 0) {
            finish(c, c->hs_done ? HC_L7_RTMP_REJECT : HC_L6_RTMP_HANDSHAKE,
                   k == 0 ? "closed (TLS close_notify)" : "TLS error");
            return;
        }
        plain_input(c, tmp, (size_t)k);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct hc_conn *c = s->data;
    if (c->done)
        return;
    if (n < 0 && c->tls && !c->tls_done) {
        finish(c, HC_L6_TLS, "closed during the TLS handshake");
        return;
    }
    if (n < 0) {
        if (c->type == CONF_HC_HTTP) {
            if (!c->complete && llhttp_finish(&c->parser) == HPE_OK && c->complete)
                http_done(c);
            else if (!c->complete)
                finish(c, HC_L7_HTTP_PROTOCOL, "connection closed before a whole response");
            else
                http_done(c);
        } else {
            finish(c, c->hs_done ? HC_L7_RTMP_REJECT : HC_L6_RTMP_HANDSHAKE,
                   c->hs_done ? "closed before answering connect" : "closed during the handshake");
        }
        return;
    }
    if (n == 0)
        return;
    if (c->tls)
        tls_input(c, (const uint8_t *)buf->base, (size_t)n);
    else
        plain_input(c, (const uint8_t *)buf->base, (size_t)n);
}

static void plain_input(struct hc_conn *c, const uint8_t *p, size_t n)
{
    if (c->type == CONF_HC_RTMP) {
        rtmp_input(c, p, n);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, (const char *)p, n);
    if (c->complete) {
        http_done(c);
        return;
    }
    if (e != HPE_OK) {
        char d[160];
        snprintf(d, sizeof(d), "%s: %s", llhttp_errno_name(e),
                 c->why                               ? c->why
                 : llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                       : "?");
        finish(c, HC_L7_HTTP_PROTOCOL, d);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hc_conn *c = req->data;
    if (c->done)
        return;
    if (status < 0) {
        finish(c, status == UV_ETIMEDOUT ? HC_L4_TIMEOUT : HC_L4_REFUSED, uv_strerror(status));
        return;
    }
    c->connected = true;
    if (c->kind == CONN_CHECK && c->t->tls) {
        /* An RTMPS node: the TLS handshake first (a tcp check ends there). */
        c->tls = lb_tls_mem_new(c->t->tls);
        if (!c->tls) {
            finish(c, HC_L6_TLS, "out of memory");
            return;
        }
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        tls_input(c, NULL, 0);
        return;
    }
    if (c->type == CONF_HC_TCP) {
        finish(c, HC_OK, "connected");
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    send_request(c);
}

/* Connected (and TLS done): what the probe sends first. */
static void send_request(struct hc_conn *c)
{
    if (c->type == CONF_HC_TCP) {
        finish(c, HC_OK, c->tls ? "TLS handshake done" : "connected");
        return;
    }
    if (c->type == CONF_HC_RTMP) {
        rtmp_hs_client_init(&c->hc, NULL);
        write_buf(c, &c->w1, c->hc.c0c1, sizeof(c->hc.c0c1));
        return;
    }
    struct hc_target *t = c->t;
    const char *path = c->kind == CONN_STATS ? t->spath : t->url;
    int k = snprintf((char *)c->out, sizeof(c->out),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: rtmplb-health\r\n"
                     "Connection: close\r\n\r\n",
                     path, t->shost ? t->shost : "localhost");
    if (k <= 0 || (size_t)k >= sizeof(c->out)) {
        finish(c, HC_L7_HTTP_PROTOCOL, "request too long");
        return;
    }
    write_buf(c, &c->w1, c->out, (size_t)k);
}

static void start_conn(struct hc_target *t, enum conn_kind kind)
{
    struct hc_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        schedule(t, kind);
        return;
    }
    c->t = t;
    c->kind = kind;
    c->type = kind == CONN_STATS ? CONF_HC_HTTP : t->type;
    c->started_ms = uv_now(t->e->loop);
    uv_tcp_init(t->e->loop, &c->tcp);
    uv_timer_init(t->e->loop, &c->timer);
    c->tcp.data = c->timer.data = c->creq.data = c;
    c->open_handles = 2;
    struct rtmp_chunk_limits lim = {1 << 24, 1 << 24, 65599};
    rtmp_chunk_init(&c->dec, &lim, 0);
    /* The answer to connect and Set Chunk Size, whole; 64 KiB at most. */
    rtmp_asm_init(&c->as,
                  RTMP_TYPE_BIT(RTMP_MSG_COMMAND_AMF0) | RTMP_TYPE_BIT(RTMP_MSG_SET_CHUNK_SIZE),
                  1u << 16, false);
    llhttp_settings_init(&c->settings);
    c->settings.on_body = on_http_body;
    c->settings.on_headers_complete = on_http_headers;
    c->settings.on_message_complete = on_http_complete;
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
    c->parser.data = c;
    if (kind == CONN_CHECK)
        t->check_conn = c;
    else
        t->stats_conn = c;
    uv_timer_start(&c->timer, on_timeout, t->p.timeout_ms ? t->p.timeout_ms : 1000, 0);
    const struct sockaddr *sa =
        (const struct sockaddr *)(kind == CONN_STATS || t->type == CONF_HC_HTTP ? &t->saddr
                                                                                : &t->addr);
    int rc = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
    if (rc < 0)
        finish(c, HC_L4_REFUSED, uv_strerror(rc));
}

static void on_check_timer(uv_timer_t *tm) { start_conn(tm->data, CONN_CHECK); }
static void on_stats_timer(uv_timer_t *tm) { start_conn(tm->data, CONN_STATS); }

static void schedule(struct hc_target *t, enum conn_kind kind)
{
    if (t->closing)
        return;
    if (kind == CONN_CHECK)
        uv_timer_start(&t->check_timer, on_check_timer, hc_next_delay(&t->p, rnd01(t->e)), 0);
    else
        uv_timer_start(&t->stats_timer, on_stats_timer, t->stats_interval_ms, 0);
}

/* ---- targets and the engine ----------------------------------------------------- */

/* A target's own memory (a spec that never started, or the end of one). */
static void free_spec(struct hc_target *t)
{
    ups_node_live_unref(t->live);
    lb_tls_set_unref(t->tls_set);
    free(t->streams);
    free(t->pool);
    free(t->node);
    free(t->app);
    free(t->url);
    free(t->spath);
    free(t->shost);
    free(t);
}

static void free_target(struct hc_target *t)
{
    struct hc_engine *e = t->e;
    free_spec(t);
    if (--e->open == 0 && e->closing) {
        void (*cb)(void *) = e->on_closed;
        void *arg = e->arg;
        free(e);
        if (cb)
            cb(arg);
    }
}

static void target_handle_closed(uv_handle_t *h)
{
    struct hc_target *t = h->data;
    if (--t->open_handles == 0)
        free_target(t);
}

static void close_target(struct hc_target *t)
{
    t->closing = true;
    if (t->check_conn)
        finish(t->check_conn, HC_OK, "stopping");
    if (t->stats_conn)
        finish(t->stats_conn, HC_OK, "stopping");
    uv_close((uv_handle_t *)&t->check_timer, target_handle_closed);
    uv_close((uv_handle_t *)&t->stats_timer, target_handle_closed);
}

struct hc_engine *hc_engine_new(uv_loop_t *loop, struct hc_index *index)
{
    struct hc_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->loop = loop;
    e->index = index;
    e->seed = uv_hrtime() | 1;
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
    lb_histo_init(&e->latency, bounds, sizeof(bounds) / sizeof(bounds[0]));
    return e;
}

/* The target a config asks for (no handles yet). */
static struct hc_target *target_spec(struct hc_engine *e, const struct conf_pool *cp,
                                     const struct conf_node *cn, struct ups_node *un)
{
    struct hc_target *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->e = e;
    t->pool = strdup(cp->name);
    t->node = strdup(cn->name);
    t->live = ups_node_live_ref(un->live);
    memcpy(&t->addr, &cn->address.ss, cn->address.len);
    t->check = cp->health.present;
    t->type = cp->health.type;
    t->app = strdup(cp->health.app ? cp->health.app : "live");
    t->url = strdup(cp->health.url ? cp->health.url : "/");
    t->p.interval_ms = (uint64_t)cp->health.interval_ms;
    t->p.jitter_ms = cp->health.jitter_ms > 0 ? (uint64_t)cp->health.jitter_ms : 0;
    t->p.timeout_ms = (uint64_t)cp->health.timeout_ms;
    t->p.rise = (unsigned)cp->health.rise;
    t->p.fall = (unsigned)cp->health.fall;
    t->stats = cn->stats.present;
    t->stats_kind = cn->stats.kind;
    if (cn->stats.present) {
        memcpy(&t->saddr, &cn->stats.addr.ss, cn->stats.addr.len);
        t->spath = strdup(cn->stats.path);
        t->shost = strdup(cn->stats.host);
    }
    t->stats_interval_ms = cp->health.present ? t->p.interval_ms : 2000;
    return t;
}

static void target_tls(struct hc_target *t, struct ups_snapshot *snap, const struct ups_node *un)
{
    if (!un->tls || !snap->tls)
        return;
    t->tls_set = lb_tls_set_ref(snap->tls);
    t->tls = un->tls;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Same node, same probes: the running target can go on as it is. */
static bool same_target(const struct hc_target *a, const struct hc_target *b)
{
    return a->live == b->live && a->tls == b->tls && str_eq(a->pool, b->pool) && str_eq(a->node, b->node) &&
           memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0 && a->check == b->check &&
           a->type == b->type && str_eq(a->app, b->app) && str_eq(a->url, b->url) &&
           a->p.interval_ms == b->p.interval_ms && a->p.jitter_ms == b->p.jitter_ms &&
           a->p.timeout_ms == b->p.timeout_ms && a->p.rise == b->p.rise &&
           a->p.fall == b->p.fall && a->stats == b->stats && a->stats_kind == b->stats_kind &&
           memcmp(&a->saddr, &b->saddr, sizeof(a->saddr)) == 0 && str_eq(a->spath, b->spath) &&
           str_eq(a->shost, b->shost) && a->stats_interval_ms == b->stats_interval_ms;
}

static void start_target(struct hc_engine *e, struct hc_target *t)
{
    /* Continue from the shared state: a reload keeps a down node down. */
    t->st.up = atomic_load(&t->live->health) == UPS_UP;
    t->st.since_ms = uv_now(e->loop);
    uv_timer_init(e->loop, &t->check_timer);
    uv_timer_init(e->loop, &t->stats_timer);
    t->check_timer.data = t->stats_timer.data = t;
    t->open_handles = 2;
    e->open++;
    if (t->check) /* first probe soon, spread over the jitter */
        uv_timer_start(&t->check_timer, on_check_timer,
                       1 + (uint64_t)(rnd01(e) * (double)(t->p.jitter_ms + 50)), 0);
    if (t->stats)
        uv_timer_start(&t->stats_timer, on_stats_timer, 1 + (uint64_t)(rnd01(e) * 100), 0);
}

void hc_engine_apply(struct hc_engine *e, const struct conf *c, struct ups_snapshot *snap)
{
    struct hc_target *old = e->targets;
    e->targets = NULL;
    for (size_t p = 0; p < c->n_pools && p < snap->n_pools; p++) {
        const struct conf_pool *cp = &c->pools[p];
        struct ups_pool *pool = &snap->pools[p];
        for (size_t i = 0; i < cp->n_nodes && i < pool->n_nodes; i++) {
            const struct conf_node *cn = &cp->nodes[i];
            if (!cp->health.present && !cn->stats.present)
                continue;
            struct hc_target *t = target_spec(e, cp, cn, &pool->nodes[i]);
            if (!t)
                continue;
            target_tls(t, snap, &pool->nodes[i]);
            /* A node whose probes did not change keeps its target: its
             * rise/fall progress and the probe in flight go on. */
            struct hc_target **pp = &old;
            while (*pp && !same_target(*pp, t))
                pp = &(*pp)->next;
            if (*pp) {
                struct hc_target *keep = *pp;
                *pp = keep->next;
                free_spec(t);
                t = keep;
            } else {
                start_target(e, t);
            }
            t->next = e->targets;
            e->targets = t;
        }
    }
    for (struct hc_target *t = old, *n; t; t = n) {
        n = t->next;
        /* What its stats said goes unless a new target polls them again. */
        bool polled = false;
        for (struct hc_target *k = e->targets; k; k = k->next)
            if (k->stats && strcmp(k->pool, t->pool) == 0 && strcmp(k->node, t->node) == 0)
                polled = true;
        if (t->stats && !polled)
            hc_index_clear_node(e->index, t->pool, t->node);
        close_target(t);
    }
}

void hc_engine_each_probe(struct hc_engine *e, hc_probe_cb cb, void *arg)
{
    for (struct hc_target *t = e->targets; t; t = t->next)
        if (t->check)
            cb(arg, t->pool, t->node, t->results, HC_RESULT__COUNT);
}

struct lb_histo *hc_engine_latency(struct hc_engine *e) { return &e->latency; }

void hc_engine_each_stream(struct hc_engine *e, hc_stream_cb cb, void *arg)
{
    for (struct hc_target *t = e->targets; t; t = t->next)
        for (size_t i = 0; t->stats && !t->stats_failing && i < t->n_streams; i++)
            cb(arg, t->pool, t->node, &t->streams[i]);
}

void hc_engine_close(struct hc_engine *e, void (*on_closed)(void *), void *arg)
{
    e->closing = true;
    e->on_closed = on_closed;
    e->arg = arg;
    struct hc_target *t = e->targets;
    e->targets = NULL;
    if (e->open == 0) {
        free(e);
        if (on_closed)
            on_closed(arg);
        return;
    }
    for (struct hc_target *n; t; t = n) {
        n = t->next;
        close_target(t);
    }
}
