/* RTMP commands: reading connect/createStream/publish/play, writing the
 * front door's replies. */
#include "lb/rtmp/command.h"
#include "lb/rtmp/bytes.h"
#include "lb/rtmp/chunk.h"

#include <stdio.h>
#include <string.h>

static int copy_str(const struct amf_value *v, char *out, size_t cap, const char **why)
{
    if (!v || v->type != AMF_STRING) {
        out[0] = '\0';
        return 0;
    }
    if (v->len >= cap) {
        *why = "name or URL too long";
        return -1;
    }
    memcpy(out, v->str, v->len);
    out[v->len] = '\0';
    if (strlen(out) != v->len) {
        *why = "NUL byte in a name";
        return -1;
    }
    return 0;
}

/* The query after '?' in s, into out ("" if none); s is left as is. */
static void query_of(const char *s, char *out, size_t cap)
{
    const char *q = strchr(s, '?');
    snprintf(out, cap, "%s", q ? q + 1 : "");
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* In place; a malformed escape, or one that decodes to NUL, stays as sent. */
static void pct_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 &&
            (hi | lo) != 0) {
            *w++ = (char)(hi << 4 | lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

size_t rtmp_args_split(char *query, struct rtmp_arg *out, size_t cap)
{
    size_t n = 0;
    char *p = query;
    while (p && *p && n < cap) {
        char *amp = strchr(p, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq)
            *eq = '\0';
        char *val = eq ? eq + 1 : p + strlen(p);
        pct_decode(p);
        pct_decode(val);
        if (*p)
            out[n++] = (struct rtmp_arg){p, val};
        p = amp ? amp + 1 : NULL;
    }
    return n;
}

void rtmp_normalise_stream(char *s)
{
    char *q = strchr(s, '?');
    if (q)
        *q = '\0';
}

void rtmp_normalise_app(char *app)
{
    char *q = strchr(app, '?');
    if (q)
        *q = '\0';
    size_t n = strlen(app);
    while (n > 0 && app[n - 1] == '/')
        app[--n] = '\0';
    static const char definst[] = "/_definst_";
    size_t d = sizeof(definst) - 1;
    if (n >= d && strcmp(app + n - d, definst) == 0)
        app[n - d] = '\0';
    n = strlen(app);
    while (n > 0 && app[n - 1] == '/')
        app[--n] = '\0';
}

void rtmp_app_from_tcurl(const char *tc_url, char *app, size_t cap)
{
    const char *p = strstr(tc_url, "://");
    app[0] = '\0';
    if (!p)
        return;
    p = strchr(p + 3, '/');
    if (!p)
        return;
    snprintf(app, cap, "%s", p + 1);
    rtmp_normalise_app(app);
}

/* ---- Enhanced RTMP capabilities ------------------------------------------ */

bool rtmp_caps_any(const struct rtmp_caps *c)
{
    return c->list.present || c->video.present || c->audio.present || c->has_caps_ex;
}

static void fourcc_take(struct rtmp_fourccs *f, const char *s, uint32_t len)
{
    if (f->n == RTMP_FOURCC_MAX || !s || !(len == 4 || (len == 1 && s[0] == '*')) ||
        memchr(s, '\0', len))
        return;
    for (size_t i = 0; i < f->n; i++)
        if (strlen(f->cc[i]) == len && memcmp(f->cc[i], s, len) == 0)
            return; /* listed twice: once is enough */
    memcpy(f->cc[f->n], s, len);
    f->cc[f->n][len] = '\0';
    f->n++;
}

/* The keys of an info map: an object (what the spec asks for) or an ECMA
 * array (what it says readers must take too), each with a number. */
static void info_map(const struct amf_doc *doc, const struct amf_value *m, struct rtmp_fourccs *f)
{
    if (!m || (m->type != AMF_OBJECT && m->type != AMF_ARRAY))
        return;
    f->present = true;
    for (int32_t i = m->first; i >= 0; i = doc->v[i].next) {
        const struct amf_value *v = &doc->v[i];
        if (v->key && (v->type == AMF_NUMBER || v->type == AMF_INTEGER))
            fourcc_take(f, v->key, v->key_len);
    }
}

static void caps_parse(const struct amf_doc *doc, const struct amf_value *obj, struct rtmp_caps *c)
{
    const struct amf_value *l = amf_get(doc, obj, "fourCcList");
    if (l && l->type == AMF_ARRAY) {
        c->list.present = true;
        for (int32_t i = l->first; i >= 0; i = doc->v[i].next)
            if (doc->v[i].type == AMF_STRING)
                fourcc_take(&c->list, doc->v[i].str, doc->v[i].len);
    }
    info_map(doc, amf_get(doc, obj, "videoFourCcInfoMap"), &c->video);
    info_map(doc, amf_get(doc, obj, "audioFourCcInfoMap"), &c->audio);
    const struct amf_value *x = amf_get(doc, obj, "capsEx");
    if (x && (x->type == AMF_NUMBER || x->type == AMF_INTEGER) && x->num >= 0 &&
        x->num <= 4294967295.0) {
        c->has_caps_ex = true;
        c->caps_ex = (uint32_t)x->num;
    }
}

int rtmp_cmd_parse(const uint8_t *body, size_t len, bool amf3, const struct amf_limits *lim,
                   struct rtmp_cmd *out, const char **why)
{
    struct amf_value arena[128];
    struct amf_doc doc = {.v = arena, .cap = 128};

    memset(out, 0, sizeof(*out));
    if (amf_decode_command(body, len, amf3, lim, &doc) < 0) {
        *why = doc.error;
        return -1;
    }
    const struct amf_value *name = amf_top(&doc, 0), *tid = amf_top(&doc, 1);
    if (!name || name->type != AMF_STRING) {
        out->kind = RTMP_CMD_OTHER;
        return 0;
    }
    if (tid && (tid->type == AMF_NUMBER || tid->type == AMF_INTEGER))
        out->tid = tid->num;

    if (amf_str_eq(name, "connect")) {
        const struct amf_value *obj = amf_top(&doc, 2);
        out->kind = RTMP_CMD_CONNECT;
        if (copy_str(amf_get(&doc, obj, "app"), out->app, sizeof(out->app), why) < 0 ||
            copy_str(amf_get(&doc, obj, "tcUrl"), out->tc_url, sizeof(out->tc_url), why) < 0)
            return -1;
        const struct amf_value *enc = amf_get(&doc, obj, "objectEncoding");
        out->object_encoding = enc && (enc->type == AMF_NUMBER || enc->type == AMF_INTEGER) &&
                                       enc->num == 3.0
                                   ? 3
                                   : 0;
        caps_parse(&doc, obj, &out->caps);
        if (!out->app[0])
            rtmp_app_from_tcurl(out->tc_url, out->app, sizeof(out->app));
        query_of(out->tc_url, out->tc_args, sizeof(out->tc_args));
        if (!out->tc_args[0])
            query_of(out->app, out->tc_args, sizeof(out->tc_args));
        rtmp_normalise_app(out->app);
    } else if (amf_str_eq(name, "createStream")) {
        out->kind = RTMP_CMD_CREATE_STREAM;
    } else if (amf_str_eq(name, "publish") || amf_str_eq(name, "play")) {
        out->kind = amf_str_eq(name, "publish") ? RTMP_CMD_PUBLISH : RTMP_CMD_PLAY;
        if (copy_str(amf_top(&doc, 3), out->stream, sizeof(out->stream), why) < 0)
            return -1;
        query_of(out->stream, out->stream_args, sizeof(out->stream_args));
        rtmp_normalise_stream(out->stream);
    } else {
        out->kind = RTMP_CMD_OTHER;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------ */

/* A reply that must stay one 128-byte chunk (sent before the upstream's
 * Set Chunk Size could reach the client). */
static size_t finish(uint8_t *out, size_t cap, uint32_t csid, uint8_t type, uint32_t msid,
                     const uint8_t *body, const uint8_t *end_of_body)
{
    if (!end_of_body)
        return 0;
    return rtmp_chunk_write_fmt0(out, cap, csid, type, msid, body, (size_t)(end_of_body - body));
}

/* The E-RTMP properties a forwarding server can promise (see command.h). */
static uint8_t *put_caps(uint8_t *p, const uint8_t *end, const struct rtmp_caps *c)
{
    if (c->list.present) {
        p = amf0_put_key(p, end, "fourCcList");
        p = amf0_put_strict_array(p, end, c->list.n);
        for (size_t i = 0; i < c->list.n; i++)
            p = amf0_put_string(p, end, c->list.cc[i]);
    }
    const struct {
        const char *key;
        const struct rtmp_fourccs *f;
    } maps[] = {{"videoFourCcInfoMap", &c->video}, {"audioFourCcInfoMap", &c->audio}};
    for (size_t m = 0; m < 2; m++) {
        if (!maps[m].f->present)
            continue;
        p = amf0_put_key(p, end, maps[m].key);
        p = amf0_put_object_start(p, end);
        for (size_t i = 0; i < maps[m].f->n; i++) {
            p = amf0_put_key(p, end, maps[m].f->cc[i]);
            p = amf0_put_number(p, end, RTMP_FOURCC_CAN_FORWARD);
        }
        p = amf0_put_object_end(p, end);
    }
    if (c->has_caps_ex) {
        p = amf0_put_key(p, end, "capsEx");
        p = amf0_put_number(p, end, c->caps_ex & RTMP_CAPS_EX_KNOWN);
    }
    return p;
}

size_t rtmp_reply_connect(uint8_t *out, size_t cap, double tid, int object_encoding,
                          const struct rtmp_caps *caps)
{
    /* Window Ack Size and Set Peer Bandwidth first, as servers do; no Set
     * Chunk Size: the upstream's own one must reach the client where the
     * upstream starts using it. Each message fits one 128-byte chunk,
     * except an _result that echoes E-RTMP capabilities (chunked at 128). */
    uint8_t was[4] = {0x00, 0x26, 0x25, 0xa0}; /* 2500000 */
    uint8_t spb[5] = {0x00, 0x26, 0x25, 0xa0, 2};
    uint8_t body[RTMP_REPLY_CONNECT_MAX], *p = body, *end = body + sizeof(body);
    size_t n = 0, k;
    bool ex = caps && rtmp_caps_any(caps);

    if (!(k = rtmp_chunk_write_fmt0(out, cap, 2, RTMP_MSG_WIN_ACK_SIZE, 0, was, 4)))
        return 0;
    n += k;
    if (!(k = rtmp_chunk_write_fmt0(out + n, cap - n, 2, RTMP_MSG_SET_PEER_BW, 0, spb, 5)))
        return 0;
    n += k;
    p = amf0_put_string(p, end, "_result");
    p = amf0_put_number(p, end, tid);
    if (object_encoding == 3) {
        if (ex) {
            p = amf0_put_object_start(p, end);
            p = put_caps(p, end, caps);
            p = amf0_put_object_end(p, end);
        } else {
            p = amf0_put_null(p, end);
        }
        p = amf0_put_object_start(p, end);
        p = amf0_put_key(p, end, "level");
        p = amf0_put_string(p, end, "status");
        p = amf0_put_key(p, end, "code");
        p = amf0_put_string(p, end, "NetConnection.Connect.Success");
        p = amf0_put_key(p, end, "objectEncoding");
        p = amf0_put_number(p, end, 3);
        p = amf0_put_object_end(p, end);
    } else {
        p = amf0_put_object_start(p, end);
        p = amf0_put_key(p, end, "fmsVer");
        p = amf0_put_string(p, end, "FMS/3,0,1,123");
        p = amf0_put_key(p, end, "capabilities");
        p = amf0_put_number(p, end, 31);
        if (ex)
            p = put_caps(p, end, caps);
        p = amf0_put_object_end(p, end);
        p = amf0_put_object_start(p, end);
        p = amf0_put_key(p, end, "level");
        p = amf0_put_string(p, end, "status");
        p = amf0_put_key(p, end, "code");
        p = amf0_put_string(p, end, "NetConnection.Connect.Success");
        p = amf0_put_object_end(p, end);
    }
    if (!p)
        return 0;
    if (ex)
        k = rtmp_chunk_write(out + n, cap - n, 3, RTMP_MSG_COMMAND_AMF0, 0, body,
                             (size_t)(p - body), RTMP_DEFAULT_CHUNK_SIZE);
    else if (!(k = finish(out + n, cap - n, 3, RTMP_MSG_COMMAND_AMF0, 0, body, p)))
        return 0;
    return k ? n + k : 0;
}

size_t rtmp_reply_create_stream(uint8_t *out, size_t cap, double tid, double stream_id)
{
    uint8_t body[64], *p = body, *end = body + sizeof(body);
    p = amf0_put_string(p, end, "_result");
    p = amf0_put_number(p, end, tid);
    p = amf0_put_null(p, end);
    p = amf0_put_number(p, end, stream_id);
    return finish(out, cap, 3, RTMP_MSG_COMMAND_AMF0, 0, body, p);
}

static size_t error_object(uint8_t *body, size_t cap, const char *code, const char *desc,
                           const uint8_t *prefix, size_t prefix_len, uint8_t **endp)
{
    uint8_t *p = body, *end = body + cap;
    char d[RTMP_DESC_MAX + 1];
    snprintf(d, sizeof(d), "%s", desc);
    if (prefix_len > cap)
        return 0;
    memcpy(p, prefix, prefix_len);
    p += prefix_len;
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "level");
    p = amf0_put_string(p, end, "error");
    p = amf0_put_key(p, end, "code");
    p = amf0_put_string(p, end, code);
    p = amf0_put_key(p, end, "description");
    p = amf0_put_string(p, end, d);
    p = amf0_put_object_end(p, end);
    *endp = p;
    return p ? (size_t)(p - body) : 0;
}

size_t rtmp_reply_connect_rejected(uint8_t *out, size_t cap, double tid, const char *desc,
                                   uint32_t chunk_size)
{
    uint8_t head[32], *h = head, body[512], *endp;
    h = amf0_put_string(h, head + sizeof(head), "_error");
    h = amf0_put_number(h, head + sizeof(head), tid);
    h = amf0_put_null(h, head + sizeof(head));
    size_t n = error_object(body, sizeof(body), "NetConnection.Connect.Rejected", desc, head,
                            (size_t)(h - head), &endp);
    return n ? rtmp_chunk_write(out, cap, 3, RTMP_MSG_COMMAND_AMF0, 0, body, n, chunk_size) : 0;
}

size_t rtmp_reply_status_error(uint8_t *out, size_t cap, const char *code, const char *desc,
                               uint32_t chunk_size)
{
    uint8_t head[32], *h = head, body[512], *endp;
    h = amf0_put_string(h, head + sizeof(head), "onStatus");
    h = amf0_put_number(h, head + sizeof(head), 0);
    h = amf0_put_null(h, head + sizeof(head));
    size_t n = error_object(body, sizeof(body), code, desc, head, (size_t)(h - head), &endp);
    return n ? rtmp_chunk_write(out, cap, 5, RTMP_MSG_COMMAND_AMF0, 1, body, n, chunk_size) : 0;
}

long rtmp_peek_name_tid(const uint8_t *body, size_t len, bool amf3, char *name, size_t name_cap,
                        double *tid)
{
    size_t pos = 0;
    if (amf3) {
        if (len < 1 || body[0] != 0x00)
            return -1;
        pos = 1;
    }
    if (len < pos + 3 || body[pos] != 0x02)
        return -1;
    size_t n = (size_t)body[pos + 1] << 8 | body[pos + 2];
    pos += 3;
    if (n >= name_cap || len < pos + n + 9 || body[pos + n] != 0x00)
        return -1;
    memcpy(name, body + pos, n);
    name[n] = '\0';
    pos += n + 1;
    *tid = rtmp_get_be_double(body + pos);
    return (long)pos;
}
