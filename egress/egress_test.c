/*
 * egress_test.c - egress between a pretend ingress and transcoder (real
 * bus links over ipc:// in a temporary directory) and up to three
 * PersonaPlex stand-ins (testsrv.h) in their own lws context, all on this
 * thread. The pool, admission, handshake timeouts, reconnection, warm
 * sessions, liveness and personas are seen from the bus and from the
 * stand-ins; times given to egress are short, never asserted.
 */
#include "egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "persona.h"
#include "test.h"
#include "testsrv.h"

#define MAXF 512
#define NSRV 3

struct got {
	int      kind; /* Exo__Frame body_case */
	char     call_id[64];
	uint64_t seq, ts_us;
	uint32_t session, free, total;
	char     text[256]; /* server, reason, agent text */
	uint8_t  data[512];
	size_t   len;
	bool     header;
};

struct peer {
	struct bus *bus;
	struct got  f[MAXF];
	int         n;
};

struct fix_opts {
	int         servers; /* stand-ins configured (0..NSRV) */
	unsigned    warm, handshake_ms, reconnect_ms, liveness_ms;
	unsigned    ingress_grace_ms;
	const char *personas; /* file contents; NULL: none */
	const char *default_mode; /* EXOPLEX_DEFAULT_MODE; NULL: unset */
	int         raw_port; /* >0: one more server, a bare TCP listener */
};

struct fix {
	char                dir[64];
	char                personas[96];
	struct log          lg;
	struct metrics     *m, *pm;
	struct bus         *to_t, *to_i;
	struct peer         tr, in;
	struct egress      *eg;
	struct lws_context *srv;
	struct fake         fake[NSRV];
	int                 port[NSRV];
	char                urls[256], server[NSRV][96];
};

static int
fix_init_opts(struct fix *x, const struct fix_opts *fo)
{
	struct lws_context_creation_info ci;
	struct egress_opts               eo = { 0 };
	struct bus_opts                  bo = { 0 };
	char                             u[128], err[512];

	memset(x, 0, sizeof(*x));
	lws_set_log_level(LLL_ERR, NULL);
	log_init(&x->lg, "egress_test", "text",
	    getenv("TEST_DEBUG") ? "debug" : "error");
	persona_lib_init();
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
	for (int i = 0; i < fo->servers; i++) {
		if ((x->port[i]
		        = testsrv_start(&x->fake[i], x->srv, NULL, NULL))
		    < 0)
			return 1;
		snprintf(x->urls + strlen(x->urls),
		    sizeof(x->urls) - strlen(x->urls), "%sws://127.0.0.1:%d",
		    i ? ", " : "", x->port[i]);
		snprintf(x->server[i], sizeof(x->server[i]),
		    "ws://127.0.0.1:%d/api/chat", x->port[i]);
	}
	if (fo->raw_port > 0)
		snprintf(x->urls + strlen(x->urls),
		    sizeof(x->urls) - strlen(x->urls), "%sws://127.0.0.1:%d",
		    fo->servers ? "," : "", fo->raw_port);
	if (fo->personas) {
		FILE *f;
		snprintf(x->personas, sizeof(x->personas), "%s/personas.ini",
		    x->dir);
		if (!(f = fopen(x->personas, "w")))
			return 1;
		fputs(fo->personas, f);
		fclose(f);
	}

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

	eo.log              = &x->lg;
	eo.metrics          = x->m;
	eo.to_transcoder    = x->to_t;
	eo.to_ingress       = x->to_i;
	eo.urls             = fo->servers || fo->raw_port ? x->urls : NULL;
	eo.voice_prompt     = "NATF2.pt";
	eo.text_prompt      = "You answer the phone.";
	eo.personas         = fo->personas ? x->personas : NULL;
	eo.warm             = fo->warm;
	eo.handshake_ms     = fo->handshake_ms;
	eo.reconnect_ms     = fo->reconnect_ms;
	eo.liveness_ms      = fo->liveness_ms;
	eo.ingress_grace_ms = fo->ingress_grace_ms;
	eo.text_gap_ms      = 100;
	eo.default_mode     = fo->default_mode;
	eo.backoff_ms       = 5000; /* a failed server stays out of tests */
	eo.seed             = 1;
	if (egress_alloc(&x->eg, &eo, err, sizeof(err))) {
		fprintf(stderr, "egress_alloc: %s\n", err);
		return 1;
	}
	return 0;
}

static int
fix_init(struct fix *x, bool with_server)
{
	struct fix_opts fo = { .servers = with_server ? 1 : 0 };
	return fix_init_opts(x, &fo);
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
	case EXO__FRAME__BODY_CLEAR:
		snprintf(g->text, sizeof(g->text), "%s", f->clear->reason);
		break;
	case EXO__FRAME__BODY_CALL_MODE:
		snprintf(g->text, sizeof(g->text), "%s/%s", f->call_mode->mode,
		    f->call_mode->by);
		break;
	case EXO__FRAME__BODY_AGENT_TEXT:
		snprintf(g->text, sizeof(g->text), "%s", f->agent_text->text);
		break;
	case EXO__FRAME__BODY_CAPACITY:
		g->free  = f->capacity->free;
		g->total = f->capacity->total;
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

	egress_service(x->eg, false);
	lws_service(x->srv, -1);
	bus_flush(x->to_t);
	bus_flush(x->to_i);
	for (int i = 0; i < 2; i++) {
		if (!peers[i]->bus)
			continue; /* closed by the test: a peer gone */
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

/* A frame's text, or "(none)" when there is no such frame. */
static const char *
text_of(const struct got *g)
{
	return g ? g->text : "(none)";
}

static const struct got *
find_last(const struct peer *p, int kind)
{
	for (int i = p->n - 1; i >= 0; i--)
		if (p->f[i].kind == kind)
			return &p->f[i];
	return NULL;
}

/* Pumps until cond or 5 s pass (a guard, never a timing check). */
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

static int64_t
servers_in(struct fix *x, const char *state)
{
	char s[96];
	snprintf(
	    s, sizeof(s), "exoplex_personaplex_servers{state=\"%s\"}", state);
	return metric_val(x->m, s);
}

static int64_t
server_state(struct fix *x, int i)
{
	char s[160];
	snprintf(s, sizeof(s),
	    "exoplex_personaplex_server_state{server=\"%s\"}", x->server[i]);
	return metric_val(x->m, s);
}

static int64_t
server_failures(struct fix *x, int i)
{
	char s[160];
	snprintf(s, sizeof(s),
	    "exoplex_personaplex_server_failures_total{server=\"%s\"}",
	    x->server[i]);
	return metric_val(x->m, s);
}

struct start {
	const char *to, *persona, *refused, *mode;
	const char *key, *value; /* one more custom parameter */
	bool        again;
};

static void
send_call_start_ex(struct fix *x, const char *id, const struct start *st)
{
	Exo__Frame                            f  = EXO__FRAME__INIT;
	Exo__CallStart                        cs = EXO__CALL_START__INIT;
	Exo__CallStart__CustomParametersEntry e[2]
	    = { EXO__CALL_START__CUSTOM_PARAMETERS_ENTRY__INIT,
		      EXO__CALL_START__CUSTOM_PARAMETERS_ENTRY__INIT };
	Exo__CallStart__CustomParametersEntry *ep[2] = { &e[0], &e[1] };

	cs.stream_sid  = (char *)id;
	cs.call_sid    = "CA-egress-test";
	cs.from        = "09999999999";
	cs.to          = (char *)(st->to ? st->to : "08888888888");
	cs.sample_rate = 8000;
	cs.reannounce  = st->again;
	if (st->mode)
		cs.mode = (char *)st->mode;
	if (st->refused)
		cs.refused = (char *)st->refused;
	if (st->persona) {
		e[cs.n_custom_parameters].key   = "persona";
		e[cs.n_custom_parameters].value = (char *)st->persona;
		cs.n_custom_parameters++;
	}
	if (st->key) {
		e[cs.n_custom_parameters].key   = (char *)st->key;
		e[cs.n_custom_parameters].value = (char *)st->value;
		cs.n_custom_parameters++;
	}
	cs.custom_parameters = ep;
	f.call_id            = (char *)id;
	f.seq                = 1;
	f.body_case          = EXO__FRAME__BODY_CALL_START;
	f.call_start         = &cs;
	bus_send(x->in.bus, &f);
}

static void
send_call_start(struct fix *x, const char *id, bool again)
{
	struct start st = { .again = again };
	send_call_start_ex(x, id, &st);
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
	/* Both peers connect: ingress hears the pool's capacity. */
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_CAPACITY, ""));
	g = find_last(&x.in, EXO__FRAME__BODY_CAPACITY);
	TEST_EQ(g->free, 1);
	TEST_EQ(g->total, 1);
	/* The call starts; egress dials PersonaPlex. */
	send_call_start(&x, "ST1", false);
	PUMP_UNTIL(&x, x.fake[0].connections == 1);
	TEST_STREQ(x.fake[0].uri, "/api/chat");
	TEST_STREQ(x.fake[0].voice, "NATF2.pt");
	TEST_STREQ(x.fake[0].text, "You answer the phone.");
	TEST_EQ(egress_calls(x.eg), 1);
	PUMP_UNTIL(&x, find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free == 0);
	TEST_EQ(servers_in(&x, "busy"), 1);
	TEST_EQ(server_state(&x, 0), 3);

	/* Prompting: no session yet; uplink is dropped, never sent. */
	send_uplink(&x, "ST1", 1, 0, true);
	pump_ms(&x, 100);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_SESSION_READY, NULL), 0);
	TEST_EQ(x.fake[0].nrx, 0);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_uplink_pages_dropped_total{"
	            "why=\"not_ready\"}"),
	    1);

	/* The handshake: session 1 is ready on both links. */
	fake_queue(&x.fake[0], &hs, 1, 0);
	fake_queue(&x.fake[0], page, sizeof(page), 0);
	PUMP_UNTIL(&x,
	    count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST1")
	        && count(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, "ST1"));
	/* First of all, the call's mode, on both links. */
	g = find(&x.tr, EXO__FRAME__BODY_CALL_MODE, 0);
	TEST_ASSERT(g);
	TEST_STREQ(g->text, "agent/default");
	TEST_EQ(g->seq, 1);
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_CALL_MODE, 0)->text, "agent/default");
	g = find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 0);
	TEST_ASSERT(g);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->text, x.server[0]);
	TEST_EQ(g->seq, 2);
	g = find(&x.in, EXO__FRAME__BODY_SESSION_READY, 0);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->call_id, "ST1");
	/* Downlink: the bytes after 0x01, as sent, for session 1. */
	g = find(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, 0);
	TEST_EQ(g->session, 1);
	TEST_EQ(g->len, 47);
	TEST_ASSERT(memcmp(g->data, page + 1, 47) == 0);
	TEST_EQ(g->seq, 3);
	TEST_ASSERT(g->ts_us > 0);

	/* Uplink of session 1 goes out as 0x01 + page (echoed back);
	 * session 2's does not exist and is dropped. */
	send_uplink(&x, "ST1", 1, 1, true);
	send_uplink(&x, "ST1", 2, 2, false);
	send_uplink(&x, "ST1", 1, 3, false);
	PUMP_UNTIL(&x,
	    x.fake[0].nrx == 2
	        && count(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, "ST1") == 3);
	TEST_EQ(x.fake[0].rx_before_hs, 0);
	TEST_EQ(x.fake[0].rx_len[0], 41);
	TEST_EQ(x.fake[0].rx[0][0], 0x01);
	TEST_ASSERT(memcmp(x.fake[0].rx[0] + 1, "OggS", 4) == 0);
	TEST_EQ(x.fake[0].rx[0][6], 1);
	TEST_EQ(x.fake[0].rx[1][6], 3);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_uplink_pages_dropped_total{"
	            "why=\"stale_session\"}"),
	    1);

	/* Text pieces become one utterance after a gap: an agent_text
	 * frame to ingress. */
	fake_queue(&x.fake[0], "\x02 Hello", 7, 0);
	fake_queue(&x.fake[0], "\x02 there.", 8, 0);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_AGENT_TEXT, "ST1") == 1);
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_AGENT_TEXT, 0)->text, "Hello there.");
	TEST_EQ(metric_val(x.m, "exoplex_egress_utterances_total"), 1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_text_pieces_total"), 2);

	/* call_start again only refreshes. */
	send_call_start(&x, "ST1", true);
	pump_ms(&x, 100);
	TEST_EQ(x.fake[0].connections, 1);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_SESSION_READY, NULL), 1);

	/* call_stop: a WebSocket close with 1000; the call is gone; the
	 * server is free again once our socket is. */
	send_call_stop(&x, "ST1");
	PUMP_UNTIL(&x, x.fake[0].closed);
	TEST_EQ(x.fake[0].close_code, 1000);
	TEST_EQ(egress_calls(x.eg), 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL), 0);
	PUMP_UNTIL(&x, find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free == 1);
	TEST_EQ(servers_in(&x, "free"), 1);
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
	struct fix      x;
	struct fix_opts fo = { .servers = 2 };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = x.fake[1].auto_hs = true;
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
	TEST_EQ(x.fake[0].connections, 0);
	/* Ingress answers with the call_start: the call comes up. Its
	 * session is numbered past the transcoder's (2, as after an egress
	 * restart), so the transcoder starts a fresh Ogg stream. */
	send_call_start(&x, "ST9", false);
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "ST9"));
	TEST_EQ(find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 0)->session, 3);
	/* A reannounced call's first session is numbered past this
	 * process's start time in seconds: an earlier egress's number for
	 * it (1, 2, ...) cannot come back. */
	send_call_start(&x, "ST10", true);
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "ST10"));
	TEST_ASSERT(find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 1)->session
	    > 1600000000u);
	fix_fini(&x);
	return 0;
}

/* Two servers, three calls: two get a server each, the third is turned
 * away at once (no_capacity); no server ever has two of our sockets. */
static int
test_pool_admission(void)
{
	struct fix        x;
	struct fix_opts   fo = { .servers = 2 };
	const struct got *g;

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = x.fake[1].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_CAPACITY, ""));
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free, 2);
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->total, 2);
	send_call_start(&x, "A", false);
	send_call_start(&x, "B", false);
	send_call_start(&x, "C", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "C") == 1);
	g = find(&x.in, EXO__FRAME__BODY_HANGUP, 0);
	TEST_STREQ(g->text, "no_capacity");
	TEST_STREQ(g->call_id, "C");
	PUMP_UNTIL(&x,
	    count(&x.in, EXO__FRAME__BODY_SESSION_READY, "A")
	        && count(&x.in, EXO__FRAME__BODY_SESSION_READY, "B"));
	TEST_EQ(x.fake[0].connections, 1);
	TEST_EQ(x.fake[1].connections, 1);
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free, 0);
	TEST_EQ(servers_in(&x, "busy"), 2);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_calls_refused_total{reason="
	            "\"no_capacity\"}"),
	    1);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_READY, "C"), 0);
	/* A ends: its server is free only once our socket is gone; then D
	 * gets it. */
	send_call_stop(&x, "C");
	send_call_stop(&x, "A");
	PUMP_UNTIL(&x, find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free == 1);
	TEST_EQ(x.fake[0].open + x.fake[1].open, 1);
	send_call_start(&x, "D", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "D"));
	TEST_EQ(x.fake[0].max_open, 1);
	TEST_EQ(x.fake[1].max_open, 1);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 1);
	fix_fini(&x);
	return 0;
}

/* A call ingress refused is recorded, but nothing is opened for it. */
static int
test_refused_call(void)
{
	struct fix   x;
	struct start st = { .refused = "auth_failed" };

	TEST_EQ(fix_init(&x, true), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start_ex(&x, "R1", &st);
	PUMP_UNTIL(&x, egress_calls(x.eg) == 1);
	pump_ms(&x, 100);
	TEST_EQ(x.fake[0].connections, 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	TEST_EQ(
	    metric_val(x.m, "exoplex_egress_calls_refused_by_ingress_total"),
	    1);
	send_call_stop(&x, "R1");
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0);
	fix_fini(&x);
	return 0;
}

/* A server that never sends 0x00: after the handshake timeout it is
 * closed and rests; the call moves on to the next free server. */
static int
test_handshake_timeout_moves_on(void)
{
	struct fix      x;
	struct fix_opts fo = { .servers = 2, .handshake_ms = 300 };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[1].auto_hs = true; /* server 0 stays silent */
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST5", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST5"));
	TEST_EQ(x.fake[0].connections, 1);
	TEST_EQ(x.fake[1].connections, 1);
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_SESSION_READY, 0)->text, x.server[1]);
	/* The silent one got a close frame, and sits out its backoff. */
	PUMP_UNTIL(&x, x.fake[0].closed);
	TEST_EQ(x.fake[0].close_code, 1000);
	TEST_EQ(x.fake[0].rx_before_hs, 0);
	TEST_EQ(server_state(&x, 0), 5);
	TEST_EQ(servers_in(&x, "failed"), 1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_handshake_timeouts_total"), 1);
	/* The first session's end is reported; no hangup. */
	TEST_STREQ(text_of(find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0)),
	    "handshake_timeout");
	TEST_EQ(find(&x.in, EXO__FRAME__BODY_SESSION_READY, 0)->session, 2);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	/* A second call finds no server: 0 rests, 1 is busy. */
	send_call_start(&x, "ST6", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST6"));
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_HANGUP, 0)->text, "no_capacity");
	fix_fini(&x);
	return 0;
}

/* The server drops the session mid-call: a new session (same server,
 * new number) replaces it, and ingress clears stale audio. */
static int
test_reconnect_after_drop(void)
{
	struct fix        x;
	const struct got *g;

	TEST_EQ(fix_init(&x, true), 0);
	x.fake[0].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST3", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST3"));
	lws_set_timeout(
	    x.fake[0].wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	/* Both links: each bus sends on its own schedule (the hold). */
	PUMP_UNTIL(&x,
	    count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "ST3") == 2
	        && count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST3") == 2);
	g = find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0);
	TEST_ASSERT(g);
	TEST_EQ(g->session, 1);
	TEST_STREQ(g->text, "closed");
	g = find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 1);
	TEST_EQ(g->session, 2);
	TEST_STREQ(g->text, x.server[0]);
	TEST_EQ(x.fake[0].connections, 2);
	TEST_EQ(x.fake[0].max_open, 1);
	/* Ingress drops what the caller has not heard of session 1, before
	 * session 2's ready. */
	g = find(&x.in, EXO__FRAME__BODY_CLEAR, 0);
	TEST_ASSERT(g);
	TEST_STREQ(g->text, "persona_reconnected");
	TEST_ASSERT(g < find(&x.in, EXO__FRAME__BODY_SESSION_READY, 1));
	TEST_EQ(metric_val(x.m, "exoplex_egress_reconnects_total"), 1);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_session_failures_total{reason="
	            "\"closed\"}"),
	    1);
	/* A dropped session is not the server's fault: no backoff. */
	TEST_EQ(server_failures(&x, 0), 0);
	TEST_EQ(servers_in(&x, "failed"), 0);
	/* Session 1's late pages are stale; session 2's go out. */
	send_uplink(&x, "ST3", 1, 1, true);
	send_uplink(&x, "ST3", 2, 2, true);
	PUMP_UNTIL(&x, x.fake[0].nrx == 1);
	TEST_EQ(x.fake[0].rx[0][6], 2);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	fix_fini(&x);
	return 0;
}

/* No session can be had again: after the budget, persona_failed. */
static int
test_reconnect_gives_up(void)
{
	struct fix        x;
	struct fix_opts   fo = { .servers = 1, .reconnect_ms = 400 };
	const struct got *g;

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST2", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST2"));
	/* From now on the server refuses every session. */
	x.fake[0].close_at_once = true;
	lws_set_timeout(
	    x.fake[0].wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST2") == 1);
	g = find(&x.in, EXO__FRAME__BODY_HANGUP, 0);
	TEST_STREQ(g->text, "persona_failed");
	/* The refusal after the drop is the server's fault: it rests. */
	TEST_ASSERT(x.fake[0].connections >= 2);
	TEST_STREQ(text_of(find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 1)),
	    "closed_before_handshake");
	TEST_EQ(metric_val(x.m, "exoplex_egress_reconnect_gave_up_total"), 1);
	TEST_ASSERT(find_last(&x.in, EXO__FRAME__BODY_SESSION_ENDED)
	    < find(&x.in, EXO__FRAME__BODY_HANGUP, 0));
	/* The call waits for ingress's call_stop. */
	TEST_EQ(egress_calls(x.eg), 1);
	send_call_stop(&x, "ST2");
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 1);
	fix_fini(&x);
	return 0;
}

/* A server that stops answering while we send audio is replaced. */
static int
test_silent_server_replaced(void)
{
	struct fix      x;
	struct fix_opts fo = { .servers = 2, .liveness_ms = 300 };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = x.fake[1].auto_hs = true;
	x.fake[0].mute                        = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST7", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST7"));
	/* Not while we send nothing: output is clocked by input. */
	pump_ms(&x, 500);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL), 0);
	/* We send, it stays silent: replaced on the other server. */
	for (int i = 0;
	     i < 200 && !count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL);
	     i++) {
		send_uplink(&x, "ST7", 1, (uint8_t)i, i < 2);
		pump_ms(&x, 20);
	}
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_SESSION_ENDED, 0)->text, "silent");
	PUMP_UNTIL(
	    &x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "ST7") == 2);
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_SESSION_READY, 1)->text, x.server[1]);
	TEST_EQ(metric_val(x.m, "exoplex_egress_silent_sessions_total"), 1);
	TEST_EQ(server_state(&x, 0), 5);
	fix_fini(&x);
	return 0;
}

/* One warm session: a default-persona call takes it with its handshake
 * done (and the header pages it got); it is replaced after the call. */
static int
test_warm_session(void)
{
	struct fix        x;
	struct fix_opts   fo = { .servers = 1, .warm = 1 };
	const struct got *g;
	uint8_t           head[30] = { 0x01, 'O', 'g', 'g', 'S', 0, 2 };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	PUMP_UNTIL(&x, x.fake[0].connections == 1);
	TEST_EQ(servers_in(&x, "warming"), 1);
	fake_queue(&x.fake[0], "", 1, 0);
	fake_queue(&x.fake[0], head, sizeof(head), 0);
	x.fake[0].auto_hs = true;
	PUMP_UNTIL(&x, servers_in(&x, "warm") == 1);
	TEST_EQ(x.fake[0].connections, 1);
	TEST_STREQ(x.fake[0].text, "You answer the phone.");
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	/* Warm servers count as free. */
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_CAPACITY, ""));
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free, 1);
	send_call_start(&x, "W1", false);
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_SESSION_READY, "W1"));
	TEST_EQ(x.fake[0].connections, 1);
	g = find(&x.tr, EXO__FRAME__BODY_SESSION_READY, 0);
	TEST_EQ(g->session, 1);
	/* What the warm session received comes right after, as session 1. */
	PUMP_UNTIL(&x, count(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, "W1"));
	g = find(&x.tr, EXO__FRAME__BODY_DOWNLINK_OGG, 0);
	TEST_EQ(g->session, 1);
	TEST_EQ(g->len, sizeof(head) - 1);
	TEST_EQ(
	    metric_val(x.m, "exoplex_egress_warm_sessions_taken_total"), 1);
	/* Audio flows on it: our first page is its first message. */
	send_uplink(&x, "W1", 1, 9, true);
	PUMP_UNTIL(&x, x.fake[0].nrx == 1);
	TEST_EQ(x.fake[0].rx[0][6], 9);
	TEST_EQ(x.fake[0].rx_before_hs, 0);
	TEST_EQ(servers_in(&x, "busy"), 1);
	/* After the call the server is warmed again. */
	send_call_stop(&x, "W1");
	PUMP_UNTIL(
	    &x, x.fake[0].connections == 2 && servers_in(&x, "warm") == 1);
	TEST_EQ(x.fake[0].max_open, 1);
	fix_fini(&x);
	return 0;
}

static const char personas_ini[]
    = "[sales]\n"
      "voice = NATM1.pt\n"
      "text = You sell for Acme. The caller is {from}, order {order}.\n"
      "numbers = +91 80 4000 1234\n"
      "[support]\n"
      "voice = VARF2.pt\n"
      "text = You fix things for {from}.\n";

/* Personas reach the server's query: by custom parameter, then by the
 * dialled number; a warm session (default persona) is closed for a call
 * that needs another persona, and only then is the call's opened. */
static int
test_personas(void)
{
	struct fix      x;
	struct fix_opts fo
	    = { .servers = 1, .warm = 1, .personas = personas_ini };
	struct start st = { .persona = "support" };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = true;
	PUMP_UNTIL(&x, servers_in(&x, "warm") == 1);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start_ex(&x, "P1", &st);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "P1"));
	TEST_EQ(x.fake[0].connections, 2);
	TEST_EQ(x.fake[0].max_open, 1);
	TEST_STREQ(x.fake[0].voice, "VARF2.pt");
	TEST_STREQ(x.fake[0].text, "You fix things for 09999999999.");
	TEST_EQ(find(&x.in, EXO__FRAME__BODY_SESSION_READY, 0)->session, 1);
	send_call_stop(&x, "P1");
	PUMP_UNTIL(&x, servers_in(&x, "warm") == 1);

	/* By number (another format), with a custom value in the text. */
	memset(&st, 0, sizeof(st));
	st.to    = "08040001234";
	st.key   = "order";
	st.value = "A-7";
	send_call_start_ex(&x, "P2", &st);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "P2"));
	TEST_STREQ(x.fake[0].voice, "NATM1.pt");
	TEST_STREQ(x.fake[0].text,
	    "You sell for Acme. The caller is 09999999999, order A-7.");
	TEST_EQ(x.fake[0].max_open, 1);
	TEST_EQ(metric_val(
	            x.m, "exoplex_egress_persona_chosen_total{by=\"number\"}"),
	    1);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_persona_chosen_total{by="
	            "\"custom_parameter\"}"),
	    1);
	fix_fini(&x);
	return 0;
}

/* Calls that end while their session is still connecting: each server
 * comes back once lws is done with the socket, however it ends it. */
static int
test_stop_while_connecting(void)
{
	struct fix      x;
	struct fix_opts fo = { .servers = 2 };
	char            id[8];

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = x.fake[1].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "C%d", i);
		send_call_start(&x, id, false);
		/* The stop comes in the same message, or soon after. */
		if (i % 2)
			pump_ms(&x, 1);
		send_call_stop(&x, id);
		/* Its server is free again before the next call. */
		PUMP_UNTIL(&x,
		    metric_val(x.m,
		        "exoplex_egress_calls_by_mode_total{mode=\"agent\"}")
		            == i + 1
		        && egress_calls(x.eg) == 0
		        && egress_servers_free(x.eg) == 2);
	}
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0 && servers_in(&x, "free") == 2);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_HANGUP, NULL), 0);
	TEST_ASSERT(x.fake[0].max_open <= 1);
	TEST_ASSERT(x.fake[1].max_open <= 1);
	fix_fini(&x);
	return 0;
}

/* A server that takes the TCP connection but never answers the upgrade
 * (a hung process): the call ends while egress waits for the answer, and
 * the server must come back when the socket is dropped, though lws only
 * reports it as an HTTP client closing. */
static int
test_stop_while_upgrade_pending(void)
{
	struct fix         x;
	struct fix_opts    fo = { 0 };
	struct sockaddr_in a  = { .sin_family = AF_INET };
	socklen_t          al = sizeof(a);
	int                ls, cs = -1;
	char               buf[4096];
	bool               got = false;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls                = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	TEST_ASSERT(ls >= 0);
	TEST_EQ(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	TEST_EQ(listen(ls, 4), 0);
	TEST_EQ(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	fo.raw_port = ntohs(a.sin_port);
	TEST_EQ(fix_init_opts(&x, &fo), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "H1", false);
	for (uint64_t end = mono_us() + 5000000; mono_us() < end && !got;) {
		pump(&x);
		if (cs < 0)
			cs = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
		if (cs >= 0 && read(cs, buf, sizeof(buf)) > 0)
			got = true;
	}
	TEST_ASSERT(got);
	TEST_EQ(servers_in(&x, "busy"), 1);
	send_call_stop(&x, "H1");
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0 && servers_in(&x, "free") == 1);
	close(cs);
	close(ls);
	fix_fini(&x);
	return 0;
}

/* egress stops while a call is up and its peers keep sending: the
 * frames that come while it waits for the close frames are dropped. */
static int
test_stop_with_traffic(void)
{
	struct fix x;

	TEST_EQ(fix_init(&x, true), 0);
	x.fake[0].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "S1", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_SESSION_READY, "S1"));
	for (int i = 0; i < 20; i++)
		send_uplink(&x, "S1", 1, (uint8_t)i, i < 2);
	send_call_start(&x, "S2", false);
	send_call_stop(&x, "S1");
	bus_flush(x.tr.bus);
	bus_flush(x.in.bus);
	usleep(20000);
	egress_free(x.eg);
	x.eg = NULL;
	fix_fini(&x);
	return 0;
}

/* No server at all: calls default to transcribe, which needs STT (off
 * here): refused with bridge_error. Asked for an agent (or with
 * EXOPLEX_DEFAULT_MODE=agent): no_capacity, as before. */
static int
test_no_server_configured(void)
{
	struct fix        x;
	struct fix_opts   fo = { .servers = 0, .default_mode = "agent" };
	const struct got *g;
	char              detail[256];

	TEST_EQ(fix_init(&x, false), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	TEST_EQ(egress_ready(x.eg, detail, sizeof(detail)), 1);
	TEST_ASSERT(strstr(detail, "servers=0") != NULL);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_CAPACITY, ""));
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->total, 0);
	send_call_start(&x, "ST4", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST4") == 1);
	TEST_STREQ(find(&x.in, EXO__FRAME__BODY_CALL_MODE, 0)->text,
	    "transcribe/no_servers");
	TEST_STREQ(find(&x.tr, EXO__FRAME__BODY_CALL_MODE, 0)->text,
	    "transcribe/no_servers");
	g = find(&x.in, EXO__FRAME__BODY_HANGUP, 0);
	TEST_STREQ(g->text, "bridge_error");
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_calls_refused_total{"
	            "reason=\"no_stt\"}"),
	    1);
	/* The custom parameter asks for an agent: none to be had. */
	struct start st = { .mode = "agent" };
	send_call_start_ex(&x, "ST5", &st);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST5") == 1);
	g = find_last(&x.in, EXO__FRAME__BODY_HANGUP);
	TEST_STREQ(g->text, "no_capacity");
	TEST_STREQ(find_last(&x.in, EXO__FRAME__BODY_CALL_MODE)->text,
	    "agent/custom_parameter");
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_SESSION_ENDED, NULL), 0);
	fix_fini(&x);

	/* EXOPLEX_DEFAULT_MODE=agent: the setting is obeyed. */
	TEST_EQ(fix_init_opts(&x, &fo), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "ST6", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "ST6") == 1);
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_HANGUP, 0)->text, "no_capacity");
	TEST_STREQ(
	    find(&x.in, EXO__FRAME__BODY_CALL_MODE, 0)->text, "agent/default");
	fix_fini(&x);
	return 0;
}

/* A transcribe call never touches the pool: with the only server free it
 * stays free and unconnected, whether the custom parameter, the persona
 * or EXOPLEX_DEFAULT_MODE said so. (STT is off here, so each is then
 * refused: the STT side is in the e2e tests.) */
static int
test_transcribe_leases_nothing(void)
{
	struct fix      x;
	struct fix_opts fo = { .servers = 1,
		.personas
		= "[assist]\nmode = transcribe\nnumbers = 08077700000\n" };
	struct start    st = { .mode = "transcribe" };

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_CAPACITY, ""));
	send_call_start_ex(&x, "T1", &st);
	st = (struct start) { .to = "+91 80 7770 0000" };
	send_call_start_ex(&x, "T2", &st);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, NULL) == 2);
	TEST_STREQ(find(&x.in, EXO__FRAME__BODY_CALL_MODE, 0)->text,
	    "transcribe/custom_parameter");
	TEST_STREQ(find(&x.in, EXO__FRAME__BODY_CALL_MODE, 1)->text,
	    "transcribe/persona");
	pump_ms(&x, 100);
	TEST_EQ(x.fake[0].connections, 0);
	TEST_EQ(servers_in(&x, "free"), 1);
	TEST_EQ(find_last(&x.in, EXO__FRAME__BODY_CAPACITY)->free, 1);
	TEST_EQ(count(&x.tr, EXO__FRAME__BODY_SESSION_READY, NULL), 0);
	/* The same persona, asked for an agent, gets the server. */
	st = (struct start) { .to = "08077700000", .mode = "AGENT" };
	send_call_start_ex(&x, "T3", &st);
	PUMP_UNTIL(&x, x.fake[0].connections == 1);
	TEST_STREQ(find_last(&x.in, EXO__FRAME__BODY_CALL_MODE)->text,
	    "agent/custom_parameter");
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_calls_by_mode_total{"
	            "mode=\"transcribe\"}"),
	    2);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_calls_by_mode_total{"
	            "mode=\"agent\"}"),
	    1);
	fix_fini(&x);

	/* EXOPLEX_DEFAULT_MODE=transcribe with a server free. */
	fo = (struct fix_opts) { .servers = 1, .default_mode = "transcribe" };
	TEST_EQ(fix_init_opts(&x, &fo), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "T4", false);
	PUMP_UNTIL(&x, count(&x.in, EXO__FRAME__BODY_HANGUP, "T4") == 1);
	TEST_STREQ(find(&x.in, EXO__FRAME__BODY_CALL_MODE, 0)->text,
	    "transcribe/default");
	TEST_EQ(x.fake[0].connections, 0);
	fix_fini(&x);
	return 0;
}

static int
test_check_opts(void)
{
	struct egress_opts o = { 0 };
	char               err[512], path[] = "/tmp/egress_test_p.XXXXXX";
	FILE              *f;
	int                fd;

	persona_lib_init();
	TEST_EQ(
	    egress_check_urls("ws://a:1,wss://[::1]:2/x", err, sizeof(err)),
	    0);
	TEST_EQ(egress_check_urls("", err, sizeof(err)), 0);
	TEST_EQ(egress_check_urls("ws://a:1,,ws://b", err, sizeof(err)), 0);
	TEST_EQ(egress_check_urls("ws://a:1 , ws://b", err, sizeof(err)), 0);
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
	o.ca_file = NULL;
	/* A persona too long for lws's request line is refused by name. */
	TEST_ASSERT((fd = mkstemp(path)) >= 0);
	f = fdopen(fd, "w");
	fputs("[chatty]\ntext = ", f);
	for (int i = 0; i < 2100; i++)
		fputc('w', f);
	fputs("\n", f);
	fclose(f);
	o.personas = path;
	TEST_EQ(egress_check_opts(&o, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "persona chatty (") != NULL);
	TEST_ASSERT(strstr(err, "libwebsockets") != NULL);
	unlink(path);
	o.personas = "/nonexistent/personas.ini";
	TEST_EQ(egress_check_opts(&o, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_PERSONAS") != NULL);
	return 0;
}

/* Ingress dies and a new one comes up: the calls it does not announce
 * again within the grace end (session closed, server released); the one
 * it announces goes on. */
static int
test_ingress_gone(void)
{
	struct fix      x;
	struct fix_opts fo = { .servers = 2, .ingress_grace_ms = 300 };
	struct bus_opts bo = { 0 };
	char            u[128];

	TEST_EQ(fix_init_opts(&x, &fo), 0);
	x.fake[0].auto_hs = x.fake[1].auto_hs = true;
	PUMP_UNTIL(&x, bus_peers(x.to_t) && bus_peers(x.to_i));
	send_call_start(&x, "A", false);
	send_call_start(&x, "B", false);
	PUMP_UNTIL(&x,
	    count(&x.in, EXO__FRAME__BODY_SESSION_READY, "A")
	        && count(&x.in, EXO__FRAME__BODY_SESSION_READY, "B"));
	TEST_EQ(servers_in(&x, "busy"), 2);

	/* The old ingress is gone; a new one knows only A. */
	bus_close(x.in.bus);
	x.in.bus = NULL;
	PUMP_UNTIL(&x, !bus_peers(x.to_i));
	pump_ms(&x, 150); /* the tick sees it leave */
	bo = (struct bus_opts) { .link = "control",
		.url                   = u,
		.self                  = "ingress",
		.metrics               = x.pm,
		.log                   = &x.lg };
	snprintf(u, sizeof(u), "ipc://%s/control.sock", x.dir);
	TEST_EQ(bus_open(&x.in.bus, &bo), 0);
	PUMP_UNTIL(&x, bus_peers(x.to_i));
	send_call_start(&x, "A", true);
	PUMP_UNTIL(&x, egress_calls(x.eg) == 1);
	PUMP_UNTIL(&x, x.fake[0].open + x.fake[1].open == 1);
	PUMP_UNTIL(&x, servers_in(&x, "busy") == 1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_calls_orphaned_total"), 1);
	/* B's late frames ask nobody for an announce. */
	send_uplink(&x, "B", 1, 9, false);
	pump_ms(&x, 50);
	TEST_EQ(count(&x.in, EXO__FRAME__BODY_ANNOUNCE, "B"), 0);

	/* And with nobody coming back, A ends too. */
	bus_close(x.in.bus);
	x.in.bus = NULL;
	PUMP_UNTIL(&x, !bus_peers(x.to_i));
	TEST_EQ(bus_open(&x.in.bus, &bo), 0); /* a new ingress, no calls */
	PUMP_UNTIL(&x, egress_calls(x.eg) == 0);
	PUMP_UNTIL(&x, servers_in(&x, "busy") == 0);
	TEST_EQ(metric_val(x.m, "exoplex_egress_calls_orphaned_total"), 2);
	fix_fini(&x);
	return 0;
}

TEST_MAIN(TEST(test_ingress_gone), TEST(test_call_flow),
    TEST(test_unknown_call_announced_once), TEST(test_pool_admission),
    TEST(test_refused_call), TEST(test_handshake_timeout_moves_on),
    TEST(test_reconnect_after_drop), TEST(test_reconnect_gives_up),
    TEST(test_silent_server_replaced), TEST(test_warm_session),
    TEST(test_personas), TEST(test_stop_while_connecting),
    TEST(test_stop_while_upgrade_pending), TEST(test_stop_with_traffic),
    TEST(test_no_server_configured), TEST(test_transcribe_leases_nothing),
    TEST(test_check_opts))
