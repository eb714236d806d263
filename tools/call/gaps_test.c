/*
 * gaps_test.c - quiet runs become gaps with the right wall-clock times.
 */
#include "gaps.h"

#include "test.h"

static int16_t loud[160], soft[160];

static void
setup(void)
{
	for (int i = 0; i < 160; i++) {
		loud[i] = (int16_t)(i % 2 ? 8000 : -8000);
		soft[i] = (int16_t)(i % 2 ? 20 : -20); /* under the floor */
	}
}

static int
test_nothing_before_first_audio(void)
{
	struct gaps g;

	setup();
	gaps_init(&g, 100);
	for (int i = 0; i < 50; i++) /* 1 s of underruns first */
		gaps_frame(&g, NULL, 0, 1000 + 20 * i, 20);
	gaps_frame(&g, loud, 160, 2000, 20);
	gaps_finish(&g);
	TEST_EQ(g.total, 0);
	TEST_ASSERT(g.heard);
	return 0;
}

static int
test_underrun_and_silence_runs(void)
{
	struct gaps g;
	uint64_t    t = 5000;

	setup();
	gaps_init(&g, 100);
	gaps_frame(&g, loud, 160, t, 20), t += 20;
	/* 80 ms of underrun: shorter than 100 ms, not a gap. */
	for (int i = 0; i < 4; i++)
		gaps_frame(&g, NULL, 0, t, 20), t += 20;
	gaps_frame(&g, loud, 160, t, 20), t += 20;
	/* 60 ms underrun then 60 ms of near-silence: one 120 ms gap. */
	for (int i = 0; i < 3; i++)
		gaps_frame(&g, NULL, 0, t, 20), t += 20;
	for (int i = 0; i < 3; i++)
		gaps_frame(&g, soft, 160, t, 20), t += 20;
	gaps_frame(&g, loud, 160, t, 20), t += 20;
	gaps_finish(&g);
	TEST_EQ(g.total, 1);
	TEST_EQ(g.n, 1);
	TEST_EQ(g.list[0].start_ms, 5000 + 20 * 6);
	TEST_EQ(g.list[0].end_ms, 5000 + 20 * 12);
	TEST_ASSERT(!g.list[0].open);
	return 0;
}

static int
test_partial_frame_with_audio_is_audible(void)
{
	struct gaps g;

	setup();
	gaps_init(&g, 20);
	gaps_frame(&g, loud, 160, 0, 20);
	gaps_frame(&g, loud, 40, 20, 20); /* a padded tail: heard */
	gaps_frame(&g, loud, 160, 40, 20);
	gaps_finish(&g);
	TEST_EQ(g.total, 0);
	return 0;
}

static int
test_open_at_the_end(void)
{
	struct gaps g;

	setup();
	gaps_init(&g, 100);
	gaps_frame(&g, loud, 160, 0, 20);
	for (int i = 1; i <= 10; i++)
		gaps_frame(&g, NULL, 0, 20 * i, 20);
	gaps_finish(&g);
	TEST_EQ(g.n, 1);
	TEST_ASSERT(g.list[0].open);
	TEST_EQ(g.list[0].start_ms, 20);
	TEST_EQ(g.list[0].end_ms, 220);
	/* A second finish adds nothing. */
	gaps_finish(&g);
	TEST_EQ(g.total, 1);
	return 0;
}

static int
test_list_is_capped_total_is_not(void)
{
	struct gaps g;
	uint64_t    t = 0;

	setup();
	gaps_init(&g, 20);
	for (int k = 0; k < GAPS_MAX + 10; k++) {
		gaps_frame(&g, loud, 160, t, 20), t += 20;
		gaps_frame(&g, NULL, 0, t, 20), t += 20;
	}
	gaps_frame(&g, loud, 160, t, 20);
	gaps_finish(&g);
	TEST_EQ(g.n, GAPS_MAX);
	TEST_EQ(g.total, GAPS_MAX + 10);
	return 0;
}

TEST_MAIN({ "nothing_before_first_audio", test_nothing_before_first_audio },
    { "underrun_and_silence_runs", test_underrun_and_silence_runs },
    { "partial_frame_with_audio_is_audible",
        test_partial_frame_with_audio_is_audible },
    { "open_at_the_end", test_open_at_the_end },
    { "list_is_capped_total_is_not", test_list_is_capped_total_is_not })
