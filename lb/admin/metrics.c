/* Prometheus text format 0.0.4 writer (see metrics.h). */
#include "lb/admin/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lb_metrics_init(struct lb_metrics *m) { memset(m, 0, sizeof(*m)); }

void lb_metrics_free(struct lb_metrics *m)
{
    free(m->buf);
    memset(m, 0, sizeof(*m));
}

static void fail(struct lb_metrics *m, const char *why)
{
    if (!m->failed)
        m->why = why;
    m->failed = true;
}

static bool reserve(struct lb_metrics *m, size_t more)
{
    if (m->failed)
        return false;
    if (m->len + more + 1 <= m->cap)
        return true;
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->len + more + 1)
        cap *= 2;
    char *b = realloc(m->buf, cap);
    if (!b) {
        fail(m, "out of memory");
        return false;
    }
    m->buf = b;
    m->cap = cap;
    return true;
}

static void put(struct lb_metrics *m, const char *s, size_t n)
{
    if (!reserve(m, n))
        return;
    memcpy(m->buf + m->len, s, n);
    m->len += n;
    m->buf[m->len] = '\0';
}

static void puts_(struct lb_metrics *m, const char *s) { put(m, s, strlen(s)); }

static void putf(struct lb_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct lb_metrics *m, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        fail(m, "number too long");
    else
        put(m, tmp, (size_t)n);
}

/* Escapes \ and newline (HELP), and " too (label values). */
static void put_escaped(struct lb_metrics *m, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                                           : (quote && *s == '"') ? "\\\""
                                                                  : NULL;
        if (!rep)
            continue;
        put(m, run, (size_t)(s - run));
        puts_(m, rep);
        run = s + 1;
    }
    put(m, run, (size_t)(s - run));
}

static bool valid_name(const char *s, bool colons)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || (colons && *s == ':')))
            return false;
    return true;
}

/* A double the way Prometheus reads it: shortest text that round-trips. */
static void put_double(struct lb_metrics *m, double v)
{
    if (isnan(v)) {
        puts_(m, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(m, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    puts_(m, tmp);
}

void lb_metrics_family(struct lb_metrics *m, const char *name, enum lb_metric_type type,
                       const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    if (!valid_name(name, true)) {
        fail(m, "invalid metric name");
        return;
    }
    for (size_t i = 0; i < m->n_seen; i++)
        if (strcmp(m->seen[i], name) == 0) {
            if (m->family != m->seen[i] && strcmp(m->family, name) != 0)
                fail(m, "a family's samples must be written together");
            return;
        }
    if (m->n_seen == LB_METRICS_MAX_FAMILIES) {
        fail(m, "too many families");
        return;
    }
    m->seen[m->n_seen++] = name;
    m->family = name;
    m->type = (int)type;
    puts_(m, "# HELP ");
    puts_(m, name);
    puts_(m, " ");
    put_escaped(m, help ? help : "", false);
    puts_(m, "\n# TYPE ");
    puts_(m, name);
    puts_(m, " ");
    puts_(m, types[type]);
    puts_(m, "\n");
}

/* name{labels[,le="bound"]} */
static void put_series(struct lb_metrics *m, const char *suffix, const struct lb_label *labels,
                       size_t n, const char *le)
{
    puts_(m, m->family);
    puts_(m, suffix);
    if (n == 0 && !le) {
        puts_(m, " ");
        return;
    }
    puts_(m, "{");
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(labels[i].name, false) || strncmp(labels[i].name, "__", 2) == 0 ||
            (le && strcmp(labels[i].name, "le") == 0)) {
            fail(m, "invalid label name");
            return;
        }
        if (i)
            puts_(m, ",");
        puts_(m, labels[i].name);
        puts_(m, "=\"");
        put_escaped(m, labels[i].value ? labels[i].value : "", true);
        puts_(m, "\"");
    }
    if (le) {
        puts_(m, n ? ",le=\"" : "le=\"");
        puts_(m, le);
        puts_(m, "\"");
    }
    puts_(m, "} ");
}

static bool scalar_family(struct lb_metrics *m)
{
    if (!m->family || m->type == LB_METRIC_HISTOGRAM) {
        fail(m, "a sample outside a counter or gauge family");
        return false;
    }
    return true;
}

void lb_metrics_u64(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                    uint64_t v)
{
    if (!scalar_family(m))
        return;
    put_series(m, "", labels, n_labels, NULL);
    putf(m, "%llu\n", (unsigned long long)v);
}

void lb_metrics_double(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                       double v)
{
    if (!scalar_family(m))
        return;
    put_series(m, "", labels, n_labels, NULL);
    put_double(m, v);
    puts_(m, "\n");
}

void lb_metrics_histogram(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                          const double *bounds, size_t n_bounds, const uint64_t *counts,
                          double sum)
{
    if (!m->family || m->type != LB_METRIC_HISTOGRAM) {
        fail(m, "a histogram outside a histogram family");
        return;
    }
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= n_bounds; i++) {
        if (i < n_bounds && ((i && !(bounds[i] > bounds[i - 1])) || isnan(bounds[i]))) {
            fail(m, "histogram bounds must ascend");
            return;
        }
        cum += counts[i];
        if (i < n_bounds) {
            struct lb_metrics tmp;
            lb_metrics_init(&tmp);
            put_double(&tmp, bounds[i]);
            snprintf(le, sizeof(le), "%s", tmp.buf ? tmp.buf : "0");
            lb_metrics_free(&tmp);
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        put_series(m, "_bucket", labels, n_labels, le);
        putf(m, "%llu\n", (unsigned long long)cum);
    }
    put_series(m, "_sum", labels, n_labels, NULL);
    put_double(m, sum);
    puts_(m, "\n");
    put_series(m, "_count", labels, n_labels, NULL);
    putf(m, "%llu\n", (unsigned long long)cum);
}

void lb_histo_init(struct lb_histo *h, const double *bounds, size_t n_bounds)
{
    h->bounds = bounds;
    h->n_bounds = n_bounds > LB_HISTO_MAX_BOUNDS ? LB_HISTO_MAX_BOUNDS : n_bounds;
    for (size_t i = 0; i <= LB_HISTO_MAX_BOUNDS; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_micro, 0);
}

void lb_histo_observe(struct lb_histo *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    if (v > 0)
        atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6 + 0.5), memory_order_relaxed);
}

void lb_metrics_histo(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                      struct lb_histo *h)
{
    uint64_t counts[LB_HISTO_MAX_BOUNDS + 1];
    for (size_t i = 0; i <= h->n_bounds; i++)
        counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    double sum = (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6;
    lb_metrics_histogram(m, labels, n_labels, h->bounds, h->n_bounds, counts, sum);
}
