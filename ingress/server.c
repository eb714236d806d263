/*
 * server.c - the Exotel WebSocket endpoint on libwebsockets 4.1.
 *
 * One context, one thread. Protocol "exotel" (the vhost's default, so
 * Exotel needs no subprotocol) serves /exotel; protocol "exoplex-bus"
 * receives the adopted bus fds. One lws_sul tick every 20 ms walks every
 * connection: it moves due playback into the connection's outbound queue
 * (media, and marks after it: playout.h), expires overdue marks, and asks
 * for a writeable callback, which sends one message per call.
 *
 * Admission: at the upgrade, a wrong credential gets HTTP 401, too many
 * sockets waiting for their start get 503. At start: credentials (if none
 * came at the upgrade, custom_parameters.token), then capacity. A refused
 * call is closed (1008 auth, 1013 capacity) and reported on the control
 * link only as call_start{refused=reason} + call_stop{reason}; the
 * transcoder never hears of it.
 *
 * Call lifecycle and the call_stop reason sent on both links:
 *   start               → call_start (both links), call is live
 *   stop                → call_stop{"callended", or "stopped" for any
 *                         other reason}; nothing more is sent (unplayed
 *                         audio dropped); Exotel closes, or we close
 *                         (1000) after stop_grace_ms
 *   hangup from the bus → call_stop{hangup reason}; close 1000
 *   dtmf in dtmf_hangup → call_stop{"stopped"}; close 1000
 *   socket closed, or closed by us for bad input, before a stop
 *                       → call_stop{"bridge_error"}
 *   server_stop         → call_stop{"bridge_error"}
 *
 * A call's mode (call_info.mode): custom_parameters.mode at start, then
 * what egress decides (call_mode). In "transcribe" mode (agent assist,
 * Exotel's one-way Stream applet) nothing at all is sent to Exotel (no
 * media, mark or clear) and the caller's audio goes to egress only (for
 * speech-to-text), not to the transcoder.
 */
#include "server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "arena.h"
#include "auth.h"
#include "bus.h"
#include "bus_lws.h"
#include "callbus.h"
#include "clock.h"
#include "config.h"
#include "evloop.h"
#include "exotel.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "outq.h"
#include "playback.h"
#include "playout.h"
#include "strmap.h"

#define TICK_US 20000
#define OUT_SLOTS 4
/* Only messages lws hands over in pieces (longer than rx_buffer_size)
 * are joined here; the buffer grows up to the message limit and shrinks
 * back after. */
#define RX_INITIAL 16384
#define CLOSE_TRY_AGAIN_LATER 1013 /* RFC 6455 registry; not in lws's enum */
#define CLOSE_BACKSTOP_S 5 /* a closing socket that will not go: killed */

/* Inbound budgets per socket. Exotel sends 50 media messages a second at
 * real time; a socket far beyond that is dropped from, so one peer cannot
 * load the loop or the transcoder for everyone else. */
#define MSG_RATE 250 /* messages per second, sustained */
#define MSG_BURST 500
#define AUDIO_RATE_PCT 150 /* % of real time, sustained */
#define AUDIO_BURST_S 2
/* Refused calls reported on the bus: a flood of them must not fill the
 * control link's queue for the good calls. */
#define REFUSAL_RATE 10
#define REFUSAL_BURST 20
#define MIN_PENDING                                                           \
	64 /* sockets that may wait for start: max(this, calls)               \
	    */

/* Bad input we count, by kind: the parser's errors, then ours. */
enum bad {
	BAD_TOO_LARGE = EXOTEL_E_N,
	BAD_BINARY,
	BAD_MEDIA_BEFORE_START,
	BAD_DUPLICATE_START,
	BAD_DUPLICATE_STREAM,
	BAD_NO_START,
	BAD_PATH,
	BAD_SID_MISMATCH,
	BAD_MSG_FLOOD,
	BAD_AUDIO_FAST,
	BAD_TOO_MANY_PENDING,
	BAD_WRITE_STALLED,
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
	"stream_sid_mismatch",
	"message_flood",
	"audio_too_fast",
	"too_many_pending",
	"write_stalled",
};

static const char *
bad_name(int k)
{
	return k < EXOTEL_E_N ? exotel_err_name(k) : bad_names[k - EXOTEL_E_N];
}

/* call_stop reasons counted by name (others as "other"). */
static const char *const end_reasons[]
    = { "callended", "stopped", "no_capacity", "persona_failed", "auth_failed",
	      "bridge_error", "other" };
#define N_END (sizeof(end_reasons) / sizeof(end_reasons[0]))

/* Cumulative buckets of the playout lag at mark echoes, ms. */
static const unsigned lag_le[] = { 100, 200, 400, 800, 1600, 3200 };
#define N_LAG (sizeof(lag_le) / sizeof(lag_le[0]))

enum conn_state {
	CONN_WAIT_START, /* upgraded, no valid start yet */
	CONN_LIVE, /* call started */
	CONN_STOPPED, /* Exotel said stop: silent, waiting for the close */
	CONN_REFUSED, /* start refused (auth, capacity): closing */
};

/* A token bucket in millionths of a unit, so slow refills add up. */
struct bucket {
	int64_t  level;
	uint64_t t;
};

/* At most one line per 10 s for events a flood could repeat. */
struct ratelog {
	uint64_t last;
	unsigned suppressed;
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
	const char     *query_mode; /* ?mode= at the upgrade, or NULL */
	bool            authed; /* at the upgrade, or at start */
	enum auth_via   via;

	char  *rx;
	size_t rx_len, rx_cap;
	bool   rx_skip; /* this message is being discarded */

	struct bucket msgs, audio;

	struct call_info ci;
	struct log_call  lc;
	bool             in_map;
	bool             stop_sent; /* call_stop went out */
	char             end_reason[EXOTEL_SHORT_MAX + 1]; /* for call_stop */
	uint64_t         seq_t, seq_c;

	struct playback *pb;
	struct outq      q;
	uint64_t         stall_since; /* mono: outq waiting, no write since */
	uint64_t         underruns, dropped; /* already added to metrics */
	struct playout   po;
	bool             playing; /* as counted in m_playing */

	bool     close_pending;
	bool     close_sent;
	int      close_code;
	char     close_reason[64];
	uint64_t logged; /* bit per bad-input kind already logged */
};

/* Bits of conn.logged beyond the bad-input kinds. */
#define LOGGED_UNKNOWN_EVENT (1ull << 63)
#define LOGGED_PLAYBACK_RATE (1ull << 62)
#define LOGGED_UNKNOWN_MARK (1ull << 61)
#define LOGGED_MARK_EXPIRED (1ull << 60)
#define LOGGED_TRANSCRIBE_OUT (1ull << 59)

struct server {
	struct server_opts  o;
	struct evloop      *loop; /* owns ctx */
	struct lws_context *ctx;
	struct lws_vhost   *vh;
	struct strmap      *calls; /* stream_sid → conn, live and stopped */
	struct conn        *conns;
	unsigned            next_id;
	size_t              max_msg;
	unsigned            max_calls, max_pending, n_waiting;
	uint64_t            start_us, grace_us, stall_us;
	int                 sndbuf; /* SO_SNDBUF of Exotel sockets */
	char                listen_desc[128];
	_Atomic int         listening;
	_Atomic int         draining; /* server_drain: no new calls */
	_Atomic int         ncalls;
	/* egress's PersonaPlex pool, from its capacity frames (-1: not yet
	 * heard from this egress), read by /readyz on the admin thread. */
	_Atomic int    cap_free, cap_total;
	bool           stopping;
	int            port; /* as bound (listen port 0 picks one) */
	unsigned       ticks;
	struct ratelog rl_path, rl_401, rl_503, rl_refused;
	struct bucket  refusals;

	lws_sorted_usec_list_t tick;

	uint8_t          *pcm; /* decode scratch: one message's payload */
	struct arena     *json; /* one message's JSON objects */
	size_t            pcm_cap;
	uint8_t          *play; /* tick scratch: one playback message */
	size_t            play_cap;
	struct exotel_msg msg; /* parse scratch (large: not on the stack) */

	struct metric *m_calls, *m_conns, *m_in[EXOTEL_EV_N], *m_bad[BAD_N];
	struct metric *m_out[EXOTEL_EV_N], *m_underruns, *m_dropped,
	    *m_bus_unknown, *m_bus_bad;
	struct metric *m_started, *m_ended[N_END], *m_refused_auth,
	    *m_refused_cap, *m_refused_unreported;
	struct metric *m_auth_ok[AUTH_VIA_N], *m_auth_bad_upgrade,
	    *m_auth_bad_start;
	struct metric *m_dtmf_hangup, *m_clears;
	struct metric *m_draining, *m_refused_draining;
	struct metric *m_lag, *m_lag_max, *m_lag_le[N_LAG + 1], *m_delay,
	    *m_playing;
	struct metric *m_echo_matched, *m_echo_late, *m_echo_stale,
	    *m_echo_unknown, *m_marks_expired;
};

/* ---- helpers ---------------------------------------------------------- */

/* Agent assist: Exotel expects nothing back, and there is no agent. */
static bool
transcribe(const struct conn *c)
{
	return c->ci.mode != NULL && strcmp(c->ci.mode, "transcribe") == 0;
}

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

/* Copies s into d (cap bytes), cut short if need be. */
static void
cpy(char *d, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);

	memcpy(d, s, n);
	d[n] = '\0';
}

/* Takes cost units if the bucket (rate per second, burst) has them. */
static bool
bucket_take(
    struct bucket *b, uint64_t now, int64_t cost, int64_t rate, int64_t burst)
{
	uint64_t dt = b->t ? now - b->t : 10000000u;

	if (dt > 10000000u)
		dt = 10000000u; /* enough to fill any bucket here */
	b->t = now;
	b->level += (int64_t)dt * rate;
	if (b->level > burst * 1000000)
		b->level = burst * 1000000;
	if (b->level < cost * 1000000)
		return false;
	b->level -= cost * 1000000;
	return true;
}

/* Whether a line may be written now; counts the ones held back. */
static bool
ratelog_ok(struct ratelog *r, uint64_t now, unsigned *held)
{
	if (r->last != 0 && now - r->last < 10000000u) {
		r->suppressed++;
		return false;
	}
	*held         = r->suppressed;
	r->last       = now;
	r->suppressed = 0;
	return true;
}

static uint64_t
pcm_us(const struct conn *c, size_t n)
{
	return (uint64_t)n * 1000000u / ((uint64_t)c->ci.rate * 2);
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
	cpy(c->close_reason, sizeof(c->close_reason), why);
	lws_callback_on_writable(c->wsi);
	/* A peer that reads nothing never lets the close frame out. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_BACKSTOP_S);
}

static void
set_state(struct server *s, struct conn *c, enum conn_state st)
{
	if (c->state == CONN_WAIT_START && st != CONN_WAIT_START)
		s->n_waiting--;
	c->state = st;
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
send_control(struct server *s, struct conn *c, Exo__Frame *f)
{
	f->ts_us = wall_us();
	f->seq   = ++c->seq_c;
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
count_end(struct server *s, const char *reason)
{
	size_t i = 0;

	while (i < N_END - 1 && strcmp(reason, end_reasons[i]) != 0)
		i++;
	metric_inc(s->m_ended[i]);
}

static void
send_call_stop(struct server *s, struct conn *c, const char *reason)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__CallStop st;

	if ((c->state != CONN_LIVE && c->state != CONN_STOPPED)
	    || c->stop_sent)
		return;
	c->stop_sent = true;
	callbus_stop_frame(&f, &st, &c->ci, reason);
	send_both(s, c, &f);
	count_end(s, reason);
	LOGI(s->o.log, &c->lc, "call_stop sent: reason=%s", reason);
}

/* Ends a live call from our side: call_stop now, then a normal close. */
static void
conn_end(struct server *s, struct conn *c, const char *reason,
    const char *close_text)
{
	if (!c->end_reason[0])
		cpy(c->end_reason, sizeof(c->end_reason), reason);
	send_call_stop(s, c, c->end_reason);
	conn_close(c, LWS_CLOSE_STATUS_NORMAL, close_text);
}

static void
set_calls_gauge(struct server *s)
{
	int n = (int)strmap_count(s->calls);

	metric_set(s->m_calls, n);
	atomic_store(&s->ncalls, n);
}

static void
set_playing(struct server *s, struct conn *c, bool playing)
{
	if (playing != c->playing)
		metric_add(s->m_playing, playing ? 1 : -1);
	c->playing = playing;
}

/* Tells egress what the caller hears, when that changed. */
static void
report_playout(struct server *s, struct conn *c, uint64_t now)
{
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Playout p;
	bool         playing;
	uint32_t     lag;

	if (!playout_report(&c->po, now, &playing, &lag))
		return;
	set_playing(s, c, playing);
	/* Without egress the state would only queue up on the control
	 * link; a returning egress is told it with the re-announce. */
	if (c->stop_sent || bus_peers(s->o.bus_control) == 0)
		return;
	callbus_playout_frame(&f, &p, &c->ci, playing, lag);
	send_control(s, c, &f);
	LOGD(s->o.log, &c->lc, "playout: playing=%d lag_ms=%u", playing, lag);
}

/* After a call_start re-announced on the control link: what is playing
 * now, if anything (a restarted egress knows nothing). */
static void
restate_playout(struct server *s, struct conn *c)
{
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Playout p;

	if (!c->playing || c->stop_sent)
		return;
	callbus_playout_frame(&f, &p, &c->ci, true, c->po.rep_lag_ms);
	send_control(s, c, &f);
}

/* ---- admission -------------------------------------------------------- */

/* Reports a refused call to egress (control link only), so its end can be
 * told with the call's ids: call_start{mode="refused"} + call_stop. Not
 * when its stream_sid belongs to a live call (that would end the live
 * one), without a peer (the frames would only queue), or beyond a rate (a
 * flood must not crowd the good calls' control frames). */
static void
report_refusal(struct server *s, struct conn *c, const char *reason)
{
	Exo__Frame           f = EXO__FRAME__INIT;
	struct callbus_start b;
	Exo__CallStop        st;

	if (strmap_get(s->calls, c->ci.stream_sid) != NULL
	    || bus_peers(s->o.bus_control) == 0
	    || !bucket_take(
	        &s->refusals, mono_us(), 1, REFUSAL_RATE, REFUSAL_BURST)) {
		metric_inc(s->m_refused_unreported);
		LOGD(s->o.log, &c->lc, "refused call not reported on the bus");
		return;
	}
	c->ci.refused = reason;
	callbus_start_frame(&f, &b, &c->ci, false);
	send_control(s, c, &f);
	f = (Exo__Frame)EXO__FRAME__INIT;
	callbus_stop_frame(&f, &st, &c->ci, reason);
	send_control(s, c, &f);
	count_end(s, reason);
}

static void
conn_refuse(struct server *s, struct conn *c, const char *reason, int code,
    const char *close_text, const char *why)
{
	unsigned held = 0;

	set_state(s, c, CONN_REFUSED);
	if (ratelog_ok(&s->rl_refused, mono_us(), &held))
		LOGW(s->o.log, &c->lc,
		    "exotel conn %u (%s): call refused: %s (%s); closing %d "
		    "(%u more refusals since the last line)",
		    c->id, c->peer, reason, why, code, held);
	metric_inc(strcmp(reason, "auth_failed") == 0 ? s->m_refused_auth
	                                              : s->m_refused_cap);
	report_refusal(s, c, reason);
	conn_close(c, code, close_text);
}

/* The upgrade's credentials: Authorization header and ?token=. */
static enum auth_result
upgrade_auth(struct server *s, struct lws *wsi, enum auth_via *via)
{
	char        hdr[2048], tok[AUTH_MAX_SECRET + 2];
	const char *h = NULL, *t;
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	enum auth_result r;

	if (n > 0) {
		/* Too long to be ours: presented, and wrong. */
		if (n >= (int)sizeof(hdr)
		    || lws_hdr_copy(
		           wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION)
		        < 0)
			snprintf(hdr, sizeof(hdr), "Invalid");
		h = hdr;
	}
	t = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof(tok));
	r = auth_upgrade(s->o.auth, h, t, via);
	OPENSSL_cleanse(hdr, sizeof(hdr));
	OPENSSL_cleanse(tok, sizeof(tok));
	return r;
}

/* ---- Exotel events ---------------------------------------------------- */

/* Whether a message about the call names another stream: dropped. */
static bool
sid_mismatch(struct conn *c, const struct exotel_msg *m)
{
	if (m->stream_sid[0] == '\0'
	    || strcmp(m->stream_sid, c->ci.stream_sid) == 0)
		return false;
	conn_bad(c, BAD_SID_MISMATCH,
	    "a message names another stream_sid; dropped");
	return true;
}

static void
log_started(struct server *s, struct conn *c, bool had_token)
{
	const struct exotel_start *st = &c->ci.start;
	char   keys[256], t1[80], t2[80], t3[80], t4[80], t5[300];
	size_t kl = 0;

	/* Custom parameter values may be secrets: keys only. */
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
	    "encoding=%s custom_parameters=%s%s%s%s auth=%s",
	    c->id, c->peer, safe(t1, sizeof(t1), st->account_sid),
	    safe(t2, sizeof(t2), st->from), safe(t3, sizeof(t3), st->to),
	    c->ci.rate, safe(t4, sizeof(t4), st->encoding),
	    st->custom_present ? "{" : "absent",
	    st->custom_present ? safe(t5, sizeof(t5), keys) : "",
	    had_token ? (kl ? ",token(removed)" : "token(removed)") : "",
	    st->custom_present ? "}" : "", auth_via_name(c->via));
	if (st->n_dropped)
		LOGW(s->o.log, &c->lc,
		    "start: %zu custom/extra entries not kept (too many or "
		    "too long)",
		    st->n_dropped);
}

static void
on_start(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	const struct exotel_start *st = &m->u.start;
	struct playback_opts       po = { 0 };
	char                       tok[EXOTEL_VAL_MAX + 1];
	bool                       had_token;
	int                        rate, rv;

	if (c->state != CONN_WAIT_START) {
		conn_bad(c, BAD_DUPLICATE_START, "a second start; ignored");
		return;
	}
	snprintf(
	    c->ci.stream_sid, sizeof(c->ci.stream_sid), "%s", m->stream_sid);
	c->ci.start      = *st;
	c->ci.started_us = wall_us();
	c->lc.call_sid   = c->ci.start.call_sid;
	c->lc.stream_sid = c->ci.stream_sid;
	/* start wins over the URL's ?sample-rate=; both over 8000. */
	rate       = st->sample_rate ? st->sample_rate
	          : c->query_rate    ? c->query_rate
	                             : 8000;
	c->ci.rate = rate;

	/* The token never goes further than this: not logged, not on the
	 * bus, not in a webhook. */
	had_token
	    = exotel_custom_take(&c->ci.start, "token", tok, sizeof(tok));
	if (!c->authed && had_token && auth_token_ok(s->o.auth, tok)) {
		c->authed = true;
		c->via    = AUTH_VIA_CUSTOM;
		metric_inc(s->m_auth_ok[AUTH_VIA_CUSTOM]);
	}
	OPENSSL_cleanse(tok, sizeof(tok));
	{
		bool bad;
		c->ci.mode = callbus_mode_asked(&c->ci.start, &bad);
		if (bad)
			LOGW(s->o.log, &c->lc,
			    "custom_parameters.mode is neither agent nor "
			    "transcribe: egress decides the mode");
		/* Exotel may pass the URL's query to the upgrade rather
		 * than to custom_parameters (research/exotel.md 4.2). */
		else if (c->ci.mode == NULL)
			c->ci.mode = c->query_mode;
	}
	if (!c->authed) {
		metric_inc(s->m_auth_bad_start);
		conn_refuse(s, c, "auth_failed",
		    LWS_CLOSE_STATUS_POLICY_VIOLATION, "authentication failed",
		    had_token ? "custom_parameters.token is not valid"
		              : "no credentials at the upgrade or in "
		                "custom_parameters.token");
		return;
	}

	if (strmap_get(s->calls, m->stream_sid) != NULL) {
		metric_inc(s->m_bad[BAD_DUPLICATE_STREAM]);
		LOGW(s->o.log, &c->lc,
		    "exotel conn %u (%s): stream_sid already live on another "
		    "socket; closing this one",
		    c->id, c->peer);
		set_state(s, c, CONN_REFUSED);
		conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION,
		    "duplicate stream_sid");
		return;
	}
	if (strmap_count(s->calls) >= s->max_calls) {
		char why[64];
		snprintf(why, sizeof(why), "%u calls live, the most allowed",
		    s->max_calls);
		conn_refuse(s, c, "no_capacity", CLOSE_TRY_AGAIN_LATER,
		    "try again later", why);
		return;
	}

	if (st->sample_rate && c->query_rate
	    && st->sample_rate != c->query_rate)
		LOGW(s->o.log, &c->lc,
		    "sample rate: start says %d, the URL says %d; using %d",
		    st->sample_rate, c->query_rate, rate);
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
	playout_init(&c->po,
	    s->o.mark_interval_ms ? s->o.mark_interval_ms : 500,
	    s->o.mark_timeout_ms);
	c->in_map = true;
	set_state(s, c, CONN_LIVE);
	set_calls_gauge(s);
	metric_inc(s->m_started);
	log_started(s, c, had_token);
	send_call_start(s, c, NULL, false);
}

static void
on_media(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Audio a;
	int64_t    bps;

	if (c->state == CONN_WAIT_START) {
		conn_bad(
		    c, BAD_MEDIA_BEFORE_START, "media before start; dropped");
		return;
	}
	if (c->state != CONN_LIVE || m->u.media.pcm_len == 0
	    || sid_mismatch(c, m))
		return;
	/* Faster than real time for long: the peer is not a phone call. */
	bps = (int64_t)c->ci.rate * 2;
	if (!bucket_take(&c->audio, mono_us(), (int64_t)m->u.media.pcm_len,
	        bps * AUDIO_RATE_PCT / 100, bps * AUDIO_BURST_S)) {
		conn_bad(c, BAD_AUDIO_FAST,
		    "caller audio well beyond real time; excess dropped");
		return;
	}
	callbus_audio_frame(
	    &f, &a, &c->ci, m->u.media.pcm, m->u.media.pcm_len);
	f.ts_us = wall_us();
	/* Without an agent the transcoder has nothing to do with it. */
	if (!transcribe(c)) {
		f.seq = ++c->seq_t;
		bus_send(s->o.bus_transcoder, &f);
	}
	/* The same audio goes straight to egress for speech-to-text, so
	 * transcripts do not depend on the transcoder being up. */
	f.seq = ++c->seq_c;
	bus_send(s->o.bus_control, &f);
}

static void
on_stop(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	/* Exotel documents "callended" (caller hung up) and "stopped"; the
	 * reason goes into webhooks, so anything else is "stopped". */
	const char *reason = strcmp(m->u.stop.reason, "callended") == 0
	    ? "callended"
	    : "stopped";
	char        t[80];

	if (c->state != CONN_LIVE)
		return;
	LOGI(s->o.log, &c->lc, "exotel stop: reason=%s",
	    safe(t, sizeof(t), m->u.stop.reason[0] ? m->u.stop.reason : "?"));
	send_call_stop(s, c, reason);
	set_state(s, c, CONN_STOPPED);
	c->stop_us = mono_us();
	/* The stream is over: whatever we still have would never be
	 * heard. Exotel closes next; the tick closes after a grace. */
	playback_clear(c->pb);
	outq_reset(&c->q);
	c->stall_since = 0;
	playout_clear(&c->po);
	set_playing(s, c, false);
}

static void
on_dtmf(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	Exo__Frame  f = EXO__FRAME__INIT;
	Exo__Dtmf   d;
	const char *dg = m->u.dtmf.digit;
	char        t[32];

	if (c->state != CONN_LIVE || sid_mismatch(c, m))
		return;
	LOGI(s->o.log, &c->lc, "dtmf: digit=%s duration_ms=%lld",
	    safe(t, sizeof(t), dg),
	    m->u.dtmf.has_duration ? (long long)m->u.dtmf.duration_ms : -1);
	callbus_dtmf_frame(&f, &d, &c->ci, &m->u.dtmf);
	send_control(s, c, &f);
	if (s->o.dtmf_hangup && dg[0] != '\0' && dg[1] == '\0'
	    && strchr(s->o.dtmf_hangup, dg[0]) != NULL) {
		LOGI(s->o.log, &c->lc,
		    "dtmf '%c' is in EXOPLEX_DTMF_HANGUP: ending the call "
		    "(reason stopped), Exotel moves to the next applet",
		    dg[0]);
		metric_inc(s->m_dtmf_hangup);
		conn_end(s, c, "stopped", "dtmf hangup");
	}
}

static void
on_mark(struct server *s, struct conn *c, const struct exotel_msg *m)
{
	struct playout_echo e;
	Exo__Frame          f = EXO__FRAME__INIT;
	Exo__Mark           mk;
	uint64_t            now = mono_us();
	char                t[EXOTEL_MARK_MAX + 1];

	if ((c->state != CONN_LIVE && c->state != CONN_STOPPED)
	    || sid_mismatch(c, m))
		return;
	switch (playout_echo(&c->po, m->u.mark, now, &e)) {
	case PLAYOUT_ECHO_MATCHED:
		metric_inc(s->m_echo_matched);
		if (e.late)
			metric_inc(s->m_echo_late);
		metric_set(s->m_lag, e.lag_ms);
		metric_set(s->m_delay, e.delay_ms);
		for (size_t i = 0; i < N_LAG; i++)
			if (e.lag_ms <= lag_le[i])
				metric_inc(s->m_lag_le[i]);
		metric_inc(s->m_lag_le[N_LAG]);
		LOGD(s->o.log, &c->lc,
		    "mark %s echoed: lag %u ms, %lld ms after the expected "
		    "end%s",
		    m->u.mark, e.lag_ms, (long long)e.delay_ms,
		    e.late ? " (after its fallback)" : "");
		/* Marks are news only now: never queued for an absent
		 * egress, where they would crowd out call_start/stop. */
		if (!c->stop_sent && bus_peers(s->o.bus_control) > 0) {
			callbus_mark_frame(&f, &mk, &c->ci, m->u.mark);
			send_control(s, c, &f);
		}
		report_playout(s, c, now);
		break;
	case PLAYOUT_ECHO_STALE:
		/* After a clear Exotel may still echo what it had. */
		metric_inc(s->m_echo_stale);
		LOGD(s->o.log, &c->lc, "mark %s echoed, no longer pending",
		    m->u.mark);
		break;
	default:
		metric_inc(s->m_echo_unknown);
		if (!(c->logged & LOGGED_UNKNOWN_MARK)) {
			c->logged |= LOGGED_UNKNOWN_MARK;
			LOGI(s->o.log, &c->lc,
			    "echo of a mark we did not send: \"%s\"; ignored",
			    safe(t, sizeof(t), m->u.mark));
		}
		break;
	}
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
	rv = exotel_parse_in(s->json, m, buf, len, s->pcm, s->pcm_cap);
	/* Unparsable messages are counted as bad input only. */
	if (m->event[0] != '\0')
		metric_inc(s->m_in[m->kind]);
	if (rv != EXOTEL_OK) {
		conn_bad(c, rv, m->reason);
		/* Without a usable start the socket is useless. */
		if (m->kind == EXOTEL_EV_START
		    && c->state == CONN_WAIT_START) {
			set_state(s, c, CONN_REFUSED);
			conn_close(
			    c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "bad start");
		}
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
		on_mark(s, c, m);
		break;
	default:
		if (!(c->logged & LOGGED_UNKNOWN_EVENT)) {
			c->logged |= LOGGED_UNKNOWN_EVENT;
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
		} else if (!bucket_take(
		               &c->msgs, mono_us(), 1, MSG_RATE, MSG_BURST)) {
			/* Dropped unread: a flood costs no parsing. */
			c->rx_skip = true;
			conn_bad(c, BAD_MSG_FLOOD,
			    "more messages than any call sends; dropping");
		}
	}
	if (first && final && !c->rx_skip && len <= s->max_msg) {
		/* Whole in one piece (the usual case): parsed where lws holds
		 * it, with no copy and no buffer kept per call. */
		on_message(s, c, in, len);
		return 0;
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

/* Writes the first queued message. Returns 0, or -1 when it failed. */
static int
write_one(struct server *s, struct conn *c)
{
	size_t len;
	char  *p = outq_peek(&c->q, &len);
	int    w = lws_write(c->wsi, (unsigned char *)p, len, LWS_WRITE_TEXT);

	outq_pop(&c->q);
	if (w < (int)len) {
		LOGW(s->o.log, &c->lc, "write to Exotel failed");
		return -1;
	}
	c->stall_since = outq_count(&c->q) ? mono_us() : 0;
	/* Our messages all start {"event":"<kind>" (exotel.c). */
	if (len > 10 && p[10] == 'm' && p[11] == 'e')
		metric_inc(s->m_out[EXOTEL_EV_MEDIA]);
	else if (len > 10 && p[10] == 'm')
		metric_inc(s->m_out[EXOTEL_EV_MARK]);
	else
		metric_inc(s->m_out[EXOTEL_EV_CLEAR]);
	return 0;
}

/* Sends what is queued. Written now unless lws still holds part of an
 * earlier message: waiting for lws's writeable callback costs a wake-up
 * and two epoll_ctl per message (lws sets and clears EPOLLOUT around
 * each), more than the write. What a full socket does not take, lws
 * keeps and sends first. Returns true when all of it went; otherwise the
 * callback is asked for, or, when a write failed, the connection is
 * dropped from lws's loop (close_pending). */
static bool
conn_flush(struct server *s, struct conn *c)
{
	while (outq_count(&c->q)) {
		/* Asked before every write: once lws holds part of one, a
		 * write appends to it and reports a short count. No
		 * syscall, unlike lws_send_pipe_choked's poll(2). */
		if (c->close_pending || lws_partial_buffered(c->wsi)) {
			lws_callback_on_writable(c->wsi);
			return false;
		}
		if (write_one(s, c)) {
			c->close_pending = true;
			lws_set_timeout(
			    c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			return false;
		}
	}
	return true;
}

static int
on_writeable(struct server *s, struct conn *c)
{
	if (outq_count(&c->q)) {
		if (write_one(s, c))
			return -1;
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
	if (c->state == CONN_LIVE || c->state == CONN_STOPPED)
		send_call_stop(
		    s, c, c->end_reason[0] ? c->end_reason : "bridge_error");
	if (c->state == CONN_WAIT_START)
		s->n_waiting--;
	set_playing(s, c, false);
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
	memtrim_note(); /* with lws's buffers for the socket */
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
	if ((v = lws_get_urlarg_by_name(wsi, "mode=", arg, sizeof(arg)))
	    != NULL)
		c->query_mode = callbus_mode_name(v);
	/* The upgrade already refused wrong credentials; this notes which
	 * right one came, or that none did (decided at start). */
	if (upgrade_auth(s, wsi, &c->via) == AUTH_OK) {
		c->authed = true;
		metric_inc(s->m_auth_ok[c->via]);
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_waiting++;
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

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to go on, 1 after refusing. */
static int
confirm_upgrade(struct server *s, struct lws *wsi, const char *proto)
{
	uint64_t      now  = mono_us();
	unsigned      held = 0;
	enum auth_via via;
	char          peer[64] = "?";

	if (s->stopping) {
		lws_return_http_status(
		    wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
		return 1;
	}
	if (atomic_load(&s->draining)) {
		metric_inc(s->m_refused_draining);
		if (ratelog_ok(&s->rl_503, now, &held))
			LOGI(s->o.log, NULL,
			    "refused an upgrade with 503: draining (%u more "
			    "since the last line)",
			    held);
		lws_return_http_status(
		    wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
		return 1;
	}
	if (strcmp(proto, "websocket") != 0 || !path_ok(wsi)) {
		char uri[128] = "", t[80];
		lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
		metric_inc(s->m_bad[BAD_PATH]);
		if (ratelog_ok(&s->rl_path, now, &held))
			LOGW(s->o.log, NULL,
			    "refused an upgrade to '%s' (only /exotel; %u "
			    "more since the last line)",
			    safe(t, sizeof(t), uri), held);
		lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
		return 1;
	}
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	if (s->n_waiting >= s->max_pending) {
		metric_inc(s->m_bad[BAD_TOO_MANY_PENDING]);
		if (ratelog_ok(&s->rl_503, now, &held))
			LOGW(s->o.log, NULL,
			    "refused an upgrade from %s with 503: %u sockets "
			    "already wait for their start (%u more since the "
			    "last line)",
			    peer, s->n_waiting, held);
		lws_return_http_status(
		    wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
		return 1;
	}
	if (upgrade_auth(s, wsi, &via) == AUTH_BAD) {
		metric_inc(s->m_auth_bad_upgrade);
		if (ratelog_ok(&s->rl_401, now, &held))
			LOGW(s->o.log, NULL,
			    "refused an upgrade from %s with 401: wrong "
			    "credentials (%u more since the last line)",
			    peer, held);
		lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, NULL);
		return 1;
	}
	return 0;
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
		return confirm_upgrade(s, wsi, (const char *)in);

	case LWS_CALLBACK_ESTABLISHED:
		if ((c = conn_new(s, wsi)) == NULL) {
			LOGE(s->o.log, NULL, "out of memory for a connection");
			return -1;
		}
		lws_set_opaque_user_data(wsi, c);
		/* Left to autotune, a loopback or LAN socket's buffer grows
		 * to megabytes: a minute of audio queued in the kernel before
		 * a peer that reads nothing shows as a stall. 64 kB is over a
		 * second of 16 kHz media, plenty for 200 ms round trips. */
		setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF,
		    &s->sndbuf, sizeof(s->sndbuf));
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
			    c->state == CONN_LIVE || c->state == CONN_STOPPED
			        ? LOG_INFO
			        : LOG_DEBUG,
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
on_clear(struct server *s, struct conn *c, const Exo__Frame *f)
{
	size_t n, k;
	char  *p, t[80];

	if (c->state != CONN_LIVE)
		return;
	n = playback_clear(c->pb);
	/* What is queued here was never written: it goes too. */
	outq_reset(&c->q);
	c->stall_since = 0;
	k              = playout_clear(&c->po);
	if ((p = outq_reserve(&c->q)) != NULL) {
		size_t l = exotel_build_clear(p, c->q.cap, c->ci.stream_sid);
		if (l > 0) {
			outq_commit(&c->q, l);
			if (c->stall_since == 0)
				c->stall_since = mono_us();
			lws_callback_on_writable(c->wsi);
		}
	}
	metric_inc(s->m_clears);
	LOGI(s->o.log, &c->lc,
	    "clear (%s): Exotel told to drop unplayed audio; %zu bytes "
	    "unsent and %zu pending marks dropped here",
	    f->clear && f->clear->reason[0]
	        ? safe(t, sizeof(t), f->clear->reason)
	        : "no reason given",
	    n, k);
	report_playout(s, c, mono_us());
}

/* egress decided the call's mode. It is kept for re-announces and the
 * call_stop; a transcribe call drops whatever playback it had (none
 * normally: it never has a PersonaPlex session). */
static void
on_call_mode(struct server *s, struct conn *c, const Exo__CallMode *m)
{
	const char *mode = !strcmp(m->mode, "transcribe") ? "transcribe"
	    : !strcmp(m->mode, "agent")                   ? "agent"
	                                                  : NULL;
	char        t[40];

	if (mode == NULL) {
		metric_inc(s->m_bus_bad);
		LOGW(s->o.log, &c->lc, "call_mode '%s' from egress: ignored",
		    safe(t, sizeof(t), m->mode));
		return;
	}
	LOGI(s->o.log, &c->lc, "mode %s (by %s)%s", mode,
	    safe(t, sizeof(t), m->by),
	    !strcmp(mode, "transcribe") ? ": nothing goes back to Exotel"
	                                : "");
	c->ci.mode = mode;
	if (transcribe(c) && c->state == CONN_LIVE) {
		playback_clear(c->pb);
		outq_reset(&c->q);
		c->stall_since = 0;
		playout_clear(&c->po);
		set_playing(s, c, false);
	}
}

/* egress says how many PersonaPlex servers could take a call now. */
static void
on_capacity(struct server *s, const Exo__Capacity *cap)
{
	int was = atomic_exchange(&s->cap_free, (int)cap->free);
	atomic_store(&s->cap_total, (int)cap->total);
	if ((was == 0) != (cap->free == 0) || was < 0)
		LOGI(s->o.log, NULL,
		    "PersonaPlex capacity: %u of %u servers free%s", cap->free,
		    cap->total,
		    cap->free == 0 && cap->total > 0 ? " (not ready for calls)"
		                                     : "");
}

static void
on_frame(struct server *s, struct bus *b, const Exo__Frame *f)
{
	struct conn *c;
	int          rv;
	char         t[80];

	if (f->body_case == EXO__FRAME__BODY_CAPACITY) {
		if (b == s->o.bus_control && f->capacity)
			on_capacity(s, f->capacity);
		return;
	}
	c = strmap_get(s->calls, f->call_id);
	if (c == NULL) {
		metric_inc(s->m_bus_unknown);
		LOGD(s->o.log, NULL, "bus: %s for unknown call %.64s ignored",
		    bus_kind_name(f), f->call_id);
		return;
	}
	/* Nothing goes back to a Stream applet, whatever arrives. */
	if (transcribe(c)
	    && (f->body_case == EXO__FRAME__BODY_PLAYBACK_AUDIO
	        || f->body_case == EXO__FRAME__BODY_CLEAR)) {
		metric_inc(s->m_bus_bad);
		if (!(c->logged & LOGGED_TRANSCRIBE_OUT)) {
			c->logged |= LOGGED_TRANSCRIBE_OUT;
			LOGW(s->o.log, &c->lc,
			    "%s for a transcribe call: dropped (nothing goes "
			    "back to Exotel)",
			    bus_kind_name(f));
		}
		return;
	}
	switch (f->body_case) {
	case EXO__FRAME__BODY_CALL_MODE:
		if (b == s->o.bus_control && f->call_mode)
			on_call_mode(s, c, f->call_mode);
		break;
	case EXO__FRAME__BODY_PLAYBACK_AUDIO: {
		const Exo__Audio *a = f->playback_audio;
		if (c->close_pending)
			break;
		if (a == NULL || (int)a->sample_rate != c->ci.rate) {
			metric_inc(s->m_bus_bad);
			if (!(c->logged & LOGGED_PLAYBACK_RATE)) {
				c->logged |= LOGGED_PLAYBACK_RATE;
				LOGW(s->o.log, &c->lc,
				    "playback_audio at %u Hz for a %d Hz "
				    "call: dropped",
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
		    ? safe(t, sizeof(t), f->hangup->reason)
		    : "hangup";
		if (c->close_pending)
			break;
		LOGW(s->o.log, &c->lc,
		    "hangup requested by egress: reason=%s; closing 1000", r);
		conn_end(s, c, r, r);
		break;
	}
	case EXO__FRAME__BODY_CLEAR:
		on_clear(s, c, f);
		break;
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
		if (c->state == CONN_LIVE && !c->stop_sent) {
			send_call_start(s, c, b, true);
			if (b == s->o.bus_control)
				restate_playout(s, c);
		}
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
			const Exo__Envelope *env;
			int                  rv = bus_next(b, &env);
			if (rv == EAGAIN)
				break;
			if (rv != 0)
				continue;
			for (size_t k = 0; k < env->n_frames; k++) {
				bus_count_in(b, env->frames[k]);
				on_frame(s, b, env->frames[k]);
			}
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

/* Queues a mark after everything queued so far. false: no slot free. */
static bool
queue_mark(struct conn *c, uint64_t now)
{
	char   name[PLAYOUT_NAME_MAX];
	char  *p = outq_reserve(&c->q);
	size_t l;

	if (p == NULL)
		return false;
	playout_mark(
	    &c->po, now + playback_ahead_us(c->pb, now), name, sizeof(name));
	l = exotel_build_mark(p, c->q.cap, c->ci.stream_sid, name);
	if (l > 0)
		outq_commit(&c->q, l);
	return true;
}

static void
conn_tick(struct server *s, struct conn *c, uint64_t now)
{
	const struct playback_stats *st;
	size_t                       k;
	bool                         choked = false;

	if (c->close_pending)
		return;
	if (c->state == CONN_WAIT_START) {
		if (now - c->opened_us > s->start_us) {
			conn_bad(c, BAD_NO_START, "no start in time; closing");
			set_state(s, c, CONN_REFUSED);
			conn_close(
			    c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "no start");
		}
		return;
	}
	if (c->state == CONN_REFUSED)
		return;
	if (c->state == CONN_STOPPED) {
		if (now - c->stop_us > s->grace_us)
			conn_close(c, LWS_CLOSE_STATUS_NORMAL, "stopped");
		return;
	}
	if (transcribe(c))
		return; /* nothing to pace, mark or send */
	/* Exotel reads nothing: its buffers and ours are full. */
	if (outq_count(&c->q) && c->stall_since
	    && now - c->stall_since > s->stall_us) {
		conn_bad(c, BAD_WRITE_STALLED,
		    "the peer has read nothing for too long; dropping it");
		c->close_pending = true;
		lws_set_timeout(
		    c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	for (;;) {
		char  *p;
		size_t n, l;
		/* A mark owed goes before more media, or its place is
		 * lost. */
		if (playout_mark_due(&c->po, false) && !queue_mark(c, now))
			break;
		if ((p = outq_reserve(&c->q)) == NULL)
			break;
		n = playback_next(c->pb, now, s->play, s->play_cap);
		if (n == 0)
			break;
		l = exotel_build_media(
		    p, c->q.cap, c->ci.stream_sid, s->play, n);
		if (l == 0)
			break; /* cannot happen: slots fit a full message */
		outq_commit(&c->q, l);
		playout_sent(&c->po, pcm_us(c, n));
		/* Each out at once, so the queue's first slot serves again
		 * (outq.h); once choked, the rest wait in the queue. */
		if (!choked)
			choked = !conn_flush(s, c);
		if (c->close_pending)
			return;
	}
	/* The end of a burst is marked while Exotel still has it. */
	if (playout_mark_due(&c->po,
	        playback_buffered(c->pb) < playback_frame_bytes(c->pb)))
		queue_mark(c, now);
	if (outq_count(&c->q)) {
		if (c->stall_since == 0)
			c->stall_since = now;
		if (choked)
			lws_callback_on_writable(c->wsi);
		else
			conn_flush(s, c);
	}

	if ((k = playout_tick(&c->po, now)) > 0) {
		metric_add(s->m_marks_expired, (int64_t)k);
		if (!(c->logged & LOGGED_MARK_EXPIRED)) {
			c->logged |= LOGGED_MARK_EXPIRED;
			LOGI(s->o.log, &c->lc,
			    "a mark's echo is overdue: taking its audio as "
			    "played (once per call)");
		}
	}
	report_playout(s, c, now);

	st = playback_stats(c->pb);
	metric_add(s->m_underruns, (int64_t)(st->underruns - c->underruns));
	metric_add(s->m_dropped, (int64_t)(st->dropped_bytes - c->dropped));
	c->underruns = st->underruns;
	c->dropped   = st->dropped_bytes;
}

static void
reannounce(struct server *s, struct bus *b, const char *link)
{
	unsigned n = 0;

	for (struct conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_LIVE && !c->stop_sent) {
			send_call_start(s, c, b, true);
			if (b == s->o.bus_control)
				restate_playout(s, c);
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
	bool           second;
	uint32_t       lag_max = 0;

	lws_sul_schedule(s->ctx, 0, &s->tick, tick_cb, TICK_US);
	memtrim_maybe(now);
	if (bus_take_new_peer(s->o.bus_transcoder))
		reannounce(s, s->o.bus_transcoder, "transcoder");
	if (bus_take_new_peer(s->o.bus_control))
		reannounce(s, s->o.bus_control, "control");
	second = ++s->ticks % 50 == 0;
	for (struct conn *c = s->conns; c; c = c->next) {
		conn_tick(s, c, now);
		if (second && c->in_map && c->po.have_lag
		    && c->po.lag_ms > lag_max)
			lag_max = c->po.lag_ms;
	}
	if (second)
		metric_set(s->m_lag_max, lag_max);
}

/* ---- set-up ----------------------------------------------------------- */

static const struct lws_protocols protocols[] = {
	{
	    .name           = "exotel",
	    .callback       = cb_exotel,
	    /* lws keeps this much per connection; longer messages arrive
	     * in pieces, joined in conn's rx buffer. */
	    .rx_buffer_size = 8192,
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

	s->m_calls   = metrics_gauge(m, "calls_active",
	      "Calls between start and the socket's close.", NULL);
	s->m_conns   = metrics_gauge(m, "exotel_connections",
	      "Open Exotel WebSocket connections.", NULL);
	s->m_started = metrics_counter(
	    m, "calls_started_total", "Calls admitted at start.", NULL);
	for (size_t i = 0; i < N_END; i++) {
		snprintf(l, sizeof(l), "reason=\"%s\"", end_reasons[i]);
		s->m_ended[i] = metrics_counter(m, "calls_ended_total",
		    "Calls ended (call_stop sent), refused ones included, by "
		    "reason.",
		    l);
	}
	s->m_refused_auth       = metrics_counter(m, "calls_refused_total",
	          "Calls refused at start, by reason.", "reason=\"auth_failed\"");
	s->m_refused_cap        = metrics_counter(m, "calls_refused_total",
	           "Calls refused at start, by reason.", "reason=\"no_capacity\"");
	s->m_refused_unreported = metrics_counter(m,
	    "calls_refused_unreported_total",
	    "Refused calls not reported on the bus (rate, no peer, or their "
	    "stream_sid is live).",
	    NULL);
	for (int i = 0; i < AUTH_VIA_N; i++) {
		snprintf(l, sizeof(l), "via=\"%s\"",
		    auth_via_name((enum auth_via)i));
		s->m_auth_ok[i] = metrics_counter(m, "auth_accepted_total",
		    "Sockets let in, by where their credentials came from "
		    "(none: auth is off).",
		    l);
	}
	s->m_auth_bad_upgrade = metrics_counter(m, "auth_refused_total",
	    "Credentials refused: wrong at the upgrade (401), or none valid "
	    "at start (1008).",
	    "at=\"upgrade\"");
	s->m_auth_bad_start   = metrics_counter(m, "auth_refused_total",
	      "Credentials refused: wrong at the upgrade (401), or none valid "
	        "at start (1008).",
	      "at=\"start\"");
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
	s->m_clears      = metrics_counter(m, "clears_total",
	         "clear requests from egress carried out.", NULL);
	s->m_dtmf_hangup = metrics_counter(m, "dtmf_hangups_total",
	    "Calls ended by a digit in EXOPLEX_DTMF_HANGUP.", NULL);
	s->m_draining    = metrics_gauge(m, "draining",
	       "1 while stopping gracefully (SIGTERM): no new calls, live ones "
	          "finish.",
	       NULL);
	s->m_refused_draining
	    = metrics_counter(m, "exotel_upgrades_refused_draining_total",
	        "WebSocket upgrades refused with 503 while draining.", NULL);
	s->m_lag     = metrics_gauge(m, "playout_lag_ms",
	        "Agent audio sent to Exotel but not yet played, at the latest "
	            "mark echo (any call).",
	        NULL);
	s->m_lag_max = metrics_gauge(m, "playout_lag_max_ms",
	    "The largest playout lag among live calls (each call's latest "
	    "echo).",
	    NULL);
	for (size_t i = 0; i <= N_LAG; i++) {
		if (i < N_LAG)
			snprintf(l, sizeof(l), "le=\"%u\"", lag_le[i]);
		else
			snprintf(l, sizeof(l), "le=\"+Inf\"");
		s->m_lag_le[i] = metrics_counter(m, "playout_lag_echoes_total",
		    "Mark echoes by playout lag, cumulative: lag <= le ms.",
		    l);
	}
	s->m_delay         = metrics_gauge(m, "mark_echo_delay_ms",
	            "How long after the pacer's expected end the latest mark echo "
	                    "came (network and Exotel's buffering).",
	            NULL);
	s->m_playing       = metrics_gauge(m, "agent_playing_calls",
	          "Calls where agent audio is playing at the caller now.", NULL);
	s->m_echo_matched  = metrics_counter(m, "mark_echoes_total",
	     "Mark echoes from Exotel, by outcome.", "result=\"matched\"");
	s->m_echo_late     = metrics_counter(m, "mark_echoes_total",
	        "Mark echoes from Exotel, by outcome.", "result=\"late\"");
	s->m_echo_stale    = metrics_counter(m, "mark_echoes_total",
	       "Mark echoes from Exotel, by outcome.", "result=\"stale\"");
	s->m_echo_unknown  = metrics_counter(m, "mark_echoes_total",
	     "Mark echoes from Exotel, by outcome.", "result=\"unknown\"");
	s->m_marks_expired = metrics_counter(m, "marks_expired_total",
	    "Marks whose echo was overdue: their audio was taken as played.",
	    NULL);
	s->m_underruns     = metrics_counter(m, "playback_underruns_total",
	        "Playback ran dry and later audio restarted the clock.", NULL);
	s->m_dropped       = metrics_counter(m, "playback_dropped_bytes_total",
	          "Playback bytes dropped because a call's buffer was full.", NULL);
	s->m_bus_unknown   = metrics_counter(m, "bus_unknown_call_total",
	      "Bus frames for a call ingress does not have.", NULL);
	s->m_bus_bad       = metrics_counter(m, "bus_bad_playback_total",
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
	s->o = *o;
	atomic_init(&s->cap_free, -1);
	atomic_init(&s->cap_total, 0);
	s->max_msg  = o->max_msg ? o->max_msg : 256 * 1024;
	s->start_us = (uint64_t)(o->start_ms ? o->start_ms : 10000) * 1000;
	s->grace_us
	    = (uint64_t)(o->stop_grace_ms ? o->stop_grace_ms : 2000) * 1000;
	s->stall_us
	    = (uint64_t)(o->write_stall_ms ? o->write_stall_ms : 10000) * 1000;
	s->sndbuf = o->send_buffer > 0 ? o->send_buffer : 64 * 1024;
	s->max_calls = o->max_calls ? o->max_calls : 1000;
	s->max_pending
	    = s->max_calls > MIN_PENDING ? s->max_calls : MIN_PENDING;
	if (o->dtmf_hangup != NULL && *o->dtmf_hangup == '\0')
		s->o.dtmf_hangup = NULL;
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
	    || (rv = arena_alloc(&s->json, 4096, s->max_msg * 2 + 4096)) != 0
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
	if (o->tls_cert && *o->tls_cert) {
		/* wss:// only: nothing older than TLS 1.2, no compression. */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath        = o->tls_cert;
		info.ssl_private_key_filepath = o->tls_key;
		info.ssl_options_set = (long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1
		    | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION);
	}
	if ((rv = evloop_create(&s->loop, &info)) != 0) {
		if (o->tls_cert && *o->tls_cert)
			LOGE(o->log, NULL,
			    "cannot listen on %s with TLS: in use, not a "
			    "local address, or EXOPLEX_TLS_CERT %s and "
			    "EXOPLEX_TLS_KEY %s are not a PEM certificate "
			    "and its key",
			    o->listen, o->tls_cert, o->tls_key);
		else
			LOGE(o->log, NULL,
			    "cannot listen on %s (in use, or not a "
			    "local address?)",
			    o->listen);
		rv = rv == ENOMEM ? rv : EADDRINUSE;
		goto out;
	}
	s->ctx = evloop_lws(s->loop);
	if (o->tls_cert && *o->tls_cert)
		LOGI(o->log, NULL, "serving wss:// on %s (certificate %s)",
		    o->listen, o->tls_cert);
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
	    "messages, %u ms lead; marks every %u ms, fallback %u ms; at "
	    "most %u calls; dtmf hangup digits: %s)",
	    o->listen, o->msg_ms ? o->msg_ms : 100,
	    o->lead_ms ? o->lead_ms : 200,
	    o->mark_interval_ms ? o->mark_interval_ms : 500,
	    o->mark_timeout_ms ? o->mark_timeout_ms : 2000, s->max_calls,
	    s->o.dtmf_hangup ? s->o.dtmf_hangup : "none");
	if (auth_enabled(o->auth))
		LOGI(o->log, NULL,
		    "auth on: %zu Basic credentials, %zu tokens (Basic "
		    "header, Bearer header, ?token= or "
		    "custom_parameters.token)",
		    auth_basic_count(o->auth), auth_token_count(o->auth));
	else
		LOGW(o->log, NULL,
		    "*** AUTH IS OFF: EXOPLEX_AUTH_BASIC and "
		    "EXOPLEX_AUTH_TOKENS are unset, so anyone who can reach "
		    "%s can place calls (and use PersonaPlex). Set one of "
		    "them in production. ***",
		    o->listen);
	*out = s;
	return 0;
out:
	evloop_destroy(s->loop);
	strmap_free(s->calls);
	free(s->pcm);
	free(s->play);
	arena_free(s->json);
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
	evloop_destroy(s->loop);
	strmap_free(s->calls);
	free(s->pcm);
	free(s->play);
	arena_free(s->json);
	free(s);
}

void
server_drain(struct server *s)
{
	size_t n = server_open_sockets(s);

	if (atomic_exchange(&s->draining, 1))
		return;
	metric_set(s->m_draining, 1);
	LOGI(s->o.log, NULL,
	    "draining: no new calls (upgrades get 503, /readyz 503); %zu "
	    "socket(s) open, %d call(s) live go on",
	    n, atomic_load(&s->ncalls));
}

size_t
server_open_sockets(const struct server *s)
{
	size_t n = 0;

	for (const struct conn *c = s->conns; c; c = c->next)
		n++;
	return n;
}

void
server_end_calls(struct server *s, const char *reason)
{
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->close_pending)
			continue;
		if (c->state == CONN_LIVE || c->state == CONN_STOPPED) {
			if (c->state == CONN_LIVE)
				LOGI(s->o.log, &c->lc,
				    "drain time is up: ending the call (%s)",
				    reason);
			conn_end(s, c, reason, reason);
		} else {
			conn_close(c, LWS_CLOSE_STATUS_NORMAL, reason);
		}
	}
}

void
server_service(struct server *s)
{
	evloop_turn(s->loop, true);
}

void
server_wake_in(struct server *s, int64_t us)
{
	evloop_wake_in(s->loop, us);
}

int
server_ready(struct server *s, char *detail, size_t len)
{
	int listening = atomic_load(&s->listening);
	int egress    = bus_peers(s->o.bus_control) > 0;
	int cap_free  = atomic_load(&s->cap_free);
	int cap_total = atomic_load(&s->cap_total);
	/* A load balancer should send calls elsewhere while this cell
	 * cannot serve one: egress away, or every PersonaPlex server busy.
	 * With no servers configured at all there is nothing to wait for. */
	int  no_capacity = egress && cap_free == 0 && cap_total > 0;
	int  draining    = atomic_load(&s->draining);
	int  ready       = listening && egress && !no_capacity && !draining;
	char cap[48];

	if (cap_free < 0 || !egress)
		snprintf(cap, sizeof(cap), "unknown");
	else
		snprintf(
		    cap, sizeof(cap), "%d of %d free", cap_free, cap_total);
	snprintf(detail, len,
	    "%s%s on %s; calls %d; PersonaPlex capacity %s%s; bus "
	    "transcoder peers %d, control peers %d%s",
	    draining ? "draining (stopping: no new calls); " : "",
	    listening ? "listening" : "not listening", s->listen_desc,
	    atomic_load(&s->ncalls), cap, no_capacity ? " (no capacity)" : "",
	    bus_peers(s->o.bus_transcoder), bus_peers(s->o.bus_control),
	    egress ? "" : " (egress not connected)");
	return ready;
}

int
server_port(const struct server *s)
{
	return s->port;
}
