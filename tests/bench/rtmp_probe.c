/* rtmp_probe: a minimal RTMP player for measurements and protocol tests.
 * Connects, handshakes (simple), sends connect / createStream / play (and,
 * with --obs, a Set Chunk Size of 4096 before connect, as OBS does), then
 * reads until the first audio or video message. Prints one line per play:
 *   ok <microseconds from TCP connect to the first media byte>
 *   error <what went wrong>
 * Uses rtmplb's own handshake, AMF and chunk code (tests/bench only).
 *   rtmp_probe [--obs] [--count N] [--proxy-v1 SRC | --proxy-v2 SRC]
 *              [--publish] [--hold MS] HOST PORT APP STREAM
 * --proxy-v1/-v2: send a PROXY header claiming SRC (an IPv4 address) first,
 * in the same write as C0C1. --publish: publish instead of play; success is
 * NetStream.Publish.Start, and a few audio messages follow while holding.
 * --hold: keep the session open this long after success; a session that
 * ends sooner (the server closes it, or a write fails) is an error:
 *   error held session ended after <ms> of <hold> ms
 * and exit status 1, so a test that holds a play or publish sees it die. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lb/rtmp/amf.h"
#include "lb/rtmp/chunk.h"
#include "lb/proxy_proto.h"
#include "lb/rtmp/handshake.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_some(int fd, uint8_t *p, size_t cap, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    ssize_t n = recv(fd, p, cap, 0);
    return n <= 0 ? -1 : (int)n;
}

/* One command message on csid 3 (or 8 for play), chunked at chunk size. */
static int send_cmd(int fd, uint32_t csid, uint32_t msid, const uint8_t *body, size_t len,
                    uint32_t chunk)
{
    uint8_t out[2048];
    size_t n = rtmp_chunk_write(out, sizeof(out), csid, 20, msid, body, len, chunk);
    return n ? send_all(fd, out, n) : -1;
}

struct opts {
    int obs, proxy, publish, hold_ms;
    const char *proxy_src;
};

/* Reads and drops what arrives for ms, sending a small audio message every
 * 100 ms when publishing (so the origin sees a live stream). Returns 0 when
 * the session lasted the whole time, else the ms it lasted plus 1 (>0). */
static long hold(int fd, int ms, int publish)
{
    uint64_t start = now_us(), end = start + (uint64_t)ms * 1000;
    uint8_t sink[65536];
    uint32_t n = 0;
    while (now_us() < end) {
        if (publish) {
            uint8_t aac[4] = {0xAF, 0x01, 0x21, (uint8_t)n++}, out[32];
            size_t k = rtmp_chunk_write(out, sizeof(out), 4, 8, 1, aac, 4, 128);
            out[1] = 0, out[2] = 0, out[3] = 0; /* timestamp 0: fine for a probe */
            if (send_all(fd, out, k) < 0)
                return (long)((now_us() - start) / 1000) + 1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, 100);
        if (r < 0 && errno != EINTR)
            return (long)((now_us() - start) / 1000) + 1;
        if (r > 0) {
            ssize_t k = recv(fd, sink, sizeof(sink), 0);
            if (k == 0 || (k < 0 && errno != EINTR))
                return (long)((now_us() - start) / 1000) + 1;
        }
    }
    return 0;
}

static const char *play_once(const char *host, int port, const char *app, const char *stream,
                             const struct opts *o, uint64_t *us)
{
    int obs = o->obs;
    static char err[160];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t t0 = now_us();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return "connect failed";
    }

    struct rtmp_hs_client hc;
    rtmp_hs_client_init(&hc, NULL);
    uint8_t first[2048];
    size_t nfirst = 0;
    if (o->proxy) {
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(40000)};
        inet_pton(AF_INET, o->proxy_src, &src.sin_addr);
        nfirst = o->proxy == 1 ? pp_write_v1(first, sizeof(first), (struct sockaddr *)&src,
                                             (struct sockaddr *)&sa)
                               : pp_write_v2(first, sizeof(first), (struct sockaddr *)&src,
                                             (struct sockaddr *)&sa);
    }
    memcpy(first + nfirst, hc.c0c1, sizeof(hc.c0c1)); /* one write: header + C0C1 */
    send_all(fd, first, nfirst + sizeof(hc.c0c1));
    static uint8_t buf[1 << 20];
    uint8_t tmp[8192];
    size_t have = 0, used;
    for (;;) {
        int n = recv_some(fd, tmp, sizeof(tmp), 5000);
        if (n < 0) {
            close(fd);
            return "handshake: no answer";
        }
        enum rtmp_hs_result r = rtmp_hs_client_feed(&hc, tmp, (size_t)n, &used);
        if (r == RTMP_HS_ERROR) {
            close(fd);
            return "handshake: bad S0";
        }
        if (r == RTMP_HS_DONE) { /* keep what followed S2 */
            memcpy(buf, tmp + used, (size_t)n - used);
            have = (size_t)n - used;
            break;
        }
    }
    send_all(fd, rtmp_hs_client_c2(&hc), RTMP_HS_SIZE);

    uint32_t chunk = 128;
    if (obs) { /* OBS: Set Chunk Size 4096 on csid 2 before connect */
        uint8_t scs[4] = {0, 0, 0x10, 0}, out[32];
        size_t n = rtmp_chunk_write(out, sizeof(out), 2, 1, 0, scs, 4, 128);
        send_all(fd, out, n);
        chunk = 4096;
    }
    char tc[300];
    snprintf(tc, sizeof(tc), "rtmp://%s:%d/%s", host, port, app);
    uint8_t body[1024], *p = body, *end = body + sizeof(body);
    p = amf0_put_string(p, end, "connect");
    p = amf0_put_number(p, end, 1);
    p = amf0_put_object_start(p, end);
    p = amf0_put_key(p, end, "app");
    p = amf0_put_string(p, end, app);
    p = amf0_put_key(p, end, "flashVer");
    p = amf0_put_string(p, end, "LNX 9,0,124,2");
    p = amf0_put_key(p, end, "tcUrl");
    p = amf0_put_string(p, end, tc);
    p = amf0_put_object_end(p, end);
    send_cmd(fd, 3, 0, body, (size_t)(p - body), chunk);
    p = body;
    p = amf0_put_string(p, end, "createStream");
    p = amf0_put_number(p, end, 2);
    p = amf0_put_null(p, end);
    send_cmd(fd, 3, 0, body, (size_t)(p - body), chunk);
    p = body;
    p = amf0_put_string(p, end, o->publish ? "publish" : "play");
    p = amf0_put_number(p, end, 0);
    p = amf0_put_null(p, end);
    p = amf0_put_string(p, end, stream);
    if (o->publish)
        p = amf0_put_string(p, end, "live");
    else
        p = amf0_put_number(p, end, -1000);
    send_cmd(fd, 8, 1, body, (size_t)(p - body), chunk);

    struct rtmp_chunk_dec d;
    struct rtmp_chunk_limits lim = {1 << 24, 1 << 24, 65599};
    rtmp_chunk_init(&d, &lim, 128);
    size_t pos = 0;
    for (;;) {
        struct rtmp_chunk_ev ev;
        rtmp_chunk_next(&d, buf + pos, have - pos, &used, &ev);
        pos += used;
        if (ev.type == RTMP_EV_ERROR) {
            snprintf(err, sizeof(err), "chunk stream: %s", ev.error);
            close(fd);
            return err;
        }
        bool started = o->publish ? ev.type == RTMP_EV_MSG_START && ev.msg_type == 20 &&
                                        memmem(ev.data, ev.data_len, "Publish.Start", 13)
                                  : ev.type == RTMP_EV_MSG_START &&
                                        (ev.msg_type == 8 || ev.msg_type == 9);
        if (started) {
            *us = now_us() - t0;
            long lasted = o->hold_ms ? hold(fd, o->hold_ms, o->publish) : 0;
            close(fd);
            if (lasted > 0) {
                snprintf(err, sizeof(err), "held session ended after %ld of %d ms", lasted - 1,
                         o->hold_ms);
                return err;
            }
            return NULL;
        }
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 1 && ev.data_len >= 4)
            chunk = (uint32_t)ev.data[0] << 24 | (uint32_t)ev.data[1] << 16 |
                    (uint32_t)ev.data[2] << 8 | ev.data[3];
        if (ev.type == RTMP_EV_MSG_END && ev.msg_type == 1)
            rtmp_chunk_set_size(&d, chunk & 0x7fffffff);
        if (ev.type == RTMP_EV_MSG_START && ev.msg_type == 20 && ev.data_len > 20) {
            static const char *bad[] = {"_error", "StreamNotFound", "Publish.Denied",
                                        "Connect.Rejected", "Publish.BadName"};
            for (size_t k = 0; k < 5; k++)
                if (memmem(ev.data, ev.data_len, bad[k], strlen(bad[k]))) {
                    snprintf(err, sizeof(err), "server said %s", bad[k]);
                    close(fd);
                    return err;
                }
        }
        if (ev.type == RTMP_EV_NEED_MORE) {
            memmove(buf, buf + pos, have - pos);
            have -= pos;
            pos = 0;
            int n = recv_some(fd, buf + have, sizeof(buf) - have, 5000);
            if (n < 0) {
                close(fd);
                return "no media within 5 s";
            }
            have += (size_t)n;
        }
    }
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int count = 1, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--obs") == 0)
            o.obs = 1;
        else if (strcmp(argv[i], "--publish") == 0)
            o.publish = 1;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
            o.hold_ms = atoi(argv[++i]);
        else if ((strcmp(argv[i], "--proxy-v1") == 0 || strcmp(argv[i], "--proxy-v2") == 0) &&
                 i + 1 < argc) {
            o.proxy = argv[i][9] == '1' ? 1 : 2;
            o.proxy_src = argv[++i];
        }
    }
    if (argc - i != 4) {
        fprintf(stderr, "usage: rtmp_probe [--obs] [--count N] [--proxy-v1 SRC | --proxy-v2 SRC] "
                        "[--publish] [--hold MS] HOST PORT APP STREAM\n");
        return 2;
    }
    int failures = 0;
    for (int k = 0; k < count; k++) {
        uint64_t us = 0;
        const char *e = play_once(argv[i], atoi(argv[i + 1]), argv[i + 2], argv[i + 3], &o, &us);
        if (e) {
            printf("error %s\n", e);
            failures++;
        } else {
            printf("ok %llu\n", (unsigned long long)us);
        }
        fflush(stdout);
    }
    return failures ? 1 : 0;
}
