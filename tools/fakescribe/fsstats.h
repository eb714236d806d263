/*
 * fsstats.h - what the Scribe stand-in counts, for tests: /metrics
 * (through the metrics registry, prefix exoplex_fakescribe_) and the
 * /stats JSON.
 *
 * Counters live in the registry (atomic, any thread); violations and
 * warnings by kind and the last query sit behind a mutex, so the admin
 * thread can render JSON while the lws thread counts. Created by main;
 * the registry must outlive it.
 */
#ifndef EXO_FAKESCRIBE_STATS_H
#define EXO_FAKESCRIBE_STATS_H

#include <stdint.h>

struct metrics;

enum fsst {
	FS_SESSIONS, /* upgrades accepted */
	FS_SESSIONS_STARTED, /* session_started sent */
	FS_REJECTED_AUTH, /* auth_error sent */
	FS_REJECTED_INVALID, /* invalid_request sent */
	FS_IDLE_CLOSES, /* closed after 15 s without audio */
	FS_TIME_LIMITS, /* session_time_limit_exceeded sent */
	FS_CHUNKS, /* input_audio_chunk messages */
	FS_AUDIO_MS, /* audio received */
	FS_COMMIT_REQUESTS, /* commit:true received */
	FS_PREVIOUS_TEXTS, /* first chunks with previous_text */
	FS_PARTIALS, /* partial_transcript sent (quirks included) */
	FS_COMMITS, /* committed_transcript sent with text */
	FS_COMMITS_EMPTY, /* committed_transcript sent without text */
	FS_TIMESTAMPED, /* committed_transcript_with_timestamps sent */
	FS_INPUT_ERRORS, /* input_error sent */
	FS_CLOSED_1000, /* the client closed with 1000 */
	FS_CLOSED_OTHER, /* the client closed with another code */
	FS_DROPPED, /* the socket went without a close frame */
	FS_N
};

struct fsstats;

int  fsstats_alloc(struct fsstats **out, struct metrics *m);
void fsstats_free(struct fsstats *s);

void    fsstats_add(struct fsstats *s, enum fsst c, int64_t n);
int64_t fsstats_get(struct fsstats *s, enum fsst c);
/* Open sessions. */
void fsstats_active(struct fsstats *s, int delta);

/* A protocol violation (kind: snake_case literal or a string that lives
 * as long as s). */
void     fsstats_violation(struct fsstats *s, const char *kind);
void     fsstats_warning(struct fsstats *s, const char *kind);
uint64_t fsstats_violations(struct fsstats *s);

/* The last query and previous_text seen (copied). */
void fsstats_query(struct fsstats *s, const char *query);
void fsstats_previous_text(struct fsstats *s, const char *text);

/* The /stats document (malloc'd, caller frees), or NULL. */
char *fsstats_json(struct fsstats *s);

#endif
