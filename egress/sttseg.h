/*
 * sttseg.h - which Scribe transcripts become events (research/
 * elevenlabs.md §3.2, §3.4): partials deduplicated, exactly one final per
 * commit.
 *
 * Partials: an empty one, one equal to the last partial sent, or one equal
 * to the last committed text (the server's echo after a commit) is
 * dropped. Commits: without timestamps (the default) committed_transcript
 * is the final and *_with_timestamps is ignored. With timestamps (or
 * language detection) the server sends both, in either order: the timed
 * one is preferred, the plain one is held for fallback_ms and used if its
 * twin does not come, and whichever twin comes second is swallowed.
 *
 * Pure state: no clock of its own (times are passed in), no allocation.
 */
#ifndef EXO_STTSEG_H
#define EXO_STTSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STTSEG_TEXT_MAX 4096 /* longer texts are cut (UTF-8 safe) */

enum sttseg_half {
	STTSEG_IDLE = 0,
	STTSEG_PLAIN_HELD, /* plain commit waiting for its timed twin */
	STTSEG_PLAIN_SENT, /* plain used after the wait: swallow a timed */
	STTSEG_TIMED_SENT, /* timed used: swallow the plain twin */
};

struct sttseg {
	bool             timed; /* timestamps requested */
	uint64_t         fallback_us; /* 0 = 300 ms */
	uint64_t         twin_us; /* how long a twin is waited for; 2 s */
	enum sttseg_half half;
	uint64_t         half_us; /* when half was entered */
	char             last_partial[STTSEG_TEXT_MAX];
	char             last_commit[STTSEG_TEXT_MAX];
	char             held[STTSEG_TEXT_MAX];
	double           held_t0, held_t1; /* word times of the held one */
	char             emit[STTSEG_TEXT_MAX]; /* sttseg_out.text */
};

/* What a commit message means. */
struct sttseg_out {
	bool boundary; /* a new commit: the audio sent so far is done */
	bool final; /* emit text as the final transcript now */
	bool empty; /* the new commit (boundary) has no text */
	bool ignored; /* a twin swallowed, or *_with_timestamps unused */
	const char *text; /* valid until the next call on the sttseg */
	double      t0, t1; /* word times (s) of the final, -1 unknown */
};

void sttseg_init(struct sttseg *g, bool timed, unsigned fallback_ms);

/* A partial_transcript: returns true when it is to be emitted (and
 * remembers it), false when dropped; *why names the reason then
 * ("empty", "repeat", "echo"). */
bool sttseg_partial(struct sttseg *g, const char *text, const char **why);

/* A committed_transcript (timed false) or *_with_timestamps (timed true)
 * at now_us, with the word times parsed from it (-1: none). */
void sttseg_commit(struct sttseg *g, bool timed, const char *text, double t0,
    double t1, uint64_t now_us, struct sttseg_out *out);

/* Call regularly: emits a held plain commit once fallback has passed.
 * Returns true when out holds a final. */
bool sttseg_poll(struct sttseg *g, uint64_t now_us, struct sttseg_out *out);

/* Forget a held commit (emitting it through out if there is one): at the
 * end of a call. Returns true when out holds a final. */
bool sttseg_flush(struct sttseg *g, struct sttseg_out *out);

/* Copies src into dst (cap bytes) cut at a UTF-8 boundary; returns dst. */
char *sttseg_copy(char *dst, size_t cap, const char *src);

#endif
