/*
 * fsstats.c - the stand-in's counters and /stats JSON (see fsstats.h).
 */
#include "fsstats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define KINDS_MAX 64

struct kind {
	char           name[64];
	uint64_t       n;
	struct metric *m;
};

struct fsstats {
	struct metrics *reg;
	struct metric  *c[FS_N];
	struct metric  *active, *viol_total;
	pthread_mutex_t mu;
	struct kind     viol[KINDS_MAX], warn[KINDS_MAX];
	size_t          nviol, nwarn;
	char            query[1024], previous_text[256];
};

static const struct {
	const char *json, *name, *help;
} names[FS_N] = {
	[FS_SESSIONS]         = { "sessions", "fakescribe_sessions_total",
	            "WebSocket upgrades accepted" },
	[FS_SESSIONS_STARTED] = { "sessions_started",
	    "fakescribe_sessions_started_total", "session_started sent" },
	[FS_REJECTED_AUTH]    = { "rejected_auth",
	       "fakescribe_rejected_auth_total", "auth_error sent, then closed" },
	[FS_REJECTED_INVALID]
	= { "rejected_invalid", "fakescribe_rejected_invalid_total",
	    "invalid_request sent, then closed 1008" },
	[FS_IDLE_CLOSES]     = { "idle_closes", "fakescribe_idle_closes_total",
	        "sessions closed after 15 s without audio" },
	[FS_TIME_LIMITS]     = { "time_limits", "fakescribe_time_limits_total",
	        "session_time_limit_exceeded sent" },
	[FS_CHUNKS]          = { "chunks", "fakescribe_chunks_total",
	             "input_audio_chunk messages received" },
	[FS_AUDIO_MS]        = { "audio_ms", "fakescribe_audio_ms_total",
	           "milliseconds of audio received" },
	[FS_COMMIT_REQUESTS] = { "commit_requests",
	    "fakescribe_commit_requests_total", "commit:true received" },
	[FS_PREVIOUS_TEXTS]
	= { "previous_texts", "fakescribe_previous_texts_total",
	    "first chunks carrying previous_text" },
	[FS_PARTIALS] = { "partials", "fakescribe_partials_total",
	    "partial_transcript sent (repeats and echoes included)" },
	[FS_COMMITS]  = { "commits", "fakescribe_commits_total",
	     "committed_transcript sent with text" },
	[FS_COMMITS_EMPTY]
	= { "commits_empty", "fakescribe_commits_empty_total",
	    "committed_transcript sent without text" },
	[FS_TIMESTAMPED]  = { "timestamped", "fakescribe_timestamped_total",
	     "committed_transcript_with_timestamps sent" },
	[FS_INPUT_ERRORS] = { "input_errors", "fakescribe_input_errors_total",
	    "input_error sent" },
	[FS_CLOSED_1000]  = { "client_closed_1000",
	     "fakescribe_client_closes_total", "the client closed with 1000" },
	[FS_CLOSED_OTHER]
	= { "client_closed_other", "fakescribe_client_closes_other_total",
	    "the client closed with another code" },
	[FS_DROPPED] = { "dropped", "fakescribe_dropped_total",
	    "sockets gone without a close frame" },
};

int
fsstats_alloc(struct fsstats **out, struct metrics *m)
{
	struct fsstats *s = calloc(1, sizeof(*s));

	if (!s)
		return ENOMEM;
	s->reg = m;
	for (int i = 0; i < FS_N; i++)
		s->c[i]
		    = metrics_counter(m, names[i].name, names[i].help, NULL);
	s->active = metrics_gauge(
	    m, "fakescribe_sessions_active", "open sessions", NULL);
	s->viol_total = metrics_counter(m, "fakescribe_violations_total",
	    "protocol violations by the client", NULL);
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

void
fsstats_free(struct fsstats *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void
fsstats_add(struct fsstats *s, enum fsst c, int64_t n)
{
	metric_add(s->c[c], n);
}

int64_t
fsstats_get(struct fsstats *s, enum fsst c)
{
	return metric_get(s->c[c]);
}

void
fsstats_active(struct fsstats *s, int delta)
{
	metric_add(s->active, delta);
}

static void
bump(struct fsstats *s, struct kind *k, size_t *n, const char *kind,
    const char *metric, const char *help)
{
	char label[96];

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(k[i].name, kind)) {
			k[i].n++;
			metric_inc(k[i].m);
			goto out;
		}
	if (*n < KINDS_MAX) {
		snprintf(k[*n].name, sizeof(k[*n].name), "%s", kind);
		snprintf(label, sizeof(label), "kind=\"%s\"", k[*n].name);
		k[*n].m = metrics_counter(s->reg, metric, help, label);
		k[*n].n = 1;
		metric_inc(k[*n].m);
		(*n)++;
	}
out:
	pthread_mutex_unlock(&s->mu);
}

void
fsstats_violation(struct fsstats *s, const char *kind)
{
	metric_inc(s->viol_total);
	bump(s, s->viol, &s->nviol, kind,
	    "fakescribe_violations_by_kind_total",
	    "protocol violations by the client, by kind");
}

void
fsstats_warning(struct fsstats *s, const char *kind)
{
	bump(s, s->warn, &s->nwarn, kind, "fakescribe_warnings_total",
	    "things the real server accepts but a careful client avoids");
}

uint64_t
fsstats_violations(struct fsstats *s)
{
	return (uint64_t)metric_get(s->viol_total);
}

void
fsstats_query(struct fsstats *s, const char *query)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->query, sizeof(s->query), "%s", query ? query : "");
	pthread_mutex_unlock(&s->mu);
}

void
fsstats_previous_text(struct fsstats *s, const char *text)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->previous_text, sizeof(s->previous_text), "%s",
	    text ? text : "");
	pthread_mutex_unlock(&s->mu);
}

char *
fsstats_json(struct fsstats *s)
{
	cJSON *j = cJSON_CreateObject(), *v, *w;
	char  *out;

	if (!j)
		return NULL;
	for (int i = 0; i < FS_N; i++)
		cJSON_AddNumberToObject(
		    j, names[i].json, (double)metric_get(s->c[i]));
	cJSON_AddNumberToObject(
	    j, "sessions_active", (double)metric_get(s->active));
	cJSON_AddNumberToObject(j, "audio_seconds",
	    (double)metric_get(s->c[FS_AUDIO_MS]) / 1000.0);
	cJSON_AddNumberToObject(
	    j, "violations", (double)metric_get(s->viol_total));
	v = cJSON_AddObjectToObject(j, "violations_by_kind");
	w = cJSON_AddObjectToObject(j, "warnings_by_kind");
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; v && i < s->nviol; i++)
		cJSON_AddNumberToObject(
		    v, s->viol[i].name, (double)s->viol[i].n);
	for (size_t i = 0; w && i < s->nwarn; i++)
		cJSON_AddNumberToObject(
		    w, s->warn[i].name, (double)s->warn[i].n);
	cJSON_AddStringToObject(j, "last_query", s->query);
	cJSON_AddStringToObject(j, "last_previous_text", s->previous_text);
	pthread_mutex_unlock(&s->mu);
	out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return out;
}
