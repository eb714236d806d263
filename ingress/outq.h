/*
 * outq.h - a connection's queue of outbound WebSocket messages.
 *
 * Up to a fixed number of slots, each a buffer with `pre` bytes of
 * headroom (the LWS_PRE that lws_write needs) and room for `cap` bytes of
 * message. The tick fills slots and writes them, or the writeable callback
 * does when the socket is choked. A slot is allocated the first time it
 * is needed and kept, so the hot path does not malloc; the queue starts
 * over at slot 0 whenever it empties, so a connection whose peer keeps up
 * holds one or two. Not thread-safe; the queue owns its slots and
 * outq_fini frees them.
 */
#ifndef EXO_INGRESS_OUTQ_H
#define EXO_INGRESS_OUTQ_H

#include <stddef.h>

#define OUTQ_MAX_SLOTS 16

struct outq {
	char  *slot[OUTQ_MAX_SLOTS];
	size_t len[OUTQ_MAX_SLOTS];
	size_t nslots, head, n;
	size_t pre, cap;
};

/* Allocates the first slot. Returns 0, EINVAL (nslots 0 or over
 * OUTQ_MAX_SLOTS) or ENOMEM. */
int  outq_init(struct outq *q, size_t nslots, size_t pre, size_t cap);
void outq_fini(struct outq *q);

/* The next free slot's message area (cap bytes; pre bytes of headroom in
 * front of it), or NULL when the queue is full (or that slot could not be
 * allocated). Nothing is queued until outq_commit. */
char *outq_reserve(struct outq *q);
/* Queues the reserved slot holding len bytes (0 < len <= cap). */
void outq_commit(struct outq *q, size_t len);

/* The oldest message (its message area) and its length, or NULL. */
char *outq_peek(const struct outq *q, size_t *len);
void  outq_pop(struct outq *q);
/* Drops everything queued. */
void outq_reset(struct outq *q);

static inline size_t
outq_count(const struct outq *q)
{
	return q->n;
}

static inline size_t
outq_free(const struct outq *q)
{
	return q->nslots - q->n;
}

#endif
