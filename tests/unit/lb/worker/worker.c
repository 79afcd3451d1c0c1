/* The worker request/response channel (lb/worker/, DESIGN.md "Threads and
 * shared state"), on real loops: a real worker thread with its own loop and
 * a tcp listener, real sessions (loopback clients, two nodes that are
 * listening sockets), and the test's own loop playing the control thread.
 * What the admin API relies on: a sessions request is answered with a copy
 * of every live session; a close request ends exactly the sessions of one
 * node, with the reason given, and says how many; every answer runs on the
 * control loop, in the order asked; answers after the reply queue closed
 * are dropped (freed, done never called); stop and exit leave nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "health/streams.h"
#include "lb/log.h"
#include "lb/worker/worker.h"
#include "tests/unit/support.h"

#define N_CLIENTS 6

static uv_loop_t ctl; /* the control loop */
static uv_thread_t ctl_thread;
static struct lb_wreply_q q;
static struct lb_env env;
static struct lb_worker w;
static struct lb_wlistener wl;
static struct test_fx fx;
static int nfd[2], nport[2]; /* the nodes: listening, never accepting */
static int front_port;
static int clients[N_CLIENTS];
static _Atomic int finished;

/* Answers as the control loop saw them. */
static struct {
    unsigned n_done;
    unsigned order[64]; /* arg tags, in the order done ran */
    bool wrong_thread;
    struct lb_wreq *last;
} R;

static int listen_on(int *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *p = ntohs(a.sin_port);
    return fd;
}

static void on_done(struct lb_wreq *r)
{
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &ctl_thread))
        R.wrong_thread = true;
    if (R.n_done < 64)
        R.order[R.n_done] = (unsigned)(uintptr_t)r->arg;
    R.n_done++;
    if (R.last) {
        free(R.last->sessions);
        free(R.last);
    }
    R.last = r; /* kept for the test to read; freed by the next answer */
}

static void on_finished(void *arg)
{
    (void)arg;
    atomic_store(&finished, 1); /* the worker's thread: only an atomic */
}

/* Runs the control loop until cond, at most ms milliseconds. */
#define CTL_UNTIL(cond, ms)                                                        \
    do {                                                                           \
        for (int spin_ = 0; spin_ < (ms) && !(cond); spin_++) {                   \
            uv_run(&ctl, UV_RUN_NOWAIT);                                           \
            usleep(1000);                                                          \
        }                                                                          \
    } while (0)

static struct lb_wreq *ask(int kind, unsigned tag)
{
    struct lb_wreq *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->kind = kind;
    r->done = on_done;
    r->arg = (void *)(uintptr_t)tag;
    return r;
}

/* Sends one request and waits for its answer (R.last). */
static struct lb_wreq *round_trip(struct lb_wreq *r)
{
    unsigned before = R.n_done;
    lb_worker_request(&w, r);
    CTL_UNTIL(R.n_done > before, 5000);
    assert_int_equal(R.n_done, before + 1);
    return R.last;
}

static size_t count_on(const struct lb_wreq *r, const char *node)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_sessions; i++)
        n += strcmp(r->sessions[i].node, node) == 0;
    return n;
}

static bool is_eof(int fd, int ms)
{
    for (int i = 0; i < ms; i++) {
        char b[16];
        ssize_t k = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (k == 0)
            return true;
        if (k > 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return k < 0; /* a reset ends it too */
        usleep(1000);
    }
    return false;
}

static int setup(void **st)
{
    char text[1024];
    lb_log_configure(LB_LOG_ERROR, LB_LOG_TEXT);
    lb_log_set_access_fd(-1);
    nfd[0] = listen_on(&nport[0]);
    nfd[1] = listen_on(&nport[1]);
    snprintf(text, sizeof(text),
             "listeners: [{name: front, address: 127.0.0.1:1935, mode: tcp}]\n"
             "pools:\n"
             "  p: {nodes: [{name: n1, address: 127.0.0.1:%d}, {name: n2, address: "
             "127.0.0.1:%d}]}\n"
             "routes: [{name: all, pool: p}]\n",
             nport[0], nport[1]);
    fx = test_fx_load(text, 1);

    ctl_thread = uv_thread_self();
    assert_int_equal(uv_loop_init(&ctl), 0);
    assert_int_equal(lb_wreply_init(&q, &ctl), 0);

    memset(&env, 0, sizeof(env));
    atomic_store(&env.connect_ms, 2000);
    atomic_store(&env.handshake_ms, 2000);
    atomic_store(&env.max_sessions, 100);
    env.lim = (struct lb_front_limits){.preroute_bytes = 65536};
    env.index = hc_index_new();
    assert_non_null(env.index);

    memset(&w, 0, sizeof(w));
    memset(&wl, 0, sizeof(wl));
    wl.info = (struct lb_listen_info){"front", CONF_MODE_TCP, CONF_PP_OFF, NULL, 0, false, NULL};
    wl.fd = listen_on(&front_port);
    w.id = 3;
    w.listeners = &wl;
    w.n_listeners = 1;
    w.host.env = &env;
    w.host.snap = ups_snapshot_ref(fx.snap);
    w.pipes_max = 16;
    w.replies = &q;
    w.on_finished = on_finished;
    atomic_store(&finished, 0);
    assert_int_equal(lb_worker_start(&w), 0);
    assert_true(w.started);
    memset(&R, 0, sizeof(R));
    return 0;
}

static int teardown(void **st)
{
    if (R.last) {
        free(R.last->sessions);
        free(R.last);
        R.last = NULL;
    }
    for (int i = 0; i < N_CLIENTS; i++) {
        if (clients[i] > 0)
            close(clients[i]);
        clients[i] = -1;
    }
    close(nfd[0]);
    close(nfd[1]);
    hc_index_free(env.index);
    test_fx_free(&fx);
    return 0;
}

/* Stops the worker as the process does: STOP (drain 0: close all), wait
 * for on_finished, EXIT, join; then the control loop closes clean. */
static void stop_worker(bool replies_closed)
{
    lb_worker_command(&w, LB_CMD_STOP);
    for (int i = 0; i < 5000 && !atomic_load(&finished); i++)
        usleep(1000);
    assert_true(atomic_load(&finished));
    assert_int_equal(atomic_load(&env.sessions), 0);
    lb_worker_command(&w, LB_CMD_EXIT);
    assert_int_equal(uv_thread_join(&w.thread), 0);
    uv_mutex_destroy(&w.inbox_mu);
    if (!replies_closed)
        lb_wreply_close(&q);
    uv_run(&ctl, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&ctl), 0);
}

static void connect_clients(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)front_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < N_CLIENTS; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(clients[i] >= 0);
        assert_int_equal(connect(clients[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
}

/* Sessions until all N_CLIENTS are splicing on their node. */
static struct lb_wreq *all_splicing(size_t want)
{
    struct lb_wreq *r = NULL;
    for (int i = 0; i < 500; i++) {
        r = round_trip(ask(LB_WREQ_SESSIONS, 100));
        size_t n = 0;
        for (size_t k = 0; k < r->n_sessions; k++)
            n += strcmp(r->sessions[k].state, "splicing") == 0;
        if (r->n_sessions == want && n == want)
            return r;
        usleep(10000);
    }
    return r;
}

static void test_sessions_and_close_node(void **st)
{
    connect_clients();
    struct lb_wreq *r = all_splicing(N_CLIENTS);
    assert_int_equal(r->n_sessions, N_CLIENTS);
    assert_int_equal(r->worker, 3);
    assert_false(R.wrong_thread);
    /* Weighted round robin: the nodes take turns. */
    assert_int_equal(count_on(r, "n1"), N_CLIENTS / 2);
    assert_int_equal(count_on(r, "n2"), N_CLIENTS / 2);
    for (size_t i = 0; i < r->n_sessions; i++) {
        const struct lb_wsession *s = &r->sessions[i];
        assert_string_equal(s->listener, "front");
        assert_string_equal(s->role, "tcp");
        assert_string_equal(s->route, "all");
        assert_string_equal(s->pool, "p");
        assert_string_equal(s->state, "splicing");
        assert_int_equal(s->worker, 3);
        assert_true(strncmp(s->client, "127.0.0.1:", 10) == 0);
        assert_true(s->age_ms < 60000);
    }
    /* Each client's session, by its own port: which node it is on. */
    char on[N_CLIENTS][64];
    for (int i = 0; i < N_CLIENTS; i++) {
        struct sockaddr_in me;
        socklen_t len = sizeof(me);
        assert_int_equal(getsockname(clients[i], (struct sockaddr *)&me, &len), 0);
        char want[64];
        snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(me.sin_port));
        on[i][0] = '\0';
        for (size_t k = 0; k < r->n_sessions; k++)
            if (strcmp(r->sessions[k].client, want) == 0)
                snprintf(on[i], sizeof(on[i]), "%s", r->sessions[k].node);
        assert_true(on[i][0] != '\0');
    }

    /* A takeover for a publish claim no session holds (tcp sessions hold
     * none): nothing ends. */
    struct lb_wreq *t = ask(LB_WREQ_TAKEOVER, 150);
    t->pub_id = 12345;
    assert_int_equal(round_trip(t)->closed, 0);
    assert_int_equal(atomic_load(&env.sessions), N_CLIENTS);
    assert_int_equal(atomic_load(&env.ends[LB_REASON_TAKEN_OVER]), 0);

    /* Close n1's sessions: exactly those end, with the reason given. */
    struct lb_wreq *c = ask(LB_WREQ_CLOSE_NODE, 200);
    snprintf(c->pool, sizeof(c->pool), "p");
    snprintf(c->node, sizeof(c->node), "n1");
    c->reason = LB_REASON_ADMIN_DISABLED;
    r = round_trip(c);
    assert_int_equal(r->closed, N_CLIENTS / 2);
    assert_int_equal(atomic_load(&env.ends[LB_REASON_ADMIN_DISABLED]), N_CLIENTS / 2);
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(is_eof(clients[i], strcmp(on[i], "n1") == 0 ? 3000 : 50),
                         strcmp(on[i], "n1") == 0);
    r = round_trip(ask(LB_WREQ_SESSIONS, 101));
    assert_int_equal(r->n_sessions, N_CLIENTS / 2);
    assert_int_equal(count_on(r, "n2"), N_CLIENTS / 2);

    /* A node of another pool, or unknown: nothing closed. */
    c = ask(LB_WREQ_CLOSE_NODE, 201);
    snprintf(c->pool, sizeof(c->pool), "q");
    snprintf(c->node, sizeof(c->node), "n2");
    c->reason = LB_REASON_ADMIN_DRAINED;
    assert_int_equal(round_trip(c)->closed, 0);
    assert_int_equal(atomic_load(&env.ends[LB_REASON_ADMIN_DRAINED]), 0);
    assert_int_equal(atomic_load(&env.sessions), N_CLIENTS / 2);

    /* Many requests at once: each answered once, on the control loop, in
     * the order asked. */
    unsigned before = R.n_done;
    for (unsigned i = 0; i < 40; i++)
        lb_worker_request(&w, ask(LB_WREQ_SESSIONS, 1000 + i));
    CTL_UNTIL(R.n_done >= before + 40, 5000);
    assert_int_equal(R.n_done, before + 40);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(R.order[before + i], 1000 + i);
    assert_int_equal(R.last->n_sessions, N_CLIENTS / 2);
    assert_false(R.wrong_thread);

    /* The control loop is going: answers are dropped, done never runs. */
    lb_wreply_close(&q);
    before = R.n_done;
    lb_worker_request(&w, ask(LB_WREQ_SESSIONS, 300));
    c = ask(LB_WREQ_CLOSE_NODE, 301);
    snprintf(c->pool, sizeof(c->pool), "p");
    snprintf(c->node, sizeof(c->node), "n2");
    c->reason = LB_REASON_ADMIN_DISABLED;
    lb_worker_request(&w, c);
    /* The close still happens on the worker: the operator asked for it. */
    for (int i = 0; i < 3000 && atomic_load(&env.sessions) > 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&env.sessions), 0);
    assert_int_equal(atomic_load(&env.ends[LB_REASON_ADMIN_DISABLED]), N_CLIENTS);
    /* Stopping with the queue closed (as the process does it). */
    stop_worker(true);
    assert_int_equal(R.n_done, before);
}

/* A worker with sessions still open when it stops: they end with
 * reason shutdown, and a request asked just before is still answered. */
static void test_stop_with_sessions(void **st)
{
    connect_clients();
    struct lb_wreq *r = all_splicing(N_CLIENTS);
    assert_int_equal(r->n_sessions, N_CLIENTS);
    unsigned before = R.n_done;
    lb_worker_request(&w, ask(LB_WREQ_SESSIONS, 400));
    CTL_UNTIL(R.n_done > before, 5000);
    assert_int_equal(R.order[before], 400);
    stop_worker(false);
    assert_int_equal(atomic_load(&env.ends[LB_REASON_SHUTDOWN]), N_CLIENTS);
    for (int i = 0; i < N_CLIENTS; i++)
        assert_true(is_eof(clients[i], 3000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_and_close_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_sessions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
