/* A viewer's request (http_req.h): llhttp in request mode, keeping only
 * what routing needs (method, URL, X-Forwarded-For, keep-alive); the
 * bytes themselves stay in the phase's buffer for the verbatim replay. */
#include "lb/front/http_req.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define P(llh) ((struct lb_httpreq *)(llh)->data)

static int refuse(struct lb_httpreq *p, int status, const char *why)
{
    p->status = status;
    p->why = why;
    return HPE_USER;
}

/* Request line and header bytes count against max_header. */
static int count(struct lb_httpreq *p, size_t n)
{
    p->started = true;
    p->header_bytes += n;
    return p->header_bytes > p->max_header ? refuse(p, 431, "request header fields too large")
                                           : 0;
}

static int on_message_begin(llhttp_t *llh)
{
    P(llh)->started = true;
    return 0;
}

static int on_url(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_httpreq *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    if (p->url_len + n > LB_HTTPREQ_MAX_URL)
        return refuse(p, 414, "URI too long");
    memcpy(p->url + p->url_len, at, n);
    p->url_len += n;
    p->url[p->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_httpreq *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    if (p->field_len + n >= sizeof(p->field))
        p->field_long = true;
    else {
        memcpy(p->field + p->field_len, at, n);
        p->field_len += n;
        p->field[p->field_len] = '\0';
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *llh)
{
    struct lb_httpreq *p = P(llh);
    p->which = !p->field_long && strcasecmp(p->field, "x-forwarded-for") == 0 ? 1 : 0;
    if (p->which == 1 && p->xff_len && !p->xff_long) { /* a second header: one list */
        if (p->xff_len + 2 > LB_HTTPREQ_MAX_XFF)
            p->xff_long = true;
        else {
            memcpy(p->xff + p->xff_len, ", ", 2);
            p->xff_len += 2;
            p->xff[p->xff_len] = '\0';
        }
    }
    p->field_len = 0;
    p->field_long = false;
    return 0;
}

static int on_header_value(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_httpreq *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    if (p->which == 1 && !p->xff_long) {
        if (p->xff_len + n > LB_HTTPREQ_MAX_XFF)
            p->xff_long = true;
        else {
            memcpy(p->xff + p->xff_len, at, n);
            p->xff_len += n;
            p->xff[p->xff_len] = '\0';
        }
    }
    return 0;
}

static int on_headers_complete(llhttp_t *llh)
{
    struct lb_httpreq *p = P(llh);
    int m = llhttp_get_method(llh);
    p->method = m;
    p->major = llhttp_get_http_major(llh);
    p->minor = llhttp_get_http_minor(llh);
    p->keep_alive = llhttp_should_keep_alive(llh) != 0;
    if (m != HTTP_GET && m != HTTP_HEAD)
        return refuse(p, 405, "only GET and HEAD are served");
    /* Viewers send no body; one would have to be relayed past routing. */
    if ((llh->flags & F_CHUNKED) || ((llh->flags & F_CONTENT_LENGTH) && llh->content_length))
        return refuse(p, 413, "a request body is not accepted");
    if (llh->upgrade)
        return refuse(p, 400, "protocol upgrades are not relayed");
    if (p->url_len == 0 || p->url[0] != '/')
        return refuse(p, 400, "the request target must be an absolute path");
    return 0;
}

static int on_message_complete(llhttp_t *llh)
{
    return HPE_PAUSED; /* one request at a time: the caller replays it */
}

void lb_httpreq_init(struct lb_httpreq *p, uint32_t max_header)
{
    memset(p, 0, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_url = on_url;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_field_complete = on_header_field_complete;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->llh, HTTP_REQUEST, &p->settings);
    p->llh.data = p;
    p->max_header = max_header;
}

void lb_httpreq_next(struct lb_httpreq *p)
{
    if (llhttp_get_errno(&p->llh) == HPE_PAUSED)
        llhttp_resume(&p->llh);
    p->header_bytes = 0;
    p->started = false;
    p->which = 0;
    p->field_len = 0;
    p->field_long = false;
    p->url_len = 0;
    p->url[0] = '\0';
    p->xff_len = 0;
    p->xff[0] = '\0';
    p->xff_long = false;
    p->keep_alive = false;
    p->method = -1;
}

enum lb_httpreq_res lb_httpreq_feed(struct lb_httpreq *p, const char *data, size_t len,
                                    size_t *used)
{
    *used = 0;
    if (p->status)
        return LB_HTTPREQ_ERROR;
    llhttp_errno_t e = llhttp_execute(&p->llh, data, len);
    if (e == HPE_OK) {
        *used = len;
        /* Header bytes llhttp holds between callbacks count too: a single
         * endless header name arrives in pieces, each counted. */
        return LB_HTTPREQ_NEED_MORE;
    }
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&p->llh);
        *used = pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
        return LB_HTTPREQ_DONE;
    }
    if (!p->status) {
        p->status = 400;
        p->why = "malformed request";
    }
    return LB_HTTPREQ_ERROR;
}

/* ---- X-Forwarded-For ------------------------------------------------- */

bool lb_httpreq_xff_last(const char *xff, char *out, size_t cap)
{
    const char *comma = strrchr(xff, ',');
    const char *b = comma ? comma + 1 : xff;
    while (*b == ' ' || *b == '\t')
        b++;
    size_t n = strlen(b);
    while (n && (b[n - 1] == ' ' || b[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap || n >= INET6_ADDRSTRLEN)
        return false;
    memcpy(out, b, n);
    out[n] = '\0';
    unsigned char bin[16];
    return inet_pton(AF_INET, out, bin) == 1 || inet_pton(AF_INET6, out, bin) == 1;
}

/* ---- path patterns --------------------------------------------------- */

const char *const lb_http_default_paths[] = {
    "/{app}/{stream}.flv",       "/{app}/{stream}.m3u8",      "/{app}/{stream}-{seq}.ts",
    "/{app}/{stream}-{seq}.m4s", "/{app}/{stream}-{seq}.mp4",
};
const size_t lb_http_n_default_paths = sizeof(lb_http_default_paths) / sizeof(char *);

enum { PH_APP, PH_STREAM, PH_SEQ };

struct capture {
    const char *at[2]; /* app, stream */
    size_t len[2];
    unsigned steps; /* candidate splits tried (bounded by LB_HTTP_MATCH_STEPS) */
};

static int placeholder(const char *pat, size_t *skip)
{
    static const char *const names[] = {"{app}", "{stream}", "{seq}"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(pat, names[k], n) == 0) {
            *skip = n;
            return k;
        }
    }
    return -1;
}

/* Backtracking over at most three placeholders; each captures within one
 * segment, longest first ({seq} within the digits that start there).
 * depth bounds the recursion and c->steps the work: a hostile path against
 * placeholders in one segment ("{app}-{stream}-{seq}") would otherwise
 * cost a power of its length. Out of steps is no match. */
static bool match_at(const char *pat, const char *s, const char *end, struct capture *c,
                     int depth)
{
    while (*pat && *pat != '{') {
        if (s == end || *s != *pat)
            return false;
        pat++;
        s++;
    }
    if (!*pat)
        return s == end;
    size_t skip;
    int k = placeholder(pat, &skip);
    if (k < 0 || depth > 8)
        return false;
    const char *seg_end = s;
    if (k == PH_SEQ)
        while (seg_end < end && *seg_end >= '0' && *seg_end <= '9')
            seg_end++;
    else
        while (seg_end < end && *seg_end != '/')
            seg_end++;
    for (const char *e = seg_end; e > s; e--) {
        if (++c->steps > LB_HTTP_MATCH_STEPS)
            return false;
        if (match_at(pat + skip, e, end, c, depth + 1)) {
            if (k != PH_SEQ) {
                c->at[k] = s;
                c->len[k] = (size_t)(e - s);
            }
            return true;
        }
        if (c->steps > LB_HTTP_MATCH_STEPS)
            return false;
    }
    return false;
}

static int hexval(char h)
{
    return h >= '0' && h <= '9' ? h - '0'
           : h >= 'a' && h <= 'f' ? h - 'a' + 10
           : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                  : -1;
}

/* Percent-decodes a capture; refuses control bytes, '/' and overflow. */
static bool decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            ch = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '/' || o + 1 >= cap)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return o > 0;
}

bool lb_http_path_match(const char *pattern, const char *path, size_t path_len,
                        const char *def_app, char *app, size_t app_cap, char *stream,
                        size_t stream_cap)
{
    struct capture c = {{NULL, NULL}, {0, 0}, 0};
    if (!match_at(pattern, path, path + path_len, &c, 0) || !c.at[PH_STREAM])
        return false;
    if (!decode(c.at[PH_STREAM], c.len[PH_STREAM], stream, stream_cap))
        return false;
    if (c.at[PH_APP])
        return decode(c.at[PH_APP], c.len[PH_APP], app, app_cap);
    if (!def_app || strlen(def_app) >= app_cap)
        return false;
    snprintf(app, app_cap, "%s", def_app);
    return true;
}

unsigned lb_http_path_match_cost(const char *pattern, const char *path, size_t path_len)
{
    struct capture c = {{NULL, NULL}, {0, 0}, 0};
    match_at(pattern, path, path + path_len, &c, 0);
    return c.steps;
}
