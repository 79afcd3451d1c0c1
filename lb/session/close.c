/* The end of a session: its access-log line, its node and buffers given
 * back, its handles closed (the memory goes with the last one), and the
 * FAILING state, in which an error reply drains to the client. */
#include "lb/session/internal.h"

#include "health/streams.h"
#include "conf/conf.h"
#include "lb/log.h"
#include "lb/pubreg.h"
#include "upstream/upstream.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAIL_LINGER_MS 1000

/* ---- closing ---------------------------------------------------------- */

static void free_session(struct lb_session *s)
{
    struct lb_shost *h = s->h;
    ups_snapshot_unref(s->snap);
    free(s->f.app);
    free(s->f.stream);
    free(s);
    h->n_sessions--;
    if (h->on_gone)
        h->on_gone(h);
}

/* The one close callback of a session's handles. A closing upstream poll
 * of a failed node may start the next dial; the memory goes with the last
 * handle. */
void lb__on_handle_closed(uv_handle_t *handle)
{
    struct lb_session *s = handle->data;
    s->open_handles--;
    if (s->redial && handle == (uv_handle_t *)&s->upoll) {
        s->redial = false;
        if (s->state == LB_SS_DIALING) {
            lb__dial_next(s);
            lb__settle(s);
            return;
        }
    }
    if (s->state == LB_SS_CLOSING && s->open_handles == 0)
        free_session(s);
}

void lb__upoll_close(struct lb_session *s, bool redial)
{
    if (!s->upoll_open)
        return;
    s->upoll_open = false;
    s->uev = 0;
    s->redial = redial;
    uv_close((uv_handle_t *)&s->upoll, lb__on_handle_closed);
    lb_conn_release(&s->upstream);
    s->u_tls_hs = false;
    close(s->upstream.fd); /* after uv_close: never close a polled fd */
    s->upstream.fd = -1;
}

static void access_log(struct lb_session *s)
{
    struct lb_logline l;
    const struct ups_route *r = s->f.route;
    uint64_t dur_ms = (uv_hrtime() - s->t_accept_ns) / 1000000;

    if (s->reason == LB_REASON_UPSTREAM_ERROR) /* the others were logged when they failed */
        lb_log_msg(LB_LOG_WARN, "upstream_error", "client %s: node %s: %s", s->client_text,
                   s->node ? s->node->name : "?",
                   s->sys_error ? uv_err_name(uv_translate_sys_error(s->sys_error)) : "error");
    lb_log_begin_access(&l, "session");
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "listener", s->lst->name);
    lb_log_str(&l, "route", r ? r->name : NULL);
    lb_log_str(&l, "pool", r ? r->pool->name : NULL);
    lb_log_str(&l, "node", s->log_node ? s->log_node->name : NULL);
    lb_log_str(&l, "upstream", !s->log_node ? NULL
                               : s->f.req.http && s->log_node->http_address_text
                                   ? s->log_node->http_address_text
                                   : s->log_node->address_text);
    if (s->snap && s->snap->geo)
        lb_log_str(&l, "country", s->country[0] ? s->country : NULL);
    if (s->f.hs_kind) {
        lb_log_str(&l, "role", conf_role_name(s->f.role));
        lb_log_str(&l, "app", s->f.app);
        lb_log_str(&l, "stream", s->f.stream);
        lb_log_str(&l, "handshake", s->f.hs_kind);
        if (s->preroute_us >= 0)
            lb_log_num(&l, "preroute_ms", (double)s->preroute_us / 1000.0);
        else
            lb_log_null(&l, "preroute_ms"); /* never routed */
    }
    lb_log_u64(&l, "dials", s->f.dials);
    lb_log_u64(&l, "bytes_in", s->f.client_bytes + s->c2u.bytes);
    lb_log_u64(&l, "bytes_out", s->f.upstream_bytes + s->u2c.bytes);
    lb_log_u64(&l, "duration_ms", dur_ms);
    lb_log_str(&l, "reason", lb_reason_name(s->reason));
    if (s->sys_error)
        lb_log_str(&l, "error", uv_err_name(uv_translate_sys_error(s->sys_error)));
    lb_log_end(&l);
}

void lb__front_free(struct lb_session *s)
{
    if (s->front_live) {
        s->f.ops->free(&s->f);
        s->front_live = false;
    }
    lb_buf_free(&s->f.to_client);
    lb_buf_free(&s->f.to_upstream);
}

static void release_node(struct lb_session *s)
{
    struct ups_node *n = s->node;
    if (!n)
        return;
    atomic_fetch_add(&n->live->bytes_from_client,
                     s->f.client_bytes - s->credited_in + s->c2u.bytes);
    atomic_fetch_add(&n->live->bytes_to_client,
                     s->f.upstream_bytes - s->credited_out + s->u2c.bytes);
    if (s->indexed)
        hc_index_remove_publish(s->h->env->index, n->pool->name, n->name, s->f.app, s->f.stream);
    s->indexed = false;
    ups_node_release(n);
}

/* The publish's claim goes after its index entry: a successor waiting on
 * the claim then finds the index without it. */
static void release_claim(struct lb_session *s)
{
    if (s->f.pub_id && s->h->env->pubreg)
        lb_pubreg_release(s->h->env->pubreg, s->f.pub_id);
    s->f.pub_id = 0;
}

/* The session ends or fails with an early dial the ROUTE never took: it
 * was not routed (the logs name no route or node). */
static void early_unused(struct lb_session *s)
{
    if (!s->early)
        return;
    s->early = false;
    lb__early_count(s, LB_EARLY_UNUSED);
    s->f.route = NULL;
    s->log_node = NULL;
    s->f.dials = 0;
    /* Its node had nothing of the client's: no bytes credited to it. */
    lb__dialq_leave(s);
    if (s->node)
        ups_node_release(s->node);
    s->node = NULL;
    s->f.node = NULL;
}

void lb__close_now(struct lb_session *s, enum lb_reason r)
{
    struct lb_env *env = s->h->env;
    if (s->state == LB_SS_CLOSING)
        return;
    early_unused(s);
    lb__set_state(s, LB_SS_CLOSING);
    s->reason = r;
    if (r != LB_REASON_PER_IP_SESSIONS && r != LB_REASON_PER_IP_HANDSHAKES)
        access_log(s); /* those are counted, and logged at most once a second */
    atomic_fetch_add(&env->ends[r], 1);
    if (s->ip_counted)
        lb_perip_leave(env->perip, &s->ip_key, s->ip_routed);
    s->ip_counted = false;
    lb__dialq_leave(s);
    release_node(s);
    lb__dir_release(s, &s->c2u);
    lb__dir_release(s, &s->u2c);
    lb__front_free(s);
    free(s->pp_in);
    s->pp_in = NULL;

    /* Unlink now: the host's count drops when the memory goes. */
    if (s->prev)
        s->prev->next = s->next;
    else
        s->h->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    atomic_fetch_sub(&env->sessions, 1);

    uv_close((uv_handle_t *)&s->timer, lb__on_handle_closed);
    uv_close((uv_handle_t *)&s->cpoll, lb__on_handle_closed);
    lb_conn_release(&s->client);
    close(s->client.fd);
    s->redial = false;
    lb__upoll_close(s, false);
    lb_conn_release(&s->upstream);
    if (s->upstream.fd >= 0)
        close(s->upstream.fd);
    s->upstream.fd = -1;
    release_claim(s); /* both legs are closed: a successor may go */
}

void lb_session_end(struct lb_session *s, enum lb_reason r)
{
    lb__close_now(s, r);
}

bool lb_session_close_on_node(struct lb_session *s, enum lb_reason r)
{
    if (!s->early) {
        lb__close_now(s, r);
        return true;
    }
    lb__early_let_go(s);
    lb__settle(s);
    return false;
}

static void log_refused(struct lb_session *s, enum lb_reason r)
{
    struct lb_logline l;
    bool http = s->f.hs_kind && strcmp(s->f.hs_kind, "http") == 0;
    lb_log_begin(&l, LB_LOG_WARN, http ? "http_refused" : s->f.hs_kind ? "rtmp_refused"
                                                                       : "session_refused");
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "app", s->f.app);
    lb_log_str(&l, "stream", s->f.stream);
    lb_log_str(&l, "reason", lb_reason_name(r));
    lb_log_str(&l, "detail", s->f.message[0] ? s->f.message : lb_reason_text(r));
    lb_log_end(&l);
}

/* FAIL: the error is queued for the client; the node's leg goes now. The
 * client's write side is shut once the error is out, and what it still
 * sends is read and dropped for a short linger, so it reads the error
 * instead of a reset. */
void lb__begin_failing(struct lb_session *s, enum lb_reason r)
{
    early_unused(s);
    log_refused(s, r);
    s->reason = r;
    lb__dialq_leave(s);
    lb__set_state(s, LB_SS_FAILING);
    if (s->front_live) {
        s->f.ops->free(&s->f);
        s->front_live = false;
    }
    lb_buf_free(&s->f.to_upstream);
    lb__dir_release(s, &s->c2u);
    lb__dir_release(s, &s->u2c);
    s->c2u.pumped = s->u2c.pumped = s->c2u.wanted = s->u2c.wanted = false;
    release_node(s);
    s->node = NULL;
    lb__upoll_close(s, false);
    release_claim(s);
    s->dial_deadline = 0;
    s->linger_deadline = lb__now(s) + FAIL_LINGER_MS;
}
