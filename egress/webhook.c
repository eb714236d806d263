/*
 * webhook.c - the delivery thread: outbox → libcurl multi → frontend.
 *
 * Failed attempts, whatever the status, are retried until the event's max
 * age: a 4xx usually means the frontend is misconfigured or mid-deploy
 * (401 after a key rotation, 404, a missing table column), which people
 * fix, and then every event still arrives; giving up on them would lose
 * data silently. 408 and 429 are just retries like any other. The age
 * limit and the dead_letter table bound what one bad event can hold up.
 * Redirects are not followed (a POST must not silently become a GET).
 */
#include "webhook.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define HEADERS_MAX 8192
#define HEADERS_FILE_MAX 65536
#define HOUSEKEEP_US (1000 * 1000)
#define PRUNE_EVERY_US (60ull * 1000 * 1000)
#define PRUNE_ENDED_US (3600ull * 1000 * 1000)
#define PRUNE_ANY_US (7ull * 86400 * 1000 * 1000)
#define POLL_MAX_MS 1000
#define ERR_MAX 160

/* ---- signature, headers, URL ----------------------------------------- */

void
webhook_sign(const char *secret, const void *body, size_t len,
    char out[WEBHOOK_SIG_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int  n = 0;

	HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &n);
	memcpy(out, "sha256=", 7);
	for (unsigned i = 0; i < n && i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
	out[7 + 2 * (n < 32 ? n : 32)] = 0;
}

static bool
is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *const reserved[]
    = { "content-type", "content-length", "host", "transfer-encoding" };

static bool
reserved_name(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == n
		    && !strncasecmp(name, reserved[i], n))
			return true;
	return n >= 10 && !strncasecmp(name, "x-exoplex-", 10);
}

static void
trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
		(*s)++;
	while (*e > *s
	    && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

static int
parse_entries(const char *p, char *buf, size_t len, char *err, size_t errlen)
{
	size_t used = 0;
	int    idx  = 0;

	buf[0] = 0;
	while (*p) {
		const char *nl = strchr(p, '\n'), *ss = strstr(p, ";;");
		const char *end = nl && (!ss || nl < ss) ? nl : ss;
		const char *next, *s, *e, *colon;

		if (!end)
			end = p + strlen(p);
		next = *end ? end + (*end == '\n' ? 1 : 2) : end;
		s = p, e = end;
		p = next;
		trim(&s, &e);
		if (s == e)
			continue;
		idx++;
		if (!(colon = memchr(s, ':', (size_t)(e - s)))) {
			snprintf(err, errlen,
			    "header %d is not 'Name: value' (no ':')", idx);
			return EINVAL;
		}
		const char *ns = s, *ne = colon, *vs = colon + 1, *ve = e;
		trim(&ns, &ne);
		trim(&vs, &ve);
		if (ns == ne) {
			snprintf(err, errlen, "header %d has no name", idx);
			return EINVAL;
		}
		for (const char *q = ns; q < ne; q++)
			if (!is_tchar((unsigned char)*q)) {
				snprintf(err, errlen,
				    "header %d: name '%.*s' is not an HTTP "
				    "token",
				    idx, (int)(ne - ns), ns);
				return EINVAL;
			}
		if (reserved_name(ns, (size_t)(ne - ns))) {
			snprintf(err, errlen,
			    "header %d: '%.*s' is set by exoplex and cannot "
			    "be replaced",
			    idx, (int)(ne - ns), ns);
			return EINVAL;
		}
		if (vs == ve) {
			snprintf(err, errlen,
			    "header %d ('%.*s') has no value", idx,
			    (int)(ne - ns), ns);
			return EINVAL;
		}
		for (const char *q = vs; q < ve; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t') {
				snprintf(err, errlen,
				    "header %d ('%.*s'): control character "
				    "in the value",
				    idx, (int)(ne - ns), ns);
				return EINVAL;
			}
		size_t need = (size_t)(ne - ns) + 2 + (size_t)(ve - vs) + 1;
		if (used + need + 1 > len) {
			snprintf(
			    err, errlen, "headers longer than %zu bytes", len);
			return E2BIG;
		}
		used += (size_t)snprintf(buf + used, len - used,
		    "%.*s: %.*s\n", (int)(ne - ns), ns, (int)(ve - vs), vs);
	}
	return 0;
}

int
webhook_headers_parse(
    const char *spec, char *buf, size_t len, char *err, size_t errlen)
{
	FILE  *f;
	char  *text;
	size_t n;
	int    rc;

	if (!len)
		return E2BIG;
	buf[0] = 0;
	if (!spec || !*spec)
		return 0;
	if (spec[0] != '@')
		return parse_entries(spec, buf, len, err, errlen);
	if (!(f = fopen(spec + 1, "r"))) {
		rc = errno;
		snprintf(err, errlen, "cannot read '%s': %s", spec + 1,
		    strerror(rc));
		return rc;
	}
	if (!(text = malloc(HEADERS_FILE_MAX + 1))) {
		fclose(f);
		return ENOMEM;
	}
	n       = fread(text, 1, HEADERS_FILE_MAX + 1, f);
	rc      = ferror(f) ? EIO : 0;
	text[n] = 0;
	fclose(f);
	if (rc)
		snprintf(err, errlen, "cannot read '%s'", spec + 1);
	else if (n > HEADERS_FILE_MAX || strlen(text) != n) {
		snprintf(err, errlen,
		    "'%s' is not a headers file (binary, "
		    "or over 64 KB)",
		    spec + 1);
		rc = EINVAL;
	} else
		rc = parse_entries(text, buf, len, err, errlen);
	free(text);
	return rc;
}

int
webhook_check_headers(const char *spec, char *err, size_t errlen)
{
	char *buf = malloc(HEADERS_MAX);
	int   rc;

	if (!buf)
		return ENOMEM;
	rc = webhook_headers_parse(spec, buf, HEADERS_MAX, err, errlen);
	free(buf);
	return rc ? EINVAL : 0;
}

int
webhook_check_url(const char *url, char *err, size_t errlen)
{
	const char *h;

	if (!strncasecmp(url, "http://", 7))
		h = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		h = url + 8;
	else {
		snprintf(err, errlen, "'%s' is not an http:// or https:// URL",
		    url);
		return EINVAL;
	}
	if (!*h || *h == '/' || *h == ':' || strpbrk(url, " \t\r\n")) {
		snprintf(
		    err, errlen, "'%s' has no host or contains spaces", url);
		return EINVAL;
	}
	return 0;
}

/* ---- the breaker ------------------------------------------------------ */

void
wh_breaker_init(struct wh_breaker *b, unsigned failures, uint64_t probe_us)
{
	memset(b, 0, sizeof(*b));
	b->failures = failures ? failures : 1;
	b->probe_us = probe_us;
}

size_t
wh_breaker_room(struct wh_breaker *b, uint64_t now_us, size_t inflight)
{
	if (b->state == WH_OPEN && now_us >= b->until_us)
		b->state = WH_HALF_OPEN;
	switch (b->state) {
	case WH_CLOSED:
		return SIZE_MAX;
	case WH_HALF_OPEN:
		return inflight ? 0 : 1;
	default:
		return 0;
	}
}

bool
wh_breaker_done(struct wh_breaker *b, bool ok, uint64_t now_us)
{
	if (ok) {
		bool was = b->state != WH_CLOSED;
		b->state = WH_CLOSED;
		b->run   = 0;
		return was;
	}
	b->run++;
	if (b->state == WH_HALF_OPEN
	    || (b->state == WH_CLOSED && b->run >= b->failures)) {
		b->state    = WH_OPEN;
		b->until_us = now_us + b->probe_us;
	}
	return false;
}

/* ---- the webhook ------------------------------------------------------ */

struct req {
	CURL               *h;
	struct curl_slist  *hdrs;
	struct outbox_event ev;
	bool                busy;
	char                errbuf[CURL_ERROR_SIZE];
};

struct webhook {
	struct webhook_opts  o;
	char                *url;
	char                *secret;
	struct curl_slist   *base; /* headers every request carries */
	struct outbox       *wr; /* enqueuing thread's connection */
	struct outbox       *rd; /* delivery thread's connection */
	CURLM               *multi;
	pthread_t            thr;
	bool                 thr_up;
	bool                 curl_up;
	atomic_bool          stop;
	struct req          *reqs;
	size_t               nreqs, inflight;
	int64_t             *ids; /* in flight, for outbox_due's skip */
	struct outbox_event *due;
	struct wh_breaker    br;
	uint64_t             rng;
	/* For webhook_state (the admin thread). */
	atomic_int      state; /* enum wh_breaker_state */
	atomic_uint     run; /* failures in a row */
	_Atomic int64_t backlog;
	pthread_mutex_t mu;
	char            last_error[ERR_MAX];

	struct metric *m_queued[4], *m_queue_errors, *m_delivered, *m_failed,
	    *m_dead, *m_dead_rows, *m_backlog, *m_breaker, *m_inflight, *m_lag;
};

static const char *const event_names[4]
    = { "call.started", "transcript", "dtmf", "call.ended" };

static uint32_t
rnd32(struct webhook *w)
{
	/* xorshift64*: jitter only needs to be spread, not secret. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (uint32_t)((w->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static void
set_error(struct webhook *w, const char *e)
{
	pthread_mutex_lock(&w->mu);
	snprintf(w->last_error, sizeof(w->last_error), "%s", e);
	pthread_mutex_unlock(&w->mu);
}

/* The call's ids for log lines, from the body (sids need no escaping, so
 * any parse problem just leaves them out). */
struct ids {
	char            call_sid[96], stream_sid[96];
	struct log_call lc;
};

static const struct log_call *
ids_of(struct ids *x, const struct outbox_event *ev)
{
	cJSON *o = cJSON_Parse(ev->body);
	cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "call_sid");

	snprintf(x->call_sid, sizeof(x->call_sid), "%s",
	    cJSON_IsString(c) ? c->valuestring : "");
	snprintf(x->stream_sid, sizeof(x->stream_sid), "%s", ev->call);
	cJSON_Delete(o);
	x->lc = (struct log_call) { x->call_sid, x->stream_sid };
	return &x->lc;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static int
req_start(struct webhook *w, struct req *r)
{
	char               line[128], sig[WEBHOOK_SIG_LEN];
	struct curl_slist *l    = NULL, *t;
	size_t             blen = strlen(r->ev.body);

	for (const struct curl_slist *b = w->base; b; b = b->next)
		if (!(t = curl_slist_append(l, b->data)))
			goto fail;
		else
			l = t;
	snprintf(line, sizeof(line), "X-Exoplex-Event: %s", r->ev.event);
	if (!(t = curl_slist_append(l, line)))
		goto fail;
	l = t;
	snprintf(line, sizeof(line), "X-Exoplex-Delivery: %s", r->ev.delivery);
	if (!(t = curl_slist_append(l, line)))
		goto fail;
	l = t;
	if (w->secret) {
		webhook_sign(w->secret, r->ev.body, blen, sig);
		snprintf(line, sizeof(line), "X-Exoplex-Signature: %s", sig);
		if (!(t = curl_slist_append(l, line)))
			goto fail;
		l = t;
	}
	r->hdrs = l;
	curl_easy_reset(r->h);
	r->errbuf[0] = 0;
	curl_easy_setopt(r->h, CURLOPT_URL, w->url);
	curl_easy_setopt(r->h, CURLOPT_POST, 1L);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, r->ev.body);
	curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE, (long)blen);
	curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(
	    r->h, CURLOPT_CONNECTTIMEOUT_MS, w->o.connect_timeout_ms);
	curl_easy_setopt(r->h, CURLOPT_TIMEOUT_MS, w->o.timeout_ms);
	curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->h, CURLOPT_USERAGENT, "exoplex-egress");
	curl_easy_setopt(r->h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (curl_multi_add_handle(w->multi, r->h) != CURLM_OK)
		goto fail;
	r->busy = true;
	w->inflight++;
	return 0;
fail:
	curl_slist_free_all(l);
	r->hdrs = NULL;
	return ENOMEM;
}

static void
update_ids(struct webhook *w)
{
	size_t k = 0;

	for (size_t i = 0; i < w->nreqs; i++)
		if (w->reqs[i].busy)
			w->ids[k++] = w->reqs[i].ev.id;
	metric_set(w->m_inflight, (int64_t)w->inflight);
}

/* Starts up to room due events. Returns how many started; *next gets the
 * wall time of the earliest waiting one. */
static size_t
start_due(struct webhook *w, uint64_t now, size_t room, uint64_t *next)
{
	size_t n = 0, started = 0, k = 0;

	if (room > w->nreqs - w->inflight)
		room = w->nreqs - w->inflight;
	*next = UINT64_MAX;
	if (!room)
		return 0;
	if (outbox_due(
	        w->rd, now, w->ids, w->inflight, w->due, room, &n, next))
		return 0;
	if (n)
		LOGD(w->o.log, NULL, "webhooks: sending %zu (%zu in flight)",
		    n, w->inflight);
	for (size_t i = 0; i < n; i++) {
		while (k < w->nreqs && w->reqs[k].busy)
			k++;
		struct req *r = &w->reqs[k];
		r->ev         = w->due[i];
		memset(&w->due[i], 0, sizeof(w->due[i]));
		if (req_start(w, r)) {
			outbox_event_clear(&r->ev);
			continue;
		}
		started++;
	}
	for (size_t i = 0; i < n; i++)
		outbox_event_clear(&w->due[i]);
	update_ids(w);
	return started;
}

static void
req_done(struct webhook *w, struct req *r, CURLcode res)
{
	long                   status = 0;
	char                   why[ERR_MAX];
	struct ids             x;
	uint64_t               mono = mono_us(), now = wall_us();
	const struct log_call *lc = ids_of(&x, &r->ev);

	curl_multi_remove_handle(w->multi, r->h);
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
	if (res == CURLE_OK && status >= 200 && status < 300) {
		if (outbox_delivered(w->rd, r->ev.id))
			LOGE(w->o.log, lc,
			    "webhook %s seq %llu delivered but not removed "
			    "from the outbox (it will be sent again)",
			    r->ev.event, (unsigned long long)r->ev.seq);
		metric_inc(w->m_delivered);
		metric_set(w->m_lag, (int64_t)(now - r->ev.created_us) / 1000);
		LOGD(w->o.log, lc,
		    "webhook %s seq %llu delivered (%s, HTTP %ld)",
		    r->ev.event, (unsigned long long)r->ev.seq, r->ev.delivery,
		    status);
		if (wh_breaker_done(&w->br, true, mono)) {
			LOGI(w->o.log, NULL,
			    "webhooks: the frontend answers again; sending "
			    "the backlog");
			outbox_retry_now(w->rd, now);
		}
	} else {
		unsigned a = r->ev.attempts + 1;
		uint64_t d
		    = outbox_backoff_us(a, (uint64_t)w->o.backoff_ms * 1000,
		        (uint64_t)w->o.backoff_max_ms * 1000, rnd32(w));
		bool open = w->br.state != WH_CLOSED;

		if (res != CURLE_OK)
			snprintf(why, sizeof(why), "%.*s",
			    (int)sizeof(why) - 1,
			    r->errbuf[0] ? r->errbuf
			                 : curl_easy_strerror(res));
		else
			snprintf(why, sizeof(why), "HTTP %ld", status);
		outbox_failed(w->rd, r->ev.id, now + d, why);
		metric_inc(w->m_failed);
		set_error(w, why);
		wh_breaker_done(&w->br, false, mono);
		LOGW(w->o.log, lc,
		    "webhook %s seq %llu (delivery %s): attempt %u failed: "
		    "%s; next try in %.1f s",
		    r->ev.event, (unsigned long long)r->ev.seq, r->ev.delivery,
		    a, why, d / 1e6);
		if (!open && w->br.state == WH_OPEN)
			LOGW(w->o.log, NULL,
			    "webhooks: %u failures in a row: not sending, "
			    "probing the frontend every %.1f s",
			    w->br.run, w->br.probe_us / 1e6);
	}
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	outbox_event_clear(&r->ev);
	r->busy = false;
	w->inflight--;
	atomic_store(&w->state, (int)w->br.state);
	atomic_store(&w->run, w->br.run);
	metric_set(w->m_breaker, w->br.state);
}

/* Finishes the requests curl is done with. Returns how many. */
static size_t
reap(struct webhook *w)
{
	CURLMsg *m;
	int      left;
	size_t   n = 0;

	while ((m = curl_multi_info_read(w->multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			char *p = NULL;
			curl_easy_getinfo(
			    m->easy_handle, CURLINFO_PRIVATE, &p);
			if (p) {
				req_done(w, (struct req *)p, m->data.result);
				n++;
			}
		}
	update_ids(w);
	return n;
}

static void
housekeep(struct webhook *w, uint64_t now, bool prune)
{
	size_t   moved = 0;
	uint64_t backlog, dead;

	if (outbox_expire(w->rd, now, (uint64_t)w->o.max_age_s * 1000000,
	        "max age", &moved))
		LOGE(w->o.log, NULL, "webhooks: outbox expiry failed");
	if (moved) {
		metric_add(w->m_dead, (int64_t)moved);
		LOGE(w->o.log, NULL,
		    "webhooks: %zu event(s) undelivered after %ld s moved to "
		    "the dead_letter table of the outbox",
		    moved, w->o.max_age_s);
	}
	if (!outbox_counts(w->rd, &backlog, &dead)) {
		atomic_store(&w->backlog, (int64_t)backlog);
		metric_set(w->m_backlog, (int64_t)backlog);
		metric_set(w->m_dead_rows, (int64_t)dead);
	}
	if (prune && now > PRUNE_ANY_US)
		outbox_prune_calls(
		    w->rd, now - PRUNE_ENDED_US, now - PRUNE_ANY_US);
}

static void *
run(void *arg)
{
	struct webhook *w        = arg;
	uint64_t        house_at = 0, prune_at = 0, deadline = 0;

	for (;;) {
		uint64_t mono = mono_us(), now = wall_us(), next;
		bool     stopping = atomic_load(&w->stop);
		size_t   room, started;

		if (stopping && !deadline)
			deadline = mono + (uint64_t)w->o.flush_ms * 1000;
		if (stopping && mono >= deadline)
			break;
		if (mono >= house_at) {
			housekeep(w, now, mono >= prune_at);
			if (mono >= prune_at)
				prune_at = mono + PRUNE_EVERY_US;
			house_at = mono + HOUSEKEEP_US;
		}
		room    = wh_breaker_room(&w->br, mono, w->inflight);
		started = start_due(w, now, room, &next);
		atomic_store(&w->state, (int)w->br.state);
		metric_set(w->m_breaker, w->br.state);
		if (stopping && !w->inflight && !started)
			break;

		int running = 0;
		curl_multi_perform(w->multi, &running);
		/* A finished request frees a slot and may make its call's
		 * next event due: look again before sleeping. */
		if (reap(w))
			continue;

		/* Sleep until the next due event, the next probe, the next
		 * housekeeping, or a wake-up: whichever comes first. */
		uint64_t until = house_at;
		if (next != UINT64_MAX && mono + (next - now) < until)
			until = mono + (next > now ? next - now : 0);
		if (w->br.state == WH_OPEN && w->br.until_us < until)
			until = w->br.until_us;
		if (stopping && deadline < until)
			until = deadline;
		long ms
		    = until > mono ? (long)((until - mono + 999) / 1000) : 0;
		if (ms > POLL_MAX_MS)
			ms = POLL_MAX_MS;
		if (w->inflight || ms > 0)
			curl_multi_poll(w->multi, NULL, 0, (int)ms, NULL);
	}
	/* What is still in flight stays in the outbox: sent again after the
	 * restart (at least once). */
	for (size_t i = 0; i < w->nreqs; i++) {
		struct req *r = &w->reqs[i];
		if (!r->busy)
			continue;
		curl_multi_remove_handle(w->multi, r->h);
		curl_slist_free_all(r->hdrs);
		r->hdrs = NULL;
		outbox_event_clear(&r->ev);
		r->busy = false;
	}
	w->inflight = 0;
	housekeep(w, wall_us(), false);
	return NULL;
}

static void
defaults(struct webhook_opts *o)
{
#define DEF(f, v)                                                             \
	if (o->f <= 0)                                                        \
	o->f = (v)
	DEF(connect_timeout_ms, 5000);
	DEF(timeout_ms, 10000);
	DEF(backoff_ms, 1000);
	DEF(backoff_max_ms, 60000);
	DEF(max_age_s, 86400);
	DEF(breaker_failures, 5);
	DEF(breaker_probe_ms, 5000);
	DEF(concurrency, 4);
	DEF(flush_ms, 3000);
#undef DEF
	if (o->backoff_max_ms < o->backoff_ms)
		o->backoff_max_ms = o->backoff_ms;
}

static int
base_headers(struct webhook *w, char *err, size_t errlen)
{
	char              *buf = malloc(HEADERS_MAX), *p, *nl;
	struct curl_slist *t;
	int                rc;

	if (!buf)
		return ENOMEM;
	if ((rc = webhook_headers_parse(
	         w->o.headers, buf, HEADERS_MAX, err, errlen))) {
		free(buf);
		return rc == E2BIG || rc == EINVAL ? EINVAL : rc;
	}
	/* Expect: off: no 100-continue round trip for big bodies. */
	const char *fixed[] = { "Content-Type: application/json", "Expect:" };
	for (size_t i = 0; i < 2; i++) {
		if (!(t = curl_slist_append(w->base, fixed[i])))
			goto nomem;
		w->base = t;
	}
	for (p = buf; *p; p = nl + 1) {
		nl  = strchr(p, '\n');
		*nl = 0;
		if (!(t = curl_slist_append(w->base, p)))
			goto nomem;
		w->base = t;
	}
	free(buf);
	return 0;
nomem:
	free(buf);
	snprintf(err, errlen, "out of memory");
	return ENOMEM;
}

int
webhook_alloc(struct webhook **out, const struct webhook_opts *o, char *err,
    size_t errlen)
{
	struct webhook *w;
	char            path[4096];
	int             rc = ENOMEM;

	*out = NULL;
	if ((rc = webhook_check_url(o->url ? o->url : "", err, errlen)))
		return rc;
	if (!(w = calloc(1, sizeof(*w))))
		return ENOMEM;
	w->o = *o;
	defaults(&w->o);
	pthread_mutex_init(&w->mu, NULL);
	wh_breaker_init(&w->br, (unsigned)w->o.breaker_failures,
	    (uint64_t)w->o.breaker_probe_ms * 1000);
	if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
		w->rng = wall_us() | 1;

	struct metrics *m = o->metrics;
	for (int i = 0; i < 4; i++) {
		char label[64];
		snprintf(label, sizeof(label), "event=\"%s\"", event_names[i]);
		w->m_queued[i]
		    = metrics_counter(m, "webhook_events_queued_total",
		        "webhook events committed to the outbox", label);
	}
	w->m_queue_errors = metrics_counter(m, "webhook_enqueue_errors_total",
	    "webhook events lost: the outbox could not be written", NULL);
	w->m_delivered    = metrics_counter(m, "webhook_delivered_total",
	       "webhook events the frontend accepted (2xx)", NULL);
	w->m_failed       = metrics_counter(m, "webhook_attempts_failed_total",
	          "webhook requests that failed (will be retried)", NULL);
	w->m_dead         = metrics_counter(m, "webhook_dead_letters_total",
	            "webhook events moved to dead_letter (too old to retry)", NULL);
	w->m_dead_rows    = metrics_gauge(m, "webhook_dead_letter_rows",
	       "rows in the outbox's dead_letter table", NULL);
	w->m_backlog      = metrics_gauge(m, "webhook_backlog",
	         "webhook events waiting in the outbox", NULL);
	w->m_breaker      = metrics_gauge(m, "webhook_breaker_state",
	         "0 closed (sending), 1 open (waiting to probe), 2 half-open "
	              "(probing)",
	         NULL);
	w->m_inflight     = metrics_gauge(
	        m, "webhook_inflight", "webhook requests in flight", NULL);
	w->m_lag = metrics_gauge(m, "webhook_last_lag_ms",
	    "age of the last delivered event when it was accepted", NULL);

	if (!(w->url = strdup(o->url))
	    || (o->secret && *o->secret && !(w->secret = strdup(o->secret))))
		goto out;
	if ((rc = base_headers(w, err, errlen)))
		goto out;
	snprintf(path, sizeof(path), "%s/%s",
	    o->state_dir && *o->state_dir ? o->state_dir : ".", OUTBOX_FILE);
	bool full     = o->sync && !strcmp(o->sync, "full");
	char why[512] = "";
	if ((rc = outbox_open(&w->wr, path, full, why, sizeof(why)))
	    || (rc = outbox_open(&w->rd, path, full, why, sizeof(why)))) {
		snprintf(err, errlen,
		    "EXOPLEX_STATE_DIR (--state-dir): cannot use the outbox "
		    "(%s): does the directory exist, writable by egress?",
		    why);
		goto out;
	}
	rc = ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, errlen, "libcurl cannot start");
		goto out;
	}
	w->curl_up = true;
	w->nreqs   = (size_t)w->o.concurrency;
	if (!(w->multi = curl_multi_init())
	    || !(w->reqs = calloc(w->nreqs, sizeof(*w->reqs)))
	    || !(w->ids = calloc(w->nreqs, sizeof(*w->ids)))
	    || !(w->due = calloc(w->nreqs, sizeof(*w->due))))
		goto out;
	for (size_t i = 0; i < w->nreqs; i++)
		if (!(w->reqs[i].h = curl_easy_init()))
			goto out;
	if ((rc = pthread_create(&w->thr, NULL, run, w))) {
		snprintf(err, errlen, "cannot start the delivery thread: %s",
		    strerror(rc));
		goto out;
	}
	w->thr_up = true;
	*out      = w;
	return 0;
out:
	if (rc == ENOMEM && err && !*err)
		snprintf(err, errlen, "out of memory");
	webhook_free(w);
	return rc;
}

void
webhook_free(struct webhook *w)
{
	if (!w)
		return;
	if (w->thr_up) {
		atomic_store(&w->stop, true);
		curl_multi_wakeup(w->multi);
		pthread_join(w->thr, NULL);
	}
	for (size_t i = 0; w->reqs && i < w->nreqs; i++)
		if (w->reqs[i].h)
			curl_easy_cleanup(w->reqs[i].h);
	if (w->multi)
		curl_multi_cleanup(w->multi);
	if (w->curl_up)
		curl_global_cleanup();
	free(w->reqs);
	free(w->ids);
	free(w->due);
	curl_slist_free_all(w->base);
	outbox_close(w->wr);
	outbox_close(w->rd);
	pthread_mutex_destroy(&w->mu);
	free(w->url);
	free(w->secret);
	free(w);
}

int
webhook_call_get(struct webhook *w, const char *call, struct outbox_call *c)
{
	return outbox_call_get(w->wr, call, c);
}

int
webhook_enqueue(struct webhook *w, const struct outbox_new *ev)
{
	struct outbox_new e = *ev;
	int               rc;

	if (!e.now_us)
		e.now_us = wall_us();
	if ((rc = outbox_enqueue(w->wr, &e, NULL))) {
		struct log_call lc = { NULL, ev->call };
		metric_inc(w->m_queue_errors);
		LOGE(w->o.log, &lc,
		    "webhook %s seq %llu LOST: cannot write the outbox "
		    "(disk full or broken?): %s",
		    ev->event, (unsigned long long)ev->seq, ev->body);
		return rc;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(ev->event, event_names[i]))
			metric_inc(w->m_queued[i]);
	atomic_fetch_add(&w->backlog, 1);
	curl_multi_wakeup(w->multi);
	return 0;
}

int
webhook_state(struct webhook *w, char *buf, size_t len)
{
	int      st  = atomic_load(&w->state);
	unsigned run = atomic_load(&w->run);
	int64_t  bl  = atomic_load(&w->backlog);
	char     e[ERR_MAX];

	pthread_mutex_lock(&w->mu);
	snprintf(e, sizeof(e), "%s", w->last_error);
	pthread_mutex_unlock(&w->mu);
	if (st == WH_CLOSED && !run)
		snprintf(buf, len, "ok, backlog %lld", (long long)bl);
	else if (st == WH_CLOSED)
		snprintf(buf, len, "failing (%u in a row: %s), backlog %lld",
		    run, e, (long long)bl);
	else
		snprintf(buf, len, "down (%s: %s), backlog %lld",
		    st == WH_OPEN ? "breaker open" : "probing", e,
		    (long long)bl);
	return st == WH_CLOSED;
}
