/*
 * exotel.c - parse Exotel's messages, build ours. See exotel.h.
 */
#include "exotel.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <pthread.h>

#include "arena.h"
#include "base64.h"

static const char *const event_names[EXOTEL_EV_N] = {
	[EXOTEL_EV_UNKNOWN]   = "unknown",
	[EXOTEL_EV_CONNECTED] = "connected",
	[EXOTEL_EV_START]     = "start",
	[EXOTEL_EV_MEDIA]     = "media",
	[EXOTEL_EV_DTMF]      = "dtmf",
	[EXOTEL_EV_MARK]      = "mark",
	[EXOTEL_EV_STOP]      = "stop",
	[EXOTEL_EV_CLEAR]     = "clear",
};

static const char *const err_names[EXOTEL_E_N] = {
	[EXOTEL_OK]            = "ok",
	[EXOTEL_E_JSON]        = "invalid_json",
	[EXOTEL_E_NOT_OBJECT]  = "not_object",
	[EXOTEL_E_NO_EVENT]    = "no_event",
	[EXOTEL_E_BAD_SID]     = "bad_sid",
	[EXOTEL_E_START_FIELD] = "start_missing_field",
	[EXOTEL_E_RATE]        = "bad_sample_rate",
	[EXOTEL_E_NO_PAYLOAD]  = "no_payload",
	[EXOTEL_E_BASE64]      = "invalid_base64",
	[EXOTEL_E_ODD_PCM]     = "odd_length_pcm",
	[EXOTEL_E_TOO_LARGE]   = "payload_too_large",
	[EXOTEL_E_FIELD]       = "bad_field",
};

const char *
exotel_event_name(enum exotel_event ev)
{
	if ((unsigned)ev >= EXOTEL_EV_N)
		return "unknown";
	return event_names[ev];
}

const char *
exotel_err_name(int err)
{
	if (err < 0 || err >= EXOTEL_E_N)
		return "unknown_error";
	return err_names[err];
}

bool
exotel_sid_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		/* Printable, and safe to put in JSON and log lines as is. */
		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
			return false;
		if (n >= EXOTEL_SID_MAX)
			return false;
	}
	return n > 0;
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static bool
int_from_text(const char *s, int64_t *out)
{
	char     *end;
	long long v;

	if (s == NULL || *s == '\0')
		return false;
	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return false;
	errno = 0;
	v     = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* A number that Exotel may send as a JSON string or a JSON number.
 * Returns true and sets *out for an integral value; false otherwise. */
static bool
json_int(const cJSON *it, int64_t *out)
{
	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (!isfinite(d) || d != floor(d) || d > 9.0e15 || d < -9.0e15)
			return false;
		*out = (int64_t)d;
		return true;
	}
	if (cJSON_IsString(it))
		return int_from_text(it->valuestring, out);
	return false;
}

int
exotel_rate_parse(const char *s)
{
	int64_t v;

	if (!int_from_text(s, &v))
		return 0;
	if (v == 8000 || v == 16000 || v == 24000)
		return (int)v;
	return 0;
}

/* Copies a string (truncating to cap-1). */
static void
copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* A scalar JSON value as text: strings as is, numbers and booleans
 * printed, null as "". Returns false for objects and arrays, or when the
 * text would not fit in cap. */
static bool
scalar_text(const cJSON *it, char *dst, size_t cap)
{
	int n;

	if (cJSON_IsString(it)) {
		if (strlen(it->valuestring) >= cap)
			return false;
		copy_str(dst, cap, it->valuestring);
		return true;
	}
	if (cJSON_IsNumber(it)) {
		double d = it->valuedouble;
		if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e15)
			n = snprintf(dst, cap, "%lld", (long long)d);
		else
			n = snprintf(dst, cap, "%.17g", d);
		return n > 0 && (size_t)n < cap;
	}
	if (cJSON_IsBool(it)) {
		copy_str(dst, cap, cJSON_IsTrue(it) ? "true" : "false");
		return true;
	}
	if (cJSON_IsNull(it)) {
		dst[0] = '\0';
		return true;
	}
	return false;
}

/* Reads an optional sid-valued string field. Returns 0 (absent fields
 * leave dst ""), or EXOTEL_E_BAD_SID. */
static int
sid_field(const cJSON *obj, const char *key, char *dst)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	dst[0] = '\0';
	if (it == NULL || cJSON_IsNull(it))
		return 0;
	if (!cJSON_IsString(it) || !exotel_sid_ok(it->valuestring))
		return EXOTEL_E_BAD_SID;
	copy_str(dst, EXOTEL_SID_MAX + 1, it->valuestring);
	return 0;
}

/* Optional string field copied (truncated) into dst; numbers accepted
 * as text. */
static void
text_field(const cJSON *obj, const char *key, char *dst, size_t cap)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	dst[0] = '\0';
	if (it == NULL)
		return;
	if (cJSON_IsString(it))
		copy_str(dst, cap, it->valuestring);
	else if (!scalar_text(it, dst, cap))
		dst[0] = '\0';
}

static bool
kv_add(
    struct exotel_start *s, struct exotel_kv *tab, size_t *n, const cJSON *it)
{
	struct exotel_kv *kv;

	if (*n >= EXOTEL_KV_MAX || it->string == NULL
	    || strlen(it->string) > EXOTEL_KEY_MAX) {
		s->n_dropped++;
		return false;
	}
	kv = &tab[*n];
	if (!scalar_text(it, kv->val, sizeof(kv->val))) {
		s->n_dropped++;
		return false;
	}
	copy_str(kv->key, sizeof(kv->key), it->string);
	(*n)++;
	return true;
}

static bool
known_start_key(const char *k)
{
	static const char *const keys[]
	    = { "stream_sid", "call_sid", "account_sid", "from", "to",
		      "custom_parameters", "media_format" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return true;
	return false;
}

static int
parse_start(struct exotel_msg *m, const cJSON *root)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "start");
	const cJSON *it, *mf;
	struct exotel_start *s = &m->u.start;
	int                  rv;

	if (!cJSON_IsObject(st)) {
		m->reason = "start object missing";
		return EXOTEL_E_START_FIELD;
	}
	/* start.stream_sid wins; the top-level copy is the fallback. */
	it = cJSON_GetObjectItemCaseSensitive(st, "stream_sid");
	if (it != NULL && !cJSON_IsNull(it)) {
		if ((rv = sid_field(st, "stream_sid", m->stream_sid)) != 0) {
			m->reason = "start.stream_sid is not a usable sid";
			return rv;
		}
	}
	if (m->stream_sid[0] == '\0') {
		m->reason = "start.stream_sid missing";
		return EXOTEL_E_START_FIELD;
	}
	if ((rv = sid_field(st, "call_sid", s->call_sid)) != 0) {
		m->reason = "start.call_sid is not a usable sid";
		return rv;
	}
	if (s->call_sid[0] == '\0') {
		m->reason = "start.call_sid missing";
		return EXOTEL_E_START_FIELD;
	}
	text_field(st, "account_sid", s->account_sid, sizeof(s->account_sid));
	text_field(st, "from", s->from, sizeof(s->from));
	text_field(st, "to", s->to, sizeof(s->to));

	it = cJSON_GetObjectItemCaseSensitive(st, "custom_parameters");
	if (cJSON_IsObject(it)) {
		const cJSON *kv;
		s->custom_present = true;
		cJSON_ArrayForEach(kv, it)
		{
			kv_add(s, s->custom, &s->n_custom, kv);
		}
	} else if (it != NULL && !cJSON_IsNull(it)) {
		/* Present but not an object: keep the call, note the loss. */
		s->custom_present = true;
		s->n_dropped++;
	}

	mf = cJSON_GetObjectItemCaseSensitive(st, "media_format");
	if (cJSON_IsObject(mf)) {
		int64_t r;
		text_field(mf, "encoding", s->encoding, sizeof(s->encoding));
		text_field(mf, "bit_rate", s->bit_rate, sizeof(s->bit_rate));
		it = cJSON_GetObjectItemCaseSensitive(mf, "sample_rate");
		if (it != NULL && !cJSON_IsNull(it)) {
			if (!json_int(it, &r)
			    || (r != 8000 && r != 16000 && r != 24000)) {
				m->reason
				    = "start.media_format.sample_rate is "
				      "not 8000, 16000 or 24000";
				return EXOTEL_E_RATE;
			}
			s->sample_rate = (int)r;
		}
	}

	cJSON_ArrayForEach(it, st)
	{
		if (it->string == NULL || known_start_key(it->string))
			continue;
		if (cJSON_IsObject(it) || cJSON_IsArray(it))
			continue;
		kv_add(s, s->extra, &s->n_extra, it);
	}
	return EXOTEL_OK;
}

static int
parse_media(
    struct exotel_msg *m, const cJSON *root, uint8_t *pcm, size_t pcm_cap)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "media");
	const cJSON *pl;
	struct exotel_media *x = &m->u.media;
	size_t               n, out_len = 0;

	if (!cJSON_IsObject(md)) {
		m->reason = "media object missing";
		return EXOTEL_E_NO_PAYLOAD;
	}
	x->has_chunk = json_int(
	    cJSON_GetObjectItemCaseSensitive(md, "chunk"), &x->chunk);
	x->has_timestamp = json_int(
	    cJSON_GetObjectItemCaseSensitive(md, "timestamp"), &x->timestamp);
	pl = cJSON_GetObjectItemCaseSensitive(md, "payload");
	if (!cJSON_IsString(pl)) {
		m->reason = "media.payload missing or not a string";
		return EXOTEL_E_NO_PAYLOAD;
	}
	n = strlen(pl->valuestring);
	if (b64_decoded_max(n) > pcm_cap) {
		m->reason = "media.payload larger than the decode buffer";
		return EXOTEL_E_TOO_LARGE;
	}
	if (b64_decode(pcm, &out_len, pl->valuestring, n) != 0) {
		m->reason = "media.payload is not valid base64";
		return EXOTEL_E_BASE64;
	}
	if (out_len % 2 != 0) {
		m->reason = "media.payload decodes to an odd number of bytes";
		return EXOTEL_E_ODD_PCM;
	}
	x->pcm     = pcm;
	x->pcm_len = out_len;
	return EXOTEL_OK;
}

static int
parse_dtmf(struct exotel_msg *m, const cJSON *root)
{
	const cJSON        *d = cJSON_GetObjectItemCaseSensitive(root, "dtmf");
	const cJSON        *dg;
	struct exotel_dtmf *x = &m->u.dtmf;

	if (!cJSON_IsObject(d)) {
		m->reason = "dtmf object missing";
		return EXOTEL_E_FIELD;
	}
	dg = cJSON_GetObjectItemCaseSensitive(d, "digit");
	if (!scalar_text(dg, x->digit, sizeof(x->digit))
	    || x->digit[0] == '\0') {
		x->digit[0] = '\0';
		m->reason   = "dtmf.digit missing or too long";
		return EXOTEL_E_FIELD;
	}
	x->has_duration = json_int(
	    cJSON_GetObjectItemCaseSensitive(d, "duration"), &x->duration_ms);
	return EXOTEL_OK;
}

static int
parse_mark(struct exotel_msg *m, const cJSON *root)
{
	const cJSON *mk = cJSON_GetObjectItemCaseSensitive(root, "mark");
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(mk, "name");

	if (!cJSON_IsString(nm) || strlen(nm->valuestring) > EXOTEL_MARK_MAX) {
		m->reason = "mark.name missing or too long";
		return EXOTEL_E_FIELD;
	}
	copy_str(m->u.mark, sizeof(m->u.mark), nm->valuestring);
	return EXOTEL_OK;
}

static int
parse_stop(struct exotel_msg *m, const cJSON *root)
{
	const cJSON *sp       = cJSON_GetObjectItemCaseSensitive(root, "stop");
	struct exotel_stop *x = &m->u.stop;

	/* Everything in stop is optional: a stop is a stop. */
	if (!cJSON_IsObject(sp))
		return EXOTEL_OK;
	text_field(sp, "reason", x->reason, sizeof(x->reason));
	text_field(sp, "call_sid", x->call_sid, sizeof(x->call_sid));
	text_field(sp, "account_sid", x->account_sid, sizeof(x->account_sid));
	return EXOTEL_OK;
}

static enum exotel_event
event_kind(const char *s)
{
	for (int i = EXOTEL_EV_CONNECTED; i < EXOTEL_EV_N; i++)
		if (strcmp(s, event_names[i]) == 0)
			return (enum exotel_event)i;
	return EXOTEL_EV_UNKNOWN;
}

/* cJSON's allocator is process-wide: while exotel_parse_in runs on a
 * thread, that thread's objects come from its arena, and freeing them is
 * left to the arena's reset. Every other use goes to the heap. */
static _Thread_local struct arena *json_arena;
static pthread_once_t              json_hooks_once = PTHREAD_ONCE_INIT;

static void *
json_malloc(size_t n)
{
	return json_arena ? arena_get(json_arena, n) : malloc(n);
}

static void
json_free(void *p)
{
	if (p != NULL && json_arena != NULL && arena_owns(json_arena, p))
		return;
	free(p);
}

static void
json_hooks(void)
{
	cJSON_Hooks h = { .malloc_fn = json_malloc, .free_fn = json_free };

	cJSON_InitHooks(&h);
}

static int parse(struct exotel_msg *m, const char *json, size_t len,
    uint8_t *pcm, size_t pcm_cap);

int
exotel_parse(struct exotel_msg *m, const char *json, size_t len, uint8_t *pcm,
    size_t pcm_cap)
{
	return exotel_parse_in(NULL, m, json, len, pcm, pcm_cap);
}

int
exotel_parse_in(struct arena *a, struct exotel_msg *m, const char *json,
    size_t len, uint8_t *pcm, size_t pcm_cap)
{
	int rv;

	pthread_once(&json_hooks_once, json_hooks);
	if (a)
		arena_reset(a);
	json_arena = a;
	rv         = parse(m, json, len, pcm, pcm_cap);
	json_arena = NULL;
	return rv;
}

static int
parse(struct exotel_msg *m, const char *json, size_t len, uint8_t *pcm,
    size_t pcm_cap)
{
	cJSON       *root;
	const cJSON *ev;
	const char  *end = NULL;
	int          rv  = EXOTEL_OK;

	memset(m, 0, sizeof(*m));
	m->reason = "";
	root      = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	/* Only whitespace may follow the object. */
	while (root != NULL && end < json + len
	    && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (root != NULL && end < json + len) {
		cJSON_Delete(root);
		root = NULL;
	}
	if (root == NULL) {
		m->reason = "message is not valid JSON";
		return EXOTEL_E_JSON;
	}
	if (!cJSON_IsObject(root)) {
		m->reason = "message is not a JSON object";
		rv        = EXOTEL_E_NOT_OBJECT;
		goto out;
	}
	ev = cJSON_GetObjectItemCaseSensitive(root, "event");
	if (!cJSON_IsString(ev)) {
		m->reason = "\"event\" missing or not a string";
		rv        = EXOTEL_E_NO_EVENT;
		goto out;
	}
	copy_str(m->event, sizeof(m->event), ev->valuestring);
	m->kind    = event_kind(ev->valuestring);
	m->has_seq = json_int(
	    cJSON_GetObjectItemCaseSensitive(root, "sequence_number"),
	    &m->seq);
	if ((rv = sid_field(root, "stream_sid", m->stream_sid)) != 0) {
		m->reason = "stream_sid is not a usable sid";
		goto out;
	}

	switch (m->kind) {
	case EXOTEL_EV_START:
		rv = parse_start(m, root);
		break;
	case EXOTEL_EV_MEDIA:
		rv = parse_media(m, root, pcm, pcm_cap);
		break;
	case EXOTEL_EV_DTMF:
		rv = parse_dtmf(m, root);
		break;
	case EXOTEL_EV_MARK:
		rv = parse_mark(m, root);
		break;
	case EXOTEL_EV_STOP:
		rv = parse_stop(m, root);
		break;
	default:
		/* connected carries nothing; unknown and clear are ignored. */
		break;
	}
out:
	cJSON_Delete(root);
	return rv;
}

bool
exotel_custom_take(
    struct exotel_start *s, const char *key, char *val, size_t cap)
{
	bool   found = false;
	size_t o     = 0;

	if (cap > 0)
		val[0] = '\0';
	for (size_t i = 0; i < s->n_custom; i++) {
		if (strcmp(s->custom[i].key, key) == 0) {
			if (!found && cap > 0)
				copy_str(val, cap, s->custom[i].val);
			found = true;
			continue;
		}
		if (o != i)
			s->custom[o] = s->custom[i];
		o++;
	}
	/* Leave no copy of a secret behind in the freed slots. */
	for (size_t i = o; i < s->n_custom; i++)
		memset(&s->custom[i], 0, sizeof(s->custom[i]));
	s->n_custom = o;
	return found;
}

size_t
exotel_media_size(size_t n, size_t sid_len)
{
	return b64_encoded_len(n) + sid_len + EXOTEL_MSG_OVERHEAD;
}

size_t
exotel_build_media(char *out, size_t cap, const char *stream_sid,
    const uint8_t *pcm, size_t n)
{
	size_t sl = strlen(stream_sid);
	int    h;

	if (cap < exotel_media_size(n, sl))
		return 0;
	h = snprintf(out, cap,
	    "{\"event\":\"media\",\"stream_sid\":\"%s\","
	    "\"media\":{\"payload\":\"",
	    stream_sid);
	if (h < 0 || (size_t)h >= cap)
		return 0;
	h += (int)b64_encode(out + h, pcm, n);
	memcpy(out + h, "\"}}", 4);
	return (size_t)h + 3;
}

/* Writes s as JSON string content (no quotes). Returns the length, or
 * (size_t) -1 if it does not fit with a NUL. */
static size_t
json_escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char          esc[8];
		size_t        el;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			el     = 2;
		} else if (c < 0x20) {
			el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		} else {
			esc[0] = (char)c;
			el     = 1;
		}
		if (o + el + 1 > cap)
			return (size_t)-1;
		memcpy(out + o, esc, el);
		o += el;
	}
	if (o + 1 > cap)
		return (size_t)-1;
	out[o] = '\0';
	return o;
}

size_t
exotel_build_mark(
    char *out, size_t cap, const char *stream_sid, const char *name)
{
	char esc[EXOTEL_MARK_MAX * 6 + 1];
	int  n;

	if (strlen(name) > EXOTEL_MARK_MAX
	    || json_escape(esc, sizeof(esc), name) == (size_t)-1)
		return 0;
	n = snprintf(out, cap,
	    "{\"event\":\"mark\",\"stream_sid\":\"%s\","
	    "\"mark\":{\"name\":\"%s\"}}",
	    stream_sid, esc);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

size_t
exotel_build_clear(char *out, size_t cap, const char *stream_sid)
{
	int n = snprintf(out, cap,
	    "{\"event\":\"clear\",\"stream_sid\":\"%s\"}", stream_sid);

	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}
