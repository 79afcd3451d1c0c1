#include "health/passive.h"

#include "lb/admin/events.h"
#include "lb/log.h"

#include <stdio.h>
#include <time.h>

void hc_log_transition(const char *pool, const char *node, bool up, enum hc_result r,
                       const char *reason, const char *detail, uint64_t checks)
{
    struct lb_logline l;
    lb_log_begin(&l, up ? LB_LOG_INFO : LB_LOG_WARN, up ? "node_up" : "node_down");
    lb_log_str(&l, "pool", pool);
    lb_log_str(&l, "node", node);
    lb_log_str(&l, "check", hc_result_name(r));
    lb_log_str(&l, "reason", reason ? reason : hc_result_text(r));
    lb_log_str(&l, "detail", detail);
    if (checks)
        lb_log_u64(&l, "checks", checks);
    lb_log_end(&l);
    lb_event_add(up ? "node_up" : "node_down", pool, node, "%s: %s%s%s%s", hc_result_name(r),
                 reason ? reason : hc_result_text(r), detail ? " (" : "", detail ? detail : "",
                 detail ? ")" : "");
}

int64_t hc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hc_passive_failure(struct ups_node *n, const char *why)
{
    atomic_fetch_add(&n->live->dial_failures, 1);
    if (!n->checked)
        return;
    unsigned fails = atomic_fetch_add(&n->live->passive_fails, 1) + 1;
    int up = UPS_UP;
    if (fails >= n->fall && atomic_compare_exchange_strong(&n->live->health, &up, UPS_DOWN)) {
        char reason[64];
        atomic_store(&n->live->health_since_ms, hc_wall_ms());
        snprintf(reason, sizeof(reason), "%u sessions in a row failed to reach it", fails);
        hc_log_transition(n->pool->name, n->name, false, HC_PASSIVE, reason, why, 0);
    }
}

void hc_passive_success(struct ups_node *n)
{
    if (atomic_load(&n->live->passive_fails))
        atomic_store(&n->live->passive_fails, 0);
}
