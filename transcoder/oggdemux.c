/*
 * oggdemux.c - pages found and packets joined by hand (RFC 3533), the CRC
 * checked by libogg. libogg's sync and stream states held 17 kB resident
 * per call (measured) for a stream that nearly always arrives as whole
 * pages of whole packets; here those are read where they lie, and bytes
 * are copied only for a page cut between chunks or a packet spanning
 * pages, into buffers freed once they grow past OGGDEMUX_KEEP.
 */
#include "oggdemux.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ogg/ogg.h>

#define OGG_HEADER 27 /* a page header before its segment table */
#define OGG_PAGE_MAX (OGG_HEADER + 255 + 255 * 255)
#define OGGDEMUX_PACKET_MAX 65536 /* past this a packet is dropped */
#define OGGDEMUX_KEEP 4096 /* larger buffers are freed once empty */

struct buf {
	uint8_t *p;
	size_t   n, cap;
};

struct oggdemux {
	struct buf carry; /* the start of a page cut between chunks */
	struct buf pkt; /* a packet continued on the next page */
	bool       partial; /* pkt holds the start of a packet */
	bool       dropping; /* the packet being continued was dropped */
	bool       unsynced; /* a sync error has been counted */
	bool       in_stream; /* serial and pageno hold a stream's */
	uint32_t   serial;
	uint32_t   pageno; /* the next page's expected sequence number */
	struct oggdemux_stats st;
};

int
oggdemux_alloc(struct oggdemux **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ENOMEM;
}

void
oggdemux_free(struct oggdemux *d)
{
	if (d == NULL)
		return;
	free(d->carry.p);
	free(d->pkt.p);
	free(d);
}

/* Empties b, and frees it if it grew past what is worth keeping. */
static void
buf_clear(struct buf *b)
{
	b->n = 0;
	if (b->cap > OGGDEMUX_KEEP) {
		free(b->p);
		b->p   = NULL;
		b->cap = 0;
	}
}

static int
buf_add(struct buf *b, const uint8_t *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t   cap = b->cap ? b->cap : 512;
		uint8_t *q;
		while (cap < b->n + n)
			cap *= 2;
		if ((q = realloc(b->p, cap)) == NULL)
			return ENOMEM;
		b->p   = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

void
oggdemux_reset(struct oggdemux *d)
{
	buf_clear(&d->carry);
	buf_clear(&d->pkt);
	d->partial   = false;
	d->dropping  = false;
	d->unsynced  = false;
	d->in_stream = false;
	d->serial    = 0;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
	    | (uint32_t)p[3] << 24;
}

/* Drops the packet being continued: a hole (one already dropped as too
 * long was counted then). */
static void
oggdemux_drop(struct oggdemux *d)
{
	if (d->partial)
		d->st.holes++;
	buf_clear(&d->pkt);
	d->partial  = false;
	d->dropping = false;
}

static void
oggdemux_packet(struct oggdemux *d, const uint8_t *p, size_t n,
    oggdemux_packet_fn fn, void *arg)
{
	if (n == 0)
		return;
	if (n >= 8
	    && (memcmp(p, "OpusHead", 8) == 0
	        || memcmp(p, "OpusTags", 8) == 0)) {
		d->st.headers++;
		return;
	}
	d->st.packets++;
	fn(arg, p, n);
}

/* Ends a packet whose last segment is p, n: whole on this page, or the
 * tail of the one in d->pkt. */
static void
oggdemux_end(struct oggdemux *d, const uint8_t *p, size_t n,
    oggdemux_packet_fn fn, void *arg)
{
	if (d->dropping) {
		d->dropping = false;
		return;
	}
	if (!d->partial) {
		oggdemux_packet(d, p, n, fn, arg);
		return;
	}
	d->partial = false;
	if (d->pkt.n + n > OGGDEMUX_PACKET_MAX || buf_add(&d->pkt, p, n) != 0) {
		d->st.holes++;
		buf_clear(&d->pkt);
		return;
	}
	oggdemux_packet(d, d->pkt.p, d->pkt.n, fn, arg);
	buf_clear(&d->pkt);
}

/* Keeps the start of a packet that goes on past this page. */
static void
oggdemux_begin(struct oggdemux *d, const uint8_t *p, size_t n)
{
	if (d->dropping)
		return;
	if (d->pkt.n + n > OGGDEMUX_PACKET_MAX || buf_add(&d->pkt, p, n) != 0) {
		/* Too long to be Opus, or no memory: lost, up to its end. */
		d->st.holes++;
		buf_clear(&d->pkt);
		d->partial  = false;
		d->dropping = true;
		return;
	}
	d->partial = true;
}

/* A whole page with a good CRC: hl bytes of header and segment table, then
 * the body. */
static void
oggdemux_page(struct oggdemux *d, const uint8_t *pg, size_t hl,
    oggdemux_packet_fn fn, void *arg)
{
	uint32_t       serial = rd32(pg + 14), pageno = rd32(pg + 18);
	bool           bos = pg[5] & 0x02, cont = pg[5] & 0x01;
	const uint8_t *body = pg + hl, *seg = pg + OGG_HEADER;
	size_t         nseg = pg[26], i = 0, start = 0, len = 0;

	d->st.pages++;
	if (bos || !d->in_stream || serial != d->serial) {
		/* A new stream. Joining one midway (no BOS) still plays: the
		 * transcoder may restart during a session. */
		buf_clear(&d->pkt);
		d->partial   = false;
		d->dropping  = false;
		d->in_stream = true;
		d->serial    = serial;
		d->st.streams++;
		if (!bos)
			d->st.no_bos++;
	} else if (pageno != d->pageno) {
		d->st.holes++; /* pages lost: what they cut is lost too */
		buf_clear(&d->pkt);
		d->partial  = false;
		d->dropping = false;
	}
	d->pageno = pageno + 1;
	if (pg[4] != 0) { /* a version we do not know: no packets from it */
		d->st.holes++;
		oggdemux_drop(d);
		return;
	}
	if (cont && !d->partial && !d->dropping) {
		/* The start of this packet is not here: skip its segments. */
		while (i < nseg) {
			start += seg[i];
			if (seg[i++] < 255)
				break;
		}
	} else if (!cont && (d->partial || d->dropping)) {
		oggdemux_drop(d); /* the packet's end never came */
	}
	for (; i < nseg; i++) {
		len += seg[i];
		if (seg[i] < 255) {
			oggdemux_end(d, body + start, len, fn, arg);
			start += len;
			len = 0;
		}
	}
	if (len > 0) /* the page ended on 255: the packet goes on */
		oggdemux_begin(d, body + start, len);
}

/* Reads the pages that begin in p[0..n): returns how many bytes it used
 * up; the rest is the start of a page still arriving (fewer than
 * OGG_PAGE_MAX bytes). Decides only on whole pages, so the packets do
 * not depend on how the bytes were cut. */
static size_t
oggdemux_scan(struct oggdemux *d, const uint8_t *p, size_t n,
    oggdemux_packet_fn fn, void *arg)
{
	size_t at = 0;

	while (n - at >= OGG_HEADER) {
		const uint8_t *pg = p + at;
		size_t         hl, bl = 0;
		uint8_t        hdr[OGG_HEADER + 255];
		ogg_page       og;

		if (memcmp(pg, "OggS", 4) == 0) {
			hl = OGG_HEADER + pg[26];
			if (n - at < hl)
				break;
			for (size_t i = 0; i < pg[26]; i++)
				bl += pg[OGG_HEADER + i];
			if (n - at < hl + bl)
				break;
			/* libogg writes the CRC into the header: a copy. */
			memcpy(hdr, pg, hl);
			memset(hdr + 22, 0, 4);
			og.header     = hdr;
			og.header_len = (long)hl;
			og.body       = (unsigned char *)(uintptr_t)(pg + hl);
			og.body_len   = (long)bl;
			ogg_page_checksum_set(&og);
			if (memcmp(hdr + 22, pg + 22, 4) == 0) {
				d->unsynced = false;
				oggdemux_page(d, pg, hl, fn, arg);
				at += hl + bl;
				continue;
			}
		}
		/* Not a page here: skip to the next 'O', said once per loss. */
		if (!d->unsynced) {
			d->unsynced = true;
			d->st.sync_errors++;
		}
		const uint8_t *o = memchr(pg + 1, 'O', n - at - 1);
		at               = o ? (size_t)(o - p) : n;
	}
	return at;
}

/* Bytes the page that starts p[0..n) still needs before it can be read. */
static size_t
oggdemux_need(const uint8_t *p, size_t n)
{
	size_t hl, len;

	if (n < OGG_HEADER)
		return OGG_HEADER - n;
	hl = OGG_HEADER + p[26];
	if (n < hl)
		return hl - n;
	len = hl;
	for (size_t i = 0; i < p[26]; i++)
		len += p[OGG_HEADER + i];
	return len > n ? len - n : 1;
}

int
oggdemux_feed(struct oggdemux *d, const uint8_t *buf, size_t n,
    oggdemux_packet_fn fn, void *arg)
{
	size_t used;

	while (n > 0) {
		if (d->carry.n == 0) {
			/* The usual case: whole pages, read where they lie. */
			used = oggdemux_scan(d, buf, n, fn, arg);
			if (used < n && buf_add(&d->carry, buf + used, n - used))
				goto nomem;
			return 0;
		}
		/* Complete the page begun in carry, and no more. */
		size_t k = oggdemux_need(d->carry.p, d->carry.n);
		if (k > n)
			k = n;
		if (buf_add(&d->carry, buf, k) != 0)
			goto nomem;
		buf += k;
		n -= k;
		used = oggdemux_scan(d, d->carry.p, d->carry.n, fn, arg);
		d->carry.n -= used;
		memmove(d->carry.p, d->carry.p + used, d->carry.n);
		if (d->carry.n == 0)
			buf_clear(&d->carry);
	}
	return 0;
nomem:
	/* The bytes are lost; the next page found says so as a sync error. */
	buf_clear(&d->carry);
	d->unsynced = false;
	return ENOMEM;
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
