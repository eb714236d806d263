/*
 * oggdur.h - how much Opus audio an Ogg byte stream carries.
 *
 * For call.ended's audio_out_s: PersonaPlex's downlink is passed on as
 * the bytes arrived (pages may be split across messages or merged), so
 * this reads page headers incrementally, follows packets across segments
 * and pages, skips OpusHead/OpusTags, and adds each audio packet's
 * duration from its TOC byte (RFC 6716 §3.1). Bytes that are not a page
 * are skipped until the next "OggS". It never allocates; a struct oggdur
 * that is all zero is a fresh one.
 */
#ifndef EXO_OGGDUR_H
#define EXO_OGGDUR_H

#include <stddef.h>
#include <stdint.h>

struct oggdur {
	uint8_t  hdr[27 + 255]; /* the page header being read */
	size_t   hlen;
	size_t   seg; /* segment being read (hlen complete) */
	size_t   left; /* bytes left in it */
	int      in_body;
	uint8_t  head[8]; /* the current packet's first bytes */
	size_t   plen; /* bytes of the current packet so far */
	uint64_t samples; /* audio so far, in 48 kHz samples */
	uint64_t packets; /* audio packets counted */
	uint64_t skipped; /* bytes skipped looking for a page */
};

/* Forgets any partial page and packet (a new stream), keeps the totals. */
void oggdur_reset(struct oggdur *d);
void oggdur_feed(struct oggdur *d, const uint8_t *p, size_t n);
/* Samples (48 kHz) of one Opus packet from its first bytes (len >= 1; a
 * code 3 packet needs 2); 0 if it cannot tell. */
unsigned oggdur_packet(const uint8_t *p, size_t len);
/* Seconds counted so far. */
double oggdur_seconds(const struct oggdur *d);

#endif
