/* churn_backend: the server side of the connection-churn bench
 * (tests/bench/churn.sh). One thread, epoll, non-blocking sockets.
 * Per connection, shaped like an RTMP handshake:
 *   reads 1537 bytes (C0C1), answers 3073 bytes (S0S1S2), reads 1536 (C2);
 * then, if byte 1 of what the client sent is 'B', the backend closes first;
 * otherwise it waits for the client's EOF and closes after it.
 * It counts exchanges: complete (all 3073 bytes in, answer out, the close
 * as agreed), short (EOF before all bytes), reset (error) and extra (more
 * bytes than agreed). SIGUSR1 prints "complete N short N reset N extra N"
 * on stdout and zeroes the counters, so the caller gets one line per run.
 *   churn_backend ADDR PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { IN1 = 1537, OUT = 3073, IN2 = 1536 };

struct conn {
    int fd;
    size_t rx;     /* bytes received so far (of IN1 + IN2) */
    size_t tx;     /* bytes of the answer sent */
    int backend_closes;
    int want_out;  /* waiting for EPOLLOUT */
};

static volatile sig_atomic_t report;
static unsigned long n_complete, n_short, n_reset, n_extra;
static uint8_t answer[OUT];

static void on_usr1(int sig)
{
    (void)sig;
    report = 1;
}

static void finish(int ep, struct conn *c, unsigned long *counter)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
    (*counter)++;
}

/* Sends what is left of the answer; 0 when all is out, 1 when it must wait
 * for EPOLLOUT, -1 on error. */
static int push(int ep, struct conn *c)
{
    while (c->tx < OUT) {
        ssize_t k = send(c->fd, answer + c->tx, OUT - c->tx, MSG_NOSIGNAL);
        if (k < 0 && errno == EAGAIN) {
            if (!c->want_out) {
                struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = 1;
            }
            return 1;
        }
        if (k <= 0)
            return -1;
        c->tx += (size_t)k;
    }
    if (c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = 0;
    }
    return 0;
}

static void on_readable(int ep, struct conn *c)
{
    uint8_t buf[8192];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {
            finish(ep, c, &n_reset);
            return;
        }
        if (n == 0) { /* the client closed: fine once everything came in */
            finish(ep, c, c->rx == IN1 + IN2 && !c->backend_closes ? &n_complete : &n_short);
            return;
        }
        if (c->rx <= 1 && c->rx + (size_t)n > 1)
            c->backend_closes = buf[1 - c->rx] == 'B';
        c->rx += (size_t)n;
        if (c->rx > IN1 + IN2 || (c->rx > IN1 && c->tx < OUT)) {
            finish(ep, c, &n_extra); /* C2 before S0S1S2 was out, or too much */
            return;
        }
        if (c->rx == IN1 && c->tx == 0) {
            int r = push(ep, c);
            if (r < 0) {
                finish(ep, c, &n_reset);
                return;
            }
            if (r > 0)
                return;
        }
        if (c->rx == IN1 + IN2 && c->backend_closes) {
            finish(ep, c, &n_complete);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: churn_backend ADDR PORT\n");
        return 2;
    }
    for (size_t i = 0; i < OUT; i++)
        answer[i] = (uint8_t)(i * 7 + 3);
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART: wakes epoll_wait */
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        fprintf(stderr, "churn_backend: bad address %s\n", argv[1]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0) {
        perror("churn_backend: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 1000);
        if (report) {
            report = 0;
            printf("complete %lu short %lu reset %lu extra %lu\n", n_complete, n_short, n_reset,
                   n_extra);
            fflush(stdout);
            n_complete = n_short = n_reset = n_extra = 0;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) { /* the listener: take what is queued, a bounded batch */
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    struct conn *nc = calloc(1, sizeof(*nc));
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
            } else if (c->want_out) {
                int r = push(ep, c);
                if (r < 0)
                    finish(ep, c, &n_reset);
                else if (r == 0 && c->rx == IN1 + IN2 && c->backend_closes)
                    finish(ep, c, &n_complete);
            } else {
                on_readable(ep, c);
            }
        }
    }
}
