/* Why a session ended: one closed set (STYLE.md 11). The enum, the access
 * log's reason= value, the metrics label and a human text all come from
 * LB_REASON_MAP, so logs and Prometheus never disagree. */
#ifndef LB_REASON_H
#define LB_REASON_H

/* X(enum suffix, log/metrics name, text) */
#define LB_REASON_MAP(X)                                                              \
    X(NONE, "none", "still open")                                                     \
    X(CLIENT_CLOSED, "client_closed", "the client closed first")                      \
    X(UPSTREAM_CLOSED, "upstream_closed", "the node closed first")                    \
    X(CLIENT_ERROR, "client_error", "a socket error on the client side")              \
    X(UPSTREAM_ERROR, "upstream_error", "a socket error on the node side")            \
    X(IDLE_TIMEOUT, "idle_timeout", "no byte either way within timeouts.idle")        \
    X(HALF_CLOSED, "half_closed", "one side closed; the other lingered past timeouts.half_close") \
    X(SHUTDOWN, "shutdown", "rtmplb stopped")                                         \
    X(ADMIN_DISABLED, "admin_disabled", "the operator disabled its node")              \
    X(ADMIN_DRAINED, "admin_drained", "its node's drain deadline passed")             \
    X(INTERNAL_ERROR, "internal_error", "out of memory or a bug")                     \
    X(PER_IP_SESSIONS, "per_ip_sessions", "its address had limits.max_sessions_per_ip sessions") \
    X(PER_IP_HANDSHAKES, "per_ip_handshakes", "its address had limits.max_handshakes_per_ip sessions not yet routed") \
    X(NO_ROUTE, "no_route", "no route matches")                                       \
    X(NO_NODE, "no_node", "no node of the pool can take it")                          \
    X(DIAL_FAILED, "dial_failed", "every candidate node failed")                      \
    X(PROXY_PROTOCOL, "proxy_protocol", "a malformed or missing PROXY header")        \
    X(PROXY_TIMEOUT, "proxy_timeout", "no complete PROXY header in time")             \
    X(BAD_HANDSHAKE, "bad_handshake", "not an RTMP handshake")                        \
    X(HANDSHAKE_TIMEOUT, "handshake_timeout", "no publish or play within timeouts.handshake") \
    X(CLIENT_CLOSED_IN_HANDSHAKE, "client_closed_in_handshake", "the client closed during the handshake") \
    X(PREROUTE_LIMIT, "preroute_limit", "more than limits.preroute_bytes before publish or play") \
    X(CLIENT_PROTOCOL, "client_protocol", "the client broke the RTMP chunk stream")   \
    X(CLIENT_AMF, "client_protocol:amf", "a malformed AMF command")                   \
    X(CLIENT_CHUNK_SIZE, "client_protocol:chunk_size", "a Set Chunk Size out of bounds") \
    X(CLIENT_CS_BEFORE_CONNECT, "client_protocol:createStream_before_connect", "createStream before connect") \
    X(CLIENT_PUB_BEFORE_CONNECT, "client_protocol:publish_before_connect", "publish or play before connect") \
    X(CLIENT_INTERLEAVED, "client_protocol:interleaved_commands", "too many commands interleaved") \
    X(CLIENT_TOO_MANY, "client_protocol:too_many_commands", "too many commands awaiting answers") \
    X(ORIGIN_CLOSED, "origin_closed", "the origin closed before the hand-over")       \
    X(ORIGIN_PROTOCOL, "origin_protocol", "the origin broke a check of the front door") \
    X(ORIGIN_REJECTED, "origin_rejected", "the origin refused connect or createStream") \
    X(ORIGIN_TIMEOUT, "origin_timeout", "the origin did not answer in time")          \
    X(TLS_HANDSHAKE, "tls_handshake", "the client's TLS handshake failed or timed out") \
    X(NOT_TLS, "not_tls", "plain bytes on a TLS listener")                            \
    X(TLS_ON_PLAIN, "tls_on_plain", "a TLS ClientHello on a plain listener")          \
    X(ORIGIN_TLS, "origin_tls", "the origin's TLS handshake or certificate failed") \
    X(TAKEN_OVER, "taken_over", "a new publish of its stream took over (publish_conflict)") \
    X(PUBLISH_CONFLICT, "publish_conflict", "its stream was being published already (publish_conflict)") \
    X(TAKEOVER_TIMEOUT, "takeover_timeout", "the old publish of its stream did not end within timeouts.takeover") \
    X(CLIENT_HTTP, "client_protocol:http", "a malformed, oversized or refused HTTP request") \
    X(NOT_FOUND, "not_found", "no path pattern matches, or the stream is live nowhere")

enum lb_reason {
#define X(e, name, text) LB_REASON_##e,
    LB_REASON_MAP(X)
#undef X
    LB_REASON__COUNT
};

const char *lb_reason_name(enum lb_reason r);
const char *lb_reason_text(enum lb_reason r);

#endif
