/*
 * clock.h - time in microseconds.
 *
 * mono_us() for intervals and deadlines inside a process; wall_us() for
 * timestamps that cross processes (Frame.ts_us) or go into logs.
 */
#ifndef EXO_CLOCK_H
#define EXO_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static inline uint64_t
wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

#endif
