/* The http phase's pure parts (no sockets, no clock): a resumable parser
 * for one viewer request on llhttp, bounded in size, and the path patterns
 * that name the stream (/{app}/{stream}.flv, ...). The phase (http.c), the
 * unit tests and the fuzz target drive them. */
#ifndef LB_FRONT_HTTP_REQ_H
#define LB_FRONT_HTTP_REQ_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of what one request keeps (each also within max_header). */
#define LB_HTTPREQ_MAX_URL 4096
#define LB_HTTPREQ_MAX_XFF 512
#define LB_HTTPREQ_MAX_NAME 255 /* app or stream, as in RTMP */

enum lb_httpreq_res { LB_HTTPREQ_NEED_MORE, LB_HTTPREQ_DONE, LB_HTTPREQ_ERROR };

struct lb_httpreq {
    llhttp_t llh;
    llhttp_settings_t settings;
    uint32_t max_header;
    /* per request */
    size_t header_bytes; /* request line and header bytes seen */
    bool started;
    int which;            /* header being captured: 0 none, 1 x-forwarded-for */
    char field[32];       /* the current header name (longer ones are not ours) */
    size_t field_len;
    bool field_long;
    /* The request (valid after DONE until lb_httpreq_next). */
    int method;           /* llhttp_method_t */
    char url[LB_HTTPREQ_MAX_URL + 1];
    size_t url_len;
    char xff[LB_HTTPREQ_MAX_XFF + 1]; /* X-Forwarded-For values, joined by ", " */
    size_t xff_len;
    bool xff_long;        /* more than LB_HTTPREQ_MAX_XFF: not trusted */
    bool keep_alive;
    unsigned major, minor;
    /* ERROR: what to answer. */
    int status;           /* 400, 405, 413, 414, 431 */
    const char *why;
};

void lb_httpreq_init(struct lb_httpreq *p, uint32_t max_header);
/* Feeds bytes. *used: bytes consumed; on DONE, the request ends there
 * (what follows is the next, pipelined, request). */
enum lb_httpreq_res lb_httpreq_feed(struct lb_httpreq *p, const char *data, size_t len,
                                    size_t *used);
/* Forgets the request; the parser waits for the next one. */
void lb_httpreq_next(struct lb_httpreq *p);

/* The client address an X-Forwarded-For list names: its last entry (what
 * the trusted proxy in front of us appended), copied to out. false: none,
 * or not an IP address literal. */
bool lb_httpreq_xff_last(const char *xff, char *out, size_t cap);

/* ---- path patterns -------------------------------------------------- */

extern const char *const lb_http_default_paths[];
extern const size_t lb_http_n_default_paths;

/* Matches the path of url (the query is split off into *query, NULL when
 * none) against pattern: {app} and {stream} match one or more bytes of one
 * path segment (percent-decoded; longest first), {seq} one or more digits.
 * A pattern without {app} gives def_app. true: app and stream filled.
 * The search tries at most LB_HTTP_MATCH_STEPS splits, then gives up (no
 * match): a hostile path costs a bounded amount of work. */
bool lb_http_path_match(const char *pattern, const char *path, size_t path_len,
                        const char *def_app, char *app, size_t app_cap, char *stream,
                        size_t stream_cap);
/* The splits the match of path against pattern tries (for tests). */
unsigned lb_http_path_match_cost(const char *pattern, const char *path, size_t path_len);

/* Enough for any path a player sends: a 4096-byte segment against
 * "{stream}-{seq}" tries about 4096 splits. */
#define LB_HTTP_MATCH_STEPS 16384u

#endif
