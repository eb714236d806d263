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

#include "auth.h"
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
	char        dtmf[8], start_mode[32], stop_mode[32], re_mode[32];
	int         custom_present;
	unsigned    n_custom, marks, playouts, playing_true, refused;
	char        mark[32];
	int         playing; /* last playout frame */
	uint32_t    lag_ms;
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
					snprintf(p->re_mode,
					    sizeof(p->re_mode), "%s",
					    f->call_start->mode);
					break;
				}
				p->starts++;
				snprintf(p->start_mode, sizeof(p->start_mode),
				    "%s", f->call_start->mode);
				if (strcmp(f->call_start->refused, "") != 0)
					p->refused++;
				p->n_custom
				    = f->call_start->n_custom_parameters;
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
				snprintf(p->stop_mode, sizeof(p->stop_mode),
				    "%s", f->call_stop->mode);
				break;
			case EXO__FRAME__BODY_DTMF:
				p->dtmfs++;
				snprintf(p->dtmf, sizeof(p->dtmf), "%s",
				    f->dtmf->digit);
				break;
			case EXO__FRAME__BODY_MARK:
				p->marks++;
				snprintf(p->mark, sizeof(p->mark), "%s",
				    f->mark->name);
				break;
			case EXO__FRAME__BODY_PLAYOUT:
				p->playouts++;
				p->playing = f->playout->playing;
				p->lag_ms  = f->playout->lag_ms;
				if (p->playing)
					p->playing_true++;
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
	size_t     frame; /* bytes of 20 ms expected; 0 = 640 */
	size_t     media_bytes; /* decoded PCM received */
	int        bad_frames; /* payload not whole frames or too big */
	double     max_ahead; /* s of audio beyond elapsed since first */
};

static void pump(struct client *c, unsigned ms);

static int client_rcvbuf; /* SO_RCVBUF for the next client, 0 = default */

static int
client_open_hdr(struct client *c, const char *path, const char *hdrs)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char               req[1024];
	int                one = 1;

	memset(c, 0, sizeof(*c));
	sa.sin_port        = htons((uint16_t)fx.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	if (client_rcvbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &client_rcvbuf,
		    sizeof(client_rcvbuf));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: "
	    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
	    "13\r\n%s\r\n",
	    path, hdrs ? hdrs : "");
	if (write(c->fd, req, strlen(req)) != (ssize_t)strlen(req))
		return -1;
	for (int i = 0; i < 100 && !c->http_status[0] && !c->closed; i++)
		pump(c, 10);
	return c->upgraded ? 0 : -1;
}

static int
client_open(struct client *c, const char *path)
{
	return client_open_hdr(c, path, NULL);
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
	double       elapsed, bps;

	pl = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "media"), "payload");
	if (!cJSON_IsString(pl)) {
		cJSON_Delete(j);
		return;
	}
	pcm = malloc(b64_decoded_max(strlen(pl->valuestring)));
	if (b64_decode(pcm, &n, pl->valuestring, strlen(pl->valuestring)) != 0
	    || n % (c->frame ? c->frame : 640) != 0
	    || n > 5 * (c->frame ? c->frame : 640) || n == 0)
		c->bad_frames++;
	free(pcm);
	if (c->first_media_us == 0)
		c->first_media_us = mono_us();
	c->media_bytes += n;
	elapsed = (double)(mono_us() - c->first_media_us) / 1e6;
	bps     = (double)(c->frame ? c->frame : 640) * 50.0;
	if ((double)c->media_bytes / bps - elapsed > c->max_ahead)
		c->max_ahead = (double)c->media_bytes / bps - elapsed;
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
		if (fx.pt.b)
			peer_poll(&fx.pt);
		if (fx.pc.b)
			peer_poll(&fx.pc);
		if (c != NULL && c->fd >= 0)
			client_read(c);
	} while (mono_us() < end);
}

/* ---- tests ------------------------------------------------------------ */

/* Starts the server with o's settings (NULL: defaults) over fresh bus
 * peers. */
static int
setup_with(const struct server_opts *o)
{
	static int         n;
	char               ut[64], uc[64];
	struct server_opts so = { 0 };

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
	if (o != NULL)
		so = *o;
	so.listen         = "127.0.0.1:0";
	so.stop_grace_ms  = so.stop_grace_ms ? so.stop_grace_ms : 300;
	so.log            = &fx.lg;
	so.metrics        = fx.m;
	so.bus_transcoder = fx.bt;
	so.bus_control    = fx.bc;
	TEST_EQ(server_start(&fx.srv, &so), 0);
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

static int
setup(void)
{
	return setup_with(NULL);
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
	static uint8_t pcm[32768];
	static char    js[49152];
	static char    b64[44000];

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
	/* After stop nothing more is sent: it would never be heard. */
	send_playback(sid, 16000, 3200);
	/* Exotel would close; this client does not, so the grace ends it. */
	for (int i = 0; i < 200 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1000);
	TEST_EQ(c.media_bytes, 32000);
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

/* ---- issue 3: marks, clear, DTMF hangup, auth, limits, rates --------- */

static const char *sid1 = "95be037f0ff02b427c3a4a59ae72198c";

/* A start shaped like the real captures (R1), with this stream_sid, rate
 * (JSON text: "\"8000\"" or 24000) and custom_parameters (JSON object
 * text, or NULL for absent). */
static void
send_start(
    struct client *c, const char *sid, const char *rate, const char *custom)
{
	char js[1024];

	snprintf(js, sizeof(js),
	    "{\"event\":\"start\",\"stream_sid\":\"%s\",\"sequence_number\":"
	    "\"1\",\"start\":{\"stream_sid\":\"%s\",\"call_sid\":"
	    "\"75b90b4b77ce9e6fe9a60a26f03d%.4s\",\"account_sid\":\"ezora2\","
	    "\"from\":\"+14129162450\",\"to\":\"08045680571\"%s%s,"
	    "\"media_format\":{\"encoding\":\"base64\",\"sample_rate\":%s,"
	    "\"bit_rate\":\"128kbps\"}}}",
	    sid, sid, sid + 28, custom ? ",\"custom_parameters\":" : "",
	    custom ? custom : "", rate);
	client_send(c, js);
}

static void
client_echo(struct client *c, const char *sid, const char *name)
{
	char js[256];

	snprintf(js, sizeof(js),
	    "{\"event\":\"mark\",\"sequence_number\":\"40\",\"stream_sid\":"
	    "\"%s\",\"mark\":{\"name\":\"%s\"}}",
	    sid, name);
	client_send(c, js);
}

static void
send_dtmf(struct client *c, const char *sid, const char *digit)
{
	char js[256];

	snprintf(js, sizeof(js),
	    "{\"event\":\"dtmf\",\"sequence_number\":3,\"stream_sid\":\"%s\","
	    "\"dtmf\":{\"duration\":\"200\",\"digit\":\"%s\"}}",
	    sid, digit);
	client_send(c, js);
}

/* The event of message i, or "" for non-JSON. */
static const char *
msg_event(const struct client *c, size_t i, char *buf, size_t cap)
{
	const char *p = strstr(c->msgs[i].data, "\"event\":\"");

	buf[0] = '\0';
	if (p != NULL)
		sscanf(p + 9, "%31[a-z]", buf);
	(void)cap;
	return buf;
}

/* The mark names received, in order; returns how many. */
static size_t
client_marks(const struct client *c, char (*names)[32], size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n && k < max; i++) {
		const char *p = strstr(c->msgs[i].data, "\"name\":\"");
		if (strstr(c->msgs[i].data, "\"event\":\"mark\"") && p)
			sscanf(p + 8, "%31[^\"]", names[k++]);
	}
	return k;
}

/* The value of a series on /metrics, or -1 when absent. */
static long long
metric_val(const char *series)
{
	size_t      len;
	char       *txt = metrics_render(fx.m, &len);
	char        want[256];
	const char *p;
	long long   v = -1;

	snprintf(want, sizeof(want), "\n%s ", series);
	if (txt != NULL && (p = strstr(txt, want)) != NULL)
		v = strtoll(p + strlen(want), NULL, 10);
	free(txt);
	return v;
}

static void
send_ctl(const char *sid, Exo__Frame *f)
{
	static int seq;

	f->call_id = (char *)sid;
	f->seq     = (uint64_t)++seq;
	bus_send(fx.pc.b, f);
	bus_flush(fx.pc.b);
}

/* Marks follow the audio (at least every interval, and at the end of the
 * burst); their echoes go to egress as marks, and playout frames say when
 * agent audio starts and stops playing. */
static int
test_marks(void)
{
	static struct client c;
	char                 names[64][32], ev[32];
	size_t               k, last_mark = 0, since = 0, worst = 0;

	if (setup_with(&(struct server_opts) { .mark_interval_ms = 300 }))
		return 1;
	TEST_EQ(client_open(&c, "/exotel?sample-rate=8000"), 0);
	c.frame = 320;
	send_start(&c, sid1, "\"8000\"", NULL);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	TEST_STREQ(fx.pc.start_mode, ""); /* egress decides */
	TEST_EQ(fx.pc.start_rate, 8000);

	send_playback(sid1, 8000, 16000); /* one second */
	for (int i = 0; i < 300; i++) {
		pump(&c, 10);
		if (c.media_bytes >= 16000 && c.n
		    && strcmp(msg_event(&c, c.n - 1, ev, sizeof(ev)), "mark")
		        == 0)
			break;
	}
	TEST_EQ(c.media_bytes, 16000);
	TEST_EQ(c.bad_frames, 0);
	/* The last message is the mark closing the burst. */
	TEST_STREQ(msg_event(&c, c.n - 1, ev, sizeof(ev)), "mark");
	k = client_marks(&c, names, 64);
	TEST_ASSERT(k >= 3 && k <= 12);
	for (size_t i = 0; i < k; i++) {
		char want[32];
		snprintf(want, sizeof(want), "exo-%zu", i + 1);
		TEST_STREQ(names[i], want);
	}
	/* No more than the interval plus a message between marks. */
	for (size_t i = 0; i < c.n; i++) {
		msg_event(&c, i, ev, sizeof(ev));
		if (strcmp(ev, "mark") == 0) {
			since     = 0;
			last_mark = i;
		} else if (strcmp(ev, "media") == 0) {
			since++;
			if (since > worst)
				worst = since;
		}
	}
	TEST_EQ(last_mark, c.n - 1);
	TEST_ASSERT(worst <= 4); /* 300 ms interval, 100 ms messages */
	TEST_ASSERT(fx.pc.playing_true >= 1);
	TEST_EQ(fx.pc.playing, 1);
	TEST_EQ(fx.pc.marks, 0);
	/* A restarted egress asks: it hears the call and what plays. */
	{
		Exo__Frame    f      = EXO__FRAME__INIT;
		Exo__Announce an     = EXO__ANNOUNCE__INIT;
		unsigned      before = fx.pc.playing_true;
		f.body_case          = EXO__FRAME__BODY_ANNOUNCE;
		f.announce           = &an;
		send_ctl(sid1, &f);
		for (int i = 0; i < 100 && fx.pc.reannounces == 0; i++)
			pump(&c, 10);
		pump(&c, 20);
		TEST_EQ(fx.pc.reannounces, 1);
		TEST_EQ(fx.pc.playing_true, before + 1);
	}

	/* Exotel echoes them all: forwarded, and playing ends. */
	for (size_t i = 0; i < k; i++)
		client_echo(&c, sid1, names[i]);
	for (int i = 0; i < 100 && (fx.pc.marks < k || fx.pc.playing); i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.marks, k);
	TEST_STREQ(fx.pc.mark, names[k - 1]);
	TEST_EQ(fx.pc.playing, 0);
	TEST_EQ(fx.pc.lag_ms, 0);
	TEST_EQ(metric_val("exoplex_mark_echoes_total{result=\"matched\"}"),
	    (long long)k);
	TEST_EQ(metric_val("exoplex_playout_lag_echoes_total{le=\"+Inf\"}"),
	    (long long)k);
	/* Every lag is under a second: at most lead + a message here. */
	TEST_EQ(metric_val("exoplex_playout_lag_echoes_total{le=\"1600\"}"),
	    (long long)k);
	TEST_ASSERT(metric_is("exoplex_agent_playing_calls 0"));
	TEST_EQ(
	    metric_val("exoplex_exotel_messages_out_total{event=\"mark\"}"),
	    (long long)k);

	/* A repeat is stale, a foreign name unknown: neither forwarded. */
	client_echo(&c, sid1, names[0]);
	client_echo(&c, sid1, "mark_1");
	client_echo(&c, "ffffffffffffffffffffffffffff198c", names[1]);
	for (int i = 0; i < 100
	     && metric_val("exoplex_mark_echoes_total{result=\"unknown\"}")
	         < 1;
	     i++)
		pump(&c, 10);
	pump(&c, 50);
	TEST_EQ(metric_val("exoplex_mark_echoes_total{result=\"stale\"}"), 1);
	TEST_EQ(
	    metric_val("exoplex_mark_echoes_total{result=\"unknown\"}"), 1);
	TEST_EQ(metric_val("exoplex_exotel_bad_input_total{kind=\"stream_sid_"
	                   "mismatch\"}"),
	    1);
	TEST_EQ(fx.pc.marks, k);
	client_close(&c);
	teardown();
	return 0;
}

/* A peer that never echoes: marks expire after their audio's expected
 * end + the timeout, and playing ends anyway. A late echo still counts. */
static int
test_mark_fallback(void)
{
	static struct client c;

	if (setup_with(&(struct server_opts) { .mark_timeout_ms = 100 }))
		return 1;
	TEST_EQ(client_open(&c, "/exotel"), 0);
	c.frame = 320;
	send_start(&c, sid1, "\"8000\"", NULL);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	send_playback(sid1, 8000, 3200); /* 200 ms */
	for (int i = 0; i < 300 && !(fx.pc.playing_true && !fx.pc.playing);
	     i++)
		pump(&c, 10);
	TEST_EQ(c.media_bytes, 3200);
	TEST_EQ(fx.pc.playing_true, 1);
	TEST_EQ(fx.pc.playing, 0);
	TEST_ASSERT(metric_is("exoplex_marks_expired_total 1"));
	client_echo(&c, sid1, "exo-1");
	for (int i = 0; i < 100 && fx.pc.marks == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.marks, 1);
	TEST_EQ(metric_val("exoplex_mark_echoes_total{result=\"late\"}"), 1);
	client_close(&c);
	teardown();
	return 0;
}

/* clear from egress: Exotel is told, nothing unsent follows, pending
 * marks are forgotten, and playback resumes with fresh audio. */
static int
test_clear(void)
{
	static struct client c;
	Exo__Frame           f  = EXO__FRAME__INIT;
	Exo__Clear           cl = EXO__CLEAR__INIT;
	char                 ev[32], names[64][32];
	size_t               at = 0, k, media_after = 0;

	if (setup_with(&(struct server_opts) { .mark_interval_ms = 100 }))
		return 1;
	TEST_EQ(client_open(&c, "/exotel"), 0);
	c.frame = 320;
	send_start(&c, sid1, "\"8000\"", NULL);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	send_playback(sid1, 8000, 32000); /* two seconds */
	for (int i = 0; i < 100 && c.media_bytes < 4800; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.playing, 1);

	cl.reason   = "session replaced";
	f.body_case = EXO__FRAME__BODY_CLEAR;
	f.clear     = &cl;
	send_ctl(sid1, &f);
	for (int i = 0; i < 100 && at == 0; i++) {
		pump(&c, 10);
		for (size_t j = 0; j < c.n; j++)
			if (strcmp(msg_event(&c, j, ev, sizeof(ev)), "clear")
			    == 0)
				at = j;
	}
	TEST_ASSERT(at > 0);
	TEST_ASSERT(strstr(c.msgs[at].data, sid1) != NULL);
	TEST_STREQ(c.msgs[at].data,
	    "{\"event\":\"clear\",\"stream_sid\":"
	    "\"95be037f0ff02b427c3a4a59ae72198c\"}");
	pump(&c, 300);
	for (size_t j = at + 1; j < c.n; j++)
		if (strcmp(msg_event(&c, j, ev, sizeof(ev)), "media") == 0)
			media_after++;
	TEST_EQ(media_after, 0);
	TEST_ASSERT(c.media_bytes < 32000);
	for (int i = 0; i < 100 && fx.pc.playing; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.playing, 0);
	TEST_ASSERT(metric_is("exoplex_clears_total 1"));
	TEST_ASSERT(
	    metric_is("exoplex_exotel_messages_out_total{event=\"clear\"} 1"));

	/* Echoes of marks sent before the clear are stale now. */
	k = client_marks(&c, names, 64);
	TEST_ASSERT(k >= 1);
	client_echo(&c, sid1, names[0]);
	for (int i = 0; i < 100
	     && metric_val("exoplex_mark_echoes_total{result=\"stale\"}") < 1;
	     i++)
		pump(&c, 10);
	TEST_EQ(metric_val("exoplex_mark_echoes_total{result=\"stale\"}"), 1);
	TEST_EQ(fx.pc.marks, 0);

	/* New audio plays again, and its marks carry on numbering. */
	send_playback(sid1, 8000, 3200);
	for (int i = 0; i < 200 && client_marks(&c, names, 64) == k; i++)
		pump(&c, 10);
	TEST_ASSERT(client_marks(&c, names, 64) >= k + 1);
	{
		char want[32];
		snprintf(want, sizeof(want), "exo-%zu", k + 1);
		TEST_STREQ(names[k], want);
	}
	client_close(&c);
	teardown();
	return 0;
}

/* A digit in EXOPLEX_DTMF_HANGUP ends the call: dtmf still reaches
 * egress, then call_stop{stopped} and a normal close. */
static int
test_dtmf_hangup(void)
{
	static struct client c;

	if (setup_with(&(struct server_opts) { .dtmf_hangup = "#*" }))
		return 1;
	TEST_EQ(client_open(&c, "/exotel"), 0);
	send_start(&c, sid1, "\"8000\"", NULL);
	send_dtmf(&c, sid1, "5");
	for (int i = 0; i < 100 && fx.pc.dtmfs == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.dtmfs, 1);
	pump(&c, 50);
	TEST_ASSERT(!c.closed);
	send_dtmf(&c, sid1, "#");
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_ASSERT(c.closed);
	TEST_EQ(c.close_code, 1000);
	for (int i = 0; i < 100 && fx.pt.stops == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.dtmfs, 2);
	TEST_STREQ(fx.pc.dtmf, "#");
	TEST_EQ(fx.pc.stops, 1);
	TEST_STREQ(fx.pc.stop_reason, "stopped");
	TEST_STREQ(fx.pt.stop_reason, "stopped");
	pump(&c, 50);
	TEST_EQ(fx.pc.stops, 1);
	TEST_ASSERT(metric_is("exoplex_dtmf_hangups_total 1"));
	TEST_ASSERT(
	    metric_is("exoplex_calls_ended_total{reason=\"stopped\"} 1"));
	client_close(&c);
	teardown();
	return 0;
}

/* Opens a call with these headers/path; returns 1 if it went live. */
static int
try_call(struct client *c, const char *path, const char *hdrs, const char *sid,
    const char *custom)
{
	unsigned before = fx.pt.starts;

	if (client_open_hdr(c, path, hdrs) != 0)
		return 0;
	send_start(c, sid, "\"8000\"", custom);
	for (int i = 0; i < 100 && fx.pt.starts == before && !c->closed; i++)
		pump(c, 10);
	return fx.pt.starts > before;
}

static int
test_auth(void)
{
	static struct client c;
	struct auth         *a;
	char                 err[128];
	const char          *s2 = "a000000000000000000000000000aa02",
	           *s3          = "a000000000000000000000000000aa03",
	           *s4          = "a000000000000000000000000000aa04",
	           *s5          = "a000000000000000000000000000aa05",
	           *s6          = "a000000000000000000000000000aa06";

	TEST_EQ(auth_alloc(&a, "exo:pw", "tok1", err, sizeof(err)), 0);
	if (setup_with(&(struct server_opts) { .auth = a }))
		return 1;

	/* Basic: right goes live, wrong is 401 at the upgrade. */
	TEST_ASSERT(try_call(
	    &c, "/exotel", "Authorization: Basic ZXhvOnB3\r\n", sid1, NULL));
	TEST_STREQ(fx.pc.start_mode, ""); /* egress decides */
	client_close(&c);
	TEST_ASSERT(
	    client_open_hdr(&c, "/exotel", "Authorization: Basic ZXhvOnB4\r\n")
	    != 0);
	TEST_ASSERT(strstr(c.http_status, " 401") != NULL);
	client_close(&c);

	/* Bearer. */
	TEST_ASSERT(try_call(
	    &c, "/exotel", "Authorization: Bearer tok1\r\n", s2, NULL));
	client_close(&c);
	TEST_ASSERT(
	    client_open_hdr(&c, "/exotel", "Authorization: Bearer tok2\r\n")
	    != 0);
	TEST_ASSERT(strstr(c.http_status, " 401") != NULL);
	client_close(&c);

	/* ?token=. */
	TEST_ASSERT(try_call(
	    &c, "/exotel?sample-rate=8000&token=tok1", NULL, s3, NULL));
	client_close(&c);
	TEST_ASSERT(client_open(&c, "/exotel?token=tok2") != 0);
	TEST_ASSERT(strstr(c.http_status, " 401") != NULL);
	client_close(&c);

	/* Nothing at the upgrade: custom_parameters.token decides, and it
	 * is taken out of the call_start. */
	TEST_ASSERT(try_call(&c, "/exotel", NULL, s4,
	    "{\"token\":\"tok1\",\"persona\":\"sales\"}"));
	TEST_EQ(fx.pt.n_custom, 1);
	TEST_STREQ(fx.pt.start_custom, "persona=sales");
	TEST_EQ(fx.pc.n_custom, 1);
	client_close(&c);
	for (int i = 0; i < 100 && fx.pt.stops < 4; i++)
		pump(NULL, 10);
	TEST_EQ(fx.pt.stops, 4);

	/* No valid credentials at start: 1008, egress hears of a refused
	 * call (never a live one), the transcoder nothing. */
	TEST_ASSERT(!try_call(&c, "/exotel", NULL, s5, NULL));
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_EQ(c.close_code, 1008);
	client_close(&c);
	TEST_ASSERT(!try_call(&c, "/exotel", NULL, s6,
	    "{\"token\":\"tok2\",\"persona\":\"sales\"}"));
	for (int i = 0; i < 100 && !c.closed; i++)
		pump(&c, 10);
	TEST_EQ(c.close_code, 1008);
	for (int i = 0; i < 100 && fx.pc.refused < 2; i++)
		pump(&c, 10);
	client_close(&c);
	TEST_EQ(fx.pc.refused, 2);
	TEST_STREQ(fx.pc.start_mode, ""); /* egress decides */
	TEST_EQ(fx.pc.n_custom, 1); /* the wrong token is not passed on */
	TEST_STREQ(fx.pc.stop_reason, "auth_failed");
	TEST_EQ(fx.pc.stops, 6);
	TEST_EQ(fx.pt.starts, 4);
	TEST_EQ(fx.pt.stops, 4);

	TEST_ASSERT(metric_is("exoplex_auth_refused_total{at=\"upgrade\"} 3"));
	TEST_ASSERT(metric_is("exoplex_auth_refused_total{at=\"start\"} 2"));
	TEST_ASSERT(metric_is("exoplex_auth_accepted_total{via=\"basic\"} 1"));
	TEST_ASSERT(
	    metric_is("exoplex_auth_accepted_total{via=\"bearer\"} 1"));
	TEST_ASSERT(metric_is("exoplex_auth_accepted_total{via=\"query\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_auth_accepted_total{via=\"custom_parameters\"} 1"));
	TEST_ASSERT(metric_is(
	    "exoplex_calls_refused_total{reason=\"auth_failed\"} 2"));
	TEST_ASSERT(
	    metric_is("exoplex_calls_ended_total{reason=\"auth_failed\"} 2"));
	teardown();
	auth_free(a);
	return 0;
}

/* Over EXOPLEX_MAX_CALLS: 1013, reported as no_capacity; and sockets
 * waiting for start are capped (503 at the upgrade). */
/* /readyz follows egress: not ready while egress is away or reports every
 * PersonaPlex server busy, ready again when one frees up. */
static int
test_readyz_capacity(void)
{
	Exo__Frame    f   = EXO__FRAME__INIT;
	Exo__Capacity cap = EXO__CAPACITY__INIT;
	char          d[512];

	if (setup())
		return 1;
	/* Before egress has said anything, capacity is unknown: ready. */
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 1);
	TEST_ASSERT(strstr(d, "capacity unknown") != NULL);

	f.body_case = EXO__FRAME__BODY_CAPACITY;
	f.capacity  = &cap;
	f.call_id   = "";
	cap.free    = 0;
	cap.total   = 2;
	bus_send(fx.pc.b, &f);
	for (int i = 0; i < 100 && server_ready(fx.srv, d, sizeof(d)); i++)
		pump(NULL, 10);
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 0);
	TEST_ASSERT(strstr(d, "0 of 2 free (no capacity)") != NULL);

	cap.free = 1;
	bus_send(fx.pc.b, &f);
	for (int i = 0; i < 100 && !server_ready(fx.srv, d, sizeof(d)); i++)
		pump(NULL, 10);
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 1);
	TEST_ASSERT(strstr(d, "1 of 2 free") != NULL);

	/* Egress gone: not ready, whatever it said last. */
	bus_close(fx.pc.b);
	fx.pc.b = NULL;
	for (int i = 0; i < 200 && bus_peers(fx.bc); i++)
		pump(NULL, 10);
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 0);
	TEST_ASSERT(strstr(d, "egress not connected") != NULL);
	teardown();
	return 0;
}

/* Graceful stop: after server_drain new upgrades get 503 and /readyz
 * says draining, while the live call goes on; server_end_calls ends it
 * with call_stop and a normal close. */
static int
test_drain(void)
{
	static struct client a, b;
	char                 d[512];
	unsigned             audio;

	if (setup())
		return 1;
	TEST_ASSERT(try_call(&a, "/exotel", NULL, sid1, NULL));
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 1);
	server_drain(fx.srv);
	TEST_EQ(server_ready(fx.srv, d, sizeof(d)), 0);
	TEST_ASSERT(strstr(d, "draining") != NULL);
	TEST_ASSERT(metric_is("exoplex_draining 1"));

	TEST_ASSERT(client_open(&b, "/exotel") != 0);
	TEST_ASSERT(strstr(b.http_status, " 503") != NULL);
	client_close(&b);
	TEST_ASSERT(
	    metric_is("exoplex_exotel_upgrades_refused_draining_total 1"));

	/* The live call still carries audio both ways. */
	audio = fx.pt.audio_frames;
	send_media(&a, sid1, 320);
	for (int i = 0; i < 100 && fx.pt.audio_frames == audio; i++)
		pump(&a, 10);
	TEST_ASSERT(fx.pt.audio_frames > audio);
	send_playback(sid1, 8000, 3200);
	for (int i = 0; i < 100 && a.media_bytes == 0; i++)
		pump(&a, 10);
	TEST_ASSERT(a.media_bytes > 0);
	TEST_EQ(fx.pt.stops, 0);
	TEST_EQ(server_open_sockets(fx.srv), 1);

	server_end_calls(fx.srv, "bridge_error");
	for (int i = 0; i < 200 && !a.closed; i++)
		pump(&a, 10);
	TEST_ASSERT(a.closed);
	TEST_EQ(a.close_code, 1000);
	for (int i = 0; i < 100 && fx.pc.stops == 0; i++)
		pump(NULL, 10);
	TEST_STREQ(fx.pc.stop_reason, "bridge_error");
	client_close(&a);
	for (int i = 0; i < 200 && server_open_sockets(fx.srv); i++)
		pump(NULL, 10);
	TEST_EQ(server_open_sockets(fx.srv), 0);
	teardown();
	return 0;
}

static int
test_capacity(void)
{
	static struct client a, b;
	const char          *s2 = "b000000000000000000000000000bb02";
	int                  fds[70], n = 0, refused = 0;

	if (setup_with(&(struct server_opts) { .max_calls = 1 }))
		return 1;
	TEST_ASSERT(try_call(&a, "/exotel", NULL, sid1, NULL));
	TEST_ASSERT(!try_call(&b, "/exotel", NULL, s2, NULL));
	for (int i = 0; i < 100 && !b.closed; i++)
		pump(&b, 10);
	TEST_EQ(b.close_code, 1013);
	for (int i = 0; i < 100 && fx.pc.refused == 0; i++)
		pump(&b, 10);
	TEST_EQ(fx.pc.refused, 1);
	TEST_STREQ(fx.pc.stop_reason, "no_capacity");
	TEST_EQ(fx.pt.starts, 1);
	TEST_ASSERT(metric_is(
	    "exoplex_calls_refused_total{reason=\"no_capacity\"} 1"));
	client_close(&b);

	/* 64 sockets may wait for their start; the 65th gets 503. */
	for (int i = 0; i < 66; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		char               req[256], rsp[256];
		int                fd = socket(AF_INET, SOCK_STREAM, 0);
		ssize_t            r  = 0;

		sa.sin_port        = htons((uint16_t)fx.port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		TEST_ASSERT(fd >= 0);
		TEST_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		fds[n++] = fd;
		snprintf(req, sizeof(req),
		    "GET /exotel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: "
		    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
		    "13\r\n\r\n");
		TEST_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
		fcntl(fd, F_SETFL, O_NONBLOCK);
		for (int j = 0; j < 100; j++) {
			pump(&a, 2);
			if ((r = read(fd, rsp, sizeof(rsp) - 1)) > 0)
				break;
		}
		TEST_ASSERT(r > 0);
		rsp[r] = '\0';
		if (strstr(rsp, " 503") != NULL)
			refused++;
		else
			TEST_ASSERT(strstr(rsp, " 101") != NULL);
	}
	TEST_EQ(refused, 2);
	TEST_ASSERT(metric_is(
	    "exoplex_exotel_bad_input_total{kind=\"too_many_pending\"} 2"));
	for (int i = 0; i < n; i++)
		close(fds[i]);
	pump(&a, 100);

	/* The live call was never touched; after it ends a new one fits. */
	TEST_EQ(fx.pt.stops, 0);
	client_close(&a);
	for (int i = 0; i < 100 && fx.pt.stops == 0; i++)
		pump(NULL, 10);
	TEST_ASSERT(try_call(&b, "/exotel", NULL, s2, NULL));
	client_close(&b);
	teardown();
	return 0;
}

/* Each kind of bad input is counted, and a good call beside it keeps
 * its audio. */
static int
test_bad_input(void)
{
	static struct client good, x;
	const char          *s2 = "c000000000000000000000000000cc02";
	unsigned             frames;
	long long            flood;

	if (setup_with(&(struct server_opts) { .start_ms = 300 }))
		return 1;
	TEST_ASSERT(try_call(&good, "/exotel", NULL, sid1, NULL));

	/* Media before start, invalid base64, then no start at all. */
	TEST_EQ(client_open(&x, "/exotel"), 0);
	send_media(&x, s2, 320);
	client_send(
	    &x, "{\"event\":\"media\",\"media\":{\"payload\":\"@@@@\"}}");
	for (int i = 0; i < 200 && !x.closed; i++)
		pump(&x, 10);
	TEST_ASSERT(x.closed);
	TEST_EQ(x.close_code, 1008);
	client_close(&x);

	/* A start without a call_sid. */
	TEST_EQ(client_open(&x, "/exotel"), 0);
	client_send(&x,
	    "{\"event\":\"start\",\"start\":{\"stream_sid\":\""
	    "c000000000000000000000000000cc02\"}}");
	for (int i = 0; i < 100 && !x.closed; i++)
		pump(&x, 10);
	TEST_EQ(x.close_code, 1008);
	client_close(&x);

	/* On the good call: a second start, another stream's media. */
	send_start(&good, sid1, "\"8000\"", NULL);
	send_media(&good, s2, 320);
	/* A flood of messages, and audio far beyond real time. */
	for (int i = 0; i < 1500; i++)
		client_send(&good, "{\"event\":\"connected\"}");
	pump(&good, 300); /* the budget refills */
	frames = fx.pt.audio_frames;
	for (int i = 0; i < 40; i++)
		send_media(&good, sid1, 1600); /* 4 s at 8 kHz, at once */
	for (int i = 0; i < 100 && fx.pt.audio_frames < frames + 20; i++)
		pump(&good, 10);
	pump(&good, 50);
	TEST_ASSERT(fx.pt.audio_frames >= frames + 20);
	TEST_ASSERT(fx.pt.audio_frames < frames + 40);

	TEST_EQ(
	    metric_val(
	        "exoplex_exotel_bad_input_total{kind=\"media_before_start\"}"),
	    1);
	TEST_EQ(metric_val(
	            "exoplex_exotel_bad_input_total{kind=\"invalid_base64\"}"),
	    1);
	TEST_EQ(metric_val(
	            "exoplex_exotel_bad_input_total{kind=\"start_timeout\"}"),
	    1);
	TEST_EQ(metric_val("exoplex_exotel_bad_input_total{kind="
	                   "\"start_missing_field\"}"),
	    1);
	TEST_EQ(
	    metric_val(
	        "exoplex_exotel_bad_input_total{kind=\"duplicate_start\"}"),
	    1);
	TEST_EQ(metric_val("exoplex_exotel_bad_input_total{kind="
	                   "\"stream_sid_mismatch\"}"),
	    1);
	flood = metric_val(
	    "exoplex_exotel_bad_input_total{kind=\"message_flood\"}");
	TEST_ASSERT(flood > 0 && flood < 1500);
	TEST_ASSERT(
	    metric_val(
	        "exoplex_exotel_bad_input_total{kind=\"audio_too_fast\"}")
	    > 0);

	/* The good call is live and carries audio at real time. */
	TEST_EQ(fx.pt.stops, 0);
	TEST_ASSERT(!good.closed);
	pump(&good, 1000);
	frames = fx.pt.audio_frames;
	send_media(&good, sid1, 320);
	for (int i = 0; i < 100 && fx.pt.audio_frames == frames; i++)
		pump(&good, 10);
	TEST_EQ(fx.pt.audio_frames, frames + 1);
	client_close(&good);
	teardown();
	return 0;
}

/* 24 kHz from a numeric sample_rate (URL says so too, other spelling):
 * playback goes out in whole 960-byte frames. */
static int
test_rate_24k(void)
{
	static struct client c;

	if (setup())
		return 1;
	TEST_EQ(client_open(&c, "/exotel?sample_rate=24000"), 0);
	c.frame = 960;
	send_start(&c, sid1, "24000", "{}");
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.start_rate, 24000);
	TEST_ASSERT(fx.pt.custom_present);
	TEST_EQ(fx.pt.n_custom, 0);
	send_media(&c, sid1, 960);
	send_playback(sid1, 24000, 24000); /* 500 ms */
	for (int i = 0; i < 300 && c.media_bytes < 24000; i++)
		pump(&c, 10);
	TEST_EQ(c.media_bytes, 24000);
	TEST_EQ(c.bad_frames, 0);
	TEST_ASSERT(c.max_ahead <= 0.4);
	TEST_EQ(fx.pt.audio_rate, 24000);
	/* 400 ms in one message (26 kB of JSON): lws hands it over in
	 * pieces of rx_buffer_size, joined before it is parsed. */
	send_media(&c, sid1, 19200);
	for (int i = 0; i < 300 && fx.pt.audio_bytes < 960 + 19200; i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.audio_bytes, 960 + 19200);
	TEST_ASSERT(
	    metric_is("exoplex_exotel_messages_in_total{event=\"media\"} 2"));
	client_close(&c);
	teardown();
	return 0;
}

static void
send_mode(const char *sid, const char *mode)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__CallMode m = EXO__CALL_MODE__INIT;

	m.mode      = (char *)mode;
	m.by        = "persona";
	f.body_case = EXO__FRAME__BODY_CALL_MODE;
	f.call_mode = &m;
	send_ctl(sid, &f);
}

/* Agent assist (the one-way Stream applet): a call in transcribe mode,
 * by its custom parameter or by egress's call_mode, gets nothing back
 * on its socket whatever arrives on the bus, and its audio goes to
 * egress only. The mode travels in re-announces and in call_stop. */
static int
test_transcribe(void)
{
	static struct client c, d, e;
	const char          *sid2 = "95be037f0ff02b427c3a4a59ae72777x";
	const char          *sid3 = "95be037f0ff02b427c3a4a59ae72888y";
	Exo__Frame           f    = EXO__FRAME__INIT;
	Exo__Clear           k    = EXO__CLEAR__INIT;
	Exo__Announce        an   = EXO__ANNOUNCE__INIT;

	if (setup())
		return 1;
	/* By the custom parameter, known at start. */
	TEST_EQ(client_open(&c, "/exotel?sample-rate=8000"), 0);
	send_start(&c, sid1, "\"8000\"", "{\"mode\":\"Transcribe\"}");
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	TEST_STREQ(fx.pc.start_mode, "transcribe");
	TEST_STREQ(fx.pt.start_mode, "transcribe");
	for (int i = 0; i < 5; i++)
		send_media(&c, sid1, 320);
	for (int i = 0; i < 100 && fx.pc.audio_frames < 5; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.audio_frames, 5);
	TEST_EQ(fx.pt.audio_frames, 0);

	/* Decided by egress after an agent-less start. */
	TEST_EQ(client_open(&d, "/exotel?sample-rate=8000"), 0);
	send_start(&d, sid2, "\"8000\"", NULL);
	for (int i = 0; i < 100 && fx.pc.starts < 2; i++)
		pump(&d, 10);
	TEST_STREQ(fx.pc.start_mode, "");
	send_media(&d, sid2, 320);
	for (int i = 0; i < 100 && fx.pt.audio_frames < 1; i++)
		pump(&d, 10);
	TEST_EQ(fx.pt.audio_frames, 1); /* undecided: as for an agent */
	send_mode(sid2, "transcribe");
	pump(&d, 50);
	send_media(&d, sid2, 320);
	for (int i = 0; i < 100 && fx.pc.audio_frames < 7; i++)
		pump(&d, 10);
	TEST_EQ(fx.pc.audio_frames, 7);
	TEST_EQ(fx.pt.audio_frames, 1);

	/* Whatever the bus says, nothing goes to either socket. */
	send_playback(sid1, 8000, 16000);
	send_playback(sid2, 8000, 16000);
	k.reason    = "persona_reconnected";
	f.body_case = EXO__FRAME__BODY_CLEAR;
	f.clear     = &k;
	send_ctl(sid2, &f);
	pump(&c, 300);
	pump(&d, 300);
	TEST_EQ(c.n, 0);
	TEST_EQ(d.n, 0);
	TEST_ASSERT(
	    metric_is("exoplex_exotel_messages_out_total{event=\"media\"} 0"));

	/* By the URL's query, when start's custom_parameters lack it. */
	TEST_EQ(
	    client_open(&e, "/exotel?sample-rate=8000&mode=TRANSCRIBE"), 0);
	send_start(&e, sid3, "\"8000\"", "{\"desk\":\"7\"}");
	for (int i = 0; i < 100 && fx.pc.starts < 3; i++)
		pump(&e, 10);
	TEST_STREQ(fx.pc.start_mode, "transcribe");

	/* A peer that forgot the call hears its mode again. */
	f           = (Exo__Frame)EXO__FRAME__INIT;
	f.body_case = EXO__FRAME__BODY_ANNOUNCE;
	f.announce  = &an;
	f.call_id   = (char *)sid2;
	f.seq       = 99;
	bus_send(fx.pt.b, &f);
	bus_flush(fx.pt.b);
	for (int i = 0; i < 100 && fx.pt.reannounces == 0; i++)
		pump(&d, 10);
	TEST_STREQ(fx.pt.re_mode, "transcribe");

	/* An agent after all (a persona says so): audio to the transcoder
	 * again; and the end says the mode. */
	send_mode(sid1, "agent");
	pump(&c, 50);
	send_media(&c, sid1, 320);
	for (int i = 0; i < 100 && fx.pt.audio_frames < 2; i++)
		pump(&c, 10);
	TEST_EQ(fx.pt.audio_frames, 2);
	client_send(&d,
	    "{\"event\":\"stop\",\"stream_sid\":\"95be037f0ff02b427c3a4a59a"
	    "e72777x\",\"stop\":{\"reason\":\"callended\"}}");
	for (int i = 0; i < 100 && fx.pc.stops == 0; i++)
		pump(&d, 10);
	TEST_STREQ(fx.pc.stop_mode, "transcribe");
	TEST_STREQ(fx.pt.stop_mode, "transcribe");
	client_close(&c);
	client_close(&d);
	client_close(&e);
	teardown();
	return 0;
}

/* Exotel stops reading: the kernel's buffers fill, lws holds part of a
 * message, the rest wait in the queue, and after write_stall_ms the call
 * is dropped as stalled; never as a failed write, which is what writing
 * again while lws holds part of a message gets (a short count). */
static int
test_stalled_reader(void)
{
	static struct client c;
	struct server_opts   o = { .write_stall_ms = 1500, .send_buffer = 16384 };
	const char          *sid = "95be037f0ff02b427c3a4a59ae72198c";
	const char *stalled = "exoplex_exotel_bad_input_total{kind=\"write_"
	                      "stalled\"} 1";
	int         rc;

	if (setup_with(&o))
		return 1;
	client_rcvbuf = 4096;
	rc            = client_open(&c, "/exotel?sample-rate=8000");
	client_rcvbuf = 0;
	TEST_EQ(rc, 0);
	client_send(&c, "{\"event\": \"connected\"}");
	client_send(&c, start_16k);
	for (int i = 0; i < 100 && fx.pc.starts == 0; i++)
		pump(&c, 10);
	TEST_EQ(fx.pc.starts, 1);
	for (int i = 0; i < 10; i++)
		send_playback(sid, 16000, 64000); /* 20 s */
	/* From here on the client reads nothing. */
	for (int i = 0; i < 1500 && !metric_is(stalled); i++)
		pump(NULL, 10);
	TEST_ASSERT(metric_is(stalled));
	client_close(&c);
	teardown();
	return 0;
}

TEST_MAIN(TEST(test_drain), TEST(test_call), TEST(test_refusals),
    TEST(test_hangup_and_announce), TEST(test_marks), TEST(test_mark_fallback),
    TEST(test_clear), TEST(test_dtmf_hangup), TEST(test_auth),
    TEST(test_capacity), TEST(test_readyz_capacity), TEST(test_bad_input),
    TEST(test_rate_24k), TEST(test_transcribe), TEST(test_stalled_reader))
