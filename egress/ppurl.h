/*
 * ppurl.h - PersonaPlex server URLs and the /api/chat request target.
 *
 * A server is configured by its base URL: ws://host:port or
 * wss://host:port/path (IPv6 as [::1]; default ports 80 and 443). A URL
 * without a path (or with just "/") means /api/chat; any other path is
 * used as given. The request target adds voice_prompt and text_prompt,
 * form-encoded (RFC 3986 unreserved characters stay, a space becomes '+',
 * every other byte %XX, so '+' is %2B). `seed` is never sent:
 * the reference server crashes on it (research/personaplex.md §1.3).
 *
 * Pure functions on caller-owned buffers; nothing is allocated.
 */
#ifndef EXO_PPURL_H
#define EXO_PPURL_H

#include <stdbool.h>
#include <stddef.h>

#define PPURL_HOST_MAX 256 /* host name or address, no brackets */
#define PPURL_PATH_MAX 1024 /* base path (with any query it had) */
/* The server's limit: aiohttp refuses request lines over 8190 bytes, so
 * a whole URL (scheme, authority, path and query) may be at most 8 KB. */
#define PPURL_URL_MAX 8192
/* The client's limit: libwebsockets 4.1 formats the request line into a
 * 2048-byte buffer ("GET <target> HTTP/1.1\r\n" plus NUL) and silently
 * truncates a longer one, so a target may be at most 2032 bytes. */
#define PPURL_TARGET_MAX_LWS 2032

struct ppurl {
	bool tls; /* wss:// */
	int  port; /* 1..65535 */
	char host[PPURL_HOST_MAX]; /* for connect(): "::1", not "[::1]" */
	char hosthdr[PPURL_HOST_MAX + 8]; /* Host header: "[::1]:8998" */
	char path[PPURL_PATH_MAX]; /* "/api/chat" when none given */
	/* The base URL, normalised ("ws://h:8998/api/chat"): for logs and
	 * Session.server. Never carries prompts. */
	char base[PPURL_HOST_MAX + PPURL_PATH_MAX + 32];
};

/* Parses one base URL into u. Returns 0, or EINVAL with err filled with a
 * sentence naming what is wrong (scheme, host, port, path). */
int ppurl_parse(struct ppurl *u, const char *url, char *err, size_t errlen);

/* Percent-encodes src into dst (NUL-terminated). Returns the encoded
 * length, or (size_t) -1 when dst is too small. */
size_t ppurl_encode(char *dst, size_t dstlen, const char *src);

/* Builds u's request target: path?voice_prompt=..&text_prompt=.. (with
 * '&' instead of '?' when the path already has a query). Refuses, with
 * EINVAL and err filled, an empty voice prompt or a text prompt that is
 * empty or only white space (the server strips it and then fails before
 * its handshake); refuses with E2BIG a target longer than max_target
 * (0 = PPURL_TARGET_MAX_LWS) or a whole URL longer than PPURL_URL_MAX.
 * Returns 0 with the target in buf. */
int ppurl_target(const struct ppurl *u, const char *voice_prompt,
    const char *text_prompt, size_t max_target, char *buf, size_t buflen,
    char *err, size_t errlen);

#endif
