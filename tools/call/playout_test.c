/*
 * playout_test.c - the simulated Exotel playout: order, lead, marks, clear.
 */
#include "playout.h"
#include "test.h"

#include <errno.h>

#define F 160 /* 20 ms at 8 kHz */

static void
fill(int16_t *p, size_t n, int16_t v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = v;
}

static int
test_order_and_lead(void)
{
	struct playout *p;
	int16_t         in[3 * F], out[F];

	TEST_EQ(playout_alloc(&p, F, PLAYOUT_CLEAR_DROP_MARKS), 0);
	fill(in, F, 1);
	fill(in + F, F, 2);
	fill(in + 2 * F, F, 3);
	TEST_EQ(playout_push(p, in, 3 * F), 0);
	TEST_EQ(playout_queued(p), 3 * F);
	for (int16_t v = 1; v <= 3; v++) {
		TEST_EQ(playout_tick(p, out), F);
		TEST_EQ(out[0], v);
		TEST_EQ(out[F - 1], v);
	}
	TEST_EQ(playout_queued(p), 0);
	/* Nothing queued: a frame of silence, reported as an underrun. */
	fill(out, F, 9);
	TEST_EQ(playout_tick(p, out), 0);
	TEST_EQ(out[0], 0);
	TEST_EQ(out[F - 1], 0);
	/* Half a frame: played, padded with zeros. */
	TEST_EQ(playout_push(p, in, F / 2), 0);
	TEST_EQ(playout_tick(p, out), F / 2);
	TEST_EQ(out[F / 2 - 1], 1);
	TEST_EQ(out[F / 2], 0);
	playout_free(p);
	return 0;
}

static int
test_many_pushes(void)
{
	/* Interleaved pushes and plays keep order across buffer growth and
	 * compaction. */
	struct playout *p;
	int16_t         in[7 * F], out[F];
	int16_t         next_in = 0, next_out = 0;

	TEST_EQ(playout_alloc(&p, F, PLAYOUT_CLEAR_DROP_MARKS), 0);
	for (int round = 0; round < 500; round++) {
		size_t n = (size_t)(round % 7 + 1) * F / 2;
		for (size_t i = 0; i < n; i++)
			in[i] = next_in++;
		TEST_EQ(playout_push(p, in, n), 0);
		int plays = round % 3 + 1;
		for (int k = 0; k < plays; k++) {
			size_t got = playout_tick(p, out);
			for (size_t i = 0; i < got; i++)
				if (out[i] != next_out++)
					TEST_FAIL_(
					    "round %d sample %zu", round, i);
		}
	}
	playout_free(p);
	return 0;
}

static int
test_marks(void)
{
	struct playout *p;
	int16_t         in[2 * F] = { 0 }, out[F];
	char           *m;

	TEST_EQ(playout_alloc(&p, F, PLAYOUT_CLEAR_DROP_MARKS), 0);
	/* A mark with nothing queued is due at once. */
	TEST_EQ(playout_mark(p, "empty"), 0);
	m = playout_due_mark(p);
	TEST_STREQ(m, "empty");
	free(m);
	TEST_EQ(playout_push(p, in, 2 * F), 0);
	TEST_EQ(playout_mark(p, "a"), 0);
	TEST_EQ(playout_push(p, in, F), 0);
	TEST_EQ(playout_mark(p, "b"), 0);
	TEST_EQ(playout_mark(p, "c"), 0);
	TEST_EQ(playout_pending_marks(p), 3);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	playout_tick(p, out);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	playout_tick(p, out); /* the audio before "a" has played */
	m = playout_due_mark(p);
	TEST_STREQ(m, "a");
	free(m);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	playout_tick(p, out);
	m = playout_due_mark(p);
	TEST_STREQ(m, "b");
	free(m);
	m = playout_due_mark(p);
	TEST_STREQ(m, "c");
	free(m);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	TEST_EQ(playout_pending_marks(p), 0);
	playout_free(p);
	return 0;
}

static int
test_clear(void)
{
	struct playout *p;
	int16_t         in[5 * F], out[F];
	char           *m;

	fill(in, 5 * F, 5);
	TEST_EQ(playout_alloc(&p, F, PLAYOUT_CLEAR_DROP_MARKS), 0);
	TEST_EQ(playout_push(p, in, 5 * F), 0);
	TEST_EQ(playout_mark(p, "x"), 0);
	playout_tick(p, out);
	TEST_EQ(playout_clear(p), 4 * F);
	TEST_EQ(playout_queued(p), 0);
	TEST_ASSERT(playout_due_mark(p) == NULL); /* dropped */
	TEST_EQ(playout_tick(p, out), 0);
	/* Audio after a clear plays normally, marks work again. */
	fill(in, F, 7);
	TEST_EQ(playout_push(p, in, F), 0);
	TEST_EQ(playout_mark(p, "y"), 0);
	TEST_EQ(playout_tick(p, out), F);
	TEST_EQ(out[0], 7);
	m = playout_due_mark(p);
	TEST_STREQ(m, "y");
	free(m);
	playout_free(p);

	/* The other policy: pending marks are echoed at once. */
	TEST_EQ(playout_alloc(&p, F, PLAYOUT_CLEAR_ECHO_MARKS), 0);
	TEST_EQ(playout_push(p, in, F), 0);
	TEST_EQ(playout_mark(p, "p"), 0);
	TEST_EQ(playout_push(p, in, F), 0);
	TEST_EQ(playout_mark(p, "q"), 0);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	TEST_EQ(playout_clear(p), 2 * F);
	m = playout_due_mark(p);
	TEST_STREQ(m, "p");
	free(m);
	m = playout_due_mark(p);
	TEST_STREQ(m, "q");
	free(m);
	TEST_ASSERT(playout_due_mark(p) == NULL);
	/* Marks left pending at free are freed (valgrind/ASan clean). */
	TEST_EQ(playout_push(p, in, F), 0);
	TEST_EQ(playout_mark(p, "left"), 0);
	playout_free(p);
	TEST_EQ(playout_alloc(&p, 0, PLAYOUT_CLEAR_DROP_MARKS), EINVAL);
	return 0;
}

TEST_MAIN(TEST(test_order_and_lead), TEST(test_many_pushes), TEST(test_marks),
    TEST(test_clear))
