/* The stream index, and the stats parsers that feed it. */
#include "health/streams.h"

#include <json-c/json.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 1024
#define NODE_BUCKETS 64

/* One stream on one node. Entries hang in a hash bucket by key (doubly
 * linked, so one can be unlinked in O(1)); entries from a node's stats also
 * hang in that node's list, so replacing or clearing a node costs O(its
 * entries), not a scan of the whole table under the write lock. */
enum src { SRC_STATS = 0, SRC_ROUTED, SRC_HOOK };

struct entry {
    struct entry *next, **pprev; /* bucket */
    struct entry *node_next;     /* its node's list (stats entries only) */
    struct entry *hook_next, *hook_prev; /* the hook list, oldest first (hook entries only) */
    char *pool, *node, *key;     /* key: "app/stream" */
    int src;                     /* enum src: who said so */
    unsigned refs;               /* routed publishes of this key to this node */
    uint64_t expires_ms;         /* hook entries: forgotten after this (index clock) */
    size_t app_len;              /* key[0..app_len) is the app (hook entries) */
};

/* A node whose stats fed the index. */
struct node_rec {
    struct node_rec *next;
    char *pool, *node;
    struct entry *entries;
    size_t n;
};

struct hc_index {
    pthread_rwlock_t lock;
    struct entry *b[BUCKETS];
    struct node_rec *nodes[NODE_BUCKETS];
    size_t n;
    /* Hook entries, least recently confirmed first (so also by expiry). */
    struct entry *hook_head, *hook_tail;
    size_t n_hooks, max_hooks;
    uint64_t hook_ttl_ms;
    uint64_t hooks_evicted;
    uint64_t (*clock)(void);
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

static unsigned node_hash(const char *pool, const char *node)
{
    unsigned h = 2166136261u;
    for (; *pool; pool++)
        h = (h ^ (unsigned char)*pool) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* a separator: ("ab","c") != ("a","bc") */
    for (; *node; node++)
        h = (h ^ (unsigned char)*node) * 16777619u;
    return h % NODE_BUCKETS;
}

struct hc_index *hc_index_new(void)
{
    struct hc_index *x = calloc(1, sizeof(*x));
    if (x && pthread_rwlock_init(&x->lock, NULL) != 0) {
        free(x);
        return NULL;
    }
    if (x) {
        x->max_hooks = HC_HOOKS_MAX;
        x->hook_ttl_ms = HC_HOOK_TTL_MS;
        x->clock = mono_ms;
    }
    return x;
}

static void free_entry(struct entry *e)
{
    free(e->pool);
    free(e->node);
    free(e->key);
    free(e);
}

static void free_rec(struct node_rec *r)
{
    free(r->pool);
    free(r->node);
    free(r);
}

void hc_index_free(struct hc_index *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        for (struct entry *e = x->b[i], *n; e; e = n) {
            n = e->next;
            free_entry(e);
        }
    for (size_t i = 0; i < NODE_BUCKETS; i++)
        for (struct node_rec *r = x->nodes[i], *n; r; r = n) {
            n = r->next;
            free_rec(r);
        }
    pthread_rwlock_destroy(&x->lock);
    free(x);
}

static char *key_of(const char *app, const char *stream)
{
    char *k;
    if (asprintf(&k, "%s/%s", app ? app : "", stream ? stream : "") < 0)
        return NULL;
    return k;
}

static void unlink_entry(struct hc_index *x, struct entry *e)
{
    *e->pprev = e->next;
    if (e->next)
        e->next->pprev = e->pprev;
    x->n--;
}

/* Adds (pool, node, key) unless present and returns the new entry (NULL if
 * it was there already, or on allocation failure); caller holds the write
 * lock. */
static struct entry *find_locked(struct hc_index *x, const char *pool, const char *node,
                                 const char *key, int src)
{
    for (struct entry *e = x->b[hash(key)]; e; e = e->next)
        if (e->src == src && strcmp(e->key, key) == 0 && strcmp(e->pool, pool) == 0 &&
            strcmp(e->node, node) == 0)
            return e;
    return NULL;
}

static struct entry *add_locked(struct hc_index *x, const char *pool, const char *node,
                                const char *key, int src)
{
    unsigned h = hash(key);
    struct entry *old = find_locked(x, pool, node, key, src);
    if (old) {
        if (src == SRC_ROUTED)
            old->refs++;
        return NULL;
    }
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->pool = strdup(pool);
    e->node = strdup(node);
    e->key = strdup(key);
    e->src = src;
    e->refs = 1;
    if (!e->pool || !e->node || !e->key) {
        free_entry(e);
        return NULL;
    }
    e->next = x->b[h];
    if (e->next)
        e->next->pprev = &e->next;
    e->pprev = &x->b[h];
    x->b[h] = e;
    x->n++;
    return e;
}

/* Where the record of pool/node is linked, or where it would be (then
 * *result is NULL). Caller holds the lock. */
static struct node_rec **find_rec(struct hc_index *x, const char *pool, const char *node)
{
    struct node_rec **rp = &x->nodes[node_hash(pool, node)];
    for (; *rp; rp = &(*rp)->next)
        if (strcmp((*rp)->pool, pool) == 0 && strcmp((*rp)->node, node) == 0)
            break;
    return rp;
}

/* Frees the stats entries of a record, leaving it empty. */
static void drop_entries(struct hc_index *x, struct node_rec *r)
{
    for (struct entry *e = r->entries, *n; e; e = n) {
        n = e->node_next;
        unlink_entry(x, e);
        free_entry(e);
    }
    r->entries = NULL;
    r->n = 0;
}

void hc_index_set_node(struct hc_index *x, const char *pool, const char *node,
                       const struct hc_stream *streams, size_t n)
{
    pthread_rwlock_wrlock(&x->lock);
    struct node_rec **rp = find_rec(x, pool, node), *r = *rp;
    if (r)
        drop_entries(x, r);
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = streams[i].publishing;
    if (any && !r && (r = calloc(1, sizeof(*r)))) {
        r->pool = strdup(pool);
        r->node = strdup(node);
        if (!r->pool || !r->node) {
            free_rec(r);
            r = NULL;
        } else {
            *rp = r;
        }
    }
    for (size_t i = 0; r && i < n; i++) {
        if (!streams[i].publishing)
            continue; /* a stream without a publisher is not live there */
        char *k = key_of(streams[i].app, streams[i].name);
        struct entry *e = k ? add_locked(x, pool, node, k, SRC_STATS) : NULL;
        free(k);
        if (e) {
            e->node_next = r->entries;
            r->entries = e;
            r->n++;
        }
    }
    if (r && r->n == 0) { /* nothing live there: keep no record */
        for (rp = find_rec(x, pool, node); *rp != r;)
            rp = &(*rp)->next;
        *rp = r->next;
        free_rec(r);
    }
    pthread_rwlock_unlock(&x->lock);
}

void hc_index_clear_node(struct hc_index *x, const char *pool, const char *node)
{
    pthread_rwlock_wrlock(&x->lock);
    struct node_rec **rp = find_rec(x, pool, node), *r = *rp;
    if (r) {
        drop_entries(x, r);
        *rp = r->next;
        free_rec(r);
    }
    pthread_rwlock_unlock(&x->lock);
}

size_t hc_index_count_node(struct hc_index *x, const char *pool, const char *node)
{
    pthread_rwlock_rdlock(&x->lock);
    struct node_rec *r = *find_rec(x, pool, node);
    size_t n = r ? r->n : 0;
    pthread_rwlock_unlock(&x->lock);
    return n;
}

void hc_index_add_publish(struct hc_index *x, const char *pool, const char *node, const char *app,
                          const char *stream)
{
    char *k = key_of(app, stream);
    if (!k)
        return;
    pthread_rwlock_wrlock(&x->lock);
    add_locked(x, pool, node, k, SRC_ROUTED);
    pthread_rwlock_unlock(&x->lock);
    free(k);
}

void hc_index_remove_publish(struct hc_index *x, const char *pool, const char *node,
                             const char *app, const char *stream)
{
    char *k = key_of(app, stream);
    if (!k)
        return;
    pthread_rwlock_wrlock(&x->lock);
    for (struct entry *e = x->b[hash(k)]; e; e = e->next) {
        if (e->src == SRC_ROUTED && strcmp(e->key, k) == 0 && strcmp(e->pool, pool) == 0 &&
            strcmp(e->node, node) == 0) {
            if (--e->refs == 0) {
                unlink_entry(x, e);
                free_entry(e);
            }
            break;
        }
    }
    pthread_rwlock_unlock(&x->lock);
    free(k);
}

bool hc_index_lookup(struct hc_index *x, const char *pool, const char *app, const char *stream,
                     char *node, size_t cap)
{
    char *k = key_of(app, stream);
    bool found = false;
    if (!k)
        return false;
    /* Routed publishes first (this instance saw them), then what the
     * node itself said in a hook, then its stats (the oldest news). */
    static const int order[] = {SRC_ROUTED, SRC_HOOK, SRC_STATS};
    uint64_t now = x->clock();
    pthread_rwlock_rdlock(&x->lock);
    for (int pass = 0; pass < 3 && !found; pass++)
        for (struct entry *e = x->b[hash(k)]; e; e = e->next)
            if (e->src == order[pass] && strcmp(e->key, k) == 0 && strcmp(e->pool, pool) == 0 &&
                (e->src != SRC_HOOK || e->expires_ms > now)) {
                snprintf(node, cap, "%s", e->node);
                found = true;
                break;
            }
    pthread_rwlock_unlock(&x->lock);
    free(k);
    return found;
}

bool hc_index_reported(struct hc_index *x, const char *pool, const char *node, const char *app,
                       const char *stream)
{
    char *k = key_of(app, stream);
    bool found = false;
    if (!k)
        return false;
    uint64_t now = x->clock();
    pthread_rwlock_rdlock(&x->lock);
    for (struct entry *e = x->b[hash(k)]; e && !found; e = e->next)
        found = e->src != SRC_ROUTED && strcmp(e->key, k) == 0 && strcmp(e->pool, pool) == 0 &&
                strcmp(e->node, node) == 0 && (e->src != SRC_HOOK || e->expires_ms > now);
    pthread_rwlock_unlock(&x->lock);
    free(k);
    return found;
}

size_t hc_index_count(struct hc_index *x)
{
    pthread_rwlock_rdlock(&x->lock);
    size_t n = x->n;
    pthread_rwlock_unlock(&x->lock);
    return n;
}

/* ---- origin hooks ----------------------------------------------------------- */

void hc_index_set_hook_limits(struct hc_index *x, size_t max, uint64_t ttl_ms)
{
    pthread_rwlock_wrlock(&x->lock);
    x->max_hooks = max ? max : 1;
    x->hook_ttl_ms = ttl_ms ? ttl_ms : 1;
    pthread_rwlock_unlock(&x->lock);
}

void hc_index_set_clock(struct hc_index *x, uint64_t (*clock)(void))
{
    x->clock = clock ? clock : mono_ms;
}

static void hook_unlist(struct hc_index *x, struct entry *e)
{
    if (e->hook_prev)
        e->hook_prev->hook_next = e->hook_next;
    else
        x->hook_head = e->hook_next;
    if (e->hook_next)
        e->hook_next->hook_prev = e->hook_prev;
    else
        x->hook_tail = e->hook_prev;
    e->hook_next = e->hook_prev = NULL;
}

static void hook_append(struct hc_index *x, struct entry *e)
{
    e->hook_prev = x->hook_tail;
    e->hook_next = NULL;
    if (x->hook_tail)
        x->hook_tail->hook_next = e;
    else
        x->hook_head = e;
    x->hook_tail = e;
}

static void hook_drop(struct hc_index *x, struct entry *e)
{
    hook_unlist(x, e);
    unlink_entry(x, e);
    free_entry(e);
    x->n_hooks--;
}

/* Drops expired hook entries (the list is ordered by expiry: every entry
 * gets the same TTL when added or confirmed). Caller holds the write lock. */
static void hook_expire(struct hc_index *x, uint64_t now)
{
    while (x->hook_head && x->hook_head->expires_ms <= now)
        hook_drop(x, x->hook_head);
}

int hc_index_hook_publish(struct hc_index *x, const char *pool, const char *node, const char *app,
                          const char *stream, uint64_t *evicted)
{
    char *k = key_of(app, stream);
    int rc = -1;
    if (evicted)
        *evicted = 0;
    if (!k)
        return -1;
    uint64_t now = x->clock();
    pthread_rwlock_wrlock(&x->lock);
    hook_expire(x, now);
    struct entry *e = find_locked(x, pool, node, k, SRC_HOOK);
    if (e) {
        hook_unlist(x, e);
        rc = 1;
    } else {
        if (x->n_hooks >= x->max_hooks && x->hook_head) {
            hook_drop(x, x->hook_head); /* the least recently confirmed */
            x->hooks_evicted++;
            if (evicted)
                *evicted = x->hooks_evicted;
        }
        e = add_locked(x, pool, node, k, SRC_HOOK);
        if (e) {
            e->app_len = strlen(app);
            x->n_hooks++;
            rc = 0;
        }
    }
    if (e) {
        e->expires_ms = now + x->hook_ttl_ms;
        hook_append(x, e);
    }
    pthread_rwlock_unlock(&x->lock);
    free(k);
    return rc;
}

bool hc_index_hook_touch(struct hc_index *x, const char *pool, const char *node, const char *app,
                         const char *stream)
{
    char *k = key_of(app, stream);
    if (!k)
        return false;
    uint64_t now = x->clock();
    pthread_rwlock_wrlock(&x->lock);
    hook_expire(x, now);
    struct entry *e = find_locked(x, pool, node, k, SRC_HOOK);
    if (e) {
        hook_unlist(x, e);
        e->expires_ms = now + x->hook_ttl_ms;
        hook_append(x, e);
    }
    pthread_rwlock_unlock(&x->lock);
    free(k);
    return e != NULL;
}

bool hc_index_hook_unpublish(struct hc_index *x, const char *pool, const char *node,
                             const char *app, const char *stream)
{
    char *k = key_of(app, stream);
    if (!k)
        return false;
    pthread_rwlock_wrlock(&x->lock);
    hook_expire(x, x->clock());
    struct entry *e = find_locked(x, pool, node, k, SRC_HOOK);
    if (e)
        hook_drop(x, e);
    pthread_rwlock_unlock(&x->lock);
    free(k);
    return e != NULL;
}

size_t hc_index_clear_hooks(struct hc_index *x, const char *pool, const char *node)
{
    size_t n = 0;
    pthread_rwlock_wrlock(&x->lock);
    for (struct entry *e = x->hook_head, *next; e; e = next) {
        next = e->hook_next;
        if (strcmp(e->pool, pool) == 0 && strcmp(e->node, node) == 0) {
            hook_drop(x, e);
            n++;
        }
    }
    pthread_rwlock_unlock(&x->lock);
    return n;
}

size_t hc_index_count_hooks(struct hc_index *x, uint64_t *evicted)
{
    pthread_rwlock_rdlock(&x->lock);
    size_t n = 0;
    uint64_t now = x->clock();
    for (struct entry *e = x->hook_tail; e && e->expires_ms > now; e = e->hook_prev)
        n++;
    if (evicted)
        *evicted = x->hooks_evicted;
    pthread_rwlock_unlock(&x->lock);
    return n;
}

void hc_index_each_hook(struct hc_index *x, hc_hook_cb cb, void *arg)
{
    char app[HC_APP_MAX], stream[HC_NAME_MAX];
    pthread_rwlock_rdlock(&x->lock);
    uint64_t now = x->clock();
    for (struct entry *e = x->hook_head; e; e = e->hook_next) {
        if (e->expires_ms <= now)
            continue;
        size_t al = e->app_len < sizeof(app) - 1 ? e->app_len : sizeof(app) - 1;
        memcpy(app, e->key, al);
        app[al] = '\0';
        snprintf(stream, sizeof(stream), "%s", e->key + e->app_len + 1);
        cb(arg, e->pool, e->node, app, stream, e->expires_ms - now);
    }
    pthread_rwlock_unlock(&x->lock);
}

/* ---- nginx-rtmp /stat (XML) -------------------------------------------- */

static int refuse(struct hc_stats_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int refuse(struct hc_stats_report *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->error, sizeof(rep->error), fmt, ap);
    va_end(ap);
    return -1;
}

static xmlNode *child(xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

/* The text of n into out; false when it does not fit (out is then ""). */
static bool text_of(xmlNode *n, char *out, size_t cap)
{
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    size_t len = t ? strlen((const char *)t) : 0;
    bool fits = len < cap;
    if (fits)
        memcpy(out, t ? (const char *)t : "", len + 1);
    else
        out[0] = '\0';
    xmlFree(t);
    return fits;
}

/* A DOCTYPE stops the parse where it starts: no DTD is read, no entity is
 * declared, so no entity can be expanded ("billion laughs") and nothing is
 * fetched. nginx-rtmp's /stat never has one. */
static void refuse_doctype(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                           const xmlChar *sys_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    (void)name;
    (void)ext_id;
    (void)sys_id;
    ctxt->_private = (void *)"a DOCTYPE (DTDs and entity declarations are refused)";
    xmlStopParser(ctxt);
}

/* <rtmp><server><application><name>APP</name><live><stream><name>S</name>
 * <bw_in>..</bw_in><nclients>..</nclients><publishing/>... */
int hc_parse_nginx_stat(const char *doc, size_t len, struct hc_stream *out, size_t cap,
                        struct hc_stats_report *rep)
{
    struct hc_stats_report spare;
    if (!rep)
        rep = &spare;
    memset(rep, 0, sizeof(*rep));
    if (len > HC_STATS_DOC_MAX)
        return refuse(rep, "document over %u bytes", HC_STATS_DOC_MAX);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return refuse(rep, "out of memory");
    ctxt->sax->internalSubset = refuse_doctype;
    ctxt->sax->externalSubset = refuse_doctype;
    /* No XML_PARSE_NOENT (substitution), DTDLOAD, DTDATTR or HUGE:
     * libxml2's own limits on names, text and depth stay in force. */
    xmlDoc *d = xmlCtxtReadMemory(ctxt, doc, (int)len, "stat.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (ctxt->_private || !d || !ctxt->wellFormed) {
        if (ctxt->_private) {
            refuse(rep, "%s", (const char *)ctxt->_private);
        } else {
            const xmlError *e = xmlCtxtGetLastError(ctxt);
            char msg[120];
            snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "not well-formed");
            msg[strcspn(msg, "\n")] = '\0';
            refuse(rep, "XML line %d: %s", e ? e->line : 0, msg);
        }
        xmlFreeDoc(d);
        xmlFreeParserCtxt(ctxt);
        return -1;
    }
    xmlFreeParserCtxt(ctxt);
    xmlNode *root = xmlDocGetRootElement(d);
    int n = 0;
    if (!root || strcmp((const char *)root->name, "rtmp") != 0) {
        xmlFreeDoc(d);
        return refuse(rep, "the root element is not <rtmp>");
    }
    for (xmlNode *srv = root->children; srv; srv = srv->next) {
        if (srv->type != XML_ELEMENT_NODE || strcmp((const char *)srv->name, "server") != 0)
            continue;
        for (xmlNode *app = srv->children; app; app = app->next) {
            if (app->type != XML_ELEMENT_NODE ||
                strcmp((const char *)app->name, "application") != 0)
                continue;
            char appname[sizeof(out->app)];
            bool app_fits = text_of(child(app, "name"), appname, sizeof(appname));
            xmlNode *live = child(app, "live");
            for (xmlNode *st = live ? live->children : NULL; st; st = st->next) {
                if (st->type != XML_ELEMENT_NODE || strcmp((const char *)st->name, "stream") != 0)
                    continue;
                if ((size_t)n >= cap) {
                    rep->over_cap++;
                    continue;
                }
                struct hc_stream *s = &out[n];
                memset(s, 0, sizeof(*s));
                if (!app_fits || !text_of(child(st, "name"), s->name, sizeof(s->name))) {
                    rep->long_names++;
                    continue;
                }
                n++;
                memcpy(s->app, appname, sizeof(s->app));
                s->publishing = child(st, "publishing") != NULL;
                char num[32];
                if (text_of(child(st, "nclients"), num, sizeof(num)))
                    s->clients = (unsigned)strtoul(num, NULL, 10);
                if (text_of(child(st, "bw_in"), num, sizeof(num)))
                    s->bw_in = strtoull(num, NULL, 10);
            }
        }
    }
    xmlFreeDoc(d);
    return n;
}

/* ---- SRS /api/v1/streams (JSON) ----------------------------------------- */

/* A string member of obj that fits in out (cap bytes with the NUL). */
static bool json_str(json_object *obj, const char *key, char *out, size_t cap)
{
    json_object *v;
    out[0] = '\0';
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return true; /* absent or not a string: empty */
    size_t len = (size_t)json_object_get_string_len(v);
    if (len >= cap)
        return false;
    memcpy(out, json_object_get_string(v), len);
    out[len] = '\0';
    return true;
}

/* {"code":0,"streams":[{"name":"s","app":"live","clients":2,
 *   "kbps":{"recv_30s":..},"publish":{"active":true,...}},...]} */
int hc_parse_srs_streams(const char *doc, size_t len, struct hc_stream *out, size_t cap,
                         struct hc_stats_report *rep)
{
    struct hc_stats_report spare;
    if (!rep)
        rep = &spare;
    memset(rep, 0, sizeof(*rep));
    if (len > HC_STATS_DOC_MAX)
        return refuse(rep, "document over %u bytes", HC_STATS_DOC_MAX);
    /* json-c stops at the depth limit, before building anything deeper. */
    struct json_tokener *tok = json_tokener_new_ex(HC_STATS_JSON_DEPTH);
    if (!tok)
        return refuse(rep, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, doc, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root) {
        if (jerr == json_tokener_continue)
            return refuse(rep, "JSON truncated after %zu bytes", len);
        if (jerr == json_tokener_error_depth)
            return refuse(rep, "JSON nested deeper than %d", HC_STATS_JSON_DEPTH);
        return refuse(rep, "JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
    }
    while (end < len && (doc[end] == ' ' || doc[end] == '\t' || doc[end] == '\r' ||
                         doc[end] == '\n'))
        end++;
    json_object *streams, *code;
    if (end < len) {
        json_object_put(root);
        return refuse(rep, "JSON: bytes after the document at byte %zu", end);
    }
    if (!json_object_object_get_ex(root, "streams", &streams) ||
        !json_object_is_type(streams, json_type_array)) {
        json_object_put(root);
        return refuse(rep, "JSON: no \"streams\" array");
    }
    if (json_object_object_get_ex(root, "code", &code) && json_object_get_int(code) != 0) {
        json_object_put(root);
        return refuse(rep, "SRS answered code %d", json_object_get_int(code));
    }
    int n = 0;
    size_t count = json_object_array_length(streams);
    for (size_t i = 0; i < count; i++) {
        json_object *st = json_object_array_get_idx(streams, i), *v, *pub, *active, *kbps, *recv;
        if (!json_object_is_type(st, json_type_object))
            continue;
        if ((size_t)n >= cap) {
            rep->over_cap++;
            continue;
        }
        struct hc_stream *s = &out[n];
        memset(s, 0, sizeof(*s));
        if (!json_str(st, "app", s->app, sizeof(s->app)) ||
            !json_str(st, "name", s->name, sizeof(s->name))) {
            rep->long_names++;
            continue;
        }
        n++;
        if (json_object_object_get_ex(st, "clients", &v)) {
            int64_t c = json_object_get_int64(v);
            s->clients = c < 0 ? 0 : c > UINT32_MAX ? UINT32_MAX : (unsigned)c;
        }
        s->publishing = json_object_object_get_ex(st, "publish", &pub) &&
                        json_object_object_get_ex(pub, "active", &active) &&
                        json_object_get_boolean(active);
        if (json_object_object_get_ex(st, "kbps", &kbps) &&
            json_object_object_get_ex(kbps, "recv_30s", &recv)) {
            int64_t k = json_object_get_int64(recv);
            s->bw_in = k < 0 ? 0 : (uint64_t)k * 1000;
        }
    }
    json_object_put(root);
    return n;
}
