#include "lb/log.h"
#include "lb/logq.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room kept at the end of every line for a truncation marker, '}' and '\n'. */
#define LOG_RESERVE 24

static _Atomic int log_level = LB_LOG_INFO;
static _Atomic int log_format = LB_LOG_TEXT;
static _Atomic int access_fd = 2;

/* The writer: workers only copy a finished line into the queue under a
 * short lock; one thread does the write(2)s. Sinks are resolved when the
 * line is written (the main log is fd 2, the access log whatever fd is
 * current then), so a queued line never outlives the descriptor it names. */
enum { SINK_MAIN, SINK_ACCESS };
#define LOGQ_BYTES (128u << 10)
#define BATCH_BYTES (64u << 10)
#define BATCH_LINES 256

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the writer waits for lines or stop */
    pthread_cond_t drained; /* flushers wait for an empty queue */
    struct lb_logq q;
    pthread_t thread;
    bool stop, writing;
    _Atomic bool running;
} wr = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
        .drained = PTHREAD_COND_INITIALIZER};
static _Atomic uint64_t dropped_total;

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
    l->access = false;
    if (l->enabled)
        begin(l, 2, lb_log_level_name(level), event);
}

void lb_log_begin_access(struct lb_logline *l, const char *event)
{
    int fd = atomic_load(&access_fd);
    l->enabled = fd >= 0;
    l->access = true;
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

/* Closes the line: truncation marker, '}' and newline (room reserved). */
static void finish_line(struct lb_logline *l)
{
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
}

static void write_all(int fd, const char *p, size_t left)
{
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report a failing log; drop the line */
        p += n;
        left -= (size_t)n;
    }
}

static int sink_fd(int sink) { return sink == SINK_MAIN ? 2 : atomic_load(&access_fd); }

void lb_log_end(struct lb_logline *l)
{
    if (!l->enabled)
        return;
    finish_line(l);
    int sink = l->access ? SINK_ACCESS : SINK_MAIN;
    if (atomic_load(&wr.running)) {
        pthread_mutex_lock(&wr.lock);
        if (atomic_load(&wr.running)) {
            bool ok = lb_logq_push(&wr.q, sink, l->buf, l->len);
            if (ok)
                pthread_cond_signal(&wr.wake);
            else
                atomic_fetch_add(&dropped_total, 1);
            pthread_mutex_unlock(&wr.lock);
            return;
        }
        pthread_mutex_unlock(&wr.lock);
    }
    write_all(l->fd, l->buf, l->len); /* no writer (tests, -t, start-up) */
}

uint64_t lb_log_dropped_total(void) { return atomic_load(&dropped_total); }

/* "N log lines dropped", as a main-log line of its own. */
static size_t dropped_line(char *out, size_t cap, uint32_t n)
{
    struct lb_logline l;
    char msg[64];
    l.enabled = true;
    l.access = false;
    begin(&l, 2, lb_log_level_name(LB_LOG_WARN), "log_dropped");
    lb_log_u64(&l, "dropped", n);
    snprintf(msg, sizeof(msg), "%u log lines dropped", n);
    lb_log_str(&l, "msg", msg);
    finish_line(&l);
    size_t k = l.len < cap ? l.len : cap;
    memcpy(out, l.buf, k);
    return k;
}

struct batch_line {
    int sink;
    uint32_t dropped_before;
    size_t off, len;
};

static void *writer_main(void *arg)
{
    static char buf[BATCH_BYTES];
    static struct batch_line lines[BATCH_LINES + 1];
    (void)arg;
    pthread_mutex_lock(&wr.lock);
    for (;;) {
        while (!wr.q.entries && !wr.q.dropped_pending && !wr.stop)
            pthread_cond_wait(&wr.wake, &wr.lock);
        if (!wr.q.entries && !wr.q.dropped_pending && wr.stop)
            break;
        size_t n = 0, used = 0;
        struct lb_logq_entry e;
        while (n < BATCH_LINES && used + LB_LOG_LINE_MAX <= sizeof(buf) &&
               lb_logq_pop(&wr.q, &e, buf + used, LB_LOG_LINE_MAX)) {
            lines[n++] = (struct batch_line){e.sink, e.dropped_before, used, e.len};
            used += e.len;
        }
        /* Drops with no line after them yet: the queue has room again, so
         * say so now rather than at the next line. */
        uint32_t tail_drops = wr.q.entries ? 0 : lb_logq_take_pending(&wr.q);
        if (tail_drops)
            lines[n++] = (struct batch_line){SINK_MAIN, tail_drops, used, 0};
        wr.writing = true;
        pthread_mutex_unlock(&wr.lock);
        /* Consecutive lines of one sink go out in one write. */
        size_t i = 0;
        while (i < n) {
            if (lines[i].dropped_before) {
                char d[LB_LOG_LINE_MAX];
                write_all(2, d, dropped_line(d, sizeof(d), lines[i].dropped_before));
            }
            size_t j = i + 1;
            while (j < n && lines[j].sink == lines[i].sink && !lines[j].dropped_before)
                j++;
            int fd = sink_fd(lines[i].sink);
            size_t end = lines[j - 1].off + lines[j - 1].len;
            if (fd >= 0 && end > lines[i].off)
                write_all(fd, buf + lines[i].off, end - lines[i].off);
            i = j;
        }
        pthread_mutex_lock(&wr.lock);
        wr.writing = false;
        pthread_cond_broadcast(&wr.drained);
    }
    pthread_mutex_unlock(&wr.lock);
    return NULL;
}

static void stop_at_exit(void) { lb_log_stop(1000); }

int lb_log_start(void)
{
    static bool registered;
    sigset_t all, old;
    if (atomic_load(&wr.running))
        return 0;
    if (lb_logq_init(&wr.q, LOGQ_BYTES) < 0)
        return -1;
    wr.stop = false;
    /* The writer takes no signals: the control loop handles them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&wr.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        lb_logq_free(&wr.q);
        return -1;
    }
    atomic_store(&wr.running, true);
    if (!registered && atexit(stop_at_exit) == 0)
        registered = true;
    return 0;
}

bool lb_log_stop(unsigned timeout_ms)
{
    struct timespec until;
    bool drained = true;
    if (!atomic_load(&wr.running))
        return true;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wr.lock);
    wr.stop = true;
    pthread_cond_signal(&wr.wake);
    while (wr.q.entries || wr.q.dropped_pending || wr.writing)
        if (pthread_cond_timedwait(&wr.drained, &wr.lock, &until) == ETIMEDOUT) {
            drained = false;
            break;
        }
    /* From now on lines are written in place; a writer stuck in write(2)
     * keeps its queue (never freed) and dies with the process. */
    atomic_store(&wr.running, false);
    pthread_mutex_unlock(&wr.lock);
    if (drained) {
        pthread_join(wr.thread, NULL);
        lb_logq_free(&wr.q);
    } else {
        pthread_detach(wr.thread);
    }
    return drained;
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
