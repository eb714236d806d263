/*
 * tcall_test.c - the per-call pipeline end to end: a tone at the call's
 * rate goes up as Ogg pages, the pages come back as downlink, and the
 * tone comes out at the call's rate.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec.h"
#include "oggdemux.h"
#include "spectrum.h"
#include "tcall.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct sink {
	uint8_t  ogg[1 << 20];
	size_t   ogg_len;
	size_t   pages, headers;
	uint32_t session; /* of the last page */
	uint32_t serial; /* of the last page */
	int      bos_pages; /* pages with the BOS flag */
	int      bad_order; /* a header page after an audio page */
	bool     audio_seen;
	int16_t  pcm[24000 * 12];
	size_t   pcm_len;
	size_t   pcm_calls;
};

static void
on_page(
    void *arg, uint32_t session, const uint8_t *page, size_t n, bool header)
{
	struct sink *s = arg;

	if (s->ogg_len + n <= sizeof(s->ogg)) {
		memcpy(s->ogg + s->ogg_len, page, n);
		s->ogg_len += n;
	}
	s->pages++;
	s->headers += header;
	s->session = session;
	s->serial  = (uint32_t)page[14] | (uint32_t)page[15] << 8
	    | (uint32_t)page[16] << 16 | (uint32_t)page[17] << 24;
	s->bos_pages += (page[5] & 2) != 0;
	if (header && s->audio_seen)
		s->bad_order++;
	if (!header)
		s->audio_seen = true;
}

static void
on_pcm(void *arg, const int16_t *pcm, size_t n)
{
	struct sink *s = arg;

	if (s->pcm_len + n <= sizeof(s->pcm) / sizeof(s->pcm[0])) {
		memcpy(s->pcm + s->pcm_len, pcm, n * sizeof(*pcm));
		s->pcm_len += n;
	}
	s->pcm_calls++;
}

static void
tone(int16_t *buf, size_t n, size_t start, double hz, int rate)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (int16_t)(8000
		    * sin(2 * M_PI * hz * (double)(start + i) / rate));
}

static int
new_call_at(struct tcall **c, struct sink *s, int rate, int opus_rate)
{
	struct tcall_opts o = {
		.rate       = rate,
		.opus_rate  = opus_rate,
		.complexity = 5,
		.bitrate    = 24000,
		.on_page    = on_page,
		.on_pcm     = on_pcm,
		.arg        = s,
	};
	memset(s, 0, sizeof(*s));
	return tcall_alloc(c, &o);
}

static int
new_call(struct tcall **c, struct sink *s, int rate)
{
	return new_call_at(c, s, rate, 0);
}

/* Sends secs of a 1 kHz tone in chunk_ms chunks through the uplink. */
static int
send_tone(struct tcall *c, int rate, int secs, int chunk_ms)
{
	size_t  cn = (size_t)rate * chunk_ms / 1000;
	int16_t buf[2400];

	for (size_t k = 0; k < (size_t)secs * 1000 / chunk_ms; k++) {
		tone(buf, cn, k * cn, 1000, rate);
		TEST_EQ(tcall_uplink(c, buf, cn), 0);
	}
	return 0;
}

struct heard {
	struct codec_dec *dec;
	int16_t           pcm[24000 * 5];
	size_t            n;
};

static void
hear(void *arg, const uint8_t *pkt, size_t n)
{
	struct heard *h = arg;
	size_t        got;

	if (h->n + CODEC_MAX_FRAME <= sizeof(h->pcm) / sizeof(h->pcm[0])
	    && codec_decode(
	           h->dec, pkt, n, h->pcm + h->n, CODEC_MAX_FRAME, &got)
	        == 0)
		h->n += got;
}

static int
loop_opus_at(int rate, int chunk_ms, int opus_rate)
{
	static struct sink s;
	struct tcall      *c;
	struct tcall_stats st;

	TEST_EQ(new_call_at(&c, &s, rate, opus_rate), 0);
	TEST_EQ(tcall_rate(c), rate);
	TEST_EQ(tcall_session_start(c, 1, 0xabcdef01u), 0);
	TEST_EQ(tcall_session(c), 1);
	TEST_EQ(s.pages, 2);
	TEST_EQ(s.headers, 2);
	if (send_tone(c, rate, 4, chunk_ms))
		return 1;
	tcall_stats(c, &st);
	/* 4 s is 200 frames; soxr holds back less than one. */
	TEST_ASSERT(st.frames_encoded >= 199 && st.frames_encoded <= 200);
	TEST_EQ(s.pages, 2 + st.frames_encoded);
	TEST_EQ(s.session, 1);
	TEST_EQ(s.serial, 0xabcdef01u);
	TEST_EQ(s.bos_pages, 1);
	TEST_EQ(s.bad_order, 0);
	TEST_EQ(st.encode_errors, 0);

	/* What PersonaPlex hears: the pages decoded at 24 kHz hold the
	 * 1 kHz tone (a sample-rate bug on the way up shows here). */
	static struct heard h;
	TEST_EQ(codec_dec_alloc(&h.dec), 0);
	h.n = 0;
	struct oggdemux *d;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, hear, &h), 0);
	TEST_EQ(h.n, st.frames_encoded * CODEC_FRAME);
	TEST_NEAR(
	    spectrum_dominant_hz(h.pcm + 4800, h.n - 4800, 24000), 1000, 10);
	oggdemux_free(d);
	codec_dec_free(h.dec);

	/* The pages come back as downlink in uneven pieces. */
	for (size_t off = 0; off < s.ogg_len;) {
		size_t k = s.ogg_len - off < 333 ? s.ogg_len - off : 333;
		TEST_EQ(tcall_downlink(c, 1, s.ogg + off, k), 0);
		off += k;
	}
	tcall_stats(c, &st);
	TEST_EQ(st.decode_errors, 0);
	TEST_EQ(st.ogg_sync_errors, 0);
	TEST_EQ(st.ogg_holes, 0);
	TEST_EQ(st.frames_decoded, st.frames_encoded);
	/* As many samples at the call's rate, less what soxr holds. */
	TEST_ASSERT(s.pcm_len <= (size_t)rate * 4);
	TEST_ASSERT(s.pcm_len >= (size_t)rate * 4 - (size_t)rate / 25);
	TEST_EQ(st.samples_out, s.pcm_len);
	double hz = spectrum_dominant_hz(
	    s.pcm + rate / 5, s.pcm_len - (size_t)rate / 5, rate);
	printf("  %5d Hz, Opus at %5d Hz, %3d ms chunks: %zu samples out, "
	       "tone %.1f Hz, %zu bytes of Ogg\n",
	    rate, opus_rate ? opus_rate : CODEC_RATE, chunk_ms, s.pcm_len, hz,
	    s.ogg_len);
	TEST_NEAR(hz, 1000, 10);
	tcall_free(c);
	return 0;
}

static int
loop_at(int rate, int chunk_ms)
{
	return loop_opus_at(rate, chunk_ms, 0);
}

static int
test_loop_8k(void)
{
	return loop_at(8000, 20) || loop_at(8000, 100);
}

static int
test_loop_16k(void)
{
	return loop_at(16000, 20) || loop_at(16000, 100);
}

static int
test_loop_24k(void)
{
	return loop_at(24000, 20) || loop_at(24000, 100);
}

/* Before a session nothing is encoded; after it ends, nothing either. */
static int
test_no_session(void)
{
	static struct sink s;
	struct tcall      *c;
	struct tcall_stats st;

	TEST_EQ(new_call(&c, &s, 8000), 0);
	TEST_EQ(tcall_session(c), 0);
	if (send_tone(c, 8000, 1, 20))
		return 1;
	TEST_EQ(s.pages, 0);
	tcall_stats(c, &st);
	TEST_EQ(st.frames_encoded, 0);
	TEST_ASSERT(st.frames_idle >= 49 && st.frames_idle <= 50);
	TEST_EQ(st.samples_in, 8000);

	TEST_EQ(tcall_session_start(c, 3, 1), 0);
	if (send_tone(c, 8000, 1, 20))
		return 1;
	TEST_EQ(s.pages, 2 + 50);
	tcall_session_end(c, 2); /* not the current one: ignored */
	TEST_EQ(tcall_session(c), 3);
	tcall_session_end(c, 3);
	TEST_EQ(tcall_session(c), 0);
	if (send_tone(c, 8000, 1, 20))
		return 1;
	TEST_EQ(s.pages, 2 + 50);
	tcall_free(c);
	return 0;
}

static void
count_packet(void *arg, const uint8_t *pkt, size_t n)
{
	(*(size_t *)arg)++;
}

/* A new session is a new chained stream: a BOS page with a new serial,
 * whose pages a strict reader takes as a second logical stream. */
static int
test_new_session(void)
{
	static struct sink    s;
	struct tcall         *c;
	struct oggdemux      *d;
	struct oggdemux_stats ds;

	TEST_EQ(new_call(&c, &s, 16000), 0);
	TEST_EQ(tcall_session_start(c, 1, 111), 0);
	if (send_tone(c, 16000, 1, 20))
		return 1;
	size_t first = s.pages;
	s.audio_seen = false;
	TEST_EQ(tcall_session_start(c, 2, 222), 0);
	if (send_tone(c, 16000, 1, 20))
		return 1;
	TEST_EQ(s.session, 2);
	TEST_EQ(s.serial, 222);
	TEST_EQ(s.bos_pages, 2);
	TEST_EQ(s.bad_order, 0);
	TEST_EQ(s.pages - first, 2 + 50);

	size_t npkt = 0;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, count_packet, &npkt), 0);
	oggdemux_stats(d, &ds);
	TEST_EQ(npkt, s.pages - 4);
	TEST_EQ(ds.streams, 2);
	TEST_EQ(ds.headers, 4);
	TEST_EQ(ds.sync_errors, 0);
	TEST_EQ(ds.holes, 0);
	oggdemux_free(d);
	tcall_free(c);
	return 0;
}

/* Downlink garbage and a session change: counted, never fatal, and the
 * next good stream plays. */
static int
test_downlink_damage(void)
{
	static struct sink s, up;
	struct tcall      *c, *u;
	struct tcall_stats st;
	uint8_t            junk[1000];

	/* A good stream from another call's uplink. */
	TEST_EQ(new_call(&u, &up, 24000), 0);
	TEST_EQ(tcall_session_start(u, 1, 42), 0);
	if (send_tone(u, 24000, 1, 20))
		return 1;

	TEST_EQ(new_call(&c, &s, 8000), 0);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	TEST_EQ(tcall_downlink(c, 1, junk, sizeof(junk)), 0);
	TEST_EQ(tcall_downlink(c, 1, up.ogg, up.ogg_len / 2), 0);
	/* Session 2 begins: the half page left of session 1 is dropped. */
	TEST_EQ(tcall_downlink(c, 2, up.ogg, up.ogg_len), 0);
	tcall_stats(c, &st);
	TEST_EQ(st.decode_errors, 0);
	TEST_ASSERT(st.ogg_sync_errors >= 1);
	TEST_EQ(st.ogg_streams, 2);
	TEST_ASSERT(st.frames_decoded >= 50 + 20);
	TEST_ASSERT(s.pcm_len > 8000 * 3 / 2 - 400);
	/* A 24 kHz stream plays at 8 kHz with its tone where it was. */
	TEST_NEAR(spectrum_dominant_hz(s.pcm + 8000, s.pcm_len - 8000, 8000),
	    1000, 10);
	tcall_free(c);
	tcall_free(u);
	return 0;
}

/* Randomly damaged downlink (bit flips, cuts, repeats, junk) through
 * demux, decode and resample: counted, never a crash (run it under
 * ASan to see memory errors). */
static int
test_downlink_fuzz(void)
{
	static struct sink s, up;
	static uint8_t     buf[1 << 16];
	struct tcall      *c, *u;
	struct tcall_stats st;
	unsigned           seed = 777;

	TEST_EQ(new_call(&u, &up, 24000), 0);
	TEST_EQ(tcall_session_start(u, 1, 42), 0);
	if (send_tone(u, 24000, 1, 20))
		return 1;
	TEST_ASSERT(up.ogg_len < sizeof(buf) / 2);
	TEST_EQ(new_call(&c, &s, 8000), 0);
	for (uint32_t round = 1; round <= 300; round++) {
		size_t n = up.ogg_len;
		memcpy(buf, up.ogg, n);
		int edits = rand_r(&seed) % 20 + 1;
		for (int e = 0; e < edits; e++) {
			size_t at = (size_t)rand_r(&seed) % n;
			switch (rand_r(&seed) % 4) {
			case 0: /* flip a bit */
				buf[at]
				    ^= (uint8_t)(1u << (rand_r(&seed) % 8));
				break;
			case 1: /* cut a run */
				if (n > 200) {
					size_t k = (size_t)rand_r(&seed) % 100;
					memmove(buf + at, buf + at + k,
					    n - at - k > n ? 0 : n - at - k);
					n -= k < n - at ? k : n - at;
				}
				break;
			case 2: /* repeat a run */
				if (n + 100 < sizeof(buf)) {
					size_t k = (size_t)rand_r(&seed) % 100;
					if (at + k > n)
						k = n - at;
					memmove(
					    buf + at + k, buf + at, n - at);
					n += k;
				}
				break;
			default: /* junk */
				buf[at] = (uint8_t)rand_r(&seed);
				break;
			}
		}
		/* Fed in random pieces, a new session every few rounds. */
		for (size_t off = 0; off < n;) {
			size_t k = (size_t)rand_r(&seed) % 900 + 1;
			if (k > n - off)
				k = n - off;
			TEST_EQ(tcall_downlink(c, round / 5, buf + off, k), 0);
			off += k;
		}
	}
	tcall_stats(c, &st);
	printf("  %llu packets decoded, %llu refused, %llu sync errors, "
	       "%llu holes\n",
	    (unsigned long long)st.frames_decoded,
	    (unsigned long long)st.decode_errors,
	    (unsigned long long)st.ogg_sync_errors,
	    (unsigned long long)st.ogg_holes);
	TEST_ASSERT(st.frames_decoded > 1000);
	TEST_ASSERT(st.ogg_sync_errors > 0);
	tcall_free(c);
	tcall_free(u);
	return 0;
}

/* The density profile: Opus at the call's own rate. PersonaPlex decodes
 * the stream at 24 kHz (checked in loop_opus_at), and the downlink's
 * 24 kHz stream decodes straight to the call's rate. */
static int
test_opus_at_call_rate(void)
{
	static struct sink s, up;
	struct tcall      *c, *u;
	struct tcall_stats st;

	if (loop_opus_at(8000, 20, 8000) || loop_opus_at(8000, 100, 8000)
	    || loop_opus_at(16000, 20, 16000))
		return 1;

	/* A 24 kHz stream (as PersonaPlex sends) into an 8 kHz pipeline
	 * whose Opus runs at 8 kHz. */
	TEST_EQ(new_call(&u, &up, 24000), 0);
	TEST_EQ(tcall_session_start(u, 1, 42), 0);
	if (send_tone(u, 24000, 2, 20))
		return 1;
	TEST_EQ(new_call_at(&c, &s, 8000, 8000), 0);
	TEST_EQ(tcall_downlink(c, 1, up.ogg, up.ogg_len), 0);
	tcall_stats(c, &st);
	TEST_EQ(st.decode_errors, 0);
	TEST_EQ(st.frames_decoded, 100);
	/* No resampler: every decoded sample comes out at once. */
	TEST_EQ(s.pcm_len, 100 * 160);
	TEST_NEAR(spectrum_dominant_hz(s.pcm + 1600, s.pcm_len - 1600, 8000),
	    1000, 10);
	tcall_free(c);
	tcall_free(u);
	return 0;
}

/* Two calls sharing one scratch, their uplinks and downlinks
 * interleaved: each hears its own tone. */
static int
test_shared_scratch(void)
{
	static struct sink    s1, s2;
	struct tcall_scratch *sc;
	struct tcall         *c1, *c2;
	struct tcall_opts     o = { .rate = 8000,
		    .complexity           = 5,
		    .bitrate              = 24000,
		    .on_page              = on_page,
		    .on_pcm               = on_pcm };
	int16_t               buf[160];
	size_t                d1 = 0, d2 = 0;

	TEST_EQ(tcall_scratch_alloc(&sc), 0);
	o.scratch = sc;
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	o.arg = &s1;
	TEST_EQ(tcall_alloc(&c1, &o), 0);
	o.arg = &s2;
	TEST_EQ(tcall_alloc(&c2, &o), 0);
	TEST_EQ(tcall_session_start(c1, 1, 1), 0);
	TEST_EQ(tcall_session_start(c2, 1, 2), 0);
	for (size_t k = 0; k < 150; k++) {
		tone(buf, 160, k * 160, 700, 8000);
		TEST_EQ(tcall_uplink(c1, buf, 160), 0);
		tone(buf, 160, k * 160, 1300, 8000);
		TEST_EQ(tcall_uplink(c2, buf, 160), 0);
		/* Each call's own pages come back as its downlink. */
		TEST_EQ(
		    tcall_downlink(c1, 1, s1.ogg + d1, s1.ogg_len - d1), 0);
		d1 = s1.ogg_len;
		TEST_EQ(
		    tcall_downlink(c2, 1, s2.ogg + d2, s2.ogg_len - d2), 0);
		d2 = s2.ogg_len;
	}
	TEST_ASSERT(s1.pcm_len > 8000 * 2 && s2.pcm_len > 8000 * 2);
	TEST_NEAR(spectrum_dominant_hz(s1.pcm + 1600, s1.pcm_len - 1600, 8000),
	    700, 10);
	TEST_NEAR(spectrum_dominant_hz(s2.pcm + 1600, s2.pcm_len - 1600, 8000),
	    1300, 10);
	tcall_free(c1);
	tcall_free(c2);
	tcall_scratch_free(sc);
	return 0;
}

/* Four frames a page (one PersonaPlex step): a page leaves with every
 * fourth frame, the frames waiting go out when the caller's audio ends,
 * and every frame reaches the decoder. */
static int
test_frames_per_page(void)
{
	static struct sink  s;
	static struct heard h;
	struct tcall       *c;
	struct tcall_stats  st;
	struct oggdemux    *d;
	struct tcall_opts   o = {
		  .rate            = 8000,
		  .complexity      = 5,
		  .bitrate         = 24000,
		  .frames_per_page = 4,
		  .on_page         = on_page,
		  .arg             = &s,
	};
	int16_t buf[160];

	memset(&s, 0, sizeof(s));
	TEST_EQ(tcall_alloc(&c, &o), 0);
	TEST_EQ(tcall_flush(c), 0); /* no session: nothing to send */
	TEST_EQ(s.pages, 0);
	TEST_EQ(tcall_session_start(c, 1, 77), 0);
	for (size_t k = 0; k < 51; k++) {
		tone(buf, 160, k * 160, 1000, 8000);
		TEST_EQ(tcall_uplink(c, buf, 160), 0);
	}
	tcall_stats(c, &st);
	TEST_ASSERT(st.frames_encoded >= 50 && st.frames_encoded <= 51);
	TEST_EQ(s.pages, 2 + st.frames_encoded / 4);
	TEST_EQ(tcall_flush(c), 0);
	TEST_EQ(s.pages, 2 + (st.frames_encoded + 3) / 4);
	TEST_EQ(tcall_flush(c), 0);
	TEST_EQ(s.pages, 2 + (st.frames_encoded + 3) / 4);

	TEST_EQ(codec_dec_alloc(&h.dec), 0);
	h.n = 0;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, hear, &h), 0);
	TEST_EQ(h.n, st.frames_encoded * CODEC_FRAME);
	oggdemux_free(d);
	codec_dec_free(h.dec);
	tcall_free(c);

	o.frames_per_page = 5;
	TEST_EQ(tcall_alloc(&c, &o), EINVAL);
	TEST_ASSERT(c == NULL);
	return 0;
}

/* A sound at the start of a 20 ms chunk is in the packets that chunk's
 * tcall_uplink sends, not held for the next chunk: the frames end where
 * the resampler's output stands at a chunk's end (tcall_align). Without
 * that, whether a chunk's audio waited for the next chunk depended on
 * where in soxr's output blocks the session started: so every start from
 * 0 to 15 chunks into the call, and bursts at several chunks of each. */
static int
on_time_at(int rate, int opus_rate, double *least)
{
	static struct sink  s;
	static struct heard h;
	struct tcall       *c;
	struct oggdemux    *d;
	size_t              cn = (size_t)rate / 50, fed = 0;
	int16_t             buf[480] = { 0 };

	for (int start = 0; start < 16; start++) {
		TEST_EQ(new_call_at(&c, &s, rate, opus_rate), 0);
		TEST_EQ(codec_dec_alloc(&h.dec), 0);
		TEST_EQ(oggdemux_alloc(&d), 0);
		h.n = 0;
		fed = 0;
		memset(buf, 0, sizeof(buf));
		for (int k = 0; k < start; k++)
			TEST_EQ(tcall_uplink(c, buf, cn), 0);
		TEST_EQ(tcall_session_start(c, 1, 1), 0);
		for (int k = 0; k < 48; k++) {
			size_t n0 = h.n;
			double e  = 0;
			/* every fourth chunk opens with 5 ms of a tone */
			memset(buf, 0, sizeof(buf));
			if (k % 4 == 3)
				tone(buf, cn / 4, 0, 1000, rate);
			TEST_EQ(tcall_uplink(c, buf, cn), 0);
			TEST_EQ(oggdemux_feed(
			            d, s.ogg + fed, s.ogg_len - fed, hear, &h),
			    0);
			fed = s.ogg_len;
			for (size_t i = n0; i < h.n; i++)
				e += (double)h.pcm[i] * h.pcm[i];
			if (k % 4 == 3 && e < *least)
				*least = e;
		}
		oggdemux_free(d);
		codec_dec_free(h.dec);
		tcall_free(c);
	}
	return 0;
}

static int
test_frame_on_time(void)
{
	static const int cases[][2] = { { 8000, 0 }, { 16000, 0 },
		{ 24000, 0 }, { 8000, 8000 }, { 8000, 16000 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double least = 1e30;
		if (on_time_at(cases[i][0], cases[i][1], &least))
			return 1;
		/* 5 ms of the tone, 8000 peak, at 24 kHz: 3.84e9 */
		printf("  %5d Hz, Opus at %5d Hz: a chunk's own packets held "
		       "at least %.2g of its tone's energy (3.84e9)\n",
		    cases[i][0], cases[i][1] ? cases[i][1] : CODEC_RATE,
		    least);
		TEST_ASSERT(least > 1e9);
	}
	return 0;
}

static int
test_bad_opts(void)
{
	struct tcall     *c = (struct tcall *)1;
	struct tcall_opts o
	    = { .rate = 44100, .complexity = 5, .bitrate = 24000 };

	TEST_EQ(tcall_alloc(&c, &o), EINVAL);
	TEST_ASSERT(c == NULL);
	o.rate       = 8000;
	o.complexity = 12;
	TEST_EQ(tcall_alloc(&c, &o), EINVAL);
	o.complexity = 5;
	o.opus_rate  = 44100;
	TEST_EQ(tcall_alloc(&c, &o), EINVAL);
	o.opus_rate = 48000;
	TEST_EQ(tcall_alloc(&c, &o), EINVAL);
	TEST_ASSERT(c == NULL);
	tcall_free(NULL);
	return 0;
}

TEST_MAIN(TEST(test_loop_8k), TEST(test_loop_16k), TEST(test_loop_24k),
    TEST(test_no_session), TEST(test_new_session), TEST(test_downlink_damage),
    TEST(test_downlink_fuzz), TEST(test_opus_at_call_rate),
    TEST(test_shared_scratch), TEST(test_frames_per_page),
    TEST(test_frame_on_time), TEST(test_bad_opts))
