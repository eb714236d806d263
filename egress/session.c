/*
 * session.c - one WebSocket to one PersonaPlex server.
 *
 * The session struct is ours, not lws's: the wsi points at it as its
 * (externally allocated) user data. When the owner leaves (or hears of a
 * failure) the session "retires": no owner, no callbacks, but it stays
 * until lws reports its socket closed or destroyed, so the pool learns
 * when the server is really free. The link is cut (user set to NULL) when
 * the socket goes, and at env teardown; callbacks for a wsi without a
 * session only finish closing it.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "ppframe.h"
#include "ppurl.h"

#define QUEUE_MAX_DEFAULT 50
#define RX_MAX_DEFAULT (256 * 1024)
#define SID_MAX 96
/* Bad messages logged per session at warn; the rest at debug. */
#define BAD_LOG_MAX 5

struct out_msg {
	struct out_msg *next;
	size_t          len; /* 0x01 + page */
	size_t          cap; /* room after LWS_PRE */
	bool            header;
	uint8_t         buf[]; /* LWS_PRE + len */
};

/* A sent page's buffer is kept for the next: at 50 pages a second the
 * queue holds one or two, so a few spares make sending allocation-free. */
#define MSG_SPARE_CAP 1024 /* bytes after LWS_PRE: any audio page */
#define MSG_SPARES 4

struct session_env {
	struct session_env_opts o;
	struct session         *list; /* every session not yet freed */
	size_t                  count, owned;
	struct metric *active, *handshakes, *up_sent, *up_dropped, *down_pages,
	    *down_bytes, *text_pieces;
};

struct session {
	struct session_env      *env;
	struct session          *prev, *next;
	struct lws              *wsi; /* NULL once lws is done with it */
	enum session_state       state;
	const struct session_cb *cb; /* NULL once the owner left or ended */
	void                    *owner;
	char                     call_sid[SID_MAX], stream_sid[SID_MAX];
	struct log_call          ids;
	char                     server[sizeof(((struct ppurl *)0)->base)];
	uint64_t                 opened_us, ready_us, last_rx_us, retired_us;

	struct out_msg *qhead, *qtail;
	struct out_msg *spare; /* MSG_SPARE_CAP buffers to reuse */
	unsigned        nspare;
	size_t          qlen;

	uint8_t *rx;
	size_t   rx_len, rx_cap;
	bool     rx_skip; /* dropping the rest of an oversized message */
	bool     rx_bin;

	long tag; /* for env's gone callback; -1: none */
	int  busy; /* >0 while an owner callback runs */
	bool doomed; /* finish when busy drops to 0 */
	bool retired; /* the owner is gone (closed or ended) */
	bool upgraded; /* a WebSocket now: it can take a close frame */
	bool in_connect;
	char connect_err[160]; /* an error lws reported inside connect */
	int  peer_close; /* close code the server sent, 0 if none */
	bool write_failed; /* a write outside lws's callback failed */
	int  bad_logged;
};

static void
ids_copy(struct session *s, const struct log_call *ids)
{
	snprintf(s->call_sid, sizeof(s->call_sid), "%s",
	    ids && ids->call_sid ? ids->call_sid : "");
	snprintf(s->stream_sid, sizeof(s->stream_sid), "%s",
	    ids && ids->stream_sid ? ids->stream_sid : "");
	s->ids.call_sid   = s->call_sid;
	s->ids.stream_sid = s->stream_sid;
}

int
session_env_alloc(struct session_env **out, const struct session_env_opts *o)
{
	struct session_env *e = calloc(1, sizeof(*e));
	struct metrics     *m = o->metrics;

	if (!e)
		return ENOMEM;
	e->o = *o;
	if (!e->o.queue_max)
		e->o.queue_max = QUEUE_MAX_DEFAULT;
	if (!e->o.rx_max)
		e->o.rx_max = RX_MAX_DEFAULT;
	e->active     = metrics_gauge(m, "egress_sessions_active",
	        "PersonaPlex sessions open (connecting, prompting or ready).",
	        NULL);
	e->handshakes = metrics_counter(m, "egress_handshakes_total",
	    "PersonaPlex 0x00 handshakes received.", NULL);
	e->up_sent    = metrics_counter(m, "egress_uplink_pages_total",
	       "Ogg pages sent to PersonaPlex as 0x01 messages.", NULL);
	e->up_dropped = metrics_counter(m, "egress_uplink_pages_dropped_total",
	    "Uplink Ogg pages not sent, by why.", "why=\"queue_full\"");
	e->down_pages = metrics_counter(m, "egress_downlink_pages_total",
	    "0x01 audio messages received from PersonaPlex.", NULL);
	e->down_bytes = metrics_counter(m, "egress_downlink_bytes_total",
	    "Ogg bytes received from PersonaPlex.", NULL);
	e->text_pieces = metrics_counter(m, "egress_text_pieces_total",
	    "0x02 text pieces received from PersonaPlex.", NULL);
	*out           = e;
	return 0;
}

static struct out_msg *
msg_get(struct session *s, size_t len)
{
	struct out_msg *m;
	size_t          cap = len > MSG_SPARE_CAP ? len : MSG_SPARE_CAP;

	if (len <= MSG_SPARE_CAP && (m = s->spare) != NULL) {
		s->spare = m->next;
		s->nspare--;
		return m;
	}
	if ((m = malloc(sizeof(*m) + LWS_PRE + cap)) != NULL)
		m->cap = cap;
	return m;
}

static void
msg_put(struct session *s, struct out_msg *m)
{
	if (m->cap == MSG_SPARE_CAP && s->nspare < MSG_SPARES) {
		m->next  = s->spare;
		s->spare = m;
		s->nspare++;
		return;
	}
	free(m);
}

static void
queue_clear(struct session *s)
{
	struct out_msg *m, *n;

	for (m = s->qhead; m; m = n) {
		n = m->next;
		msg_put(s, m);
	}
	s->qhead = s->qtail = NULL;
	s->qlen             = 0;
}

static void
session_free(struct session *s)
{
	struct session_env *e = s->env;

	if (s->wsi) {
		/* Only at env teardown or a failed open: lws keeps the
		 * socket; its callbacks find no session. */
		lws_set_wsi_user(s->wsi, NULL);
		lws_set_timeout(
		    s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		s->wsi = NULL;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		e->list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	e->count--;
	queue_clear(s);
	while (s->spare) {
		struct out_msg *m = s->spare;
		s->spare          = m->next;
		free(m);
	}
	free(s->rx);
	free(s);
}

/* The socket is gone: say so (the pool may reuse the server now) and
 * free s, or do that when the owner callback it is inside returns. */
static void
finish(struct session *s)
{
	struct session_env *e = s->env;

	if (s->busy) {
		s->doomed = true;
		return;
	}
	if (s->tag >= 0 && e->o.gone)
		e->o.gone(e->o.gone_arg, s->tag);
	session_free(s);
}

/* The owner has gone (closed, or told of a failure). The session stays
 * until its socket is gone: an upgraded socket sends its close frame
 * from the next writeable callback, one still connecting is dropped. */
static void
retire(struct session *s)
{
	struct session_env *e = s->env;

	if (!s->retired) {
		s->retired    = true;
		s->retired_us = mono_us();
		e->owned--;
		metric_set(e->active, (int64_t)e->owned);
	}
	s->state = SESSION_CLOSING;
	s->cb    = NULL;
	s->owner = NULL;
	queue_clear(s);
	if (!s->wsi) {
		finish(s);
		return;
	}
	if (s->upgraded) {
		/* A server that never lets us write still goes, in time. */
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
		lws_callback_on_writable(s->wsi);
	} else {
		lws_set_timeout(
		    s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
}

void
session_env_free(struct session_env *e)
{
	if (!e)
		return;
	while (e->list)
		session_free(e->list);
	free(e);
}

size_t
session_env_count(const struct session_env *e)
{
	return e->count;
}

size_t
session_env_reap(struct session_env *e, uint64_t before_us)
{
	size_t n = 0;

	for (struct session *s = e->list; s; s = s->next) {
		if (!s->retired || s->tag < 0 || s->retired_us >= before_us)
			continue;
		LOGW(e->o.log, &s->ids,
		    "PersonaPlex session to %s: lws never reported its "
		    "socket gone; its server is used again",
		    s->server);
		if (e->o.gone)
			e->o.gone(e->o.gone_arg, s->tag);
		s->tag = -1;
		n++;
	}
	return n;
}

static void
count_failure(struct session_env *e, const char *reason)
{
	char l[96];
	snprintf(l, sizeof(l), "reason=\"%s\"", reason);
	metric_inc(
	    metrics_counter(e->o.metrics, "egress_session_failures_total",
	        "PersonaPlex sessions that failed, by reason.", l));
}

/* The session failed: the owner hears it once, then s retires. */
static void
ended(struct session *s, const char *reason, const char *detail)
{
	const struct session_cb *cb    = s->cb;
	void                    *owner = s->owner;
	uint64_t                 now   = mono_us();

	if (s->retired) {
		if (!s->wsi)
			finish(s);
		return;
	}
	s->state = SESSION_CLOSING;
	s->cb    = NULL;
	s->owner = NULL;
	count_failure(s->env, reason);
	LOGW(s->env->o.log, &s->ids,
	    "PersonaPlex session to %s failed: %s (%s) after %.1f s%s",
	    s->server, reason, detail ? detail : "",
	    (double)(now - s->opened_us) / 1e6,
	    s->ready_us ? "" : ", before its handshake");
	s->busy++;
	if (cb)
		cb->ended(owner, s, reason, detail);
	s->busy--;
	retire(s);
}

int
session_open(struct session **out, struct session_env *e,
    const struct ppurl *url, const char *target, const struct log_call *ids,
    const struct session_cb *cb, void *owner)
{
	struct lws_client_connect_info i;
	struct session                *s = calloc(1, sizeof(*s));
	struct lws                    *wsi;

	if (!s)
		return ENOMEM;
	s->env   = e;
	s->state = SESSION_CONNECTING;
	s->cb    = cb;
	s->owner = owner;
	ids_copy(s, ids);
	snprintf(s->server, sizeof(s->server), "%s", url->base);
	s->opened_us = mono_us();
	s->next      = e->list;
	if (e->list)
		e->list->prev = s;
	e->list = s;
	e->count++;
	e->owned++;
	s->tag = -1;
	metric_set(e->active, (int64_t)e->owned);

	memset(&i, 0, sizeof(i));
	i.context = e->o.context;
	i.vhost   = e->o.vhost;
	i.address = url->host;
	i.port    = url->port;
	i.path    = target;
	i.host    = url->hosthdr;
	/* No subprotocol: PersonaPlex's aiohttp server names none. */
	i.local_protocol_name = e->o.protocol;
	i.userdata            = s;
	i.pwsi                = &s->wsi;
	if (url->tls) {
		i.ssl_connection = LCCSCF_USE_SSL;
		if (e->o.insecure)
			i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED
			    | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
			    | LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
	}

	/* lws may report an error from inside this call; it is turned into
	 * this function's return value, never a callback. */
	s->in_connect = true;
	wsi           = lws_client_connect_via_info(&i);
	s->in_connect = false;
	if (!wsi || s->connect_err[0]) {
		LOGW(e->o.log, &s->ids, "PersonaPlex session to %s: %s",
		    s->server,
		    s->connect_err[0] ? s->connect_err
		                      : "could not start connecting");
		count_failure(e, SESSION_CONNECT_FAILED);
		/* After an error inside the call lws owns (or freed) it. */
		s->wsi = s->connect_err[0] ? NULL : wsi;
		s->cb  = NULL;
		e->owned--;
		metric_set(e->active, (int64_t)e->owned);
		session_free(s);
		return ECONNREFUSED;
	}
	s->wsi = wsi;
	LOGI(e->o.log, &s->ids, "PersonaPlex session: connecting to %s",
	    s->server);
	*out = s;
	return 0;
}

void
session_close(struct session *s, const char *why)
{
	if (!s || !s->cb)
		return;
	LOGI(s->env->o.log, &s->ids,
	    "PersonaPlex session to %s: closing (%s) after %.1f s", s->server,
	    why ? why : "done", (double)(mono_us() - s->opened_us) / 1e6);
	retire(s);
}

void
session_set_tag(struct session *s, long tag)
{
	s->tag = tag;
}

void
session_fail(struct session *s, const char *reason, const char *detail)
{
	if (s && s->cb)
		ended(s, reason, detail);
}

void
session_set_owner(struct session *s, const struct session_cb *cb, void *owner,
    const struct log_call *ids)
{
	s->cb    = cb;
	s->owner = owner;
	ids_copy(s, ids);
}

/* Writes the queue's head. Returns 0, or -1 when the write failed. */
static int
write_head(struct session *s, struct lws *wsi)
{
	struct out_msg *m = s->qhead;
	bool            ok;

	s->qhead = m->next;
	if (!s->qhead)
		s->qtail = NULL;
	s->qlen--;
	ok = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_BINARY)
	    >= (int)m->len;
	msg_put(s, m);
	if (!ok)
		return -1;
	metric_inc(s->env->up_sent);
	return 0;
}

/* Sends a page just queued. A lone page goes out now unless lws still
 * holds part of an earlier one: waiting for lws's writeable callback
 * costs a wake-up and two epoll_ctl per page (lws sets and clears
 * EPOLLOUT around each), more than the write. What a full socket does
 * not take, lws keeps and sends first (lws_partial_buffered, no
 * syscall; lws_send_pipe_choked would poll(2) every time). A failed
 * write ends the session from lws's loop (its CLOSED callback), not from
 * under the caller. */
static void
kick(struct session *s)
{
	if (s->qlen == 1 && !lws_partial_buffered(s->wsi)) {
		if (write_head(s, s->wsi) == 0)
			return;
		s->write_failed = true;
		lws_set_timeout(
		    s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	lws_callback_on_writable(s->wsi);
}

/* Drops the oldest queued audio page; false if only headers are queued. */
static bool
drop_oldest_audio(struct session *s)
{
	struct out_msg **pp = &s->qhead, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next) {
		struct out_msg *m = *pp;
		if (m->header)
			continue;
		*pp = m->next;
		if (s->qtail == m)
			s->qtail = prev;
		msg_put(s, m);
		s->qlen--;
		return true;
	}
	return false;
}

int
session_send_ogg(
    struct session *s, const uint8_t *page, size_t len, bool header)
{
	struct out_msg *m;
	int             rc = 0;

	if (!s->cb || s->state != SESSION_READY || !s->wsi)
		return EAGAIN;
	if (s->qlen >= s->env->o.queue_max) {
		if (!drop_oldest_audio(s) && !header) {
			metric_inc(s->env->up_dropped);
			return ENOBUFS;
		}
		if (s->qlen < s->env->o.queue_max) {
			metric_inc(s->env->up_dropped);
			rc = ENOBUFS;
		}
	}
	m = msg_get(s, ppframe_audio_len(len));
	if (!m)
		return ENOMEM;
	m->next   = NULL;
	m->header = header;
	m->len    = ppframe_put_audio(m->buf + LWS_PRE, page, len);
	if (s->qtail)
		s->qtail->next = m;
	else
		s->qhead = m;
	s->qtail = m;
	s->qlen++;
	kick(s);
	return rc;
}

enum session_state
session_state(const struct session *s)
{
	return s->state;
}

const char *
session_server(const struct session *s)
{
	return s->server;
}

uint64_t
session_opened_us(const struct session *s)
{
	return s->opened_us;
}

uint64_t
session_ready_us(const struct session *s)
{
	return s->ready_us;
}

uint64_t
session_last_rx_us(const struct session *s)
{
	return s->last_rx_us;
}

size_t
session_queued(const struct session *s)
{
	return s->qlen;
}

static void
count_bad(struct session *s, const char *kind, const char *why)
{
	char l[64];
	snprintf(l, sizeof(l), "kind=\"%s\"", kind);
	metric_inc(
	    metrics_counter(s->env->o.metrics, "egress_bad_frames_total",
	        "Messages from PersonaPlex ignored, by kind.", l));
	log_write(s->env->o.log,
	    s->bad_logged < BAD_LOG_MAX ? LOG_WARN : LOG_DEBUG, &s->ids,
	    "PersonaPlex session to %s: ignored a message: %s", s->server,
	    why);
	s->bad_logged++;
}

/* One whole message from the server. */
static void
deliver(struct session *s, const uint8_t *msg, size_t len, bool binary)
{
	struct ppframe f;
	char           why[96];

	switch (ppframe_classify(msg, len, binary, &f)) {
	case PPF_HANDSHAKE:
		if (s->state != SESSION_PROMPTING) {
			count_bad(s, "handshake_again", "a second handshake");
			break;
		}
		s->state    = SESSION_READY;
		s->ready_us = mono_us();
		metric_inc(s->env->handshakes);
		LOGI(s->env->o.log, &s->ids,
		    "PersonaPlex session to %s: handshake after %.1f s",
		    s->server, (double)(s->ready_us - s->opened_us) / 1e6);
		if (s->cb && s->cb->handshake)
			s->cb->handshake(s->owner, s);
		break;
	case PPF_AUDIO:
		if (s->state != SESSION_READY) {
			count_bad(
			    s, "audio_early", "audio before the handshake");
			break;
		}
		metric_inc(s->env->down_pages);
		metric_add(s->env->down_bytes, (int64_t)f.len);
		if (s->cb && s->cb->audio)
			s->cb->audio(s->owner, s, f.payload, f.len, wall_us());
		break;
	case PPF_TEXT:
		metric_inc(s->env->text_pieces);
		if (s->cb && s->cb->text)
			s->cb->text(
			    s->owner, s, (const char *)f.payload, f.len);
		break;
	case PPF_UNKNOWN:
		snprintf(why, sizeof(why), "unknown kind 0x%02x (%zu bytes)",
		    f.type, len);
		count_bad(s, "unknown", why);
		break;
	case PPF_BAD:
		snprintf(why, sizeof(why), "malformed kind 0x%02x (%zu bytes)",
		    f.type, len);
		count_bad(s, "bad", why);
		break;
	case PPF_WS_TEXT:
		snprintf(why, sizeof(why),
		    "a WebSocket text frame (%zu bytes)", len);
		count_bad(s, "ws_text", why);
		break;
	case PPF_EMPTY:
		count_bad(s, "empty", "an empty message");
		break;
	}
}

/* A piece of a message: lws hands over fragments and splits big frames,
 * so anything but a whole message in one piece is reassembled. */
static void
on_receive(struct session *s, struct lws *wsi, const uint8_t *in, size_t len)
{
	bool fin = lws_is_final_fragment(wsi);

	s->last_rx_us = mono_us();
	if (s->rx_len == 0 && !s->rx_skip) {
		s->rx_bin = lws_frame_is_binary(wsi);
		if (fin) {
			deliver(s, in, len, s->rx_bin);
			return;
		}
	}
	if (!s->rx_skip) {
		if (s->rx_len + len > s->env->o.rx_max) {
			char why[96];
			snprintf(why, sizeof(why),
			    "a message over %zu bytes (dropped)",
			    s->env->o.rx_max);
			count_bad(s, "too_big", why);
			s->rx_skip = true;
			s->rx_len  = 0;
		} else {
			if (s->rx_len + len > s->rx_cap) {
				size_t   cap = s->rx_cap ? s->rx_cap : 4096;
				uint8_t *p;
				while (cap < s->rx_len + len)
					cap *= 2;
				if (cap > s->env->o.rx_max)
					cap = s->env->o.rx_max;
				p = realloc(s->rx, cap);
				if (!p) {
					count_bad(
					    s, "too_big", "out of memory");
					s->rx_skip = true;
					s->rx_len  = 0;
					goto out;
				}
				s->rx     = p;
				s->rx_cap = cap;
			}
			memcpy(s->rx + s->rx_len, in, len);
			s->rx_len += len;
		}
	}
out:
	if (fin) {
		if (!s->rx_skip)
			deliver(s, s->rx, s->rx_len, s->rx_bin);
		s->rx_len  = 0;
		s->rx_skip = false;
	}
}

static int
on_writeable(struct session *s, struct lws *wsi)
{
	if (!s->qhead || s->state != SESSION_READY)
		return 0;
	if (write_head(s, wsi)) {
		ended(s, SESSION_SEND_FAILED, "lws_write failed");
		return -1;
	}
	if (s->qhead)
		lws_callback_on_writable(wsi);
	return 0;
}

static const char *
closed_reason(const struct session *s)
{
	switch (s->state) {
	case SESSION_CONNECTING:
		return SESSION_CONNECT_FAILED;
	case SESSION_PROMPTING:
		return SESSION_CLOSED_PROMPTING;
	default:
		return SESSION_CLOSED;
	}
}

int
session_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len)
{
	struct session *s = user;
	char            detail[160];

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (!s)
			return 0;
		snprintf(detail, sizeof(detail), "%s",
		    in ? (const char *)in : "connection error");
		if (s->in_connect) {
			snprintf(s->connect_err, sizeof(s->connect_err), "%s",
			    detail);
			lws_set_wsi_user(wsi, NULL);
			return 0;
		}
		s->wsi = NULL; /* lws is freeing it */
		lws_set_wsi_user(wsi, NULL);
		ended(s, closed_reason(s), detail);
		return 0;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!s || s->retired) {
			/* Its owner left while it connected: say goodbye. */
			if (s)
				s->upgraded = true;
			lws_callback_on_writable(wsi);
			return 0;
		}
		s->state    = SESSION_PROMPTING;
		s->upgraded = true;
		LOGD(s->env->o.log, &s->ids,
		    "PersonaPlex session to %s: upgraded, waiting for the "
		    "handshake",
		    s->server);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!s || s->retired)
			return 0;
		s->busy++;
		on_receive(s, wsi, in, len);
		s->busy--;
		if (s->doomed)
			finish(s);
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!s || s->retired) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL,
			    (unsigned char *)"bye", 3);
			return -1;
		}
		return on_writeable(s, wsi);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (s && len >= 2)
			s->peer_close = ((const uint8_t *)in)[0] << 8
			    | ((const uint8_t *)in)[1];
		return 0;

	/* Whichever of these comes first ends the session: a socket
	 * dropped before its upgrade may only get CLOSED_CLIENT_HTTP, and
	 * WSI_DESTROY goes to the vhost's first protocol, which must pass
	 * it on (session.h). */
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
	case LWS_CALLBACK_WSI_DESTROY:
		if (!s)
			return 0;
		s->wsi = NULL;
		lws_set_wsi_user(wsi, NULL);
		if (s->write_failed)
			snprintf(detail, sizeof(detail), "lws_write failed");
		else if (s->peer_close)
			snprintf(detail, sizeof(detail),
			    "server closed the socket (%d)", s->peer_close);
		else
			snprintf(detail, sizeof(detail),
			    "socket closed without a close frame");
		ended(s, s->write_failed ? SESSION_SEND_FAILED
		                         : closed_reason(s),
		    detail);
		return 0;

	default:
		return 0;
	}
}
