#ifndef LB_WORKER_WORKER_H
#define LB_WORKER_WORKER_H

#include "lb/worker/worker-t.h"

/* Starts the thread; w->listeners[i].fd already bound. 0 or a libuv error. */
int lb_worker_start(struct lb_worker *w);
void lb_worker_command(struct lb_worker *w, unsigned cmd);
void lb_worker_publish_snapshot(struct lb_worker *w, struct ups_snapshot *snap);

#endif
