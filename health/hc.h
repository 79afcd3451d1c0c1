/* Health checking, the pure part: how probe results move a node between
 * up and down (rise/fall), when the next probe runs (interval with
 * jitter). No I/O
 * and no clock of its own: callers pass the time, tests pass a fake one. */
#ifndef HEALTH_HC_H
#define HEALTH_HC_H

#include <stdbool.h>
#include <stdint.h>

/* The layer a probe result names (STYLE.md 4). */
#define HC_RESULT_MAP(X)                                        \
    X(OK, "ok")                                                 \
    X(L4_TIMEOUT, "L4 timeout: no TCP connection in time")      \
    X(L4_REFUSED, "L4 refused: connection refused or reset")    \
    X(L6_TLS, "TLS handshake or certificate verification failed") \
    X(L6_RTMP_HANDSHAKE, "RTMP handshake failed")               \
    X(L7_RTMP_REJECT, "RTMP connect rejected")                  \
    X(L7_TIMEOUT, "L7 timeout: no answer in time")              \
    X(L7_HTTP_STATUS, "HTTP status not 2xx")                    \
    X(L7_HTTP_PROTOCOL, "HTTP response malformed")              \
    X(PASSIVE, "dials failed")

enum hc_result {
#define X(name, text) HC_##name,
    HC_RESULT_MAP(X)
#undef X
    HC_RESULT__COUNT
};

const char *hc_result_name(enum hc_result r);
const char *hc_result_text(enum hc_result r);

struct hc_params {
    uint64_t interval_ms;
    uint64_t jitter_ms; /* each delay is interval +- jitter, uniformly */
    uint64_t timeout_ms;
    unsigned rise;
    unsigned fall;
};

struct hc_state {
    bool up;
    unsigned ok_run;   /* consecutive successes */
    unsigned fail_run; /* consecutive failures */
    uint64_t since_ms; /* when the current up/down began */
};

/* Applies one result. Returns true when the node changed up<->down. */
bool hc_apply(struct hc_state *st, const struct hc_params *p, bool ok, uint64_t now_ms);

/* The delay before the next probe; r is uniform in [0, 1). */
uint64_t hc_next_delay(const struct hc_params *p, double r);

#endif
