#ifndef LB_WORKER_WORKER_H
#define LB_WORKER_WORKER_H

#include "lb/worker/worker-t.h"

/* Starts the thread; w->listeners[i].fd already bound. 0 or a libuv error. */
int lb_worker_start(struct lb_worker *w);
void lb_worker_command(struct lb_worker *w, unsigned cmd);
void lb_worker_publish_snapshot(struct lb_worker *w, struct ups_snapshot *snap);

/* Queues r on w (any thread); r->done runs on the control loop of
 * w->replies once w answered. */
void lb_worker_request(struct lb_worker *w, struct lb_wreq *r);
/* The control loop's end of the replies. */
int lb_wreply_init(struct lb_wreply_q *q, uv_loop_t *loop);
void lb_wreply_close(struct lb_wreply_q *q);

#endif
