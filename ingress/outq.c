/*
 * outq.c - fixed-slot outbound message queue. See outq.h.
 */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
outq_init(struct outq *q, size_t nslots, size_t pre, size_t cap)
{
	memset(q, 0, sizeof(*q));
	if (nslots == 0 || nslots > OUTQ_MAX_SLOTS || cap == 0)
		return EINVAL;
	q->nslots = nslots;
	q->pre    = pre;
	q->cap    = cap;
	if ((q->slot[0] = malloc(pre + cap)) == NULL)
		return ENOMEM;
	return 0;
}

void
outq_fini(struct outq *q)
{
	for (size_t i = 0; i < OUTQ_MAX_SLOTS; i++)
		free(q->slot[i]);
	memset(q, 0, sizeof(*q));
}

char *
outq_reserve(struct outq *q)
{
	size_t i = (q->head + q->n) % q->nslots;

	if (q->n >= q->nslots)
		return NULL;
	/* Made the first time it is needed, then kept. */
	if (!q->slot[i] && (q->slot[i] = malloc(q->pre + q->cap)) == NULL)
		return NULL;
	return q->slot[i] + q->pre;
}

void
outq_commit(struct outq *q, size_t len)
{
	if (q->n >= q->nslots || len == 0 || len > q->cap)
		return;
	q->len[(q->head + q->n) % q->nslots] = len;
	q->n++;
}

char *
outq_peek(const struct outq *q, size_t *len)
{
	if (q->n == 0)
		return NULL;
	*len = q->len[q->head];
	return q->slot[q->head] + q->pre;
}

void
outq_pop(struct outq *q)
{
	if (q->n == 0)
		return;
	q->head = (q->head + 1) % q->nslots;
	/* Empty: start over at slot 0, so a queue that never gets deep
	 * keeps using (and only ever makes) its first slots. */
	if (--q->n == 0)
		q->head = 0;
}

void
outq_reset(struct outq *q)
{
	q->head = 0;
	q->n    = 0;
}
