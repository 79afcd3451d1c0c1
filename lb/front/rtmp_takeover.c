/* Publisher takeover, the front door's side (issue 12 item 4). A publish
 * claims its stream in the registry of live publishes (lb/pubreg.h) before
 * it is routed. When another session of this instance publishes the same
 * app/stream on the same route, the route's publish_conflict decides:
 *
 *   reject    NetStream.Publish.BadName to the new client; the old
 *             publish is untouched.
 *   takeover  the old session's worker ends it (both its legs); this
 *             session waits (TAKEOVER) until the registry says the old
 *             claim is gone, then until the origin released the name:
 *             while the old node's own stats (or hooks) in the stream
 *             index list the stream, if they did when the takeover began;
 *             else a short settle delay after the old leg closed; then
 *             it is routed to the old node first (ups_request.pin_node),
 *             not re-hashed elsewhere.
 *
 * Everything is bounded by timeouts.takeover. The phase never closes the
 * old session itself: its owner does, on its own loop. */
#include "lb/front/rtmp-int.h"
#include "lb/log.h"
#include "lb/pubreg.h"
#include "upstream/upstream.h"

#include <stdlib.h>
#include <string.h>

#define TAKEOVER_POLL_MS 10
/* Without stats that say otherwise, the old leg closed this long ago is
 * taken as released: nginx-rtmp unpublishes on the TCP close at once. */
#define TAKEOVER_SETTLE_MS 100

static struct rtmp_phase *st(const struct lb_front *f) { return f->state; }

static const char *conflict_name(int policy)
{
    switch (policy) {
    case CONF_PUBCONF_TAKEOVER:
        return "takeover";
    case CONF_PUBCONF_REJECT:
        return "reject";
    default:
        return "auto";
    }
}

static struct lb_action refuse(struct lb_front *f, const struct ups_route *rt,
                               const struct lb_pub_owner *old, bool pending)
{
    struct rtmp_phase *r = st(f);
    struct lb_logline l;

    lb_pubreg_count_outcome(f->pubreg, LB_PUB_OUT_REJECT);
    lb_log_begin(&l, LB_LOG_WARN, "publish_conflict");
    lb_log_str(&l, "client", f->client_text);
    lb_log_str(&l, "app", f->app);
    lb_log_str(&l, "stream", f->stream);
    lb_log_str(&l, "route", rt->name);
    lb_log_str(&l, "old_client", old->client);
    lb_log_str(&l, "node", old->node[0] ? old->node : NULL);
    lb_log_str(&l, "policy", conflict_name(rt->publish_conflict));
    lb_log_str(&l, "outcome", pending ? "reject:takeover_pending" : "reject");
    lb_log_end(&l);
    r->fail_code = "NetStream.Publish.BadName";
    if (pending)
        return lb_rp_fail(f, LB_REASON_PUBLISH_CONFLICT,
                          "rtmplb: %s/%s is being taken over by another publisher already", f->app,
                          f->stream);
    return lb_rp_fail(f, LB_REASON_PUBLISH_CONFLICT,
                      "rtmplb: %s/%s is already being published (by %s, route %s); "
                      "publish_conflict: %s refuses a second publisher",
                      f->app, f->stream, old->client, rt->name, conflict_name(rt->publish_conflict));
}

/* The old node itself (its stats, its hooks) says the stream is live. */
static bool reported(const struct lb_front *f, const struct lb_pub_owner *old)
{
    const struct ups_stream_view *v = f->req.streams;
    if (!old->node[0] || !v || !v->reported)
        return false;
    return v->reported(v->ctx, old->pool, old->node, f->app, f->stream);
}

struct lb_action lb_rp_publish(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);

    f->role = CONF_ROLE_PUBLISH;
    f->req.l4 = false;
    f->req.role = CONF_ROLE_PUBLISH;
    f->req.app = f->app;
    f->req.stream = f->stream;
    f->req.at_connect = false;
    f->req.pin_node = NULL;
    if (!f->pubreg || !f->app || !f->stream)
        return lb_rp_route(f, CONF_ROLE_PUBLISH);
    /* The same pure lookup the core's routing makes next. */
    const struct ups_route *rt = ups_route_find(f->snap, &f->req);
    if (!rt)
        return lb_rp_route(f, CONF_ROLE_PUBLISH); /* the core says "no route" */

    struct lb_pub_who who = {f->req.worker, f->peer, f->client_text, f->now_ms};
    struct lb_pub_owner old;
    uint64_t id = 0;
    memset(&old, 0, sizeof(old));
    enum lb_pub_claim c = lb_pubreg_claim(f->pubreg, rt->name, f->app, f->stream, &who, &id, &old);
    if (c == LB_PUB_CLAIMED) {
        f->pub_id = id;
        return lb_rp_route(f, CONF_ROLE_PUBLISH);
    }
    if (c == LB_PUB_NOMEM)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (c == LB_PUB_PENDING ||
        !lb_pubreg_decide_takeover(rt->publish_conflict, (const struct sockaddr *)&old.addr,
                                   f->peer))
        return refuse(f, rt, &old, c == LB_PUB_PENDING);

    r->take_old = malloc(sizeof(*r->take_old));
    if (!r->take_old)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    *r->take_old = old;
    c = lb_pubreg_take(f->pubreg, rt->name, f->app, f->stream, old.id, &who, &id, &old);
    if (c == LB_PUB_NOMEM)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (c != LB_PUB_CLAIMED) /* another publisher got in between */
        return refuse(f, rt, &old, c == LB_PUB_PENDING);
    f->pub_id = id;
    r->st = RP_TAKEOVER;
    r->take_start = f->now_ms;
    r->take_deadline = f->now_ms + f->lim->takeover_ms;
    r->take_gone_ms = 0;
    /* The node's stats (or hooks) know the old publish: wait until they
     * say it is gone. Otherwise a short delay after its leg closed. */
    r->take_wait = reported(f, r->take_old) ? "stats" : NULL;
    f->deadline_ms = f->now_ms + TAKEOVER_POLL_MS;
    return lb_act(LB_ACT_CONTINUE);
}

static struct lb_action go(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    const struct lb_pub_owner *old = r->take_old;
    struct lb_logline l;

    lb_pubreg_count_outcome(f->pubreg, LB_PUB_OUT_TAKEOVER);
    lb_log_begin(&l, LB_LOG_INFO, "takeover");
    lb_log_str(&l, "client", f->client_text);
    lb_log_str(&l, "old_client", old->client);
    lb_log_str(&l, "app", f->app);
    lb_log_str(&l, "stream", f->stream);
    lb_log_str(&l, "node", old->node[0] ? old->node : NULL);
    lb_log_u64(&l, "old_worker", old->worker);
    lb_log_u64(&l, "old_age_ms", r->take_start - old->since_ms);
    lb_log_str(&l, "wait", r->take_wait ? r->take_wait : "none");
    lb_log_u64(&l, "waited_ms", f->now_ms - r->take_start);
    lb_log_end(&l);
    f->req.pin_node = old->node[0] ? old->node : NULL;
    return lb_rp_route(f, CONF_ROLE_PUBLISH);
}

struct lb_action lb_rp_takeover_timer(struct lb_front *f)
{
    struct rtmp_phase *r = st(f);
    uint64_t now = f->now_ms;

    switch (lb_pubreg_status(f->pubreg, f->pub_id)) {
    case LB_PUB_GONE:
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    case LB_PUB_WAITING:
        if (now < r->take_deadline) {
            f->deadline_ms = now + TAKEOVER_POLL_MS;
            return lb_act(LB_ACT_CONTINUE);
        }
        lb_pubreg_count_outcome(f->pubreg, LB_PUB_OUT_TIMEOUT);
        lb_pubreg_release(f->pubreg, f->pub_id);
        f->pub_id = 0;
        return lb_rp_fail(f, LB_REASON_TAKEOVER_TIMEOUT,
                          "rtmplb: the previous publisher of %s/%s (%s) did not end within "
                          "timeouts.takeover",
                          f->app, f->stream, r->take_old->client);
    case LB_PUB_OWNER:
        break;
    }
    /* The old session is gone (its node leg closed): has the origin let
     * the name go? */
    if (!r->take_gone_ms)
        r->take_gone_ms = now;
    if (r->take_wait && strcmp(r->take_wait, "stats") == 0) {
        if (!reported(f, r->take_old))
            return go(f);
        if (now < r->take_deadline) {
            f->deadline_ms = now + TAKEOVER_POLL_MS;
            return lb_act(LB_ACT_CONTINUE);
        }
        r->take_wait = "stats_timeout"; /* the origin will say what it thinks */
        return go(f);
    }
    if (!r->take_wait && r->take_old->node[0])
        r->take_wait = "delay";
    if (r->take_wait && now < r->take_gone_ms + TAKEOVER_SETTLE_MS) {
        f->deadline_ms = r->take_gone_ms + TAKEOVER_SETTLE_MS;
        return lb_act(LB_ACT_CONTINUE);
    }
    return go(f);
}
