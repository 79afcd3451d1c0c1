/* HTTP-FLV fan-out load: N viewers GET one path on HOST:PORT and read
 * whatever comes, for SECONDS after the last one connected; prints the
 * bytes delivered in that window, the viewers that got an answer, and
 * those that failed. One thread, epoll, loopback.
 *   http_fanout_client HOST PORT PATH N SECONDS */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH N SECONDS\n", argv[0]);
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
        return 2;
    int n = atoi(argv[4]);
    double secs = atof(argv[5]);
    if (n <= 0 || n > 60000 || secs <= 0)
        return 2;
    char req[512];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: fanout\r\n\r\n",
                      argv[3]);
    int ep = epoll_create1(0);
    int *got = calloc((size_t)n, sizeof(int));
    int failed = 0, answered = 0, open_ = 0;
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            write(fd, req, (size_t)rl) != rl) {
            failed++;
            if (fd >= 0)
                close(fd);
            continue;
        }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)i << 32) | (uint32_t)fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        open_++;
    }
    static char buf[1 << 16];
    unsigned long long bytes = 0;
    double start = now_s(), end = start + secs;
    struct epoll_event evs[256];
    while (open_ > 0) {
        double t = now_s();
        if (t >= end)
            break;
        int k = epoll_wait(ep, evs, 256, (int)((end - t) * 1000) + 1);
        for (int e = 0; e < k; e++) {
            int fd = (int)(uint32_t)evs[e].data.u64;
            int idx = (int)(evs[e].data.u64 >> 32);
            for (int r = 0; r < 16; r++) {
                ssize_t m = read(fd, buf, sizeof(buf));
                if (m > 0) {
                    bytes += (unsigned long long)m;
                    if (!got[idx]) {
                        got[idx] = 1;
                        answered++;
                    }
                    continue;
                }
                if (m < 0 && errno == EAGAIN)
                    break;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                open_--;
                if (!got[idx])
                    failed++;
                break;
            }
        }
    }
    double took = now_s() - start;
    printf("bytes %llu seconds %.2f mbps %.1f answered %d failed %d\n", bytes, took,
           (double)bytes * 8 / took / 1e6, answered, failed);
    return 0;
}
