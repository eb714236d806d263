/*
 * memtrim.c - malloc_trim after memory was freed, at most once a second.
 */
#include "memtrim.h"

#include <malloc.h>
#include <stdatomic.h>

static atomic_bool      noted;
static _Atomic uint64_t last_us;

void
memtrim_note(void)
{
	atomic_store_explicit(&noted, true, memory_order_relaxed);
}

bool
memtrim_maybe(uint64_t now_us)
{
	uint64_t last = atomic_load(&last_us);

	if (!atomic_load_explicit(&noted, memory_order_relaxed)
	    || (last && now_us - last < MEMTRIM_EVERY_US))
		return false;
	/* One thread of several calling at once trims. */
	if (!atomic_compare_exchange_strong(
	        &last_us, &last, now_us ? now_us : 1))
		return false;
	atomic_store(&noted, false);
	malloc_trim(0);
	return true;
}
