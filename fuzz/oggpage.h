/*
 * oggpage.h - builds Ogg pages with correct CRCs from fuzz input, so the
 * Ogg targets reach past libogg's checksum into stream reassembly (a
 * fuzzer alone almost never guesses a CRC-32).
 *
 * The input is read as a list of page descriptions: flags (continued,
 * BOS, EOS, which of three serials, a sequence-number skip), a segment
 * count and lacing values, then body bytes (zeros past the input's end).
 */
#ifndef EXO_FUZZ_OGGPAGE_H
#define EXO_FUZZ_OGGPAGE_H

#include <string.h>

#include "fuzz.h"

static inline uint32_t
oggpage_crc(const uint8_t *p, size_t n)
{
	static uint32_t table[256]; /* the harness's only state: a cache */
	uint32_t        crc = 0;

	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t r = i << 24;
			for (int k = 0; k < 8; k++)
				r = r & 0x80000000u ? r << 1 ^ 0x04c11db7u
				                    : r << 1;
			table[i] = r;
		}
	for (size_t i = 0; i < n; i++)
		crc = crc << 8 ^ table[(crc >> 24) ^ p[i]];
	return crc;
}

/* What the builder keeps between pages. */
struct oggpage_gen {
	uint32_t seq[3];
	uint64_t granule;
};

static inline void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* Writes the next page described by in into out (room for 27 + 255 +
 * 255 * 255 bytes). Returns its length, 0 when the input is used up. */
static inline size_t
oggpage_next(struct oggpage_gen *g, struct fuzz_in *in, uint8_t *out)
{
	static const uint32_t serials[3] = { 42, 0x5eed, 0xffffffffu };
	uint8_t               flags, nseg;
	size_t                body = 0, h;
	unsigned              s;

	if (in->n == 0)
		return 0;
	flags = fuzz_u8(in);
	nseg  = fuzz_u8(in);
	s     = (flags >> 3) % 3;
	memcpy(out, "OggS", 4);
	out[4] = 0;
	out[5] = flags & 7; /* continued, BOS, EOS */
	g->granule += fuzz_u8(in) * 960u;
	for (int i = 0; i < 8; i++)
		out[6 + i] = (uint8_t)(g->granule >> 8 * i);
	put_le32(out + 14, serials[s]);
	/* Usually the next sequence number; sometimes a gap. */
	g->seq[s] += flags & 0x20 ? 2 + (flags >> 6) : 1;
	put_le32(out + 18, g->seq[s]);
	put_le32(out + 22, 0);
	out[26] = nseg;
	for (unsigned i = 0; i < nseg; i++) {
		out[27 + i] = fuzz_u8(in);
		body += out[27 + i];
	}
	h = 27 + (size_t)nseg;
	for (size_t i = 0; i < body; i++)
		out[h + i] = fuzz_u8(in);
	put_le32(out + 22, oggpage_crc(out, h + body));
	return h + body;
}

#define OGGPAGE_MAX (27 + 255 + 255 * 255)

/* The whole stream an input describes: raw bytes when byte 0 is odd,
 * else built pages. Returns a malloc'd buffer (*n bytes). */
static inline uint8_t *
oggpage_stream(const uint8_t *data, size_t size, size_t *n)
{
	struct fuzz_in     in = { data, size };
	struct oggpage_gen g  = { { 0 }, 0 };
	uint8_t           *buf, *page;
	size_t             len = 0, cap = 1, k;

	if (size && (data[0] & 1)) {
		buf = malloc(size);
		FUZZ_CHECK(buf);
		memcpy(buf, data + 1, size - 1);
		*n = size - 1;
		return buf;
	}
	fuzz_u8(&in);
	buf  = malloc(cap);
	page = malloc(OGGPAGE_MAX);
	FUZZ_CHECK(buf && page);
	/* Bounded: each page takes 3 input bytes at least, and the stream
	 * stops past 64 KB (PersonaPlex sends pages of a few hundred). */
	while (len < (64u << 10) && (k = oggpage_next(&g, &in, page)) != 0) {
		while (len + k > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			FUZZ_CHECK(buf);
		}
		memcpy(buf + len, page, k);
		len += k;
	}
	free(page);
	*n = len;
	return buf;
}

#endif
