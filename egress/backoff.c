/*
 * backoff.c - exponential backoff with jitter (see backoff.h).
 */
#include "backoff.h"

uint32_t
backoff_ms(const struct backoff *b, unsigned n, uint32_t rnd)
{
	uint64_t d;

	if (n == 0 || b->base_ms == 0)
		return 0;
	d = b->base_ms;
	/* Doubling past 2^31 would only hit the cap anyway. */
	for (unsigned i = 1; i < n && d < b->max_ms && i < 32; i++)
		d *= 2;
	if (b->max_ms && d > b->max_ms)
		d = b->max_ms;
	/* d/2 + a share of the other half picked by rnd. */
	return (uint32_t)(d / 2 + (d - d / 2) * (uint64_t)rnd / UINT32_MAX);
}

uint64_t
backoff_seed(uint64_t seed)
{
	return seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint32_t
backoff_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : backoff_seed(0);

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}
