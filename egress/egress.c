/*
 * egress.c - calls, the bus, the PersonaPlex pool and its sessions.
 *
 * A call lives from its call_start until its call_stop, or until the bus
 * has been silent about it for idle_ms while nothing is pending on the
 * PersonaPlex side (its ingress or transcoder went away without a word).
 * When ingress disconnects, or a new one connects, every call must be
 * announced again within ingress_grace_ms: a restarted ingress has no
 * calls, so the calls of one that died end promptly (sessions closed,
 * servers released, call.ended bridge_error), not after idle_ms.
 * Frames for a call we do not know ask ingress for an announce (at most
 * once a second per call id) and are dropped; for a few seconds after a
 * call_stop its late frames are dropped quietly instead.
 *
 * A call holds at most one server (c->srv) and at most one session
 * (c->sess) on it. It is "lost" from the moment its session fails until a
 * replacement has its handshake; while lost, the shared tick retries on
 * any free server with backoff, until the reconnect budget runs out.
 * Servers are tagged sessions: when a session's socket is gone (on_gone)
 * its server may be used again. Warm sessions are owned by their server
 * (struct server) until a call takes one over.
 *
 * With ELEVENLABS_API_KEY set, a call that got a server also has an STT
 * session (c->stt, stt.h) fed with the caller_audio ingress sends on
 * "control". At call_stop it outlives the call as a struct tail, which
 * holds the call's call.ended back until the last caller transcript (at
 * most the STT close wait), so call.ended stays the call's last event.
 *
 * A call in mode "transcribe" (mode.h, agent assist) never touches the
 * pool: no server, no session, no retries; only its STT session, and
 * transcripts labelled speaker "call" (the Stream applet's one channel
 * carries every party, mixed).
 */
#include "egress.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "backoff.h"
#include "bus.h"
#include "bus_lws.h"
#include "clock.h"
#include "evloop.h"
#include "hooks.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "mode.h"
#include "oggdur.h"
#include "persona.h"
#include "pool.h"
#include "ppurl.h"
#include "session.h"
#include "strmap.h"
#include "stt.h"

#define PROTO_PP "exoplex-personaplex"
#define PROTO_BUS "exoplex-bus"
#define PROTO_STT "exoplex-stt"
#define TICK_US (100 * 1000)
#define TEXT_MAX 2048
#define SID_MAX 96
#define ANNOUNCE_EVERY_US (1000 * 1000)
#define QUIET_AFTER_STOP_US (5 * 1000 * 1000)
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"
#define QUIET_MAX 4096 /* unknown call ids remembered at once */
#define PRE_MAX 8192 /* downlink bytes kept from a warm session */
/* Liveness: we count as "sending" while a page went out this recently. */
#define SENDING_US (2 * 1000 * 1000)
/* A call's retries: the first soon, then doubling (with jitter). */
#define RETRY_BASE_MS 100
#define RETRY_MAX_MS 2000
#define REAP_AFTER_US (30ull * 1000 * 1000)

enum { LINK_T, LINK_I, LINKS }; /* to transcoder ("egress"), to ingress */

struct call;

struct server {
	struct egress  *eg;
	size_t          idx;
	struct ppurl    url;
	struct session *warm; /* a warm session it owns, or NULL */
	struct call    *call; /* the leaseholder, or NULL */
	uint8_t        *pre; /* downlink bytes a warm session received */
	size_t          pre_len;
	struct metric  *m_state, *m_failures;
};

struct call {
	struct egress        *eg;
	char                 *id; /* stream_sid, the bus call_id */
	char                  call_sid[SID_MAX];
	struct log_call       ids;
	const struct persona *persona;
	char                 *text; /* the persona's prompt for this call */
	bool                  warm_ok; /* a warm session has our prompt */
	int                   srv; /* leased server, -1 if none */
	int                   prefer; /* the server we last had */
	struct session       *sess;
	uint32_t sess_no; /* the current (or last) session's number */
	bool     ready; /* sess has had its handshake */
	bool     failed; /* hangup sent; waiting for call_stop */
	bool     transcribe; /* mode "transcribe": STT only, no server */
	bool     refused; /* ingress refused it: nothing to open */
	bool     told_t; /* session_ready went to a live transcoder */
	bool     lost; /* no ready session since lost_us */
	bool     had_ready; /* some session of it was ready */
	uint64_t lost_us, retry_us;
	unsigned retries; /* attempts since lost */
	unsigned reconnects; /* sessions replaced during the call */
	uint64_t seq[LINKS];
	uint64_t seen_us;
	uint64_t announced_us; /* its last call_start */
	uint64_t started_us;
	uint64_t up_sent, up_dropped, down_pages;
	uint64_t up_first_us, up_last_us; /* this session's uplink */
	unsigned sessions; /* opened for this call */
	char     text_buf[TEXT_MAX];
	size_t   text_len;
	uint64_t text_us;
	/* Webhooks: the call's events, and what call.ended counts. */
	struct hooks_call *hc;
	uint64_t           text_first_wall, text_last_wall;
	uint64_t           up_samples; /* audio sent up, 48 kHz samples */
	struct oggdur      down; /* agent audio received */
	/* Caller transcripts. */
	struct stt *stt;
	unsigned    rate; /* call_start.sample_rate */
	bool        rate_warned;
	uint64_t    caller_bytes; /* caller_audio taken at rate */
};

/* A stopped call's STT session waiting for its last transcript, with the
 * call's webhook events (hc) and its call.ended held until then. */
struct tail {
	struct egress         *eg;
	struct tail           *prev, *next;
	struct hooks_call     *hc;
	struct events_counters k;
	char                   reason[64];
	const char            *speaker; /* "caller" or "call" */
};

/* A call id we do not know: when we may announce again, and its seq. */
struct quiet {
	uint64_t until_us;
	uint64_t seq;
	/* Highest uplink session seen for it: after an egress restart the
	 * transcoder still streams the old session, so the new one must get
	 * a higher number to make it start a fresh Ogg stream. */
	uint32_t last_session;
};

struct link {
	struct egress *eg;
	struct bus    *bus;
	const char    *name;
	int            idx;
};

struct egress {
	struct egress_opts     o;
	struct evloop         *loop; /* owns ctx */
	struct lws_context    *ctx;
	struct lws_vhost      *vh;
	struct session_env    *senv;
	struct stt_env        *stt; /* NULL: STT off */
	struct tail           *tails;
	struct personas       *personas;
	struct pool           *pool;
	struct server         *servers;
	size_t                 nservers;
	char                  *target; /* scratch: a request target */
	char                  *warm_target_text; /* NULL: no warm sessions */
	struct strmap         *calls;
	struct strmap         *quiet;
	struct link            links[LINKS];
	lws_sorted_usec_list_t tick, kick;
	uint64_t               kick_due_us; /* 0: none scheduled */
	uint64_t               rng;
	uint32_t               renumber; /* see on_call_start */
	/* Ingress's link: peers when the tick last looked, and when; calls
	 * not announced since orphan_from_us end at orphan_until_us (0: no
	 * grace running). */
	int            i_peers;
	uint64_t       i_check_us, orphan_from_us, orphan_until_us;
	uint64_t       cap_seq;
	enum mode      default_mode; /* MODE_NONE: unset */
	long           cap_free_sent; /* -1: never sent */
	atomic_bool    running;
	atomic_uint    cap_free, cap_total;
	struct metric *m_calls, *m_unknown, *m_announce, *m_hangup,
	    *m_drop_not_ready, *m_drop_stale, *m_utterances, *m_expired,
	    *m_orphaned, *m_no_capacity, *m_refused, *m_reconnects,
	    *m_attempts, *m_gave_up, *m_warm_opened, *m_warm_taken,
	    *m_hs_timeouts, *m_silent, *m_persona[3], *m_persona_unknown,
	    *m_prompt_fallback, *m_clears, *m_view[POOL_VIEWS], *m_mode[2],
	    *m_no_stt;
};

static const struct session_cb call_session_cb;
static const struct session_cb warm_session_cb;
static void                    kick_at(struct egress *e, uint64_t due_us);
static void                    call_give_up(struct call *c, const char *why);

/* Peer text for a log line: at most 64 bytes, control characters as
 * '?', so a caller's value cannot forge lines. Returns buf. */
static const char *
safe(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	for (; s && *s && n + 1 < len && n < 64; s++)
		buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[n] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */
/* Sending on the bus */

static void
send_to(struct egress *e, int link, struct call *c, const char *call_id,
    Exo__Frame *f, uint64_t ts_us)
{
	f->call_id = (char *)call_id;
	f->seq     = ++c->seq[link];
	f->ts_us   = ts_us ? ts_us : wall_us();
	bus_send(e->links[link].bus, f);
}

static void
send_session(
    struct call *c, bool ready, const char *server, const char *reason)
{
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Session s = EXO__SESSION__INIT;

	s.session = c->sess_no;
	s.server  = (char *)(server ? server : "");
	s.reason  = (char *)(reason ? reason : "");
	if (ready) {
		f.body_case     = EXO__FRAME__BODY_SESSION_READY;
		f.session_ready = &s;
	} else {
		f.body_case     = EXO__FRAME__BODY_SESSION_ENDED;
		f.session_ended = &s;
	}
	send_to(c->eg, LINK_T, c, c->id, &f, 0);
	send_to(c->eg, LINK_I, c, c->id, &f, 0);
	/* Sent with no transcoder connected, it waits in the bus queue. */
	c->told_t = bus_peers(c->eg->links[LINK_T].bus) > 0;
}

static void
send_hangup(struct call *c, const char *reason)
{
	Exo__Frame  f = EXO__FRAME__INIT;
	Exo__Hangup h = EXO__HANGUP__INIT;

	h.reason    = (char *)reason;
	f.body_case = EXO__FRAME__BODY_HANGUP;
	f.hangup    = &h;
	send_to(c->eg, LINK_I, c, c->id, &f, 0);
	metric_inc(c->eg->m_hangup);
}

static void
send_clear(struct call *c, const char *reason)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Clear k = EXO__CLEAR__INIT;

	k.reason    = (char *)reason;
	f.body_case = EXO__FRAME__BODY_CLEAR;
	f.clear     = &k;
	send_to(c->eg, LINK_I, c, c->id, &f, 0);
	metric_inc(c->eg->m_clears);
}

static void
send_downlink(struct call *c, const uint8_t *ogg, size_t len, uint64_t rx_us)
{
	Exo__Frame f = EXO__FRAME__INIT;
	Exo__Ogg   o = EXO__OGG__INIT;

	o.session      = c->sess_no;
	o.data.data    = (uint8_t *)ogg;
	o.data.len     = len;
	f.body_case    = EXO__FRAME__BODY_DOWNLINK_OGG;
	f.downlink_ogg = &o;
	send_to(c->eg, LINK_T, c, c->id, &f, rx_us);
	c->down_pages++;
	oggdur_feed(&c->down, ogg, len);
}

/* One utterance: a log line and an agent_text frame to ingress. */
static void
text_flush(struct call *c)
{
	const char *t = c->text_buf;
	size_t      n = c->text_len;

	while (n && *t == ' ')
		t++, n--;
	while (n && t[n - 1] == ' ')
		n--;
	if (n) {
		Exo__Frame     f = EXO__FRAME__INIT;
		Exo__AgentText a = EXO__AGENT_TEXT__INIT;
		char           buf[TEXT_MAX + 1];

		memcpy(buf, t, n);
		buf[n] = '\0';
		LOGI(c->eg->o.log, &c->ids, "agent (session %u): %s",
		    c->sess_no, buf);
		a.text       = buf;
		f.body_case  = EXO__FRAME__BODY_AGENT_TEXT;
		f.agent_text = &a;
		send_to(c->eg, LINK_I, c, c->id, &f, 0);
		metric_inc(c->eg->m_utterances);
		hooks_call_transcript(c->hc, "agent", buf, true,
		    hooks_call_ms(c->hc, c->text_first_wall),
		    hooks_call_ms(c->hc, c->text_last_wall));
	}
	c->text_len = 0;
}

/* ------------------------------------------------------------------ */
/* The pool's face: metrics and capacity */

static void
capacity_update(struct egress *e, bool force)
{
	uint64_t now  = mono_us();
	size_t   free = pool_available(e->pool, now);

	for (int v = 0; v < POOL_VIEWS; v++)
		metric_set(e->m_view[v],
		    (int64_t)pool_count(e->pool, (enum pool_view)v, now));
	for (size_t i = 0; i < e->nservers; i++)
		metric_set(e->servers[i].m_state,
		    (int64_t)pool_view(e->pool, i, now));
	atomic_store(&e->cap_free, (unsigned)free);
	if (!force && (long)free == e->cap_free_sent)
		return;
	if (!bus_peers(e->links[LINK_I].bus))
		return; /* told when it connects */
	{
		Exo__Frame    f = EXO__FRAME__INIT;
		Exo__Capacity k = EXO__CAPACITY__INIT;

		k.free      = (uint32_t)free;
		k.total     = (uint32_t)e->nservers;
		f.body_case = EXO__FRAME__BODY_CAPACITY;
		f.capacity  = &k;
		f.call_id   = "";
		f.seq       = ++e->cap_seq;
		f.ts_us     = wall_us();
		bus_send(e->links[LINK_I].bus, &f);
	}
	if (e->cap_free_sent != (long)free)
		LOGI(e->o.log, NULL,
		    "PersonaPlex capacity: %zu of %zu server(s) free", free,
		    e->nservers);
	e->cap_free_sent = (long)free;
}

/* A server failed: it rests for a while (backoff). */
static void
server_failed(struct server *sv, const char *why)
{
	struct egress *e = sv->eg;
	uint32_t       d = pool_failed(e->pool, sv->idx, mono_us());

	metric_inc(sv->m_failures);
	LOGW(e->o.log, NULL,
	    "PersonaPlex server %s failed (%s): not used for %.1f s "
	    "(failure %u in a row)",
	    sv->url.base, why, d / 1000.0, pool_failures(e->pool, sv->idx));
}

/* Whether a session failure says something about the server itself
 * rather than the session: then it gets a backoff. */
static bool
server_fault(const char *reason)
{
	return !strcmp(reason, SESSION_CONNECT_FAILED)
	    || !strcmp(reason, SESSION_CLOSED_PROMPTING)
	    || !strcmp(reason, SESSION_HANDSHAKE_TIMEOUT)
	    || !strcmp(reason, SESSION_SILENT);
}

/* sv is idle again; with a socket of ours still on it (sock), it is
 * closing until on_gone. */
static void
server_let_go(struct server *sv, bool sock)
{
	pool_set_use(sv->eg->pool, sv->idx, POOL_IDLE);
	if (sock)
		pool_closing(sv->eg->pool, sv->idx);
	sv->call = NULL;
}

/* lws is done with a session's socket: its server is ours again. */
static void
on_gone(void *arg, long tag)
{
	struct egress *e = arg;

	if (tag < 0 || (size_t)tag >= e->nservers)
		return;
	pool_closed(e->pool, (size_t)tag);
	if (!atomic_load(&e->running))
		return; /* egress_free is waiting for close frames */
	LOGD(e->o.log, NULL, "PersonaPlex server %s: our socket is gone",
	    e->servers[tag].url.base);
	kick_at(e, 0);
}

/* ------------------------------------------------------------------ */
/* Warm sessions */

static void
warm_drop_pre(struct server *sv)
{
	free(sv->pre);
	sv->pre     = NULL;
	sv->pre_len = 0;
}

static void
warm_on_handshake(void *owner, struct session *s)
{
	struct server *sv = owner;

	pool_set_use(sv->eg->pool, sv->idx, POOL_WARM);
	pool_succeeded(sv->eg->pool, sv->idx);
	LOGI(sv->eg->o.log, NULL,
	    "warm session on %s ready after %.1f s: waiting for a call",
	    sv->url.base,
	    (double)(session_ready_us(s) - session_opened_us(s)) / 1e6);
	capacity_update(sv->eg, false);
}

/* The header pages (OpusHead, OpusTags) come right after 0x00: kept for
 * the call that takes the session. */
static void
warm_on_audio(void *owner, struct session *s, const uint8_t *ogg, size_t len,
    uint64_t rx_us)
{
	struct server *sv = owner;
	uint8_t       *p;

	if (sv->pre_len + len > PRE_MAX)
		return;
	if (!(p = realloc(sv->pre, sv->pre_len + len)))
		return;
	memcpy(p + sv->pre_len, ogg, len);
	sv->pre = p;
	sv->pre_len += len;
}

static void
warm_on_text(void *owner, struct session *s, const char *utf8, size_t len)
{
}

static void
warm_on_ended(
    void *owner, struct session *s, const char *reason, const char *detail)
{
	struct server *sv = owner;

	sv->warm = NULL;
	warm_drop_pre(sv);
	LOGW(sv->eg->o.log, NULL, "warm session on %s ended: %s (%s)",
	    sv->url.base, reason, detail ? detail : "");
	server_let_go(sv, true);
	if (server_fault(reason))
		server_failed(sv, reason);
	capacity_update(sv->eg, false);
}

static const struct session_cb warm_session_cb = {
	.handshake = warm_on_handshake,
	.audio     = warm_on_audio,
	.text      = warm_on_text,
	.ended     = warm_on_ended,
};

/* Keeps up to o.warm servers warm with the default persona. */
static void
warm_fill(struct egress *e)
{
	uint64_t now = mono_us();
	char     err[256];

	if (!e->o.warm || !e->warm_target_text)
		return;
	while (pool_count(e->pool, POOL_V_WARM, now)
	        + pool_count(e->pool, POOL_V_WARMING, now)
	    < e->o.warm) {
		int            i = pool_pick(e->pool, now, POOL_WANT_WARM, -1);
		struct server *sv;
		const struct persona *d = personas_default(e->personas);

		if (i < 0)
			return;
		sv = &e->servers[i];
		if (ppurl_target(&sv->url, d->voice, e->warm_target_text, 0,
		        e->target, PPURL_URL_MAX + 1, err, sizeof(err))) {
			/* Checked at start; cannot happen. */
			LOGE(e->o.log, NULL, "warm session on %s: %s",
			    sv->url.base, err);
			server_failed(sv, "bad target");
			continue;
		}
		if (session_open(&sv->warm, e->senv, &sv->url, e->target, NULL,
		        &warm_session_cb, sv)) {
			sv->warm = NULL;
			server_failed(sv, SESSION_CONNECT_FAILED);
			continue;
		}
		session_set_tag(sv->warm, (long)i);
		pool_set_use(e->pool, (size_t)i, POOL_WARMING);
		metric_inc(e->m_warm_opened);
		LOGI(e->o.log, NULL,
		    "warm session: connecting to %s with persona %s",
		    sv->url.base, d->name);
	}
}

/* ------------------------------------------------------------------ */
/* A call's sessions */

static void
call_reset_uplink(struct call *c)
{
	c->up_first_us = c->up_last_us = 0;
}

/* The call's session is ready (its own handshake, or a warm one taken):
 * a replacement first clears what the caller has not heard yet. */
static void
call_ready(struct call *c, struct session *s)
{
	struct egress *e = c->eg;

	c->ready = true;
	call_reset_uplink(c);
	oggdur_reset(&c->down);
	if (c->srv >= 0)
		pool_succeeded(e->pool, (size_t)c->srv);
	if (c->lost && c->had_ready) {
		c->reconnects++;
		metric_inc(e->m_reconnects);
		LOGI(e->o.log, &c->ids,
		    "session %u replaces the lost one after %.2f s "
		    "(reconnect %u of this call)",
		    c->sess_no, (double)(mono_us() - c->lost_us) / 1e6,
		    c->reconnects);
		send_clear(c, "persona_reconnected");
	}
	c->lost      = false;
	c->had_ready = true;
	c->retries   = 0;
	LOGI(e->o.log, &c->ids, "session %u ready on %s (persona %s)",
	    c->sess_no, session_server(s), c->persona->name);
	send_session(c, true, session_server(s), NULL);
}

/* Opens the call's session on its leased server (not closing). */
static void
call_open(struct call *c)
{
	struct egress        *e  = c->eg;
	struct server        *sv = &e->servers[c->srv];
	const struct persona *p  = c->persona;
	char                  err[400];

	if (ppurl_target(&sv->url, p->voice, c->text, 0, e->target,
	        PPURL_URL_MAX + 1, err, sizeof(err))) {
		/* The filled-in prompt is too long: the persona without its
		 * values was checked to fit at start. */
		char *bare = malloc(PPURL_URL_MAX + 1);
		LOGW(e->o.log, &c->ids,
		    "persona %s with this call's values: %s; using it with "
		    "its placeholders empty",
		    p->name, err);
		metric_inc(e->m_prompt_fallback);
		if (!bare || persona_render(p, NULL, bare, PPURL_URL_MAX + 1)
		    || ppurl_target(&sv->url, p->voice, bare, 0, e->target,
		        PPURL_URL_MAX + 1, err, sizeof(err))) {
			free(bare);
			LOGE(
			    e->o.log, &c->ids, "persona %s: %s", p->name, err);
			call_give_up(c, "the persona's prompt does not fit");
			return;
		}
		free(c->text);
		c->text = bare;
	}
	c->sess_no++;
	c->sessions++;
	c->ready = false;
	call_reset_uplink(c);
	if (session_open(&c->sess, e->senv, &sv->url, e->target, &c->ids,
	        &call_session_cb, c)) {
		c->sess  = NULL;
		c->srv   = -1;
		sv->call = NULL;
		pool_set_use(e->pool, sv->idx, POOL_IDLE);
		server_failed(sv, SESSION_CONNECT_FAILED);
		if (!c->lost) {
			c->lost    = true;
			c->lost_us = mono_us();
		}
		c->retry_us = mono_us();
		kick_at(e, 0);
		return;
	}
	session_set_tag(c->sess, (long)sv->idx);
	LOGI(e->o.log, &c->ids, "session %u: persona %s on %s", c->sess_no,
	    p->name, sv->url.base);
}

/* Leases a server for the call and starts its session there. Returns
 * false when no server can be had. */
static bool
call_acquire(struct call *c)
{
	struct egress *e   = c->eg;
	uint64_t       now = mono_us();
	int            i   = pool_pick(e->pool, now,
            c->warm_ok ? POOL_WANT_DEFAULT : POOL_WANT_OTHER, c->prefer);
	struct server *sv;
	enum pool_use  was;

	if (i < 0)
		return false;
	sv  = &e->servers[i];
	was = pool_use_of(e->pool, (size_t)i);
	pool_set_use(e->pool, (size_t)i, POOL_CALL);
	sv->call  = c;
	c->srv    = i;
	c->prefer = i;
	if (sv->warm && c->warm_ok) {
		/* Take the warm session over: it has our prompt. */
		struct session *s  = sv->warm;
		bool            hs = was == POOL_WARM;

		sv->warm = NULL;
		c->sess  = s;
		c->sess_no++;
		c->sessions++;
		c->ready = false;
		session_set_owner(s, &call_session_cb, c, &c->ids);
		metric_inc(e->m_warm_taken);
		LOGI(e->o.log, &c->ids,
		    "session %u: took the %s session on %s", c->sess_no,
		    hs ? "warm" : "warming", sv->url.base);
		if (hs) {
			call_ready(c, s);
			/* The header pages it got while waiting: the
			 * transcoder's demuxer starts from them. */
			if (sv->pre_len)
				send_downlink(c, sv->pre, sv->pre_len, 0);
		}
		warm_drop_pre(sv);
	} else if (sv->warm) {
		/* Warm with the wrong persona: close it, then ours. (Marked
		 * closing first: the gone callback may come at once.) */
		pool_closing(e->pool, (size_t)i);
		session_close(sv->warm, "a call needs another persona");
		sv->warm = NULL;
		warm_drop_pre(sv);
		LOGI(e->o.log, &c->ids,
		    "closing the warm session on %s for persona %s",
		    sv->url.base, c->persona->name);
	} else {
		call_open(c);
	}
	capacity_update(e, false);
	return true;
}

/* The call's session is gone: its server goes back to the pool (resting
 * if it was at fault) and the call is lost until a replacement is ready,
 * first tried soon. */
static void
call_lose(struct call *c, const char *reason, const char *server)
{
	struct egress *e         = c->eg;
	uint64_t       now       = mono_us();
	bool           was_ready = c->ready;

	text_flush(c);
	if (c->srv >= 0) {
		struct server *sv = &e->servers[c->srv];
		server_let_go(sv, true);
		if (server_fault(reason))
			server_failed(sv, reason);
		c->srv = -1;
	}
	c->sess = NULL;
	if (c->sess_no)
		send_session(c, false, server, reason);
	c->ready = false;
	if (c->failed)
		return;
	if (!c->lost) {
		c->lost    = true;
		c->lost_us = now;
		c->retries = 0;
	}
	/* A server that never got ready is resting now: the next one is
	 * tried at once. A session that dropped waits a moment first, so
	 * calls dropped together do not all rush the same servers. */
	c->retry_us = now;
	if (was_ready)
		c->retry_us
		    += (uint64_t)backoff_ms(
		           &(struct backoff) { RETRY_BASE_MS, RETRY_MAX_MS },
		           c->retries + 1, backoff_rand(&e->rng))
		    * 1000;
	LOGW(e->o.log, &c->ids,
	    "session %u lost (%s): replacing it (%.1f s of %.1f s budget "
	    "used)",
	    c->sess_no, reason, (double)(now - c->lost_us) / 1e6,
	    e->o.reconnect_ms / 1000.0);
	kick_at(e, c->retry_us);
	capacity_update(e, false);
}

/* The call cannot have its agent: tell ingress to end it. */
static void
call_give_up(struct call *c, const char *why)
{
	struct egress *e        = c->eg;
	bool           had_sess = c->sess != NULL;

	if (c->failed)
		return;
	c->failed = true;
	if (c->srv >= 0) {
		server_let_go(&e->servers[c->srv], had_sess);
		c->srv = -1;
	}
	if (c->sess) {
		session_close(c->sess, why);
		c->sess = NULL;
		if (c->sess_no)
			send_session(c, false, "", why);
	}
	metric_inc(e->m_gave_up);
	LOGE(e->o.log, &c->ids,
	    "no PersonaPlex agent for this call (%s): asking ingress to hang "
	    "up (persona_failed)",
	    why);
	send_hangup(c, "persona_failed");
	capacity_update(e, false);
}

static void
on_handshake(void *owner, struct session *s)
{
	call_ready(owner, s);
}

static void
on_audio(void *owner, struct session *s, const uint8_t *ogg, size_t len,
    uint64_t rx_us)
{
	send_downlink(owner, ogg, len, rx_us);
}

static void
on_text(void *owner, struct session *s, const char *utf8, size_t len)
{
	struct call *c = owner;

	LOGD(
	    c->eg->o.log, &c->ids, "agent text piece: '%.*s'", (int)len, utf8);
	if (c->text_len + len > sizeof(c->text_buf))
		text_flush(c);
	c->text_last_wall = wall_us();
	if (!c->text_len)
		c->text_first_wall = c->text_last_wall;
	for (size_t i = 0; i < len && c->text_len < sizeof(c->text_buf); i++) {
		unsigned char ch = (unsigned char)utf8[i];
		/* One utterance, one log line. */
		c->text_buf[c->text_len++]
		    = ch < 0x20 || ch == 0x7f ? ' ' : ch;
	}
	c->text_us = mono_us();
}

static void
on_ended(
    void *owner, struct session *s, const char *reason, const char *detail)
{
	call_lose(owner, reason, session_server(s));
}

static const struct session_cb call_session_cb = {
	.handshake = on_handshake,
	.audio     = on_audio,
	.text      = on_text,
	.ended     = on_ended,
};

/* call.ended with what the call carried (a no-op without webhooks). It
 * must be the call's last event: anything that still reports on the call
 * afterwards (e.g. a caller transcript committed after call_stop) has to
 * be passed on before this is called. */
static struct events_counters
call_counters(const struct call *c)
{
	struct events_counters k = {
		.audio_in_s     = (double)c->up_samples / 48000.0,
		.audio_out_s    = oggdur_seconds(&c->down),
		.reconnects     = c->reconnects,
		.frames_dropped = c->up_dropped,
	};
	/* No agent: what came in for transcription. */
	if (c->transcribe && c->rate)
		k.audio_in_s = (double)c->caller_bytes / (2.0 * c->rate);
	return k;
}

static void
call_report_end(struct call *c, const char *reason)
{
	struct events_counters k = call_counters(c);

	text_flush(c);
	hooks_call_end(c->hc, reason, &k);
	c->hc = NULL;
}

/* ------------------------------------------------------------------ */
/* Caller transcripts */

/* A transcribe call's stream is every party mixed into one channel
 * (research/exotel.md §6): its words are the call's, not the caller's. */
static const char *
call_speaker(const struct call *c)
{
	return c->transcribe ? "call" : "caller";
}

static void
on_caller_transcript(void *owner, const struct stt_transcript *t)
{
	struct call *c = owner;

	hooks_call_transcript(
	    c->hc, call_speaker(c), t->text, t->final, t->start_ms, t->end_ms);
}

/* Never called: a call hands its session to a tail before it finishes. */
static void
on_caller_done(void *owner)
{
}

static const struct stt_cb call_stt_cb = {
	.transcript = on_caller_transcript,
	.done       = on_caller_done,
};

static void
tail_transcript(void *owner, const struct stt_transcript *t)
{
	struct tail *tl = owner;

	hooks_call_transcript(
	    tl->hc, tl->speaker, t->text, t->final, t->start_ms, t->end_ms);
}

static void
tail_free(struct tail *tl)
{
	struct egress *e = tl->eg;

	if (tl->prev)
		tl->prev->next = tl->next;
	else
		e->tails = tl->next;
	if (tl->next)
		tl->next->prev = tl->prev;
	free(tl);
}

/* The last transcript is in (or will not come): the call's end goes. */
static void
tail_done(void *owner)
{
	struct tail *tl = owner;

	hooks_call_end(tl->hc, tl->reason, &tl->k);
	tail_free(tl);
}

static const struct stt_cb tail_stt_cb = {
	.transcript = tail_transcript,
	.done       = tail_done,
};

/* Returns 0, or an errno value when the call has no STT session. */
static int
call_stt_open(struct call *c, const Exo__CallStart *cs)
{
	struct egress *e = c->eg;
	int            rc;

	if (!e->stt)
		return ENOTSUP;
	c->rate = cs->sample_rate;
	rc      = stt_open(&c->stt, e->stt, &c->ids, cs->sample_rate,
	         cs->started_us, &call_stt_cb, c);
	if (rc) {
		c->stt = NULL;
		LOGW(e->o.log, &c->ids,
		    "no caller transcripts for this call: %s",
		    rc == EINVAL ? "its sample rate is not one STT takes"
		                 : "out of memory");
	}
	return rc;
}

static void
on_caller_audio(struct call *c, const Exo__Frame *f)
{
	const Exo__Audio *a = f->caller_audio;

	if (!c->stt || !a)
		return;
	if (a->sample_rate != c->rate) {
		if (!c->rate_warned)
			LOGW(c->eg->o.log, &c->ids,
			    "caller_audio at %u Hz in a %u Hz call: not "
			    "transcribed",
			    a->sample_rate, c->rate);
		c->rate_warned = true;
		return;
	}
	c->caller_bytes += a->pcm.len;
	stt_audio(c->stt, a->pcm.data, a->pcm.len, f->ts_us);
}

/* call_stop: the STT session finishes on its own (final commit, the last
 * transcript, close 1000) and the call's end is reported after it.
 * Returns false when the call has no STT session (report its end now). */
static bool
call_stt_finish(struct call *c, const char *reason)
{
	struct egress *e = c->eg;
	struct tail   *tl;

	if (!c->stt)
		return false;
	if (!(tl = calloc(1, sizeof(*tl)))) {
		stt_close(c->stt);
		c->stt = NULL;
		return false;
	}
	text_flush(c);
	tl->eg      = e;
	tl->hc      = c->hc;
	tl->k       = call_counters(c);
	tl->speaker = call_speaker(c);
	snprintf(tl->reason, sizeof(tl->reason), "%s", reason ? reason : "");
	c->hc    = NULL;
	tl->next = e->tails;
	if (e->tails)
		e->tails->prev = tl;
	e->tails = tl;
	stt_set_owner(c->stt, &tail_stt_cb, tl);
	stt_finish(c->stt);
	c->stt = NULL;
	return true;
}

static void
call_free(struct call *c, const char *why)
{
	struct egress *e = c->eg;

	text_flush(c);
	hooks_call_close(c->hc); /* ended already, or egress stops */
	stt_close(c->stt);
	if (c->srv >= 0)
		server_let_go(&e->servers[c->srv], c->sess != NULL);
	if (c->sess)
		session_close(c->sess, why);
	LOGI(e->o.log, &c->ids,
	    "call gone (%s) after %.1f s: persona %s, %u session(s), %u "
	    "reconnect(s), %llu pages up (%llu frames dropped), %llu pages "
	    "down",
	    why, (double)(mono_us() - c->started_us) / 1e6,
	    c->persona ? c->persona->name : "-", c->sessions, c->reconnects,
	    (unsigned long long)c->up_sent, (unsigned long long)c->up_dropped,
	    (unsigned long long)c->down_pages);
	strmap_del(e->calls, c->id);
	metric_set(e->m_calls, (int64_t)strmap_count(e->calls));
	free(c->text);
	free(c->id);
	free(c);
	memtrim_note(); /* with its sessions' lws buffers */
	capacity_update(e, false);
}

/* ------------------------------------------------------------------ */
/* Unknown calls */

/* Late frames of a stopped call, and repeat offenders, stay quiet. */
static void
quiet_set(struct egress *e, const char *id, uint64_t until_us)
{
	struct quiet *q = strmap_get(e->quiet, id);

	if (!q) {
		if (strmap_count(e->quiet) >= QUIET_MAX)
			return;
		q = calloc(1, sizeof(*q));
		if (!q || strmap_put(e->quiet, id, q)) {
			free(q);
			return;
		}
	}
	if (q->until_us < until_us)
		q->until_us = until_us;
}

static void
announce(struct egress *e, const Exo__Frame *in)
{
	struct quiet   *q   = strmap_get(e->quiet, in->call_id);
	uint64_t        now = mono_us();
	Exo__Frame      f   = EXO__FRAME__INIT;
	Exo__Announce   a   = EXO__ANNOUNCE__INIT;
	struct log_call ids = { .stream_sid = in->call_id };

	metric_inc(e->m_unknown);
	if (in->body_case == EXO__FRAME__BODY_UPLINK_OGG) {
		if (!q) {
			quiet_set(e, in->call_id, 0);
			q = strmap_get(e->quiet, in->call_id);
		}
		if (q && q->last_session < in->uplink_ogg->session)
			q->last_session = in->uplink_ogg->session;
	}
	if (q && now < q->until_us)
		return;
	quiet_set(e, in->call_id, now + ANNOUNCE_EVERY_US);
	q = strmap_get(e->quiet, in->call_id);
	if (!q)
		return; /* a flood of unknown ids: no announce storm either */
	LOGI(e->o.log, &ids,
	    "%s for an unknown call: asking ingress to "
	    "announce it",
	    bus_kind_name(in));
	f.body_case = EXO__FRAME__BODY_ANNOUNCE;
	f.announce  = &a;
	f.call_id   = in->call_id;
	f.seq       = ++q->seq;
	f.ts_us     = wall_us();
	bus_send(e->links[LINK_I].bus, &f);
	metric_inc(e->m_announce);
}

/* ------------------------------------------------------------------ */
/* Bus frames */

/* The persona for a new call, and its prompt with the call's values. */
static int
call_persona(struct egress *e, struct call *c, const Exo__CallStart *cs)
{
	const char         *keys[64], *vals[64], *asked = NULL;
	struct persona_vars v = { .from = cs->from, .to = cs->to };
	enum persona_why    why;
	bool                unknown;
	static const char  *whys[]
	    = { "custom parameter", "dialled number", "default" };

	for (size_t i = 0; i < cs->n_custom_parameters && v.n < 64; i++) {
		const Exo__CallStart__CustomParametersEntry *p
		    = cs->custom_parameters[i];
		if (!p || !p->key)
			continue;
		if (!strcmp(p->key, "persona"))
			asked = p->value;
		keys[v.n]   = p->key;
		vals[v.n++] = p->value ? p->value : "";
	}
	v.keys   = keys;
	v.values = vals;
	/* A persona ingress decided on comes first. */
	if (cs->persona && *cs->persona)
		asked = cs->persona;
	c->persona
	    = persona_choose(e->personas, asked, cs->to, &why, &unknown);
	if (unknown) {
		char t[72];
		metric_inc(e->m_persona_unknown);
		LOGW(e->o.log, &c->ids,
		    "no persona named '%s': choosing by number, then the "
		    "default",
		    safe(t, sizeof(t), asked));
	}
	metric_inc(e->m_persona[why]);
	if (!(c->text = malloc(PPURL_URL_MAX + 1)))
		return ENOMEM;
	if (persona_render(c->persona, &v, c->text, PPURL_URL_MAX + 1)) {
		/* call_open falls back to the persona without values. */
		LOGW(e->o.log, &c->ids,
		    "persona %s: this call's prompt is too long",
		    c->persona->name);
	}
	c->warm_ok = c->persona == personas_default(e->personas)
	    && !c->persona->templated;
	LOGI(e->o.log, &c->ids, "persona %s (by %s)", c->persona->name,
	    whys[why]);
	return 0;
}

/* Decides the call's mode (mode.h) and tells ingress and the transcoder
 * (call_mode), before anything else they hear about the call. */
static void
call_decide_mode(struct egress *e, struct call *c, const Exo__CallStart *cs)
{
	struct mode_in in = { .asked = cs->mode,
		.persona             = c->persona->mode,
		.dflt                = e->default_mode,
		.servers             = e->nservers };
	enum mode_by   by;
	enum mode      m = mode_choose(&in, &by);
	Exo__Frame     f = EXO__FRAME__INIT;
	Exo__CallMode  k = EXO__CALL_MODE__INIT;
	char           t[72];

	if (cs->mode && *cs->mode && mode_parse(cs->mode) == MODE_NONE)
		LOGW(e->o.log, &c->ids,
		    "call_start.mode '%s' is not agent or transcribe: ignored",
		    safe(t, sizeof(t), cs->mode));
	c->transcribe = m == MODE_TRANSCRIBE;
	metric_inc(e->m_mode[c->transcribe]);
	k.mode = (char *)mode_name(m);
	/* A re-announced call's mode is the one decided for it before. */
	k.by = (char *)(cs->reannounce && by == MODE_BY_CALL
	        ? "earlier"
	        : mode_by_name(by, e->nservers));
	LOGI(e->o.log, &c->ids, "mode %s (by %s)", k.mode, k.by);
	f.body_case = EXO__FRAME__BODY_CALL_MODE;
	f.call_mode = &k;
	send_to(e, LINK_T, c, c->id, &f, 0);
	send_to(e, LINK_I, c, c->id, &f, 0);
}

/* A transcribe call: its STT session is all it has. Without one there
 * is nothing to do for it, so ingress is asked to end it. */
static void
call_transcribe(struct call *c, const Exo__CallStart *cs)
{
	struct egress *e  = c->eg;
	int            rc = call_stt_open(c, cs);

	if (rc == 0) {
		LOGI(e->o.log, &c->ids,
		    "transcribe only: no PersonaPlex server, nothing back to "
		    "the caller");
		return;
	}
	c->failed = true;
	metric_inc(e->m_no_stt);
	hooks_call_detail(
	    c->hc, rc == ENOTSUP ? "stt_not_configured" : "stt_unavailable");
	LOGW(e->o.log, &c->ids,
	    "a transcribe call needs speech-to-text and %s: asking ingress "
	    "to end it (bridge_error)",
	    rc == ENOTSUP ? "ELEVENLABS_API_KEY is not set"
	                  : "no STT session could be had");
	send_hangup(c, "bridge_error");
}

static void
on_call_start(struct egress *e, const Exo__Frame *f)
{
	const Exo__CallStart *cs = f->call_start;
	struct call          *c  = strmap_get(e->calls, f->call_id);
	struct quiet         *q;
	char                  t1[72], t2[72];

	if (c) {
		/* Idempotent: a known call is only refreshed. */
		c->seen_us = c->announced_us = mono_us();
		LOGD(e->o.log, &c->ids, "call_start again%s: refreshed",
		    cs->reannounce ? " (reannounce)" : "");
		return;
	}
	if (!*f->call_id) {
		LOGW(e->o.log, NULL, "call_start without a call_id: dropped");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->id = strdup(f->call_id))
	    || strmap_put(e->calls, f->call_id, c)) {
		struct log_call ids = { .stream_sid = f->call_id };
		LOGE(e->o.log, &ids, "out of memory for a new call");
		if (c)
			free(c->id);
		free(c);
		return;
	}
	c->eg     = e;
	c->srv    = -1;
	c->prefer = -1;
	snprintf(c->call_sid, sizeof(c->call_sid), "%s",
	    cs->call_sid ? cs->call_sid : "");
	c->ids.call_sid   = c->call_sid;
	c->ids.stream_sid = c->id;
	c->seen_us = c->started_us = c->announced_us = mono_us();
	metric_set(e->m_calls, (int64_t)strmap_count(e->calls));
	if (cs->refused && *cs->refused) {
		/* Ingress turned it away; its call_stop follows. */
		c->refused = true;
		c->hc      = hooks_call_open(e->o.hooks, cs, NULL, NULL);
		metric_inc(e->m_refused);
		LOGI(e->o.log, &c->ids,
		    "call refused by ingress (%s): nothing to open",
		    safe(t1, sizeof(t1), cs->refused));
		return;
	}
	/* A call we learn of again (we restarted, or forgot it) may still
	 * have an earlier egress's session streaming in the transcoder,
	 * which keeps its Ogg stream for a session_ready of the same number.
	 * Its sessions are numbered past both what the transcoder was seen
	 * sending and this process's start time in seconds, a number no
	 * earlier egress can have reached. */
	q = strmap_del(e->quiet, c->id);
	if (q && q->last_session)
		c->sess_no = q->last_session;
	free(q);
	if (cs->reannounce && c->sess_no < e->renumber)
		c->sess_no = e->renumber;
	if (c->sess_no)
		LOGI(e->o.log, &c->ids,
		    "a call we did not know: its sessions are numbered from "
		    "%u",
		    c->sess_no + 1);
	LOGI(e->o.log, &c->ids, "call started%s (from %s to %s, %u Hz)",
	    cs->reannounce ? " (reannounced)" : "",
	    safe(t1, sizeof(t1), cs->from), safe(t2, sizeof(t2), cs->to),
	    cs->sample_rate);
	if (call_persona(e, c, cs)) {
		LOGE(e->o.log, &c->ids, "out of memory for the call's prompt");
		c->hc = hooks_call_open(e->o.hooks, cs, NULL, NULL);
		call_give_up(c, "out of memory");
		return;
	}
	call_decide_mode(e, c, cs);
	c->hc = hooks_call_open(e->o.hooks, cs, c->persona->name,
	    c->transcribe ? "transcribe" : "agent");
	if (c->transcribe) {
		call_transcribe(c, cs);
		return;
	}
	if (!call_acquire(c)) {
		uint64_t now = mono_us();
		c->failed    = true;
		metric_inc(e->m_no_capacity);
		LOGW(e->o.log, &c->ids,
		    "no PersonaPlex server free (%zu busy, %zu closing, %zu "
		    "failed of %zu): asking ingress to refuse the call "
		    "(no_capacity)",
		    pool_count(e->pool, POOL_V_BUSY, now),
		    pool_count(e->pool, POOL_V_CLOSING, now),
		    pool_count(e->pool, POOL_V_FAILED, now), e->nservers);
		send_hangup(c, "no_capacity");
		return;
	}
	call_stt_open(c, cs);
}

static void
on_uplink(struct egress *e, struct call *c, const Exo__Ogg *o)
{
	struct oggdur d = { 0 };
	uint64_t      frames;
	int           rc;

	/* A page holds one to four whole Opus frames (the transcoder's
	 * EXOPLEX_OPUS_FRAMES_PER_PAGE); a header page counts as one. */
	if (!o->header)
		oggdur_feed(&d, o->data.data, o->data.len);
	frames = d.packets ? d.packets : 1;
	if (!c->sess || !c->ready || o->session != c->sess_no) {
		/* Not for the live, handshaken session: never sent. */
		metric_inc(o->session != c->sess_no ? e->m_drop_stale
		                                    : e->m_drop_not_ready);
		c->up_dropped += frames;
		return;
	}
	rc = session_send_ogg(c->sess, o->data.data, o->data.len, o->header);
	if (rc == 0 || rc == ENOBUFS) {
		c->up_sent++;
		c->up_samples += d.samples;
		c->up_last_us = mono_us();
		if (!c->up_first_us)
			c->up_first_us = c->up_last_us;
	}
	if (rc)
		c->up_dropped += frames;
}

static void
dispatch(struct egress *e, struct link *l, const Exo__Frame *f)
{
	struct call *c = strmap_get(e->calls, f->call_id);

	switch (f->body_case) {
	case EXO__FRAME__BODY_CALL_START:
		on_call_start(e, f);
		return;
	case EXO__FRAME__BODY_CALL_STOP:
		if (c) {
			char why[96];
			snprintf(why, sizeof(why), "call_stop %s",
			    f->call_stop->reason ? f->call_stop->reason : "");
			quiet_set(
			    e, f->call_id, mono_us() + QUIET_AFTER_STOP_US);
			if (!call_stt_finish(c, f->call_stop->reason))
				call_report_end(c, f->call_stop->reason);
			call_free(c, why);
		} else {
			/* One we forgot (egress restarted) but the outbox
			 * remembers: its end still goes out, with the mode
			 * ingress knew. */
			struct hooks_call *hc
			    = hooks_call_find(e->o.hooks, f->call_id);
			hooks_call_mode(hc, f->call_stop->mode);
			hooks_call_end(hc, f->call_stop->reason, NULL);
		}
		return;
	case EXO__FRAME__BODY_UPLINK_OGG:
	case EXO__FRAME__BODY_CALLER_AUDIO:
	case EXO__FRAME__BODY_DTMF:
	case EXO__FRAME__BODY_MARK:
	case EXO__FRAME__BODY_PLAYOUT:
		if (!c) {
			announce(e, f);
			return;
		}
		c->seen_us = mono_us();
		if (f->body_case == EXO__FRAME__BODY_UPLINK_OGG)
			on_uplink(e, c, f->uplink_ogg);
		else if (f->body_case == EXO__FRAME__BODY_CALLER_AUDIO)
			on_caller_audio(c, f);
		else if (f->body_case == EXO__FRAME__BODY_DTMF && f->dtmf)
			hooks_call_dtmf(c->hc, f->dtmf->digit,
			    f->dtmf->duration_ms, f->ts_us);
		else
			LOGD(e->o.log, &c->ids,
			    "%s from ingress (not used yet)",
			    bus_kind_name(f));
		return;
	default:
		LOGD(e->o.log, NULL, "bus %s: ignored a %s frame", l->name,
		    bus_kind_name(f));
		return;
	}
}

static int
bus_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct link                *l = lws_get_opaque_user_data(wsi);
	const struct lws_protocols *p = lws_get_protocol(wsi);
	const Exo__Envelope        *env;
	int                         rc;

	/* lws tells the first protocol of destroying every wsi, sessions'
	 * too (session.h). */
	if (reason == LWS_CALLBACK_WSI_DESTROY && p && p->name
	    && !strcmp(p->name, PROTO_PP))
		return session_lws_callback(wsi, reason, user, in, len);
	if (reason == LWS_CALLBACK_WSI_DESTROY && p && p->name
	    && !strcmp(p->name, PROTO_STT))
		return stt_lws_callback(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (!l)
			return 0;
		while ((rc = bus_next(l->bus, &env)) != EAGAIN) {
			if (rc)
				continue; /* logged and counted by the bus */
			/* Stopping (egress_free waits for close frames):
			 * the calls are gone, so are their frames. */
			for (size_t i = 0;
			     atomic_load(&l->eg->running) && i < env->n_frames;
			     i++) {
				bus_count_in(l->bus, env->frames[i]);
				dispatch(l->eg, l, env->frames[i]);
			}
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		/* The fd is lws's dup; NNG's own is untouched. */
		if (l && atomic_load(&l->eg->running))
			LOGE(l->eg->o.log, NULL, "bus %s: lws closed its fd",
			    l->name);
		return 0;
	default:
		return 0;
	}
}

/* lws hands some callbacks of other wsis (e.g. WSI_DESTROY of adopted
 * fds at context destruction) to a vhost's first protocol: bus_callback
 * is first because it only ever reads what bus_lws_adopt stored. */
static const struct lws_protocols protocols[] = {
	{ .name = PROTO_BUS, .callback = bus_callback },
	{ .name = PROTO_PP, .callback = session_lws_callback },
	{ .name = PROTO_STT, .callback = stt_lws_callback },
	{ .name = NULL },
};

/* ------------------------------------------------------------------ */
/* The shared tick, and the kick for work that should not wait for it */

struct walk {
	struct egress *e;
	uint64_t       now;
	char         **ids;
	size_t         n, cap;
	bool           housekeeping; /* the tick, not a kick */
};

static void
walk_push(struct walk *w, const char *id)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		char **p   = realloc(w->ids, cap * sizeof(*p));
		if (!p)
			return;
		w->ids = p;
		w->cap = cap;
	}
	w->ids[w->n++] = (char *)id;
}

/* Timeouts of the call's session: the handshake, then liveness. */
static void
call_timeouts(struct egress *e, struct call *c, uint64_t now)
{
	uint64_t since;
	char     why[128];

	if (!c->sess)
		return;
	if (!c->ready) {
		since = session_opened_us(c->sess);
		if (since > now /* opened during this walk */
		    || now - since < (uint64_t)e->o.handshake_ms * 1000)
			return;
		snprintf(why, sizeof(why), "no handshake within %.1f s",
		    e->o.handshake_ms / 1000.0);
		metric_inc(e->m_hs_timeouts);
		session_fail(c->sess, SESSION_HANDSHAKE_TIMEOUT, why);
		return;
	}
	/* Output is clocked by input: silence counts only while we send. */
	if (!c->up_first_us || c->up_last_us > now
	    || now - c->up_last_us > SENDING_US)
		return;
	since = session_last_rx_us(c->sess);
	if (since < session_ready_us(c->sess))
		since = session_ready_us(c->sess);
	if (since < c->up_first_us)
		since = c->up_first_us;
	if (since > now || now - since < (uint64_t)e->o.liveness_ms * 1000)
		return;
	snprintf(why, sizeof(why),
	    "nothing from the server for %.1f s while we sent audio",
	    (now - since) / 1e6);
	metric_inc(e->m_silent);
	session_fail(c->sess, SESSION_SILENT, why);
}

static void
work_call(const char *id, void *val, void *arg)
{
	struct call   *c = val;
	struct walk   *w = arg;
	struct egress *e = w->e;

	if (c->refused || c->failed) {
		if (w->housekeeping
		    && w->now - c->seen_us >= (uint64_t)e->o.idle_ms * 1000)
			walk_push(w, id);
		return;
	}
	if (c->lost
	    && w->now - c->lost_us >= (uint64_t)e->o.reconnect_ms * 1000) {
		char why[96];
		snprintf(why, sizeof(why),
		    "no new session within the %.1f s reconnect budget",
		    e->o.reconnect_ms / 1000.0);
		call_give_up(c, why);
		return;
	}
	/* A leased server whose previous socket has now gone. */
	if (c->srv >= 0 && !c->sess
	    && !pool_is_closing(e->pool, (size_t)c->srv))
		call_open(c);
	/* A lost call's next try. */
	if (c->lost && c->srv < 0 && !c->sess && w->now >= c->retry_us) {
		metric_inc(e->m_attempts);
		if (!call_acquire(c)) {
			c->retries++;
			c->retry_us = w->now
			    + (uint64_t)backoff_ms(
			          &(struct backoff) {
			              RETRY_BASE_MS, RETRY_MAX_MS },
			          c->retries + 1, backoff_rand(&e->rng))
			        * 1000;
			LOGD(e->o.log, &c->ids,
			    "no server free for a new session yet");
		}
	}
	if (!w->housekeeping)
		return;
	call_timeouts(e, c, w->now);
	if (c->text_len
	    && w->now - c->text_us >= (uint64_t)e->o.text_gap_ms * 1000)
		text_flush(c);
	/* A call whose peers went silent: only while no session is on its
	 * way (prompting can take seconds) and none is being replaced. */
	if ((!c->sess || c->ready) && !c->lost
	    && w->now - c->seen_us >= (uint64_t)e->o.idle_ms * 1000)
		walk_push(w, id);
}

static void
tick_quiet(const char *id, void *val, void *arg)
{
	struct quiet *q = val;
	struct walk  *w = arg;

	if (w->now >= q->until_us + 60u * 1000 * 1000)
		walk_push(w, id);
}

/* Warm sessions that wait too long for their handshake. */
static void
warm_timeouts(struct egress *e, uint64_t now)
{
	for (size_t i = 0; i < e->nservers; i++) {
		struct session *s = e->servers[i].warm;
		char            why[96];

		if (!s || session_state(s) == SESSION_READY
		    || session_opened_us(s) > now
		    || now - session_opened_us(s)
		        < (uint64_t)e->o.handshake_ms * 1000)
			continue;
		snprintf(why, sizeof(why), "no handshake within %.1f s",
		    e->o.handshake_ms / 1000.0);
		metric_inc(e->m_hs_timeouts);
		session_fail(s, SESSION_HANDSHAKE_TIMEOUT, why);
	}
}

static void
work(struct egress *e, bool housekeeping)
{
	struct walk w
	    = { .e = e, .now = mono_us(), .housekeeping = housekeeping };

	if (!e->calls)
		return;
	if (housekeeping) {
		warm_timeouts(e, w.now);
		/* lws closes any socket within seconds; 30 s means a
		 * report was missed. */
		if (w.now > REAP_AFTER_US)
			session_env_reap(e->senv, w.now - REAP_AFTER_US);
	}
	strmap_each(e->calls, work_call, &w);
	for (size_t i = 0; i < w.n; i++) {
		struct call *c = strmap_get(e->calls, w.ids[i]);
		if (c) {
			metric_inc(e->m_expired);
			call_report_end(c, "bridge_error");
			call_free(c, "no bus frame for it lately");
		}
	}
	w.n = 0;
	if (housekeeping) {
		strmap_each(e->quiet, tick_quiet, &w);
		for (size_t i = 0; i < w.n; i++)
			free(strmap_del(e->quiet, w.ids[i]));
	}
	free(w.ids);
	warm_fill(e);
	capacity_update(e, false);
}

static void
kick(lws_sorted_usec_list_t *sul)
{
	struct egress *e = lws_container_of(sul, struct egress, kick);

	e->kick_due_us = 0;
	work(e, false);
}

/* Runs the work soon (due_us: CLOCK_MONOTONIC µs; 0 = now), unless a
 * kick is already due earlier. */
static void
kick_at(struct egress *e, uint64_t due_us)
{
	uint64_t now = mono_us();

	if (due_us < now)
		due_us = now;
	if (e->kick_due_us && e->kick_due_us <= due_us)
		return;
	e->kick_due_us = due_us;
	lws_sul_schedule(
	    e->ctx, 0, &e->kick, kick, (lws_usec_t)(due_us - now) + 1);
}

/* A transcoder (re)connected: one that restarted has forgotten which
 * sessions are live, so it hears session_ready again and starts a new
 * chained Ogg stream for each (frames still queued need no repeat). */
static void
retell_call(const char *id, void *val, void *arg)
{
	struct call *c = val;

	if (c->ready && c->sess && c->told_t) {
		Exo__Frame   f  = EXO__FRAME__INIT;
		Exo__Session s  = EXO__SESSION__INIT;
		s.session       = c->sess_no;
		s.server        = (char *)session_server(c->sess);
		f.body_case     = EXO__FRAME__BODY_SESSION_READY;
		f.session_ready = &s;
		LOGI(c->eg->o.log, &c->ids,
		    "transcoder reconnected: session %u ready again",
		    c->sess_no);
		send_to(c->eg, LINK_T, c, c->id, &f, 0);
	}
	c->told_t = c->ready;
}

static void
find_orphan(const char *id, void *val, void *arg)
{
	struct call *c = val;
	struct walk *w = arg;

	if (c->announced_us < w->e->orphan_from_us)
		walk_push(w, id);
}

/* The grace after ingress left is over: the calls it did not announce
 * again end as if ingress had sent call_stop{bridge_error}. */
static void
end_orphans(struct egress *e, uint64_t now)
{
	struct walk w = { .e = e, .now = now };

	if (!e->orphan_until_us || now < e->orphan_until_us)
		return;
	e->orphan_until_us = 0;
	strmap_each(e->calls, find_orphan, &w);
	for (size_t i = 0; i < w.n; i++) {
		struct call *c = strmap_get(e->calls, w.ids[i]);
		if (!c)
			continue;
		LOGW(e->o.log, &c->ids,
		    "ingress did not announce the call again within %.1f s: "
		    "ending it (bridge_error)",
		    e->o.ingress_grace_ms / 1000.0);
		metric_inc(e->m_orphaned);
		quiet_set(e, c->id, now + QUIET_AFTER_STOP_US);
		if (!call_stt_finish(c, "bridge_error"))
			call_report_end(c, "bridge_error");
		call_free(c, "ingress gone");
	}
	free(w.ids);
}

/* Ingress left, or a (new) ingress connected: every call must be
 * announced again after since_us. A call_start handled since the tick
 * last looked may already come from the new one. */
static void
ingress_changed(struct egress *e, uint64_t now)
{
	bool fresh = bus_take_new_peer(e->links[LINK_I].bus);
	int  peers = bus_peers(e->links[LINK_I].bus);
	bool left  = e->i_peers && !peers;

	if (fresh)
		capacity_update(e, true);
	if (left)
		LOGW(e->o.log, NULL, "bus control: ingress disconnected");
	if ((fresh || left) && strmap_count(e->calls)) {
		e->orphan_from_us = e->i_check_us;
		e->orphan_until_us
		    = e->i_check_us + (uint64_t)e->o.ingress_grace_ms * 1000;
		LOGI(e->o.log, NULL,
		    "ingress %s: %zu call(s) must be announced again within "
		    "%.1f s or end",
		    fresh ? "(re)connected" : "left", strmap_count(e->calls),
		    e->o.ingress_grace_ms / 1000.0);
	}
	e->i_peers    = peers;
	e->i_check_us = now;
	end_orphans(e, now);
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct egress *e = lws_container_of(sul, struct egress, tick);

	work(e, true);
	memtrim_maybe(mono_us());
	if (bus_take_new_peer(e->links[LINK_T].bus))
		strmap_each(e->calls, retell_call, NULL);
	ingress_changed(e, mono_us());
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, TICK_US);
}

/* ------------------------------------------------------------------ */
/* Settings */

/* Calls fn(url, arg) for each non-empty URL of a comma-separated list. */
static int
each_url(const char *urls, int (*fn)(const char *url, void *arg), void *arg,
    char *err, size_t errlen)
{
	char one[PPURL_PATH_MAX + PPURL_HOST_MAX];
	int  rc;

	for (const char *p = urls; p && *p;) {
		size_t n = strcspn(p, ",");
		if (n >= sizeof(one)) {
			snprintf(err, errlen,
			    "a PersonaPlex URL is longer than "
			    "%zu bytes",
			    sizeof(one) - 1);
			return EINVAL;
		}
		memcpy(one, p, n);
		one[n] = '\0';
		p += n + (p[n] == ',');
		/* Spaces around commas are not part of a URL. */
		{
			char *a = one, *z = one + strlen(one);
			while (*a == ' ' || *a == '\t')
				a++;
			while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
				*--z = '\0';
			if (*a && (rc = fn(a, arg)))
				return rc;
		}
	}
	return 0;
}

struct servers {
	struct ppurl *u;
	size_t        n;
	char         *err;
	size_t        errlen;
};

static int
add_url(const char *url, void *arg)
{
	struct servers *k = arg;
	struct ppurl   *p = realloc(k->u, (k->n + 1) * sizeof(*p));

	if (!p)
		return ENOMEM;
	k->u = p;
	if (ppurl_parse(&k->u[k->n], url, k->err, k->errlen))
		return EINVAL;
	k->n++;
	return 0;
}

static int
parse_urls(const char *urls, struct servers *k)
{
	return each_url(urls, add_url, k, k->err, k->errlen);
}

int
egress_check_urls(const char *urls, char *err, size_t errlen)
{
	struct servers k  = { .err = err, .errlen = errlen };
	int            rc = parse_urls(urls, &k);

	free(k.u);
	return rc;
}

/* The personas, loaded and checked against the servers. */
static int
load_personas(const struct egress_opts *o, const struct servers *k,
    struct personas **out, char *err, size_t errlen)
{
	int rc = personas_load(
	    out, o->personas, o->voice_prompt, o->text_prompt, err, errlen);

	if (rc)
		return rc;
	if ((rc = personas_check(*out, k->u, k->n, err, errlen))) {
		personas_free(*out);
		*out = NULL;
		return EINVAL;
	}
	return 0;
}

int
egress_check_opts(const struct egress_opts *o, char *err, size_t errlen)
{
	struct servers   k  = { .err = err, .errlen = errlen };
	struct personas *ps = NULL;
	int              rc;

	/* lws would only log a CA file it cannot load, then fail every
	 * wss:// connection: refuse it at start instead. */
	if (o->ca_file && access(o->ca_file, R_OK) != 0) {
		snprintf(err, errlen,
		    "EXOPLEX_PERSONAPLEX_CA (--personaplex-ca): cannot read "
		    "'%s': %s",
		    o->ca_file, strerror(errno));
		return EINVAL;
	}
	if ((rc = parse_urls(o->urls, &k)) == 0)
		rc = load_personas(o, &k, &ps, err, errlen);
	personas_free(ps);
	free(k.u);
	return rc ? EINVAL : 0;
}

/* A label value: quotes and backslashes escaped. */
static void
label(char *dst, size_t len, const char *key, const char *val)
{
	size_t o = (size_t)snprintf(dst, len, "%s=\"", key);

	for (; *val && o + 3 < len; val++) {
		if (*val == '"' || *val == '\\')
			dst[o++] = '\\';
		dst[o++] = *val;
	}
	snprintf(dst + o, len - o, "\"");
}

static int
setup_servers(struct egress *e, const struct servers *k)
{
	char l[sizeof(e->servers[0].url.base) * 2 + 16];

	e->nservers = k->n;
	if (!(e->servers = calloc(k->n ? k->n : 1, sizeof(*e->servers))))
		return ENOMEM;
	for (size_t i = 0; i < k->n; i++) {
		struct server *sv = &e->servers[i];
		sv->eg            = e;
		sv->idx           = i;
		sv->url           = k->u[i];
		label(l, sizeof(l), "server", sv->url.base);
		sv->m_state
		    = metrics_gauge(e->o.metrics, "personaplex_server_state",
		        "What each PersonaPlex server is doing: 0 free, 1 "
		        "warming, "
		        "2 warm, 3 busy, 4 closing, 5 failed (in backoff).",
		        l);
		sv->m_failures = metrics_counter(e->o.metrics,
		    "personaplex_server_failures_total",
		    "PersonaPlex server failures (no connection, no handshake "
		    "in time, silence), each followed by a backoff.",
		    l);
	}
	for (int v = 0; v < POOL_VIEWS; v++) {
		snprintf(l, sizeof(l), "state=\"%s\"",
		    pool_view_name((enum pool_view)v));
		e->m_view[v]
		    = metrics_gauge(e->o.metrics, "personaplex_servers",
		        "PersonaPlex servers by state (free and warm ones can "
		        "take a call).",
		        l);
	}
	return 0;
}

static void
setup_metrics(struct egress *e)
{
	struct metrics *m = e->o.metrics;

	e->m_calls = metrics_gauge(
	    m, "calls_active", "Calls known to this process.", NULL);
	e->m_unknown  = metrics_counter(m, "egress_unknown_call_frames_total",
	     "Bus frames for a call egress does not know (dropped).", NULL);
	e->m_announce = metrics_counter(m, "egress_announces_total",
	    "announce frames sent to ingress for unknown calls.", NULL);
	e->m_hangup   = metrics_counter(m, "egress_hangups_total",
	      "hangup frames sent to ingress (no capacity, or PersonaPlex "
	        "failed for a call).",
	      NULL);
	e->m_drop_not_ready
	    = metrics_counter(m, "egress_uplink_pages_dropped_total",
	        "Uplink Ogg pages not sent, by why.", "why=\"not_ready\"");
	e->m_drop_stale
	    = metrics_counter(m, "egress_uplink_pages_dropped_total",
	        "Uplink Ogg pages not sent, by why.", "why=\"stale_session\"");
	e->m_utterances  = metrics_counter(m, "egress_utterances_total",
	     "Agent utterances assembled from text pieces (agent_text "
	      "frames).",
	     NULL);
	e->m_expired     = metrics_counter(m, "egress_calls_expired_total",
	        "Calls dropped after their peers went silent about them.", NULL);
	e->m_orphaned    = metrics_counter(m, "egress_calls_orphaned_total",
	       "Calls ended because ingress left and did not announce them again "
	          "in time.",
	       NULL);
	e->m_no_capacity = metrics_counter(m, "egress_calls_refused_total",
	    "Calls egress turned away, by reason.", "reason=\"no_capacity\"");
	e->m_refused
	    = metrics_counter(m, "egress_calls_refused_by_ingress_total",
	        "call_start frames that said ingress refused the call.", NULL);
	e->m_reconnects = metrics_counter(m, "egress_reconnects_total",
	    "Sessions replaced during a call (the new one became ready).",
	    NULL);
	e->m_attempts   = metrics_counter(m, "egress_reconnect_attempts_total",
	      "Tries to find a server for a call that lost its session.", NULL);
	e->m_gave_up    = metrics_counter(m, "egress_reconnect_gave_up_total",
	       "Calls hung up because no session could be had in time.", NULL);
	e->m_warm_opened = metrics_counter(
	    m, "egress_warm_sessions_total", "Warm sessions opened.", NULL);
	e->m_warm_taken
	    = metrics_counter(m, "egress_warm_sessions_taken_total",
	        "Warm sessions a call took over.", NULL);
	e->m_hs_timeouts
	    = metrics_counter(m, "egress_handshake_timeouts_total",
	        "Sessions closed for want of a 0x00 handshake in time.", NULL);
	e->m_silent = metrics_counter(m, "egress_silent_sessions_total",
	    "Sessions closed because the server sent nothing while we sent "
	    "audio.",
	    NULL);
	e->m_persona[PERSONA_BY_NAME] = metrics_counter(m,
	    "egress_persona_chosen_total",
	    "How each call's persona was chosen.", "by=\"custom_parameter\"");
	e->m_persona[PERSONA_BY_NUMBER]
	    = metrics_counter(m, "egress_persona_chosen_total",
	        "How each call's persona was chosen.", "by=\"number\"");
	e->m_persona[PERSONA_BY_DEFAULT]
	    = metrics_counter(m, "egress_persona_chosen_total",
	        "How each call's persona was chosen.", "by=\"default\"");
	e->m_persona_unknown
	    = metrics_counter(m, "egress_persona_unknown_total",
	        "Calls asking for a persona that does not exist.", NULL);
	e->m_prompt_fallback
	    = metrics_counter(m, "egress_persona_prompt_fallback_total",
	        "Calls whose filled-in prompt was too long (placeholders left "
	        "empty).",
	        NULL);
	e->m_mode[0] = metrics_counter(m, "egress_calls_by_mode_total",
	    "Calls by the mode decided for them.", "mode=\"agent\"");
	e->m_mode[1] = metrics_counter(m, "egress_calls_by_mode_total",
	    "Calls by the mode decided for them.", "mode=\"transcribe\"");
	e->m_no_stt  = metrics_counter(m, "egress_calls_refused_total",
	     "Calls egress turned away, by reason.", "reason=\"no_stt\"");
	e->m_clears  = metrics_counter(m, "egress_clears_total",
	     "clear frames sent to ingress (stale agent audio after a "
	      "reconnect).",
	     NULL);
}

/* Caller transcripts: on when ELEVENLABS_API_KEY is set (said once). */
static int
setup_stt(struct egress *e, char *err, size_t errlen)
{
	struct stt_env_opts so = e->o.stt;
	int                 rc;

	if (!so.api_key || !*so.api_key) {
		LOGI(e->o.log, NULL,
		    "STT off: ELEVENLABS_API_KEY is not set (no caller "
		    "transcripts)");
		return 0;
	}
	so.context  = e->ctx;
	so.vhost    = e->vh;
	so.protocol = PROTO_STT;
	so.log      = e->o.log;
	so.metrics  = e->o.metrics;
	if ((rc = stt_env_alloc(&e->stt, &so, err, errlen))) {
		if (rc == EINVAL) {
			char why[256];
			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen,
			    "EXOPLEX_STT_URL (--stt-url): %s", why);
		}
		return rc;
	}
	if (so.url && !strncasecmp(so.url, "ws://", 5))
		LOGW(e->o.log, NULL,
		    "EXOPLEX_STT_URL is ws://: ELEVENLABS_API_KEY and the "
		    "callers' audio travel unencrypted; use wss:// outside "
		    "tests");
	LOGI(e->o.log, NULL,
	    "STT on: caller transcripts by %s at %s (language %s, VAD "
	    "silence %g s)",
	    so.model ? so.model : STT_DEFAULT_MODEL,
	    so.url ? so.url : STT_DEFAULT_URL,
	    !so.language       ? "en"
	        : *so.language ? so.language
	                       : "auto",
	    so.vad_silence_s ? so.vad_silence_s : 0.8);
	return 0;
}

/* Stopping with calls whose last transcript has not come: their end is
 * reported without it. */
static void
tails_end(struct egress *e)
{
	while (e->tails) {
		struct tail *tl = e->tails;
		hooks_call_end(tl->hc, tl->reason, &tl->k);
		tail_free(tl);
	}
}

int
egress_alloc(
    struct egress **out, const struct egress_opts *o, char *err, size_t errlen)
{
	struct lws_context_creation_info ci;
	struct session_env_opts          so;
	struct servers                   k = { .err = err, .errlen = errlen };
	struct egress                   *e = calloc(1, sizeof(*e));
	const struct persona            *d;
	int                              rc;

	if (!e)
		return ENOMEM;
	e->o = *o;
	if (!e->o.text_gap_ms)
		e->o.text_gap_ms = 600;
	if (!e->o.idle_ms)
		e->o.idle_ms = 30000;
	if (!e->o.ingress_grace_ms)
		e->o.ingress_grace_ms = 3000;
	e->i_check_us = mono_us();
	if (!e->o.handshake_ms)
		e->o.handshake_ms = 15000;
	if (!e->o.reconnect_ms)
		e->o.reconnect_ms = 10000;
	if (!e->o.liveness_ms)
		e->o.liveness_ms = 10000;
	if (!e->o.backoff_ms)
		e->o.backoff_ms = 1000;
	if (!e->o.backoff_max_ms)
		e->o.backoff_max_ms = 30000;
	if (!e->o.voice_prompt)
		e->o.voice_prompt = "";
	if (!e->o.text_prompt)
		e->o.text_prompt = "";
	e->renumber      = (uint32_t)(wall_us() / 1000000);
	e->default_mode  = mode_parse(o->default_mode);
	e->rng           = backoff_seed(o->seed ? o->seed : wall_us());
	e->cap_free_sent = -1;
	err[0]           = '\0';
	if ((rc = parse_urls(e->o.urls, &k))
	    || (rc = load_personas(&e->o, &k, &e->personas, err, errlen))) {
		rc = rc == ENOMEM ? ENOMEM : EINVAL;
		goto out;
	}
	if (pool_alloc(&e->pool, k.n,
	        &(struct backoff) { e->o.backoff_ms, e->o.backoff_max_ms },
	        backoff_rand(&e->rng))
	    || strmap_alloc(&e->calls) || strmap_alloc(&e->quiet)
	    || !(e->target = malloc(PPURL_URL_MAX + 1))) {
		rc = ENOMEM;
		goto out;
	}
	setup_metrics(e);
	if ((rc = setup_servers(e, &k)))
		goto out;
	atomic_store(&e->cap_total, (unsigned)e->nservers);
	d = personas_default(e->personas);
	if (!d->templated)
		e->warm_target_text = (char *)d->text;
	if (e->o.warm > e->nservers)
		e->o.warm = (unsigned)e->nservers;

	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS
	    | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.port = CONTEXT_PORT_NO_LISTEN;
	if ((rc = evloop_create(&e->loop, &ci))) {
		LOGE(o->log, NULL, "could not create the lws context");
		goto out;
	}
	e->ctx = evloop_lws(e->loop);
	memset(&ci, 0, sizeof(ci));
	ci.options    = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.port       = CONTEXT_PORT_NO_LISTEN;
	ci.vhost_name = "egress";
	ci.protocols  = protocols;
	/* lws also loads the OS CA store; naming a bundle here spares a
	 * misleading "Unable to load SSL Client certs" line at start. */
	ci.client_ssl_ca_filepath = o->ca_file ? o->ca_file
	    : access(SYSTEM_CA, R_OK) == 0     ? SYSTEM_CA
	                                       : NULL;
	e->vh                     = lws_create_vhost(e->ctx, &ci);
	if (!e->vh) {
		LOGE(o->log, NULL, "could not create the lws client vhost%s%s",
		    o->ca_file ? " with CA file " : "",
		    o->ca_file ? o->ca_file : "");
		rc = EINVAL;
		snprintf(err, errlen, "could not set up TLS (CA file %s)",
		    o->ca_file ? o->ca_file : "(system)");
		goto out;
	}

	memset(&so, 0, sizeof(so));
	so.context   = e->ctx;
	so.vhost     = e->vh;
	so.protocol  = PROTO_PP;
	so.log       = o->log;
	so.metrics   = o->metrics;
	so.queue_max = o->uplink_queue;
	so.insecure  = o->insecure;
	so.gone      = on_gone;
	so.gone_arg  = e;
	if ((rc = session_env_alloc(&e->senv, &so)))
		goto out;
	if ((rc = setup_stt(e, err, errlen)))
		goto out;

	e->links[LINK_T]
	    = (struct link) { e, o->to_transcoder, "egress", LINK_T };
	e->links[LINK_I]
	    = (struct link) { e, o->to_ingress, "control", LINK_I };
	for (int i = 0; i < LINKS; i++) {
		if (!bus_lws_adopt(
		        e->links[i].bus, e->vh, PROTO_BUS, &e->links[i])) {
			LOGE(o->log, NULL,
			    "bus %s: could not adopt its fd "
			    "into the lws loop",
			    e->links[i].name);
			rc = EIO;
			goto out;
		}
	}
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, TICK_US);

	{
		enum mode_by by;
		enum mode    m
		    = mode_choose(&(struct mode_in) { .dflt = e->default_mode,
		                      .servers              = e->nservers },
		        &by);
		if (!e->nservers && m == MODE_AGENT)
			LOGE(o->log, NULL,
			    "no PersonaPlex server configured "
			    "(EXOPLEX_PERSONAPLEX_URLS / --personaplex-urls): "
			    "every agent call will be refused (no_capacity)");
		else if (!e->nservers)
			LOGI(o->log, NULL,
			    "no PersonaPlex server configured: calls are "
			    "transcribed only (agent assist) unless they ask "
			    "for an agent");
		if (m == MODE_TRANSCRIBE && !e->stt)
			LOGE(o->log, NULL,
			    "calls default to transcribe, but STT is off "
			    "(ELEVENLABS_API_KEY): they will be refused "
			    "(bridge_error, stt_not_configured)");
		LOGI(o->log, NULL,
		    "calls default to mode %s (%s); custom_parameters.mode "
		    "and a persona's mode come first",
		    mode_name(m),
		    by == MODE_BY_DEFAULT ? "EXOPLEX_DEFAULT_MODE"
		        : e->nservers     ? "built in"
		                          : "no PersonaPlex server");
	}
	for (size_t i = 0; i < e->nservers; i++)
		LOGI(o->log, NULL, "PersonaPlex server %zu: %s", i + 1,
		    e->servers[i].url.base);
	if (o->insecure)
		LOGW(o->log, NULL,
		    "wss:// certificates are NOT checked "
		    "(EXOPLEX_PERSONAPLEX_INSECURE): anyone on the path can "
		    "impersonate a PersonaPlex server; use "
		    "EXOPLEX_PERSONAPLEX_CA instead outside private links");
	for (size_t i = 0; i < personas_count(e->personas); i++) {
		const struct persona *p = personas_at(e->personas, i);
		LOGI(o->log, NULL,
		    "persona %s (%s): voice %s, text prompt of %zu bytes%s",
		    p->name, p->source, p->voice, strlen(p->text),
		    p->templated ? " with placeholders" : "");
	}
	if (e->o.warm && !e->warm_target_text)
		LOGW(o->log, NULL,
		    "EXOPLEX_PERSONAPLEX_WARM=%u ignored: the default "
		    "persona's prompt has placeholders, so no session can be "
		    "prepared before a call",
		    e->o.warm);
	else if (e->o.warm)
		LOGI(o->log, NULL,
		    "keeping %u server(s) warm with the default persona",
		    e->o.warm);
	LOGI(o->log, NULL,
	    "handshake timeout %.1f s, reconnect budget %.1f s, liveness "
	    "%.1f s",
	    e->o.handshake_ms / 1000.0, e->o.reconnect_ms / 1000.0,
	    e->o.liveness_ms / 1000.0);
	atomic_store(&e->running, true);
	warm_fill(e);
	capacity_update(e, true);
	free(k.u);
	*out = e;
	return 0;
out:
	free(k.u);
	egress_free(e);
	return rc;
}

static void
free_call_cb(const char *id, void *val, void *arg)
{
	struct call *c = val;

	stt_close(c->stt);
	if (c->sess)
		session_close(c->sess, "egress stopping");
	/* The call goes on: a restarted egress continues its events. */
	hooks_call_close(c->hc);
	free(c->text);
	free(c->id);
	free(c);
}

static void
free_quiet_cb(const char *id, void *val, void *arg)
{
	free(val);
}

void
egress_free(struct egress *e)
{
	if (!e)
		return;
	atomic_store(&e->running, false);
	if (e->ctx) {
		lws_sul_cancel(&e->tick);
		lws_sul_cancel(&e->kick);
	}
	for (size_t i = 0; e->servers && i < e->nservers; i++) {
		if (e->servers[i].warm)
			session_close(e->servers[i].warm, "egress stopping");
		e->servers[i].warm = NULL;
		warm_drop_pre(&e->servers[i]);
	}
	if (e->calls) {
		strmap_each(e->calls, free_call_cb, NULL);
		strmap_free(e->calls);
		e->calls = NULL;
	}
	/* A moment for the close frames, so each server's lock is freed at
	 * once rather than when it notices the drop; stopped calls' last
	 * transcripts get the STT close wait. */
	for (uint64_t t = mono_us() + 300000; e->senv && e->ctx
	     && session_env_count(e->senv) && mono_us() < t;) {
		evloop_turn(e->loop, false);
		usleep(2000);
	}
	for (uint64_t t = mono_us() + 2500000;
	     e->tails && e->ctx && mono_us() < t;) {
		evloop_turn(e->loop, false);
		usleep(2000);
	}
	tails_end(e);
	stt_env_free(e->stt);
	if (e->quiet) {
		strmap_each(e->quiet, free_quiet_cb, NULL);
		strmap_free(e->quiet);
	}
	session_env_free(e->senv);
	evloop_destroy(e->loop);
	personas_free(e->personas);
	pool_free(e->pool);
	free(e->servers);
	free(e->target);
	free(e);
}

void
egress_service(struct egress *e, bool wait)
{
	evloop_turn(e->loop, wait);
}

void
egress_wake_in(struct egress *e, int64_t us)
{
	evloop_wake_in(e->loop, us);
}

size_t
egress_calls(const struct egress *e)
{
	return strmap_count(e->calls);
}

unsigned
egress_servers_free(struct egress *e)
{
	return atomic_load(&e->cap_free);
}

int
egress_ready(void *arg, char *detail, size_t len)
{
	struct egress *e  = arg;
	bool           up = atomic_load(&e->running);
	char           hk[192], st[160] = "stt off";

	/* A frontend or STT that is down is a detail: never unready. */
	hooks_state(e->o.hooks, hk, sizeof(hk));
	if (e->stt)
		stt_env_describe(e->stt, st, sizeof(st));
	snprintf(detail, len,
	    "%s; servers=%u free=%u transcoder=%d ingress=%d; %s; %s",
	    up ? "running" : "starting", atomic_load(&e->cap_total),
	    atomic_load(&e->cap_free), bus_peers(e->links[LINK_T].bus),
	    bus_peers(e->links[LINK_I].bus), hk, st);
	return up;
}
