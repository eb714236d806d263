/*
 * base64.c - strict RFC 4648 base64.
 *
 * Decoding rejects anything a careful encoder would not produce, so bad
 * input from a caller's socket is caught here, not later as noise.
 */
#include <errno.h>

#include "base64.h"

static const char enc_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for anything else. */
static const uint8_t dec_tab[256] = {
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
	255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
	255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

size_t
b64_encode(char *dst, const uint8_t *src, size_t n)
{
	char *p = dst;
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t) src[i] << 16 |
		    (uint32_t) src[i + 1] << 8 | src[i + 2];
		*p++ = enc_tab[v >> 18];
		*p++ = enc_tab[(v >> 12) & 63];
		*p++ = enc_tab[(v >> 6) & 63];
		*p++ = enc_tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t) src[i] << 16;
		*p++ = enc_tab[v >> 18];
		*p++ = enc_tab[(v >> 12) & 63];
		*p++ = '=';
		*p++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
		*p++ = enc_tab[v >> 18];
		*p++ = enc_tab[(v >> 12) & 63];
		*p++ = enc_tab[(v >> 6) & 63];
		*p++ = '=';
	}
	*p = '\0';
	return (size_t) (p - dst);
}

int
b64_decode(uint8_t *dst, size_t *out_len, const char *src, size_t n)
{
	const uint8_t *s = (const uint8_t *) src;
	uint8_t *p = dst;
	size_t i;

	if (n % 4 != 0)
		return EINVAL;
	for (i = 0; i < n; i += 4) {
		uint8_t a = dec_tab[s[i]], b = dec_tab[s[i + 1]];
		uint8_t c = dec_tab[s[i + 2]], d = dec_tab[s[i + 3]];
		int last = i + 4 == n;

		if ((a | b) > 63)
			return EINVAL;
		if (c == 64 || d == 64) {
			/* Padding only at the very end, "x=" never before
			 * "x", and the unused bits must be zero (canonical). */
			if (!last || (c == 64 && d != 64))
				return EINVAL;
			if (c == 64) {
				if (b & 15)
					return EINVAL;
				*p++ = (uint8_t) (a << 2 | b >> 4);
			} else {
				if (c > 63 || (c & 3))
					return EINVAL;
				*p++ = (uint8_t) (a << 2 | b >> 4);
				*p++ = (uint8_t) (b << 4 | c >> 2);
			}
			break;
		}
		if ((c | d) > 63)
			return EINVAL;
		*p++ = (uint8_t) (a << 2 | b >> 4);
		*p++ = (uint8_t) (b << 4 | c >> 2);
		*p++ = (uint8_t) (c << 6 | d);
	}
	*out_len = (size_t) (p - dst);
	return 0;
}
