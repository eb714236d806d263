/*
 * sphn_test.c - the downlink writer against sphn's golden pages, read back
 * by the strict reader and decoded by libopus.
 */
#include "oggstrict.h"
#include "sphn.h"
#include "test.h"

#include <errno.h>
#include <math.h>
#include <opus/opus.h>

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

struct out {
	size_t  n;
	size_t  len[8];
	uint8_t page[8][2000];
};

static int
on_page(void *arg, const uint8_t *page, size_t len)
{
	struct out *o = arg;
	if (o->n < 8 && len <= sizeof(o->page[0])) {
		memcpy(o->page[o->n], page, len);
		o->len[o->n] = len;
	}
	o->n++;
	return 0;
}

struct dec {
	OpusDecoder *d;
	int          samples, packets, headers;
	uint64_t     granule[8];
	uint32_t     seq[8];
};

static int
on_packet(void *arg, const struct oggstrict_packet *p)
{
	struct dec *d = arg;
	float       pcm[2880];

	if (p->len >= 8
	    && (!memcmp(p->data, "OpusHead", 8)
	        || !memcmp(p->data, "OpusTags", 8))) {
		d->headers++;
		return 0;
	}
	int n = opus_decode_float(
	    d->d, p->data, (opus_int32)p->len, pcm, 2880, 0);
	if (n < 0)
		return 1;
	if (d->packets < 8) {
		d->granule[d->packets] = p->granule;
		d->seq[d->packets]     = p->page_seq;
	}
	d->packets++;
	d->samples += n;
	return 0;
}

static int
test_headers_golden(void)
{
	struct out          o = { 0 };
	struct sphn_writer *w = NULL;

	TEST_EQ(sphn_writer_alloc(&w, on_page, &o), 0);
	TEST_EQ(o.n, 2);
	TEST_EQ(o.len[0], sizeof(golden0));
	TEST_EQ(o.len[1], sizeof(golden1));
	TEST_ASSERT(memcmp(o.page[0], golden0, sizeof(golden0)) == 0);
	TEST_ASSERT(memcmp(o.page[1], golden1, sizeof(golden1)) == 0);
	sphn_writer_free(w);
	return 0;
}

static int
test_audio_pages(void)
{
	struct out           o = { 0 };
	struct sphn_writer  *w = NULL;
	float                pcm[SPHN_FRAME];
	struct dec           d   = { 0 };
	struct oggstrict_ops ops = { on_packet, NULL, NULL };
	struct oggstrict    *r   = NULL;
	int                  err;

	for (int i = 0; i < SPHN_FRAME; i++)
		pcm[i] = 0.3f * sinf(2 * 3.14159265f * 440 * i / SPHN_RATE);
	TEST_EQ(sphn_writer_alloc(&w, on_page, &o), 0);
	TEST_EQ(sphn_writer_append(w, pcm, SPHN_FRAME), 0);
	TEST_EQ(sphn_writer_append(w, pcm, SPHN_FRAME), 0);
	TEST_EQ(sphn_writer_append(w, pcm, 1000), EINVAL);
	TEST_EQ(o.n, 4);
	/* Header type 0, one packet per page. */
	TEST_EQ(o.page[2][5], 0);
	d.d = opus_decoder_create(SPHN_RATE, 1, &err);
	TEST_ASSERT(d.d);
	TEST_EQ(oggstrict_alloc(&r, &ops, &d), 0);
	for (size_t i = 0; i < o.n; i++)
		TEST_EQ(oggstrict_feed(r, o.page[i], o.len[i]), 0);
	TEST_EQ(d.headers, 2);
	TEST_EQ(d.packets, 2);
	TEST_EQ(d.samples, 2 * SPHN_FRAME);
	TEST_EQ(d.granule[0], 1920); /* 24 kHz units, as sphn does */
	TEST_EQ(d.granule[1], 3840);
	TEST_EQ(d.seq[0], 2);
	TEST_EQ(d.seq[1], 3);
	oggstrict_free(r);
	opus_decoder_destroy(d.d);
	sphn_writer_free(w);
	return 0;
}

static int
test_page_lacing(void)
{
	uint8_t pkt[600], page[1000];
	size_t  n;

	memset(pkt, 7, sizeof(pkt));
	n = sphn_page(page, sizeof(page), 0, 5, 42, 9, pkt, 255);
	TEST_EQ(n, 27 + 2 + 255);
	TEST_EQ(page[26], 2);
	TEST_EQ(page[27], 255);
	TEST_EQ(page[28], 0);
	n = sphn_page(page, sizeof(page), 0, 5, 42, 9, pkt, 0);
	TEST_EQ(n, 28);
	TEST_EQ(page[27], 0);
	TEST_EQ(sphn_page(page, 100, 0, 5, 42, 9, pkt, 600), 0);
	return 0;
}

TEST_MAIN(
    TEST(test_headers_golden), TEST(test_audio_pages), TEST(test_page_lacing))
