/*
 * oggw.c - Ogg Opus pages with libogg (it computes the CRCs).
 */
#include "oggw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>

#define OGGW_PAGE_CAP 4096 /* a 20 ms packet's page is < 1600 bytes */

struct oggw {
	ogg_stream_state os;
	bool             begun;
	int64_t          granule; /* 48 kHz samples written so far */
	int64_t          packetno;
	uint8_t         *page; /* header + body of the page being handed out */
	size_t           cap;
};

int
oggw_alloc(struct oggw **out)
{
	struct oggw *w;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ENOMEM;
	if ((w->page = malloc(OGGW_PAGE_CAP)) == NULL
	    || ogg_stream_init(&w->os, 0) != 0) {
		free(w->page);
		free(w);
		return ENOMEM;
	}
	w->cap = OGGW_PAGE_CAP;
	*out   = w;
	return 0;
}

void
oggw_free(struct oggw *w)
{
	if (w == NULL)
		return;
	ogg_stream_clear(&w->os);
	free(w->page);
	free(w);
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

/* Flushes what libogg holds as whole pages, one per call of fn. */
static int
oggw_flush(struct oggw *w, bool header, oggw_page_fn fn, void *arg)
{
	ogg_page og;

	while (ogg_stream_flush(&w->os, &og) != 0) {
		size_t n = (size_t)og.header_len + (size_t)og.body_len;
		if (n > w->cap) {
			uint8_t *p = realloc(w->page, n);
			if (p == NULL)
				return ENOMEM;
			w->page = p;
			w->cap  = n;
		}
		memcpy(w->page, og.header, (size_t)og.header_len);
		memcpy(w->page + og.header_len, og.body, (size_t)og.body_len);
		fn(arg, w->page, n, header);
	}
	return 0;
}

static int
oggw_put(struct oggw *w, const uint8_t *data, size_t n, bool bos, bool eos,
    bool header, oggw_page_fn fn, void *arg)
{
	ogg_packet op = { 0 };

	op.packet     = (unsigned char *)data;
	op.bytes      = (long)n;
	op.b_o_s      = bos;
	op.e_o_s      = eos;
	op.granulepos = w->granule;
	op.packetno   = w->packetno++;
	if (ogg_stream_packetin(&w->os, &op) != 0)
		return ENOMEM;
	return oggw_flush(w, header, fn, arg);
}

int
oggw_begin(struct oggw *w, uint32_t serial, uint32_t input_rate,
    uint16_t preskip, oggw_page_fn fn, void *arg)
{
	uint8_t head[OGGW_OPUSHEAD_LEN];
	uint8_t tags[8 + 4 + sizeof(OGGW_VENDOR) - 1 + 4];
	size_t  vlen = sizeof(OGGW_VENDOR) - 1;
	int     rc;

	/* libogg keeps the serial as an int; the bits are what count. */
	if (ogg_stream_reset_serialno(&w->os, (int)serial) != 0)
		return ENOMEM;
	w->granule  = 0;
	w->packetno = 0;
	w->begun    = true;
	oggw_opushead(head, input_rate, preskip);
	memcpy(tags, "OpusTags", 8);
	le32(tags + 8, (uint32_t)vlen);
	memcpy(tags + 12, OGGW_VENDOR, vlen);
	le32(tags + 12 + vlen, 0); /* no user comments */
	if ((rc = oggw_put(w, head, sizeof(head), true, false, true, fn, arg))
	    != 0)
		return rc;
	return oggw_put(w, tags, sizeof(tags), false, false, true, fn, arg);
}

int
oggw_packet(struct oggw *w, const uint8_t *pkt, size_t n, uint32_t samples48,
    bool eos, oggw_page_fn fn, void *arg)
{
	if (!w->begun || n == 0)
		return EINVAL;
	w->granule += samples48;
	if (eos)
		w->begun = false;
	return oggw_put(w, pkt, n, false, eos, false, fn, arg);
}
