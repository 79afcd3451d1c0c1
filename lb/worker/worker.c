/* A worker thread: its own libuv loop, its own SO_REUSEPORT socket per
 * listener, its own sessions and pipe pool. Nothing here is shared with
 * other workers except atomics. The control thread talks to a worker only
 * through `cmd`, `next_snap` and the `wake` async handle. */
#include "lb/worker/worker.h"

#include "conf/conf.h"
#include "lb/log.h"
#include "lb/session/session.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <stdio.h>
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
    size_t li = (size_t)(l - w->listeners);
    if (li < w->host.env->n_lstats)
        atomic_fetch_add(&w->host.env->lstats[li].refused, 1);
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
        size_t li = (size_t)(l - w->listeners);
        struct lb_lstat *ls = li < env->n_lstats ? &env->lstats[li] : NULL;
        unsigned live = atomic_fetch_add(&env->sessions, 1);
        if (live >= atomic_load(&env->max_sessions)) {
            atomic_fetch_sub(&env->sessions, 1);
            if (ls)
                atomic_fetch_add(&ls->refused, 1);
            uint64_t refused = atomic_fetch_add(&env->sessions_refused, 1) + 1;
            if (log_due(w))
                lb_log_msg(LB_LOG_WARN, "session_refused",
                           "at max_sessions (%u): refusing new connections (%llu refused so far)",
                           atomic_load(&env->max_sessions), (unsigned long long)refused);
            close(fd);
            continue;
        }
        atomic_fetch_add(&env->sessions_total, 1);
        if (ls)
            atomic_fetch_add(&ls->accepted, 1);
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

/* ---- requests from the control thread ----------------------------------- */

static const char *const sstate_names[] = {
#define X(e, n) n,
    LB_SSTATE_MAP(X)
#undef X
};

static void copy_session(struct lb_worker *w, const struct lb_session *s, struct lb_wsession *o,
                         uint64_t now_ns)
{
    /* A node dialled early is not the session's until its command. */
    const struct ups_node *n = s->early ? NULL : s->node ? s->node : s->log_node;
    memset(o, 0, sizeof(*o));
    snprintf(o->client, sizeof(o->client), "%s", s->client_text);
    snprintf(o->listener, sizeof(o->listener), "%s", s->lst ? s->lst->name : "");
    snprintf(o->role, sizeof(o->role), "%s",
             !s->rtmp_mode ? "tcp" : conf_role_name(s->f.role));
    snprintf(o->app, sizeof(o->app), "%s", s->f.app ? s->f.app : "");
    snprintf(o->stream, sizeof(o->stream), "%s", s->f.stream ? s->f.stream : "");
    if (s->f.route && !s->early) {
        snprintf(o->route, sizeof(o->route), "%s", s->f.route->name);
        snprintf(o->pool, sizeof(o->pool), "%s", s->f.route->pool->name);
    }
    if (n) {
        snprintf(o->pool, sizeof(o->pool), "%s", n->pool->name);
        snprintf(o->node, sizeof(o->node), "%s", n->name);
    }
    snprintf(o->country, sizeof(o->country), "%s", s->country);
    o->state = s->state <= LB_SS_CLOSING ? sstate_names[s->state] : "?";
    o->worker = w->id;
    o->age_ms = (now_ns - s->t_accept_ns) / 1000000;
    o->bytes_in = s->f.client_bytes + s->c2u.bytes;
    o->bytes_out = s->f.upstream_bytes + s->u2c.bytes;
}

static void answer_sessions(struct lb_worker *w, struct lb_wreq *r)
{
    size_t n = 0;
    uint64_t now = uv_hrtime();
    for (struct lb_session *s = w->host.sessions; s; s = s->next)
        n++;
    r->sessions = n ? malloc(n * sizeof(*r->sessions)) : NULL;
    r->n_sessions = 0;
    if (!r->sessions)
        return;
    for (struct lb_session *s = w->host.sessions; s && r->n_sessions < n; s = s->next)
        copy_session(w, s, &r->sessions[r->n_sessions++], now);
}

static void answer_close_node(struct lb_worker *w, struct lb_wreq *r)
{
    struct lb_session *s = w->host.sessions, *next;
    for (; s; s = next) {
        next = s->next; /* lb_session_end unlinks s only */
        const struct ups_node *n = s->node;
        if (!n || strcmp(n->name, r->node) != 0 || strcmp(n->pool->name, r->pool) != 0)
            continue;
        if (lb_session_close_on_node(s, (enum lb_reason)r->reason))
            r->closed++;
    }
}

/* A publisher takeover: the claim's session ends, both legs at once (its
 * claim is released last, lb/session/close.c). */
static void answer_takeover(struct lb_worker *w, struct lb_wreq *r)
{
    for (struct lb_session *s = w->host.sessions; s; s = s->next) {
        if (s->f.pub_id != r->pub_id)
            continue;
        lb_session_end(s, LB_REASON_TAKEN_OVER);
        r->closed++;
        return;
    }
}

static void post_reply(struct lb_wreply_q *q, struct lb_wreq *r)
{
    r->next = NULL;
    uv_mutex_lock(&q->mu);
    if (q->closed) { /* stopping: nobody waits for it any more */
        uv_mutex_unlock(&q->mu);
        free(r->sessions);
        free(r);
        return;
    }
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    uv_async_send(&q->async); /* under the lock: close waits for it */
    uv_mutex_unlock(&q->mu);
}

static void run_requests(struct lb_worker *w)
{
    uv_mutex_lock(&w->inbox_mu);
    struct lb_wreq *r = w->inbox;
    w->inbox = NULL;
    uv_mutex_unlock(&w->inbox_mu);
    for (struct lb_wreq *next; r; r = next) {
        next = r->next;
        r->worker = w->id;
        if (r->kind == LB_WREQ_SESSIONS)
            answer_sessions(w, r);
        else if (r->kind == LB_WREQ_CLOSE_NODE)
            answer_close_node(w, r);
        else if (r->kind == LB_WREQ_TAKEOVER)
            answer_takeover(w, r);
        post_reply(w->replies, r);
    }
}

void lb_worker_request(struct lb_worker *w, struct lb_wreq *r)
{
    uv_mutex_lock(&w->inbox_mu);
    r->next = NULL;
    struct lb_wreq **p = &w->inbox;
    while (*p)
        p = &(*p)->next;
    *p = r;
    uv_mutex_unlock(&w->inbox_mu);
    uv_async_send(&w->wake);
}

static void on_replies(uv_async_t *a)
{
    struct lb_wreply_q *q = a->data;
    uv_mutex_lock(&q->mu);
    struct lb_wreq *r = q->head;
    q->head = q->tail = NULL;
    uv_mutex_unlock(&q->mu);
    for (struct lb_wreq *next; r; r = next) {
        next = r->next;
        r->done(r);
    }
}

int lb_wreply_init(struct lb_wreply_q *q, uv_loop_t *loop)
{
    int rc;
    q->head = q->tail = NULL;
    q->closed = false;
    if ((rc = uv_mutex_init(&q->mu)) < 0)
        return rc;
    if ((rc = uv_async_init(loop, &q->async, on_replies)) < 0)
        return rc;
    q->async.data = q;
    return 0;
}

void lb_wreply_close(struct lb_wreply_q *q)
{
    uv_mutex_lock(&q->mu);
    q->closed = true;
    struct lb_wreq *r = q->head;
    q->head = q->tail = NULL;
    uv_mutex_unlock(&q->mu);
    for (struct lb_wreq *next; r; r = next) {
        next = r->next;
        free(r->sessions);
        free(r);
    }
    uv_close((uv_handle_t *)&q->async, NULL);
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
    if (w->replies)
        run_requests(w);
    if ((cmd & LB_CMD_STOP) && !w->stopping)
        begin_stop(w);
    if (cmd & LB_CMD_FORCE)
        close_all_sessions(w);
    if (cmd & LB_CMD_EXIT) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
        uv_close((uv_handle_t *)&w->accept_pause, NULL);
        lb_dialq_close(&w->host);
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
    if ((rc = uv_mutex_init(&w->inbox_mu)) < 0)
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
