/* soak_player: many cheap RTMP players in one process, for the chaos soak
 * (tests/soak/soak.py). Each player plays one stream of a list (player i
 * plays stream i % S), reads until the first audio or video message, then
 * keeps reading and dropping bytes. When a session ends (EOF, error, no
 * media within --setup-ms, no byte for --stall-ms) the player reconnects
 * after a short backoff (250 ms, doubling up to 2 s) until it has media
 * again. One line per event on stdout, times in wall-clock milliseconds:
 *   first T ID STREAM SETUP_MS SINCE_LOSS_MS   (SINCE_LOSS_MS -1: first play)
 *   end T ID STREAM LIVED_MS HAD_MEDIA WHY
 *   stat T LIVE_WITH_MEDIA CONNECTING BYTES
 * Runs until SIGTERM/SIGINT or --seconds. Uses rtmplb's handshake, AMF and
 * chunk code; epoll, non-blocking sockets, no threads.
 *   soak_player [--players N] [--seconds S] [--setup-ms MS] [--stall-ms MS]
 *               HOST PORT APP STREAM[,STREAM...] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/rtmp/handshake.h"

enum pstate { P_IDLE, P_CONNECTING, P_HANDSHAKE, P_SETUP, P_MEDIA };

struct player {
    int id, fd;
    enum pstate st;
    const char *stream;
    uint64_t t_connect;   /* monotonic ms of this session's connect */
    uint64_t t_last_byte; /* monotonic ms */
    uint64_t t_retry;     /* P_IDLE: reconnect at this monotonic ms */
    uint64_t lost_wall;   /* wall ms the last media session ended; 0: never had media */
    unsigned backoff_ms;
    struct rtmp_hs_client hs;
    struct rtmp_chunk_dec dec;
    uint32_t chunk;       /* the server's chunk size, once announced */
    uint8_t *buf;         /* P_HANDSHAKE/P_SETUP only */
    size_t have;
};

#define SETUP_BUF (256u * 1024u)

static volatile sig_atomic_t stop;
static struct sockaddr_in server;
static char tcurl[300];
static const char *app;
static unsigned setup_ms = 10000, stall_ms = 10000;
static uint64_t bytes_total;
static int ep;

static void on_signal(int s) { stop = 1; }

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    for (int tries = 0; n && tries < 1000; tries++) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EAGAIN) {
            usleep(1000); /* a few hundred bytes into an empty socket: never in practice */
            continue;
        }
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return n ? -1 : 0;
}

static void end_session(struct player *p, const char *why)
{
    uint64_t now = mono_ms();
    bool had_media = p->st == P_MEDIA;
    printf("end %llu %d %s %llu %d %s\n", (unsigned long long)wall_ms(), p->id, p->stream,
           (unsigned long long)(now - p->t_connect), had_media ? 1 : 0, why);
    if (p->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
    }
    p->fd = -1;
    free(p->buf);
    p->buf = NULL;
    p->have = 0;
    if (had_media) {
        p->lost_wall = wall_ms();
        p->backoff_ms = 250;
    } else {
        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 250;
        if (p->backoff_ms > 2000)
            p->backoff_ms = 2000;
    }
    p->t_retry = now + p->backoff_ms;
    p->st = P_IDLE;
}

static void start_session(struct player *p)
{
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    p->t_connect = p->t_last_byte = mono_ms();
    if (p->fd < 0) {
        p->st = P_CONNECTING; /* so end_session counts it as a failed attempt */
        end_session(p, "socket");
        return;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->st = P_CONNECTING;
    if (connect(p->fd, (struct sockaddr *)&server, sizeof(server)) < 0 && errno != EINPROGRESS) {
        end_session(p, "connect");
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = p};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev) < 0)
        end_session(p, "epoll");
}

static int send_cmd(int fd, uint32_t csid, uint32_t msid, const uint8_t *body, size_t len)
{
    uint8_t out[2048];
    size_t n = rtmp_chunk_write(out, sizeof(out), csid, 20, msid, body, len, 128);
    return n ? send_all(fd, out, n) : -1;
}

static int send_play(struct player *p)
{
    if (send_all(p->fd, rtmp_hs_client_c2(&p->hs), RTMP_HS_SIZE) < 0)
        return -1;
    uint8_t body[1024], *b = body, *end = body + sizeof(body);
    b = amf0_put_string(b, end, "connect");
    b = amf0_put_number(b, end, 1);
    b = amf0_put_object_start(b, end);
    b = amf0_put_key(b, end, "app");
    b = amf0_put_string(b, end, app);
    b = amf0_put_key(b, end, "flashVer");
    b = amf0_put_string(b, end, "LNX 9,0,124,2");
    b = amf0_put_key(b, end, "tcUrl");
    b = amf0_put_string(b, end, tcurl);
    b = amf0_put_object_end(b, end);
    if (!b || send_cmd(p->fd, 3, 0, body, (size_t)(b - body)) < 0)
        return -1;
    b = body;
    b = amf0_put_string(b, end, "createStream");
    b = amf0_put_number(b, end, 2);
    b = amf0_put_null(b, end);
    if (!b || send_cmd(p->fd, 3, 0, body, (size_t)(b - body)) < 0)
        return -1;
    b = body;
    b = amf0_put_string(b, end, "play");
    b = amf0_put_number(b, end, 0);
    b = amf0_put_null(b, end);
    b = amf0_put_string(b, end, p->stream);
    b = amf0_put_number(b, end, -1000);
    if (!b || send_cmd(p->fd, 8, 1, body, (size_t)(b - body)) < 0)
        return -1;
    return 0;
}

/* Parses what the setup buffer holds. 1: media arrived; 0: need more;
 * -1: the session failed (why set). */
static int parse_setup(struct player *p, const char **why)
{
    size_t pos = 0, used;
    for (;;) {
        struct rtmp_chunk_ev ev;
        rtmp_chunk_next(&p->dec, p->buf + pos, p->have - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_ERROR) {
            *why = "chunk-error";
            return -1;
        }
        if (ev.type == RTMP_EV_MSG_START && (ev.msg_type == 8 || ev.msg_type == 9))
            return 1;
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 1 && ev.data_len >= 4)
            p->chunk = (uint32_t)ev.data[0] << 24 | (uint32_t)ev.data[1] << 16 |
                       (uint32_t)ev.data[2] << 8 | ev.data[3];
        if (ev.type == RTMP_EV_MSG_END && ev.msg_type == 1)
            rtmp_chunk_set_size(&p->dec, p->chunk & 0x7fffffff);
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 20 && ev.data_len > 8) {
            static const char *bad[] = {"_error", "StreamNotFound", "Connect.Rejected",
                                        "Play.Failed"};
            for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
                if (memmem(ev.data, ev.data_len, bad[k], strlen(bad[k]))) {
                    *why = bad[k];
                    return -1;
                }
        }
        if (ev.type == RTMP_EV_NEED_MORE) {
            memmove(p->buf, p->buf + pos, p->have - pos);
            p->have -= pos;
            if (p->have == SETUP_BUF) {
                *why = "setup-overflow";
                return -1;
            }
            return 0;
        }
    }
}

static void on_event(struct player *p, uint32_t events)
{
    if (p->st == P_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            end_session(p, "connect-refused");
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        rtmp_hs_client_init(&p->hs, NULL);
        if (send_all(p->fd, p->hs.c0c1, sizeof(p->hs.c0c1)) < 0) {
            end_session(p, "send");
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = p};
        epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
        p->buf = malloc(SETUP_BUF);
        if (!p->buf) {
            end_session(p, "oom");
            return;
        }
        p->have = 0;
        p->st = P_HANDSHAKE;
        return;
    }
    static uint8_t sink[1 << 16];
    for (int round = 0; round < 16; round++) {
        uint8_t *dst = sink;
        size_t cap = sizeof(sink);
        if (p->st != P_MEDIA) {
            dst = p->buf + p->have;
            cap = SETUP_BUF - p->have;
        }
        ssize_t n = recv(p->fd, dst, cap, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            end_session(p, n == 0 ? "eof" : "reset");
            return;
        }
        bytes_total += (uint64_t)n;
        p->t_last_byte = mono_ms();
        if (p->st == P_MEDIA)
            continue;
        p->have += (size_t)n;
        if (p->st == P_HANDSHAKE) {
            size_t used = 0;
            enum rtmp_hs_result r = rtmp_hs_client_feed(&p->hs, p->buf, p->have, &used);
            if (r == RTMP_HS_ERROR) {
                end_session(p, "bad-handshake");
                return;
            }
            if (r != RTMP_HS_DONE) {
                p->have = 0; /* the handshake state kept what it needs */
                continue;
            }
            memmove(p->buf, p->buf + used, p->have - used);
            p->have -= used;
            if (send_play(p) < 0) {
                end_session(p, "send");
                return;
            }
            static const struct rtmp_chunk_limits lim = {1 << 24, 1 << 24, 65599};
            rtmp_chunk_init(&p->dec, &lim, 128);
            p->chunk = 128;
            p->st = P_SETUP;
        }
        const char *why = NULL;
        int r = parse_setup(p, &why);
        if (r < 0) {
            end_session(p, why);
            return;
        }
        if (r > 0) {
            uint64_t w = wall_ms();
            printf("first %llu %d %s %llu %lld\n", (unsigned long long)w, p->id, p->stream,
                   (unsigned long long)(mono_ms() - p->t_connect),
                   p->lost_wall ? (long long)(w - p->lost_wall) : -1LL);
            p->lost_wall = 0;
            p->backoff_ms = 0;
            free(p->buf);
            p->buf = NULL;
            p->have = 0;
            p->st = P_MEDIA;
        }
    }
}

int main(int argc, char **argv)
{
    int nplayers = 400, i = 1;
    unsigned seconds = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "--players") == 0)
            nplayers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--setup-ms") == 0)
            setup_ms = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--stall-ms") == 0)
            stall_ms = (unsigned)atoi(argv[++i]);
        else
            break;
    }
    if (argc - i != 4 || nplayers <= 0 || nplayers > 20000) {
        fprintf(stderr, "usage: soak_player [--players N] [--seconds S] [--setup-ms MS] "
                        "[--stall-ms MS] HOST PORT APP STREAM[,STREAM...]\n");
        return 2;
    }
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[i + 1]));
    if (inet_pton(AF_INET, argv[i], &server.sin_addr) != 1) {
        fprintf(stderr, "soak_player: HOST must be an IPv4 address\n");
        return 2;
    }
    app = argv[i + 2];
    snprintf(tcurl, sizeof(tcurl), "rtmp://%s:%s/%s", argv[i], argv[i + 1], app);
    char *names = strdup(argv[i + 3]);
    const char *streams[256];
    int nstreams = 0;
    for (char *save = NULL, *s = strtok_r(names, ",", &save); s && nstreams < 256;
         s = strtok_r(NULL, ",", &save))
        streams[nstreams++] = s;
    if (!nstreams)
        return 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct player *ps = calloc((size_t)nplayers, sizeof(*ps));
    if (ep < 0 || !ps)
        return 1;
    uint64_t t0 = mono_ms();
    for (int k = 0; k < nplayers; k++) {
        ps[k] = (struct player){.id = k, .fd = -1, .st = P_IDLE, .stream = streams[k % nstreams],
                                /* a ramp: 100 players a second */
                                .t_retry = t0 + (uint64_t)k * 10};
    }
    uint64_t next_stat = t0 + 5000, next_sweep = t0;
    while (!stop && (!seconds || mono_ms() - t0 < (uint64_t)seconds * 1000)) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++)
            on_event(evs[k].data.ptr, evs[k].events);
        uint64_t now = mono_ms();
        if (now < next_sweep)
            continue;
        next_sweep = now + 50;
        for (int k = 0; k < nplayers; k++) {
            struct player *p = &ps[k];
            if (p->st == P_IDLE && now >= p->t_retry)
                start_session(p);
            else if (p->st == P_MEDIA && now - p->t_last_byte > stall_ms)
                end_session(p, "stall");
            else if ((p->st == P_CONNECTING || p->st == P_HANDSHAKE || p->st == P_SETUP) &&
                     now - p->t_connect > setup_ms)
                end_session(p, "no-media");
        }
        if (now >= next_stat) {
            next_stat = now + 5000;
            int live = 0, connecting = 0;
            for (int k = 0; k < nplayers; k++) {
                live += ps[k].st == P_MEDIA;
                connecting += ps[k].st != P_MEDIA && ps[k].st != P_IDLE;
            }
            printf("stat %llu %d %d %llu\n", (unsigned long long)wall_ms(), live, connecting,
                   (unsigned long long)bytes_total);
        }
    }
    for (int k = 0; k < nplayers; k++)
        if (ps[k].fd >= 0)
            close(ps[k].fd);
    free(ps);
    free(names);
    close(ep);
    return 0;
}
