/* rtmp_fanout: N RTMP players of one stream in one process (epoll, one
 * thread), for fan-out and reconnect-storm measurements.
 *
 *   rtmp_fanout [--players N] [--rate R] [--secs S] [--warm W] [--src K]
 *               [--per-player FILE] HOST PORT APP STREAM
 *
 * --rate R: players started per second (0: all at once, a storm).
 * --secs S: how long the run lasts, from the first connect; --warm W: rates
 * are measured over [W, S] (default 5 and 20). --src K: players bind to
 * 127.0.0.2 .. 127.0.0.(K+1) in turn (loopback ports and TIME_WAIT; 0: no
 * bind). Each player: handshake (simple), connect + createStream + play in
 * one write after C2, chunk decoding until its first audio or video
 * message, then bytes are only counted (an Acknowledgement every 1 MB keeps
 * origins that wait for them sending). Prints key=value lines:
 *   players= with_media= failed= ttfm_p50_ms= ttfm_p99_ms=
 *   media50_ms= media95_ms= media100_ms= (from the first connect)
 *   rate_p5_kbps= rate_p50_kbps= delivered_mbps= bytes=
 * and, with --per-player, one line per player: index ttfm_us bytes_window
 * error. Uses rtmplb's handshake, AMF and chunk code (tests/bench only). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/handshake.h"

enum pstate { P_IDLE, P_CONNECTING, P_HS, P_CMDS, P_MEDIA, P_FAILED };

struct player {
    int fd;
    enum pstate st;
    struct rtmp_hs_client hc;
    struct rtmp_chunk_dec *dec; /* until the first media message */
    uint8_t *buf;               /* ditto: bytes not yet decoded */
    size_t have;
    uint32_t next_chunk;
    uint64_t t_connect, t_media; /* us, monotonic */
    uint64_t bytes, bytes_at_warm, bytes_at_end, acked;
    const char *err;
};

#define BUF_CAP (256 * 1024)
#define ACK_EVERY (1u << 20)

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static const char *g_app, *g_stream, *g_host;
static int g_port;

static void fail(struct player *p, const char *why)
{
    if (p->st == P_FAILED)
        return;
    p->st = P_FAILED;
    p->err = why;
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    free(p->dec);
    free(p->buf);
    p->dec = NULL;
    p->buf = NULL;
}

/* Small writes to a fresh socket: all or nothing (a failure is fatal). */
static int send_all(struct player *p, const void *b, size_t n)
{
    return send(p->fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static size_t put_cmd(uint8_t *out, size_t cap, uint32_t csid, uint32_t msid, const uint8_t *body,
                      size_t len)
{
    return rtmp_chunk_write(out, cap, csid, 20, msid, body, len, 128);
}

static int send_commands(struct player *p)
{
    uint8_t out[4096], body[1024], *b, *end = body + sizeof(body);
    size_t n = 0;
    char tc[300];
    memcpy(out, rtmp_hs_client_c2(&p->hc), RTMP_HS_SIZE);
    if (send_all(p, out, RTMP_HS_SIZE) < 0)
        return -1;
    snprintf(tc, sizeof(tc), "rtmp://%s:%d/%s", g_host, g_port, g_app);
    b = body;
    b = amf0_put_string(b, end, "connect");
    b = amf0_put_number(b, end, 1);
    b = amf0_put_object_start(b, end);
    b = amf0_put_key(b, end, "app");
    b = amf0_put_string(b, end, g_app);
    b = amf0_put_key(b, end, "tcUrl");
    b = amf0_put_string(b, end, tc);
    b = amf0_put_object_end(b, end);
    n += put_cmd(out + n, sizeof(out) - n, 3, 0, body, (size_t)(b - body));
    b = body;
    b = amf0_put_string(b, end, "createStream");
    b = amf0_put_number(b, end, 2);
    b = amf0_put_null(b, end);
    n += put_cmd(out + n, sizeof(out) - n, 3, 0, body, (size_t)(b - body));
    b = body;
    b = amf0_put_string(b, end, "play");
    b = amf0_put_number(b, end, 0);
    b = amf0_put_null(b, end);
    b = amf0_put_string(b, end, g_stream);
    b = amf0_put_number(b, end, -1000);
    n += put_cmd(out + n, sizeof(out) - n, 8, 1, body, (size_t)(b - body));
    return send_all(p, out, n);
}

/* Decodes what is buffered until the first media message. */
static void decode(struct player *p)
{
    size_t pos = 0, used;
    for (;;) {
        struct rtmp_chunk_ev ev;
        rtmp_chunk_next(p->dec, p->buf + pos, p->have - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_ERROR) {
            fail(p, "chunk stream error");
            return;
        }
        if (ev.type == RTMP_EV_NEED_MORE)
            break;
        if (ev.type == RTMP_EV_MSG_START && (ev.msg_type == 8 || ev.msg_type == 9)) {
            p->t_media = now_us();
            p->st = P_MEDIA;
            free(p->dec);
            free(p->buf);
            p->dec = NULL;
            p->buf = NULL;
            return;
        }
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 1 && ev.data_len >= 4)
            p->next_chunk = (uint32_t)ev.data[0] << 24 | (uint32_t)ev.data[1] << 16 |
                            (uint32_t)ev.data[2] << 8 | ev.data[3];
        if (ev.type == RTMP_EV_MSG_END && ev.msg_type == 1 &&
            rtmp_chunk_set_size(p->dec, p->next_chunk & 0x7fffffff) < 0) {
            fail(p, "bad chunk size");
            return;
        }
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 20 && ev.data_len > 10 &&
            (memmem(ev.data, ev.data_len, "_error", 6) ||
             memmem(ev.data, ev.data_len, "StreamNotFound", 14))) {
            fail(p, "server refused the play");
            return;
        }
    }
    memmove(p->buf, p->buf + pos, p->have - pos);
    p->have -= pos;
}

static void on_readable(struct player *p)
{
    static uint8_t sink[256 * 1024];
    for (int round = 0; round < 4 && p->st != P_FAILED; round++) {
        uint8_t *dst = sink;
        size_t room = sizeof(sink);
        if (p->st == P_HS || p->st == P_CMDS) {
            dst = p->buf + p->have;
            room = BUF_CAP - p->have;
            if (!room) {
                fail(p, "no media in 256 KiB");
                return;
            }
        }
        ssize_t n = recv(p->fd, dst, room, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            fail(p, n == 0 ? "closed by the server" : "recv error");
            return;
        }
        p->bytes += (uint64_t)n;
        if (p->st == P_MEDIA) {
            if (p->bytes - p->acked >= ACK_EVERY) { /* Acknowledgement (type 3) */
                uint8_t seq[4] = {(uint8_t)(p->bytes >> 24), (uint8_t)(p->bytes >> 16),
                                  (uint8_t)(p->bytes >> 8), (uint8_t)p->bytes};
                uint8_t out[32];
                size_t k = rtmp_chunk_write(out, sizeof(out), 2, 3, 0, seq, 4, 128);
                (void)send(p->fd, out, k, MSG_NOSIGNAL | MSG_DONTWAIT);
                p->acked = p->bytes;
            }
            if ((size_t)n < room)
                return;
            continue;
        }
        p->have += (size_t)n;
        if (p->st == P_HS) {
            size_t used;
            enum rtmp_hs_result r = rtmp_hs_client_feed(&p->hc, p->buf, p->have, &used);
            if (r == RTMP_HS_ERROR) {
                fail(p, "bad handshake");
                return;
            }
            if (r == RTMP_HS_NEED_MORE) {
                p->have = 0; /* the handshake keeps its own copy */
                continue;
            }
            memmove(p->buf, p->buf + used, p->have - used);
            p->have -= used;
            if (send_commands(p) < 0) {
                fail(p, "send failed");
                return;
            }
            p->st = P_CMDS;
        }
        decode(p);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i < n ? i : n - 1];
}

static void start_player(int ep, struct player *p, size_t i, int nsrc)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_host, &sa.sin_addr);
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        fail(p, "socket failed (open-file limit?)");
        return;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nsrc > 0) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % (size_t)nsrc));
        setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(p->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            fail(p, "bind failed");
            return;
        }
    }
    p->t_connect = now_us();
    if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        fail(p, "connect failed");
        return;
    }
    p->st = P_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u64 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev);
}

int main(int argc, char **argv)
{
    size_t n = 100;
    double rate = 0, secs = 20, warm = 5;
    int nsrc = 50;
    const char *per_player = NULL;
    int a = 1;
    for (; a < argc && argv[a][0] == '-' && argv[a][1] == '-'; a += 2) {
        if (a + 1 >= argc)
            break;
        if (!strcmp(argv[a], "--players"))
            n = strtoul(argv[a + 1], NULL, 10);
        else if (!strcmp(argv[a], "--rate"))
            rate = atof(argv[a + 1]);
        else if (!strcmp(argv[a], "--secs"))
            secs = atof(argv[a + 1]);
        else if (!strcmp(argv[a], "--warm"))
            warm = atof(argv[a + 1]);
        else if (!strcmp(argv[a], "--src"))
            nsrc = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--per-player"))
            per_player = argv[a + 1];
        else
            break;
    }
    if (argc - a != 4 || !n || n > 100000 || secs <= warm || secs > 3600) {
        fprintf(stderr, "usage: rtmp_fanout [--players N] [--rate R] [--secs S] [--warm W] "
                        "[--src K] [--per-player FILE] HOST PORT APP STREAM\n");
        return 2;
    }
    g_host = argv[a];
    g_port = atoi(argv[a + 1]);
    g_app = argv[a + 2];
    g_stream = argv[a + 3];

    struct player *pl = calloc(n, sizeof(*pl));
    struct epoll_event *evs = calloc(4096, sizeof(*evs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!pl || !evs || ep < 0)
        return 2;
    for (size_t i = 0; i < n; i++)
        pl[i].fd = -1;
    struct rtmp_chunk_limits lim = {1 << 24, 1 << 24, 65599};
    uint64_t t0 = now_us(), t_warm = t0 + (uint64_t)(warm * 1e6), t_end = t0 + (uint64_t)(secs * 1e6);
    size_t started = 0;
    bool warm_done = false;
    double cpu_warm = 0;

    for (;;) {
        uint64_t now = now_us();
        if (now >= t_end)
            break;
        size_t due = rate > 0 ? (size_t)((double)(now - t0) / 1e6 * rate) + 1 : n;
        while (started < n && started < due) {
            start_player(ep, &pl[started], started, nsrc);
            started++;
        }
        if (!warm_done && now >= t_warm) {
            for (size_t i = 0; i < n; i++)
                pl[i].bytes_at_warm = pl[i].bytes;
            cpu_warm = cpu_now();
            warm_done = true;
        }
        int k = epoll_wait(ep, evs, 4096, 5);
        for (int e = 0; e < k; e++) {
            struct player *p = &pl[evs[e].data.u64];
            if (p->st == P_FAILED)
                continue;
            if (p->st == P_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    fail(p, "connect refused or reset");
                    continue;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = evs[e].data.u64};
                epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
                p->dec = malloc(sizeof(*p->dec));
                p->buf = malloc(BUF_CAP);
                if (!p->dec || !p->buf) {
                    fail(p, "out of memory");
                    continue;
                }
                rtmp_chunk_init(p->dec, &lim, 128);
                rtmp_hs_client_init(&p->hc, NULL);
                p->st = P_HS;
                if (send_all(p, p->hc.c0c1, sizeof(p->hc.c0c1)) < 0) {
                    fail(p, "send failed");
                    continue;
                }
            }
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(p);
        }
    }
    uint64_t t_stop = now_us();
    double cpu_end = cpu_now();
    for (size_t i = 0; i < n; i++)
        pl[i].bytes_at_end = pl[i].bytes;

    /* Summary. */
    uint64_t *ttfm = calloc(n, sizeof(uint64_t)), *at = calloc(n, sizeof(uint64_t));
    uint64_t *rates = calloc(n, sizeof(uint64_t));
    size_t nm = 0, nf = 0;
    uint64_t total = 0;
    double win = (double)(t_stop - t_warm) / 1e6;
    for (size_t i = 0; i < n; i++) {
        struct player *p = &pl[i];
        uint64_t wb = p->bytes_at_end - p->bytes_at_warm;
        rates[i] = (uint64_t)((double)wb * 8 / win / 1000); /* kbit/s; 0 without media */
        total += wb;
        if (p->t_media) {
            ttfm[nm] = p->t_media - p->t_connect;
            at[nm] = p->t_media - t0;
            nm++;
        }
        if (p->st == P_FAILED || !p->t_media)
            nf++;
    }
    qsort(ttfm, nm, sizeof(uint64_t), cmp_u64);
    qsort(at, nm, sizeof(uint64_t), cmp_u64);
    qsort(rates, n, sizeof(uint64_t), cmp_u64);
    /* Time until x% of all players (not of those with media) had media. */
    double m50 = -1, m95 = -1, m100 = -1;
    size_t need50 = (n + 1) / 2, need95 = (size_t)((double)n * 0.95 + 0.999);
    if (nm >= need50)
        m50 = (double)at[need50 - 1] / 1000;
    if (nm >= need95 && need95)
        m95 = (double)at[need95 - 1] / 1000;
    if (nm == n)
        m100 = (double)at[n - 1] / 1000;
    printf("players=%zu with_media=%zu failed=%zu\n", n, nm, nf);
    printf("ttfm_p50_ms=%.1f ttfm_p99_ms=%.1f\n", pct(ttfm, nm, 0.50) / 1000,
           pct(ttfm, nm, 0.99) / 1000);
    printf("media50_ms=%.0f media95_ms=%.0f media100_ms=%.0f\n", m50, m95, m100);
    printf("rate_p5_kbps=%.0f rate_p50_kbps=%.0f\n", pct(rates, n, 0.05), pct(rates, n, 0.50));
    printf("delivered_mbps=%.1f bytes=%llu window_s=%.1f\n", (double)total * 8 / win / 1e6,
           (unsigned long long)total, win);
    printf("cpu_s=%.3f cpu_window_s=%.3f\n", cpu_end, cpu_end - cpu_warm);
    const char *first_err = NULL;
    for (size_t i = 0; i < n && !first_err; i++)
        first_err = pl[i].err;
    if (first_err) { /* one token: spaces become underscores */
        printf("first_error=");
        for (const char *c = first_err; *c; c++)
            putchar(*c == ' ' ? '_' : *c);
        printf(" errors=%zu\n", nf);
    }
    if (per_player) {
        FILE *f = fopen(per_player, "w");
        for (size_t i = 0; f && i < n; i++)
            fprintf(f, "%zu %llu %llu %s\n", i,
                    (unsigned long long)(pl[i].t_media ? pl[i].t_media - pl[i].t_connect : 0),
                    (unsigned long long)(pl[i].bytes_at_end - pl[i].bytes_at_warm),
                    pl[i].err ? pl[i].err : "-");
        if (f)
            fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        if (pl[i].fd >= 0)
            close(pl[i].fd);
    /* Everything freed and flushed: under a sanitizer build a leak report
     * would end the process before stdio's buffers reach the pipe. */
    free(ttfm);
    free(at);
    free(rates);
    free(evs);
    free(pl);
    close(ep);
    fflush(stdout);
    return 0;
}
