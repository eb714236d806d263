/*
 * sim.c - simulated Exotel calls, paced by one shared 20 ms tick.
 *
 * Each call is a small state machine: IDLE (waiting for its dial time),
 * CONNECTING, OPEN (connected, start, media until --seconds, DTMF and
 * mark echoes interleaved), STOPPED (stop sent, waiting --linger-ms for
 * the server to close), CLOSING (we close) and DONE. The tick decides
 * what is due and writes it, highest priority first. Media time is
 * counted in ticks from the tick the start went out, so a late tick
 * catches up instead of drifting.
 *
 * lws carries each ws:// call as a raw socket, and the WebSocket protocol
 * on it is wsc's, which parses and masks a run of bytes at a time where
 * lws 4.1's client takes one byte per call. wss:// calls keep lws's
 * WebSocket client: lws 4.1 cannot start TLS on a raw client connection
 * (it sets TLS up before the socket exists).
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "base64.h"
#include "clock.h"
#include "evloop.h"
#include "exomsg.h"
#include "gaps.h"
#include "playout.h"
#include "rxcheck.h"
#include "wsc.h"
#include "wsraw.h"

#define TICK_US 20000
/* With --spread, the shared tick runs this often and each call acts when
 * its own 20 ms boundary has passed. */
#define SUBTICK_US 2000
#define TICK_MS 20
/* A received message larger than this is not even parsed. */
#define RX_MAX (4u << 20)
/* A frame's header goes into the room lws's writes keep before data. */
_Static_assert(LWS_PRE >= WSC_HDR_MAX, "no room for a frame header");
/* Ticks made up at once after the process stalled; beyond, skipped. */
#define MAX_CATCHUP 50
/* A close we started that the server never completes is cut after this. */
#define CLOSE_GRACE_US 3000000

enum call_state {
	CS_IDLE = 0,
	CS_CONNECTING,
	CS_OPEN,
	CS_STOPPED,
	CS_CLOSING,
	CS_DONE,
};

enum item {
	IT_NONE = 0,
	IT_CONNECTED,
	IT_START,
	IT_MARK,
	IT_DTMF,
	IT_MEDIA,
	IT_STOP,
	IT_CLOSE,
};

struct call {
	struct sim        *sim;
	size_t             idx;
	struct lws        *wsi;
	enum call_state    st;
	struct exomsg_call info;
	struct log_call    lc;
	struct call_result res;
	struct wsc        *ws;
	bool               req_sent; /* the upgrade request went out */
	bool               close_sent; /* our close frame went out */
	bool               drop; /* close the socket once this read is done */

	uint64_t dial_tick, dial_us, start_tick, start_us, stop_us, close_us;
	uint64_t play_tick;
	uint64_t phase_us; /* this call's 20 ms boundaries: t0 + phase + k*20 ms */
	uint64_t last_n; /* the tick call_tick last saw */
	bool     ticked;
	bool     sent_connected, sent_start, sent_stop, stop_due, timed_out;
	unsigned seq;
	uint64_t chunks_total, chunks_due, chunks_sent;
	uint64_t elapsed_ms; /* media time at the last tick */
	bool     dtmf_done[OPTS_MAX_DTMF];

	char **echo; /* mark names due for an echo: echo[ehead .. en) */
	size_t ehead, en, ecap;

	uint8_t *tx; /* LWS_PRE + message */
	size_t   tx_cap;
	uint8_t *pcm_le; /* one chunk of caller audio as PCM16LE */

	uint8_t *rx; /* wss://: the message lws hands over in parts */
	size_t   rx_len, rx_cap;
	bool     rx_binary, rx_overflow;
	uint8_t *dec; /* decoded payloads */
	size_t   dec_cap;
	int16_t *s16; /* decoded payload as samples, padded to frames */
	size_t   s16_cap;

	struct playout *po;
	int16_t        *frame;
	bool            was_playing, got_audio;
	uint32_t        logged_kinds; /* violation kinds already logged */
	bool            logged_sid_absent;

	bool     recording;
	int16_t *rec, *ana; /* heard timeline; everything received */
	size_t   rec_n, rec_cap, ana_n, ana_cap;
};

struct sim {
	const struct call_opts *o;
	const struct log       *lg;
	struct sim_audio        audio;
	struct evloop          *loop; /* owns ctx */
	struct lws_context     *ctx;
	bool                    raw; /* ws://: raw sockets and wsc */
	lws_sorted_usec_list_t  sul;
	uint64_t                t0;
	uint64_t                t0_wall; /* wall_us() at t0 */
	volatile sig_atomic_t  *interrupt;
	char                    host_hdr[300];
	char                    auth_hdr[512]; /* "" or the header value */
	struct call            *calls;
	size_t                  ncalls, active;
	size_t                  frame; /* samples per 20 ms */
	size_t                  chunk; /* samples per media message */
};

static const char *const item_names[] = {
	"none",
	"connected",
	"start",
	"mark",
	"dtmf",
	"media",
	"stop",
	"close",
};

/* Appends n samples to a growable array; on ENOMEM the array is left
 * as it was (analysis and recordings are best effort). */
static int
grow_append(int16_t **a, size_t *len, size_t *cap, const int16_t *p, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 16000;
		while (ncap < *len + n)
			ncap *= 2;
		int16_t *na = realloc(*a, ncap * sizeof(*na));
		if (!na)
			return ENOMEM;
		*a   = na;
		*cap = ncap;
	}
	memcpy(*a + *len, p, n * sizeof(*p));
	*len += n;
	return 0;
}

static void
call_finish(struct call *c)
{
	if (c->st == CS_DONE)
		return;
	c->st = CS_DONE;
	c->sim->active--;
	LOGI(c->sim->lg, &c->lc,
	    "call %zu done: closed_by=%s code=%d sent=%.2fs received=%.2fs",
	    c->idx, c->res.closed_by ? c->res.closed_by : "-",
	    c->res.close_code, c->res.seconds_sent,
	    (double)c->res.pcm_bytes_received / 2.0 / c->res.rate);
}

static void
call_fail(struct call *c, const char *why)
{
	if (!c->res.error[0])
		snprintf(c->res.error, sizeof(c->res.error), "%s", why);
	LOGW(c->sim->lg, &c->lc, "call %zu: connection failed: %s", c->idx,
	    c->res.error);
	call_finish(c);
}

/* The call's own tick number at now (mono µs). */
static uint64_t
call_tick_at(const struct call *c, uint64_t now)
{
	uint64_t from = c->sim->t0 + c->phase_us;

	return now > from ? (now - from) / TICK_US : 0;
}

static bool
dtmf_due(const struct call *c, size_t *which)
{
	const struct call_opts *o = c->sim->o;
	for (size_t i = 0; i < o->ndtmf; i++) {
		if (c->dtmf_done[i])
			continue;
		if (o->dtmf[i].at_ms <= c->elapsed_ms || c->stop_due) {
			*which = i;
			return true;
		}
	}
	return false;
}

static enum item
call_next(const struct call *c)
{
	size_t d;

	if (c->st == CS_CLOSING)
		return c->close_sent ? IT_NONE : IT_CLOSE;
	if (c->st != CS_OPEN)
		return IT_NONE;
	if (!c->sent_connected)
		return IT_CONNECTED;
	if (!c->sent_start)
		return IT_START;
	if (c->ehead < c->en)
		return IT_MARK;
	if (dtmf_due(c, &d))
		return IT_DTMF;
	if (c->chunks_sent < c->chunks_due)
		return IT_MEDIA;
	if (c->stop_due)
		return c->sim->o->stop_reason ? IT_STOP : IT_CLOSE;
	return IT_NONE;
}

/* One chunk of the caller's audio as PCM16LE into c->pcm_le. */
static void
fill_chunk(struct call *c, uint64_t k)
{
	const struct sim_audio *a   = &c->sim->audio;
	size_t                  n   = c->sim->chunk;
	uint64_t                pos = k * n;

	for (size_t i = 0; i < n; i++, pos++) {
		int16_t v = 0;
		if (a->n && (a->loop || pos < a->n))
			v = a->pcm[a->loop ? pos % a->n : pos];
		c->pcm_le[2 * i]     = (uint8_t)((uint16_t)v & 0xff);
		c->pcm_le[2 * i + 1] = (uint8_t)((uint16_t)v >> 8);
	}
}

static int
call_build(struct call *c, enum item it, size_t *len)
{
	const struct call_opts *o   = c->sim->o;
	char                   *buf = (char *)c->tx + LWS_PRE;
	size_t                  cap = c->tx_cap - LWS_PRE;
	size_t                  d   = 0;

	switch (it) {
	case IT_CONNECTED:
		return exomsg_connected(buf, cap, len);
	case IT_START:
		return exomsg_start(buf, cap, len, &c->info, c->seq + 1);
	case IT_MARK:
		return exomsg_mark(
		    buf, cap, len, &c->info, c->seq + 1, c->echo[c->ehead]);
	case IT_DTMF:
		dtmf_due(c, &d);
		return exomsg_dtmf(buf, cap, len, &c->info, c->seq + 1,
		    o->dtmf[d].digit, o->dtmf[d].duration_ms);
	case IT_MEDIA:
		fill_chunk(c, c->chunks_sent);
		return exomsg_media(buf, cap, len, &c->info, c->seq + 1,
		    (unsigned)c->chunks_sent + 1,
		    (unsigned)(c->chunks_sent * (uint64_t)o->chunk_ms),
		    c->pcm_le, c->sim->chunk * 2);
	case IT_STOP:
		return exomsg_stop(
		    buf, cap, len, &c->info, c->seq + 1, o->stop_reason);
	default:
		return EINVAL;
	}
}

/* Bookkeeping once message `it` has gone out. */
static void
call_sent(struct call *c, enum item it)
{
	const struct call_opts *o = c->sim->o;
	size_t                  d = 0;

	c->res.messages_sent++;
	if (it != IT_CONNECTED)
		c->seq++;
	switch (it) {
	case IT_CONNECTED:
		c->sent_connected = true;
		break;
	case IT_START:
		c->sent_start = true;
		c->start_us   = mono_us();
		c->start_tick = c->play_tick = call_tick_at(c, mono_us());
		LOGI(c->sim->lg, &c->lc,
		    "call %zu: start sent (rate %d, %llu chunks of %d ms)",
		    c->idx, o->rate, (unsigned long long)c->chunks_total,
		    o->chunk_ms);
		break;
	case IT_MARK:
		free(c->echo[c->ehead++]);
		if (c->ehead == c->en)
			c->ehead = c->en = 0;
		c->res.marks_echoed++;
		break;
	case IT_DTMF:
		dtmf_due(c, &d);
		c->dtmf_done[d] = true;
		c->res.dtmf_sent++;
		break;
	case IT_MEDIA:
		c->chunks_sent++;
		c->res.media_sent++;
		c->res.seconds_sent += o->chunk_ms / 1000.0;
		break;
	case IT_STOP:
		c->sent_stop = true;
		c->st        = CS_STOPPED;
		c->stop_us   = mono_us();
		LOGI(c->sim->lg, &c->lc, "call %zu: stop (%s) sent", c->idx,
		    o->stop_reason);
		break;
	default:
		break;
	}
}

/* Frames and writes n bytes at p (with LWS_PRE bytes free before it).
 * lws queues what the socket does not take. Returns 0, or -1 when the
 * connection is to go. */
static int
ws_write(struct call *c, uint8_t *p, size_t n, int opcode)
{
	uint8_t mask[4];
	size_t  h;

	if (!c->sim->raw)
		return lws_write(c->wsi, p, n, LWS_WRITE_TEXT) < (int)n ? -1
		                                                        : 0;
	lws_get_random(c->sim->ctx, mask, sizeof(mask));
	h = wsc_frame(p, n, opcode, mask);
	return lws_write(c->wsi, p - h, n + h, LWS_WRITE_RAW) < 0 ? -1 : 0;
}

/* A control frame (close, pong) with payload p[0..n), n <= 125. */
static int
ws_control(struct call *c, int opcode, const void *p, size_t n)
{
	uint8_t buf[LWS_PRE + 125];

	memcpy(buf + LWS_PRE, p, n);
	return ws_write(c, buf + LWS_PRE, n, opcode);
}

/* Starts or answers a close. Returns what the lws callback returns: over
 * lws's WebSocket client, -1 has lws send the close frame. */
static int
ws_close(struct call *c, int code)
{
	uint8_t b[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	c->close_sent = true;
	if (!c->sim->raw) {
		lws_close_reason(c->wsi, (enum lws_close_status)code, NULL, 0);
		return -1;
	}
	/* 1005 means "no code": it is never sent (RFC 6455 §7.4.1). */
	return ws_control(c, WSRAW_CLOSE, b, code == 1005 ? 0 : 2);
}

/* Builds and writes message `it` (not IT_CLOSE). Returns 0, or -1 when
 * the connection is to go. */
static int
call_send(struct call *c, enum item it)
{
	size_t len;
	int    rv;

	while ((rv = call_build(c, it, &len)) == ENOSPC) {
		size_t   ncap = c->tx_cap * 2;
		uint8_t *nb   = realloc(c->tx, ncap);
		if (!nb)
			return -1;
		c->tx     = nb;
		c->tx_cap = ncap;
	}
	if (rv) {
		LOGE(c->sim->lg, &c->lc, "call %zu: cannot build %s: %s",
		    c->idx, item_names[it], strerror(rv));
		return -1;
	}
	LOGD(c->sim->lg, &c->lc, "call %zu: -> %s (%zu bytes)", c->idx,
	    item_names[it], len);
	if (ws_write(c, c->tx + LWS_PRE, len, WSRAW_TEXT)) {
		LOGW(c->sim->lg, &c->lc, "call %zu: write failed", c->idx);
		return -1;
	}
	call_sent(c, it);
	return 0;
}

static void call_flush(struct call *c);

/* The upgrade request, once lws has the connection (and its TLS). */
static int
call_request(struct call *c)
{
	struct sim *s = c->sim;
	uint8_t     nonce[16];
	size_t      n;

	lws_get_random(s->ctx, nonce, sizeof(nonce));
	n = wsc_request(c->ws, (char *)c->tx + LWS_PRE, c->tx_cap - LWS_PRE,
	    s->host_hdr, s->o->path, s->auth_hdr[0] ? s->auth_hdr : NULL,
	    nonce);
	c->req_sent = true;
	if (!n || lws_write(c->wsi, c->tx + LWS_PRE, n, LWS_WRITE_RAW) < 0) {
		snprintf(c->res.error, sizeof(c->res.error), "%s",
		    n ? "cannot send the upgrade request"
		      : "upgrade request too long");
		return -1;
	}
	return 0;
}

static int
call_writable(struct call *c)
{
	enum item it = call_next(c);

	if (c->st == CS_CONNECTING)
		return c->req_sent ? 0 : call_request(c);
	if (it == IT_NONE)
		return 0;
	if (it == IT_CLOSE) {
		if (!c->res.closed_by) {
			c->res.closed_by          = "client";
			c->res.close_code         = LWS_CLOSE_STATUS_NORMAL;
			c->res.closed_before_stop = !c->sent_stop;
		}
		c->st       = CS_CLOSING;
		c->close_us = mono_us();
		/* The server answers with its close frame, or the tick cuts
		 * the connection after CLOSE_GRACE_US. */
		return ws_close(c, LWS_CLOSE_STATUS_NORMAL);
	}
	call_flush(c);
	return 0;
}

static void
note_violations(struct call *c, uint32_t viol)
{
	for (int k = 0; k < RXV__COUNT; k++) {
		if (!(viol & (1u << k)))
			continue;
		c->res.viol[k]++;
		if (!(c->logged_kinds & (1u << k))) {
			c->logged_kinds |= 1u << k;
			LOGW(c->sim->lg, &c->lc,
			    "call %zu: violation %s (message %llu; later ones "
			    "of this kind are only counted)",
			    c->idx, rxcheck_viol_name((enum rxv)k),
			    (unsigned long long)c->res.messages_received);
		}
	}
}

static void
on_media(struct call *c, const uint8_t *pcm, size_t nbytes)
{
	size_t frame = c->sim->frame;
	size_t ns    = nbytes / 2;
	/* Exotel plays a short tail as a whole 20 ms tick (§2.3): pad. */
	size_t padded = (ns + frame - 1) / frame * frame;

	if (!ns)
		return;
	c->res.pcm_bytes_received += nbytes;
	if (padded > c->s16_cap) {
		int16_t *p = realloc(c->s16, padded * sizeof(*p));
		if (!p)
			return;
		c->s16     = p;
		c->s16_cap = padded;
	}
	for (size_t i = 0; i < ns; i++)
		c->s16[i] = (int16_t)(uint16_t)(pcm[2 * i]
		    | ((uint16_t)pcm[2 * i + 1] << 8));
	memset(c->s16 + ns, 0, (padded - ns) * sizeof(*c->s16));

	/* Bounded: a long run with many calls would otherwise keep every
	 * second of every call. */
	if ((double)(c->ana_n + ns)
	    <= c->sim->o->analyze_seconds * (double)c->res.rate)
		grow_append(&c->ana, &c->ana_n, &c->ana_cap, c->s16, ns);
	if (!c->got_audio) {
		c->got_audio          = true;
		c->res.first_audio_ms = c->sent_start
		    ? (double)(mono_us() - c->start_us) / 1000.0
		    : 0;
	}
	if (c->st != CS_OPEN) {
		c->res.after_stop++;
		return;
	}
	if (playout_push(c->po, c->s16, padded) != 0)
		return;
	double lead = (double)playout_queued(c->po) * 1000.0 / c->res.rate;
	if (lead > c->res.max_lead_ms)
		c->res.max_lead_ms = lead;
	if (lead > c->sim->o->max_lead_ms)
		note_violations(c, 1u << RXV_LEAD_OVER_LIMIT);
}

/* wsc: a whole message; p NULL when it was over RX_MAX. */
static void
on_message(void *u, bool binary, const uint8_t *p, size_t len)
{
	struct call  *c   = u;
	const char   *msg = (const char *)p;
	struct rx_msg m;

	c->res.messages_received++;
	if (!p) {
		note_violations(c, 1u << RXV_MESSAGE_TOO_LARGE);
		return;
	}
	if (binary) {
		note_violations(c, 1u << RXV_BINARY_FRAME);
		return;
	}
	if (rxcheck_text(msg, len, c->info.stream_sid, c->res.rate, &c->dec,
	        &c->dec_cap, &m)
	    != 0) {
		LOGE(c->sim->lg, &c->lc, "call %zu: out of memory", c->idx);
		free(m.mark_name);
		return;
	}
	note_violations(c, m.viol);
	if (m.sid_absent) {
		c->res.sid_absent++;
		if (!c->logged_sid_absent) {
			c->logged_sid_absent = true;
			LOGI(c->sim->lg, &c->lc,
			    "call %zu: message without stream_sid (tolerated)",
			    c->idx);
		}
	}
	LOGD(c->sim->lg, &c->lc, "call %zu: <- %.*s%s", c->idx,
	    (int)(len < 160 ? len : 160), msg, len > 160 ? "..." : "");
	switch (m.kind) {
	case RX_MEDIA:
		c->res.media_messages++;
		if (m.pcm)
			on_media(c, m.pcm, m.pcm_len & ~(size_t)1);
		break;
	case RX_MARK:
		c->res.marks_received++;
		if (c->st != CS_OPEN)
			c->res.after_stop++;
		else if (m.mark_name)
			playout_mark(c->po, m.mark_name);
		break;
	case RX_CLEAR:
		c->res.clears_received++;
		if (c->st == CS_OPEN)
			c->res.samples_cleared += playout_clear(c->po);
		else
			c->res.after_stop++;
		break;
	default:
		break;
	}
	free(m.mark_name);
}

/* wsc: the response to the upgrade. */
static void
on_response(void *u, int status)
{
	struct call *c = u;

	if (status != 101) {
		c->res.http_status = status;
		snprintf(c->res.error, sizeof(c->res.error),
		    "the upgrade was answered with HTTP %d", status);
		c->drop = true;
		return;
	}
	c->st            = CS_OPEN;
	c->res.connected = true;
	LOGI(c->sim->lg, &c->lc, "call %zu: connected to %s", c->idx,
	    c->sim->o->url_shown);
	lws_callback_on_writable(c->wsi);
}

static void
on_ping(void *u, const uint8_t *p, size_t n)
{
	struct call *c = u;

	if (!c->close_sent && ws_control(c, WSRAW_PONG, p, n))
		c->drop = true;
}

static void
note_server_close(struct call *c, int code, const char *reason, size_t n)
{
	if (c->res.closed_by)
		return;
	c->res.closed_by          = "server";
	c->res.close_code         = code;
	c->res.closed_before_stop = !c->sent_stop;
	LOGI(c->sim->lg, &c->lc, "call %zu: server closed (%d%s%.*s)", c->idx,
	    code, n ? ": " : "", (int)n, reason);
}

/* wsc: the server's close frame. It is answered (unless ours went
 * first) and the socket closed, as lws's client did. */
static void
on_close(void *u, int code, const char *reason, size_t n)
{
	struct call *c = u;

	note_server_close(c, code, reason, n);
	if (!c->close_sent)
		ws_close(c, code);
	c->drop = true;
}

static const struct wsc_ops call_wsc_ops = {
	.response = on_response,
	.message  = on_message,
	.ping     = on_ping,
	.close    = on_close,
};

/* wss://: a part of a message from lws's WebSocket client. */
static void
tls_receive(struct call *c, const void *in, size_t len)
{
	if (c->rx_len == 0 && !c->rx_overflow)
		c->rx_binary = lws_frame_is_binary(c->wsi);
	if (c->rx_overflow || c->rx_len + len > RX_MAX) {
		c->rx_overflow = true;
	} else if (c->rx_len + len > c->rx_cap) {
		size_t ncap = c->rx_cap ? c->rx_cap : 8192;
		while (ncap < c->rx_len + len)
			ncap *= 2;
		uint8_t *nb = realloc(c->rx, ncap);
		if (!nb)
			c->rx_overflow = true;
		else {
			c->rx     = nb;
			c->rx_cap = ncap;
		}
	}
	if (!c->rx_overflow) {
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
	}
	if (lws_is_final_fragment(c->wsi)
	    && !lws_remaining_packet_payload(c->wsi)) {
		on_message(
		    c, c->rx_binary, c->rx_overflow ? NULL : c->rx, c->rx_len);
		c->rx_len      = 0;
		c->rx_overflow = false;
	}
}

/* The connection has ended, the call with it. */
static void
call_closed(struct call *c)
{
	c->wsi = NULL;
	if (!c->res.connected) {
		call_fail(c,
		    c->res.error[0] ? c->res.error
		                    : "connection closed before the upgrade");
		return;
	}
	if (!c->res.closed_by) {
		/* No close frame: the connection just ended. */
		c->res.closed_by          = "server";
		c->res.close_code         = 1006;
		c->res.closed_before_stop = !c->sent_stop;
	}
	call_finish(c);
}

/* What the socket gave. Returns -1 when the connection is to go. */
static int
call_receive(struct call *c, const void *in, size_t len)
{
	int rv = wsc_feed(c->ws, in, len, &call_wsc_ops, c);

	if (rv == WSC_OK)
		return c->drop ? -1 : 0;
	if (c->st == CS_CONNECTING) {
		snprintf(c->res.error, sizeof(c->res.error), "upgrade: %s",
		    wsc_error(c->ws));
		return -1;
	}
	LOGW(c->sim->lg, &c->lc, "call %zu: protocol error: %s", c->idx,
	    wsc_error(c->ws));
	if (!c->res.closed_by) {
		c->res.closed_by          = "client";
		c->res.close_code         = LWS_CLOSE_STATUS_PROTOCOL_ERR;
		c->res.closed_before_stop = !c->sent_stop;
	}
	if (!c->close_sent)
		ws_close(c, LWS_CLOSE_STATUS_PROTOCOL_ERR);
	return -1;
}

static void
echo_push(struct call *c, char *name)
{
	if (c->en == c->ecap) {
		if (c->ehead) {
			memmove(c->echo, c->echo + c->ehead,
			    (c->en - c->ehead) * sizeof(*c->echo));
			c->en -= c->ehead;
			c->ehead = 0;
		}
		if (c->en == c->ecap) {
			size_t ncap = c->ecap ? c->ecap * 2 : 8;
			char **ne   = realloc(c->echo, ncap * sizeof(*ne));
			if (!ne) {
				free(name);
				return;
			}
			c->echo = ne;
			c->ecap = ncap;
		}
	}
	c->echo[c->en++] = name;
}

/* Exotel plays one frame per tick: what the caller hears. */
static void
call_play(struct call *c)
{
	size_t frame = c->sim->frame;
	size_t got   = playout_tick(c->po, c->frame);
	char  *name;

	/* Frame play_tick plays at this wall-clock time (catch-up ticks
	 * included), for the gaps the restart tests compare. */
	gaps_frame(&c->res.gaps, c->frame, got,
	    (c->sim->t0_wall + c->phase_us + c->play_tick * TICK_US) / 1000,
	    TICK_MS);

	if (c->recording)
		grow_append(&c->rec, &c->rec_n, &c->rec_cap, c->frame, frame);
	if (got == frame) {
		c->was_playing = true;
	} else if (c->got_audio) {
		c->res.underrun_ticks++;
		if (c->was_playing)
			c->res.underruns++;
		c->was_playing = false;
	}
	while ((name = playout_due_mark(c->po)))
		echo_push(c, name);
}

static void
call_dial(struct call *c)
{
	struct sim                    *s = c->sim;
	const struct call_opts        *o = s->o;
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context = s->ctx;
	ci.address = o->host;
	ci.port    = o->port;
	ci.path    = o->path;
	ci.host    = s->host_hdr;
	if (s->raw)
		ci.method = "RAW"; /* the WebSocket on it is wsc's */
	if (o->tls) {
		ci.ssl_connection = LCCSCF_USE_SSL;
		if (o->insecure)
			ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED
			    | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
			    | LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
		ci.alpn = "http/1.1";
	}
	/* Exotel asks for no subprotocol; bind our handler by name. */
	ci.local_protocol_name = "exoplex-call";
	ci.opaque_user_data    = c;
	ci.pwsi                = &c->wsi;
	c->st                  = CS_CONNECTING;
	c->req_sent            = false;
	c->dial_us             = mono_us();
	LOGD(s->lg, &c->lc, "call %zu: dialling %s", c->idx, o->url_shown);
	if (!lws_client_connect_via_info(&ci) && c->st != CS_DONE) {
		c->wsi = NULL;
		call_fail(c, "cannot start the connection");
	}
}

/* Sends what is due. Written now unless lws still holds part of an
 * earlier message (which it sends first): waiting for lws's writeable
 * callback costs a wake-up and two epoll_ctl per message (lws sets and
 * clears EPOLLOUT around each), more than the write. */
static void
call_flush(struct call *c)
{
	enum item it;

	/* Asked before every write: once lws holds part of one, a write
	 * appends to it and reports a short count. */
	while ((it = call_next(c)) != IT_NONE && it != IT_CLOSE) {
		if (lws_partial_buffered(c->wsi))
			break;
		if (call_send(c, it)) {
			lws_set_timeout(
			    c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			return;
		}
	}
	if (it != IT_NONE)
		lws_callback_on_writable(c->wsi);
}

static void
call_tick(struct call *c, uint64_t n, uint64_t now, bool interrupted)
{
	const struct call_opts *o = c->sim->o;

	switch (c->st) {
	case CS_IDLE:
		if (interrupted)
			call_fail(c, "interrupted before dialling");
		else if (n >= c->dial_tick)
			call_dial(c);
		return;
	case CS_CONNECTING:
		if (!c->timed_out
		    && (interrupted
		        || now - c->dial_us
		            > (uint64_t)o->connect_timeout_ms * 1000)) {
			c->timed_out = true;
			snprintf(c->res.error, sizeof(c->res.error), "%s",
			    interrupted ? "interrupted while connecting"
			                : "connect timeout");
			if (c->wsi)
				lws_set_timeout(c->wsi,
				    PENDING_TIMEOUT_USER_OK,
				    LWS_TO_KILL_ASYNC);
			else
				call_fail(c, c->res.error);
		}
		return;
	case CS_OPEN:
		break;
	case CS_STOPPED:
		if (now - c->stop_us >= (uint64_t)o->linger_ms * 1000) {
			c->st = CS_CLOSING;
			lws_callback_on_writable(c->wsi);
		}
		return;
	case CS_CLOSING:
		if (c->close_us && now - c->close_us > CLOSE_GRACE_US
		    && c->wsi)
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		return;
	case CS_DONE:
		return;
	}

	if (c->sent_start) {
		int k = 0;
		while (c->play_tick < n && k++ < MAX_CATCHUP) {
			call_play(c);
			c->play_tick++;
		}
		if (c->play_tick < n)
			c->play_tick = n;
		uint64_t ticks = n - c->start_tick;
		uint64_t per   = (uint64_t)(o->chunk_ms / TICK_MS);
		c->elapsed_ms  = ticks * TICK_MS;
		c->chunks_due  = ticks / per;
		if (c->chunks_due > c->chunks_total)
			c->chunks_due = c->chunks_total;
		if (interrupted && !c->stop_due) {
			/* Stop early, cleanly: nothing more to send. */
			c->chunks_total = c->chunks_due = c->chunks_sent;
		}
		if (c->chunks_sent == c->chunks_total)
			c->stop_due = true;
	}
	call_flush(c);
}

static void
sim_tick(lws_sorted_usec_list_t *sul)
{
	struct sim *s    = lws_container_of(sul, struct sim, sul);
	uint64_t    now  = mono_us();
	uint64_t    step = s->o->spread ? SUBTICK_US : TICK_US;
	uint64_t    n    = (now - s->t0) / step;
	bool        intr = s->interrupt && *s->interrupt;

	/* Real calls' 20 ms boundaries are independent: with --spread each
	 * call has its own phase, so the server under test sees the calls'
	 * messages spread over the 20 ms; by default they come as one burst
	 * (the worst case for latency, the cheapest for CPU). */
	for (size_t i = 0; i < s->ncalls; i++) {
		struct call *c  = &s->calls[i];
		uint64_t     cn = call_tick_at(c, now);
		if (c->ticked && cn == c->last_n && !intr)
			continue;
		c->ticked = true;
		c->last_n = cn;
		call_tick(c, cn, now, intr);
	}
	if (s->active) {
		uint64_t next = s->t0 + (n + 1) * step;
		now           = mono_us();
		lws_sul_schedule(s->ctx, 0, &s->sul, sim_tick,
		    next > now ? (lws_usec_t)(next - now) : 1);
	}
}

static int
sim_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct call *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;

	if (!c || c->st == CS_DONE)
		return 0;
	switch (reason) {
	/* ws:// (raw). Connected: the request goes out from the writeable
	 * callback. */
	case LWS_CALLBACK_RAW_CONNECTED:
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_RAW_RX:
		return call_receive(c, in, len);
	case LWS_CALLBACK_RAW_WRITEABLE:
		return call_writable(c);
	case LWS_CALLBACK_RAW_CLOSE:
		call_closed(c);
		break;

	/* wss:// (lws's WebSocket client) */
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		char **p = in;
		if (!c->sim->auth_hdr[0])
			break;
		if (len < strlen(c->sim->auth_hdr) + 20)
			return -1;
		*p += lws_snprintf(
		    *p, len, "Authorization: %s\r\n", c->sim->auth_hdr);
		break;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		on_response(c, 101);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		tls_receive(c, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return call_writable(c);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
		const uint8_t *b = in;
		note_server_close(c,
		    len >= 2 ? (b[0] << 8) | b[1] : LWS_CLOSE_STATUS_NOSTATUS,
		    len > 2 ? (const char *)b + 2 : "", len > 2 ? len - 2 : 0);
		break;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
		call_closed(c);
		break;

	/* both */
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		int status
		    = c->sim->raw ? 0 : lws_http_client_http_response(wsi);
		if (status > 0 && status != 101)
			c->res.http_status = status;
		c->wsi = NULL;
		if (!c->res.error[0])
			snprintf(c->res.error, sizeof(c->res.error), "%.*s",
			    in ? (int)len : 0, in ? (const char *)in : "");
		call_fail(
		    c, c->res.error[0] ? c->res.error : "connection failed");
		break;
	}
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols sim_protocols[] = {
	{ "exoplex-call", sim_callback, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static int
call_init(struct sim *s, struct call *c, size_t idx, uint64_t *rng)
{
	const struct call_opts *o = s->o;

	c->sim = s;
	c->idx = idx;
	if (o->stream_sid || o->call_sid) {
		exomsg_gen_ids(c->res.stream_sid, c->res.call_sid, rng);
		if (o->stream_sid)
			snprintf(c->res.stream_sid, sizeof(c->res.stream_sid),
			    "%s", o->stream_sid);
		if (o->call_sid)
			snprintf(c->res.call_sid, sizeof(c->res.call_sid),
			    "%s", o->call_sid);
	} else {
		exomsg_gen_ids(c->res.stream_sid, c->res.call_sid, rng);
	}
	c->lc.call_sid         = c->res.call_sid;
	c->lc.stream_sid       = c->res.stream_sid;
	c->info.stream_sid     = c->res.stream_sid;
	c->info.call_sid       = c->res.call_sid;
	c->info.account_sid    = o->account;
	c->info.from           = o->from;
	c->info.to             = o->to;
	c->info.rate           = o->rate;
	c->info.custom         = o->custom;
	c->info.ncustom        = o->ncustom;
	c->info.custom_present = o->custom_empty || o->ncustom;
	c->info.numbers        = o->numbers;
	c->res.rate            = o->rate;
	c->res.first_audio_ms  = -1;
	gaps_init(&c->res.gaps, (unsigned)o->gap_ms);
	c->chunks_total
	    = (uint64_t)(o->seconds * 1000.0 / o->chunk_ms + 0.999999);
	if (o->ramp_ms && s->ncalls > 1)
		c->dial_tick
		    = (uint64_t)o->ramp_ms * idx / s->ncalls / TICK_MS;
	if (o->spread && s->ncalls > 1)
		c->phase_us = (uint64_t)TICK_US * idx / s->ncalls;
	c->tx_cap = LWS_PRE + exomsg_media_cap(&c->info, s->chunk * 2) + 4096;
	if (wsc_alloc(&c->ws, RX_MAX) != 0)
		return ENOMEM;
	c->tx     = malloc(c->tx_cap);
	c->pcm_le = malloc(s->chunk * 2);
	c->frame  = malloc(s->frame * sizeof(*c->frame));
	if (!c->tx || !c->pcm_le || !c->frame)
		return ENOMEM;
	if (playout_alloc(&c->po, s->frame, o->clear_marks) != 0)
		return ENOMEM;
	c->recording = o->record && (idx == 0 || strstr(o->record, "%d"));
	return 0;
}

static void
call_free(struct call *c)
{
	for (size_t i = c->ehead; i < c->en; i++)
		free(c->echo[i]);
	free(c->echo);
	free(c->tx);
	free(c->pcm_le);
	free(c->rx);
	wsc_free(c->ws);
	free(c->dec);
	free(c->s16);
	playout_free(c->po);
	free(c->frame);
	free(c->rec);
	free(c->ana);
}

int
sim_alloc(struct sim **out, const struct call_opts *o, const struct log *lg,
    const struct sim_audio *audio, uint64_t seed)
{
	struct lws_context_creation_info info;
	struct sim                      *s;
	uint64_t                         rng = seed;
	int                              rv  = ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;
	s->o      = o;
	s->lg     = lg;
	s->audio  = *audio;
	s->frame  = (size_t)o->rate / 50;
	s->chunk  = (size_t)o->rate * (size_t)o->chunk_ms / 1000;
	s->ncalls = (size_t)o->calls;
	s->raw    = !o->tls;
	s->calls  = calloc(s->ncalls, sizeof(*s->calls));
	if (!s->calls)
		goto fail;
	for (size_t i = 0; i < s->ncalls; i++)
		if (call_init(s, &s->calls[i], i, &rng) != 0)
			goto fail;

	/* Host header as a browser would send it: the port only when it is
	 * not the scheme's default. */
	bool v6   = strchr(o->host, ':') != NULL;
	bool dflt = o->port == (o->tls ? 443 : 80);
	if (dflt)
		snprintf(s->host_hdr, sizeof(s->host_hdr), "%s%s%s",
		    v6 ? "[" : "", o->host, v6 ? "]" : "");
	else
		snprintf(s->host_hdr, sizeof(s->host_hdr), "%s%s%s:%d",
		    v6 ? "[" : "", o->host, v6 ? "]" : "", o->port);
	if (o->userinfo[0]) {
		/* Exotel turns user:pass in the URL into Basic auth (§4.1). */
		char b64[400];
		if (b64_encoded_len(strlen(o->userinfo)) >= sizeof(b64)) {
			rv = EINVAL;
			goto fail;
		}
		b64_encode(
		    b64, (const uint8_t *)o->userinfo, strlen(o->userinfo));
		snprintf(s->auth_hdr, sizeof(s->auth_hdr), "Basic %s", b64);
	} else if (o->bearer) {
		snprintf(
		    s->auth_hdr, sizeof(s->auth_hdr), "Bearer %s", o->bearer);
	}

	memset(&info, 0, sizeof(info));
	info.port                   = CONTEXT_PORT_NO_LISTEN;
	info.protocols              = sim_protocols;
	info.options                = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.client_ssl_ca_filepath = o->ca_file;
	info.fd_limit_per_thread    = (unsigned)(s->ncalls + 64);
	info.connect_timeout_secs
	    = (unsigned)((o->connect_timeout_ms + 999) / 1000);
	info.timeout_secs = info.connect_timeout_secs;
	if ((rv = evloop_create(&s->loop, &info)) != 0)
		goto fail;
	s->ctx = evloop_lws(s->loop);
	s->active = s->ncalls;
	*out      = s;
	return 0;
fail:
	sim_free(s);
	return rv;
}

int
sim_run(struct sim *s, volatile sig_atomic_t *interrupt)
{
	s->interrupt = interrupt;
	s->t0        = mono_us();
	s->t0_wall   = wall_us();
	lws_sul_schedule(s->ctx, 0, &s->sul, sim_tick, 1);
	while (s->active > 0)
		evloop_turn(s->loop, true);
	lws_sul_cancel(&s->sul);
	for (size_t i = 0; i < s->ncalls; i++) {
		struct call *c = &s->calls[i];
		c->res.rx_pcm  = c->ana;
		c->res.rx_n    = c->ana_n;
		gaps_finish(&c->res.gaps);
	}
	return 0;
}

size_t
sim_ncalls(const struct sim *s)
{
	return s->ncalls;
}

struct call_result *
sim_result(struct sim *s, size_t i)
{
	return i < s->ncalls ? &s->calls[i].res : NULL;
}

bool
sim_recording(const struct sim *s, size_t i, const int16_t **pcm, size_t *n)
{
	if (i >= s->ncalls || !s->calls[i].recording)
		return false;
	*pcm = s->calls[i].rec;
	*n   = s->calls[i].rec_n;
	return true;
}

void
sim_free(struct sim *s)
{
	if (!s)
		return;
	evloop_destroy(s->loop);
	for (size_t i = 0; s->calls && i < s->ncalls; i++)
		call_free(&s->calls[i]);
	free(s->calls);
	free(s);
}
