/*
 * sttbuf.h - the audio a Scribe session may have to send again: a byte
 * ring holding what was received since the last commit (research/
 * elevenlabs.md §5.1, §8.5), split into sent and not yet sent.
 *
 * A commit forgets what was sent before it; a new connection rewinds, so
 * everything still held goes again. The ring is bounded: past its
 * capacity the oldest audio is dropped. Positions are bytes on the call's
 * audio timeline (from its first byte), for transcript offsets.
 */
#ifndef EXO_STTBUF_H
#define EXO_STTBUF_H

#include <stddef.h>
#include <stdint.h>

struct sttbuf {
	uint8_t *data;
	size_t   cap, head, len; /* ring: len bytes held from head */
	size_t   sent; /* of those, sent on the current connection */
	uint64_t base; /* timeline position of the first byte held */
};

/* Allocates cap bytes. Returns 0 or ENOMEM; sttbuf_fini frees. */
int  sttbuf_init(struct sttbuf *b, size_t cap);
void sttbuf_fini(struct sttbuf *b);

/* Appends n bytes, dropping the oldest to stay within cap. Returns the
 * bytes dropped; *unsent_lost (may be NULL) gets how many of those had
 * never been sent. */
size_t sttbuf_append(
    struct sttbuf *b, const uint8_t *p, size_t n, size_t *unsent_lost);

/* Bytes held but not sent yet. */
size_t sttbuf_unsent(const struct sttbuf *b);
/* Copies up to max of the next unsent bytes into dst; returns how many. */
size_t sttbuf_peek(const struct sttbuf *b, uint8_t *dst, size_t max);
/* Marks n more bytes (≤ unsent) as sent. */
void sttbuf_mark_sent(struct sttbuf *b, size_t n);
/* A commit: forgets the sent bytes; returns how many. */
size_t sttbuf_commit(struct sttbuf *b);
/* A new connection: everything held is unsent again; returns how many. */
size_t sttbuf_rewind(struct sttbuf *b);

/* Timeline positions: first byte held, end of what was sent, end. */
static inline uint64_t
sttbuf_start(const struct sttbuf *b)
{
	return b->base;
}
static inline uint64_t
sttbuf_sent_end(const struct sttbuf *b)
{
	return b->base + b->sent;
}
static inline uint64_t
sttbuf_end(const struct sttbuf *b)
{
	return b->base + b->len;
}

#endif
