/*
 * codec_test.c - libopus settings, a tone through encode and decode, and
 * packets libopus refuses.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include <opus/opus.h>

#include "codec.h"
#include "spectrum.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static int
test_bad_settings(void)
{
	struct codec_enc *e = (struct codec_enc *)1;

	TEST_EQ(codec_enc_alloc(&e, 11, 24000), EINVAL);
	TEST_ASSERT(e == NULL);
	TEST_EQ(codec_enc_alloc(&e, -1, 24000), EINVAL);
	TEST_EQ(codec_enc_alloc(&e, 5, 100), EINVAL);
	TEST_EQ(codec_enc_alloc_rate(&e, 44100, 8000, 5, 24000), EINVAL);
	TEST_EQ(codec_enc_alloc_rate(&e, 48000, 8000, 5, 24000), EINVAL);
	TEST_ASSERT(e == NULL);
	struct codec_dec *d = (struct codec_dec *)1;
	TEST_EQ(codec_dec_alloc_rate(&d, 11025), EINVAL);
	TEST_ASSERT(d == NULL);
	codec_enc_free(NULL);
	codec_dec_free(NULL);
	return 0;
}

static int
test_tone(void)
{
	static int16_t    out[50 * CODEC_FRAME + CODEC_MAX_FRAME];
	struct codec_enc *e;
	struct codec_dec *d;
	int16_t           pcm[CODEC_FRAME];
	uint8_t           pkt[CODEC_MAX_PACKET];
	size_t            n, got, total = 0, bytes = 0;

	TEST_EQ(
	    codec_enc_alloc(&e, CODEC_COMPLEXITY_DEF, CODEC_BITRATE_DEF), 0);
	TEST_EQ(codec_dec_alloc(&d), 0);
	/* 2.5 ms of look-ahead, plus 4 ms of SILK delay in VOIP mode. */
	printf("  lookahead %d samples\n", codec_enc_lookahead(e));
	TEST_ASSERT(codec_enc_lookahead(e) >= 60);
	TEST_ASSERT(codec_enc_lookahead(e) <= 480);
	for (int f = 0; f < 50; f++) {
		for (int i = 0; i < CODEC_FRAME; i++)
			pcm[i] = (int16_t)(8000
			    * sin(2 * M_PI * 1000 * (f * CODEC_FRAME + i)
			        / CODEC_RATE));
		TEST_EQ(codec_encode(e, pcm, pkt, sizeof(pkt), &n), 0);
		TEST_ASSERT(n > 2);
		bytes += n;
		TEST_EQ(codec_decode(
		            d, pkt, n, out + total, CODEC_MAX_FRAME, &got),
		    0);
		TEST_EQ(got, CODEC_FRAME);
		total += got;
	}
	/* 24 kbit/s is 60 bytes per 20 ms; VBR stays near it. */
	printf("  %zu bytes per second\n", bytes);
	TEST_ASSERT(bytes > 1000 && bytes < 6000);
	TEST_NEAR(spectrum_dominant_hz(out + 2400, total - 2400, CODEC_RATE),
	    1000, 10);
	codec_enc_reset(e);
	codec_dec_reset(d);
	codec_enc_free(e);
	codec_dec_free(d);
	return 0;
}

static int
test_bad_packet(void)
{
	struct codec_dec *d;
	int16_t           out[CODEC_MAX_FRAME];
	const uint8_t     zero_frames[] = { 0x03, 0x00 }; /* code 3, M = 0 */
	size_t            got           = 1;

	TEST_EQ(codec_dec_alloc(&d), 0);
	TEST_EQ(codec_decode(d, zero_frames, 0, out, CODEC_MAX_FRAME, &got),
	    EINVAL);
	TEST_EQ(got, 0);
	TEST_EQ(codec_decode(d, zero_frames, sizeof(zero_frames), out,
	            CODEC_MAX_FRAME, &got),
	    EINVAL);
	/* A valid 20 ms packet into too small a buffer is refused too. */
	TEST_EQ(codec_decode(d, (const uint8_t[]) { 0xf8, 0xff, 0xfe }, 3, out,
	            100, &got),
	    EINVAL);
	codec_dec_free(d);
	return 0;
}

/* The density profile: encode at 8 kHz, decode at 8 kHz, and the two
 * mixed with 24 kHz (what PersonaPlex does: it decodes our 8 kHz stream
 * at 24 kHz, and we decode its 24 kHz stream at 8 kHz). */
static int
run_rates(int enc_rate, int dec_rate, double hz)
{
	static int16_t    out[50 * CODEC_FRAME + CODEC_MAX_FRAME];
	struct codec_enc *e;
	struct codec_dec *d;
	int16_t           pcm[CODEC_FRAME];
	uint8_t           pkt[CODEC_MAX_PACKET];
	size_t            n, got, total = 0;
	int               fr;

	TEST_EQ(codec_enc_alloc_rate(&e, enc_rate, enc_rate, 0, 16000), 0);
	TEST_EQ(codec_dec_alloc_rate(&d, dec_rate), 0);
	fr = codec_enc_frame(e);
	TEST_EQ(fr, enc_rate / 50);
	TEST_ASSERT(codec_enc_lookahead(e) > 0);
	TEST_ASSERT(codec_enc_lookahead(e) < fr);
	for (int f = 0; f < 50; f++) {
		for (int i = 0; i < fr; i++)
			pcm[i] = (int16_t)(8000
			    * sin(2 * M_PI * hz * (f * fr + i) / enc_rate));
		TEST_EQ(codec_encode(e, pcm, pkt, sizeof(pkt), &n), 0);
		TEST_EQ(codec_decode(
		            d, pkt, n, out + total, CODEC_MAX_FRAME, &got),
		    0);
		TEST_EQ(got, (size_t)dec_rate / 50);
		total += got;
	}
	printf("  %d -> %d Hz: %zu samples, dominant %.1f Hz\n", enc_rate,
	    dec_rate, total,
	    spectrum_dominant_hz(
	        out + dec_rate / 10, total - dec_rate / 10, dec_rate));
	TEST_NEAR(spectrum_dominant_hz(
	              out + dec_rate / 10, total - dec_rate / 10, dec_rate),
	    hz, 10);
	codec_enc_free(e);
	codec_dec_free(d);
	return 0;
}

/* Packets of a phone call's band (harmonics below 3.4 kHz) encoded at
 * 24 kHz and complexity 5 whose bandwidth is above wideband, for audio
 * that came from a call at src_rate; -1 on error. */
static int
count_above_wideband(int src_rate)
{
	struct codec_enc *e;
	int16_t           pcm[CODEC_FRAME];
	uint8_t           pkt[CODEC_MAX_PACKET];
	size_t            n;
	int               above = 0;

	if (codec_enc_alloc_rate(&e, CODEC_RATE, src_rate,
	        CODEC_COMPLEXITY_DEF, CODEC_BITRATE_DEF))
		return -1;
	for (int f = 0; f < 100; f++) {
		for (int i = 0; i < CODEC_FRAME; i++) {
			double t = (double)(f * CODEC_FRAME + i) / CODEC_RATE,
			       x = 0;
			for (int h = 1; h * 170 < 3400; h++)
				x += sin(2 * M_PI * 170 * h * t) / h;
			pcm[i] = (int16_t)(3000 * x);
		}
		if (codec_encode(e, pcm, pkt, sizeof(pkt), &n)) {
			codec_enc_free(e);
			return -1;
		}
		above += opus_packet_get_bandwidth(pkt)
		    > OPUS_BANDWIDTH_WIDEBAND;
	}
	codec_enc_free(e);
	return above;
}

static int
test_band_follows_the_call(void)
{
	int from24 = count_above_wideband(24000);

	/* From a 24 kHz source the encoder chooses: at complexity 5,
	 * libopus 1.3 codes even this as hybrid super-wideband. */
	printf("  above wideband: %d of 100 from 24 kHz\n", from24);
	TEST_ASSERT(from24 > 0);
	TEST_EQ(count_above_wideband(8000), 0);
	TEST_EQ(count_above_wideband(16000), 0);
	return 0;
}

static int
test_rates(void)
{
	TEST_ASSERT(codec_rate_ok(8000) && codec_rate_ok(12000)
	    && codec_rate_ok(16000) && codec_rate_ok(24000));
	TEST_ASSERT(!codec_rate_ok(48000) && !codec_rate_ok(0));
	TEST_EQ(run_rates(8000, 8000, 700), 0);
	TEST_EQ(run_rates(8000, 24000, 700), 0);
	TEST_EQ(run_rates(24000, 8000, 700), 0);
	TEST_EQ(run_rates(16000, 8000, 1000), 0);
	return 0;
}

TEST_MAIN(TEST(test_bad_settings), TEST(test_tone), TEST(test_bad_packet),
    TEST(test_rates), TEST(test_band_follows_the_call))
