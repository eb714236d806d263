/*
 * scribe.h - the Scribe v2 realtime stand-in's network side: one
 * libwebsockets vhost on a context the caller owns (so a test can serve
 * it in the same loop as the client under test), behaving like
 * wss://api.elevenlabs.io/v1/speech-to-text/realtime (research/
 * elevenlabs.md):
 *
 *  - only the configured path upgrades (others: 404);
 *  - the xi-api-key header must match (missing or wrong: auth_error, then
 *    a close, 1008); the query is judged (judge.h; bad: invalid_request,
 *    then close 1008);
 *  - then session_started with a config echoing the request, and for
 *    every input_audio_chunk the checks of judge.h (violations counted,
 *    input_error answered where the real server answers it) and the
 *    model of model.h (partials and commits);
 *  - a session without any chunk for idle_s seconds is closed (1000, no
 *    error first, like the real one); with session_limit_s, a session that
 *    old gets session_time_limit_exceeded and a close (1000).
 */
#ifndef EXO_FAKESCRIBE_SCRIBE_H
#define EXO_FAKESCRIBE_SCRIBE_H

#include <stdbool.h>

struct fsstats;
struct log;
struct lws_context;
struct scribe;

struct scribe_opts {
	const char *host; /* listen address; NULL = all */
	int         port; /* 0 = the kernel picks (see scribe_port) */
	const char *path; /* NULL = /v1/speech-to-text/realtime */
	const char *api_key; /* expected xi-api-key; NULL = any non-empty */
	const char *models; /* accepted model_id list; NULL = the real ones */
	const char *text; /* canned words; NULL = model.h's default */
	bool        quirks; /* the live server's repeats and echoes */
	unsigned    word_ms; /* 0 = 250 */
	unsigned    idle_s; /* 0 = 15 */
	unsigned    session_limit_s; /* 0 = no limit */
	bool        wrong_format; /* session_started echoes pcm_16000 */
	/* wss://: PEM files (the context needs
	 * LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT); NULL = plain ws://. */
	const char *cert, *key;
};

/* Adds the stand-in's vhost to ctx (created with
 * LWS_SERVER_OPTION_EXPLICIT_VHOSTS) and starts its tick. o, st and lg
 * must outlive it. Returns 0 or an errno value after logging. */
int scribe_start(struct scribe **out, struct lws_context *ctx,
    const struct scribe_opts *o, struct fsstats *st, const struct log *lg);
/* The port it listens on. */
int scribe_port(const struct scribe *sc);
/* Stops the tick: call before lws_context_destroy. */
void scribe_stop(struct scribe *sc);
/* Frees it: call after lws_context_destroy (its sockets' last callbacks
 * still use it). */
void scribe_free(struct scribe *sc);

#endif
