/* Typed configuration, as loaded from YAML. See ../shared/INTERFACE.md. */
#ifndef CONF_CONF_T_H
#define CONF_CONF_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A place in the config file, 1-based. line 0 = nowhere (a default). */
struct conf_mark {
    unsigned line;
    unsigned col;
};

enum conf_log_format { CONF_LOG_TEXT, CONF_LOG_JSON };
enum conf_log_level { CONF_LOG_DEBUG, CONF_LOG_INFO, CONF_LOG_WARN, CONF_LOG_ERROR };
enum conf_listener_mode { CONF_MODE_RTMP, CONF_MODE_TCP, CONF_MODE_HTTP };
/* Headers an http listener adds to the request it replays to a node. */
enum conf_forwarded { CONF_FWD_OFF, CONF_FWD_XFF, CONF_FWD_FORWARDED, CONF_FWD_BOTH };
enum conf_policy {
    CONF_POLICY_WEIGHTED,
    CONF_POLICY_LEAST_SESSIONS,
    CONF_POLICY_STREAM_AFFINITY,
    CONF_POLICY_STREAM_LOCATION,
    CONF_POLICY_GEO_NEAREST,
};
enum conf_role { CONF_ROLE_ANY, CONF_ROLE_PUBLISH, CONF_ROLE_PLAY };
enum conf_route_on { CONF_ROUTE_ON_STREAM, CONF_ROUTE_ON_CONNECT };
/* A publish for a stream this instance already carries on the same route:
 * auto takes over when the new client's address is the old one's. */
enum conf_publish_conflict { CONF_PUBCONF_AUTO, CONF_PUBCONF_TAKEOVER, CONF_PUBCONF_REJECT };
enum conf_health_type { CONF_HC_TCP, CONF_HC_RTMP, CONF_HC_HTTP };
enum conf_stats_kind { CONF_STATS_NGINX_RTMP, CONF_STATS_SRS };
/* What the local connect _result says of Enhanced RTMP (E-RTMP v2):
 * forward: the capabilities the client listed, as forwardable; off: nothing
 * (a legacy server's answer). */
enum conf_ertmp { CONF_ERTMP_FORWARD, CONF_ERTMP_OFF };

struct conf_health {
    bool present;
    struct conf_mark mark;
    int type; /* enum conf_health_type */
    char *app;  /* rtmp: the app to connect to */
    char *url;  /* http: the path on the node's stats host */
    int64_t interval_ms, timeout_ms, jitter_ms; /* jitter -1: a tenth of interval */
    int64_t rise, fall;
};

enum conf_proxy_protocol { CONF_PP_OFF = 0, CONF_PP_V1 = 1, CONF_PP_V2 = 2, CONF_PP_ANY = 3 };

struct conf_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char *text; /* as written in the file */
};

/* listeners[].tls: RTMPS on a listener. */
enum conf_tls_version { CONF_TLS_1_2, CONF_TLS_1_3 };

struct conf_tls_cert {
    struct conf_mark mark;
    char *cert; /* PEM: the certificate, then its chain */
    char *key;  /* PEM private key */
};

/* Bound on certificates per listener (SNI picks among them). */
#define CONF_MAX_TLS_CERTS 64
/* rtmplb -t warns about a certificate that expires within this. */
#define CONF_TLS_EXPIRY_WARN_S (14 * 86400)

struct conf_tls_listen {
    bool present;
    struct conf_mark mark;
    struct conf_tls_cert *certs; /* the first is the default */
    size_t n_certs;
    int min_version; /* enum conf_tls_version */
};

struct conf_listener {
    struct conf_mark mark;
    char *name;
    struct conf_mark name_mark;
    struct conf_addr address;
    struct conf_mark address_mark;
    int mode; /* enum conf_listener_mode */
    struct conf_mark mode_mark;
    int proxy_protocol; /* enum conf_proxy_protocol */
    struct conf_tls_listen tls;
    struct {                 /* mode: http (HTTP-FLV / HLS viewers) */
        bool present;
        struct conf_mark mark;
        char **paths;        /* patterns with {app} {stream} {seq}; NULL: the defaults */
        size_t n_paths;
        char *app;           /* app of a pattern without {app}; NULL: "live" */
        bool trust_x_forwarded_for; /* the client address from X-Forwarded-For */
        int add_forwarded;   /* enum conf_forwarded */
        int64_t max_header;  /* bytes of a request line and headers */
        int64_t keepalive_ms; /* wait for a next request; 0: one request per connection */
    } http;
    /* Bound on the delay added to origin -> client bytes to batch wake-ups
     * (play sessions once media flows); 0: off. A tcp listener batches only
     * when the file sets it (line of coalesce_mark != 0). */
    int64_t coalesce_ms;
    struct conf_mark coalesce_mark;
    /* mode rtmp: dial the node once the client's handshake starts, when the
     * route cannot depend on what the client says next. */
    bool early_dial;
    struct conf_mark early_dial_mark;
};

/* limits.max_early_dials when not set: a quarter of stock nginx-rtmp's
 * worker_connections (1024), so clients that stop after their handshake
 * cannot take an origin's connections (docs/CONFIG.md). */
#define CONF_DEFAULT_MAX_EARLY_DIALS 256

/* listeners[].coalesce when not set (docs/CONFIG.md says why). */
#define CONF_DEFAULT_COALESCE_MS 50
/* pools.*.nodes[].max_dials and dial_queue when not set. */
#define CONF_DEFAULT_MAX_DIALS 64
#define CONF_DEFAULT_DIAL_QUEUE 4096

#define CONF_HTTP_MAX_PATHS 16

struct conf_node {
    struct conf_mark mark;
    char *name;
    struct conf_mark name_mark;
    struct conf_addr address;
    int64_t weight;
    bool backup;
    int64_t max_sessions;
    int send_proxy; /* CONF_PP_OFF, _V1, _V2 */
    int64_t max_dials;  /* dials in flight from this instance; 0: no limit */
    int64_t dial_queue; /* sessions that may wait for one of them */
    struct {
        bool present; /* the node speaks RTMPS */
        struct conf_mark mark;
        char *sni;  /* server name sent and verified; NULL: none sent, verify the IP */
        bool verify; /* chain and name (default true) */
        char *ca;   /* PEM CA bundle; NULL: the system store */
        struct conf_mark ca_mark;
    } tls;
    struct {
        bool present;
        char *country;
        double lat, lon; /* NAN when not given */
        struct conf_mark mark;
    } location;
    struct {
        bool present;
        struct conf_mark mark;
        int kind; /* enum conf_stats_kind */
        char *url; /* http://HOST:PORT/PATH */
        struct conf_addr addr; /* HOST:PORT, resolved */
        char *path;
        char *host; /* for the Host header */
    } stats;
    struct {
        bool present;
        struct conf_mark mark;
        struct conf_addr address; /* where it serves HTTP-FLV / HLS viewers */
    } http;
};

struct conf_pool {
    struct conf_mark mark;
    char *name;
    struct conf_node *nodes;
    size_t n_nodes;
    struct conf_health health;
    int64_t slow_start_ms;
    int ertmp; /* enum conf_ertmp */
};

struct conf_match {
    bool present;
    char *listener;
    struct conf_mark listener_mark;
    int role; /* enum conf_role */
    char *app;    /* glob, NULL = any */
    char *stream; /* glob, NULL = any */
    char **country; /* ISO codes, from the geo database */
    size_t n_country;
    char **continent;
    size_t n_continent;
    struct conf_mark geo_mark;
    /* Query arguments of the stream name or tcUrl that must all be equal:
     * args[2i] the key, args[2i+1] its value (decoded text). */
    char **args;
    size_t n_args; /* pairs */
    struct conf_mark args_mark;
};

/* Bounds of a route's match.args: pairs, and bytes of a key or a value
 * (a stream name holds at most 255). */
#define CONF_MAX_ROUTE_ARGS 16
#define CONF_MAX_ARG_LEN 255

struct conf_route {
    struct conf_mark mark;
    char *name;
    struct conf_mark name_mark;
    struct conf_match match;
    char *pool;
    struct conf_mark pool_mark;
    int policy;   /* enum conf_policy */
    int route_on; /* enum conf_route_on */
    int publish_conflict; /* enum conf_publish_conflict */
    bool require_live; /* stream_location plays: a stream live nowhere is not found */
    struct conf_mark require_live_mark;
};

struct conf {
    char *path;
    int64_t workers; /* 0 = auto */
    char *pid_file;  /* NULL: none; read at start only */
    struct {
        int format; /* enum conf_log_format */
        int level;  /* enum conf_log_level */
        char *access_log; /* "stderr", "off" or a path */
    } log;
    struct {
        int64_t handshake_ms;
        int64_t connect_ms;
        int64_t idle_ms;
        int64_t drain_ms;
        int64_t upgrade_drain_ms; /* old process after SIGUSR2; 0: until each session ends */
        int64_t half_close_ms; /* rtmp/http: one side closed -> close after this */
        int64_t takeover_ms;   /* publisher takeover: old publish gone, name released */
    } timeouts;
    struct {
        int64_t max_sessions;
        struct conf_mark max_sessions_mark; /* line 0: left at the default */
        int64_t max_sessions_per_ip;   /* 0: no limit */
        int64_t max_handshakes_per_ip; /* sessions of one address not yet routed; 0: none */
        int64_t max_early_dials; /* node connections held for clients still before
                                  * their play/publish (early_dial), all listeners; 0: none */
        int64_t preroute_bytes;
        int64_t max_chunk_size;   /* largest Set Chunk Size a client may send */
        int64_t max_message_size; /* largest message before routing */
        int64_t max_amf_depth;
        int64_t max_amf_string;
    } limits;
    struct {
        char *database;
        struct conf_mark database_mark;
    } geo;
    struct {
        bool present; /* the file has an admin section */
        struct conf_mark mark;
        struct conf_addr address; /* default 127.0.0.1:8080 */
        struct conf_mark address_mark;
        char *token_file; /* NULL: no token, so no mutation is possible */
        struct conf_mark token_file_mark;
        bool public_read; /* GET endpoints need no token */
        char *state_file; /* NULL: runtime overrides are not persisted */
        struct conf_mark state_file_mark;
        char *hooks_secret_file; /* NULL: the origins' hook endpoints need no ?secret= */
        struct conf_mark hooks_secret_file_mark;
    } admin;
    struct conf_listener *listeners;
    size_t n_listeners;
    struct conf_pool *pools;
    size_t n_pools;
    struct conf_route *routes;
    size_t n_routes;
};

/* Errors found while loading, each "FILE:LINE:COL: path: message". */
#define CONF_MAX_ERRORS 32
struct conf_errors {
    char *msg[CONF_MAX_ERRORS];
    size_t n;
    size_t dropped;
};

struct conf_load_opts {
    bool resolve_names; /* false: numeric addresses only (fuzzing, tests) */
    size_t max_bytes;   /* 0 = CONF_MAX_FILE_BYTES */
};

#define CONF_MAX_FILE_BYTES (4u << 20)
#define CONF_ADMIN_DEFAULT_ADDRESS "127.0.0.1:8080"
/* Defaults filled in after the schema walk (conf.c); conf_schema_dump
 * reports them from these same constants. */
#define CONF_DEFAULT_ACCESS_LOG "stderr"
#define CONF_DEFAULT_HEALTH_APP "live"
#define CONF_DEFAULT_HEALTH_URL "/"
/* A bearer token file holds one line of printable ASCII (no spaces). */
#define CONF_TOKEN_MAX 1024

#endif
