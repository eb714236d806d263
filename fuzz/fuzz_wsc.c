/*
 * fuzz_wsc.c - the WebSocket client protocol exoplex-call runs over raw
 * sockets (tools/call/wsc.c), fed what a server sends.
 *
 * Byte 0: bit 0 prepends a valid 101 (so most inputs reach the frame
 * parser), the other bits seed where the input is split. Oracles: the
 * events and the verdict do not depend on how the bytes are split (whole,
 * one byte at a time, or pseudo-random runs), and every message handed
 * over lies inside the bytes of its read or is the message's own copy.
 */
#include <string.h>

#include "fuzz.h"
#include "wsc.h"

#define MAX_MSG 300

struct log {
	uint32_t       hash; /* FNV-1a over every event */
	unsigned       events;
	const uint8_t *lo, *hi; /* the read being fed */
};

static void
mix(struct log *l, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		l->hash = (l->hash ^ b[i]) * 16777619u;
	l->events++;
}

static void
on_response(void *u, int status)
{
	mix(u, "R", 1);
	mix(u, &status, sizeof(status));
}

static void
on_message(void *u, bool binary, const uint8_t *p, size_t n)
{
	struct log *l = u;
	char        t = binary ? 'B' : 'T';

	mix(l, &t, 1);
	mix(l, &n, sizeof(n));
	if (p) {
		FUZZ_CHECK(n <= MAX_MSG);
		mix(l, p, n);
	} else {
		FUZZ_CHECK(n > MAX_MSG);
	}
}

static void
on_ping(void *u, const uint8_t *p, size_t n)
{
	FUZZ_CHECK(n <= 125);
	mix(u, "P", 1);
	mix(u, p, n);
}

static void
on_close(void *u, int code, const char *reason, size_t n)
{
	FUZZ_CHECK(n <= 123);
	mix(u, "C", 1);
	mix(u, &code, sizeof(code));
	mix(u, reason, n);
}

static const struct wsc_ops ops
    = { on_response, on_message, on_ping, on_close };

static const char ok101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: "
                            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/* Feeds buf split as mode says: 0 whole, 1 byte by byte, else runs of
 * pseudo-random length from seed. Returns the first error (or WSC_OK). */
static int
run(const uint8_t *buf, size_t n, int mode, unsigned seed, struct log *l)
{
	static const uint8_t nonce[16] = "the sample nonce";
	struct wsc          *w;
	char                 req[256];
	int                  rv = WSC_OK;

	memset(l, 0, sizeof(*l));
	l->hash = 2166136261u;
	FUZZ_CHECK(wsc_alloc(&w, MAX_MSG) == 0);
	FUZZ_CHECK(wsc_request(w, req, sizeof(req), "h", "/", NULL, nonce));
	for (size_t off = 0; off < n && rv == WSC_OK;) {
		size_t k = n - off;
		if (mode == 1)
			k = 1;
		else if (mode == 2) {
			seed = seed * 1103515245u + 12345u;
			k    = 1 + (seed >> 16) % 700;
			if (k > n - off)
				k = n - off;
		}
		/* Each read in a buffer of its own, so a pointer past it
		 * shows under ASan. */
		uint8_t *piece = malloc(k);
		FUZZ_CHECK(piece);
		memcpy(piece, buf + off, k);
		rv = wsc_feed(w, piece, k, &ops, l);
		free(piece);
		off += k;
	}
	if (rv != WSC_OK)
		FUZZ_CHECK(wsc_error(w)[0] != '\0');
	wsc_free(w);
	return rv;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log a, b, c;
	uint8_t   *buf;
	size_t     n;

	if (size < 1 || size > 65536)
		return 0;
	n   = (data[0] & 1 ? strlen(ok101) : 0) + size - 1;
	buf = malloc(n ? n : 1);
	FUZZ_CHECK(buf);
	if (data[0] & 1)
		memcpy(buf, ok101, strlen(ok101));
	memcpy(buf + n - (size - 1), data + 1, size - 1);

	int ra = run(buf, n, 0, 0, &a);
	int rb = run(buf, n, 1, 0, &b);
	int rc = run(buf, n, 2, data[0] >> 1, &c);
	/* An error can come at a different read, but the events before it
	 * and the verdict are the same. */
	FUZZ_CHECK(ra == rb && ra == rc);
	FUZZ_CHECK(a.hash == b.hash && a.hash == c.hash);
	FUZZ_CHECK(a.events == b.events && a.events == c.events);
	free(buf);
	return 0;
}
