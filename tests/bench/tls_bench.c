/* tls_bench: the load generator of the RTMPS termination bench
 * (tests/bench/tls.sh). One thread, epoll, non-blocking OpenSSL.
 *   tls_bench sink PORT
 *       accepts plain TCP on 127.0.0.1:PORT and discards what it reads.
 *   tls_bench send HOST PORT CONNS SECS
 *       CONNS TLS connections (TLS 1.3, TLS_AES_128_GCM_SHA256, no
 *       verification) that write 16 KiB records for SECS seconds; prints
 *       "bytes N secs S gbps G handshakes H errors E".
 *   tls_bench idle HOST PORT CONNS SECS
 *       CONNS TLS connections, each writes one byte and then idles; prints
 *       "ready N" once all are up, holds them SECS seconds, then exits.
 * Loopback benchmarking only: the certificate is not verified. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 20000
#define REC (16 * 1024)

struct conn {
    int fd;
    SSL *ssl;
    int hs_done;
    int dead;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sink(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4096) < 0) {
        perror("sink");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[1 << 18];
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t k;
            while ((k = read(fd, buf, sizeof(buf))) > 0)
                ;
            if (k == 0 || (k < 0 && errno != EAGAIN))
                close(fd);
        }
    }
}

static int dial(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One step of c: handshake, then a write (send) or one byte (idle).
 * Returns bytes written, 0, or -1 when the connection failed. */
static long step(struct conn *c, int send_mode, const char *rec, int *want)
{
    int n;
    if (!c->hs_done) {
        n = SSL_do_handshake(c->ssl);
        if (n == 1) {
            c->hs_done = 1;
        } else {
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                *want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
                return 0;
            }
            return -1;
        }
        if (!send_mode) {
            n = SSL_write(c->ssl, "x", 1);
            *want = EPOLLIN;
            return n == 1 ? 1 : -1;
        }
    }
    if (!send_mode) {
        char b[64];
        n = SSL_read(c->ssl, b, sizeof(b));
        *want = EPOLLIN;
        if (n <= 0 && SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ)
            return -1;
        return 0;
    }
    long total = 0;
    for (int i = 0; i < 8; i++) {
        n = SSL_write(c->ssl, rec, REC);
        if (n > 0) {
            total += n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            *want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
            return total;
        }
        return -1;
    }
    *want = EPOLLOUT;
    return total;
}

static int open_conn(int ep, SSL_CTX *ctx, struct conn *cs, int i, const char *host, int port)
{
    cs[i].fd = dial(host, port);
    if (cs[i].fd < 0)
        return -1;
    cs[i].ssl = SSL_new(ctx);
    SSL_set_fd(cs[i].ssl, cs[i].fd);
    SSL_set_connect_state(cs[i].ssl);
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    return epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
}

static int client(int send_mode, const char *host, int port, int conns, double secs)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static struct conn cs[MAX_CONNS];
    static char rec[REC];
    memset(rec, 'r', sizeof(rec));
    if (conns > MAX_CONNS)
        conns = MAX_CONNS;
    int ep = epoll_create1(0);
    /* idle: at most WAVE handshakes at once, so what is measured is the idle
     * sessions, not the peak of many concurrent handshakes. */
    int opened = 0, wave = send_mode ? conns : 50;
    while (opened < conns && opened < wave)
        if (open_conn(ep, ctx, cs, opened++, host, port) < 0)
            return 1;
    double t0 = now_s(), end = t0 + secs, t_ready = 0;
    long long bytes = 0;
    int handshakes = 0, errors = 0, ready = 0;
    while (now_s() < end) {
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = &cs[evs[i].data.u32];
            if (c->dead)
                continue;
            int was = c->hs_done, want = EPOLLIN;
            long k = step(c, send_mode, rec, &want);
            if (k < 0) {
                c->dead = 1;
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            if (!was && c->hs_done) {
                handshakes++;
                if (opened < conns && open_conn(ep, ctx, cs, opened++, host, port) < 0)
                    return 1;
                if (!send_mode && ++ready == conns) {
                    printf("ready %d\n", ready);
                    fflush(stdout);
                    t_ready = now_s();
                }
            }
            bytes += k;
            struct epoll_event ev = {.events = (uint32_t)want, .data.u32 = evs[i].data.u32};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    double took = now_s() - t0;
    if (send_mode)
        printf("bytes %lld secs %.3f gbps %.3f handshakes %d errors %d\n", bytes, took,
               (double)bytes * 8 / took / 1e9, handshakes, errors);
    else if (!t_ready)
        printf("ready %d (of %d) errors %d\n", ready, conns, errors);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "sink") == 0)
        return sink(atoi(argv[2]));
    if (argc == 6 && (strcmp(argv[1], "send") == 0 || strcmp(argv[1], "idle") == 0))
        return client(strcmp(argv[1], "send") == 0, argv[2], atoi(argv[3]), atoi(argv[4]),
                      atof(argv[5]));
    fprintf(stderr, "usage: tls_bench sink PORT | send|idle HOST PORT CONNS SECS\n");
    return 2;
}
