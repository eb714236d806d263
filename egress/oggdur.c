/*
 * oggdur.c - an incremental Ogg page reader that only counts.
 */
#include "oggdur.h"

#include <string.h>

unsigned
oggdur_packet(const uint8_t *p, size_t len)
{
	/* Frame sizes in 48 kHz samples by TOC config (RFC 6716 §3.1). */
	static const unsigned silk[4]   = { 480, 960, 1920, 2880 };
	static const unsigned hybrid[2] = { 480, 960 };
	static const unsigned celt[4]   = { 120, 240, 480, 960 };
	unsigned              config, frame, frames;

	if (!len)
		return 0;
	config = p[0] >> 3;
	frame  = config < 12 ? silk[config & 3]
	     : config < 16   ? hybrid[config & 1]
	                     : celt[config & 3];
	switch (p[0] & 3) {
	case 0:
		frames = 1;
		break;
	case 3:
		if (len < 2)
			return 0;
		frames = p[1] & 0x3f;
		break;
	default:
		frames = 2;
	}
	return frame * frames;
}

void
oggdur_reset(struct oggdur *d)
{
	d->hlen    = 0;
	d->in_body = 0;
	d->plen    = 0;
}

static void
packet_end(struct oggdur *d)
{
	size_t n = d->plen < sizeof(d->head) ? d->plen : sizeof(d->head);

	if (d->plen
	    && !(n == 8
	        && (!memcmp(d->head, "OpusHead", 8)
	            || !memcmp(d->head, "OpusTags", 8)))) {
		unsigned s = oggdur_packet(d->head, n);
		if (s) {
			d->samples += s;
			d->packets++;
		}
	}
	d->plen = 0;
}

/* Advances to the next segment; leaves the body after the last one. */
static void
next_segment(struct oggdur *d)
{
	size_t nsegs = d->hdr[26];

	while (d->seg < nsegs) {
		d->left = d->hdr[27 + d->seg];
		if (d->left)
			return;
		/* A zero lacing value ends a packet (a multiple of 255). */
		packet_end(d);
		d->seg++;
	}
	d->in_body = 0;
	d->hlen    = 0;
}

void
oggdur_feed(struct oggdur *d, const uint8_t *p, size_t n)
{
	while (n) {
		if (!d->in_body) {
			/* Sync: the first four bytes must be "OggS". */
			if (d->hlen < 4) {
				static const char cap[4] = "OggS";
				if (*p != (uint8_t)cap[d->hlen]) {
					d->skipped += d->hlen ? d->hlen : 1;
					if (!d->hlen)
						p++, n--;
					d->hlen = 0;
					continue;
				}
				d->hdr[d->hlen++] = *p++;
				n--;
				continue;
			}
			size_t need
			    = d->hlen < 27 ? 27 : 27 + (size_t)d->hdr[26];
			size_t take = need - d->hlen < n ? need - d->hlen : n;
			memcpy(d->hdr + d->hlen, p, take);
			d->hlen += take;
			p += take;
			n -= take;
			if (d->hlen < 27 || d->hlen < 27 + (size_t)d->hdr[26])
				continue;
			/* A page that does not continue a packet starts
			 * clean (a lost page must not glue two together). */
			if (!(d->hdr[5] & 0x01))
				d->plen = 0;
			d->in_body = 1;
			d->seg     = 0;
			next_segment(d);
			continue;
		}
		size_t take = d->left < n ? d->left : n;
		for (size_t i = 0; i < take && d->plen + i < sizeof(d->head);
		     i++)
			d->head[d->plen + i] = p[i];
		d->plen += take;
		d->left -= take;
		p += take;
		n -= take;
		if (d->left)
			continue;
		if (d->hdr[27 + d->seg] < 255)
			packet_end(d);
		d->seg++;
		next_segment(d);
	}
}

double
oggdur_seconds(const struct oggdur *d)
{
	return (double)d->samples / 48000.0;
}
