/*
 * sttmsg.c - Scribe v2 realtime messages, parsed and built.
 */
#include "sttmsg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"

/* Every error type of research §3.6, both spellings of the renamed ones.
 * kind is the metric label: one per error, whatever the spelling. */
static const struct {
	const char        *type, *kind;
	enum stterr_policy policy;
} errors[] = {
	{ "auth_error", "auth_error", STTERR_FATAL },
	{ "quota_exceeded", "quota_exceeded", STTERR_FATAL },
	{ "quota_exceeded_error", "quota_exceeded", STTERR_FATAL },
	{ "unaccepted_terms", "unaccepted_terms", STTERR_FATAL },
	{ "unaccepted_terms_error", "unaccepted_terms", STTERR_FATAL },
	{ "invalid_request", "invalid_request", STTERR_FATAL },
	{ "input_error", "input_error", STTERR_RETRY },
	{ "chunk_size_exceeded", "chunk_size_exceeded", STTERR_RETRY },
	{ "commit_throttled", "commit_throttled", STTERR_NONFATAL },
	{ "rate_limited", "rate_limited", STTERR_RETRY },
	{ "queue_overflow", "queue_overflow", STTERR_RETRY },
	{ "resource_exhausted", "resource_exhausted", STTERR_RETRY },
	{ "transcriber_error", "transcriber_error", STTERR_RETRY },
	{ "session_time_limit_exceeded", "session_time_limit_exceeded",
	    STTERR_ROUTINE },
	{ "insufficient_audio_activity", "insufficient_audio_activity",
	    STTERR_ROUTINE },
	{ "error", "error", STTERR_RETRY },
};

static const struct {
	const char      *type;
	enum sttmsg_type t;
} types[] = {
	{ "session_started", STTMSG_SESSION_STARTED },
	{ "partial_transcript", STTMSG_PARTIAL },
	{ "final_transcript", STTMSG_FINAL },
	{ "final_transcript_with_timestamps", STTMSG_FINAL_TS },
	{ "committed_transcript", STTMSG_COMMITTED },
	{ "committed_transcript_with_timestamps", STTMSG_COMMITTED_TS },
	{ "committed_transcript_entities", STTMSG_ENTITIES },
};

const char *
stterr_kind(const char *type, enum stterr_policy *policy)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (!strcmp(type, errors[i].type)) {
			*policy = errors[i].policy;
			return errors[i].kind;
		}
	*policy = STTERR_NONE;
	return NULL;
}

static const char *
str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A number, or a string holding one (config values drift in type). */
static long
long_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char        *end;
	long         n;

	if (cJSON_IsNumber(v))
		return v->valuedouble > 0 && v->valuedouble < 1e9
		    ? (long)v->valuedouble
		    : 0;
	if (cJSON_IsString(v) && v->valuestring[0]) {
		n = strtol(v->valuestring, &end, 10);
		return *end == '\0' && n > 0 ? n : 0;
	}
	return 0;
}

/* words[]: the first start and last end that are numbers. Items of any
 * shape are skipped, not refused (research §3.4). */
static void
word_times(struct sttmsg *m, const cJSON *words)
{
	const cJSON *w;

	if (!cJSON_IsArray(words))
		return;
	cJSON_ArrayForEach(w, words)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(w, "start");
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(w, "end");
		if (cJSON_IsNumber(s) && s->valuedouble >= 0 && m->t_start < 0)
			m->t_start = s->valuedouble;
		if (cJSON_IsNumber(e) && e->valuedouble >= 0)
			m->t_end = e->valuedouble;
	}
}

int
sttmsg_parse(struct sttmsg *m, const char *json, size_t len)
{
	const cJSON *cfg, *ents;
	const char  *t;

	memset(m, 0, sizeof(*m));
	m->type      = STTMSG_BAD;
	m->type_name = "";
	m->text      = "";
	m->error     = "";
	m->t_start = m->t_end = -1;
	m->root               = cJSON_ParseWithLength(json, len);
	if (!m->root) {
		m->why = "not JSON";
		return EINVAL;
	}
	if (!cJSON_IsObject(m->root)) {
		m->why = "not a JSON object";
		return EINVAL;
	}
	if (!(t = str_of(m->root, "message_type"))) {
		m->why = "no string message_type";
		return EINVAL;
	}
	m->type_name = t;
	m->type      = STTMSG_UNKNOWN;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(t, types[i].type))
			m->type = types[i].t;

	switch (m->type) {
	case STTMSG_SESSION_STARTED:
		m->session_id = str_of(m->root, "session_id");
		/* Lenient: only two keys matter, absent or odd ones are
		 * fine (research §3.1). */
		cfg = cJSON_GetObjectItemCaseSensitive(m->root, "config");
		if (cJSON_IsObject(cfg)) {
			m->audio_format  = str_of(cfg, "audio_format");
			m->sample_rate   = long_of(cfg, "sample_rate");
			m->language_code = str_of(cfg, "language_code");
		}
		return 0;
	case STTMSG_PARTIAL:
	case STTMSG_FINAL:
	case STTMSG_COMMITTED:
	case STTMSG_FINAL_TS:
	case STTMSG_COMMITTED_TS:
	case STTMSG_ENTITIES:
		/* A null or missing text is an empty transcript. */
		if ((t = str_of(m->root, "text")))
			m->text = t;
		m->language_code = str_of(m->root, "language_code");
		word_times(
		    m, cJSON_GetObjectItemCaseSensitive(m->root, "words"));
		ents = cJSON_GetObjectItemCaseSensitive(m->root, "entities");
		if (cJSON_IsArray(ents))
			m->n_entities = (size_t)cJSON_GetArraySize(ents);
		return 0;
	default:
		break;
	}

	/* Errors: the known types, then anything with a string error. */
	m->err_kind = stterr_kind(t, &m->policy);
	if ((t = str_of(m->root, "error")))
		m->error = t;
	else if ((t = str_of(m->root, "message")))
		m->error = t;
	if (m->err_kind) {
		m->type = STTMSG_ERROR;
	} else if (str_of(m->root, "error")) {
		m->type     = STTMSG_ERROR;
		m->err_kind = "other";
		m->policy   = STTERR_RETRY;
	} else {
		m->error = "";
	}
	return 0;
}

void
sttmsg_clear(struct sttmsg *m)
{
	cJSON_Delete(m->root);
	m->root = NULL;
}

/* Worst case of a JSON-escaped string: \u00XX for every byte. */
size_t
sttmsg_chunk_max(size_t len, size_t ptlen)
{
	return 128 + b64_encoded_len(len) + 6 * ptlen + 32;
}

static size_t
put(char *dst, size_t at, const char *s)
{
	size_t n = strlen(s);
	memcpy(dst + at, s, n);
	return at + n;
}

size_t
sttmsg_chunk(char *dst, size_t cap, const uint8_t *pcm, size_t len,
    unsigned rate, bool commit, const char *previous_text)
{
	size_t at = 0;
	char   num[48];

	if (cap
	    < sttmsg_chunk_max(len, previous_text ? strlen(previous_text) : 0))
		return 0;
	/* Field order as the SDKs send them (research §2.1). */
	at = put(dst, at,
	    "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":\"");
	at += b64_encode(dst + at, pcm, len);
	snprintf(num, sizeof(num), "\",\"commit\":%s,\"sample_rate\":%u",
	    commit ? "true" : "false", rate);
	at = put(dst, at, num);
	if (previous_text) {
		at = put(dst, at, ",\"previous_text\":\"");
		for (const unsigned char *p
		     = (const unsigned char *)previous_text;
		     *p; p++) {
			if (*p == '"' || *p == '\\') {
				dst[at++] = '\\';
				dst[at++] = (char)*p;
			} else if (*p < 0x20 || *p == 0x7f) {
				snprintf(num, sizeof(num), "\\u%04x", *p);
				at = put(dst, at, num);
			} else {
				dst[at++] = (char)*p;
			}
		}
		dst[at++] = '"';
	}
	dst[at++] = '}';
	dst[at]   = '\0';
	return at;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

size_t
sttmsg_previous_text(char *dst, size_t max, const char *committed)
{
	const unsigned char *s = (const unsigned char *)committed;
	size_t               n = committed ? strlen(committed) : 0;
	size_t               from, out = 0;

	dst[0] = '\0';
	while (n && (s[n - 1] == ' ' || s[n - 1] < 0x20))
		n--;
	if (!n || !max)
		return 0;
	from = n > max ? n - max : 0;
	/* Never start inside a UTF-8 sequence. */
	while (from < n && (s[from] & 0xc0) == 0x80)
		from++;
	/* Start at a word when the tail cuts one and a space follows. */
	if (from > 0 && s[from - 1] != ' ') {
		const unsigned char *sp = memchr(s + from, ' ', n - from);
		if (sp && (size_t)(sp - s) + 1 < n)
			from = (size_t)(sp - s) + 1;
	}
	while (from < n && s[from] == ' ')
		from++;
	for (size_t i = from; i < n;) {
		size_t k = utf8_len(s + i);
		if (!k) { /* invalid byte: skipped */
			i++;
			continue;
		}
		if (k == 1 && (s[i] < 0x20 || s[i] == 0x7f))
			dst[out++] = ' ';
		else
			memcpy(dst + out, s + i, k), out += k;
		i += k;
	}
	dst[out] = '\0';
	return out;
}
