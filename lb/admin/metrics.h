/* Prometheus text exposition format 0.0.4, written into a growing buffer.
 * Pure: no I/O, no clock. The caller writes one family at a time: declare
 * it (HELP and TYPE are written the first time a family is declared), then
 * its samples. Label values are escaped here; label names and metric names
 * are the caller's constants and are checked, not escaped. */
#ifndef LB_ADMIN_METRICS_H
#define LB_ADMIN_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lb_metric_type { LB_METRIC_COUNTER, LB_METRIC_GAUGE, LB_METRIC_HISTOGRAM };

struct lb_label {
    const char *name;
    const char *value;
};

#define LB_METRICS_MAX_FAMILIES 256

struct lb_metrics {
    char *buf; /* NUL-terminated text; owned, freed by lb_metrics_free */
    size_t len, cap;
    bool failed; /* out of memory or a misuse (reason in why): drop the result */
    const char *why;
    const char *family; /* the family being written */
    int type;
    const char *seen[LB_METRICS_MAX_FAMILIES]; /* families declared, by name */
    size_t n_seen;
};

void lb_metrics_init(struct lb_metrics *m);
void lb_metrics_free(struct lb_metrics *m);
/* Starts family name; writes "# HELP" and "# TYPE" the first time. A family
 * declared again after another one was written is a misuse (the format wants
 * a family's samples together): failed is set. */
void lb_metrics_family(struct lb_metrics *m, const char *name, enum lb_metric_type type,
                       const char *help);
/* One sample of the current counter or gauge family. */
void lb_metrics_u64(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                    uint64_t v);
void lb_metrics_double(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                       double v);
/* One histogram of the current histogram family: bounds[n_bounds] ascending
 * upper bounds, counts[n_bounds + 1] observations per bucket (not
 * cumulative; the last is above every bound); written cumulatively as
 * _bucket{le=...} with le="+Inf", then _sum and _count. */
void lb_metrics_histogram(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                          const double *bounds, size_t n_bounds, const uint64_t *counts,
                          double sum);

/* A histogram the data path can feed from any thread (atomics only). */
#define LB_HISTO_MAX_BOUNDS 24
struct lb_histo {
    const double *bounds; /* ascending; static storage */
    size_t n_bounds;
    _Atomic uint64_t counts[LB_HISTO_MAX_BOUNDS + 1];
    _Atomic uint64_t sum_micro; /* sum of observations, in millionths */
};
void lb_histo_init(struct lb_histo *h, const double *bounds, size_t n_bounds);
void lb_histo_observe(struct lb_histo *h, double v);
/* Writes h as one histogram of the current family. */
void lb_metrics_histo(struct lb_metrics *m, const struct lb_label *labels, size_t n_labels,
                      struct lb_histo *h);

#endif
