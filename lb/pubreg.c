/* The registry of live publishes: one mutex, two chained hash tables (keys
 * and claim ids). Entries live while their publish does, so memory is
 * bounded by the live sessions. */
#include "lb/pubreg.h"

#include "conf/conf-t.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BUCKETS 1024
#define ID_BUCKETS 1024

struct pub;

/* One claim: a holder or a successor waiting behind it. */
struct claim {
    struct claim *id_next;
    struct pub *pub;
    struct lb_pub_owner o;
};

/* One key (route, app/stream) and who holds it. */
struct pub {
    struct pub *next;
    char *key;
    struct claim *holder;
    struct claim *succ; /* a takeover waiting for the holder to go */
};

struct lb_pubreg {
    pthread_mutex_t mu;
    struct pub *keys[KEY_BUCKETS];
    struct claim *ids[ID_BUCKETS];
    size_t n;
    uint64_t next_id;
    lb_pub_kick_fn kick;
    void *kick_arg;
    _Atomic uint64_t outcomes[LB_PUB_OUT__COUNT];
};

static const char *const outcome_names[] = {
#define X(e, n, t) n,
    LB_PUB_OUTCOME_MAP(X)
#undef X
};

const char *lb_pub_outcome_name(enum lb_pub_outcome o)
{
    return o < LB_PUB_OUT__COUNT ? outcome_names[o] : "?";
}

static unsigned hash_key(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % KEY_BUCKETS;
}

struct lb_pubreg *lb_pubreg_new(void)
{
    struct lb_pubreg *g = calloc(1, sizeof(*g));
    if (g && pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return NULL;
    }
    if (g)
        g->next_id = 1;
    return g;
}

void lb_pubreg_free(struct lb_pubreg *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < KEY_BUCKETS; i++)
        for (struct pub *p = g->keys[i], *n; p; p = n) {
            n = p->next;
            free(p->holder);
            free(p->succ);
            free(p->key);
            free(p);
        }
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void lb_pubreg_set_kick(struct lb_pubreg *g, lb_pub_kick_fn kick, void *arg)
{
    g->kick = kick;
    g->kick_arg = arg;
}

/* "route\napp\nstream": app and stream may both hold a '/', so "/" would
 * be ambiguous; a newline is in no route name, and the key only has to be
 * unambiguous for names without one (AMF strings may hold any byte, but a
 * name with a newline only shares a key with another odd name). */
static char *make_key(const char *route, const char *app, const char *stream)
{
    char *k;
    if (asprintf(&k, "%s\n%s\n%s", route ? route : "", app ? app : "", stream ? stream : "") < 0)
        return NULL;
    return k;
}

static struct pub **find_pub(struct lb_pubreg *g, const char *key)
{
    struct pub **pp = &g->keys[hash_key(key)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static struct claim **find_id(struct lb_pubreg *g, uint64_t id)
{
    struct claim **cp = &g->ids[id % ID_BUCKETS];
    while (*cp && (*cp)->o.id != id)
        cp = &(*cp)->id_next;
    return cp;
}

/* A new claim, linked by id; caller holds the lock. */
static struct claim *new_claim(struct lb_pubreg *g, struct pub *p, const struct lb_pub_who *who)
{
    struct claim *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pub = p;
    c->o.id = g->next_id++;
    c->o.worker = who->worker;
    c->o.since_ms = who->now_ms;
    if (who->addr) {
        size_t len = who->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                     : who->addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                        : 0;
        memcpy(&c->o.addr, who->addr, len);
    }
    snprintf(c->o.client, sizeof(c->o.client), "%s", who->client ? who->client : "");
    struct claim **head = &g->ids[c->o.id % ID_BUCKETS];
    c->id_next = *head;
    *head = c;
    return c;
}

static void unlink_id(struct lb_pubreg *g, struct claim *c)
{
    struct claim **cp = find_id(g, c->o.id);
    if (*cp == c)
        *cp = c->id_next;
}

enum lb_pub_claim lb_pubreg_claim(struct lb_pubreg *g, const char *route, const char *app,
                                  const char *stream, const struct lb_pub_who *who, uint64_t *id,
                                  struct lb_pub_owner *old)
{
    char *key = make_key(route, app, stream);
    enum lb_pub_claim rc = LB_PUB_NOMEM;
    if (!key)
        return rc;
    pthread_mutex_lock(&g->mu);
    struct pub **pp = find_pub(g, key), *p = *pp;
    if (p) {
        if (old)
            *old = p->holder->o;
        rc = p->succ ? LB_PUB_PENDING : LB_PUB_HELD;
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto out;
    p->key = key;
    p->holder = new_claim(g, p, who);
    if (!p->holder) {
        free(p);
        goto out;
    }
    key = NULL;
    *pp = p;
    g->n++;
    *id = p->holder->o.id;
    rc = LB_PUB_CLAIMED;
out:
    pthread_mutex_unlock(&g->mu);
    free(key);
    return rc;
}

enum lb_pub_claim lb_pubreg_take(struct lb_pubreg *g, const char *route, const char *app,
                                 const char *stream, uint64_t old_id, const struct lb_pub_who *who,
                                 uint64_t *id, struct lb_pub_owner *old)
{
    char *key = make_key(route, app, stream);
    if (!key)
        return LB_PUB_NOMEM;
    pthread_mutex_lock(&g->mu);
    struct pub *p = *find_pub(g, key);
    free(key);
    if (!p) { /* the holder went meanwhile: an ordinary claim */
        pthread_mutex_unlock(&g->mu);
        return lb_pubreg_claim(g, route, app, stream, who, id, old);
    }
    if (p->holder->o.id != old_id || p->succ) {
        if (old)
            *old = p->holder->o;
        enum lb_pub_claim rc = p->succ ? LB_PUB_PENDING : LB_PUB_HELD;
        pthread_mutex_unlock(&g->mu);
        return rc;
    }
    p->succ = new_claim(g, p, who);
    if (!p->succ) {
        pthread_mutex_unlock(&g->mu);
        return LB_PUB_NOMEM;
    }
    *id = p->succ->o.id;
    unsigned worker = p->holder->o.worker;
    lb_pub_kick_fn kick = g->kick;
    void *arg = g->kick_arg;
    pthread_mutex_unlock(&g->mu);
    /* Outside the lock: the kick may run the holder's release at once
     * (a test's fake kick does). */
    if (kick)
        kick(arg, worker, old_id);
    return LB_PUB_CLAIMED;
}

enum lb_pub_status lb_pubreg_status(struct lb_pubreg *g, uint64_t id)
{
    pthread_mutex_lock(&g->mu);
    struct claim *c = *find_id(g, id);
    enum lb_pub_status st = !c ? LB_PUB_GONE : c->pub->holder == c ? LB_PUB_OWNER : LB_PUB_WAITING;
    pthread_mutex_unlock(&g->mu);
    return st;
}

void lb_pubreg_set_node(struct lb_pubreg *g, uint64_t id, const char *pool, const char *node)
{
    pthread_mutex_lock(&g->mu);
    struct claim *c = *find_id(g, id);
    if (c) {
        snprintf(c->o.pool, sizeof(c->o.pool), "%s", pool ? pool : "");
        snprintf(c->o.node, sizeof(c->o.node), "%s", node ? node : "");
    }
    pthread_mutex_unlock(&g->mu);
}

void lb_pubreg_release(struct lb_pubreg *g, uint64_t id)
{
    pthread_mutex_lock(&g->mu);
    struct claim *c = *find_id(g, id);
    if (!c) {
        pthread_mutex_unlock(&g->mu);
        return;
    }
    struct pub *p = c->pub;
    unlink_id(g, c);
    if (p->succ == c) { /* a successor gave up waiting */
        p->succ = NULL;
    } else if (p->succ) { /* the holder went: its successor holds the key */
        p->holder = p->succ;
        p->succ = NULL;
    } else { /* the holder went: the key is free */
        struct pub **pp = find_pub(g, p->key);
        *pp = p->next;
        free(p->key);
        free(p);
        g->n--;
    }
    free(c);
    pthread_mutex_unlock(&g->mu);
}

size_t lb_pubreg_count(struct lb_pubreg *g)
{
    pthread_mutex_lock(&g->mu);
    size_t n = g->n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

void lb_pubreg_count_outcome(struct lb_pubreg *g, enum lb_pub_outcome o)
{
    if (o < LB_PUB_OUT__COUNT)
        atomic_fetch_add(&g->outcomes[o], 1);
}

uint64_t lb_pubreg_outcomes(struct lb_pubreg *g, enum lb_pub_outcome o)
{
    return o < LB_PUB_OUT__COUNT ? atomic_load(&g->outcomes[o]) : 0;
}

static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (!a || !b || a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

bool lb_pubreg_decide_takeover(int policy, const struct sockaddr *old, const struct sockaddr *new_)
{
    switch (policy) {
    case CONF_PUBCONF_TAKEOVER:
        return true;
    case CONF_PUBCONF_REJECT:
        return false;
    default: /* auto: the same encoder reconnecting */
        return same_ip(old, new_);
    }
}
