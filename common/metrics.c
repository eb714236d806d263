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

struct metric {
	const char *name;
	const char *help;
	char *labels; /* owned; NULL = none */
	enum metric_type type;
	_Atomic int64_t value;
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
	for (size_t i = 0; i < m->n; i++)
		free(m->series[i].labels);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static struct metric *
reg(struct metrics *m, const char *name, const char *help,
    const char *labels, enum metric_type type)
{
	struct metric *x = &m->sink;
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
		atomic_store(&x->value, 0);
		m->n++;
	}
out:
	pthread_mutex_unlock(&m->lock);
	return x;
}

struct metric *
metrics_counter(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return reg(m, name, help, labels, METRIC_COUNTER);
}

struct metric *
metrics_gauge(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return reg(m, name, help, labels, METRIC_GAUGE);
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
		    s->type == METRIC_COUNTER ? "counter" : "gauge");
		for (size_t j = i; j < m->n; j++) {
			struct metric *t = &m->series[j];
			if (strcmp(t->name, s->name))
				continue;
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
