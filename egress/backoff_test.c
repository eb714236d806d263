/*
 * backoff_test.c - delays grow, stay within [d/2, d], and are capped.
 */
#include "backoff.h"

#include <stdint.h>

#include "test.h"

static int
test_growth_and_cap(void)
{
	struct backoff b = { .base_ms = 100, .max_ms = 1000 };

	/* rnd = max: the top of the range, d itself. */
	TEST_EQ(backoff_ms(&b, 0, UINT32_MAX), 0);
	TEST_EQ(backoff_ms(&b, 1, UINT32_MAX), 100);
	TEST_EQ(backoff_ms(&b, 2, UINT32_MAX), 200);
	TEST_EQ(backoff_ms(&b, 3, UINT32_MAX), 400);
	TEST_EQ(backoff_ms(&b, 4, UINT32_MAX), 800);
	TEST_EQ(backoff_ms(&b, 5, UINT32_MAX), 1000);
	TEST_EQ(backoff_ms(&b, 500, UINT32_MAX), 1000);
	/* rnd = 0: the bottom, d/2. */
	TEST_EQ(backoff_ms(&b, 1, 0), 50);
	TEST_EQ(backoff_ms(&b, 4, 0), 400);
	TEST_EQ(backoff_ms(&b, 40, 0), 500);
	/* No base: no delay at all. */
	b.base_ms = 0;
	TEST_EQ(backoff_ms(&b, 3, 12345), 0);
	return 0;
}

static int
test_jitter_spreads(void)
{
	struct backoff b  = { .base_ms = 1000, .max_ms = 30000 };
	uint64_t       st = backoff_seed(42);
	uint32_t       lo = UINT32_MAX, hi = 0;
	uint64_t       other = backoff_seed(43);
	int            same  = 0;

	for (int i = 0; i < 1000; i++) {
		uint32_t d = backoff_ms(&b, 3, backoff_rand(&st));
		TEST_ASSERT(d >= 2000 && d <= 4000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	/* The range is used, not one value. */
	TEST_ASSERT(lo < 2200);
	TEST_ASSERT(hi > 3800);
	/* Two seeds give two sequences; one seed replays exactly. */
	st = backoff_seed(42);
	for (int i = 0; i < 100; i++)
		same += backoff_rand(&st) == backoff_rand(&other);
	TEST_ASSERT(same < 5);
	st           = backoff_seed(7);
	uint64_t st2 = backoff_seed(7);
	for (int i = 0; i < 10; i++)
		TEST_EQ(backoff_rand(&st), backoff_rand(&st2));
	/* A zero state still works. */
	st = 0;
	TEST_ASSERT(backoff_rand(&st) != 0 || backoff_rand(&st) != 0);
	return 0;
}

TEST_MAIN(TEST(test_growth_and_cap), TEST(test_jitter_spreads))
