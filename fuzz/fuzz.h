/*
 * fuzz.h - what the fuzz targets share: a check that aborts (so libFuzzer
 * and replay both report it as a crash, with the failed condition), and a
 * byte reader for targets that take their shape from the input.
 */
#ifndef EXO_FUZZ_H
#define EXO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(c)                                                         \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n",          \
			    __FILE__, __LINE__, #c);                          \
			abort();                                              \
		}                                                             \
	} while (0)

/* Reads an input front to back; past the end it yields zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t         n;
};

static inline uint8_t
fuzz_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t
fuzz_u16(struct fuzz_in *in)
{
	uint16_t v = fuzz_u8(in);
	return (uint16_t)(v | fuzz_u8(in) << 8);
}

/* Takes up to n bytes; returns how many were taken (*out points at them). */
static inline size_t
fuzz_take(struct fuzz_in *in, size_t n, const uint8_t **out)
{
	if (n > in->n)
		n = in->n;
	*out = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

#endif
