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
    uint64_t t_start_ms;
    struct lb_compat *compat; /* api_compat.c: the hooks secret */
};

json_object *lb__admin_u64(uint64_t v);
long long lb__admin_query_uint(const struct lb_http_request *req, const char *name, long long def);
bool lb__admin_query_copy(const struct lb_http_request *req, const char *name, char *out,
                          size_t cap, struct lb_http_response *res);

/* api_live.c */
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
