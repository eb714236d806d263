/*
 * hooks.c - numbering, building and queueing one call's webhook events.
 */
#include "hooks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "log.h"

#define SID_MAX 128

struct hooks {
	struct webhook *w; /* NULL: webhooks off */
	struct log     *log;
};

struct hooks_call {
	struct hooks   *h;
	char            stream_sid[SID_MAX];
	char            call_sid[SID_MAX];
	char            account_sid[SID_MAX];
	char            persona[SID_MAX];
	char            mode[16]; /* "" = not known */
	char            detail[64];
	struct log_call ids;
	uint64_t        seq; /* the last one used */
	uint64_t        started_us;
	bool            ended; /* call.ended is queued: nothing more */
};

static int
check_url(const char *v, char *err, size_t errlen)
{
	return *v ? webhook_check_url(v, err, errlen) : 0;
}

size_t
hooks_cfg_opts(struct cfg_opt *out, struct webhook_opts *o)
{
	size_t n = 0;

#define NUM(flag, env, def, field, lo, hi, help)                              \
	out[n++] = (struct cfg_opt) { flag, env, def, CFG_INT, &o->field, lo, \
		hi, NULL, false, help, NULL }
	// clang-format off
	out[n++] = (struct cfg_opt) { "webhook-url", "EXOPLEX_WEBHOOK_URL",
	    NULL, CFG_STR, &o->url, 0, 0, NULL, false,
	    "frontend endpoint (http:// or https://) for call events; unset = "
	    "webhooks off", check_url };
	out[n++] = (struct cfg_opt) { "webhook-secret",
	    "EXOPLEX_WEBHOOK_SECRET", NULL, CFG_STR, &o->secret, 0, 0, NULL,
	    true, "HMAC-SHA256 key: X-Exoplex-Signature on every webhook",
	    NULL };
	out[n++] = (struct cfg_opt) { "webhook-headers",
	    "EXOPLEX_WEBHOOK_HEADERS", NULL, CFG_STR, &o->headers, 0, 0, NULL,
	    true, "extra headers: 'Name: value' entries separated by newlines "
	    "or ';;', or @file", webhook_check_headers };
	out[n++] = (struct cfg_opt) { "state-dir", "EXOPLEX_STATE_DIR", ".",
	    CFG_STR, &o->state_dir, 0, 0, NULL, false,
	    "directory of egress's durable state (outbox.db, the webhook "
	    "outbox)", NULL };
	out[n++] = (struct cfg_opt) { "outbox-sync", "EXOPLEX_OUTBOX_SYNC",
	    "normal", CFG_ENUM, &o->sync, 0, 0, "normal|full", false,
	    "full: fsync every webhook event (survives power loss; a disk "
	    "flush per event)", NULL };
	NUM("webhook-connect-timeout-ms", "EXOPLEX_WEBHOOK_CONNECT_TIMEOUT_MS",
	    "5000", connect_timeout_ms, 1, 600000,
	    "time to connect to the frontend");
	NUM("webhook-timeout-ms", "EXOPLEX_WEBHOOK_TIMEOUT_MS", "10000",
	    timeout_ms, 1, 600000, "time for a whole webhook request");
	NUM("webhook-backoff-ms", "EXOPLEX_WEBHOOK_BACKOFF_MS", "1000",
	    backoff_ms, 1, 3600000, "first retry delay (doubles, jittered)");
	NUM("webhook-backoff-max-ms", "EXOPLEX_WEBHOOK_BACKOFF_MAX_MS",
	    "60000", backoff_max_ms, 1, 86400000, "longest retry delay");
	NUM("webhook-max-age-s", "EXOPLEX_WEBHOOK_MAX_AGE_S", "86400",
	    max_age_s, 1, 365L * 86400,
	    "undelivered this long: moved to the outbox's dead_letter table");
	NUM("webhook-breaker-failures", "EXOPLEX_WEBHOOK_BREAKER_FAILURES",
	    "5", breaker_failures, 1, 1000000,
	    "failed requests in a row that stop sending (then probe)");
	NUM("webhook-breaker-probe-ms", "EXOPLEX_WEBHOOK_BREAKER_PROBE_MS",
	    "5000", breaker_probe_ms, 1, 3600000,
	    "while stopped: one probe request this often");
	NUM("webhook-concurrency", "EXOPLEX_WEBHOOK_CONCURRENCY", "4",
	    concurrency, 1, 256, "webhook requests at once (one per call)");
	NUM("webhook-flush-ms", "EXOPLEX_WEBHOOK_FLUSH_MS", "3000", flush_ms,
	    1, 600000, "at stop: time spent delivering what is due");
	// clang-format on
#undef NUM
	return n;
}

int
hooks_alloc(
    struct hooks **out, const struct webhook_opts *o, char *err, size_t errlen)
{
	struct hooks *h;
	int           rc;

	*out = NULL;
	if (!(h = calloc(1, sizeof(*h))))
		return ENOMEM;
	h->log = o->log;
	if (!o->url || !*o->url) {
		LOGI(o->log, NULL,
		    "webhooks off: EXOPLEX_WEBHOOK_URL is not set (no outbox, "
		    "no events)");
		*out = h;
		return 0;
	}
	if ((rc = webhook_alloc(&h->w, o, err, errlen))) {
		free(h);
		return rc;
	}
	LOGI(o->log, NULL, "webhooks to %s (outbox %s/%s)", o->url,
	    o->state_dir && *o->state_dir ? o->state_dir : ".", OUTBOX_FILE);
	if (!o->secret || !*o->secret)
		LOGW(o->log, NULL,
		    "webhooks are NOT signed: EXOPLEX_WEBHOOK_SECRET is not "
		    "set, so the frontend cannot tell them from forgeries");
	*out = h;
	return 0;
}

void
hooks_free(struct hooks *h)
{
	if (!h)
		return;
	webhook_free(h->w);
	free(h);
}

void
hooks_state(struct hooks *h, char *buf, size_t len)
{
	char s[256];

	if (!h || !h->w) {
		snprintf(buf, len, "webhooks off");
		return;
	}
	webhook_state(h->w, s, sizeof(s));
	snprintf(buf, len, "webhooks %s", s);
}

static void
copy(char *dst, const char *src)
{
	snprintf(dst, SID_MAX, "%s", src ? src : "");
}

static struct events_call
head(struct hooks_call *c, uint64_t ts_us)
{
	return (struct events_call) { c->call_sid, c->stream_sid,
		c->account_sid, ++c->seq, ts_us ? ts_us : wall_us() };
}

/* Commits body (and frees it). */
static void
queue(struct hooks_call *c, const char *event, char *body, unsigned flags)
{
	struct outbox_new ev = { .call = c->stream_sid,
		.seq                   = c->seq,
		.event                 = event,
		.body                  = body,
		.flags                 = flags,
		.started_us            = c->started_us,
		.call_sid              = c->call_sid,
		.account_sid           = c->account_sid,
		.persona               = c->persona };

	if (!body) {
		LOGE(c->h->log, &c->ids,
		    "webhook %s seq %llu LOST: out of memory building it",
		    event, (unsigned long long)c->seq);
		return;
	}
	webhook_enqueue(c->h->w, &ev);
	free(body);
}

struct hooks_call *
hooks_call_open(struct hooks *h, const Exo__CallStart *cs, const char *persona,
    const char *mode)
{
	struct hooks_call *c;
	struct outbox_call oc;

	if (!h || !h->w)
		return NULL;
	if (!(c = calloc(1, sizeof(*c)))) {
		LOGE(h->log, NULL, "webhooks: out of memory for a call");
		return NULL;
	}
	c->h = h;
	copy(c->stream_sid, cs->stream_sid);
	copy(c->call_sid, cs->call_sid);
	copy(c->account_sid, cs->account_sid);
	copy(c->persona, persona ? persona : cs->persona);
	hooks_call_mode(c,
	    cs->refused && *cs->refused ? "refused"
	        : mode                  ? mode
	                                : cs->mode);
	c->ids        = (struct log_call) { c->call_sid, c->stream_sid };
	c->started_us = cs->started_us ? cs->started_us : wall_us();
	if (webhook_call_get(h->w, c->stream_sid, &oc)) {
		LOGE(h->log, &c->ids,
		    "webhooks: cannot read the outbox: this call's events are "
		    "not tracked");
		free(c);
		return NULL;
	}
	c->seq = oc.last_seq;
	if (oc.ended) {
		/* Already over as far as the frontend knows. */
		c->ended = true;
		return c;
	}
	if (oc.started) {
		if (oc.started_us)
			c->started_us = oc.started_us;
		LOGI(h->log, &c->ids,
		    "webhooks: call.started already queued; continuing at seq "
		    "%llu",
		    (unsigned long long)c->seq + 1);
		return c;
	}

	/* custom_parameters as a list (secrets are dropped by events.c). */
	struct events_kv *kv = NULL;
	if (cs->n_custom_parameters
	    && !(kv = calloc(cs->n_custom_parameters, sizeof(*kv)))) {
		free(c);
		return NULL;
	}
	for (size_t i = 0; i < cs->n_custom_parameters; i++)
		kv[i] = (struct events_kv) { cs->custom_parameters[i]->key,
			cs->custom_parameters[i]->value };
	struct events_started s   = { cs->from, cs->to, cs->sample_rate,
		  c->persona, c->mode, kv, cs->n_custom_parameters };
	struct events_call    ids = head(c, c->started_us);
	queue(c, EVENTS_STARTED, events_call_started(&ids, &s), OUTBOX_STARTS);
	free(kv);
	return c;
}

struct hooks_call *
hooks_call_find(struct hooks *h, const char *stream_sid)
{
	struct hooks_call *c;
	struct outbox_call oc;

	if (!h || !h->w || !stream_sid
	    || webhook_call_get(h->w, stream_sid, &oc) || !oc.started
	    || oc.ended || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->h = h;
	copy(c->stream_sid, stream_sid);
	copy(c->call_sid, oc.call_sid);
	copy(c->account_sid, oc.account_sid);
	copy(c->persona, oc.persona);
	c->ids        = (struct log_call) { c->call_sid, c->stream_sid };
	c->seq        = oc.last_seq;
	c->started_us = oc.started_us;
	return c;
}

void
hooks_call_persona(struct hooks_call *c, const char *persona)
{
	if (c)
		copy(c->persona, persona);
}

void
hooks_call_mode(struct hooks_call *c, const char *mode)
{
	if (c)
		snprintf(c->mode, sizeof(c->mode), "%s", mode ? mode : "");
}

void
hooks_call_detail(struct hooks_call *c, const char *detail)
{
	if (c)
		snprintf(
		    c->detail, sizeof(c->detail), "%s", detail ? detail : "");
}

void
hooks_call_dtmf(
    struct hooks_call *c, const char *digit, unsigned duration_ms, uint64_t ts)
{
	if (!c || c->ended)
		return;
	struct events_call ids = head(c, ts);
	struct events_dtmf d   = { digit, duration_ms };
	queue(c, EVENTS_DTMF, events_dtmf(&ids, &d), 0);
}

int64_t
hooks_call_ms(const struct hooks_call *c, uint64_t us)
{
	if (!c || !us)
		return -1;
	return us > c->started_us ? (int64_t)((us - c->started_us) / 1000) : 0;
}

void
hooks_call_transcript(struct hooks_call *c, const char *speaker,
    const char *text, bool final, int64_t start_ms, int64_t end_ms)
{
	if (!c || c->ended)
		return;
	struct events_call       ids = head(c, 0);
	struct events_transcript t
	    = { speaker, text, final, start_ms, end_ms };
	queue(c, EVENTS_TRANSCRIPT, events_transcript(&ids, &t), 0);
}

void
hooks_call_end(
    struct hooks_call *c, const char *reason, const struct events_counters *k)
{
	struct events_counters none = { 0, 0, 0, 0 };

	if (!c)
		return;
	if (!c->ended) {
		struct events_call  ids = head(c, 0);
		struct events_ended e   = { reason,
                        ids.ts_us > c->started_us
			      ? (ids.ts_us - c->started_us) / 1000
			      : 0,
			  c->persona, k ? *k : none, c->mode, c->detail };
		queue(
		    c, EVENTS_ENDED, events_call_ended(&ids, &e), OUTBOX_ENDS);
	}
	free(c);
}

void
hooks_call_close(struct hooks_call *c)
{
	free(c);
}
