/* The admin HTTP server on libuv (http.h). One connection = one uv_tcp_t and
 * one uv_timer_t embedded in struct conn, freed from the second close
 * callback. Requests are parsed by http_parse.c one at a time and answered
 * synchronously, so pipelined requests are answered in order; when the
 * client does not read its answers, reading stops until they drain. */
#include "lb/admin/http.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WRITE_HIGH (256u << 10) /* stop reading above this much unsent */
#define WRITE_LOW (64u << 10)
#define LINGER_MS 1000           /* read and drop after an error answer */
#define LINGER_BYTES (1u << 20)
#define MAX_REFUSING 256 /* 503 answers in flight; beyond, close at once */

enum conn_phase { PH_IDLE, PH_REQUEST, PH_LINGER };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    struct lb_http_server *srv;
    struct conn *prev, *next;
    struct lb_http_parser parser;
    char *held; /* unparsed bytes while the client does not read answers */
    size_t held_len;
    unsigned handles; /* open handles: free when 0 */
    int phase;
    bool refused;    /* over the cap: answered 503 */
    bool closing;    /* close once writes are done */
    bool shut_sent;
    bool stopped;    /* reading paused for backpressure */
    size_t lingered; /* bytes dropped while lingering */
    struct lb_http_deferred *pending; /* a handler answers later */
};

struct lb_http_deferred {
    struct conn *c; /* NULL once the connection is gone */
    bool close;
};

struct lb_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct lb_http_config cfg;
    char *token;
    unsigned char token_hash[32];
    struct conn *conns;
    unsigned n_conns, n_refusing;
    unsigned n_alive; /* struct conn not yet freed */
    bool closing;
    bool listener_open;
    void (*done)(void *);
    void *done_arg;
};

struct wreq {
    uv_write_t w;
    struct conn *c;
    char data[];
};

static void conn_close(struct conn *c);
static void process(struct conn *c, const char *data, size_t len);
static void on_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ---- replies ------------------------------------------------------------ */

const char *lb_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void lb_http_reply(struct lb_http_response *res, int status, const char *content_type,
                   const char *body, size_t len)
{
    free(res->body);
    res->body = malloc(len + 1);
    res->body_len = res->body ? len : 0;
    if (res->body) {
        memcpy(res->body, body, len);
        res->body[len] = '\0';
    }
    res->status = res->body ? status : 500;
    res->content_type = content_type;
}

void lb_http_reply_json(struct lb_http_response *res, int status, json_object *j)
{
    size_t len;
    const char *s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN, &len);
    lb_http_reply(res, status, "application/json", s ? s : "null", s ? len : 4);
    json_object_put(j);
}

void lb_http_reply_error(struct lb_http_response *res, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "error", json_object_new_string(msg));
    lb_http_reply_json(res, status, j);
}

void lb_http_reply_header(struct lb_http_response *res, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return;
    int n = snprintf(res->headers + res->headers_len, sizeof(res->headers) - res->headers_len,
                     "%s: %s\r\n", name, value);
    if (n > 0 && (size_t)n < sizeof(res->headers) - res->headers_len)
        res->headers_len += (size_t)n;
    else
        res->headers[res->headers_len] = '\0';
}

/* ---- writing ------------------------------------------------------------ */

static void after_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* lingering continues until EOF or the timer */
}

/* After the last answer of a closing connection: send FIN, then read and
 * drop what the client still sends for a moment, so it reads our answer
 * instead of a reset. */
static void begin_linger(struct conn *c)
{
    if (c->shut_sent)
        return;
    c->shut_sent = true;
    c->phase = PH_LINGER;
    free(c->held);
    c->held = NULL;
    c->held_len = 0;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, after_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

static void on_write(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    struct conn *c = r->c;
    free(r);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (c->closing) {
        if (queued == 0)
            begin_linger(c);
        return;
    }
    if (c->stopped && !c->pending && queued <= WRITE_LOW) {
        c->stopped = false;
        char *held = c->held;
        size_t n = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        process(c, held, n); /* may stop again, keeping the rest */
        free(held);
        if (!c->stopped && !c->closing && !uv_is_closing((uv_handle_t *)&c->tcp) &&
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            conn_close(c);
    }
}

static void send_raw(struct conn *c, const char *head, size_t hlen, const char *body,
                     size_t blen)
{
    struct wreq *r = malloc(sizeof(*r) + hlen + blen);
    if (!r) {
        conn_close(c);
        return;
    }
    memcpy(r->data, head, hlen);
    if (blen)
        memcpy(r->data + hlen, body, blen);
    r->c = c;
    uv_buf_t b = uv_buf_init(r->data, (unsigned)(hlen + blen));
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(r);
        conn_close(c);
    }
}

static void send_response(struct conn *c, struct lb_http_response *res, bool close)
{
    char head[1024];
    if (res->status < 100 || res->status > 599)
        lb_http_reply_error(res, 500, "the handler gave no answer");
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%.*s\r\n",
                     res->status, lb_http_status_text(res->status),
                     res->content_type ? res->content_type : "application/json", res->body_len,
                     close ? "Connection: close\r\n" : "", (int)res->headers_len, res->headers);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        conn_close(c);
        return;
    }
    send_raw(c, head, (size_t)n, res->body, res->body_len);
    free(res->body);
    res->body = NULL;
    if (close) {
        c->closing = true;
        if (!uv_is_closing((uv_handle_t *)&c->tcp) &&
            uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
            begin_linger(c);
    }
}

static void send_error(struct conn *c, int status, const char *why, const char *extra_name,
                       const char *extra_value, bool close)
{
    struct lb_http_response res;
    memset(&res, 0, sizeof(res));
    lb_http_reply_error(&res, status, "%s", why);
    if (extra_name)
        lb_http_reply_header(&res, extra_name, extra_value);
    send_response(c, &res, close);
}

/* ---- auth --------------------------------------------------------------- */

static void sha256(const char *s, size_t n, unsigned char out[32])
{
    unsigned len = 32;
    if (!EVP_Digest(s, n, out, &len, EVP_sha256(), NULL))
        memset(out, 0, 32);
}

/* 0 ok, else the status to answer (401, 403) with why. Both tokens are
 * hashed first, so the compare takes the same time whatever the lengths. */
static int check_auth(struct lb_http_server *s, const struct lb_http_request *req,
                      const char **why)
{
    const char *a = req->authorization;
    if (!a) {
        *why = "this endpoint needs \"Authorization: Bearer TOKEN\"";
        return 401;
    }
    while (*a == ' ')
        a++;
    if (strncasecmp(a, "Bearer ", 7) != 0) {
        *why = "the Authorization scheme must be Bearer";
        return 401;
    }
    a += 7;
    while (*a == ' ')
        a++;
    size_t n = strlen(a);
    while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
        n--;
    if (!s->token) {
        *why = "no admin.token_file is configured: authenticated endpoints are off";
        return 403;
    }
    unsigned char h[32];
    sha256(a, n, h);
    if (CRYPTO_memcmp(h, s->token_hash, 32) != 0) {
        *why = "wrong token";
        return 403;
    }
    return 0;
}

/* ---- requests ----------------------------------------------------------- */

static void set_timer(struct conn *c, int phase)
{
    if (c->phase == phase)
        return;
    c->phase = phase;
    uint64_t ms = phase == PH_IDLE ? c->srv->cfg.idle_ms : c->srv->cfg.request_ms;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void handle(struct conn *c)
{
    struct lb_http_server *s = c->srv;
    struct lb_http_request *req = &c->parser.req;
    char allow[64];
    int i = lb_http_match(&c->parser, &s->cfg.routes[0].match, sizeof(struct lb_http_route),
                          s->cfg.n_routes, allow, sizeof(allow));
    bool close = !req->keep_alive;
    if (i == -400) {
        send_error(c, 400, "malformed URL", NULL, NULL, true);
        return;
    }
    if (i == -404) {
        send_error(c, 404, "no such endpoint", NULL, NULL, close);
        return;
    }
    if (i == -405) {
        char why[128];
        snprintf(why, sizeof(why), "method %s is not allowed here (allowed: %s)",
                 req->method_name, allow);
        send_error(c, 405, why, "Allow", allow, close);
        return;
    }
    const struct lb_http_route *rt = &s->cfg.routes[i];
    const char *why = NULL;
    int st = check_auth(s, req, &why);
    req->may_read = st == 0 || s->cfg.public_read;
    if (rt->auth == LB_HTTP_WRITE || (rt->auth == LB_HTTP_READ && !s->cfg.public_read)) {
        if (st) {
            send_error(c, st, why, st == 401 ? "WWW-Authenticate" : NULL,
                       "Bearer realm=\"rtmplb\"", close);
            return;
        }
    }
    struct lb_http_response res;
    memset(&res, 0, sizeof(res));
    res.conn_ = c;
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    req->peer = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0
                    ? (const struct sockaddr *)&peer
                    : NULL;
    rt->handler(s->cfg.ud, req, &res);
    req->peer = NULL;
    if (res.deferred && c->pending) {
        c->pending->close = close;
        free(res.body);
        return;
    }
    send_response(c, &res, close);
}

struct lb_http_deferred *lb_http_defer(struct lb_http_response *res)
{
    struct conn *c = res->conn_;
    struct lb_http_deferred *d = c && !c->pending ? calloc(1, sizeof(*d)) : NULL;
    if (!d)
        return NULL;
    d->c = c;
    c->pending = d;
    res->deferred = true;
    return d;
}

void lb_http_finish(struct lb_http_deferred *d, struct lb_http_response *res)
{
    struct conn *c = d->c;
    bool close = d->close;
    free(d);
    if (!c || c->closing || uv_is_closing((uv_handle_t *)&c->tcp)) {
        if (c)
            c->pending = NULL;
        free(res->body);
        res->body = NULL;
        return;
    }
    c->pending = NULL;
    send_response(c, res, close);
    if (c->closing || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    set_timer(c, PH_IDLE);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH)
        return; /* on_write resumes once it drains */
    c->stopped = false;
    char *held = c->held;
    size_t n = c->held_len;
    c->held = NULL;
    c->held_len = 0;
    process(c, held, n);
    free(held);
    if (!c->stopped && !c->closing && !uv_is_closing((uv_handle_t *)&c->tcp) &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void process(struct conn *c, const char *data, size_t len)
{
    while (!c->closing && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        size_t used = 0;
        int status = 0;
        const char *reason = NULL;
        bool had_headers = c->parser.headers_done;
        enum lb_http_parse_result r =
            lb_http_parser_feed(&c->parser, data, len, &used, &status, &reason);
        data += used;
        len -= used;
        if (r == LB_HTTP_ERROR) {
            send_error(c, status, reason, NULL, NULL, true);
            return;
        }
        if (c->parser.started)
            set_timer(c, PH_REQUEST);
        if (!had_headers && c->parser.headers_done && c->parser.req.expect_continue &&
            r == LB_HTTP_NEED_MORE) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            send_raw(c, cont, sizeof(cont) - 1, NULL, 0);
        }
        if (r == LB_HTTP_NEED_MORE)
            return;
        handle(c);
        lb_http_parser_next(&c->parser);
        if (c->closing)
            return;
        if (!c->pending)
            set_timer(c, PH_IDLE);
        if (c->pending ||
            uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH) {
            /* The client does not read: keep the rest, stop reading. */
            if (len) {
                c->held = malloc(len);
                if (!c->held) {
                    conn_close(c);
                    return;
                }
                memcpy(c->held, data, len);
                c->held_len = len;
            }
            c->stopped = true;
            uv_read_stop((uv_stream_t *)&c->tcp);
            return;
        }
        if (len == 0)
            break;
    }
}

/* ---- connections ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    (void)h;
    static __thread char slab[64 << 10]; /* the loop thread's; consumed before the next read */
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (n == 0)
        return;
    if (n < 0) { /* EOF or error: even inside a request, nobody to answer */
        conn_close(c);
        return;
    }
    if (c->phase == PH_LINGER || c->refused || c->closing) {
        c->lingered += (size_t)n;
        if (c->lingered > LINGER_BYTES)
            conn_close(c);
        return;
    }
    process(c, buf->base, (size_t)n);
}

/* Frees a closing server once its listener and every connection are gone. */
static void maybe_free_server(struct lb_http_server *s)
{
    if (!s->closing || s->n_alive || s->listener_open)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s->token);
    free(s);
    if (done)
        done(arg);
}

static void free_conn(struct conn *c)
{
    struct lb_http_server *s = c->srv;
    lb_http_parser_free(&c->parser);
    free(c->held);
    free(c);
    s->n_alive--;
    maybe_free_server(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles == 0)
        free_conn(c);
}

static void conn_close(struct conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    struct lb_http_server *s = c->srv;
    if (c->pending) {
        c->pending->c = NULL;
        c->pending = NULL;
    }
    if (c->refused)
        s->n_refusing--;
    else
        s->n_conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->phase == PH_REQUEST && !c->closing) {
        if (c->pending) {
            c->pending->c = NULL;
            c->pending = NULL;
        }
        send_error(c, 408, "the request took too long", NULL, NULL, true);
        /* begin_linger runs from on_write; bound it anyway */
        if (!uv_is_closing((uv_handle_t *)&c->tcp) && !c->shut_sent)
            uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
        return;
    }
    conn_close(c); /* idle keep-alive, or the linger is over */
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct lb_http_server *s = ls->data;
    if (status < 0 || s->closing)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    s->n_alive++;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        s->n_alive--;
        free(c);
        return;
    }
    c->tcp.data = c;
    c->handles = 1;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || uv_timer_init(s->loop, &c->timer) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->timer.data = c;
    c->handles = 2;
    lb_http_parser_init(&c->parser, s->cfg.max_header, s->cfg.max_body);
    c->next = s->conns;
    if (c->next)
        c->next->prev = c;
    s->conns = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->n_conns >= s->cfg.max_conns) {
        c->refused = true;
        s->n_refusing++;
        if (s->n_refusing > MAX_REFUSING) {
            conn_close(c);
            return;
        }
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        send_error(c, 503, "too many admin connections", NULL, NULL, true);
        return;
    }
    s->n_conns++;
    c->phase = -1;
    set_timer(c, PH_IDLE);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---- server ----------------------------------------------------------------- */

int lb_http_set_auth(struct lb_http_server *s, const char *token, bool public_read)
{
    char *copy = token ? strdup(token) : NULL;
    if (token && !copy)
        return -1;
    if (s->token)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->token);
    s->token = copy;
    if (copy)
        sha256(copy, strlen(copy), s->token_hash);
    s->cfg.public_read = public_read;
    return 0;
}

int lb_http_start(struct lb_http_server **out, uv_loop_t *loop, const struct sockaddr *addr,
                  const struct lb_http_config *cfg, char *err, size_t errlen)
{
    struct lb_http_server *s = calloc(1, sizeof(*s));
    int r;
    *out = NULL;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.token = NULL;
    if (!s->cfg.max_header)
        s->cfg.max_header = 16 << 10;
    if (!s->cfg.max_body)
        s->cfg.max_body = 64 << 10;
    if (!s->cfg.request_ms)
        s->cfg.request_ms = 10000;
    if (!s->cfg.idle_ms)
        s->cfg.idle_ms = 60000;
    if (!s->cfg.max_conns)
        s->cfg.max_conns = 64;
    if (!s->cfg.backlog)
        s->cfg.backlog = 256;
    if (lb_http_set_auth(s, cfg->token, cfg->public_read) < 0) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if ((r = uv_tcp_init(loop, &s->listener)) != 0) {
        free(s->token);
        free(s);
        snprintf(err, errlen, "uv_tcp_init: %s", uv_strerror(r));
        return -1;
    }
    s->listener.data = s;
    s->listener_open = true;
    if (cfg->listen_fd > 2) {
        if ((r = uv_tcp_open(&s->listener, cfg->listen_fd)) != 0) {
            close(cfg->listen_fd);
            snprintf(err, errlen, "inherited socket: %s", uv_strerror(r));
            lb_http_close(s, NULL, NULL);
            return -1;
        }
    } else if ((r = uv_tcp_bind(&s->listener, addr, 0)) != 0) {
        snprintf(err, errlen, "cannot listen: %s", uv_strerror(r));
        lb_http_close(s, NULL, NULL);
        return -1;
    }
    if ((r = uv_listen((uv_stream_t *)&s->listener, s->cfg.backlog, on_connection)) != 0) {
        snprintf(err, errlen, "cannot listen: %s", uv_strerror(r));
        lb_http_close(s, NULL, NULL);
        return -1;
    }
    *out = s;
    return 0;
}

int lb_http_listen_fd(const struct lb_http_server *s)
{
    uv_os_fd_t fd;
    return s && uv_fileno((const uv_handle_t *)&s->listener, &fd) == 0 ? fd : -1;
}

int lb_http_port(const struct lb_http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

unsigned lb_http_connections(const struct lb_http_server *s) { return s->n_conns; }

static void on_listener_closed(uv_handle_t *h)
{
    struct lb_http_server *s = h->data;
    s->listener_open = false;
    maybe_free_server(s);
}

void lb_http_close(struct lb_http_server *s, void (*done)(void *arg), void *arg)
{
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    if (s->token)
        OPENSSL_cleanse(s->token, strlen(s->token));
    while (s->conns)
        conn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
