/*
 * tapfmt.c - bus Envelopes as JSON lines (see tapfmt.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "tapfmt.h"

/* A JSON string; bytes >= 0x80 pass through (UTF-8 stays UTF-8). */
static void
js(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void
kstr(FILE *out, const char *k, const char *v)
{
	fprintf(out, ",\"%s\":", k);
	js(out, v);
}

static void
knum(FILE *out, const char *k, uint64_t v)
{
	fprintf(out, ",\"%s\":%" PRIu64, k, v);
}

static void
kbool(FILE *out, const char *k, int v)
{
	fprintf(out, ",\"%s\":%s", k, v ? "true" : "false");
}

/* RFC 3339 UTC with milliseconds. */
static void
iso(char *buf, size_t len, uint64_t us)
{
	time_t    t = (time_t)(us / 1000000u);
	struct tm tm;
	char      s[32];
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03uZ", s, (unsigned)(us / 1000u % 1000u));
}

int
tapfmt_kind_in(const char *list, const char *kind)
{
	size_t kl = strlen(kind);
	if (!list || !*list)
		return 1;
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t      n = e ? (size_t)(e - p) : strlen(p);
		if (n == kl && !strncmp(p, kind, n))
			return 1;
		p += n + (e != NULL);
	}
	return 0;
}

static void
audio(FILE *out, const Exo__Audio *a)
{
	if (!a)
		return;
	knum(out, "rate", a->sample_rate);
	knum(out, "pcm_bytes", a->pcm.len);
	if (a->sample_rate)
		fprintf(out, ",\"ms\":%.1f",
		    (double)a->pcm.len / 2.0 * 1000.0 / a->sample_rate);
}

static void
ogg(FILE *out, const Exo__Ogg *o)
{
	if (!o)
		return;
	knum(out, "session", o->session);
	knum(out, "ogg_bytes", o->data.len);
	if (o->header)
		kbool(out, "header", 1);
}

static void
session(FILE *out, const Exo__Session *s)
{
	if (!s)
		return;
	knum(out, "session", s->session);
	if (s->server && *s->server)
		kstr(out, "server", s->server);
	if (s->reason && *s->reason)
		kstr(out, "reason", s->reason);
}

static void
call_start(FILE *out, const Exo__CallStart *c)
{
	if (!c)
		return;
	kstr(out, "call_sid", c->call_sid);
	kstr(out, "from", c->from);
	kstr(out, "to", c->to);
	knum(out, "rate", c->sample_rate);
	if (c->reannounce)
		kbool(out, "reannounce", 1);
	if (c->persona && *c->persona)
		kstr(out, "persona", c->persona);
	if (c->mode && *c->mode)
		kstr(out, "mode", c->mode);
	if (c->refused && *c->refused)
		kstr(out, "refused", c->refused);
}

/* The fields that matter for f's kind. */
static void
body(FILE *out, const Exo__Frame *f)
{
	switch (f->body_case) {
	case EXO__FRAME__BODY_CALL_START:
		call_start(out, f->call_start);
		break;
	case EXO__FRAME__BODY_CALLER_AUDIO:
		audio(out, f->caller_audio);
		break;
	case EXO__FRAME__BODY_PLAYBACK_AUDIO:
		audio(out, f->playback_audio);
		break;
	case EXO__FRAME__BODY_UPLINK_OGG:
		ogg(out, f->uplink_ogg);
		break;
	case EXO__FRAME__BODY_DOWNLINK_OGG:
		ogg(out, f->downlink_ogg);
		break;
	case EXO__FRAME__BODY_SESSION_READY:
		session(out, f->session_ready);
		break;
	case EXO__FRAME__BODY_SESSION_ENDED:
		session(out, f->session_ended);
		break;
	case EXO__FRAME__BODY_DTMF:
		if (f->dtmf) {
			kstr(out, "digit", f->dtmf->digit);
			knum(out, "duration_ms", f->dtmf->duration_ms);
		}
		break;
	case EXO__FRAME__BODY_MARK:
		if (f->mark)
			kstr(out, "name", f->mark->name);
		break;
	case EXO__FRAME__BODY_CALL_STOP:
		if (f->call_stop) {
			kstr(out, "reason", f->call_stop->reason);
			if (f->call_stop->mode && *f->call_stop->mode)
				kstr(out, "mode", f->call_stop->mode);
		}
		break;
	case EXO__FRAME__BODY_CALL_MODE:
		if (f->call_mode) {
			kstr(out, "mode", f->call_mode->mode);
			kstr(out, "by", f->call_mode->by);
		}
		break;
	case EXO__FRAME__BODY_HANGUP:
		if (f->hangup)
			kstr(out, "reason", f->hangup->reason);
		break;
	case EXO__FRAME__BODY_CLEAR:
		if (f->clear)
			kstr(out, "reason", f->clear->reason);
		break;
	case EXO__FRAME__BODY_AGENT_TEXT:
		if (f->agent_text)
			kstr(out, "text", f->agent_text->text);
		break;
	case EXO__FRAME__BODY_PLAYOUT:
		if (f->playout) {
			kbool(out, "playing", f->playout->playing);
			knum(out, "lag_ms", f->playout->lag_ms);
		}
		break;
	case EXO__FRAME__BODY_CAPACITY:
		if (f->capacity) {
			knum(out, "free", f->capacity->free);
			knum(out, "total", f->capacity->total);
		}
		break;
	default:
		break;
	}
}

size_t
tapfmt_envelope(FILE *out, const Exo__Envelope *env, const struct tap_where *w,
    const struct tap_filter *flt)
{
	const char *sender = env->sender ? env->sender : "";
	const char *dir    = !strcmp(sender, w->at) ? "out" : "in";
	char        when[40];
	size_t      lines = 0;

	iso(when, sizeof(when), env->sent_us);
	for (size_t i = 0; i < env->n_frames; i++) {
		const Exo__Frame *f    = env->frames[i];
		const char       *call = f->call_id ? f->call_id : "";
		const char       *kind = bus_kind_name(f);

		if (flt && flt->call && strcmp(flt->call, call))
			continue;
		if (flt && !tapfmt_kind_in(flt->kinds, kind))
			continue;
		fputs("{\"time\":", out);
		js(out, when);
		kstr(out, "at", w->at);
		kstr(out, "link", w->link);
		kstr(out, "dir", dir);
		kstr(out, "sender", sender);
		kstr(out, "call", call);
		kstr(out, "kind", kind);
		knum(out, "seq", f->seq);
		knum(out, "ts_us", f->ts_us);
		if (f->ts_us && env->sent_us >= f->ts_us)
			fprintf(out, ",\"age_ms\":%.3f",
			    (double)(env->sent_us - f->ts_us) / 1000.0);
		knum(out, "bytes", exo__frame__get_packed_size(f));
		knum(out, "msg_frames", env->n_frames);
		body(out, f);
		fputs("}\n", out);
		lines++;
	}
	return lines;
}

void
tapfmt_bad(FILE *out, const struct tap_where *w, size_t len, uint64_t now_us)
{
	char when[40];
	iso(when, sizeof(when), now_us);
	fputs("{\"time\":", out);
	js(out, when);
	kstr(out, "at", w->at);
	kstr(out, "link", w->link);
	kstr(out, "kind", "bad_message");
	knum(out, "bytes", len);
	fputs("}\n", out);
}

int
tapfmt_name(
    const char *url, char *at, size_t atlen, char *link, size_t linklen)
{
	const char *base = strrchr(url, '/');
	base             = base ? base + 1 : url;
	size_t n         = strlen(base);
	if (strncmp(base, "tap-", 4) || n < 10
	    || strcmp(base + n - 5, ".sock"))
		return EINVAL;
	const char *name = base + 4, *end = base + n - 5;
	const char *dash = memchr(name, '-', (size_t)(end - name));
	if (!dash || dash == name || dash + 1 == end)
		return EINVAL;
	snprintf(at, atlen, "%.*s", (int)(dash - name), name);
	snprintf(link, linklen, "%.*s", (int)(end - dash - 1), dash + 1);
	return 0;
}
