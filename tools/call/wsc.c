/*
 * wsc.c - a WebSocket client's protocol without I/O (see wsc.h).
 *
 * The frame parser keeps at most a frame header (14 bytes) of its own;
 * payloads are copied a run at a time into the message being joined, or
 * not at all when a whole message lies in one read.
 */
#include "wsc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "base64.h"
#include "wsraw.h"

#define HTTP_MAX 8192
#define CTL_MAX 125

enum { ST_HTTP, ST_OPEN, ST_CLOSED, ST_FAILED };

struct wsc {
	int    st;
	size_t max;
	char   accept[29];

	char  *http; /* the response's headers, until the 101 */
	size_t http_len;

	uint8_t  hdr[WSC_HDR_MAX]; /* the frame header being read */
	size_t   hdr_len;
	bool     in_frame; /* reading a frame's payload */
	int      opcode;
	bool     fin;
	uint64_t left, got; /* the frame's payload still to come, so far */

	bool     msg_open, msg_binary, msg_big, delivered;
	uint64_t msg_size;
	uint8_t *msg;
	size_t   msg_len, msg_cap;

	uint8_t ctl[CTL_MAX];
	char    err[128];
};

int
wsc_alloc(struct wsc **out, size_t max_message)
{
	struct wsc *w = calloc(1, sizeof(*w));

	if (!w)
		return ENOMEM;
	w->max = max_message;
	*out   = w;
	return 0;
}

void
wsc_free(struct wsc *w)
{
	if (!w)
		return;
	free(w->http);
	free(w->msg);
	free(w);
}

const char *
wsc_error(const struct wsc *w)
{
	return w->err;
}

void
wsc_accept_for(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char     md[SHA_DIGEST_LENGTH];
	char              buf[128];
	int               n = snprintf(buf, sizeof(buf), "%s%s", key, guid);

	SHA1((const unsigned char *)buf, (size_t)n, md);
	b64_encode(out, md, sizeof(md));
}

size_t
wsc_request(struct wsc *w, char *out, size_t cap, const char *host_hdr,
    const char *path, const char *auth, const uint8_t nonce[16])
{
	char key[25];
	int  n;

	b64_encode(key, nonce, 16);
	wsc_accept_for(key, w->accept);
	n = snprintf(out, cap,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
	    path, host_hdr, key, auth ? "Authorization: " : "",
	    auth ? auth : "", auth ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

size_t
wsc_frame(uint8_t *p, size_t n, int opcode, const uint8_t mask[4])
{
	uint8_t hdr[WSC_HDR_MAX];
	size_t  h = wsraw_frame_header(hdr, opcode, true, n, mask);

	memcpy(p - h, hdr, h);
	wsraw_mask(p, n, mask, 0);
	return h;
}

static int
fail(struct wsc *w, int err, const char *why)
{
	snprintf(w->err, sizeof(w->err), "%s", why);
	w->st = ST_FAILED;
	return err;
}

/* Whether header line `name: value` list holds value (case aside);
 * with token, as one comma-separated token of it. */
static bool
header_has(
    const char *h, size_t n, const char *name, const char *want, bool token)
{
	size_t      nl = strlen(name), wl = strlen(want);
	const char *end = h + n, *line = h;

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > nl && line[nl] == ':'
		    && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1, *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			while (v < ve) {
				while (v < ve && (*v == ' ' || *v == ','))
					v++;
				const char *t = v;
				while (v < ve && (!token || *v != ','))
					v++;
				const char *te = v;
				while (te > t && te[-1] == ' ')
					te--;
				if ((size_t)(te - t) == wl
				    && (token ? strncasecmp(t, want, wl)
				              : strncmp(t, want, wl))
				        == 0)
					return true;
			}
		}
		line = eol + 1;
	}
	return false;
}

/* A frame's header is complete: checks it and starts its payload. */
static int
frame_begin(struct wsc *w, uint64_t len)
{
	int op    = w->hdr[0] & 0x0f;
	w->fin    = (w->hdr[0] & 0x80) != 0;
	w->opcode = op;
	w->left   = len;
	w->got    = 0;

	if (w->hdr[0] & 0x70)
		return fail(w, WSC_E_PROTO, "reserved bits set in a frame");
	if (op >= WSRAW_CLOSE) {
		if (op > WSRAW_PONG)
			return fail(w, WSC_E_PROTO, "unknown control opcode");
		if (!w->fin || len > CTL_MAX)
			return fail(w, WSC_E_PROTO,
			    "control frame fragmented or over 125 bytes");
	} else if (op == WSRAW_CONT) {
		if (!w->msg_open)
			return fail(
			    w, WSC_E_PROTO, "continuation without a message");
	} else if (op == WSRAW_TEXT || op == WSRAW_BINARY) {
		if (w->msg_open)
			return fail(w, WSC_E_PROTO,
			    "new message inside a fragmented one");
		w->msg_open   = true;
		w->msg_binary = op == WSRAW_BINARY;
		w->msg_big    = false;
		w->delivered  = false;
		w->msg_size   = 0;
		w->msg_len    = 0;
	} else {
		return fail(w, WSC_E_PROTO, "unknown data opcode");
	}
	if (op < WSRAW_CLOSE) {
		w->msg_size += len;
		if (w->msg_size > w->max)
			w->msg_big = true;
	}
	w->in_frame = true;
	return WSC_OK;
}

/* Reads header bytes from *p. Returns WSC_OK (with w->in_frame once the
 * header is whole) or an error. */
static int
header_feed(struct wsc *w, const uint8_t **p, size_t *n)
{
	size_t need = 2;

	for (;;) {
		while (w->hdr_len < need && *n) {
			w->hdr[w->hdr_len++] = *(*p)++;
			(*n)--;
		}
		if (w->hdr_len < need)
			return WSC_OK;
		if (w->hdr[1] & 0x80)
			return fail(
			    w, WSC_E_PROTO, "the server masked a frame");
		uint8_t l7 = w->hdr[1] & 0x7f;
		if ((w->hdr[0] & 0x08) && l7 > CTL_MAX)
			return fail(
			    w, WSC_E_PROTO, "control frame over 125 bytes");
		size_t want = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
		if (need < want) {
			need = want;
			continue;
		}
		uint64_t len = l7;
		if (l7 == 126) {
			len = ((uint64_t)w->hdr[2] << 8) | w->hdr[3];
		} else if (l7 == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | w->hdr[2 + i];
			if (len >> 63)
				return fail(w, WSC_E_PROTO,
				    "frame length with its top bit set");
		}
		w->hdr_len = 0;
		return frame_begin(w, len);
	}
}

static int
msg_append(struct wsc *w, const uint8_t *p, size_t n)
{
	if (!n) /* a header that ended a read: no payload yet */
		return WSC_OK;
	if (w->msg_len + n > w->msg_cap) {
		size_t ncap = w->msg_cap ? w->msg_cap : 4096;
		while (ncap < w->msg_len + n)
			ncap *= 2;
		uint8_t *nb = realloc(w->msg, ncap);
		if (!nb)
			return fail(w, WSC_E_NOMEM, "out of memory");
		w->msg     = nb;
		w->msg_cap = ncap;
	}
	memcpy(w->msg + w->msg_len, p, n);
	w->msg_len += n;
	return WSC_OK;
}

/* A frame's payload is whole: what it completes. */
static void
frame_end(struct wsc *w, const struct wsc_ops *ops, void *u)
{
	w->in_frame = false;
	switch (w->opcode) {
	case WSRAW_CLOSE: {
		int code = 1005;
		if (w->got >= 2)
			code = (w->ctl[0] << 8) | w->ctl[1];
		w->st = ST_CLOSED;
		ops->close(u, code, w->got > 2 ? (const char *)w->ctl + 2 : "",
		    w->got > 2 ? (size_t)w->got - 2 : 0);
		return;
	}
	case WSRAW_PING:
		ops->ping(u, w->ctl, (size_t)w->got);
		return;
	case WSRAW_PONG:
		return;
	default:
		break;
	}
	if (!w->fin)
		return;
	w->msg_open = false;
	if (w->delivered)
		return;
	if (w->msg_big)
		ops->message(u, w->msg_binary, NULL, (size_t)w->msg_size);
	else /* never NULL: that means too large */
		ops->message(u, w->msg_binary,
		    w->msg ? w->msg : (const uint8_t *)"", w->msg_len);
	w->msg_len = 0;
}

static int
frames_feed(struct wsc *w, const uint8_t *p, size_t n,
    const struct wsc_ops *ops, void *u)
{
	int rv;

	while (w->st == ST_OPEN) {
		if (!w->in_frame) {
			if (!n)
				return WSC_OK;
			if ((rv = header_feed(w, &p, &n)) != WSC_OK)
				return rv;
			if (!w->in_frame)
				return WSC_OK;
		}
		size_t take = w->left < n ? (size_t)w->left : n;
		if (w->opcode >= WSRAW_CLOSE) {
			memcpy(w->ctl + w->got, p, take);
		} else if (w->msg_big) {
			/* dropped */
		} else if (w->fin && w->opcode != WSRAW_CONT && !w->got
		    && take == w->left) {
			/* The whole message lies here: no copy. */
			w->delivered = true;
			ops->message(u, w->msg_binary, p, take);
		} else if ((rv = msg_append(w, p, take)) != WSC_OK) {
			return rv;
		}
		p += take;
		n -= take;
		w->left -= take;
		w->got += take;
		if (!w->left)
			frame_end(w, ops, u);
		else if (!n)
			return WSC_OK;
	}
	return w->st == ST_FAILED ? WSC_E_PROTO : WSC_OK;
}

static int
http_feed(struct wsc *w, const uint8_t **p, size_t *n,
    const struct wsc_ops *ops, void *u)
{
	size_t hl = 0, take;
	int    status;

	if (!w->http && !(w->http = malloc(HTTP_MAX)))
		return fail(w, WSC_E_NOMEM, "out of memory");
	take = HTTP_MAX - w->http_len < *n ? HTTP_MAX - w->http_len : *n;
	memcpy(w->http + w->http_len, *p, take);
	w->http_len += take;
	status = wsraw_http_status(w->http, w->http_len, &hl);
	if (status < 0)
		return fail(w, WSC_E_HTTP, "the response is not HTTP");
	if (status == 0) {
		if (w->http_len == HTTP_MAX)
			return fail(w, WSC_E_HTTP,
			    "the response's headers are over 8 kB");
		*p += take;
		*n -= take;
		return WSC_OK;
	}
	/* What followed the headers is frames: give it back. */
	size_t extra = w->http_len - hl;
	*p += take - extra;
	*n -= take - extra;
	if (status == 101) {
		if (!header_has(w->http, hl, "Upgrade", "websocket", true)
		    || !header_has(w->http, hl, "Connection", "upgrade", true))
			return fail(w, WSC_E_UPGRADE,
			    "101 without Upgrade: websocket");
		if (!header_has(
		        w->http, hl, "Sec-WebSocket-Accept", w->accept, false))
			return fail(w, WSC_E_UPGRADE,
			    "wrong or missing Sec-WebSocket-Accept");
		w->st = ST_OPEN;
	} else {
		w->st = ST_CLOSED;
	}
	free(w->http);
	w->http     = NULL;
	w->http_len = 0;
	ops->response(u, status);
	return WSC_OK;
}

int
wsc_feed(struct wsc *w, const uint8_t *in, size_t n, const struct wsc_ops *ops,
    void *u)
{
	int rv;

	if (w->st == ST_HTTP) {
		if ((rv = http_feed(w, &in, &n, ops, u)) != WSC_OK)
			return rv;
		if (w->st == ST_HTTP)
			return WSC_OK;
	}
	if (w->st == ST_FAILED)
		return WSC_E_PROTO;
	return frames_feed(w, in, n, ops, u);
}
