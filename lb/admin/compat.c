/* Stock origins' control requests, the pure part (compat.h). */
#include "lb/admin/compat.h"

#include "conf/conf-t.h"
#include "lb/admin/http_parse.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- forms ------------------------------------------------------------------ */

void lb_compat_form_init(struct lb_compat_form *f) { memset(f, 0, sizeof(*f)); }

void lb_compat_form_free(struct lb_compat_form *f)
{
    /* Each parse call owns one buffer; they are chained through their first
     * pointer-sized bytes so the fields of earlier calls stay valid. */
    for (char *b = f->buf, *next; b; b = next) {
        memcpy(&next, b, sizeof(next));
        free(b);
    }
    f->buf = NULL;
    f->n = 0;
}

int lb_compat_form_parse(struct lb_compat_form *f, const char *s, size_t len, const char **why)
{
    /* Decoding never grows a piece; each piece needs two NULs at most. */
    char *chunk = malloc(sizeof(char *) + len + 2 * (len / 2 + 1) + 2);
    if (!chunk) {
        *why = "out of memory";
        return -1;
    }
    memcpy(chunk, &f->buf, sizeof(char *));
    f->buf = chunk;
    char *out = chunk + sizeof(char *);
    size_t i = 0;
    while (i < len) {
        const char *p = s + i;
        const char *amp = memchr(p, '&', len - i);
        size_t plen = amp ? (size_t)(amp - p) : len - i;
        i += plen + (amp ? 1 : 0);
        if (plen == 0)
            continue;
        if (f->n >= LB_COMPAT_MAX_FIELDS) {
            *why = "too many fields";
            return -1;
        }
        const char *eq = memchr(p, '=', plen);
        size_t nlen = eq ? (size_t)(eq - p) : plen;
        long dn = lb_http_pct_decode(p, nlen, out, true);
        if (dn < 0) {
            *why = "a malformed %-escape or a NUL byte";
            return -1;
        }
        f->f[f->n].name = out;
        out += dn + 1;
        long dv = 0;
        if (eq)
            dv = lb_http_pct_decode(eq + 1, plen - nlen - 1, out, true);
        else
            out[0] = '\0';
        if (dv < 0) {
            *why = "a malformed %-escape or a NUL byte";
            return -1;
        }
        f->f[f->n].value = out;
        out += dv + 1;
        f->n++;
    }
    return 0;
}

const char *lb_compat_form_get(const struct lb_compat_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->f[i].name, name) == 0)
            return f->f[i].value;
    return NULL;
}

bool lb_compat_reserved_field(const char *name)
{
    static const char *const reserved[] = {
        /* nginx-rtmp notify (ngx_rtmp_netcall_http_format_session and the
         * per-call parts) and oclp pull */
        "call", "addr", "clientid", "app", "flashver", "swfurl", "tcurl", "pageurl", "name",
        "type", "start", "duration", "reset", "epoch", "time", "timestamp", "stage", "domain",
        "serverid", "args",
        /* the notify URL's own keys, read by rtmplb */
        "node", "pool", "listener", "secret", "role"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* ---- the answer ------------------------------------------------------------- */

static const char *why_not(const struct ups_node *n)
{
    if (atomic_load(&n->live->health) != UPS_UP)
        return "down";
    if (atomic_load(&n->live->admin) == UPS_DISABLED)
        return "disabled";
    return "full";
}

static void set(struct lb_compat_answer *a, enum lb_compat_verdict v, const char *fmt,
                const char *x, const char *y)
{
    static const int status[] = {302, 200, 404, 403, 503};
    a->verdict = v;
    a->status = status[v];
    snprintf(a->reason, sizeof(a->reason), fmt, x ? x : "", y ? y : "");
}

void lb_compat_decide(const struct ups_snapshot *s, const struct ups_request *q,
                      const struct lb_compat_self *self, struct lb_compat_answer *a)
{
    memset(a, 0, sizeof(*a));
    const struct ups_route *r = ups_route_find(s, q);
    a->route = r;
    if (!r) {
        set(a, LB_COMPAT_NO_ROUTE, "no route matches this %s%s",
            q->role == CONF_ROLE_PUBLISH ? "publish" : "play", NULL);
        return;
    }
    const struct ups_node *chosen = NULL;
    if (q->role == CONF_ROLE_PLAY) {
        struct ups_node *where = NULL;
        chosen = ups_route_stream_node(r, q, &where);
        if (!chosen && !where) {
            set(a, LB_COMPAT_NOWHERE, "the stream is not live on any node of pool %s%s",
                r->pool->name, NULL);
            return;
        }
        if (!chosen) {
            set(a, LB_COMPAT_NO_NODE, "the stream is live on %s, which is %s", where->name,
                why_not(where));
            return;
        }
    } else {
        struct ups_candidates c;
        ups_route_candidates(s, r, q, &c);
        if (c.n == 0) {
            set(a, LB_COMPAT_NO_NODE, "no node of pool %s can take it%s", r->pool->name, NULL);
            return;
        }
        chosen = c.node[0];
    }
    a->node = chosen;
    if (self && self->node && strcmp(self->node, chosen->name) == 0 &&
        (!self->pool || strcmp(self->pool, chosen->pool->name) == 0)) {
        set(a, LB_COMPAT_SELF, "%s: serve it yourself%s",
            q->role == CONF_ROLE_PLAY ? "the stream is live here" : "the route picks this node",
            NULL);
        return;
    }
    set(a, LB_COMPAT_REDIRECT, "%s %s",
        q->role == CONF_ROLE_PLAY ? "the stream is live on" : "the route picks", chosen->name);
}

static bool url_safe(const char *s, bool slash_ok)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == 0x7f || c == '?' || c == '#' || (c == '/' && !slash_ok))
            return false;
    }
    return true;
}

int lb_compat_location(const struct ups_node *node, const char *app, const char *name, char *out,
                       size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    bool v6 = node->addr.ss_family == AF_INET6;
    if (!url_safe(app, false) || !url_safe(name, true))
        return -1;
    if (v6) {
        const struct sockaddr_in6 *sa = (const struct sockaddr_in6 *)&node->addr;
        if (!inet_ntop(AF_INET6, &sa->sin6_addr, ip, sizeof(ip)))
            return -1;
        port = ntohs(sa->sin6_port);
    } else if (node->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sa = (const struct sockaddr_in *)&node->addr;
        if (!inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip)))
            return -1;
        port = ntohs(sa->sin_port);
    } else {
        return -1;
    }
    int n = snprintf(out, cap, v6 ? "rtmp://[%s]:%u/%s/%s" : "rtmp://%s:%u/%s/%s", ip, port, app,
                     name);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* ---- SRS hooks ----------------------------------------------------------------- */

static const struct {
    const char *name;
    enum lb_srs_action action;
} srs_actions[] = {
    {"on_publish", LB_SRS_ON_PUBLISH}, {"on_unpublish", LB_SRS_ON_UNPUBLISH},
    {"on_play", LB_SRS_ON_PLAY},       {"on_stop", LB_SRS_ON_STOP},
    {"on_connect", LB_SRS_OTHER},      {"on_close", LB_SRS_OTHER},
    {"on_dvr", LB_SRS_OTHER},          {"on_hls", LB_SRS_OTHER},
    {"on_hls_notify", LB_SRS_OTHER},
};

/* A string member into out: 1 copied, 0 absent, -1 wrong (why in err). */
static int get_str(json_object *o, const char *key, char *out, size_t cap, bool ctl_ok,
                   char *err, size_t errlen)
{
    json_object *v;
    out[0] = '\0';
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(err, errlen, "\"%s\" must be a string", key);
        return -1;
    }
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n) {
        snprintf(err, errlen, "\"%s\" holds a NUL byte", key);
        return -1;
    }
    if (n >= cap) {
        snprintf(err, errlen, "\"%s\" is longer than %zu bytes", key, cap - 1);
        return -1;
    }
    for (size_t i = 0; !ctl_ok && i < n; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f) {
            snprintf(err, errlen, "\"%s\" holds a control byte", key);
            return -1;
        }
    memcpy(out, s, n + 1);
    return 1;
}

int lb_compat_srs_parse(const char *body, size_t len, struct lb_srs_hook *h, char *err,
                        size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (len == 0) {
        snprintf(err, errlen, "an SRS hook needs a JSON object body");
        return -1;
    }
    if (len > (1u << 20)) {
        snprintf(err, errlen, "the body is too large");
        return -1;
    }
    json_tokener *tok = json_tokener_new_ex(8);
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_object *j = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = tok->char_offset;
    json_tokener_free(tok);
    int rc = -1;
    if (!j || jerr != json_tokener_success) {
        snprintf(err, errlen, "the body is not JSON: %s",
                 jerr == json_tokener_continue || jerr == json_tokener_success
                     ? "it ends before the object does"
                     : json_tokener_error_desc(jerr));
        goto out;
    }
    for (size_t i = used; i < len; i++)
        if (!strchr(" \t\r\n", body[i])) {
            snprintf(err, errlen, "the body is not JSON: trailing data");
            goto out;
        }
    if (!json_object_is_type(j, json_type_object)) {
        snprintf(err, errlen, "the body must be a JSON object");
        goto out;
    }
    int got = get_str(j, "action", h->action_name, sizeof(h->action_name), false, err, errlen);
    if (got < 0)
        goto out;
    if (got == 0 || !h->action_name[0]) {
        snprintf(err, errlen, "\"action\" is required");
        goto out;
    }
    size_t k = 0, nk = sizeof(srs_actions) / sizeof(srs_actions[0]);
    while (k < nk && strcmp(srs_actions[k].name, h->action_name) != 0)
        k++;
    if (k == nk) {
        snprintf(err, errlen,
                 "unknown action \"%s\" (on_publish, on_unpublish, on_play, on_stop, on_connect, "
                 "on_close, on_dvr, on_hls, on_hls_notify)",
                 h->action_name);
        goto out;
    }
    h->action = srs_actions[k].action;
    if (get_str(j, "vhost", h->vhost, sizeof(h->vhost), false, err, errlen) < 0 ||
        get_str(j, "ip", h->ip, sizeof(h->ip), false, err, errlen) < 0)
        goto out;
    json_object *cid;
    if (json_object_object_get_ex(j, "client_id", &cid) &&
        !json_object_is_type(cid, json_type_null)) {
        if (json_object_is_type(cid, json_type_int))
            snprintf(h->client_id, sizeof(h->client_id), "%lld",
                     (long long)json_object_get_int64(cid));
        else if (get_str(j, "client_id", h->client_id, sizeof(h->client_id), false, err,
                         errlen) < 0)
            goto out;
    }
    if (h->action == LB_SRS_OTHER) {
        rc = 0;
        goto out;
    }
    if ((got = get_str(j, "app", h->app, sizeof(h->app), false, err, errlen)) < 0)
        goto out;
    if (!got || !h->app[0]) {
        snprintf(err, errlen, "\"app\" is required for %s", h->action_name);
        goto out;
    }
    if (strchr(h->app, '/')) {
        snprintf(err, errlen, "\"app\" must not hold '/'");
        goto out;
    }
    if ((got = get_str(j, "stream", h->stream, sizeof(h->stream), false, err, errlen)) < 0)
        goto out;
    if (!got || !h->stream[0]) {
        snprintf(err, errlen, "\"stream\" is required for %s", h->action_name);
        goto out;
    }
    rc = 0;
out:
    json_object_put(j);
    return rc;
}

/* ---- secret -------------------------------------------------------------------- */

void lb_compat_secret_hash(const char *secret, unsigned char out[32])
{
    unsigned len = 32;
    if (!EVP_Digest(secret, strlen(secret), out, &len, EVP_sha256(), NULL))
        memset(out, 0xff, 32);
}

bool lb_compat_secret_ok(const unsigned char want[32], const char *given)
{
    unsigned char h[32];
    /* Absent compares like a wrong one (same work either way). */
    lb_compat_secret_hash(given ? given : "", h);
    return CRYPTO_memcmp(h, want, 32) == 0 && given != NULL;
}
