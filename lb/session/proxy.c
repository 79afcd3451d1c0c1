/* PROXY protocol on a session: reading the header a listener requires, and
 * writing one for nodes with send_proxy. The header is read, never peeked
 * in a loop: whatever is readable and surely part of the header is taken
 * into the session (the 16-byte v2 prefix, then exactly its length; a v1
 * line up to its LF), so a stalled partial header costs nothing until more
 * bytes come; the bytes after it are left in the socket. */
#include "lb/session/internal.h"

#include "lb/log.h"
#include "lb/net.h"
#include "conf/conf-t.h"
#include "lb/proxy_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PP_V2_PREFIX 16
#define PP_V1_MAX 107

struct lb_pp_in {
    uint8_t buf[PP_MAX_HEADER];
    size_t len;
};

/* How many of the `avail` peeked bytes belong to the header for sure. */
static size_t header_part(const struct lb_pp_in *in, const uint8_t *peek, size_t avail)
{
    const uint8_t first = in->len ? in->buf[0] : peek[0];
    if (first == 'P') { /* v1: up to the LF */
        const uint8_t *lf = memchr(peek, '\n', avail);
        size_t take = lf ? (size_t)(lf - peek) + 1 : avail;
        return take < PP_V1_MAX + 1 - in->len ? take : PP_V1_MAX + 1 - in->len;
    }
    size_t need;
    if (in->len < PP_V2_PREFIX) {
        need = PP_V2_PREFIX - in->len;
    } else {
        size_t total = PP_V2_PREFIX + ((size_t)in->buf[14] << 8 | in->buf[15]);
        if (total > sizeof(in->buf))
            total = sizeof(in->buf);
        need = total > in->len ? total - in->len : 0;
    }
    return avail < need ? avail : need;
}

static void refuse(struct lb_session *s, const char *why)
{
    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_WARN, "proxy_protocol");
    lb_log_str(&l, "client", s->client_text);
    lb_log_str(&l, "listener", s->lst->name);
    lb_log_str(&l, "error", why);
    lb_log_end(&l);
    lb__close_req(s, LB_REASON_PROXY_PROTOCOL, 0);
}

static void accept_header(struct lb_session *s, const struct pp_header *ph)
{
    if (!ph->local) {
        memcpy(&s->peer, &ph->src, ph->len);
        memcpy(&s->local, &ph->dst, ph->len);
        s->local_known = true;
        lb_sockaddr_text((struct sockaddr *)&s->peer, s->client_text, sizeof(s->client_text));
    }
}

void lb__proxy_readable(struct lb_session *s)
{
    struct lb_pp_in *in = s->pp_in;
    uint8_t peek[PP_MAX_HEADER];

    for (;;) {
        struct pp_header ph;
        const char *why = NULL;
        enum pp_result r = in->len ? pp_parse(in->buf, in->len,
                                              (enum pp_accept)s->lst->proxy_protocol, &ph, &why)
                                   : PP_NEED_MORE;
        if (r == PP_DONE) {
            accept_header(s, &ph);
            free(in);
            s->pp_in = NULL;
            lb__after_proxy(s);
            return;
        }
        if (r == PP_ERROR || in->len == sizeof(in->buf)) {
            refuse(s, why ? why : "PROXY header too long");
            return;
        }
        ssize_t n = s->client.ops->peek(&s->client, peek, sizeof(in->buf) - in->len);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            lb__close_req(s, n == 0 ? LB_REASON_CLIENT_CLOSED : LB_REASON_CLIENT_ERROR,
                          n == 0 ? 0 : (int)-n);
            return;
        }
        size_t take = header_part(in, peek, (size_t)n);
        if (take == 0) {
            refuse(s, "PROXY header too long");
            return;
        }
        n = s->client.ops->read(&s->client, in->buf + in->len, take);
        if (n != (ssize_t)take) {
            lb__close_req(s, LB_REASON_CLIENT_ERROR, n < 0 ? (int)-n : EIO);
            return;
        }
        in->len += take;
    }
}

int lb__proxy_begin(struct lb_session *s)
{
    s->pp_in = calloc(1, sizeof(*s->pp_in));
    return s->pp_in ? 0 : -1;
}

size_t lb__proxy_header_out(struct lb_session *s, uint8_t *out, size_t cap)
{
    if (!s->node || s->node->send_proxy == CONF_PP_OFF)
        return 0;
    if (!s->local_known) { /* only send_proxy needs it: not asked on every accept */
        socklen_t len = sizeof(s->local);
        if (getsockname(s->client.fd, (struct sockaddr *)&s->local, &len) < 0)
            return 0;
        s->local_known = true;
    }
    const struct sockaddr *src = (const struct sockaddr *)&s->peer;
    const struct sockaddr *dst = (const struct sockaddr *)&s->local;
    return s->node->send_proxy == CONF_PP_V2 ? pp_write_v2(out, cap, src, dst)
                                             : pp_write_v1(out, cap, src, dst);
}
