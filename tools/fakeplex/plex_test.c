/*
 * plex_test.c - the stand-in on loopback, driven by libwebsockets clients
 * in the same thread: handshake and header pages, echo at the right pitch,
 * text pieces, query decoding, the one-conversation lock, bytes before the
 * handshake, query failures and a fatal uplink. Waits have a generous cap
 * so a broken server fails the test instead of hanging it; no timing is
 * asserted.
 */
#include "log.h"
#include "metrics.h"
#include "plex.h"
#include "spectrum.h"
#include "stats.h"
#include "clock.h"
#include "test.h"
#include "testup.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXMSG 200

struct msg {
	size_t  len;
	uint8_t data[2000];
};

/* One client connection and everything it received. */
struct cli {
	struct lws *wsi;
	bool        connected, closed, failed;
	int         close_code; /* from the server's close frame, or 0 */
	size_t      nmsg;
	struct msg *msg; /* [MAXMSG] */
	uint8_t     rx[70000];
	size_t      rxlen;
	/* queued outgoing messages */
	uint8_t *out[MAXMSG];
	size_t   outlen[MAXMSG];
	size_t   nout, sent;
	bool     want_close;
};

static int
cli_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
    size_t len)
{
	struct cli *c = user;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		c->connected = true;
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (c->rxlen + len <= sizeof(c->rx)) {
			memcpy(c->rx + c->rxlen, in, len);
			c->rxlen += len;
		}
		if (lws_is_final_fragment(wsi)) {
			if (c->nmsg < MAXMSG && c->rxlen <= 2000) {
				c->msg[c->nmsg].len = c->rxlen;
				memcpy(c->msg[c->nmsg].data, c->rx, c->rxlen);
			}
			c->nmsg++;
			c->rxlen = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (c->want_close) {
			lws_close_reason(
			    wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
			return -1;
		}
		if (c->sent < c->nout) {
			size_t n = c->outlen[c->sent];
			if (lws_write(wsi, c->out[c->sent] + LWS_PRE, n,
			        LWS_WRITE_BINARY)
			    < (int)n)
				return -1;
			c->sent++;
			if (c->sent < c->nout)
				lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2)
			c->close_code
			    = ((uint8_t *)in)[0] << 8 | ((uint8_t *)in)[1];
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		c->failed = true;
		c->closed = true;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		c->closed = true;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols cli_protocols[] = {
	{ "testcli", cli_cb, 0, 4096, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

struct world {
	struct log          lg;
	struct metrics     *m;
	struct stats       *st;
	struct plex_opts    po;
	struct plex        *p;
	struct lws_context *cctx;
	int                 port, port2;
	char                listen[64];
};

static int
free_port(void)
{
	struct sockaddr_in a  = { .sin_family = AF_INET };
	socklen_t          l  = sizeof(a);
	int                fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a))
	    || getsockname(fd, (struct sockaddr *)&a, &l))
		port = -1;
	else
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Planned drops for the next world_init (0: none). */
struct drops {
	long after_ms, count;
};

static int
world_init_drops(
    struct world *w, long delay_ms, const char *text, const struct drops *d)
{
	struct lws_context_creation_info info;

	memset(w, 0, sizeof(*w));
	if (log_init(&w->lg, "fakeplex-test", "text", "error")
	    || metrics_alloc(&w->m, "exoplex_") || stats_alloc(&w->st, w->m))
		return 1;
	if ((w->port = free_port()) < 0 || (w->port2 = free_port()) < 0
	    || w->port2 == w->port)
		return 1;
	/* Two listeners: two independent "servers". */
	snprintf(w->listen, sizeof(w->listen), "127.0.0.1:%d,127.0.0.1:%d",
	    w->port, w->port2);
	w->po.listen             = w->listen;
	w->po.conv.mode          = CONV_ECHO;
	w->po.conv.text          = text;
	w->po.handshake_delay_ms = delay_ms;
	w->po.drop_after_ms      = d ? d->after_ms : 0;
	w->po.drop_count         = d ? d->count : 0;
	if (plex_alloc(&w->p, &w->po, w->st, &w->lg, NULL))
		return 1;
	memset(&info, 0, sizeof(info));
	info.port      = CONTEXT_PORT_NO_LISTEN;
	info.protocols = cli_protocols;
	w->cctx        = lws_create_context(&info);
	return w->cctx == NULL;
}

static int
world_init(struct world *w, long delay_ms, const char *text)
{
	return world_init_drops(w, delay_ms, text, NULL);
}

static void
world_fini(struct world *w)
{
	if (w->cctx)
		lws_context_destroy(w->cctx);
	plex_free(w->p);
	stats_free(w->st);
	metrics_free(w->m);
}

/* Services both sides once (the server waits at most one tick). */
static void
spin(struct world *w)
{
	lws_service(w->cctx, -1);
	plex_service(w->p);
	lws_service(w->cctx, -1);
}

/* Spins until cond holds, for at most 10 s of wall time (a spin may take
 * no time at all, so counting spins would not bound anything). */
#define WAIT_FOR(w, cond)                                                     \
	do {                                                                  \
		uint64_t end_ = mono_us() + 10000000u;                        \
		while (!(cond) && mono_us() < end_)                           \
			spin(w);                                              \
		TEST_ASSERT(cond);                                            \
	} while (0)

static struct cli *
cli_new(void)
{
	struct cli *c = calloc(1, sizeof(*c));
	if (c)
		c->msg = calloc(MAXMSG, sizeof(struct msg));
	return c;
}

static void
cli_free(struct cli *c)
{
	for (size_t i = 0; i < c->nout; i++)
		free(c->out[i]);
	free(c->msg);
	free(c);
}

static int
cli_connect_port(struct world *w, struct cli *c, int port, const char *path)
{
	struct lws_client_connect_info i;

	memset(&i, 0, sizeof(i));
	i.context             = w->cctx;
	i.address             = "127.0.0.1";
	i.port                = port;
	i.path                = path;
	i.host                = "127.0.0.1";
	i.origin              = "127.0.0.1";
	i.local_protocol_name = "testcli";
	i.userdata            = c;
	i.pwsi                = &c->wsi;
	return lws_client_connect_via_info(&i) == NULL;
}

static int
cli_connect(struct world *w, struct cli *c, const char *path)
{
	return cli_connect_port(w, c, w->port, path);
}

/* Queues kind + data as one binary message. */
static void
cli_send(struct cli *c, uint8_t kind, const uint8_t *data, size_t n)
{
	uint8_t *b = malloc(LWS_PRE + 1 + n);

	b[LWS_PRE] = kind;
	memcpy(b + LWS_PRE + 1, data, n);
	c->out[c->nout]    = b;
	c->outlen[c->nout] = n + 1;
	c->nout++;
	lws_callback_on_writable(c->wsi);
}

static size_t
count_kind(const struct cli *c, uint8_t kind)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nmsg && i < MAXMSG; i++)
		n += c->msg[i].len > 0 && c->msg[i].data[0] == kind;
	return n;
}

/* Decodes the received audio pages (one page per message) at 24 kHz. */
static size_t
decode_rx(const struct cli *c, int16_t *pcm, size_t cap)
{
	OpusDecoder *d = opus_decoder_create(SPHN_RATE, 1, &(int) { 0 });
	size_t       n = 0;

	for (size_t i = 0; i < c->nmsg && i < MAXMSG; i++) {
		const uint8_t *p = c->msg[i].data + 1;
		if (c->msg[i].len < 29 || c->msg[i].data[0] != 0x01)
			continue;
		size_t nseg = p[26], body = 27 + nseg, len = 0;
		for (size_t k = 0; k < nseg; k++)
			len += p[27 + k];
		if (!memcmp(p + body, "Opus", 4))
			continue; /* OpusHead, OpusTags */
		int k = opus_decode(
		    d, p + body, (opus_int32)len, pcm + n, (int)(cap - n), 0);
		if (k > 0)
			n += (size_t)k;
	}
	opus_decoder_destroy(d);
	return n;
}

static const char *CHAT
    = "/api/chat?voice_prompt=NATF2.pt&text_prompt=Be%20kind+please%2B%26x";

static int
test_echo_session(void)
{
	struct world w;
	struct cli  *c = cli_new();
	struct up    u;
	int16_t      pcm[48000];

	TEST_EQ(world_init(&w, 0, "Hi there"), 0);
	TEST_EQ(cli_connect(&w, c, CHAT), 0);
	WAIT_FOR(&w, c->nmsg >= 3);
	/* 0x00 alone, then OpusHead and OpusTags pages (48 and 54 bytes). */
	TEST_EQ(c->msg[0].len, 1);
	TEST_EQ(c->msg[0].data[0], 0x00);
	TEST_EQ(c->msg[1].len, 48);
	TEST_EQ(c->msg[2].len, 54);
	TEST_ASSERT(!memcmp(c->msg[1].data + 1, "OggS", 4));
	/* Output is clocked by input: nothing more without audio. */
	for (int i = 0; i < 5; i++)
		spin(&w);
	TEST_EQ(c->nmsg, 3);

	TEST_EQ(up_init(&u, 8000, 0xabcdef), 0);
	up_head(&u);
	cli_send(c, 0x01, u.page, u.plen);
	up_tags(&u);
	cli_send(c, 0x01, u.page, u.plen);
	for (int i = 0; i < 50; i++) {
		up_audio(&u, 1000);
		cli_send(c, 0x01, u.page, u.plen);
	}
	up_fini(&u);
	/* 1 s in = 24000 samples = 12 steps: 12 pages, 2 text pieces. */
	WAIT_FOR(
	    &w, count_kind(c, 0x01) >= 2 + 12 && count_kind(c, 0x02) == 2);
	TEST_EQ(c->msg[3].data[0], 0x02);
	TEST_EQ(c->msg[3].len, 4);
	TEST_ASSERT(!memcmp(c->msg[3].data + 1, " Hi", 3));
	TEST_ASSERT(!memcmp(c->msg[5].data + 1, " there", 6));
	size_t n = decode_rx(c, pcm, 48000);
	TEST_EQ(n, 12 * 1920);
	TEST_NEAR(spectrum_dominant_hz(pcm, n, SPHN_RATE), 1000, 20);

	char *j = stats_json(w.st);
	TEST_ASSERT(j != NULL);
	/* %20 and '+' are spaces, %2B and %26 are literal. */
	TEST_ASSERT(strstr(j, "\"last_text_prompt\":\"Be kind please+&x\""));
	TEST_ASSERT(strstr(j, "\"last_voice_prompt\":\"NATF2.pt\""));
	TEST_ASSERT(strstr(j, "\"violations\":0"));
	TEST_ASSERT(strstr(j, "\"handshakes_sent\":1"));
	free(j);

	c->want_close = true;
	lws_callback_on_writable(c->wsi);
	WAIT_FOR(&w, c->closed);
	struct metric *active
	    = metrics_gauge(w.m, "fakeplex_sessions_active", "", NULL);
	WAIT_FOR(&w, metric_get(active) == 0);
	cli_free(c);
	world_fini(&w);
	return 0;
}

static int
test_lock_and_early_bytes(void)
{
	struct world w;
	struct cli  *a = cli_new(), *b = cli_new();

	TEST_EQ(world_init(&w, 0, NULL), 0);
	TEST_EQ(cli_connect(&w, a, CHAT), 0);
	WAIT_FOR(&w, a->nmsg >= 3);
	TEST_EQ(cli_connect(&w, b,
	            "/api/chat?voice_prompt=VARM3.pt&text_prompt=second"),
	    0);
	WAIT_FOR(&w, b->connected);
	/* b waits with nothing sent; what it sends is swallowed. */
	uint8_t page[] = { 'O', 'g', 'g', 'S' };
	cli_send(b, 0x01, page, sizeof(page));
	WAIT_FOR(&w, stats_violations(w.st, "sent_before_handshake") == 1);
	TEST_EQ(b->nmsg, 0);
	TEST_EQ(stats_get(w.st, ST_SESSIONS_WAITED), 1);
	/* a ends: b gets the lock, the handshake and its headers. */
	a->want_close = true;
	lws_callback_on_writable(a->wsi);
	WAIT_FOR(&w, a->closed && b->nmsg >= 3);
	TEST_EQ(b->msg[0].len, 1);
	TEST_EQ(b->msg[0].data[0], 0x00);
	char *j = stats_json(w.st);
	TEST_ASSERT(j && strstr(j, "\"max_concurrent_sessions\":2")
	    && strstr(j, "\"last_voice_prompt\":\"VARM3.pt\"")
	    && strstr(j, "\"violations\":1"));
	free(j);
	b->want_close = true;
	lws_callback_on_writable(b->wsi);
	WAIT_FOR(&w, b->closed);
	cli_free(a);
	cli_free(b);
	world_fini(&w);
	return 0;
}

static int
test_handshake_delay_and_bad_queries(void)
{
	struct world w;
	struct cli  *c[4];
	const char  *paths[4] = {
		 "/api/chat?voice_prompt=NATF2.pt&text_prompt=x&seed=42",
		 "/api/chat?voice_prompt=NATF9.pt&text_prompt=x",
		 "/api/chat?voice_prompt=NATF2.pt",
		 "/api/chat?text_prompt=x",
	};
	const char *kinds[4] = { "seed_sent", "bad_voice_prompt",
		"missing_text_prompt", "missing_voice_prompt" };

	/* A long prompt phase: bad queries still fail at once, before the
	 * lock (no one holds it here anyway). */
	TEST_EQ(world_init(&w, 600000, NULL), 0);
	for (int i = 0; i < 4; i++) {
		c[i] = cli_new();
		TEST_EQ(cli_connect(&w, c[i], paths[i]), 0);
		WAIT_FOR(&w, c[i]->closed);
		TEST_EQ(c[i]->nmsg, 0);
		/* Aborted like a crashed handler: no close frame. */
		TEST_EQ(c[i]->close_code, 0);
		TEST_EQ(stats_violations(w.st, kinds[i]), 1);
		cli_free(c[i]);
	}
	TEST_EQ(stats_get(w.st, ST_SESSIONS_REJECTED), 4);
	/* A good one now waits for its handshake (10 minutes away). */
	c[0] = cli_new();
	TEST_EQ(cli_connect(&w, c[0], CHAT), 0);
	WAIT_FOR(&w, c[0]->connected);
	for (int i = 0; i < 20; i++)
		spin(&w);
	TEST_EQ(c[0]->nmsg, 0);
	TEST_EQ(stats_get(w.st, ST_HANDSHAKES), 0);
	c[0]->want_close = true;
	lws_callback_on_writable(c[0]->wsi);
	WAIT_FOR(&w, c[0]->closed);
	cli_free(c[0]);
	world_fini(&w);
	return 0;
}

static int
test_fatal_uplink_closes(void)
{
	struct world w;
	struct cli  *c = cli_new();
	struct up    u;

	TEST_EQ(world_init(&w, 0, NULL), 0);
	TEST_EQ(cli_connect(&w, c, CHAT), 0);
	WAIT_FOR(&w, c->nmsg >= 3);
	/* Unknown kinds and text are ignored; then a stream without BOS. */
	cli_send(c, 0x03, (const uint8_t *)"\x01", 1);
	TEST_EQ(up_init(&u, 8000, 77), 0);
	up_head(&u);
	up_tags(&u);
	cli_send(c, 0x01, u.page, u.plen);
	up_fini(&u);
	WAIT_FOR(&w, c->closed);
	TEST_EQ(c->close_code, 1000);
	TEST_EQ(stats_violations(w.st, "unknown_kind"), 1);
	TEST_EQ(stats_violations(w.st, "no_bos"), 1);
	cli_free(c);
	world_fini(&w);
	return 0;
}

static int
test_listeners_are_independent(void)
{
	struct world w;
	struct cli  *a = cli_new(), *b = cli_new(), *c = cli_new();

	TEST_EQ(world_init(&w, 0, NULL), 0);
	TEST_EQ(cli_connect_port(&w, a, w.port, CHAT), 0);
	TEST_EQ(cli_connect_port(&w, b, w.port2, CHAT), 0);
	WAIT_FOR(&w, a->nmsg >= 3 && b->nmsg >= 3);
	TEST_EQ(stats_get(w.st, ST_SESSIONS_WAITED), 0);
	/* A second caller on the first listener waits. */
	TEST_EQ(cli_connect_port(&w, c, w.port, CHAT), 0);
	WAIT_FOR(&w, c->connected && stats_get(w.st, ST_SESSIONS_WAITED) == 1);
	TEST_EQ(c->nmsg, 0);
	char *j = stats_json(w.st);
	TEST_ASSERT(j && strstr(j, "\"max_concurrent_sessions\":2")
	    && strstr(j, "\"open\":2,\"waiting\":1")
	    && strstr(j, "\"open\":1,\"waiting\":0"));
	free(j);
	a->want_close = b->want_close = c->want_close = true;
	lws_callback_on_writable(a->wsi);
	lws_callback_on_writable(b->wsi);
	lws_callback_on_writable(c->wsi);
	WAIT_FOR(&w, a->closed && b->closed && c->closed);
	cli_free(a);
	cli_free(b);
	cli_free(c);
	world_fini(&w);
	return 0;
}

/* --drop-after-ms with --drop-count 1: the first conversation is
 * dropped (no close frame), the next one on the same listener is not. */
static int
test_drop_first_only(void)
{
	struct world w;
	struct drops d = { .after_ms = 100, .count = 1 };
	struct cli  *a = cli_new(), *b = cli_new();

	TEST_EQ(world_init_drops(&w, 0, NULL, &d), 0);
	TEST_EQ(cli_connect(&w, a, CHAT), 0);
	WAIT_FOR(&w, a->nmsg >= 3);
	WAIT_FOR(&w, a->closed);
	TEST_EQ(a->close_code, 0);
	TEST_EQ(stats_get(w.st, ST_SESSIONS_DROPPED), 1);
	TEST_EQ(cli_connect(&w, b, CHAT), 0);
	WAIT_FOR(&w, b->nmsg >= 3);
	/* Well past the drop time: still up (a guard, not a timing). */
	for (int i = 0; i < 40; i++)
		spin(&w);
	TEST_ASSERT(!b->closed);
	TEST_EQ(stats_get(w.st, ST_SESSIONS_DROPPED), 1);
	TEST_EQ(stats_get(w.st, ST_HANDSHAKES), 2);
	b->want_close = true;
	lws_callback_on_writable(b->wsi);
	WAIT_FOR(&w, b->closed);
	cli_free(a);
	cli_free(b);
	world_fini(&w);
	return 0;
}

TEST_MAIN(TEST(test_echo_session), TEST(test_lock_and_early_bytes),
    TEST(test_handshake_delay_and_bad_queries), TEST(test_fatal_uplink_closes),
    TEST(test_listeners_are_independent), TEST(test_drop_first_only))
