/*
 * playout_test.c - marks, echoes, the fallback, clear and reports, on a
 * clock the test drives.
 */
#include "playout.h"

#include "test.h"

#define MS 1000ull

static int
test_marks_and_echoes(void)
{
	struct playout      p;
	struct playout_echo e;
	char                n1[PLAYOUT_NAME_MAX], n2[PLAYOUT_NAME_MAX];
	bool                pl;
	uint32_t            lag;
	uint64_t            t = 1000 * MS;

	playout_init(&p, 500, 2000);
	TEST_ASSERT(!playout_playing(&p));
	TEST_ASSERT(!playout_mark_due(&p, true)); /* nothing sent */
	TEST_ASSERT(!playout_report(&p, t, &pl, &lag)); /* nothing to say */

	/* 300 ms out, buffer not empty: no mark yet; then 200 more. */
	playout_sent(&p, 100 * MS);
	playout_sent(&p, 100 * MS);
	playout_sent(&p, 100 * MS);
	TEST_ASSERT(playout_playing(&p));
	TEST_ASSERT(playout_report(&p, t, &pl, &lag));
	TEST_ASSERT(pl);
	TEST_EQ(lag, 0); /* no echo measured yet */
	TEST_ASSERT(!playout_report(&p, t, &pl, &lag)); /* no change */
	TEST_ASSERT(!playout_mark_due(&p, false));
	playout_sent(&p, 200 * MS);
	TEST_ASSERT(playout_mark_due(&p, false)); /* 500 ms unmarked */
	playout_mark(&p, t + 500 * MS, n1, sizeof(n1));
	TEST_STREQ(n1, "exo-1");
	TEST_ASSERT(!playout_mark_due(&p, true));
	/* The burst ends with 100 ms more: the empty buffer marks it. */
	playout_sent(&p, 100 * MS);
	TEST_ASSERT(!playout_mark_due(&p, false));
	TEST_ASSERT(playout_mark_due(&p, true));
	playout_mark(&p, t + 600 * MS, n2, sizeof(n2));
	TEST_STREQ(n2, "exo-2");
	TEST_EQ(playout_unheard_ms(&p), 600);

	/* Exotel echoes exo-1 at t+550: 100 ms sent after it is unheard. */
	TEST_EQ(
	    playout_echo(&p, "exo-1", t + 550 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 100);
	TEST_EQ(e.delay_ms, 50);
	TEST_ASSERT(!e.late);
	TEST_ASSERT(playout_playing(&p));
	TEST_EQ(playout_unheard_ms(&p), 100);
	/* Echoes do not come twice; a repeat is stale. */
	TEST_EQ(
	    playout_echo(&p, "exo-1", t + 560 * MS, &e), PLAYOUT_ECHO_STALE);
	/* Within a second of the last report: lag moves are held back. */
	TEST_ASSERT(!playout_report(&p, t + 560 * MS, &pl, &lag));

	/* The last echo: nothing is playing any more; told at once. */
	TEST_EQ(
	    playout_echo(&p, "exo-2", t + 650 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 0);
	TEST_ASSERT(!playout_playing(&p));
	TEST_ASSERT(playout_report(&p, t + 650 * MS, &pl, &lag));
	TEST_ASSERT(!pl);
	TEST_EQ(lag, 0);
	TEST_EQ(p.st.marks, 2);
	TEST_EQ(p.st.echoed, 2);
	TEST_EQ(p.st.stale, 1);

	/* Names we never made. */
	TEST_EQ(playout_echo(&p, "exo-3", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "exo-0", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "exo-01", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "exo-", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "mark_1", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "exo-1x", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "exo-99999999999999999999999", t, &e),
	    PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(playout_echo(&p, "", t, &e), PLAYOUT_ECHO_UNKNOWN);
	TEST_EQ(p.st.unknown, 8);
	return 0;
}

/* An echo of a later mark takes the ones before it as played. */
static int
test_skipped_echo(void)
{
	struct playout      p;
	struct playout_echo e;
	char                n[PLAYOUT_NAME_MAX];

	playout_init(&p, 0, 2000);
	for (int i = 0; i < 5; i++) {
		playout_sent(&p, 100 * MS);
		TEST_ASSERT(playout_mark_due(&p, false)); /* interval 0 */
		playout_mark(&p, (uint64_t)(i + 1) * 100 * MS, n, sizeof(n));
	}
	TEST_STREQ(n, "exo-5");
	TEST_EQ(playout_echo(&p, "exo-3", 300 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 200);
	TEST_EQ(p.n, 2);
	TEST_EQ(playout_echo(&p, "exo-2", 310 * MS, &e), PLAYOUT_ECHO_STALE);
	TEST_EQ(playout_unheard_ms(&p), 200);
	return 0;
}

/* Without echoes, marks expire timeout after their expected end, and
 * playing ends then. A late echo still measures the lag. */
static int
test_fallback(void)
{
	struct playout      p;
	struct playout_echo e;
	char                n[PLAYOUT_NAME_MAX];
	bool                pl;
	uint32_t            lag;

	playout_init(&p, 500, 1000);
	playout_sent(&p, 400 * MS);
	playout_mark(&p, 400 * MS, n, sizeof(n)); /* exo-1, ends at 400 */
	playout_sent(&p, 400 * MS);
	playout_mark(&p, 800 * MS, n, sizeof(n)); /* exo-2, ends at 800 */
	TEST_ASSERT(playout_report(&p, 0, &pl, &lag) && pl);

	TEST_EQ(playout_tick(&p, 1399 * MS), 0);
	TEST_EQ(playout_tick(&p, 1400 * MS), 1);
	TEST_ASSERT(playout_playing(&p));
	TEST_EQ(playout_unheard_ms(&p), 400);
	TEST_EQ(playout_tick(&p, 1500 * MS), 0);
	TEST_EQ(playout_tick(&p, 1800 * MS), 1);
	TEST_ASSERT(!playout_playing(&p));
	TEST_ASSERT(playout_report(&p, 1800 * MS, &pl, &lag));
	TEST_ASSERT(!pl);
	TEST_EQ(p.st.expired, 2);

	/* The echo of exo-2 turns up after all: measured, flagged late. */
	TEST_EQ(
	    playout_echo(&p, "exo-2", 2000 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_ASSERT(e.late);
	TEST_EQ(e.delay_ms, 1200);
	TEST_EQ(p.st.late, 1);
	TEST_EQ(p.n, 0);
	TEST_ASSERT(!playout_playing(&p));
	return 0;
}

static int
test_clear(void)
{
	struct playout      p;
	struct playout_echo e;
	char                n[PLAYOUT_NAME_MAX];
	bool                pl;
	uint32_t            lag;

	playout_init(&p, 200, 2000);
	playout_sent(&p, 300 * MS);
	playout_mark(&p, 300 * MS, n, sizeof(n));
	playout_sent(&p, 100 * MS);
	TEST_ASSERT(playout_report(&p, 0, &pl, &lag) && pl);
	TEST_EQ(playout_clear(&p), 1);
	TEST_ASSERT(!playout_playing(&p));
	TEST_ASSERT(!playout_mark_due(&p, true)); /* nothing owed */
	TEST_ASSERT(playout_report(&p, 10 * MS, &pl, &lag) && !pl);
	/* Exotel may still echo what it had: stale, ignored. */
	TEST_EQ(playout_echo(&p, "exo-1", 20 * MS, &e), PLAYOUT_ECHO_STALE);
	TEST_ASSERT(!playout_playing(&p));
	/* Names go on from where they were: never reused. */
	playout_sent(&p, 100 * MS);
	playout_mark(&p, 200 * MS, n, sizeof(n));
	TEST_STREQ(n, "exo-2");
	return 0;
}

/* Marks beyond the table push out the oldest, which counts as played. */
static int
test_ring_full(void)
{
	struct playout p;
	char           n[PLAYOUT_NAME_MAX];

	playout_init(&p, 0, 60000);
	for (int i = 0; i < PLAYOUT_MAX_MARKS + 3; i++) {
		playout_sent(&p, 20 * MS);
		playout_mark(&p, (uint64_t)i * 20 * MS, n, sizeof(n));
	}
	TEST_EQ(p.n, PLAYOUT_MAX_MARKS);
	TEST_EQ(p.st.dropped, 3);
	TEST_EQ(playout_unheard_ms(&p), PLAYOUT_MAX_MARKS * 20);
	TEST_ASSERT(playout_playing(&p));
	return 0;
}

/* While playing, the lag is re-reported at most once a second and only
 * when it moved by 100 ms or more. */
static int
test_report_lag(void)
{
	struct playout      p;
	struct playout_echo e;
	char                n[PLAYOUT_NAME_MAX];
	bool                pl;
	uint32_t            lag;
	uint64_t            t = 0;

	playout_init(&p, 0, 5000);
	playout_sent(&p, 100 * MS);
	playout_mark(&p, 100 * MS, n, sizeof(n)); /* exo-1 */
	TEST_ASSERT(playout_report(&p, t, &pl, &lag) && pl && lag == 0);
	playout_sent(&p, 300 * MS);
	playout_mark(&p, 400 * MS, n, sizeof(n)); /* exo-2 */
	TEST_EQ(playout_echo(&p, "exo-1", 150 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 300);
	TEST_ASSERT(!playout_report(&p, 150 * MS, &pl, &lag)); /* < 1 s */
	TEST_ASSERT(playout_report(&p, 1000 * MS, &pl, &lag));
	TEST_ASSERT(pl);
	TEST_EQ(lag, 300);
	/* Small moves are not news. */
	playout_sent(&p, 50 * MS);
	playout_mark(&p, 450 * MS, n, sizeof(n)); /* exo-3 */
	TEST_EQ(
	    playout_echo(&p, "exo-2", 2100 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 50);
	TEST_ASSERT(playout_report(&p, 2100 * MS, &pl, &lag) && lag == 50);
	playout_sent(&p, 20 * MS);
	playout_mark(&p, 470 * MS, n, sizeof(n)); /* exo-4 */
	TEST_EQ(
	    playout_echo(&p, "exo-3", 3200 * MS, &e), PLAYOUT_ECHO_MATCHED);
	TEST_EQ(e.lag_ms, 20);
	TEST_ASSERT(!playout_report(&p, 3200 * MS, &pl, &lag));
	return 0;
}

TEST_MAIN(TEST(test_marks_and_echoes), TEST(test_skipped_echo),
    TEST(test_fallback), TEST(test_clear), TEST(test_ring_full),
    TEST(test_report_lag))
