/*
 * oggstrict_test.c - the strict reader against golden bytes, hand-made
 * pages (one rule broken at a time) and libogg's writer.
 */
#include "oggstrict.h"
#include "test.h"

#include <ogg/ogg.h>
#include <stdint.h>

/* research/personaplex.md §3.2: sphn's first two pages. */
static const uint8_t golden0[] = { 0x4f, 0x67, 0x67, 0x53, 0x00, 0x02, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0xef, 0x88, 0x87, 0x22, 0x01, 0x13, 0x4f, 0x70, 0x75,
	0x73, 0x48, 0x65, 0x61, 0x64, 0x01, 0x01, 0x00, 0x0f, 0xc0, 0x5d, 0x00,
	0x00, 0x00, 0x00, 0x00 };
static const uint8_t golden1[] = { 0x4f, 0x67, 0x67, 0x53, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x00, 0x00, 0xbf, 0xd8, 0x21, 0xe5, 0x01, 0x19, 0x4f, 0x70, 0x75,
	0x73, 0x54, 0x61, 0x67, 0x73, 0x09, 0x00, 0x00, 0x00, 0x73, 0x70, 0x68,
	0x6e, 0x2d, 0x70, 0x79, 0x6f, 0x33, 0x00, 0x00, 0x00, 0x00 };

#define MAXP 64

struct rec {
	size_t   npk, npages;
	size_t   len[MAXP];
	uint8_t  first[MAXP]; /* first byte of each packet */
	uint8_t  last[MAXP]; /* last byte */
	uint32_t serial[MAXP];
	int      first_in_stream[MAXP], last_in_page[MAXP];
	int      viol[OGGSTRICT_KIND_N];
	int      stop_after; /* stop the feed after this many packets */
};

static int
on_packet(void *arg, const struct oggstrict_packet *p)
{
	struct rec *r = arg;
	if (r->npk < MAXP) {
		r->len[r->npk]             = p->len;
		r->first[r->npk]           = p->len ? p->data[0] : 0;
		r->last[r->npk]            = p->len ? p->data[p->len - 1] : 0;
		r->serial[r->npk]          = p->serial;
		r->first_in_stream[r->npk] = p->first_in_stream;
		r->last_in_page[r->npk]    = p->last_in_page;
	}
	r->npk++;
	return r->stop_after && (int)r->npk >= r->stop_after;
}

static void
on_page(void *arg, const struct oggstrict_page *pg)
{
	((struct rec *)arg)->npages++;
}

static void
on_violation(void *arg, enum oggstrict_kind k, const char *detail)
{
	((struct rec *)arg)->viol[k]++;
}

static struct oggstrict *
reader(struct rec *r)
{
	struct oggstrict_ops ops = { on_packet, on_page, on_violation };
	struct oggstrict    *o   = NULL;

	memset(r, 0, sizeof(*r));
	if (oggstrict_alloc(&o, &ops, r))
		return NULL;
	return o;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/* Builds a page from explicit lacing values and body, with a good CRC.
 * Returns its length. */
static size_t
mkpage(uint8_t *out, uint8_t flags, uint64_t granule, uint32_t serial,
    uint32_t seq, const uint8_t *lacing, size_t nsegs, const uint8_t *body)
{
	size_t blen = 0, n;

	memcpy(out, "OggS", 4);
	out[4] = 0;
	out[5] = flags;
	put32(out + 6, (uint32_t)granule);
	put32(out + 10, (uint32_t)(granule >> 32));
	put32(out + 14, serial);
	put32(out + 18, seq);
	put32(out + 22, 0);
	out[26] = (uint8_t)nsegs;
	memcpy(out + 27, lacing, nsegs);
	for (size_t i = 0; i < nsegs; i++)
		blen += lacing[i];
	memcpy(out + 27 + nsegs, body, blen);
	n = 27 + nsegs + blen;
	put32(out + 22, oggstrict_crc(0, out, n));
	return n;
}

/* One page holding one whole packet of len bytes (all = fill). */
static size_t
mkpage1(uint8_t *out, uint8_t flags, uint32_t serial, uint32_t seq, size_t len,
    uint8_t fill)
{
	uint8_t lacing[255], body[255 * 254];
	size_t  n = 0, left = len;

	while (left >= 255) {
		lacing[n++] = 255;
		left -= 255;
	}
	lacing[n++] = (uint8_t)left;
	memset(body, fill, len);
	return mkpage(out, flags, 0, serial, seq, lacing, n, body);
}

static int
test_crc_vectors(void)
{
	/* The ogg crate's own test vectors (src/crc.rs). */
	static const uint8_t page[] = { 0x4f, 0x67, 0x67, 0x53, 0x00, 0x02,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x74, 0xa3,
		0x90, 0x5b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x01, 0x1e, 0x01, 0x76, 0x6f, 0x72, 0x62, 0x69, 0x73, 0x00,
		0x00, 0x00, 0x00, 0x02, 0x44, 0xac, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x80, 0xb5, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xb8, 0x01 };
	TEST_EQ(oggstrict_crc(0, (const uint8_t *)"==!", 3), 0x9f858776u);
	TEST_EQ(oggstrict_crc(0, page, sizeof(page)), 0x3d4e946du);
	TEST_EQ(oggstrict_crc(0, page, 27), 0x7b374db8u);
	return 0;
}

static int
test_golden(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           b[64];

	TEST_ASSERT(o);
	/* The golden CRCs are what our CRC computes. */
	memcpy(b, golden0, sizeof(golden0));
	memset(b + 22, 0, 4);
	TEST_EQ(oggstrict_crc(0, b, sizeof(golden0)), 0x228788efu);
	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	TEST_EQ(oggstrict_feed(o, golden1, sizeof(golden1)), 0);
	TEST_EQ(r.npk, 2);
	TEST_EQ(r.npages, 2);
	TEST_EQ(r.len[0], 19);
	TEST_EQ(r.len[1], 25);
	TEST_EQ(r.first[0], 'O');
	TEST_EQ(r.serial[1], 42);
	TEST_EQ(r.first_in_stream[0], 1);
	TEST_EQ(r.first_in_stream[1], 0);
	TEST_EQ(oggstrict_fatal(o), -1);
	for (int k = 0; k < OGGSTRICT_KIND_N; k++)
		TEST_EQ(r.viol[k], 0);
	oggstrict_free(o);
	return 0;
}

static int
test_bad_crc(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           b[64];

	memcpy(b, golden0, sizeof(golden0));
	b[40] ^= 1; /* flip a body bit */
	TEST_EQ(oggstrict_feed(o, b, sizeof(golden0)), OGGSTRICT_BAD_CRC);
	TEST_EQ(r.viol[OGGSTRICT_BAD_CRC], 1);
	TEST_EQ(r.npk, 0);
	/* Dead for good, like the real reader thread. */
	TEST_EQ(
	    oggstrict_feed(o, golden1, sizeof(golden1)), OGGSTRICT_BAD_CRC);
	TEST_EQ(r.npk, 0);
	TEST_EQ(oggstrict_fatal(o), OGGSTRICT_BAD_CRC);
	oggstrict_free(o);
	return 0;
}

static int
test_no_bos_first(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);

	/* The BOS page swallowed before the handshake: the stream starts
	 * with the OpusTags page. */
	TEST_EQ(oggstrict_feed(o, golden1, sizeof(golden1)), OGGSTRICT_NO_BOS);
	TEST_EQ(r.viol[OGGSTRICT_NO_BOS], 1);
	TEST_EQ(r.npk, 0);
	oggstrict_free(o);
	return 0;
}

static int
test_second_bos(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           p[400];
	size_t            n;

	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	TEST_EQ(oggstrict_feed(o, golden1, sizeof(golden1)), 0);
	/* A restarted writer reusing the serial. */
	n = mkpage1(p, 0x02, 42, 0, 19, 'O');
	TEST_EQ(oggstrict_feed(o, p, n), OGGSTRICT_SECOND_BOS);
	TEST_EQ(r.viol[OGGSTRICT_SECOND_BOS], 1);
	TEST_EQ(r.npk, 2);
	oggstrict_free(o);
	return 0;
}

static int
test_chained_new_serial(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           p[400];
	size_t            n;

	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	TEST_EQ(oggstrict_feed(o, golden1, sizeof(golden1)), 0);
	/* A new stream (new serial, BOS) is fine: chaining. */
	n = mkpage1(p, 0x02, 7, 0, 19, 'O');
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	n = mkpage1(p, 0x00, 7, 1, 100, 0xaa);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	TEST_EQ(r.npk, 4);
	TEST_EQ(r.serial[3], 7);
	TEST_EQ(r.first_in_stream[2], 1);
	TEST_EQ(r.len[3], 100);
	oggstrict_free(o);
	return 0;
}

static int
test_continued_first(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           p[400];
	size_t            n = mkpage1(p, 0x03, 5, 0, 10, 1);

	TEST_EQ(oggstrict_feed(o, p, n), OGGSTRICT_CONTINUED_FIRST);
	oggstrict_free(o);
	return 0;
}

static int
test_bad_continuation(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           p[400];
	size_t            n;

	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	/* Continued flag although the last page ended on a boundary. */
	n = mkpage1(p, 0x01, 42, 1, 10, 1);
	TEST_EQ(oggstrict_feed(o, p, n), OGGSTRICT_BAD_CONTINUATION);
	oggstrict_free(o);

	/* And the other way: a packet left open, next page not continued. */
	o                  = reader(&r);
	uint8_t lace255[1] = { 255 };
	uint8_t body[255]  = { 0 };
	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	n = mkpage(p, 0x00, 0, 42, 1, lace255, 1, body);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	n = mkpage1(p, 0x00, 42, 2, 10, 1);
	TEST_EQ(oggstrict_feed(o, p, n), OGGSTRICT_BAD_CONTINUATION);
	TEST_EQ(r.npk, 1);
	oggstrict_free(o);
	return 0;
}

static int
test_bad_version(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	uint8_t           b[64];

	memcpy(b, golden0, sizeof(golden0));
	b[4] = 1;
	TEST_EQ(oggstrict_feed(o, b, sizeof(golden0)), OGGSTRICT_BAD_VERSION);
	oggstrict_free(o);
	return 0;
}

/* Two headers and three audio pages, fed in every way of cutting. */
static size_t
stream5(uint8_t *buf)
{
	size_t n = 0;

	memcpy(buf, golden0, sizeof(golden0));
	n += sizeof(golden0);
	memcpy(buf + n, golden1, sizeof(golden1));
	n += sizeof(golden1);
	n += mkpage1(buf + n, 0, 42, 2, 250, 0x11);
	n += mkpage1(buf + n, 0, 42, 3, 255, 0x22); /* lacing 255, 0 */
	n += mkpage1(buf + n, 0, 42, 4, 0, 0); /* empty packet */
	return n;
}

static int
check5(const struct rec *r)
{
	TEST_EQ(r->npk, 5);
	TEST_EQ(r->len[2], 250);
	TEST_EQ(r->first[2], 0x11);
	TEST_EQ(r->len[3], 255);
	TEST_EQ(r->last[3], 0x22);
	TEST_EQ(r->len[4], 0);
	for (int k = 0; k < OGGSTRICT_KIND_N; k++)
		TEST_EQ(r->viol[k], 0);
	return 0;
}

static int
test_split_and_merged(void)
{
	uint8_t           buf[2000];
	size_t            n = stream5(buf);
	struct rec        r;
	struct oggstrict *o;

	/* All merged in one chunk. */
	o = reader(&r);
	TEST_EQ(oggstrict_feed(o, buf, n), 0);
	if (check5(&r))
		return 1;
	oggstrict_free(o);
	/* One byte at a time. */
	o = reader(&r);
	for (size_t i = 0; i < n; i++)
		TEST_EQ(oggstrict_feed(o, buf + i, 1), 0);
	if (check5(&r))
		return 1;
	oggstrict_free(o);
	/* Every chunk size from 2 to 97. */
	for (size_t step = 2; step < 98; step++) {
		o = reader(&r);
		for (size_t i = 0; i < n; i += step)
			TEST_EQ(oggstrict_feed(
			            o, buf + i, i + step > n ? n - i : step),
			    0);
		if (check5(&r))
			return 1;
		oggstrict_free(o);
	}
	return 0;
}

static int
test_packet_across_pages(void)
{
	struct rec        r;
	struct oggstrict *o = reader(&r);
	static uint8_t    p[70000], body[70000];
	uint8_t           lace[255];
	size_t            n;

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)i;
	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	/* 600 bytes: 255 on page 1, 255 + 90 on page 2, plus a 5-byte
	 * packet after it; then a page that is all continuation (255 x 2)
	 * starting a packet finished on page 4. */
	lace[0] = 255;
	n       = mkpage(p, 0x00, 0, 42, 1, lace, 1, body);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	TEST_EQ(r.npk, 1);
	lace[0] = 255;
	lace[1] = 90;
	lace[2] = 5;
	lace[3] = 255;
	n       = mkpage(p, 0x01, 0, 42, 2, lace, 4, body + 255);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	TEST_EQ(r.npk, 3);
	TEST_EQ(r.len[1], 600);
	TEST_EQ(r.first[1], 0);
	TEST_EQ(r.last[1], (uint8_t)599);
	TEST_EQ(r.len[2], 5);
	TEST_EQ(r.first[2], (uint8_t)600);
	TEST_EQ(r.last_in_page[1], 0);
	TEST_EQ(r.last_in_page[2], 1);
	/* The open packet (255 so far) continues over a page with no
	 * packet end, then an empty continued page, then ends. */
	lace[0] = 255;
	lace[1] = 255;
	n       = mkpage(p, 0x01, 0, 42, 3, lace, 2, body + 860);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	n = mkpage(p, 0x01, 0, 42, 4, lace, 0, body);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	lace[0] = 3;
	n       = mkpage(p, 0x01, 0, 42, 5, lace, 1, body + 1370);
	TEST_EQ(oggstrict_feed(o, p, n), 0);
	TEST_EQ(r.npk, 4);
	TEST_EQ(r.len[3], 255 + 510 + 3);
	TEST_EQ(r.first[3], (uint8_t)605);
	TEST_EQ(r.last[3], (uint8_t)1372);
	oggstrict_free(o);
	return 0;
}

static int
test_garbage(void)
{
	uint8_t           buf[4000];
	size_t            n = 0;
	struct rec        r;
	struct oggstrict *o = reader(&r);

	/* Garbage with near-misses of the capture pattern. */
	memcpy(buf, "xxOgOggOgg", 10);
	n = 10;
	n += stream5(buf + n);
	memcpy(buf + n, "junk", 4);
	n += 4;
	n += mkpage1(buf + n, 0, 42, 5, 40, 0x33);
	TEST_EQ(oggstrict_feed(o, buf, n), 0);
	TEST_EQ(r.npk, 6);
	TEST_EQ(r.len[5], 40);
	TEST_EQ(r.viol[OGGSTRICT_GARBAGE], 2);
	TEST_EQ(oggstrict_garbage_bytes(o), 14);
	TEST_EQ(oggstrict_fatal(o), -1);
	oggstrict_free(o);
	return 0;
}

static int
test_no_capture_150k(void)
{
	static uint8_t    junk[OGGSTRICT_CAPTURE_LIMIT + 100];
	struct rec        r;
	struct oggstrict *o;
	size_t            pre = OGGSTRICT_CAPTURE_LIMIT - 27;

	memset(junk, 'x', sizeof(junk));
	/* Raw Opus instead of Ogg: silence until 150 KiB, then death. */
	o = reader(&r);
	TEST_EQ(oggstrict_feed(o, junk, OGGSTRICT_CAPTURE_LIMIT), 0);
	TEST_EQ(oggstrict_feed(o, junk, 1), OGGSTRICT_NO_CAPTURE);
	TEST_EQ(r.viol[OGGSTRICT_NO_CAPTURE], 1);
	oggstrict_free(o);

	/* A page whose header ends exactly at the limit still counts. */
	o = reader(&r);
	TEST_EQ(oggstrict_feed(o, junk, pre), 0);
	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	TEST_EQ(r.npk, 1);
	TEST_EQ(r.viol[OGGSTRICT_GARBAGE], 1);
	oggstrict_free(o);

	/* One byte later it does not. */
	o = reader(&r);
	TEST_EQ(oggstrict_feed(o, junk, pre + 1), 0);
	TEST_EQ(
	    oggstrict_feed(o, golden0, sizeof(golden0)), OGGSTRICT_NO_CAPTURE);
	TEST_EQ(r.npk, 0);
	oggstrict_free(o);

	/* The count restarts with every page. */
	o = reader(&r);
	TEST_EQ(oggstrict_feed(o, junk, 100000), 0);
	TEST_EQ(oggstrict_feed(o, golden0, sizeof(golden0)), 0);
	TEST_EQ(oggstrict_feed(o, junk, 100000), 0);
	TEST_EQ(oggstrict_feed(o, golden1, sizeof(golden1)), 0);
	TEST_EQ(r.npk, 2);
	oggstrict_free(o);
	return 0;
}

static int
test_stop(void)
{
	uint8_t           buf[2000];
	size_t            n = stream5(buf);
	struct rec        r;
	struct oggstrict *o = reader(&r);

	r.stop_after = 3;
	TEST_EQ(oggstrict_feed(o, buf, n), OGGSTRICT_STOPPED);
	TEST_EQ(r.npk, 3);
	TEST_EQ(oggstrict_feed(o, buf, n), OGGSTRICT_STOPPED);
	TEST_EQ(r.npk, 3);
	oggstrict_free(o);
	return 0;
}

/* libogg's writer, read by our independent code. */
static int
test_libogg_writer(void)
{
	ogg_stream_state  os;
	ogg_page          og;
	ogg_packet        op;
	static uint8_t    data[3000];
	struct rec        r;
	struct oggstrict *o       = reader(&r);
	size_t            sizes[] = { 19, 30, 120, 255, 510, 2000, 1, 80 };
	size_t            np      = sizeof(sizes) / sizeof(sizes[0]);

	TEST_EQ(ogg_stream_init(&os, 0x12345678), 0);
	for (size_t i = 0; i < np; i++) {
		memset(data, (int)i + 1, sizes[i]);
		memset(&op, 0, sizeof(op));
		op.packet     = data;
		op.bytes      = (long)sizes[i];
		op.b_o_s      = i == 0;
		op.e_o_s      = i + 1 == np;
		op.granulepos = (ogg_int64_t)i * 960;
		op.packetno   = (ogg_int64_t)i;
		TEST_EQ(ogg_stream_packetin(&os, &op), 0);
		/* Flush some pages early, leave others to be merged. */
		while ((i % 3 == 0 ? ogg_stream_flush(&os, &og)
		                   : ogg_stream_pageout(&os, &og))
		    != 0) {
			TEST_EQ(
			    oggstrict_feed(o, og.header, og.header_len), 0);
			TEST_EQ(oggstrict_feed(o, og.body, og.body_len), 0);
		}
	}
	while (ogg_stream_flush(&os, &og) != 0) {
		TEST_EQ(oggstrict_feed(o, og.header, og.header_len), 0);
		TEST_EQ(oggstrict_feed(o, og.body, og.body_len), 0);
	}
	ogg_stream_clear(&os);
	TEST_EQ(r.npk, np);
	for (size_t i = 0; i < np; i++) {
		TEST_EQ(r.len[i], sizes[i]);
		TEST_EQ(r.first[i], i + 1);
		TEST_EQ(r.last[i], i + 1);
	}
	oggstrict_free(o);
	return 0;
}

TEST_MAIN(TEST(test_crc_vectors), TEST(test_golden), TEST(test_bad_crc),
    TEST(test_no_bos_first), TEST(test_second_bos),
    TEST(test_chained_new_serial), TEST(test_continued_first),
    TEST(test_bad_continuation), TEST(test_bad_version),
    TEST(test_split_and_merged), TEST(test_packet_across_pages),
    TEST(test_garbage), TEST(test_no_capture_150k), TEST(test_stop),
    TEST(test_libogg_writer))
