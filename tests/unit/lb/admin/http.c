/* The admin HTTP server on a private libuv loop (this thread), talked to
 * with plain sockets from a client thread on 127.0.0.1: keep-alive and
 * pipelining, size bounds, errors, auth, the connection cap, timeouts.
 * The client thread records failures (cmocka asserts only on this thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lb/admin/http.h"

#define TOKEN "t0ken-abc"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

/* ---- handlers --------------------------------------------------------------- */

static void h_echo(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    json_object *j = json_object_new_object(), *q = json_object_new_object();
    for (size_t i = 0; i < req->n_query; i++)
        json_object_object_add(q, req->query[i].name, json_object_new_string(req->query[i].value));
    json_object_object_add(j, "query", q);
    json_object_object_add(j, "path", json_object_new_string(req->path));
    json_object_object_add(j, "host", req->host ? json_object_new_string(req->host) : NULL);
    char peer[64] = "";
    if (req->peer && req->peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)req->peer)->sin_addr, peer, sizeof(peer));
    json_object_object_add(j, "peer", req->peer ? json_object_new_string(peer) : NULL);
    lb_http_reply_json(res, 200, j);
}

static void h_node(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    json_object *body = json_tokener_parse(req->body);
    if (!body || !json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        lb_http_reply_error(res, 400, "the body is not a JSON object");
        return;
    }
    json_object_put(body);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "pool", json_object_new_string(lb_http_param(req, "pool")));
    json_object_object_add(j, "node", json_object_new_string(lb_http_param(req, "node")));
    lb_http_reply_json(res, 200, j);
}

/* An open route: answers whether a read would have been allowed. */
static void h_open(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    const char *b = req->may_read ? "may read" : "shell only";
    lb_http_reply(res, 200, "text/plain", b, strlen(b));
}

static void h_text(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    lb_http_reply(res, 200, "text/plain; version=0.0.4", "m 1\n", 4);
}

/* Deferred answers: the handler answers 50 ms later from a timer. */
static uv_loop_t *g_loop;
static int g_later_done;

struct later {
    uv_timer_t t;
    struct lb_http_deferred *d;
    int n;
};

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    struct lb_http_response res;
    char body[64];
    memset(&res, 0, sizeof(res));
    int n = snprintf(body, sizeof(body), "later %d", l->n);
    lb_http_reply(&res, 200, "text/plain", body, (size_t)n);
    lb_http_finish(l->d, &res); /* the client may be gone: then it only frees */
    g_later_done++;
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void h_later(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    static int seq;
    struct later *l = calloc(1, sizeof(*l));
    l->d = lb_http_defer(res);
    if (!l->d) {
        free(l);
        lb_http_reply_error(res, 500, "no defer");
        return;
    }
    l->n = ++seq;
    uv_timer_init(g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_fire, 50, 0);
}

static const struct lb_http_route ROUTES[] = {
    {{"GET", "/api/v1/echo"}, h_echo, LB_HTTP_READ},
    {{"GET", "/api/v1/upstreams"}, h_echo, LB_HTTP_READ},
    {{"POST", "/api/v1/pools/{pool}/nodes/{node}"}, h_node, LB_HTTP_WRITE},
    {{"DELETE", "/api/v1/overrides"}, h_echo, LB_HTTP_WRITE},
    {{"GET", "/metrics"}, h_text, LB_HTTP_READ},
    {{"GET", "/api/v1/later"}, h_later, LB_HTTP_READ},
    {{"GET", "/open"}, h_open, LB_HTTP_OPEN},
};

/* ---- fixture -------------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    uv_async_t stop;
    uv_timer_t watchdog;
    struct lb_http_server *srv;
    int port;
    void (*client)(struct fx *);
    int failures;
    char first_failure[512];
    bool watchdog_fired;
};

static void note_failure(struct fx *f, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note_failure(struct fx *f, int line, const char *cond, const char *fmt, ...)
{
    if (f->failures++)
        return;
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    snprintf(f->first_failure, sizeof(f->first_failure), "line %d: %.80s: %.400s", line, cond,
             detail);
}

#define CHECK(fx, cond, ...)                                \
    do {                                                    \
        if (!(cond))                                        \
            note_failure(fx, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

static void on_closed(uv_handle_t *h) { (void)h; }
static void on_srv_closed(void *arg) { (void)arg; }

static void on_stop(uv_async_t *a)
{
    struct fx *f = a->data;
    lb_http_close(f->srv, on_srv_closed, NULL);
    uv_close((uv_handle_t *)&f->stop, on_closed);
    uv_close((uv_handle_t *)&f->watchdog, on_closed);
}

static void on_watchdog(uv_timer_t *t)
{
    struct fx *f = t->data;
    f->watchdog_fired = true;
    uv_stop(&f->loop); /* the client thread is stuck: give up */
}

static void *client_main(void *arg)
{
    struct fx *f = arg;
    f->client(f);
    uv_async_send(&f->stop);
    return NULL;
}

static void run(struct lb_http_config cfg, void (*client)(struct fx *))
{
    struct fx f;
    memset(&f, 0, sizeof(f));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char err[256];
    assert_int_equal(uv_loop_init(&f.loop), 0);
    g_loop = &f.loop;
    cfg.routes = ROUTES;
    cfg.n_routes = sizeof(ROUTES) / sizeof(ROUTES[0]);
    assert_int_equal(lb_http_start(&f.srv, &f.loop, (struct sockaddr *)&sin, &cfg, err,
                                   sizeof(err)),
                     0);
    f.port = lb_http_port(f.srv);
    assert_true(f.port > 0);
    f.client = client;
    assert_int_equal(uv_async_init(&f.loop, &f.stop, on_stop), 0);
    f.stop.data = &f;
    assert_int_equal(uv_timer_init(&f.loop, &f.watchdog), 0);
    f.watchdog.data = &f;
    uv_timer_start(&f.watchdog, on_watchdog, 60000, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &f), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_false(f.watchdog_fired);
    pthread_join(th, NULL);
    if (f.failures)
        print_error("%d client check(s) failed; first: %s\n", f.failures, f.first_failure);
    assert_int_equal(f.failures, 0);
    assert_int_equal(uv_loop_close(&f.loop), 0); /* every handle closed */
}

/* ---- client side ------------------------------------------------------------- */

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool send_str(int fd, const char *s) { return send_all(fd, s, strlen(s)); }

struct resp {
    int status; /* -1: EOF or timeout before a whole response */
    char headers[2048];
    char body[8192];
    size_t body_len;
};

/* Per-connection read buffer: responses may arrive together. */
struct rd {
    int fd;
    char buf[65536];
    size_t len;
};

static int fill(struct rd *r)
{
    if (r->len == sizeof(r->buf))
        return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    if (n <= 0)
        return -1;
    r->len += (size_t)n;
    return 0;
}

static void read_resp(struct rd *r, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    out->status = -1;
    char *end;
    while (!(r->buf[r->len] = '\0', end = strstr(r->buf, "\r\n\r\n")))
        if (fill(r) < 0)
            return;
    size_t hlen = (size_t)(end - r->buf) + 4;
    snprintf(out->headers, sizeof(out->headers), "%.*s", (int)hlen, r->buf);
    const char *cl = strcasestr(out->headers, "\r\nContent-Length:");
    size_t blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
    while (r->len < hlen + blen)
        if (fill(r) < 0)
            return;
    if (sscanf(r->buf, "HTTP/1.1 %d", &out->status) != 1)
        out->status = -2;
    out->body_len = blen < sizeof(out->body) - 1 ? blen : sizeof(out->body) - 1;
    memcpy(out->body, r->buf + hlen, out->body_len);
    out->body[out->body_len] = '\0';
    memmove(r->buf, r->buf + hlen + blen, r->len - hlen - blen);
    r->len -= hlen + blen;
}

/* The peer closed (EOF or reset) within the receive timeout. */
static bool closed_by_peer(int fd)
{
    char b[4096];
    for (int i = 0; i < 2000; i++) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false; /* timeout */
    }
    return false;
}

/* One request on a fresh connection. */
static void one(struct fx *f, const char *req, struct resp *out)
{
    struct rd *r = calloc(1, sizeof(*r));
    r->fd = dial(f->port);
    CHECK(f, r->fd >= 0, "connect");
    if (r->fd >= 0 && send_str(r->fd, req))
        read_resp(r, out);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- cases ------------------------------------------------------------------ */

static void c_keepalive(struct fx *f)
{
    struct rd *r = calloc(1, sizeof(*r));
    struct resp res;
    char req[256], want[64];
    r->fd = dial(f->port);
    int ok = 0;
    for (int i = 0; i < 1000 && r->fd >= 0; i++) {
        snprintf(req, sizeof(req), "GET /api/v1/echo?i=%d HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n",
                 i);
        if (!send_str(r->fd, req))
            break;
        read_resp(r, &res);
        snprintf(want, sizeof(want), "\"i\":\"%d\"", i);
        if (res.status == 200 && strstr(res.body, want))
            ok++;
    }
    CHECK(f, ok == 1000, "%d of 1000 keep-alive requests answered", ok);

    /* 50 pipelined in one write: 50 answers, in order. */
    char big[50 * 128];
    size_t used = 0;
    for (int i = 0; i < 50; i++)
        used += (size_t)snprintf(big + used, sizeof(big) - used,
                                 "GET /api/v1/echo?p=%d HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", i);
    CHECK(f, send_all(r->fd, big, used), "send pipelined");
    ok = 0;
    for (int i = 0; i < 50; i++) {
        read_resp(r, &res);
        snprintf(want, sizeof(want), "\"p\":\"%d\"", i);
        if (res.status == 200 && strstr(res.body, want))
            ok++;
    }
    CHECK(f, ok == 50, "%d of 50 pipelined answers in order", ok);
    close(r->fd);
    free(r);
}

static void c_errors(struct fx *f)
{
    struct resp res;
    one(f, "GET /nope HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 404, "unknown path: %d", res.status);
    CHECK(f, strcmp(res.body, "{\"error\":\"no such endpoint\"}") == 0, "%s", res.body);
    CHECK(f, strstr(res.headers, "Content-Type: application/json\r\n") != NULL, "%s",
          res.headers);

    one(f, "DELETE /api/v1/upstreams HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 405, "wrong method: %d", res.status);
    CHECK(f, strstr(res.headers, "\r\nAllow: GET\r\n") != NULL, "%s", res.headers);
    CHECK(f, strstr(res.body, "\"error\":\"method DELETE is not allowed here (allowed: GET)\""),
          "%s", res.body);

    one(f, "GET /api/v1/pools/a/nodes/b HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 405 && strstr(res.headers, "\r\nAllow: POST\r\n"), "%d %s",
          res.status, res.headers);

    /* A body that is not JSON reaches the handler, which says so. */
    one(f,
        "POST /api/v1/pools/p/nodes/n HTTP/1.1\r\nHost: x\r\n" AUTH
        "Content-Type: application/json\r\nContent-Length: 8\r\n\r\nnot json",
        &res);
    CHECK(f, res.status == 400, "not JSON: %d", res.status);
    CHECK(f, strcmp(res.body, "{\"error\":\"the body is not a JSON object\"}") == 0, "%s",
          res.body);

    /* Params and the query are percent-decoded. */
    one(f,
        "POST /api/v1/pools/hk%20line/nodes/n%2F1 HTTP/1.1\r\nHost: x\r\n" AUTH
        "Content-Length: 2\r\n\r\n{}",
        &res);
    CHECK(f, res.status == 200, "%d", res.status);
    CHECK(f, strcmp(res.body, "{\"pool\":\"hk line\",\"node\":\"n\\/1\"}") == 0, "%s", res.body);
    one(f, "GET /api/v1/echo?app=live%2Fx&stream=a+b&empty&=v HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n",
        &res);
    CHECK(f, res.status == 200, "%d", res.status);
    CHECK(f, strstr(res.body, "\"app\":\"live\\/x\",\"stream\":\"a b\",\"empty\":\"\"") != NULL,
          "%s", res.body);
    one(f, "GET /api/v1/echo?a=%zz HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 400, "bad escape: %d", res.status);
    /* Handlers see the Host header and the client's address (GET /lines). */
    one(f, "GET /api/v1/echo HTTP/1.1\r\nhost: live.example:8080\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 200, "%d", res.status);
    CHECK(f, strstr(res.body, "\"host\":\"live.example:8080\",\"peer\":\"127.0.0.1\"") != NULL,
          "%s", res.body);
    one(f, "GET /api/v1/echo HTTP/1.0\r\n" AUTH "\r\n", &res);
    CHECK(f, strstr(res.body, "\"host\":null") != NULL, "%s", res.body);
    one(f, "GET /api/v1/echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 400, "two Host headers: %d", res.status);

    /* Malformed: 400 JSON, then the server closes. */
    struct rd *r = calloc(1, sizeof(*r));
    r->fd = dial(f->port);
    send_str(r->fd, "GARBAGE\r\n\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 400, "malformed: %d", res.status);
    CHECK(f, strstr(res.body, "{\"error\":") == res.body, "%s", res.body);
    CHECK(f, strstr(res.headers, "Connection: close"), "%s", res.headers);
    CHECK(f, closed_by_peer(r->fd), "closed after a malformed request");
    close(r->fd);

    /* Body over 64 KiB: 413 before reading it. */
    r->fd = dial(f->port);
    r->len = 0;
    send_str(r->fd, "POST /api/v1/pools/p/nodes/n HTTP/1.1\r\nHost: x\r\n" AUTH
                    "Content-Length: 100000\r\n\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 413, "big body: %d", res.status);
    close(r->fd);

    /* 1 MiB of header: 431 (or 400) and close. */
    r->fd = dial(f->port);
    r->len = 0;
    size_t n = 1 << 20;
    char *junk = malloc(n);
    memset(junk, 'a', n);
    send_str(r->fd, "GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nX-Big: ");
    send_all(r->fd, junk, n); /* may fail half way: the server stopped reading */
    send_str(r->fd, "\r\n\r\n");
    free(junk);
    read_resp(r, &res);
    CHECK(f, res.status == 431 || res.status == 400, "1 MiB header: %d", res.status);
    CHECK(f, closed_by_peer(r->fd), "closed after a huge header");
    close(r->fd);
    free(r);

    /* The server still serves. */
    one(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 200 && strcmp(res.body, "m 1\n") == 0, "%d", res.status);
    CHECK(f, strstr(res.headers, "Content-Type: text/plain; version=0.0.4\r\n"), "%s",
          res.headers);

    /* HTTP/1.0 without keep-alive: answered, then closed. */
    r = calloc(1, sizeof(*r));
    r->fd = dial(f->port);
    send_str(r->fd, "GET /metrics HTTP/1.0\r\n" AUTH "\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 200, "1.0: %d", res.status);
    CHECK(f, closed_by_peer(r->fd), "1.0 closed");
    close(r->fd);
    free(r);
}

static void c_auth(struct fx *f)
{
    struct resp res;
    const char *post = "POST /api/v1/pools/p/nodes/n HTTP/1.1\r\nHost: x\r\n%s"
                       "Content-Length: 2\r\n\r\n{}";
    char req[512];

    snprintf(req, sizeof(req), post, "");
    one(f, req, &res);
    CHECK(f, res.status == 401, "no token: %d", res.status);
    CHECK(f, strstr(res.headers, "\r\nWWW-Authenticate: Bearer realm=\"rtmplb\"\r\n"), "%s",
          res.headers);
    snprintf(req, sizeof(req), post, "Authorization: Basic dXNlcjpwYXNz\r\n");
    one(f, req, &res);
    CHECK(f, res.status == 401, "basic: %d", res.status);
    snprintf(req, sizeof(req), post, "Authorization: Bearer t0ken-abd\r\n");
    one(f, req, &res);
    CHECK(f, res.status == 403, "wrong token: %d", res.status);
    CHECK(f, strcmp(res.body, "{\"error\":\"wrong token\"}") == 0, "%s", res.body);
    snprintf(req, sizeof(req), post, "Authorization: Bearer t0ken-ab\r\n");
    one(f, req, &res);
    CHECK(f, res.status == 403, "prefix of the token: %d", res.status);
    snprintf(req, sizeof(req), post, "Authorization: bearer " TOKEN "\r\n");
    one(f, req, &res);
    CHECK(f, res.status == 200, "right token: %d", res.status);
    snprintf(req, sizeof(req), post, AUTH AUTH);
    one(f, req, &res);
    CHECK(f, res.status == 400, "two Authorization headers: %d", res.status);

    /* GET without a token: refused unless public_read (run twice, see below). */
    one(f, "GET /api/v1/upstreams HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    CHECK(f, res.status == 401, "GET without token, public_read off: %d", res.status);
    one(f, "DELETE /api/v1/overrides HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 200, "DELETE with token: %d", res.status);

    /* An open route answers everyone and is told whether a read would be. */
    one(f, "GET /open HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    CHECK(f, res.status == 200 && strcmp(res.body, "shell only") == 0, "open, no token: %d %s",
          res.status, res.body);
    one(f, "GET /open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n", &res);
    CHECK(f, res.status == 200 && strcmp(res.body, "shell only") == 0,
          "open, wrong token: %d %s", res.status, res.body);
    one(f, "GET /open HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
    CHECK(f, res.status == 200 && strcmp(res.body, "may read") == 0, "open, token: %d %s",
          res.status, res.body);
}

static void c_public_read(struct fx *f)
{
    struct resp res;
    one(f, "GET /api/v1/upstreams HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    CHECK(f, res.status == 200, "GET, public_read: %d", res.status);
    one(f, "DELETE /api/v1/overrides HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    CHECK(f, res.status == 401, "mutation still needs the token: %d", res.status);
    one(f, "DELETE /api/v1/overrides HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n",
        &res);
    CHECK(f, res.status == 403, "no token configured -> 403: %d", res.status);
    one(f, "GET /open HTTP/1.1\r\nHost: x\r\n\r\n", &res);
    CHECK(f, res.status == 200 && strcmp(res.body, "may read") == 0, "open, public_read: %s",
          res.body);
}

static void c_cap(struct fx *f)
{
    enum { N = 200 };
    static struct rd rds[N];
    struct resp res;
    int served = 0, refused = 0, other = 0;
    for (int i = 0; i < N; i++) {
        rds[i].len = 0;
        rds[i].fd = dial(f->port);
    }
    for (int i = 0; i < N; i++) {
        if (rds[i].fd < 0) {
            other++;
            continue;
        }
        send_str(rds[i].fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
        read_resp(&rds[i], &res);
        if (res.status == 200)
            served++;
        else if (res.status == 503 && strstr(res.body, "too many admin connections"))
            refused++;
        else
            other++;
    }
    CHECK(f, served == 64 && refused == N - 64 && other == 0, "served %d, refused %d, other %d",
          served, refused, other);
    for (int i = 0; i < N; i++)
        if (rds[i].fd >= 0)
            close(rds[i].fd);
    /* Slots come back once the server saw the closes. */
    bool again = false;
    for (int tries = 0; tries < 50 && !again; tries++) {
        one(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
        again = res.status == 200;
        if (!again)
            usleep(100000);
    }
    CHECK(f, again, "served again after the others closed");
}

static void c_slow(struct fx *f)
{
    struct resp res;
    struct rd *slow = calloc(1, sizeof(*slow)), *idle = calloc(1, sizeof(*idle));
    slow->fd = dial(f->port);
    idle->fd = dial(f->port);
    double t0 = now_s();
    send_str(slow->fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); /* never finished */

    /* Others are served meanwhile, at once. */
    for (int i = 0; i < 20; i++) {
        one(f, "GET /metrics HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n", &res);
        CHECK(f, res.status == 200, "served beside a slow client: %d", res.status);
    }
    CHECK(f, now_s() - t0 < 0.25, "20 requests beside a slow client took %.3f s",
          now_s() - t0);

    read_resp(slow, &res);
    double took = now_s() - t0;
    CHECK(f, res.status == 408, "slow client: %d", res.status);
    CHECK(f, took > 0.25 && took < 4, "408 after %.3f s (request timeout 0.3 s)", took);
    CHECK(f, closed_by_peer(slow->fd), "slow client closed");
    /* A connection that never sends: closed quietly after the idle time. */
    ssize_t n = recv(idle->fd, idle->buf, sizeof(idle->buf), 0);
    CHECK(f, n == 0, "idle connection: recv %zd (want EOF, no answer)", n);
    CHECK(f, now_s() - t0 < 4, "idle closed after %.3f s", now_s() - t0);
    close(slow->fd);
    close(idle->fd);
    free(slow);
    free(idle);
}

/* The client reads nothing while pipelining a lot: the server stops reading
 * and resumes; every answer arrives, in order. */
static void c_backpressure(struct fx *f)
{
    struct rd *r = calloc(1, sizeof(*r));
    struct resp res;
    r->fd = dial(f->port);
    int rcv = 4096;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    enum { N = 3000 };
    char req[128], want[32];
    int len = snprintf(req, sizeof(req), "GET /api/v1/echo?k=0000 HTTP/1.1\r\n" AUTH "\r\n");
    char *all = malloc((size_t)len * N + 1);
    for (int i = 0; i < N; i++)
        snprintf(all + (size_t)i * len, (size_t)len + 1,
                 "GET /api/v1/echo?k=%04d HTTP/1.1\r\n" AUTH "\r\n", i);
    /* Send from here while... nobody reads: use a non-blocking-ish loop. */
    size_t sent = 0, total = (size_t)len * N;
    int ok = 0, next = 0;
    for (int spins = 0; spins < 1000000 && sent < total; spins++) {
        struct pollfd pfd = {r->fd, POLLIN | POLLOUT, 0};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        if ((pfd.revents & POLLOUT) && sent < total) {
            ssize_t w = send(r->fd, all + sent, total - sent < 8192 ? total - sent : 8192,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if ((pfd.revents & POLLIN) && spins % 4 == 0) { /* a slow reader */
            read_resp(r, &res);
            snprintf(want, sizeof(want), "\"k\":\"%04d\"", next);
            if (res.status == 200 && strstr(res.body, want))
                ok++;
            next++;
        }
    }
    CHECK(f, sent == total, "sent %zu of %zu", sent, total);
    for (; next < N; next++) { /* the rest, read at last */
        read_resp(r, &res);
        snprintf(want, sizeof(want), "\"k\":\"%04d\"", next);
        if (res.status == 200 && strstr(res.body, want))
            ok++;
    }
    CHECK(f, ok == N, "%d of %d answers in order", ok, N);
    free(all);
    close(r->fd);
    free(r);
}

/* A deferred answer keeps the connection's order: a request pipelined
 * behind it is answered after it; a client that leaves before the answer
 * costs nothing; the server goes on. */
static void c_deferred(struct fx *f)
{
    struct rd *r = calloc(1, sizeof(*r));
    struct resp res;
    r->fd = dial(f->port);
    CHECK(f, r->fd >= 0, "dial");
    send_str(r->fd, "GET /api/v1/later HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n"
                    "GET /api/v1/echo?a=1 HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 200 && strncmp(res.body, "later ", 6) == 0, "first: %d %s",
          res.status, res.body);
    read_resp(r, &res);
    CHECK(f, res.status == 200 && strstr(res.body, "\"a\":\"1\""), "second: %d %s", res.status,
          res.body);
    /* again on the same connection */
    send_str(r->fd, "GET /api/v1/later HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 200 && strncmp(res.body, "later ", 6) == 0, "third: %d %s",
          res.status, res.body);
    close(r->fd);
    /* a client that leaves before its answer */
    int fd = dial(f->port);
    send_str(fd, "GET /api/v1/later HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    close(fd);
    usleep(200 * 1000);
    r->len = 0;
    r->fd = dial(f->port);
    send_str(r->fd, "GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n");
    read_resp(r, &res);
    CHECK(f, res.status == 200, "after a gone client: %d", res.status);
    close(r->fd);
    free(r);
}

/* ---- tests ---------------------------------------------------------------- */

static struct lb_http_config base(void)
{
    struct lb_http_config c;
    memset(&c, 0, sizeof(c));
    c.token = TOKEN;
    return c;
}

static void test_keepalive_and_pipelining(void **st) { run(base(), c_keepalive); }
static void test_errors(void **st) { run(base(), c_errors); }
static void test_auth(void **st) { run(base(), c_auth); }

static void test_public_read(void **st)
{
    struct lb_http_config c = base();
    c.token = NULL;
    c.public_read = true;
    run(c, c_public_read);
}

static void test_connection_cap(void **st) { run(base(), c_cap); }

static void test_slow_and_idle_clients(void **st)
{
    struct lb_http_config c = base();
    c.request_ms = 300;
    c.idle_ms = 1000;
    run(c, c_slow);
}

static void test_backpressure(void **st) { run(base(), c_backpressure); }

static void test_deferred(void **st)
{
    g_later_done = 0;
    run(base(), c_deferred);
    assert_int_equal(g_later_done, 3);
}

static void test_route_match_pure(void **st)
{
    struct lb_http_parser p;
    size_t used;
    int status;
    const char *why;
    char allow[64];
    lb_http_parser_init(&p, 1024, 1024);
    const char req[] = "POST /api/v1/pools/a%2Fb/nodes/c?x=1 HTTP/1.1\r\nHost: y\r\n\r\n";
    assert_int_equal(lb_http_parser_feed(&p, req, sizeof(req) - 1, &used, &status, &why),
                     LB_HTTP_REQUEST);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(lb_http_match(&p, &ROUTES[0].match, sizeof(ROUTES[0]), 6, allow,
                                   sizeof(allow)),
                     2);
    assert_string_equal(lb_http_param(&p.req, "pool"), "a/b");
    assert_string_equal(lb_http_param(&p.req, "node"), "c");
    assert_string_equal(lb_http_query(&p.req, "x"), "1");
    assert_null(lb_http_query(&p.req, "y"));
    lb_http_parser_next(&p);
    /* split at every byte: the same request */
    for (size_t cut = 1; cut < sizeof(req) - 1; cut++) {
        assert_int_equal(lb_http_parser_feed(&p, req, cut, &used, &status, &why),
                         LB_HTTP_NEED_MORE);
        assert_int_equal(lb_http_parser_feed(&p, req + cut, sizeof(req) - 1 - cut, &used,
                                             &status, &why),
                         LB_HTTP_REQUEST);
        assert_string_equal(p.req.url, "/api/v1/pools/a%2Fb/nodes/c?x=1");
        lb_http_parser_next(&p);
    }
    lb_http_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_match_pure),
        cmocka_unit_test(test_keepalive_and_pipelining),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_public_read),
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_slow_and_idle_clients),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_deferred),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
