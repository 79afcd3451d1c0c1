/* The admin HTTP/1.1 server: runs on a loop the caller owns (the control
 * thread's), never blocks it, and answers each request through a route
 * table. Bounded: header and body size, time per request, idle keep-alive
 * time, connections. Auth: "Authorization: Bearer TOKEN" compared in
 * constant time; mutations always need it, reads unless public_read, and
 * open routes never (they check what they need themselves: the status
 * page's shell, the hooks stock origins call).
 * Errors are JSON: {"error": "..."}. */
#ifndef LB_ADMIN_HTTP_H
#define LB_ADMIN_HTTP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lb/admin/http_parse.h"

struct lb_http_response {
    int status;               /* 0 when the handler set nothing: 500 */
    const char *content_type; /* static string */
    char *body;               /* malloc'ed; the server frees it */
    size_t body_len;
    char headers[512]; /* extra "Name: value\r\n" lines */
    size_t headers_len;
    void *conn_;   /* the server's: lb_http_defer uses it */
    bool deferred; /* set by lb_http_defer */
};

typedef void (*lb_http_handler)(void *ud, const struct lb_http_request *req,
                                struct lb_http_response *res);

enum lb_http_auth {
    LB_HTTP_READ = 0, /* the token, unless public_read */
    LB_HTTP_WRITE,    /* the token, always */
    LB_HTTP_OPEN,     /* no check; req->may_read tells what a read would get */
};

struct lb_http_route {
    struct lb_http_pattern match; /* {"POST", "/api/v1/pools/{pool}/nodes/{node}"} */
    lb_http_handler handler;
    enum lb_http_auth auth;
};

struct lb_http_config {
    const struct lb_http_route *routes; /* static storage */
    size_t n_routes;
    void *ud;             /* passed to handlers */
    const char *token;    /* copied; NULL: no token, so no authenticated route */
    bool public_read;
    size_t max_header;    /* 0: 16 KiB (request line and headers) */
    size_t max_body;      /* 0: 64 KiB */
    uint64_t request_ms;  /* 0: 10 s from a request's first byte to its end */
    uint64_t idle_ms;     /* 0: 60 s between keep-alive requests */
    unsigned max_conns;   /* 0: 64; beyond, 503 and close */
    int backlog;          /* 0: 256 */
    int listen_fd;        /* > 2: listen on this inherited socket, not on addr */
};

struct lb_http_server;

/* Listens on addr (port 0: any; see lb_http_port). Returns 0, or -1 with
 * why in err. */
int lb_http_start(struct lb_http_server **out, uv_loop_t *loop, const struct sockaddr *addr,
                  const struct lb_http_config *cfg, char *err, size_t errlen);
int lb_http_port(const struct lb_http_server *s);
/* The listening socket (to hand over on an upgrade), or -1. */
int lb_http_listen_fd(const struct lb_http_server *s);
/* A reload: new token (copied; NULL = none) and public_read. */
int lb_http_set_auth(struct lb_http_server *s, const char *token, bool public_read);
/* Open connections (served, not counting refused ones being closed). */
unsigned lb_http_connections(const struct lb_http_server *s);
/* Stops listening and closes every connection; done(arg) runs once the last
 * handle is closed and the server is freed. */
void lb_http_close(struct lb_http_server *s, void (*done)(void *arg), void *arg);

/* Handler helpers. Each replaces what was set before. */
void lb_http_reply(struct lb_http_response *res, int status, const char *content_type,
                   const char *body, size_t len);
/* Takes the reference to j. */
void lb_http_reply_json(struct lb_http_response *res, int status, json_object *j);
void lb_http_reply_error(struct lb_http_response *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a header line (name and value must hold no CR/LF: else ignored). */
void lb_http_reply_header(struct lb_http_response *res, const char *name, const char *value);

/* A handler that answers later (the data comes from another thread):
 * lb_http_defer returns a handle, or NULL (out of memory: answer now). The
 * connection reads no further request until lb_http_finish; the request's
 * strings are gone once the handler returns, so copy what is needed. If the
 * client goes away or the request times out (408) meanwhile, finish only
 * frees. Every handle must be finished exactly once. */
struct lb_http_deferred;
struct lb_http_deferred *lb_http_defer(struct lb_http_response *res);
/* Sends res (its body is taken) and frees d. */
void lb_http_finish(struct lb_http_deferred *d, struct lb_http_response *res);

/* The reason phrase of a status ("Not Found"). */
const char *lb_http_status_text(int status);

#endif
