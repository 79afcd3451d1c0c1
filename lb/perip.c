#include "lb/perip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SHARDS 16
#define BUCKETS 1024 /* per shard: 16 Ki chains for up to max_sessions addresses */

struct ent {
    struct lb_perip_key k;
    unsigned sessions, handshakes;
    struct ent *next;
};

struct shard {
    pthread_mutex_t mu;
    struct ent *b[BUCKETS];
};

struct lb_perip {
    uint64_t seed[2]; /* keyed hash: a client cannot aim its /64s at one chain */
    _Atomic size_t n;
    struct shard s[SHARDS];
};

struct lb_perip *lb_perip_new(void)
{
    struct lb_perip *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) {
        /* No entropy this early is unheard of; a fixed key only weakens the
         * spread, never the counting. */
        t->seed[0] = 0x9e3779b97f4a7c15ull;
        t->seed[1] = 0xbf58476d1ce4e5b9ull;
    }
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&t->s[i].mu, NULL);
    return t;
}

void lb_perip_free(struct lb_perip *t)
{
    if (!t)
        return;
    for (int i = 0; i < SHARDS; i++) {
        for (int j = 0; j < BUCKETS; j++) {
            struct ent *e = t->s[i].b[j];
            while (e) {
                struct ent *next = e->next;
                free(e);
                e = next;
            }
        }
        pthread_mutex_destroy(&t->s[i].mu);
    }
    free(t);
}

bool lb_perip_key(const struct sockaddr *sa, struct lb_perip_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        k->b[10] = k->b[11] = 0xff;
        memcpy(k->b + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(k->b, &in6->sin6_addr, 16);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(k->b, mapped, 12) != 0) /* a v4-mapped address counts as IPv4 */
            memset(k->b + 8, 0, 8);
        return true;
    }
    return false;
}

void lb_perip_key_text(const struct lb_perip_key *k, char *out, size_t cap)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char a[INET6_ADDRSTRLEN];
    if (memcmp(k->b, mapped, 12) == 0) {
        inet_ntop(AF_INET, k->b + 12, a, sizeof(a));
        snprintf(out, cap, "%s", a);
    } else {
        inet_ntop(AF_INET6, k->b, a, sizeof(a));
        snprintf(out, cap, "%s/64", a);
    }
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

static uint64_t hash(const struct lb_perip *t, const struct lb_perip_key *k)
{
    uint64_t a, b;
    memcpy(&a, k->b, 8);
    memcpy(&b, k->b + 8, 8);
    return mix(mix(a ^ t->seed[0]) + (b ^ t->seed[1]));
}

/* The entry's slot in its chain; the shard's lock is held. */
static struct ent **find(struct shard *s, uint64_t h, const struct lb_perip_key *k)
{
    struct ent **p = &s->b[(h / SHARDS) % BUCKETS];
    while (*p && memcmp((*p)->k.b, k->b, 16) != 0)
        p = &(*p)->next;
    return p;
}

enum lb_perip_verdict lb_perip_enter(struct lb_perip *t, const struct lb_perip_key *k,
                                     unsigned max_sessions, unsigned max_handshakes)
{
    uint64_t h = hash(t, k);
    struct shard *s = &t->s[h % SHARDS];
    enum lb_perip_verdict v = LB_PERIP_OK;

    pthread_mutex_lock(&s->mu);
    struct ent **p = find(s, h, k), *e = *p;
    if (e && max_sessions && e->sessions >= max_sessions)
        v = LB_PERIP_SESSIONS;
    else if (e && max_handshakes && e->handshakes >= max_handshakes)
        v = LB_PERIP_HANDSHAKES;
    else if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            e->k = *k;
            *p = e;
            atomic_fetch_add(&t->n, 1);
        }
    }
    if (v == LB_PERIP_OK && e) {
        e->sessions++;
        e->handshakes++;
    }
    /* Out of memory: admitted uncounted (its leave finds no entry). */
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void drop(struct lb_perip *t, const struct lb_perip_key *k, unsigned sessions,
                 unsigned handshakes)
{
    uint64_t h = hash(t, k);
    struct shard *s = &t->s[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct ent **p = find(s, h, k), *e = *p;
    if (e) {
        e->sessions -= sessions <= e->sessions ? sessions : e->sessions;
        e->handshakes -= handshakes <= e->handshakes ? handshakes : e->handshakes;
        if (!e->sessions) {
            *p = e->next;
            free(e);
            atomic_fetch_sub(&t->n, 1);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void lb_perip_routed(struct lb_perip *t, const struct lb_perip_key *k) { drop(t, k, 0, 1); }

void lb_perip_leave(struct lb_perip *t, const struct lb_perip_key *k, bool routed)
{
    drop(t, k, 1, routed ? 0 : 1);
}

size_t lb_perip_addresses(struct lb_perip *t) { return atomic_load(&t->n); }

void lb_perip_counts(struct lb_perip *t, const struct lb_perip_key *k, unsigned *sessions,
                     unsigned *handshakes)
{
    uint64_t h = hash(t, k);
    struct shard *s = &t->s[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct ent *e = *find(s, h, k);
    *sessions = e ? e->sessions : 0;
    *handshakes = e ? e->handshakes : 0;
    pthread_mutex_unlock(&s->mu);
}
