/*
 * ppframe.h - PersonaPlex WebSocket messages: byte 0 is the kind.
 *
 * 0x00 handshake (one byte on the reference server; any length is
 * accepted), 0x01 audio (the payload is Ogg Opus bytes), 0x02 text (one
 * UTF-8 piece of the agent's words). The server never sends anything else
 * and never sends WebSocket text frames; such messages are classified so
 * they can be counted and ignored (research/personaplex.md §2).
 *
 * Pure functions; a classified message points into the caller's buffer.
 */
#ifndef EXO_PPFRAME_H
#define EXO_PPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPFRAME_HANDSHAKE 0x00
#define PPFRAME_AUDIO 0x01
#define PPFRAME_TEXT 0x02

enum ppframe_kind {
	PPF_EMPTY, /* a zero-length message: ignored by the server too */
	PPF_HANDSHAKE, /* 0x00 */
	PPF_AUDIO, /* 0x01 with at least one byte of Ogg */
	PPF_TEXT, /* 0x02 with valid UTF-8 (possibly empty) */
	PPF_UNKNOWN, /* any other kind byte: ignored, counted */
	PPF_BAD, /* 0x01 with no payload, 0x02 with invalid UTF-8 */
	PPF_WS_TEXT, /* a WebSocket text frame: not expected, counted */
};

struct ppframe {
	enum ppframe_kind kind;
	uint8_t           type; /* byte 0 (0 for PPF_EMPTY/PPF_WS_TEXT) */
	const uint8_t    *payload; /* after byte 0; points into msg */
	size_t            len;
};

/* Classifies one whole received message (binary says whether it came as
 * a binary frame) and returns f->kind. */
enum ppframe_kind ppframe_classify(
    const uint8_t *msg, size_t len, bool binary, struct ppframe *f);

/* Name of a kind for logs and metric labels ("audio", ...). */
const char *ppframe_kind_name(enum ppframe_kind k);

/* Whether s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool ppframe_utf8_valid(const uint8_t *s, size_t len);

/* Bytes of the audio message for an Ogg page of len bytes (1 + len). */
static inline size_t
ppframe_audio_len(size_t len)
{
	return 1 + len;
}

/* Writes the audio message 0x01 + page into dst, which has room for
 * ppframe_audio_len(len) bytes. Returns that length. */
size_t ppframe_put_audio(uint8_t *dst, const uint8_t *page, size_t len);

#endif
