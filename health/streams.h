/* The stream index: which node each live stream is on. Fed by node stats
 * polling (control thread) and by the publishes this instance routed
 * (workers); read by the stream_location policy on plays (workers). A
 * read-write lock guards it: it is touched once per publish or play, never
 * on the data path. */
#ifndef HEALTH_STREAMS_H
#define HEALTH_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hc_index;

/* One stream as a node's stats report it. */
struct hc_stream {
    char app[128];
    char name[256];
    bool publishing;
    unsigned clients;
    uint64_t bw_in; /* bits per second, 0 if unknown */
};

struct hc_index *hc_index_new(void);
void hc_index_free(struct hc_index *x);

/* Replaces what the stats of node (pool/node) said. Costs O(the node's old
 * and new entries) under the write lock, whatever the size of the index. */
void hc_index_set_node(struct hc_index *x, const char *pool, const char *node,
                       const struct hc_stream *streams, size_t n);
/* Forgets what the stats of pool/node said (its stats stopped answering for
 * `fall` polls, or a reload removed the node). Publishes this instance
 * routed there stay: they leave with their sessions (remove_publish). */
void hc_index_clear_node(struct hc_index *x, const char *pool, const char *node);
/* Streams the stats of pool/node put in the index (tests, the admin views). */
size_t hc_index_count_node(struct hc_index *x, const char *pool, const char *node);
/* A publish this instance routed: remembered until removed. */
void hc_index_add_publish(struct hc_index *x, const char *pool, const char *node, const char *app,
                          const char *stream);
void hc_index_remove_publish(struct hc_index *x, const char *pool, const char *node,
                             const char *app, const char *stream);
/* The node of `pool` where app/stream is live (a routed publish first, then
 * stats with a publisher). Copies its name into node. */
bool hc_index_lookup(struct hc_index *x, const char *pool, const char *app, const char *stream,
                     char *node, size_t cap);
size_t hc_index_count(struct hc_index *x);

/* Stats documents are untrusted input: a document over HC_STATS_DOC_MAX
 * bytes, nested deeper than HC_STATS_JSON_DEPTH (SRS JSON), with a DOCTYPE
 * (nginx-rtmp XML: no DTD, no entity declarations, nothing from the
 * network), truncated or malformed is refused with a reason. */
#define HC_STATS_DOC_MAX (8u << 20)
#define HC_STATS_JSON_DEPTH 16

/* What a parse refused or left out. */
struct hc_stats_report {
    char error[160];     /* why the document was refused (when -1) */
    unsigned long_names; /* streams skipped: app or name too long for hc_stream */
    unsigned over_cap;   /* streams beyond cap, not returned */
};

/* Stats documents -> streams. Return the number of streams written to out
 * (at most cap), or -1 if the document is refused (rep->error says why).
 * A stream whose app or name does not fit is skipped and counted, never
 * cut. rep may be NULL. */
int hc_parse_nginx_stat(const char *doc, size_t len, struct hc_stream *out, size_t cap,
                        struct hc_stats_report *rep);
int hc_parse_srs_streams(const char *doc, size_t len, struct hc_stream *out, size_t cap,
                         struct hc_stats_report *rep);

#endif
