/* The session core (lb/session/) with a fake phase that answers scripted
 * actions, on a real libuv loop: the client is one end of a socketpair,
 * the nodes are listening sockets on loopback. Each action (CONTINUE,
 * ROUTE, DIAL, SPLICE, FAIL, CLOSE), each way a session ends, and that
 * nothing is left behind: every handle closed (uv_loop_close == 0), every
 * descriptor closed, the phase freed exactly once, the counters right.
 * The listener's `phase` field (lb/session/session-t.h) is the seam that
 * lets the test choose the phase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "health/streams.h"
#include "lb/session/session.h"
#include "tests/unit/support.h"

/* ---- the fake phase ------------------------------------------------------------ */

static struct {
    const char *app;            /* the request's app */
    uint64_t timer_in;          /* start: a deadline this far ahead; 0: none */
    struct lb_action start, client, timer, dials_failed, up_eof;
    struct lb_action connected[4]; /* per connection, in order */
    struct lb_action upstream;      /* bytes from the node */
    struct lb_action clients[4];    /* per client event, when n_clients (else client) */
    unsigned n_clients;
    struct lb_action adopted;       /* on_adopted */
    unsigned n_adopted, n_gone;
    unsigned wants_front, wants_up; /* before / after a node connected */
    const char *client_out;   /* queued for the client on on_client_data */
    const char *connect_out;  /* queued for the client on on_upstream_connected */
    const char *greeting;     /* queued for the node on on_upstream_connected */
    const char *fail_out;     /* queued for the client with a FAIL answer */
    unsigned n_create, n_free, n_start, n_client, n_connected, n_upstream, n_timer, n_failed;
    enum lb_reason failed_why;
    char got[4096];
    size_t got_n;
} S;

struct fp_state {
    char tag[16]; /* heap, so ASan sees a phase that is never freed */
};

static struct lb_action queue(struct lb_front *f, struct lb_buf *b, const char *s,
                              struct lb_action a)
{
    if (s && lb_buf_append(b, s, strlen(s), 1 << 20) < 0)
        return lb_act_close(LB_REASON_INTERNAL_ERROR);
    if (a.kind == LB_ACT_FAIL && S.fail_out)
        lb_buf_append(&f->to_client, S.fail_out, strlen(S.fail_out), 1 << 20);
    return a;
}

static int fp_create(struct lb_front *f)
{
    S.n_create++;
    f->state = calloc(1, sizeof(struct fp_state));
    return f->state ? 0 : -1;
}

static struct lb_action fp_start(struct lb_front *f)
{
    S.n_start++;
    f->app = strdup(S.app ? S.app : "live");
    f->req.l4 = false;
    f->req.role = CONF_ROLE_PLAY;
    f->req.app = f->app;
    f->req.stream = "s";
    f->hs_kind = "none";
    if (S.timer_in)
        f->deadline_ms = f->now_ms + S.timer_in;
    return S.start;
}

static struct lb_action fp_client(struct lb_front *f)
{
    S.n_client++;
    for (int i = 0; i < 64; i++) {
        uint8_t b[512];
        ssize_t n = lb_front_read_client(f, b, sizeof(b));
        if (n == -EAGAIN)
            break;
        if (n <= 0)
            return lb_act_close(n == 0 ? LB_REASON_CLIENT_CLOSED : LB_REASON_CLIENT_ERROR);
        size_t k = (size_t)n < sizeof(S.got) - S.got_n ? (size_t)n : sizeof(S.got) - S.got_n;
        memcpy(S.got + S.got_n, b, k);
        S.got_n += k;
    }
    struct lb_action a = S.n_clients ? S.clients[S.n_client - 1 < S.n_clients ? S.n_client - 1
                                                                             : S.n_clients - 1]
                                     : S.client;
    return queue(f, &f->to_client, S.client_out, a);
}

static struct lb_action fp_adopted(struct lb_front *f)
{
    S.n_adopted++;
    return S.adopted;
}

static void fp_early_gone(struct lb_front *f) { S.n_gone++; }

static struct lb_action fp_connected(struct lb_front *f)
{
    assert_non_null(f->upstream);
    assert_non_null(f->node);
    struct lb_action a = S.connected[S.n_connected < 4 ? S.n_connected : 3];
    S.n_connected++;
    if (S.connect_out)
        lb_buf_append(&f->to_client, S.connect_out, strlen(S.connect_out), 1 << 20);
    return queue(f, &f->to_upstream, S.greeting, a);
}

static struct lb_action fp_upstream(struct lb_front *f)
{
    S.n_upstream++;
    for (int i = 0; i < 64; i++) {
        uint8_t b[512];
        ssize_t n = lb_front_read_upstream(f, b, sizeof(b));
        if (n == -EAGAIN)
            break;
        if (n <= 0)
            return queue(f, &f->to_client, NULL, S.up_eof);
    }
    return queue(f, &f->to_client, NULL, S.upstream);
}

static struct lb_action fp_timer(struct lb_front *f)
{
    S.n_timer++;
    return queue(f, &f->to_client, NULL, S.timer);
}

static struct lb_action fp_failed(struct lb_front *f, enum lb_reason why)
{
    S.n_failed++;
    S.failed_why = why;
    struct lb_action a = S.dials_failed;
    if (a.kind == LB_ACT_FAIL || a.kind == LB_ACT_CLOSE)
        a.reason = why;
    return queue(f, &f->to_client, NULL, a);
}

static unsigned fp_wants(const struct lb_front *f)
{
    return f->upstream ? S.wants_up : S.wants_front;
}

static void fp_free(struct lb_front *f)
{
    S.n_free++;
    free(f->state);
    f->state = NULL;
}

static const struct lb_phase_ops fake_phase = {
    .name = "fake",
    .create = fp_create,
    .start = fp_start,
    .on_client_data = fp_client,
    .on_upstream_connected = fp_connected,
    .on_upstream_data = fp_upstream,
    .on_timer = fp_timer,
    .on_dials_failed = fp_failed,
    .on_adopted = fp_adopted,
    .on_early_gone = fp_early_gone,
    .wants = fp_wants,
    .free = fp_free,
};

/* ---- the worker, played by the test ----------------------------------------------- */

static int lfd[2];   /* nodes a and b listen here */
static int port[2];
static int dead[2];  /* ports nothing listens on */
static struct test_fx fx;
static uv_loop_t loop;
static struct lb_env env;
static struct lb_shost host;
static const struct lb_listen_info lst = {"front", CONF_MODE_RTMP, CONF_PP_OFF, &fake_phase, 0,
                                          false, NULL};
/* listeners[].early_dial: its route is certain before any command. */
static const struct lb_listen_info lst_early = {"early", CONF_MODE_RTMP, CONF_PP_OFF, &fake_phase,
                                                1, false, NULL};
static const struct lb_listen_info lst_edead = {"edead", CONF_MODE_RTMP, CONF_PP_OFF, &fake_phase,
                                                2, false, NULL};
static struct lb_lstat lstats[3];
static int cfd = -1;           /* the client's end */
static int ufd[2] = {-1, -1};  /* accepted node ends */
static int fds_before;

static int listen_on(int *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *p = ntohs(a.sin_port);
    return fd;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int group_setup(void **st)
{
    char text[1024];
    /* libuv opens a process-wide pipe with its first loop: not ours. */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    lfd[0] = listen_on(&port[0]);
    lfd[1] = listen_on(&port[1]);
    for (int i = 0; i < 2; i++) { /* bound, then closed: refused */
        int fd = listen_on(&dead[i]);
        close(fd);
    }
    snprintf(text, sizeof(text),
             "listeners:\n"
             "  - {name: front, address: 127.0.0.1:1935, mode: rtmp}\n"
             "  - {name: early, address: 127.0.0.1:1936, mode: rtmp, early_dial: true}\n"
             "  - {name: edead, address: 127.0.0.1:1937, mode: rtmp, early_dial: true}\n"
             "pools:\n"
             "  two: {nodes: [{name: a, address: 127.0.0.1:%d},\n"
             "                {name: b, address: 127.0.0.1:%d, backup: true}]}\n"
             "  dead: {nodes: [{name: d1, address: 127.0.0.1:%d},\n"
             "                 {name: d2, address: 127.0.0.1:%d, backup: true}]}\n"
             "routes:\n"
             "  - {name: early, match: {listener: early}, pool: two}\n"
             "  - {name: edead, match: {listener: edead}, pool: dead}\n"
             "  - {name: main, match: {app: live}, pool: two}\n"
             "  - {name: gone, match: {app: dead}, pool: dead}\n",
             port[0], port[1], dead[0], dead[1]);
    fx = test_fx_load(text, 1);
    return 0;
}

static int group_teardown(void **st)
{
    test_fx_free(&fx);
    close(lfd[0]);
    close(lfd[1]);
    return 0;
}

static struct ups_node *node_named(const char *name)
{
    for (size_t p = 0; p < fx.snap->n_pools; p++)
        for (size_t i = 0; i < fx.snap->pools[p].n_nodes; i++)
            if (strcmp(fx.snap->pools[p].nodes[i].name, name) == 0)
                return &fx.snap->pools[p].nodes[i];
    fail_msg("no node %s", name);
    return NULL;
}

static uint64_t ends(enum lb_reason r) { return atomic_load(&env.ends[r]); }

static int setup(void **st)
{
    memset(&S, 0, sizeof(S));
    S.wants_front = LB_WANT_CLIENT;
    fds_before = count_fds();
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&env, 0, sizeof(env));
    atomic_store(&env.connect_ms, 1000);
    atomic_store(&env.handshake_ms, 2000);
    atomic_store(&env.idle_ms, 0);
    atomic_store(&env.half_close_ms, 0);
    atomic_store(&env.max_sessions, 100);
    env.lim = (struct lb_front_limits){.preroute_bytes = 65536};
    memset(lstats, 0, sizeof(lstats));
    atomic_store(&lstats[1].early_dial, true);
    atomic_store(&lstats[2].early_dial, true);
    env.lstats = lstats;
    env.n_lstats = 3;
    atomic_store(&env.max_early_dials, 8);
    env.index = hc_index_new();
    assert_non_null(env.index);
    memset(&host, 0, sizeof(host));
    host.loop = &loop;
    host.env = &env;
    host.snap = fx.snap;
    lb_pipepool_init(&host.pipes, 16, 4);
    for (int i = 0; i < 2; i++) {
        atomic_store(&node_named(i ? "b" : "a")->live->dial_failures, 0);
        atomic_store(&node_named(i ? "b" : "a")->live->health, UPS_UP);
    }
    atomic_store(&node_named("d1")->live->dial_failures, 0);
    atomic_store(&node_named("d2")->live->dial_failures, 0);
    return 0;
}

/* Runs the loop until cond holds or ms pass: bounded in count and time. */
#define SPIN_UNTIL(cond, ms)                                                       \
    do {                                                                           \
        for (int spin_i_ = 0; spin_i_ < (ms) && !(cond); spin_i_++) {             \
            uv_run(&loop, UV_RUN_NOWAIT);                                          \
            usleep(1000);                                                          \
        }                                                                          \
    } while (0)

/* Reads what fd has now (after running the loop), up to cap. */
static ssize_t rd(int fd, char *b, size_t cap)
{
    ssize_t n = recv(fd, b, cap, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : n;
}

/* Reads exactly strlen(want) bytes within ms and compares them. */
static void expect_bytes(int fd, const char *want, int ms)
{
    char got[256];
    size_t n = 0, len = strlen(want);
    assert_true(len < sizeof(got));
    for (int i = 0; i < ms && n < len; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t k = rd(fd, got + n, len - n);
        if (k > 0)
            n += (size_t)k;
        else if (k == 0)
            break;
        else
            usleep(1000);
    }
    got[n] = '\0';
    assert_string_equal(got, want);
}

/* EOF within ms (no byte before it). */
static void expect_eof(int fd, int ms)
{
    char b[64];
    ssize_t k = -EAGAIN;
    for (int i = 0; i < ms && k == -EAGAIN; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        k = rd(fd, b, sizeof(b));
        if (k == -EAGAIN)
            usleep(1000);
    }
    assert_int_equal(k, 0);
}

static int accept_node(int which, int ms)
{
    int fd = -1;
    for (int i = 0; i < ms && fd < 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        fd = accept4(lfd[which], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            usleep(1000);
    }
    assert_true(fd >= 0);
    ufd[which] = fd;
    return fd;
}

static void start_session_on(const struct lb_listen_info *l);
static void start_session(void) { start_session_on(&lst); }

static void start_session_on(const struct lb_listen_info *l)
{
    int sv[2];
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(5555),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cfd = sv[1];
    atomic_fetch_add(&env.sessions, 1); /* the worker counts it before the start */
    lb_session_start(&host, l, sv[0], (struct sockaddr *)&peer, sizeof(peer));
    assert_int_equal(host.n_sessions, 1);
}

static struct lb_session *the_session(void)
{
    assert_non_null(host.sessions);
    return host.sessions;
}

/* The session is gone and has left nothing behind. */
static int teardown(void **st)
{
    SPIN_UNTIL(host.n_sessions == 0, 3000);
    assert_int_equal(host.n_sessions, 0);
    assert_null(host.sessions);
    assert_int_equal(atomic_load(&env.sessions), 0);
    assert_int_equal(S.n_create, 1);
    assert_int_equal(S.n_free, 1);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(host.pipes.n_out, 0);
    assert_int_equal(atomic_load(&env.early_pending), 0); /* every early dial ended */
    lb_pipepool_destroy(&host.pipes);
    hc_index_free(env.index);
    if (cfd >= 0)
        close(cfd);
    for (int i = 0; i < 2; i++)
        if (ufd[i] >= 0)
            close(ufd[i]);
    cfd = ufd[0] = ufd[1] = -1;
    assert_int_equal(count_fds(), fds_before);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------ */

/* CONTINUE until the client's bytes come, then CLOSE: the client sees EOF. */
static void test_continue_then_close(void **st)
{
    S.client = lb_act_close(LB_REASON_CLIENT_PROTOCOL);
    start_session();
    SPIN_UNTIL(false, 20);
    assert_int_equal(S.n_start, 1);
    assert_int_equal(S.n_client, 0);
    assert_int_equal(send(cfd, "hello", 5, 0), 5);
    expect_eof(cfd, 2000);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(S.n_client, 1);
    assert_int_equal(S.got_n, 5);
    assert_memory_equal(S.got, "hello", 5);
    assert_int_equal(ends(LB_REASON_CLIENT_PROTOCOL), 1);
}

/* The client leaves before anything: the phase reads EOF and closes. */
static void test_client_eof_in_front(void **st)
{
    start_session();
    shutdown(cfd, SHUT_WR);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_CLIENT_CLOSED), 1);
}

/* ROUTE, a node answers, SPLICE both ways: the queued bytes go first,
 * then bytes both ways, a megabyte through the pump, FIN each way. */
static void test_route_and_splice(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    S.connected[0] = lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
    S.greeting = "GREETING";
    S.connect_out = "WELCOME";
    start_session();
    int u = accept_node(0, 2000);
    expect_bytes(u, "GREETING", 2000);
    expect_bytes(cfd, "WELCOME", 2000);
    SPIN_UNTIL(the_session()->state == LB_SS_SPLICING, 1000);
    assert_int_equal(the_session()->state, LB_SS_SPLICING);
    assert_int_equal(S.n_free, 1); /* the hand-over freed the phase */
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 1);

    assert_int_equal(send(cfd, "ping", 4, 0), 4);
    expect_bytes(u, "ping", 2000);
    assert_int_equal(send(u, "pong", 4, 0), 4);
    expect_bytes(cfd, "pong", 2000);

    /* 1 MiB client -> node, checked byte for byte; bounded loop. */
    static uint8_t big[1 << 20], back[1 << 20];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + (i >> 12));
    size_t sent = 0, got = 0;
    for (int i = 0; i < 20000 && got < sizeof(big); i++) {
        if (sent < sizeof(big)) {
            ssize_t k = send(cfd, big + sent, sizeof(big) - sent, MSG_DONTWAIT);
            if (k > 0)
                sent += (size_t)k;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t k = rd(u, (char *)back + got, sizeof(back) - got);
        if (k > 0)
            got += (size_t)k;
        else
            usleep(200);
    }
    assert_int_equal(got, sizeof(big));
    assert_memory_equal(back, big, sizeof(big));

    shutdown(cfd, SHUT_WR);
    expect_eof(u, 2000); /* the FIN passed on */
    SPIN_UNTIL(false, 20);
    assert_int_equal(host.n_sessions, 1); /* half-closed: still open */
    close(u);
    ufd[0] = -1;
    expect_eof(cfd, 2000);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_CLIENT_CLOSED), 1);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 0);
    assert_int_equal(atomic_load(&node_named("a")->live->bytes_from_client), 4 + sizeof(big));
}

/* SPLICE(C2U) first, the node's reply through the phase, then SPLICE(U2C). */
static void test_splice_in_two_steps(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    S.connected[0] = lb_act_splice(LB_SPLICE_C2U);
    S.wants_up = LB_WANT_UPSTREAM;
    S.upstream = lb_act_splice(LB_SPLICE_U2C);
    S.greeting = "HI";
    start_session();
    int u = accept_node(0, 2000);
    expect_bytes(u, "HI", 2000);
    assert_int_equal(send(cfd, "c2u", 3, 0), 3); /* already pumped */
    expect_bytes(u, "c2u", 2000);
    assert_int_equal(S.n_client, 0);
    assert_int_equal(send(u, "x", 1, 0), 1); /* read by the phase, then U2C */
    SPIN_UNTIL(S.n_upstream == 1 && the_session()->state == LB_SS_SPLICING, 2000);
    assert_int_equal(the_session()->state, LB_SS_SPLICING);
    assert_int_equal(send(u, "u2c", 3, 0), 3);
    expect_bytes(cfd, "u2c", 2000);
    /* The node closes first. */
    close(u);
    ufd[0] = -1;
    expect_eof(cfd, 2000);
    close(cfd);
    cfd = -1;
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_UPSTREAM_CLOSED), 1);
}

/* DIAL: the phase gives up on node a (it closed); the core dials b. */
static void test_dial_next_node(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    S.connected[0] = lb_act(LB_ACT_CONTINUE);
    S.connected[1] = lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
    S.wants_up = LB_WANT_UPSTREAM;
    S.up_eof = (struct lb_action){.kind = LB_ACT_DIAL, .reason = LB_REASON_ORIGIN_CLOSED};
    S.greeting = "G";
    start_session();
    int u = accept_node(0, 2000);
    expect_bytes(u, "G", 2000);
    close(u);
    ufd[0] = -1;
    int u2 = accept_node(1, 2000);
    expect_bytes(u2, "G", 2000);
    SPIN_UNTIL(the_session()->state == LB_SS_SPLICING, 1000);
    struct lb_session *s = the_session();
    assert_int_equal(s->state, LB_SS_SPLICING);
    assert_int_equal(s->f.dials, 2);
    assert_int_equal(s->f.last_failure, LB_REASON_ORIGIN_CLOSED);
    assert_int_equal(S.n_connected, 2);
    assert_int_equal(atomic_load(&node_named("a")->live->dial_failures), 1);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 0);
    assert_int_equal(atomic_load(&node_named("b")->live->sessions), 1);
    assert_int_equal(send(cfd, "ok", 2, 0), 2);
    expect_bytes(u2, "ok", 2000);
    close(cfd);
    cfd = -1;
    expect_eof(u2, 2000);
    close(u2);
    ufd[1] = -1;
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_CLIENT_CLOSED), 1);
}

/* Every node refuses: on_dials_failed, FAIL: the error reaches the
 * client, its write side is shut, what it sends is dropped until EOF. */
static void test_dials_failed_then_fail(void **st)
{
    S.app = "dead";
    S.start = lb_act(LB_ACT_ROUTE);
    S.dials_failed = (struct lb_action){.kind = LB_ACT_FAIL};
    S.fail_out = "ERROR-REPLY";
    start_session();
    expect_bytes(cfd, "ERROR-REPLY", 2000);
    expect_eof(cfd, 2000);
    assert_int_equal(S.n_failed, 1);
    assert_int_equal(S.failed_why, LB_REASON_DIAL_FAILED);
    assert_int_equal(atomic_load(&node_named("d1")->live->dial_failures), 1);
    assert_int_equal(atomic_load(&node_named("d2")->live->dial_failures), 1);
    assert_int_equal(host.n_sessions, 1); /* lingering */
    assert_int_equal(the_session()->state, LB_SS_FAILING);
    assert_int_equal(S.n_free, 1); /* the phase went with the FAIL */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(send(cfd, "junk", 4, 0), 4);
        SPIN_UNTIL(false, 10);
    }
    assert_int_equal(S.n_client, 0); /* dropped by the core, not the phase's */
    assert_int_equal(host.n_sessions, 1);
    shutdown(cfd, SHUT_WR);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_DIAL_FAILED), 1);
}

/* No route: on_dials_failed(NO_ROUTE), CLOSE. */
static void test_no_route(void **st)
{
    S.app = "nowhere";
    S.start = lb_act(LB_ACT_ROUTE);
    S.dials_failed = lb_act_close(LB_REASON_NONE);
    start_session();
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(S.n_failed, 1);
    assert_int_equal(S.failed_why, LB_REASON_NO_ROUTE);
    assert_int_equal(ends(LB_REASON_NO_ROUTE), 1);
    expect_eof(cfd, 100);
}

/* FAIL with a client that never closes: the linger ends it. */
static void test_fail_linger_deadline(void **st)
{
    S.client = (struct lb_action){.kind = LB_ACT_FAIL, .reason = LB_REASON_CLIENT_PROTOCOL};
    S.fail_out = "BYE";
    start_session();
    assert_int_equal(send(cfd, "x", 1, 0), 1);
    expect_bytes(cfd, "BYE", 2000);
    expect_eof(cfd, 2000);
    assert_int_equal(host.n_sessions, 1);
    SPIN_UNTIL(host.n_sessions == 0, 3000); /* linger: 1 s */
    assert_int_equal(host.n_sessions, 0);
    assert_int_equal(ends(LB_REASON_CLIENT_PROTOCOL), 1);
}

/* FAIL while a node is connected: the node's leg goes at once. */
static void test_fail_after_connect(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    S.connected[0] = lb_act(LB_ACT_CONTINUE);
    S.wants_up = LB_WANT_UPSTREAM;
    S.upstream = (struct lb_action){.kind = LB_ACT_FAIL, .reason = LB_REASON_ORIGIN_REJECTED};
    S.fail_out = "DENIED";
    start_session();
    int u = accept_node(0, 2000);
    assert_int_equal(send(u, "no", 2, 0), 2);
    expect_eof(u, 2000);
    expect_bytes(cfd, "DENIED", 2000);
    expect_eof(cfd, 2000);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 0);
    close(cfd);
    cfd = -1;
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_ORIGIN_REJECTED), 1);
}

/* The phase's deadline: on_timer, CLOSE. */
static void test_timer(void **st)
{
    S.timer_in = 30;
    S.timer = lb_act_close(LB_REASON_HANDSHAKE_TIMEOUT);
    start_session();
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(S.n_timer, 1);
    assert_int_equal(ends(LB_REASON_HANDSHAKE_TIMEOUT), 1);
    expect_eof(cfd, 100);
}

/* The worker ends a session (shutdown) while a node is connected. */
static void test_end_while_connected(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    S.connected[0] = lb_act(LB_ACT_CONTINUE);
    S.wants_up = LB_WANT_UPSTREAM;
    start_session();
    int u = accept_node(0, 2000);
    SPIN_UNTIL(S.n_connected == 1, 2000);
    assert_int_equal(the_session()->state, LB_SS_CONNECTED);
    lb_session_end(the_session(), LB_REASON_SHUTDOWN);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_SHUTDOWN), 1);
    expect_eof(u, 1000);
    expect_eof(cfd, 1000);
}

/* ... and while it is still dialing (the node never accepted yet). */
static void test_end_while_dialing(void **st)
{
    S.start = lb_act(LB_ACT_ROUTE);
    start_session();
    assert_int_equal(the_session()->state, LB_SS_DIALING);
    lb_session_end(the_session(), LB_REASON_SHUTDOWN);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(ends(LB_REASON_SHUTDOWN), 1);
    assert_int_equal(S.n_connected, 0);
    /* The node may have a queued connection: take it, it is closed. */
    int fd = accept4(lfd[0], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        ufd[0] = fd;
        expect_eof(fd, 1000);
    }
}

/* ---- early dial -------------------------------------------------------------------- */

static uint64_t early_n(int listener, enum lb_early_outcome o)
{
    return atomic_load(&lstats[listener].early[o]);
}

/* A session on l whose phase answers EARLY to the client's first bytes
 * and ROUTE to the next; the second connection splices. Returns node a's
 * end once the early leg is connected. */
static int early_connected(const struct lb_listen_info *l)
{
    S.n_clients = 2;
    S.clients[0] = lb_act(LB_ACT_EARLY);
    S.clients[1] = lb_act(LB_ACT_ROUTE);
    S.wants_up = LB_WANT_CLIENT;
    S.connected[0] = lb_act(LB_ACT_CONTINUE);
    S.connected[1] = lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
    start_session_on(l);
    assert_int_equal(send(cfd, "a", 1, 0), 1);
    int u = accept_node(0, 2000);
    SPIN_UNTIL(S.n_connected == 1, 2000);
    assert_true(the_session()->early);
    return u;
}

/* The client's end and the node's close; the session ends. */
static void close_both(int u, int which)
{
    close(cfd);
    cfd = -1;
    expect_eof(u, 2000);
    close(u);
    ufd[which] = -1;
}

/* EARLY on the client's first bytes: node a is dialled before any ROUTE;
 * the ROUTE keeps it (on_adopted, no second dial), and bytes flow. */
static void test_early_adopted(void **st)
{
    S.n_clients = 2;
    S.clients[0] = lb_act(LB_ACT_EARLY);
    S.clients[1] = lb_act(LB_ACT_ROUTE);
    S.wants_up = LB_WANT_CLIENT;
    S.adopted = lb_act_splice(LB_SPLICE_C2U | LB_SPLICE_U2C);
    S.greeting = "C0C1";
    uint64_t routed0 = atomic_load(&node_named("a")->live->sessions_total);
    start_session_on(&lst_early);
    assert_int_equal(send(cfd, "a", 1, 0), 1);
    int u = accept_node(0, 2000);
    expect_bytes(u, "C0C1", 2000);
    SPIN_UNTIL(S.n_connected == 1, 2000);
    struct lb_session *s = the_session();
    assert_true(s->early);
    assert_int_equal(s->state, LB_SS_CONNECTED);
    assert_int_equal(atomic_load(&env.early_pending), 1);
    assert_int_equal(S.n_adopted, 0);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions_total), routed0); /* not routed */
    assert_int_equal(send(cfd, "b", 1, 0), 1);
    SPIN_UNTIL(s->state == LB_SS_SPLICING, 2000);
    assert_int_equal(s->state, LB_SS_SPLICING);
    assert_int_equal(S.n_adopted, 1);
    assert_int_equal(S.n_connected, 1); /* no second dial */
    assert_int_equal(early_n(1, LB_EARLY_ADOPTED), 1);
    assert_int_equal(atomic_load(&env.early_pending), 0);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions_total), routed0 + 1);
    assert_int_equal(accept4(lfd[0], NULL, NULL, SOCK_NONBLOCK), -1);
    assert_int_equal(send(cfd, "ping", 4, 0), 4);
    expect_bytes(u, "ping", 2000);
    assert_int_equal(send(u, "pong", 4, 0), 4);
    expect_bytes(cfd, "pong", 2000);
    close_both(u, 0);
}

/* The operator closes node a while the client is still before its
 * command: the early leg goes, not the client; its ROUTE, arriving before
 * the leg's handle has finished closing (same loop pass), dials afresh
 * once it has (the handle is never reused while closing). */
static void test_early_let_go_then_route(void **st)
{
    int u = early_connected(&lst_early);
    struct lb_session *s = the_session();
    assert_false(lb_session_close_on_node(s, LB_REASON_ADMIN_DISABLED));
    assert_false(s->early);
    assert_int_equal(s->state, LB_SS_FRONT);
    assert_int_equal(S.n_gone, 1);
    assert_int_equal(early_n(1, LB_EARLY_DROPPED), 1);
    assert_int_equal(send(cfd, "b", 1, 0), 1); /* ROUTE in the pass that closes the leg */
    expect_eof(u, 2000);
    close(u);
    int u2 = accept_node(0, 2000);
    SPIN_UNTIL(s->state == LB_SS_SPLICING, 2000);
    assert_int_equal(s->state, LB_SS_SPLICING);
    assert_int_equal(S.n_connected, 2);
    assert_int_equal(S.n_adopted, 0);
    assert_int_equal(atomic_load(&node_named("a")->live->dial_failures), 0); /* not its fault */
    assert_int_equal(send(cfd, "ok", 2, 0), 2);
    expect_bytes(u2, "ok", 2000);
    close_both(u2, 0);
}

/* Node a went down after the early dial: the ROUTE drops the leg (no
 * passive failure) and dials the backup b. */
static void test_early_dropped_for_a_down_node(void **st)
{
    int u = early_connected(&lst_early);
    atomic_store(&node_named("a")->live->health, UPS_DOWN);
    assert_int_equal(send(cfd, "b", 1, 0), 1);
    expect_eof(u, 2000);
    close(u);
    ufd[0] = -1;
    int u2 = accept_node(1, 2000);
    SPIN_UNTIL(the_session()->state == LB_SS_SPLICING, 2000);
    assert_int_equal(the_session()->state, LB_SS_SPLICING);
    assert_int_equal(early_n(1, LB_EARLY_DROPPED), 1);
    assert_int_equal(S.n_gone, 1);
    assert_int_equal(atomic_load(&node_named("a")->live->dial_failures), 0);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 0);
    assert_int_equal(atomic_load(&node_named("b")->live->sessions), 1);
    close_both(u2, 1);
}

/* Every early candidate refuses: passive failures, the session is back in
 * FRONT, and its ROUTE dials as usual (and fails the usual way). */
static void test_early_failed_then_route(void **st)
{
    S.n_clients = 2;
    S.clients[0] = lb_act(LB_ACT_EARLY);
    S.clients[1] = lb_act(LB_ACT_ROUTE);
    S.dials_failed = (struct lb_action){.kind = LB_ACT_FAIL};
    S.fail_out = "ERROR-REPLY";
    start_session_on(&lst_edead);
    assert_int_equal(send(cfd, "a", 1, 0), 1);
    SPIN_UNTIL(early_n(2, LB_EARLY_FAILED) == 1, 2000);
    assert_int_equal(early_n(2, LB_EARLY_FAILED), 1);
    assert_int_equal(the_session()->state, LB_SS_FRONT);
    assert_int_equal(atomic_load(&node_named("d1")->live->dial_failures), 1);
    assert_int_equal(S.n_failed, 0); /* the client has not asked yet */
    assert_int_equal(send(cfd, "b", 1, 0), 1);
    expect_bytes(cfd, "ERROR-REPLY", 2000);
    assert_int_equal(S.n_failed, 1);
    assert_int_equal(S.failed_why, LB_REASON_DIAL_FAILED);
    assert_int_equal(atomic_load(&node_named("d1")->live->dial_failures), 2);
    shutdown(cfd, SHUT_WR);
}

/* The client leaves before its command: unused, the node's slot back,
 * nothing credited to it. */
static void test_early_unused(void **st)
{
    S.n_clients = 1;
    S.clients[0] = lb_act(LB_ACT_EARLY);
    S.wants_up = LB_WANT_CLIENT;
    uint64_t bytes0 = atomic_load(&node_named("a")->live->bytes_from_client);
    start_session_on(&lst_early);
    assert_int_equal(send(cfd, "a", 1, 0), 1);
    int u = accept_node(0, 2000);
    SPIN_UNTIL(S.n_connected == 1, 2000);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 1);
    close(cfd);
    cfd = -1;
    expect_eof(u, 2000);
    SPIN_UNTIL(host.n_sessions == 0, 2000);
    assert_int_equal(early_n(1, LB_EARLY_UNUSED), 1);
    assert_int_equal(atomic_load(&node_named("a")->live->sessions), 0);
    assert_int_equal(atomic_load(&node_named("a")->live->bytes_from_client), bytes0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_continue_then_close), T(test_client_eof_in_front), T(test_route_and_splice),
        T(test_splice_in_two_steps), T(test_dial_next_node),      T(test_dials_failed_then_fail),
        T(test_no_route),            T(test_fail_linger_deadline), T(test_fail_after_connect),
        T(test_timer),               T(test_end_while_connected), T(test_end_while_dialing),
        T(test_early_adopted),       T(test_early_let_go_then_route),
        T(test_early_dropped_for_a_down_node), T(test_early_failed_then_route),
        T(test_early_unused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
