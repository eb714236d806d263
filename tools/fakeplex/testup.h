/*
 * testup.h - for tests only: an uplink Ogg Opus stream like the
 * transcoder's (BOS page with OpusHead, OpusTags, then one 20 ms packet per
 * page, 48 kHz granules), a page at a time in u->page.
 */
#ifndef EXO_FAKEPLEX_TESTUP_H
#define EXO_FAKEPLEX_TESTUP_H

#include "sphn.h"

#include <math.h>
#include <opus/opus.h>
#include <string.h>

struct up {
	OpusEncoder *enc;
	int          rate;
	uint32_t     serial, seq;
	uint64_t     granule;
	double       phase;
	uint8_t      page[SPHN_PAGE_MAX];
	size_t       plen;
};

static inline int
up_init(struct up *u, int rate, uint32_t serial)
{
	int err;

	memset(u, 0, sizeof(*u));
	u->rate   = rate;
	u->serial = serial;
	u->enc    = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
	return u->enc == NULL;
}

static inline void
up_head(struct up *u)
{
	uint8_t head[19] = { 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 1,
		0x38, 0x01 /* pre-skip 312 */ };
	head[12]         = (uint8_t)u->rate;
	head[13]         = (uint8_t)(u->rate >> 8);
	head[14]         = (uint8_t)(u->rate >> 16);
	u->plen = sphn_page(u->page, sizeof(u->page), 0x02, 0, u->serial,
	    u->seq++, head, sizeof(head));
}

static inline void
up_tags(struct up *u)
{
	static const uint8_t tags[] = { 'O', 'p', 'u', 's', 'T', 'a', 'g', 's',
		4, 0, 0, 0, 't', 'e', 's', 't', 0, 0, 0, 0 };
	u->plen = sphn_page(u->page, sizeof(u->page), 0, 0, u->serial,
	    u->seq++, tags, sizeof(tags));
}

/* One 20 ms page of a sine at hz. */
static inline void
up_audio(struct up *u, double hz)
{
	int16_t pcm[960];
	uint8_t pkt[1500];
	int     n = u->rate / 50, len;

	for (int i = 0; i < n; i++) {
		pcm[i] = (int16_t)(8000 * sin(u->phase));
		u->phase += 2 * M_PI * hz / u->rate;
	}
	len = opus_encode(u->enc, pcm, n, pkt, sizeof(pkt));
	u->granule += 960;
	u->plen = sphn_page(u->page, sizeof(u->page), 0, u->granule, u->serial,
	    u->seq++, pkt, len > 0 ? (size_t)len : 0);
}

static inline void
up_fini(struct up *u)
{
	if (u->enc)
		opus_encoder_destroy(u->enc);
	u->enc = NULL;
}

#endif
