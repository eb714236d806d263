/*
 * server_test.c - the server in-process: a tiny WebSocket client plays
 * Exotel over loopback, and two inproc bus peers play transcoder and
 * egress. One thread pumps everything, so no timing is asserted; pacing
 * is checked only as an upper bound that a slow machine cannot break.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "base64.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "test.h"

/* ---- the fixture: server + two bus peers ------------------------------ */

struct peer {
	struct bus *b;
	unsigned    starts, reannounces, stops, dtmfs, audio_frames;
	size_t      audio_bytes;
	uint32_t    audio_rate, start_rate;
	char        stop_reason[64], start_call_sid[80], start_custom[128];
	char        dtmf[8];
	int         custom_present;
};

static struct {
	struct log      lg;
	struct metrics *m;
	struct bus     *bt, *bc; /* the server's ends */
	struct peer     pt, pc; /* the peers' ends */
	struct server  *srv;
	int             port;
} fx;

static void
peer_poll(struct peer *p)
{
	Exo__Envelope *env;

	bus_flush(p->b);
	while (bus_recv(p->b, &env) == 0) {
		for (size_t i = 0; i < env->n_frames; i++) {
			Exo__Frame *f = env->frames[i];
			switch (f->body_case) {
			case EXO__FRAME__BODY_CALL_START:
				if (f->call_start->reannounce) {
					p->reannounces++;
					break;
				}
				p->starts++;
				p->start_rate = f->call_start->sample_rate;
				p->custom_present
				    = f->call_start->custom_parameters_present;
				snprintf(p->start_call_sid,
				    sizeof(p->start_call_sid), "%s",
				    f->call_start->call_sid);
				p->start_custom[0] = '\0';
				if (f->call_start->n_custom_parameters)
					snprintf(p->start_custom,
					    sizeof(p->start_custom), "%s=%s",
					    f->call_start->custom_parameters[0]
					        ->key,
					    f->call_start->custom_parameters[0]
					        ->value);
				break;
			case EXO__FRAME__BODY_CALLER_AUDIO:
				p->audio_frames++;
				p->audio_bytes += f->caller_audio->pcm.len;
				p->audio_rate = f->caller_audio->sample_rate;
				break;
			case EXO__FRAME__BODY_CALL_STOP:
				p->stops++;
				snprintf(p->stop_reason,
				    sizeof(p->stop_reason), "%s",
				    f->call_stop->reason);
				break;
			case EXO__FRAME__BODY_DTMF:
				p->dtmfs++;
				snprintf(p->dtmf, sizeof(p->dtmf), "%s",
				    f->dtmf->digit);
				break;
			default:
				break;
			}
		}
		bus_envelope_free(env);
	}
}

/* ---- a minimal WebSocket client --------------------------------------- */

struct msg {
	int    op;
	char  *data;
	size_t len;
};

struct client {
	int        fd;
	char       rx[1 << 20];
	size_t     rx_len;
	struct msg msgs[4096];
	size_t     n;
	int        closed; /* close frame or EOF seen */
	int        close_code;
	char       http_status[64];
	int        upgraded;
	uint64_t   first_media_us;
	size_t     media_bytes; /* decoded PCM received */
	int        bad_frames; /* payload not whole frames or too big */
	double     max_ahead; /* s of audio beyond elapsed since first */
};

static void pump(struct client *c, unsigned ms);

static int
client_open(struct client *c, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char               req[512];
	int                one = 1;

	memset(c, 0, sizeof(*c));
	sa.sin_port        = htons((uint16_t)fx.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0
	    || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: "
	    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    path);
	if (write(c->fd, req, strlen(req)) != (ssize_t)strlen(req))
		return -1;
	for (int i = 0; i < 100 && !c->http_status[0] && !c->closed; i++)
		pump(c, 10);
	return c->upgraded ? 0 : -1;
}

static void
client_send_op(struct client *c, int op, const void *p, size_t n)
{
	static uint8_t buf[1 << 20];
	size_t         h = 0, off = 0;
	const uint8_t  mask[4] = { 1, 2, 3, 4 };

	buf[h++] = (uint8_t)(0x80 | op);
	if (n < 126) {
		buf[h++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		buf[h++] = 0x80 | 126;
		buf[h++] = (uint8_t)(n >> 8);
		buf[h++] = (uint8_t)n;
	} else {
		buf[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			buf[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	memcpy(buf + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		buf[h + i] = ((const uint8_t *)p)[i] ^ mask[i % 4];
	h += n;
	/* Non-blocking: keep the server turning while the kernel drains. */
	while (off < h) {
		ssize_t w = write(c->fd, buf + off, h - off);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN)
			return;
		else
			pump(c, 1);
	}
}

static void
client_send(struct client *c, const char *s)
{
	client_send_op(c, 1, s, strlen(s));
}

static void
client_note_media(struct client *c, const char *json, size_t len)
{
	cJSON       *j = cJSON_ParseWithLength(json, len);
	const cJSON *pl;
	uint8_t     *pcm;
	size_t       n = 0;
	double       elapsed;

	pl = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "media"), "payload");
	if (!cJSON_IsString(pl)) {
		cJSON_Delete(j);
		return;
	}
	pcm = malloc(b64_decoded_max(strlen(pl->valuestring)));
	if (b64_decode(pcm, &n, pl->valuestring, strlen(pl->valuestring)) != 0
	    || n % 640 != 0 || n > 3200 || n == 0)
		c->bad_frames++;
	free(pcm);
	if (c->first_media_us == 0)
		c->first_media_us = mono_us();
	c->media_bytes += n;
	elapsed = (double)(mono_us() - c->first_media_us) / 1e6;
	if ((double)c->media_bytes / 32000.0 - elapsed > c->max_ahead)
		c->max_ahead = (double)c->media_bytes / 32000.0 - elapsed;
	cJSON_Delete(j);
}

static void
client_read(struct client *c)
{
	for (;;) {
		ssize_t r;
		if (c->rx_len == sizeof(c->rx))
			break;
		r = read(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len);
		if (r == 0) {
			c->closed = 1;
			break;
		}
		if (r < 0)
			break;
		c->rx_len += (size_t)r;
	}
	if (!c->upgraded && !c->http_status[0]) {
		char *e = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
		char *nl;
		if (e == NULL)
			return;
		nl = memchr(c->rx, '\r', c->rx_len);
		snprintf(c->http_status, sizeof(c->http_status), "%.*s",
		    (int)(nl - c->rx), c->rx);
		c->upgraded = strstr(c->http_status, " 101 ") != NULL;
		c->rx_len -= (size_t)(e + 4 - c->rx);
		memmove(c->rx, e + 4, c->rx_len);
	}
	while (c->upgraded && c->rx_len >= 2) {
		uint8_t *p = (uint8_t *)c->rx;
		size_t   h = 2, n = p[1] & 0x7f;
		if (n == 126) {
			if (c->rx_len < 4)
				break;
			n = (size_t)p[2] << 8 | p[3];
			h = 4;
		} else if (n == 127) {
			if (c->rx_len < 10)
				break;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | p[2 + i];
			h = 10;
		}
		if (c->rx_len < h + n)
			break;
		if ((p[0] & 0x0f) == 8) {
			c->closed     = 1;
			c->close_code = n >= 2 ? p[h] << 8 | p[h + 1] : 0;
		} else if (c->n < sizeof(c->msgs) / sizeof(c->msgs[0])) {
			struct msg *m = &c->msgs[c->n++];
			m->op         = p[0] & 0x0f;
			m->len        = n;
			m->data       = malloc(n + 1);
			memcpy(m->data, p + h, n);
			m->data[n] = '\0';
			if (strstr(m->data, "\"event\":\"media\""))
				client_note_media(c, m->data, n);
		}
		c->rx_len -= h + n;
		memmove(c->rx, c->rx + h + n, c->rx_len);
	}
}

static void
client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (size_t i = 0; i < c->n; i++)
		free(c->msgs[i].data);
	c->n = 0;
}

/* Runs the server, the peers and the client for about ms. */
static void
pump(struct client *c, unsigned ms)
{
	uint64_t end = mono_us() + (uint64_t)ms * 1000;

	do {
		server_service(fx.srv);
		bus_flush(fx.bt);
		bus_flush(fx.bc);
		peer_poll(&fx.pt);
		peer_poll(&fx.pc);
		if (c != NULL && c->fd >= 0)
			client_read(c);
	} while (mono_us() < end);
}

/* ---- tests ------------------------------------------------------------ */

static int
setup(void)
{
	static int n;
	char       ut[64], uc[64];

	memset(&fx, 0, sizeof(fx));
	signal(SIGPIPE, SIG_IGN); /* a socket we write may be closed on us */
	lws_set_log_level(LLL_ERR, NULL);
	snprintf(ut, sizeof(ut), "inproc://ingress-test-t-%d", n);
	snprintf(uc, sizeof(uc), "inproc://ingress-test-c-%d", n++);
	TEST_EQ(log_init(&fx.lg, "ingress-test", "text", "error"), 0);
	TEST_EQ(metrics_alloc(&fx.m, "exoplex_"), 0);
	TEST_EQ(bus_open(&fx.pt.b,
	            &(struct bus_opts) { .link = "transcoder",
	                .url                   = ut,
	                .listen                = true,
	                .self                  = "test",
	                .metrics               = fx.m,
	                .log                   = &fx.lg }),
	    0);
	TEST_EQ(bus_open(&fx.pc.b,
	            &(struct bus_opts) { .link = "control",
	                .url                   = uc,
	                .listen                = true,
	                .self                  = "test",
	                .metrics               = fx.m,
	                .log                   = &fx.lg }),
	    0);
	TEST_EQ(bus_open(&fx.bt,
	            &(struct bus_opts) { .link = "transcoder",
	                .url                   = ut,
	                .self                  = "ingress",
	                .metrics               = fx.m,
	                .log                   = &fx.lg }),
	    0);
	TEST_EQ(bus_open(&fx.bc,
	            &(struct bus_opts) { .link = "control",
	                .url                   = uc,
	                .self                  = "ingress",
	                .metrics               = fx.m,
	                .log                   = &fx.lg }),
	    0);
	TEST_EQ(server_start(&fx.srv,
	            &(struct server_opts) { .listen = "127.0.0.1:0",
	                .stop_grace_ms              = 300,
	                .log                        = &fx.lg,
	                .metrics                    = fx.m,
	                .bus_transcoder             = fx.bt,
	                .bus_control                = fx.bc }),
	    0);
	fx.port = server_port(fx.srv);
	TEST_ASSERT(fx.port > 0);
	/* Let the peers connect. */
	for (int i = 0; i < 200 && !(bus_peers(fx.bt) && bus_peers(fx.bc));
	     i++)
		pump(NULL, 5);
	TEST_ASSERT(bus_peers(fx.bt) && bus_peers(fx.bc));
	/* Let a tick see the new peers (it re-announces live calls). */
	pump(NULL, 60);
	return 0;
}

/* Whether /metrics has this exact line. */
static int
metric_is(const char *line)
{
	size_t len;
	char  *txt = metrics_render(fx.m, &len);
	char   want[256];
	int    ok;

	snprintf(want, sizeof(want), "\n%s\n", line);
	ok = txt != NULL && strstr(txt, want) != NULL;
	if (!ok)
		fprintf(stderr, "  metrics lack: %s\n", line);
	free(txt);
	return ok;
}

static void
teardown(void)
{
	server_stop(fx.srv);
	bus_close(fx.bt);
	bus_close(fx.bc);
	bus_close(fx.pt.b);
	bus_close(fx.pc.b);
	metrics_free(fx.m);
}

static const char *start_16k
    = "{\"event\":\"start\",\"stream_sid\":"
      "\"95be037f0ff02b427c3a4a59ae72198c\","
      "\"sequence_number\":\"1\",\"start\":{\"stream_sid\":"
      "\"95be037f0ff02b427c3a4a59ae72198c\",\"call_sid\":"
      "\"75b90b4b77ce9e6fe9a60a26f03d198c\",\"account_sid\":\"ezora2\","
      "\"from\":\"+14129162450\",\"to\":\"08045680571\","
      "\"custom_parameters\":{\"serviceHost\":\"a.b\"},\"media_format\":{"
      "\"encoding\":\"base64\",\"sample_rate\":\"16000\",\"bit_rate\":"
      "\"256kbps\"}}}";

static void
send_media(struct client *c, const char *sid, size_t bytes)
{
	static uint8_t pcm[8192];
	static char    js[16384];
	char           b64[12000];

	for (size_t i = 0; i < bytes; i++)
		pcm[i] = (uint8_t)i;
	b64_encode(b64, pcm, bytes);
	snprintf(js, sizeof(js),
	    "{\"event\":\"media\",\"sequence_number\":\"2\",\"stream_sid\":"
	    "\"%s\",\"media\":{\"chunk\":\"1\",\"timestamp\":\"20\","
	    "\"payload\":\"%s\"}}",
	    sid, b64);
	client_send(c, js);
}

static void
send_playback(const char *sid, uint32_t rate, size_t bytes)
{
	static uint8_t pcm[65536];
	Exo__Frame     f = EXO__FRAME__INIT;
	Exo__Audio     a = EXO__AUDIO__INIT;
	static int     seq;

	a.sample_rate    = rate;
	a.pcm.data       = pcm;
	a.pcm.len        = bytes;
	f.call_id        = (char *)sid;
	f.seq            = (uint64_t)++seq;
	f.body_case      = EXO__FRAME__BODY_PLAYBACK_AUDIO;
	f.playback_audio = &a;
	bus_send(fx.pt.b, &f);
	bus_flush(fx.pt.b);
}

/* A whole call: start (start's rate beats the URL's), media up, paced
 * playback down, stop, close. */
static int
test_call(void)
{
	static struct client c;
	const char          *sid = "95be037f0ff02b427c3a4a59ae72198c";

	if (setup())
		return 1;
	TEST_EQ(client_open(&c, "/exotel?sample-rate=8000"), 0);
	client_send(&c, "{\"event\": \"connected\"}");
	client_send(&c, start_16k);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.starts, 1);
	TEST_EQ(fx.pc.starts, 1);
	TEST_EQ(fx.pt.start_rate, 16000);
	TEST_STREQ(fx.pt.start_call_sid, "75b90b4b77ce9e6fe9a60a26f03d198c");
	TEST_STREQ(fx.pc.start_custom, "serviceHost=a.b");
	TEST_ASSERT(fx.pc.custom_present);

	for (int i = 0; i < 5; i++)
		send_media(&c, sid, 640);
	client_send(&c,
	    "{\"event\":\"dtmf\",\"stream_sid\":\"95be037f0ff02b4"
	    "27c3a4a59ae72198c\",\"dtmf\":{\"duration\":\"200\","
	    "\"digit\":\"5\"}}");
	for (int i = 0; i < 100 && (fx.pt.audio_bytes < 3200 || !fx.pc.dtmfs);
	     i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.audio_bytes, 3200);
	TEST_EQ(fx.pt.audio_frames, 5);
	TEST_EQ(fx.pt.audio_rate, 16000);
	TEST_STREQ(fx.pc.dtmf, "5");

	/* One second of agent audio in one lump: paced out as 100 ms
	 * messages of whole 640-byte frames, never far ahead. */
	send_playback(sid, 16000, 32000);
	send_playback(sid, 8000, 1600); /* wrong rate: dropped */
	for (int i = 0; i < 300 && c.media_bytes < 32000; i++)
		pump(&c, 10);
	TEST_EQ(c.media_bytes, 32000);
	TEST_EQ(c.bad_frames, 0);
	/* Lead 200 ms + one 100 ms message, + a message of slack for the
	 * client's own clock starting late. */
	TEST_ASSERT(c.max_ahead <= 0.4);

	client_send(&c,
	    "{\"event\":\"stop\",\"sequence_number\":\"9\","
	    "\"stream_sid\":\"95be037f0ff02b427c3a4a59ae72198c\","
	    "\"stop\":{\"reason\":\"callended\"}}");
	for (int i = 0; i < 100 && fx.pc.stops == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.stops, 1);
	TEST_EQ(fx.pc.stops, 1);
	TEST_STREQ(fx.pc.stop_reason, "callended");
	/* Exotel would close; this client does not, so the grace ends it. */
	for (int i = 0; i < 200 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1000);
	pump(&c, 50);
	TEST_EQ(fx.pc.stops, 1); /* no second call_stop */
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_messages_out_total{event=\"media\"} 10"));
	TEST_ASSERT(
	    metric_is("exoplex_exotel_messages_in_total{event=\"media\"} 5"));
	TEST_ASSERT(
	    metric_is("exoplex_exotel_messages_in_total{event=\"start\"} 1"));
	TEST_ASSERT(metric_is("exoplex_bus_bad_playback_total 1"));
	TEST_ASSERT(metric_is("exoplex_calls_active 0"));
	client_close(&c);
	teardown();
	return 0;
}

static int
test_refusals(void)
{
	static struct client c, good;
	char                 big[300000];

	if (setup())
		return 1;
	TEST_ASSERT(client_open(&c, "/other") != 0);
	TEST_ASSERT(strstr(c.http_status, "404") != NULL);
	client_close(&c);

	/* A good call runs while another socket misbehaves. */
	TEST_EQ(client_open(&good, "/exotel"), 0);
	client_send(&good, start_16k);
	TEST_EQ(client_open(&c, "/exotel"), 0);
	client_send(&c, "not json");
	client_send(
	    &c, "{\"event\":\"media\",\"media\":{\"payload\":\"AA==\"}}");
	client_send_op(&c, 2, "\x01\x02\x03", 3);
	client_send(&c, "{\"event\":\"mystery\"}");
	client_send(&c,
	    "{\"event\":\"start\",\"stream_sid\":"
	    "\"95be037f0ff02b427c3a4a59ae72198c\",\"start\":{"
	    "\"call_sid\":\"x\"}}"); /* same stream_sid */
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1008);
	client_close(&c);
	TEST_EQ(fx.pt.starts, 1);
	TEST_EQ(fx.pt.stops, 0); /* the good call is untouched */

	/* Oversized message: 1009. */
	TEST_EQ(client_open(&c, "/exotel"), 0);
	memset(big, 'A', sizeof(big));
	memcpy(big, "{\"event\":\"media\",\"media\":{\"payload\":\"", 37);
	client_send_op(&c, 1, big, sizeof(big));
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1009);
	client_close(&c);

	/* The good call still carries audio. */
	send_media(&good, "95be037f0ff02b427c3a4a59ae72198c", 640);
	for (int i = 0; i < 100 && fx.pt.audio_frames == 0; i++)
		pump(&good, 10);
	TEST_EQ(fx.pt.audio_frames, 1);

	/* Socket dropped without stop: call_stop{bridge_error}. */
	client_close(&good);
	for (int i = 0; i < 100 && fx.pt.stops == 0; i++)
		pump(NULL, 10);
	TEST_EQ(fx.pt.stops, 1);
	TEST_STREQ(fx.pt.stop_reason, "bridge_error");
	TEST_ASSERT(
	    metric_is("exoplex_exotel_bad_input_total{kind=\"bad_path\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_bad_input_total{kind=\"invalid_json\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_bad_input_total{kind=\"odd_length_pcm\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_bad_input_total{kind=\"binary_frame\"} 1"));
	TEST_ASSERT(metric_is("exoplex_exotel_bad_input_total{kind="
	                      "\"duplicate_stream_sid\"} 1"));
	TEST_ASSERT(
	    metric_is("exoplex_exotel_bad_input_total{kind=\"too_large\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_messages_in_total{event=\"unknown\"} 1"));
	teardown();
	return 0;
}

static int
test_hangup_and_announce(void)
{
	static struct client c;
	Exo__Frame           f   = EXO__FRAME__INIT;
	Exo__Hangup          h   = EXO__HANGUP__INIT;
	Exo__Announce        a   = EXO__ANNOUNCE__INIT;
	const char          *sid = "95be037f0ff02b427c3a4a59ae72198c";

	if (setup())
		return 1;
	TEST_EQ(client_open(&c, "/exotel"), 0);
	client_send(&c, start_16k);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);

	f.call_id   = (char *)sid;
	f.seq       = 1;
	f.body_case = EXO__FRAME__BODY_ANNOUNCE;
	f.announce  = &a;
	bus_send(fx.pc.b, &f);
	for (int i = 0; i < 100 && fx.pc.reannounces == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.reannounces, 1);
	TEST_EQ(fx.pt.reannounces, 0); /* only to the link that asked */

	h.reason    = "persona_failed";
	f.seq       = 2;
	f.body_case = EXO__FRAME__BODY_HANGUP;
	f.hangup    = &h;
	bus_send(fx.pc.b, &f);
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1000);
	for (int i = 0; i < 100 && fx.pc.stops == 0; i++)
		pump(&c, 10);
	TEST_STREQ(fx.pc.stop_reason, "persona_failed");
	TEST_STREQ(fx.pt.stop_reason, "persona_failed");
	client_close(&c);
	teardown();
	return 0;
}

TEST_MAIN(TEST(test_call), TEST(test_refusals), TEST(test_hangup_and_announce))
