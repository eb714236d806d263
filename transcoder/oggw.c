/*
 * oggw.c - Ogg Opus pages of a few packets each, laid out by hand; libogg
 * computes the CRC. A libogg stream state would hold about 13 kB per call
 * (measured) for pages that never hold more than four short packets.
 */
#include "oggw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>

#define OGGW_BOS 0x02
#define OGGW_EOS 0x04
#define OGGW_PAGE_MAX (27 + 255 + OGGW_PACKET_MAX)

struct oggw {
	bool     begun;
	uint32_t serial;
	uint32_t pageno; /* the next page's sequence number */
	int64_t  granule; /* 48 kHz samples written so far */
	unsigned per_page; /* 0 or 1: every packet its own page */
	uint64_t packets; /* audio packets of this stream so far */
	unsigned npend; /* packets waiting in pend */
	size_t   pend_len;
	uint16_t pend_size[OGGW_PER_PAGE_MAX];
	uint8_t  pend[OGGW_PEND_MAX];
};

int
oggw_alloc(struct oggw **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ENOMEM;
}

void
oggw_free(struct oggw *w)
{
	free(w);
}

int
oggw_set_per_page(struct oggw *w, unsigned n)
{
	if (n < 1 || n > OGGW_PER_PAGE_MAX)
		return EINVAL;
	w->per_page = n;
	return 0;
}

unsigned
oggw_pending(const struct oggw *w)
{
	return w->npend;
}

static void
le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
le32(uint8_t *p, uint32_t v)
{
	le16(p, v);
	le16(p + 2, v >> 16);
}

void
oggw_opushead(
    uint8_t out[OGGW_OPUSHEAD_LEN], uint32_t input_rate, uint16_t preskip)
{
	memcpy(out, "OpusHead", 8);
	out[8] = 1; /* version */
	out[9] = 1; /* channels */
	le16(out + 10, preskip);
	le32(out + 12, input_rate);
	le16(out + 16, 0); /* output gain */
	out[18] = 0; /* channel mapping family */
}

static void
le64(uint8_t *p, uint64_t v)
{
	le32(p, (uint32_t)v);
	le32(p + 4, (uint32_t)(v >> 32));
}

/* Writes the npk packets laid end to end in data (sizes in size[]) as
 * one page (RFC 3533 section 6) and hands it to fn. The page is built on
 * the stack: a writer keeps no page buffer, which is most of what a
 * call's uplink would otherwise hold. */
static int
oggw_put(struct oggw *w, const uint8_t *data, const uint16_t *size,
    unsigned npk, uint8_t flags, bool header, oggw_page_fn fn, void *arg)
{
	uint8_t  page[OGGW_PAGE_MAX];
	size_t   segs = 0, n = 0, hl;
	ogg_page og;

	for (unsigned i = 0; i < npk; i++) {
		size_t k = size[i] / 255;
		memset(page + 27 + segs, 255, k);
		page[27 + segs + k] = (uint8_t)(size[i] % 255);
		segs += k + 1;
		n += size[i];
	}
	hl = 27 + segs;
	memcpy(page, "OggS", 4);
	page[4] = 0; /* version */
	page[5] = flags;
	le64(page + 6, (uint64_t)w->granule);
	le32(page + 14, w->serial);
	le32(page + 18, w->pageno++);
	le32(page + 22, 0); /* CRC, below */
	page[26] = (uint8_t)segs;
	memcpy(page + hl, data, n);
	og.header     = page;
	og.header_len = (long)hl;
	og.body       = page + hl;
	og.body_len   = (long)n;
	ogg_page_checksum_set(&og);
	fn(arg, page, hl + n, header);
	return 0;
}

int
oggw_begin(struct oggw *w, uint32_t serial, uint32_t input_rate,
    uint16_t preskip, oggw_page_fn fn, void *arg)
{
	uint8_t head[OGGW_OPUSHEAD_LEN];
	uint8_t tags[8 + 4 + sizeof(OGGW_VENDOR) - 1 + 4];
	size_t  vlen = sizeof(OGGW_VENDOR) - 1;
	int     rc;

	w->serial   = serial;
	w->pageno   = 0;
	w->granule  = 0;
	w->begun    = true;
	w->packets  = 0;
	w->npend    = 0;
	w->pend_len = 0;
	oggw_opushead(head, input_rate, preskip);
	memcpy(tags, "OpusTags", 8);
	le32(tags + 8, (uint32_t)vlen);
	memcpy(tags + 12, OGGW_VENDOR, vlen);
	le32(tags + 12 + vlen, 0); /* no user comments */
	if ((rc = oggw_put(w, head, &(uint16_t) { sizeof(head) }, 1, OGGW_BOS,
	         true, fn, arg))
	    != 0)
		return rc;
	return oggw_put(
	    w, tags, &(uint16_t) { sizeof(tags) }, 1, 0, true, fn, arg);
}

/* Writes the waiting packets as one page and forgets them. */
static int
oggw_put_pend(struct oggw *w, uint8_t flags, oggw_page_fn fn, void *arg)
{
	int rc = oggw_put(
	    w, w->pend, w->pend_size, w->npend, flags, false, fn, arg);

	w->npend    = 0;
	w->pend_len = 0;
	return rc;
}

int
oggw_flush(struct oggw *w, oggw_page_fn fn, void *arg)
{
	return w->npend ? oggw_put_pend(w, 0, fn, arg) : 0;
}

int
oggw_packet(struct oggw *w, const uint8_t *pkt, size_t n, uint32_t samples48,
    bool eos, oggw_page_fn fn, void *arg)
{
	bool last;

	if (!w->begun || n == 0)
		return EINVAL;
	if (n > OGGW_PACKET_MAX)
		return EMSGSIZE;
	last = w->per_page <= 1 || eos || (w->packets + 1) % w->per_page == 0;
	if (w->npend > 0 && w->pend_len + n > OGGW_PEND_MAX)
		oggw_put_pend(w, 0, fn, arg); /* too big to wait with them */
	w->packets++;
	if (eos)
		w->begun = false;
	if (w->npend == 0 && (last || n > OGGW_PEND_MAX)) {
		/* Straight from the caller's buffer: no copy. */
		w->granule += samples48;
		return oggw_put(w, pkt, &(uint16_t) { (uint16_t)n }, 1,
		    eos ? OGGW_EOS : 0, false, fn, arg);
	}
	memcpy(w->pend + w->pend_len, pkt, n);
	w->pend_len += n;
	w->pend_size[w->npend++] = (uint16_t)n;
	w->granule += samples48;
	return last ? oggw_put_pend(w, eos ? OGGW_EOS : 0, fn, arg) : 0;
}
