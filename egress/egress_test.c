/*
 * egress_test.c - egress between a pretend ingress and transcoder (real
 * bus links over ipc:// in a temporary directory) and a PersonaPlex
 * stand-in (testsrv.h) in its own lws context, all on this thread.
 */
#include "egress.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "test.h"
#include "testsrv.h"

#define MAXF 256

struct got {
	int      kind; /* Exo__Frame body_case */
	char     call_id[64];
	uint64_t seq, ts_us;
	uint32_t session;
	char     text[256]; /* server, reason */
	uint8_t  data[512];
	size_t   len;
	bool     header;
};

struct peer {
	struct bus *bus;
	struct got  f[MAXF];
	int         n;
};

struct fix {
	char                dir[64];
	struct log          lg;
	struct metrics     *m, *pm;
	struct bus         *to_t, *to_i;
	struct peer         tr, in;
	struct egress      *eg;
	struct lws_context *srv;
	struct fake         fake;
	int                 port;
	char                urls[64], server[96];
};

static int
fix_init(struct fix *x, bool with_server)
{
	struct lws_context_creation_info ci;
	struct egress_opts               eo = { 0 };
	struct bus_opts                  bo = { 0 };
	char                             u[128], err[256];

	memset(x, 0, sizeof(*x));
	lws_set_log_level(LLL_ERR, NULL);
	log_init(&x->lg, "egress_test", "text",
	    getenv("TEST_DEBUG") ? "debug" : "error");
	snprintf(x->dir, sizeof(x->dir), "/tmp/egress_test.XXXXXX");
	if (!mkdtemp(x->dir))
		return 1;
	if (metrics_alloc(&x->m, "exoplex_") || metrics_alloc(&x->pm, "p_"))
		return 1;

	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	ci.port    = CONTEXT_PORT_NO_LISTEN;
	if (!(x->srv = lws_create_context(&ci)))
		return 1;
	if ((x->port = testsrv_start(&x->fake, x->srv, NULL, NULL)) < 0)
		return 1;
	snprintf(x->urls, sizeof(x->urls), "ws://127.0.0.1:%d", x->port);
	snprintf(x->server, sizeof(x->server), "ws://127.0.0.1:%d/api/chat",
	    x->port);

	bo.metrics = x->m;
	bo.log     = &x->lg;
	bo.self    = "egress";
	bo.listen  = true;
	bo.link    = "egress";
	snprintf(u, sizeof(u), "ipc://%s/egress.sock", x->dir);
	bo.url = u;
	if (bus_open(&x->to_t, &bo))
		return 1;
	bo.link = "control";
	snprintf(u, sizeof(u), "ipc://%s/control.sock", x->dir);
	if (bus_open(&x->to_i, &bo))
		return 1;
	bo.metrics = x->pm;
	bo.listen  = false;
	bo.self    = "ingress";
	if (bus_open(&x->in.bus, &bo))
		return 1;
	bo.self = "transcoder";
	bo.link = "egress";
	snprintf(u, sizeof(u), "ipc://%s/egress.sock", x->dir);
	if (bus_open(&x->tr.bus, &bo))
		return 1;

	eo.log           = &x->lg;
	eo.metrics       = x->m;
	eo.to_transcoder = x->to_t;
	eo.to_ingress    = x->to_i;
	eo.urls          = with_server ? x->urls : NULL;
	eo.voice_prompt  = "NATF2.pt";
	eo.text_prompt   = "You answer the phone.";
	if (egress_alloc(&x->eg, &eo, err, sizeof(err))) {
		fprintf(stderr, "egress_alloc: %s\n", err);
		return 1;
	}
	return 0;
}

static void
fix_fini(struct fix *x)
{
	char cmd[128];

	egress_free(x->eg);
	lws_context_destroy(x->srv);
	bus_close(x->tr.bus);
	bus_close(x->in.bus);
	bus_close(x->to_t);
	bus_close(x->to_i);
	metrics_free(x->m);
	metrics_free(x->pm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	if (system(cmd)) { }
}

static void
record(struct peer *p, const Exo__Frame *f)
{
	struct got *g;

	if (p->n >= MAXF)
		return;
	g = &p->f[p->n++];
	memset(g, 0, sizeof(*g));
	g->kind  = f->body_case;
	g->seq   = f->seq;
	g->ts_us = f->ts_us;
	snprintf(g->call_id, sizeof(g->call_id), "%s", f->call_id);
	switch (f->body_case) {
	case EXO__FRAME__BODY_SESSION_READY:
		g->session = f->session_ready->session;
		snprintf(
		    g->text, sizeof(g->text), "%s", f->session_ready->server);
		break;
	case EXO__FRAME__BODY_SESSION_ENDED:
		g->session = f->session_ended->session;
		snprintf(
		    g->text, sizeof(g->text), "%s", f->session_ended->reason);
		break;
	case EXO__FRAME__BODY_HANGUP:
		snprintf(g->text, sizeof(g->text), "%s", f->hangup->reason);
		break;
	case EXO__FRAME__BODY_DOWNLINK_OGG:
		g->session = f->downlink_ogg->session;
		g->len     = f->downlink_ogg->data.len;
		if (g->len <= sizeof(g->data))
			memcpy(g->data, f->downlink_ogg->data.data, g->len);
		break;
	default:
		break;
	}
}

/* One turn of everyone's loop. */
static void
pump(struct fix *x)
{
	Exo__Envelope *env;
	struct peer   *peers[2] = { &x->tr, &x->in };

	lws_service(egress_lws(x->eg), -1);
	lws_service(x->srv, -1);
	bus_flush(x->to_t);
	bus_flush(x->to_i);
	for (int i = 0; i < 2; i++) {
		bus_flush(peers[i]->bus);
		int rc;
		while ((rc = bus_recv(peers[i]->bus, &env)) != EAGAIN) {
			if (rc)
				continue;
			for (size_t k = 0; k < env->n_frames; k++)
				record(peers[i], env->frames[k]);
			bus_envelope_free(env);
		}
	}
	usleep(1000);
}

static void
pump_ms(struct fix *x, unsigned ms)
{
	for (uint64_t end = mono_us() + ms * 1000ull; mono_us() < end;)
		pump(x);
}

static int
count(const struct peer *p, int kind, const char *call_id)
{
	int n = 0;
	for (int i = 0; i < p->n; i++)
		n += p->f[i].kind == kind
		    && (!call_id || !strcmp(p->f[i].call_id, call_id));
	return n;
}

static const struct got *
find(const struct peer *p, int kind, int nth)
{
	for (int i = 0; i < p->n; i++)
		if (p->f[i].kind == kind && nth-- == 0)
			return &p->f[i];
	return NULL;
}

/* Pumps until pred(x) or 5 s pass (a guard, never a timing check). */
#define PUMP_UNTIL(x, cond)                                                   \
	do {                                                                  \
		uint64_t end_ = mono_us() + 5000000;                          \
		while (!(cond) && mono_us() < end_)                           \
			pump(x);                                              \
		TEST_ASSERT(cond);                                            \
	} while (0)

static int64_t
metric_val(struct metrics *m, const char *series)
{
	size_t    n;
	char     *txt = metrics_render(m, &n), *p;
	long long v   = -1;
	if (!txt)
		return -1;
	for (p = txt; (p = strstr(p, series)); p++)
		if ((p == txt || p[-1] == '\n') && p[strlen(series)] == ' ') {
			v = atoll(p + strlen(series) + 1);
			break;
		}
	free(txt);
	return v;
}

static void
send_call_start(struct fix *x, const char *id, bool again)
{
	Exo__Frame     f  = EXO__FRAME__INIT;
	Exo__CallStart cs = EXO__CALL_START__INIT;
	cs.stream_sid     = (char *)id;
	cs.call_sid       = "CA-egress-test";
	cs.from           = "09999999999";
	cs.to             = "08888888888";
	cs.sample_rate    = 8000;
	cs.reannounce     = again;
	f.call_id         = (char *)id;
	f.seq             = 1;
	f.body_case       = EXO__FRAME__BODY_CALL_START;
	f.call_start      = &cs;
	bus_send(x->in.bus, &f);
}

static void
send_call_stop(struct fix *x, const char *id)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__CallStop s = EXO__CALL_STOP__INIT;
	s.reason        = "callended";
	f.call_id       = (char *)id;
	f.body_case     = EXO__FRAME__BODY_CALL_STOP;
	f.call_stop     = &s;
	bus_send(x->in.bus, &f);
}

static void
send_uplink(
    struct fix *x, const char *id, uint32_t session, uint8_t tag, bool header)
{
	Exo__Frame f        = EXO__FRAME__INIT;
	Exo__Ogg   o        = EXO__OGG__INIT;
	uint8_t    page[40] = { 'O', 'g', 'g', 'S', 0, tag };
	o.session           = session;
	o.data.data         = page;
	o.data.len          = sizeof(page);
	o.header            = header;
	f.call_id           = (char *)id;
	f.body_case         = EXO__FRAME__BODY_UPLINK_OGG;
	f.uplink_ogg        = &o;
	bus_send(x->tr.bus, &f);
}

static int
test_call_flow(void)
{
	struct fix        x;
	const struct got *g;
	uint8_t           hs = 0, page[48] = { 0x01, 'O', 'g', 'g', 'S', 7 };

	TEST_EQ(fix_init(&x, true), 0);
	/* Both peers connect; the call starts; egress dials PersonaPlex. */
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST1", false);
	PUMP_UNTIL(&x, x.fake.connections == 1);
	TEST_STREQ(x.fake.uri, "/api/chat");
	TEST_STREQ(x.fake.voice, "NATF2.pt");
	TEST_STREQ(x.fake.text, "You answer the phone.");
	TEST_EQ(egress_calls(x.eg), 1);

	/* Prompting: no session yet; uplink is dropped, never sent. */
	send_uplink(&x, "ST1", 1, 0, true);
	pump_ms(&x, 100);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_SESSION_READY, NULL), 0);
	TEST_EQ(x.fake.nrx, 0);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_uplink_pages_dropped_total{"
	            "why=\"not_ready\"}"),
	    1);

	/* The handshake: session 1 is ready on both links. */
	fake_queue(&x.fake, &hs, 1, 0);
	fake_queue(&x.fake, page, sizeof(page), 0);
	PUMP_UNTIL(&x,
	    count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST1")
	        && count(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, "ST1"));
	g = find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 0);
	TEST_ASSERT(g);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->text, x.server);
	TEST_EQ(g->seq, 1);
	g = find(&x.in, EXO__FRAME__BODY_SESSION_READY, 0);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->call_id, "ST1");
	/* Downlink: the bytes after 0x01, as sent, for session 1. */
	g = find(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, 0);
	TEST_EQ(g->session, 1);
	TEST_EQ(g->len, 47);
	TEST_ASSERT(memcmp(g->data, page + 1, 47) == 0);
	TEST_EQ(g->seq, 2);
	TEST_ASSERT(g->ts_us > 0);

	/* Uplink of session 1 goes out as 0x01 + page (echoed back);
	 * session 2's does not exist and is dropped. */
	send_uplink(&x, "ST1", 1, 1, true);
	send_uplink(&x, "ST1", 2, 2, false);
	send_uplink(&x, "ST1", 1, 3, false);
	PUMP_UNTIL(&x,
	    x.fake.nrx == 2
	        && count(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, "ST1") == 3);
	TEST_EQ(x.fake.rx_before_hs, 0);
	TEST_EQ(x.fake.rx_len[0], 41);
	TEST_EQ(x.fake.rx[0][0], 0x01);
	TEST_ASSERT(memcmp(x.fake.rx[0] + 1, "OggS", 4) == 0);
	TEST_EQ(x.fake.rx[0][6], 1);
	TEST_EQ(x.fake.rx[1][6], 3);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_uplink_pages_dropped_total{"
	            "why=\"stale_session\"}"),
	    1);

	/* Text pieces become one utterance after a gap. */
	fake_queue(&x.fake, "\x02 Hello", 7, 0);
	fake_queue(&x.fake, "\x02 there.", 8, 0);
	PUMP_UNTIL(
	    &x, metric_val(x.m, "exoplex_egress_utterances_total") == 1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_text_pieces_total"), 2);

	/* call_start again only refreshes. */
	send_call_start(&x, "ST1", true);
	pump_ms(&x, 100);
	TEST_EQ(x.fake.connections, 1);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_SESSION_READY, NULL), 1);

	/* call_stop: a WebSocket close with 1000; the call is gone. */
	send_call_stop(&x, "ST1");
	PUMP_UNTIL(&x, x.fake.closed);
	TEST_EQ(x.fake.close_code, 1000);
	TEST_EQ(egress_calls(x.eg), 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL), 0);
	/* Its late frames are dropped without an announce. */
	send_uplink(&x, "ST1", 1, 4, false);
	pump_ms(&x, 100);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_ANNOUNCE, NULL), 0);
	fix_fini(&x);
	return 0;
}

static int
test_unknown_call_announced_once(void)
{
	struct fix x;

	TEST_EQ(fix_init(&x, true), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	/* Three frames in one message: one announce (at most 1/s). */
	for (int i = 0; i < 3; i++)
		send_uplink(&x, "ST9", (uint32_t)i, (uint8_t)i, false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_ANNOUNCE, "ST9") == 1);
	pump_ms(&x, 100);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_ANNOUNCE, NULL), 1);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_ANNOUNCE, NULL), 0);
	TEST_EQ(
	    metric_val(x.m, "exoplex_egress_unknown_call_frames_total"), 3);
	TEST_EQ(x.fake.connections, 0);
	/* Ingress answers with the call_start: the call comes up. Its
	 * session is numbered past the transcoder's (2, as after an egress
	 * restart), so the transcoder starts a fresh Ogg stream. */
	send_call_start(&x, "ST9", false);
	PUMP_UNTIL(&x, x.fake.connections == 1);
	fake_queue(&x.fake, "", 1, 0);
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "ST9"));
	TEST_EQ(find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 0)->session, 3);
	/* A reannounced call's first session is numbered past this
	 * process's start time in seconds: an earlier egress's number for
	 * it (1, 2, ...) cannot come back. */
	send_call_start(&x, "ST10", true);
	PUMP_UNTIL(&x, x.fake.connections == 2);
	fake_queue(&x.fake, "", 1, 0);
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "ST10"));
	TEST_ASSERT(find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 1)->session
	    > 1600000000u);
	fix_fini(&x);
	return 0;
}

static int
test_session_failure_hangs_up(void)
{
	struct fix        x;
	const struct got *g;

	TEST_EQ(fix_init(&x, true), 0);
	x.fake.close_at_once = true; /* e.g. a bad voice prompt */
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST2", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST2") == 1);
	g = find(&x.in, EXO__FRAME__BODY_HANGUP, 0);
	TEST_STREQ(g->text, "persona_failed");
	g = find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0);
	TEST_ASSERT(g);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->text, "closed_before_handshake");
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_ENDED, "ST2"));
	/* The session_ended comes before the hangup on "control". */
	TEST_ASSERT(find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0)
	    < find(&x.in, EXO__FRAME__BODY_HANGUP, 0));
	/* The call waits for ingress's call_stop. */
	TEST_EQ(egress_calls(x.eg), 1);
	send_call_stop(&x, "ST2");
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 1);
	fix_fini(&x);
	return 0;
}

static int
test_drop_after_handshake(void)
{
	struct fix        x;
	const struct got *g;
	uint8_t           hs = 0;

	TEST_EQ(fix_init(&x, true), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST3", false);
	fake_queue(&x.fake, &hs, 1, 0);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST3"));
	lws_set_timeout(
	    x.fake.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST3") == 1);
	g = find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0);
	TEST_ASSERT(g);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->text, "closed");
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_session_failures_total{reason="
	            "\"closed\"}"),
	    1);
	fix_fini(&x);
	return 0;
}

static int
test_no_server_configured(void)
{
	struct fix        x;
	const struct got *g;
	char              detail[256];

	TEST_EQ(fix_init(&x, false), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	TEST_EQ(egress_ready(x.eg, detail, sizeof(detail)), 1);
	TEST_ASSERT(strstr(detail, "servers=0") != NULL);
	send_call_start(&x, "ST4", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST4") == 1);
	g = find(&x.in, EXO__FRAME__BODY_HANGUP, 0);
	TEST_STREQ(g->text, "persona_failed");
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL), 0);
	fix_fini(&x);
	return 0;
}

static int
test_check_opts(void)
{
	struct egress_opts o = { 0 };
	char               err[256];

	TEST_EQ(
	    egress_check_urls("ws://a:1,wss://[::1]:2/x", err, sizeof(err)),
	    0);
	TEST_EQ(egress_check_urls("", err, sizeof(err)), 0);
	TEST_EQ(egress_check_urls("ws://a:1,,ws://b", err, sizeof(err)), 0);
	TEST_EQ(
	    egress_check_urls("ws://a:1,http://b", err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "http://b") != NULL);
	o.urls         = "ws://a:1";
	o.voice_prompt = "NATF2.pt";
	o.text_prompt  = "hi";
	TEST_EQ(egress_check_opts(&o, err, sizeof(err)), 0);
	o.text_prompt = "";
	TEST_EQ(egress_check_opts(&o, err, sizeof(err)), EINVAL);
	o.text_prompt = "hi";
	o.ca_file     = "/nonexistent/ca.pem";
	TEST_EQ(egress_check_opts(&o, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_PERSONAPLEX_CA") != NULL);
	return 0;
}

TEST_MAIN(TEST(test_call_flow), TEST(test_unknown_call_announced_once),
    TEST(test_session_failure_hangs_up), TEST(test_drop_after_handshake),
    TEST(test_no_server_configured), TEST(test_check_opts))
