/*
 * testsrv.c - a tiny bot server for exoplex-call's own end-to-end test.
 *
 * Speaks the bot side of Exotel's protocol on ws://127.0.0.1:PORT/exotel:
 * checks what the simulator sends (connected, then a start shaped like
 * the real captures, media with consecutive sequence numbers and chunks
 * of the advertised rate, stop), and answers in one of two modes:
 *   echo: plays the caller's audio back in 100 ms messages of whole
 *         frames, with a mark after each message and an optional clear;
 *   bad:  sends one of each malformed message exoplex-call must flag.
 * --ping sends a ping after every mark and checks each pong carries its
 * payload back; --close-code ends the call with another code than 1000.
 * It serves --conns connections, then prints one JSON line of what it
 * saw and exits 0 when everything it checked was right, 1 otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "base64.h"
#include "clock.h"

#define MAXQ 64

struct outmsg {
	char  *data; /* LWS_PRE + payload */
	size_t len;
	int    wp; /* LWS_WRITE_TEXT, _BINARY or _PING */
};

struct conn {
	struct lws   *wsi;
	struct srv   *srv;
	int           rate;
	char          sid[80];
	char          call_sid[80];
	unsigned      last_seq, last_chunk, media;
	bool          got_connected, got_start, got_stop;
	char          stop_reason[32];
	uint8_t      *pcm; /* caller audio waiting to be echoed */
	size_t        pcm_len, pcm_cap;
	struct outmsg q[MAXQ];
	size_t        qh, qn;
	unsigned      marks_sent, marks_back, dtmf, pings, pongs;
	char          digits[64];
	uint64_t      start_us;
	uint64_t      first_media_us, last_media_us, max_gap_us;
	bool          cleared;
	char         *rx;
	size_t        rx_len, rx_cap;
	bool          done;
};

struct srv {
	struct lws_context    *ctx;
	lws_sorted_usec_list_t sul;
	const char            *mode;
	int                    clear_at_ms;
	int                    conns_left;
	bool                   close_on_stop;
	bool                   ping;
	int                    close_code;
	int                    errors;
	char                   first_error[256];
	struct conn           *conns[1024]; /* open connections */
	struct conn            report;
	const char            *auth; /* required Authorization value */
	unsigned               refused;
};

static void
srv_error(struct srv *s, const char *fmt, const char *arg)
{
	if (!s->errors++)
		snprintf(s->first_error, sizeof(s->first_error), fmt, arg);
	fprintf(stderr, "testsrv: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

static void
enqueue(struct conn *c, const char *data, size_t len, int wp)
{
	if (c->qn - c->qh == MAXQ) {
		srv_error(c->srv, "%s", "send queue full");
		return;
	}
	struct outmsg *m = &c->q[c->qn % MAXQ];
	m->data          = malloc(LWS_PRE + len + 1);
	if (!m->data)
		return;
	memcpy(m->data + LWS_PRE, data, len);
	m->len    = len;
	m->wp     = wp;
	c->qn++;
	lws_callback_on_writable(c->wsi);
}

static void
enqueue_str(struct conn *c, const char *s)
{
	enqueue(c, s, strlen(s), LWS_WRITE_TEXT);
}

static void
send_media(struct conn *c, const uint8_t *pcm, size_t n, const char *sid)
{
	char *b64 = malloc(b64_encoded_len(n) + 1);
	char *msg = malloc(b64_encoded_len(n) + 200);
	if (b64 && msg) {
		b64_encode(b64, pcm, n);
		if (sid)
			sprintf(msg,
			    "{\"event\":\"media\",\"stream_sid\":\"%s\","
			    "\"media\":{\"payload\":\"%s\"}}",
			    sid, b64);
		else
			sprintf(msg,
			    "{\"event\":\"media\",\"media\":{"
			    "\"payload\":\"%s\"}}",
			    b64);
		enqueue_str(c, msg);
	}
	free(b64);
	free(msg);
}

/* One of each thing a bot must never send (bad mode). */
static void
send_bad(struct conn *c)
{
	char    msg[512];
	uint8_t odd[321] = { 0 };

	enqueue_str(c, "{\"event\":\"media\","); /* invalid_json */
	enqueue_str(c, "{\"stream_sid\":\"x\"}"); /* missing_event */
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"hello\",\"stream_sid\":\"%s\"}", c->sid);
	enqueue_str(c, msg); /* unknown_event */
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"media\",\"stream_sid\":\"%s\",\"media\":{}}",
	    c->sid);
	enqueue_str(c, msg); /* missing_payload */
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"media\",\"stream_sid\":\"%s\",\"media\":{"
	    "\"payload\":"
	    "\"AAA\"}}",
	    c->sid);
	enqueue_str(c, msg); /* invalid_base64 */
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"media\",\"stream_sid\":\"%s\",\"media\":{"
	    "\"payload\":"
	    "\"\"}}",
	    c->sid);
	enqueue_str(c, msg); /* empty_payload */
	send_media(c, odd, 321, c->sid); /* partial_frame */
	send_media(c, odd, 320, "nope"); /* stream_sid_mismatch */
	send_media(c, odd, 320, NULL); /* tolerated, noted */
	enqueue(c, "\x01\x02", 2, LWS_WRITE_BINARY); /* binary_frame */
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"mark\",\"stream_sid\":\"%s\",\"mark\":{}}", c->sid);
	enqueue_str(c, msg); /* missing_mark_name */
	/* payload_too_large and (6 s queued) lead_over_limit; then clear so
	 * the lead does not stay over the limit. */
	size_t   big = 100160;
	uint8_t *z   = calloc(1, big);
	if (z)
		send_media(c, z, big, c->sid);
	free(z);
	snprintf(msg, sizeof(msg),
	    "{\"event\":\"clear\",\"stream_sid\":\"%s\"}", c->sid);
	enqueue_str(c, msg);
}

static void
check_start(struct conn *c, const char *raw, const cJSON *root)
{
	struct srv  *s = c->srv;
	const cJSON *st, *mf, *sid, *csid, *sr;

	/* The real captures' key order and string types. */
	if (strncmp(raw, "{\"event\":\"start\",\"stream_sid\":\"", 31) != 0)
		srv_error(
		    s, "start does not begin like the captures: %.60s", raw);
	if (!strstr(
	        raw, "\"sequence_number\":\"1\",\"start\":{\"stream_sid\":"))
		srv_error(s, "%s", "start: sequence_number/start order");
	st   = cJSON_GetObjectItemCaseSensitive(root, "start");
	sid  = cJSON_GetObjectItemCaseSensitive(st, "stream_sid");
	csid = cJSON_GetObjectItemCaseSensitive(st, "call_sid");
	mf   = cJSON_GetObjectItemCaseSensitive(st, "media_format");
	sr   = cJSON_GetObjectItemCaseSensitive(mf, "sample_rate");
	if (!cJSON_IsString(sid) || !cJSON_IsString(csid)
	    || strlen(sid->valuestring) != 32
	    || strlen(csid->valuestring) != 32
	    || strcmp(sid->valuestring + 28, csid->valuestring + 28) != 0) {
		srv_error(s, "%s", "start: sids are not 32 chars sharing 4");
		return;
	}
	if (!cJSON_IsString(sr)
	    || !cJSON_IsString(cJSON_GetObjectItem(mf, "bit_rate"))) {
		srv_error(s, "%s", "start: sample_rate/bit_rate not strings");
		return;
	}
	if (!cJSON_GetObjectItem(st, "account_sid")
	    || !cJSON_GetObjectItem(st, "from")
	    || !cJSON_GetObjectItem(st, "to"))
		srv_error(s, "%s", "start: missing account_sid/from/to");
	snprintf(c->sid, sizeof(c->sid), "%s", sid->valuestring);
	snprintf(c->call_sid, sizeof(c->call_sid), "%s", csid->valuestring);
	c->rate      = atoi(sr->valuestring);
	c->got_start = true;
	c->start_us  = mono_us();
	if (!strcmp(s->mode, "bad"))
		send_bad(c);
}

static unsigned
num(const cJSON *j)
{
	if (cJSON_IsString(j))
		return (unsigned)strtoul(j->valuestring, NULL, 10);
	if (cJSON_IsNumber(j))
		return (unsigned)j->valuedouble;
	return 0;
}

static void
on_text(struct conn *c, const char *raw, size_t len)
{
	struct srv *s    = c->srv;
	cJSON      *root = cJSON_ParseWithLength(raw, len);
	const char *ev;

	if (!root) {
		srv_error(s, "%s", "client sent invalid JSON");
		return;
	}
	ev = cJSON_GetStringValue(cJSON_GetObjectItem(root, "event"));
	if (!ev) {
		srv_error(s, "%s", "client message without event");
	} else if (!strcmp(ev, "connected")) {
		if (c->got_connected
		    || strcmp(raw, "{\"event\":\"connected\"}"))
			srv_error(s, "%s", "connected not bare or repeated");
		c->got_connected = true;
	} else if (!strcmp(ev, "start")) {
		if (!c->got_connected || c->got_start)
			srv_error(s, "%s", "start out of order");
		c->last_seq
		    = num(cJSON_GetObjectItem(root, "sequence_number"));
		check_start(c, raw, root);
	} else if (!c->got_start) {
		srv_error(s, "%s before start", ev);
	} else {
		unsigned seq
		    = num(cJSON_GetObjectItem(root, "sequence_number"));
		if (seq != c->last_seq + 1)
			srv_error(s, "%s: sequence_number gap", ev);
		c->last_seq = seq;
		if (!strcmp(ev, "media")) {
			const cJSON *m = cJSON_GetObjectItem(root, "media");
			const char  *p = cJSON_GetStringValue(
			     cJSON_GetObjectItem(m, "payload"));
			unsigned chunk = num(cJSON_GetObjectItem(m, "chunk"));
			if (chunk != c->last_chunk + 1)
				srv_error(s, "%s", "media: chunk gap");
			c->last_chunk = chunk;
			c->media++;
			/* Pacing, reported (not judged): a real-time sender
			 * spreads N chunks over N chunk durations. */
			uint64_t now = mono_us();
			if (!c->first_media_us)
				c->first_media_us = now;
			else if (now - c->last_media_us > c->max_gap_us)
				c->max_gap_us = now - c->last_media_us;
			c->last_media_us = now;
			size_t n         = p ? strlen(p) : 0;
			if (c->pcm_len + n > c->pcm_cap) {
				c->pcm_cap = (c->pcm_len + n) * 2;
				c->pcm     = realloc(c->pcm, c->pcm_cap);
			}
			size_t got = 0;
			if (!p || !c->pcm
			    || b64_decode(c->pcm + c->pcm_len, &got, p, n)
			    || got % (size_t)(c->rate / 50 * 2))
				srv_error(s, "%s", "media: bad payload");
			else if (!strcmp(s->mode, "echo"))
				c->pcm_len += got;
		} else if (!strcmp(ev, "mark")) {
			c->marks_back++;
		} else if (!strcmp(ev, "dtmf")) {
			const cJSON *d = cJSON_GetObjectItem(root, "dtmf");
			const char  *g = cJSON_GetStringValue(
			     cJSON_GetObjectItem(d, "digit"));
			if (g && c->dtmf < sizeof(c->digits) - 1)
				c->digits[c->dtmf++] = g[0];
		} else if (!strcmp(ev, "stop")) {
			const cJSON *st = cJSON_GetObjectItem(root, "stop");
			const char  *r  = cJSON_GetStringValue(
			      cJSON_GetObjectItem(st, "reason"));
			const char *cs = cJSON_GetStringValue(
			    cJSON_GetObjectItem(st, "call_sid"));
			snprintf(c->stop_reason, sizeof(c->stop_reason), "%s",
			    r ? r : "");
			if (!cs || strcmp(cs, c->call_sid))
				srv_error(s, "%s", "stop: wrong call_sid");
			c->got_stop = true;
			if (s->close_on_stop) {
				c->done = true;
				lws_callback_on_writable(c->wsi);
			}
		}
	}
	cJSON_Delete(root);
}

/* Echo mode: 100 ms of the caller's audio per message, a mark after
 * each, like a bot pacing at input speed. */
static void
conn_tick(struct conn *c)
{
	struct srv *s = c->srv;

	if (!c->got_start || c->got_stop || strcmp(s->mode, "echo"))
		return;
	size_t msg = (size_t)c->rate / 10 * 2;
	while (c->pcm_len >= msg) {
		char mk[200];
		send_media(c, c->pcm, msg, c->sid);
		memmove(c->pcm, c->pcm + msg, c->pcm_len - msg);
		c->pcm_len -= msg;
		snprintf(mk, sizeof(mk),
		    "{\"event\":\"mark\",\"stream_sid\":\"%s\",\"mark\":{"
		    "\"name\":\"m%u\"}}",
		    c->sid, ++c->marks_sent);
		enqueue_str(c, mk);
		if (s->ping) {
			snprintf(mk, sizeof(mk), "p%u", ++c->pings);
			enqueue(c, mk, strlen(mk), LWS_WRITE_PING);
		}
	}
	if (s->clear_at_ms >= 0 && !c->cleared
	    && mono_us() - c->start_us >= (uint64_t)s->clear_at_ms * 1000) {
		char cl[160];
		c->cleared = true;
		snprintf(cl, sizeof(cl),
		    "{\"event\":\"clear\",\"stream_sid\":\"%s\"}", c->sid);
		enqueue_str(c, cl);
	}
}

static void
srv_tick(lws_sorted_usec_list_t *sul)
{
	struct srv *s = lws_container_of(sul, struct srv, sul);
	for (size_t i = 0; i < 1024; i++)
		if (s->conns[i])
			conn_tick(s->conns[i]);
	lws_sul_schedule(s->ctx, 0, &s->sul, srv_tick, 20000);
}

static int
srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
    size_t len)
{
	struct conn *c = user;
	struct srv  *s = lws_context_user(lws_get_context(wsi));

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		char got[512] = "";
		if (!s->auth)
			break;
		if (lws_hdr_copy(
		        wsi, got, sizeof(got), WSI_TOKEN_HTTP_AUTHORIZATION)
		        < 0
		    || strcmp(got, s->auth)) {
			s->refused++;
			s->conns_left--;
			lws_return_http_status(
			    wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
			return 1;
		}
		break;
	}
	case LWS_CALLBACK_ESTABLISHED:
		memset(c, 0, sizeof(*c));
		c->wsi = wsi;
		c->srv = s;
		for (size_t i = 0; i < 1024; i++)
			if (!s->conns[i]) {
				s->conns[i] = c;
				break;
			}
		break;
	case LWS_CALLBACK_RECEIVE_PONG: {
		char want[16];
		snprintf(want, sizeof(want), "p%u", c->pongs + 1);
		if (len != strlen(want) || memcmp(in, want, len))
			srv_error(
			    s, "%s", "a pong without its ping's payload");
		c->pongs++;
		break;
	}
	case LWS_CALLBACK_RECEIVE:
		if (lws_frame_is_binary(wsi)) {
			srv_error(s, "%s", "client sent a binary frame");
			break;
		}
		if (c->rx_len + len + 1 > c->rx_cap) {
			c->rx_cap = (c->rx_len + len + 1) * 2;
			c->rx     = realloc(c->rx, c->rx_cap);
			if (!c->rx)
				return -1;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
		c->rx[c->rx_len] = '\0';
		if (lws_is_final_fragment(wsi)
		    && !lws_remaining_packet_payload(wsi)) {
			on_text(c, c->rx, c->rx_len);
			c->rx_len = 0;
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (c->qh < c->qn) {
			struct outmsg *m = &c->q[c->qh++ % MAXQ];
			int            w = lws_write(wsi,
			               (unsigned char *)m->data + LWS_PRE, m->len,
			               (enum lws_write_protocol)m->wp);
			free(m->data);
			if (w < (int)m->len)
				return -1;
			if (c->qh < c->qn || c->done)
				lws_callback_on_writable(wsi);
			break;
		}
		if (c->done) {
			lws_close_reason(wsi,
			    (enum lws_close_status)s->close_code, NULL, 0);
			return -1;
		}
		break;
	case LWS_CALLBACK_CLOSED:
		for (size_t i = 0; i < 1024; i++)
			if (s->conns[i] == c)
				s->conns[i] = NULL;
		while (c->qh < c->qn)
			free(c->q[c->qh++ % MAXQ].data);
		free(c->pcm);
		free(c->rx);
		c->pcm    = NULL;
		c->rx     = NULL;
		s->report = *c;
		s->conns_left--;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "exotel", srv_cb, sizeof(struct conn), 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct srv                       s;
	int                              port = 0;
	const char                      *cert = NULL, *key = NULL;

	memset(&s, 0, sizeof(s));
	s.mode          = "echo";
	s.clear_at_ms   = -1;
	s.conns_left    = 1;
	s.close_on_stop = true;
	s.close_code    = LWS_CLOSE_STATUS_NORMAL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			s.mode = argv[++i];
		else if (!strcmp(argv[i], "--clear-at-ms") && i + 1 < argc)
			s.clear_at_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
			s.conns_left = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
			cert = argv[++i];
		else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
			key = argv[++i];
		else if (!strcmp(argv[i], "--auth") && i + 1 < argc)
			s.auth = argv[++i];
		else if (!strcmp(argv[i], "--no-close"))
			s.close_on_stop = false;
		else if (!strcmp(argv[i], "--ping"))
			s.ping = true;
		else if (!strcmp(argv[i], "--close-code") && i + 1 < argc)
			s.close_code = atoi(argv[++i]);
		else {
			fprintf(stderr,
			    "usage: %s [--mode echo|bad] [--clear-at-ms MS] "
			    "[--conns N] [--port P] [--no-close] [--ping] "
			    "[--close-code N] "
			    "[--tls-cert PEM --tls-key PEM] "
			    "[--auth 'Basic ...']\n",
			    argv[0]);
			return 2;
		}
	}
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port      = port;
	info.iface     = "127.0.0.1";
	info.protocols = protocols;
	info.user      = &s;
	if (cert && key) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath        = cert;
		info.ssl_private_key_filepath = key;
	}
	s.ctx = lws_create_context(&info);
	if (!s.ctx)
		return 2;
	printf("PORT %d\n",
	    lws_get_vhost_listen_port(
	        lws_get_vhost_by_name(s.ctx, "default")));
	fflush(stdout);
	lws_sul_schedule(s.ctx, 0, &s.sul, srv_tick, 20000);
	while (s.conns_left > 0)
		if (lws_service(s.ctx, 0) < 0)
			break;
	lws_sul_cancel(&s.sul);
	lws_context_destroy(s.ctx);

	struct conn *r = &s.report;
	printf("{\"errors\":%d,\"first_error\":\"%s\",\"start\":%s,"
	       "\"media\":%u,\"rate\":%d,\"marks_sent\":%u,\"marks_back\":%u,"
	       "\"dtmf\":\"%s\",\"stop\":%s,\"stop_reason\":\"%s\","
	       "\"media_span_ms\":%.1f,\"max_gap_ms\":%.1f,\"refused\":%u,"
	       "\"pings\":%u,\"pongs\":%u}\n",
	    s.errors, s.first_error, r->got_start ? "true" : "false", r->media,
	    r->rate, r->marks_sent, r->marks_back, r->digits,
	    r->got_stop ? "true" : "false", r->stop_reason,
	    (double)(r->last_media_us - r->first_media_us) / 1000.0,
	    (double)r->max_gap_us / 1000.0, s.refused, r->pings, r->pongs);
	return s.errors ? 1 : 0;
}
