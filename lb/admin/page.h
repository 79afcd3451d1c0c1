/* The status page at GET / (page/status.html, embedded at build time) and
 * its static snapshot: the same state the page's script fetches from the
 * JSON API, rendered server-side as HTML tables so curl and text browsers
 * see it without JavaScript. Pure: JSON in, HTML out; no I/O. */
#ifndef LB_ADMIN_PAGE_H
#define LB_ADMIN_PAGE_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

/* The page as built (status_html.c, generated from page/status.html). */
extern const unsigned char lb_status_html[];
extern const size_t lb_status_html_len;

/* Where the snapshot goes in the page: the first occurrence is replaced. */
#define LB_PAGE_MARKER "<!--rtmplb:snapshot-->"

/* What the snapshot shows, each the document of its GET endpoint (any may be
 * NULL: that section says it is not available). */
struct lb_page_state {
    json_object *upstreams; /* /api/v1/upstreams */
    json_object *routes;    /* /api/v1/routes */
    json_object *streams;   /* /api/v1/streams */
    json_object *sessions;  /* /api/v1/sessions (one page) */
    json_object *process;   /* /api/v1/process */
    json_object *events;    /* /api/v1/events */
    int64_t now_ms;         /* wall clock, for ages ("since 12 s") */
};

/* s with & < > " ' escaped for HTML text and attribute values (NULL: "").
 * Malloc'ed; NULL when out of memory. */
char *lb_html_escape(const char *s);

/* The page tmpl with its marker replaced by the snapshot of st (NULL: the
 * caller may not read, so a note that a token is needed). The snapshot
 * stops adding rows past max_snapshot bytes (0: 512 KiB) and says so.
 * Malloc'ed, length in *len; NULL when out of memory. */
char *lb_page_render(const char *tmpl, size_t tmpl_len, const struct lb_page_state *st,
                     size_t max_snapshot, size_t *len);

#endif
