/*
 * outq_test.c - the outbound message queue.
 */
#include "outq.h"

#include <errno.h>
#include <stdlib.h>

#include "test.h"

static int
test_fifo(void)
{
	struct outq q;
	char       *p;
	size_t      len;

	TEST_EQ(outq_init(&q, 3, 16, 100), 0);
	TEST_EQ(outq_free(&q), 3);
	TEST_ASSERT(outq_peek(&q, &len) == NULL);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			p = outq_reserve(&q);
			TEST_ASSERT(p != NULL);
			p[-16] = 'x'; /* headroom is ours to use */
			len    = (size_t)snprintf(p, 100, "m%d.%d", round, i);
			outq_commit(&q, len);
		}
		TEST_ASSERT(outq_reserve(&q) == NULL);
		TEST_EQ(outq_count(&q), 3);
		for (int i = 0; i < 3; i++) {
			char want[16];
			snprintf(want, sizeof(want), "m%d.%d", round, i);
			p = outq_peek(&q, &len);
			TEST_ASSERT(p != NULL);
			TEST_EQ(len, strlen(want));
			TEST_ASSERT(memcmp(p, want, len) == 0);
			outq_pop(&q);
		}
		TEST_EQ(outq_count(&q), 0);
	}
	/* Commit without room or with a bad length does nothing. */
	outq_commit(&q, 0);
	outq_commit(&q, 101);
	TEST_EQ(outq_count(&q), 0);
	p = outq_reserve(&q);
	outq_commit(&q, 5);
	outq_reset(&q);
	TEST_EQ(outq_count(&q), 0);
	outq_pop(&q); /* harmless when empty */
	outq_fini(&q);
	TEST_EQ(outq_init(&q, 0, 16, 100), EINVAL);
	TEST_EQ(outq_init(&q, OUTQ_MAX_SLOTS + 1, 16, 100), EINVAL);
	outq_fini(&q);
	return 0;
}

/* Slots are made when first needed; a queue that empties starts over at
 * slot 0, so a peer that keeps up costs one slot. */
static int
test_slots_on_demand(void)
{
	struct outq q;
	char       *p;
	size_t      len;
	unsigned    next = 0, want = 0;

	TEST_EQ(outq_init(&q, 4, 16, 100), 0);
	TEST_ASSERT(q.slot[0] != NULL);
	TEST_ASSERT(q.slot[1] == NULL);
	for (int i = 0; i < 50; i++) {
		TEST_ASSERT((p = outq_reserve(&q)) != NULL);
		outq_commit(&q, (size_t)snprintf(p, 100, "%u", next++));
		TEST_ASSERT(outq_peek(&q, &len) != NULL);
		outq_pop(&q);
		want++;
	}
	TEST_ASSERT(q.slot[1] == NULL);
	/* Two in, one out, around the ring: order holds as slots appear. */
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 2; k++) {
			TEST_ASSERT((p = outq_reserve(&q)) != NULL);
			outq_commit(
			    &q, (size_t)snprintf(p, 100, "%u", next++));
		}
		TEST_ASSERT((p = outq_peek(&q, &len)) != NULL);
		TEST_EQ((unsigned)atoi(p), want++);
		outq_pop(&q);
	}
	TEST_EQ(outq_count(&q), 3);
	TEST_ASSERT(outq_reserve(&q) != NULL); /* the last slot */
	while ((p = outq_peek(&q, &len)) != NULL) {
		TEST_EQ((unsigned)atoi(p), want++);
		outq_pop(&q);
	}
	TEST_EQ(want, next);
	outq_fini(&q);
	return 0;
}

TEST_MAIN(TEST(test_fifo), TEST(test_slots_on_demand))
