/* Shared by the admin API's files only (api.c: routes, views, mutations,
 * start/stop; api_live.c: what the workers know; api_metrics.c). */
#ifndef LB_ADMIN_API_INT_H
#define LB_ADMIN_API_INT_H

#include <json-c/json.h>
#include <stdint.h>
#include <uv.h>

#include "lb/admin/http.h"
#include "lb/reason.h"

struct lb_server;

struct lb_admin {
    struct lb_server *srv;
    struct lb_http_server *http;
    uv_timer_t drain_timer;
    uv_timer_t rate_timer; /* samples each node's byte counters into bitrates */
    uint64_t t_start_ms;
    int64_t t_start_wall_ms;
    uint64_t viewed_ms; /* loop time of the last upstreams/page read (0: never) */
    int closed;         /* timers closed (stop frees at 2) */
    char conf_hash[20]; /* FNV-1a 64 of the config file in force, hex */
    struct lb_compat *compat; /* api_compat.c: the hooks secret */
};

json_object *lb__admin_u64(uint64_t v);
long long lb__admin_query_uint(const struct lb_http_request *req, const char *name, long long def);
bool lb__admin_query_copy(const struct lb_http_request *req, const char *name, char *out,
                          size_t cap, struct lb_http_response *res);
/* The listener called name, or with no name the first rtmp listener; else
 * a 404 naming it (hint, if not NULL, is added: where the name came from). */
const struct lb_listener_spec *lb__admin_find_listener(struct lb_server *srv, const char *name,
                                                       const char *hint,
                                                       struct lb_http_response *res);

/* GET /api/v1/process */
json_object *lb__admin_process_json(struct lb_admin *a);
/* The snapshot tables of the status page (st filled with what the control
 * thread knows; the caller adds streams and sessions) and the reply. */
struct lb_page_state;
void lb__admin_page_fill(struct lb_admin *a, struct lb_page_state *st);
void lb__admin_page_reply(struct lb_http_response *res, const struct lb_page_state *st);

/* api_live.c */
/* GET / for a reader: gathers sessions and streams from the workers, then
 * answers the page with its snapshot. */
void lb__admin_page_gather(struct lb_admin *a, struct lb_http_response *res);
/* Samples every node's bytes (closed and live sessions) into its bitrate. */
void lb__admin_sample_rates(struct lb_admin *a);
void lb__admin_close_node_sessions(struct lb_server *srv, const char *pool, const char *node,
                                   enum lb_reason reason);
void lb__admin_sessions(void *ud, const struct lb_http_request *req, struct lb_http_response *res);
void lb__admin_streams(void *ud, const struct lb_http_request *req, struct lb_http_response *res);

/* api_compat.c: stock origins' endpoints (COMPAT.md) */
int lb__compat_start(struct lb_admin *a, char *err, size_t errlen);
void lb__compat_reloaded(struct lb_admin *a);
void lb__compat_stop(struct lb_admin *a);
void lb__compat_on_play(void *ud, const struct lb_http_request *req, struct lb_http_response *res);
void lb__compat_on_publish(void *ud, const struct lb_http_request *req,
                           struct lb_http_response *res);
void lb__compat_oclp_pull(void *ud, const struct lb_http_request *req,
                          struct lb_http_response *res);
void lb__compat_srs_hook(void *ud, const struct lb_http_request *req,
                         struct lb_http_response *res);

/* api_metrics.c */
void lb__admin_metrics(void *ud, const struct lb_http_request *req, struct lb_http_response *res);

#endif
