/*
 * server.c - the Exotel WebSocket endpoint on libwebsockets 4.1.
 *
 * One context, one thread. Protocol "exotel" (the vhost's default, so
 * Exotel needs no subprotocol) serves /exotel; protocol "exoplex-bus"
 * receives the adopted bus fds. One lws_sul tick every 20 ms walks every
 * connection: it moves due playback into the connection's outbound queue
 * and asks for a writeable callback, which sends one message per call.
 *
 * Call lifecycle and the call_stop reason sent on both links:
 *   start               → call_start (both links), call is live
 *   stop                → call_stop{stop.reason, or "stopped"}; playback
 *                         drains; Exotel closes, or we close (1000) after
 *                         stop_grace_ms
 *   hangup from the bus → close 1000; call_stop{hangup reason}
 *   socket closed, or closed by us for bad input, before a stop
 *                       → call_stop{"bridge_error"}
 *   server_stop         → call_stop{"bridge_error"}
 */
#include "server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <libwebsockets.h>

#include "bus.h"
#include "bus_lws.h"
#include "callbus.h"
#include "clock.h"
#include "config.h"
#include "exotel.h"
#include "log.h"
#include "metrics.h"
#include "outq.h"
#include "playback.h"
#include "strmap.h"

#define TICK_US 20000
#define OUT_SLOTS 4
#define RX_INITIAL 16384

/* Bad input we count, by kind: the parser's errors, then ours. */
enum bad {
	BAD_TOO_LARGE = EXOTEL_E_N,
	BAD_BINARY,
	BAD_MEDIA_BEFORE_START,
	BAD_DUPLICATE_START,
	BAD_DUPLICATE_STREAM,
	BAD_NO_START,
	BAD_PATH,
	BAD_N
};

static const char *const bad_names[BAD_N - EXOTEL_E_N] = {
	"too_large",
	"binary_frame",
	"media_before_start",
	"duplicate_start",
	"duplicate_stream_sid",
	"start_timeout",
	"bad_path",
};

static const char *
bad_name(int k)
{
	return k < EXOTEL_E_N ? exotel_err_name(k) : bad_names[k - EXOTEL_E_N];
}

enum conn_state {
	CONN_WAIT_START, /* upgraded, no valid start yet */
	CONN_LIVE, /* call started */
	CONN_STOPPED, /* Exotel said stop: draining, waiting for close */
};

struct conn {
	struct conn    *prev, *next; /* every connection, for the tick */
	struct server  *srv;
	struct lws     *wsi;
	enum conn_state state;
	unsigned        id; /* for lines before start */
	char            peer[64];
	uint64_t        opened_us; /* mono */
	uint64_t        stop_us; /* mono, when stop arrived */
	int             query_rate;

	char  *rx;
	size_t rx_len, rx_cap;
	bool   rx_skip; /* this message is being discarded */

	struct call_info ci;
	struct log_call  lc;
	bool             in_map;
	bool             stop_sent; /* call_stop went out */
	char             end_reason[EXOTEL_SHORT_MAX + 1]; /* for call_stop */
	uint64_t         seq_t, seq_c;

	struct playback *pb;
	struct outq      q;
	uint64_t         underruns, dropped; /* already added to metrics */

	bool     close_pending;
	bool     close_sent;
	int      close_code;
	char     close_reason[64];
	uint64_t logged; /* bit per bad-input kind already logged */
};

struct server {
	struct server_opts  o;
	struct lws_context *ctx;
	struct lws_vhost   *vh;
	struct strmap      *calls; /* stream_sid → conn, live and stopped */
	struct conn        *conns;
	unsigned            next_id;
	size_t              max_msg;
	uint64_t            start_us, grace_us;
	char                listen_desc[128];
	_Atomic int         listening;
	_Atomic int         ncalls;
	bool                stopping;
	int                 port; /* as bound (listen port 0 picks one) */
	uint64_t            path_logged_us;
	unsigned            path_unlogged;

	lws_sorted_usec_list_t tick;

	uint8_t          *pcm; /* decode scratch: one message's payload */
	size_t            pcm_cap;
	uint8_t          *play; /* tick scratch: one playback message */
	size_t            play_cap;
	struct exotel_msg msg; /* parse scratch (large: not on the stack) */

	struct metric *m_calls, *m_conns, *m_in[EXOTEL_EV_N], *m_bad[BAD_N];
	struct metric *m_out[EXOTEL_EV_N], *m_underruns, *m_dropped,
	    *m_bus_unknown, *m_bus_bad;
};

/* ---- helpers ---------------------------------------------------------- */

/* Text from a socket, made safe for one log line (no control bytes). */
static const char *
safe(char *buf, size_t cap, const char *s)
{
	size_t i = 0;

	for (; s[i] != '\0' && i + 1 < cap; i++)
		buf[i]
		    = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

static void
conn_bad(struct conn *c, int kind, const char *why)
{
	struct server *s = c->srv;

	if (kind <= 0 || kind >= BAD_N)
		return;
	metric_inc(s->m_bad[kind]);
	/* Logged once per connection and kind: a flood stays one line. */
	if (c->logged & (1ull << kind))
		return;
	c->logged |= 1ull << kind;
	LOGW(s->o.log, &c->lc, "exotel conn %u (%s): bad input %s: %s", c->id,
	    c->peer, bad_name(kind), why);
}

static void
conn_close(struct conn *c, int code, const char *why)
{
	if (c->close_pending)
		return;
	c->close_pending = true;
	c->close_code    = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", why);
	lws_callback_on_writable(c->wsi);
}

static void
send_both(struct server *s, struct conn *c, Exo__Frame *f)
{
	f->ts_us = wall_us();
	f->seq   = ++c->seq_t;
	bus_send(s->o.bus_transcoder, f);
	f->seq = ++c->seq_c;
	bus_send(s->o.bus_control, f);
}

static void
send_call_start(
    struct server *s, struct conn *c, struct bus *only, bool reannounce)
{
	Exo__Frame           f = EXO__FRAME__INIT;
	struct callbus_start b;

	callbus_start_frame(&f, &b, &c->ci, reannounce);
	if (only == NULL) {
		send_both(s, c, &f);
		return;
	}
	f.ts_us = wall_us();
	f.seq   = only == s->o.bus_transcoder ? ++c->seq_t : ++c->seq_c;
	bus_send(only, &f);
}

static void
send_call_stop(struct server *s, struct conn *c, const char *reason)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__CallStop st;

	if (c->state == CONN_WAIT_START || c->stop_sent)
		return;
	c->stop_sent = true;
	callbus_stop_frame(&f, &st, &c->ci, reason);
	send_both(s, c, &f);
	LOGI(s->o.log, &c->lc, "call_stop sent: reason=%s", reason);
}

static void
set_calls_gauge(struct server *s)
{
	int n = (int)strmap_count(s->calls);

	metric_set(s->m_calls, n);
	atomic_store(&s->ncalls, n);
}

/* ---- Exotel events ---------------------------------------------------- */

static void
on_start(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	const struct exotel_start *st = &m->u.start;
	struct playback_opts       po = { 0 };
	char                       keys[256], t1[80], t2[80], t3[80], t4[80];
	char                       t5[256];
	size_t                     kl = 0;
	int                        rate, rv;

	if (c->state != CONN_WAIT_START) {
		conn_bad(c, BAD_DUPLICATE_START, "a second start; ignored");
		return;
	}
	if (strmap_get(s->calls, m->stream_sid) != NULL) {
		struct log_call lc = { st->call_sid, m->stream_sid };
		metric_inc(s->m_bad[BAD_DUPLICATE_STREAM]);
		LOGW(s->o.log, &lc,
		    "exotel conn %u (%s): stream_sid already live on another "
		    "socket; closing this one",
		    c->id, c->peer);
		conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION,
		    "duplicate stream_sid");
		return;
	}
	snprintf(
	    c->ci.stream_sid, sizeof(c->ci.stream_sid), "%s", m->stream_sid);
	c->ci.start      = *st;
	c->ci.started_us = wall_us();
	c->lc.call_sid   = c->ci.start.call_sid;
	c->lc.stream_sid = c->ci.stream_sid;

	/* start wins over the URL's ?sample-rate=; both over 8000. */
	rate = st->sample_rate ? st->sample_rate
	    : c->query_rate    ? c->query_rate
	                       : 8000;
	if (st->sample_rate && c->query_rate
	    && st->sample_rate != c->query_rate)
		LOGW(s->o.log, &c->lc,
		    "sample rate: start says %d, the URL says %d; using %d",
		    st->sample_rate, c->query_rate, rate);
	c->ci.rate = rate;

	po.rate    = rate;
	po.msg_ms  = s->o.msg_ms;
	po.lead_ms = s->o.lead_ms;
	if ((rv = playback_alloc(&c->pb, &po)) != 0
	    || (rv = outq_init(&c->q, OUT_SLOTS, LWS_PRE,
	            exotel_media_size(
	                playback_msg_bytes(c->pb), strlen(c->ci.stream_sid))))
	        != 0
	    || (rv = strmap_put(s->calls, c->ci.stream_sid, c)) != 0) {
		LOGE(s->o.log, &c->lc, "cannot set up the call: %s",
		    strerror(rv));
		conn_close(
		    c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	c->in_map = true;
	c->state  = CONN_LIVE;
	set_calls_gauge(s);

	/* Custom parameter values may be secrets (token): keys only. */
	keys[0] = '\0';
	for (size_t i = 0; i < st->n_custom && kl + 2 < sizeof(keys); i++) {
		int n = snprintf(keys + kl, sizeof(keys) - kl, "%s%s",
		    i ? "," : "", st->custom[i].key);
		if (n < 0)
			break;
		kl += (size_t)n;
		if (kl >= sizeof(keys))
			kl = sizeof(keys) - 1;
	}
	LOGI(s->o.log, &c->lc,
	    "call started: conn %u (%s) account=%s from=%s to=%s rate=%d "
	    "encoding=%s custom_parameters=%s%s%s",
	    c->id, c->peer, safe(t1, sizeof(t1), st->account_sid),
	    safe(t2, sizeof(t2), st->from), safe(t3, sizeof(t3), st->to), rate,
	    safe(t4, sizeof(t4), st->encoding),
	    st->custom_present ? "{" : "absent",
	    st->custom_present ? safe(t5, sizeof(t5), keys) : "",
	    st->custom_present ? "}" : "");
	if (st->n_dropped)
		LOGW(s->o.log, &c->lc,
		    "start: %zu custom/extra entries not kept (too many or "
		    "too long)",
		    st->n_dropped);
	send_call_start(s, c, NULL, false);
}

static void
on_media(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Audio a;

	if (c->state == CONN_WAIT_START) {
		conn_bad(
		    c, BAD_MEDIA_BEFORE_START, "media before start; dropped");
		return;
	}
	if (c->state != CONN_LIVE || m->u.media.pcm_len == 0)
		return;
	callbus_audio_frame(
	    &f, &a, &c->ci, m->u.media.pcm, m->u.media.pcm_len);
	f.ts_us = wall_us();
	f.seq   = ++c->seq_t;
	bus_send(s->o.bus_transcoder, &f);
}

static void
on_stop(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	const char *reason
	    = m->u.stop.reason[0] ? m->u.stop.reason : "stopped";
	char t[80];

	if (c->state != CONN_LIVE)
		return;
	LOGI(s->o.log, &c->lc, "exotel stop: reason=%s",
	    safe(t, sizeof(t), reason));
	send_call_stop(s, c, reason);
	c->state   = CONN_STOPPED;
	c->stop_us = mono_us();
	playback_drain(c->pb);
}

static void
on_dtmf(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Dtmf  d;
	char       t[32];

	if (c->state != CONN_LIVE)
		return;
	LOGI(s->o.log, &c->lc, "dtmf: digit=%s duration_ms=%lld",
	    safe(t, sizeof(t), m->u.dtmf.digit),
	    m->u.dtmf.has_duration ? (long long)m->u.dtmf.duration_ms : -1);
	callbus_dtmf_frame(&f, &d, &c->ci, &m->u.dtmf);
	f.ts_us = wall_us();
	f.seq   = ++c->seq_c;
	bus_send(s->o.bus_control, &f);
}

static void
on_message(struct server *s, struct conn *c, const char *buf, size_t len)
{
	struct exotel_msg *m = &s->msg;
	int                rv;
	char               t[EXOTEL_MARK_MAX + 1];

	/* A socket we are closing has had its say. */
	if (c->close_pending)
		return;
	rv = exotel_parse(m, buf, len, s->pcm, s->pcm_cap);
	/* Unparsable messages are counted as bad input only. */
	if (m->event[0] != '\0')
		metric_inc(s->m_in[m->kind]);
	if (rv != EXOTEL_OK) {
		conn_bad(c, rv, m->reason);
		/* Without a usable start the socket is useless. */
		if (m->kind == EXOTEL_EV_START && c->state == CONN_WAIT_START)
			conn_close(
			    c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad start");
		return;
	}
	switch (m->kind) {
	case EXOTEL_EV_CONNECTED:
		LOGD(s->o.log, &c->lc, "exotel conn %u: connected", c->id);
		break;
	case EXOTEL_EV_START:
		on_start(s, c, m);
		break;
	case EXOTEL_EV_MEDIA:
		on_media(s, c, m);
		break;
	case EXOTEL_EV_STOP:
		on_stop(s, c, m);
		break;
	case EXOTEL_EV_DTMF:
		on_dtmf(s, c, m);
		break;
	case EXOTEL_EV_MARK:
		/* Playout tracking from mark echoes comes with marks. */
		LOGD(s->o.log, &c->lc, "exotel mark echoed: %s",
		    safe(t, sizeof(t), m->u.mark));
		break;
	default:
		if (!(c->logged & (1ull << 63))) {
			c->logged |= 1ull << 63;
			LOGI(s->o.log, &c->lc,
			    "exotel conn %u: ignoring event \"%s\"", c->id,
			    safe(t, sizeof(t), m->event));
		}
		break;
	}
}

/* Reassembles a message from lws fragments; handles it when whole. */
static int
on_receive(struct server *s, struct conn *c, const void *in, size_t len)
{
	bool first = lws_is_first_fragment(c->wsi);
	bool final = lws_is_final_fragment(c->wsi);

	if (first) {
		c->rx_len  = 0;
		c->rx_skip = false;
		if (lws_frame_is_binary(c->wsi)) {
			c->rx_skip = true;
			conn_bad(c, BAD_BINARY,
			    "binary frame (Exotel sends text only); dropped");
		}
	}
	if (!c->rx_skip) {
		if (c->rx_len + len > s->max_msg) {
			char why[96];
			snprintf(why, sizeof(why),
			    "message over %zu bytes; closing 1009",
			    s->max_msg);
			conn_bad(c, BAD_TOO_LARGE, why);
			lws_close_reason(c->wsi,
			    LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
			    (unsigned char *)"message too large", 17);
			return -1;
		}
		if (c->rx_len + len > c->rx_cap) {
			size_t cap = c->rx_cap ? c->rx_cap : RX_INITIAL;
			char  *nb;
			while (cap < c->rx_len + len)
				cap *= 2;
			if (cap > s->max_msg)
				cap = s->max_msg;
			if ((nb = realloc(c->rx, cap)) == NULL) {
				LOGE(s->o.log, &c->lc, "out of memory");
				return -1;
			}
			c->rx     = nb;
			c->rx_cap = cap;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
	}
	if (final && !c->rx_skip)
		on_message(s, c, c->rx, c->rx_len);
	if (final) {
		c->rx_len = 0;
		/* A call's buffer shrinks back after a rare big message. */
		if (c->rx_cap > RX_INITIAL * 4) {
			free(c->rx);
			c->rx     = NULL;
			c->rx_cap = 0;
		}
	}
	return 0;
}

static int
on_writeable(struct server *s, struct conn *c)
{
	size_t len;
	char  *p = outq_peek(&c->q, &len);

	if (p != NULL) {
		int w = lws_write(
		    c->wsi, (unsigned char *)p, len, LWS_WRITE_TEXT);
		outq_pop(&c->q);
		if (w < (int)len) {
			LOGW(s->o.log, &c->lc, "write to Exotel failed");
			return -1;
		}
		/* Our messages all start {"event":"<kind>" (exotel.c). */
		if (len > 10 && p[10] == 'm' && p[11] == 'e')
			metric_inc(s->m_out[EXOTEL_EV_MEDIA]);
		else if (len > 10 && p[10] == 'm')
			metric_inc(s->m_out[EXOTEL_EV_MARK]);
		else
			metric_inc(s->m_out[EXOTEL_EV_CLEAR]);
		if (outq_count(&c->q) || c->close_pending)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (c->close_pending) {
		if (c->close_sent)
			return -1;
		c->close_sent = true;
		LOGI(s->o.log, &c->lc, "closing the Exotel socket: %d %s",
		    c->close_code, c->close_reason);
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)c->close_reason, strlen(c->close_reason));
		return -1;
	}
	return 0;
}

static void
conn_free(struct server *s, struct conn *c)
{
	if (c->state != CONN_WAIT_START)
		send_call_stop(
		    s, c, c->end_reason[0] ? c->end_reason : "bridge_error");
	if (c->in_map) {
		strmap_del(s->calls, c->ci.stream_sid);
		set_calls_gauge(s);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	metric_add(s->m_conns, -1);
	playback_free(c->pb);
	outq_fini(&c->q);
	free(c->rx);
	free(c);
}

static struct conn *
conn_new(struct server *s, struct lws *wsi)
{
	struct conn *c = calloc(1, sizeof(*c));
	char         arg[64];
	const char  *v;

	if (c == NULL)
		return NULL;
	c->srv       = s;
	c->wsi       = wsi;
	c->id        = ++s->next_id;
	c->opened_us = mono_us();
	if (lws_get_peer_simple(wsi, c->peer, sizeof(c->peer)) == NULL
	    || strncmp(c->peer, "getpeername", 11) == 0)
		snprintf(c->peer, sizeof(c->peer), "?");
	/* Exotel documents ?sample-rate=; its own code also reads
	 * ?sample_rate=. Only a cross-check: start wins. */
	if ((v = lws_get_urlarg_by_name(wsi, "sample-rate=", arg, sizeof(arg)))
	        != NULL
	    || (v = lws_get_urlarg_by_name(
	            wsi, "sample_rate=", arg, sizeof(arg)))
	        != NULL) {
		c->query_rate = exotel_rate_parse(v);
		if (c->query_rate == 0)
			LOGW(s->o.log, NULL,
			    "exotel conn %u (%s): ignoring URL sample rate "
			    "'%.16s'",
			    c->id, c->peer, v);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	metric_inc(s->m_conns);
	/* Debug only: a flood of connections must not flood the log. */
	LOGD(s->o.log, NULL, "exotel conn %u (%s): connected, url rate %d",
	    c->id, c->peer, c->query_rate);
	return c;
}

/* Only /exotel (and /exotel/) is ours. */
static bool
path_ok(struct lws *wsi)
{
	char uri[128];
	int  n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

	if (n <= 0)
		return false;
	return strcmp(uri, "/exotel") == 0 || strcmp(uri, "/exotel/") == 0;
}

static int
cb_exotel(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct server *s = lws_context_user(lws_get_context(wsi));
	struct conn   *c = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		/* Plain HTTP: nothing here but the WebSocket. */
		if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		if (s->stopping) {
			lws_return_http_status(
			    wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
			return 1;
		}
		if (strcmp((const char *)in, "websocket") != 0
		    || !path_ok(wsi)) {
			char uri[128] = "", t[80];
			lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
			metric_inc(s->m_bad[BAD_PATH]);
			/* At most a line per 10 s however many come. */
			if (mono_us() - s->path_logged_us > 10000000u
			    || s->path_logged_us == 0) {
				LOGW(s->o.log, NULL,
				    "refused an upgrade to '%s' (only "
				    "/exotel; %u more since the last line)",
				    safe(t, sizeof(t), uri), s->path_unlogged);
				s->path_logged_us = mono_us();
				s->path_unlogged  = 0;
			} else {
				s->path_unlogged++;
			}
			lws_return_http_status(
			    wsi, HTTP_STATUS_NOT_FOUND, NULL);
			return 1;
		}
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		if ((c = conn_new(s, wsi)) == NULL) {
			LOGE(s->o.log, NULL, "out of memory for a connection");
			return -1;
		}
		lws_set_opaque_user_data(wsi, c);
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (c == NULL)
			return -1;
		return on_receive(s, c, in, len);

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (c == NULL)
			return -1;
		return on_writeable(s, c);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (c != NULL && len >= 2) {
			const unsigned char *p = in;
			LOGI(s->o.log, &c->lc,
			    "exotel conn %u closed by peer: code %d", c->id,
			    (p[0] << 8) | p[1]);
		}
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (c != NULL) {
			log_write(s->o.log,
			    c->state == CONN_WAIT_START ? LOG_DEBUG : LOG_INFO,
			    &c->lc, "exotel conn %u (%s): closed", c->id,
			    c->peer);
			lws_set_opaque_user_data(wsi, NULL);
			conn_free(s, c);
		}
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- the bus ---------------------------------------------------------- */

static void
on_frame(struct server *s, struct bus *b, const Exo__Frame *f)
{
	struct conn *c = strmap_get(s->calls, f->call_id);
	int          rv;

	if (c == NULL) {
		metric_inc(s->m_bus_unknown);
		LOGD(s->o.log, NULL, "bus: %s for unknown call %.64s ignored",
		    bus_kind_name(f), f->call_id);
		return;
	}
	switch (f->body_case) {
	case EXO__FRAME__BODY_PLAYBACK_AUDIO: {
		const Exo__Audio *a = f->playback_audio;
		if (c->close_pending)
			break;
		if (a == NULL || (int)a->sample_rate != c->ci.rate) {
			metric_inc(s->m_bus_bad);
			if (!(c->logged & (1ull << 62))) {
				c->logged |= 1ull << 62;
				LOGW(s->o.log, &c->lc,
				    "playback_audio at %u Hz for a %d Hz "
				    "call: "
				    "dropped",
				    a ? a->sample_rate : 0, c->ci.rate);
			}
			break;
		}
		if ((rv = playback_push(c->pb, a->pcm.data, a->pcm.len)) != 0)
			metric_inc(s->m_bus_bad);
		break;
	}
	case EXO__FRAME__BODY_HANGUP: {
		const char *r = f->hangup && f->hangup->reason[0]
		    ? f->hangup->reason
		    : "hangup";
		LOGW(s->o.log, &c->lc, "hangup requested: reason=%s", r);
		snprintf(c->end_reason, sizeof(c->end_reason), "%s", r);
		conn_close(c, LWS_CLOSE_STATUS_NORMAL, r);
		break;
	}
	case EXO__FRAME__BODY_CLEAR: {
		size_t n;
		char  *p;
		if (c->state != CONN_LIVE)
			break;
		n = playback_clear(c->pb);
		outq_reset(&c->q);
		if ((p = outq_reserve(&c->q)) != NULL) {
			size_t l = exotel_build_clear(
			    p, c->q.cap, c->ci.stream_sid);
			if (l > 0) {
				outq_commit(&c->q, l);
				lws_callback_on_writable(c->wsi);
			}
		}
		LOGI(s->o.log, &c->lc, "clear: dropped %zu bytes unplayed", n);
		break;
	}
	case EXO__FRAME__BODY_SESSION_READY:
		LOGI(s->o.log, &c->lc, "persona session %u ready on %s",
		    f->session_ready ? f->session_ready->session : 0,
		    f->session_ready ? f->session_ready->server : "?");
		break;
	case EXO__FRAME__BODY_SESSION_ENDED:
		LOGW(s->o.log, &c->lc, "persona session %u ended: %s",
		    f->session_ended ? f->session_ended->session : 0,
		    f->session_ended ? f->session_ended->reason : "?");
		break;
	case EXO__FRAME__BODY_ANNOUNCE:
		/* A stopped call stays stopped: its peers forgot it. */
		if (c->state == CONN_LIVE)
			send_call_start(s, c, b, true);
		break;
	default:
		LOGD(s->o.log, &c->lc, "bus: ignoring %s", bus_kind_name(f));
		break;
	}
}

static int
cb_bus(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
    size_t len)
{
	struct server *s = lws_context_user(lws_get_context(wsi));
	struct bus    *b = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		/* Bounded, so one busy link cannot starve the sockets; the
		 * fd stays readable for the rest. */
		for (int i = 0; i < 256 && b != NULL; i++) {
			Exo__Envelope *env;
			int            rv = bus_recv(b, &env);
			if (rv == EAGAIN)
				break;
			if (rv != 0)
				continue;
			for (size_t k = 0; k < env->n_frames; k++) {
				bus_count_in(b, env->frames[k]);
				on_frame(s, b, env->frames[k]);
			}
			bus_envelope_free(env);
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		/* The fd was a dup; NNG's own is untouched. */
		if (!s->stopping)
			LOGE(s->o.log, NULL, "bus fd closed by lws");
		return 0;
	default:
		break;
	}
	(void)user;
	(void)in;
	(void)len;
	return 0;
}

/* ---- the shared tick -------------------------------------------------- */

static void
conn_tick(struct server *s, struct conn *c, uint64_t now)
{
	const struct playback_stats *st;

	if (c->close_pending)
		return;
	if (c->state == CONN_WAIT_START) {
		if (now - c->opened_us > s->start_us) {
			conn_bad(c, BAD_NO_START, "no start in time; closing");
			conn_close(
			    c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "no start");
		}
		return;
	}
	while (outq_free(&c->q) > 0) {
		char  *p = outq_reserve(&c->q);
		size_t n = playback_next(c->pb, now, s->play, s->play_cap);
		size_t l;
		if (n == 0)
			break;
		l = exotel_build_media(
		    p, c->q.cap, c->ci.stream_sid, s->play, n);
		if (l == 0)
			break; /* cannot happen: slots fit a full message */
		outq_commit(&c->q, l);
	}
	if (outq_count(&c->q))
		lws_callback_on_writable(c->wsi);

	st = playback_stats(c->pb);
	metric_add(s->m_underruns, (int64_t)(st->underruns - c->underruns));
	metric_add(s->m_dropped, (int64_t)(st->dropped_bytes - c->dropped));
	c->underruns = st->underruns;
	c->dropped   = st->dropped_bytes;

	if (c->state == CONN_STOPPED && now - c->stop_us > s->grace_us)
		conn_close(c, LWS_CLOSE_STATUS_NORMAL, "stopped");
}

static void
reannounce(struct server *s, struct bus *b, const char *link)
{
	unsigned n = 0;

	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_LIVE) {
			send_call_start(s, c, b, true);
			n++;
		}
	if (n)
		LOGI(s->o.log, NULL,
		    "bus %s: peer (re)connected, %u live "
		    "calls re-announced",
		    link, n);
}

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	struct server *s   = lws_container_of(sul, struct server, tick);
	uint64_t       now = mono_us();

	lws_sul_schedule(s->ctx, 0, &s->tick, tick_cb, TICK_US);
	if (bus_take_new_peer(s->o.bus_transcoder))
		reannounce(s, s->o.bus_transcoder, "transcoder");
	if (bus_take_new_peer(s->o.bus_control))
		reannounce(s, s->o.bus_control, "control");
	for (struct conn *c = s->conns; c; c = c->next)
		conn_tick(s, c, now);
}

/* ---- set-up ----------------------------------------------------------- */

static const struct lws_protocols protocols[] = {
	{
	    .name           = "exotel",
	    .callback       = cb_exotel,
	    .rx_buffer_size = 65536,
	},
	{
	    .name     = "exoplex-bus",
	    .callback = cb_bus,
	},
	{ .name = NULL }, /* terminator */
};

static void
register_metrics(struct server *s)
{
	struct metrics *m = s->o.metrics;
	char            l[96];

	s->m_calls = metrics_gauge(m, "calls_active",
	    "Calls between start and the socket's close.", NULL);
	s->m_conns = metrics_gauge(m, "exotel_connections",
	    "Open Exotel WebSocket connections.", NULL);
	for (int i = 0; i < EXOTEL_EV_N; i++) {
		snprintf(l, sizeof(l), "event=\"%s\"",
		    exotel_event_name((enum exotel_event)i));
		s->m_in[i] = metrics_counter(m, "exotel_messages_in_total",
		    "Messages from Exotel, by event.", l);
	}
	for (int i = 1; i < BAD_N; i++) {
		snprintf(l, sizeof(l), "kind=\"%s\"", bad_name(i));
		s->m_bad[i] = metrics_counter(m, "exotel_bad_input_total",
		    "Bad input from Exotel sockets, by kind.", l);
	}
	s->m_out[EXOTEL_EV_MEDIA]
	    = metrics_counter(m, "exotel_messages_out_total",
	        "Messages sent to Exotel, by event.", "event=\"media\"");
	s->m_out[EXOTEL_EV_MARK]
	    = metrics_counter(m, "exotel_messages_out_total",
	        "Messages sent to Exotel, by event.", "event=\"mark\"");
	s->m_out[EXOTEL_EV_CLEAR]
	    = metrics_counter(m, "exotel_messages_out_total",
	        "Messages sent to Exotel, by event.", "event=\"clear\"");
	s->m_underruns   = metrics_counter(m, "playback_underruns_total",
	      "Playback ran dry and later audio restarted the clock.", NULL);
	s->m_dropped     = metrics_counter(m, "playback_dropped_bytes_total",
	        "Playback bytes dropped because a call's buffer was full.", NULL);
	s->m_bus_unknown = metrics_counter(m, "bus_unknown_call_total",
	    "Bus frames for a call ingress does not have.", NULL);
	s->m_bus_bad     = metrics_counter(m, "bus_bad_playback_total",
	        "playback_audio frames dropped (wrong rate, odd length).", NULL);
}

/* Like cfg_split_addr, but port 0 (any free port, for tests) is fine. */
static int
split_listen(const char *addr, char *host, size_t hostlen, int *port)
{
	char        tmp[300];
	const char *colon = strrchr(addr, ':');

	if (colon == NULL || strcmp(colon, ":0") != 0)
		return cfg_split_addr(addr, host, hostlen, port);
	snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(colon - addr), addr);
	if (cfg_split_addr(tmp, host, hostlen, port) != 0)
		return EINVAL;
	*port = 0;
	return 0;
}

int
server_start(struct server **out, const struct server_opts *o)
{
	struct lws_context_creation_info info;
	struct server                   *s;
	char                             host[128];
	int                              port, rv = 0;
	struct in_addr                   a4;
	size_t                           play_bytes;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ENOMEM;
	s->o        = *o;
	s->max_msg  = o->max_msg ? o->max_msg : 256 * 1024;
	s->start_us = (uint64_t)(o->start_ms ? o->start_ms : 10000) * 1000;
	s->grace_us
	    = (uint64_t)(o->stop_grace_ms ? o->stop_grace_ms : 2000) * 1000;
	register_metrics(s);

	if (split_listen(o->listen, host, sizeof(host), &port) != 0) {
		LOGE(o->log, NULL, "listen address '%s' is not host:port",
		    o->listen);
		rv = EINVAL;
		goto out;
	}
	/* A media payload decodes to at most 3/4 of the message. */
	s->pcm_cap  = s->max_msg / 4 * 3 + 3;
	play_bytes  = PLAYBACK_MAX_MSG_BYTES;
	s->play_cap = play_bytes;
	if ((s->pcm = malloc(s->pcm_cap)) == NULL
	    || (s->play = malloc(s->play_cap)) == NULL
	    || (rv = strmap_alloc(&s->calls)) != 0) {
		rv = rv ? rv : ENOMEM;
		goto out;
	}

	memset(&info, 0, sizeof(info));
	info.port      = port;
	info.protocols = protocols;
	info.gid       = -1;
	info.uid       = -1;
	info.user      = s;
	info.options   = 0;
	if (strcmp(host, "") == 0 || strcmp(host, "0.0.0.0") == 0
	    || strcmp(host, "::") == 0 || strcmp(host, "*") == 0) {
		info.iface = NULL; /* every interface */
	} else if (strcmp(host, "localhost") == 0) {
		info.iface = "127.0.0.1";
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	} else {
		info.iface = host; /* an address or an interface name */
		if (inet_pton(AF_INET, host, &a4) == 1)
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	if (strcmp(host, "0.0.0.0") == 0)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	s->ctx = lws_create_context(&info);
	if (s->ctx == NULL) {
		LOGE(o->log, NULL,
		    "cannot listen on %s (in use, or not a "
		    "local address?)",
		    o->listen);
		rv = EADDRINUSE;
		goto out;
	}
	s->vh = lws_get_vhost_by_name(s->ctx, "default");
	if (s->vh == NULL
	    || bus_lws_adopt(
	           o->bus_transcoder, s->vh, "exoplex-bus", o->bus_transcoder)
	        == NULL
	    || bus_lws_adopt(
	           o->bus_control, s->vh, "exoplex-bus", o->bus_control)
	        == NULL) {
		LOGE(o->log, NULL, "cannot adopt the bus links into lws");
		rv = EIO;
		goto out;
	}
	s->port = lws_get_vhost_listen_port(s->vh);
	snprintf(s->listen_desc, sizeof(s->listen_desc), "%s", o->listen);
	lws_sul_schedule(s->ctx, 0, &s->tick, tick_cb, TICK_US);
	atomic_store(&s->listening, 1);
	LOGI(o->log, NULL,
	    "listening on %s, Exotel endpoint /exotel (playback %u ms "
	    "messages, %u ms lead)",
	    o->listen, o->msg_ms ? o->msg_ms : 100,
	    o->lead_ms ? o->lead_ms : 200);
	*out = s;
	return 0;
out:
	if (s->ctx)
		lws_context_destroy(s->ctx);
	strmap_free(s->calls);
	free(s->pcm);
	free(s->play);
	free(s);
	return rv;
}

void
server_stop(struct server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->listening, 0);
	s->stopping = true;
	lws_sul_cancel(&s->tick);
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state != CONN_WAIT_START && !c->stop_sent) {
			LOGI(
			    s->o.log, &c->lc, "ingress stopping: ending call");
			send_call_stop(s, c, "bridge_error");
		}
	/* Closes every socket; LWS_CALLBACK_CLOSED frees each conn. */
	lws_context_destroy(s->ctx);
	strmap_free(s->calls);
	free(s->pcm);
	free(s->play);
	free(s);
}

int
server_service(struct server *s)
{
	return lws_service(s->ctx, 0);
}

int
server_ready(struct server *s, char *detail, size_t len)
{
	int ready = atomic_load(&s->listening);

	snprintf(detail, len,
	    "%s on %s; calls %d; bus transcoder peers %d, control peers %d",
	    ready ? "listening" : "not listening", s->listen_desc,
	    atomic_load(&s->ncalls), bus_peers(s->o.bus_transcoder),
	    bus_peers(s->o.bus_control));
	return ready;
}

int
server_port(const struct server *s)
{
	return s->port;
}
