/*
 * exomsg.c - build Exotel's messages as real Exotel sends them.
 *
 * Built by hand rather than with cJSON so key order and value types are
 * exactly the captured ones, and media (50 messages a second per call)
 * costs one base64 pass and no allocation.
 */
#include "exomsg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"

struct jb {
	char  *p;
	size_t cap, len;
	int    err;
};

static void
jb_raw(struct jb *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		b->err = ENOSPC;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
jb_lit(struct jb *b, const char *s)
{
	jb_raw(b, s, strlen(s));
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * everything else (UTF-8 included) copied. */
static void
jb_str(struct jb *b, const char *s)
{
	jb_raw(b, "\"", 1);
	for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
		char esc[8];
		if (*q == '"' || *q == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*q;
			jb_raw(b, esc, 2);
		} else if (*q < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *q);
			jb_raw(b, esc, 6);
		} else {
			jb_raw(b, (const char *)q, 1);
		}
	}
	jb_raw(b, "\"", 1);
}

/* A number, quoted unless the call sends numbers as numbers. */
static void
jb_num(struct jb *b, const struct exomsg_call *c, unsigned long v)
{
	char tmp[32];
	int  n = snprintf(tmp, sizeof(tmp), c->numbers ? "%lu" : "\"%lu\"", v);
	jb_raw(b, tmp, (size_t)n);
}

/* "key": */
static void
jb_key(struct jb *b, const char *k)
{
	jb_str(b, k);
	jb_raw(b, ":", 1);
}

static int
jb_done(struct jb *b, size_t *len)
{
	if (b->err)
		return b->err;
	*len = b->len;
	return 0;
}

static void
jb_head(
    struct jb *b, const char *event, const struct exomsg_call *c, unsigned seq)
{
	/* Exotel's template order for everything after start: event,
	 * sequence_number, stream_sid. */
	jb_lit(b, "{\"event\":");
	jb_str(b, event);
	jb_lit(b, ",\"sequence_number\":");
	jb_num(b, c, seq);
	jb_lit(b, ",\"stream_sid\":");
	jb_str(b, c->stream_sid);
}

uint64_t
exomsg_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void
exomsg_gen_ids(char *stream_sid, char *call_sid, uint64_t *rng)
{
	static const char hex[]  = "0123456789abcdef";
	static const char tail[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	int               head   = EXOMSG_SID_LEN - 4;

	for (int i = 0; i < head; i++) {
		stream_sid[i] = hex[exomsg_rand(rng) % 16];
		call_sid[i]   = hex[exomsg_rand(rng) % 16];
	}
	for (int i = head; i < EXOMSG_SID_LEN; i++)
		stream_sid[i] = call_sid[i] = tail[exomsg_rand(rng) % 36];
	stream_sid[EXOMSG_SID_LEN] = call_sid[EXOMSG_SID_LEN] = '\0';
}

int
exomsg_connected(char *buf, size_t cap, size_t *len)
{
	struct jb b = { buf, cap, 0, 0 };
	jb_lit(&b, "{\"event\":\"connected\"}");
	return jb_done(&b, len);
}

int
exomsg_start(char *buf, size_t cap, size_t *len, const struct exomsg_call *c,
    unsigned seq)
{
	struct jb b = { buf, cap, 0, 0 };
	char      kbps[32];

	/* The captures' order: event, stream_sid, sequence_number, start. */
	jb_lit(&b, "{\"event\":\"start\",\"stream_sid\":");
	jb_str(&b, c->stream_sid);
	jb_lit(&b, ",\"sequence_number\":");
	jb_num(&b, c, seq);
	jb_lit(&b, ",\"start\":{");
	jb_key(&b, "stream_sid");
	jb_str(&b, c->stream_sid);
	jb_lit(&b, ",\"call_sid\":");
	jb_str(&b, c->call_sid);
	jb_lit(&b, ",\"account_sid\":");
	jb_str(&b, c->account_sid);
	jb_lit(&b, ",\"from\":");
	jb_str(&b, c->from);
	jb_lit(&b, ",\"to\":");
	jb_str(&b, c->to);
	if (c->custom_present || c->ncustom) {
		jb_lit(&b, ",\"custom_parameters\":{");
		for (size_t i = 0; i < c->ncustom; i++) {
			if (i)
				jb_raw(&b, ",", 1);
			jb_key(&b, c->custom[i].key);
			jb_str(
			    &b, c->custom[i].value ? c->custom[i].value : "");
		}
		jb_raw(&b, "}", 1);
	}
	jb_lit(
	    &b, ",\"media_format\":{\"encoding\":\"base64\",\"sample_rate\":");
	jb_num(&b, c, (unsigned long)c->rate);
	/* 16 bits per sample: "128kbps" at 8 kHz as captured; the 16/24 kHz
	 * strings are extrapolated (research/exotel.md §10). */
	snprintf(kbps, sizeof(kbps), "%dkbps", c->rate * 16 / 1000);
	jb_lit(&b, ",\"bit_rate\":");
	jb_str(&b, kbps);
	jb_lit(&b, "}}}");
	return jb_done(&b, len);
}

size_t
exomsg_media_cap(const struct exomsg_call *c, size_t nbytes)
{
	/* Fixed text and numbers stay under 256; a sid escapes to at most
	 * 6 bytes per byte. */
	return 256 + 6 * strlen(c->stream_sid) + b64_encoded_len(nbytes) + 1;
}

int
exomsg_media(char *buf, size_t cap, size_t *len, const struct exomsg_call *c,
    unsigned seq, unsigned chunk, unsigned ts_ms, const uint8_t *pcm,
    size_t nbytes)
{
	struct jb b = { buf, cap, 0, 0 };

	jb_head(&b, "media", c, seq);
	jb_lit(&b, ",\"media\":{\"chunk\":");
	jb_num(&b, c, chunk);
	jb_lit(&b, ",\"timestamp\":");
	jb_num(&b, c, ts_ms);
	jb_lit(&b, ",\"payload\":\"");
	if (!b.err) {
		if (b.len + b64_encoded_len(nbytes) + 1 > b.cap)
			b.err = ENOSPC;
		else
			b.len += b64_encode(b.p + b.len, pcm, nbytes);
	}
	jb_lit(&b, "\"}}");
	return jb_done(&b, len);
}

int
exomsg_dtmf(char *buf, size_t cap, size_t *len, const struct exomsg_call *c,
    unsigned seq, char digit, unsigned duration_ms)
{
	struct jb b    = { buf, cap, 0, 0 };
	char      d[2] = { digit, '\0' };

	jb_head(&b, "dtmf", c, seq);
	jb_lit(&b, ",\"dtmf\":{\"duration\":");
	jb_num(&b, c, duration_ms);
	jb_lit(&b, ",\"digit\":");
	jb_str(&b, d);
	jb_lit(&b, "}}");
	return jb_done(&b, len);
}

int
exomsg_mark(char *buf, size_t cap, size_t *len, const struct exomsg_call *c,
    unsigned seq, const char *name)
{
	struct jb b = { buf, cap, 0, 0 };

	jb_head(&b, "mark", c, seq);
	jb_lit(&b, ",\"mark\":{\"name\":");
	jb_str(&b, name);
	jb_lit(&b, "}}");
	return jb_done(&b, len);
}

int
exomsg_stop(char *buf, size_t cap, size_t *len, const struct exomsg_call *c,
    unsigned seq, const char *reason)
{
	struct jb b = { buf, cap, 0, 0 };

	jb_head(&b, "stop", c, seq);
	jb_lit(&b, ",\"stop\":{\"call_sid\":");
	jb_str(&b, c->call_sid);
	jb_lit(&b, ",\"account_sid\":");
	jb_str(&b, c->account_sid);
	jb_lit(&b, ",\"reason\":");
	jb_str(&b, reason);
	jb_lit(&b, "}}");
	return jb_done(&b, len);
}
