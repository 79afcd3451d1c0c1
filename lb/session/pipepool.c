/* Per-worker pool of pipes for splice(2). A session borrows a pipe only
 * while bytes are in flight and returns it empty, so idle sessions hold no
 * pipe. When no pipe can be had (budget reached, EMFILE) the caller falls
 * back to a read/write copy for that transfer. */
#include "lb/session/session.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void lb_pipepool_init(struct lb_pipepool *pp, size_t max_live, size_t max_idle)
{
    pp->idle = calloc(max_idle ? max_idle : 1, sizeof(*pp->idle));
    pp->n_idle = 0;
    pp->max_idle = pp->idle ? max_idle : 0;
    pp->n_out = 0;
    pp->n_live = 0;
    pp->max_live = max_live;
    pp->pipe_size = LB_PIPE_SIZE;
    pp->created = 0;
    pp->fallbacks = 0;
}

bool lb_pipe_get(struct lb_pipepool *pp, struct lb_pipe *out)
{
    int fds[2];

    if (pp->n_idle > 0) {
        *out = pp->idle[--pp->n_idle];
    } else {
        if (pp->n_live >= pp->max_live)
            return false;
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
            return false; /* EMFILE, ENFILE: the caller copies instead */
        out->rfd = fds[0];
        out->wfd = fds[1];
        /* Larger pipes mean fewer splice calls per megabyte. Pages are only
         * used while bytes sit in the pipe, and a pipe is only held while
         * bytes are in flight. Keep the kernel's size if it refuses. */
        if (pp->pipe_size > 65536 && fcntl(fds[1], F_SETPIPE_SZ, (int)pp->pipe_size) < 0)
            pp->pipe_size = 65536;
        pp->n_live++;
        pp->created++;
        if (pp->created_all)
            atomic_fetch_add(pp->created_all, 1);
    }
    pp->n_out++;
    atomic_store_explicit(&pp->in_use, pp->n_out, memory_order_relaxed);
    return true;
}

void lb_pipe_put(struct lb_pipepool *pp, struct lb_pipe *p, bool empty)
{
    pp->n_out--;
    atomic_store_explicit(&pp->in_use, pp->n_out, memory_order_relaxed);
    if (empty && pp->n_idle < pp->max_idle) {
        pp->idle[pp->n_idle++] = *p;
    } else {
        close(p->rfd);
        close(p->wfd);
        pp->n_live--;
    }
    p->rfd = p->wfd = -1;
}

void lb_pipepool_destroy(struct lb_pipepool *pp)
{
    for (size_t i = 0; i < pp->n_idle; i++) {
        close(pp->idle[i].rfd);
        close(pp->idle[i].wfd);
    }
    pp->n_live -= pp->n_idle;
    pp->n_idle = 0;
    free(pp->idle);
    pp->idle = NULL;
}
