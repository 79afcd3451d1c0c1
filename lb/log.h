/* Structured log lines: one event, then key/value fields, rendered as text
 * ("ts level event k=v ...") or one JSON object per line. Every line is built
 * in a stack buffer. Once lb_log_start() ran, a finished line is copied into
 * a bounded queue that one writer thread drains, so a slow or stuck sink
 * never blocks a worker: when the queue is full the line is dropped and
 * counted, and the writer says "N log lines dropped" where they were. Before
 * (tests, `rtmplb -t`) a line is written in place with one write(2). */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lb_log_level { LB_LOG_DEBUG, LB_LOG_INFO, LB_LOG_WARN, LB_LOG_ERROR };
enum lb_log_format { LB_LOG_TEXT, LB_LOG_JSON };

#define LB_LOG_LINE_MAX 2048

struct lb_logline {
    char buf[LB_LOG_LINE_MAX];
    size_t len;
    size_t complete; /* length up to the last whole field */
    bool truncated;
    bool enabled;
    bool json;
    bool access; /* the access log (else the main log) */
    int fd;
};

/* Process-wide settings; set before threads start, or swapped atomically. */
void lb_log_configure(enum lb_log_level level, enum lb_log_format format);
/* access_fd: -1 = access log off. The log module does not own the fd. */
void lb_log_set_access_fd(int fd);
bool lb_log_enabled(enum lb_log_level level);
const char *lb_log_level_name(enum lb_log_level level);

/* A line for the main log (stderr). */
void lb_log_begin(struct lb_logline *l, enum lb_log_level level, const char *event);
/* A line for the access log (may be off: then every call is a no-op). */
void lb_log_begin_access(struct lb_logline *l, const char *event);
void lb_log_str(struct lb_logline *l, const char *key, const char *value);
void lb_log_fmt(struct lb_logline *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lb_log_u64(struct lb_logline *l, const char *key, uint64_t v);
/* A number with three decimals (a JSON number, not a string). */
void lb_log_num(struct lb_logline *l, const char *key, double v);
void lb_log_i64(struct lb_logline *l, const char *key, int64_t v);
/* A number field with no value: JSON null, text "-" (a number field never
 * turns into a string). */
void lb_log_null(struct lb_logline *l, const char *key);
void lb_log_end(struct lb_logline *l);

/* Starts the writer thread (idempotent); 0, or -1 if it cannot start (lines
 * are then written in place). */
int lb_log_start(void);
/* Writes out what is queued, waiting timeout_ms at most, and stops the
 * writer; later lines are written in place. False if the sink did not take
 * everything in time (the rest is lost with the process). Also runs at
 * exit. */
bool lb_log_stop(unsigned timeout_ms);
/* Lines dropped because the queue was full (a metric). */
uint64_t lb_log_dropped_total(void);

/* Shorthand for a line with a message only. */
void lb_log_msg(enum lb_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
