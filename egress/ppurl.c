/*
 * ppurl.c - PersonaPlex server URLs and the /api/chat request target.
 */
#include "ppurl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_PATH "/api/chat"
/* lws 4.1 writes "Host: %s\r\n" into 128 bytes and truncates silently. */
#define HOSTHDR_MAX_LWS 119

static int
fail(char *err, size_t errlen, const char *url, const char *why)
{
	if (err && errlen)
		snprintf(
		    err, errlen, "PersonaPlex URL '%.200s': %s", url, why);
	return EINVAL;
}

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
	    || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
	    || c == '~';
}

static bool
is_hostchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
	    || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* Parses the decimal port in [s, e). */
static int
parse_port(const char *s, const char *e, int *port)
{
	long v = 0;

	if (s == e || e - s > 5)
		return EINVAL;
	for (const char *p = s; p < e; p++) {
		if (*p < '0' || *p > '9')
			return EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return EINVAL;
	*port = (int)v;
	return 0;
}

int
ppurl_parse(struct ppurl *u, const char *url, char *err, size_t errlen)
{
	const char *p, *auth, *auth_end, *host_s, *host_e, *port_s = NULL;
	const char *path;
	size_t      hl, pl;
	bool        v6 = false;

	memset(u, 0, sizeof(*u));
	if (!url || !*url)
		return fail(err, errlen, "", "empty");
	for (p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f)
			return fail(err, errlen, url,
			    "contains a space, control or non-ASCII byte "
			    "(percent-encode it)");
		if (c == '#')
			return fail(err, errlen, url, "has a #fragment");
	}
	if (strncasecmp(url, "ws://", 5) == 0) {
		auth = url + 5;
	} else if (strncasecmp(url, "wss://", 6) == 0) {
		u->tls = true;
		auth   = url + 6;
	} else {
		return fail(
		    err, errlen, url, "scheme must be ws:// or wss://");
	}
	auth_end = auth + strcspn(auth, "/?");
	if (memchr(auth, '@', (size_t)(auth_end - auth)))
		return fail(
		    err, errlen, url, "user:password@ is not supported");

	if (*auth == '[') {
		const char *rb = memchr(auth, ']', (size_t)(auth_end - auth));
		if (!rb)
			return fail(
			    err, errlen, url, "IPv6 address lacks ']'");
		host_s = auth + 1;
		host_e = rb;
		v6     = true;
		if (rb + 1 < auth_end) {
			if (rb[1] != ':')
				return fail(err, errlen, url,
				    "junk after the IPv6 address");
			port_s = rb + 2;
		}
	} else {
		const char *colon
		    = memchr(auth, ':', (size_t)(auth_end - auth));
		host_s = auth;
		host_e = colon ? colon : auth_end;
		if (colon)
			port_s = colon + 1;
	}
	hl = (size_t)(host_e - host_s);
	if (hl == 0)
		return fail(err, errlen, url, "no host");
	if (hl >= sizeof(u->host))
		return fail(err, errlen, url, "host name too long");
	memcpy(u->host, host_s, hl);
	u->host[hl] = '\0';
	if (v6) {
		struct in6_addr a;
		if (inet_pton(AF_INET6, u->host, &a) != 1)
			return fail(err, errlen, url,
			    "not a valid IPv6 address in [...]");
	} else {
		for (size_t i = 0; i < hl; i++)
			if (!is_hostchar((unsigned char)u->host[i]))
				return fail(err, errlen, url,
				    "host has a character other than "
				    "letters, digits, '-', '.', '_'");
	}

	u->port = u->tls ? 443 : 80;
	if (port_s && parse_port(port_s, auth_end, &u->port))
		return fail(
		    err, errlen, url, "port must be a number from 1 to 65535");

	if ((u->tls && u->port == 443) || (!u->tls && u->port == 80))
		snprintf(u->hosthdr, sizeof(u->hosthdr), v6 ? "[%s]" : "%s",
		    u->host);
	else
		snprintf(u->hosthdr, sizeof(u->hosthdr),
		    v6 ? "[%s]:%d" : "%s:%d", u->host, u->port);
	if (strlen(u->hosthdr) > HOSTHDR_MAX_LWS)
		return fail(err, errlen, url,
		    "host longer than libwebsockets' Host header allows");

	/* No path, or just "/", means the PersonaPlex route. */
	path = auth_end;
	pl   = strcspn(path, "?");
	if (pl == 0 || (pl == 1 && path[0] == '/')) {
		if (snprintf(u->path, sizeof(u->path), "%s%s", DEFAULT_PATH,
		        path + pl)
		    >= (int)sizeof(u->path))
			return fail(err, errlen, url, "path too long");
	} else {
		if (path[0] != '/')
			return fail(
			    err, errlen, url, "path must start with /");
		if (strlen(path) >= sizeof(u->path))
			return fail(err, errlen, url, "path too long");
		strcpy(u->path, path);
	}
	snprintf(u->base, sizeof(u->base), "%s://%s%s%s:%d%s",
	    u->tls ? "wss" : "ws", v6 ? "[" : "", u->host, v6 ? "]" : "",
	    u->port, u->path);
	return 0;
}

size_t
ppurl_encode(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t            n     = 0;

	for (const unsigned char *s = (const unsigned char *)src; *s; s++) {
		if (is_unreserved(*s) || *s == ' ') {
			/* A space as '+' (form encoding, which aiohttp's
			 * query decodes): one byte where %20 takes three,
			 * and prompts are mostly spaces and letters. */
			if (n + 1 >= dstlen)
				return (size_t)-1;
			dst[n++] = *s == ' ' ? '+' : (char)*s;
		} else {
			if (n + 3 >= dstlen)
				return (size_t)-1;
			dst[n++] = '%';
			dst[n++] = hex[*s >> 4];
			dst[n++] = hex[*s & 15];
		}
	}
	if (n >= dstlen)
		return (size_t)-1;
	dst[n] = '\0';
	return n;
}

static bool
blank(const char *s)
{
	for (; *s; s++)
		if (!strchr(" \t\r\n\v\f", *s))
			return false;
	return true;
}

int
ppurl_target(const struct ppurl *u, const char *voice_prompt,
    const char *text_prompt, size_t max_target, char *buf, size_t buflen,
    char *err, size_t errlen)
{
	size_t n, m, urllen;

	if (!voice_prompt || !*voice_prompt) {
		snprintf(err, errlen,
		    "the voice prompt is empty "
		    "(EXOPLEX_VOICE_PROMPT, e.g. NATF2.pt)");
		return EINVAL;
	}
	if (!text_prompt || blank(text_prompt)) {
		snprintf(err, errlen,
		    "the text prompt is empty (EXOPLEX_TEXT_PROMPT): "
		    "PersonaPlex fails before its handshake without one");
		return EINVAL;
	}
	if (!max_target)
		max_target = PPURL_TARGET_MAX_LWS;

	n = (size_t)snprintf(buf, buflen, "%s%cvoice_prompt=", u->path,
	    strchr(u->path, '?') ? '&' : '?');
	if (n >= buflen)
		goto toolong;
	m = ppurl_encode(buf + n, buflen - n, voice_prompt);
	if (m == (size_t)-1)
		goto toolong;
	n += m;
	m = (size_t)snprintf(buf + n, buflen - n, "&text_prompt=");
	if (m >= buflen - n)
		goto toolong;
	n += m;
	m = ppurl_encode(buf + n, buflen - n, text_prompt);
	if (m == (size_t)-1)
		goto toolong;
	n += m;

	urllen = strlen(u->tls ? "wss://" : "ws://") + strlen(u->hosthdr) + n;
	if (urllen > PPURL_URL_MAX) {
		snprintf(err, errlen,
		    "the PersonaPlex URL would be %zu bytes with its prompts, "
		    "over the server's limit of %d: shorten the text prompt",
		    urllen, PPURL_URL_MAX);
		return E2BIG;
	}
	if (n > max_target) {
		snprintf(err, errlen,
		    "the PersonaPlex request path would be %zu bytes with its "
		    "prompts, over the client's limit of %zu (libwebsockets "
		    "4.1 request line): shorten the text prompt",
		    n, max_target);
		return E2BIG;
	}
	return 0;

toolong:
	snprintf(err, errlen,
	    "the PersonaPlex URL with its prompts does not fit in %zu bytes: "
	    "shorten the text prompt",
	    buflen);
	return E2BIG;
}
