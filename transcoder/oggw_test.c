/*
 * oggw_test.c - the Ogg Opus writer: exact header bytes (the sphn golden
 * OpusHead page), page layout and granules, and a stream that opusinfo
 * accepts without a warning.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <ogg/ogg.h>

#include "codec.h"
#include "oggw.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct pages {
	uint8_t buf[1 << 20];
	size_t  len;
	size_t  n;
	size_t  off[1024]; /* start of each page, for the first 1024 */
	size_t  size[1024];
	int     headers;
};

static void
collect(void *arg, const uint8_t *page, size_t n, bool header)
{
	struct pages *p = arg;

	if (p->len + n > sizeof(p->buf))
		return;
	if (p->n < 1024) {
		p->off[p->n]  = p->len;
		p->size[p->n] = n;
	}
	memcpy(p->buf + p->len, page, n);
	p->len += n;
	p->n++;
	p->headers += header;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
	    | (uint32_t)p[3] << 24;
}

static int64_t
rd64(const uint8_t *p)
{
	return (int64_t)((uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32);
}

static int
hex(uint8_t *out, const char *s)
{
	int n = 0;

	for (; s[0] && s[1]; s += 2) {
		while (*s == ' ')
			s++;
		unsigned v;
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
	}
	return n;
}

static int
test_opushead_bytes(void)
{
	uint8_t       head[OGGW_OPUSHEAD_LEN];
	const uint8_t want[] = { 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 1,
		0x38, 0x01, /* pre-skip 312 */
		0x40, 0x1f, 0x00, 0x00, /* 8000 Hz */
		0, 0, 0 };

	oggw_opushead(head, 8000, 312);
	TEST_ASSERT(memcmp(head, want, sizeof(want)) == 0);
	return 0;
}

/* With sphn's parameters the BOS page is byte for byte the golden page
 * of research/personaplex.md §3.2, CRC included. */
static int
test_golden_bos(void)
{
	static struct pages p;
	struct oggw        *w;
	uint8_t             golden[64];
	int                 n = hex(golden,
	                    "4f676753 00 02 0000000000000000 2a000000 00000000 "
	                                    "ef888722 01 13 4f707573486561640101000fc05d0000000000");

	TEST_EQ(n, 47);
	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(oggw_begin(w, 42, 24000, 3840, collect, &p), 0);
	TEST_EQ(p.n, 2);
	TEST_EQ(p.headers, 2);
	TEST_EQ(p.size[0], 47);
	TEST_ASSERT(memcmp(p.buf, golden, 47) == 0);
	oggw_free(w);
	return 0;
}

static int
test_layout(void)
{
	static struct pages p;
	struct oggw        *w;
	uint8_t             pkt[100];

	memset(pkt, 0x5a, sizeof(pkt));
	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(
	    oggw_packet(w, pkt, sizeof(pkt), 960, false, collect, &p), EINVAL);
	TEST_EQ(oggw_begin(w, 0xdeadbeef, 8000, 312, collect, &p), 0);
	for (int i = 0; i < 10; i++)
		TEST_EQ(
		    oggw_packet(w, pkt, sizeof(pkt), 960, false, collect, &p),
		    0);
	TEST_EQ(oggw_packet(w, pkt, 0, 960, false, collect, &p), EINVAL);
	TEST_EQ(p.n, 12);
	TEST_EQ(p.headers, 2);
	for (size_t i = 0; i < p.n; i++) {
		const uint8_t *g = p.buf + p.off[i];
		TEST_ASSERT(memcmp(g, "OggS", 4) == 0);
		TEST_EQ(g[4], 0); /* version */
		TEST_EQ(g[5], i == 0 ? 2 : 0); /* BOS only first */
		TEST_EQ(rd32(g + 14), 0xdeadbeefu); /* serial */
		TEST_EQ(rd32(g + 18), i); /* page sequence */
		TEST_EQ(rd64(g + 6), i < 2 ? 0 : (int64_t)(i - 1) * 960);
		TEST_EQ(g[26], 1); /* one segment */
	}
	/* OpusTags: vendor "exoplex", no comments. */
	const uint8_t *t = p.buf + p.off[1] + 28;
	TEST_ASSERT(memcmp(t, "OpusTags", 8) == 0);
	TEST_EQ(rd32(t + 8), 7);
	TEST_ASSERT(memcmp(t + 12, "exoplex", 7) == 0);
	TEST_EQ(rd32(t + 19), 0);
	TEST_EQ(p.size[1], 28 + 23);

	/* A second stream on the same writer starts over. */
	p.len = p.n = 0;
	TEST_EQ(oggw_begin(w, 7, 8000, 312, collect, &p), 0);
	TEST_EQ(oggw_packet(w, pkt, sizeof(pkt), 960, false, collect, &p), 0);
	TEST_EQ(p.buf[p.off[0] + 5], 2);
	TEST_EQ(rd32(p.buf + p.off[2] + 14), 7);
	TEST_EQ(rd32(p.buf + p.off[2] + 18), 2);
	TEST_EQ(rd64(p.buf + p.off[2] + 6), 960);
	oggw_free(w);
	return 0;
}

/* Packets of every lacing shape (one byte short of, at, and past a
 * multiple of 255, up to the longest) come back whole from libogg's own
 * reader, with their flags and granules; one byte more is refused. */
static int
test_libogg_reads(void)
{
	static struct pages p;
	static uint8_t      pkt[OGGW_PACKET_MAX + 1];
	static const size_t lens[] = { 1, 254, 255, 256, 510, 1275, 4000,
		OGGW_PACKET_MAX };
	const size_t        n_lens = sizeof(lens) / sizeof(lens[0]);
	struct oggw        *w;
	ogg_sync_state      sy;
	ogg_stream_state    os;
	ogg_page            og;
	ogg_packet          op;
	size_t              got = 0;

	for (size_t i = 0; i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)(i * 7 + 3);
	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(oggw_begin(w, 99, 8000, 312, collect, &p), 0);
	for (size_t i = 0; i < n_lens; i++)
		TEST_EQ(oggw_packet(w, pkt, lens[i], 960, i == n_lens - 1,
		            collect, &p),
		    0);
	TEST_EQ(p.n, 2 + n_lens);
	TEST_EQ(oggw_begin(w, 100, 8000, 312, collect, &p), 0);
	TEST_EQ(oggw_packet(w, pkt, OGGW_PACKET_MAX + 1, 960, false, collect,
	            &p),
	    EMSGSIZE);
	oggw_free(w);

	ogg_sync_init(&sy);
	ogg_stream_init(&os, 99);
	memcpy(ogg_sync_buffer(&sy, (long)p.len), p.buf, p.len);
	ogg_sync_wrote(&sy, (long)p.len);
	for (int k = 0; k < 2 + (int)n_lens; k++) {
		TEST_EQ(ogg_sync_pageout(&sy, &og), 1); /* CRC checked */
		TEST_EQ(ogg_page_serialno(&og), 99);
		TEST_EQ(ogg_page_bos(&og) != 0, k == 0);
		TEST_EQ(ogg_page_eos(&og) != 0, k == 1 + (int)n_lens);
		TEST_EQ(ogg_stream_pagein(&os, &og), 0);
		TEST_EQ(ogg_stream_packetout(&os, &op), 1);
		TEST_EQ(ogg_stream_packetout(&os, &op), 0);
		if (k < 2)
			continue;
		TEST_EQ((size_t)op.bytes, lens[got]);
		TEST_ASSERT(memcmp(op.packet, pkt, lens[got]) == 0);
		TEST_EQ(op.granulepos, (int64_t)(k - 1) * 960);
		got++;
	}
	TEST_EQ(got, n_lens);
	ogg_stream_clear(&os);
	ogg_sync_clear(&sy);
	return 0;
}

/* What libogg's reader makes of collected pages: per page its packet
 * count, granule and flags; every packet's size and first byte. */
struct readback {
	int     pages;
	int     per_page[64];
	int64_t granule[64];
	int     eos[64];
	int     packets;
	size_t  size[256];
	uint8_t first[256];
};

static int
read_back(const struct pages *p, uint32_t serial, struct readback *rb)
{
	ogg_sync_state   sy;
	ogg_stream_state os;
	ogg_page         og;
	ogg_packet       op;

	memset(rb, 0, sizeof(*rb));
	ogg_sync_init(&sy);
	ogg_stream_init(&os, (int)serial);
	memcpy(ogg_sync_buffer(&sy, (long)p->len), p->buf, p->len);
	ogg_sync_wrote(&sy, (long)p->len);
	while (ogg_sync_pageout(&sy, &og) == 1 && rb->pages < 64) {
		int k = rb->pages++;
		TEST_EQ(ogg_page_serialno(&og), (int)serial);
		TEST_EQ(ogg_stream_pagein(&os, &og), 0); /* CRC, sequence */
		rb->granule[k] = ogg_page_granulepos(&og);
		rb->eos[k]     = ogg_page_eos(&og) != 0;
		while (ogg_stream_packetout(&os, &op) == 1) {
			rb->per_page[k]++;
			if (rb->packets < 256) {
				rb->size[rb->packets]  = (size_t)op.bytes;
				rb->first[rb->packets] = op.packet[0];
			}
			rb->packets++;
		}
	}
	ogg_stream_clear(&os);
	ogg_sync_clear(&sy);
	return 0;
}

/* n packets of sizes size[i] whose first byte is their index. */
static int
put_packets(
    struct oggw *w, struct pages *p, const size_t *size, int n, bool eos_last)
{
	static uint8_t pkt[OGGW_PACKET_MAX];

	for (int i = 0; i < n; i++) {
		memset(pkt, 0xa5, size[i]);
		pkt[0] = (uint8_t)i;
		TEST_EQ(oggw_packet(w, pkt, size[i], 960,
		            eos_last && i == n - 1, collect, p),
		    0);
	}
	return 0;
}

/* Two and four packets a page, as the browser client and as one
 * PersonaPlex step: each page ends after every n-th packet, its granule
 * is its last packet's end, and every packet comes back whole. */
static int
test_per_page(void)
{
	static struct pages    p;
	static struct readback rb;
	static const size_t    size[10]
	    = { 61, 58, 300, 1, 255, 256, 90, 70, 64, 66 };
	struct oggw *w;

	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(oggw_set_per_page(w, 0), EINVAL);
	TEST_EQ(oggw_set_per_page(w, OGGW_PER_PAGE_MAX + 1), EINVAL);
	for (unsigned per = 2; per <= OGGW_PER_PAGE_MAX; per += 2) {
		p.len = p.n = 0;
		TEST_EQ(oggw_set_per_page(w, per), 0);
		TEST_EQ(oggw_begin(w, 5, 8000, 312, collect, &p), 0);
		if (put_packets(w, &p, size, 10, false))
			return 1;
		TEST_EQ(oggw_pending(w), 10 % per);
		TEST_EQ(read_back(&p, 5, &rb), 0);
		TEST_EQ(rb.pages, 2 + 10 / (int)per);
		for (int k = 2; k < rb.pages; k++) {
			TEST_EQ(rb.per_page[k], (int)per);
			TEST_EQ(rb.granule[k], (int64_t)(k - 1) * per * 960);
		}
		TEST_EQ(rb.packets, 2 + 10 / (int)per * (int)per);
		for (int i = 0; i + 2 < rb.packets; i++) {
			TEST_EQ(rb.size[i + 2], size[i]);
			TEST_EQ(rb.first[i + 2], i);
		}
		/* The rest goes out on a shorter page when asked. */
		TEST_EQ(oggw_flush(w, collect, &p), 0);
		TEST_EQ(oggw_pending(w), 0);
		TEST_EQ(oggw_flush(w, collect, &p), 0); /* nothing left */
		TEST_EQ(read_back(&p, 5, &rb), 0);
		TEST_EQ(rb.packets, 12);
		TEST_EQ(rb.granule[rb.pages - 1], 10 * 960);
		TEST_EQ(rb.per_page[rb.pages - 1],
		    10 % per ? (int)(10 % per) : (int)per);
	}
	oggw_free(w);
	return 0;
}

/* A packet too big to wait with the others ends the page early, but the
 * pages after keep their boundaries (after packets 3, 7, ... of four); an
 * end of stream closes the page it is on; a new stream drops what the old
 * one had waiting. */
static int
test_per_page_early(void)
{
	static struct pages    p;
	static struct readback rb;
	static const size_t    size[9]
	    = { 600, 600, 600, 600, 10, 2000, 10, 10, 20 };
	static const int    want[]   = { 1, 1, 1, 1, 1, 1, 2, 1 };
	static const size_t small[4] = { 10, 10, 20, 30 };
	struct oggw        *w;

	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(oggw_set_per_page(w, 4), 0);
	TEST_EQ(oggw_begin(w, 6, 8000, 312, collect, &p), 0);
	if (put_packets(w, &p, size, 9, true))
		return 1;
	TEST_EQ(read_back(&p, 6, &rb), 0);
	/* [0] [1] [2] [3] | [4] [5] [6 7] | [8] (end of stream) */
	TEST_EQ(rb.pages, 2 + 8);
	for (int k = 0; k < 8; k++)
		TEST_EQ(rb.per_page[k + 2], want[k]);
	TEST_EQ(rb.granule[5], 4 * 960);
	TEST_EQ(rb.granule[8], 8 * 960);
	TEST_EQ(rb.eos[9], 1);
	TEST_EQ(rb.granule[9], 9 * 960);
	for (int i = 0; i < 9; i++)
		TEST_EQ(rb.size[i + 2], size[i]);
	TEST_EQ(oggw_pending(w), 0);

	/* Two packets wait; the next stream starts without them. */
	p.len = p.n = 0;
	TEST_EQ(oggw_begin(w, 7, 8000, 312, collect, &p), 0);
	if (put_packets(w, &p, small, 2, false))
		return 1;
	TEST_EQ(oggw_pending(w), 2);
	p.len = p.n = 0;
	TEST_EQ(oggw_begin(w, 8, 8000, 312, collect, &p), 0);
	TEST_EQ(oggw_pending(w), 0);
	if (put_packets(w, &p, small, 4, false))
		return 1;
	TEST_EQ(read_back(&p, 8, &rb), 0);
	TEST_EQ(rb.pages, 3);
	TEST_EQ(rb.per_page[2], 4);
	TEST_EQ(rb.granule[2], 4 * 960);
	oggw_free(w);
	return 0;
}

/* Encodes secs of a 440 Hz tone with the real codec settings. */
static int
write_tone(struct pages *p, uint32_t serial, int secs, unsigned per_page)
{
	struct oggw      *w;
	struct codec_enc *e;
	int16_t           pcm[CODEC_FRAME];
	uint8_t           pkt[CODEC_MAX_PACKET];
	size_t            n;

	TEST_EQ(oggw_alloc(&w), 0);
	TEST_EQ(oggw_set_per_page(w, per_page), 0);
	TEST_EQ(codec_enc_alloc(&e, 5, 24000), 0);
	TEST_EQ(oggw_begin(w, serial, 8000,
	            (uint16_t)(codec_enc_lookahead(e) * 2), collect, p),
	    0);
	for (int f = 0; f < secs * 50; f++) {
		for (int i = 0; i < CODEC_FRAME; i++)
			pcm[i] = (int16_t)(10000
			    * sin(2 * M_PI * 440 * (f * CODEC_FRAME + i)
			        / CODEC_RATE));
		TEST_EQ(codec_encode(e, pcm, pkt, sizeof(pkt), &n), 0);
		TEST_ASSERT(n > 2);
		TEST_EQ(oggw_packet(
		            w, pkt, n, 960, f == secs * 50 - 1, collect, p),
		    0);
	}
	codec_enc_free(e);
	oggw_free(w);
	return 0;
}

/* opusinfo accepts a 3 s tone without a warning, per_page packets a
 * page (the last page ends the stream). */
static int
opusinfo_ok(unsigned per_page)
{
	static struct pages p;
	char                path[] = "/tmp/oggw_testXXXXXX";
	char                cmd[256], line[512];
	int                 fd, bad = 0, lines = 0;
	FILE               *f;

	p.len = p.n = 0;
	p.headers   = 0;
	if (write_tone(&p, 0x1234567u, 3, per_page))
		return 1;
	TEST_EQ(p.n, 2 + (150 + per_page - 1) / per_page);
	TEST_ASSERT((fd = mkstemp(path)) >= 0);
	TEST_EQ(write(fd, p.buf, p.len), (long long)p.len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "opusinfo %s 2>&1; echo rc=$?", path);
	TEST_ASSERT((f = popen(cmd, "r")) != NULL);
	while (fgets(line, sizeof(line), f)) {
		lines++;
		if (strstr(line, "WARN") || strstr(line, "rror")
		    || (strstr(line, "rc=") && strcmp(line, "rc=0\n") != 0)) {
			printf("  opusinfo: %s", line);
			bad++;
		}
		if (strstr(line, "Playback length"))
			printf("  opusinfo (%u a page): %s", per_page, line);
	}
	pclose(f);
	if (!getenv("KEEP"))
		unlink(path);
	else
		printf("  kept %s\n", path);
	TEST_ASSERT(lines > 3);
	TEST_EQ(bad, 0);
	return 0;
}

static int
test_opusinfo(void)
{
	if (system("command -v opusinfo >/dev/null 2>&1") != 0) {
		printf("  SKIP: opusinfo (opus-tools) is not installed\n");
		return 0;
	}
	return opusinfo_ok(1) || opusinfo_ok(4);
}

TEST_MAIN(TEST(test_opushead_bytes), TEST(test_golden_bos), TEST(test_layout),
    TEST(test_libogg_reads), TEST(test_per_page), TEST(test_per_page_early),
    TEST(test_opusinfo))
