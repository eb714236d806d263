/*
 * sttbuf_test.c - the replay ring: append, send, commit, rewind, bound.
 */
#include "sttbuf.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

static void
fill(uint8_t *p, size_t n, unsigned from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(from + i);
}

static int
test_send_commit(void)
{
	struct sttbuf b;
	uint8_t       in[64], out[64];

	TEST_EQ(sttbuf_init(&b, 32), 0);
	fill(in, 20, 0);
	TEST_EQ(sttbuf_append(&b, in, 20, NULL), 0);
	TEST_EQ(sttbuf_unsent(&b), 20);
	TEST_EQ(sttbuf_peek(&b, out, 8), 8);
	TEST_ASSERT(memcmp(out, in, 8) == 0);
	sttbuf_mark_sent(&b, 8);
	TEST_EQ(sttbuf_unsent(&b), 12);
	TEST_EQ(sttbuf_sent_end(&b), 8);
	/* A commit forgets only what was sent. */
	TEST_EQ(sttbuf_commit(&b), 8);
	TEST_EQ(sttbuf_start(&b), 8);
	TEST_EQ(sttbuf_unsent(&b), 12);
	TEST_EQ(sttbuf_peek(&b, out, 64), 12);
	TEST_ASSERT(memcmp(out, in + 8, 12) == 0);
	sttbuf_mark_sent(&b, 100); /* clamped */
	TEST_EQ(sttbuf_unsent(&b), 0);
	TEST_EQ(sttbuf_peek(&b, out, 64), 0);
	sttbuf_fini(&b);
	return 0;
}

static int
test_rewind_replays(void)
{
	struct sttbuf b;
	uint8_t       in[64], out[64];

	TEST_EQ(sttbuf_init(&b, 32), 0);
	fill(in, 30, 100);
	sttbuf_append(&b, in, 10, NULL);
	sttbuf_mark_sent(&b, 10);
	sttbuf_commit(&b); /* 0..9 committed */
	sttbuf_append(&b, in + 10, 20, NULL);
	sttbuf_mark_sent(&b, 16);
	/* The connection drops: 10..29 go again, from 10. */
	TEST_EQ(sttbuf_rewind(&b), 16);
	TEST_EQ(sttbuf_unsent(&b), 20);
	TEST_EQ(sttbuf_peek(&b, out, 64), 20);
	TEST_ASSERT(memcmp(out, in + 10, 20) == 0);
	TEST_EQ(sttbuf_start(&b), 10);
	TEST_EQ(sttbuf_end(&b), 30);
	sttbuf_fini(&b);
	return 0;
}

static int
test_bound_and_wrap(void)
{
	struct sttbuf b;
	uint8_t       in[256], out[256];
	size_t        lost;

	TEST_EQ(sttbuf_init(&b, 32), 0);
	fill(in, 256, 0);
	/* Wrap many times, sending as we go: nothing is lost. */
	for (unsigned i = 0; i < 20; i++) {
		TEST_EQ(sttbuf_append(&b, in + i * 10, 10, &lost), 0);
		TEST_EQ(lost, 0);
		TEST_EQ(sttbuf_peek(&b, out, 10), 10);
		TEST_ASSERT(memcmp(out, in + i * 10, 10) == 0);
		sttbuf_mark_sent(&b, 10);
		sttbuf_commit(&b);
	}
	TEST_EQ(sttbuf_start(&b), 200);
	/* Past the bound: the oldest go, sent ones first counted. */
	sttbuf_append(&b, in, 20, NULL);
	sttbuf_mark_sent(&b, 8);
	TEST_EQ(sttbuf_append(&b, in + 20, 20, &lost), 8);
	TEST_EQ(lost, 0); /* the 8 dropped had been sent */
	TEST_EQ(sttbuf_unsent(&b), 32);
	TEST_EQ(sttbuf_append(&b, in + 40, 4, &lost), 4);
	TEST_EQ(lost, 4);
	TEST_EQ(sttbuf_peek(&b, out, 64), 32);
	TEST_ASSERT(memcmp(out, in + 12, 28) == 0);
	TEST_ASSERT(memcmp(out + 28, in + 40, 4) == 0);
	TEST_EQ(sttbuf_start(&b), 212);
	TEST_EQ(sttbuf_end(&b), 244);
	/* One append bigger than the ring keeps its newest bytes. */
	TEST_EQ(sttbuf_append(&b, in, 40, &lost), 32 + 8);
	TEST_EQ(lost, 40);
	TEST_EQ(sttbuf_peek(&b, out, 64), 32);
	TEST_ASSERT(memcmp(out, in + 8, 32) == 0);
	TEST_EQ(sttbuf_end(&b), 284);
	sttbuf_fini(&b);
	return 0;
}

TEST_MAIN(TEST(test_send_commit), TEST(test_rewind_replays),
    TEST(test_bound_and_wrap))
