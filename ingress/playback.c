/*
 * playback.c - per-call playback buffer and real-time pacer. See
 * playback.h for the rules.
 */
#include "playback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct playback {
	int      rate;
	size_t   frame; /* bytes per 20 ms */
	size_t   msg; /* bytes per full message */
	uint64_t lead_us;
	uint64_t urgent_us;
	size_t   start; /* idle: bytes that start playback (a lead's worth) */

	/* A ring that grows (doubling, up to cap) only when the audio
	 * waiting needs it: a fixed 10 s ring would be walked through and
	 * kept resident whole (160 kB per 8 kHz call) although a paced call
	 * holds a few hundred ms. */
	uint8_t *ring;
	size_t   size, cap, head, len;

	uint64_t played_until; /* µs, same clock as now_us; 0 = never */
	uint64_t since; /* idle: when audio was first seen waiting */
	bool     since_valid;
	bool     was_playing; /* sent something since the clock last ran out */
	bool     draining;

	struct playback_stats st;
};

int
playback_alloc(struct playback **out, const struct playback_opts *o)
{
	struct playback *pb;
	unsigned         msg_ms, buf_ms;
	size_t           max_bytes;

	*out = NULL;
	if (o->rate != 8000 && o->rate != 16000 && o->rate != 24000)
		return EINVAL;
	if ((pb = calloc(1, sizeof(*pb))) == NULL)
		return ENOMEM;
	msg_ms = o->msg_ms ? o->msg_ms : 100;
	if (msg_ms < 20)
		msg_ms = 20;
	if (msg_ms > 1000)
		msg_ms = 1000;
	msg_ms -= msg_ms % 20;
	max_bytes = o->max_bytes ? o->max_bytes : PLAYBACK_MAX_MSG_BYTES;
	if (max_bytes > PLAYBACK_MAX_MSG_BYTES)
		max_bytes = PLAYBACK_MAX_MSG_BYTES;

	pb->rate  = o->rate;
	pb->frame = (size_t)o->rate / 50 * 2;
	pb->msg   = (size_t)msg_ms / 20 * pb->frame;
	if (pb->msg > max_bytes)
		pb->msg = max_bytes / pb->frame * pb->frame;
	if (pb->msg < pb->frame)
		pb->msg = pb->frame; /* a frame is the floor (≤ 960 B) */
	pb->lead_us   = (uint64_t)(o->lead_ms ? o->lead_ms : 200) * 1000;
	pb->urgent_us = (uint64_t)(o->urgent_ms ? o->urgent_ms : 60) * 1000;
	pb->start
	    = (pb->lead_us / 20000 + (pb->lead_us % 20000 != 0)) * pb->frame;

	buf_ms  = o->buffer_ms ? o->buffer_ms : 10000;
	pb->cap = (size_t)buf_ms / 20 * pb->frame;
	if (pb->cap < 2 * pb->msg)
		pb->cap = 2 * pb->msg;
	pb->size = 2 * pb->msg + pb->start;
	if (pb->size > pb->cap)
		pb->size = pb->cap;
	if ((pb->ring = malloc(pb->size)) == NULL) {
		free(pb);
		return ENOMEM;
	}
	*out = pb;
	return 0;
}

void
playback_free(struct playback *pb)
{
	if (pb == NULL)
		return;
	free(pb->ring);
	free(pb);
}

static void
ring_drop(struct playback *pb, size_t n)
{
	pb->head = (pb->head + n) % pb->size;
	pb->len -= n;
	if (pb->len == 0)
		pb->head = 0;
}

static void
ring_read(struct playback *pb, uint8_t *out, size_t n)
{
	size_t first = pb->size - pb->head;

	if (first > n)
		first = n;
	memcpy(out, pb->ring + pb->head, first);
	memcpy(out + first, pb->ring, n - first);
	ring_drop(pb, n);
}

/* Makes room for need bytes if cap allows; the waiting audio moves to the
 * start of the new ring. Returns 0 or ENOMEM (the ring is unchanged). */
static int
ring_grow(struct playback *pb, size_t need)
{
	size_t   size = pb->size, first;
	uint8_t *r;

	while (size < need && size < pb->cap)
		size *= 2;
	if (size > pb->cap)
		size = pb->cap;
	if (size == pb->size)
		return 0;
	if ((r = malloc(size)) == NULL)
		return ENOMEM;
	first = pb->size - pb->head;
	if (first > pb->len)
		first = pb->len;
	memcpy(r, pb->ring + pb->head, first);
	memcpy(r + first, pb->ring, pb->len - first);
	free(pb->ring);
	pb->ring = r;
	pb->size = size;
	pb->head = 0;
	return 0;
}

int
playback_push(struct playback *pb, const uint8_t *pcm, size_t n)
{
	size_t tail, first;

	if (n % 2 != 0)
		return EINVAL;
	if (pb->len + n > pb->size)
		(void)ring_grow(pb, pb->len + n); /* else the oldest goes */
	if (n > pb->size) {
		/* Only the newest size bytes can be kept. */
		pb->st.dropped_bytes += pb->len + (n - pb->size);
		pb->len  = 0;
		pb->head = 0;
		pcm += n - pb->size;
		n = pb->size;
	}
	if (pb->len + n > pb->size) {
		/* Drop the oldest whole frames, keeping samples aligned. */
		size_t need = pb->len + n - pb->size;
		size_t drop = (need + pb->frame - 1) / pb->frame * pb->frame;
		if (drop > pb->len)
			drop = pb->len;
		ring_drop(pb, drop);
		pb->st.dropped_bytes += drop;
	}
	tail  = (pb->head + pb->len) % pb->size;
	first = pb->size - tail;
	if (first > n)
		first = n;
	memcpy(pb->ring + tail, pcm, first);
	memcpy(pb->ring, pcm + first, n - first);
	pb->len += n;
	return 0;
}

static uint64_t
bytes_us(const struct playback *pb, size_t n)
{
	return (uint64_t)n * 1000000u / ((uint64_t)pb->rate * 2);
}

size_t
playback_next(struct playback *pb, uint64_t now_us, uint8_t *out, size_t cap)
{
	bool     playing, tail = false;
	uint64_t ahead;
	size_t   take, n;

	if (pb->len == 0) {
		pb->since_valid = false;
		return 0;
	}
	if (cap < pb->msg)
		return 0;
	playing = pb->played_until > now_us;
	if (!playing) {
		/* The clock ran out: restart it at now, never catch up. */
		if (pb->was_playing) {
			pb->st.underruns++;
			pb->was_playing = false;
		}
		pb->played_until = now_us;
		if (!pb->since_valid) {
			pb->since       = now_us;
			pb->since_valid = true;
		}
		/* Start once a lead's worth of audio is here: a real-time
		 * source (PersonaPlex) never gets ahead by itself, so this
		 * is the cushion against jitter for the rest of the stream.
		 * A short utterance starts after waiting a lead's time. */
		tail = now_us - pb->since >= pb->lead_us;
		if (pb->len < pb->start && !tail && !pb->draining)
			return 0;
	}
	ahead = pb->played_until - now_us;
	if (ahead >= pb->lead_us)
		return 0;

	if (pb->len >= pb->msg) {
		take = pb->msg;
	} else {
		/* Less than a message: wait for more unless the caller would
		 * hear a gap (played_until about to pass), or this is the
		 * tail of an utterance or of the call. */
		if (!pb->draining && !tail && ahead > pb->urgent_us)
			return 0;
		/* Mid-stream, send the whole frames and keep the remainder
		 * for the next chunk, so padding never lands between two
		 * pieces of a stream. A tail goes all at once, padded. */
		if (!pb->draining && !tail && pb->len >= pb->frame)
			take = pb->len / pb->frame * pb->frame;
		else
			take = pb->len;
	}
	ring_read(pb, out, take);
	n = (take + pb->frame - 1) / pb->frame * pb->frame;
	if (n > take) {
		memset(out + take, 0, n - take);
		pb->st.padded++;
	}
	pb->played_until += bytes_us(pb, n);
	pb->was_playing = true;
	pb->since_valid = false;
	pb->st.msgs++;
	pb->st.bytes += n;
	return n;
}

size_t
playback_clear(struct playback *pb)
{
	size_t n = pb->len;

	pb->st.cleared_bytes += n;
	pb->len          = 0;
	pb->head         = 0;
	pb->played_until = 0;
	pb->since_valid  = false;
	pb->was_playing  = false;
	return n;
}

void
playback_drain(struct playback *pb)
{
	pb->draining = true;
}

size_t
playback_msg_bytes(const struct playback *pb)
{
	return pb->msg;
}

size_t
playback_frame_bytes(const struct playback *pb)
{
	return pb->frame;
}

size_t
playback_buffered(const struct playback *pb)
{
	return pb->len;
}

uint64_t
playback_ahead_us(const struct playback *pb, uint64_t now_us)
{
	return pb->played_until > now_us ? pb->played_until - now_us : 0;
}

const struct playback_stats *
playback_stats(const struct playback *pb)
{
	return &pb->st;
}

size_t
playback_ring_bytes(const struct playback *pb)
{
	return pb->size;
}
