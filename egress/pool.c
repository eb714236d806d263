/*
 * pool.c - the lease rules of the PersonaPlex pool (see pool.h).
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>

struct server {
	enum pool_use use;
	bool          closing;
	unsigned      failures; /* consecutive, since the last handshake */
	uint64_t      retry_us; /* in backoff until then */
};

struct pool {
	struct backoff bo;
	uint64_t       rng;
	size_t         n;
	struct server  s[];
};

int
pool_alloc(
    struct pool **out, size_t n, const struct backoff *bo, uint64_t seed)
{
	struct pool *p = calloc(1, sizeof(*p) + n * sizeof(p->s[0]));

	if (!p)
		return ENOMEM;
	p->bo  = *bo;
	p->rng = backoff_seed(seed);
	p->n   = n;
	*out   = p;
	return 0;
}

void
pool_free(struct pool *p)
{
	free(p);
}

size_t
pool_size(const struct pool *p)
{
	return p->n;
}

enum pool_view
pool_view(const struct pool *p, size_t i, uint64_t now)
{
	const struct server *s = &p->s[i];

	switch (s->use) {
	case POOL_CALL:
		return POOL_V_BUSY;
	case POOL_WARM:
		return POOL_V_WARM;
	case POOL_WARMING:
		return POOL_V_WARMING;
	default:
		break;
	}
	if (now < s->retry_us)
		return POOL_V_FAILED;
	return s->closing ? POOL_V_CLOSING : POOL_V_FREE;
}

/* How much want likes a server in view v; 0 = not at all. */
static int
rank(enum pool_want want, enum pool_view v)
{
	switch (want) {
	case POOL_WANT_DEFAULT:
		return v == POOL_V_WARM   ? 3
		    : v == POOL_V_WARMING ? 2
		    : v == POOL_V_FREE    ? 1
		                          : 0;
	case POOL_WANT_OTHER:
		return v == POOL_V_FREE   ? 3
		    : v == POOL_V_WARMING ? 2
		    : v == POOL_V_WARM    ? 1
		                          : 0;
	case POOL_WANT_WARM:
		return v == POOL_V_FREE;
	}
	return 0;
}

int
pool_pick(const struct pool *p, uint64_t now, enum pool_want want, int prefer)
{
	int best = -1, best_rank = 0;

	for (size_t i = 0; i < p->n; i++) {
		int r = rank(want, pool_view(p, i, now));
		if (r > best_rank) {
			best      = (int)i;
			best_rank = r;
		}
	}
	if (prefer >= 0 && (size_t)prefer < p->n && best_rank > 0
	    && rank(want, pool_view(p, (size_t)prefer, now)) == best_rank)
		return prefer;
	return best;
}

void
pool_set_use(struct pool *p, size_t i, enum pool_use use)
{
	p->s[i].use = use;
}

enum pool_use
pool_use_of(const struct pool *p, size_t i)
{
	return p->s[i].use;
}

void
pool_closing(struct pool *p, size_t i)
{
	p->s[i].closing = true;
}

void
pool_closed(struct pool *p, size_t i)
{
	p->s[i].closing = false;
}

bool
pool_is_closing(const struct pool *p, size_t i)
{
	return p->s[i].closing;
}

uint32_t
pool_failed(struct pool *p, size_t i, uint64_t now)
{
	struct server *s = &p->s[i];
	uint32_t       d;

	if (s->failures < 1000)
		s->failures++;
	d           = backoff_ms(&p->bo, s->failures, backoff_rand(&p->rng));
	s->retry_us = now + (uint64_t)d * 1000;
	return d;
}

void
pool_succeeded(struct pool *p, size_t i)
{
	p->s[i].failures = 0;
	p->s[i].retry_us = 0;
}

unsigned
pool_failures(const struct pool *p, size_t i)
{
	return p->s[i].failures;
}

size_t
pool_count(const struct pool *p, enum pool_view v, uint64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		n += pool_view(p, i, now) == v;
	return n;
}

size_t
pool_available(const struct pool *p, uint64_t now)
{
	return pool_count(p, POOL_V_FREE, now)
	    + pool_count(p, POOL_V_WARM, now)
	    + pool_count(p, POOL_V_WARMING, now);
}

const char *
pool_view_name(enum pool_view v)
{
	static const char *const names[POOL_VIEWS]
	    = { "free", "warming", "warm", "busy", "closing", "failed" };

	return v < POOL_VIEWS ? names[v] : "unknown";
}
