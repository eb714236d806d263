/*
 * gaps.h - the silences the caller heard, with wall-clock times.
 *
 * The simulated playout hands over each 20 ms frame it plays with the
 * wall-clock time it plays at. A frame is quiet when nothing was queued
 * for it (an underrun) or its audio peaks below a silence floor. A run
 * of quiet frames at least min_ms long, after the first audible frame,
 * is a gap: the end-to-end restart tests compare its end with the time
 * a component came back. Pure logic; the caller passes the times.
 */
#ifndef EXO_CALL_GAPS_H
#define EXO_CALL_GAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GAPS_MAX 64 /* gaps kept per call; later ones only counted */
#define GAPS_SILENT_PEAK 33 /* |sample| at or below: silent (-60 dBFS) */

struct gap {
	uint64_t start_ms, end_ms; /* wall clock (epoch ms), end exclusive */
	bool     open; /* still quiet when the call ended */
};

struct gaps {
	unsigned   min_ms;
	bool       heard; /* an audible frame was played */
	bool       quiet; /* in a quiet run */
	uint64_t   quiet_ms; /* when the quiet run began */
	uint64_t   last_ms; /* end of the last frame played */
	struct gap list[GAPS_MAX];
	size_t     n; /* in list */
	size_t     total; /* gaps seen, beyond GAPS_MAX included */
};

/* Starts an empty record: runs of min_ms or longer are gaps. */
void gaps_init(struct gaps *g, unsigned min_ms);

/* One played frame of n samples (n = 0: an underrun) starting at at_ms
 * and lasting frame_ms. */
void gaps_frame(struct gaps *g, const int16_t *pcm, size_t n, uint64_t at_ms,
    unsigned frame_ms);

/* The call's audio ended: a quiet run still going counts if long
 * enough, marked open, ending at the last frame's end. */
void gaps_finish(struct gaps *g);

#endif
