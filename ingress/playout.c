/*
 * playout.c - mark bookkeeping and the caller's heard position. See
 * playout.h.
 */
#include "playout.h"

#include <stdio.h>
#include <string.h>

#define REPORT_EVERY_US 1000000u
#define REPORT_STEP_MS 100u

void
playout_init(struct playout *p, unsigned interval_ms, unsigned timeout_ms)
{
	memset(p, 0, sizeof(*p));
	p->interval_us = (uint64_t)interval_ms * 1000;
	p->timeout_us  = (uint64_t)(timeout_ms ? timeout_ms : 2000) * 1000;
}

void
playout_sent(struct playout *p, uint64_t audio_us)
{
	p->sent_us += audio_us;
}

bool
playout_mark_due(const struct playout *p, bool buffer_empty)
{
	uint64_t unmarked = p->sent_us - p->marked_us;

	return unmarked > 0 && (buffer_empty || unmarked >= p->interval_us);
}

static void
heard_to(struct playout *p, uint64_t pos)
{
	if (pos > p->heard_us)
		p->heard_us = pos;
}

static struct playout_mark *
at(struct playout *p, size_t i)
{
	return &p->ring[(p->head + i) % PLAYOUT_MAX_MARKS];
}

static void
pop_front(struct playout *p, size_t k)
{
	p->head = (p->head + k) % PLAYOUT_MAX_MARKS;
	p->n -= k;
}

void
playout_mark(struct playout *p, uint64_t end_us, char *name, size_t cap)
{
	struct playout_mark *m;

	if (p->n == PLAYOUT_MAX_MARKS) {
		/* No echoes for a long while: the oldest is surely played. */
		m = at(p, 0);
		if (!m->expired) {
			p->st.dropped++;
			heard_to(p, m->pos_us);
		}
		pop_front(p, 1);
	}
	m            = at(p, p->n++);
	m->id        = ++p->next_id;
	m->pos_us    = p->sent_us;
	m->end_us    = end_us;
	m->expired   = false;
	p->marked_us = p->sent_us;
	p->st.marks++;
	snprintf(name, cap, "exo-%llu", (unsigned long long)m->id);
}

/* "exo-<n>" with 1 <= n, decimal without leading zeros; 0 otherwise. */
static uint64_t
name_id(const char *name)
{
	uint64_t    v = 0;
	const char *s;

	if (strncmp(name, "exo-", 4) != 0)
		return 0;
	s = name + 4;
	if (*s < '1' || *s > '9')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	return v;
}

enum playout_echo_kind
playout_echo(struct playout *p, const char *name, uint64_t now_us,
    struct playout_echo *e)
{
	uint64_t id = name_id(name);

	memset(e, 0, sizeof(*e));
	if (id == 0 || id > p->next_id) {
		p->st.unknown++;
		return PLAYOUT_ECHO_UNKNOWN;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct playout_mark *m = at(p, i);
		uint64_t             lag;
		if (m->id != id)
			continue;
		lag         = p->sent_us - m->pos_us;
		e->lag_ms   = (uint32_t)(lag / 1000);
		e->delay_ms = ((int64_t)now_us - (int64_t)m->end_us) / 1000;
		e->late     = m->expired;
		p->lag_ms   = e->lag_ms;
		p->have_lag = true;
		p->st.echoed++;
		if (m->expired)
			p->st.late++;
		heard_to(p, m->pos_us);
		/* Echoes come in order: the ones before it have played. */
		pop_front(p, i + 1);
		return PLAYOUT_ECHO_MATCHED;
	}
	p->st.stale++;
	return PLAYOUT_ECHO_STALE;
}

size_t
playout_tick(struct playout *p, uint64_t now_us)
{
	size_t k = 0;

	for (size_t i = 0; i < p->n; i++) {
		struct playout_mark *m = at(p, i);
		if (m->expired)
			continue;
		if (now_us < m->end_us + p->timeout_us)
			break; /* later marks end later */
		m->expired = true;
		heard_to(p, m->pos_us);
		p->st.expired++;
		k++;
	}
	return k;
}

size_t
playout_clear(struct playout *p)
{
	size_t n = p->n;

	p->n         = 0;
	p->head      = 0;
	p->heard_us  = p->sent_us;
	p->marked_us = p->sent_us;
	return n;
}

bool
playout_playing(const struct playout *p)
{
	return p->sent_us > p->heard_us;
}

uint32_t
playout_unheard_ms(const struct playout *p)
{
	return (uint32_t)((p->sent_us - p->heard_us) / 1000);
}

bool
playout_report(
    struct playout *p, uint64_t now_us, bool *playing, uint32_t *lag_ms)
{
	bool     pl  = playout_playing(p);
	uint32_t lag = pl && p->have_lag ? p->lag_ms : 0;
	uint32_t d;

	if (p->reported && pl == p->rep_playing) {
		if (!pl || now_us - p->rep_us < REPORT_EVERY_US)
			return false;
		d = lag > p->rep_lag_ms ? lag - p->rep_lag_ms
		                        : p->rep_lag_ms - lag;
		if (d < REPORT_STEP_MS)
			return false;
	}
	if (!p->reported && !pl)
		return false; /* nothing has played yet: nothing to say */
	p->reported    = true;
	p->rep_playing = pl;
	p->rep_lag_ms  = lag;
	p->rep_us      = now_us;
	*playing       = pl;
	*lag_ms        = lag;
	return true;
}
