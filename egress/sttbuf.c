/*
 * sttbuf.c - the replay ring (see sttbuf.h).
 */
#include "sttbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
sttbuf_init(struct sttbuf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	if (!cap || !(b->data = malloc(cap)))
		return ENOMEM;
	b->cap = cap;
	return 0;
}

void
sttbuf_fini(struct sttbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Forgets the n oldest bytes. */
static void
drop(struct sttbuf *b, size_t n)
{
	b->head = (b->head + n) % b->cap;
	b->len -= n;
	b->base += n;
	b->sent = b->sent > n ? b->sent - n : 0;
}

size_t
sttbuf_append(
    struct sttbuf *b, const uint8_t *p, size_t n, size_t *unsent_lost)
{
	size_t dropped = 0, lost = 0, tail;

	if (n > b->cap) {
		/* Only the newest cap bytes can be kept. */
		dropped = b->len + (n - b->cap);
		lost    = (b->len - b->sent) + (n - b->cap);
		b->base += n - b->cap;
		p += n - b->cap;
		n = b->cap;
		drop(b, b->len);
	} else if (b->len + n > b->cap) {
		size_t k = b->len + n - b->cap;
		lost     = k > b->sent ? k - b->sent : 0;
		dropped  = k;
		drop(b, k);
	}
	tail = (b->head + b->len) % b->cap;
	if (tail + n <= b->cap) {
		memcpy(b->data + tail, p, n);
	} else {
		size_t first = b->cap - tail;
		memcpy(b->data + tail, p, first);
		memcpy(b->data, p + first, n - first);
	}
	b->len += n;
	if (unsent_lost)
		*unsent_lost = lost;
	return dropped;
}

size_t
sttbuf_unsent(const struct sttbuf *b)
{
	return b->len - b->sent;
}

size_t
sttbuf_peek(const struct sttbuf *b, uint8_t *dst, size_t max)
{
	size_t n = sttbuf_unsent(b), at;

	if (n > max)
		n = max;
	if (!n)
		return 0;
	at = (b->head + b->sent) % b->cap;
	if (at + n <= b->cap) {
		memcpy(dst, b->data + at, n);
	} else {
		size_t first = b->cap - at;
		memcpy(dst, b->data + at, first);
		memcpy(dst + first, b->data, n - first);
	}
	return n;
}

void
sttbuf_mark_sent(struct sttbuf *b, size_t n)
{
	b->sent += n < sttbuf_unsent(b) ? n : sttbuf_unsent(b);
}

size_t
sttbuf_commit(struct sttbuf *b)
{
	size_t n = b->sent;

	drop(b, n);
	b->sent = 0;
	return n;
}

size_t
sttbuf_rewind(struct sttbuf *b)
{
	size_t n = b->sent;

	b->sent = 0;
	return n;
}
