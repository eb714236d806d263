/*
 * sttmsg.h - ElevenLabs Scribe v2 realtime messages (research/
 * elevenlabs.md §2, §3): what the server sends, parsed; and the one
 * message a client sends, input_audio_chunk, built.
 *
 * Parsing is lenient where the server's shapes drift (session_started's
 * config, words[], error spellings) and strict about what we act on: a
 * message is a JSON object with a string message_type. Unknown types are
 * reported as such (ignored by the client) unless they carry a string
 * `error`, which makes them errors (research §3.6).
 */
#ifndef EXO_STTMSG_H
#define EXO_STTMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

enum sttmsg_type {
	STTMSG_BAD = 0, /* not a JSON object with a string message_type */
	STTMSG_UNKNOWN, /* a type we do not know, without an error */
	STTMSG_SESSION_STARTED,
	STTMSG_PARTIAL, /* partial_transcript */
	STTMSG_FINAL, /* final_transcript (settled, not committed) */
	STTMSG_FINAL_TS, /* final_transcript_with_timestamps */
	STTMSG_COMMITTED, /* committed_transcript */
	STTMSG_COMMITTED_TS, /* committed_transcript_with_timestamps */
	STTMSG_ENTITIES, /* committed_transcript_entities */
	STTMSG_ERROR, /* any error type (§3.6) */
};

/* What an error asks of the client (research §3.6 and §8.5). */
enum stterr_policy {
	STTERR_NONE = 0, /* not an error */
	STTERR_FATAL, /* auth, quota, terms, invalid_request: never retry */
	STTERR_ROUTINE, /* session time limit, audio activity: at once */
	STTERR_RETRY, /* reconnect with backoff */
	STTERR_NONFATAL, /* commit_throttled: carry on */
};

struct sttmsg {
	enum sttmsg_type type;
	/* Everything below points into the parsed document (or at string
	 * literals) and lives until sttmsg_clear. */
	const char *type_name; /* message_type as received; "" for BAD */
	const char *text; /* transcript types: text, "" when absent */
	/* Errors: the detail (`error`, else `message`, else ""), the
	 * canonical kind (both spellings of a type map to one; unknown
	 * types with an error are "other") and the policy. */
	const char        *error;
	const char        *err_kind;
	enum stterr_policy policy;
	/* session_started (NULL / 0 when absent or of another type). */
	const char *session_id;
	const char *audio_format;
	long        sample_rate;
	/* *_with_timestamps: language_code (NULL if absent or null) and the
	 * first word's start and last word's end in seconds (-1: unknown). */
	const char   *language_code;
	double        t_start, t_end;
	size_t        n_entities; /* committed_transcript_entities */
	const char   *why; /* BAD: what is wrong */
	struct cJSON *root;
};

/* Parses one text message of len bytes. Returns 0 with m filled (any type
 * but BAD), or EINVAL with m->type = STTMSG_BAD and m->why set. Either
 * way the caller calls sttmsg_clear. */
int  sttmsg_parse(struct sttmsg *m, const char *json, size_t len);
void sttmsg_clear(struct sttmsg *m);

/* The canonical kind and policy of an error message_type, or NULL and
 * STTERR_NONE when type is not a known error type. */
const char *stterr_kind(const char *type, enum stterr_policy *policy);

/* Bytes sttmsg_chunk may write for len bytes of audio and a previous_text
 * of ptlen bytes, NUL included. */
size_t sttmsg_chunk_max(size_t len, size_t ptlen);

/* Writes an input_audio_chunk with all four fields (message_type,
 * audio_base_64, commit, sample_rate) and previous_text when it is
 * non-NULL (the caller sends it on a connection's first chunk only).
 * Returns the length written (NUL-terminated), or 0 when cap is smaller
 * than sttmsg_chunk_max. */
size_t sttmsg_chunk(char *dst, size_t cap, const uint8_t *pcm, size_t len,
    unsigned rate, bool commit, const char *previous_text);

/* The previous_text for a reconnect: the tail of committed text, at most
 * max bytes (≤ 50 per research §2.2), starting at a word if one fits and
 * never inside a UTF-8 sequence; control characters become spaces.
 * dst holds max + 1 bytes. Returns the length ("" for no text). */
size_t sttmsg_previous_text(char *dst, size_t max, const char *committed);

#endif
