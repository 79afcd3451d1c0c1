#include "lb/log.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room kept at the end of every line for a truncation marker, '}' and '\n'. */
#define LOG_RESERVE 24

static _Atomic int log_level = LB_LOG_INFO;
static _Atomic int log_format = LB_LOG_TEXT;
static _Atomic int access_fd = 2;

void lb_log_configure(enum lb_log_level level, enum lb_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

void lb_log_set_access_fd(int fd) { atomic_store(&access_fd, fd); }

bool lb_log_enabled(enum lb_log_level level) { return (int)level >= atomic_load(&log_level); }

const char *lb_log_level_name(enum lb_log_level level)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    return (unsigned)level < 4 ? names[level] : "?";
}

static void put(struct lb_logline *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - LOG_RESERVE - l->len;
    if (n > room) {
        n = room;
        l->truncated = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct lb_logline *l, const char *s) { put(l, s, strlen(s)); }

/* Text values are bare when they are simple, else double-quoted; JSON values
 * are always strings with escapes. Control bytes from the network (stream
 * names, addresses) never reach the terminal raw. */
static void put_escaped(struct lb_logline *l, const char *s, bool quote)
{
    if (quote)
        put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            put(l, tmp, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
            put(l, tmp, 6);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    if (quote)
        put(l, "\"", 1);
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return true;
    return false;
}

static void begin(struct lb_logline *l, int fd, const char *level, const char *event)
{
    struct timespec ts;
    struct tm tm;
    char when[40];

    l->len = 0;
    l->truncated = false;
    l->fd = fd;
    l->json = atomic_load(&log_format) == LB_LOG_JSON;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    if (l->json) {
        puts_(l, "{\"ts\":\"");
        puts_(l, when);
        puts_(l, "\",\"level\":\"");
        puts_(l, level);
        puts_(l, "\",\"event\":");
        put_escaped(l, event, true);
    } else {
        char head[64];
        snprintf(head, sizeof(head), "%s %-5s ", when, level);
        puts_(l, head);
        put_escaped(l, event, false);
    }
    l->complete = l->truncated ? 0 : l->len;
}

static void field_done(struct lb_logline *l)
{
    if (!l->truncated)
        l->complete = l->len;
}

void lb_log_begin(struct lb_logline *l, enum lb_log_level level, const char *event)
{
    l->enabled = lb_log_enabled(level);
    if (l->enabled)
        begin(l, 2, lb_log_level_name(level), event);
}

void lb_log_begin_access(struct lb_logline *l, const char *event)
{
    int fd = atomic_load(&access_fd);
    l->enabled = fd >= 0;
    if (l->enabled)
        begin(l, fd, "info", event);
}

void lb_log_str(struct lb_logline *l, const char *key, const char *value)
{
    if (!l->enabled)
        return;
    if (!value)
        value = "-";
    if (l->json) {
        puts_(l, ",\"");
        puts_(l, key);
        puts_(l, "\":");
        put_escaped(l, value, true);
    } else {
        puts_(l, " ");
        puts_(l, key);
        puts_(l, "=");
        put_escaped(l, value, needs_quotes(value));
    }
    field_done(l);
}

void lb_log_fmt(struct lb_logline *l, const char *key, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;

    if (!l->enabled)
        return;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    lb_log_str(l, key, tmp);
}

static void put_number(struct lb_logline *l, const char *key, const char *digits)
{
    if (l->json) {
        puts_(l, ",\"");
        puts_(l, key);
        puts_(l, "\":");
    } else {
        puts_(l, " ");
        puts_(l, key);
        puts_(l, "=");
    }
    puts_(l, digits);
    field_done(l);
}

void lb_log_u64(struct lb_logline *l, const char *key, uint64_t v)
{
    char tmp[24];
    if (!l->enabled)
        return;
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    put_number(l, key, tmp);
}

void lb_log_num(struct lb_logline *l, const char *key, double v)
{
    char tmp[32];
    if (!l->enabled)
        return;
    if (!isfinite(v)) {
        lb_log_null(l, key);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.3f", v);
    put_number(l, key, tmp);
}

void lb_log_i64(struct lb_logline *l, const char *key, int64_t v)
{
    char tmp[24];
    if (!l->enabled)
        return;
    snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    put_number(l, key, tmp);
}

void lb_log_null(struct lb_logline *l, const char *key)
{
    if (!l->enabled)
        return;
    put_number(l, key, l->json ? "null" : "-");
}

void lb_log_end(struct lb_logline *l)
{
    if (!l->enabled)
        return;
    if (l->truncated) {
        /* Keep the line parseable: drop back to the last whole field. */
        l->len = l->complete;
        const char *mark = l->json ? ",\"trunc\":true" : " trunc=1";
        memcpy(l->buf + l->len, mark, strlen(mark));
        l->len += strlen(mark);
    }
    if (l->json)
        l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    const char *p = l->buf;
    size_t left = l->len;
    while (left > 0) {
        ssize_t n = write(l->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failing log; drop the line */
        p += n;
        left -= (size_t)n;
    }
}

void lb_log_msg(enum lb_log_level level, const char *event, const char *fmt, ...)
{
    struct lb_logline l;
    char tmp[1024];
    va_list ap;

    lb_log_begin(&l, level, event);
    if (!l.enabled)
        return;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    lb_log_str(&l, "msg", tmp);
    lb_log_end(&l);
}
