/*
 * events.h - the JSON bodies of the frontend webhooks (docs/webhooks.md).
 *
 * Every body starts with event, call_sid, stream_sid, account_sid, seq
 * (per call, from 1) and ts (RFC 3339, UTC, milliseconds), then the
 * event's own fields, in a fixed order so a body can be compared byte for
 * byte. A string that is unknown (NULL or "") is written as null where the
 * contract says "when known" (persona, offsets), as "" elsewhere.
 *
 * Every builder returns a malloc'd, NUL-terminated body that the caller
 * frees, or NULL when out of memory.
 */
#ifndef EXO_EVENTS_H
#define EXO_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The event names, also sent as X-Exoplex-Event. */
#define EVENTS_STARTED "call.started"
#define EVENTS_TRANSCRIPT "transcript"
#define EVENTS_DTMF "dtmf"
#define EVENTS_ENDED "call.ended"

/* "2026-11-21T16:40:00.123Z" and its NUL. */
#define EVENTS_TS_LEN 25

struct events_call {
	const char *call_sid;
	const char *stream_sid;
	const char *account_sid;
	uint64_t    seq; /* this event's number in its call, from 1 */
	uint64_t    ts_us; /* wall clock of the event; 0 = now */
};

struct events_kv {
	const char *key;
	const char *value;
};

struct events_started {
	const char             *from;
	const char             *to;
	unsigned                sample_rate;
	const char             *persona; /* NULL or "" = null */
	const char             *mode; /* "agent", ...; NULL or "" = omitted */
	const struct events_kv *params; /* custom_parameters as received */
	size_t                  nparams;
};

struct events_transcript {
	const char *speaker; /* "caller" or "agent" */
	const char *text;
	bool        final;
	int64_t     start_ms; /* from call start; < 0 = unknown (null) */
	int64_t     end_ms;
};

struct events_dtmf {
	const char *digit;
	unsigned    duration_ms;
};

struct events_counters {
	double   audio_in_s; /* caller audio carried to the agent */
	double   audio_out_s; /* agent audio carried back */
	unsigned reconnects; /* agent sessions replaced mid-call */
	uint64_t frames_dropped; /* audio frames dropped on the way */
};

struct events_ended {
	const char            *reason; /* see events_reason */
	uint64_t               duration_ms;
	const char            *persona; /* NULL or "" = null */
	struct events_counters counters;
	const char            *mode; /* "agent", ...; NULL or "" = omitted */
	/* Why, beyond the reason (e.g. "stt_not_configured"); NULL or "" =
	 * omitted. */
	const char *detail;
};

/* Formats a wall clock time (µs since the epoch) as RFC 3339 UTC with
 * milliseconds into buf (at least EVENTS_TS_LEN bytes). Returns buf. */
char *events_ts(char *buf, uint64_t wall_us);

/* True for a custom parameter that must not leave exoplex: its name
 * (any case) is or contains token, secret, passw, apikey, api_key,
 * api-key, auth, credential or signature. */
bool events_secret_key(const char *key);

/* One of the contract's end reasons for a call_stop reason: callended,
 * stopped, no_capacity, persona_failed, auth_failed and bridge_error pass
 * as they are; anything else (or nothing) is bridge_error. Returns a
 * static string. */
const char *events_reason(const char *reason);

char *events_call_started(
    const struct events_call *c, const struct events_started *s);
char *events_transcript(
    const struct events_call *c, const struct events_transcript *t);
char *events_dtmf(const struct events_call *c, const struct events_dtmf *d);
char *events_call_ended(
    const struct events_call *c, const struct events_ended *e);

#endif
