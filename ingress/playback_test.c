/*
 * playback_test.c - the pacer with simulated time: a 20 ms tick that takes
 * every message due, as the server's shared tick does.
 */
#include "playback.h"

#include <errno.h>

#include "test.h"

#define MS 1000u
#define TICK (20 * MS)

static uint8_t out[PLAYBACK_MAX_MSG_BYTES];

/* One simulated call: what was sent, and checks on every message. */
struct sim {
	struct playback *pb;
	int              rate;
	size_t           frame, msg;
	uint64_t         lead_us, msg_us;
	uint64_t         sent_bytes;
	unsigned         msgs, short_msgs;
	uint64_t         max_ahead;
	unsigned         max_per_tick;
	int              bad; /* a message broke a rule */
};

static int
sim_init(struct sim *s, int rate, unsigned msg_ms, unsigned lead_ms,
    size_t max_bytes)
{
	struct playback_opts o = { .rate = rate,
		.msg_ms                  = msg_ms,
		.lead_ms                 = lead_ms,
		.max_bytes               = max_bytes };

	memset(s, 0, sizeof(*s));
	if (playback_alloc(&s->pb, &o) != 0)
		return 1;
	s->rate    = rate;
	s->frame   = playback_frame_bytes(s->pb);
	s->msg     = playback_msg_bytes(s->pb);
	s->lead_us = (uint64_t)(lead_ms ? lead_ms : 200) * MS;
	s->msg_us  = (uint64_t)s->msg * 1000000u / ((uint64_t)rate * 2);
	return 0;
}

static void
sim_free(struct sim *s)
{
	playback_free(s->pb);
}

static uint64_t
dur_us(const struct sim *s, uint64_t bytes)
{
	return bytes * 1000000u / ((uint64_t)s->rate * 2);
}

/* One tick at now: takes every due message and checks it. */
static unsigned
sim_tick(struct sim *s, uint64_t now)
{
	unsigned k = 0;
	size_t   n;

	while ((n = playback_next(s->pb, now, out, sizeof(out))) > 0) {
		uint64_t ahead = playback_ahead_us(s->pb, now);
		if (n % s->frame != 0 || n > s->msg
		    || n > PLAYBACK_MAX_MSG_BYTES)
			s->bad++;
		if (ahead > s->max_ahead)
			s->max_ahead = ahead;
		if (n < s->msg)
			s->short_msgs++;
		s->sent_bytes += n;
		s->msgs++;
		k++;
		if (k > 100) /* a runaway loop is a bug: stop */
			break;
	}
	if (k > s->max_per_tick)
		s->max_per_tick = k;
	return k;
}

static void
fill(uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = v ? v : (uint8_t)(i + 1);
}

static int
test_sizes(void)
{
	static const struct {
		int      rate;
		unsigned ms;
		size_t   frame, msg;
	} c[] = {
		{ 8000, 0, 320, 1600 }, /* default 100 ms */
		{ 16000, 0, 640, 3200 }, { 24000, 0, 960, 4800 },
		{ 8000, 20, 320, 320 },
		{ 8000, 10, 320, 320 }, /* clamped up to a frame */
		{ 8000, 50, 320, 640 }, /* rounded down to 40 ms */
		{ 16000, 1000, 640, 32000 }, { 24000, 1000, 960, 48000 },
		{ 24000, 5000, 960, 48000 }, /* clamped to 1000 ms */
	};
	struct playback     *pb;
	struct playback_opts o = { 0 };

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		o.rate   = c[i].rate;
		o.msg_ms = c[i].ms;
		TEST_EQ(playback_alloc(&pb, &o), 0);
		TEST_EQ(playback_frame_bytes(pb), c[i].frame);
		TEST_EQ(playback_msg_bytes(pb), c[i].msg);
		playback_free(pb);
	}
	o.rate = 44100;
	TEST_EQ(playback_alloc(&pb, &o), EINVAL);
	TEST_ASSERT(pb == NULL);
	return 0;
}

/* 5 s of audio at once: paced at real time, whole frames, full
 * messages, never more than lead + one message ahead. */
static int
test_paced(void)
{
	static uint8_t pcm[5 * 16000];
	struct sim     s;
	uint64_t       t0 = 1000000000u, now;

	TEST_EQ(sim_init(&s, 8000, 0, 0, 0), 0);
	fill(pcm, sizeof(pcm), 0);
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	for (now = t0; now < t0 + 7000 * MS; now += TICK) {
		sim_tick(&s, now);
		/* Independent of the pacer's own clock: what was sent by
		 * now is at most elapsed + lead + one message. */
		TEST_ASSERT(dur_us(&s, s.sent_bytes)
		    <= (now - t0) + s.lead_us + s.msg_us);
		/* And it keeps up: never more than a tick behind lead. */
		if (now - t0 < 4500 * MS)
			TEST_ASSERT(dur_us(&s, s.sent_bytes) + TICK
			    >= (now - t0) + s.lead_us);
	}
	TEST_EQ(s.bad, 0);
	TEST_EQ(s.sent_bytes, sizeof(pcm));
	TEST_EQ(s.msgs, sizeof(pcm) / 1600);
	TEST_EQ(s.short_msgs, 0);
	TEST_ASSERT(s.max_ahead <= s.lead_us + s.msg_us);
	/* The first tick fills the lead: 200 ms = 2 messages + 1. */
	TEST_ASSERT(s.max_per_tick <= 3);
	TEST_EQ(playback_stats(s.pb)->underruns, 0);
	TEST_EQ(playback_stats(s.pb)->padded, 0);
	sim_free(&s);
	return 0;
}

/* A stream like the transcoder's: ~80 ms chunks every 80 ms with sizes
 * that are not whole frames. Continuous output, no padding, no
 * underruns once started, never far ahead. */
static int
test_stream(void)
{
	static uint8_t pcm[4000];
	struct sim     s;
	uint64_t       t0     = 5000, now;
	uint64_t       pushed = 0;
	unsigned       i      = 0;

	for (int rate = 8000; rate <= 24000; rate += 8000) {
		TEST_EQ(sim_init(&s, rate, 0, 0, 0), 0);
		pushed = 0;
		i      = 0;
		fill(pcm, sizeof(pcm), 0);
		for (now = t0; now < t0 + 10000 * MS; now += TICK) {
			if ((now - t0) % (80 * MS) == 0) {
				/* 80 ms ± one sample, even bytes. */
				size_t n = (size_t)rate * 2 * 80 / 1000;
				n += (i++ % 2) ? 2 : (size_t)-2;
				TEST_EQ(playback_push(s.pb, pcm, n), 0);
				pushed += n;
			}
			sim_tick(&s, now);
			TEST_ASSERT(dur_us(&s, s.sent_bytes)
			    <= (now - t0) + s.lead_us + s.msg_us);
			/* Once started, the caller's queue never runs dry
			 * before the next tick: a cushion of 2+ ticks. */
			if (s.msgs > 0)
				TEST_ASSERT(
				    playback_ahead_us(s.pb, now) >= 2 * TICK);
		}
		TEST_EQ(s.bad, 0);
		TEST_EQ(s.short_msgs, 0); /* the lead buys full messages */
		TEST_EQ(playback_stats(s.pb)->underruns, 0);
		TEST_EQ(playback_stats(s.pb)->padded, 0);
		/* Nearly everything went out; the rest is < one message. */
		TEST_ASSERT(pushed - s.sent_bytes < s.msg + s.frame);
		TEST_ASSERT(s.max_ahead <= s.lead_us + s.msg_us);
		sim_free(&s);
	}
	return 0;
}

/* Audio runs dry, then comes late in a lump: the clock restarts at now;
 * the lump is not burst out to catch up. */
static int
test_underrun_no_burst(void)
{
	static uint8_t pcm[16000 * 3];
	struct sim     s;
	uint64_t       t0 = 0, now, t1, sent_at_t1;

	TEST_EQ(sim_init(&s, 8000, 0, 0, 0), 0);
	TEST_EQ(playback_push(s.pb, pcm, 3200), 0); /* 200 ms */
	for (now = t0; now < t0 + 1000 * MS; now += TICK)
		sim_tick(&s, now);
	TEST_EQ(s.sent_bytes, 3200);
	/* 800 ms of silence at the caller; now 3 s arrive at once. */
	t1         = now;
	sent_at_t1 = s.sent_bytes;
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	for (; now < t1 + 5000 * MS; now += TICK) {
		sim_tick(&s, now);
		TEST_ASSERT(dur_us(&s, s.sent_bytes - sent_at_t1)
		    <= (now - t1) + s.lead_us + s.msg_us);
	}
	TEST_EQ(s.sent_bytes, 3200 + sizeof(pcm));
	TEST_EQ(playback_stats(s.pb)->underruns, 1);
	TEST_ASSERT(s.max_per_tick <= 3);
	TEST_EQ(s.bad, 0);
	sim_free(&s);
	return 0;
}

/* The tail of an utterance: padded with zeros to a whole frame, and
 * sent before the caller would hear a gap. */
static int
test_tail_padding(void)
{
	uint8_t    pcm[3210];
	struct sim s;
	uint64_t   now  = 0;
	size_t     last = 0, n;

	TEST_EQ(sim_init(&s, 8000, 0, 0, 0), 0);
	fill(pcm, sizeof(pcm), 7);
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	TEST_EQ(playback_next(s.pb, now, out, sizeof(out)), 1600);
	TEST_EQ(playback_next(s.pb, now, out, sizeof(out)), 1600);
	/* 10 bytes remain: not sent while 200 ms are still queued. */
	TEST_EQ(playback_next(s.pb, now, out, sizeof(out)), 0);
	for (now = TICK; now <= 200 * MS; now += TICK) {
		n = playback_next(s.pb, now, out, sizeof(out));
		if (n == 0)
			continue;
		TEST_EQ(n, 320);
		TEST_ASSERT(playback_ahead_us(s.pb, now) > 0); /* no gap */
		for (size_t i = 0; i < 10; i++)
			TEST_EQ(out[i], 7);
		for (size_t i = 10; i < 320; i++)
			TEST_EQ(out[i], 0);
		last = n;
		break;
	}
	TEST_EQ(last, 320);
	TEST_ASSERT(now < 200 * MS); /* before played_until ran out */
	TEST_EQ(playback_stats(s.pb)->padded, 1);
	TEST_EQ(playback_buffered(s.pb), 0);

	/* A short utterance alone (idle): waits up to a lead's time for
	 * more, then goes out whole and padded in one message. */
	now = 10000 * MS;
	TEST_EQ(playback_push(s.pb, pcm, 400), 0);
	TEST_EQ(playback_next(s.pb, now, out, sizeof(out)), 0);
	TEST_EQ(playback_next(s.pb, now + 180 * MS, out, sizeof(out)), 0);
	TEST_EQ(playback_next(s.pb, now + 200 * MS, out, sizeof(out)), 640);
	TEST_EQ(out[399], 7);
	TEST_EQ(out[400], 0);
	TEST_EQ(out[639], 0);
	sim_free(&s);
	return 0;
}

/* Draining (stop): the remainder goes without waiting. */
static int
test_drain(void)
{
	uint8_t    pcm[1000];
	struct sim s;

	TEST_EQ(sim_init(&s, 16000, 0, 0, 0), 0);
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	TEST_EQ(playback_next(s.pb, 0, out, sizeof(out)), 0);
	playback_drain(s.pb);
	TEST_EQ(playback_next(s.pb, 0, out, sizeof(out)), 1280);
	TEST_EQ(playback_next(s.pb, 0, out, sizeof(out)), 0);
	sim_free(&s);
	return 0;
}

/* 24 kHz with 1000 ms messages: 48000 B, under the 100 000 B cap; a
 * lower cap is honoured in whole frames. */
static int
test_cap(void)
{
	static uint8_t pcm[48000 * 4];
	struct sim     s;
	uint64_t       now;

	TEST_EQ(sim_init(&s, 24000, 1000, 0, 0), 0);
	TEST_EQ(s.msg, 48000);
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	for (now = 0; now < 6000 * MS; now += TICK)
		sim_tick(&s, now);
	TEST_EQ(s.bad, 0);
	TEST_EQ(s.sent_bytes, sizeof(pcm));
	TEST_ASSERT(s.max_ahead <= s.lead_us + s.msg_us);
	sim_free(&s);

	TEST_EQ(sim_init(&s, 24000, 1000, 0, 20000), 0);
	TEST_EQ(s.msg, 19200); /* 20 frames of 960 */
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	for (now = 0; now < 6000 * MS; now += TICK)
		sim_tick(&s, now);
	TEST_EQ(s.bad, 0);
	TEST_EQ(s.sent_bytes, sizeof(pcm));
	sim_free(&s);

	/* A cap above Exotel's is clamped to it. */
	TEST_EQ(sim_init(&s, 24000, 1000, 0, 1000000), 0);
	TEST_ASSERT(s.msg <= PLAYBACK_MAX_MSG_BYTES);
	sim_free(&s);
	return 0;
}

static int
test_clear(void)
{
	uint8_t    pcm[8000];
	struct sim s;

	TEST_EQ(sim_init(&s, 8000, 0, 0, 0), 0);
	TEST_EQ(playback_push(s.pb, pcm, sizeof(pcm)), 0);
	sim_tick(&s, 0);
	TEST_ASSERT(playback_ahead_us(s.pb, 0) > 0);
	TEST_EQ(playback_clear(s.pb), sizeof(pcm) - s.sent_bytes);
	TEST_EQ(playback_buffered(s.pb), 0);
	TEST_EQ(playback_ahead_us(s.pb, 0), 0);
	TEST_EQ(playback_next(s.pb, 0, out, sizeof(out)), 0);
	/* New audio after a clear starts at once (no stale clock). */
	TEST_EQ(playback_push(s.pb, pcm, 3200), 0);
	TEST_EQ(playback_next(s.pb, 40 * MS, out, sizeof(out)), 1600);
	TEST_EQ(playback_ahead_us(s.pb, 40 * MS), 100 * MS);
	TEST_EQ(playback_stats(s.pb)->underruns, 0);
	sim_free(&s);
	return 0;
}

static int
test_push_limits(void)
{
	static uint8_t       pcm[16000 * 3];
	struct playback     *pb;
	struct playback_opts o = { .rate = 8000, .buffer_ms = 1000 };

	TEST_EQ(playback_alloc(&pb, &o), 0);
	TEST_EQ(playback_push(pb, pcm, 3), EINVAL);
	TEST_EQ(playback_buffered(pb), 0);
	TEST_EQ(playback_push(pb, pcm, 12000), 0);
	TEST_EQ(playback_push(pb, pcm, 8000), 0); /* 4000 too many */
	TEST_EQ(playback_buffered(pb), 12000 - 4160 + 8000);
	TEST_EQ(playback_stats(pb)->dropped_bytes, 4160); /* whole frames */
	TEST_EQ(playback_push(pb, pcm, sizeof(pcm)), 0);
	TEST_EQ(playback_buffered(pb), 16000);
	/* Too small an output buffer: nothing is due, nothing lost. */
	TEST_EQ(playback_next(pb, 0, out, 100), 0);
	TEST_EQ(playback_buffered(pb), 16000);
	playback_free(pb);
	return 0;
}

/* Samples numbered 0, 1, 2, ... so order and loss show in the output. */
static void
ramp(int16_t *pcm, size_t n, uint16_t *next)
{
	for (size_t i = 0; i < n; i++)
		pcm[i] = (int16_t)(*next)++;
}

static int
ramp_check(const uint8_t *buf, size_t bytes, uint16_t *expect)
{
	for (size_t i = 0; i + 1 < bytes; i += 2) {
		int16_t v;
		memcpy(&v, buf + i, 2);
		if ((uint16_t)v != (*expect)++)
			return 1;
	}
	return 0;
}

/* A paced stream keeps the ring small however long it runs; a burst
 * grows it (the waiting audio kept in order across the wrap), and it
 * never grows past buffer_ms. */
static int
test_ring_grows(void)
{
	static int16_t       pcm[8000 * 6];
	struct playback     *pb;
	struct playback_opts o = { .rate = 8000 };
	uint16_t             next = 0, expect = 0;
	size_t               small, n;
	uint64_t             now = 0;

	TEST_EQ(playback_alloc(&pb, &o), 0);
	small = playback_ring_bytes(pb);
	TEST_ASSERT(small < 16000); /* well under 10 s (160 000 B) */
	/* 60 s: 80 ms packets as PersonaPlex sends them, a 20 ms tick. */
	for (int t = 0; t < 3000; t++, now += TICK) {
		if (t % 4 == 0) {
			ramp(pcm, 640, &next);
			TEST_EQ(playback_push(pb, (uint8_t *)pcm, 1280), 0);
		}
		while ((n = playback_next(pb, now, out, sizeof(out))) > 0)
			TEST_EQ(ramp_check(out, n, &expect), 0);
	}
	TEST_EQ(playback_ring_bytes(pb), small);
	TEST_EQ(playback_stats(pb)->dropped_bytes, 0);
	/* A 5 s burst while the head is mid-ring. */
	ramp(pcm, 40000, &next);
	TEST_EQ(playback_push(pb, (uint8_t *)pcm, 80000), 0);
	TEST_ASSERT(playback_ring_bytes(pb) >= 80000);
	TEST_ASSERT(playback_ring_bytes(pb) <= 160000);
	for (int t = 0; t < 400; t++, now += TICK)
		while ((n = playback_next(pb, now, out, sizeof(out))) > 0)
			TEST_EQ(ramp_check(out, n, &expect), 0);
	TEST_EQ(playback_buffered(pb), 0);
	TEST_EQ(expect, next);
	/* 12 s at once: the ring stops at 10 s, the oldest 2 s go. */
	ramp(pcm, 8000 * 6, &next);
	TEST_EQ(playback_push(pb, (uint8_t *)pcm, sizeof(pcm)), 0);
	ramp(pcm, 8000 * 6, &next);
	TEST_EQ(playback_push(pb, (uint8_t *)pcm, sizeof(pcm)), 0);
	TEST_EQ(playback_ring_bytes(pb), 160000);
	TEST_EQ(playback_buffered(pb), 160000);
	TEST_EQ(playback_stats(pb)->dropped_bytes, 32000);
	playback_free(pb);
	return 0;
}

TEST_MAIN(TEST(test_sizes), TEST(test_paced), TEST(test_stream),
    TEST(test_underrun_no_burst), TEST(test_tail_padding), TEST(test_drain),
    TEST(test_cap), TEST(test_clear), TEST(test_push_limits),
    TEST(test_ring_grows))
