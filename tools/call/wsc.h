/*
 * wsc.h - the client side of a WebSocket (RFC 6455) as bytes in and
 * events out, for exoplex-call's calls over lws raw sockets.
 *
 * lws 4.1's WebSocket client parses what it receives with one function
 * call per byte and masks what it sends a byte at a time; with hundreds
 * of calls that was about a third of the load generator's CPU
 * (docs/performance.md). wsc does no I/O: the caller writes the request
 * wsc_request builds, feeds wsc_feed what the socket gives, and frames
 * what it sends with wsc_frame. Payloads are parsed a run at a time, and
 * a whole message within one read is handed over where it lies.
 */
#ifndef EXO_CALL_WSC_H
#define EXO_CALL_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a caller leaves free before a payload for wsc_frame's header. */
#define WSC_HDR_MAX 14

enum wsc_err {
	WSC_OK = 0,
	WSC_E_HTTP, /* not an HTTP response, or its headers over 8 kB */
	WSC_E_UPGRADE, /* 101 without the Upgrade, Connection or Accept due */
	WSC_E_PROTO, /* a frame RFC 6455 forbids a server to send */
	WSC_E_NOMEM,
};

struct wsc_ops {
	/* The response to the upgrade: its status. For 101 the Upgrade,
	 * Connection and Sec-WebSocket-Accept headers were right. */
	void (*response)(void *u, int status);
	/* A whole text or binary message, its fragments joined; p is valid
	 * during the call only. Over the max message: p is NULL, n its
	 * length, and its bytes were dropped. */
	void (*message)(void *u, bool binary, const uint8_t *p, size_t n);
	/* A ping: the caller answers with a pong carrying p[0..n). */
	void (*ping)(void *u, const uint8_t *p, size_t n);
	/* The server's close frame: its code (1005 when it gave none) and
	 * reason. Later bytes are ignored. */
	void (*close)(void *u, int code, const char *reason, size_t n);
};

struct wsc;

/* Allocates a connection's state; messages over max_message are dropped
 * and reported by length. Returns 0 or ENOMEM; free with wsc_free. */
int wsc_alloc(struct wsc **out, size_t max_message);

void wsc_free(struct wsc *w);

/* Builds the upgrade request for path, with Host host_hdr, the key made
 * of the 16 bytes of nonce and, when auth is not NULL, "Authorization:
 * <auth>", into out. Returns its length, or 0 when cap is too small. */
size_t wsc_request(struct wsc *w, char *out, size_t cap, const char *host_hdr,
    const char *path, const char *auth, const uint8_t nonce[16]);

/* Feeds n bytes the server sent, calling ops for what they complete.
 * Returns WSC_OK, or a WSC_E_* after which the connection is to be
 * dropped (wsc_error says why; later feeds do nothing). */
int wsc_feed(struct wsc *w, const uint8_t *in, size_t n,
    const struct wsc_ops *ops, void *u);

/* Why wsc_feed failed, or "". */
const char *wsc_error(const struct wsc *w);

/* Frames the n bytes at p as one whole message or control frame
 * (opcode WSRAW_*), masking them in place with mask. The header goes
 * into the WSC_HDR_MAX bytes before p, which the caller leaves free.
 * Returns the header's length: the frame starts that far before p. */
size_t wsc_frame(uint8_t *p, size_t n, int opcode, const uint8_t mask[4]);

/* The Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2) into out (29
 * bytes at least). */
void wsc_accept_for(const char *key, char out[29]);

#endif
