/*
 * playout.h - what the caller has actually heard, from Exotel's mark
 * echoes (research/exotel.md §1.6, §3, §9.9).
 *
 * The server reports each media message it queues for Exotel
 * (playout_sent) and asks whether a mark should follow it
 * (playout_mark_due): after mark_interval of audio, and whenever the
 * playback buffer has run empty, so the end of every burst of agent audio
 * is marked while Exotel still has it queued. A queued mark is recorded
 * with playout_mark, which names it "exo-<n>" (n from 1 per call, never
 * reused) and notes the audio position it stands for and when the pacer
 * expects that audio to have played.
 *
 * Exotel echoes a mark when the audio before it has played: playout_echo
 * matches the name, moves the "heard" position, and measures the lag:
 * audio sent to Exotel but not yet heard, at the echo. An echo never
 * comes for some marks (or at all, from a peer that ignores marks), so a
 * mark whose echo is timeout late against the pacer's expectation is
 * taken as played (playout_tick): the duration-based fallback.
 *
 * Agent audio is "playing" while audio has been sent that is not yet
 * known to be heard. playout_report says when the owner should tell
 * egress (a playout frame): when playing changes, and while playing at
 * most once a second when the measured lag moved by 100 ms or more. The
 * lag reported is the one measured at the call's latest echo (0 before
 * the first, and whenever nothing is playing).
 *
 * Pure logic; times are µs of one monotonic clock, passed in. Embedded in
 * the call (no allocation); not thread-safe.
 */
#ifndef EXO_INGRESS_PLAYOUT_H
#define EXO_INGRESS_PLAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAYOUT_MAX_MARKS 32 /* pending marks kept; the oldest goes */
#define PLAYOUT_NAME_MAX 32 /* "exo-" + 20 digits + NUL fits */

struct playout_mark {
	uint64_t id;
	uint64_t pos_us; /* audio sent up to this mark */
	uint64_t end_us; /* when the pacer expects it played (mono) */
	bool     expired; /* taken as played without an echo */
};

struct playout_stats {
	uint64_t marks; /* marks recorded */
	uint64_t echoed; /* echoes matched to a pending mark */
	uint64_t late; /* ...of which the mark had already expired */
	uint64_t stale; /* our names no longer pending (cleared, passed) */
	uint64_t unknown; /* names we never made */
	uint64_t expired; /* marks taken as played by the fallback */
	uint64_t dropped; /* pending marks pushed out unexpired */
};

struct playout {
	uint64_t interval_us, timeout_us;
	uint64_t sent_us; /* audio sent to Exotel, total */
	uint64_t marked_us; /* sent_us at the last mark */
	uint64_t heard_us; /* audio known (or taken) to be heard */
	uint64_t next_id; /* the last id issued */

	struct playout_mark ring[PLAYOUT_MAX_MARKS];
	size_t              head, n;

	bool     reported; /* a report was ever made */
	bool     rep_playing;
	uint32_t rep_lag_ms;
	uint64_t rep_us;

	bool     have_lag;
	uint32_t lag_ms; /* at the last matched echo */

	struct playout_stats st;
};

/* The outcome of an echo. */
enum playout_echo_kind {
	PLAYOUT_ECHO_MATCHED = 0,
	PLAYOUT_ECHO_STALE, /* one of ours, no longer pending */
	PLAYOUT_ECHO_UNKNOWN, /* not a name we made */
};

struct playout_echo {
	uint32_t lag_ms; /* sent but not heard, at the echo */
	int64_t  delay_ms; /* echo time - expected end (may be < 0) */
	bool     late; /* the mark had expired already */
};

/* interval_ms 0: a mark after every media message; timeout_ms 0 = 2000. */
void playout_init(
    struct playout *p, unsigned interval_ms, unsigned timeout_ms);

/* A media message carrying audio_us of audio was queued for Exotel. */
void playout_sent(struct playout *p, uint64_t audio_us);

/* Whether a mark should be queued now: audio went out since the last
 * mark, and either buffer_empty (the playback buffer has no whole frame
 * left) or mark_interval of it has gone out. */
bool playout_mark_due(const struct playout *p, bool buffer_empty);

/* Records a mark queued now, after everything sent so far; end_us is when
 * the pacer expects that audio to have played. Writes its name into name
 * (cap >= PLAYOUT_NAME_MAX). */
void playout_mark(struct playout *p, uint64_t end_us, char *name, size_t cap);

/* Exotel echoed name at now_us. For MATCHED, *e is filled and the heard
 * position moves (marks before it are taken as played too). */
enum playout_echo_kind playout_echo(struct playout *p, const char *name,
    uint64_t now_us, struct playout_echo *e);

/* Expires marks whose echo is more than timeout late. Returns how many
 * expired now. */
size_t playout_tick(struct playout *p, uint64_t now_us);

/* Forgets all pending marks and takes everything sent as done (after a
 * clear). Returns the marks forgotten. */
size_t playout_clear(struct playout *p);

/* Agent audio is playing at the caller: sent, not yet known heard. */
bool playout_playing(const struct playout *p);
/* Audio sent and not yet known heard, in ms. */
uint32_t playout_unheard_ms(const struct playout *p);

/* Whether egress should be told now; if so fills *playing and *lag_ms
 * and takes them as told. */
bool playout_report(
    struct playout *p, uint64_t now_us, bool *playing, uint32_t *lag_ms);

#endif
