/*
 * gaps.c - the silences the caller heard, with wall-clock times.
 */
#include "gaps.h"

#include <string.h>

void
gaps_init(struct gaps *g, unsigned min_ms)
{
	memset(g, 0, sizeof(*g));
	g->min_ms = min_ms;
}

static bool
audible(const int16_t *pcm, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pcm[i] > GAPS_SILENT_PEAK || pcm[i] < -GAPS_SILENT_PEAK)
			return true;
	return false;
}

/* Ends the quiet run at end_ms: kept when it was long enough. */
static void
close_run(struct gaps *g, uint64_t end_ms, bool open)
{
	g->quiet = false;
	if (end_ms - g->quiet_ms < g->min_ms)
		return;
	g->total++;
	if (g->n < GAPS_MAX)
		g->list[g->n++] = (struct gap) { g->quiet_ms, end_ms, open };
}

void
gaps_frame(struct gaps *g, const int16_t *pcm, size_t n, uint64_t at_ms,
    unsigned frame_ms)
{
	bool loud = n > 0 && audible(pcm, n);

	g->last_ms = at_ms + frame_ms;
	if (loud) {
		if (g->quiet)
			close_run(g, at_ms, false);
		g->heard = true;
		return;
	}
	/* Before the first audio the agent has not spoken yet: that is
	 * first_audio_ms, not a gap. */
	if (g->heard && !g->quiet) {
		g->quiet    = true;
		g->quiet_ms = at_ms;
	}
}

void
gaps_finish(struct gaps *g)
{
	if (g->quiet)
		close_run(g, g->last_ms, true);
}
