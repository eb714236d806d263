/*
 * oggdemux.c - ogg_sync finds and checks pages (CRC), ogg_stream
 * reassembles packets across pages.
 */
#include "oggdemux.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>

struct oggdemux {
	ogg_sync_state        sync;
	ogg_stream_state      stream;
	bool                  in_stream; /* stream holds a serial */
	uint32_t              serial;
	struct oggdemux_stats st;
};

int
oggdemux_alloc(struct oggdemux **out)
{
	struct oggdemux *d;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return ENOMEM;
	ogg_sync_init(&d->sync);
	if (ogg_stream_init(&d->stream, 0) != 0) {
		ogg_sync_clear(&d->sync);
		free(d);
		return ENOMEM;
	}
	*out = d;
	return 0;
}

void
oggdemux_free(struct oggdemux *d)
{
	if (d == NULL)
		return;
	ogg_sync_clear(&d->sync);
	ogg_stream_clear(&d->stream);
	free(d);
}

void
oggdemux_reset(struct oggdemux *d)
{
	ogg_sync_reset(&d->sync);
	ogg_stream_reset(&d->stream);
	d->in_stream = false;
	d->serial    = 0;
}

static bool
is_header(const ogg_packet *op)
{
	return op->bytes >= 8
	    && (memcmp(op->packet, "OpusHead", 8) == 0
	        || memcmp(op->packet, "OpusTags", 8) == 0);
}

static void
oggdemux_page(
    struct oggdemux *d, ogg_page *og, oggdemux_packet_fn fn, void *arg)
{
	uint32_t   serial = (uint32_t)ogg_page_serialno(og);
	ogg_packet op;
	int        rc;

	d->st.pages++;
	if (ogg_page_bos(og) || !d->in_stream || serial != d->serial) {
		/* A new stream. Joining one midway (no BOS) still plays: the
		 * transcoder may restart during a session. */
		ogg_stream_reset_serialno(&d->stream, (int)serial);
		d->in_stream = true;
		d->serial    = serial;
		d->st.streams++;
		if (!ogg_page_bos(og))
			d->st.no_bos++;
	}
	if (ogg_stream_pagein(&d->stream, og) != 0) {
		d->st.holes++;
		return;
	}
	while ((rc = ogg_stream_packetout(&d->stream, &op)) != 0) {
		if (rc < 0) {
			d->st.holes++; /* libogg skips the cut packet */
			continue;
		}
		if (is_header(&op)) {
			d->st.headers++;
			continue;
		}
		if (op.bytes <= 0)
			continue;
		d->st.packets++;
		fn(arg, op.packet, (size_t)op.bytes);
	}
}

int
oggdemux_feed(struct oggdemux *d, const uint8_t *buf, size_t n,
    oggdemux_packet_fn fn, void *arg)
{
	ogg_page og;
	int      rc;

	while (n > 0) {
		/* Bounded slices keep libogg's buffer small whatever n is. */
		size_t k = n < 65536 ? n : 65536;
		char  *p = ogg_sync_buffer(&d->sync, (long)k);
		if (p == NULL) {
			ogg_sync_reset(&d->sync);
			return ENOMEM;
		}
		memcpy(p, buf, k);
		ogg_sync_wrote(&d->sync, (long)k);
		buf += k;
		n -= k;
		/* -1: bytes skipped (bad CRC, garbage), said once per loss. */
		while ((rc = ogg_sync_pageout(&d->sync, &og)) != 0) {
			if (rc < 0)
				d->st.sync_errors++;
			else
				oggdemux_page(d, &og, fn, arg);
		}
	}
	return 0;
}

void
oggdemux_stats(const struct oggdemux *d, struct oggdemux_stats *out)
{
	*out = d->st;
}

uint32_t
oggdemux_serial(const struct oggdemux *d)
{
	return d->serial;
}
