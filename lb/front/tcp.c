/* The tcp phase (L4 listeners): route on the listener (and geo) at once,
 * then splice both ways as soon as a node answers. */
#include "lb/front/front.h"

static int tcp_create(struct lb_front *f)
{
    f->state = NULL;
    return 0;
}

static struct lb_action tcp_start(struct lb_front *f)
{
    f->req.l4 = true;
    return lb_act(LB_ACT_ROUTE);
}

static struct lb_action tcp_nothing(struct lb_front *f) { return lb_act(LB_ACT_CONTINUE); }

static struct lb_action tcp_connected(struct lb_front *f)
{
    return lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
}

static struct lb_action tcp_failed(struct lb_front *f, enum lb_reason why)
{
    return lb_act_close(why);
}

static unsigned tcp_wants(const struct lb_front *f) { return 0; }

static void tcp_free(struct lb_front *f) {}

const struct lb_phase_ops lb_phase_tcp = {
    .name = "tcp",
    .create = tcp_create,
    .start = tcp_start,
    .on_client_data = tcp_nothing,
    .on_upstream_connected = tcp_connected,
    .on_upstream_data = tcp_nothing,
    .on_timer = tcp_nothing,
    .on_dials_failed = tcp_failed,
    .wants = tcp_wants,
    .free = tcp_free,
};
