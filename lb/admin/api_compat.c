/* The endpoints stock origins and edges call (COMPAT.md): nginx-rtmp notify
 * (on_play, on_publish), the oclp pull form, SRS http_hooks. Open routes
 * (stock nodes cannot send a bearer token): they answer only what
 * /api/v1/locate would (which node, its rtmp:// URL, why), and when
 * admin.hooks_secret_file is set every request must carry ?secret=, checked
 * in constant time. The choice itself is compat.c's (pure). */
#include "lb/admin/api-int.h"
#include "lb/admin/compat.h"

#include "conf/conf.h"
#include "geo/geo.h"
#include "health/streams.h"
#include "health/view.h"
#include "lb/admin/http.h"
#include "lb/log.h"
#include "lb/proc/proc.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lb_compat {
    bool has_secret;
    unsigned char secret_hash[32];
};

static int load_secret(struct lb_compat *k, const struct conf *c, char *err, size_t errlen)
{
    char *secret = NULL;
    if (conf_admin_hooks_secret_load(c, &secret, err, errlen) < 0)
        return -1;
    k->has_secret = secret != NULL;
    if (secret) {
        lb_compat_secret_hash(secret, k->secret_hash);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    } else {
        memset(k->secret_hash, 0, sizeof(k->secret_hash));
    }
    return 0;
}

int lb__compat_start(struct lb_admin *a, char *err, size_t errlen)
{
    struct lb_compat *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_secret(k, a->srv->conf, err, errlen) < 0) {
        free(k);
        return -1;
    }
    a->compat = k;
    return 0;
}

void lb__compat_reloaded(struct lb_admin *a)
{
    char err[700];
    struct lb_compat next = {0};
    if (!a->compat)
        return;
    /* The reload checked the file already; if it changed since, keep the
     * secret in force rather than open the endpoints. */
    if (load_secret(&next, a->srv->conf, err, sizeof(err)) < 0) {
        lb_log_msg(LB_LOG_ERROR, "hooks_secret", "keeping the previous secret: %s", err);
        return;
    }
    *a->compat = next;
    OPENSSL_cleanse(&next, sizeof(next));
}

void lb__compat_stop(struct lb_admin *a)
{
    if (a->compat)
        OPENSSL_cleanse(a->compat, sizeof(*a->compat));
    free(a->compat);
    a->compat = NULL;
}

/* The secret, when one is configured: 403 otherwise. */
static bool secret_ok(struct lb_admin *a, const struct lb_http_request *req,
                      struct lb_http_response *res, const char *endpoint)
{
    if (!a->compat || !a->compat->has_secret)
        return true;
    if (lb_compat_secret_ok(a->compat->secret_hash, lb_http_query(req, "secret")))
        return true;
    char peer[INET6_ADDRSTRLEN + 8] = "-";
    if (req->peer && req->peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)req->peer)->sin_addr, peer,
                  sizeof(peer));
    else if (req->peer && req->peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)req->peer)->sin6_addr, peer,
                  sizeof(peer));
    lb_log_msg(LB_LOG_WARN, "compat_refused", "endpoint=%s peer=%s: %s ?secret=", endpoint, peer,
               lb_http_query(req, "secret") ? "wrong" : "no");
    lb_http_reply_error(res, 403,
                        "this endpoint needs ?secret= (admin.hooks_secret_file) and it is %s",
                        lb_http_query(req, "secret") ? "wrong" : "missing");
    return false;
}

/* ---- nginx-rtmp notify, oclp pull ---------------------------------------------- */

/* The listener named by ?listener=, or the first rtmp one. */
/* Adds the query args of s ("a=1&b=2", already past the '?') to args. */
static void add_query_args(struct lb_compat_form *scratch, const char *s, struct ups_arg *args,
                           size_t *n)
{
    const char *why;
    size_t from = scratch->n;
    if (lb_compat_form_parse(scratch, s, strlen(s), &why) < 0)
        return; /* malformed args select nothing */
    for (size_t i = from; i < scratch->n && *n < UPS_MAX_ARGS; i++)
        args[(*n)++] = (struct ups_arg){scratch->f[i].name, scratch->f[i].value};
}

enum ask_kind { ASK_ON_PLAY, ASK_ON_PUBLISH, ASK_OCLP_PULL };

static const char *const ask_name[] = {"nginx_on_play", "nginx_on_publish", "oclp_pull"};

/* The log line of an answer made before any routing. */
static void log_short(enum ask_kind kind, const struct lb_http_request *req, const char *relay,
                      int status, const char *why)
{
    struct lb_logline l;
    const char *node = lb_http_query(req, "node");
    lb_log_begin(&l, LB_LOG_INFO, "compat_answer");
    lb_log_str(&l, "endpoint", ask_name[kind]);
    lb_log_str(&l, "asking", node ? node : "-");
    if (relay)
        lb_log_str(&l, "relay", relay);
    lb_log_u64(&l, "status", (uint64_t)status);
    lb_log_str(&l, "reason", why);
    lb_log_end(&l);
}

/* A request refused before any routing: the JSON error, and one log line. */
static void refuse(struct lb_http_response *res, enum ask_kind kind,
                   const struct lb_http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void refuse(struct lb_http_response *res, enum ask_kind kind,
                   const struct lb_http_request *req, int status, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    lb_http_reply_error(res, status, "%s", why);
    log_short(kind, req, NULL, status, why);
}

static void answer_ask(struct lb_admin *a, const struct lb_http_request *req,
                       struct lb_http_response *res, enum ask_kind kind)
{
    struct lb_server *srv = a->srv;
    const char *why;
    if (!secret_ok(a, req, res, ask_name[kind]))
        return;
    /* One bag: the URL's query (the operator's node=, pool=, listener=,
     * and with notify_method get nginx's own fields after them), then the
     * POST body (nginx's default). Session fields: first occurrence. */
    struct lb_compat_form form, scratch;
    lb_compat_form_init(&form);
    lb_compat_form_init(&scratch);
    const char *q = strchr(req->url, '?');
    if ((q && lb_compat_form_parse(&form, q + 1, strlen(q + 1), &why) < 0) ||
        (req->method == HTTP_POST && req->body_len &&
         lb_compat_form_parse(&form, req->body, req->body_len, &why) < 0)) {
        refuse(res, kind, req, 400, "the form does not parse: %s", why);
        goto out;
    }
    const char *want = kind == ASK_ON_PUBLISH ? "publish" : kind == ASK_ON_PLAY ? "play" : "pull";
    const char *call = lb_compat_form_get(&form, "call");
    const char *app = lb_compat_form_get(&form, "app");
    const char *name_in = lb_compat_form_get(&form, "name");
    const char *addr = lb_compat_form_get(&form, "addr");
    if (call && strcmp(call, want) != 0) {
        refuse(res, kind, req, 400, "this endpoint answers call=%s (got call=%s)", want, call);
        goto out;
    }
    /* nginx-rtmp's own relay sessions (the pull a 302 started, publishing
     * what it pulls on the asking node) notify too; their addr is the
     * relay's URL ("IP:PORT/app/name"), never a client's bare address.
     * They are the asking node serving what rtmplb sent it to fetch. */
    if (addr && strchr(addr, '/')) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "relay", json_object_new_string(addr));
        json_object_object_add(j, "reason",
                               json_object_new_string("the asking node's own relay: let it in"));
        lb_http_reply_json(res, 200, j);
        log_short(kind, req, addr, 200, "the asking node's own relay");
        goto out;
    }
    if (!app || !*app || !name_in || !*name_in) {
        refuse(res, kind, req, 400, "%s", "app and name are required");
        goto out;
    }
    /* A name may still carry its args ("cam?line=hk"): they select a route. */
    char name[HC_NAME_MAX];
    size_t nlen = strcspn(name_in, "?");
    if (nlen >= sizeof(name) || strlen(app) >= HC_APP_MAX) {
        refuse(res, kind, req, 400, "app is at most %d bytes, name at most %d", HC_APP_MAX - 1,
               HC_NAME_MAX - 1);
        goto out;
    }
    memcpy(name, name_in, nlen);
    name[nlen] = '\0';
    struct ups_arg args[UPS_MAX_ARGS];
    size_t n_args = 0;
    if (name_in[nlen] == '?')
        add_query_args(&scratch, name_in + nlen + 1, args, &n_args);
    for (size_t i = 0; i < form.n && n_args < UPS_MAX_ARGS; i++)
        if (!lb_compat_reserved_field(form.f[i].name))
            args[n_args++] = (struct ups_arg){form.f[i].name, form.f[i].value};
    const char *tcurl = lb_compat_form_get(&form, "tcurl");
    const char *tq = tcurl ? strchr(tcurl, '?') : NULL;
    if (tq)
        add_query_args(&scratch, tq + 1, args, &n_args);

    const struct lb_listener_spec *ls = lb__admin_find_listener(
        srv, lb_http_query(req, "listener"), " (?listener= in the notify URL)", res);
    if (!ls)
        goto out;
    /* The client's address (nginx's addr, no port) for geo routes. */
    struct geo_info gi = {0};
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (addr && srv->snap->geo) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
            s4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
            s6->sin6_family = AF_INET6;
        if (ss.ss_family)
            geo_lookup(srv->snap->geo, (const struct sockaddr *)&ss, &gi);
    }
    struct ups_stream_view view = hc_index_view(srv->env.index);
    struct ups_request rq = {
        .listener = ls->name,
        .role = kind == ASK_ON_PUBLISH ? CONF_ROLE_PUBLISH : CONF_ROLE_PLAY,
        .app = app,
        .stream = name,
        .args = args,
        .n_args = n_args,
        .worker = srv->n_workers, /* the control thread's own policy row */
        .now_ms = uv_now(&srv->loop),
        .streams = &view,
        .country = gi.country[0] ? gi.country : NULL,
        .continent = gi.continent[0] ? gi.continent : NULL,
        .has_location = gi.has_location,
        .lat = gi.lat,
        .lon = gi.lon,
    };
    struct lb_compat_self self = {lb_http_query(req, "pool"), lb_http_query(req, "node")};
    struct lb_compat_answer ans;
    lb_compat_decide(srv->snap, &rq, &self, &ans);

    char url[256] = "";
    if (ans.verdict == LB_COMPAT_REDIRECT &&
        lb_compat_location(ans.node, app, name, url, sizeof(url)) < 0) {
        /* nginx-rtmp keeps at most 255 bytes of a Location. */
        refuse(res, kind, req, 400, "%s",
               "app/name cannot go in an rtmp:// Location of at most 255 bytes (no controls, "
               "spaces, '?', '#', no '/' in app)");
        goto out;
    }
    json_object *j = json_object_new_object();
    if (ans.status >= 400)
        json_object_object_add(j, "error", json_object_new_string(ans.reason));
    json_object_object_add(j, "app", json_object_new_string(app));
    json_object_object_add(j, "name", json_object_new_string(name));
    json_object_object_add(j, "role", json_object_new_string(conf_role_name(rq.role)));
    json_object_object_add(j, "route", ans.route ? json_object_new_string(ans.route->name) : NULL);
    json_object_object_add(j, "node", ans.node ? json_object_new_string(ans.node->name) : NULL);
    json_object_object_add(j, "url", url[0] ? json_object_new_string(url) : NULL);
    json_object_object_add(j, "reason", json_object_new_string(ans.reason));
    if (ans.verdict == LB_COMPAT_REDIRECT)
        lb_http_reply_header(res, "Location", url);
    lb_http_reply_json(res, ans.status, j);

    struct lb_logline l;
    lb_log_begin(&l, LB_LOG_INFO, "compat_answer");
    lb_log_str(&l, "endpoint", ask_name[kind]);
    lb_log_str(&l, "asking", self.node ? self.node : "-");
    lb_log_str(&l, "app", app);
    lb_log_str(&l, "name", name);
    lb_log_str(&l, "client", addr ? addr : "-");
    lb_log_u64(&l, "status", (uint64_t)ans.status);
    lb_log_str(&l, "route", ans.route ? ans.route->name : "-");
    lb_log_str(&l, "node", ans.node ? ans.node->name : "-");
    lb_log_str(&l, "reason", ans.reason);
    lb_log_end(&l);
out:
    lb_compat_form_free(&form);
    lb_compat_form_free(&scratch);
}

void lb__compat_on_play(void *ud, const struct lb_http_request *req, struct lb_http_response *res)
{
    answer_ask(ud, req, res, ASK_ON_PLAY);
}

void lb__compat_on_publish(void *ud, const struct lb_http_request *req,
                           struct lb_http_response *res)
{
    answer_ask(ud, req, res, ASK_ON_PUBLISH);
}

void lb__compat_oclp_pull(void *ud, const struct lb_http_request *req,
                          struct lb_http_response *res)
{
    answer_ask(ud, req, res, ASK_OCLP_PULL);
}

/* ---- SRS http_hooks ----------------------------------------------------------------- */

void lb__compat_srs_hook(void *ud, const struct lb_http_request *req,
                         struct lb_http_response *res)
{
    struct lb_admin *a = ud;
    struct lb_server *srv = a->srv;
    char err[256];
    if (!secret_ok(a, req, res, "srs_hook"))
        return;
    const char *node = lb_http_query(req, "node"), *pool = lb_http_query(req, "pool");
    if (!node || !*node) {
        lb_http_reply_error(res, 400,
                            "which node calls? add ?node=NAME (and &pool=POOL if the name is in "
                            "several pools) to the hook URL");
        return;
    }
    const struct ups_node *found = NULL;
    size_t matches = 0;
    for (size_t p = 0; p < srv->snap->n_pools; p++) {
        const struct ups_pool *pl = &srv->snap->pools[p];
        if (pool && strcmp(pool, pl->name) != 0)
            continue;
        for (size_t i = 0; i < pl->n_nodes; i++)
            if (strcmp(pl->nodes[i].name, node) == 0) {
                found = &pl->nodes[i];
                matches++;
            }
    }
    if (!found) {
        lb_http_reply_error(res, 404, "no node %s%s%s in the config", node, pool ? " in pool " : "",
                            pool ? pool : "");
        return;
    }
    if (matches > 1) {
        lb_http_reply_error(res, 400, "node %s is in several pools: add &pool= to the hook URL",
                            node);
        return;
    }
    struct lb_srs_hook h;
    if (lb_compat_srs_parse(req->body, req->body_len, &h, err, sizeof(err)) < 0) {
        lb_http_reply_error(res, 400, "%s", err);
        lb_log_msg(LB_LOG_WARN, "srs_hook_refused", "node=%s: %s", node, err);
        return;
    }
    const char *pn = found->pool->name;
    const char *did = "ignored";
    uint64_t evicted = 0;
    switch (h.action) {
    case LB_SRS_ON_PUBLISH:
        if (hc_index_hook_publish(srv->env.index, pn, node, h.app, h.stream, &evicted) < 0) {
            lb_http_reply_error(res, 503, "out of memory");
            return;
        }
        did = "indexed";
        break;
    case LB_SRS_ON_UNPUBLISH:
        did = hc_index_hook_unpublish(srv->env.index, pn, node, h.app, h.stream) ? "removed"
                                                                                 : "unknown";
        break;
    case LB_SRS_ON_PLAY:
        did = hc_index_hook_touch(srv->env.index, pn, node, h.app, h.stream) ? "confirmed"
                                                                             : "not_indexed";
        break;
    case LB_SRS_ON_STOP:
    case LB_SRS_OTHER:
        break;
    }
    if (evicted == 1 || (evicted && evicted % 1000 == 0)) /* the first, then one in 1000 */
        lb_log_msg(LB_LOG_WARN, "srs_hook_evicted",
                   "the hook index is full (%d entries): the least recently confirmed went "
                   "(%llu so far)",
                   HC_HOOKS_MAX, (unsigned long long)evicted);
    struct lb_logline l;
    bool stream_change = h.action == LB_SRS_ON_PUBLISH || h.action == LB_SRS_ON_UNPUBLISH;
    lb_log_begin(&l, stream_change ? LB_LOG_INFO : LB_LOG_DEBUG, "srs_hook");
    lb_log_str(&l, "pool", pn);
    lb_log_str(&l, "node", node);
    lb_log_str(&l, "action", h.action_name);
    lb_log_str(&l, "app", h.app[0] ? h.app : "-");
    lb_log_str(&l, "stream", h.stream[0] ? h.stream : "-");
    lb_log_str(&l, "client_id", h.client_id[0] ? h.client_id : "-");
    lb_log_str(&l, "index", did);
    lb_log_end(&l);
    /* What SRS accepts: HTTP 200 and a body of 0. */
    lb_http_reply(res, 200, "application/json", "0", 1);
}
