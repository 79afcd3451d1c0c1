/* churn_client: the load generator of the connection-churn bench
 * (tests/bench/churn.sh). One thread, epoll, CONC sessions in flight; each:
 *   connect, send 1537 bytes (C0C1), read 3073 (S0S1S2), send 1536 (C2),
 *   then close at once (--close client) or wait for the backend's EOF and
 *   close after it (--close backend; byte 1 of C0C1 tells churn_backend).
 * New sessions start for SECS seconds or until MAX have started; the ones in
 * flight then finish (each is abandoned as an error after 5 s).
 * Set-up latency: from just before connect() to the first byte of S0S1S2.
 * --sources K: bind each socket to 127.0.0.2 .. 127.0.0.(K+1) in turn
 * (IP_BIND_ADDRESS_NO_PORT, so the kernel still picks the port at connect
 * with the whole 4-tuple in view): K times the loopback port space.
 * Prints one line:
 *   ok N err N secs S rate R p50_us N p99_us N | connect N timeout N eof N
 *   reset N extra N
 *   churn_client [--conc N] [--secs S] [--max N] [--sources K]
 *                --close client|backend HOST PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { OUT1 = 1537, IN = 3073, OUT2 = 1536, MAX_CONC = 1024 };
enum { FREE, CONNECTING, SEND1, READ, SEND2, WAIT_EOF };
enum { E_CONNECT, E_TIMEOUT, E_EOF, E_RESET, E_EXTRA, E_N };

struct sess {
    int fd, state;
    uint64_t t0;
    size_t done; /* bytes of the current step sent or received */
};

static uint8_t c0c1[OUT1], c2[OUT2];
static struct sess sess[MAX_CONC];
static unsigned long errs[E_N], n_ok;
static uint32_t *lat;
static size_t n_lat, cap_lat;
static int ep, backend_closes;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void end(struct sess *s, int err)
{
    close(s->fd); /* also drops it from the epoll set */
    s->fd = -1;
    s->state = FREE;
    if (err >= 0)
        errs[err]++;
    else
        n_ok++;
}

static void want(struct sess *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Sends the rest of buf; 1 when all is out, 0 when it must wait, -1 error. */
static int push(struct sess *s, const uint8_t *buf, size_t len)
{
    while (s->done < len) {
        ssize_t k = send(s->fd, buf + s->done, len - s->done, MSG_NOSIGNAL);
        if (k < 0 && errno == EAGAIN)
            return 0;
        if (k <= 0)
            return -1;
        s->done += (size_t)k;
    }
    return 1;
}

static void start(struct sess *s, const struct sockaddr_in *dst, int sources, unsigned long seq)
{
    int one = 1;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        errs[E_CONNECT]++;
        return;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (sources > 0) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(seq % (unsigned long)sources));
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(s->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            close(s->fd);
            s->fd = -1;
            errs[E_CONNECT]++;
            return;
        }
    }
    s->state = CONNECTING;
    s->done = 0;
    s->t0 = now_us();
    if (connect(s->fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS) {
        end(s, E_CONNECT);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static void step(struct sess *s)
{
    uint8_t buf[8192];
    int r, soerr = 0;
    socklen_t l = sizeof(soerr);
    switch (s->state) {
    case CONNECTING:
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
        if (soerr) {
            end(s, E_CONNECT);
            return;
        }
        s->state = SEND1;
        /* fall through */
    case SEND1:
        r = push(s, c0c1, OUT1);
        if (r < 0)
            end(s, E_RESET);
        if (r <= 0)
            return;
        s->state = READ;
        s->done = 0;
        want(s, EPOLLIN);
        return;
    case READ: {
        ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            end(s, n == 0 ? E_EOF : E_RESET);
            return;
        }
        if (s->done == 0) {
            if (n_lat == cap_lat) {
                cap_lat = cap_lat ? cap_lat * 2 : 65536;
                lat = realloc(lat, cap_lat * sizeof(*lat));
                if (lat == NULL) {
                    perror("churn_client: realloc");
                    exit(1);
                }
            }
            lat[n_lat++] = (uint32_t)(now_us() - s->t0);
        }
        s->done += (size_t)n;
        if (s->done > IN) {
            end(s, E_EXTRA);
            return;
        }
        if (s->done < IN)
            return;
        s->state = SEND2;
        s->done = 0;
    }
        /* fall through */
    case SEND2:
        r = push(s, c2, OUT2);
        if (r < 0) {
            end(s, E_RESET);
            return;
        }
        if (r == 0) {
            want(s, EPOLLOUT);
            return;
        }
        if (!backend_closes) {
            end(s, -1);
            return;
        }
        s->state = WAIT_EOF;
        want(s, EPOLLIN);
        return;
    case WAIT_EOF: {
        ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN)
            return;
        end(s, n == 0 ? -1 : n > 0 ? E_EXTRA : E_RESET);
        return;
    }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double q)
{
    if (n_lat == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n_lat - 1) + 0.5);
    return lat[i < n_lat ? i : n_lat - 1];
}

int main(int argc, char **argv)
{
    int conc = 16, sources = 0, i = 1;
    double secs = 5;
    unsigned long max = 1000000;
    const char *close_by = NULL;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "--conc") == 0)
            conc = atoi(argv[++i]);
        else if (strcmp(argv[i], "--secs") == 0)
            secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--max") == 0)
            max = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--sources") == 0)
            sources = atoi(argv[++i]);
        else if (strcmp(argv[i], "--close") == 0)
            close_by = argv[++i];
        else
            break;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET};
    if (argc - i != 2 || close_by == NULL ||
        (strcmp(close_by, "client") && strcmp(close_by, "backend")) || conc < 1 ||
        conc > MAX_CONC || secs <= 0 || secs > 600 || sources < 0 || sources > 250 ||
        inet_pton(AF_INET, argv[i], &dst.sin_addr) != 1) {
        fprintf(stderr, "usage: churn_client [--conc N<=%d] [--secs S<=600] [--max N] "
                        "[--sources K<=250] --close client|backend HOST PORT\n",
                MAX_CONC);
        return 2;
    }
    dst.sin_port = htons((uint16_t)atoi(argv[i + 1]));
    backend_closes = strcmp(close_by, "backend") == 0;
    signal(SIGPIPE, SIG_IGN);
    for (size_t k = 0; k < OUT1; k++)
        c0c1[k] = (uint8_t)(k * 13 + 1);
    c0c1[0] = 3;
    c0c1[1] = backend_closes ? 'B' : 'C';
    memset(c2, 0x5a, sizeof(c2));
    ep = epoll_create1(0);
    for (int k = 0; k < MAX_CONC; k++)
        sess[k].fd = -1;

    uint64_t t_start = now_us(), t_last = t_start;
    uint64_t stop_new = t_start + (uint64_t)(secs * 1e6), hard = stop_new + 6000000;
    unsigned long started = 0;
    for (;;) {
        uint64_t now = now_us();
        int active = 0;
        for (int k = 0; k < conc; k++) {
            struct sess *s = &sess[k];
            if (s->state != FREE && now - s->t0 > 5000000)
                end(s, E_TIMEOUT);
            if (s->state == FREE && now < stop_new && started < max) {
                start(s, &dst, sources, started++);
                t_last = now;
            }
            active += s->state != FREE;
        }
        if (active == 0 && (now >= stop_new || started >= max))
            break;
        if (now > hard)
            break;
        struct epoll_event evs[MAX_CONC];
        int n = epoll_wait(ep, evs, conc, 100);
        for (int k = 0; k < n; k++)
            step(evs[k].data.ptr);
        if (n > 0)
            t_last = now_us();
    }
    double el = (double)(t_last - t_start) / 1e6;
    qsort(lat, n_lat, sizeof(*lat), cmp_u32);
    printf("ok %lu err %lu secs %.3f rate %.1f p50_us %u p99_us %u | connect %lu timeout %lu "
           "eof %lu reset %lu extra %lu\n",
           n_ok, errs[E_CONNECT] + errs[E_TIMEOUT] + errs[E_EOF] + errs[E_RESET] + errs[E_EXTRA],
           el, el > 0 ? (double)n_ok / el : 0.0, pct(0.5), pct(0.99), errs[E_CONNECT],
           errs[E_TIMEOUT], errs[E_EOF], errs[E_RESET], errs[E_EXTRA]);
    free(lat);
    return 0;
}
