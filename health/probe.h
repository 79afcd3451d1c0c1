/* Active probes and stats polling on the control loop (probe.c). */
#ifndef HEALTH_PROBE_H
#define HEALTH_PROBE_H

#include <uv.h>

#include "conf/conf-t.h"
#include "health/streams.h"
#include "upstream/upstream.h"

struct hc_engine;

struct hc_engine *hc_engine_new(uv_loop_t *loop, struct hc_index *index);
/* (Re)builds the probes for every node with health checks or stats. Node
 * health lives in the nodes' shared state, so a reload keeps it. */
void hc_engine_apply(struct hc_engine *e, const struct conf *c, struct ups_snapshot *snap);
/* Every stream the last readable stats of each node reported. */
typedef void (*hc_stream_cb)(void *arg, const char *pool, const char *node,
                             const struct hc_stream *s);
void hc_engine_each_stream(struct hc_engine *e, hc_stream_cb cb, void *arg);
/* Every node with active checks: its probe results so far, by enum
 * hc_result (n of them). */
typedef void (*hc_probe_cb)(void *arg, const char *pool, const char *node,
                            const uint64_t *results, size_t n);
void hc_engine_each_probe(struct hc_engine *e, hc_probe_cb cb, void *arg);
/* Latency of active probes, seconds (for /metrics). */
struct lb_histo;
struct lb_histo *hc_engine_latency(struct hc_engine *e);
/* Stops every probe; the engine is freed once its handles are closed, then
 * on_closed(arg) runs. */
void hc_engine_close(struct hc_engine *e, void (*on_closed)(void *), void *arg);

#endif
