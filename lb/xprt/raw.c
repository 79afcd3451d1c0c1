/* The raw transport: a plain TCP socket; splice(2) works on it. */
#include "lb/xprt/xprt.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static ssize_t neg(ssize_t n) { return n < 0 ? -(ssize_t)errno : n; }

static ssize_t raw_read(struct lb_conn *c, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return neg(n);
}

static ssize_t raw_write(struct lb_conn *c, const void *buf, size_t len)
{
    ssize_t n;
    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return neg(n);
}

static int raw_shutdown(struct lb_conn *c)
{
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static ssize_t raw_splice_in(struct lb_conn *c, int pipe_wfd, size_t len)
{
    ssize_t n;
    do
        n = splice(c->fd, NULL, pipe_wfd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    return neg(n);
}

static ssize_t raw_splice_out(struct lb_conn *c, int pipe_rfd, size_t len)
{
    ssize_t n;
    do
        n = splice(pipe_rfd, NULL, c->fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    return neg(n);
}

static void raw_quickack(struct lb_conn *c)
{
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static ssize_t raw_peek(struct lb_conn *c, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(c->fd, buf, len, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    return neg(n);
}

static int raw_rcvlowat(struct lb_conn *c, int bytes)
{
    return setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes)) < 0 ? -errno : 0;
}

const struct lb_xprt_ops lb_xprt_raw = {
    .name = "raw",
    .read = raw_read,
    .write = raw_write,
    .shutdown = raw_shutdown,
    .can_splice = true,
    .splice_in = raw_splice_in,
    .splice_out = raw_splice_out,
    .quickack = raw_quickack,
    .peek = raw_peek,
    .rcvlowat = raw_rcvlowat,
};
