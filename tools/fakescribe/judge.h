/*
 * judge.h - what the Scribe stand-in checks (research/elevenlabs.md §1.3,
 * §2): the query of the upgrade and every client message.
 *
 * Query parameters come in as decoded "name=value" pieces (libwebsockets
 * splits at '&' and undoes %XX). The real server ignores names it does
 * not know (which is how `encoding=` bugs went unnoticed); this stand-in
 * refuses them, and every value outside the documented ranges, with
 * invalid_request, so a client typo fails a test instead of a call.
 *
 * A client message must be a text frame holding exactly the fields of
 * input_audio_chunk: message_type, audio_base_64 (canonical base64 of
 * whole 16-bit samples), commit (a bool), sample_rate (the query's rate),
 * and previous_text only on a connection's first chunk. Each thing wrong
 * is reported through a callback by its violation kind.
 *
 * Pure functions; nothing here knows of sockets.
 */
#ifndef EXO_FAKESCRIBE_JUDGE_H
#define EXO_FAKESCRIBE_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FSQ_RAW_MAX 1024

struct fsq {
	char     model[64];
	char     format[24]; /* "pcm_16000" when absent (the default) */
	unsigned rate;
	char     language[16]; /* "" = auto-detect */
	bool     vad; /* commit_strategy=vad (default manual) */
	double   vad_silence_s; /* 1.5 */
	double   vad_threshold; /* 0.4 */
	unsigned min_speech_ms, min_silence_ms; /* 100, 100 */
	bool     timestamps, language_detection;
	bool     have_model, have_format, have_strategy;
	/* Failures found while adding (the first one wins). */
	const char *bad_kind;
	char        bad_text[512];
	/* Seen names, for duplicates. */
	char seen[FSQ_RAW_MAX];
	char raw[FSQ_RAW_MAX]; /* the query as received, for stats */
};

/* Something wrong that is reported (kind, detail) but not refused. */
typedef void (*fs_report_fn)(void *arg, const char *kind, const char *detail);

void fsq_init(struct fsq *q);
/* Adds one decoded "name=value" piece; warn gets non-fatal findings
 * (duplicate_param). */
void fsq_add(struct fsq *q, const char *piece, size_t len, fs_report_fn warn,
    void *arg);
/* Judges the whole query: returns NULL when it is acceptable (warn has
 * heard of a missing audio_format or commit_strategy, which the real
 * server defaults), else the violation kind with *text set to the
 * invalid_request message (kept in q). accept_models: comma-separated. */
const char *fsq_check(struct fsq *q, const char *accept_models,
    fs_report_fn warn, void *arg, const char **text);

/* One client message. */
struct fschunk {
	uint8_t    *pcm; /* decoded audio (malloc'd; caller frees) */
	size_t      len;
	bool        commit;
	bool        has_previous_text;
	char        previous_text[256];
	const char *input_error; /* non-NULL: the real server would answer
	                           input_error with this text */
	char error_text[128];
};

/* Judges one message against q; first tells whether it is the
 * connection's first chunk. Every violation goes to viol (kind, detail).
 * Returns 0 when the message carried usable audio (out filled, possibly
 * with len 0), EINVAL otherwise. */
int fsmsg_check(const char *msg, size_t len, bool binary, bool first,
    const struct fsq *q, fs_report_fn viol, void *arg, struct fschunk *out);

#endif
