/*
 * playback.h - one call's playback buffer and pacer (pure logic, the
 * caller passes the time).
 *
 * PCM16LE at the call's rate goes in with playback_push. The shared tick
 * asks playback_next whether a `media` message is due and gets its PCM:
 * always whole 20 ms frames, msg_ms per message (never over max_bytes),
 * paced at real time. The pacer keeps a "played-until" clock, the moment
 * the caller will have heard everything sent so far, and sends while
 * played_until - now < lead, so it is never more than lead + one message
 * ahead of real time. When the clock has run out (nothing was sent in
 * time) it restarts at now: late audio is never bunched into a burst.
 * From idle, playback starts once a lead's worth of audio is buffered (or
 * audio has waited a lead's time): a real-time source never gets ahead on
 * its own, so this is the cushion that absorbs jitter, and the latency
 * the lead costs. Less than a message is sent only when the caller would
 * otherwise hear a gap (played_until within urgent_ms), as whole frames,
 * or at the tail of an utterance, padded with zeros to a whole frame.
 *
 * Not thread-safe; owned by the call. playback_free frees everything.
 */
#ifndef EXO_INGRESS_PLAYBACK_H
#define EXO_INGRESS_PLAYBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAYBACK_MAX_MSG_BYTES 100000 /* Exotel's limit per message */

struct playback_opts {
	int      rate; /* 8000, 16000 or 24000 */
	unsigned msg_ms; /* 20..1000, rounded down to 20 ms; 0 = 100 */
	unsigned lead_ms; /* how far ahead of real time; 0 = 200 */
	unsigned urgent_ms; /* send a short message when played_until is
	                     * this close; 0 = 60 (three ticks) */
	unsigned buffer_ms; /* most audio held, oldest dropped; 0 = 10000 */
	size_t   max_bytes; /* cap per message; 0 = 100000 */
};

struct playback_stats {
	uint64_t msgs; /* messages returned by playback_next */
	uint64_t bytes; /* PCM bytes in them, padding included */
	uint64_t padded; /* messages with zero padding at the end */
	uint64_t underruns; /* clock ran out, then audio came late */
	uint64_t dropped_bytes; /* oldest audio dropped: buffer full */
	uint64_t cleared_bytes; /* dropped by playback_clear */
};

struct playback;

/* Returns 0, EINVAL for a bad rate, or ENOMEM. */
int  playback_alloc(struct playback **out, const struct playback_opts *o);
void playback_free(struct playback *pb);

/* Appends n bytes of PCM (the caller keeps pcm). n must be even
 * (EINVAL otherwise, nothing kept). When the buffer is full the oldest
 * whole frames are dropped and counted. Returns 0 or EINVAL. */
int playback_push(struct playback *pb, const uint8_t *pcm, size_t n);

/* If a message is due at now_us, copies its PCM (a whole number of 20 ms
 * frames) into out and returns its size; returns 0 when nothing is due.
 * cap must hold playback_msg_bytes(pb), else nothing is ever due. Call
 * it again until it returns 0 to take every message due. */
size_t playback_next(
    struct playback *pb, uint64_t now_us, uint8_t *out, size_t cap);

/* Drops all unplayed audio here and forgets the clock (what was sent is
 * the peer's to clear). Returns the bytes dropped. */
size_t playback_clear(struct playback *pb);

/* Drain mode (the call is ending): from now on a remainder shorter than a
 * message is sent as soon as the lead allows instead of waiting. */
void playback_drain(struct playback *pb);

/* Bytes of one full message and of one 20 ms frame at this rate. */
size_t playback_msg_bytes(const struct playback *pb);
size_t playback_frame_bytes(const struct playback *pb);
/* Bytes buffered and not yet returned. */
size_t playback_buffered(const struct playback *pb);
/* How far the played-until clock is ahead of now (0 when idle). */
uint64_t playback_ahead_us(const struct playback *pb, uint64_t now_us);
const struct playback_stats *playback_stats(const struct playback *pb);
/* Bytes the ring holds now: it grows, doubling, only as far as the audio
 * waiting needs (at most buffer_ms). */
size_t playback_ring_bytes(const struct playback *pb);

#endif
