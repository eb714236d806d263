/*
 * ppframe.c - PersonaPlex WebSocket messages: byte 0 is the kind.
 */
#include "ppframe.h"

#include <string.h>

bool
ppframe_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t  c = s[i];
		size_t   n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff
		    || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

enum ppframe_kind
ppframe_classify(
    const uint8_t *msg, size_t len, bool binary, struct ppframe *f)
{
	memset(f, 0, sizeof(*f));
	if (!binary) {
		f->kind    = PPF_WS_TEXT;
		f->payload = msg;
		f->len     = len;
		return f->kind;
	}
	if (len == 0) {
		f->kind = PPF_EMPTY;
		return f->kind;
	}
	f->type    = msg[0];
	f->payload = msg + 1;
	f->len     = len - 1;
	switch (msg[0]) {
	case PPFRAME_HANDSHAKE:
		f->kind = PPF_HANDSHAKE;
		break;
	case PPFRAME_AUDIO:
		f->kind = f->len ? PPF_AUDIO : PPF_BAD;
		break;
	case PPFRAME_TEXT:
		f->kind = ppframe_utf8_valid(f->payload, f->len) ? PPF_TEXT
		                                                 : PPF_BAD;
		break;
	default:
		f->kind = PPF_UNKNOWN;
		break;
	}
	return f->kind;
}

const char *
ppframe_kind_name(enum ppframe_kind k)
{
	switch (k) {
	case PPF_EMPTY:
		return "empty";
	case PPF_HANDSHAKE:
		return "handshake";
	case PPF_AUDIO:
		return "audio";
	case PPF_TEXT:
		return "text";
	case PPF_UNKNOWN:
		return "unknown";
	case PPF_BAD:
		return "bad";
	case PPF_WS_TEXT:
		return "ws_text";
	}
	return "?";
}

size_t
ppframe_put_audio(uint8_t *dst, const uint8_t *page, size_t len)
{
	dst[0] = PPFRAME_AUDIO;
	memcpy(dst + 1, page, len);
	return 1 + len;
}
