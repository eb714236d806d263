/*
 * exotel.h - Exotel Voicebot/Stream WebSocket messages: parse what Exotel
 * sends, build what we send back.
 *
 * The parser follows the real captures in research/exotel.md §1.3, not the
 * docs: numbers may arrive as JSON strings or numbers, stream_sid may sit
 * at the top level or inside start, custom_parameters may be absent,
 * empty or key-only, extra keys and unknown events are tolerated. Bad
 * input never aborts: it returns a specific error code with a short
 * reason. A parsed message is self-contained (strings are copied into it),
 * so the caller owns it and nothing needs freeing.
 *
 * The builders write outbound media/mark/clear into a caller buffer with
 * snprintf and base64, without cJSON, because media is the hot path.
 */
#ifndef EXO_INGRESS_EXOTEL_H
#define EXO_INGRESS_EXOTEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXOTEL_SID_MAX 64 /* sids are opaque ASCII, at most this long */
#define EXOTEL_NUM_MAX 64 /* from / to, as sent */
#define EXOTEL_KV_MAX 8 /* custom_parameters / extra keys kept */
#define EXOTEL_KEY_MAX 64 /* longer keys are dropped (counted) */
#define EXOTEL_VAL_MAX 256 /* longer values are dropped (counted) */
#define EXOTEL_SHORT_MAX 64 /* encoding, bit_rate, reasons, event names */
#define EXOTEL_MARK_MAX 128 /* mark names */
#define EXOTEL_DIGIT_MAX 16 /* dtmf digit(s); scrambled when encrypted */
#define EXOTEL_MSG_OVERHEAD 256 /* JSON around a media payload, sid incl. */

enum exotel_event {
	EXOTEL_EV_UNKNOWN = 0, /* an event we do not know: ignore it */
	EXOTEL_EV_CONNECTED,
	EXOTEL_EV_START,
	EXOTEL_EV_MEDIA,
	EXOTEL_EV_DTMF,
	EXOTEL_EV_MARK,
	EXOTEL_EV_STOP,
	EXOTEL_EV_CLEAR, /* only ever sent by us; ignored when received */
	EXOTEL_EV_N
};

/* Parse results. 0 is success; each error has a stable name for metrics
 * (exotel_err_name) and the message carries a human reason. */
enum exotel_err {
	EXOTEL_OK = 0,
	EXOTEL_E_JSON, /* not valid JSON (binary junk included) */
	EXOTEL_E_NOT_OBJECT, /* valid JSON but not an object */
	EXOTEL_E_NO_EVENT, /* "event" missing or not a string */
	EXOTEL_E_BAD_SID, /* a sid is too long or has odd characters */
	EXOTEL_E_START_FIELD, /* start lacks a required field */
	EXOTEL_E_RATE, /* sample_rate not 8000/16000/24000 */
	EXOTEL_E_NO_PAYLOAD, /* media without a string media.payload */
	EXOTEL_E_BASE64, /* payload is not canonical base64 */
	EXOTEL_E_ODD_PCM, /* decoded PCM16 has an odd byte count */
	EXOTEL_E_TOO_LARGE, /* payload larger than the caller's buffer */
	EXOTEL_E_FIELD, /* another required field missing or bad */
	EXOTEL_E_N
};

struct exotel_kv {
	char key[EXOTEL_KEY_MAX + 1];
	char val[EXOTEL_VAL_MAX + 1];
};

struct exotel_start {
	char   call_sid[EXOTEL_SID_MAX + 1]; /* required */
	char   account_sid[EXOTEL_SID_MAX + 1]; /* "" when absent */
	char   from[EXOTEL_NUM_MAX + 1]; /* as sent, not normalised */
	char   to[EXOTEL_NUM_MAX + 1];
	bool   custom_present; /* the key was in start */
	size_t n_custom;
	struct exotel_kv custom[EXOTEL_KV_MAX]; /* values may be "" */
	size_t           n_extra;
	struct exotel_kv extra[EXOTEL_KV_MAX]; /* other scalar keys: leg_sid */
	size_t n_dropped; /* custom/extra entries not kept (too many/long) */
	char   encoding[EXOTEL_SHORT_MAX + 1]; /* "base64" in real traffic */
	char   bit_rate[EXOTEL_SHORT_MAX + 1]; /* "128kbps" */
	int    sample_rate; /* 8000, 16000, 24000, or 0 when absent */
};

struct exotel_media {
	const uint8_t *pcm; /* the caller's buffer, PCM16LE mono */
	size_t         pcm_len; /* bytes, even */
	bool           has_chunk, has_timestamp;
	int64_t        chunk;
	int64_t        timestamp; /* ms since stream start */
};

struct exotel_dtmf {
	char    digit[EXOTEL_DIGIT_MAX + 1];
	bool    has_duration;
	int64_t duration_ms;
};

struct exotel_stop {
	char reason[EXOTEL_SHORT_MAX + 1]; /* "stopped", "callended", or "" */
	char call_sid[EXOTEL_SID_MAX + 1];
	char account_sid[EXOTEL_SID_MAX + 1];
};

struct exotel_msg {
	enum exotel_event kind;
	char    event[EXOTEL_SHORT_MAX + 1]; /* the event string, truncated */
	char    stream_sid[EXOTEL_SID_MAX + 1]; /* "" when absent */
	bool    has_seq;
	int64_t seq; /* sequence_number */
	const char
	    *reason; /* static text: why parsing failed; "" on success */
	union {
		struct exotel_start start;
		struct exotel_media media;
		struct exotel_dtmf  dtmf;
		char                mark[EXOTEL_MARK_MAX + 1];
		struct exotel_stop  stop;
	} u;
};

/* Parses one text message of len bytes (no NUL needed) into *m. Media
 * payloads are decoded into pcm (pcm_cap bytes; b64_decoded_max of the
 * payload length is always enough) and m->u.media.pcm points there.
 * Returns EXOTEL_OK or an enum exotel_err with m->reason set; on error m
 * still holds kind/event/stream_sid when they could be read. */
struct arena;

int exotel_parse(struct exotel_msg *m, const char *json, size_t len,
    uint8_t *pcm, size_t pcm_cap);

/* exotel_parse with the JSON tree built in arena a, which it resets
 * first (a belongs to the caller; nothing in *m points into it): no heap
 * allocation per message. */
int exotel_parse_in(struct arena *a, struct exotel_msg *m, const char *json,
    size_t len, uint8_t *pcm, size_t pcm_cap);

/* Removes key from s->custom (the first entry of that name, and any
 * others) and copies its value into val (cap bytes; "" if absent).
 * Returns whether it was there. Used to take secrets such as "token" out
 * of what is logged and put on the bus. */
bool exotel_custom_take(
    struct exotel_start *s, const char *key, char *val, size_t cap);

/* Stable snake_case names for metrics labels and logs. */
const char *exotel_err_name(int err);
const char *exotel_event_name(enum exotel_event ev);

/* Parses a sample rate given as text ("8000"); returns 8000, 16000,
 * 24000, or 0 for anything else. Used for ?sample-rate= too. */
int exotel_rate_parse(const char *s);

/* Whether s is a usable sid: 1..EXOTEL_SID_MAX printable ASCII characters
 * without space, quote or backslash. */
bool exotel_sid_ok(const char *s);

/* Bytes exotel_build_media needs for n bytes of PCM and a sid of sid_len
 * characters, NUL included. */
size_t exotel_media_size(size_t n, size_t sid_len);

/* Builders: write a NUL-terminated message into out (cap bytes) and
 * return its length, or 0 if it does not fit (nothing useful written).
 * stream_sid must satisfy exotel_sid_ok; mark names are JSON-escaped. */
size_t exotel_build_media(char *out, size_t cap, const char *stream_sid,
    const uint8_t *pcm, size_t n);
size_t exotel_build_mark(
    char *out, size_t cap, const char *stream_sid, const char *name);
size_t exotel_build_clear(char *out, size_t cap, const char *stream_sid);

#endif
