/*
 * metrics.c - a fixed-capacity registry of atomic series.
 *
 * Registration takes a lock (rare: at start and when a new label value
 * appears); updates are lock-free atomics; rendering takes the lock only
 * to walk the array.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define METRICS_MAX 1024

struct hist {
	size_t n; /* bounds; counts has n + 1 (the last is +Inf) */
	int64_t bounds[METRICS_BUCKETS_MAX];
	_Atomic uint64_t counts[METRICS_BUCKETS_MAX + 1];
	_Atomic int64_t sum;
};

struct metric {
	const char *name;
	const char *help;
	char *labels; /* owned; NULL = none */
	enum metric_type type;
	_Atomic int64_t value; /* a histogram's count */
	struct hist *hist; /* owned; histograms only */
};

struct metrics {
	pthread_mutex_t lock;
	const char *prefix;
	size_t n;
	struct metric sink; /* returned when full: counting never fails */
	struct metric series[METRICS_MAX];
};

int
metrics_alloc(struct metrics **out, const char *prefix)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->prefix = prefix ? prefix : "";
	m->sink.name = "metrics_overflow";
	*out = m;
	return 0;
}

void
metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->series[i].labels);
		free(m->series[i].hist);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static struct metric *
reg(struct metrics *m, const char *name, const char *help,
    const char *labels, enum metric_type type, const int64_t *bounds,
    size_t nb)
{
	struct metric *x = &m->sink;
	struct hist *h = NULL;

	if (type == METRIC_HISTOGRAM) {
		if (nb == 0 || nb > METRICS_BUCKETS_MAX)
			return x;
		for (size_t i = 1; i < nb; i++)
			if (bounds[i] <= bounds[i - 1])
				return x;
		if ((h = calloc(1, sizeof(*h))) == NULL)
			return x;
		h->n = nb;
		memcpy(h->bounds, bounds, nb * sizeof(bounds[0]));
	}
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		struct metric *s = &m->series[i];
		if (!strcmp(s->name, name) &&
		    !strcmp(s->labels ? s->labels : "", labels ? labels : "")) {
			x = s;
			goto out;
		}
	}
	if (m->n < METRICS_MAX) {
		x = &m->series[m->n];
		x->name = name;
		x->help = help;
		x->type = type;
		x->labels = labels && *labels ? strdup(labels) : NULL;
		x->hist = h;
		h = NULL;
		atomic_store(&x->value, 0);
		m->n++;
	}
out:
	pthread_mutex_unlock(&m->lock);
	free(h); /* found an existing series, or full */
	return x;
}

struct metric *
metrics_counter(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return reg(m, name, help, labels, METRIC_COUNTER, NULL, 0);
}

struct metric *
metrics_gauge(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return reg(m, name, help, labels, METRIC_GAUGE, NULL, 0);
}

struct metric *
metrics_histogram(struct metrics *m, const char *name, const char *help,
    const char *labels, const int64_t *bounds, size_t n)
{
	return reg(m, name, help, labels, METRIC_HISTOGRAM, bounds, n);
}

void
metric_observe(struct metric *x, int64_t v)
{
	struct hist *h = x->hist;
	size_t i = 0;

	atomic_fetch_add_explicit(&x->value, 1, memory_order_relaxed);
	if (!h)
		return;
	while (i < h->n && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void
metric_add(struct metric *x, int64_t v)
{
	atomic_fetch_add_explicit(&x->value, v, memory_order_relaxed);
}

void
metric_inc(struct metric *x)
{
	atomic_fetch_add_explicit(&x->value, 1, memory_order_relaxed);
}

void
metric_set(struct metric *x, int64_t v)
{
	atomic_store_explicit(&x->value, v, memory_order_relaxed);
}

int64_t
metric_get(const struct metric *x)
{
	return atomic_load_explicit(&((struct metric *) x)->value,
	    memory_order_relaxed);
}

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t) n < b->cap - b->len) {
			b->len += (size_t) n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t) n;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

/* <name>_bucket{labels,le="..."} cumulative, then _sum and _count. */
static void
render_hist(struct sbuf *b, const char *prefix, struct metric *t)
{
	struct hist *h = t->hist;
	const char *l = t->labels ? t->labels : "";
	const char *comma = t->labels ? "," : "";
	unsigned long long cum = 0;

	for (size_t k = 0; k <= h->n; k++) {
		cum += atomic_load_explicit(&h->counts[k],
		    memory_order_relaxed);
		if (k < h->n)
			sb_printf(b, "%s%s_bucket{%s%sle=\"%lld\"} %llu\n",
			    prefix, t->name, l, comma,
			    (long long) h->bounds[k], cum);
		else
			sb_printf(b, "%s%s_bucket{%s%sle=\"+Inf\"} %llu\n",
			    prefix, t->name, l, comma, cum);
	}
	sb_printf(b, "%s%s_sum%s%s%s %lld\n", prefix, t->name,
	    t->labels ? "{" : "", l, t->labels ? "}" : "",
	    (long long) atomic_load(&h->sum));
	/* The count is the buckets' total, so a scrape is consistent. */
	sb_printf(b, "%s%s_count%s%s%s %llu\n", prefix, t->name,
	    t->labels ? "{" : "", l, t->labels ? "}" : "", cum);
}

char *
metrics_render(struct metrics *m, size_t *len)
{
	struct sbuf b = { .cap = 8192 };
	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	pthread_mutex_lock(&m->lock);
	/* Group series by name: HELP and TYPE once per metric family. */
	for (size_t i = 0; i < m->n; i++) {
		struct metric *s = &m->series[i];
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(m->series[j].name, s->name);
		if (seen)
			continue;
		sb_printf(&b, "# HELP %s%s %s\n# TYPE %s%s %s\n", m->prefix,
		    s->name, s->help ? s->help : s->name, m->prefix, s->name,
		    s->type == METRIC_COUNTER ? "counter"
		    : s->hist		      ? "histogram"
					      : "gauge");
		for (size_t j = i; j < m->n; j++) {
			struct metric *t = &m->series[j];
			if (strcmp(t->name, s->name))
				continue;
			if (t->hist) {
				render_hist(&b, m->prefix, t);
				continue;
			}
			long long v = (long long) metric_get(t);
			if (t->labels)
				sb_printf(&b, "%s%s{%s} %lld\n", m->prefix,
				    t->name, t->labels, v);
			else
				sb_printf(&b, "%s%s %lld\n", m->prefix, t->name,
				    v);
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
