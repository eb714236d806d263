/*
 * arena_test.c - bump allocation, spilling, growth at reset, and
 * protobuf-c unpacking on an arena.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "exoplex.pb-c.h"
#include "test.h"

static int
test_bump_aligned_and_reset(void)
{
	struct arena *a;
	char         *p, *q;

	TEST_EQ(arena_alloc(&a, 256, 4096), 0);
	p = arena_get(a, 3);
	q = arena_get(a, 5);
	TEST_ASSERT(p != NULL && q != NULL);
	TEST_EQ((uintptr_t)q % alignof(max_align_t), 0);
	TEST_ASSERT(q > p);
	TEST_ASSERT(arena_owns(a, p) && arena_owns(a, q + 4));
	memset(p, 1, 3);
	memset(q, 2, 5);
	arena_reset(a);
	/* The same memory again: no allocation after a reset. */
	TEST_ASSERT(arena_get(a, 3) == p);
	TEST_EQ(arena_spills(a), 0);
	TEST_EQ(arena_cap(a), 256);
	arena_free(a);
	return 0;
}

static int
test_spill_then_grow(void)
{
	struct arena *a;
	char         *p[10];
	int           dummy;

	TEST_EQ(arena_alloc(&a, 256, 1024), 0);
	for (int i = 0; i < 10; i++) {
		TEST_ASSERT((p[i] = arena_get(a, 100)) != NULL);
		memset(p[i], i, 100); /* ASan: each block is whole */
	}
	TEST_EQ(arena_spills(a), 8); /* two 112-byte blocks fit in 256 */
	for (int i = 0; i < 10; i++)
		TEST_ASSERT(arena_owns(a, p[i] + 99));
	TEST_ASSERT(!arena_owns(a, &dummy));
	arena_reset(a);
	/* 10 x 112 bytes wanted: grown to the limit, 1024. */
	TEST_EQ(arena_cap(a), 1024);
	for (int i = 0; i < 9; i++)
		TEST_ASSERT(arena_get(a, 100) != NULL);
	TEST_EQ(arena_spills(a), 8);
	arena_reset(a);
	TEST_EQ(arena_cap(a), 1024); /* never past max */
	arena_free(a);
	return 0;
}

static int
test_bad_sizes(void)
{
	struct arena *a;

	TEST_EQ(arena_alloc(&a, 0, 10), EINVAL);
	TEST_EQ(arena_alloc(&a, 100, 10), EINVAL);
	TEST_EQ(arena_alloc(&a, 64, 64), 0);
	TEST_ASSERT(arena_get(a, SIZE_MAX) == NULL);
	TEST_ASSERT(arena_get(a, SIZE_MAX - 8) == NULL);
	arena_free(a);
	arena_free(NULL);
	return 0;
}

/* An Envelope of frames unpacked on the arena reads back the same, and
 * a second one after the reset fits without spilling. */
static int
test_protobuf_unpack(void)
{
	Exo__Envelope env = EXO__ENVELOPE__INIT;
	Exo__Frame    fr[20], *fp[20];
	Exo__Audio    au[20];
	uint8_t       pcm[320], *buf;
	char          ids[20][16];
	size_t        n;
	struct arena *a;

	memset(pcm, 7, sizeof(pcm));
	for (int i = 0; i < 20; i++) {
		exo__frame__init(&fr[i]);
		exo__audio__init(&au[i]);
		snprintf(ids[i], sizeof(ids[i]), "call-%d", i);
		fr[i].call_id      = ids[i];
		fr[i].seq          = (uint64_t)i;
		au[i].pcm.data     = pcm;
		au[i].pcm.len      = sizeof(pcm);
		fr[i].body_case    = EXO__FRAME__BODY_CALLER_AUDIO;
		fr[i].caller_audio = &au[i];
		fp[i]              = &fr[i];
	}
	env.version  = 1;
	env.sender   = "test";
	env.n_frames = 20;
	env.frames   = fp;
	n            = exo__envelope__get_packed_size(&env);
	TEST_ASSERT((buf = malloc(n)) != NULL);
	exo__envelope__pack(&env, buf);

	TEST_EQ(arena_alloc(&a, 1024, 1 << 20), 0);
	for (int round = 0; round < 2; round++) {
		size_t         before = arena_spills(a);
		Exo__Envelope *e = exo__envelope__unpack(arena_pb(a), n, buf);
		TEST_ASSERT(e != NULL);
		TEST_EQ(e->n_frames, 20);
		TEST_STREQ(e->frames[19]->call_id, "call-19");
		TEST_EQ(e->frames[19]->caller_audio->pcm.len, sizeof(pcm));
		TEST_EQ(e->frames[19]->caller_audio->pcm.data[319], 7);
		TEST_ASSERT(arena_owns(a, e->frames[5]));
		if (round == 0)
			TEST_ASSERT(
			    arena_spills(a) > before); /* 1 kB is short */
		else
			TEST_EQ(
			    arena_spills(a), before); /* grown at the reset */
		arena_reset(a);
	}
	/* A truncated message: NULL, and whatever unpack made is taken
	 * back by the reset (ASan/LSan would see a leak or a bad free). */
	TEST_ASSERT(exo__envelope__unpack(arena_pb(a), n - 3, buf) == NULL);
	arena_reset(a);
	arena_free(a);
	free(buf);
	return 0;
}

TEST_MAIN(TEST(test_bump_aligned_and_reset), TEST(test_spill_then_grow),
    TEST(test_bad_sizes), TEST(test_protobuf_unpack))
