/* A worker thread: its own libuv loop, its own SO_REUSEPORT socket per
 * listener, its own sessions and pipe pool. Nothing here is shared with
 * other workers except atomics. The control thread talks to a worker only
 * through `cmd`, `next_snap` and the `wake` async handle. */
#include "lb/worker/worker.h"

#include "lb/log.h"
#include "lb/session/session.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCEPTS_PER_WAKE 64
#define ACCEPT_PAUSE_MS 100

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

/* Stop accepting for a moment (out of descriptors, a poll error), then
 * poll again: never spin on a listener, never stop for good. */
static void pause_accepting(struct lb_worker *w)
{
    listeners_poll(w, false);
    uv_timer_start(&w->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
}

static bool log_due(struct lb_worker *w)
{
    uint64_t now = uv_now(&w->loop);
    if (now - w->last_refuse_log_ms < 1000)
        return false;
    w->last_refuse_log_ms = now;
    return true;
}

/* Out of descriptors: shed the waiting connection with the spare fd rather
 * than spin on a readable listener, and pause accepting briefly. */
static void on_emfile(struct lb_worker *w, struct lb_wlistener *l)
{
    if (w->reserve_fd >= 0) {
        close(w->reserve_fd);
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    atomic_fetch_add(&w->host.env->sessions_refused, 1);
    pause_accepting(w);
    if (log_due(w))
        lb_log_msg(LB_LOG_WARN, "accept_emfile",
                   "worker %u out of file descriptors with %u sessions; refusing new "
                   "connections for %dms",
                   w->id, w->host.n_sessions, ACCEPT_PAUSE_MS);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    struct lb_wlistener *l = h->data;
    struct lb_worker *w = l->w;
    struct lb_env *env = w->host.env;

    if (status < 0) {
        lb_log_msg(LB_LOG_ERROR, "accept", "listener %s: poll error %s; polling again in %dms",
                   l->info.name, uv_strerror(status), ACCEPT_PAUSE_MS);
        pause_accepting(w);
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
                lb_log_msg(LB_LOG_WARN, "accept", "listener %s: %s", l->info.name,
                           strerror(errno));
            return;
        }
        unsigned live = atomic_fetch_add(&env->sessions, 1);
        if (live >= atomic_load(&env->max_sessions)) {
            atomic_fetch_sub(&env->sessions, 1);
            uint64_t refused = atomic_fetch_add(&env->sessions_refused, 1) + 1;
            if (log_due(w))
                lb_log_msg(LB_LOG_WARN, "session_refused",
                           "at max_sessions (%u): refusing new connections (%llu refused so far)",
                           atomic_load(&env->max_sessions), (unsigned long long)refused);
            close(fd);
            continue;
        }
        atomic_fetch_add(&env->sessions_total, 1);
        lb_session_start(&w->host, &l->info, fd, (struct sockaddr *)&ss, len);
    }
}

static void close_all_sessions(struct lb_worker *w)
{
    while (w->host.sessions)
        lb_session_end(w->host.sessions, LB_REASON_SHUTDOWN); /* unlinks it */
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct lb_worker *w = t->data;
    if (w->host.sessions)
        lb_log_msg(LB_LOG_WARN, "drain_timeout", "worker %u: closing %u sessions still open",
                   w->id, w->host.n_sessions);
    close_all_sessions(w);
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
    w->on_finished(w->finished_arg);
}

static void on_session_gone(struct lb_shost *h)
{
    struct lb_worker *w = (struct lb_worker *)((char *)h - offsetof(struct lb_worker, host));
    if (w->stopping && h->n_sessions == 0)
        finish(w);
}

static void begin_stop(struct lb_worker *w)
{
    uint64_t drain = (uint64_t)atomic_load(&w->host.env->drain_ms);

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
    if (w->host.n_sessions == 0) {
        finish(w);
        return;
    }
    if (drain == 0)
        close_all_sessions(w);
    else
        uv_timer_start(&w->drain_timer, on_drain_timeout, drain, 0);
}

static void on_wake(uv_async_t *a)
{
    struct lb_worker *w = a->data;
    struct ups_snapshot *next = atomic_exchange(&w->next_snap, NULL);
    unsigned cmd = atomic_exchange(&w->cmd, 0);

    if (next) {
        ups_snapshot_unref(w->host.snap);
        w->host.snap = next;
    }
    if ((cmd & LB_CMD_STOP) && !w->stopping)
        begin_stop(w);
    if (cmd & LB_CMD_FORCE)
        close_all_sessions(w);
    if (cmd & LB_CMD_EXIT) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        uv_close((uv_handle_t *)&w->accept_pause, NULL);
    }
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
    ups_snapshot_unref(w->host.snap);
    w->host.snap = NULL;
    lb_log_msg(LB_LOG_INFO, "worker_stopped",
               "worker %u: %llu pipes created (budget %zu, %zu bytes each), %llu transfers "
               "copied for want of a pipe",
               w->id, (unsigned long long)w->host.pipes.created, w->host.pipes.max_live,
               w->host.pipes.pipe_size, (unsigned long long)w->host.pipes.fallbacks);
    lb_pipepool_destroy(&w->host.pipes);
    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0)
        lb_log_msg(LB_LOG_ERROR, "bug", "worker %u: loop closed with handles open: %s", w->id,
                   uv_strerror(rc));
}

int lb_worker_start(struct lb_worker *w)
{
    int rc;

    if ((rc = uv_loop_init(&w->loop)) < 0)
        return rc;
    if ((rc = uv_async_init(&w->loop, &w->wake, on_wake)) < 0 ||
        (rc = uv_timer_init(&w->loop, &w->drain_timer)) < 0 ||
        (rc = uv_timer_init(&w->loop, &w->accept_pause)) < 0)
        return rc;
    w->wake.data = w;
    w->drain_timer.data = w;
    w->accept_pause.data = w;
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w->host.loop = &w->loop;
    w->host.worker_id = w->id;
    w->host.on_gone = on_session_gone;
    lb_pipepool_init(&w->host.pipes, w->pipes_max, 64);
    w->host.pipes.created_all = &w->host.env->pipes_created;
    for (size_t i = 0; i < w->n_listeners; i++) {
        struct lb_wlistener *l = &w->listeners[i];
        l->w = w;
        if ((rc = uv_poll_init_socket(&w->loop, &l->poll, l->fd)) < 0)
            return rc;
        l->poll.data = l;
        l->open = true;
    }
    listeners_poll(w, true);
    rc = uv_thread_create(&w->thread, worker_main, w);
    w->started = rc == 0;
    return rc;
}
