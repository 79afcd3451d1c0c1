#include "lb/admin/events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct event {
    uint64_t seq;
    int64_t time_ms;
    char kind[24];
    char pool[64];
    char node[64];
    char text[200];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct event ring[LB_EVENTS_MAX];
static uint64_t next_seq = 1; /* ring[(seq - 1) % MAX] */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lb_event_add(const char *kind, const char *pool, const char *node, const char *fmt, ...)
{
    struct event e;
    va_list ap;
    memset(&e, 0, sizeof(e));
    e.time_ms = wall_ms();
    snprintf(e.kind, sizeof(e.kind), "%s", kind);
    snprintf(e.pool, sizeof(e.pool), "%s", pool ? pool : "");
    snprintf(e.node, sizeof(e.node), "%s", node ? node : "");
    va_start(ap, fmt);
    vsnprintf(e.text, sizeof(e.text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    e.seq = next_seq++;
    ring[(e.seq - 1) % LB_EVENTS_MAX] = e;
    pthread_mutex_unlock(&mu);
}

uint64_t lb_events_count(void)
{
    pthread_mutex_lock(&mu);
    uint64_t n = next_seq - 1;
    pthread_mutex_unlock(&mu);
    return n;
}

json_object *lb_events_json(size_t limit, uint64_t since)
{
    static struct event copy[LB_EVENTS_MAX]; /* control thread only */
    size_t n = 0;
    pthread_mutex_lock(&mu);
    uint64_t last = next_seq - 1;
    uint64_t first = last > LB_EVENTS_MAX ? last - LB_EVENTS_MAX + 1 : 1;
    if (first <= since)
        first = since + 1;
    if (limit && last >= first && last - first + 1 > limit)
        first = last - limit + 1;
    for (uint64_t s = first; s <= last; s++)
        copy[n++] = ring[(s - 1) % LB_EVENTS_MAX];
    pthread_mutex_unlock(&mu);

    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const struct event *e = &copy[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
        json_object_object_add(o, "time_ms", json_object_new_int64(e->time_ms));
        json_object_object_add(o, "kind", json_object_new_string(e->kind));
        if (e->pool[0])
            json_object_object_add(o, "pool", json_object_new_string(e->pool));
        if (e->node[0])
            json_object_object_add(o, "node", json_object_new_string(e->node));
        json_object_object_add(o, "text", json_object_new_string(e->text));
        json_object_array_add(arr, o);
    }
    json_object *root = json_object_new_object();
    json_object_object_add(root, "events", arr);
    return root;
}
