/* A worker thread: its own libuv loop, its own SO_REUSEPORT socket per
 * listener, its own sessions and pipe pool. Nothing here is shared with
 * other workers except atomics. The control thread talks to a worker only
 * through `cmd`, `next_snap` and the `wake` async handle. */
#include "lb/lb.h"
#include "lb/log.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKE 64
#define EMFILE_PAUSE_MS 100

static void on_accept(uv_poll_t *h, int status, int events);

static void listeners_poll(struct lb_worker *w, bool on)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct lb_wlistener *l = &w->listeners[i];
        if (!l->open)
            continue;
        if (on)
            uv_poll_start(&l->poll, UV_READABLE, on_accept);
        else
            uv_poll_stop(&l->poll);
    }
}

static void on_accept_resume(uv_timer_t *t)
{
    struct lb_worker *w = t->data;
    if (!w->stopping)
        listeners_poll(w, true);
}

/* Out of descriptors: shed the waiting connection with the spare fd rather
 * than spin on a readable listener, and pause accepting briefly. */
static void on_emfile(struct lb_worker *w, struct lb_wlistener *l)
{
    uint64_t now = uv_now(&w->loop);

    if (w->reserve_fd >= 0) {
        close(w->reserve_fd);
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    atomic_fetch_add(&w->srv->sessions_refused, 1);
    listeners_poll(w, false);
    uv_timer_start(&w->accept_pause, on_accept_resume, EMFILE_PAUSE_MS, 0);
    if (now - w->last_emfile_log_ms >= 1000) {
        w->last_emfile_log_ms = now;
        lb_log_msg(LB_LOG_WARN, "accept_emfile",
                   "worker %u out of file descriptors with %u sessions; refusing new "
                   "connections for %dms",
                   w->id, w->n_sessions, EMFILE_PAUSE_MS);
    }
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    struct lb_wlistener *l = h->data;
    struct lb_worker *w = l->w;
    struct lb_server *srv = w->srv;

    if (status < 0) {
        lb_log_msg(LB_LOG_ERROR, "accept", "listener %s: poll error %s", l->name,
                   uv_strerror(status));
        return;
    }
    for (int i = 0; i < ACCEPTS_PER_WAKE && !w->stopping; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                on_emfile(w, l);
            else if (errno != EAGAIN)
                lb_log_msg(LB_LOG_WARN, "accept", "listener %s: %s", l->name, strerror(errno));
            return;
        }
        unsigned live = atomic_fetch_add(&srv->sessions, 1);
        if (live >= atomic_load(&srv->max_sessions)) {
            atomic_fetch_sub(&srv->sessions, 1);
            uint64_t refused = atomic_fetch_add(&srv->sessions_refused, 1) + 1;
            uint64_t now = uv_now(&w->loop);
            if (now - w->last_emfile_log_ms >= 1000) {
                w->last_emfile_log_ms = now;
                lb_log_msg(LB_LOG_WARN, "session_refused",
                           "at max_sessions (%u): refusing new connections (%llu refused so far)",
                           atomic_load(&srv->max_sessions), (unsigned long long)refused);
            }
            close(fd);
            continue;
        }
        atomic_fetch_add(&srv->sessions_total, 1);
        lb_session_start(w, l, fd, (struct sockaddr *)&ss, len);
    }
}

static void close_all_sessions(struct lb_worker *w, const char *reason)
{
    while (w->sessions)
        lb_session_close(w->sessions, reason); /* unlinks it */
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct lb_worker *w = t->data;
    if (w->sessions)
        lb_log_msg(LB_LOG_WARN, "drain_timeout", "worker %u: closing %u sessions still open",
                   w->id, w->n_sessions);
    close_all_sessions(w, "shutdown");
}

/* All sessions gone while stopping: tell the control thread. The loop
 * keeps only its wake handle until the control thread says EXIT. */
static void finish(struct lb_worker *w)
{
    if (w->finished)
        return;
    w->finished = true;
    uv_timer_stop(&w->drain_timer);
    uv_timer_stop(&w->accept_pause);
    atomic_fetch_sub(&w->srv->workers_running_atomic, 1);
    uv_async_send(&w->srv->worker_done);
}

static void begin_stop(struct lb_worker *w)
{
    uint64_t drain = (uint64_t)atomic_load(&w->srv->drain_ms);

    w->stopping = true;
    uv_timer_stop(&w->accept_pause);
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct lb_wlistener *l = &w->listeners[i];
        if (l->open) {
            uv_close((uv_handle_t *)&l->poll, NULL);
            close(l->fd);
            l->open = false;
        }
    }
    if (w->n_sessions == 0) {
        finish(w);
        return;
    }
    if (drain == 0)
        close_all_sessions(w, "shutdown");
    else
        uv_timer_start(&w->drain_timer, on_drain_timeout, drain, 0);
}

static void on_wake(uv_async_t *a)
{
    struct lb_worker *w = a->data;
    struct ups_snapshot *next = atomic_exchange(&w->next_snap, NULL);
    unsigned cmd = atomic_exchange(&w->cmd, 0);

    if (next) {
        ups_snapshot_unref(w->snap);
        w->snap = next;
    }
    if ((cmd & LB_CMD_STOP) && !w->stopping)
        begin_stop(w);
    if (cmd & LB_CMD_FORCE)
        close_all_sessions(w, "shutdown");
    if (cmd & LB_CMD_EXIT) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        uv_close((uv_handle_t *)&w->accept_pause, NULL);
    }
}

void lb_worker_session_gone(struct lb_worker *w)
{
    w->n_sessions--;
    if (w->stopping && w->n_sessions == 0)
        finish(w);
}

void lb_worker_command(struct lb_worker *w, unsigned cmd)
{
    atomic_fetch_or(&w->cmd, cmd);
    uv_async_send(&w->wake);
}

void lb_worker_publish_snapshot(struct lb_worker *w, struct ups_snapshot *snap)
{
    struct ups_snapshot *old = atomic_exchange(&w->next_snap, ups_snapshot_ref(snap));
    if (old)
        ups_snapshot_unref(old);
    uv_async_send(&w->wake);
}

static void worker_main(void *arg)
{
    struct lb_worker *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    struct ups_snapshot *next = atomic_exchange(&w->next_snap, NULL);
    if (next)
        ups_snapshot_unref(next);
    ups_snapshot_unref(w->snap);
    w->snap = NULL;
    lb_log_msg(LB_LOG_INFO, "worker_stopped",
               "worker %u: %llu pipes created (budget %zu, %zu bytes each), %llu transfers "
               "copied for want of a pipe",
               w->id, (unsigned long long)w->pipes.created, w->pipes.max_live,
               w->pipes.pipe_size, (unsigned long long)w->pipes.fallbacks);
    lb_pipepool_destroy(&w->pipes);
    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0)
        lb_log_msg(LB_LOG_ERROR, "bug", "worker %u: loop closed with handles open: %s", w->id,
                   uv_strerror(rc));
}

/* Called on the main thread with w->listeners[i].fd already bound. */
int lb_worker_start(struct lb_worker *w)
{
    int rc;

    if ((rc = uv_loop_init(&w->loop)) < 0)
        return rc;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_timer_init(&w->loop, &w->accept_pause);
    w->accept_pause.data = w;
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    lb_pipepool_init(&w->pipes, w->srv->pipes_per_worker, 64);
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct lb_wlistener *l = &w->listeners[i];
        l->w = w;
        if ((rc = uv_poll_init_socket(&w->loop, &l->poll, l->fd)) < 0)
            return rc;
        l->poll.data = l;
        l->open = true;
    }
    listeners_poll(w, true);
    return uv_thread_create(&w->thread, worker_main, w);
}
