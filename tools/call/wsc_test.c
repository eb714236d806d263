/*
 * wsc_test.c - the WebSocket client protocol without I/O: the upgrade
 * and its Accept check, frames however the bytes are split, fragments,
 * control frames between them, oversized messages, and the frames RFC
 * 6455 forbids a server to send.
 */
#include "wsc.h"

#include <string.h>

#include "test.h"
#include "wsraw.h"

/* What the callbacks saw, in order, as text: "R101", "T:<payload>",
 * "B:<payload>", "T#<n>" (too large), "P:<payload>", "C1000:<reason>".
 * A payload over 16 bytes is logged as "<length>/<FNV-1a hash>". */
struct rec {
	char           log[8192];
	size_t         n;
	const uint8_t *in_lo, *in_hi; /* the buffer being fed */
	int            in_place; /* messages handed over where they lay */
};

static uint32_t
fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void
add(struct rec *r, const char *tag, const uint8_t *p, size_t n)
{
	if (n <= 16)
		r->n += (size_t)snprintf(r->log + r->n, sizeof(r->log) - r->n,
		    "%s:%.*s|", tag, (int)n, (const char *)p);
	else
		r->n += (size_t)snprintf(r->log + r->n, sizeof(r->log) - r->n,
		    "%s:%zu/%08x|", tag, n, fnv(p, n));
}

static void
on_response(void *u, int status)
{
	struct rec *r = u;
	r->n += (size_t)snprintf(
	    r->log + r->n, sizeof(r->log) - r->n, "R%d|", status);
}

static void
on_message(void *u, bool binary, const uint8_t *p, size_t n)
{
	struct rec *r = u;
	if (!p) {
		r->n += (size_t)snprintf(r->log + r->n, sizeof(r->log) - r->n,
		    "%s#%zu|", binary ? "B" : "T", n);
		return;
	}
	if (p >= r->in_lo && p < r->in_hi)
		r->in_place++;
	add(r, binary ? "B" : "T", p, n);
}

static void
on_ping(void *u, const uint8_t *p, size_t n)
{
	add(u, "P", p, n);
}

static void
on_close(void *u, int code, const char *reason, size_t n)
{
	struct rec *r = u;
	r->n += (size_t)snprintf(r->log + r->n, sizeof(r->log) - r->n,
	    "C%d:%.*s|", code, (int)n, reason);
}

static const struct wsc_ops ops
    = { on_response, on_message, on_ping, on_close };

/* The RFC's example nonce, "the sample nonce". */
static const uint8_t nonce[16] = "the sample nonce";

/* A 101 for that nonce (RFC 6455 §1.3). */
static const char ok101[]
    = "HTTP/1.1 101 Switching Protocols\r\n"
      "upgrade: WebSocket\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
      "\r\n";

/* An unmasked server frame into out; returns its length. */
static size_t
frame(uint8_t *out, int b0, const void *p, size_t n)
{
	size_t h = 0;

	out[h++] = (uint8_t)b0;
	if (n < 126) {
		out[h++] = (uint8_t)n;
	} else if (n <= 0xffff) {
		out[h++] = 126;
		out[h++] = (uint8_t)(n >> 8);
		out[h++] = (uint8_t)n;
	} else {
		out[h++] = 127;
		for (int i = 7; i >= 0; i--)
			out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	memcpy(out + h, p, n);
	return h + n;
}

/* A connection that has sent its upgrade request (the RFC's nonce), with
 * max message max and an empty log. */
static struct wsc *
requested(struct rec *r, size_t max)
{
	struct wsc *w;
	char        req[512];

	memset(r, 0, sizeof(*r));
	if (wsc_alloc(&w, max) != 0)
		return NULL;
	wsc_request(w, req, sizeof(req), "h", "/", NULL, nonce);
	return w;
}

/* A connection past its upgrade, with max message max and an empty log. */
static struct wsc *
opened(struct rec *r, size_t max)
{
	struct wsc *w = requested(r, max);

	if (!w)
		return NULL;
	if (wsc_feed(w, (const uint8_t *)ok101, strlen(ok101), &ops, r)
	    != WSC_OK) {
		wsc_free(w);
		return NULL;
	}
	r->n      = 0;
	r->log[0] = '\0';
	return w;
}

/* Feeds buf in pieces of `step` bytes (0: at once). */
static int
feed(struct wsc *w, struct rec *r, const uint8_t *buf, size_t n, size_t step)
{
	int rv = WSC_OK;

	for (size_t off = 0; off < n && rv == WSC_OK;) {
		size_t k = step && step < n - off ? step : n - off;
		r->in_lo = buf + off;
		r->in_hi = buf + off + k;
		rv       = wsc_feed(w, buf + off, k, &ops, r);
		off += k;
	}
	return rv;
}

static int
test_accept(void)
{
	char acc[29];

	wsc_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc);
	TEST_STREQ(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	return 0;
}

static int
test_request(void)
{
	struct wsc *w;
	char        req[512];
	size_t      n;

	TEST_EQ(wsc_alloc(&w, 100), 0);
	n = wsc_request(w, req, sizeof(req), "127.0.0.1:5000", "/x?a=1",
	    "Basic YTpi", nonce);
	TEST_EQ(n, strlen(req));
	TEST_ASSERT(strncmp(req, "GET /x?a=1 HTTP/1.1\r\n", 21) == 0);
	TEST_ASSERT(strstr(req, "\r\nHost: 127.0.0.1:5000\r\n"));
	TEST_ASSERT(strstr(req,
	    "\r\nSec-WebSocket-Key: "
	    "dGhlIHNhbXBsZSBub25jZQ==\r\n"));
	TEST_ASSERT(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
	TEST_ASSERT(strstr(req, "\r\nAuthorization: Basic YTpi\r\n"));
	TEST_ASSERT(strcmp(req + n - 4, "\r\n\r\n") == 0);
	n = wsc_request(w, req, sizeof(req), "h", "/", NULL, nonce);
	TEST_ASSERT(n && !strstr(req, "Authorization"));
	TEST_EQ(wsc_request(w, req, 40, "h", "/", NULL, nonce), 0);
	wsc_free(w);
	return 0;
}

/* The 101 and the first frame in one buffer, fed in every split. */
static int
test_upgrade_then_frame(void)
{
	uint8_t buf[512];
	size_t  n = strlen(ok101);

	memcpy(buf, ok101, n);
	n += frame(buf + n, 0x81, "hello", 5);
	for (size_t step = 0; step <= 7; step++) {
		struct rec  r;
		struct wsc *w = requested(&r, 100);
		TEST_ASSERT(w);
		TEST_EQ(feed(w, &r, buf, n, step), WSC_OK);
		TEST_STREQ(r.log, "R101|T:hello|");
		wsc_free(w);
	}
	return 0;
}

static int
test_upgrade_refused(void)
{
	static const char *const bad[] = {
		/* wrong accept */
		"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: "
		"Upgrade\r\nSec-WebSocket-Accept: "
		"s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n",
		/* no Upgrade header */
		"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
		/* Connection without the upgrade token */
		"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: "
		"Upgraded\r\nSec-WebSocket-Accept: "
		"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	};
	struct rec  r;
	struct wsc *w;
	uint8_t     buf[512];
	size_t      n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TEST_ASSERT(w = requested(&r, 100));
		TEST_EQ(
		    feed(w, &r, (const uint8_t *)bad[i], strlen(bad[i]), 0),
		    WSC_E_UPGRADE);
		TEST_STREQ(r.log, "");
		TEST_ASSERT(wsc_error(w)[0]);
		wsc_free(w);
	}

	/* Another status is reported; what follows is not parsed. */
	TEST_ASSERT(w = requested(&r, 100));
	n = (size_t)snprintf((char *)buf, sizeof(buf),
	    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n");
	n += frame(buf + n, 0x81, "x", 1);
	TEST_EQ(feed(w, &r, buf, n, 3), WSC_OK);
	TEST_STREQ(r.log, "R401|");
	wsc_free(w);

	/* Not HTTP, and headers that never end. */
	TEST_ASSERT(w = requested(&r, 100));
	TEST_EQ(feed(w, &r, (const uint8_t *)"SSH-2.0-x\r\n\r\n", 13, 0),
	    WSC_E_HTTP);
	wsc_free(w);
	TEST_ASSERT(w = requested(&r, 100));
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "HTTP/1.1 101 OK\r\nX: ", 20);
	int rv = WSC_OK;
	for (int i = 0; i < 20 && rv == WSC_OK; i++)
		rv = feed(w, &r, buf + (i ? 20 : 0), sizeof(buf) - 20, 0);
	TEST_EQ(rv, WSC_E_HTTP);
	wsc_free(w);
	return 0;
}

/* Messages of every length encoding, fragments with a ping between
 * them, and a close, fed in every split from 1 byte to all at once. */
static int
test_frames_any_split(void)
{
	static uint8_t big[70000], buf[150000];
	char           want[512];
	size_t         n = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	n += frame(buf + n, 0x81, "one", 3);
	n += frame(buf + n, 0x82, big, 300); /* 16-bit length */
	n += frame(buf + n, 0x01, "fra", 3); /* text, not final */
	n += frame(buf + n, 0x89, "pi", 2); /* ping between fragments */
	n += frame(buf + n, 0x00, "gme", 3);
	n += frame(buf + n, 0x8a, "po", 2); /* pong: nothing to report */
	n += frame(buf + n, 0x80, "nts", 3);
	n += frame(buf + n, 0x81, "", 0);
	n += frame(buf + n, 0x82, big, sizeof(big)); /* 64-bit length */
	n += frame(buf + n, 0x02, big, 20000); /* a long one in parts */
	n += frame(buf + n, 0x80, big + 20000, 50000);
	n += frame(buf + n, 0x01, "", 0); /* empty, in two parts */
	n += frame(buf + n, 0x80, "", 0);
	n += frame(buf + n, 0x88,
	    "\x03\xe8"
	    "bye",
	    5);
	n += frame(buf + n, 0x81, "after", 5); /* after the close: ignored */
	snprintf(want, sizeof(want),
	    "T:one|B:300/%08x|P:pi|T:fragments|T:|B:70000/%08x|"
	    "B:70000/%08x|T:|C1000:bye|",
	    fnv(big, 300), fnv(big, sizeof(big)), fnv(big, sizeof(big)));

	static const size_t steps[] = { 0, 1, 2, 3, 5, 13, 127, 4096 };
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct rec  r;
		struct wsc *w = opened(&r, 100000);
		TEST_ASSERT(w);
		TEST_EQ(feed(w, &r, buf, n, steps[k]), WSC_OK);
		TEST_STREQ(r.log, want);
		wsc_free(w);
	}

	/* Fed at once, whole messages are handed over where they lie. */
	struct rec  r;
	struct wsc *w = opened(&r, 100000);
	TEST_ASSERT(w);
	/* First, an empty message in two parts: no buffer needed yet. */
	size_t small = frame(buf, 0x01, "", 0);
	small += frame(buf + small, 0x80, "", 0);
	small += frame(buf + small, 0x81, "one", 3);
	small += frame(buf + small, 0x81, "two", 3);
	small += frame(buf + small, 0x88, "", 0);
	TEST_EQ(feed(w, &r, buf, small, 0), WSC_OK);
	TEST_STREQ(r.log, "T:|T:one|T:two|C1005:|");
	TEST_EQ(r.in_place, 2);
	wsc_free(w);
	return 0;
}

static int
test_too_large(void)
{
	static uint8_t big[300], buf[1024];
	struct rec     r;
	struct wsc    *w;
	size_t         n = 0;

	memset(big, 'x', sizeof(big));
	n += frame(buf + n, 0x81, big, 200); /* one frame over max */
	n += frame(buf + n, 0x02, big, 60); /* fragments over max together */
	n += frame(buf + n, 0x80, big, 60);
	n += frame(buf + n, 0x81, "ok", 2);
	for (size_t step = 0; step <= 7; step += 7) {
		w = opened(&r, 100);
		TEST_ASSERT(w);
		TEST_EQ(feed(w, &r, buf, n, step), WSC_OK);
		TEST_STREQ(r.log, "T#200|B#120|T:ok|");
		wsc_free(w);
	}
	return 0;
}

static int
test_protocol_errors(void)
{
	struct bad {
		uint8_t b0, b1;
	};
	static const struct bad bad[] = {
		{ 0x81, 0x83 }, /* masked */
		{ 0xc1, 0x01 }, /* RSV1 */
		{ 0x83, 0x01 }, /* opcode 3 */
		{ 0x8b, 0x00 }, /* opcode 11 */
		{ 0x89, 126 }, /* ping over 125 */
		{ 0x09, 0x01 }, /* fragmented ping */
		{ 0x80, 0x01 }, /* continuation without a message */
	};
	struct rec  r;
	struct wsc *w;
	uint8_t     buf[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w = opened(&r, 100);
		TEST_ASSERT(w);
		memset(buf, 0, sizeof(buf));
		buf[0] = bad[i].b0;
		buf[1] = bad[i].b1;
		if (wsc_feed(w, buf, 200, &ops, &r) != WSC_E_PROTO)
			TEST_FAIL_(
			    "frame %02x %02x was taken", bad[i].b0, bad[i].b1);
		TEST_ASSERT(wsc_error(w)[0]);
		/* Once failed, it stays failed. */
		size_t k = frame(buf, 0x81, "x", 1);
		TEST_EQ(wsc_feed(w, buf, k, &ops, &r), WSC_E_PROTO);
		TEST_STREQ(r.log, "");
		wsc_free(w);
	}

	/* A new message inside a fragmented one. */
	w = opened(&r, 100);
	TEST_ASSERT(w);
	size_t k = frame(buf, 0x01, "a", 1);
	k += frame(buf + k, 0x81, "b", 1);
	TEST_EQ(wsc_feed(w, buf, k, &ops, &r), WSC_E_PROTO);
	wsc_free(w);

	/* A 64-bit length with its top bit set. */
	w = opened(&r, 100);
	TEST_ASSERT(w);
	memset(buf, 0, 10);
	buf[0] = 0x82;
	buf[1] = 127;
	buf[2] = 0x80;
	TEST_EQ(wsc_feed(w, buf, 10, &ops, &r), WSC_E_PROTO);
	wsc_free(w);
	return 0;
}

/* wsc_frame's output, unmasked, is the payload; the word-wise mask
 * matches one byte at a time from any offset. */
static int
test_frame_and_mask(void)
{
	static const uint8_t mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	uint8_t              buf[WSC_HDR_MAX + 300], ref[300], got[300];
	struct wsraw_frame   f;

	for (size_t n = 0; n < 300; n += 37) {
		for (size_t i = 0; i < n; i++)
			buf[WSC_HDR_MAX + i] = ref[i] = (uint8_t)(i * 13 + n);
		size_t h = wsc_frame(buf + WSC_HDR_MAX, n, WSRAW_TEXT, mask);
		TEST_EQ(h, n < 126 ? 6 : 8);
		uint8_t *fr = buf + WSC_HDR_MAX - h;
		TEST_EQ(fr[0], 0x81);
		TEST_EQ(fr[1] & 0x80, 0x80);
		TEST_ASSERT(memcmp(fr + h - 4, mask, 4) == 0);
		memcpy(got, buf + WSC_HDR_MAX, n);
		wsraw_mask(got, n, mask, 0);
		TEST_ASSERT(memcmp(got, ref, n) == 0);
		/* wsraw_parse takes it once the mask bit is cleared. */
		fr[1] &= 0x7f;
		memmove(fr + h - 4, fr + h, n);
		TEST_EQ(
		    wsraw_parse(fr, h - 4 + n, 1000, &f), (long)(h - 4 + n));
		TEST_EQ(f.len, n);
	}
	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n < 40; n++) {
			uint8_t a[40], b[40];
			for (size_t i = 0; i < n; i++)
				a[i] = b[i] = (uint8_t)(i * 31 + off);
			wsraw_mask(a, n, mask, off);
			for (size_t i = 0; i < n; i++)
				b[i] ^= mask[(off + i) & 3];
			TEST_ASSERT(memcmp(a, b, n) == 0);
		}
	return 0;
}

TEST_MAIN({ "accept", test_accept }, { "request", test_request },
    { "upgrade_then_frame", test_upgrade_then_frame },
    { "upgrade_refused", test_upgrade_refused },
    { "frames_any_split", test_frames_any_split },
    { "too_large", test_too_large },
    { "protocol_errors", test_protocol_errors },
    { "frame_and_mask", test_frame_and_mask })
