/*
 * oggstrict.c - the strict streaming Ogg reader (see oggstrict.h).
 *
 * The checks and their order follow RustAudio/ogg 0.9.2 src/reading.rs:
 * capture search (UntilPageHeaderReader), version at PageParser::new, CRC
 * at parse_packet_data, stream rules at BasePacketReader::push_page.
 */
#include "oggstrict.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR_LEN 27
#define MAX_SEGS 255

/* Table for the Ogg CRC (polynomial 0x04C11DB7, MSB first). */
static const uint32_t crc_table[256] = {
	0x00000000,
	0x04c11db7,
	0x09823b6e,
	0x0d4326d9,
	0x130476dc,
	0x17c56b6b,
	0x1a864db2,
	0x1e475005,
	0x2608edb8,
	0x22c9f00f,
	0x2f8ad6d6,
	0x2b4bcb61,
	0x350c9b64,
	0x31cd86d3,
	0x3c8ea00a,
	0x384fbdbd,
	0x4c11db70,
	0x48d0c6c7,
	0x4593e01e,
	0x4152fda9,
	0x5f15adac,
	0x5bd4b01b,
	0x569796c2,
	0x52568b75,
	0x6a1936c8,
	0x6ed82b7f,
	0x639b0da6,
	0x675a1011,
	0x791d4014,
	0x7ddc5da3,
	0x709f7b7a,
	0x745e66cd,
	0x9823b6e0,
	0x9ce2ab57,
	0x91a18d8e,
	0x95609039,
	0x8b27c03c,
	0x8fe6dd8b,
	0x82a5fb52,
	0x8664e6e5,
	0xbe2b5b58,
	0xbaea46ef,
	0xb7a96036,
	0xb3687d81,
	0xad2f2d84,
	0xa9ee3033,
	0xa4ad16ea,
	0xa06c0b5d,
	0xd4326d90,
	0xd0f37027,
	0xddb056fe,
	0xd9714b49,
	0xc7361b4c,
	0xc3f706fb,
	0xceb42022,
	0xca753d95,
	0xf23a8028,
	0xf6fb9d9f,
	0xfbb8bb46,
	0xff79a6f1,
	0xe13ef6f4,
	0xe5ffeb43,
	0xe8bccd9a,
	0xec7dd02d,
	0x34867077,
	0x30476dc0,
	0x3d044b19,
	0x39c556ae,
	0x278206ab,
	0x23431b1c,
	0x2e003dc5,
	0x2ac12072,
	0x128e9dcf,
	0x164f8078,
	0x1b0ca6a1,
	0x1fcdbb16,
	0x018aeb13,
	0x054bf6a4,
	0x0808d07d,
	0x0cc9cdca,
	0x7897ab07,
	0x7c56b6b0,
	0x71159069,
	0x75d48dde,
	0x6b93dddb,
	0x6f52c06c,
	0x6211e6b5,
	0x66d0fb02,
	0x5e9f46bf,
	0x5a5e5b08,
	0x571d7dd1,
	0x53dc6066,
	0x4d9b3063,
	0x495a2dd4,
	0x44190b0d,
	0x40d816ba,
	0xaca5c697,
	0xa864db20,
	0xa527fdf9,
	0xa1e6e04e,
	0xbfa1b04b,
	0xbb60adfc,
	0xb6238b25,
	0xb2e29692,
	0x8aad2b2f,
	0x8e6c3698,
	0x832f1041,
	0x87ee0df6,
	0x99a95df3,
	0x9d684044,
	0x902b669d,
	0x94ea7b2a,
	0xe0b41de7,
	0xe4750050,
	0xe9362689,
	0xedf73b3e,
	0xf3b06b3b,
	0xf771768c,
	0xfa325055,
	0xfef34de2,
	0xc6bcf05f,
	0xc27dede8,
	0xcf3ecb31,
	0xcbffd686,
	0xd5b88683,
	0xd1799b34,
	0xdc3abded,
	0xd8fba05a,
	0x690ce0ee,
	0x6dcdfd59,
	0x608edb80,
	0x644fc637,
	0x7a089632,
	0x7ec98b85,
	0x738aad5c,
	0x774bb0eb,
	0x4f040d56,
	0x4bc510e1,
	0x46863638,
	0x42472b8f,
	0x5c007b8a,
	0x58c1663d,
	0x558240e4,
	0x51435d53,
	0x251d3b9e,
	0x21dc2629,
	0x2c9f00f0,
	0x285e1d47,
	0x36194d42,
	0x32d850f5,
	0x3f9b762c,
	0x3b5a6b9b,
	0x0315d626,
	0x07d4cb91,
	0x0a97ed48,
	0x0e56f0ff,
	0x1011a0fa,
	0x14d0bd4d,
	0x19939b94,
	0x1d528623,
	0xf12f560e,
	0xf5ee4bb9,
	0xf8ad6d60,
	0xfc6c70d7,
	0xe22b20d2,
	0xe6ea3d65,
	0xeba91bbc,
	0xef68060b,
	0xd727bbb6,
	0xd3e6a601,
	0xdea580d8,
	0xda649d6f,
	0xc423cd6a,
	0xc0e2d0dd,
	0xcda1f604,
	0xc960ebb3,
	0xbd3e8d7e,
	0xb9ff90c9,
	0xb4bcb610,
	0xb07daba7,
	0xae3afba2,
	0xaafbe615,
	0xa7b8c0cc,
	0xa379dd7b,
	0x9b3660c6,
	0x9ff77d71,
	0x92b45ba8,
	0x9675461f,
	0x8832161a,
	0x8cf30bad,
	0x81b02d74,
	0x857130c3,
	0x5d8a9099,
	0x594b8d2e,
	0x5408abf7,
	0x50c9b640,
	0x4e8ee645,
	0x4a4ffbf2,
	0x470cdd2b,
	0x43cdc09c,
	0x7b827d21,
	0x7f436096,
	0x7200464f,
	0x76c15bf8,
	0x68860bfd,
	0x6c47164a,
	0x61043093,
	0x65c52d24,
	0x119b4be9,
	0x155a565e,
	0x18197087,
	0x1cd86d30,
	0x029f3d35,
	0x065e2082,
	0x0b1d065b,
	0x0fdc1bec,
	0x3793a651,
	0x3352bbe6,
	0x3e119d3f,
	0x3ad08088,
	0x2497d08d,
	0x2056cd3a,
	0x2d15ebe3,
	0x29d4f654,
	0xc5a92679,
	0xc1683bce,
	0xcc2b1d17,
	0xc8ea00a0,
	0xd6ad50a5,
	0xd26c4d12,
	0xdf2f6bcb,
	0xdbee767c,
	0xe3a1cbc1,
	0xe760d676,
	0xea23f0af,
	0xeee2ed18,
	0xf0a5bd1d,
	0xf464a0aa,
	0xf9278673,
	0xfde69bc4,
	0x89b8fd09,
	0x8d79e0be,
	0x803ac667,
	0x84fbdbd0,
	0x9abc8bd5,
	0x9e7d9662,
	0x933eb0bb,
	0x97ffad0c,
	0xafb010b1,
	0xab710d06,
	0xa6322bdf,
	0xa2f33668,
	0xbcb4666d,
	0xb8757bda,
	0xb5365d03,
	0xb1f740b4,
};

enum rstate { R_SEARCH, R_HEADER, R_SEGS, R_BODY };

struct ostream {
	uint32_t serial;
	bool     ends_continued; /* last page ended inside a packet */
	uint64_t packets;
	uint8_t *part; /* the unfinished packet so far */
	size_t   part_len, part_cap;
};

struct oggstrict {
	struct oggstrict_ops ops;
	void                *arg;
	enum rstate          st;
	int                  fatal; /* kind, or -1 */
	bool                 stopped;
	uint8_t              cpt; /* capture pattern bytes matched */
	size_t               search_bytes; /* read while looking for a page */
	uint8_t              hdr[HDR_LEN + MAX_SEGS];
	size_t               hdr_have;
	uint8_t             *body;
	size_t               body_len, body_have, body_cap;
	struct ostream      *streams;
	size_t               nstreams, cap_streams;
	uint64_t             counts[OGGSTRICT_KIND_N];
	uint64_t             pages, packets, garbage_bytes;
};

static const char *const kind_names[OGGSTRICT_KIND_N] = {
	[OGGSTRICT_GARBAGE]          = "garbage",
	[OGGSTRICT_NO_CAPTURE]       = "no_capture",
	[OGGSTRICT_BAD_VERSION]      = "bad_version",
	[OGGSTRICT_BAD_CRC]          = "bad_crc",
	[OGGSTRICT_NO_BOS]           = "no_bos",
	[OGGSTRICT_CONTINUED_FIRST]  = "continued_first",
	[OGGSTRICT_SECOND_BOS]       = "second_bos",
	[OGGSTRICT_BAD_CONTINUATION] = "bad_continuation",
};

const char *
oggstrict_kind_name(enum oggstrict_kind k)
{
	return (unsigned)k < OGGSTRICT_KIND_N ? kind_names[k] : "unknown";
}

bool
oggstrict_kind_fatal(enum oggstrict_kind k)
{
	return k != OGGSTRICT_GARBAGE;
}

uint32_t
oggstrict_crc(uint32_t crc, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		crc = (crc << 8) ^ crc_table[((crc >> 24) ^ buf[i]) & 0xff];
	return crc;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
	    | (uint32_t)p[3] << 24;
}

static uint64_t
rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

int
oggstrict_alloc(
    struct oggstrict **out, const struct oggstrict_ops *ops, void *arg)
{
	struct oggstrict *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return ENOMEM;
	r->ops   = *ops;
	r->arg   = arg;
	r->fatal = -1;
	*out     = r;
	return 0;
}

void
oggstrict_free(struct oggstrict *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nstreams; i++)
		free(r->streams[i].part);
	free(r->streams);
	free(r->body);
	free(r);
}

int
oggstrict_fatal(const struct oggstrict *r)
{
	return r->fatal;
}

uint64_t
oggstrict_count(const struct oggstrict *r, enum oggstrict_kind k)
{
	return (unsigned)k < OGGSTRICT_KIND_N ? r->counts[k] : 0;
}

uint64_t
oggstrict_pages(const struct oggstrict *r)
{
	return r->pages;
}

uint64_t
oggstrict_packets(const struct oggstrict *r)
{
	return r->packets;
}

uint64_t
oggstrict_garbage_bytes(const struct oggstrict *r)
{
	return r->garbage_bytes;
}

/* Counts and reports a violation; a fatal one kills the reader. Returns
 * the kind if fatal, else 0. */
static int violate(struct oggstrict *r, enum oggstrict_kind k, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static int
violate(struct oggstrict *r, enum oggstrict_kind k, const char *fmt, ...)
{
	char    detail[160];
	va_list ap;

	r->counts[k]++;
	if (r->ops.violation != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
		r->ops.violation(r->arg, k, detail);
	}
	if (!oggstrict_kind_fatal(k))
		return 0;
	r->fatal = (int)k;
	return (int)k;
}

static int
part_append(struct ostream *s, const uint8_t *p, size_t n)
{
	if (s->part_len + n > s->part_cap) {
		size_t   cap = s->part_cap ? s->part_cap : 1024;
		uint8_t *b;

		while (cap < s->part_len + n)
			cap *= 2;
		if ((b = realloc(s->part, cap)) == NULL)
			return ENOMEM;
		s->part     = b;
		s->part_cap = cap;
	}
	memcpy(s->part + s->part_len, p, n);
	s->part_len += n;
	return 0;
}

static struct ostream *
stream_find(struct oggstrict *r, uint32_t serial)
{
	for (size_t i = 0; i < r->nstreams; i++)
		if (r->streams[i].serial == serial)
			return &r->streams[i];
	return NULL;
}

static struct ostream *
stream_add(struct oggstrict *r, uint32_t serial)
{
	if (r->nstreams == r->cap_streams) {
		size_t          cap = r->cap_streams ? r->cap_streams * 2 : 2;
		struct ostream *s   = realloc(r->streams, cap * sizeof(*s));

		if (s == NULL)
			return NULL;
		r->streams     = s;
		r->cap_streams = cap;
	}
	memset(&r->streams[r->nstreams], 0, sizeof(r->streams[0]));
	r->streams[r->nstreams].serial = serial;
	return &r->streams[r->nstreams++];
}

/* A page passed its CRC: apply the crate's stream rules, then hand out
 * the packets that end on it. */
static int
page_push(struct oggstrict *r)
{
	const uint8_t        *h     = r->hdr;
	uint8_t               flags = h[5];
	bool                  cont = flags & 0x01, bos = flags & 0x02;
	uint32_t              serial = rd32(h + 14);
	size_t                nsegs  = h[26];
	const uint8_t        *segs   = h + HDR_LEN;
	struct ostream       *s      = stream_find(r, serial);
	struct oggstrict_page pg     = {
		    .serial  = serial,
		    .seq     = rd32(h + 18),
		    .granule = rd64(h + 6),
		    .flags   = flags,
		    .size    = HDR_LEN + nsegs + r->body_len,
		    .nsegs   = nsegs,
	};
	size_t ncomplete = 0, idx = 0, off = 0, cur = 0;

	if (s != NULL) {
		if (bos)
			return violate(r, OGGSTRICT_SECOND_BOS,
			    "BOS page again for serial %08x (seq %u)", serial,
			    pg.seq);
		if (cont != s->ends_continued)
			return violate(r, OGGSTRICT_BAD_CONTINUATION,
			    "serial %08x seq %u: continued flag %d but the "
			    "previous page %s",
			    serial, pg.seq, cont,
			    s->ends_continued ? "ended inside a packet"
			                      : "ended on a packet boundary");
	} else {
		if (!bos)
			return violate(r, OGGSTRICT_NO_BOS,
			    "first page of serial %08x (seq %u) has no BOS "
			    "flag",
			    serial, pg.seq);
		if (cont)
			return violate(r, OGGSTRICT_CONTINUED_FIRST,
			    "first page of serial %08x starts with a "
			    "continued packet",
			    serial);
		if ((s = stream_add(r, serial)) == NULL)
			return ENOMEM;
	}
	r->pages++;
	if (r->ops.page != NULL)
		r->ops.page(r->arg, &pg);

	for (size_t i = 0; i < nsegs; i++)
		ncomplete += segs[i] < 255;
	for (size_t i = 0; i < nsegs; i++) {
		cur += segs[i];
		if (segs[i] == 255)
			continue;
		struct oggstrict_packet p = {
			.data            = r->body + off,
			.len             = cur,
			.serial          = serial,
			.page_seq        = pg.seq,
			.granule         = pg.granule,
			.first_in_stream = s->packets == 0,
			.last_in_page    = idx + 1 == ncomplete,
		};
		if (idx == 0 && cont) {
			/* Glue the pieces carried over from earlier pages. */
			if (part_append(s, r->body + off, cur))
				return ENOMEM;
			p.data = s->part;
			p.len  = s->part_len;
		}
		off += cur;
		cur = 0;
		idx++;
		s->packets++;
		r->packets++;
		int rc = r->ops.packet ? r->ops.packet(r->arg, &p) : 0;
		if (idx == 1 && cont)
			s->part_len = 0;
		if (rc != 0) {
			r->stopped = true;
			return OGGSTRICT_STOPPED;
		}
	}
	if (cur > 0 && part_append(s, r->body + off, cur))
		return ENOMEM;
	/* The crate: an empty page keeps whatever continuation it has. */
	s->ends_continued = nsegs > 0 ? segs[nsegs - 1] == 255 : cont;
	return 0;
}

static int
page_done(struct oggstrict *r)
{
	uint8_t  save[4];
	uint32_t want = rd32(r->hdr + 22), got;
	size_t   hlen = HDR_LEN + r->hdr[26];
	int      rc;

	memcpy(save, r->hdr + 22, 4);
	memset(r->hdr + 22, 0, 4);
	got = oggstrict_crc(0, r->hdr, hlen);
	got = oggstrict_crc(got, r->body, r->body_len);
	memcpy(r->hdr + 22, save, 4);
	r->st           = R_SEARCH;
	r->cpt          = 0;
	r->search_bytes = 0;
	if (got != want)
		return violate(r, OGGSTRICT_BAD_CRC,
		    "page serial %08x seq %u: CRC %08x, computed %08x",
		    rd32(r->hdr + 14), rd32(r->hdr + 18), want, got);
	rc = page_push(r);
	/* ENOMEM is not the client's fault: report it as a stop. */
	return rc == ENOMEM ? OGGSTRICT_STOPPED : rc;
}

static int
header_done(struct oggstrict *r)
{
	if (r->hdr[4] != 0)
		return violate(r, OGGSTRICT_BAD_VERSION,
		    "stream structure version %u", r->hdr[4]);
	r->st = R_SEGS;
	return 0;
}

static int
segs_done(struct oggstrict *r)
{
	size_t n = r->hdr[26], len = 0;

	for (size_t i = 0; i < n; i++)
		len += r->hdr[HDR_LEN + i];
	if (len > r->body_cap) {
		uint8_t *b = realloc(r->body, len);
		if (b == NULL)
			return OGGSTRICT_STOPPED;
		r->body     = b;
		r->body_cap = len;
	}
	r->body_len  = len;
	r->body_have = 0;
	r->st        = R_BODY;
	return len == 0 ? page_done(r) : 0;
}

int
oggstrict_feed(struct oggstrict *r, const uint8_t *buf, size_t len)
{
	size_t i = 0;
	int    rc;

	if (r->fatal >= 0)
		return r->fatal;
	if (r->stopped)
		return OGGSTRICT_STOPPED;
	while (i < len) {
		switch (r->st) {
		case R_SEARCH:
			while (i < len) {
				uint8_t c = buf[i++];
				r->search_bytes++;
				if (c == 'O')
					r->cpt = 1;
				else if (c == 'g'
				    && (r->cpt == 1 || r->cpt == 2))
					r->cpt++;
				else if (c == 'S' && r->cpt == 3)
					break;
				else
					r->cpt = 0;
				if (r->search_bytes
				    > OGGSTRICT_CAPTURE_LIMIT) {
					r->garbage_bytes += r->search_bytes;
					return violate(r, OGGSTRICT_NO_CAPTURE,
					    "no capture pattern in %zu bytes",
					    r->search_bytes);
				}
			}
			if (r->cpt != 3 || buf[i - 1] != 'S')
				break;
			if (r->search_bytes > 4) {
				size_t g = r->search_bytes - 4;
				r->garbage_bytes += g;
				violate(r, OGGSTRICT_GARBAGE,
				    "%zu bytes before a capture pattern", g);
			}
			memcpy(r->hdr, "OggS", 4);
			r->hdr_have = 4;
			r->cpt      = 0;
			r->st       = R_HEADER;
			break;
		case R_HEADER: {
			size_t n = HDR_LEN - r->hdr_have;
			if (n > len - i)
				n = len - i;
			memcpy(r->hdr + r->hdr_have, buf + i, n);
			r->hdr_have += n;
			r->search_bytes += n;
			i += n;
			if (r->search_bytes > OGGSTRICT_CAPTURE_LIMIT)
				return violate(r, OGGSTRICT_NO_CAPTURE,
				    "page header ends %zu bytes into the "
				    "search",
				    r->search_bytes);
			if (r->hdr_have == HDR_LEN && (rc = header_done(r)))
				return rc;
			if (r->st == R_SEGS && r->hdr[26] == 0
			    && (rc = segs_done(r)))
				return rc;
			break;
		}
		case R_SEGS: {
			size_t want = HDR_LEN + r->hdr[26];
			size_t n    = want - r->hdr_have;
			if (n > len - i)
				n = len - i;
			memcpy(r->hdr + r->hdr_have, buf + i, n);
			r->hdr_have += n;
			i += n;
			if (r->hdr_have == want && (rc = segs_done(r)))
				return rc;
			break;
		}
		case R_BODY: {
			size_t n = r->body_len - r->body_have;
			if (n > len - i)
				n = len - i;
			memcpy(r->body + r->body_have, buf + i, n);
			r->body_have += n;
			i += n;
			if (r->body_have == r->body_len && (rc = page_done(r)))
				return rc;
			break;
		}
		}
	}
	return 0;
}
