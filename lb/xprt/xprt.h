/* Transports behind one set of ops (STYLE.md 2): the session core and the
 * phases move bytes only through these, so a TLS transport can take the
 * place of the raw one. Only xprt/raw.c calls recv, send and splice. */
#ifndef LB_XPRT_XPRT_H
#define LB_XPRT_XPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lb_conn;

/* Every call returns bytes moved (> 0), 0 for EOF (read/splice_in), or a
 * negative errno: -EAGAIN when it would block. */
struct lb_xprt_ops {
    const char *name;
    ssize_t (*read)(struct lb_conn *c, void *buf, size_t len);
    ssize_t (*write)(struct lb_conn *c, const void *buf, size_t len);
    int (*shutdown)(struct lb_conn *c); /* no more writes (FIN) */
    bool can_splice;                    /* splice_in/splice_out work */
    bool secure;                        /* TLS: https:// for HTTP, proto=https */
    ssize_t (*splice_in)(struct lb_conn *c, int pipe_wfd, size_t len);
    ssize_t (*splice_out)(struct lb_conn *c, int pipe_rfd, size_t len);
    /* Acknowledge what was read at once (pre-route: peers write commands in
     * small pieces under Nagle). May be a no-op. */
    void (*quickack)(struct lb_conn *c);
    /* Looks at what is readable without consuming it (PROXY headers, which
     * always arrive before any TLS). */
    ssize_t (*peek)(struct lb_conn *c, void *buf, size_t len);
    /* The receive low-water mark: poll says readable only once this many
     * bytes wait (or EOF, or an error). NULL: the transport cannot batch. */
    int (*rcvlowat)(struct lb_conn *c, int bytes);
    /* The rest is for transports with their own state (TLS); NULL on raw,
     * which keeps its fast path. */
    /* The poll events that let a read (ev = UV_READABLE) or a write
     * (UV_WRITABLE) that returned -EAGAIN go on: a TLS read may need the
     * socket writable, and a write readable. */
    int (*want)(const struct lb_conn *c, int ev);
    /* Bytes already read from the socket and waiting inside the transport:
     * no poll event will announce them. */
    bool (*pending)(const struct lb_conn *c);
    /* Frees the transport's state (the fd is the core's). */
    void (*release)(struct lb_conn *c);
};

struct lb_conn {
    const struct lb_xprt_ops *ops;
    int fd;    /* the socket the core polls; -1 when none */
    void *ctx; /* the transport's own state */
};

extern const struct lb_xprt_ops lb_xprt_raw;

static inline ssize_t lb_conn_read(struct lb_conn *c, void *buf, size_t len)
{
    return c->ops->read(c, buf, len);
}
static inline int lb_conn_want(const struct lb_conn *c, int ev)
{
    return c->ops->want ? c->ops->want(c, ev) : ev;
}
static inline bool lb_conn_pending(const struct lb_conn *c)
{
    return c->ops->pending && c->ops->pending(c);
}
/* Back to a plain socket with no transport state (the fd stays). */
static inline void lb_conn_release(struct lb_conn *c)
{
    if (c->ops->release)
        c->ops->release(c);
    c->ops = &lb_xprt_raw;
    c->ctx = NULL;
}
static inline ssize_t lb_conn_write(struct lb_conn *c, const void *buf, size_t len)
{
    return c->ops->write(c, buf, len);
}

#endif
