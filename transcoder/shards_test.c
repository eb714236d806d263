/*
 * shards_test.c - the threaded transcoder over real NNG (inproc://): many
 * calls spread over three shards, each call's audio up and back down on
 * its own, in order, with nothing crossing between calls.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "shards.h"
#include "spectrum.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define CALLS 6
#define RATE 8000
#define FR (RATE / 50)

struct rig {
	struct log      lg;
	struct metrics *m;
	struct bus     *tx_in, *tx_eg; /* the transcoder's links */
	struct bus     *ingress, *egress; /* the fakes */
	struct shards  *sh;
};

/* What the fakes received, per call. */
struct seen {
	size_t   headers, pages, announces;
	uint64_t eg_seq, in_seq;
	int      seq_gaps;
	uint8_t  ogg[1 << 17];
	size_t   ogg_len, ogg_sent;
	int16_t  pcm[RATE * 4];
	size_t   pcm_len;
};

static struct seen seen[CALLS];
static uint64_t    seq_ing, seq_egr;

static void
nap(void)
{
	struct timespec ts = { 0, 5000000 };
	nanosleep(&ts, NULL);
}

static const char *
call_id(int i)
{
	static char ids[CALLS][16];
	snprintf(ids[i], sizeof(ids[i]), "MZ%04d", i + 1);
	return ids[i];
}

static double
call_hz(int i)
{
	return 500 + 150 * i;
}

static int
call_index(const char *id)
{
	for (int i = 0; i < CALLS; i++)
		if (!strcmp(id, call_id(i)))
			return i;
	return -1;
}

static unsigned publish_us; /* shards_opts.publish_us for rig_open */
static unsigned max_wait_ms; /* shards_opts.max_wait_ms for rig_open */

/* Opens the rig with n shards and forgets what earlier tests saw. */
static int
rig_open_idle(struct rig *r, unsigned n, unsigned idle_s)
{
	struct bus_opts bo;

	memset(r, 0, sizeof(*r));
	memset(seen, 0, sizeof(seen));
	log_init(&r->lg, "shards_test", "text", "error");
	TEST_EQ(metrics_alloc(&r->m, "exoplex_"), 0);
	bo = (struct bus_opts) { .link = "transcoder",
		.url                   = "inproc://sh-tx",
		.listen                = true,
		.self                  = "transcoder",
		.metrics               = r->m,
		.log                   = &r->lg };
	TEST_EQ(bus_open(&r->tx_in, &bo), 0);
	bo.url = "inproc://sh-eg", bo.link = "egress", bo.self = "egress";
	TEST_EQ(bus_open(&r->egress, &bo), 0);
	bo.listen = false, bo.self = "transcoder";
	TEST_EQ(bus_open(&r->tx_eg, &bo), 0);
	bo.url = "inproc://sh-tx", bo.link = "transcoder", bo.self = "ingress";
	TEST_EQ(bus_open(&r->ingress, &bo), 0);
	for (int i = 0; i < 600; i++) {
		if (bus_peers(r->tx_in) && bus_peers(r->tx_eg)
		    && bus_peers(r->ingress) && bus_peers(r->egress))
			break;
		nap();
	}
	TEST_ASSERT(bus_peers(r->tx_in) && bus_peers(r->tx_eg));
	struct shards_opts so = { .n = n,
		.publish_us          = publish_us,
		.max_wait_ms         = max_wait_ms,
		.loop                = { .log  = &r->lg,
		                   .metrics    = r->m,
		                   .ingress    = r->tx_in,
		                   .egress     = r->tx_eg,
		                   .complexity = 5,
		                   .bitrate    = 24000,
		                   .idle_s     = idle_s } };
	TEST_EQ(shards_alloc(&r->sh, &so), 0);
	return 0;
}

static int
rig_open(struct rig *r, unsigned n)
{
	return rig_open_idle(r, n, 60);
}

static void
rig_close(struct rig *r)
{
	shards_free(r->sh);
	bus_close(r->ingress);
	bus_close(r->tx_eg);
	bus_close(r->egress);
	bus_close(r->tx_in);
	metrics_free(r->m);
}

static void
take(const Exo__Frame *f)
{
	int          i = call_index(f->call_id);
	struct seen *s;

	if (i < 0)
		return;
	s = &seen[i];
	switch (f->body_case) {
	case EXO__FRAME__BODY_ANNOUNCE:
		s->announces++;
		break;
	case EXO__FRAME__BODY_UPLINK_OGG:
		if (s->eg_seq && f->seq != s->eg_seq + 1)
			s->seq_gaps++;
		s->eg_seq = f->seq;
		s->pages++;
		s->headers += f->uplink_ogg->header;
		if (s->ogg_len + f->uplink_ogg->data.len <= sizeof(s->ogg)) {
			memcpy(s->ogg + s->ogg_len, f->uplink_ogg->data.data,
			    f->uplink_ogg->data.len);
			s->ogg_len += f->uplink_ogg->data.len;
		}
		break;
	case EXO__FRAME__BODY_PLAYBACK_AUDIO: {
		const Exo__Audio *a = f->playback_audio;
		if (s->in_seq && f->seq != s->in_seq + 1)
			s->seq_gaps++;
		s->in_seq = f->seq;
		for (size_t k = 0; k + 1 < a->pcm.len
		     && s->pcm_len < sizeof(s->pcm) / sizeof(s->pcm[0]);
		     k += 2)
			s->pcm[s->pcm_len++]
			    = (int16_t)(uint16_t)(a->pcm.data[k]
			        | a->pcm.data[k + 1] << 8);
		break;
	}
	default:
		break;
	}
}

/* Turns the transcoder until nothing more arrives for 100 ms. */
static void
pump(struct rig *r)
{
	int idle = 0;

	bus_flush(r->ingress);
	bus_flush(r->egress);
	while (idle < 20) {
		Exo__Envelope *env;
		int            got      = 0;
		struct bus    *fakes[2] = { r->ingress, r->egress };
		shards_turn(r->sh, 5);
		for (int k = 0; k < 2; k++)
			while (bus_recv(fakes[k], &env) == 0) {
				for (size_t i = 0; i < env->n_frames; i++)
					take(env->frames[i]);
				bus_envelope_free(env);
				got = 1;
			}
		idle = got ? 0 : idle + 1;
	}
}

/* Pumps until cond holds, for at most 50 rounds (5 s or more): a loaded
 * machine can leave the shards silent for longer than one round's
 * 100 ms. The caller then asserts cond. */
#define PUMP_UNTIL(r, cond)                                                   \
	do {                                                                  \
		int round_ = 0;                                               \
		do                                                            \
			pump(r);                                              \
		while (!(cond) && ++round_ < 50);                             \
	} while (0)

static void
send_start_id(struct rig *r, const char *id)
{
	Exo__Frame     f  = EXO__FRAME__INIT;
	Exo__CallStart cs = EXO__CALL_START__INIT;

	cs.stream_sid  = (char *)id;
	cs.call_sid    = "CA1";
	cs.sample_rate = RATE;
	f.call_id      = (char *)id;
	f.seq          = ++seq_ing;
	f.body_case    = EXO__FRAME__BODY_CALL_START;
	f.call_start   = &cs;
	bus_send(r->ingress, &f);
}

static void
send_call_start(struct rig *r, int i)
{
	send_start_id(r, call_id(i));
}

static void
send_stop_id(struct rig *r, const char *id)
{
	Exo__Frame    f  = EXO__FRAME__INIT;
	Exo__CallStop cs = EXO__CALL_STOP__INIT;

	cs.reason   = "callended";
	f.call_id   = (char *)id;
	f.seq       = ++seq_ing;
	f.body_case = EXO__FRAME__BODY_CALL_STOP;
	f.call_stop = &cs;
	bus_send(r->ingress, &f);
}

static void
send_stop(struct rig *r, int i)
{
	send_stop_id(r, call_id(i));
}

static void
send_ready(struct rig *r, int i)
{
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Session s = EXO__SESSION__INIT;

	s.session       = 1;
	s.server        = "ws://fake:8998/api/chat";
	f.call_id       = (char *)call_id(i);
	f.seq           = ++seq_egr;
	f.body_case     = EXO__FRAME__BODY_SESSION_READY;
	f.session_ready = &s;
	bus_send(r->egress, &f);
}

static void
send_audio(struct rig *r, int i, size_t k0)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Audio a = EXO__AUDIO__INIT;
	uint8_t    b[2 * FR];

	for (size_t k = 0; k < FR; k++) {
		int16_t v    = (int16_t)(8000
                    * sin(2 * M_PI * call_hz(i) * (double)(k0 + k) / RATE));
		b[2 * k]     = (uint8_t)v;
		b[2 * k + 1] = (uint8_t)((uint16_t)v >> 8);
	}
	a.sample_rate  = RATE;
	a.pcm.data     = b;
	a.pcm.len      = sizeof(b);
	f.call_id      = (char *)call_id(i);
	f.seq          = ++seq_ing;
	f.ts_us        = wall_us();
	f.body_case    = EXO__FRAME__BODY_CALLER_AUDIO;
	f.caller_audio = &a;
	bus_send(r->ingress, &f);
}

/* Ogg bytes to call i as one downlink frame of session 1. */
static void
send_downlink(struct rig *r, int i, const uint8_t *data, size_t len)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Ogg   o = EXO__OGG__INIT;

	o.session      = 1;
	o.data.data    = (uint8_t *)data;
	o.data.len     = len;
	f.call_id      = (char *)call_id(i);
	f.seq          = ++seq_egr;
	f.ts_us        = wall_us();
	f.body_case    = EXO__FRAME__BODY_DOWNLINK_OGG;
	f.downlink_ogg = &o;
	bus_send(r->egress, &f);
}

/* A call's uplink pages so far, back as one downlink frame. */
static void
send_back(struct rig *r, int i)
{
	struct seen *s = &seen[i];

	send_downlink(r, i, s->ogg + s->ogg_sent, s->ogg_len - s->ogg_sent);
	s->ogg_sent = s->ogg_len;
}

static int64_t
calls_active(struct rig *r)
{
	return metric_get(metrics_gauge(r->m, "calls_active",
	    "Calls the transcoder holds a pipeline for.", NULL));
}

static int
test_many_calls(void)
{
	static struct rig r;

	/* Every frame's output handed over on its own (a frame takes far
	 * longer than 1 µs): order and completeness must survive. */
	publish_us = 1;
	if (rig_open(&r, 3))
		return 1;
	publish_us = 0;
	/* Call 1's session is ready before its call starts: its first frame
	 * gives it a shard (0, all being empty), and its call_start must
	 * follow it there, although shard 0 is no longer the emptiest by
	 * then, or the call never learns of its session (no headers). */
	send_ready(&r, 1);
	PUMP_UNTIL(&r, shards_owner(r.sh, call_id(1)) >= 0);
	TEST_EQ(shards_owner(r.sh, call_id(1)), 0);
	for (int i = 0; i < CALLS; i++) {
		send_call_start(&r, i);
		if (i != 1)
			send_ready(&r, i);
	}
	PUMP_UNTIL(
	    &r, calls_active(&r) == CALLS && seen[CALLS - 1].headers == 2);
	TEST_EQ(calls_active(&r), CALLS);
	for (int i = 0; i < CALLS; i++)
		TEST_EQ(seen[i].headers, 2);
	/* Spread evenly: two calls per shard. */
	unsigned per[3] = { 0 };
	for (int i = 0; i < CALLS; i++) {
		int o = shards_owner(r.sh, call_id(i));
		TEST_ASSERT(o >= 0 && o < 3);
		per[o]++;
	}
	TEST_EQ(per[0], 2);
	TEST_EQ(per[1], 2);
	TEST_EQ(per[2], 2);

	/* 2 s of each call's tone, interleaved, echoed back as it comes. */
	for (size_t k = 0; k < 100; k++) {
		for (int i = 0; i < CALLS; i++)
			send_audio(&r, i, k * FR);
		if (k % 10 == 9) {
			pump(&r);
			for (int i = 0; i < CALLS; i++)
				send_back(&r, i);
		}
	}
	pump(&r);
	for (int i = 0; i < CALLS; i++)
		send_back(&r, i);
	pump(&r);

	for (int i = 0; i < CALLS; i++) {
		struct seen *s  = &seen[i];
		double       hz = spectrum_dominant_hz(
		          s->pcm + 800, s->pcm_len - 800, RATE);
		printf("  %s (shard %d): %zu pages, %zu samples back, %.1f Hz "
		       "(sent %.0f)\n",
		    call_id(i), shards_owner(r.sh, call_id(i)), s->pages,
		    s->pcm_len, hz, call_hz(i));
		TEST_ASSERT(s->pages >= 2 + 99 && s->pages <= 2 + 100);
		TEST_EQ(s->seq_gaps, 0);
		/* Call 1's early session_ready asked ingress once. */
		TEST_EQ(s->announces, i == 1 ? 1u : 0u);
		TEST_ASSERT(s->pcm_len >= RATE * 2 - RATE / 10);
		TEST_NEAR(hz, call_hz(i), 10);
	}

	for (int i = 0; i < CALLS; i++)
		send_stop(&r, i);
	PUMP_UNTIL(&r, calls_active(&r) == 0);
	TEST_EQ(calls_active(&r), 0);
	rig_close(&r);
	return 0;
}

/* A frame for an unknown call is answered with announce by its shard;
 * stopping with frames in flight frees everything (ASan sees leaks). */
static int
test_unknown_and_stop(void)
{
	static struct rig r;

	if (rig_open(&r, 2))
		return 1;
	send_audio(&r, 0, 0);
	send_audio(&r, 1, 0);
	pump(&r);
	TEST_EQ(seen[0].announces, 1);
	TEST_EQ(seen[1].announces, 1);
	for (int i = 0; i < CALLS; i++) {
		send_call_start(&r, i);
		send_ready(&r, i);
		for (size_t k = 0; k < 20; k++)
			send_audio(&r, i, k * FR);
	}
	bus_flush(r.ingress);
	bus_flush(r.egress);
	shards_turn(r.sh, 5);
	rig_close(&r);
	return 0;
}

/* Downlink pages go ahead of the caller audio a shard took with them,
 * but never ahead of their call's call_start: a page for a call that
 * starts in the same batch is decoded after it, not dropped and answered
 * with announce. */
static int
test_downlink_waits_for_its_call(void)
{
	static struct rig r;

	if (rig_open(&r, 1))
		return 1;
	send_call_start(&r, 0);
	send_ready(&r, 0);
	PUMP_UNTIL(&r, seen[0].headers == 2);
	for (size_t k = 0; k < 25; k++)
		send_audio(&r, 0, k * FR);
	PUMP_UNTIL(&r, seen[0].pages >= 2 + 24);
	TEST_ASSERT(seen[0].pages >= 2 + 24);

	/* Call 1's start, call 0's audio, and call 0's stream played to
	 * call 1 and to call 0, in one batch (nap: all of it queued before
	 * the shard's turn). */
	send_call_start(&r, 1);
	for (size_t k = 25; k < 50; k++)
		send_audio(&r, 0, k * FR);
	send_downlink(&r, 1, seen[0].ogg, seen[0].ogg_len);
	send_back(&r, 0);
	bus_flush(r.ingress);
	bus_flush(r.egress);
	nap();
	PUMP_UNTIL(&r,
	    seen[1].pcm_len >= 20 * FR && seen[0].pcm_len >= 20 * FR
	        && seen[0].pages >= 2 + 49);
	TEST_EQ(seen[1].announces, 0);
	TEST_ASSERT(seen[1].pcm_len >= 20 * FR);
	TEST_ASSERT(seen[0].pcm_len >= 20 * FR);
	TEST_ASSERT(seen[0].pages >= 2 + 49);
	TEST_EQ(seen[0].seq_gaps, 0);
	TEST_EQ(seen[1].seq_gaps, 0);
	rig_close(&r);
	return 0;
}

static int64_t
counter(struct rig *r, const char *name)
{
	return metric_get(metrics_counter(r->m, name, "", NULL));
}

/* A shard that falls behind drops caller audio that waited for it past
 * max_wait_ms instead of encoding it late; with 0 it encodes all. 5 s of
 * one call's audio reach the shard in one turn: encoding takes 50 us a
 * frame or more on any machine, so with 1 ms allowed most must go. */
static int
stale_run(unsigned wait_ms, int64_t *stale, int64_t *encoded)
{
	static struct rig r;
	enum { FRAMES = 250 };

	max_wait_ms = wait_ms;
	if (rig_open(&r, 2))
		return 1;
	max_wait_ms = 0;
	send_call_start(&r, 0);
	send_ready(&r, 0);
	PUMP_UNTIL(&r, seen[0].headers == 2);
	TEST_EQ(seen[0].headers, 2);
	/* Flushed every 20 frames: the bus keeps 25 a call. */
	for (size_t k = 0; k < FRAMES; k++) {
		send_audio(&r, 0, k * FR);
		if (k % 20 == 19)
			bus_flush(r.ingress);
	}
	bus_flush(r.ingress);
	nap();
	PUMP_UNTIL(&r,
	    counter(&r, "transcoder_stale_frames_total")
	            + counter(&r, "transcoder_frames_encoded_total")
	        >= FRAMES - 2);
	*stale   = counter(&r, "transcoder_stale_frames_total");
	*encoded = counter(&r, "transcoder_frames_encoded_total");
	printf("  max wait %u ms: %lld dropped, %lld encoded, %zu pages\n",
	    wait_ms, (long long)*stale, (long long)*encoded, seen[0].pages);
	/* Every frame either way (the resampler holds back a few ms). */
	TEST_ASSERT(*stale + *encoded >= FRAMES - 2);
	TEST_ASSERT(*stale + *encoded <= FRAMES);
	TEST_EQ(seen[0].seq_gaps, 0);
	/* The call goes on: its stop still frees it. */
	send_stop(&r, 0);
	PUMP_UNTIL(&r, calls_active(&r) == 0);
	TEST_EQ(calls_active(&r), 0);
	rig_close(&r);
	return 0;
}

static int
test_stale_audio_dropped(void)
{
	int64_t stale, encoded;

	if (stale_run(1, &stale, &encoded))
		return 1;
	TEST_ASSERT(stale >= 125);
	TEST_ASSERT(encoded >= 1);
	if (stale_run(0, &stale, &encoded))
		return 1;
	TEST_EQ(stale, 0);
	return 0;
}

/* FNV-1a of the call_id modulo n: where a hash would put a call. */
static unsigned
hash_shard(const char *id, unsigned n)
{
	uint32_t h = 2166136261u;

	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % n;
}

/* New calls go to the shard with the fewest live calls, whatever their
 * call_id: here all would hash to shard 0. */
static int
test_least_loaded(void)
{
	static struct rig r;
	char              ids[26][16];
	int               n = 0, stopped = 0;
	unsigned          per[2] = { 0 };

	if (rig_open(&r, 2))
		return 1;
	for (int k = 0; n < 26; k++) {
		snprintf(ids[n], sizeof(ids[n]), "LL%05d", k);
		if (hash_shard(ids[n], 2) == 0)
			n++;
	}
	for (int i = 0; i < 20; i++)
		send_start_id(&r, ids[i]);
	PUMP_UNTIL(&r, calls_active(&r) == 20);
	TEST_EQ(calls_active(&r), 20);
	for (int i = 0; i < 20; i++) {
		int o = shards_owner(r.sh, ids[i]);
		TEST_ASSERT(o == 0 || o == 1);
		per[o]++;
	}
	TEST_EQ(per[0], 10);
	TEST_EQ(per[1], 10);
	/* Six of shard 0's calls end: the next six start there. */
	for (int i = 0; i < 20 && stopped < 6; i++)
		if (shards_owner(r.sh, ids[i]) == 0) {
			send_stop_id(&r, ids[i]);
			stopped++;
		}
	PUMP_UNTIL(&r, calls_active(&r) == 14);
	TEST_EQ(calls_active(&r), 14);
	for (int i = 20; i < 26; i++)
		send_start_id(&r, ids[i]);
	PUMP_UNTIL(&r, calls_active(&r) == 20);
	TEST_EQ(calls_active(&r), 20);
	for (int i = 20; i < 26; i++)
		TEST_EQ(shards_owner(r.sh, ids[i]), 0);
	for (int i = 0; i < 26; i++)
		send_stop_id(&r, ids[i]);
	PUMP_UNTIL(&r, calls_active(&r) == 0);
	TEST_EQ(calls_active(&r), 0);
	rig_close(&r);
	return 0;
}

/* A call_id no frame has come for in idle_s + 10 s is forgotten, and a
 * live call forgotten so no longer counts: the map does not grow with
 * calls that ended, and the shards stay balanced. */
static int
test_owners_expire(void)
{
	static struct rig r;
	uint64_t          end;

	if (rig_open_idle(&r, 2, 1))
		return 1;
	send_call_start(&r, 0); /* stopped below */
	send_call_start(&r, 1); /* left to go idle */
	PUMP_UNTIL(&r, shards_owner(r.sh, call_id(1)) >= 0);
	TEST_EQ(shards_owner(r.sh, call_id(0)), 0);
	TEST_EQ(shards_owner(r.sh, call_id(1)), 1);
	send_stop(&r, 0);
	pump(&r);
	end = mono_us() + 12 * 1000000ull;
	while (mono_us() < end)
		shards_turn(r.sh, 50);
	TEST_EQ(shards_owner(r.sh, call_id(0)), -1);
	TEST_EQ(shards_owner(r.sh, call_id(1)), -1);
	TEST_EQ(calls_active(&r), 0);
	/* Were call 1 still counted on shard 1, call 3 would go to 0. */
	send_call_start(&r, 2);
	send_call_start(&r, 3);
	PUMP_UNTIL(&r, shards_owner(r.sh, call_id(3)) >= 0);
	TEST_EQ(shards_owner(r.sh, call_id(2)), 0);
	TEST_EQ(shards_owner(r.sh, call_id(3)), 1);
	rig_close(&r);
	return 0;
}

static int
test_bad_opts(void)
{
	struct shards     *s = (struct shards *)1;
	struct shards_opts o = { .n = 0 };

	TEST_EQ(shards_alloc(&s, &o), EINVAL);
	TEST_ASSERT(s == NULL);
	o.n = SHARDS_MAX + 1;
	TEST_EQ(shards_alloc(&s, &o), EINVAL);
	shards_free(NULL);
	return 0;
}

TEST_MAIN(TEST(test_many_calls), TEST(test_least_loaded),
    TEST(test_owners_expire), TEST(test_unknown_and_stop),
    TEST(test_downlink_waits_for_its_call), TEST(test_stale_audio_dropped),
    TEST(test_bad_opts))
