/* PROXY protocol v1/v2. */
#include "lb/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static enum pp_result bad(const char **why, const char *w)
{
    *why = w;
    return PP_ERROR;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 111 222\r\n" */
static enum pp_result parse_v1(const uint8_t *p, size_t n, struct pp_header *h, const char **why)
{
    const uint8_t *crlf = NULL;
    size_t lim = n < 107 ? n : 107;
    for (size_t i = 0; i + 1 < lim; i++)
        if (p[i] == '\r' && p[i + 1] == '\n') {
            crlf = p + i;
            break;
        }
    if (!crlf)
        return n >= 107 ? bad(why, "PROXY v1 header longer than 107 bytes") : PP_NEED_MORE;

    char line[108];
    size_t len = (size_t)(crlf - p);
    memcpy(line, p, len);
    line[len] = '\0';
    h->version = 1;
    h->size = len + 2;
    if (strcmp(line, "PROXY UNKNOWN") == 0 || strncmp(line, "PROXY UNKNOWN ", 14) == 0) {
        h->local = true;
        h->len = 0;
        return PP_DONE;
    }
    char proto[8], sa[64], da[64], extra;
    unsigned sp, dp;
    if (sscanf(line, "PROXY %7s %63s %63s %u %u%c", proto, sa, da, &sp, &dp, &extra) != 5)
        return bad(why, "malformed PROXY v1 header");
    /* Ports must be plain decimal: no signs (%u would wrap "-2"). */
    const char *ports = line + strlen("PROXY ") + strlen(proto) + 1 + strlen(sa) + 1 + strlen(da) + 1;
    for (const char *c = ports; *c; c++)
        if (!(*c >= '0' && *c <= '9') && *c != ' ')
            return bad(why, "malformed PROXY v1 header");
    if (sp > 65535 || dp > 65535)
        return bad(why, "PROXY v1 port out of range");
    int fam = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : -1;
    if (fam < 0)
        return bad(why, "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
    memset(&h->src, 0, sizeof(h->src));
    memset(&h->dst, 0, sizeof(h->dst));
    if (fam == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&h->src, *d4 = (struct sockaddr_in *)&h->dst;
        s4->sin_family = d4->sin_family = AF_INET;
        if (inet_pton(AF_INET, sa, &s4->sin_addr) != 1 || inet_pton(AF_INET, da, &d4->sin_addr) != 1)
            return bad(why, "PROXY v1 address is not IPv4");
        s4->sin_port = htons((uint16_t)sp);
        d4->sin_port = htons((uint16_t)dp);
        h->len = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->src,
                            *d6 = (struct sockaddr_in6 *)&h->dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, sa, &s6->sin6_addr) != 1 ||
            inet_pton(AF_INET6, da, &d6->sin6_addr) != 1)
            return bad(why, "PROXY v1 address is not IPv6");
        s6->sin6_port = htons((uint16_t)sp);
        d6->sin6_port = htons((uint16_t)dp);
        h->len = sizeof(struct sockaddr_in6);
    }
    h->local = false;
    return PP_DONE;
}

static enum pp_result parse_v2(const uint8_t *p, size_t n, struct pp_header *h, const char **why)
{
    if (n < 16)
        return PP_NEED_MORE;
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13] >> 4, proto = p[13] & 0x0f;
    size_t len = (size_t)p[14] << 8 | p[15];
    if (ver != 2)
        return bad(why, "PROXY v2 header with a version other than 2");
    if (16 + len > PP_MAX_HEADER)
        return bad(why, "PROXY v2 header longer than the limit");
    if (n < 16 + len)
        return PP_NEED_MORE;
    h->version = 2;
    h->size = 16 + len;
    memset(&h->src, 0, sizeof(h->src));
    memset(&h->dst, 0, sizeof(h->dst));
    if (cmd == 0) { /* LOCAL: the balancer's own connection */
        h->local = true;
        h->len = 0;
        return PP_DONE;
    }
    if (cmd != 1)
        return bad(why, "PROXY v2 command is neither LOCAL nor PROXY");
    h->local = false;
    if (fam == 1 && proto == 1) { /* TCP over IPv4 */
        if (len < 12)
            return bad(why, "PROXY v2 IPv4 addresses truncated");
        struct sockaddr_in *s4 = (struct sockaddr_in *)&h->src, *d4 = (struct sockaddr_in *)&h->dst;
        s4->sin_family = d4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, p + 16, 4);
        memcpy(&d4->sin_addr, p + 20, 4);
        memcpy(&s4->sin_port, p + 24, 2);
        memcpy(&d4->sin_port, p + 26, 2);
        h->len = sizeof(struct sockaddr_in);
        return PP_DONE;
    }
    if (fam == 2 && proto == 1) { /* TCP over IPv6 */
        if (len < 36)
            return bad(why, "PROXY v2 IPv6 addresses truncated");
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->src,
                            *d6 = (struct sockaddr_in6 *)&h->dst;
        s6->sin6_family = d6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, p + 16, 16);
        memcpy(&d6->sin6_addr, p + 32, 16);
        memcpy(&s6->sin6_port, p + 48, 2);
        memcpy(&d6->sin6_port, p + 50, 2);
        h->len = sizeof(struct sockaddr_in6);
        return PP_DONE;
    }
    if (fam == 0) { /* UNSPEC with PROXY: keep the socket's own address */
        h->local = true;
        h->len = 0;
        return PP_DONE;
    }
    return bad(why, "PROXY v2 family is not TCP over IPv4 or IPv6");
}

enum pp_result pp_parse(const uint8_t *p, size_t n, enum pp_accept accept, struct pp_header *h,
                        const char **why)
{
    static const char v1sig[6] = "PROXY ";
    size_t k;

    memset(h, 0, sizeof(*h));
    /* Decide as soon as the bytes seen rule a version out. */
    bool maybe_v1 = true, maybe_v2 = true;
    for (k = 0; k < n && k < 6; k++)
        if (p[k] != (uint8_t)v1sig[k])
            maybe_v1 = false;
    for (k = 0; k < n && k < 12; k++)
        if (p[k] != V2_SIG[k])
            maybe_v2 = false;
    if (!(accept & PP_V1))
        maybe_v1 = false;
    if (!(accept & PP_V2))
        maybe_v2 = false;
    if (!maybe_v1 && !maybe_v2)
        return bad(why, accept == PP_V1   ? "no PROXY v1 header"
                        : accept == PP_V2 ? "no PROXY v2 header"
                                          : "no PROXY header");
    if (maybe_v1 && n >= 6)
        return parse_v1(p, n, h, why);
    if (maybe_v2 && n >= 12)
        return parse_v2(p, n, h, why);
    return PP_NEED_MORE;
}

size_t pp_write_v1(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    int n;
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        inet_ntop(AF_INET, &s->sin_addr, sa, sizeof(sa));
        inet_ntop(AF_INET, &d->sin_addr, da, sizeof(da));
        n = snprintf((char *)out, cap, "PROXY TCP4 %s %s %u %u\r\n", sa, da, ntohs(s->sin_port),
                     ntohs(d->sin_port));
    } else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        inet_ntop(AF_INET6, &s->sin6_addr, sa, sizeof(sa));
        inet_ntop(AF_INET6, &d->sin6_addr, da, sizeof(da));
        n = snprintf((char *)out, cap, "PROXY TCP6 %s %s %u %u\r\n", sa, da, ntohs(s->sin6_port),
                     ntohs(d->sin6_port));
    } else {
        n = snprintf((char *)out, cap, "PROXY UNKNOWN\r\n");
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t pp_write_v2(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
    size_t n;
    if (cap < 16)
        return 0;
    memcpy(out, V2_SIG, 12);
    out[12] = 0x21; /* version 2, PROXY */
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        if (cap < 28)
            return 0;
        out[13] = 0x11;
        out[14] = 0;
        out[15] = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
        n = 28;
    } else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        if (cap < 52)
            return 0;
        out[13] = 0x21;
        out[14] = 0;
        out[15] = 36;
        memcpy(out + 16, &s->sin6_addr, 16);
        memcpy(out + 32, &d->sin6_addr, 16);
        memcpy(out + 48, &s->sin6_port, 2);
        memcpy(out + 50, &d->sin6_port, 2);
        n = 52;
    } else {
        out[12] = 0x20; /* LOCAL */
        out[13] = 0;
        out[14] = out[15] = 0;
        n = 16;
    }
    return n;
}
