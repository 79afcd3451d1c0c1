/* TLS contexts for one config, built all-or-nothing (DESIGN.md "Splice",
 * INTERFACE.md listeners[].tls and nodes[].tls): one server context per
 * certificate, SNI picking among a listener's certificates (the first is
 * the default); one client context per RTMPS node. Session tickets use one
 * process-wide pair of keys (current and previous) rotated by the control
 * thread. No session cache on the server (tickets are stateless) and
 * SSL_MODE_RELEASE_BUFFERS: an idle TLS session keeps no record buffers,
 * and every SSL shares its context's certificate chain. */
#include "lb/tls/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

struct lb_tls_stats lb_tls_stats;

static const char *const result_names[] = {
#define X(e, n) n,
    LB_TLS_RESULT_MAP(X)
#undef X
};
const char *lb_tls_result_name(enum lb_tls_result r)
{
    return (unsigned)r < LB_TLS_RESULT__COUNT ? result_names[r] : "?";
}
const char *lb_tls_ver_name(enum lb_tls_ver v)
{
    static const char *const n[] = {"unknown", "TLSv1.2", "TLSv1.3"};
    return (unsigned)v < LB_TLS_V__COUNT ? n[v] : "?";
}

/* ---- pure helpers ------------------------------------------------------ */

bool lb_tls_name_match(const char *pattern, const char *host)
{
    if (!pattern || !host || !*host)
        return false;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        /* one label only, and never the bare parent ("*.a.com" is not "a.com") */
        if (!dot || dot == host)
            return false;
        return strcasecmp(pattern + 1, dot) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

size_t lb_tls_pick_cert(const struct lb_tls_server *srv, const char *host)
{
    if (!host)
        return 0;
    for (size_t i = 0; i < srv->n_certs; i++)
        for (size_t k = 0; k < srv->certs[i].n_names; k++)
            if (lb_tls_name_match(srv->certs[i].names[k], host))
                return i;
    return 0;
}

enum lb_tls_expiry lb_tls_expiry_check(int64_t not_after, int64_t now)
{
    if (not_after <= now)
        return LB_TLS_EXPIRY_EXPIRED;
    if (not_after - now <= CONF_TLS_EXPIRY_WARN_S)
        return LB_TLS_EXPIRY_SOON;
    return LB_TLS_EXPIRY_OK;
}

/* ---- messages ------------------------------------------------------------ */

static void msg_add(struct lb_tls_msgs *m, bool warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msg_add(struct lb_tls_msgs *m, bool warn, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    if (!warn)
        m->errors++;
    if (m->n >= LB_TLS_MSGS_MAX)
        return;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        return;
    m->msg[m->n] = s;
    m->warn[m->n] = warn;
    m->n++;
}

void lb_tls_msgs_free(struct lb_tls_msgs *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->msg[i]);
    m->n = 0;
    m->errors = 0;
}

/* The last OpenSSL error as text (the queue is cleared). */
static const char *ossl_why(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, len, "unknown OpenSSL error");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, len, "%s", r ? r : "OpenSSL error");
    }
    ERR_clear_error();
    return buf;
}

/* ---- session ticket keys -------------------------------------------------- */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    bool set;
};

static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_key key_cur, key_prev;

void lb_tls_keys_rotate(void)
{
    struct ticket_key k;
    if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_bytes(k.aes, sizeof(k.aes)) != 1 ||
        RAND_bytes(k.hmac, sizeof(k.hmac)) != 1)
        return; /* keep the old keys */
    k.set = true;
    pthread_mutex_lock(&keys_mu);
    key_prev = key_cur;
    key_cur = k;
    pthread_mutex_unlock(&keys_mu);
    OPENSSL_cleanse(&k, sizeof(k));
}

static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct ticket_key k;
    int rc = 1;
    pthread_mutex_lock(&keys_mu);
    if (enc) {
        k = key_cur;
    } else if (key_cur.set && memcmp(key_name, key_cur.name, 16) == 0) {
        k = key_cur;
    } else if (key_prev.set && memcmp(key_name, key_prev.name, 16) == 0) {
        k = key_prev;
        rc = 2; /* good, but issue a ticket under the current key */
    } else {
        k.set = false;
    }
    pthread_mutex_unlock(&keys_mu);
    if (!k.set)
        return enc ? -1 : 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---- server contexts -------------------------------------------------------- */

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    const struct lb_tls_server *srv = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    size_t i = lb_tls_pick_cert(srv, host);
    if (i > 0 && srv->certs[i].ctx && !SSL_set_SSL_CTX(ssl, srv->certs[i].ctx))
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static char *lower_dup(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++)
        o[i] = (char)tolower((unsigned char)s[i]);
    o[n] = '\0';
    return o;
}

static int add_name(struct lb_tls_cert *c, const char *s, size_t n)
{
    if (n == 0 || memchr(s, '\0', n))
        return 0;
    char **nn = realloc(c->names, (c->n_names + 1) * sizeof(*nn));
    if (!nn)
        return -1;
    c->names = nn;
    if (!(nn[c->n_names] = lower_dup(s, n)))
        return -1;
    c->n_names++;
    return 0;
}

/* DNS names of x (its SANs, else its subject CN) and its expiry. */
static int cert_facts(struct lb_tls_cert *c, X509 *x)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS)
            rc = add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    if (rc == 0 && c->n_names == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        if (n > 0)
            rc = add_name(c, cn, (size_t)n);
    }
    struct tm tm;
    const ASN1_TIME *na = X509_get0_notAfter(x);
    if (!na || ASN1_TIME_to_tm(na, &tm) != 1)
        return -1;
    c->not_after = (int64_t)timegm(&tm);
    return rc;
}

static void common_modes(SSL_CTX *ctx)
{
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read what the socket has, not one record header then its body: half
     * the recv calls. What is read ahead waits inside SSL, and the session
     * core reads it without a poll event (the transport's pending op). */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Encoders and players close without close_notify: that is an EOF. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
}

/* TLS 1.2 suites: forward secret AEADs only; TLS 1.3 keeps OpenSSL's. */
#define LB_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

static SSL_CTX *server_ctx(const struct conf_tls_listen *t, const struct conf_tls_cert *cc,
                           struct lb_tls_cert *out, struct lb_tls_server *srv, const char *where,
                           int64_t now, struct lb_tls_msgs *msgs)
{
    char why[256];
    FILE *f;

    if (!(f = fopen(cc->cert, "r"))) {
        msg_add(msgs, false, "%s.cert: %s: cannot be read: %s", where, cc->cert, strerror(errno));
        return NULL;
    }
    fclose(f);
    if (!(f = fopen(cc->key, "r"))) {
        msg_add(msgs, false, "%s.key: %s: cannot be read: %s", where, cc->key, strerror(errno));
        return NULL;
    }
    fclose(f);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        msg_add(msgs, false, "%s: %s", where, ossl_why(why, sizeof(why)));
        return NULL;
    }
    common_modes(ctx);
    SSL_CTX_set_min_proto_version(ctx, t->min_version == CONF_TLS_1_3 ? TLS1_3_VERSION
                                                                      : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* No TLS 1.3 NewSessionTicket: librtmp over GnuTLS (rtmpdump and the
     * players built on it) fails its RTMP handshake when one arrives (it
     * reads it as an error). TLS 1.2 clients resume with tickets under the
     * rotated keys below. */
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_set_cipher_list(ctx, LB_TLS12_CIPHERS) != 1) {
        msg_add(msgs, false, "%s: %s", where, ossl_why(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cc->cert) != 1) {
        msg_add(msgs, false, "%s.cert: %s: not a usable PEM certificate: %s", where, cc->cert,
                ossl_why(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cc->key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            msg_add(msgs, false, "%s.key: %s: the key does not match the certificate %s", where,
                    cc->key, cc->cert);
        } else {
            msg_add(msgs, false, "%s.key: %s: not a usable PEM private key: %s", where, cc->key,
                    ossl_why(why, sizeof(why)));
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        msg_add(msgs, false, "%s.key: %s: the key does not match the certificate %s", where,
                cc->key, cc->cert);
        goto fail;
    }
    if (cert_facts(out, SSL_CTX_get0_certificate(ctx)) < 0) {
        msg_add(msgs, false, "%s.cert: %s: unreadable names or expiry", where, cc->cert);
        goto fail;
    }
    char date[64];
    time_t na = (time_t)out->not_after;
    struct tm tm;
    gmtime_r(&na, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
    switch (lb_tls_expiry_check(out->not_after, now)) {
    case LB_TLS_EXPIRY_EXPIRED:
        msg_add(msgs, false, "%s.cert: %s: the certificate expired on %s", where, cc->cert, date);
        goto fail;
    case LB_TLS_EXPIRY_SOON:
        msg_add(msgs, true, "%s.cert: %s: the certificate expires on %s (within 14 days)", where,
                cc->cert, date);
        break;
    default:
        break;
    }
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, srv);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- client contexts ----------------------------------------------------------- */

static SSL_CTX *client_ctx(const struct conf_node *n, const char *where, struct lb_tls_msgs *msgs)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        msg_add(msgs, false, "%s: %s", where, ossl_why(why, sizeof(why)));
        return NULL;
    }
    common_modes(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (n->tls.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (n->tls.ca) {
            FILE *f = fopen(n->tls.ca, "r");
            if (!f) {
                msg_add(msgs, false, "%s.ca: %s: cannot be read: %s", where, n->tls.ca,
                        strerror(errno));
                goto fail;
            }
            fclose(f);
            if (SSL_CTX_load_verify_locations(ctx, n->tls.ca, NULL) != 1) {
                msg_add(msgs, false, "%s.ca: %s: not a PEM CA bundle: %s", where, n->tls.ca,
                        ossl_why(why, sizeof(why)));
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            msg_add(msgs, false, "%s: the system CA store cannot be loaded: %s", where,
                    ossl_why(why, sizeof(why)));
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* ---- the set ------------------------------------------------------------------- */

static void free_set(struct lb_tls_set *s)
{
    for (size_t i = 0; i < s->n_listeners; i++) {
        struct lb_tls_server *srv = &s->listeners[i];
        for (size_t k = 0; k < srv->n_certs; k++) {
            struct lb_tls_cert *c = &srv->certs[k];
            SSL_CTX_free(c->ctx);
            for (size_t j = 0; j < c->n_names; j++)
                free(c->names[j]);
            free(c->names);
            free(c->file);
        }
        free(srv->certs);
        free((char *)srv->listener);
    }
    free(s->listeners);
    for (size_t i = 0; i < s->n_nodes; i++) {
        SSL_CTX_free(s->nodes[i].ctx);
        free(s->nodes[i].pool);
        free(s->nodes[i].node);
        free(s->nodes[i].sni);
        free(s->nodes[i].ip);
    }
    free(s->nodes);
    free(s);
}

static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

struct lb_tls_set *lb_tls_set_build(const struct conf *c, int64_t now, struct lb_tls_msgs *msgs)
{
    size_t n_nodes = 0;
    bool any = false;
    char where[256];

    for (size_t i = 0; i < c->n_listeners; i++)
        any |= c->listeners[i].tls.present;
    for (size_t p = 0; p < c->n_pools; p++)
        for (size_t i = 0; i < c->pools[p].n_nodes; i++)
            n_nodes += c->pools[p].nodes[i].tls.present;
    if (!any && n_nodes == 0)
        return NULL;
    pthread_once(&keys_once, lb_tls_keys_rotate);

    struct lb_tls_set *s = calloc(1, sizeof(*s));
    if (!s || !(s->listeners = calloc(c->n_listeners, sizeof(*s->listeners))) ||
        (n_nodes && !(s->nodes = calloc(n_nodes, sizeof(*s->nodes))))) {
        msg_add(msgs, false, "%s: out of memory building TLS contexts", c->path);
        if (s)
            free(s->listeners);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->n_listeners = c->n_listeners;
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        struct lb_tls_server *srv = &s->listeners[i];
        srv->listener = strdup(l->name ? l->name : "?");
        if (!l->tls.present)
            continue;
        srv->certs = calloc(l->tls.n_certs, sizeof(*srv->certs));
        if (!srv->certs) {
            msg_add(msgs, false, "%s: out of memory", c->path);
            break;
        }
        srv->n_certs = l->tls.n_certs;
        for (size_t k = 0; k < l->tls.n_certs; k++) {
            const struct conf_tls_cert *cc = &l->tls.certs[k];
            snprintf(where, sizeof(where), "%s:%u:%u: listeners[%zu].tls.certificates[%zu]",
                     c->path, cc->mark.line, cc->mark.col, i, k);
            srv->certs[k].file = strdup(cc->cert);
            srv->certs[k].ctx = server_ctx(&l->tls, cc, &srv->certs[k], srv, where, now, msgs);
        }
    }
    size_t ni = 0;
    for (size_t p = 0; p < c->n_pools; p++)
        for (size_t i = 0; i < c->pools[p].n_nodes; i++) {
            const struct conf_node *n = &c->pools[p].nodes[i];
            if (!n->tls.present)
                continue;
            struct lb_tls_client *cl = &s->nodes[ni++];
            snprintf(where, sizeof(where), "%s:%u:%u: pools.%s.nodes[%zu].tls", c->path,
                     n->tls.mark.line, n->tls.mark.col, c->pools[p].name, i);
            cl->pool = strdup(c->pools[p].name);
            cl->node = strdup(n->name);
            cl->sni = n->tls.sni ? strdup(n->tls.sni) : NULL;
            cl->verify = n->tls.verify;
            char ip[INET6_ADDRSTRLEN] = "";
            const struct sockaddr *sa = (const struct sockaddr *)&n->address.ss;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                          sizeof(ip));
            cl->ip = strdup(ip);
            cl->ctx = client_ctx(n, where, msgs);
        }
    s->n_nodes = ni;
    if (msgs->errors) {
        free_set(s);
        return NULL;
    }
    return s;
}

struct lb_tls_set *lb_tls_set_ref(struct lb_tls_set *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void lb_tls_set_unref(struct lb_tls_set *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        free_set(s);
}

const struct lb_tls_client *lb_tls_set_node(const struct lb_tls_set *s, const char *pool,
                                            const char *node)
{
    for (size_t i = 0; s && i < s->n_nodes; i++)
        if (strcmp(s->nodes[i].pool, pool) == 0 && strcmp(s->nodes[i].node, node) == 0)
            return &s->nodes[i];
    return NULL;
}

/* ---- kTLS ---------------------------------------------------------------------- */

bool lb_tls_ktls_probe(char *why, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int l = -1, c = -1, s = -1;
    bool ok = false;

    snprintf(why, len, "no loopback socket to try on");
    if ((l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0 ||
        (c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(c, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
        goto out;
    if (setsockopt(s, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0) {
        ok = true;
        snprintf(why, len, "the kernel offers TCP_ULP \"tls\"");
    } else {
        snprintf(why, len, "setsockopt(TCP_ULP, \"tls\"): %s", strerror(errno));
    }
out:
    if (s >= 0)
        close(s);
    if (c >= 0)
        close(c);
    if (l >= 0)
        close(l);
    return ok;
}
