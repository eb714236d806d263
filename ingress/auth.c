/*
 * auth.c - Basic credentials and tokens, compared in constant time. See
 * auth.h.
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base64.h"

#define DIGEST 32

struct auth {
	size_t  n_basic, n_token;
	uint8_t basic[AUTH_MAX_ENTRIES][DIGEST];
	uint8_t token[AUTH_MAX_ENTRIES][DIGEST];
};

static const char *const via_names[AUTH_VIA_N] = {
	[AUTH_VIA_NONE]   = "none",
	[AUTH_VIA_BASIC]  = "basic",
	[AUTH_VIA_BEARER] = "bearer",
	[AUTH_VIA_QUERY]  = "query",
	[AUTH_VIA_CUSTOM] = "custom_parameters",
};

const char *
auth_via_name(enum auth_via v)
{
	return (unsigned)v < AUTH_VIA_N ? via_names[v] : "none";
}

static void
digest(const char *s, size_t n, uint8_t out[DIGEST])
{
	unsigned int len = DIGEST;

	if (EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, DIGEST); /* matches nothing real */
}

/* Splits list on commas into digests; kind names the setting for err. */
static int
load(uint8_t (*tab)[DIGEST], size_t *n, const char *list, bool need_colon,
    const char *kind, char *err, size_t errlen)
{
	const char *p   = list;
	size_t      pos = 0;

	*n = 0;
	if (list == NULL || *list == '\0')
		return 0;
	for (;;) {
		const char *e = strchr(p, ',');
		const char *b = p, *t = e ? e : p + strlen(p);

		pos++;
		while (b < t && isspace((unsigned char)*b))
			b++;
		while (t > b && isspace((unsigned char)t[-1]))
			t--;
		if (t == b) {
			snprintf(
			    err, errlen, "%s: entry %zu is empty", kind, pos);
			return EINVAL;
		}
		if ((size_t)(t - b) > AUTH_MAX_SECRET) {
			snprintf(err, errlen,
			    "%s: entry %zu is longer than %d characters", kind,
			    pos, AUTH_MAX_SECRET);
			return EINVAL;
		}
		if (need_colon && memchr(b, ':', (size_t)(t - b)) == NULL) {
			snprintf(err, errlen,
			    "%s: entry %zu is not user:password", kind, pos);
			return EINVAL;
		}
		if (!need_colon) {
			for (const char *q = b; q < t; q++)
				if ((unsigned char)*q <= ' '
				    || (unsigned char)*q >= 0x7f) {
					snprintf(err, errlen,
					    "%s: entry %zu has a space or "
					    "control character",
					    kind, pos);
					return EINVAL;
				}
		}
		if (*n >= AUTH_MAX_ENTRIES) {
			snprintf(err, errlen, "%s: more than %d entries", kind,
			    AUTH_MAX_ENTRIES);
			return EINVAL;
		}
		digest(b, (size_t)(t - b), tab[(*n)++]);
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

int
auth_alloc(struct auth **out, const char *basic, const char *tokens, char *err,
    size_t errlen)
{
	struct auth *a;
	int          rv;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ENOMEM;
	if ((rv = load(a->basic, &a->n_basic, basic, true,
	         "EXOPLEX_AUTH_BASIC", err, errlen))
	        != 0
	    || (rv = load(a->token, &a->n_token, tokens, false,
	            "EXOPLEX_AUTH_TOKENS", err, errlen))
	        != 0) {
		auth_free(a);
		return rv;
	}
	*out = a;
	return 0;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

bool
auth_enabled(const struct auth *a)
{
	return a != NULL && (a->n_basic || a->n_token);
}

size_t
auth_basic_count(const struct auth *a)
{
	return a ? a->n_basic : 0;
}

size_t
auth_token_count(const struct auth *a)
{
	return a ? a->n_token : 0;
}

/* Compares against every entry; no early exit. */
static bool
match(const uint8_t (*tab)[DIGEST], size_t n, const char *s)
{
	uint8_t d[DIGEST];
	int     hit = 0;
	size_t  len = strnlen(s, AUTH_MAX_SECRET + 1);

	if (len == 0 || len > AUTH_MAX_SECRET)
		return false;
	digest(s, len, d);
	for (size_t i = 0; i < n; i++)
		hit |= CRYPTO_memcmp(d, tab[i], DIGEST) == 0;
	OPENSSL_cleanse(d, sizeof(d));
	return hit != 0;
}

bool
auth_token_ok(const struct auth *a, const char *token)
{
	return a != NULL && token != NULL
	    && match(a->token, a->n_token, token);
}

bool
auth_basic_ok(const struct auth *a, const char *userpass)
{
	return a != NULL && userpass != NULL && strchr(userpass, ':') != NULL
	    && match(a->basic, a->n_basic, userpass);
}

/* "Basic <b64>": decodes and checks. Padding may be missing. */
static bool
basic_header_ok(const struct auth *a, const char *v)
{
	char    b64[AUTH_MAX_SECRET * 2];
	uint8_t dec[AUTH_MAX_SECRET * 2];
	size_t  n = strlen(v), dl = 0;
	bool    ok;

	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if (n == 0 || n + 3 >= sizeof(b64))
		return false;
	memcpy(b64, v, n);
	while (n % 4 != 0)
		b64[n++] = '=';
	b64[n] = '\0';
	if (b64_decoded_max(n) >= sizeof(dec)
	    || b64_decode(dec, &dl, b64, n) != 0 || memchr(dec, 0, dl))
		return false;
	dec[dl] = '\0';
	ok      = auth_basic_ok(a, (const char *)dec);
	OPENSSL_cleanse(dec, sizeof(dec));
	OPENSSL_cleanse(b64, sizeof(b64));
	return ok;
}

enum auth_result
auth_upgrade(const struct auth *a, const char *header, const char *query_token,
    enum auth_via *via)
{
	bool presented = false;

	*via = AUTH_VIA_NONE;
	if (!auth_enabled(a))
		return AUTH_OK;
	if (header != NULL && *header != '\0') {
		const char *v = header;
		presented     = true;
		while (isspace((unsigned char)*v))
			v++;
		if (strncasecmp(v, "Basic", 5) == 0
		    && isspace((unsigned char)v[5])) {
			v += 5;
			while (isspace((unsigned char)*v))
				v++;
			if (basic_header_ok(a, v)) {
				*via = AUTH_VIA_BASIC;
				return AUTH_OK;
			}
		} else if (strncasecmp(v, "Bearer", 6) == 0
		    && isspace((unsigned char)v[6])) {
			char   t[AUTH_MAX_SECRET + 1];
			size_t n;
			v += 6;
			while (isspace((unsigned char)*v))
				v++;
			n = strlen(v);
			while (n > 0 && isspace((unsigned char)v[n - 1]))
				n--;
			if (n > 0 && n <= AUTH_MAX_SECRET) {
				bool ok;
				memcpy(t, v, n);
				t[n] = '\0';
				ok   = auth_token_ok(a, t);
				OPENSSL_cleanse(t, sizeof(t));
				if (ok) {
					*via = AUTH_VIA_BEARER;
					return AUTH_OK;
				}
			}
		}
	}
	if (query_token != NULL) {
		presented = true;
		if (auth_token_ok(a, query_token)) {
			*via = AUTH_VIA_QUERY;
			return AUTH_OK;
		}
	}
	return presented ? AUTH_BAD : AUTH_NONE;
}
