/*
 * memtrim_test.c - memory freed below a live block stays resident until
 * memtrim_maybe, which trims only when noted and at most once a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memtrim.h"
#include "test.h"

/* Under ASan or TSan malloc is the sanitizer's (freed blocks wait in its
 * quarantine) and malloc_trim hands nothing back: only the logic is
 * tested there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_MALLOC 1
#endif
#endif
#ifndef SANITIZER_MALLOC
#define SANITIZER_MALLOC 0
#endif

#define BLOCKS 256
#define BLOCK (64u << 10) /* under glibc's mmap threshold: from the heap */

static long
rss_kb(void)
{
	FILE *f    = fopen("/proc/self/statm", "r");
	long  size = 0, rss = 0;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss * 4;
}

static int
test_trims_when_noted(void)
{
	static char *b[BLOCKS];
	char        *pin;
	long         high, freed, trimmed;

	TEST_ASSERT(!memtrim_maybe(5000000)); /* nothing noted */
	for (int i = 0; i < BLOCKS; i++) {
		TEST_ASSERT((b[i] = malloc(BLOCK)) != NULL);
		memset(b[i], 1, BLOCK);
	}
	/* Live above the blocks: the heap's top cannot shrink past it. */
	TEST_ASSERT((pin = malloc(64)) != NULL);
	high = rss_kb();
	for (int i = 0; i < BLOCKS; i++)
		free(b[i]);
	freed = rss_kb();
	TEST_ASSERT(!memtrim_maybe(5000000)); /* still nothing noted */
	memtrim_note();
	TEST_ASSERT(memtrim_maybe(5000000));
	trimmed = rss_kb();
	fprintf(stderr,
	    "rss: %ld kB with the blocks, %ld freed, %ld trimmed\n", high,
	    freed, trimmed);
	if (!SANITIZER_MALLOC) {
		TEST_ASSERT(freed > high - 4096); /* free alone kept it */
		TEST_ASSERT(
		    trimmed < freed - 8192); /* the trim gave it back */
	}
	/* At most once per MEMTRIM_EVERY_US. */
	memtrim_note();
	TEST_ASSERT(!memtrim_maybe(5000000 + MEMTRIM_EVERY_US - 1));
	TEST_ASSERT(memtrim_maybe(5000000 + MEMTRIM_EVERY_US));
	TEST_ASSERT(!memtrim_maybe(5000000 + 3 * MEMTRIM_EVERY_US));
	free(pin);
	return 0;
}

TEST_MAIN(TEST(test_trims_when_noted))
