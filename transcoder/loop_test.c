/*
 * loop_test.c - the transcoder's bus protocol over real NNG (inproc://):
 * a fake ingress and a fake egress talk to the loop as the real ones do.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "oggdemux.h"
#include "spectrum.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct rig {
	struct log      lg;
	struct metrics *m;
	struct bus     *tx_in, *tx_eg; /* the loop's links */
	struct bus     *ingress; /* fake ingress (dials) */
	struct bus     *egress; /* fake egress (listens) */
	struct loop    *loop;
};

/* What the fakes received. */
struct seen {
	size_t   announces;
	size_t   headers, pages;
	uint32_t page_session;
	uint64_t eg_seq, in_seq; /* last seq seen; must grow by 1 */
	int      seq_gaps;
	uint8_t  ogg[1 << 19];
	size_t   ogg_len;
	int16_t  pcm[8000 * 10];
	size_t   pcm_len;
	uint32_t pcm_rate;
	uint64_t pcm_ts;
};

static void
nap(void)
{
	struct timespec ts = { 0, 5000000 };
	nanosleep(&ts, NULL);
}

/* Uplink Opus frames per page of the next rig_open (0: the loop's 1). */
static unsigned rig_per_page;

static int
rig_open(struct rig *r, const char *tag)
{
	char            u1[64], u2[64];
	struct bus_opts bo = { .metrics = NULL };

	memset(r, 0, sizeof(*r));
	log_init(&r->lg, "loop_test", "text", "error");
	TEST_EQ(metrics_alloc(&r->m, "exoplex_"), 0);
	snprintf(u1, sizeof(u1), "inproc://tx-%s", tag);
	snprintf(u2, sizeof(u2), "inproc://eg-%s", tag);
	bo = (struct bus_opts) { .link = "transcoder",
		.url                   = u1,
		.listen                = true,
		.self                  = "transcoder",
		.metrics               = r->m,
		.log                   = &r->lg };
	TEST_EQ(bus_open(&r->tx_in, &bo), 0);
	bo = (struct bus_opts) { .link = "egress",
		.url                   = u2,
		.listen                = true,
		.self                  = "egress",
		.metrics               = r->m,
		.log                   = &r->lg };
	TEST_EQ(bus_open(&r->egress, &bo), 0);
	bo = (struct bus_opts) { .link = "egress",
		.url                   = u2,
		.listen                = false,
		.self                  = "transcoder",
		.metrics               = r->m,
		.log                   = &r->lg };
	TEST_EQ(bus_open(&r->tx_eg, &bo), 0);
	bo = (struct bus_opts) { .link = "transcoder",
		.url                   = u1,
		.listen                = false,
		.self                  = "ingress",
		.metrics               = r->m,
		.log                   = &r->lg };
	TEST_EQ(bus_open(&r->ingress, &bo), 0);
	/* Wait (boundedly) for both links to connect. */
	for (int i = 0; i < 600; i++) {
		if (bus_peers(r->tx_in) && bus_peers(r->tx_eg)
		    && bus_peers(r->ingress) && bus_peers(r->egress))
			break;
		nap();
	}
	TEST_ASSERT(bus_peers(r->tx_in) && bus_peers(r->tx_eg));
	TEST_ASSERT(bus_peers(r->ingress) && bus_peers(r->egress));
	struct loop_opts lo = { .log = &r->lg,
		.metrics             = r->m,
		.ingress             = r->tx_in,
		.egress              = r->tx_eg,
		.complexity          = 5,
		.bitrate             = 24000,
		.frames_per_page     = rig_per_page,
		.idle_s              = 60 };
	TEST_EQ(loop_alloc(&r->loop, &lo), 0);
	return 0;
}

static void
rig_close(struct rig *r)
{
	loop_free(r->loop);
	bus_close(r->ingress);
	bus_close(r->tx_eg);
	bus_close(r->egress);
	bus_close(r->tx_in);
	metrics_free(r->m);
}

static void
take(struct seen *s, const Exo__Frame *f)
{
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
		s->page_session = f->uplink_ogg->session;
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
		s->in_seq   = f->seq;
		s->pcm_rate = a->sample_rate;
		s->pcm_ts   = f->ts_us;
		for (size_t i = 0; i + 1 < a->pcm.len
		     && s->pcm_len < sizeof(s->pcm) / sizeof(s->pcm[0]);
		     i += 2)
			s->pcm[s->pcm_len++]
			    = (int16_t)(uint16_t)(a->pcm.data[i]
			        | a->pcm.data[i + 1] << 8);
		break;
	}
	default:
		break;
	}
}

/* Turns the loop and collects what the fakes get, until nothing more
 * arrives for a few rounds. */
static void
pump(struct rig *r, struct seen *s)
{
	int idle = 0;

	bus_flush(r->ingress);
	bus_flush(r->egress);
	while (idle < 6) {
		Exo__Envelope *env;
		int            got = 0;
		loop_turn(r->loop, 5);
		struct bus *fakes[2] = { r->ingress, r->egress };
		for (int k = 0; k < 2; k++)
			while (bus_recv(fakes[k], &env) == 0) {
				for (size_t i = 0; i < env->n_frames; i++)
					take(s, env->frames[i]);
				bus_envelope_free(env);
				got = 1;
			}
		idle = got ? 0 : idle + 1;
	}
}

static uint64_t seq_ing, seq_egr;

static void
send_call_start(struct rig *r, const char *id, uint32_t rate)
{
	Exo__Frame     f  = EXO__FRAME__INIT;
	Exo__CallStart cs = EXO__CALL_START__INIT;

	cs.stream_sid  = (char *)id;
	cs.call_sid    = "CA1";
	cs.sample_rate = rate;
	f.call_id      = (char *)id;
	f.seq          = ++seq_ing;
	f.body_case    = EXO__FRAME__BODY_CALL_START;
	f.call_start   = &cs;
	bus_send(r->ingress, &f);
}

static void
send_stop(struct rig *r, const char *id)
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
send_audio(struct rig *r, const char *id, uint32_t rate, size_t k0, size_t n)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Audio a = EXO__AUDIO__INIT;
	uint8_t    b[2 * 480];

	for (size_t i = 0; i < n; i++) {
		int16_t v    = (int16_t)(8000
                    * sin(2 * M_PI * 1000 * (double)(k0 + i) / rate));
		b[2 * i]     = (uint8_t)v;
		b[2 * i + 1] = (uint8_t)((uint16_t)v >> 8);
	}
	a.sample_rate  = rate;
	a.pcm.data     = b;
	a.pcm.len      = 2 * n;
	f.call_id      = (char *)id;
	f.seq          = ++seq_ing;
	f.ts_us        = wall_us();
	f.body_case    = EXO__FRAME__BODY_CALLER_AUDIO;
	f.caller_audio = &a;
	bus_send(r->ingress, &f);
}

static void
send_session(struct rig *r, const char *id, uint32_t session, bool ready)
{
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Session s = EXO__SESSION__INIT;

	s.session = session;
	s.server  = "ws://fake:8998/api/chat";
	f.call_id = (char *)id;
	f.seq     = ++seq_egr;
	if (ready) {
		f.body_case     = EXO__FRAME__BODY_SESSION_READY;
		f.session_ready = &s;
	} else {
		s.reason        = "closed";
		f.body_case     = EXO__FRAME__BODY_SESSION_ENDED;
		f.session_ended = &s;
	}
	bus_send(r->egress, &f);
}

static void
send_downlink(struct rig *r, const char *id, uint32_t session,
    const uint8_t *data, size_t n, uint64_t ts)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Ogg   o = EXO__OGG__INIT;

	o.session      = session;
	o.data.data    = (uint8_t *)data;
	o.data.len     = n;
	f.call_id      = (char *)id;
	f.seq          = ++seq_egr;
	f.ts_us        = ts;
	f.body_case    = EXO__FRAME__BODY_DOWNLINK_OGG;
	f.downlink_ogg = &o;
	bus_send(r->egress, &f);
}

static void
count_pkt(void *arg, const uint8_t *p, size_t n)
{
	(*(size_t *)arg)++;
}

/* The whole protocol for one call at rate: announce for an unknown
 * call, session_ready before call_start, audio up as pages, pages back
 * down as playback, session end, call stop. */
static int
call_at(uint32_t rate, const char *tag)
{
	static struct rig  r;
	static struct seen s;
	const char        *id = "MZ0001";
	size_t             fr = rate / 50;

	memset(&s, 0, sizeof(s));
	if (rig_open(&r, tag))
		return 1;
	/* Audio for an unknown call: dropped, one announce. */
	for (int i = 0; i < 3; i++)
		send_audio(&r, id, rate, 0, fr);
	send_session(&r, id, 1, true);
	pump(&r, &s);
	TEST_EQ(s.announces, 1);
	TEST_EQ(s.pages, 0);
	TEST_EQ(loop_calls(r.loop), 0);

	/* call_start: the remembered session starts at once. */
	send_call_start(&r, id, rate);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 1);
	TEST_EQ(s.headers, 2);
	TEST_EQ(s.page_session, 1);

	/* 3 s of tone up. */
	for (size_t k = 0; k < 150; k++) {
		send_audio(&r, id, rate, k * fr, fr);
		if (k % 5 == 4)
			pump(&r, &s);
	}
	pump(&r, &s);
	TEST_ASSERT(s.pages >= 2 + 149 && s.pages <= 2 + 150);
	TEST_EQ(s.seq_gaps, 0);
	size_t                npkt = 0;
	struct oggdemux      *d;
	struct oggdemux_stats ds;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, count_pkt, &npkt), 0);
	oggdemux_stats(d, &ds);
	TEST_EQ(npkt, s.pages - 2);
	TEST_EQ(ds.sync_errors, 0);
	TEST_EQ(ds.streams, 1);
	oggdemux_free(d);

	/* The pages come back as PersonaPlex's downlink, 1000 bytes a
	 * frame: playback at the call's rate, ts_us carried. */
	for (size_t off = 0; off < s.ogg_len; off += 1000) {
		size_t n = s.ogg_len - off < 1000 ? s.ogg_len - off : 1000;
		send_downlink(&r, id, 1, s.ogg + off, n, 4242 + off);
		if ((off / 1000) % 5 == 4)
			pump(&r, &s);
	}
	pump(&r, &s);
	TEST_EQ(s.pcm_rate, rate);
	TEST_ASSERT(s.pcm_len >= (size_t)rate * 29 / 10);
	TEST_ASSERT(s.pcm_len <= (size_t)rate * 3);
	TEST_ASSERT(s.pcm_ts >= 4242 && s.pcm_ts < 4242 + s.ogg_len);
	TEST_EQ(s.seq_gaps, 0);
	double hz = spectrum_dominant_hz(
	    s.pcm + rate / 5, s.pcm_len - rate / 5, (int)rate);
	printf("  %u Hz: %zu pages up, %zu samples back, tone %.1f Hz\n", rate,
	    s.pages, s.pcm_len, hz);
	TEST_NEAR(hz, 1000, 10);

	/* Session over: audio is no longer encoded. */
	size_t pages = s.pages;
	send_session(&r, id, 1, false);
	pump(&r, &s); /* the links are not ordered with each other */
	for (size_t k = 0; k < 10; k++)
		send_audio(&r, id, rate, k * fr, fr);
	pump(&r, &s);
	TEST_EQ(s.pages, pages);

	/* Downlink of a session we were not told about starts its
	 * uplink (a restarted transcoder mid-session). */
	send_downlink(&r, id, 2, s.ogg, 0, 1);
	pump(&r, &s);
	for (size_t k = 0; k < 10; k++)
		send_audio(&r, id, rate, k * fr, fr);
	pump(&r, &s);
	TEST_EQ(s.headers, 4);
	TEST_EQ(s.page_session, 2);
	TEST_ASSERT(s.pages >= pages + 2 + 9);

	/* A caller_audio at the wrong rate is dropped. */
	pages = s.pages;
	send_audio(&r, id, rate == 8000 ? 16000 : 8000, 0, 160);
	pump(&r, &s);
	TEST_EQ(s.pages, pages);

	/* call_stop frees the call; late audio asks for nothing. */
	send_stop(&r, id);
	send_audio(&r, id, rate, 0, fr);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 0);
	TEST_EQ(s.announces, 1);
	rig_close(&r);
	return 0;
}

static int
test_call_8k(void)
{
	return call_at(8000, "8k");
}

static int
test_call_16k(void)
{
	return call_at(16000, "16k");
}

static int
test_call_24k(void)
{
	return call_at(24000, "24k");
}

/* Idle calls are freed; a refused rate makes no call. */
static int
test_expiry(void)
{
	static struct rig  r;
	static struct seen s;

	if (rig_open(&r, "exp"))
		return 1;
	send_call_start(&r, "A", 8000);
	send_call_start(&r, "B", 16000);
	send_call_start(&r, "C", 44100);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 2);
	/* Audio for the refused call asks for no announce. */
	send_audio(&r, "C", 44100, 0, 441);
	pump(&r, &s);
	TEST_EQ(s.announces, 0);
	TEST_EQ(loop_expire(r.loop, mono_us()), 0);
	TEST_EQ(loop_expire(r.loop, mono_us() + 61 * 1000000ull), 2);
	TEST_EQ(loop_calls(r.loop), 0);
	rig_close(&r);
	return 0;
}

static void
send_mode(struct rig *r, const char *id, const char *mode)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__CallMode m = EXO__CALL_MODE__INIT;

	m.mode      = (char *)mode;
	m.by        = "custom_parameter";
	f.call_id   = (char *)id;
	f.seq       = ++seq_egr;
	f.body_case = EXO__FRAME__BODY_CALL_MODE;
	f.call_mode = &m;
	bus_send(r->egress, &f);
}

/* Transcribe calls (agent assist) get no pipeline: told by egress's
 * call_mode after the call started, before it started, or by a
 * call_start that carries the mode. Their audio in flight asks for no
 * announce and makes no pages. An agent call_mode changes nothing. */
static int
test_transcribe(void)
{
	static struct rig  r;
	static struct seen s;
	int64_t            n;

	if (rig_open(&r, "tr"))
		return 1;
	/* Decided after the call_start: the pipeline goes. */
	send_call_start(&r, "T1", 8000);
	send_mode(&r, "X1", "agent");
	send_call_start(&r, "X1", 8000);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 2);
	send_mode(&r, "T1", "transcribe");
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 1);
	/* Decided before the call_start arrives. */
	send_mode(&r, "T2", "transcribe");
	pump(&r, &s);
	send_call_start(&r, "T2", 8000);
	/* Audio of transcribe calls, still in flight. */
	send_audio(&r, "T1", 8000, 0, 160);
	send_audio(&r, "T2", 8000, 0, 160);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 1);
	TEST_EQ(s.announces, 0);
	TEST_EQ(s.pages, 0);
	/* A (re-announced) call_start that says transcribe. */
	{
		Exo__Frame     f  = EXO__FRAME__INIT;
		Exo__CallStart cs = EXO__CALL_START__INIT;
		cs.stream_sid     = "T3";
		cs.sample_rate    = 16000;
		cs.mode           = "transcribe";
		cs.reannounce     = 1;
		f.call_id         = "T3";
		f.seq             = ++seq_ing;
		f.body_case       = EXO__FRAME__BODY_CALL_START;
		f.call_start      = &cs;
		bus_send(r.ingress, &f);
	}
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 1);
	n = metric_get(metrics_counter(
	    r.m, "transcoder_calls_transcribe_total", "", NULL));
	TEST_EQ(n, 3);
	send_stop(&r, "T1");
	send_stop(&r, "X1");
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 0);
	rig_close(&r);
	return 0;
}

/* Ingress gone: calls it does not announce again within the grace are
 * freed, whether the loss is reported directly or seen on the link. */
static int
test_ingress_gone(void)
{
	static struct rig  r;
	static struct seen s;
	uint64_t           t;

	if (rig_open(&r, "gone"))
		return 1;
	send_call_start(&r, "A", 8000);
	send_call_start(&r, "B", 8000);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 2);
	/* A (new) ingress re-announces A only. */
	t = mono_us();
	loop_ingress_lost(r.loop, t);
	send_call_start(&r, "A", 8000);
	pump(&r, &s);
	TEST_EQ(loop_orphans(r.loop, t), 0); /* the grace runs */
	TEST_EQ(loop_calls(r.loop), 2);
	TEST_EQ(loop_orphans(r.loop, t + 3001 * 1000ull), 1);
	TEST_EQ(loop_calls(r.loop), 1);
	TEST_EQ(loop_orphans(r.loop, t + 9000 * 1000ull), 0); /* once */
	/* B's late frames ask nobody to announce it. */
	send_audio(&r, "B", 8000, 0, 160);
	pump(&r, &s);
	TEST_EQ(s.announces, 0);

	/* The link loses its peer: the loop starts the grace itself, and
	 * nobody announces A again. */
	bus_close(r.ingress);
	r.ingress = NULL;
	for (int i = 0; i < 400 && bus_peers(r.tx_in); i++)
		loop_turn(r.loop, 5);
	TEST_EQ(bus_peers(r.tx_in), 0);
	loop_turn(r.loop, 5);
	TEST_EQ(loop_calls(r.loop), 1);
	TEST_EQ(loop_orphans(r.loop, mono_us() + 4000 * 1000ull), 1);
	TEST_EQ(loop_calls(r.loop), 0);
	rig_close(&r);
	return 0;
}

/* Two frames a page, as the browser client sends: whole pages while the
 * call goes on, and the frame left waiting goes out at call_stop. */
static int
test_pages_of_two(void)
{
	static struct rig  r;
	static struct seen s;
	const char        *id   = "MZ0002";
	size_t             npkt = 0;
	struct oggdemux   *d;

	memset(&s, 0, sizeof(s));
	rig_per_page = 2;
	if (rig_open(&r, "two"))
		return 1;
	rig_per_page = 0;
	send_call_start(&r, id, 8000);
	send_session(&r, id, 1, true);
	pump(&r, &s);
	TEST_EQ(s.headers, 2);
	/* 180 ms in: each chunk completes a frame (tcall_align), so 9
	 * frames are encoded, 8 of them on pages. */
	for (size_t k = 0; k < 9; k++)
		send_audio(&r, id, 8000, k * 160, 160);
	pump(&r, &s);
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, count_pkt, &npkt), 0);
	oggdemux_free(d);
	TEST_EQ(s.pages, 2 + 4);
	TEST_EQ(npkt, 8);

	send_stop(&r, id);
	pump(&r, &s);
	TEST_EQ(loop_calls(r.loop), 0);
	TEST_EQ(s.pages, 2 + 5);
	npkt = 0;
	TEST_EQ(oggdemux_alloc(&d), 0);
	TEST_EQ(oggdemux_feed(d, s.ogg, s.ogg_len, count_pkt, &npkt), 0);
	oggdemux_free(d);
	TEST_EQ(npkt, 9);
	TEST_EQ(s.seq_gaps, 0);
	rig_close(&r);
	return 0;
}

TEST_MAIN(TEST(test_call_8k), TEST(test_call_16k), TEST(test_call_24k),
    TEST(test_expiry), TEST(test_transcribe), TEST(test_ingress_gone),
    TEST(test_pages_of_two))
