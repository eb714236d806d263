/*
 * pool_test.c - the lease rules, with time passed in.
 */
#include "pool.h"

#include "test.h"

#define S 1000000ull /* one second in µs */

static const struct backoff bo = { .base_ms = 1000, .max_ms = 8000 };

static int
test_one_session_per_server(void)
{
	struct pool *p;
	uint64_t     t = 100 * S;

	TEST_EQ(pool_alloc(&p, 2, &bo, 1), 0);
	TEST_EQ(pool_available(p, t), 2);
	TEST_EQ(pool_count(p, POOL_V_FREE, t), 2);
	/* Two calls take both servers; a third finds none. */
	int a = pool_pick(p, t, POOL_WANT_OTHER, -1);
	TEST_EQ(a, 0);
	pool_set_use(p, (size_t)a, POOL_CALL);
	int b = pool_pick(p, t, POOL_WANT_DEFAULT, -1);
	TEST_EQ(b, 1);
	pool_set_use(p, (size_t)b, POOL_CALL);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), -1);
	TEST_EQ(pool_pick(p, t, POOL_WANT_OTHER, 0), -1);
	TEST_EQ(pool_pick(p, t, POOL_WANT_WARM, -1), -1);
	TEST_EQ(pool_available(p, t), 0);
	TEST_EQ(pool_count(p, POOL_V_BUSY, t), 2);

	/* A call ends: the server is closing, not free, until our socket
	 * is gone. */
	pool_set_use(p, 0, POOL_IDLE);
	pool_closing(p, 0);
	TEST_EQ(pool_view(p, 0, t), POOL_V_CLOSING);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), -1);
	TEST_EQ(pool_available(p, t), 0);
	pool_closed(p, 0);
	TEST_EQ(pool_view(p, 0, t), POOL_V_FREE);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), 0);
	pool_free(p);
	return 0;
}

static int
test_backoff_after_failures(void)
{
	struct pool *p;
	uint64_t     t = 100 * S;
	uint32_t     d1, d2, d3;

	TEST_EQ(pool_alloc(&p, 2, &bo, 7), 0);
	pool_set_use(p, 0, POOL_CALL);
	/* The call's session found no handshake: close, mark failed. */
	pool_set_use(p, 0, POOL_IDLE);
	pool_closing(p, 0);
	d1 = pool_failed(p, 0, t);
	TEST_ASSERT(d1 >= 500 && d1 <= 1000);
	TEST_EQ(pool_failures(p, 0), 1);
	TEST_EQ(pool_view(p, 0, t), POOL_V_FAILED);
	/* The next free one is server 1, even when 0 is preferred. */
	TEST_EQ(pool_pick(p, t, POOL_WANT_OTHER, 0), 1);
	/* Backoff over but still closing: not yet. */
	TEST_EQ(pool_view(p, 0, t + (uint64_t)d1 * 1000), POOL_V_CLOSING);
	pool_closed(p, 0);
	TEST_EQ(pool_view(p, 0, t + (uint64_t)d1 * 1000 - 1), POOL_V_FAILED);
	TEST_EQ(pool_view(p, 0, t + (uint64_t)d1 * 1000), POOL_V_FREE);
	/* Consecutive failures grow the wait, up to the cap. */
	t += 10 * S;
	d2 = pool_failed(p, 0, t);
	TEST_ASSERT(d2 >= 1000 && d2 <= 2000);
	d3 = pool_failed(p, 0, t);
	TEST_ASSERT(d3 >= 2000 && d3 <= 4000);
	for (int i = 0; i < 20; i++)
		d3 = pool_failed(p, 0, t);
	TEST_ASSERT(d3 >= 4000 && d3 <= 8000);
	/* A handshake wipes the slate. */
	pool_succeeded(p, 0);
	TEST_EQ(pool_failures(p, 0), 0);
	TEST_EQ(pool_view(p, 0, t), POOL_V_FREE);
	/* A leased server stays busy whatever its backoff says. */
	pool_set_use(p, 1, POOL_CALL);
	pool_failed(p, 1, t);
	TEST_EQ(pool_view(p, 1, t), POOL_V_BUSY);
	pool_free(p);
	return 0;
}

static int
test_warm_preferences(void)
{
	struct pool *p;
	uint64_t     t = S;

	TEST_EQ(pool_alloc(&p, 4, &bo, 3), 0);
	/* 0 free, 1 warming, 2 warm, 3 free. */
	pool_set_use(p, 1, POOL_WARMING);
	pool_set_use(p, 2, POOL_WARM);
	TEST_EQ(pool_count(p, POOL_V_WARM, t), 1);
	TEST_EQ(pool_count(p, POOL_V_WARMING, t), 1);
	TEST_EQ(pool_available(p, t), 4);
	/* The default persona takes the warm one, then the warming one. */
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), 2);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, 0), 2);
	/* Another persona takes a free one and spares the warm ones. */
	TEST_EQ(pool_pick(p, t, POOL_WANT_OTHER, -1), 0);
	TEST_EQ(pool_pick(p, t, POOL_WANT_OTHER, 3), 3);
	/* A new warm session goes to a free server only. */
	TEST_EQ(pool_pick(p, t, POOL_WANT_WARM, 1), 0);
	pool_set_use(p, 0, POOL_CALL);
	pool_set_use(p, 3, POOL_CALL);
	TEST_EQ(pool_pick(p, t, POOL_WANT_WARM, -1), -1);
	/* No free server left: another persona converts a warming server
	 * before a warm one. */
	TEST_EQ(pool_pick(p, t, POOL_WANT_OTHER, -1), 1);
	pool_set_use(p, 2, POOL_CALL);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), 1);
	pool_set_use(p, 1, POOL_CALL);
	TEST_EQ(pool_pick(p, t, POOL_WANT_DEFAULT, -1), -1);
	TEST_EQ(pool_available(p, t), 0);
	TEST_EQ(pool_count(p, POOL_V_BUSY, t), 4);
	/* Names for labels. */
	TEST_STREQ(pool_view_name(POOL_V_FREE), "free");
	TEST_STREQ(pool_view_name(POOL_V_FAILED), "failed");
	TEST_STREQ(pool_view_name(POOL_VIEWS), "unknown");
	pool_free(p);
	return 0;
}

static int
test_empty_pool(void)
{
	struct pool *p;

	TEST_EQ(pool_alloc(&p, 0, &bo, 0), 0);
	TEST_EQ(pool_pick(p, 0, POOL_WANT_DEFAULT, -1), -1);
	TEST_EQ(pool_pick(p, 0, POOL_WANT_DEFAULT, 3), -1);
	TEST_EQ(pool_available(p, 0), 0);
	pool_free(p);
	return 0;
}

TEST_MAIN(TEST(test_one_session_per_server), TEST(test_backoff_after_failures),
    TEST(test_warm_preferences), TEST(test_empty_pool))
