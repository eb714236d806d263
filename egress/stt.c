/*
 * stt.c - Scribe v2 realtime sessions (see stt.h; protocol evidence in
 * research/elevenlabs.md, cited by section).
 *
 * A struct stt outlives its connections: each connection is one wsi whose
 * user data points at the stt, and the link is cut (set to NULL) the
 * moment the stt drops that connection, as session.c does. A cut wsi only
 * finishes closing: with a close frame (1000) when it was upgraded.
 *
 * libwebsockets 4.1 as Debian builds it resolves host names with a
 * blocking getaddrinfo inside lws_client_connect_via_info, which would
 * stall every call's audio while DNS is slow. So a named STT host is
 * resolved on a small thread of its own (struct stt_dns) and connections
 * go to the address it found, with the name kept for the Host header, SNI
 * and certificate checks.
 */
#include "stt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "sttbuf.h"
#include "sttmsg.h"
#include "sttseg.h"

#define TICK_US (100 * 1000)
#define SID_MAX 96
#define HOST_MAX 256
#define TARGET_MAX 2032 /* lws 4.1's request-line limit (ppurl.h) */
#define RX_MAX (512 * 1024) /* timestamped commits can be large */
#define OUTQ_MAX 16 /* messages queued on the socket */
#define CATCHUP 4 /* a replay goes at up to 4x real time */
#define CATCHUP_CHUNKS 5 /* and in chunks of up to 5 x chunk_ms */
#define CONNECT_TIMEOUT_US (10 * 1000 * 1000)
#define STABLE_US                                                             \
	(5 * 1000 * 1000) /* a connection that lived this long                \
	                     resets the backoff (research §6.1) */
#define QUIET_AFTER_US (1000 * 1000) /* no call audio: fill with silence */
#define VOICE_MS 20 /* voice activity frames, for offsets */
#define VOICE_MEAN_SQ 107000.0 /* -40 dBFS RMS */
#define BAD_LOG_MAX 5
#define PREV_TEXT_MAX 50 /* research §2.2 */
#define DNS_TTL_US (60ull * 1000 * 1000) /* an answer is refreshed after */
#define DNS_WAIT_US (100 * 1000) /* retry while the first answer is due */

enum stt_state {
	STT_IDLE, /* no connection: waiting for retry_at (or a hold) */
	STT_CONNECTING, /* TCP, TLS, the upgrade */
	STT_STARTING, /* upgraded, waiting for session_started */
	STT_LIVE, /* audio flows */
	STT_GAVE_UP, /* a fatal error: no more STT for this call */
};

struct out_msg {
	struct out_msg *next;
	size_t          len;
	uint8_t         buf[]; /* LWS_PRE + len */
};

struct stt_url {
	bool tls;
	int  port;
	char host[HOST_MAX]; /* for connect(): no brackets */
	char hosthdr[HOST_MAX + 8];
	char path[TARGET_MAX];
};

/* The resolver thread's state, shared with the env: whichever of the two
 * lets go last frees it (a getaddrinfo stuck in a dead resolver must not
 * hold egress's exit up). */
struct stt_dns {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             refs;
	bool            want, stop;
	char            host[HOST_MAX];
	char            addr[INET6_ADDRSTRLEN]; /* "" until an answer */
	int             gai_err; /* of the last try; 0 = it worked */
	uint64_t        done_us; /* mono time of the last try */
};

struct stt_env {
	struct stt_env_opts    o;
	struct stt_url         url;
	struct stt_dns        *dns; /* NULL: the host is an address */
	char                   base[HOST_MAX + TARGET_MAX + 16]; /* logs */
	struct stt            *list;
	size_t                 count;
	lws_sorted_usec_list_t sul;
	uint64_t               rng;
	uint64_t               hold_until_us; /* mono */
	/* For stt_env_describe on the admin thread. */
	atomic_int            a_live;
	_Atomic(const char *) a_err_kind;
	atomic_uint_fast64_t  a_err_us, a_hold_until_us, a_ok_us;
	struct metric *m_sessions, *m_active, *m_reconnects, *m_partials,
	    *m_finals, *m_commits, *m_commits_empty, *m_sent_ms,
	    *m_replayed_ms, *m_lost_ms, *m_silence_ms, *m_mismatch, *m_gave_up,
	    *m_ignored;
};

struct stt {
	struct stt_env      *env;
	struct stt          *prev, *next;
	const struct stt_cb *cb; /* NULL once closed by its owner */
	void                *owner;
	char                 call_sid[SID_MAX], stream_sid[SID_MAX];
	struct log_call      ids;
	unsigned             rate;
	char                 format[24]; /* "pcm_8000" */
	char                *target; /* path?query */
	uint64_t             call_start_us; /* wall */

	enum stt_state state;
	unsigned       conns; /* connections opened */
	unsigned       attempts; /* consecutive failures, for backoff */
	uint64_t       retry_at_us, conn_us, upgraded_us, live_us;
	bool           held_logged;

	/* The current connection. */
	struct lws        *wsi;
	bool               upgraded, in_connect, first_chunk;
	char               connect_err[160];
	int                peer_close;
	enum stterr_policy conn_policy; /* of an error on it */
	const char        *conn_err_kind;
	struct out_msg    *qhead, *qtail;
	size_t             qlen;
	uint8_t           *rx;
	size_t             rx_len, rx_cap;
	bool               rx_skip, rx_bin;
	int                bad_logged;
	uint64_t           conn_base; /* timeline position of its first byte */
	uint64_t           replay_left; /* bytes of replay still to send */

	/* Audio and text. */
	struct sttbuf buf;
	struct sttseg seg;
	uint8_t      *scratch;
	size_t        chunk_bytes, bytes_per_s;
	double        tokens; /* bytes that may be sent now (pacing) */
	uint64_t      tokens_us;
	bool          anchored;
	int64_t       anchor_ms; /* timeline 0 on the call's clock */
	uint64_t      last_audio_us; /* mono, of the last call audio */
	uint64_t      voiced_first, voiced_end; /* timeline; 0 = none */
	bool          voiced;
	int64_t       held_ms0, held_ms1; /* offsets of a held commit */

	bool     finishing, commit_sent;
	uint64_t finish_at_us;
	int      busy; /* >0 inside an owner callback */
	bool     doomed; /* free when busy drops to 0 */
};

/* ---- settings ---- */

static int
parse_url(struct stt_url *u, const char *url, char *err, size_t errlen)
{
	const char *p, *h, *he, *slash;
	size_t      n;

	memset(u, 0, sizeof(*u));
	if (!url || !*url) {
		snprintf(err, errlen, "no URL");
		return EINVAL;
	}
	if (!strncmp(url, "wss://", 6)) {
		u->tls  = true;
		u->port = 443;
		p       = url + 6;
	} else if (!strncmp(url, "ws://", 5)) {
		u->port = 80;
		p       = url + 5;
	} else {
		snprintf(
		    err, errlen, "'%.200s' is not a ws:// or wss:// URL", url);
		return EINVAL;
	}
	if (strpbrk(url, "?#")) {
		snprintf(err, errlen,
		    "'%.200s' has a query or fragment (egress adds the query)",
		    url);
		return EINVAL;
	}
	if (strpbrk(url, " \t\r\n")) {
		snprintf(err, errlen, "'%.200s' contains white space", url);
		return EINVAL;
	}
	if (*p == '[') {
		h  = p + 1;
		he = strchr(h, ']');
		if (!he) {
			snprintf(err, errlen, "'%.200s': unclosed '['", url);
			return EINVAL;
		}
		p = he + 1;
	} else {
		h = p;
		p += strcspn(p, ":/");
		he = p;
	}
	n = (size_t)(he - h);
	if (!n || n >= sizeof(u->host)) {
		snprintf(
		    err, errlen, "'%.200s': no host (or a too long one)", url);
		return EINVAL;
	}
	memcpy(u->host, h, n);
	if (*p == ':') {
		char *end;
		long  port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port < 1 || port > 65535
		    || (*end && *end != '/')) {
			snprintf(err, errlen, "'%.200s': bad port", url);
			return EINVAL;
		}
		u->port = (int)port;
		p       = end;
	}
	slash = p;
	if (*slash != '/' || !slash[1]) {
		snprintf(err, errlen,
		    "'%.200s' has no path (e.g. /v1/speech-to-text/realtime)",
		    url);
		return EINVAL;
	}
	if (strlen(slash) >= sizeof(u->path) - 512) {
		snprintf(err, errlen, "'%.200s': path too long", url);
		return EINVAL;
	}
	snprintf(u->path, sizeof(u->path), "%s", slash);
	if ((u->tls && u->port == 443) || (!u->tls && u->port == 80))
		snprintf(u->hosthdr, sizeof(u->hosthdr),
		    h[-1] == '[' ? "[%s]" : "%s", u->host);
	else
		snprintf(u->hosthdr, sizeof(u->hosthdr),
		    h[-1] == '[' ? "[%s]:%d" : "%s:%d", u->host, u->port);
	return 0;
}

int
stt_check_url(const char *url, char *err, size_t errlen)
{
	struct stt_url u;
	return parse_url(&u, url, err, errlen);
}

static int
check_decimal(const char *v, double lo, double hi, char *err, size_t errlen)
{
	char  *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d >= lo && d <= hi)) {
		snprintf(err, errlen, "'%s' is not a number from %g to %g", v,
		    lo, hi);
		return EINVAL;
	}
	return 0;
}

int
stt_check_vad_silence(const char *v, char *err, size_t errlen)
{
	return check_decimal(v, 0.3, 3.0, err, errlen);
}

int
stt_check_vad_threshold(const char *v, char *err, size_t errlen)
{
	return check_decimal(v, 0.1, 0.9, err, errlen);
}

int
stt_check_language(const char *v, char *err, size_t errlen)
{
	size_t n  = strlen(v);
	bool   ok = n == 0 || n == 2 || n == 3;

	for (size_t i = 0; ok && i < n; i++)
		ok = v[i] >= 'a' && v[i] <= 'z';
	if (!ok) {
		snprintf(err, errlen,
		    "'%.40s' is not an ISO 639-1 or 639-3 code (e.g. en, hi, "
		    "eng) or empty (auto-detect)",
		    v);
		return EINVAL;
	}
	return 0;
}

/* Percent-encodes a query value (RFC 3986 unreserved stay). */
static size_t
enc(char *dst, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t            n     = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool keep = (*p >= 'a' && *p <= 'z')
		    || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
		    || strchr("-._~", *p);
		if (n + 4 >= cap)
			return (size_t)-1;
		if (keep) {
			dst[n++] = (char)*p;
		} else {
			dst[n++] = '%';
			dst[n++] = hex[*p >> 4];
			dst[n++] = hex[*p & 15];
		}
	}
	dst[n] = '\0';
	return n;
}

/* path?model_id=..&audio_format=pcm_<rate>&language_code=..&
 * commit_strategy=vad&<VAD settings>[&include_timestamps=true]
 * (research §1.3). */
static int
build_target(const struct stt_env *e, unsigned rate, char *buf, size_t len)
{
	char model[256], lang[64];
	int  n;

	if (enc(model, sizeof(model), e->o.model) == (size_t)-1
	    || enc(lang, sizeof(lang), e->o.language) == (size_t)-1)
		return E2BIG;
	n = snprintf(buf, len,
	    "%s?model_id=%s&audio_format=pcm_%u%s%s&commit_strategy=vad"
	    "&vad_silence_threshold_secs=%g&vad_threshold=%g"
	    "&min_speech_duration_ms=%u&min_silence_duration_ms=%u%s",
	    e->url.path, model, rate, *lang ? "&language_code=" : "", lang,
	    e->o.vad_silence_s, e->o.vad_threshold, e->o.min_speech_ms,
	    e->o.min_silence_ms,
	    e->o.timestamps ? "&include_timestamps=true" : "");
	return n < 0 || (size_t)n >= len ? E2BIG : 0;
}

/* ---- small helpers ---- */

static void
count(struct stt_env *e, const char *name, const char *help, const char *label,
    const char *value)
{
	char l[96];
	snprintf(l, sizeof(l), "%s=\"%s\"", label, value);
	metric_inc(metrics_counter(e->o.metrics, name, help, l));
}

static void
count_error(struct stt_env *e, const char *kind)
{
	count(e, "egress_stt_errors_total",
	    "Error messages from the STT server, by type (both spellings "
	    "of a type count as one).",
	    "type", kind);
	atomic_store(&e->a_err_kind, kind);
	atomic_store(&e->a_err_us, mono_us());
}

static void
count_drop(struct stt_env *e, const char *why)
{
	count(e, "egress_stt_disconnects_total",
	    "STT connections lost or given up, by why.", "why", why);
}

/* Peer text made safe for one log line. */
static const char *
clean(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	for (; src && *src && n + 1 < cap; src++)
		dst[n++]
		    = (unsigned char)*src < 0x20 || *src == 0x7f ? ' ' : *src;
	dst[n] = '\0';
	return dst;
}

static double
ms_of(const struct stt *s, uint64_t bytes)
{
	return (double)bytes * 1000.0 / (double)s->bytes_per_s;
}

/* A timeline position (bytes) as an offset from the call's start. */
static int64_t
offset_ms(const struct stt *s, uint64_t pos)
{
	return s->anchor_ms + (int64_t)ms_of(s, pos);
}

static uint64_t
rnd(struct stt_env *e)
{
	/* xorshift64*: jitter only. */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 0x2545F4914F6CDD1Dull;
}

/* ---- connection lifetime ---- */

static void
queue_clear(struct stt *s)
{
	struct out_msg *m, *n;

	for (m = s->qhead; m; m = n) {
		n = m->next;
		free(m);
	}
	s->qhead = s->qtail = NULL;
	s->qlen             = 0;
}

/* Cuts the current wsi loose: an upgraded one is asked for a writeable
 * callback, where the orphan sends its close frame (1000); one still
 * connecting is dropped. */
static void
detach(struct stt *s)
{
	if (s->wsi) {
		lws_set_wsi_user(s->wsi, NULL);
		if (!s->upgraded)
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK,
			    LWS_TO_KILL_ASYNC);
		else
			lws_callback_on_writable(s->wsi);
		s->wsi = NULL;
	}
	if (s->state == STT_CONNECTING || s->state == STT_STARTING
	    || s->state == STT_LIVE) {
		metric_add(s->env->m_active, -1);
		if (s->state == STT_LIVE)
			atomic_fetch_sub(&s->env->a_live, 1);
	}
	queue_clear(s);
	s->rx_len   = 0;
	s->rx_skip  = false;
	s->upgraded = false;
}

static void
stt_free(struct stt *s)
{
	struct stt_env *e = s->env;

	detach(s);
	if (s->prev)
		s->prev->next = s->next;
	else
		e->list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	e->count--;
	sttbuf_fini(&s->buf);
	free(s->scratch);
	free(s->target);
	free(s->rx);
	free(s);
}

static void
release(struct stt *s)
{
	if (s->busy)
		s->doomed = true;
	else
		stt_free(s);
}

static void
emit(struct stt *s, const char *text, bool final, int64_t t0, int64_t t1)
{
	struct stt_transcript t = { text, final, t0, t1 };
	char                  line[512];

	metric_inc(final ? s->env->m_finals : s->env->m_partials);
	log_write(s->env->o.log, final ? LOG_INFO : LOG_DEBUG, &s->ids,
	    "caller%s (%.1f-%.1f s): %s", final ? "" : " (partial)",
	    (double)t0 / 1000, (double)t1 / 1000,
	    clean(line, sizeof(line), text));
	if (!s->cb || !s->cb->transcript)
		return;
	s->busy++;
	s->cb->transcript(s->owner, &t);
	s->busy--;
}

/* The call's session is over: the owner hears it, then s goes. */
static void
finish_done(struct stt *s, const char *how)
{
	const struct stt_cb *cb    = s->cb;
	void                *owner = s->owner;
	struct sttseg_out    o;

	if (sttseg_flush(&s->seg, &o) && s->cb)
		emit(s, o.text, true, s->held_ms0, s->held_ms1);
	LOGI(s->env->o.log, &s->ids,
	    "STT session closed at call end (%s) after %u connection(s)", how,
	    s->conns);
	detach(s);
	s->state = STT_IDLE;
	s->cb    = NULL;
	s->owner = NULL;
	if (cb && cb->done && !s->doomed) {
		s->busy++;
		cb->done(owner);
		s->busy--;
	}
	release(s);
}

static unsigned
backoff_ms(struct stt *s)
{
	const struct stt_env_opts *o = &s->env->o;
	uint64_t                   d = o->backoff_min_ms;

	for (unsigned i = 1; i < s->attempts && d < o->backoff_max_ms; i++)
		d *= 2;
	if (d > o->backoff_max_ms)
		d = o->backoff_max_ms;
	/* Jitter: 75%..125%, so many calls do not reconnect in step. */
	return (unsigned)(d * 3 / 4 + rnd(s->env) % (d / 2 + 1));
}

/* No more STT for this call, and none for new calls for a while. */
static void
give_up(struct stt *s, const char *kind, const char *detail)
{
	struct stt_env *e = s->env;
	char            d[256];

	e->hold_until_us = mono_us() + (uint64_t)e->o.hold_ms * 1000;
	atomic_store(&e->a_hold_until_us, e->hold_until_us);
	metric_inc(e->m_gave_up);
	count_drop(e, "fatal_error");
	LOGE(e->o.log, &s->ids,
	    "STT refused by %s: %s%s%s: no transcripts for this call; new "
	    "STT sessions held back for %u s%s",
	    e->base, kind, *detail ? ": " : "", clean(d, sizeof(d), detail),
	    e->o.hold_ms / 1000,
	    !strcmp(kind, "auth_error") ? " (check ELEVENLABS_API_KEY)"
	        : !strcmp(kind, "invalid_request")
	        ? " (check ELEVENLABS_MODEL, ELEVENLABS_LANGUAGE and the VAD "
	          "settings)"
	        : "");
	detach(s);
	s->state = STT_GAVE_UP;
	if (s->finishing)
		s->finish_at_us = mono_us(); /* the tick ends it */
}

/* The connection is gone (or judged dead): reconnect later. */
static void
conn_lost(struct stt *s, const char *why, const char *detail)
{
	struct stt_env *e     = s->env;
	uint64_t        now   = mono_us();
	bool            live  = s->state == STT_LIVE;
	uint64_t        lived = live ? now - s->live_us : 0;
	unsigned        delay;
	char            d[200];

	detach(s);
	s->state = STT_IDLE;
	if (s->finishing) {
		finish_done(s, why);
		return;
	}
	count_drop(e, why);
	if (s->conn_policy == STTERR_ROUTINE && lived >= 1000 * 1000) {
		/* A session time limit is routine: straight back. */
		s->attempts = 0;
		delay       = 0;
	} else {
		if (lived >= STABLE_US)
			s->attempts = 0;
		s->attempts++;
		delay = backoff_ms(s);
	}
	s->retry_at_us = now + (uint64_t)delay * 1000;
	log_write(e->o.log, s->attempts > 1 ? LOG_WARN : LOG_INFO, &s->ids,
	    "STT connection %u lost (%s%s%s%s%s) after %.1f s: reconnecting "
	    "in %.1f s, replaying %.1f s of audio",
	    s->conns, why, *detail ? ": " : "", clean(d, sizeof(d), detail),
	    s->conn_err_kind ? ", after " : "",
	    s->conn_err_kind ? s->conn_err_kind : "",
	    (double)(now - s->conn_us) / 1e6, delay / 1000.0,
	    ms_of(s, s->buf.len) / 1000.0);
}

/* ---- name resolution ---- */

static void
dns_unref(struct stt_dns *d, bool stop)
{
	bool last;

	pthread_mutex_lock(&d->mu);
	if (stop)
		d->stop = true;
	last = --d->refs == 0;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (last) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static void *
dns_main(void *arg)
{
	struct stt_dns *d = arg;
	char            host[HOST_MAX], addr[INET6_ADDRSTRLEN];

	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		struct addrinfo  hints = { .ai_socktype = SOCK_STREAM };
		struct addrinfo *res = NULL, *r, *pick = NULL;
		int              rc;

		if (!d->want) {
			pthread_cond_wait(&d->cv, &d->mu);
			continue;
		}
		d->want = false;
		memcpy(host, d->host, sizeof(host));
		pthread_mutex_unlock(&d->mu);
		addr[0] = '\0';
		if (!(rc = getaddrinfo(host, NULL, &hints, &res))) {
			/* IPv4 first: the vhost may not do IPv6. */
			for (r = res; r; r = r->ai_next) {
				if (r->ai_family == AF_INET) {
					pick = r;
					break;
				}
				if (r->ai_family == AF_INET6 && !pick)
					pick = r;
			}
			if (pick && pick->ai_family == AF_INET)
				inet_ntop(AF_INET,
				    &((struct sockaddr_in *)pick->ai_addr)
				         ->sin_addr,
				    addr, sizeof(addr));
			else if (pick)
				inet_ntop(AF_INET6,
				    &((struct sockaddr_in6 *)pick->ai_addr)
				         ->sin6_addr,
				    addr, sizeof(addr));
			freeaddrinfo(res);
		}
		pthread_mutex_lock(&d->mu);
		d->gai_err = rc ? rc : addr[0] ? 0 : EAI_NONAME;
		if (addr[0])
			memcpy(d->addr, addr, sizeof(addr));
		d->done_us = mono_us();
	}
	pthread_mutex_unlock(&d->mu);
	dns_unref(d, false);
	return NULL;
}

/* A name to resolve off the loop; an address needs no thread. */
static int
dns_start(struct stt_env *e)
{
	struct in6_addr a6;
	struct in_addr  a4;
	struct stt_dns *d;
	pthread_t       th;

	if (inet_pton(AF_INET, e->url.host, &a4) == 1
	    || inet_pton(AF_INET6, e->url.host, &a6) == 1)
		return 0;
	if (!(d = calloc(1, sizeof(*d))))
		return ENOMEM;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	snprintf(d->host, sizeof(d->host), "%s", e->url.host);
	d->refs = 2;
	d->want = true;
	if (pthread_create(&th, NULL, dns_main, d)) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		free(d);
		return EAGAIN;
	}
	pthread_detach(th);
	e->dns = d;
	return 0;
}

/* Asks for a fresh answer (after a failed connection: the address may
 * have moved). */
static void
dns_refresh(struct stt_env *e)
{
	if (!e->dns)
		return;
	pthread_mutex_lock(&e->dns->mu);
	e->dns->want = true;
	pthread_cond_signal(&e->dns->cv);
	pthread_mutex_unlock(&e->dns->mu);
}

/* The address to connect to: 0 with addr filled; EAGAIN while the first
 * answer is due; EHOSTUNREACH with err filled when the name failed. */
static int
dns_get(struct stt_env *e, char *addr, size_t len, char *err, size_t errlen)
{
	struct stt_dns *d  = e->dns;
	int             rc = 0;

	if (!d) {
		snprintf(addr, len, "%s", e->url.host);
		return 0;
	}
	pthread_mutex_lock(&d->mu);
	if (d->addr[0] && !d->want && mono_us() - d->done_us > DNS_TTL_US) {
		d->want = true; /* answered from the cache meanwhile */
		pthread_cond_signal(&d->cv);
	}
	if (d->gai_err && d->done_us && !d->want) {
		snprintf(err, errlen, "cannot resolve %.100s: %s", d->host,
		    gai_strerror(d->gai_err));
		d->want = true; /* the next try asks again */
		pthread_cond_signal(&d->cv);
		rc = EHOSTUNREACH;
	} else if (d->addr[0]) {
		snprintf(addr, len, "%s", d->addr);
	} else {
		rc = EAGAIN;
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static void
conn_open(struct stt *s)
{
	struct stt_env                *e = s->env;
	struct lws_client_connect_info i;
	struct lws                    *wsi;
	char                           addr[HOST_MAX], err[256];
	int                            rc;

	if ((rc = dns_get(e, addr, sizeof(addr), err, sizeof(err)))) {
		if (rc == EAGAIN) {
			s->retry_at_us = mono_us() + DNS_WAIT_US;
			return;
		}
		s->attempts++;
		s->retry_at_us = mono_us() + (uint64_t)backoff_ms(s) * 1000;
		count_drop(e, "dns_failed");
		log_write(e->o.log, s->attempts > 1 ? LOG_WARN : LOG_INFO,
		    &s->ids, "STT: %s; trying again in %.1f s", err,
		    (double)(s->retry_at_us - mono_us()) / 1e6);
		return;
	}
	s->conn_policy    = STTERR_NONE;
	s->conn_err_kind  = NULL;
	s->peer_close     = 0;
	s->connect_err[0] = '\0';
	s->bad_logged     = 0;
	s->conns++;
	s->conn_us = mono_us();
	metric_inc(e->m_sessions);
	if (s->conns > 1)
		metric_inc(e->m_reconnects);

	memset(&i, 0, sizeof(i));
	i.context             = e->o.context;
	i.vhost               = e->o.vhost;
	i.address             = addr;
	i.port                = e->url.port;
	i.path                = s->target;
	i.host                = e->url.hosthdr;
	i.local_protocol_name = e->o.protocol;
	i.userdata            = s;
	i.pwsi                = &s->wsi;
	if (e->url.tls) {
		i.ssl_connection = LCCSCF_USE_SSL;
		if (e->o.insecure)
			i.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED
			    | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK
			    | LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
	}
	s->state = STT_CONNECTING;
	metric_add(e->m_active, 1);
	s->in_connect = true;
	wsi           = lws_client_connect_via_info(&i);
	s->in_connect = false;
	if (!wsi || s->connect_err[0]) {
		/* After an error inside the call lws owns (or freed) it. */
		s->wsi = s->connect_err[0] ? NULL : wsi;
		dns_refresh(e);
		conn_lost(s, "connect_failed",
		    s->connect_err[0] ? s->connect_err
		                      : "could not start connecting");
		return;
	}
	s->wsi = wsi;
	LOGD(e->o.log, &s->ids, "STT connection %u: connecting to %s",
	    s->conns, e->base);
}

/* ---- sending ---- */

static int
queue_msg(struct stt *s, const uint8_t *pcm, size_t n, bool commit)
{
	char            pt[PREV_TEXT_MAX + 1] = "";
	const char     *prev                  = NULL;
	struct out_msg *m;
	size_t          cap;

	/* previous_text: first chunk of a reconnection only (§2.2). */
	if (s->first_chunk && s->conns > 1
	    && sttmsg_previous_text(pt, PREV_TEXT_MAX, s->seg.last_commit))
		prev = pt;
	cap = sttmsg_chunk_max(n, prev ? strlen(prev) : 0);
	if (!(m = malloc(sizeof(*m) + LWS_PRE + cap)))
		return ENOMEM;
	m->next = NULL;
	m->len  = sttmsg_chunk(
	     (char *)m->buf + LWS_PRE, cap, pcm, n, s->rate, commit, prev);
	if (s->qtail)
		s->qtail->next = m;
	else
		s->qhead = m;
	s->qtail = m;
	s->qlen++;
	s->first_chunk = false;
	lws_callback_on_writable(s->wsi);
	return 0;
}

/* Moves audio from the ring to the socket: chunk_ms pieces in real time,
 * bigger ones paced at CATCHUP x while a replay drains; all of it at the
 * end of the call (flush), then the final commit. */
static void
pump(struct stt *s)
{
	uint64_t now   = mono_us();
	bool     flush = s->finishing;
	double   cap   = 2.0 * (double)s->bytes_per_s;

	if (s->state != STT_LIVE || !s->wsi)
		return;
	s->tokens += (double)(now - s->tokens_us) * (double)s->bytes_per_s
	    * CATCHUP / 1e6;
	if (s->tokens > cap)
		s->tokens = cap;
	s->tokens_us = now;
	while (s->qlen < OUTQ_MAX) {
		size_t un = sttbuf_unsent(&s->buf), n;
		if (!un)
			break;
		n = un > CATCHUP_CHUNKS * s->chunk_bytes
		    ? CATCHUP_CHUNKS * s->chunk_bytes
		    : un;
		if (n > s->chunk_bytes && un <= 2 * s->chunk_bytes)
			n = s->chunk_bytes;
		if (!flush && (n < s->chunk_bytes || s->tokens < (double)n))
			break;
		n = sttbuf_peek(&s->buf, s->scratch, n);
		if (queue_msg(s, s->scratch, n, false))
			return;
		sttbuf_mark_sent(&s->buf, n);
		if (!flush)
			s->tokens -= (double)n;
		metric_add(s->env->m_sent_ms, (int64_t)ms_of(s, n));
		if (s->replay_left) {
			size_t r = n < s->replay_left ? n : s->replay_left;
			s->replay_left -= r;
			metric_add(
			    s->env->m_replayed_ms, (int64_t)ms_of(s, r));
		}
	}
	if (flush && !s->commit_sent && !sttbuf_unsent(&s->buf)
	    && s->qlen < OUTQ_MAX) {
		/* The SDKs' commit: empty audio, commit true (§2.3). */
		if (queue_msg(s, NULL, 0, true) == 0) {
			s->commit_sent = true;
			LOGD(s->env->o.log, &s->ids, "STT: final commit sent");
		}
	}
}

static int
on_writeable(struct stt *s, struct lws *wsi)
{
	struct out_msg *m = s->qhead;
	int             n;

	if (!m)
		return 0;
	s->qhead = m->next;
	if (!s->qhead)
		s->qtail = NULL;
	s->qlen--;
	n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
	free(m);
	if (n < 0) {
		conn_lost(s, "send_failed", "lws_write failed");
		return -1;
	}
	pump(s);
	if (s->qhead)
		lws_callback_on_writable(wsi);
	return 0;
}

/* ---- receiving ---- */

static void
count_bad(struct stt *s, const char *kind, const char *why)
{
	count(s->env, "egress_stt_bad_messages_total",
	    "Messages from the STT server ignored, by kind.", "kind", kind);
	log_write(s->env->o.log,
	    s->bad_logged < BAD_LOG_MAX ? LOG_WARN : LOG_DEBUG, &s->ids,
	    "STT: ignored a message: %s", why);
	s->bad_logged++;
}

static void
session_started(struct stt *s, const struct sttmsg *m)
{
	struct stt_env *e = s->env;
	char            id[80];

	if (s->state != STT_STARTING) {
		count_bad(
		    s, "session_started_again", "a second session_started");
		return;
	}
	s->state   = STT_LIVE;
	s->live_us = mono_us();
	atomic_fetch_add(&e->a_live, 1);
	atomic_store(&e->a_ok_us, s->live_us);
	/* A wrong parameter name is silently ignored by the server, which
	 * then runs on its defaults: the echo is the check (§1.3). */
	if (m->audio_format && strcmp(m->audio_format, s->format)) {
		metric_inc(e->m_mismatch);
		LOGW(e->o.log, &s->ids,
		    "STT session_started: audio_format %.32s, but %s was "
		    "asked for: transcripts will be wrong",
		    m->audio_format, s->format);
	}
	if (m->sample_rate && m->sample_rate != (long)s->rate) {
		metric_inc(e->m_mismatch);
		LOGW(e->o.log, &s->ids,
		    "STT session_started: sample_rate %ld, but %u was asked "
		    "for",
		    m->sample_rate, s->rate);
	}
	s->conn_base   = sttbuf_start(&s->buf);
	s->replay_left = sttbuf_rewind(&s->buf);
	s->first_chunk = true;
	s->tokens      = (double)s->bytes_per_s; /* one second at once */
	s->tokens_us   = mono_us();
	LOGI(e->o.log, &s->ids,
	    "STT connection %u: session %s started (%s%s%s) after %.1f s%s",
	    s->conns,
	    clean(id, sizeof(id), m->session_id ? m->session_id : "?"),
	    m->audio_format ? m->audio_format : "no config",
	    m->sample_rate ? ", " : "", m->sample_rate ? "rate ok" : "",
	    (double)(s->live_us - s->conn_us) / 1e6,
	    s->conns > 1 && s->buf.len
	        ? ", replaying the audio since the last commit"
	        : "");
	pump(s);
}

/* Offsets of the segment a commit closes: from its first voiced frame
 * (else the start of the uncommitted audio) to its last voiced one
 * (else what was sent). */
static void
segment_times(struct stt *s, int64_t *t0, int64_t *t1)
{
	uint64_t a = sttbuf_start(&s->buf), b = sttbuf_sent_end(&s->buf);

	if (s->voiced && s->voiced_first >= a && s->voiced_first < b)
		a = s->voiced_first;
	if (s->voiced && s->voiced_end > a && s->voiced_end < b)
		b = s->voiced_end;
	*t0 = offset_ms(s, a);
	*t1 = offset_ms(s, b);
}

static void
committed(struct stt *s, const struct sttmsg *m, bool timed)
{
	struct stt_env   *e = s->env;
	struct sttseg_out o;
	int64_t           b0, b1, t0 = -1, t1 = -1;

	sttseg_commit(
	    &s->seg, timed, m->text, m->t_start, m->t_end, mono_us(), &o);
	if (o.ignored)
		metric_inc(e->m_ignored);
	segment_times(s, &b0, &b1);
	if (o.final) {
		if (o.t0 >= 0 && o.t1 >= o.t0) {
			/* Word times count from the connection's audio. */
			t0 = offset_ms(s, s->conn_base)
			    + (int64_t)(o.t0 * 1000);
			t1 = offset_ms(s, s->conn_base)
			    + (int64_t)(o.t1 * 1000);
		} else if (s->seg.timed && !(o.boundary && timed)) {
			/* A held commit: the times of when it came. */
			t0 = s->held_ms0;
			t1 = s->held_ms1;
		} else {
			t0 = b0;
			t1 = b1;
		}
	}
	if (o.boundary) {
		metric_inc(o.empty ? e->m_commits_empty : e->m_commits);
		s->held_ms0 = b0;
		s->held_ms1 = b1;
		sttbuf_commit(&s->buf);
		s->voiced = false;
		if (s->replay_left > sttbuf_unsent(&s->buf))
			s->replay_left = sttbuf_unsent(&s->buf);
	}
	if (o.final)
		emit(s, o.text, true, t0, t1);
	if (s->doomed || !s->cb)
		return;
	if (o.boundary && s->finishing && s->commit_sent)
		finish_done(s, "committed");
}

static void
error_msg(struct stt *s, const struct sttmsg *m)
{
	struct stt_env *e = s->env;
	char            d[256];

	count_error(e, m->err_kind);
	s->conn_policy   = m->policy;
	s->conn_err_kind = m->err_kind;
	switch (m->policy) {
	case STTERR_FATAL:
		give_up(s, m->err_kind, m->error);
		return;
	case STTERR_ROUTINE:
		LOGI(e->o.log, &s->ids, "STT: %s%s%s", m->type_name,
		    *m->error ? ": " : "", clean(d, sizeof(d), m->error));
		return;
	default:
		LOGW(e->o.log, &s->ids, "STT error %s%s%s", m->type_name,
		    *m->error ? ": " : "", clean(d, sizeof(d), m->error));
		return;
	}
}

static void
deliver(struct stt *s, const char *json, size_t len)
{
	struct sttmsg m;
	const char   *why;
	char          w[160];
	int64_t       t0, t1;

	if (sttmsg_parse(&m, json, len)) {
		snprintf(w, sizeof(w), "%s (%zu bytes)", m.why, len);
		count_bad(s, "bad_json", w);
		goto out;
	}
	if (s->state != STT_LIVE && m.type != STTMSG_SESSION_STARTED
	    && m.type != STTMSG_ERROR) {
		snprintf(
		    w, sizeof(w), "%s before session_started", m.type_name);
		count_bad(s, "early", w);
		goto out;
	}
	switch (m.type) {
	case STTMSG_SESSION_STARTED:
		session_started(s, &m);
		break;
	case STTMSG_PARTIAL:
	case STTMSG_FINAL:
	case STTMSG_FINAL_TS:
		/* final_transcript* is settled but not committed: a better
		 * partial (§3.3). */
		if (!sttseg_partial(&s->seg, m.text, &why)) {
			count(s->env, "egress_stt_partials_dropped_total",
			    "Partial transcripts not passed on, by why.",
			    "why", why);
			break;
		}
		segment_times(s, &t0, &t1);
		t1 = offset_ms(s, sttbuf_sent_end(&s->buf));
		emit(s, m.text, false, t0, t1);
		break;
	case STTMSG_COMMITTED:
	case STTMSG_COMMITTED_TS:
		committed(s, &m, m.type == STTMSG_COMMITTED_TS);
		break;
	case STTMSG_ENTITIES:
		LOGD(
		    s->env->o.log, &s->ids, "STT: %zu entities", m.n_entities);
		break;
	case STTMSG_ERROR:
		error_msg(s, &m);
		break;
	case STTMSG_UNKNOWN:
		snprintf(
		    w, sizeof(w), "unknown message_type '%.64s'", m.type_name);
		count_bad(s, "unknown_type", w);
		break;
	case STTMSG_BAD:
		break;
	}
out:
	sttmsg_clear(&m);
}

/* A piece of a message: reassembled before parsing (§8.4). */
static void
on_receive(struct stt *s, struct lws *wsi, const uint8_t *in, size_t len)
{
	bool fin = lws_is_final_fragment(wsi);

	if (s->rx_len == 0 && !s->rx_skip) {
		s->rx_bin = lws_frame_is_binary(wsi);
		if (fin) {
			if (s->rx_bin)
				count_bad(s, "binary", "a binary frame");
			else
				deliver(s, (const char *)in, len);
			return;
		}
	}
	if (!s->rx_skip) {
		if (s->rx_len + len > RX_MAX) {
			count_bad(s, "too_big", "a message over 512 KiB");
			s->rx_skip = true;
			s->rx_len  = 0;
		} else {
			if (s->rx_len + len > s->rx_cap) {
				size_t   cap = s->rx_cap ? s->rx_cap : 8192;
				uint8_t *p;
				while (cap < s->rx_len + len)
					cap *= 2;
				if (!(p = realloc(s->rx, cap))) {
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
		size_t n    = s->rx_len;
		bool   skip = s->rx_skip;
		s->rx_len   = 0;
		s->rx_skip  = false;
		if (!skip) {
			if (s->rx_bin)
				count_bad(s, "binary", "a binary frame");
			else
				deliver(s, (const char *)s->rx, n);
		}
	}
}

static void
append_header(struct stt *s, struct lws *wsi, void *in, size_t len)
{
	unsigned char **p   = in;
	unsigned char  *end = *p + len;
	const char     *key = s->env->o.api_key ? s->env->o.api_key : "";

	if (lws_add_http_header_by_name(wsi,
	        (const unsigned char *)"xi-api-key:",
	        (const unsigned char *)key, (int)strlen(key), p, end))
		LOGW(s->env->o.log, &s->ids,
		    "STT: no room for the xi-api-key header");
}

/* The upgrade failed. 401 and 403 are how a bad key can also look
 * (§1.2): as fatal as an auth_error. */
static void
connect_error(struct stt *s, struct lws *wsi, const char *detail)
{
	unsigned status = lws_http_client_http_response(wsi);
	char     d[200];

	dns_refresh(s->env);
	if (status == 401 || status == 403) {
		snprintf(d, sizeof(d), "HTTP %u at the upgrade", status);
		count_error(s->env, "auth_error");
		s->wsi = NULL;
		give_up(s, "auth_error", d);
		return;
	}
	if (status && status != 101) {
		snprintf(d, sizeof(d), "HTTP %u at the upgrade (%s)", status,
		    detail);
		conn_lost(s, "connect_failed", d);
		return;
	}
	conn_lost(s, "connect_failed", detail);
}

int
stt_lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct stt *s = user;
	char        detail[160];

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (s)
			append_header(s, wsi, in, len);
		return 0;

	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (!s)
			return 0;
		snprintf(detail, sizeof(detail), "%s",
		    in ? (const char *)in : "connection error");
		lws_set_wsi_user(wsi, NULL);
		if (s->in_connect) {
			snprintf(s->connect_err, sizeof(s->connect_err), "%s",
			    detail);
			return 0;
		}
		s->wsi = NULL; /* lws is freeing it */
		s->busy++;
		connect_error(s, wsi, detail);
		s->busy--;
		if (s->doomed)
			stt_free(s);
		return 0;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!s) {
			lws_callback_on_writable(wsi); /* orphan: goodbye */
			return 0;
		}
		s->state       = STT_STARTING;
		s->upgraded    = true;
		s->upgraded_us = mono_us();
		LOGD(s->env->o.log, &s->ids,
		    "STT connection %u: upgraded, waiting for session_started",
		    s->conns);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!s)
			return 0;
		s->busy++;
		on_receive(s, wsi, in, len);
		s->busy--;
		if (s->doomed)
			stt_free(s);
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!s) {
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

	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (!s)
			return 0;
		s->wsi = NULL;
		lws_set_wsi_user(wsi, NULL);
		if (s->peer_close)
			snprintf(detail, sizeof(detail),
			    "server closed the socket (%d)", s->peer_close);
		else
			snprintf(detail, sizeof(detail),
			    "socket closed without a close frame");
		s->busy++;
		if (s->state == STT_GAVE_UP)
			; /* already said */
		else
			conn_lost(s, "closed", detail);
		s->busy--;
		if (s->doomed)
			stt_free(s);
		return 0;

	default:
		return 0;
	}
}

/* ---- audio in ---- */

/* Marks voiced 20 ms frames, for transcript offsets. */
static void
voice(struct stt *s, const uint8_t *pcm, size_t len, uint64_t pos)
{
	size_t frame = s->bytes_per_s * VOICE_MS / 1000;

	for (size_t at = 0; at + frame <= len; at += frame) {
		double sum = 0;
		for (size_t i = at; i + 1 < at + frame; i += 2) {
			int16_t v = (int16_t)(pcm[i] | pcm[i + 1] << 8);
			sum += (double)v * v;
		}
		if (sum / (double)(frame / 2) < VOICE_MEAN_SQ)
			continue;
		if (!s->voiced) {
			s->voiced       = true;
			s->voiced_first = pos + at;
		}
		s->voiced_end = pos + at + frame;
	}
}

static void
append(struct stt *s, const uint8_t *pcm, size_t len)
{
	size_t lost;

	voice(s, pcm, len, sttbuf_end(&s->buf));
	sttbuf_append(&s->buf, pcm, len, &lost);
	if (lost)
		metric_add(s->env->m_lost_ms, (int64_t)ms_of(s, lost));
	pump(s);
}

/* Places the timeline's start on the call's clock, from the first audio:
 * a chunk ends when it arrived, so the timeline starts one chunk
 * earlier. Later chunks are assumed to follow without gaps. */
static void
anchor(struct stt *s, uint64_t ts_us, size_t len)
{
	uint64_t ts = ts_us ? ts_us : wall_us();
	int64_t  at = ts > s->call_start_us
	     ? (int64_t)((ts - s->call_start_us) / 1000)
	     : 0;

	at -= (int64_t)ms_of(s, len);
	s->anchor_ms = at > 0 ? at : 0;
	s->anchored  = true;
}

void
stt_audio(struct stt *s, const uint8_t *pcm, size_t len, uint64_t ts_us)
{
	if (!s || !s->cb || s->state == STT_GAVE_UP || s->finishing)
		return;
	len &= ~(size_t)1;
	if (!len)
		return;
	if (!s->anchored)
		anchor(s, ts_us, len);
	s->last_audio_us = mono_us();
	append(s, pcm, len);
}

/* ---- the tick ---- */

static void
tick_one(struct stt *s, uint64_t now)
{
	struct stt_env   *e = s->env;
	struct sttseg_out o;

	if (s->finishing && now >= s->finish_at_us) {
		finish_done(s,
		    s->state == STT_GAVE_UP || s->state == STT_IDLE
		        ? "no session"
		        : "no committed transcript in time");
		return;
	}
	switch (s->state) {
	case STT_IDLE:
		if (s->finishing)
			return;
		if (now < e->hold_until_us) {
			if (!s->held_logged)
				LOGW(e->o.log, &s->ids,
				    "STT held back after %s: no transcripts "
				    "for %.0f s",
				    atomic_load(&e->a_err_kind)
				        ? atomic_load(&e->a_err_kind)
				        : "an error",
				    (double)(e->hold_until_us - now) / 1e6);
			s->held_logged = true;
			return;
		}
		if (now >= s->retry_at_us)
			conn_open(s);
		return;
	case STT_CONNECTING:
		if (now - s->conn_us >= CONNECT_TIMEOUT_US)
			conn_lost(s, "connect_timeout", "no upgrade in 10 s");
		return;
	case STT_STARTING:
		if (now - s->upgraded_us
		    >= (uint64_t)e->o.start_timeout_ms * 1000)
			conn_lost(
			    s, "start_timeout", "no session_started in time");
		return;
	case STT_LIVE:
		/* The call sends no audio (a restarting ingress, a gap):
		 * silence keeps the server's idle close away (§5.2). */
		if (!s->finishing && s->last_audio_us
		    && now - s->last_audio_us >= QUIET_AFTER_US) {
			size_t n = s->bytes_per_s * TICK_US / 1000000;
			if (!s->anchored)
				anchor(s, 0, n);
			memset(s->scratch, 0, n);
			metric_add(e->m_silence_ms, (int64_t)ms_of(s, n));
			append(s, s->scratch, n);
		} else {
			pump(s);
		}
		if (sttseg_poll(&s->seg, now, &o))
			emit(s, o.text, true, s->held_ms0, s->held_ms1);
		return;
	case STT_GAVE_UP:
		return;
	}
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct stt_env *e   = lws_container_of(sul, struct stt_env, sul);
	uint64_t        now = mono_us();
	struct stt     *s, *next;

	for (s = e->list; s; s = next) {
		next = s->next;
		s->busy++;
		tick_one(s, now);
		s->busy--;
		if (s->doomed)
			stt_free(s);
	}
	lws_sul_schedule(e->o.context, 0, &e->sul, tick, TICK_US);
}

/* ---- the API ---- */

int
stt_env_alloc(struct stt_env **out, const struct stt_env_opts *o, char *err,
    size_t errlen)
{
	struct stt_env *e = calloc(1, sizeof(*e));
	struct metrics *m = o->metrics;
	int             rc;

	if (!e)
		return ENOMEM;
	e->o = *o;
	if (!e->o.url)
		e->o.url = STT_DEFAULT_URL;
	if (!e->o.model || !*e->o.model)
		e->o.model = STT_DEFAULT_MODEL;
	if (!e->o.language)
		e->o.language = "en";
#define DEF(f, v)                                                             \
	if (!e->o.f)                                                          \
	e->o.f = (v)
	DEF(vad_silence_s, 0.8);
	DEF(vad_threshold, 0.4);
	DEF(min_speech_ms, 100);
	DEF(min_silence_ms, 100);
	DEF(chunk_ms, 100);
	DEF(replay_ms, 30000);
	DEF(close_wait_ms, 2000);
	DEF(start_timeout_ms, 5000);
	DEF(backoff_min_ms, 500);
	DEF(backoff_max_ms, 10000);
	DEF(hold_ms, 60000);
#undef DEF
	if (e->o.backoff_max_ms < e->o.backoff_min_ms)
		e->o.backoff_max_ms = e->o.backoff_min_ms;
	if ((rc = parse_url(&e->url, e->o.url, err, errlen))) {
		free(e);
		return rc;
	}
	snprintf(e->base, sizeof(e->base), "%s://%s%s",
	    e->url.tls ? "wss" : "ws", e->url.hosthdr, e->url.path);
	if ((rc = dns_start(e))) {
		snprintf(err, errlen, "cannot start a resolver thread");
		free(e);
		return rc;
	}
	e->rng = wall_us() | 1;

	e->m_sessions      = metrics_counter(m, "egress_stt_sessions_total",
	         "STT connections opened (reconnections included).", NULL);
	e->m_active        = metrics_gauge(m, "egress_stt_sessions_active",
	           "STT connections open (connecting or live).", NULL);
	e->m_reconnects    = metrics_counter(m, "egress_stt_reconnects_total",
	       "STT connections opened again for a call.", NULL);
	e->m_partials      = metrics_counter(m, "egress_stt_transcripts_total",
	         "Caller transcripts passed on, by kind.", "kind=\"partial\"");
	e->m_finals        = metrics_counter(m, "egress_stt_transcripts_total",
	           "Caller transcripts passed on, by kind.", "kind=\"final\"");
	e->m_commits       = metrics_counter(m, "egress_stt_commits_total",
	          "Commits from the STT server, by whether they had text.",
	          "text=\"yes\"");
	e->m_commits_empty = metrics_counter(m, "egress_stt_commits_total",
	    "Commits from the STT server, by whether they had text.",
	    "text=\"no\"");
	e->m_sent_ms     = metrics_counter(m, "egress_stt_audio_sent_ms_total",
	        "Milliseconds of caller audio sent to STT (replays included).",
	        NULL);
	e->m_replayed_ms = metrics_counter(m,
	    "egress_stt_audio_replayed_ms_total",
	    "Milliseconds of audio sent again after a reconnection.", NULL);
	e->m_lost_ms     = metrics_counter(m, "egress_stt_audio_lost_ms_total",
	        "Milliseconds of audio dropped unsent (over the replay bound).",
	        NULL);
	e->m_silence_ms
	    = metrics_counter(m, "egress_stt_silence_filled_ms_total",
	        "Milliseconds of silence sent while the call sent no audio.",
	        NULL);
	e->m_mismatch
	    = metrics_counter(m, "egress_stt_config_mismatches_total",
	        "session_started configs that differ from the request.", NULL);
	e->m_gave_up = metrics_counter(m, "egress_stt_gave_up_total",
	    "Calls whose transcription stopped on a fatal STT error.", NULL);
	e->m_ignored = metrics_counter(m, "egress_stt_commits_ignored_total",
	    "Commit messages not used (the twin of one already used).", NULL);
	lws_sul_schedule(e->o.context, 0, &e->sul, tick, TICK_US);
	*out = e;
	return 0;
}

void
stt_env_free(struct stt_env *e)
{
	if (!e)
		return;
	lws_sul_cancel(&e->sul);
	while (e->list) {
		e->list->busy = 0;
		stt_free(e->list);
	}
	if (e->dns)
		dns_unref(e->dns, true);
	free(e);
}

size_t
stt_env_count(const struct stt_env *e)
{
	return e ? e->count : 0;
}

void
stt_env_describe(struct stt_env *e, char *buf, size_t len)
{
	uint64_t    now  = mono_us();
	uint64_t    hold = atomic_load(&e->a_hold_until_us);
	uint64_t    eus  = atomic_load(&e->a_err_us);
	const char *kind = atomic_load(&e->a_err_kind);
	int         n;

	n = snprintf(buf, len, "stt=%d live", atomic_load(&e->a_live));
	if (kind && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n,
		    ", last error %s %.0f s ago", kind,
		    (double)(now - eus) / 1e6);
	if (hold > now && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n,
		    ", new sessions held %.0f s more",
		    (double)(hold - now) / 1e6);
}

int
stt_open(struct stt **out, struct stt_env *e, const struct log_call *ids,
    unsigned rate, uint64_t call_start_us, const struct stt_cb *cb,
    void *owner)
{
	struct stt *s;
	size_t      tlen = strlen(e->url.path) + 1024;
	int         rc;

	if (rate != 8000 && rate != 16000 && rate != 22050 && rate != 24000
	    && rate != 44100 && rate != 48000)
		return EINVAL;
	if (!(s = calloc(1, sizeof(*s))))
		return ENOMEM;
	s->env   = e;
	s->cb    = cb;
	s->owner = owner;
	s->rate  = rate;
	snprintf(s->format, sizeof(s->format), "pcm_%u", rate);
	snprintf(s->call_sid, sizeof(s->call_sid), "%s",
	    ids && ids->call_sid ? ids->call_sid : "");
	snprintf(s->stream_sid, sizeof(s->stream_sid), "%s",
	    ids && ids->stream_sid ? ids->stream_sid : "");
	s->ids.call_sid   = s->call_sid;
	s->ids.stream_sid = s->stream_sid;
	s->call_start_us  = call_start_us ? call_start_us : wall_us();
	s->bytes_per_s    = (size_t)rate * 2;
	s->chunk_bytes    = s->bytes_per_s * e->o.chunk_ms / 1000 & ~(size_t)1;
	if (!s->chunk_bytes)
		s->chunk_bytes = 2;
	sttseg_init(&s->seg, e->o.timestamps, 300);
	s->state         = STT_IDLE;
	s->last_audio_us = mono_us();
	if (!(s->target = malloc(tlen))
	    || !(s->scratch = malloc(CATCHUP_CHUNKS * s->chunk_bytes
	             + s->bytes_per_s * TICK_US / 1000000 + 2))
	    || sttbuf_init(&s->buf,
	        (s->bytes_per_s * e->o.replay_ms / 1000) & ~(size_t)1)) {
		rc = ENOMEM;
		goto fail;
	}
	if ((rc = build_target(e, rate, s->target, tlen))
	    || strlen(s->target) > TARGET_MAX) {
		rc = EINVAL;
		goto fail;
	}
	s->next = e->list;
	if (e->list)
		e->list->prev = s;
	e->list = s;
	e->count++;
	LOGI(e->o.log, &s->ids,
	    "STT: transcribing the caller with %s at %s (%s, language %s)",
	    e->o.model, e->base, s->format,
	    *e->o.language ? e->o.language : "auto");
	/* Connect now unless a hold is on; the tick retries otherwise. */
	if (mono_us() >= e->hold_until_us)
		conn_open(s);
	*out = s;
	return 0;
fail:
	sttbuf_fini(&s->buf);
	free(s->scratch);
	free(s->target);
	free(s);
	return rc;
}

void
stt_finish(struct stt *s)
{
	if (!s || !s->cb || s->finishing)
		return;
	s->finishing = true;
	switch (s->state) {
	case STT_LIVE:
	case STT_STARTING:
	case STT_CONNECTING:
		s->finish_at_us
		    = mono_us() + (uint64_t)s->env->o.close_wait_ms * 1000;
		pump(s);
		break;
	default:
		s->finish_at_us = mono_us(); /* the tick ends it */
		break;
	}
}

void
stt_set_owner(struct stt *s, const struct stt_cb *cb, void *owner)
{
	if (!s || !s->cb)
		return;
	s->cb    = cb;
	s->owner = owner;
}

void
stt_close(struct stt *s)
{
	if (!s || !s->cb)
		return;
	LOGD(s->env->o.log, &s->ids, "STT session dropped by its owner");
	s->cb    = NULL;
	s->owner = NULL;
	release(s);
}
