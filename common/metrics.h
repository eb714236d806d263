/*
 * metrics.h - counters and gauges for /metrics (Prometheus text format).
 *
 * A struct metrics registry is created by main and passed to the modules
 * that count things. Registering returns a struct metric * that stays
 * valid until metrics_free; updating one is a relaxed atomic operation,
 * safe from any thread. The registry has a fixed capacity: registering
 * past it returns a shared sink metric, so counting never fails.
 */
#ifndef EXO_METRICS_H
#define EXO_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

#define METRICS_BUCKETS_MAX 24

/* prefix is prepended to every name ("exoplex_"). Returns 0 or ENOMEM. */
int  metrics_alloc(struct metrics **out, const char *prefix);
void metrics_free(struct metrics *m);

/* Registers (or finds, when name and labels match) a series. labels is
 * NULL or Prometheus label text without braces: kind="media",link="x".
 * name and help must be string literals or outlive the registry; labels
 * is copied. */
struct metric *metrics_counter(struct metrics *m, const char *name,
    const char *help, const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name,
    const char *help, const char *labels);

/* A histogram: observations counted in buckets by upper bound (bounds:
 * n ascending values, n <= METRICS_BUCKETS_MAX, copied; +Inf is added),
 * rendered as Prometheus <name>_bucket{le}, <name>_sum and <name>_count.
 * metric_get of a histogram is its count. Returns the shared sink (a
 * plain counter) when the registry is full or the bounds are bad. */
struct metric *metrics_histogram(struct metrics *m, const char *name,
    const char *help, const char *labels, const int64_t *bounds, size_t n);
/* Records v in a histogram (on any other metric: adds 1). Lock-free. */
void metric_observe(struct metric *x, int64_t v);

void    metric_add(struct metric *x, int64_t v);
void    metric_inc(struct metric *x);
void    metric_set(struct metric *x, int64_t v);
int64_t metric_get(const struct metric *x);

/* Writes the whole registry in Prometheus text format into a malloc'd,
 * NUL-terminated buffer that the caller frees. Returns NULL on ENOMEM. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
