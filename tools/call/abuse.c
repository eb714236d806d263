/*
 * abuse.c - plans and runs of bad input (see abuse.h).
 *
 * Valid messages (connected, start, media) come from exomsg.c, so the
 * only wrong thing on a socket is the one the kind is about.
 */
#include "abuse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"
#include "clock.h"
#include "exomsg.h"
#include "wsraw.h"

static const char *const kind_names[AB_N] = {
	[AB_MEDIA_BEFORE_START]   = "media_before_start",
	[AB_INVALID_JSON]         = "invalid_json",
	[AB_NOT_OBJECT]           = "not_object",
	[AB_NO_EVENT]             = "no_event",
	[AB_INVALID_BASE64]       = "invalid_base64",
	[AB_ODD_PCM]              = "odd_pcm",
	[AB_BINARY_FRAME]         = "binary_frame",
	[AB_HUGE_FRAME]           = "huge_frame",
	[AB_START_MISSING_FIELDS] = "start_missing_fields",
	[AB_SECOND_START]         = "second_start",
	[AB_UNKNOWN_EVENT]        = "unknown_event",
	[AB_BAD_SAMPLE_RATE]      = "bad_sample_rate",
	[AB_NO_START]             = "no_start",
	[AB_GARBAGE]              = "garbage",
	[AB_GARBAGE_WS]           = "garbage_ws",
	[AB_BAD_PATH]             = "bad_path",
	[AB_FLOOD]                = "flood",
	[AB_START_ONLY]           = "start_only",
};

const char *
abuse_kind_name(enum abuse_kind k)
{
	return (unsigned)k < AB_N ? kind_names[k] : "?";
}

int
abuse_kind_parse(const char *s)
{
	for (int k = 0; k < AB_N; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

bool
abuse_kind_in_all(enum abuse_kind k)
{
	return k != AB_START_ONLY;
}

bool
abuse_kind_after_start_ok(enum abuse_kind k)
{
	switch (k) {
	case AB_START_ONLY: /* always has one */
	case AB_MEDIA_BEFORE_START:
	case AB_START_MISSING_FIELDS:
	case AB_SECOND_START: /* always has one */
	case AB_BAD_SAMPLE_RATE:
	case AB_NO_START:
	case AB_GARBAGE:
	case AB_BAD_PATH:
		return false;
	default:
		return true;
	}
}

static int
plan_add(struct abuse_plan *p, int opcode, const char *data, size_t len)
{
	struct abuse_msg *nm = realloc(p->msgs, (p->n + 1) * sizeof(*nm));
	char             *d  = malloc(len + 1);

	if (!nm || !d) {
		free(d);
		if (nm)
			p->msgs = nm;
		return ENOMEM;
	}
	p->msgs = nm;
	memcpy(d, data, len);
	d[len]               = '\0';
	p->msgs[p->n].opcode = opcode;
	p->msgs[p->n].data   = d;
	p->msgs[p->n].len    = len;
	p->n++;
	return 0;
}

static int
plan_text(struct abuse_plan *p, const char *s)
{
	return plan_add(p, WSRAW_TEXT, s, strlen(s));
}

/* A valid media message of ms milliseconds of a quiet ramp. */
static int
plan_media(struct abuse_plan *p, const struct exomsg_call *c, unsigned seq,
    unsigned chunk, int ms)
{
	size_t   nb  = (size_t)c->rate * (size_t)ms / 1000 * 2;
	size_t   cap = exomsg_media_cap(c, nb);
	uint8_t *pcm = calloc(1, nb);
	char    *buf = malloc(cap);
	size_t   len = 0;
	int      rv  = ENOMEM;

	if (pcm && buf) {
		for (size_t i = 0; i < nb; i += 2)
			pcm[i] = (uint8_t)(i & 0x3f);
		rv = exomsg_media(buf, cap, &len, c, seq, chunk,
		    (unsigned)((chunk - 1) * (unsigned)ms), pcm, nb);
		if (rv == 0)
			rv = plan_text(p, buf);
	}
	free(pcm);
	free(buf);
	return rv;
}

static int
plan_start(struct abuse_plan *p, const struct exomsg_call *c, unsigned seq)
{
	char   buf[2048];
	size_t len;
	int    rv = exomsg_start(buf, sizeof(buf), &len, c, seq);

	return rv ? rv : plan_text(p, buf);
}

/* A media message whose payload is the given text, otherwise valid. */
static int
plan_media_payload(struct abuse_plan *p, const char *sid, const char *b64)
{
	size_t n   = strlen(b64) + strlen(sid) + 160;
	char  *buf = malloc(n);
	int    rv;

	if (!buf)
		return ENOMEM;
	snprintf(buf, n,
	    "{\"event\":\"media\",\"sequence_number\":\"3\",\"stream_sid\":"
	    "\"%s\",\"media\":{\"chunk\":\"2\",\"timestamp\":\"20\","
	    "\"payload\":\"%s\"}}",
	    sid, b64);
	rv = plan_text(p, buf);
	free(buf);
	return rv;
}

static int
plan_huge(struct abuse_plan *p, const char *sid, size_t bytes)
{
	/* Valid JSON, valid base64, just far too big. */
	size_t b64n = bytes > 200 ? (bytes - 200) / 4 * 4 : 4;
	char  *pl   = malloc(b64n + 1);
	int    rv;

	if (!pl)
		return ENOMEM;
	memset(pl, 'A', b64n);
	pl[b64n] = '\0';
	rv       = plan_media_payload(p, sid, pl);
	free(pl);
	return rv;
}

int
abuse_plan_make(
    struct abuse_plan *p, enum abuse_kind k, const struct abuse_opts *o)
{
	char               sid[EXOMSG_SID_LEN + 1], csid[EXOMSG_SID_LEN + 1];
	char               buf[1024];
	uint64_t           rng = o->seed ^ ((uint64_t)k << 32);
	struct exomsg_call c;
	unsigned           seq = 1;
	int                rv  = 0;

	memset(p, 0, sizeof(*p));
	p->upgrade     = k != AB_GARBAGE;
	p->path        = k == AB_BAD_PATH ? "/not-exotel" : o->path;
	p->wait_ms     = k == AB_NO_START ? o->start_wait_ms : o->wait_ms;
	p->after_start = k == AB_SECOND_START || k == AB_START_ONLY
	    || (o->after_start && abuse_kind_after_start_ok(k));

	exomsg_gen_ids(sid, csid, &rng);
	memset(&c, 0, sizeof(c));
	c.stream_sid  = sid;
	c.call_sid    = csid;
	c.account_sid = "abuse1";
	c.from        = "09990000001";
	c.to          = "08000000002";
	c.rate        = o->rate;

	if (k == AB_GARBAGE) {
		/* Not HTTP: binary junk with line ends, as a port scan or a
		 * confused client might send. */
		uint8_t junk[4096];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(exomsg_rand(&rng) >> 56);
		memcpy(junk + 100, "\r\n\r\n", 4);
		memcpy(junk + sizeof(junk) - 4, "\r\n\r\n", 4);
		return plan_add(p, AB_RAW, (const char *)junk, sizeof(junk));
	}
	if (k == AB_BAD_PATH)
		return 0; /* the 404 is the whole story */
	if ((rv = plan_text(p, "{\"event\":\"connected\"}")) != 0)
		goto out;
	if (p->after_start && (rv = plan_start(p, &c, seq++)) != 0)
		goto out;

	switch (k) {
	case AB_MEDIA_BEFORE_START:
		for (unsigned i = 1; i <= 5 && !rv; i++)
			rv = plan_media(p, &c, seq++, i, 20);
		break;
	case AB_INVALID_JSON:
		/* Cut short, as a broken writer would. */
		snprintf(buf, sizeof(buf),
		    "{\"event\":\"media\",\"sequence_number\":\"%u\","
		    "\"stream_sid\":\"%s\",\"media\":{\"payload\":\"AAAA\"",
		    seq++, sid);
		rv = plan_text(p, buf);
		break;
	case AB_NOT_OBJECT:
		rv = plan_text(p, "[\"event\",\"media\"]");
		break;
	case AB_NO_EVENT:
		snprintf(buf, sizeof(buf),
		    "{\"evnt\":\"media\",\"stream_sid\":\"%s\"}", sid);
		rv = plan_text(p, buf);
		break;
	case AB_INVALID_BASE64:
		rv = plan_media_payload(p, sid, "@@not*base64!!==");
		break;
	case AB_ODD_PCM: {
		/* 321 bytes: one sample and a half over 160 samples. */
		uint8_t pcm[321];
		char    b64[440];
		memset(pcm, 0x11, sizeof(pcm));
		b64_encode(b64, pcm, sizeof(pcm));
		rv = plan_media_payload(p, sid, b64);
		break;
	}
	case AB_BINARY_FRAME: {
		/* Raw PCM as a binary frame: Exotel sends text only. */
		uint8_t pcm[640];
		memset(pcm, 0x22, sizeof(pcm));
		rv = plan_add(p, WSRAW_BINARY, (const char *)pcm, sizeof(pcm));
		break;
	}
	case AB_HUGE_FRAME:
		rv = plan_huge(p, sid, o->huge_bytes);
		break;
	case AB_START_MISSING_FIELDS:
		/* No stream_sid or call_sid anywhere, no media_format. */
		rv = plan_text(p,
		    "{\"event\":\"start\",\"sequence_number\":\"1\","
		    "\"start\":{\"account_sid\":\"abuse1\",\"from\":"
		    "\"09990000001\",\"to\":\"08000000002\"}}");
		break;
	case AB_SECOND_START:
		rv = plan_start(p, &c, seq++);
		break;
	case AB_UNKNOWN_EVENT:
		/* Invented by some docs (§1.1): must be ignored. */
		snprintf(buf, sizeof(buf),
		    "{\"event\":\"silence\",\"sequence_number\":\"%u\","
		    "\"stream_sid\":\"%s\",\"silence\":{\"duration\":\"200\"}"
		    "}",
		    seq++, sid);
		if ((rv = plan_text(p, buf)) != 0)
			break;
		snprintf(buf, sizeof(buf),
		    "{\"event\":\"transcript\",\"sequence_number\":\"%u\","
		    "\"stream_sid\":\"%s\"}",
		    seq++, sid);
		rv = plan_text(p, buf);
		break;
	case AB_BAD_SAMPLE_RATE:
		c.rate = 44100;
		rv     = plan_start(p, &c, seq++);
		break;
	case AB_NO_START:
		break; /* connected, then silence past the deadline */
	case AB_GARBAGE_WS: {
		/* 0xff: FIN, all three RSV bits, reserved opcode 0xf. */
		uint8_t junk[64];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(exomsg_rand(&rng) >> 56);
		junk[0] = 0xff;
		rv = plan_add(p, AB_RAW, (const char *)junk, sizeof(junk));
		break;
	}
	case AB_START_ONLY:
		break; /* the start above is all: how is it answered? */
	case AB_FLOOD:
		for (unsigned i = 0; i < o->flood_n && !rv; i++)
			rv = plan_text(p, "{\"event\":\"connected\"}");
		break;
	default:
		break;
	}
out:
	if (rv)
		abuse_plan_free(p);
	return rv;
}

void
abuse_plan_free(struct abuse_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->msgs[i].data);
	free(p->msgs);
	p->msgs = NULL;
	p->n    = 0;
}

static void
take_status(struct abuse_result *r, const struct wsraw *w)
{
	const struct wsraw_status *st = wsraw_status(w);

	r->http_status       = st->http_status;
	r->upgraded          = st->upgraded;
	r->write_failed      = st->write_failed;
	r->messages_received = st->messages_received;
	r->closed_by         = st->end == WSRAW_BY_SERVER ? "server"
	            : st->end == WSRAW_BY_CLIENT          ? "client"
	                                                  : NULL;
	r->close_code        = st->close_code;
	snprintf(
	    r->close_reason, sizeof(r->close_reason), "%s", st->close_reason);
}

int
abuse_run(
    enum abuse_kind k, const struct abuse_opts *o, struct abuse_result *r)
{
	struct abuse_plan p;
	struct wsraw     *w  = NULL;
	uint64_t          t0 = mono_us();
	int               rv;

	memset(r, 0, sizeof(*r));
	r->kind = k;
	if ((rv = abuse_plan_make(&p, k, o)) != 0)
		return rv;
	r->after_start = p.after_start;
	r->planned     = p.n;
	rv             = wsraw_connect(&w, o->host, o->port, o->io_timeout_ms);
	if (rv) {
		r->error = rv; /* an outcome, not a failure of the run */
		rv       = 0;
		goto out;
	}
	if (p.upgrade
	    && wsraw_upgrade(w, o->host_hdr, p.path, o->auth, o->io_timeout_ms)
	        != 0) {
		/* A refused upgrade is an answer in itself. */
		wsraw_close(w, 0, 0);
		take_status(r, w);
		if (r->http_status && r->http_status != 101)
			r->closed_by = "server";
		goto out;
	}
	for (size_t i = 0; i < p.n; i++) {
		const struct abuse_msg *m = &p.msgs[i];
		rv                        = m->opcode == AB_RAW
		                           ? wsraw_send_raw(w, m->data, m->len, o->io_timeout_ms)
		                           : wsraw_send(
		                               w, m->opcode, m->data, m->len, o->io_timeout_ms);
		if (rv)
			break;
		r->sent++;
	}
	rv                 = 0;
	r->open_after_wait = !wsraw_wait(w, p.wait_ms);
	take_status(r, w);
	if (r->open_after_wait) {
		wsraw_close(w, 1000, o->io_timeout_ms);
		take_status(r, w);
	}
out:
	wsraw_free(w);
	abuse_plan_free(&p);
	r->ms = (double)(mono_us() - t0) / 1000.0;
	return rv;
}

char *
abuse_result_json(const struct abuse_result *r)
{
	cJSON *j = cJSON_CreateObject();
	char  *s;

	if (!j)
		return NULL;
	cJSON_AddStringToObject(j, "kind", abuse_kind_name(r->kind));
	cJSON_AddBoolToObject(j, "after_start", r->after_start);
	if (r->error)
		cJSON_AddStringToObject(j, "error", strerror(r->error));
	cJSON_AddNumberToObject(j, "http_status", r->http_status);
	cJSON_AddBoolToObject(j, "upgraded", r->upgraded);
	cJSON_AddNumberToObject(j, "planned", (double)r->planned);
	cJSON_AddNumberToObject(j, "sent", (double)r->sent);
	cJSON_AddBoolToObject(j, "write_failed", r->write_failed);
	if (r->closed_by)
		cJSON_AddStringToObject(j, "closed_by", r->closed_by);
	else
		cJSON_AddNullToObject(j, "closed_by");
	cJSON_AddNumberToObject(j, "close_code", r->close_code);
	cJSON_AddStringToObject(j, "close_reason", r->close_reason);
	cJSON_AddBoolToObject(j, "open_after_wait", r->open_after_wait);
	cJSON_AddNumberToObject(
	    j, "messages_received", (double)r->messages_received);
	cJSON_AddNumberToObject(j, "ms", (double)(long long)(r->ms + 0.5));
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

void
abuse_churn_run(const struct abuse_opts *o, unsigned n, int max_ms,
    bool with_start, struct abuse_churn *c)
{
	uint64_t t0 = mono_us(), end = t0 + (uint64_t)max_ms * 1000;
	unsigned ways = with_start ? 5 : 4;
	uint64_t rng  = o->seed ^ 0xc4u;

	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < n; i++) {
		struct wsraw *w   = NULL;
		unsigned      way = i % ways;

		if (mono_us() >= end) {
			c->stopped_early = true;
			break;
		}
		c->attempts++;
		if (wsraw_connect(&w, o->host, o->port, o->io_timeout_ms)
		    != 0) {
			c->failed++;
			continue;
		}
		c->tcp_connected++;
		switch (way) {
		case 0: /* connect, drop */
			break;
		case 1: { /* half a request, drop */
			static const char half[]
			    = "GET /exotel HTTP/1.1\r\nHo";
			wsraw_send_raw(
			    w, half, sizeof(half) - 1, o->io_timeout_ms);
			break;
		}
		default: { /* upgrade, then leave in some way */
			int rv = wsraw_upgrade(w, o->host_hdr, o->path,
			    o->auth, o->io_timeout_ms);
			if (rv == EACCES) {
				c->http_refused++;
				break;
			}
			if (rv) {
				c->failed++;
				break;
			}
			c->upgraded++;
			if (way == 2)
				break; /* dropped without a close frame */
			wsraw_send(w, WSRAW_TEXT, "{\"event\":\"connected\"}",
			    21, o->io_timeout_ms);
			if (way == 4) {
				/* A call that hangs up at once. */
				char   sid[40], csid[40], buf[2048];
				size_t len;
				struct exomsg_call ec;
				memset(&ec, 0, sizeof(ec));
				exomsg_gen_ids(sid, csid, &rng);
				ec.stream_sid  = sid;
				ec.call_sid    = csid;
				ec.account_sid = "churn1";
				ec.from        = "09990000001";
				ec.to          = "08000000002";
				ec.rate        = o->rate;
				if (exomsg_start(
				        buf, sizeof(buf), &len, &ec, 1)
				        == 0
				    && wsraw_send(w, WSRAW_TEXT, buf, len,
				           o->io_timeout_ms)
				        == 0)
					c->with_start++;
				break;
			}
			wsraw_close(w, 1000, o->io_timeout_ms);
			break;
		}
		}
		wsraw_free(w); /* drops whatever is still open */
	}
	c->ms = (double)(mono_us() - t0) / 1000.0;
}

char *
abuse_churn_json(const struct abuse_churn *c)
{
	cJSON *j = cJSON_CreateObject();
	char  *s;

	if (!j)
		return NULL;
	cJSON_AddStringToObject(j, "kind", "churn");
	cJSON_AddNumberToObject(j, "attempts", c->attempts);
	cJSON_AddNumberToObject(j, "tcp_connected", c->tcp_connected);
	cJSON_AddNumberToObject(j, "upgraded", c->upgraded);
	cJSON_AddNumberToObject(j, "http_refused", c->http_refused);
	cJSON_AddNumberToObject(j, "failed", c->failed);
	cJSON_AddNumberToObject(j, "with_start", c->with_start);
	cJSON_AddBoolToObject(j, "stopped_early", c->stopped_early);
	cJSON_AddNumberToObject(j, "ms", (double)(long long)(c->ms + 0.5));
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}
