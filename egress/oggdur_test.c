/*
 * oggdur_test.c - Opus durations counted from Ogg bytes however they are
 * cut, against pages made by libogg.
 */
#include "oggdur.h"

#include <ogg/ogg.h>
#include <stdlib.h>

#include "test.h"

static uint8_t stream[200000];
static size_t  slen;

static void
put_pages(ogg_stream_state *os, int flush)
{
	ogg_page pg;

	while (
	    flush ? ogg_stream_flush(os, &pg) : ogg_stream_pageout(os, &pg)) {
		memcpy(stream + slen, pg.header, (size_t)pg.header_len);
		slen += (size_t)pg.header_len;
		memcpy(stream + slen, pg.body, (size_t)pg.body_len);
		slen += (size_t)pg.body_len;
	}
}

static void
packet(ogg_stream_state *os, const uint8_t *d, size_t n, int bos, int eos,
    int64_t gp, int flush)
{
	ogg_packet p = { (unsigned char *)d, (long)n, bos, eos, gp, 0 };

	ogg_stream_packetin(os, &p);
	put_pages(os, flush);
}

/* OpusHead, OpusTags, then: 10 packets of 80 ms (CELT 20 ms x4, code 3),
 * a 300-byte 20 ms packet (two segments), a 70000-byte 10 ms packet (two
 * pages), two 2.5 ms frames (code 1). Total in 48 kHz samples: */
#define WANT (10 * 3840 + 960 + 480 + 240)

static void
build(void)
{
	ogg_stream_state os;
	uint8_t          head[19] = "OpusHead", tags[16] = "OpusTags";
	static uint8_t   big[70000];
	uint8_t          p80[40]   = { (31 << 3) | 3, 4 };
	uint8_t          p300[300] = { (31 << 3) | 0 };

	slen = 0;
	ogg_stream_init(&os, 42);
	head[8] = 1;
	packet(&os, head, sizeof(head), 1, 0, 0, 1);
	packet(&os, tags, sizeof(tags), 0, 0, 0, 1);
	for (int i = 0; i < 10; i++)
		packet(&os, p80, sizeof(p80), 0, 0, 1920 * (i + 1), 1);
	packet(&os, p300, sizeof(p300), 0, 0, 30000, 1);
	memset(big, 0xaa, sizeof(big));
	big[0] = (30 << 3) | 0; /* CELT 10 ms */
	packet(&os, big, sizeof(big), 0, 0, 31000, 1);
	uint8_t two[3] = { (16 << 3) | 1, 1, 2 }; /* CELT 2.5 ms, two */
	packet(&os, two, sizeof(two), 0, 1, 32000, 1);
	ogg_stream_clear(&os);
}

static int
test_packet(void)
{
	const uint8_t silk20[1]  = { (1 << 3) | 0 },
	              hyb10x2[1] = { (12 << 3) | 2 },
	              c3[2] = { (31 << 3) | 3, 6 }, c3short[1] = { 3 };

	TEST_EQ(oggdur_packet(silk20, 1), 960);
	TEST_EQ(oggdur_packet(hyb10x2, 1), 960);
	TEST_EQ(oggdur_packet(c3, 2), 5760);
	TEST_EQ(oggdur_packet(c3short, 1), 0);
	TEST_EQ(oggdur_packet(c3, 0), 0);
	return 0;
}

static int
test_whole_and_split(void)
{
	struct oggdur d = { 0 };

	build();
	TEST_ASSERT(slen > 70000);
	oggdur_feed(&d, stream, slen);
	TEST_EQ(d.samples, WANT);
	TEST_EQ(d.packets, 13);
	TEST_EQ(d.skipped, 0);

	/* One byte at a time. */
	memset(&d, 0, sizeof(d));
	for (size_t i = 0; i < slen; i++)
		oggdur_feed(&d, stream + i, 1);
	TEST_EQ(d.samples, WANT);

	/* Random cuts, twice over (the totals add up). */
	srand(7);
	for (size_t i = 0; i < slen;) {
		size_t n = 1 + (size_t)rand() % 700;
		if (n > slen - i)
			n = slen - i;
		oggdur_feed(&d, stream + i, n);
		i += n;
	}
	TEST_EQ(d.samples, 2 * WANT);
	TEST_NEAR(oggdur_seconds(&d), 2.0 * WANT / 48000.0, 1e-9);
	return 0;
}

static int
test_garbage_and_reset(void)
{
	struct oggdur d      = { 0 };
	uint8_t       junk[] = "OggxOgOggjunk";

	build();
	oggdur_feed(&d, junk, sizeof(junk) - 1);
	oggdur_feed(&d, stream, slen);
	TEST_EQ(d.samples, WANT);
	TEST_ASSERT(d.skipped >= sizeof(junk) - 1);

	/* A stream cut in the middle of a page, then a new stream. */
	struct oggdur e = { 0 };
	oggdur_feed(&e, stream, slen / 3);
	uint64_t part = e.samples;
	oggdur_reset(&e);
	oggdur_feed(&e, stream, slen);
	TEST_EQ(e.samples, part + WANT);
	return 0;
}

TEST_MAIN(TEST(test_packet), TEST(test_whole_and_split),
    TEST(test_garbage_and_reset))
