/*
 * model.h - the stand-in's "transcriber": an energy VAD over the received
 * PCM that turns speech into canned words, the way Scribe's VAD commit
 * strategy behaves on the wire (research/elevenlabs.md §3.2, §3.4):
 *
 *  - while a segment has speech, one more word every word_ms of voiced
 *    audio, each time a partial_transcript with the segment's text so far;
 *  - after vad_silence_s of silence following speech (VAD strategy), or on
 *    a commit request, a committed transcript of the segment (an empty
 *    one for a commit request without speech);
 *  - the live server's quirks, unless turned off: the last partial is sent
 *    again after every second of further audio, and the committed text is
 *    echoed once as a partial right after a commit (pipecat #5197).
 *
 * Time is audio time (samples received), so results do not depend on how
 * fast the client sends. Pure: events go to a callback.
 */
#ifndef EXO_FAKESCRIBE_MODEL_H
#define EXO_FAKESCRIBE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fsev_kind { FSEV_PARTIAL, FSEV_COMMIT };

struct fsev {
	enum fsev_kind kind;
	const char    *text;
	bool           requested; /* a commit the client asked for */
	bool           quirk; /* a repeat or echo, not new text */
	/* Commit: the words' times, seconds of session audio. */
	size_t        nwords;
	const double *starts, *ends;
	const char  **words;
};

typedef void (*fsmodel_emit_fn)(void *arg, const struct fsev *ev);

struct fsmodel_opts {
	unsigned    rate;
	bool        vad; /* commit on silence (commit_strategy=vad) */
	double      vad_silence_s;
	unsigned    min_speech_ms;
	double      threshold_dbfs; /* voiced above this RMS; 0 = -40 */
	unsigned    word_ms; /* 0 = 250 */
	const char *text; /* canned words; NULL = a default sentence */
	bool        quirks;
};

#define FSMODEL_WORDS_MAX 64

struct fsmodel {
	struct fsmodel_opts o;
	char               *words; /* the canned text, split by NULs */
	size_t              nwords, next_word;
	size_t              frame; /* samples per 20 ms */
	int16_t            *acc; /* a partial frame */
	size_t              nacc;
	uint64_t            samples; /* audio received */
	uint64_t    voiced_run, silent_run, voiced_in_seg; /* samples */
	bool        in_speech; /* the segment has had speech */
	uint64_t    last_partial_at; /* samples */
	char        seg[4096]; /* the segment's text */
	const char *seg_words[FSMODEL_WORDS_MAX];
	double      seg_start[FSMODEL_WORDS_MAX];
	double      seg_end[FSMODEL_WORDS_MAX];
	size_t      seg_n;
	char        echo[4096]; /* committed text to echo */
};

/* Returns 0 or ENOMEM; fsmodel_fini frees. */
int  fsmodel_init(struct fsmodel *m, const struct fsmodel_opts *o);
void fsmodel_fini(struct fsmodel *m);

/* Feeds n samples; events go to emit. */
void fsmodel_feed(struct fsmodel *m, const int16_t *pcm, size_t n,
    fsmodel_emit_fn emit, void *arg);
/* The client asked for a commit (commit:true). */
void fsmodel_commit(struct fsmodel *m, fsmodel_emit_fn emit, void *arg);

#endif
