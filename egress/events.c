/*
 * events.c - webhook bodies with cJSON (a few per call: not a hot path).
 */
#include "events.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "clock.h"

char *
events_ts(char *buf, uint64_t us)
{
	time_t    s = (time_t)(us / 1000000u);
	struct tm tm;

	size_t n;

	gmtime_r(&s, &tm);
	n = strftime(buf, EVENTS_TS_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, EVENTS_TS_LEN - n, ".%03uZ",
	    (unsigned)(us / 1000u % 1000u));
	return buf;
}

bool
events_secret_key(const char *key)
{
	static const char *const words[]
	    = { "token", "secret", "passw", "apikey", "api_key", "api-key",
		      "auth", "credential", "signature" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(key, words[i]))
			return true;
	return false;
}

const char *
events_reason(const char *reason)
{
	static const char *const known[]
	    = { "callended", "stopped", "no_capacity", "persona_failed",
		      "auth_failed", "bridge_error" };

	for (size_t i = 0; reason && i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(reason, known[i]))
			return known[i];
	return "bridge_error";
}

static const char *
str(const char *s)
{
	return s ? s : "";
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF). */
static size_t
utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned hi = c == 0xed ? 0x9f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3
		                                                         : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned hi = c == 0xf4 ? 0x8f : 0xbf;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80
		        && (s[3] & 0xc0) == 0x80
		    ? 4
		    : 0;
	}
	return 0;
}

static bool
utf8_ok(const char *k)
{
	const unsigned char *s = (const unsigned char *)k;
	size_t               len;

	for (size_t i = 0; s[i]; i += len)
		if (!(len = utf8_seq(s + i)))
			return false;
	return true;
}

/* Adds a string member, with every byte that is not valid UTF-8 replaced
 * by U+FFFD: peers' text (STT, PersonaPlex) must not make the body
 * invalid JSON. */
static cJSON *
add_str(cJSON *o, const char *k, const char *v)
{
	const unsigned char *s = (const unsigned char *)str(v);
	size_t               n = 0, bad = 0, len;
	char                *t, *w;
	cJSON               *r;

	for (n = 0; s[n]; n += len ? len : 1)
		if (!(len = utf8_seq(s + n)))
			bad++;
	if (!bad)
		return cJSON_AddStringToObject(o, k, (const char *)s);
	if (!(t = w = malloc(n + 2 * bad + 1)))
		return NULL;
	for (size_t i = 0; s[i]; i += len ? len : 1) {
		if ((len = utf8_seq(s + i))) {
			memcpy(w, s + i, len);
			w += len;
		} else {
			memcpy(w, "\xef\xbf\xbd", 3);
			w += 3;
		}
	}
	*w = 0;
	r  = cJSON_AddStringToObject(o, k, t);
	free(t);
	return r;
}

/* The fields every body starts with. */
static cJSON *
head(const char *event, const struct events_call *c)
{
	cJSON *o = cJSON_CreateObject();
	char   ts[EVENTS_TS_LEN];

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "event", event);
	add_str(o, "call_sid", c->call_sid);
	add_str(o, "stream_sid", c->stream_sid);
	add_str(o, "account_sid", c->account_sid);
	cJSON_AddNumberToObject(o, "seq", (double)c->seq);
	cJSON_AddStringToObject(
	    o, "ts", events_ts(ts, c->ts_us ? c->ts_us : wall_us()));
	return o;
}

static void
add_opt_str(cJSON *o, const char *k, const char *v)
{
	if (v && *v)
		add_str(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void
add_opt_ms(cJSON *o, const char *k, int64_t ms)
{
	if (ms >= 0)
		cJSON_AddNumberToObject(o, k, (double)ms);
	else
		cJSON_AddNullToObject(o, k);
}

/* Prints and frees o. Any allocation that failed while building shows up
 * here: cJSON's Add functions return NULL, so count the members we meant
 * to add instead of checking each one. */
static char *
finish(cJSON *o, int want)
{
	char *s = NULL;

	if (o && cJSON_GetArraySize(o) == want)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

#define HEAD_N 6

char *
events_call_started(
    const struct events_call *c, const struct events_started *s)
{
	cJSON *o    = head(EVENTS_STARTED, c), *p;
	int    want = HEAD_N + 5, n = 0;

	if (!o)
		return NULL;
	add_str(o, "from", s->from);
	add_str(o, "to", s->to);
	cJSON_AddNumberToObject(o, "sample_rate", s->sample_rate);
	add_opt_str(o, "persona", s->persona);
	if (s->mode && *s->mode) {
		add_str(o, "mode", s->mode);
		want++;
	}
	if ((p = cJSON_AddObjectToObject(o, "custom_parameters"))) {
		for (size_t i = 0; i < s->nparams; i++) {
			const char *k = s->params[i].key;
			if (!k || !utf8_ok(k) || events_secret_key(k)
			    || cJSON_GetObjectItemCaseSensitive(p, k))
				continue;
			add_str(p, k, s->params[i].value);
			n++;
		}
		if (cJSON_GetArraySize(p) != n)
			want = -1;
	}
	return finish(o, want);
}

char *
events_transcript(
    const struct events_call *c, const struct events_transcript *t)
{
	cJSON *o = head(EVENTS_TRANSCRIPT, c);

	if (!o)
		return NULL;
	add_str(o, "speaker", t->speaker);
	add_str(o, "text", t->text);
	cJSON_AddBoolToObject(o, "final", t->final);
	add_opt_ms(o, "start_ms", t->start_ms);
	add_opt_ms(o, "end_ms", t->end_ms);
	return finish(o, HEAD_N + 5);
}

char *
events_dtmf(const struct events_call *c, const struct events_dtmf *d)
{
	cJSON *o = head(EVENTS_DTMF, c);

	if (!o)
		return NULL;
	add_str(o, "digit", d->digit);
	cJSON_AddNumberToObject(o, "duration_ms", d->duration_ms);
	return finish(o, HEAD_N + 2);
}

/* Seconds to the millisecond, so 12.3400000001 prints as 12.34. */
static double
secs(double s)
{
	return s > 0 && isfinite(s) ? round(s * 1000.0) / 1000.0 : 0;
}

char *
events_call_ended(const struct events_call *c, const struct events_ended *e)
{
	cJSON *o    = head(EVENTS_ENDED, c), *k;
	int    want = HEAD_N + 4;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "reason", events_reason(e->reason));
	if (e->detail && *e->detail) {
		add_str(o, "detail", e->detail);
		want++;
	}
	cJSON_AddNumberToObject(o, "duration_ms", (double)e->duration_ms);
	add_opt_str(o, "persona", e->persona);
	if (e->mode && *e->mode) {
		add_str(o, "mode", e->mode);
		want++;
	}
	if ((k = cJSON_AddObjectToObject(o, "counters"))) {
		cJSON_AddNumberToObject(
		    k, "audio_in_s", secs(e->counters.audio_in_s));
		cJSON_AddNumberToObject(
		    k, "audio_out_s", secs(e->counters.audio_out_s));
		cJSON_AddNumberToObject(
		    k, "reconnects", e->counters.reconnects);
		cJSON_AddNumberToObject(
		    k, "frames_dropped", (double)e->counters.frames_dropped);
		if (cJSON_GetArraySize(k) != 4)
			want = -1;
	}
	return finish(o, want);
}
