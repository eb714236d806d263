/*
 * wsraw.h - a bare WebSocket client over a plain TCP socket, for abuse.
 *
 * libwebsockets will not send what a broken peer sends (binary junk, a
 * 1 MB frame in one go, bytes that are not frames, a socket dropped
 * mid-handshake), so exoplex-abuse speaks RFC 6455 itself: ws:// only,
 * loopback use, every call bounded by a deadline. Whatever the server
 * sends meanwhile is read and parsed, so its close frame (code and
 * reason) is seen even while a long write is still going on.
 */
#ifndef EXO_CALL_WSRAW_H
#define EXO_CALL_WSRAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	WSRAW_CONT   = 0x0,
	WSRAW_TEXT   = 0x1,
	WSRAW_BINARY = 0x2,
	WSRAW_CLOSE  = 0x8,
	WSRAW_PING   = 0x9,
	WSRAW_PONG   = 0xa,
};

/* Who ended the connection, as far as this side saw. */
enum wsraw_end {
	WSRAW_OPEN = 0, /* not closed yet */
	WSRAW_BY_SERVER, /* the server's close frame, EOF or reset came first
	                  */
	WSRAW_BY_CLIENT, /* we sent a close frame (or dropped) first */
};

struct wsraw_status {
	int            http_status; /* 0 until a status line was read */
	bool           upgraded; /* 101 */
	enum wsraw_end end;
	int           close_code; /* server's code; 1005 none, 1006 no frame */
	char          close_reason[124];
	bool          reset; /* the connection was reset (ECONNRESET) */
	bool          write_failed; /* a write hit EPIPE/ECONNRESET */
	unsigned long messages_received; /* text + binary */
	unsigned long bytes_sent;
};

struct wsraw;

/* Connects to host:port (numeric IPv4/IPv6 or a name) within timeout_ms.
 * Returns 0 with *out set (free with wsraw_free), or an errno value. */
int wsraw_connect(
    struct wsraw **out, const char *host, int port, int timeout_ms);

/* Writes n raw bytes (no framing), reading meanwhile. Returns 0, EPIPE
 * when the peer went away, or ETIMEDOUT. */
int wsraw_send_raw(struct wsraw *w, const void *p, size_t n, int timeout_ms);

/* Sends the HTTP upgrade for path with Host host_hdr and, when auth is
 * not NULL, "Authorization: <auth>", then reads the response headers.
 * Returns 0 when upgraded (101), EACCES for another status (in
 * status.http_status), EPIPE, or ETIMEDOUT. */
int wsraw_upgrade(struct wsraw *w, const char *host_hdr, const char *path,
    const char *auth, int timeout_ms);

/* Sends one masked frame with FIN set (opcode WSRAW_*), reading
 * meanwhile. Returns 0, EPIPE or ETIMEDOUT. */
int wsraw_send(
    struct wsraw *w, int opcode, const void *p, size_t n, int timeout_ms);

/* Reads for up to ms or until the connection ends. Returns true when it
 * has ended. */
bool wsraw_wait(struct wsraw *w, int ms);

/* Ends our side: a close frame with code (answered or not within
 * timeout_ms), or, with code 0, just drops the socket. */
void wsraw_close(struct wsraw *w, int code, int timeout_ms);

const struct wsraw_status *wsraw_status(const struct wsraw *w);

void wsraw_free(struct wsraw *w);

/* --- the pure parts (tested on their own) --- */

/* Writes a client frame header for a payload of n bytes into hdr (at
 * least 14 bytes). Returns the header's length. */
size_t wsraw_frame_header(
    uint8_t *hdr, int opcode, bool fin, size_t n, const uint8_t mask[4]);

/* XORs p[0..n) with mask, the first byte being payload byte `off`. */
void wsraw_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t off);

struct wsraw_frame {
	int            opcode;
	bool           fin;
	const uint8_t *payload; /* points into the parsed buffer */
	size_t         len;
};

/* Parses one server (unmasked) frame at buf[0..n). Returns its total
 * length, 0 when more bytes are needed, or -1 when it is malformed (a
 * masked server frame, a length over max). */
long wsraw_parse(
    const uint8_t *buf, size_t n, size_t max, struct wsraw_frame *f);

/* The status code of an HTTP response whose headers end within
 * buf[0..n): returns it and sets *hdr_len; 0 when the headers are not
 * complete yet; -1 when it is not an HTTP response. */
int wsraw_http_status(const char *buf, size_t n, size_t *hdr_len);

#endif
