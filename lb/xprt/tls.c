/* The TLS transport: OpenSSL on the session's non-blocking socket. What a
 * raw socket never does, and the session core handles through the ops:
 * a read may need the socket writable and a write readable (want), bytes
 * may wait inside SSL with no poll event to announce them (pending), and
 * the end is a close_notify. Buffers are OpenSSL's, released when idle
 * (SSL_MODE_RELEASE_BUFFERS on every context). */
#include "lb/xprt/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "lb/tls/tls.h"

struct tls_conn {
    SSL *ssl;
    int rd_ev, wr_ev; /* what the last read / write that would block waits for */
    int hs_ev;        /* what the handshake waits for */
};

static struct tls_conn *tc(const struct lb_conn *c) { return c->ctx; }

void lb_tls_count(enum lb_tls_side side, enum lb_tls_result r, enum lb_tls_ver v)
{
    if ((unsigned)side < LB_TLS_SIDE__COUNT && (unsigned)r < LB_TLS_RESULT__COUNT &&
        (unsigned)v < LB_TLS_V__COUNT)
        atomic_fetch_add_explicit(&lb_tls_stats.hs[side][r][v], 1, memory_order_relaxed);
}

static enum lb_tls_ver ver_of(const SSL *ssl)
{
    switch (SSL_version(ssl)) {
    case TLS1_2_VERSION:
        return LB_TLS_V_1_2;
    case TLS1_3_VERSION:
        return LB_TLS_V_1_3;
    default:
        return LB_TLS_V_UNKNOWN;
    }
}

/* Maps an SSL result n of a call: > 0 as it is; would-block to -EAGAIN
 * with the events it waits for in *ev; EOF to 0; an error to -errno. */
static ssize_t map(SSL *ssl, int n, int *ev, int self_ev)
{
    if (n > 0) {
        *ev = self_ev;
        return n;
    }
    int e = SSL_get_error(ssl, n);
    int err = errno;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *ev = UV_READABLE;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *ev = UV_WRITABLE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (err == EAGAIN || err == EINTR) {
            *ev = self_ev;
            return -EAGAIN;
        }
        return err ? -err : -ECONNRESET;
    default:
        ERR_clear_error();
        return -EPROTO;
    }
}

static ssize_t tls_read(struct lb_conn *c, void *buf, size_t len)
{
    struct tls_conn *t = tc(c);
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(t->ssl, buf, (int)len);
    return map(t->ssl, n, &t->rd_ev, UV_READABLE);
}

static ssize_t tls_write(struct lb_conn *c, const void *buf, size_t len)
{
    struct tls_conn *t = tc(c);
    if (len == 0)
        return 0;
    if (len > INT32_MAX)
        len = INT32_MAX;
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(t->ssl, buf, (int)len);
    ssize_t r = map(t->ssl, n, &t->wr_ev, UV_WRITABLE);
    return r == 0 ? -EPIPE : r;
}

/* close_notify, then FIN: what the peer reads as the end of the stream. */
static int tls_shutdown(struct lb_conn *c)
{
    struct tls_conn *t = tc(c);
    ERR_clear_error();
    if (SSL_is_init_finished(t->ssl))
        (void)SSL_shutdown(t->ssl); /* one try: a full socket drops it */
    ERR_clear_error();
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void tls_quickack(struct lb_conn *c)
{
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static int tls_want(const struct lb_conn *c, int ev)
{
    const struct tls_conn *t = tc(c);
    return ev == UV_READABLE ? t->rd_ev : ev == UV_WRITABLE ? t->wr_ev : ev;
}

static bool tls_pending(const struct lb_conn *c)
{
    return SSL_has_pending(tc(c)->ssl) == 1;
}

static void tls_release(struct lb_conn *c)
{
    struct tls_conn *t = tc(c);
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
    c->ctx = NULL;
}

const struct lb_xprt_ops lb_xprt_tls = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .can_splice = false,
    .secure = true,
    .quickack = tls_quickack,
    .want = tls_want,
    .pending = tls_pending,
    .release = tls_release,
};

static int wrap(struct lb_conn *c, SSL *ssl)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (!t || SSL_set_fd(ssl, c->fd) != 1) {
        free(t);
        SSL_free(ssl);
        ERR_clear_error();
        return -ENOMEM;
    }
    t->ssl = ssl;
    t->rd_ev = t->hs_ev = UV_READABLE;
    t->wr_ev = UV_WRITABLE;
    c->ctx = t;
    c->ops = &lb_xprt_tls;
    return 0;
}

int lb_tls_accept(struct lb_conn *c, SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return -ENOMEM;
    SSL_set_accept_state(ssl);
    return wrap(c, ssl);
}

/* SNI and the name to verify (the sni, else the node's IP). */
static int client_setup(SSL *ssl, const struct lb_tls_client *cl)
{
    if (cl->sni && SSL_set_tlsext_host_name(ssl, cl->sni) != 1)
        return -1;
    if (cl->verify) {
        if (cl->sni ? SSL_set1_host(ssl, cl->sni) != 1
                    : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cl->ip) != 1)
            return -1;
    }
    SSL_set_connect_state(ssl);
    return 0;
}

int lb_tls_connect(struct lb_conn *c, const struct lb_tls_client *cl)
{
    SSL *ssl = SSL_new(cl->ctx);
    if (!ssl)
        return -ENOMEM;
    if (client_setup(ssl, cl) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        return -ENOMEM;
    }
    return wrap(c, ssl);
}

/* Why a handshake failed, and which result that is. */
static int hs_failed(SSL *ssl, int e, int err, enum lb_tls_result *res, char *why, size_t len)
{
    long vr = SSL_get_verify_result(ssl);
    unsigned long oe = ERR_peek_last_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && oe == 0)) {
        *res = LB_TLS_CLOSED;
        snprintf(why, len, "the peer closed during the TLS handshake%s%s", err ? ": " : "",
                 err ? strerror(err) : "");
    } else if (!SSL_is_server(ssl) && vr != X509_V_OK) {
        *res = LB_TLS_VERIFY;
        snprintf(why, len, "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else {
        const char *r = oe ? ERR_reason_error_string(oe) : NULL;
        *res = LB_TLS_ERROR;
        snprintf(why, len, "TLS handshake failed: %s", r ? r : "protocol error");
    }
    ERR_clear_error();
    return *res == LB_TLS_CLOSED ? -ECONNRESET : -EPROTO;
}

int lb_tls_handshake(struct lb_conn *c, enum lb_tls_side side, enum lb_tls_result *res,
                     char *why, size_t len)
{
    struct tls_conn *t = tc(c);
    ERR_clear_error();
    errno = 0;
    int n = SSL_do_handshake(t->ssl);
    if (n == 1) {
        *res = LB_TLS_OK;
        lb_tls_count(side, LB_TLS_OK, ver_of(t->ssl));
        if (SSL_session_reused(t->ssl))
            atomic_fetch_add_explicit(&lb_tls_stats.resumed, 1, memory_order_relaxed);
        return 0;
    }
    int err = errno;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
        (e == SSL_ERROR_SYSCALL && (err == EAGAIN || err == EINTR))) {
        t->hs_ev = e == SSL_ERROR_WANT_WRITE ? UV_WRITABLE : UV_READABLE;
        ERR_clear_error();
        return -EAGAIN;
    }
    int rc = hs_failed(t->ssl, e, err, res, why, len);
    lb_tls_count(side, *res, ver_of(t->ssl));
    return rc;
}

int lb_tls_hs_events(const struct lb_conn *c) { return tc(c)->hs_ev; }

enum lb_tls_ver lb_tls_conn_version(const struct lb_conn *c)
{
    return c->ops == &lb_xprt_tls ? ver_of(tc(c)->ssl) : LB_TLS_V_UNKNOWN;
}

/* ---- memory-BIO client (health probes) --------------------------------- */

struct lb_tls_mem {
    SSL *ssl;
    BIO *in, *out; /* in: ciphertext from the node; out: for the node */
};

struct lb_tls_mem *lb_tls_mem_new(const struct lb_tls_client *cl)
{
    struct lb_tls_mem *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->ssl = SSL_new(cl->ctx);
    m->in = BIO_new(BIO_s_mem());
    m->out = BIO_new(BIO_s_mem());
    if (!m->ssl || !m->in || !m->out || client_setup(m->ssl, cl) < 0) {
        SSL_free(m->ssl);
        BIO_free(m->in);
        BIO_free(m->out);
        free(m);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_mem_eof_return(m->in, -1); /* empty: would block, not EOF */
    SSL_set_bio(m->ssl, m->in, m->out);
    return m;
}

void lb_tls_mem_free(struct lb_tls_mem *m)
{
    if (!m)
        return;
    SSL_free(m->ssl); /* frees both BIOs */
    free(m);
}

int lb_tls_mem_feed(struct lb_tls_mem *m, const void *p, size_t n)
{
    return n == 0 || BIO_write(m->in, p, (int)n) == (int)n ? 0 : -ENOMEM;
}

int lb_tls_mem_handshake(struct lb_tls_mem *m, enum lb_tls_result *res, char *why, size_t len)
{
    ERR_clear_error();
    errno = 0;
    int n = SSL_do_handshake(m->ssl);
    if (n == 1) {
        *res = LB_TLS_OK;
        return 0;
    }
    int e = SSL_get_error(m->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return -EAGAIN;
    }
    return hs_failed(m->ssl, e, 0, res, why, len);
}

ssize_t lb_tls_mem_read(struct lb_tls_mem *m, void *buf, size_t len)
{
    int ev;
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(m->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return map(m->ssl, n, &ev, UV_READABLE);
}

int lb_tls_mem_write(struct lb_tls_mem *m, const void *p, size_t n)
{
    ERR_clear_error();
    if (n == 0)
        return 0;
    int w = SSL_write(m->ssl, p, (int)n); /* memory BIO: all of it or an error */
    ERR_clear_error();
    return w == (int)n ? 0 : -EPROTO;
}

size_t lb_tls_mem_take_out(struct lb_tls_mem *m, void *buf, size_t len)
{
    int n = BIO_read(m->out, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return n > 0 ? (size_t)n : 0;
}
