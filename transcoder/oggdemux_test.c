/*
 * oggdemux_test.c - the streaming demuxer against split, merged, damaged,
 * chained and sphn-shaped streams.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <ogg/ogg.h>
#include <opus/opus.h>

#include "codec.h"
#include "oggdemux.h"
#include "oggw.h"
#include "spectrum.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define NPKT 40
#define OGG_PAGE_BYTES (27 + 255 + 255 * 255)

struct bytes {
	uint8_t buf[1 << 20];
	size_t  len;
	size_t  npages;
	size_t  page_off[256];
};

static void
append(void *arg, const uint8_t *page, size_t n, bool header)
{
	struct bytes *b = arg;

	if (b->len + n > sizeof(b->buf))
		abort();
	if (b->npages < 256)
		b->page_off[b->npages] = b->len;
	b->npages++;
	memcpy(b->buf + b->len, page, n);
	b->len += n;
}

struct got {
	size_t  n;
	size_t  len[4096];
	uint8_t first[4096];
};

static void
take(void *arg, const uint8_t *pkt, size_t n)
{
	struct got *g = arg;

	if (g->n < 4096) {
		g->len[g->n]   = n;
		g->first[g->n] = pkt[0];
	}
	g->n++;
}

/* Packet i: 20 + 7i % 300 bytes of value i. */
static size_t
pkt_make(uint8_t *p, int i)
{
	size_t n = 20 + (size_t)(7 * i) % 300;
	memset(p, i, n);
	return n;
}

static void
stream_make(struct bytes *b, uint32_t serial, int first, int count)
{
	struct oggw *w;
	uint8_t      pkt[512];

	if (oggw_alloc(&w) || oggw_begin(w, serial, 24000, 312, append, b))
		abort();
	for (int i = first; i < first + count; i++)
		oggw_packet(w, pkt, pkt_make(pkt, i), 960, false, append, b);
	oggw_free(w);
}

/* The packets expected: first..first+count-1, in order. */
static int
check_got(const struct got *g, int first, int count)
{
	uint8_t pkt[512];

	TEST_EQ(g->n, count);
	for (int i = 0; i < count; i++) {
		TEST_EQ(g->len[i], pkt_make(pkt, first + i));
		TEST_EQ(g->first[i], (uint8_t)(first + i));
	}
	return 0;
}

static int
test_whole(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;

	stream_make(&b, 99, 0, NPKT);
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, b.buf, b.len, take, &g), 0);
	if (check_got(&g, 0, NPKT))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.pages, NPKT + 2);
	TEST_EQ(st.headers, 2);
	TEST_EQ(st.packets, NPKT);
	TEST_EQ(st.streams, 1);
	TEST_EQ(st.sync_errors, 0);
	TEST_EQ(st.holes, 0);
	TEST_EQ(st.no_bos, 0);
	TEST_EQ(oggdemux_serial(d), 99);
	oggdemux_free(d);
	return 0;
}

/* Every split point of the stream in two chunks, then one byte at a
 * time: the same packets each time. */
static int
test_split_everywhere(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;

	stream_make(&b, 5, 0, 6);
	TEST_EQ(oggdemux_alloc(&d), 0);
	for (size_t s = 0; s <= b.len; s++) {
		oggdemux_reset(d);
		g.n = 0;
		TEST_EQ(oggdemux_feed(d, b.buf, s, take, &g), 0);
		TEST_EQ(oggdemux_feed(d, b.buf + s, b.len - s, take, &g), 0);
		if (check_got(&g, 0, 6)) {
			fprintf(stderr, "  split at %zu\n", s);
			return 1;
		}
	}
	oggdemux_reset(d);
	g.n = 0;
	for (size_t i = 0; i < b.len; i++)
		TEST_EQ(oggdemux_feed(d, b.buf + i, 1, take, &g), 0);
	if (check_got(&g, 0, 6))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.sync_errors, 0);
	TEST_EQ(st.holes, 0);
	oggdemux_free(d);
	return 0;
}

/* Random chunk sizes from 1 byte to several pages. */
static int
test_random_chunks(void)
{
	static struct bytes b;
	static struct got   g;
	struct oggdemux    *d;
	unsigned            seed = 12345;

	stream_make(&b, 5, 0, NPKT);
	TEST_EQ(oggdemux_alloc(&d), 0);
	for (int round = 0; round < 50; round++) {
		oggdemux_reset(d);
		g.n = 0;
		for (size_t off = 0; off < b.len;) {
			size_t k = (size_t)rand_r(&seed) % 700 + 1;
			if (k > b.len - off)
				k = b.len - off;
			TEST_EQ(oggdemux_feed(d, b.buf + off, k, take, &g), 0);
			off += k;
		}
		if (check_got(&g, 0, NPKT))
			return 1;
	}
	oggdemux_free(d);
	return 0;
}

/* Bytes that are not pages, before and between pages: skipped, counted,
 * every packet still out. */
static int
test_garbage(void)
{
	static struct bytes   b, mixed;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;
	uint8_t               junk[100];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	memcpy(junk + 40, "Ogg", 3); /* a false start */
	stream_make(&b, 5, 0, 10);
	for (size_t p = 0; p < b.npages; p++) {
		size_t end = p + 1 < b.npages ? b.page_off[p + 1] : b.len;
		if (p % 3 == 0)
			append(&mixed, junk, sizeof(junk), false);
		append(
		    &mixed, b.buf + b.page_off[p], end - b.page_off[p], false);
	}
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, mixed.buf, mixed.len, take, &g), 0);
	if (check_got(&g, 0, 10))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.sync_errors, 4); /* before pages 0, 3, 6, 9 */
	TEST_EQ(st.holes, 0);
	oggdemux_free(d);
	return 0;
}

/* A page with a bad CRC is dropped and counted; the rest plays. */
static int
test_bad_crc(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;

	stream_make(&b, 5, 0, 10);
	b.buf[b.page_off[6] + 30] ^= 0x40; /* body of audio packet 4 */
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, b.buf, b.len, take, &g), 0);
	TEST_EQ(g.n, 9);
	TEST_EQ(g.first[3], 3);
	TEST_EQ(g.first[4], 5);
	oggdemux_stats(d, &st);
	TEST_EQ(st.sync_errors, 1);
	TEST_EQ(st.holes, 1); /* the page number gap */
	TEST_EQ(st.pages, 11);
	oggdemux_free(d);
	return 0;
}

/* A new BOS (new serial) restarts the stream: a chained stream. */
static int
test_chained(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;

	stream_make(&b, 1, 0, 5);
	stream_make(&b, 2, 5, 5);
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, b.buf, b.len, take, &g), 0);
	if (check_got(&g, 0, 10))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.streams, 2);
	TEST_EQ(st.headers, 4);
	TEST_EQ(st.sync_errors, 0);
	TEST_EQ(oggdemux_serial(d), 2);
	oggdemux_free(d);
	return 0;
}

/* Joining a stream midway (no BOS seen) still hands out its packets. */
static int
test_join_midway(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;

	stream_make(&b, 77, 0, 10);
	TEST_EQ(oggdemux_alloc(&d), 0);
	/* From the middle of page 4 (audio packet 2). */
	size_t from = b.page_off[4] + 10;
	TEST_EQ(oggdemux_feed(d, b.buf + from, b.len - from, take, &g), 0);
	if (check_got(&g, 3, 7))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.no_bos, 1);
	TEST_EQ(st.streams, 1);
	TEST_EQ(st.sync_errors, 1);
	TEST_EQ(oggdemux_serial(d), 77);
	oggdemux_free(d);
	return 0;
}

struct decoded {
	struct codec_dec *dec;
	int16_t           pcm[25 * 1920 + CODEC_MAX_FRAME];
	size_t            n;
	int               bad;
};

static void
decode(void *arg, const uint8_t *pkt, size_t n)
{
	struct decoded *dc = arg;
	size_t          got;

	if (dc->n + CODEC_MAX_FRAME > sizeof(dc->pcm) / sizeof(dc->pcm[0])
	    || codec_decode(
	        dc->dec, pkt, n, dc->pcm + dc->n, CODEC_MAX_FRAME, &got)
	    || got != 1920)
		dc->bad++;
	else
		dc->n += got;
}

static int
hex(uint8_t *out, const char *s)
{
	int n = 0;

	while (*s) {
		unsigned v;
		if (*s == ' ') {
			s++;
			continue;
		}
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

/* What PersonaPlex sends: the golden sphn header pages (serial 42), then
 * one 80 ms packet per page with granules in 24 kHz units, each page its
 * own message; the packets decode to 1920 samples of the tone. */
static int
test_sphn_downlink(void)
{
	static struct bytes   b;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;
	ogg_stream_state      os;
	OpusEncoder          *enc;
	int                   err;
	size_t                msg_off[64], nmsg = 0;

	b.len           = hex(b.buf,
	              "4f676753 00 02 0000000000000000 2a000000 00000000 "
	                        "ef888722 01 13 4f707573486561640101000fc05d0000000000");
	msg_off[nmsg++] = 0;
	msg_off[nmsg++] = b.len;
	b.len += hex(b.buf + b.len,
	    "4f676753 00 00 0000000000000000 2a000000 01000000 "
	    "bfd821e5 01 19 4f70757354616773 09000000 7370686e2d70796f33 "
	    "00000000");
	TEST_EQ(b.len, 47 + 53);

	enc = opus_encoder_create(24000, 1, OPUS_APPLICATION_VOIP, &err);
	TEST_ASSERT(enc != NULL);
	TEST_EQ(ogg_stream_init(&os, 42), 0);
	os.pageno = 2; /* sphn's audio pages follow its two header pages */
	os.b_o_s  = 1; /* and carry no BOS flag */
	for (int k = 0; k < 25; k++) {
		int16_t       pcm[1920];
		unsigned char pkt[1500];
		ogg_packet    op = { 0 };
		ogg_page      og;
		for (int i = 0; i < 1920; i++)
			pcm[i] = (int16_t)(8000
			    * sin(2 * M_PI * 1000 * (k * 1920 + i) / 24000));
		op.bytes      = opus_encode(enc, pcm, 1920, pkt, sizeof(pkt));
		op.packet     = pkt;
		op.granulepos = (k + 1) * 1920;
		op.packetno   = k + 2;
		TEST_ASSERT(op.bytes > 0);
		ogg_stream_packetin(&os, &op);
		TEST_ASSERT(ogg_stream_flush(&os, &og));
		TEST_ASSERT(og.header[5] == 0); /* no BOS on audio pages */
		msg_off[nmsg++] = b.len;
		memcpy(b.buf + b.len, og.header, (size_t)og.header_len);
		b.len += (size_t)og.header_len;
		memcpy(b.buf + b.len, og.body, (size_t)og.body_len);
		b.len += (size_t)og.body_len;
	}
	ogg_stream_clear(&os);
	opus_encoder_destroy(enc);

	TEST_EQ(oggdemux_alloc(&d), 0);
	for (size_t m = 0; m < nmsg; m++) {
		size_t end = m + 1 < nmsg ? msg_off[m + 1] : b.len;
		TEST_EQ(oggdemux_feed(
		            d, b.buf + msg_off[m], end - msg_off[m], take, &g),
		    0);
	}
	oggdemux_stats(d, &st);
	TEST_EQ(st.headers, 2);
	TEST_EQ(st.packets, 25);
	TEST_EQ(st.sync_errors, 0);
	TEST_EQ(st.holes, 0);
	TEST_EQ(st.no_bos, 0);
	TEST_EQ(oggdemux_serial(d), 42);

	/* Decoded, the packets are 80 ms each of the 1 kHz tone. */
	static struct decoded dc;
	TEST_EQ(codec_dec_alloc(&dc.dec), 0);
	oggdemux_reset(d);
	TEST_EQ(oggdemux_feed(d, b.buf, b.len, decode, &dc), 0);
	TEST_EQ(dc.bad, 0);
	TEST_EQ(dc.n, 25 * 1920);
	TEST_NEAR(
	    spectrum_dominant_hz(dc.pcm + 1920, dc.n - 1920, 24000), 1000, 10);
	codec_dec_free(dc.dec);
	oggdemux_free(d);
	return 0;
}

/* Packet i of the spanning tests: 1 to 8 segments, some of them whole
 * multiples of 255 (a 0 lacing value ends those). */
static size_t
span_len(int i)
{
	static const size_t lens[] = { 300, 700, 255, 510, 1, 2000, 90, 1275 };
	return lens[i % 8] + (size_t)(i / 8 % 2) * 255;
}

/* Writes count packets with libogg's own writer, pages of 255 segments,
 * so the packet at each page's end goes on in the next page. A packet of
 * big bytes (0: none) goes in at index big_at. */
static void
span_make(struct bytes *b, int count, size_t big, int big_at)
{
	static uint8_t   pkt[80000], page[OGG_PAGE_BYTES];
	ogg_stream_state os;
	ogg_packet       op = { 0 };
	ogg_page         og;
	uint8_t          head[OGGW_OPUSHEAD_LEN];

	ogg_stream_init(&os, 77);
	oggw_opushead(head, 24000, 312);
	op.packet = head;
	op.bytes  = sizeof(head);
	op.b_o_s  = 1;
	ogg_stream_packetin(&os, &op);
	op.b_o_s = 0;
	for (int i = 0, k = 0; i < count; k++) {
		size_t n = (k == big_at && big) ? big : span_len(i);
		/* libogg copies the packet in. */
		memset(pkt, k == big_at && big ? 0xee : i, n);
		op.packet = pkt;
		op.bytes  = (long)n;
		op.packetno++;
		ogg_stream_packetin(&os, &op);
		if (!(k == big_at && big))
			i++;
	}
	/* Paged all at once, each page as full as it goes (libogg ends a
	 * page early only past the fill and four whole packets). */
	while (ogg_stream_pageout_fill(&os, &og, 1 << 17)
	    || ogg_stream_flush(&os, &og)) {
		memcpy(page, og.header, (size_t)og.header_len);
		memcpy(page + og.header_len, og.body, (size_t)og.body_len);
		append(b, page, (size_t)(og.header_len + og.body_len), false);
	}
	ogg_stream_clear(&os);
}

/* Pages of b that continue a packet from the page before. */
static size_t
continued_pages(const struct bytes *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->npages && i < 256; i++)
		n += b->buf[b->page_off[i] + 5] & 1;
	return n;
}

static int
check_span(const struct got *g, int count)
{
	TEST_EQ(g->n, count);
	for (int i = 0; i < count; i++) {
		TEST_EQ(g->len[i], span_len(i));
		TEST_EQ(g->first[i], (uint8_t)i);
	}
	return 0;
}

/* Packets that span pages, from libogg's writer, in random chunks: all
 * come out whole. A packet too long to be Opus (over 64 kB, across two
 * pages) is dropped and counted, and the ones after it still come out;
 * so is the packet a lost page cuts. */
static int
test_spanning(void)
{
	static struct bytes   b, cut;
	static struct got     g;
	struct oggdemux      *d;
	struct oggdemux_stats st;
	unsigned              seed = 7;

	span_make(&b, 400, 0, -1);
	TEST_ASSERT(continued_pages(&b) >= 4);
	TEST_EQ(oggdemux_alloc(&d), 0);
	for (int round = 0; round < 20; round++) {
		oggdemux_reset(d);
		g.n = 0;
		for (size_t off = 0; off < b.len;) {
			size_t k = round == 0
			    ? b.len
			    : (size_t)rand_r(&seed) % 900 + 1;
			if (k > b.len - off)
				k = b.len - off;
			TEST_EQ(oggdemux_feed(d, b.buf + off, k, take, &g), 0);
			off += k;
		}
		if (check_span(&g, 400))
			return 1;
	}
	oggdemux_stats(d, &st);
	TEST_EQ(st.holes, 0);
	TEST_EQ(st.sync_errors, 0);
	oggdemux_free(d);

	/* 70000 bytes: pages hold at most 65025, so it spans two. */
	b.len = b.npages = 0;
	span_make(&b, 10, 70000, 5);
	g.n = 0;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, b.buf, b.len, take, &g), 0);
	if (check_span(&g, 10))
		return 1;
	oggdemux_stats(d, &st);
	TEST_EQ(st.holes, 1);
	oggdemux_free(d);

	/* Without the first page that continues a packet: a hole, and
	 * every packet it does not touch. */
	b.len = b.npages = 0;
	span_make(&b, 400, 0, -1);
	size_t j = 2;
	while (j + 1 < b.npages && !(b.buf[b.page_off[j] + 5] & 1))
		j++;
	TEST_ASSERT(j + 1 < b.npages);
	memcpy(cut.buf, b.buf, b.page_off[j]);
	memcpy(cut.buf + b.page_off[j], b.buf + b.page_off[j + 1],
	    b.len - b.page_off[j + 1]);
	cut.len = b.len - (b.page_off[j + 1] - b.page_off[j]);
	g.n     = 0;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, cut.buf, cut.len, take, &g), 0);
	oggdemux_stats(d, &st);
	TEST_EQ(st.holes, 1);
	TEST_ASSERT(g.n >= 300 && g.n < 400);
	TEST_EQ(g.first[g.n - 1], (uint8_t)399);
	for (size_t i = 1, k = 1; i < g.n; i++, k++) {
		if (g.first[i] != (uint8_t)(g.first[i - 1] + 1))
			k += (uint8_t)(g.first[i] - g.first[i - 1] - 1);
		TEST_EQ(g.len[i], span_len((int)k)); /* whole, or absent */
	}
	oggdemux_free(d);
	return 0;
}

TEST_MAIN(TEST(test_whole), TEST(test_split_everywhere),
    TEST(test_random_chunks), TEST(test_garbage), TEST(test_bad_crc),
    TEST(test_chained), TEST(test_join_midway), TEST(test_sphn_downlink),
    TEST(test_spanning))
