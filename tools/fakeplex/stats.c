/*
 * stats.c - the stand-in's counters and the /stats JSON (see stats.h).
 */
#include "stats.h"

#include "metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KINDS_MAX 64

struct kind {
	const char    *name;
	struct metric *m;
};

struct server_row {
	char    *addr;
	int      open, waiting, max_open;
	bool     busy;
	uint64_t conversations;
};

struct stats {
	struct metrics    *reg;
	struct metric     *c[ST_COUNTER_N];
	struct metric     *g[ST_GAUGE_N];
	struct metric     *viol_total, *warn_total;
	pthread_mutex_t    mu;
	struct kind        viol[KINDS_MAX], warn[KINDS_MAX];
	size_t             nviol, nwarn;
	char              *voice, *text;
	struct server_row *servers;
	size_t             nservers;
};

static const struct {
	const char *json, *name, *help;
} counters[ST_COUNTER_N] = {
	[ST_SESSIONS_STARTED] = { "sessions_started",
	    "fakeplex_sessions_started_total", "/api/chat upgrades accepted" },
	[ST_SESSIONS_WAITED]
	= { "sessions_waited", "fakeplex_sessions_waited_total",
	    "sessions that waited for the one-conversation lock" },
	[ST_SESSIONS_REJECTED]
	= { "sessions_rejected", "fakeplex_sessions_rejected_total",
	    "sessions closed for a bad query" },
	[ST_SESSIONS_DROPPED]
	= { "sessions_dropped", "fakeplex_sessions_dropped_total",
	    "sessions dropped on purpose (--drop-after-ms)" },
	[ST_SESSIONS_REFUSED]
	= { "sessions_refused", "fakeplex_sessions_refused_total",
	    "sessions aborted on purpose (--refuse)" },
	[ST_PROMPT_OVERWRITTEN]
	= { "prompt_overwritten", "fakeplex_prompt_overwritten_total",
	    "sessions that ran with a later connection's prompt" },
	[ST_HANDSHAKES] = { "handshakes_sent",
	    "fakeplex_handshakes_sent_total", "0x00 handshakes sent" },
	[ST_MSGS_IN]    = { "messages_in", "fakeplex_messages_in_total",
	       "WebSocket messages received" },
	[ST_BYTES_IN]   = { "ogg_bytes_in", "fakeplex_ogg_bytes_in_total",
	      "uplink Ogg bytes fed to the strict reader" },
	[ST_PAGES_IN]   = { "pages_in", "fakeplex_pages_in_total",
	      "uplink Ogg pages that passed every check" },
	[ST_PACKETS_IN]
	= { "packets_in", "fakeplex_packets_in_total", "uplink Ogg packets" },
	[ST_PACKETS_DECODED] = { "packets_decoded",
	    "fakeplex_packets_decoded_total", "uplink Opus packets decoded" },
	[ST_SAMPLES_IN]      = { "samples_in", "fakeplex_samples_in_total",
	         "decoded uplink samples at 24 kHz" },
	[ST_STEPS]           = { "steps", "fakeplex_steps_total",
	              "80 ms model steps (one output page each)" },
	[ST_PAGES_OUT]       = { "pages_out", "fakeplex_pages_out_total",
	          "downlink Ogg pages sent (headers included)" },
	[ST_TEXT_OUT] = { "text_pieces_out", "fakeplex_text_pieces_out_total",
	    "0x02 text pieces sent" },
	[ST_OUT_DROPPED] = { "out_dropped", "fakeplex_out_dropped_total",
	    "downlink messages dropped: client not reading" },
};

static const struct {
	const char *json, *name, *help;
} gauges[ST_GAUGE_N] = {
	[ST_SESSIONS_ACTIVE] = { "sessions_active", "fakeplex_sessions_active",
	    "open /api/chat sockets" },
	[ST_SESSIONS_WAITING] = { "sessions_waiting",
	    "fakeplex_sessions_waiting", "open sockets waiting for the lock" },
	[ST_MAX_CONCURRENT]
	= { "max_concurrent_sessions", "fakeplex_max_concurrent_sessions",
	    "most open sockets one listener had at once" },
};

int
stats_alloc(struct stats **out, struct metrics *m)
{
	struct stats *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return ENOMEM;
	s->reg = m;
	for (int i = 0; i < ST_COUNTER_N; i++)
		s->c[i] = metrics_counter(
		    m, counters[i].name, counters[i].help, NULL);
	for (int i = 0; i < ST_GAUGE_N; i++)
		s->g[i]
		    = metrics_gauge(m, gauges[i].name, gauges[i].help, NULL);
	s->viol_total = metrics_counter(m, "fakeplex_violations_total",
	    "protocol violations (all kinds)", NULL);
	s->warn_total = metrics_counter(m, "fakeplex_warnings_total",
	    "RFC 7845 departures the real server tolerates", NULL);
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

void
stats_free(struct stats *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nservers; i++)
		free(s->servers[i].addr);
	free(s->servers);
	free(s->voice);
	free(s->text);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void
stats_add(struct stats *s, enum stats_counter c, int64_t n)
{
	metric_add(s->c[c], n);
}

void
stats_gauge_add(struct stats *s, enum stats_gauge g, int64_t n)
{
	metric_add(s->g[g], n);
}

void
stats_gauge_max(struct stats *s, enum stats_gauge g, int64_t v)
{
	/* Only the lws thread raises it: read-then-set is enough. */
	if (v > metric_get(s->g[g]))
		metric_set(s->g[g], v);
}

int64_t
stats_get(struct stats *s, enum stats_counter c)
{
	return metric_get(s->c[c]);
}

/* Finds or registers the series for kind; called with mu held. */
static struct metric *
kind_metric(struct stats *s, struct kind *tab, size_t *n, const char *name,
    const char *help, const char *kind)
{
	char labels[96];

	for (size_t i = 0; i < *n; i++)
		if (!strcmp(tab[i].name, kind))
			return tab[i].m;
	if (*n == KINDS_MAX)
		return NULL;
	snprintf(labels, sizeof(labels), "kind=\"%s\"", kind);
	tab[*n].name = kind;
	tab[*n].m    = metrics_counter(s->reg, name, help, labels);
	return tab[(*n)++].m;
}

void
stats_violation(struct stats *s, const char *kind)
{
	struct metric *m;

	pthread_mutex_lock(&s->mu);
	m = kind_metric(s, s->viol, &s->nviol,
	    "fakeplex_violations_by_kind_total", "protocol violations by kind",
	    kind);
	pthread_mutex_unlock(&s->mu);
	if (m)
		metric_inc(m);
	metric_inc(s->viol_total);
}

void
stats_warning(struct stats *s, const char *kind)
{
	struct metric *m;

	pthread_mutex_lock(&s->mu);
	m = kind_metric(s, s->warn, &s->nwarn,
	    "fakeplex_warnings_by_kind_total", "RFC 7845 departures by kind",
	    kind);
	pthread_mutex_unlock(&s->mu);
	if (m)
		metric_inc(m);
	metric_inc(s->warn_total);
}

uint64_t
stats_violations(struct stats *s, const char *kind)
{
	uint64_t v = 0;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nviol; i++)
		if (!strcmp(s->viol[i].name, kind) && s->viol[i].m)
			v = (uint64_t)metric_get(s->viol[i].m);
	pthread_mutex_unlock(&s->mu);
	return v;
}

uint64_t
stats_violations_total(struct stats *s)
{
	return (uint64_t)metric_get(s->viol_total);
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? strdup(v) : NULL;
}

void
stats_query(struct stats *s, const char *voice, const char *text)
{
	pthread_mutex_lock(&s->mu);
	set_str(&s->voice, voice);
	set_str(&s->text, text);
	pthread_mutex_unlock(&s->mu);
}

int
stats_server_add(struct stats *s, const char *addr)
{
	struct server_row *r;
	int                idx = -1;

	pthread_mutex_lock(&s->mu);
	r = realloc(s->servers, (s->nservers + 1) * sizeof(*r));
	if (r != NULL) {
		s->servers = r;
		memset(&r[s->nservers], 0, sizeof(*r));
		r[s->nservers].addr = strdup(addr);
		idx                 = (int)s->nservers++;
	}
	pthread_mutex_unlock(&s->mu);
	return idx;
}

void
stats_server_set(struct stats *s, int idx, int open, int waiting, bool busy,
    uint64_t conversations, int max_open)
{
	pthread_mutex_lock(&s->mu);
	if (idx >= 0 && (size_t)idx < s->nservers) {
		struct server_row *r = &s->servers[idx];
		r->open              = open;
		r->waiting           = waiting;
		r->busy              = busy;
		r->conversations     = conversations;
		r->max_open          = max_open;
	}
	pthread_mutex_unlock(&s->mu);
}

static void
add_kinds(cJSON *o, const char *name, const struct kind *tab, size_t n)
{
	cJSON *k = cJSON_AddObjectToObject(o, name);

	for (size_t i = 0; k && i < n; i++)
		cJSON_AddNumberToObject(k, tab[i].name,
		    tab[i].m ? (double)metric_get(tab[i].m) : 0);
}

char *
stats_json(struct stats *s)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	char  *txt;

	if (o == NULL)
		return NULL;
	for (int i = 0; i < ST_COUNTER_N; i++)
		cJSON_AddNumberToObject(
		    o, counters[i].json, (double)metric_get(s->c[i]));
	for (int i = 0; i < ST_GAUGE_N; i++)
		cJSON_AddNumberToObject(
		    o, gauges[i].json, (double)metric_get(s->g[i]));
	cJSON_AddNumberToObject(
	    o, "violations", (double)metric_get(s->viol_total));
	cJSON_AddNumberToObject(
	    o, "warnings", (double)metric_get(s->warn_total));
	pthread_mutex_lock(&s->mu);
	add_kinds(o, "violations_by_kind", s->viol, s->nviol);
	add_kinds(o, "warnings_by_kind", s->warn, s->nwarn);
	if (s->voice)
		cJSON_AddStringToObject(o, "last_voice_prompt", s->voice);
	else
		cJSON_AddNullToObject(o, "last_voice_prompt");
	if (s->text)
		cJSON_AddStringToObject(o, "last_text_prompt", s->text);
	else
		cJSON_AddNullToObject(o, "last_text_prompt");
	arr = cJSON_AddArrayToObject(o, "servers");
	for (size_t i = 0; arr && i < s->nservers; i++) {
		const struct server_row *r = &s->servers[i];
		cJSON                   *e = cJSON_CreateObject();
		if (e == NULL)
			break;
		cJSON_AddStringToObject(e, "listen", r->addr ? r->addr : "");
		cJSON_AddNumberToObject(e, "open", r->open);
		cJSON_AddNumberToObject(e, "waiting", r->waiting);
		cJSON_AddBoolToObject(e, "busy", r->busy);
		cJSON_AddNumberToObject(
		    e, "conversations", (double)r->conversations);
		cJSON_AddNumberToObject(
		    e, "max_concurrent_sessions", r->max_open);
		cJSON_AddItemToArray(arr, e);
	}
	pthread_mutex_unlock(&s->mu);
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return txt;
}
