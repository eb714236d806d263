/*
 * stt.h - caller transcripts: one ElevenLabs Scribe v2 realtime session
 * per call (research/elevenlabs.md), a libwebsockets client on its
 * owner's context.
 *
 * A session connects to the configured URL with the query egress builds
 * (model_id, audio_format=pcm_<call rate>, language_code,
 * commit_strategy=vad and the VAD settings) and the xi-api-key header,
 * waits for session_started (checking its config against the request),
 * then streams the caller's audio as input_audio_chunk messages of about
 * 100 ms, continuously: a second without audio from the call is filled
 * with silence, so the server's idle close never fires. Partials are
 * deduplicated and every commit gives exactly one final (sttseg.h).
 *
 * Trouble stays here. A dropped connection, session_time_limit_exceeded
 * or a retryable error reconnects with backoff and replays the audio
 * since the last commit (bounded; sttbuf.h) with previous_text from the
 * last committed text. auth_error, quota_exceeded, unaccepted_terms and
 * invalid_request (or HTTP 401/403 at the upgrade) end transcription for
 * that call with one clear error line and hold new sessions back for a
 * while, so a bad key is not hammered. Nothing here blocks: audio is
 * buffered and sent as the socket allows; the call's own audio never
 * waits for STT.
 *
 * All sessions of a process share a struct stt_env, which owns one
 * shared tick (an lws_sul) for reconnects, timeouts, keepalive silence
 * and pacing. Everything runs on the thread that services the context.
 */
#ifndef EXO_STT_H
#define EXO_STT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

struct log;
struct log_call;
struct metrics;
struct stt;
struct stt_env;

#define STT_DEFAULT_URL "wss://api.elevenlabs.io/v1/speech-to-text/realtime"
#define STT_DEFAULT_MODEL "scribe_v2_realtime"

struct stt_env_opts {
	struct lws_context *context;
	struct lws_vhost   *vhost; /* clients connect from this vhost */
	const char         *protocol; /* its protocol that calls
	                                 stt_lws_callback */
	struct log     *log;
	struct metrics *metrics;
	const char     *url; /* full URL with path, no query; NULL = default */
	const char     *api_key; /* sent as xi-api-key; never logged */
	const char     *model; /* NULL = scribe_v2_realtime */
	const char     *language; /* NULL = "en"; "" = auto-detect */
	/* VAD settings (research §1.3); 0 = default. */
	double   vad_silence_s; /* 0.3..3.0; default 0.8 */
	double   vad_threshold; /* 0.1..0.9; default 0.4 */
	unsigned min_speech_ms; /* 50..2000; default 100 */
	unsigned min_silence_ms; /* 50..2000; default 100 */
	bool     timestamps; /* include_timestamps=true */
	bool     insecure; /* no certificate checks for wss:// */
	/* Limits; 0 = default. */
	unsigned chunk_ms; /* audio per message: 100 */
	unsigned replay_ms; /* audio kept since the last commit: 30000 */
	unsigned close_wait_ms; /* for the last commit at call end: 2000 */
	unsigned start_timeout_ms; /* upgrade to session_started: 5000 */
	unsigned backoff_min_ms, backoff_max_ms; /* 500, 10000 */
	unsigned hold_ms; /* new sessions held after a fatal error: 60000 */
};

/* A transcript of the caller. */
struct stt_transcript {
	const char *text; /* UTF-8, NUL-terminated, valid during the call */
	bool        final; /* committed; false for partials */
	/* Offsets from the call's start (its call_start.started_us),
	 * estimated from the audio sent; -1 when unknown. */
	int64_t start_ms, end_ms;
};

struct stt_cb {
	/* A transcript to pass on (already deduplicated). */
	void (*transcript)(void *owner, const struct stt_transcript *t);
	/* After stt_finish: the session is over (the last commit came, or
	 * the wait ran out). Called from the tick or a socket callback,
	 * never from inside stt_finish; s is freed after it returns. */
	void (*done)(void *owner);
};

/* Checks EXOPLEX_STT_URL (a cfg_opt check): ws:// or wss://, a host, an
 * optional port and a path, no query or fragment. */
int stt_check_url(const char *url, char *err, size_t errlen);
/* cfg_opt checks for the two decimal VAD settings. */
int stt_check_vad_silence(const char *v, char *err, size_t errlen);
int stt_check_vad_threshold(const char *v, char *err, size_t errlen);
/* cfg_opt check for the language: "" (auto-detect) or an ISO 639-1 or
 * 639-3 code, two or three lower-case letters. */
int stt_check_language(const char *v, char *err, size_t errlen);

/* Creates the shared state, registers the metrics and starts the tick.
 * Returns 0, EINVAL with err filled for a bad setting, or ENOMEM. The
 * caller keeps o's pointers alive. */
int stt_env_alloc(struct stt_env **out, const struct stt_env_opts *o,
    char *err, size_t errlen);
/* Forgets every session (no callbacks; open sockets get a close frame
 * when lws next services them), stops the tick and frees env. Call before
 * lws_context_destroy. */
void stt_env_free(struct stt_env *env);

/* Sessions not yet freed. */
size_t stt_env_count(const struct stt_env *env);

/* A one-line state for /readyz: live sessions, the last error and any
 * hold. Reads only atomics: safe from the admin thread. */
void stt_env_describe(struct stt_env *env, char *buf, size_t len);

/* Starts a session for a call whose caller audio is PCM16LE mono at rate
 * (8000, 16000, 22050, 24000, 44100 or 48000). ids are copied, for log
 * lines; call_start_us is the call's start (CLOCK_REALTIME µs, as in
 * call_start.started_us; 0 = now) for transcript offsets. Returns 0 and
 * sets *out (connecting, or waiting out a hold), or EINVAL / ENOMEM. */
int stt_open(struct stt **out, struct stt_env *env, const struct log_call *ids,
    unsigned rate, uint64_t call_start_us, const struct stt_cb *cb,
    void *owner);

/* The caller's audio as it arrives (ts_us: the CLOCK_REALTIME µs it
 * entered exoplex, Frame.ts_us; 0 = now). Copied; never blocks. */
void stt_audio(struct stt *s, const uint8_t *pcm, size_t len, uint64_t ts_us);

/* The call is over: sends what is left and a final commit, waits (at
 * most close_wait_ms) for the committed transcript, closes with 1000,
 * then calls cb->done. Transcripts may still arrive until then. */
void stt_finish(struct stt *s);

/* Hands the session to another owner (e.g. what outlives its call while
 * the last transcript comes). */
void stt_set_owner(struct stt *s, const struct stt_cb *cb, void *owner);

/* Drops the session now (a close frame when upgraded); no callback
 * follows and s must not be used after. */
void stt_close(struct stt *s);

/* The lws protocol callback for opts.protocol. */
int stt_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len);

#endif
