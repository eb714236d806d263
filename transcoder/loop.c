/*
 * loop.c - the transcoder's call table and bus protocol.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "admin.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "strmap.h"
#include "tcall.h"

#define SEC 1000000u
#define ANNOUNCE_EVERY_US SEC /* per unknown call id */
#define WARN_EVERY_US (10 * SEC) /* per call, for per-frame trouble */
#define PENDING_KEEP_US (10 * SEC)
#define PENDING_MAX 4096
#define PCM_SLICE 2400 /* caller samples converted at a time */
#define PCM_OUT_MAX 24000 /* playback samples gathered per frame */
#define FLUSH_AT 16 /* queued frames that make the loop flush early */

struct call {
	struct loop       *l;
	char              *id; /* stream_sid: the bus call_id */
	char              *call_sid; /* may be "" */
	struct log_call    lc;
	struct tcall      *tc;
	int                rate;
	uint64_t           seq_in; /* frames sent to ingress */
	uint64_t           seq_eg; /* frames sent to egress */
	uint64_t           last_us;
	uint64_t           start_us; /* mono: the last call_start for it */
	uint64_t           ts_us; /* ts_us of the frame being handled */
	uint32_t           ended; /* last session_ended */
	uint32_t           serial; /* of the current uplink stream */
	struct tcall_stats seen; /* what the metrics already have */
	uint64_t           warn_us;
	uint64_t           warn_quiet; /* warnings not logged since */
};

/* A call id we got frames for but do not know (yet, or any more). */
struct pending {
	uint64_t seen_us;
	uint64_t announce_us;
	uint64_t seq; /* announces sent: the call's seq continues */
	uint32_t session; /* a session_ready that came first */
	bool     stopped; /* ended or refused: never announce */
	bool     transcribe; /* mode "transcribe": never build a pipeline */
};

struct loop {
	struct loop_opts      o;
	struct strmap        *calls;
	struct strmap        *pending;
	struct tcall_scratch *scratch; /* shared by every call's tcall */
	uint64_t              sweep_us;
	uint64_t              warn_us; /* loop-wide rate limit */
	/* Ingress's link: its peer count and when loop_turn last looked;
	 * calls not announced since orphan_from_us are freed at
	 * orphan_until_us (0: no grace running). */
	int      in_peers;
	uint64_t check_us, orphan_from_us, orphan_until_us;
	int16_t  pcm_in[PCM_SLICE];
	uint8_t  pcm_out[PCM_OUT_MAX * 2];
	size_t   pcm_fill; /* samples in pcm_out */

	struct metric *m_calls, *m_started, *m_expired, *m_sessions;
	struct metric *m_encoded, *m_decoded, *m_dec_err, *m_enc_err;
	struct metric *m_sync, *m_holes, *m_unknown, *m_announce;
	struct metric *m_bad_rate, *m_bad_pcm, *m_bad_start, *m_bad_id;
	struct metric *m_transcribe, *m_orphaned;
};

static void call_warn(struct call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Every frame the loop sends leaves here: on the buses, or through the
 * owner's send hook (a shard of a threaded transcoder). */
static int
loop_out(struct loop *l, bool to_egress, const Exo__Frame *f)
{
	if (l->o.send)
		return l->o.send(l->o.send_arg, to_egress, f);
	return bus_send(to_egress ? l->o.egress : l->o.ingress, f);
}

/* Per-frame trouble is logged at most every WARN_EVERY_US per call. */
static void
call_warn(struct call *c, const char *fmt, ...)
{
	uint64_t now = mono_us();
	char     msg[256];
	va_list  ap;

	if (c->warn_us && now - c->warn_us < WARN_EVERY_US) {
		c->warn_quiet++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->warn_quiet)
		LOGW(c->l->o.log, &c->lc, "%s (%llu more warnings not logged)",
		    msg, (unsigned long long)c->warn_quiet);
	else
		LOGW(c->l->o.log, &c->lc, "%s", msg);
	c->warn_us    = now;
	c->warn_quiet = 0;
}

static void
loop_metrics(struct loop *l)
{
	struct metrics *m = l->o.metrics;

	l->m_calls    = metrics_gauge(m, "calls_active",
	       "Calls the transcoder holds a pipeline for.", NULL);
	l->m_started  = metrics_counter(m, "transcoder_calls_started_total",
	     "Calls whose pipeline was created.", NULL);
	l->m_expired  = metrics_counter(m, "transcoder_calls_expired_total",
	     "Calls freed after no frames for the idle time.", NULL);
	l->m_sessions = metrics_counter(m, "transcoder_sessions_total",
	    "Uplink Ogg streams begun (one per PersonaPlex session).", NULL);
	l->m_encoded  = metrics_counter(m, "transcoder_frames_encoded_total",
	     "20 ms Opus frames encoded for PersonaPlex.", NULL);
	l->m_decoded  = metrics_counter(m, "transcoder_frames_decoded_total",
	     "Opus packets from PersonaPlex decoded.", NULL);
	l->m_dec_err  = metrics_counter(m, "transcoder_decode_errors_total",
	     "Opus packets from PersonaPlex that libopus refused.", NULL);
	l->m_enc_err  = metrics_counter(m, "transcoder_encode_errors_total",
	     "Opus frames that failed to encode.", NULL);
	l->m_sync     = metrics_counter(m, "transcoder_ogg_sync_errors_total",
	        "Times downlink bytes were skipped to find an Ogg page (bad CRC, "
	            "garbage).",
	        NULL);
	l->m_holes    = metrics_counter(m, "transcoder_ogg_holes_total",
	       "Gaps in a downlink Ogg stream (lost pages).", NULL);
	l->m_unknown
	    = metrics_counter(m, "transcoder_unknown_call_frames_total",
	        "Frames dropped because their call was not known.", NULL);
	l->m_announce  = metrics_counter(m, "transcoder_announces_total",
	     "announce requests sent to ingress for unknown calls.", NULL);
	l->m_bad_rate  = metrics_counter(m, "transcoder_bad_frames_total",
	     "Frames dropped as malformed, by reason.", "reason=\"rate\"");
	l->m_bad_pcm   = metrics_counter(m, "transcoder_bad_frames_total",
	      "Frames dropped as malformed, by reason.", "reason=\"pcm\"");
	l->m_bad_start = metrics_counter(m, "transcoder_bad_frames_total",
	    "Frames dropped as malformed, by reason.",
	    "reason=\"call_start\"");
	l->m_bad_id    = metrics_counter(m, "transcoder_bad_frames_total",
	       "Frames dropped as malformed, by reason.", "reason=\"call_id\"");
	l->m_transcribe
	    = metrics_counter(m, "transcoder_calls_transcribe_total",
	        "Calls in transcribe mode (agent assist): no pipeline built, "
	        "or the one built freed.",
	        NULL);
	l->m_orphaned = metrics_counter(m, "transcoder_calls_orphaned_total",
	    "Calls freed because ingress left and did not announce them again "
	    "in time.",
	    NULL);
}

int
loop_alloc(struct loop **out, const struct loop_opts *o)
{
	struct loop *l;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return ENOMEM;
	l->o = *o;
	if (l->o.idle_s == 0)
		l->o.idle_s = 60;
	if (l->o.ingress_grace_ms == 0)
		l->o.ingress_grace_ms = 3000;
	if (strmap_alloc(&l->calls) || strmap_alloc(&l->pending)
	    || tcall_scratch_alloc(&l->scratch)) {
		strmap_free(l->calls);
		strmap_free(l->pending);
		free(l);
		return ENOMEM;
	}
	loop_metrics(l);
	l->sweep_us = l->check_us = mono_us();
	*out                      = l;
	return 0;
}

/* Adds what the call's pipeline counted since last time to the metrics,
 * and says so in the log when the downlink was damaged. */
static void
call_account(struct call *c)
{
	struct loop       *l = c->l;
	struct tcall_stats s;

	tcall_stats(c->tc, &s);
	metric_add(l->m_encoded,
	    (int64_t)(s.frames_encoded - c->seen.frames_encoded));
	metric_add(l->m_decoded,
	    (int64_t)(s.frames_decoded - c->seen.frames_decoded));
	metric_add(
	    l->m_enc_err, (int64_t)(s.encode_errors - c->seen.encode_errors));
	metric_add(
	    l->m_dec_err, (int64_t)(s.decode_errors - c->seen.decode_errors));
	metric_add(
	    l->m_sync, (int64_t)(s.ogg_sync_errors - c->seen.ogg_sync_errors));
	metric_add(l->m_holes, (int64_t)(s.ogg_holes - c->seen.ogg_holes));
	if (s.decode_errors != c->seen.decode_errors)
		call_warn(c,
		    "downlink: %llu Opus packets refused by libopus "
		    "(%llu in all)",
		    (unsigned long long)(s.decode_errors
		        - c->seen.decode_errors),
		    (unsigned long long)s.decode_errors);
	if (s.ogg_sync_errors != c->seen.ogg_sync_errors
	    || s.ogg_holes != c->seen.ogg_holes)
		call_warn(c,
		    "downlink: damaged Ogg stream: %llu bytes "
		    "skipped to resync, %llu gaps (in all)",
		    (unsigned long long)s.ogg_sync_errors,
		    (unsigned long long)s.ogg_holes);
	if (s.encode_errors != c->seen.encode_errors)
		call_warn(c, "uplink: %llu Opus frames failed to encode",
		    (unsigned long long)s.encode_errors);
	c->seen = s;
}

static void
call_free(struct call *c, const char *why)
{
	struct loop       *l = c->l;
	struct tcall_stats s;

	call_account(c);
	tcall_stats(c->tc, &s);
	LOGI(l->o.log, &c->lc,
	    "call freed (%s): %.1f s caller audio in, %llu frames encoded, "
	    "%llu packets decoded, %.1f s playback out, %llu decode errors, "
	    "%llu ogg sync errors",
	    why, (double)s.samples_in / c->rate,
	    (unsigned long long)s.frames_encoded,
	    (unsigned long long)s.frames_decoded,
	    (double)s.samples_out / c->rate,
	    (unsigned long long)s.decode_errors,
	    (unsigned long long)s.ogg_sync_errors);
	strmap_del(l->calls, c->id);
	/* Added to, not set: the loops of a sharded transcoder share it. */
	metric_add(l->m_calls, -1);
	tcall_free(c->tc);
	free(c->id);
	free(c->call_sid);
	free(c);
	/* Its codec state (~110 kB in pieces of 1-45 kB) would stay
	 * resident in this thread's arena: with calls coming and going the
	 * holes grew the process by ~9 MB per 600 calls in the soak. */
	memtrim_note();
}

static void
free_each_call(const char *key, void *val, void *arg)
{
	struct call *c = val;

	tcall_free(c->tc);
	free(c->id);
	free(c->call_sid);
	free(c);
}

static void
free_each_pending(const char *key, void *val, void *arg)
{
	free(val);
}

void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	metric_add(l->m_calls, -(int64_t)strmap_count(l->calls));
	strmap_each(l->calls, free_each_call, NULL);
	strmap_each(l->pending, free_each_pending, NULL);
	strmap_free(l->calls);
	strmap_free(l->pending);
	tcall_scratch_free(l->scratch);
	free(l);
}

size_t
loop_calls(const struct loop *l)
{
	return strmap_count(l->calls);
}

bool
loop_has_call(const struct loop *l, const char *call_id)
{
	return call_id && strmap_get(l->calls, call_id) != NULL;
}

static void
on_page(
    void *arg, uint32_t session, const uint8_t *page, size_t n, bool header)
{
	struct call *c = arg;
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Ogg     o = EXO__OGG__INIT;

	o.session    = session;
	o.data.data  = (uint8_t *)page;
	o.data.len   = n;
	o.header     = header;
	f.call_id    = c->id;
	f.seq        = ++c->seq_eg;
	f.ts_us      = c->ts_us;
	f.body_case  = EXO__FRAME__BODY_UPLINK_OGG;
	f.uplink_ogg = &o;
	/* A refused header page is logged and counted by the bus. */
	loop_out(c->l, true, &f);
}

/* Sends the playback gathered from one downlink frame as one frame. */
static void
playback_flush(struct call *c)
{
	struct loop *l = c->l;
	Exo__Frame   f = EXO__FRAME__INIT;
	Exo__Audio   a = EXO__AUDIO__INIT;

	if (l->pcm_fill == 0)
		return;
	a.sample_rate    = (uint32_t)c->rate;
	a.pcm.data       = l->pcm_out;
	a.pcm.len        = l->pcm_fill * 2;
	f.call_id        = c->id;
	f.seq            = ++c->seq_in;
	f.ts_us          = c->ts_us;
	f.body_case      = EXO__FRAME__BODY_PLAYBACK_AUDIO;
	f.playback_audio = &a;
	loop_out(l, false, &f);
	l->pcm_fill = 0;
}

static void
on_pcm(void *arg, const int16_t *pcm, size_t n)
{
	struct call *c = arg;
	struct loop *l = c->l;

	while (n > 0) {
		size_t k = PCM_OUT_MAX - l->pcm_fill;
		if (k == 0) {
			playback_flush(c);
			continue;
		}
		if (k > n)
			k = n;
		uint8_t *p = l->pcm_out + 2 * l->pcm_fill;
		for (size_t i = 0; i < k; i++) {
			p[2 * i]     = (uint8_t)pcm[i];
			p[2 * i + 1] = (uint8_t)((uint16_t)pcm[i] >> 8);
		}
		l->pcm_fill += k;
		pcm += k;
		n -= k;
	}
}

static uint32_t
new_serial(uint32_t old)
{
	uint32_t s = 0;

	/* A new serial per stream: a second BOS on the same serial kills
	 * the server's Ogg reader. */
	do {
		if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s))
			s = (uint32_t)(mono_us() * 2654435761u) ^ old;
	} while (s == old);
	return s;
}

static void
session_start(
    struct call *c, uint32_t session, const char *server, const char *how)
{
	uint32_t serial = new_serial(c->serial);
	int      rc;

	if ((rc = tcall_session_start(c->tc, session, serial)) != 0) {
		LOGE(c->l->o.log, &c->lc,
		    "session %u: cannot start the uplink stream: %s", session,
		    strerror(rc));
		return;
	}
	c->serial = serial;
	metric_inc(c->l->m_sessions);
	LOGI(c->l->o.log, &c->lc,
	    "session %u%s%s %s: uplink Ogg stream serial %08x", session,
	    server && *server ? " on " : "", server ? server : "", how,
	    serial);
}

static struct pending *
pending_get(struct loop *l, const char *id, bool create)
{
	struct pending *p = strmap_get(l->pending, id);

	if (p || !create)
		return p;
	if (strmap_count(l->pending) >= PENDING_MAX)
		return NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (strmap_put(l->pending, id, p)) {
		free(p);
		return NULL;
	}
	return p;
}

static void
send_announce(struct loop *l, const char *id, uint64_t seq)
{
	Exo__Frame    f = EXO__FRAME__INIT;
	Exo__Announce a = EXO__ANNOUNCE__INIT;

	f.call_id   = (char *)id;
	f.seq       = seq;
	f.ts_us     = wall_us();
	f.body_case = EXO__FRAME__BODY_ANNOUNCE;
	f.announce  = &a;
	if (loop_out(l, false, &f) == 0)
		metric_inc(l->m_announce);
}

/* A frame for a call we do not hold: drop it, remember what matters,
 * and ask ingress for the call's call_start (once a second at most). */
static void
unknown_call(struct loop *l, const Exo__Frame *f)
{
	struct log_call lc  = { NULL, f->call_id };
	uint64_t        now = mono_us();
	struct pending *p   = pending_get(l, f->call_id, true);

	metric_inc(l->m_unknown);
	if (p == NULL) {
		if (now - l->warn_us >= WARN_EVERY_US) {
			l->warn_us = now;
			LOGW(l->o.log, &lc,
			    "%s for an unknown call dropped; too many unknown "
			    "calls to track (%d)",
			    bus_kind_name(f), PENDING_MAX);
		}
		return;
	}
	p->seen_us = now;
	if (f->body_case == EXO__FRAME__BODY_SESSION_READY)
		p->session = f->session_ready->session;
	if (p->stopped)
		return;
	if (p->announce_us && now - p->announce_us < ANNOUNCE_EVERY_US)
		return;
	if (p->announce_us == 0)
		LOGI(l->o.log, &lc,
		    "%s for an unknown call: asking ingress to announce it",
		    bus_kind_name(f));
	p->announce_us = now;
	send_announce(l, f->call_id, ++p->seq);
}

/* A transcribe call (agent assist) has no PersonaPlex session, so no
 * audio work here: its pipeline is freed (or never built), and the
 * call's id is remembered so its frames in flight are dropped quietly
 * and a later call_start does not build one. */
static void
call_transcribe(struct loop *l, const char *id, const char *call_sid)
{
	struct call    *c   = strmap_get(l->calls, id);
	struct pending *p   = pending_get(l, id, true);
	struct log_call lc  = { call_sid, id };
	bool            was = p && p->transcribe;

	if (p) {
		p->stopped    = true;
		p->transcribe = true;
		p->seen_us    = mono_us();
	}
	if (c)
		call_free(c, "transcribe mode");
	else if (!was)
		LOGI(l->o.log, &lc, "transcribe mode: no audio pipeline");
	if (c || !was)
		metric_inc(l->m_transcribe);
}

static bool
is_transcribe(const char *mode)
{
	return mode && !strcasecmp(mode, "transcribe");
}

static void
handle_call_start(struct loop *l, const Exo__Frame *f)
{
	const Exo__CallStart *cs = f->call_start;
	struct call          *c  = strmap_get(l->calls, f->call_id);
	struct pending       *p;
	struct tcall_opts     to;
	int                   rate = (int)cs->sample_rate, rc;
	struct log_call       lc   = { cs->call_sid, f->call_id };

	if (is_transcribe(cs->mode)
	    || ((p = pending_get(l, f->call_id, false)) && p->transcribe)) {
		call_transcribe(l, f->call_id, cs->call_sid);
		return;
	}
	if (c) {
		c->last_us = c->start_us = mono_us();
		if (rate && rate != c->rate)
			call_warn(c,
			    "call_start says %d Hz, the call runs at "
			    "%d Hz: kept %d Hz",
			    rate, c->rate, c->rate);
		if (cs->call_sid && *cs->call_sid && !*c->call_sid) {
			char *s = strdup(cs->call_sid);
			if (s) {
				free(c->call_sid);
				c->call_sid    = s;
				c->lc.call_sid = s;
			}
		}
		return;
	}
	if (rate == 0)
		rate = 8000; /* Exotel's default */
	if (rate != 8000 && rate != 16000 && rate != 24000) {
		metric_inc(l->m_bad_start);
		LOGE(l->o.log, &lc,
		    "call_start with sample_rate %d: not 8000, 16000 or "
		    "24000; "
		    "call refused",
		    rate);
		if ((p = pending_get(l, f->call_id, true)) != NULL) {
			p->stopped = true;
			p->seen_us = mono_us();
		}
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL
	    || (c->id = strdup(f->call_id)) == NULL
	    || (c->call_sid = strdup(cs->call_sid ? cs->call_sid : ""))
	        == NULL)
		goto nomem;
	c->l             = l;
	c->rate          = rate;
	c->lc.call_sid   = c->call_sid;
	c->lc.stream_sid = c->id;
	c->last_us       = mono_us();
	c->start_us      = c->last_us;
	to               = (struct tcall_opts) {
		              .rate            = rate,
		              .opus_rate       = l->o.opus_call_rate ? rate : 0,
		              .scratch         = l->scratch,
		              .complexity      = l->o.complexity,
		              .bitrate         = l->o.bitrate,
		              .frames_per_page = l->o.frames_per_page,
		              .on_page         = on_page,
		              .on_pcm          = on_pcm,
		              .arg             = c,
	};
	if ((rc = tcall_alloc(&c->tc, &to)) != 0) {
		LOGE(l->o.log, &lc,
		    "call_start: cannot create the pipeline: %s",
		    strerror(rc));
		goto fail;
	}
	if (strmap_put(l->calls, c->id, c))
		goto nomem;
	metric_inc(l->m_started);
	metric_inc(l->m_calls);
	LOGI(l->o.log, &c->lc, "call started: %d Hz%s", rate,
	    cs->reannounce ? " (re-announced)" : "");
	if ((p = strmap_del(l->pending, f->call_id)) != NULL) {
		c->seq_in = p->seq;
		c->ts_us  = f->ts_us;
		if (p->session && !p->stopped)
			session_start(c, p->session, NULL,
			    "ready before the call was known");
		free(p);
	}
	return;
nomem:
	LOGE(l->o.log, &lc, "call_start: out of memory; call dropped");
fail:
	if (c) {
		tcall_free(c->tc);
		free(c->id);
		free(c->call_sid);
		free(c);
	}
}

static void
handle_caller_audio(struct loop *l, struct call *c, const Exo__Frame *f)
{
	const Exo__Audio *a = f->caller_audio;
	const uint8_t    *b = a->pcm.data;
	size_t            n = a->pcm.len / 2;

	if (a->sample_rate && (int)a->sample_rate != c->rate) {
		metric_inc(l->m_bad_rate);
		call_warn(c, "caller_audio at %u Hz in a %d Hz call: dropped",
		    a->sample_rate, c->rate);
		return;
	}
	if (a->pcm.len % 2) {
		metric_inc(l->m_bad_pcm);
		call_warn(c,
		    "caller_audio of %zu bytes: not whole samples; "
		    "last byte dropped",
		    a->pcm.len);
	}
	while (n > 0) {
		size_t k = n < PCM_SLICE ? n : PCM_SLICE;
		for (size_t i = 0; i < k; i++)
			l->pcm_in[i] = (int16_t)(uint16_t)(b[2 * i]
			    | (uint16_t)b[2 * i + 1] << 8);
		tcall_uplink(c->tc, l->pcm_in, k);
		b += 2 * k;
		n -= k;
	}
	call_account(c);
}

static void
handle_downlink(struct loop *l, struct call *c, const Exo__Frame *f)
{
	const Exo__Ogg *o = f->downlink_ogg;

	/* Audio of a session we were not told about: egress forwards only
	 * live sessions, so it is one (we restarted, or missed the frame):
	 * start its uplink, since its output is clocked by our input. */
	if (o->session && o->session != tcall_session(c->tc)
	    && o->session != c->ended)
		session_start(c, o->session, NULL, "seen in downlink");
	/* The packets of one frame (pages may be merged) leave as one
	 * playback frame. */
	if (tcall_downlink(c->tc, o->session, o->data.data, o->data.len))
		call_warn(c, "downlink: out of memory; bytes dropped");
	playback_flush(c);
	call_account(c);
}

void
loop_frame(struct loop *l, int from_egress, const Exo__Frame *f)
{
	struct call *c;

	if (f->call_id == NULL || *f->call_id == '\0') {
		metric_inc(l->m_bad_id);
		if (mono_us() - l->warn_us >= WARN_EVERY_US) {
			l->warn_us = mono_us();
			LOGW(l->o.log, NULL,
			    "%s frame without a call_id from %s",
			    bus_kind_name(f),
			    from_egress ? "egress" : "ingress");
		}
		return;
	}
	if (f->body_case == EXO__FRAME__BODY_CALL_START) {
		handle_call_start(l, f);
		return;
	}
	if (f->body_case == EXO__FRAME__BODY_CALL_MODE) {
		if (f->call_mode && is_transcribe(f->call_mode->mode))
			call_transcribe(l, f->call_id, NULL);
		return;
	}
	c = strmap_get(l->calls, f->call_id);
	switch (f->body_case) {
	case EXO__FRAME__BODY_CALLER_AUDIO:
	case EXO__FRAME__BODY_DOWNLINK_OGG:
	case EXO__FRAME__BODY_SESSION_READY:
		if (c == NULL) {
			unknown_call(l, f);
			return;
		}
		break;
	case EXO__FRAME__BODY_SESSION_ENDED:
		if (c == NULL) {
			struct pending *p = pending_get(l, f->call_id, false);
			if (p && p->session == f->session_ended->session)
				p->session = 0;
			return;
		}
		break;
	case EXO__FRAME__BODY_CALL_STOP:
		if (c) {
			struct pending *p;
			tcall_flush(c->tc);
			call_free(c,
			    f->call_stop->reason && *f->call_stop->reason
			        ? f->call_stop->reason
			        : "call_stop");
			/* Frames still in flight get no announce. */
			if ((p = pending_get(l, f->call_id, true)) != NULL) {
				p->stopped = true;
				p->seen_us = mono_us();
			}
		}
		return;
	default:
		return; /* not for us */
	}
	c->last_us = mono_us();
	c->ts_us   = f->ts_us;
	switch (f->body_case) {
	case EXO__FRAME__BODY_CALLER_AUDIO:
		handle_caller_audio(l, c, f);
		break;
	case EXO__FRAME__BODY_DOWNLINK_OGG:
		handle_downlink(l, c, f);
		break;
	case EXO__FRAME__BODY_SESSION_READY:
		if (f->session_ready->session == tcall_session(c->tc)) {
			LOGD(l->o.log, &c->lc, "session %u: ready again: kept",
			    f->session_ready->session);
			break;
		}
		session_start(c, f->session_ready->session,
		    f->session_ready->server, "ready");
		break;
	case EXO__FRAME__BODY_SESSION_ENDED:
		c->ended = f->session_ended->session;
		if (tcall_session(c->tc) == c->ended) {
			tcall_session_end(c->tc, c->ended);
			LOGI(l->o.log, &c->lc,
			    "session %u ended (%s): uplink paused", c->ended,
			    f->session_ended->reason ? f->session_ended->reason
			                             : "");
		}
		break;
	default:
		break;
	}
}

struct expiry {
	struct loop *l;
	uint64_t     now;
	struct call *victims[64];
	size_t       n;
};

static void
find_idle(const char *key, void *val, void *arg)
{
	struct expiry *e = arg;
	struct call   *c = val;

	if (e->n < 64 && e->now - c->last_us >= e->l->o.idle_s * (uint64_t)SEC)
		e->victims[e->n++] = c;
}

static bool
pending_stale(const char *key, void *val, void *arg)
{
	const uint64_t *now = arg;
	struct pending *p   = val;

	(void)key;
	if (*now - p->seen_us < PENDING_KEEP_US)
		return false;
	free(p);
	return true;
}

size_t
loop_expire(struct loop *l, uint64_t now_us)
{
	struct expiry e     = { .l = l, .now = now_us };
	size_t        total = 0;

	/* strmap_each must not see the map change: collect, then free, in
	 * batches. */
	do {
		e.n = 0;
		strmap_each(l->calls, find_idle, &e);
		for (size_t i = 0; i < e.n; i++) {
			LOGW(l->o.log, &e.victims[i]->lc,
			    "no frames for %u s: freeing the call",
			    l->o.idle_s);
			metric_inc(l->m_expired);
			call_free(e.victims[i], "idle");
		}
		total += e.n;
	} while (e.n == 64);
	strmap_del_if(l->pending, pending_stale, &now_us);
	return total;
}

void
loop_ingress_lost(struct loop *l, uint64_t since_us)
{
	/* A later loss restarts the grace: the newest ingress must
	 * announce every call. */
	l->orphan_from_us  = since_us;
	l->orphan_until_us = since_us + l->o.ingress_grace_ms * 1000ull;
	if (strmap_count(l->calls))
		LOGI(l->o.log, NULL,
		    "ingress left or reconnected: %zu call(s) must be "
		    "announced again within %.1f s or are freed",
		    strmap_count(l->calls), l->o.ingress_grace_ms / 1000.0);
}

static void
find_orphan(const char *key, void *val, void *arg)
{
	struct expiry *e = arg;
	struct call   *c = val;

	if (e->n < 64 && c->start_us < e->l->orphan_from_us)
		e->victims[e->n++] = c;
}

size_t
loop_orphans(struct loop *l, uint64_t now_us)
{
	struct expiry e     = { .l = l, .now = now_us };
	size_t        total = 0;

	if (!l->orphan_until_us || now_us < l->orphan_until_us)
		return 0;
	l->orphan_until_us = 0;
	do {
		e.n = 0;
		strmap_each(l->calls, find_orphan, &e);
		for (size_t i = 0; i < e.n; i++) {
			struct call    *c = e.victims[i];
			struct pending *p;
			char           *id = strdup(c->id);

			LOGW(l->o.log, &c->lc,
			    "ingress did not announce the call again within "
			    "%.1f s: freeing it",
			    l->o.ingress_grace_ms / 1000.0);
			metric_inc(l->m_orphaned);
			call_free(c, "ingress gone");
			/* Its late frames (egress's last pages) ask for no
			 * announce: nobody has the call. */
			if (id && (p = pending_get(l, id, true)) != NULL) {
				p->stopped = true;
				p->seen_us = now_us;
			}
			free(id);
		}
		total += e.n;
	} while (e.n == 64);
	return total;
}

void
loop_housekeeping(struct loop *l, uint64_t now_us)
{
	loop_orphans(l, now_us);
	if (now_us - l->sweep_us >= SEC) {
		l->sweep_us = now_us;
		loop_expire(l, now_us);
	}
	memtrim_maybe(now_us);
}

static void
drain(struct loop *l, struct bus *b, int from_egress)
{
	const Exo__Envelope *env;
	int                  rc;

	/* Bounded, so one busy link cannot starve the other. */
	for (int i = 0; i < 256; i++) {
		if ((rc = bus_next(b, &env)) == EAGAIN)
			return;
		if (rc != 0)
			continue; /* logged and counted by the bus */
		for (size_t k = 0; k < env->n_frames; k++) {
			bus_count_in(b, env->frames[k]);
			loop_frame(l, from_egress, env->frames[k]);
			/* Flush early in a burst, before a call's output
			 * reaches the bus's per-call cap and drops. */
			if (bus_pending(l->o.ingress) >= FLUSH_AT)
				bus_flush(l->o.ingress);
			if (bus_pending(l->o.egress) >= FLUSH_AT)
				bus_flush(l->o.egress);
		}
	}
}

int
loop_hold_timeout(const struct bus *a, const struct bus *b, int timeout_ms)
{
	int64_t due = bus_due_min(bus_due_us(a), bus_due_us(b));

	if (due >= 0 && due < (int64_t)timeout_ms * 1000)
		return (int)((due + 999) / 1000);
	return timeout_ms;
}

void
loop_turn(struct loop *l, int timeout_ms)
{
	struct pollfd p[2];
	nfds_t        n = 0;
	int           fd;
	uint64_t      now;

	if ((fd = bus_fd(l->o.ingress)) >= 0)
		p[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
	if ((fd = bus_fd(l->o.egress)) >= 0)
		p[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
	poll(p, n, loop_hold_timeout(l->o.ingress, l->o.egress, timeout_ms));
	drain(l, l->o.ingress, 0);
	drain(l, l->o.egress, 1);
	now = mono_us();
	{
		/* A new ingress re-announces what it has; one that left
		 * may never come back. Either way the calls it does not
		 * announce within the grace are gone: a call_start since
		 * the previous look may already be the new one's. */
		bool fresh = bus_take_new_peer(l->o.ingress);
		int  peers = bus_peers(l->o.ingress);
		if (fresh)
			LOGI(l->o.log, NULL,
			    "bus transcoder: ingress connected");
		else if (l->in_peers && !peers)
			LOGW(l->o.log, NULL,
			    "bus transcoder: ingress disconnected");
		if (fresh || (l->in_peers && !peers))
			loop_ingress_lost(l, l->check_us);
		l->in_peers = peers;
		l->check_us = now;
	}
	if (bus_take_new_peer(l->o.egress))
		LOGI(l->o.log, NULL, "bus egress: egress connected");
	loop_housekeeping(l, now);
	if (l->o.admin)
		admin_heartbeat(l->o.admin);
	bus_flush(l->o.ingress);
	bus_flush(l->o.egress);
}
