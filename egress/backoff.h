/*
 * backoff.h - exponential backoff with jitter, and the small random
 * generator behind the jitter.
 *
 * Pure functions: the caller supplies the attempt number and the random
 * state, so tests can replay any sequence. Nothing is allocated.
 */
#ifndef EXO_BACKOFF_H
#define EXO_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint32_t base_ms; /* delay after the first failure */
	uint32_t max_ms; /* the delay never grows past this */
};

/* The delay before retrying after the n-th consecutive failure (n >= 1;
 * 0 gives 0): d = min(max_ms, base_ms * 2^(n-1)), then "equal jitter": a
 * value in [d/2, d] chosen by rnd, so retries of many clients spread out
 * while the delay still grows. */
uint32_t backoff_ms(const struct backoff *b, unsigned n, uint32_t rnd);

/* Seeds a generator state (any seed; 0 is replaced by a constant). */
uint64_t backoff_seed(uint64_t seed);

/* The next 32 random bits of *state (xorshift64*). */
uint32_t backoff_rand(uint64_t *state);

#endif
