#include "lb/proc/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lb/log.h"
#include "lb/net.h"
#include "lb/proc/proc-t.h"
#include "lb/proc/proc.h"
#include "lb/worker/worker.h"

#define ENV_FDS "RTMPLB_UPGRADE_FDS"     /* "4,5,6": listening sockets */
#define ENV_READY "RTMPLB_UPGRADE_READY" /* "3": write one byte when started */
#define MAX_INHERITED 256
#define READY_WAIT_MS 60000 /* the new process's start-up, geo database included */

static char exe_path[PATH_MAX];
static int inherited[MAX_INHERITED];
static size_t n_inherited;
static int ready_fd = -1;

/* ---- the new process ---------------------------------------------------- */

static bool is_listening_socket(int fd)
{
    struct stat st;
    int on = 0;
    socklen_t len = sizeof(on);
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

void lb_upgrade_init(void)
{
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = '\0';

    const char *fds = getenv(ENV_FDS), *rd = getenv(ENV_READY);
    if (!fds || !rd)
        return;
    char *end;
    long r = strtol(rd, &end, 10);
    if (*end == '\0' && r > 2 && r < INT_MAX) {
        ready_fd = (int)r;
        (void)fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    }
    for (const char *p = fds; *p && n_inherited < MAX_INHERITED;) {
        long fd = strtol(p, &end, 10);
        if (end == p)
            break;
        if (fd > 2 && fd < INT_MAX && is_listening_socket((int)fd)) {
            (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
            inherited[n_inherited++] = (int)fd;
        }
        p = *end == ',' ? end + 1 : end;
    }
    /* Not for a later upgrade of this process: it builds its own. */
    unsetenv(ENV_FDS);
    unsetenv(ENV_READY);
}

bool lb_upgrade_inherited(void) { return ready_fd >= 0; }

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

int lb_upgrade_take(const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    for (size_t i = 0; i < n_inherited; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (inherited[i] < 0 || getsockname(inherited[i], (struct sockaddr *)&ss, &sl) < 0)
            continue;
        if (same_addr(&ss, addr)) {
            int fd = inherited[i];
            inherited[i] = -1;
            return fd;
        }
    }
    return -1;
}

void lb_upgrade_close_unused(void)
{
    for (size_t i = 0; i < n_inherited; i++) {
        if (inherited[i] < 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char text[128] = "?";
        if (getsockname(inherited[i], (struct sockaddr *)&ss, &sl) == 0)
            lb_sockaddr_text((struct sockaddr *)&ss, text, sizeof(text));
        lb_log_msg(LB_LOG_WARN, "upgrade",
                   "closing the inherited socket on %s: no listener of this config (or no "
                   "worker) takes it; connections waiting in it are reset",
                   text);
        close(inherited[i]);
        inherited[i] = -1;
    }
}

/* systemd's notify protocol, without libsystemd: one datagram. */
static void sd_notify_text(const char *text)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof(sun.sun_path) || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sun.sun_path, path, n);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&sun,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
}

void lb_upgrade_ready(void)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
    sd_notify_text(msg);
    if (ready_fd < 0)
        return;
    ssize_t w;
    do
        w = write(ready_fd, "R", 1);
    while (w < 0 && errno == EINTR);
    close(ready_fd);
    ready_fd = -1;
    lb_log_msg(LB_LOG_INFO, "upgrade", "took over the listening sockets from pid %d",
               (int)getppid());
}

/* ---- the old process ---------------------------------------------------- */

struct upgrade {
    struct lb_server *srv;
    uv_process_t proc;
    uv_pipe_t ready;
    uv_timer_t timer;
    int open_handles;
    bool ready_seen, exited, done;
};

static struct upgrade *running; /* one at a time */

static void handle_closed(uv_handle_t *h)
{
    struct upgrade *u = h->data;
    if (--u->open_handles == 0) {
        if (running == u)
            running = NULL;
        free(u);
    }
}

/* with_proc: let the new process go (it outlives this one; its exit is
 * no longer ours to watch). */
static void close_handles(struct upgrade *u, bool with_proc)
{
    if (!uv_is_closing((uv_handle_t *)&u->ready))
        uv_close((uv_handle_t *)&u->ready, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&u->timer))
        uv_close((uv_handle_t *)&u->timer, handle_closed);
    if (with_proc && !uv_is_closing((uv_handle_t *)&u->proc))
        uv_close((uv_handle_t *)&u->proc, handle_closed);
}

static void failed(struct upgrade *u, const char *why)
{
    if (u->done)
        return;
    u->done = true;
    lb_log_msg(LB_LOG_ERROR, "upgrade", "the new process (pid %d) %s; this process (pid %d) "
               "keeps serving", u->proc.pid, why, (int)getpid());
    close_handles(u, false); /* its exit, when it comes, closes the last one */
    running = NULL;          /* a new SIGUSR2 may try again */
}

static void handed_over(struct upgrade *u)
{
    struct lb_server *srv = u->srv;
    if (u->done)
        return;
    u->done = true;
    close_handles(u, true);
    if (srv->stopping)
        return;
    int64_t drain = atomic_load(&srv->env.upgrade_drain_ms);
    lb_log_msg(LB_LOG_INFO, "upgrade",
               "pid %d serves now; pid %d stops accepting and drains its %u sessions (%s)",
               u->proc.pid, (int)getpid(), atomic_load(&srv->env.sessions),
               drain ? "up to timeouts.upgrade_drain" : "until each ends: timeouts.upgrade_drain 0");
    lb_proc_handover(srv, drain);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct upgrade *u = p->data;
    u->exited = true;
    if (!u->done) {
        char why[96];
        if (sig)
            snprintf(why, sizeof(why), "was killed by signal %d before it was ready", sig);
        else
            snprintf(why, sizeof(why), "exited with status %lld before it was ready (its log "
                     "above says why)", (long long)status);
        failed(u, why);
    }
    if (!uv_is_closing((uv_handle_t *)p))
        uv_close((uv_handle_t *)p, handle_closed);
}

static void on_ready_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[16];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(b, sizeof(b));
}

static void on_ready_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct upgrade *u = s->data;
    (void)buf;
    if (n > 0)
        handed_over(u);
    else if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        /* Closed without a word: it is exiting (its exit says how) or
         * broken (the ready timer ends it). */
        uv_close((uv_handle_t *)s, handle_closed);
}

static void on_ready_timeout(uv_timer_t *t)
{
    struct upgrade *u = t->data;
    if (!u->done && !u->exited)
        uv_process_kill(&u->proc, SIGKILL);
    failed(u, "was not ready within 60 s and was killed");
}

void lb_upgrade_start(struct lb_server *srv)
{
    if (running) {
        lb_log_msg(LB_LOG_WARN, "upgrade", "SIGUSR2: an upgrade is already under way (pid %d)",
                   running->proc.pid);
        return;
    }
    if (!exe_path[0] || access(exe_path, X_OK) != 0) {
        /* /proc/self/exe of a replaced binary reads "PATH (deleted)". */
        lb_log_msg(LB_LOG_ERROR, "upgrade", "SIGUSR2: cannot run the binary at %s", exe_path);
        return;
    }
    /* The sockets to hand over: every worker's, every listener's, and the
     * admin server's. fds 0-2 stay; 3 is the ready pipe; 4... the sockets. */
    int socks[MAX_INHERITED], n = 0;
    for (unsigned w = 0; w < srv->n_workers; w++)
        for (size_t i = 0; i < srv->workers[w].n_listeners && n < MAX_INHERITED - 1; i++)
            if (srv->workers[w].listeners[i].fd >= 0)
                socks[n++] = srv->workers[w].listeners[i].fd;
    int admin_fd = srv->ctl && srv->ctl->listen_fd ? srv->ctl->listen_fd(srv) : -1;
    if (admin_fd >= 0)
        socks[n++] = admin_fd;

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        lb_log_msg(LB_LOG_ERROR, "upgrade", "SIGUSR2: pipe: %s", strerror(errno));
        return;
    }
    struct upgrade *u = calloc(1, sizeof(*u));
    if (!u) {
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    u->srv = srv;

    char fds_env[16 + MAX_INHERITED * 6], ready_env[48];
    size_t off = (size_t)snprintf(fds_env, sizeof(fds_env), ENV_FDS "=");
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(fds_env + off, sizeof(fds_env) - off, "%s%d", i ? "," : "",
                                4 + i);
    snprintf(ready_env, sizeof(ready_env), ENV_READY "=3");

    extern char **environ;
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **env = calloc(n_env + 3, sizeof(char *));
    uv_stdio_container_t stdio[4 + MAX_INHERITED];
    if (!env) {
        free(u);
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], ENV_FDS "=", sizeof(ENV_FDS)) != 0 &&
            strncmp(environ[i], ENV_READY "=", sizeof(ENV_READY)) != 0)
            env[k++] = environ[i];
    env[k++] = fds_env;
    env[k++] = ready_env;
    env[k] = NULL;

    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = pfd[1];
    for (int i = 0; i < n; i++) {
        stdio[4 + i].flags = UV_INHERIT_FD;
        stdio[4 + i].data.fd = socks[i];
    }
    char *args[] = {exe_path, "-c", srv->conf_path, NULL};
    uv_process_options_t opts = {
        .exit_cb = on_exit_cb,
        .file = exe_path,
        .args = args,
        .env = env,
        .stdio_count = 4 + n,
        .stdio = stdio,
    };
    int rc = uv_spawn(&srv->loop, &u->proc, &opts);
    free(env);
    close(pfd[1]);
    if (rc < 0) {
        lb_log_msg(LB_LOG_ERROR, "upgrade", "SIGUSR2: cannot start %s: %s", exe_path,
                   uv_strerror(rc));
        close(pfd[0]);
        u->open_handles = 1; /* uv_spawn left the handle initialised: close, then free */
        u->proc.data = u;
        uv_close((uv_handle_t *)&u->proc, handle_closed);
        return;
    }
    u->proc.data = u;
    u->open_handles = 3;
    uv_pipe_init(&srv->loop, &u->ready, 0);
    u->ready.data = u;
    uv_pipe_open(&u->ready, pfd[0]);
    uv_read_start((uv_stream_t *)&u->ready, on_ready_alloc, on_ready_read);
    uv_timer_init(&srv->loop, &u->timer);
    u->timer.data = u;
    uv_timer_start(&u->timer, on_ready_timeout, READY_WAIT_MS, 0);
    running = u;
    lb_log_msg(LB_LOG_INFO, "upgrade", "SIGUSR2: started %s as pid %d with %d listening sockets; "
               "waiting for it to be ready", exe_path, u->proc.pid, n);
}
