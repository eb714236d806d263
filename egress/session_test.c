/*
 * session_test.c - a session against a tiny PersonaPlex stand-in
 * (testsrv.h) served by the same lws context: one thread, loopback.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "ppurl.h"
#include "test.h"
#include "testsrv.h"

/* The session's owner. */
struct owner {
	int             handshakes;
	uint8_t         audio[MAXMSG][4096];
	size_t          audio_len[MAXMSG];
	int             naudio;
	char            text[1024];
	bool            ended;
	char            reason[64];
	char            detail[256];
	struct session *s;
};

struct fix {
	struct lws_context    *ctx;
	struct lws_vhost      *client;
	struct session_env    *env;
	struct metrics        *m;
	struct log             lg;
	lws_sorted_usec_list_t sul;
	struct fake            fake;
	int                    port;
	struct lws_protocols   client_protos[2];
	int                    gone; /* gone callbacks */
	long                   gone_tag; /* the last one's tag */
};

static void
on_gone(void *arg, long tag)
{
	struct fix *x = arg;
	x->gone++;
	x->gone_tag = tag;
}

static void
on_hs(void *owner, struct session *s)
{
	((struct owner *)owner)->handshakes++;
}

static void
on_audio(void *owner, struct session *s, const uint8_t *ogg, size_t len,
    uint64_t rx_us)
{
	struct owner *o = owner;
	if (o->naudio < MAXMSG && len <= sizeof(o->audio[0])) {
		memcpy(o->audio[o->naudio], ogg, len);
		o->audio_len[o->naudio++] = len;
	}
}

static void
on_text(void *owner, struct session *s, const char *t, size_t len)
{
	struct owner *o = owner;
	strncat(o->text, t,
	    len < sizeof(o->text) - strlen(o->text) - 1
	        ? len
	        : sizeof(o->text) - strlen(o->text) - 1);
}

static void
on_ended(
    void *owner, struct session *s, const char *reason, const char *detail)
{
	struct owner *o = owner;
	o->ended        = true;
	o->s            = NULL;
	snprintf(o->reason, sizeof(o->reason), "%s", reason);
	snprintf(o->detail, sizeof(o->detail), "%s", detail ? detail : "");
}

static const struct session_cb cb = { on_hs, on_audio, on_text, on_ended };

/* Keeps lws_service from sleeping long: it returns at least every 10 ms. */
static void
wake(lws_sorted_usec_list_t *sul)
{
	struct fix *x = lws_container_of(sul, struct fix, sul);
	lws_sul_schedule(x->ctx, 0, &x->sul, wake, 10 * 1000);
}

struct fix_opts {
	size_t      queue_max, rx_max;
	const char *cert, *key; /* the stand-in speaks TLS */
	const char *ca; /* the client trusts this CA file */
	bool        insecure;
};

static int
fix_init_opts(struct fix *x, const struct fix_opts *o)
{
	struct lws_context_creation_info ci;
	struct session_env_opts          so;

	memset(x, 0, sizeof(*x));
	lws_set_log_level(LLL_ERR, NULL);
	log_init(&x->lg, "session_test", "text",
	    getenv("TEST_DEBUG") ? "debug" : "error");
	if (metrics_alloc(&x->m, "exoplex_"))
		return 1;
	x->client_protos[0] = (struct lws_protocols) { .name = "pp",
		.callback = session_lws_callback };

	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS
	    | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.port = CONTEXT_PORT_NO_LISTEN;
	x->ctx  = lws_create_context(&ci);
	if (!x->ctx)
		return 1;
	x->port = testsrv_start(&x->fake, x->ctx, o->cert, o->key);
	if (x->port < 0)
		return 1;
	memset(&ci, 0, sizeof(ci));
	ci.port                   = CONTEXT_PORT_NO_LISTEN;
	ci.vhost_name             = "client";
	ci.protocols              = x->client_protos;
	ci.options                = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.client_ssl_ca_filepath = o->ca;
	x->client                 = lws_create_vhost(x->ctx, &ci);
	if (!x->client)
		return 1;
	memset(&so, 0, sizeof(so));
	so.context   = x->ctx;
	so.vhost     = x->client;
	so.protocol  = "pp";
	so.log       = &x->lg;
	so.metrics   = x->m;
	so.queue_max = o->queue_max;
	so.rx_max    = o->rx_max;
	so.insecure  = o->insecure;
	so.gone      = on_gone;
	so.gone_arg  = x;
	if (session_env_alloc(&x->env, &so))
		return 1;
	lws_sul_schedule(x->ctx, 0, &x->sul, wake, 10 * 1000);
	return 0;
}

static int
fix_init(struct fix *x, size_t queue_max, size_t rx_max)
{
	struct fix_opts o = { .queue_max = queue_max, .rx_max = rx_max };
	return fix_init_opts(x, &o);
}

static void
fix_fini(struct fix *x)
{
	session_env_free(x->env);
	lws_sul_cancel(&x->sul);
	lws_context_destroy(x->ctx);
	metrics_free(x->m);
}

/* Services until *flag is true or 5 s pass (a guard, not a timing). */
static bool
run_until(struct fix *x, const volatile bool *flag)
{
	uint64_t end = mono_us() + 5000000;
	while (!*flag && mono_us() < end)
		lws_service(x->ctx, 0);
	return *flag;
}

static void
run_for(struct fix *x, unsigned ms)
{
	uint64_t end = mono_us() + ms * 1000ull;
	while (mono_us() < end)
		lws_service(x->ctx, 0);
}

static int64_t
metric_val(struct fix *x, const char *series)
{
	size_t    n;
	char     *txt = metrics_render(x->m, &n), *p;
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

static int
open_session_url(
    struct fix *x, struct owner *o, const char *scheme, const char *text)
{
	char            url[64], target[PPURL_URL_MAX + 1], err[256];
	struct ppurl    u;
	struct log_call ids = { "CA-test", "ST-test" };

	snprintf(url, sizeof(url), "%s://127.0.0.1:%d", scheme, x->port);
	if (ppurl_parse(&u, url, err, sizeof(err)))
		return EINVAL;
	if (ppurl_target(&u, "NATF2.pt", text, 0, target, sizeof(target), err,
	        sizeof(err)))
		return EINVAL;
	return session_open(&o->s, x->env, &u, target, &ids, &cb, o);
}

static int
open_session(struct fix *x, struct owner *o, const char *text)
{
	return open_session_url(x, o, "ws", text);
}

static int
test_full_conversation(void)
{
	struct fix   x;
	struct owner o = { 0 };
	bool         up, ok;
	uint8_t      page[300], big[3000];

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "Be brief + kind."), 0);
	TEST_ASSERT(o.s != NULL);
	session_set_tag(o.s, 7);
	TEST_EQ(session_state(o.s), SESSION_CONNECTING);
	TEST_EQ(session_env_count(x.env), 1);

	/* Upgraded: the server now "runs its prompts" for a while. */
	up = false;
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(up = x.fake.connections == 1);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(up);
	TEST_STREQ(x.fake.uri, "/api/chat");
	TEST_STREQ(x.fake.voice, "NATF2.pt");
	TEST_STREQ(x.fake.text, "Be brief + kind.");
	run_for(&x, 50);
	TEST_EQ(session_state(o.s), SESSION_PROMPTING);
	/* Nothing may be sent before the handshake. */
	memset(page, 0xab, sizeof(page));
	memcpy(page, "OggS", 4);
	TEST_EQ(session_send_ogg(o.s, page, sizeof(page), true), EAGAIN);
	run_for(&x, 100);
	TEST_EQ(x.fake.nrx, 0);

	/* The handshake (9 bytes, like the Rust backend), then a header
	 * page, a fragmented page, a page bigger than lws's rx buffer,
	 * text pieces, and things to ignore. */
	uint8_t hs[9] = { 0 };
	fake_queue(&x.fake, hs, sizeof(hs), 0);
	uint8_t a1[48] = { 0x01, 'O', 'g', 'g', 'S', 1 };
	fake_queue(&x.fake, a1, sizeof(a1), 0);
	uint8_t a2[200] = { 0x01, 'O', 'g', 'g', 'S', 2 };
	fake_queue(&x.fake, a2, sizeof(a2), 77);
	memset(big, 0x5a, sizeof(big));
	big[0] = 0x01;
	fake_queue(&x.fake, big, sizeof(big), 0);
	fake_queue(&x.fake, "\x02 Hello", 7, 0);
	fake_queue(&x.fake, "\x02 w\xc3\xb6rld", 8, 3);
	fake_queue(&x.fake, "\x03\x01", 2, 0); /* unknown kind */
	fake_queue(&x.fake, "", 0, 0); /* empty */
	fake_queue(&x.fake, "Thello", 6, 0); /* text frame */
	fake_queue(&x.fake, "\x02\xff", 2, 0); /* bad UTF-8 */
	uint8_t a3[10] = { 0x01, 'O', 'g', 'g', 'S', 3 };
	fake_queue(&x.fake, a3, sizeof(a3), 0);
	ok = false;
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(ok = o.naudio == 4);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(ok);
	TEST_EQ(o.handshakes, 1);
	TEST_EQ(session_state(o.s), SESSION_READY);
	TEST_ASSERT(session_ready_us(o.s) >= session_opened_us(o.s));
	TEST_EQ(o.audio_len[0], 47);
	TEST_ASSERT(memcmp(o.audio[0], a1 + 1, 47) == 0);
	TEST_EQ(o.audio_len[1], 199); /* reassembled from two fragments */
	TEST_ASSERT(memcmp(o.audio[1], a2 + 1, 199) == 0);
	TEST_EQ(o.audio_len[2], 2999);
	TEST_ASSERT(memcmp(o.audio[2], big + 1, 2999) == 0);
	TEST_EQ(o.audio_len[3], 9);
	TEST_STREQ(o.text, " Hello w\xc3\xb6rld");
	TEST_EQ(metric_val(&x, "exoplex_egress_handshakes_total"), 1);
	TEST_EQ(metric_val(&x, "exoplex_egress_downlink_pages_total"), 4);
	TEST_EQ(metric_val(&x, "exoplex_egress_text_pieces_total"), 2);
	TEST_EQ(metric_val(
	            &x, "exoplex_egress_bad_frames_total{kind=\"unknown\"}"),
	    1);
	TEST_EQ(
	    metric_val(&x, "exoplex_egress_bad_frames_total{kind=\"empty\"}"),
	    1);
	TEST_EQ(metric_val(
	            &x, "exoplex_egress_bad_frames_total{kind=\"ws_text\"}"),
	    1);
	TEST_EQ(
	    metric_val(&x, "exoplex_egress_bad_frames_total{kind=\"bad\"}"),
	    1);

	/* Uplink: each page one 0x01 message, in order; echoed back. */
	TEST_EQ(x.fake.rx_before_hs, 0);
	for (int i = 0; i < 3; i++) {
		page[4] = (uint8_t)i;
		TEST_EQ(session_send_ogg(o.s, page, 100 + i, i < 2), 0);
	}
	ok = false;
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(ok = x.fake.nrx == 3 && o.naudio == 7);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(ok);
	for (int i = 0; i < 3; i++) {
		TEST_EQ(x.fake.rx_len[i], 101 + i);
		TEST_EQ(x.fake.rx[i][0], 0x01);
		TEST_ASSERT(memcmp(x.fake.rx[i] + 1, "OggS", 4) == 0);
		TEST_EQ(x.fake.rx[i][5], i);
		TEST_EQ(o.audio_len[4 + i], 100 + i);
	}
	TEST_EQ(metric_val(&x, "exoplex_egress_uplink_pages_total"), 3);

	/* The owner leaves: a close frame with 1000, no callback. The
	 * session is gone (and says so) once the socket is. */
	session_close(o.s, "test over");
	o.s = NULL;
	TEST_EQ(metric_val(&x, "exoplex_egress_sessions_active"), 0);
	TEST_EQ(x.gone, 0);
	TEST_ASSERT(run_until(&x, &x.fake.closed));
	TEST_EQ(x.fake.close_code, 1000);
	for (uint64_t end = mono_us() + 5000000; mono_us() < end && !x.gone;)
		lws_service(x.ctx, 0);
	TEST_EQ(x.gone, 1);
	TEST_EQ(x.gone_tag, 7);
	TEST_EQ(session_env_count(x.env), 0);
	TEST_ASSERT(!o.ended);
	fix_fini(&x);
	return 0;
}

static int
test_closed_before_handshake(void)
{
	struct fix   x;
	struct owner o = { 0 };

	TEST_EQ(fix_init(&x, 0, 0), 0);
	x.fake.close_at_once = true;
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	session_set_tag(o.s, 3);
	TEST_ASSERT(run_until(&x, &o.ended));
	TEST_STREQ(o.reason, SESSION_CLOSED_PROMPTING);
	TEST_EQ(o.handshakes, 0);
	/* The socket was already gone when the owner heard. */
	TEST_EQ(x.gone, 1);
	TEST_EQ(x.gone_tag, 3);
	TEST_EQ(session_env_count(x.env), 0);
	TEST_EQ(metric_val(&x,
	            "exoplex_egress_session_failures_total{reason="
	            "\"closed_before_handshake\"}"),
	    1);
	fix_fini(&x);
	return 0;
}

static int
test_server_closes_after_handshake(void)
{
	struct fix   x;
	struct owner o  = { 0 };
	uint8_t      hs = 0;

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	fake_queue(&x.fake, &hs, 1, 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && o.handshakes == 0;)
		lws_service(x.ctx, 0);
	TEST_EQ(o.handshakes, 1);
	/* The server goes away (as on a decode error: a plain close). */
	lws_close_reason(
	    x.fake.wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"bye", 3);
	lws_set_timeout(
	    x.fake.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	TEST_ASSERT(run_until(&x, &o.ended));
	TEST_STREQ(o.reason, SESSION_CLOSED);
	TEST_EQ(session_env_count(x.env), 0);
	fix_fini(&x);
	return 0;
}

static int
test_connect_refused(void)
{
	struct fix      x;
	struct owner    o = { 0 };
	int             rc, port;
	char            err[256], url[64];
	struct ppurl    u;
	struct log_call ids = { "CA", "ST" };

	TEST_EQ(fix_init(&x, 0, 0), 0);
	/* A port nobody listens on: the server's, after closing it. */
	port = x.port;
	fix_fini(&x);
	TEST_EQ(fix_init(&x, 0, 0), 0);
	if (port == x.port)
		port = x.port + 1; /* unlikely; any free port will do */
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
	TEST_EQ(ppurl_parse(&u, url, err, sizeof(err)), 0);
	rc = session_open(&o.s, x.env, &u,
	    "/api/chat?voice_prompt=a&text_"
	    "prompt=b",
	    &ids, &cb, &o);
	if (rc == 0)
		TEST_ASSERT(run_until(&x, &o.ended));
	/* Either way: no session is left and the failure is counted. */
	if (rc == 0)
		TEST_STREQ(o.reason, SESSION_CONNECT_FAILED);
	TEST_EQ(session_env_count(x.env), 0);
	TEST_EQ(metric_val(&x,
	            "exoplex_egress_session_failures_total{reason="
	            "\"connect_failed\"}"),
	    1);
	fix_fini(&x);
	return 0;
}

/* Sends one audio page bigger than lws writes at once (its protocol's
 * buffer): lws keeps the rest, so the socket stays choked until lws's
 * loop runs. Returns 0 when nothing was queued behind it. */
static int
choke(struct session *s)
{
	static uint8_t big[100000] = { 'O', 'g', 'g', 'S' };

	if (session_send_ogg(s, big, sizeof(big), false) != 0)
		return -1;
	return session_queued(s) == 0 ? 0 : -1;
}

static int
test_queue_bound_keeps_headers(void)
{
	struct fix   x;
	struct owner o  = { 0 };
	uint8_t      hs = 0, page[64] = { 0 };
	int          dropped = 0;
	bool         ok      = false;

	TEST_EQ(fix_init(&x, 4, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	fake_queue(&x.fake, &hs, 1, 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && o.handshakes == 0;)
		lws_service(x.ctx, 0);
	TEST_EQ(o.handshakes, 1);
	/* A lone page goes out at once. */
	memcpy(page, "OggS", 4);
	page[4] = 100;
	TEST_EQ(session_send_ogg(o.s, page, sizeof(page), false), 0);
	TEST_EQ(session_queued(o.s), 0);
	/* One bigger than lws writes in one go: lws keeps the rest until
	 * its loop runs, so the socket is choked and what follows queues. */
	TEST_EQ(choke(o.s), 0);
	/* 2 headers + 8 audio pages while lws gets no chance to write:
	 * the queue holds 4, so audio 0..5 go and the headers stay. */
	for (int i = 0; i < 10; i++) {
		page[4] = (uint8_t)i;
		int rc  = session_send_ogg(o.s, page, sizeof(page), i < 2);
		TEST_ASSERT(rc == 0 || rc == ENOBUFS);
		dropped += rc == ENOBUFS;
	}
	TEST_EQ(dropped, 6);
	TEST_EQ(session_queued(o.s), 4);
	/* The choking page's pieces are too big for the fake to keep. */
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(ok = x.fake.nrx == 5);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(ok);
	TEST_EQ(x.fake.rx[0][5], 100);
	TEST_EQ(x.fake.rx[1][5], 0);
	TEST_EQ(x.fake.rx[2][5], 1);
	TEST_EQ(x.fake.rx[3][5], 8);
	TEST_EQ(x.fake.rx[4][5], 9);
	TEST_EQ(metric_val(&x,
	            "exoplex_egress_uplink_pages_dropped_total{why="
	            "\"queue_full\"}"),
	    6);
	/* A header page is never dropped, even into a full queue. */
	TEST_EQ(choke(o.s), 0);
	for (int i = 0; i < 4; i++)
		TEST_EQ(session_send_ogg(o.s, page, sizeof(page), true), 0);
	TEST_EQ(session_send_ogg(o.s, page, sizeof(page), true), 0);
	TEST_EQ(session_queued(o.s), 5);
	TEST_EQ(session_send_ogg(o.s, page, sizeof(page), false), ENOBUFS);
	TEST_EQ(session_queued(o.s), 5);
	session_close(o.s, "done");
	fix_fini(&x);
	return 0;
}

static int
test_oversized_message_dropped(void)
{
	struct fix   x;
	struct owner o  = { 0 };
	uint8_t      hs = 0, big[3000], small[20] = { 0x01, 'O' };
	bool         ok = false;

	TEST_EQ(fix_init(&x, 0, 1000), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	fake_queue(&x.fake, &hs, 1, 0);
	memset(big, 1, sizeof(big));
	fake_queue(&x.fake, big, sizeof(big), 700); /* fragmented, too big */
	fake_queue(&x.fake, small, sizeof(small), 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(ok = o.naudio == 1);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(ok);
	TEST_EQ(o.audio_len[0], 19);
	TEST_ASSERT(!o.ended);
	TEST_EQ(metric_val(
	            &x, "exoplex_egress_bad_frames_total{kind=\"too_big\"}"),
	    1);
	session_close(o.s, "done");
	fix_fini(&x);
	return 0;
}

static int
test_longest_target_arrives_whole(void)
{
	struct fix   x;
	struct owner o = { 0 };
	static char  text[PPURL_TARGET_MAX_LWS];
	size_t       fixed = strlen("/api/chat?voice_prompt=NATF2.pt&text_"
	                                  "prompt=");
	bool         up    = false;

	/* The longest target ppurl allows must reach the server intact
	 * through lws 4.1's 2048-byte request-line buffer. */
	memset(text, 'x', PPURL_TARGET_MAX_LWS - fixed);
	text[PPURL_TARGET_MAX_LWS - fixed] = '\0';
	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, text), 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(up = x.fake.connections == 1) && !o.ended;)
		lws_service(x.ctx, 0);
	TEST_ASSERT(up);
	TEST_STREQ(x.fake.text, text);
	session_close(o.s, "done");
	fix_fini(&x);
	return 0;
}

/* The owner leaves during the prompt phase: a close frame (1000) still
 * goes out, so the server's lock is freed at once. */
static int
test_close_while_prompting(void)
{
	struct fix   x;
	struct owner o = { 0 };

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && session_state(o.s) != SESSION_PROMPTING;)
		lws_service(x.ctx, 0);
	TEST_EQ(session_state(o.s), SESSION_PROMPTING);
	session_close(o.s, "caller hung up");
	TEST_ASSERT(run_until(&x, &x.fake.closed));
	TEST_EQ(x.fake.close_code, 1000);
	TEST_EQ(x.fake.rx_before_hs, 0);
	TEST_ASSERT(!o.ended);
	fix_fini(&x);
	return 0;
}

/* The owner gives up on the handshake: it hears of the failure at once,
 * the server gets a close frame, and the server is reported gone only
 * after the socket is. */
static int
test_fail_while_prompting(void)
{
	struct fix   x;
	struct owner o = { 0 };

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	session_set_tag(o.s, 2);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && session_state(o.s) != SESSION_PROMPTING;)
		lws_service(x.ctx, 0);
	session_fail(o.s, SESSION_HANDSHAKE_TIMEOUT, "no 0x00 in time");
	TEST_ASSERT(o.ended);
	TEST_STREQ(o.reason, SESSION_HANDSHAKE_TIMEOUT);
	TEST_EQ(x.gone, 0);
	TEST_ASSERT(run_until(&x, &x.fake.closed));
	TEST_EQ(x.fake.close_code, 1000);
	for (uint64_t end = mono_us() + 5000000; mono_us() < end && !x.gone;)
		lws_service(x.ctx, 0);
	TEST_EQ(x.gone, 1);
	TEST_EQ(x.gone_tag, 2);
	TEST_EQ(metric_val(&x,
	            "exoplex_egress_session_failures_total{reason="
	            "\"handshake_timeout\"}"),
	    1);
	fix_fini(&x);
	return 0;
}

/* The safety net: a closed session whose socket lws has not reported
 * gone yet is reported gone by session_env_reap, once only. */
static int
test_reap(void)
{
	struct fix   x;
	struct owner o  = { 0 };
	uint8_t      hs = 0;

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	session_set_tag(o.s, 9);
	fake_queue(&x.fake, &hs, 1, 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && o.handshakes == 0;)
		lws_service(x.ctx, 0);
	TEST_EQ(session_env_reap(x.env, mono_us()), 0); /* open: never */
	session_close(o.s, "done");
	TEST_EQ(session_env_reap(x.env, mono_us() - 1000000), 0); /* young */
	TEST_EQ(session_env_reap(x.env, mono_us() + 1), 1);
	TEST_EQ(x.gone, 1);
	TEST_EQ(x.gone_tag, 9);
	TEST_ASSERT(run_until(&x, &x.fake.closed));
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && session_env_count(x.env);)
		lws_service(x.ctx, 0);
	TEST_EQ(session_env_count(x.env), 0);
	TEST_EQ(x.gone, 1);
	fix_fini(&x);
	return 0;
}

/* The owner leaves before the socket is even connected: it is dropped,
 * nothing is left behind and no callback comes. */
static int
test_close_while_connecting(void)
{
	struct fix   x;
	struct owner o = { 0 };

	TEST_EQ(fix_init(&x, 0, 0), 0);
	TEST_EQ(open_session(&x, &o, "hi"), 0);
	session_set_tag(o.s, 5);
	session_close(o.s, "caller hung up");
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && session_env_count(x.env);)
		lws_service(x.ctx, 0);
	TEST_EQ(session_env_count(x.env), 0);
	TEST_EQ(x.gone, 1);
	TEST_EQ(x.gone_tag, 5);
	run_for(&x, 200);
	TEST_ASSERT(!o.ended);
	TEST_EQ(x.fake.connections == 0 || x.fake.closed, 1);
	fix_fini(&x);
	return 0;
}

/* The owner leaves while the server has accepted the TCP connection but
 * not answered the upgrade (a hung server): the socket is dropped at
 * once, not left to lws's handshake timeout. */
static int
test_close_while_upgrade_pending(void)
{
	struct fix         x;
	struct owner       o  = { 0 };
	struct sockaddr_in a  = { .sin_family = AF_INET };
	socklen_t          al = sizeof(a);
	int                ls, cs = -1, port, n = -1;
	char               err[128], url[64], buf[4096];
	struct ppurl       u;
	struct log_call    ids         = { "CA", "ST" };
	bool               got_request = false;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls                = socket(AF_INET, SOCK_STREAM, 0);
	TEST_ASSERT(ls >= 0);
	TEST_EQ(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	TEST_EQ(listen(ls, 4), 0);
	TEST_EQ(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	port = ntohs(a.sin_port);
	TEST_EQ(fix_init(&x, 0, 0), 0);
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
	TEST_EQ(ppurl_parse(&u, url, err, sizeof(err)), 0);
	TEST_EQ(session_open(&o.s, x.env, &u,
	            "/api/chat?voice_prompt=a&text_"
	            "prompt=b",
	            &ids, &cb, &o),
	    0);
	/* Let the upgrade request go out, and read it. */
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !got_request;) {
		lws_service(x.ctx, 0);
		if (cs < 0)
			cs = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
		if (cs >= 0 && read(cs, buf, sizeof(buf)) > 0)
			got_request = true;
	}
	TEST_ASSERT(got_request);
	TEST_EQ(session_state(o.s), SESSION_CONNECTING);
	session_close(o.s, "caller hung up");
	/* The server side sees EOF (read returns 0) soon after. */
	for (uint64_t end = mono_us() + 3000000; mono_us() < end && n != 0;) {
		lws_service(x.ctx, 0);
		n = (int)read(cs, buf, sizeof(buf));
	}
	TEST_EQ(n, 0);
	TEST_ASSERT(!o.ended);
	close(cs);
	close(ls);
	fix_fini(&x);
	return 0;
}

/* A throw-away self-signed certificate for 127.0.0.1, made with the
 * openssl tool; returns false (test skipped) if that is not possible. */
static bool
make_cert(char *dir, size_t len, char *cert, char *key, size_t flen)
{
	char cmd[1024];

	snprintf(dir, len, "/tmp/session_test.XXXXXX");
	if (!mkdtemp(dir))
		return false;
	snprintf(cert, flen, "%s/cert.pem", dir);
	snprintf(key, flen, "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
	    "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "
	    "'%s' -out '%s' >/dev/null 2>&1",
	    key, cert);
	return system(cmd) == 0;
}

static void
rm_dir(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) { }
}

/* wss:// with the server's CA trusted: the handshake and a page flow. */
static int
tls_run(const struct fix_opts *fo, bool expect_ok)
{
	struct fix   x;
	struct owner o  = { 0 };
	uint8_t      hs = 0, page[20] = { 'O', 'g', 'g', 'S' };
	bool         ok = false;

	TEST_EQ(fix_init_opts(&x, fo), 0);
	fake_queue(&x.fake, &hs, 1, 0);
	TEST_EQ(open_session_url(&x, &o, "wss", "hi"), 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !o.handshakes && !o.ended;)
		lws_service(x.ctx, 0);
	if (!expect_ok) {
		TEST_ASSERT(o.ended);
		TEST_STREQ(o.reason, SESSION_CONNECT_FAILED);
		TEST_EQ(x.fake.connections, 0);
		fix_fini(&x);
		return 0;
	}
	TEST_EQ(o.handshakes, 1);
	TEST_EQ(session_send_ogg(o.s, page, sizeof(page), true), 0);
	for (uint64_t end = mono_us() + 5000000;
	     mono_us() < end && !(ok = o.naudio == 1);)
		lws_service(x.ctx, 0);
	TEST_ASSERT(ok);
	TEST_EQ(o.audio_len[0], sizeof(page));
	session_close(o.s, "done");
	TEST_ASSERT(run_until(&x, &x.fake.closed));
	TEST_EQ(x.fake.close_code, 1000);
	fix_fini(&x);
	return 0;
}

static int
test_wss(void)
{
	char            dir[64], cert[128], key[128];
	struct fix_opts fo = { 0 };
	int             rc = 0;

	if (!make_cert(dir, sizeof(dir), cert, key, sizeof(cert))) {
		printf("skip test_wss: cannot make a certificate\n");
		return 0;
	}
	fo.cert = cert;
	fo.key  = key;
	/* Trusted through the CA file: works. */
	fo.ca = cert;
	rc |= tls_run(&fo, true);
	/* Not trusted: the connection fails (certificate check). */
	fo.ca = NULL;
	rc |= tls_run(&fo, false);
	/* Not trusted but insecure: works. */
	fo.insecure = true;
	rc |= tls_run(&fo, true);
	rm_dir(dir);
	return rc;
}

TEST_MAIN(TEST(test_full_conversation), TEST(test_closed_before_handshake),
    TEST(test_server_closes_after_handshake), TEST(test_connect_refused),
    TEST(test_queue_bound_keeps_headers), TEST(test_oversized_message_dropped),
    TEST(test_longest_target_arrives_whole), TEST(test_wss),
    TEST(test_close_while_prompting), TEST(test_fail_while_prompting),
    TEST(test_reap), TEST(test_close_while_connecting),
    TEST(test_close_while_upgrade_pending))
