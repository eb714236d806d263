/*
 * egress.c - calls, the bus, and their PersonaPlex sessions.
 *
 * A call lives from its call_start until its call_stop, or until the bus
 * has been silent about it for idle_ms while nothing is pending on the
 * PersonaPlex side (its ingress or transcoder went away without a word).
 * Frames for a call we do not know ask ingress for an announce (at most
 * once a second per call id) and are dropped; for a few seconds after a
 * call_stop its late frames are dropped quietly instead.
 */
#include "egress.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "bus.h"
#include "bus_lws.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "ppurl.h"
#include "session.h"
#include "strmap.h"

#define PROTO_PP "exoplex-personaplex"
#define PROTO_BUS "exoplex-bus"
#define TICK_US (100 * 1000)
#define TEXT_MAX 2048
#define SID_MAX 96
#define ANNOUNCE_EVERY_US (1000 * 1000)
#define QUIET_AFTER_STOP_US (5 * 1000 * 1000)
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"
#define QUIET_MAX 4096 /* unknown call ids remembered at once */

enum { LINK_T, LINK_I, LINKS }; /* to transcoder ("egress"), to ingress */

struct call {
	struct egress  *eg;
	char           *id; /* stream_sid, the bus call_id */
	char            call_sid[SID_MAX];
	struct log_call ids;
	struct session *sess;
	uint32_t        sess_no; /* the current (or last) session's number */
	bool            ready; /* sess has had its handshake */
	bool            failed; /* hangup sent; waiting for call_stop */
	bool            told_t; /* session_ready went to a live transcoder */
	uint64_t        seq[LINKS];
	uint64_t        seen_us;
	uint64_t        started_us;
	uint64_t        up_sent, up_dropped, down_pages;
	unsigned        sessions; /* opened for this call */
	char            text[TEXT_MAX];
	size_t          text_len;
	uint64_t        text_us;
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
	struct lws_context    *ctx;
	struct lws_vhost      *vh;
	struct session_env    *senv;
	struct ppurl          *servers;
	char                 **targets; /* request path per server */
	size_t                 nservers;
	struct strmap         *calls;
	struct strmap         *quiet;
	struct link            links[LINKS];
	lws_sorted_usec_list_t tick;
	uint32_t               renumber; /* see on_call_start */
	atomic_bool            running;
	struct metric         *m_calls, *m_unknown, *m_announce, *m_hangup,
	    *m_drop_not_ready, *m_drop_stale, *m_utterances, *m_expired;
};

static const struct session_cb call_session_cb;

static void
text_flush(struct call *c)
{
	const char *t = c->text;
	size_t      n = c->text_len;

	while (n && *t == ' ')
		t++, n--;
	if (n) {
		LOGI(c->eg->o.log, &c->ids, "agent (session %u): %.*s",
		    c->sess_no, (int)n, t);
		metric_inc(c->eg->m_utterances);
	}
	c->text_len = 0;
}

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

/* The call cannot have its agent: tell both peers and ask ingress to end
 * the call. (Reconnecting to another server comes with the pool.) */
static void
call_fail(struct call *c, const char *reason, const char *server)
{
	text_flush(c);
	c->sess  = NULL;
	c->ready = false;
	if (c->sess_no)
		send_session(c, false, server, reason);
	if (!c->failed) {
		c->failed = true;
		LOGE(c->eg->o.log, &c->ids,
		    "no PersonaPlex agent for this call (%s): asking ingress "
		    "to hang up (persona_failed)",
		    reason);
		send_hangup(c, "persona_failed");
	}
}

static void
call_connect(struct call *c)
{
	struct egress *e = c->eg;
	int            rc;

	if (!e->nservers) {
		LOGE(e->o.log, &c->ids,
		    "no PersonaPlex server configured "
		    "(EXOPLEX_PERSONAPLEX_URLS)");
		call_fail(c, "no_server", NULL);
		return;
	}
	c->sess_no++;
	c->sessions++;
	c->ready = false;
	rc = session_open(&c->sess, e->senv, &e->servers[0], e->targets[0],
	    &c->ids, &call_session_cb, c);
	if (rc) {
		c->sess = NULL;
		call_fail(c, SESSION_CONNECT_FAILED, e->servers[0].base);
	}
}

static void
on_handshake(void *owner, struct session *s)
{
	struct call *c = owner;

	c->ready = true;
	LOGI(c->eg->o.log, &c->ids, "session %u ready on %s", c->sess_no,
	    session_server(s));
	send_session(c, true, session_server(s), NULL);
}

static void
on_audio(void *owner, struct session *s, const uint8_t *ogg, size_t len,
    uint64_t rx_us)
{
	struct call *c = owner;
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Ogg     o = EXO__OGG__INIT;

	o.session      = c->sess_no;
	o.data.data    = (uint8_t *)ogg;
	o.data.len     = len;
	f.body_case    = EXO__FRAME__BODY_DOWNLINK_OGG;
	f.downlink_ogg = &o;
	send_to(c->eg, LINK_T, c, c->id, &f, rx_us);
	c->down_pages++;
}

static void
on_text(void *owner, struct session *s, const char *utf8, size_t len)
{
	struct call *c = owner;

	LOGD(
	    c->eg->o.log, &c->ids, "agent text piece: '%.*s'", (int)len, utf8);
	if (c->text_len + len > sizeof(c->text))
		text_flush(c);
	for (size_t i = 0; i < len && c->text_len < sizeof(c->text); i++) {
		unsigned char ch = (unsigned char)utf8[i];
		/* One utterance, one log line. */
		c->text[c->text_len++] = ch < 0x20 || ch == 0x7f ? ' ' : ch;
	}
	c->text_us = mono_us();
}

static void
on_ended(
    void *owner, struct session *s, const char *reason, const char *detail)
{
	struct call *c = owner;

	call_fail(c, reason, session_server(s));
}

static const struct session_cb call_session_cb = {
	.handshake = on_handshake,
	.audio     = on_audio,
	.text      = on_text,
	.ended     = on_ended,
};

static void
call_free(struct call *c, const char *why)
{
	struct egress *e = c->eg;

	text_flush(c);
	if (c->sess)
		session_close(c->sess, why);
	LOGI(e->o.log, &c->ids,
	    "call gone (%s) after %.1f s: %u session(s), %llu pages up "
	    "(%llu dropped), %llu pages down",
	    why, (double)(mono_us() - c->started_us) / 1e6, c->sessions,
	    (unsigned long long)c->up_sent, (unsigned long long)c->up_dropped,
	    (unsigned long long)c->down_pages);
	strmap_del(e->calls, c->id);
	metric_set(e->m_calls, (int64_t)strmap_count(e->calls));
	free(c->id);
	free(c);
}

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

static void
on_call_start(struct egress *e, const Exo__Frame *f)
{
	const Exo__CallStart *cs = f->call_start;
	struct call          *c  = strmap_get(e->calls, f->call_id);
	struct quiet         *q;

	if (c) {
		/* Idempotent: a known call is only refreshed. */
		c->seen_us = mono_us();
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
	c->eg = e;
	snprintf(c->call_sid, sizeof(c->call_sid), "%s",
	    cs->call_sid ? cs->call_sid : "");
	c->ids.call_sid   = c->call_sid;
	c->ids.stream_sid = c->id;
	c->seen_us = c->started_us = mono_us();
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
	metric_set(e->m_calls, (int64_t)strmap_count(e->calls));
	LOGI(e->o.log, &c->ids, "call started%s (from %s to %s, %u Hz)",
	    cs->reannounce ? " (reannounced)" : "", cs->from ? cs->from : "",
	    cs->to ? cs->to : "", cs->sample_rate);
	call_connect(c);
}

static void
on_uplink(struct egress *e, struct call *c, const Exo__Ogg *o)
{
	int rc;

	if (!c->sess || !c->ready || o->session != c->sess_no) {
		/* Not for the live, handshaken session: never sent. */
		metric_inc(o->session != c->sess_no ? e->m_drop_stale
		                                    : e->m_drop_not_ready);
		c->up_dropped++;
		return;
	}
	rc = session_send_ogg(c->sess, o->data.data, o->data.len, o->header);
	if (rc == 0 || rc == ENOBUFS)
		c->up_sent++;
	if (rc)
		c->up_dropped++;
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
			call_free(c, why);
		}
		return;
	case EXO__FRAME__BODY_UPLINK_OGG:
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
	struct link   *l = lws_get_opaque_user_data(wsi);
	Exo__Envelope *env;
	int            rc;

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (!l)
			return 0;
		while ((rc = bus_recv(l->bus, &env)) != EAGAIN) {
			if (rc)
				continue; /* logged and counted by the bus */
			for (size_t i = 0; i < env->n_frames; i++) {
				bus_count_in(l->bus, env->frames[i]);
				dispatch(l->eg, l, env->frames[i]);
			}
			bus_envelope_free(env);
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
	{ .name = NULL },
};

struct walk {
	struct egress *e;
	uint64_t       now;
	char         **ids;
	size_t         n, cap;
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

static void
tick_call(const char *id, void *val, void *arg)
{
	struct call *c = val;
	struct walk *w = arg;

	if (c->text_len
	    && w->now - c->text_us >= (uint64_t)w->e->o.text_gap_ms * 1000)
		text_flush(c);
	/* A call whose peers went silent: only while no session is still
	 * on its way up (prompting can take seconds). */
	if ((!c->sess || c->ready)
	    && w->now - c->seen_us >= (uint64_t)w->e->o.idle_ms * 1000)
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

/* The one shared tick: utterance gaps, idle calls, old quiet entries.
 * (The pool's handshake and liveness timeouts belong here too.) */
static void
tick(lws_sorted_usec_list_t *sul)
{
	struct egress *e = lws_container_of(sul, struct egress, tick);
	struct walk    w = { .e = e, .now = mono_us() };

	strmap_each(e->calls, tick_call, &w);
	for (size_t i = 0; i < w.n; i++) {
		struct call *c = strmap_get(e->calls, w.ids[i]);
		if (c) {
			metric_inc(e->m_expired);
			call_free(c, "no bus frame for it lately");
		}
	}
	w.n = 0;
	strmap_each(e->quiet, tick_quiet, &w);
	for (size_t i = 0; i < w.n; i++)
		free(strmap_del(e->quiet, w.ids[i]));
	free(w.ids);

	if (bus_take_new_peer(e->links[LINK_T].bus))
		strmap_each(e->calls, retell_call, NULL);
	lws_sul_schedule(e->ctx, 0, &e->tick, tick, TICK_US);
}

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
		if (n && (rc = fn(one, arg)))
			return rc;
	}
	return 0;
}

struct check {
	const struct egress_opts *o; /* NULL: URLs only */
	struct egress            *e; /* add_server: where servers go */
	char                     *err;
	size_t                    errlen;
};

static int
check_one(const char *url, void *arg)
{
	struct check *k = arg;
	struct ppurl  u;
	char         *buf;
	int           rc = 0;

	if (ppurl_parse(&u, url, k->err, k->errlen))
		return EINVAL;
	if (!k->o)
		return 0;
	if (!(buf = malloc(PPURL_URL_MAX + 1)))
		return ENOMEM;
	if (ppurl_target(&u, k->o->voice_prompt, k->o->text_prompt, 0, buf,
	        PPURL_URL_MAX + 1, k->err, k->errlen))
		rc = EINVAL;
	free(buf);
	return rc;
}

int
egress_check_urls(const char *urls, char *err, size_t errlen)
{
	struct check k = { .err = err, .errlen = errlen };
	return each_url(urls, check_one, &k, err, errlen);
}

int
egress_check_opts(const struct egress_opts *o, char *err, size_t errlen)
{
	struct check k = { .o = o, .err = err, .errlen = errlen };

	/* lws would only log a CA file it cannot load, then fail every
	 * wss:// connection: refuse it at start instead. */
	if (o->ca_file && access(o->ca_file, R_OK) != 0) {
		snprintf(err, errlen,
		    "EXOPLEX_PERSONAPLEX_CA (--personaplex-ca): cannot read "
		    "'%s': %s",
		    o->ca_file, strerror(errno));
		return EINVAL;
	}
	return each_url(o->urls, check_one, &k, err, errlen);
}

static int
add_server(const char *url, void *arg)
{
	struct check  *k = arg;
	struct egress *e = k->e;
	void          *p;
	char          *t;

	p = realloc(e->servers, (e->nservers + 1) * sizeof(*e->servers));
	if (!p)
		return ENOMEM;
	e->servers = p;
	p = realloc(e->targets, (e->nservers + 1) * sizeof(*e->targets));
	if (!p)
		return ENOMEM;
	e->targets = p;
	if (!(t = malloc(PPURL_URL_MAX + 1)))
		return ENOMEM;
	if (ppurl_parse(&e->servers[e->nservers], url, k->err, k->errlen)
	    || ppurl_target(&e->servers[e->nservers], e->o.voice_prompt,
	        e->o.text_prompt, 0, t, PPURL_URL_MAX + 1, k->err,
	        k->errlen)) {
		free(t);
		return EINVAL;
	}
	e->targets[e->nservers++] = t;
	return 0;
}

static int
parse_servers(struct egress *e, char *err, size_t errlen)
{
	struct check k = { .e = e, .err = err, .errlen = errlen };
	return each_url(e->o.urls, add_server, &k, err, errlen);
}

int
egress_alloc(
    struct egress **out, const struct egress_opts *o, char *err, size_t errlen)
{
	struct lws_context_creation_info ci;
	struct session_env_opts          so;
	struct egress                   *e = calloc(1, sizeof(*e));
	int                              rc;

	if (!e)
		return ENOMEM;
	e->o = *o;
	if (!e->o.text_gap_ms)
		e->o.text_gap_ms = 600;
	if (!e->o.idle_ms)
		e->o.idle_ms = 30000;
	if (!e->o.voice_prompt)
		e->o.voice_prompt = "";
	if (!e->o.text_prompt)
		e->o.text_prompt = "";
	e->renumber = (uint32_t)(wall_us() / 1000000);
	err[0]      = '\0';
	if ((rc = parse_servers(e, err, errlen)))
		goto out;
	if (strmap_alloc(&e->calls) || strmap_alloc(&e->quiet)) {
		rc = ENOMEM;
		goto out;
	}

	e->m_calls = metrics_gauge(
	    o->metrics, "calls_active", "Calls known to this process.", NULL);
	e->m_unknown
	    = metrics_counter(o->metrics, "egress_unknown_call_frames_total",
	        "Bus frames for a call egress does not know (dropped).", NULL);
	e->m_announce = metrics_counter(o->metrics, "egress_announces_total",
	    "announce frames sent to ingress for unknown calls.", NULL);
	e->m_hangup   = metrics_counter(o->metrics, "egress_hangups_total",
	      "hangup frames sent to ingress (PersonaPlex failed for a call).",
	      NULL);
	e->m_drop_not_ready
	    = metrics_counter(o->metrics, "egress_uplink_pages_dropped_total",
	        "Uplink Ogg pages not sent, by why.", "why=\"not_ready\"");
	e->m_drop_stale
	    = metrics_counter(o->metrics, "egress_uplink_pages_dropped_total",
	        "Uplink Ogg pages not sent, by why.", "why=\"stale_session\"");
	e->m_utterances
	    = metrics_counter(o->metrics, "egress_utterances_total",
	        "Agent utterances assembled from text pieces.", NULL);
	e->m_expired = metrics_counter(o->metrics,
	    "egress_calls_expired_total",
	    "Calls dropped after their peers went silent about them.", NULL);

	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS
	    | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.port = CONTEXT_PORT_NO_LISTEN;
	e->ctx  = lws_create_context(&ci);
	if (!e->ctx) {
		LOGE(o->log, NULL, "could not create the lws context");
		rc = ENOMEM;
		goto out;
	}
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
	if ((rc = session_env_alloc(&e->senv, &so)))
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

	if (!e->nservers)
		LOGE(o->log, NULL,
		    "no PersonaPlex server configured "
		    "(EXOPLEX_PERSONAPLEX_URLS / --personaplex-urls): every "
		    "call will be hung up with persona_failed");
	for (size_t i = 0; i < e->nservers; i++)
		LOGI(o->log, NULL, "PersonaPlex server %zu: %s%s", i + 1,
		    e->servers[i].base,
		    i ? " (unused until the pool arrives)" : "");
	if (o->insecure)
		LOGW(o->log, NULL,
		    "wss:// certificates are NOT checked "
		    "(EXOPLEX_PERSONAPLEX_INSECURE)");
	LOGI(o->log, NULL, "voice prompt %s; text prompt of %zu bytes",
	    e->o.voice_prompt, strlen(e->o.text_prompt));
	atomic_store(&e->running, true);
	*out = e;
	return 0;
out:
	egress_free(e);
	return rc;
}

static void
free_call_cb(const char *id, void *val, void *arg)
{
	struct call *c = val;

	if (c->sess)
		session_close(c->sess, "egress stopping");
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
	if (e->ctx)
		lws_sul_cancel(&e->tick);
	if (e->calls) {
		size_t had = strmap_count(e->calls);
		strmap_each(e->calls, free_call_cb, NULL);
		strmap_free(e->calls);
		e->calls = NULL;
		/* A moment for the close frames, so each server's lock is
		 * freed at once rather than when it notices the drop. */
		for (uint64_t t = mono_us() + 300000;
		     had && e->ctx && mono_us() < t;) {
			lws_service(e->ctx, -1);
			usleep(2000);
		}
	}
	if (e->quiet) {
		strmap_each(e->quiet, free_quiet_cb, NULL);
		strmap_free(e->quiet);
	}
	session_env_free(e->senv);
	if (e->ctx)
		lws_context_destroy(e->ctx);
	for (size_t i = 0; i < e->nservers; i++)
		free(e->targets[i]);
	free(e->targets);
	free(e->servers);
	free(e);
}

struct lws_context *
egress_lws(struct egress *e)
{
	return e->ctx;
}

size_t
egress_calls(const struct egress *e)
{
	return strmap_count(e->calls);
}

int
egress_ready(void *arg, char *detail, size_t len)
{
	struct egress *e  = arg;
	bool           up = atomic_load(&e->running);

	snprintf(detail, len, "%s; servers=%zu transcoder=%d ingress=%d",
	    up ? "running" : "starting", e->nservers,
	    bus_peers(e->links[LINK_T].bus), bus_peers(e->links[LINK_I].bus));
	return up;
}
