/*
 * wsraw.c - a bare WebSocket client for abuse tests (see wsraw.h).
 *
 * One non-blocking socket, poll() with a deadline for every operation.
 * Reading is folded into every wait, so a server that answers a bad
 * message with a close frame while we are still writing is heard.
 */
#include "wsraw.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base64.h"
#include "clock.h"

/* A server frame larger than this is not buffered: the tool is not a
 * client for real traffic. */
#define RX_FRAME_MAX (8u << 20)

struct wsraw {
	int                 fd;
	struct wsraw_status st;
	bool                in_http; /* before the 101: bytes are not frames */
	bool                eof;
	bool                close_sent;
	uint8_t            *rx;
	size_t              rx_len, rx_cap;
	uint64_t            mask_state;
};

size_t
wsraw_frame_header(
    uint8_t *hdr, int opcode, bool fin, size_t n, const uint8_t mask[4])
{
	size_t h = 0;

	hdr[h++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (n < 126) {
		hdr[h++] = (uint8_t)(0x80 | n);
	} else if (n <= 0xffff) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(n >> 8);
		hdr[h++] = (uint8_t)n;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	memcpy(hdr + h, mask, 4);
	return h + 4;
}

void
wsraw_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t off)
{
	uint8_t  m[8];
	uint64_t m64, v;
	size_t   i = 0;

	/* Eight bytes at a time: every word starts at a multiple of 4. */
	for (int k = 0; k < 8; k++)
		m[k] = mask[(off + (size_t)k) & 3];
	memcpy(&m64, m, sizeof(m64));
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, p + i, sizeof(v));
		v ^= m64;
		memcpy(p + i, &v, sizeof(v));
	}
	for (; i < n; i++)
		p[i] ^= mask[(off + i) & 3];
}

long
wsraw_parse(const uint8_t *buf, size_t n, size_t max, struct wsraw_frame *f)
{
	size_t   h = 2;
	uint64_t len;

	if (n < 2)
		return 0;
	if (buf[1] & 0x80)
		return -1; /* servers never mask */
	len = buf[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = ((uint64_t)buf[2] << 8) | buf[3];
		h   = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | buf[2 + i];
		h = 10;
	}
	if (len > max)
		return -1;
	if (n - h < len)
		return 0;
	f->fin     = (buf[0] & 0x80) != 0;
	f->opcode  = buf[0] & 0x0f;
	f->payload = buf + h;
	f->len     = (size_t)len;
	return (long)(h + len);
}

int
wsraw_http_status(const char *buf, size_t n, size_t *hdr_len)
{
	const char *end = NULL;
	int         code;

	for (size_t i = 0; i + 3 < n; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			end = buf + i + 4;
			break;
		}
	if (n >= 5 && memcmp(buf, "HTTP/", 5) != 0)
		return -1;
	if (!end)
		return 0;
	/* "HTTP/1.1 101 Switching Protocols" */
	const char *sp = memchr(buf, ' ', (size_t)(end - buf));
	if (!sp || end - sp < 4 || sp[1] < '1' || sp[1] > '5' || sp[2] < '0'
	    || sp[2] > '9' || sp[3] < '0' || sp[3] > '9')
		return -1;
	code     = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
	*hdr_len = (size_t)(end - buf);
	return code;
}

static void
ended_by_server(struct wsraw *w, int code)
{
	if (w->st.end == WSRAW_OPEN) {
		w->st.end        = WSRAW_BY_SERVER;
		w->st.close_code = code;
	}
}

static int send_some(
    struct wsraw *w, const uint8_t *p, size_t n, size_t *done);

/* Handles the complete frames at the front of rx. */
static void
parse_frames(struct wsraw *w)
{
	struct wsraw_frame f;
	size_t             off = 0;
	long               k;

	while (!w->eof
	    && (k = wsraw_parse(
	            w->rx + off, w->rx_len - off, RX_FRAME_MAX, &f))
	        != 0) {
		if (k < 0) {
			/* Not something we can follow: treat as the end. */
			ended_by_server(w, 1006);
			w->eof = true;
			break;
		}
		switch (f.opcode) {
		case WSRAW_TEXT:
		case WSRAW_BINARY:
		case WSRAW_CONT:
			if (f.fin)
				w->st.messages_received++;
			break;
		case WSRAW_CLOSE: {
			int    code = f.len >= 2
			       ? (f.payload[0] << 8) | f.payload[1]
			       : 1005;
			size_t rl   = f.len > 2 ? f.len - 2 : 0;
			if (rl >= sizeof(w->st.close_reason))
				rl = sizeof(w->st.close_reason) - 1;
			if (w->st.end == WSRAW_OPEN || w->close_sent) {
				memcpy(w->st.close_reason, f.payload + 2, rl);
				w->st.close_reason[rl] = '\0';
			}
			if (w->st.end == WSRAW_OPEN)
				w->st.end = WSRAW_BY_SERVER;
			w->st.close_code = code;
			if (!w->close_sent) {
				/* Answer as RFC 6455 §5.5.1 asks. */
				uint8_t fr[16], mask[4] = { 0 };
				size_t  h = wsraw_frame_header(
				     fr, WSRAW_CLOSE, true, 2, mask);
				size_t d      = 0;
				fr[h]         = (uint8_t)(code >> 8);
				fr[h + 1]     = (uint8_t)code;
				w->close_sent = true;
				send_some(w, fr, h + 2, &d);
			}
			w->eof = true; /* nothing after a close matters */
			break;
		}
		case WSRAW_PING: {
			uint8_t fr[14 + 125], mask[4] = { 0 };
			size_t  d = 0, pl = f.len < 125 ? f.len : 125;
			size_t  h = wsraw_frame_header(
			     fr, WSRAW_PONG, true, pl, mask);
			memcpy(fr + h, f.payload, pl);
			send_some(w, fr, h + pl, &d);
			break;
		}
		default:
			break;
		}
		off += (size_t)k;
	}
	if (off) {
		memmove(w->rx, w->rx + off, w->rx_len - off);
		w->rx_len -= off;
	}
}

/* Reads what is there without blocking. */
static void
pump(struct wsraw *w)
{
	while (!w->eof) {
		if (w->rx_cap - w->rx_len < 4096) {
			size_t   cap = w->rx_cap ? w->rx_cap * 2 : 16384;
			uint8_t *nb;
			if (cap > RX_FRAME_MAX + 64
			    || !(nb = realloc(w->rx, cap))) {
				ended_by_server(w, 1006);
				w->eof = true;
				return;
			}
			w->rx     = nb;
			w->rx_cap = cap;
		}
		ssize_t r = recv(w->fd, w->rx + w->rx_len,
		    w->rx_cap - w->rx_len, MSG_DONTWAIT);
		if (r > 0) {
			w->rx_len += (size_t)r;
			if (!w->in_http)
				parse_frames(w);
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			w->st.reset = true;
		ended_by_server(w, 1006);
		w->eof = true;
	}
}

/* One non-blocking send attempt. Returns 0, EAGAIN or EPIPE. */
static int
send_some(struct wsraw *w, const uint8_t *p, size_t n, size_t *done)
{
	while (*done < n) {
		ssize_t r = send(
		    w->fd, p + *done, n - *done, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r > 0) {
			*done += (size_t)r;
			w->st.bytes_sent += (unsigned long)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return EAGAIN;
		w->st.write_failed = true;
		return EPIPE;
	}
	return 0;
}

static int
remaining_ms(uint64_t deadline)
{
	uint64_t now = mono_us();
	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

int
wsraw_send_raw(struct wsraw *w, const void *p, size_t n, int timeout_ms)
{
	uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000;
	size_t   done     = 0;

	for (;;) {
		pump(w);
		if (w->eof)
			return EPIPE;
		int rv = send_some(w, p, n, &done);
		if (rv != EAGAIN)
			return rv;
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return ETIMEDOUT;
		struct pollfd pf = { w->fd, POLLIN | POLLOUT, 0 };
		poll(&pf, 1, ms);
	}
}

int
wsraw_connect(struct wsraw **out, const char *host, int port, int timeout_ms)
{
	struct addrinfo hints, *ai = NULL;
	struct wsraw   *w;
	char            ps[16];
	int             rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai)
		return EHOSTUNREACH;
	w = calloc(1, sizeof(*w));
	if (!w) {
		freeaddrinfo(ai);
		return ENOMEM;
	}
	w->in_http = true;
	if (getrandom(&w->mask_state, sizeof(w->mask_state), 0)
	    != (ssize_t)sizeof(w->mask_state))
		w->mask_state = mono_us();
	w->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w->fd < 0) {
		rv = errno;
		goto fail;
	}
	fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
	if (connect(w->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			rv = errno;
			goto fail;
		}
		struct pollfd pf = { w->fd, POLLOUT, 0 };
		int           e  = 0;
		socklen_t     el = sizeof(e);
		if (poll(&pf, 1, timeout_ms) != 1) {
			rv = ETIMEDOUT;
			goto fail;
		}
		getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e) {
			rv = e;
			goto fail;
		}
	}
	freeaddrinfo(ai);
	*out = w;
	return 0;
fail:
	freeaddrinfo(ai);
	wsraw_free(w);
	return rv;
}

int
wsraw_upgrade(struct wsraw *w, const char *host_hdr, const char *path,
    const char *auth, int timeout_ms)
{
	uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000;
	uint8_t  key[16];
	char     key64[32], req[8192];
	int      n, rv;
	size_t   hl = 0;

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(w->mask_state >> (8 * (i & 7)) ^ i);
	b64_encode(key64, key, sizeof(key));
	n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
	    path, host_hdr, key64, auth ? "Authorization: " : "",
	    auth ? auth : "", auth ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return EINVAL;
	if ((rv = wsraw_send_raw(w, req, (size_t)n, timeout_ms)) != 0)
		return rv;
	for (;;) {
		pump(w);
		int code = wsraw_http_status((char *)w->rx, w->rx_len, &hl);
		if (code > 0) {
			w->st.http_status = code;
			if (code != 101)
				return EACCES;
			/* The accept key is not checked: the tool only talks
			 * to servers under test, and a wrong one is theirs to
			 * find in their own tests. */
			w->st.upgraded = true;
			w->in_http     = false;
			memmove(w->rx, w->rx + hl, w->rx_len - hl);
			w->rx_len -= hl;
			parse_frames(w);
			return 0;
		}
		if (code < 0 || w->eof) {
			ended_by_server(w, 1006);
			w->eof = true;
			return EPIPE;
		}
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return ETIMEDOUT;
		struct pollfd pf = { w->fd, POLLIN, 0 };
		poll(&pf, 1, ms);
	}
}

int
wsraw_send(
    struct wsraw *w, int opcode, const void *p, size_t n, int timeout_ms)
{
	uint8_t  mask[4];
	uint8_t *fr;
	size_t   h;
	int      rv;

	if (w->eof || w->close_sent)
		return EPIPE;
	w->mask_state
	    = w->mask_state * 6364136223846793005ull + 1442695040888963407ull;
	for (int i = 0; i < 4; i++)
		mask[i] = (uint8_t)(w->mask_state >> (32 + 8 * i)); /* the LCG's high bits */
	fr = malloc(n + 14);
	if (!fr)
		return ENOMEM;
	h = wsraw_frame_header(fr, opcode, true, n, mask);
	if (n)
		memcpy(fr + h, p, n);
	wsraw_mask(fr + h, n, mask, 0);
	rv = wsraw_send_raw(w, fr, h + n, timeout_ms);
	free(fr);
	return rv;
}

bool
wsraw_wait(struct wsraw *w, int ms)
{
	uint64_t deadline = mono_us() + (uint64_t)ms * 1000;

	for (;;) {
		pump(w);
		if (w->eof)
			return true;
		int left = remaining_ms(deadline);
		if (left == 0)
			return false;
		struct pollfd pf = { w->fd, POLLIN, 0 };
		poll(&pf, 1, left);
	}
}

void
wsraw_close(struct wsraw *w, int code, int timeout_ms)
{
	if (w->fd < 0)
		return;
	pump(w); /* a close already on its way is the server's */
	if (w->st.end != WSRAW_OPEN)
		return;
	w->st.end        = WSRAW_BY_CLIENT;
	w->st.close_code = 0;
	if (code == 0 || w->in_http) {
		close(w->fd);
		w->fd  = -1;
		w->eof = true;
		return;
	}
	uint8_t pl[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	if (wsraw_send(w, WSRAW_CLOSE, pl, 2, timeout_ms) == 0) {
		w->close_sent = true;
		wsraw_wait(w, timeout_ms);
	}
}

const struct wsraw_status *
wsraw_status(const struct wsraw *w)
{
	return &w->st;
}

void
wsraw_free(struct wsraw *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->rx);
	free(w);
}
