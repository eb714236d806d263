/*
 * summary.c - the JSON summary of a run and its expectations.
 *
 * One call: the call's own numbers. Several: sums, extremes and medians,
 * so the same keys mean the same thing (a per-call array on request).
 */
#include "summary.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spectrum.h"

void
summary_analyse(struct call_result *r)
{
	r->dominant_hz = spectrum_dominant_hz(r->rx_pcm, r->rx_n, r->rate);
	r->rms_dbfs    = spectrum_rms_dbfs(r->rx_pcm, r->rx_n);
}

static uint64_t
viol_total(const struct call_result *r)
{
	uint64_t t = 0;
	for (int k = 0; k < RXV__COUNT; k++)
		t += r->viol[k];
	return t;
}

static double
seconds_received(const struct call_result *r)
{
	return r->rate ? (double)r->pcm_bytes_received / 2.0 / r->rate : 0;
}

/* Rounds for the summary: ms and Hz to 0.01. */
static double
r2(double v)
{
	return round(v * 100.0) / 100.0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile (nearest rank) of v[0..n), sorted in place. */
static double
quantile(double *v, size_t n, double q)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)ceil(q * (double)n);
	return v[i ? i - 1 : 0];
}

static void
add_call_fields(cJSON *o, const struct call_result *r)
{
	cJSON_AddStringToObject(o, "stream_sid", r->stream_sid);
	cJSON_AddStringToObject(o, "call_sid", r->call_sid);
	cJSON_AddBoolToObject(o, "connected", r->connected);
	if (!r->connected && r->error[0])
		cJSON_AddStringToObject(o, "error", r->error);
	if (r->http_status)
		cJSON_AddNumberToObject(o, "http_status", r->http_status);
	cJSON_AddNumberToObject(o, "seconds_sent", r2(r->seconds_sent));
	cJSON_AddNumberToObject(
	    o, "seconds_received", r2(seconds_received(r)));
	cJSON_AddNumberToObject(
	    o, "messages_received", (double)r->messages_received);
	cJSON_AddNumberToObject(
	    o, "media_messages", (double)r->media_messages);
	cJSON_AddNumberToObject(o, "violations", (double)viol_total(r));
	cJSON *vk = cJSON_AddObjectToObject(o, "violations_by_kind");
	for (int k = 0; k < RXV__COUNT; k++)
		if (r->viol[k])
			cJSON_AddNumberToObject(vk,
			    rxcheck_viol_name((enum rxv)k),
			    (double)r->viol[k]);
	cJSON_AddNumberToObject(o, "dominant_hz", r2(r->dominant_hz));
	cJSON_AddNumberToObject(o, "rms_dbfs", r2(r->rms_dbfs));
	cJSON_AddNumberToObject(o, "max_lead_ms", r2(r->max_lead_ms));
	if (r->first_audio_ms >= 0)
		cJSON_AddNumberToObject(
		    o, "first_audio_ms", r2(r->first_audio_ms));
	else
		cJSON_AddNullToObject(o, "first_audio_ms");
	cJSON_AddNumberToObject(o, "underruns", (double)r->underruns);
	cJSON_AddNumberToObject(
	    o, "underrun_ms", (double)r->underrun_ticks * 20.0);
	cJSON_AddNumberToObject(
	    o, "marks_received", (double)r->marks_received);
	cJSON_AddNumberToObject(o, "marks_echoed", (double)r->marks_echoed);
	cJSON_AddNumberToObject(
	    o, "clears_received", (double)r->clears_received);
	cJSON_AddNumberToObject(o, "seconds_cleared",
	    r->rate ? r2((double)r->samples_cleared / r->rate) : 0);
	cJSON_AddNumberToObject(o, "dtmf_sent", (double)r->dtmf_sent);
	cJSON *notes = cJSON_AddObjectToObject(o, "notes");
	cJSON_AddNumberToObject(
	    notes, "stream_sid_absent", (double)r->sid_absent);
	cJSON_AddNumberToObject(
	    notes, "received_after_stop", (double)r->after_stop);
	if (r->closed_by)
		cJSON_AddStringToObject(o, "closed_by", r->closed_by);
	else
		cJSON_AddNullToObject(o, "closed_by");
	cJSON_AddNumberToObject(o, "close_code", r->close_code);
	cJSON_AddBoolToObject(o, "closed_before_stop", r->closed_before_stop);
	cJSON_AddNumberToObject(o, "gaps_total", (double)r->gaps.total);
	cJSON *gaps = cJSON_AddArrayToObject(o, "gaps");
	for (size_t i = 0; gaps && i < r->gaps.n; i++) {
		const struct gap *g = &r->gaps.list[i];
		cJSON            *e = cJSON_CreateObject();
		if (!e)
			break;
		cJSON_AddNumberToObject(e, "start_ms", (double)g->start_ms);
		cJSON_AddNumberToObject(e, "end_ms", (double)g->end_ms);
		cJSON_AddNumberToObject(
		    e, "ms", (double)(g->end_ms - g->start_ms));
		if (g->open)
			cJSON_AddTrueToObject(e, "open");
		cJSON_AddItemToArray(gaps, e);
	}
}

static void
add_aggregate(cJSON *o, const struct call_result *r, size_t n)
{
	double  *hz  = calloc(n ? n : 1, sizeof(double));
	double  *db  = calloc(n ? n : 1, sizeof(double));
	double  *fa  = calloc(n ? n : 1, sizeof(double));
	size_t   nhz = 0, nfa = 0, connected = 0, by_server = 0, by_client = 0;
	double   sent = 0, recv = 0, min_recv = INFINITY, max_lead = 0;
	uint64_t msgs = 0, media = 0, viol[RXV__COUNT] = { 0 }, vt = 0;
	uint64_t underruns = 0, marks = 0, echoed = 0, clears = 0, absent = 0;
	double   hz_min = INFINITY, hz_max = 0;

	if (!hz || !db || !fa)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct call_result *c = &r[i];
		if (c->connected)
			connected++;
		if (c->closed_by && !strcmp(c->closed_by, "server"))
			by_server++;
		if (c->closed_by && !strcmp(c->closed_by, "client"))
			by_client++;
		sent += c->seconds_sent;
		recv += seconds_received(c);
		if (c->connected && seconds_received(c) < min_recv)
			min_recv = seconds_received(c);
		msgs += c->messages_received;
		media += c->media_messages;
		for (int k = 0; k < RXV__COUNT; k++)
			viol[k] += c->viol[k];
		vt += viol_total(c);
		if (c->max_lead_ms > max_lead)
			max_lead = c->max_lead_ms;
		underruns += c->underruns;
		marks += c->marks_received;
		echoed += c->marks_echoed;
		clears += c->clears_received;
		absent += c->sid_absent;
		if (c->connected) {
			hz[nhz]   = c->dominant_hz;
			db[nhz++] = c->rms_dbfs;
			if (c->dominant_hz < hz_min)
				hz_min = c->dominant_hz;
			if (c->dominant_hz > hz_max)
				hz_max = c->dominant_hz;
		}
		if (c->first_audio_ms >= 0)
			fa[nfa++] = c->first_audio_ms;
	}
	cJSON_AddNumberToObject(o, "calls", (double)n);
	cJSON_AddNumberToObject(o, "calls_connected", (double)connected);
	cJSON_AddNumberToObject(o, "seconds_sent", r2(sent));
	cJSON_AddNumberToObject(o, "seconds_received", r2(recv));
	cJSON_AddNumberToObject(
	    o, "min_seconds_received", connected ? r2(min_recv) : 0);
	cJSON_AddNumberToObject(o, "messages_received", (double)msgs);
	cJSON_AddNumberToObject(o, "media_messages", (double)media);
	cJSON_AddNumberToObject(o, "violations", (double)vt);
	cJSON *vk = cJSON_AddObjectToObject(o, "violations_by_kind");
	for (int k = 0; k < RXV__COUNT; k++)
		if (viol[k])
			cJSON_AddNumberToObject(vk,
			    rxcheck_viol_name((enum rxv)k), (double)viol[k]);
	cJSON_AddNumberToObject(o, "dominant_hz", r2(quantile(hz, nhz, 0.5)));
	cJSON_AddNumberToObject(o, "dominant_hz_min", nhz ? r2(hz_min) : 0);
	cJSON_AddNumberToObject(o, "dominant_hz_max", r2(hz_max));
	cJSON_AddNumberToObject(o, "rms_dbfs", r2(quantile(db, nhz, 0.5)));
	cJSON_AddNumberToObject(o, "max_lead_ms", r2(max_lead));
	cJSON *fo = cJSON_AddObjectToObject(o, "first_audio_ms");
	cJSON_AddNumberToObject(fo, "p50", r2(quantile(fa, nfa, 0.5)));
	cJSON_AddNumberToObject(fo, "p99", r2(quantile(fa, nfa, 0.99)));
	cJSON_AddNumberToObject(fo, "max", r2(quantile(fa, nfa, 1.0)));
	cJSON_AddNumberToObject(o, "underruns", (double)underruns);
	cJSON_AddNumberToObject(o, "marks_received", (double)marks);
	cJSON_AddNumberToObject(o, "marks_echoed", (double)echoed);
	cJSON_AddNumberToObject(o, "clears_received", (double)clears);
	cJSON *notes = cJSON_AddObjectToObject(o, "notes");
	cJSON_AddNumberToObject(notes, "stream_sid_absent", (double)absent);
	cJSON_AddNumberToObject(o, "closed_by_server", (double)by_server);
	cJSON_AddNumberToObject(o, "closed_by_client", (double)by_client);
out:
	free(hz);
	free(db);
	free(fa);
}

char *
summary_json(const struct call_opts *o, const struct call_result *r, size_t n)
{
	cJSON *root = cJSON_CreateObject();
	char  *s    = NULL;

	if (!root)
		return NULL;
	cJSON_AddStringToObject(
	    root, "url", o->url_shown[0] ? o->url_shown : o->url);
	cJSON_AddNumberToObject(root, "rate", o->rate);
	cJSON_AddNumberToObject(root, "chunk_ms", o->chunk_ms);
	if (n == 1)
		add_call_fields(root, &r[0]);
	else
		add_aggregate(root, r, n);
	if (n > 1 && o->per_call) {
		cJSON *arr = cJSON_AddArrayToObject(root, "per_call");
		for (size_t i = 0; arr && i < n; i++) {
			cJSON *c = cJSON_CreateObject();
			if (!c)
				break;
			add_call_fields(c, &r[i]);
			cJSON_AddItemToArray(arr, c);
		}
	}
	char err[1024];
	int  nf = summary_check(o, r, n, err, sizeof(err));
	cJSON_AddNumberToObject(root, "expectations_failed", nf);
	s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
}

static void
say(char *err, size_t errlen, size_t *used, const char *fmt, ...)
{
	va_list ap;
	if (!err || *used >= errlen)
		return;
	va_start(ap, fmt);
	int k = vsnprintf(err + *used, errlen - *used, fmt, ap);
	va_end(ap);
	if (k > 0)
		*used += (size_t)k < errlen - *used ? (size_t)k
		                                    : errlen - *used - 1;
}

int
summary_check(const struct call_opts *o, const struct call_result *r, size_t n,
    char *err, size_t errlen)
{
	size_t used  = 0;
	int    fails = 0;

	if (err && errlen)
		err[0] = '\0';
	/* Each expectation is reported once, with the first call breaking
	 * it and how many did. */
	size_t bad_hz = 0, bad_min = 0, bad_viol = 0, bad_by = 0, bad_code = 0;
	size_t first_hz = 0, first_min = 0, first_viol = 0, first_by = 0,
	       first_code = 0;
	for (size_t i = 0; i < n; i++) {
		const struct call_result *c = &r[i];
		if (o->expect_hz > 0
		    && !(fabs(c->dominant_hz - o->expect_hz)
		        <= o->expect_hz * o->expect_tolerance)
		    && !bad_hz++)
			first_hz = i;
		if (o->expect_min_seconds >= 0
		    && seconds_received(c) < o->expect_min_seconds
		    && !bad_min++)
			first_min = i;
		if (o->expect_no_violations && viol_total(c) && !bad_viol++)
			first_viol = i;
		if (o->expect_closed_by
		    && (!c->closed_by
		        || strcmp(c->closed_by, o->expect_closed_by))
		    && !bad_by++)
			first_by = i;
		if (o->expect_close_code
		    && c->close_code != o->expect_close_code && !bad_code++)
			first_code = i;
	}
	if (bad_hz) {
		fails++;
		say(err, errlen, &used,
		    "expect-hz: %zu call(s) off; call %zu received %.2f Hz, "
		    "expected %.2f Hz ± %.1f%%\n",
		    bad_hz, first_hz, r[first_hz].dominant_hz, o->expect_hz,
		    o->expect_tolerance * 100);
	}
	if (bad_min) {
		fails++;
		say(err, errlen, &used,
		    "expect-min-seconds: %zu call(s) short; call %zu received "
		    "%.2f s, expected at least %.2f s\n",
		    bad_min, first_min, seconds_received(&r[first_min]),
		    o->expect_min_seconds);
	}
	if (bad_viol) {
		fails++;
		say(err, errlen, &used,
		    "expect-no-violations: %zu call(s) had violations; call "
		    "%zu had %llu\n",
		    bad_viol, first_viol,
		    (unsigned long long)viol_total(&r[first_viol]));
	}
	if (bad_by) {
		fails++;
		say(err, errlen, &used,
		    "expect-closed-by: %zu call(s); call %zu was closed by "
		    "%s, "
		    "expected %s\n",
		    bad_by, first_by,
		    r[first_by].closed_by ? r[first_by].closed_by : "nobody",
		    o->expect_closed_by);
	}
	if (bad_code) {
		fails++;
		say(err, errlen, &used,
		    "expect-close-code: %zu call(s); call %zu closed with %d, "
		    "expected %d\n",
		    bad_code, first_code, r[first_code].close_code,
		    o->expect_close_code);
	}
	return fails;
}
