/*
 * fuzz_ppframe.c - PersonaPlex WebSocket messages (egress/ppframe.c).
 * Byte 0 of the input says whether the message came as a binary frame;
 * the rest is the message. Oracles: the kind agrees with byte 0 and the
 * UTF-8 check, the payload stays inside the message, and an audio
 * message built from the bytes classifies as audio with them intact.
 */
#include <string.h>

#include "fuzz.h"
#include "ppframe.h"

/* Unicode's table of well-formed UTF-8 (Table 3-7), as a second opinion. */
static bool
utf8_ref(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i], lo = 0x80, hi = 0xbf;
		size_t  k;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else
			return false;
		if (n - i <= k)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if (s[i + j] < 0x80 || s[i + j] > 0xbf)
				return false;
		i += k + 1;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ppframe f;
	bool           binary;
	const uint8_t *msg;
	size_t         len;

	if (size < 1)
		return 0;
	binary              = data[0] & 1;
	msg                 = data + 1;
	len                 = size - 1;
	enum ppframe_kind k = ppframe_classify(msg, len, binary, &f);
	FUZZ_CHECK(k == f.kind);
	FUZZ_CHECK(ppframe_kind_name(k) != NULL);
	if (!binary)
		FUZZ_CHECK(k == PPF_WS_TEXT);
	else if (len == 0)
		FUZZ_CHECK(k == PPF_EMPTY);
	else {
		FUZZ_CHECK(f.type == msg[0]);
		FUZZ_CHECK(f.payload == msg + 1 && f.len == len - 1);
		switch (msg[0]) {
		case PPFRAME_HANDSHAKE:
			FUZZ_CHECK(k == PPF_HANDSHAKE);
			break;
		case PPFRAME_AUDIO:
			FUZZ_CHECK(k == (len > 1 ? PPF_AUDIO : PPF_BAD));
			break;
		case PPFRAME_TEXT:
			FUZZ_CHECK(k
			    == (ppframe_utf8_valid(msg + 1, len - 1)
			            ? PPF_TEXT
			            : PPF_BAD));
			break;
		default:
			FUZZ_CHECK(k == PPF_UNKNOWN);
		}
	}
	FUZZ_CHECK(ppframe_utf8_valid(data, size) == utf8_ref(data, size));
	if (len > 0) {
		uint8_t *a = malloc(ppframe_audio_len(len));
		FUZZ_CHECK(a);
		FUZZ_CHECK(
		    ppframe_put_audio(a, msg, len) == ppframe_audio_len(len));
		FUZZ_CHECK(
		    ppframe_classify(a, ppframe_audio_len(len), true, &f)
		    == PPF_AUDIO);
		FUZZ_CHECK(f.len == len && !memcmp(f.payload, msg, len));
		free(a);
	}
	return 0;
}
