/*
 * judge.c - the stand-in's query and message checks (see judge.h).
 */
#include "judge.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

void
fsq_init(struct fsq *q)
{
	memset(q, 0, sizeof(*q));
	snprintf(q->format, sizeof(q->format), "pcm_16000");
	q->rate           = 16000;
	q->vad_silence_s  = 1.5;
	q->vad_threshold  = 0.4;
	q->min_speech_ms  = 100;
	q->min_silence_ms = 100;
}

static void
bad(struct fsq *q, const char *kind, const char *fmt, const char *name,
    const char *value)
{
	if (q->bad_kind)
		return;
	q->bad_kind = kind;
	snprintf(q->bad_text, sizeof(q->bad_text), fmt, name, value);
}

static bool
get_double(const char *v, double lo, double hi, double *out)
{
	char  *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d >= lo && d <= hi))
		return false;
	*out = d;
	return true;
}

static bool
get_uint(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	long  n = strtol(v, &end, 10);

	if (end == v || *end || n < (long)lo || n > (long)hi)
		return false;
	*out = (unsigned)n;
	return true;
}

static bool
get_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "false"))
		*out = false;
	else
		return false;
	return true;
}

/* ISO 639-1 or 639-3: two or three lower-case letters. */
static bool
language_ok(const char *v)
{
	size_t n = strlen(v);

	if (n < 2 || n > 3)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 'a' || v[i] > 'z')
			return false;
	return true;
}

void
fsq_add(
    struct fsq *q, const char *piece, size_t len, fs_report_fn warn, void *arg)
{
	char        name[64], value[256], key[72];
	const char *eq = memchr(piece, '=', len);
	size_t      nl = eq ? (size_t)(eq - piece) : len;
	size_t      vl = eq ? len - nl - 1 : 0;
	bool        repeated;

	if (strlen(q->raw) + len + 2 < sizeof(q->raw)) {
		if (q->raw[0])
			strcat(q->raw, "&");
		strncat(q->raw, piece, len);
	}
	if (nl >= sizeof(name) || vl >= sizeof(value)) {
		bad(q, "bad_param", "a query parameter is too long%s%s", "",
		    "");
		return;
	}
	memcpy(name, piece, nl);
	name[nl] = '\0';
	memcpy(value, eq ? eq + 1 : "", vl);
	value[vl] = '\0';

	/* Repeated names are fine only for the list parameters. */
	repeated = !strcmp(name, "keyterms")
	    || !strcmp(name, "secondary_languages")
	    || !strcmp(name, "entity_detection");
	if (!q->seen[0])
		strcpy(q->seen, ",");
	snprintf(key, sizeof(key), ",%s,", name);
	if (strstr(q->seen, key)) {
		if (!repeated && warn)
			warn(arg, "duplicate_param", name);
	} else if (strlen(q->seen) + nl + 2 < sizeof(q->seen)) {
		strcat(q->seen, name);
		strcat(q->seen, ",");
	}

	if (!strcmp(name, "model_id")) {
		/* Cut to the buffer: a model id that long is refused anyway. */
		size_t ml = strnlen(value, sizeof(q->model) - 1);
		memcpy(q->model, value, ml);
		q->model[ml]  = '\0';
		q->have_model = true;
	} else if (!strcmp(name, "audio_format")) {
		q->have_format = true;
		if (!strcmp(value, "pcm_8000"))
			q->rate = 8000;
		else if (!strcmp(value, "pcm_16000"))
			q->rate = 16000;
		else if (!strcmp(value, "pcm_24000"))
			q->rate = 24000;
		else
			bad(q, "bad_audio_format",
			    "Invalid %s '%s' (this stand-in takes pcm_8000, "
			    "pcm_16000 and pcm_24000)",
			    name, value);
		snprintf(q->format, sizeof(q->format), "%.20s", value);
	} else if (!strcmp(name, "language_code")) {
		if (*value && !language_ok(value))
			bad(q, "bad_language_code",
			    "Invalid %s '%s': an ISO 639-1 or 639-3 code",
			    name, value);
		snprintf(q->language, sizeof(q->language), "%.15s", value);
	} else if (!strcmp(name, "commit_strategy")) {
		q->have_strategy = true;
		if (!strcmp(value, "vad"))
			q->vad = true;
		else if (strcmp(value, "manual"))
			bad(q, "bad_commit_strategy",
			    "Invalid %s '%s': manual or vad", name, value);
	} else if (!strcmp(name, "vad_silence_threshold_secs")) {
		if (!get_double(value, 0.3, 3.0, &q->vad_silence_s))
			bad(q, "bad_vad_silence_threshold_secs",
			    "Invalid %s '%s': 0.3 to 3.0", name, value);
	} else if (!strcmp(name, "vad_threshold")) {
		if (!get_double(value, 0.1, 0.9, &q->vad_threshold))
			bad(q, "bad_vad_threshold",
			    "Invalid %s '%s': 0.1 to 0.9", name, value);
	} else if (!strcmp(name, "min_speech_duration_ms")) {
		if (!get_uint(value, 50, 2000, &q->min_speech_ms))
			bad(q, "bad_min_speech_duration_ms",
			    "Invalid %s '%s': 50 to 2000", name, value);
	} else if (!strcmp(name, "min_silence_duration_ms")) {
		if (!get_uint(value, 50, 2000, &q->min_silence_ms))
			bad(q, "bad_min_silence_duration_ms",
			    "Invalid %s '%s': 50 to 2000", name, value);
	} else if (!strcmp(name, "include_timestamps")) {
		if (!get_bool(value, &q->timestamps))
			bad(q, "bad_bool", "Invalid %s '%s': true or false",
			    name, value);
	} else if (!strcmp(name, "include_language_detection")) {
		if (!get_bool(value, &q->language_detection))
			bad(q, "bad_bool", "Invalid %s '%s': true or false",
			    name, value);
	} else if (!strcmp(name, "no_verbatim")
	    || !strcmp(name, "enable_logging")
	    || !strcmp(name, "filter_background_audio")) {
		bool b;
		if (!get_bool(value, &b))
			bad(q, "bad_bool", "Invalid %s '%s': true or false",
			    name, value);
	} else if (repeated || !strcmp(name, "token")) {
		/* Accepted, unused here. */
	} else {
		bad(q, "unknown_param",
		    "Unknown query parameter '%s'%s (the real server ignores "
		    "it silently)",
		    name, "");
	}
}

const char *
fsq_check(struct fsq *q, const char *accept_models, fs_report_fn warn,
    void *arg, const char **text)
{
	char list[512], *tok, *save;
	bool ok = false;

	*text = NULL;
	if (q->bad_kind) {
		*text = q->bad_text;
		return q->bad_kind;
	}
	if (!q->have_model) {
		*text = "model_id is required";
		return "missing_model_id";
	}
	snprintf(list, sizeof(list), "%s", accept_models ? accept_models : "");
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, q->model))
			ok = true;
	if (!ok) {
		/* The observed wording (research §1.3). */
		snprintf(q->bad_text, sizeof(q->bad_text),
		    "The model_id '%.60s' is invalid. Supported models: "
		    "%.150s",
		    q->model, accept_models ? accept_models : "");
		*text = q->bad_text;
		return "bad_model_id";
	}
	/* Defaults the real server applies silently: worth a warning. */
	if (!q->have_format && warn)
		warn(arg, "audio_format_defaulted", "pcm_16000");
	if (!q->have_strategy && warn)
		warn(arg, "commit_strategy_defaulted", "manual");
	return NULL;
}

static bool
only_keys(const cJSON *o, const char **keys, size_t n, const char **extra)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, o)
	{
		bool known = false;
		for (size_t i = 0; i < n; i++)
			if (it->string && !strcmp(it->string, keys[i]))
				known = true;
		if (!known) {
			*extra = it->string ? it->string : "?";
			return false;
		}
	}
	return true;
}

int
fsmsg_check(const char *msg, size_t len, bool binary, bool first,
    const struct fsq *q, fs_report_fn viol, void *arg, struct fschunk *out)
{
	static const char *keys[] = { "message_type", "audio_base_64",
		"commit", "sample_rate", "previous_text" };
	cJSON             *j;
	const cJSON       *t, *a, *c, *r, *p;
	const char        *extra;
	char               d[128];
	int                rc = EINVAL;

	memset(out, 0, sizeof(*out));
	if (binary) {
		viol(arg, "binary_frame", "a binary frame");
		out->input_error = "Message must be a valid protocol message";
		return EINVAL;
	}
	if (!(j = cJSON_ParseWithLength(msg, len)) || !cJSON_IsObject(j)) {
		viol(arg, "bad_json", "not a JSON object");
		out->input_error = "Message must be a valid protocol message";
		goto out;
	}
	t = cJSON_GetObjectItemCaseSensitive(j, "message_type");
	if (!cJSON_IsString(t)) {
		viol(arg, "missing_message_type", "no string message_type");
		out->input_error = "Message must be a valid protocol message";
		goto out;
	}
	if (strcmp(t->valuestring, "input_audio_chunk")) {
		/* The real answer to commit, init, session_config... */
		snprintf(out->error_text, sizeof(out->error_text),
		    "Unexpected message type: %.80s", t->valuestring);
		viol(arg, "unknown_message_type", t->valuestring);
		out->input_error = out->error_text;
		goto out;
	}
	if (!only_keys(j, keys, sizeof(keys) / sizeof(keys[0]), &extra))
		viol(arg, "unknown_field", extra);

	a = cJSON_GetObjectItemCaseSensitive(j, "audio_base_64");
	c = cJSON_GetObjectItemCaseSensitive(j, "commit");
	r = cJSON_GetObjectItemCaseSensitive(j, "sample_rate");
	p = cJSON_GetObjectItemCaseSensitive(j, "previous_text");
	/* All four, always (research §2.1). */
	if (!c)
		viol(arg, "missing_commit", "no commit field");
	else if (!cJSON_IsBool(c))
		viol(arg, "bad_commit", "commit is not a bool");
	else
		out->commit = cJSON_IsTrue(c);
	if (!r) {
		viol(arg, "missing_sample_rate", "no sample_rate field");
	} else if (!cJSON_IsNumber(r) || r->valuedouble != (double)q->rate) {
		snprintf(d, sizeof(d), "sample_rate %g with audio_format %s",
		    cJSON_IsNumber(r) ? r->valuedouble : -1.0, q->format);
		viol(arg, "sample_rate_mismatch", d);
	}
	if (p && !cJSON_IsNull(p)) {
		if (!cJSON_IsString(p)) {
			viol(arg, "bad_previous_text", "not a string");
		} else if (!first) {
			/* "Sending it in subsequent chunks will result in an
			 * error" (research §2.2). */
			viol(arg, "previous_text_not_first",
			    "previous_text after the first chunk");
		} else {
			out->has_previous_text = true;
			snprintf(out->previous_text,
			    sizeof(out->previous_text), "%s", p->valuestring);
			if (strlen(p->valuestring) > 50)
				viol(arg, "previous_text_too_long",
				    "over 50 characters");
		}
	}
	if (!a) {
		viol(arg, "missing_audio_base_64", "no audio_base_64 field");
		goto out;
	}
	if (!cJSON_IsString(a)) {
		viol(arg, "bad_audio_base_64", "audio_base_64 not a string");
		goto out;
	}
	size_t n = strlen(a->valuestring);
	if (!(out->pcm = malloc(b64_decoded_max(n) + 1))) {
		viol(arg, "out_of_memory", "decoding audio");
		goto out;
	}
	if (n && b64_decode(out->pcm, &out->len, a->valuestring, n)) {
		viol(arg, "bad_base64",
		    "audio_base_64 is not canonical base64");
		free(out->pcm);
		out->pcm = NULL;
		out->len = 0;
		goto out;
	}
	if (out->len % 2) {
		viol(arg, "odd_pcm_length", "half a 16-bit sample");
		out->len--;
	}
	if (out->len > (size_t)q->rate * 2) {
		snprintf(
		    d, sizeof(d), "%zu bytes: over 1 s of audio", out->len);
		viol(arg, "chunk_over_1s", d);
	}
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}
