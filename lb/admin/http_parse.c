/* Request parsing for the admin server (http_parse.h). */
#include "lb/admin/http_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define P(llh) ((struct lb_http_parser *)(llh)->data)

static int sb_add(struct lb_http_sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void sb_clear(struct lb_http_sbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static void sb_free(struct lb_http_sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static int user_error(struct lb_http_parser *p, int status, const char *reason)
{
    p->err_status = status;
    p->err_reason = reason;
    llhttp_set_error_reason(&p->llh, reason);
    return HPE_USER;
}

/* Counts request-line and header bytes against the bound. */
static int count(struct lb_http_parser *p, size_t n)
{
    p->started = true;
    p->header_bytes += n;
    if (p->header_bytes > p->max_header)
        return user_error(p, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(llhttp_t *llh)
{
    P(llh)->started = true;
    return 0;
}

static int on_url(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_http_parser *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    return sb_add(&p->url, at, n) < 0 ? user_error(p, 503, "out of memory") : 0;
}

static int on_header_field(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_http_parser *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    return sb_add(&p->field, at, n) < 0 ? user_error(p, 503, "out of memory") : 0;
}

static int on_header_field_complete(llhttp_t *llh)
{
    struct lb_http_parser *p = P(llh);
    const char *f = p->field.p ? p->field.p : "";
    p->which = strcasecmp(f, "authorization") == 0  ? 1
               : strcasecmp(f, "content-type") == 0 ? 2
               : strcasecmp(f, "expect") == 0       ? 3
               : strcasecmp(f, "host") == 0         ? 4
                                                    : 0;
    sb_clear(&p->field);
    sb_clear(&p->value);
    return 0;
}

static int on_header_value(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_http_parser *p = P(llh);
    int r = count(p, n);
    if (r)
        return r;
    if (p->which && sb_add(&p->value, at, n) < 0)
        return user_error(p, 503, "out of memory");
    return 0;
}

static int on_header_value_complete(llhttp_t *llh)
{
    struct lb_http_parser *p = P(llh);
    const char *v = p->value.p ? p->value.p : "";
    if (p->which == 1 || p->which == 2) {
        struct lb_http_sbuf *dst = p->which == 1 ? &p->auth : &p->ctype;
        if (dst->p) /* a repeated Authorization is ambiguous: refuse it */
            return p->which == 1 ? user_error(p, 400, "more than one Authorization header") : 0;
        if (sb_add(dst, v, p->value.len) < 0)
            return user_error(p, 503, "out of memory");
    } else if (p->which == 4) {
        if (p->host.p) /* RFC 9112 3.2: more than one Host is a 400 */
            return user_error(p, 400, "more than one Host header");
        if (sb_add(&p->host, v, p->value.len) < 0)
            return user_error(p, 503, "out of memory");
    } else if (p->which == 3) {
        if (strcasecmp(v, "100-continue") != 0)
            return user_error(p, 417, "only \"Expect: 100-continue\" is understood");
        p->req.expect_continue = true;
    }
    p->which = 0;
    sb_clear(&p->value);
    return 0;
}

static int on_headers_complete(llhttp_t *llh)
{
    struct lb_http_parser *p = P(llh);
    p->headers_done = true;
    if (llhttp_get_upgrade(llh))
        return user_error(p, 400, "protocol upgrades are not supported");
    if ((llh->flags & F_CONTENT_LENGTH) && llh->content_length > p->max_body)
        return user_error(p, 413, "request body too large");
    return 0;
}

static int on_body(llhttp_t *llh, const char *at, size_t n)
{
    struct lb_http_parser *p = P(llh);
    if (p->body.len + n > p->max_body)
        return user_error(p, 413, "request body too large");
    return sb_add(&p->body, at, n) < 0 ? user_error(p, 503, "out of memory") : 0;
}

static int on_message_complete(llhttp_t *llh)
{
    struct lb_http_parser *p = P(llh);
    struct lb_http_request *r = &p->req;
    r->method = llhttp_get_method(llh);
    r->method_name = llhttp_method_name((llhttp_method_t)r->method);
    r->url = p->url.p ? p->url.p : "";
    r->body = p->body.p ? p->body.p : "";
    r->body_len = p->body.len;
    r->authorization = p->auth.p;
    r->content_type = p->ctype.p;
    r->host = p->host.p;
    r->keep_alive = llhttp_should_keep_alive(llh);
    return HPE_PAUSED; /* one request at a time: the caller answers it first */
}

void lb_http_parser_init(struct lb_http_parser *p, size_t max_header, size_t max_body)
{
    memset(p, 0, sizeof(*p));
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_url = on_url;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_field_complete = on_header_field_complete;
    p->settings.on_header_value = on_header_value;
    p->settings.on_header_value_complete = on_header_value_complete;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->llh, HTTP_REQUEST, &p->settings);
    p->llh.data = p;
    p->max_header = max_header;
    p->max_body = max_body;
}

static void free_kv(struct lb_http_request *r)
{
    for (size_t i = 0; i < r->n_query; i++) {
        free(r->query[i].name);
        free(r->query[i].value);
    }
    for (size_t i = 0; i < r->n_params; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    r->n_query = r->n_params = 0;
}

void lb_http_parser_next(struct lb_http_parser *p)
{
    free_kv(&p->req);
    free(p->req.path);
    memset(&p->req, 0, sizeof(p->req));
    sb_clear(&p->url);
    sb_clear(&p->field);
    sb_clear(&p->value);
    sb_clear(&p->body);
    sb_free(&p->auth); /* NULL again: "absent" */
    sb_free(&p->ctype);
    sb_free(&p->host);
    p->which = 0;
    p->started = false;
    p->headers_done = false;
    p->header_bytes = 0;
}

void lb_http_parser_free(struct lb_http_parser *p)
{
    lb_http_parser_next(p);
    sb_free(&p->url);
    sb_free(&p->field);
    sb_free(&p->value);
    sb_free(&p->body);
}

enum lb_http_parse_result lb_http_parser_feed(struct lb_http_parser *p, const char *data,
                                              size_t len, size_t *used, int *status,
                                              const char **reason)
{
    llhttp_errno_t e = llhttp_execute(&p->llh, data, len);
    if (e == HPE_OK) {
        *used = len;
        return LB_HTTP_NEED_MORE;
    }
    if (e == HPE_PAUSED) {
        *used = (size_t)(llhttp_get_error_pos(&p->llh) - data);
        llhttp_resume(&p->llh);
        return LB_HTTP_REQUEST;
    }
    *used = len;
    if (p->err_status) { /* ours, whatever code llhttp wrapped it in */
        *status = p->err_status;
        *reason = p->err_reason;
    } else {
        *status = 400;
        *reason = llhttp_get_error_reason(&p->llh);
        if (!*reason || !**reason)
            *reason = llhttp_errno_name(e);
    }
    return LB_HTTP_ERROR;
}

/* ---- decoding, query, routes ----------------------------------------------- */

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

long lb_http_pct_decode(const char *in, size_t len, char *out, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

static char *decode_dup(const char *s, size_t n, bool plus_space)
{
    char *out = malloc(n + 1);
    if (out && lb_http_pct_decode(s, n, out, plus_space) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Splits url's query into req->query. Returns -1 on a malformed escape. */
static int parse_query(struct lb_http_request *r)
{
    const char *q = strchr(r->url, '?');
    if (!q)
        return 0;
    for (q++; *q;) {
        const char *end = q + strcspn(q, "&");
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (end > q && r->n_query < LB_HTTP_MAX_QUERY) {
            const char *ne = eq ? eq : end;
            char *name = decode_dup(q, (size_t)(ne - q), true);
            char *value = eq ? decode_dup(eq + 1, (size_t)(end - eq - 1), true) : strdup("");
            if (!name || !value) {
                free(name);
                free(value);
                return -1;
            }
            r->query[r->n_query].name = name;
            r->query[r->n_query].value = value;
            r->n_query++;
        }
        q = *end ? end + 1 : end;
    }
    return 0;
}

/* Does path match pattern? Fills params (decoded) when it does. */
static int match_one(struct lb_http_request *r, const char *pattern)
{
    const char *pp = pattern, *sp = r->path;
    size_t n_params = 0;
    struct lb_http_kv params[LB_HTTP_MAX_PARAMS];
    while (*pp && *sp) {
        if (*pp != '/' || *sp != '/')
            goto no;
        pp++;
        sp++;
        size_t pl = strcspn(pp, "/"), sl = strcspn(sp, "/");
        if (pl > 2 && pp[0] == '{' && pp[pl - 1] == '}') {
            if (sl == 0 || n_params == LB_HTTP_MAX_PARAMS)
                goto no;
            char *v = decode_dup(sp, sl, false);
            if (!v)
                goto no;
            params[n_params].name = (char *)pp; /* up to '}': fixed below */
            params[n_params].value = v;
            n_params++;
        } else if (pl != sl || memcmp(pp, sp, pl) != 0) {
            goto no;
        }
        pp += pl;
        sp += sl;
    }
    if (*pp || *sp)
        goto no;
    for (size_t i = 0; i < n_params; i++)
        r->params[i] = params[i];
    r->n_params = n_params;
    return 1;
no:
    for (size_t i = 0; i < n_params; i++)
        free(params[i].value);
    return 0;
}

int lb_http_match(struct lb_http_parser *p, const struct lb_http_pattern *routes, size_t stride,
                  size_t n, char *allow, size_t allow_len)
{
    struct lb_http_request *r = &p->req;
    size_t plen = strcspn(r->url, "?#");
    free_kv(r);
    free(r->path);
    r->path = strndup(r->url, plen);
    if (!r->path || parse_query(r) < 0 || r->path[0] != '/')
        return -400;
    int path_found = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct lb_http_pattern *rt =
            (const struct lb_http_pattern *)((const char *)routes + i * stride);
        if (!match_one(r, rt->pattern))
            continue;
        if (strcmp(rt->method, r->method_name) == 0) {
            /* names: the text inside {...} of the pattern */
            for (size_t k = 0; k < r->n_params; k++) {
                const char *s = r->params[k].name + 1;
                r->params[k].name = strndup(s, strcspn(s, "}"));
                if (!r->params[k].name) {
                    for (size_t m = k; m < r->n_params; m++)
                        free(r->params[m].value);
                    r->n_params = k; /* free_kv frees the rest */
                    return -400;
                }
            }
            return (int)i;
        }
        for (size_t k = 0; k < r->n_params; k++)
            free(r->params[k].value); /* names still point into the pattern */
        r->n_params = 0;
        if (!strstr(allow, rt->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", rt->method);
        }
        path_found = 1;
    }
    return path_found ? -405 : -404;
}

const char *lb_http_query(const struct lb_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

const char *lb_http_param(const struct lb_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}
