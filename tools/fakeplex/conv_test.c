/*
 * conv_test.c - a conversation fed real Ogg Opus uplink streams: echo and
 * tone come back at the right pitch, output is clocked by input, text
 * pieces lead their steps, and fatal input ends it as the real server's
 * reader would.
 */
#include "conv.h"
#include "log.h"
#include "metrics.h"
#include "oggstrict.h"
#include "spectrum.h"
#include "sphn.h"
#include "stats.h"
#include "test.h"
#include "testup.h"

#include <errno.h>
#include <math.h>
#include <opus/opus.h>

#define MAXMSG 400

/* Everything the conversation sent, in order. */
struct sent {
	size_t   n;
	uint8_t  kind[MAXMSG];
	size_t   len[MAXMSG];
	uint8_t *data[MAXMSG];
};

static int
on_send(void *arg, uint8_t kind, const uint8_t *p, size_t n)
{
	struct sent *s = arg;
	if (s->n == MAXMSG)
		return 1;
	s->kind[s->n] = kind;
	s->len[s->n]  = n;
	s->data[s->n] = malloc(n ? n : 1);
	memcpy(s->data[s->n], p, n);
	s->n++;
	return 0;
}

static void
sent_free(struct sent *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	memset(s, 0, sizeof(*s));
}

struct fixture {
	struct log       lg;
	struct metrics  *m;
	struct stats    *st;
	struct conv_opts o;
	struct conv     *c;
	struct sent      out;
};

static int
fx_init(struct fixture *f, enum conv_mode mode, const char *text)
{
	memset(f, 0, sizeof(*f));
	if (log_init(&f->lg, "fakeplex-test", "text", "error")
	    || metrics_alloc(&f->m, "exoplex_") || stats_alloc(&f->st, f->m))
		return 1;
	f->o.mode    = mode;
	f->o.tone_hz = 440;
	f->o.text    = text;
	return conv_alloc(&f->c, &f->o, f->st, &f->lg, 1, on_send, &f->out);
}

static void
fx_fini(struct fixture *f)
{
	conv_free(f->c);
	stats_free(f->st);
	metrics_free(f->m);
	sent_free(&f->out);
}

/* Decodes the audio pages the conversation sent into pcm (24 kHz). */
static size_t
decode_out(const struct sent *s, int16_t *pcm, size_t cap)
{
	OpusDecoder *d = opus_decoder_create(SPHN_RATE, 1, &(int) { 0 });
	size_t       n = 0;

	for (size_t i = 0; i < s->n; i++) {
		const uint8_t *p = s->data[i];
		if (s->kind[i] != 0x01 || s->len[i] < 28)
			continue;
		size_t nseg = p[26], body = 27 + nseg, len = 0;
		for (size_t k = 0; k < nseg; k++)
			len += p[27 + k];
		if (len >= 8
		    && (!memcmp(p + body, "OpusHead", 8)
		        || !memcmp(p + body, "OpusTags", 8)))
			continue;
		int k = opus_decode(
		    d, p + body, (opus_int32)len, pcm + n, (int)(cap - n), 0);
		if (k > 0)
			n += (size_t)k;
	}
	opus_decoder_destroy(d);
	return n;
}

static int
count_kind(const struct sent *s, uint8_t kind)
{
	int n = 0;
	for (size_t i = 0; i < s->n; i++)
		n += s->kind[i] == kind;
	return n;
}

static int
test_handshake_only(void)
{
	struct fixture f;

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	/* 0x00 (1 byte on the wire), OpusHead page, OpusTags page. */
	TEST_EQ(f.out.n, 3);
	TEST_EQ(f.out.kind[0], 0x00);
	TEST_EQ(f.out.len[0], 0);
	TEST_EQ(f.out.kind[1], 0x01);
	TEST_EQ(f.out.len[1], 47);
	TEST_EQ(f.out.len[2], 53);
	TEST_EQ(stats_get(f.st, ST_HANDSHAKES), 1);
	fx_fini(&f);
	return 0;
}

/* Sends seconds of a tone at rate through the conversation. */
static int
run_tone(struct fixture *f, int rate, double hz, double seconds)
{
	struct up u;

	if (up_init(&u, rate, 0x1234))
		return 1;
	up_head(&u);
	if (conv_uplink(f->c, u.page, u.plen))
		return 1;
	up_tags(&u);
	if (conv_uplink(f->c, u.page, u.plen))
		return 1;
	for (int i = 0; i < (int)(seconds * 50); i++) {
		up_audio(&u, hz);
		if (conv_uplink(f->c, u.page, u.plen))
			return 1;
	}
	opus_encoder_destroy(u.enc);
	return 0;
}

static int
test_echo_rates(void)
{
	static const int rates[] = { 8000, 16000, 24000, 48000 };
	static int16_t   pcm[24000 * 4];

	for (size_t r = 0; r < 4; r++) {
		struct fixture f;
		TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
		TEST_EQ(conv_handshake(f.c), 0);
		TEST_EQ(run_tone(&f, rates[r], 1000, 2.0), 0);
		/* 2 s = 100 packets = 48000 samples at 24 kHz = 25 steps. */
		TEST_EQ(stats_get(f.st, ST_PACKETS_DECODED), 100);
		TEST_EQ(stats_get(f.st, ST_SAMPLES_IN), 48000);
		TEST_EQ(stats_get(f.st, ST_STEPS), 25);
		TEST_EQ(count_kind(&f.out, 0x01), 2 + 25);
		size_t n = decode_out(&f.out, pcm, sizeof(pcm) / 2);
		TEST_EQ(n, 25 * 1920);
		TEST_NEAR(spectrum_dominant_hz(pcm, n, SPHN_RATE), 1000, 20);
		TEST_EQ(stats_violations_total(f.st), 0);
		TEST_EQ(conv_fatal(f.c) == NULL, 1);
		fx_fini(&f);
	}
	return 0;
}

static int
test_tone_and_text(void)
{
	struct fixture f;
	static int16_t pcm[24000 * 2];

	TEST_EQ(fx_init(&f, CONV_TONE, "Hello there  friend"), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(run_tone(&f, 8000, 1000, 1.0), 0);
	/* 1 s = 24000 samples = 12 steps (23040) and a remainder. */
	TEST_EQ(stats_get(f.st, ST_STEPS), 12);
	TEST_EQ(stats_get(f.st, ST_TEXT_OUT), 3);
	/* Each piece comes right before its step's audio page. */
	TEST_EQ(f.out.kind[3], 0x02);
	TEST_EQ(f.out.len[3], 6);
	TEST_ASSERT(memcmp(f.out.data[3], " Hello", 6) == 0);
	TEST_EQ(f.out.kind[4], 0x01);
	TEST_ASSERT(memcmp(f.out.data[5], " there", 6) == 0);
	TEST_ASSERT(memcmp(f.out.data[7], " friend", 7) == 0);
	TEST_EQ(f.out.kind[9], 0x01);
	TEST_EQ(count_kind(&f.out, 0x02), 3);
	size_t n = decode_out(&f.out, pcm, sizeof(pcm) / 2);
	TEST_NEAR(spectrum_dominant_hz(pcm, n, SPHN_RATE), 440, 10);
	fx_fini(&f);
	return 0;
}

static int
test_split_messages(void)
{
	struct fixture f;
	struct up      u;
	uint8_t        all[200000];
	size_t         n = 0;

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 16000, 99), 0);
	up_head(&u);
	memcpy(all + n, u.page, u.plen);
	n += u.plen;
	up_tags(&u);
	memcpy(all + n, u.page, u.plen);
	n += u.plen;
	for (int i = 0; i < 50; i++) {
		up_audio(&u, 500);
		memcpy(all + n, u.page, u.plen);
		n += u.plen;
	}
	/* Pages cut across messages and merged, 37 bytes at a time. */
	for (size_t i = 0; i < n; i += 37)
		TEST_EQ(conv_uplink(f.c, all + i, i + 37 > n ? n - i : 37), 0);
	TEST_EQ(stats_get(f.st, ST_PAGES_IN), 52);
	TEST_EQ(stats_get(f.st, ST_PACKETS_DECODED), 50);
	TEST_EQ(stats_get(f.st, ST_STEPS), 12);
	TEST_EQ(stats_violations_total(f.st), 0);
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	return 0;
}

static int
test_no_bos_fatal(void)
{
	struct fixture f;
	struct up      u;

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 8000, 5), 0);
	up_head(&u); /* swallowed before the handshake: never sent */
	up_tags(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), EPROTO);
	TEST_STREQ(conv_fatal(f.c), "no_bos");
	TEST_EQ(stats_violations(f.st, "no_bos"), 1);
	/* Dead: more input changes nothing. */
	up_audio(&u, 1000);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), EPROTO);
	TEST_EQ(stats_violations_total(f.st), 1);
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	return 0;
}

static int
test_decode_error_fatal(void)
{
	struct fixture f;
	struct up      u;
	uint8_t        bad[1] = { 0x03 }; /* code 3 TOC without a count */

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 8000, 5), 0);
	up_head(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	u.plen = sphn_page(u.page, sizeof(u.page), 0, 960, 5, u.seq++, bad, 1);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), EPROTO);
	TEST_STREQ(conv_fatal(f.c), "decode_error");
	TEST_EQ(stats_violations(f.st, "decode_error"), 1);
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	return 0;
}

static int
test_empty_packet_plc(void)
{
	struct fixture f;
	struct up      u;

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 8000, 5), 0);
	up_head(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	u.plen = sphn_page(u.page, sizeof(u.page), 0, 0, 5, u.seq++, NULL, 0);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	/* 240000 samples of concealment: 125 steps at once. */
	TEST_EQ(stats_get(f.st, ST_STEPS), 125);
	TEST_EQ(stats_violations(f.st, "empty_packet"), 1);
	TEST_EQ(conv_fatal(f.c) == NULL, 1);
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	return 0;
}

static int
test_warnings(void)
{
	struct fixture f;
	struct up      u;

	TEST_EQ(fx_init(&f, CONV_ECHO, NULL), 0);
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 8000, 5), 0);
	/* A good start gives no warning at all. */
	up_head(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	up_tags(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	up_audio(&u, 1000);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	up_audio(&u, 1000);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	TEST_EQ(metric_get(
	            metrics_counter(f.m, "fakeplex_warnings_total", "", NULL)),
	    0);
	/* Granules in 24 kHz units (as sphn writes) and a skipped page. */
	u.granule -= 480;
	up_audio(&u, 1000);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	u.seq++;
	u.granule += 480;
	up_audio(&u, 1000);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	char *j = stats_json(f.st);
	TEST_ASSERT(j && strstr(j, "\"granule\":1")
	    && strstr(j, "\"page_sequence\":1")
	    && strstr(j, "\"violations\":0"));
	free(j);
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	return 0;
}

/* Replay: steps clocked by the uplink's packet durations, each sending
 * the clip's next packet; nothing decoded, a bad TOC still fatal. */
static int
test_replay(void)
{
	struct fixture    f;
	struct conv_clip *clip;
	struct up         u;
	static int16_t    tone[24000 * 2], pcm[24000 * 4];
	uint8_t           bad[1] = { 0x03 };

	for (size_t i = 0; i < 24000 * 2; i++)
		tone[i] = (int16_t)(8000 * sin(2 * M_PI * 1000 * i / 24000.0));
	TEST_EQ(conv_clip_make(&clip, tone, 1000, -1), EINVAL);
	TEST_EQ(conv_clip_make(&clip, tone, 24000 * 2, 0), 0);
	TEST_EQ(clip->n, 25);
	TEST_EQ(fx_init(&f, CONV_REPLAY, "Hi"), 0);
	f.o.clip = clip;
	TEST_EQ(conv_handshake(f.c), 0);
	/* 3 s of a 500 Hz caller: 37 steps of the 1 kHz clip, looped. */
	TEST_EQ(run_tone(&f, 16000, 500, 3.0), 0);
	TEST_EQ(stats_get(f.st, ST_PACKETS_DECODED), 150);
	TEST_EQ(stats_get(f.st, ST_SAMPLES_IN), 72000);
	TEST_EQ(stats_get(f.st, ST_STEPS), 37);
	TEST_EQ(stats_get(f.st, ST_TEXT_OUT), 1);
	TEST_EQ(count_kind(&f.out, 0x01), 2 + 37);
	size_t n = decode_out(&f.out, pcm, sizeof(pcm) / 2);
	TEST_EQ(n, 37 * 1920);
	TEST_NEAR(spectrum_dominant_hz(pcm, n, SPHN_RATE), 1000, 20);
	TEST_EQ(stats_violations_total(f.st), 0);
	fx_fini(&f);

	TEST_EQ(fx_init(&f, CONV_REPLAY, NULL), 0);
	f.o.clip = clip;
	TEST_EQ(conv_handshake(f.c), 0);
	TEST_EQ(up_init(&u, 8000, 5), 0);
	up_head(&u);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), 0);
	u.plen = sphn_page(u.page, sizeof(u.page), 0, 960, 5, u.seq++, bad, 1);
	TEST_EQ(conv_uplink(f.c, u.page, u.plen), EPROTO);
	TEST_STREQ(conv_fatal(f.c), "decode_error");
	opus_encoder_destroy(u.enc);
	fx_fini(&f);
	conv_clip_free(clip);
	conv_clip_free(NULL);
	return 0;
}

TEST_MAIN(TEST(test_handshake_only), TEST(test_echo_rates),
    TEST(test_tone_and_text), TEST(test_split_messages),
    TEST(test_no_bos_fatal), TEST(test_decode_error_fatal),
    TEST(test_empty_packet_plc), TEST(test_warnings), TEST(test_replay))
