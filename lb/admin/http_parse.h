/* The admin server's request side, pure (no sockets, no clock): a
 * resumable HTTP/1.1 request parser on llhttp with header and body bounds,
 * query parsing with percent-decoding, and the route table match. The
 * libuv server (http.c) and the fuzz target drive it. */
#ifndef LB_ADMIN_HTTP_PARSE_H
#define LB_ADMIN_HTTP_PARSE_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define LB_HTTP_MAX_QUERY 32
#define LB_HTTP_MAX_PARAMS 4

struct lb_http_kv {
    char *name;
    char *value;
};

struct lb_http_sbuf {
    char *p; /* NUL-terminated when non-NULL */
    size_t len, cap;
};

/* One request, as the handler sees it. Strings are NUL-terminated and owned
 * by the parser until the next request starts. */
struct lb_http_request {
    int method;              /* llhttp_method_t */
    const char *method_name; /* "GET", ... */
    char *url;               /* as sent: path?query */
    char *path;              /* raw path (not decoded: segments are) */
    struct lb_http_kv query[LB_HTTP_MAX_QUERY]; /* decoded; later duplicates too */
    size_t n_query;
    struct lb_http_kv params[LB_HTTP_MAX_PARAMS]; /* {pool}, {node}: decoded segments */
    size_t n_params;
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    const char *authorization; /* NULL when absent */
    const char *content_type;
    const char *host; /* the Host header, NULL when absent */
    /* The client's address (set by the server before the handler runs;
     * NULL when unknown). */
    const struct sockaddr *peer;
    bool expect_continue;
    bool keep_alive;
    /* Set by the server before the handler runs: a READ route would answer
     * this request (the right token, or public_read). */
    bool may_read;
};

enum lb_http_parse_result { LB_HTTP_NEED_MORE, LB_HTTP_REQUEST, LB_HTTP_ERROR };

struct lb_http_parser {
    llhttp_t llh;
    llhttp_settings_t settings;
    size_t max_header, max_body;
    /* per request */
    bool started;      /* a byte of a request has been seen */
    bool headers_done; /* on_headers_complete ran (expect_continue is known) */
    size_t header_bytes;
    int err_status; /* our own errors: 431, 413 */
    const char *err_reason;
    struct lb_http_sbuf url, field, value, body, auth, ctype, host;
    int which; /* header being captured: 0 none, 1 authorization, 2 content-type, 3 expect,
                * 4 host */
    struct lb_http_request req;
    char *decoded; /* storage for query and params */
};

void lb_http_parser_init(struct lb_http_parser *p, size_t max_header, size_t max_body);
void lb_http_parser_free(struct lb_http_parser *p);
/* Feeds bytes. *used says how many were consumed. LB_HTTP_REQUEST: p->req
 * is complete (call lb_http_parser_next before feeding the rest);
 * LB_HTTP_ERROR: *status (400, 413, 431) and *reason say what to answer;
 * the connection must then close. */
enum lb_http_parse_result lb_http_parser_feed(struct lb_http_parser *p, const char *data,
                                              size_t len, size_t *used, int *status,
                                              const char **reason);
/* Forgets the request just handled; the parser waits for the next one. */
void lb_http_parser_next(struct lb_http_parser *p);

/* A route: method ("GET", "POST", "DELETE"), a pattern of '/'-separated
 * segments where "{name}" matches one non-empty segment. */
struct lb_http_pattern {
    const char *method;
    const char *pattern;
};
/* The index of the route matching req (its params filled in req), or -404
 * (no pattern matches the path) or -405 (the path matches, not the method;
 * allow lists the methods that would, "GET, POST"). Patterns are tried in
 * order. Decodes req->query from req->url as a side effect. */
int lb_http_match(struct lb_http_parser *p, const struct lb_http_pattern *routes, size_t stride,
                  size_t n, char *allow, size_t allow_len);
/* Percent-decoding ("+" is a space when plus_space); returns the length, or
 * -1 for a malformed escape or a NUL byte. out needs len + 1 bytes. */
long lb_http_pct_decode(const char *in, size_t len, char *out, bool plus_space);
/* The query value of name, or NULL. */
const char *lb_http_query(const struct lb_http_request *req, const char *name);
const char *lb_http_param(const struct lb_http_request *req, const char *name);

#endif
