/*
 * model_test.c - the stand-in's VAD turns bursts of signal into growing
 * partials and one commit per burst, in audio time.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

struct got {
	int    partials, quirks, commits, requested;
	char   last_partial[256], commits_text[1024];
	size_t last_nwords;
};

static void
on_ev(void *arg, const struct fsev *ev)
{
	struct got *g = arg;

	if (ev->kind == FSEV_PARTIAL) {
		g->partials++;
		g->quirks += ev->quirk;
		snprintf(
		    g->last_partial, sizeof(g->last_partial), "%s", ev->text);
		return;
	}
	g->commits++;
	g->requested += ev->requested;
	g->last_nwords = ev->nwords;
	strcat(g->commits_text, ev->text);
	strcat(g->commits_text, "|");
}

/* ms of a 300 Hz tone at -6 dBFS, or silence. */
static void
feed(struct fsmodel *m, unsigned rate, unsigned ms, bool tone, struct got *g)
{
	size_t   n = (size_t)rate * ms / 1000;
	int16_t *p = calloc(n, sizeof(*p));

	for (size_t i = 0; tone && i < n; i++)
		p[i] = (int16_t)(16000 * sin(2 * M_PI * 300 * i / rate));
	/* In odd pieces: framing must not matter. */
	for (size_t at = 0; at < n;) {
		size_t k = n - at < 77 ? n - at : 77;
		fsmodel_feed(m, p + at, k, on_ev, g);
		at += k;
	}
	free(p);
}

static int
test_vad_segments(void)
{
	struct fsmodel      m;
	struct fsmodel_opts o = { .rate = 8000,
		.vad                    = true,
		.vad_silence_s          = 0.5,
		.min_speech_ms          = 100,
		.text                   = "one two three four five six" };
	struct got          g = { 0 };

	TEST_EQ(fsmodel_init(&m, &o), 0);
	feed(&m, 8000, 500, false, &g);
	TEST_EQ(g.partials + g.commits, 0);
	/* 1 s of speech: a word at 100 ms, then one per 250 ms. */
	feed(&m, 8000, 1000, true, &g);
	TEST_EQ(g.commits, 0);
	TEST_EQ(g.partials, 4);
	TEST_STREQ(g.last_partial, "one two three four");
	/* 0.4 s of silence: not yet; 0.2 s more: the commit. */
	feed(&m, 8000, 400, false, &g);
	TEST_EQ(g.commits, 0);
	feed(&m, 8000, 200, false, &g);
	TEST_EQ(g.commits, 1);
	TEST_STREQ(g.commits_text, "one two three four|");
	TEST_EQ(g.last_nwords, 4);
	/* The next segment continues the canned words. */
	feed(&m, 8000, 300, true, &g);
	feed(&m, 8000, 600, false, &g);
	TEST_STREQ(g.commits_text, "one two three four|five|");
	TEST_EQ(g.quirks, 0);
	fsmodel_fini(&m);
	return 0;
}

static int
test_commit_request_and_quirks(void)
{
	struct fsmodel      m;
	struct fsmodel_opts o = { .rate = 16000,
		.vad                    = false,
		.vad_silence_s          = 0.5,
		.min_speech_ms          = 100,
		.text                   = "alpha beta",
		.quirks                 = true };
	struct got          g = { 0 };

	TEST_EQ(fsmodel_init(&m, &o), 0);
	/* A commit request without speech: an empty commit. */
	fsmodel_commit(&m, on_ev, &g);
	TEST_EQ(g.commits, 1);
	TEST_STREQ(g.commits_text, "|");
	/* Manual strategy: silence does not commit; the stale partial is
	 * repeated after every second, even in silence. */
	feed(&m, 16000, 150, true, &g);
	TEST_EQ(g.partials, 1);
	feed(&m, 16000, 2100, false, &g);
	TEST_EQ(g.commits, 1);
	TEST_EQ(g.partials, 3);
	TEST_EQ(g.quirks, 2);
	fsmodel_commit(&m, on_ev, &g);
	TEST_EQ(g.commits, 2);
	TEST_EQ(g.requested, 2);
	TEST_STREQ(g.commits_text, "|alpha|");
	/* The echo of the committed text. */
	TEST_EQ(g.quirks, 3);
	TEST_STREQ(g.last_partial, "alpha");
	fsmodel_fini(&m);
	return 0;
}

TEST_MAIN(TEST(test_vad_segments), TEST(test_commit_request_and_quirks))
