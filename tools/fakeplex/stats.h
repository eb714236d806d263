/*
 * stats.h - what the stand-in counts, for tests: /metrics (through the
 * metrics registry) and the /stats JSON.
 *
 * Counters and gauges live in the registry (atomic, any thread). The
 * per-kind tables, the last prompts and the per-listener rows sit behind a
 * mutex, so the admin thread can render JSON while the lws thread counts.
 * Created by main; the registry must outlive it.
 */
#ifndef EXO_FAKEPLEX_STATS_H
#define EXO_FAKEPLEX_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;

enum stats_counter {
	ST_SESSIONS_STARTED = 0, /* /api/chat upgrades accepted */
	ST_SESSIONS_WAITED, /* had to wait for the lock */
	ST_SESSIONS_REJECTED, /* closed for a bad query */
	ST_SESSIONS_DROPPED, /* dropped on purpose (--drop-after-ms) */
	ST_SESSIONS_REFUSED, /* aborted on purpose (--refuse) */
	ST_PROMPT_OVERWRITTEN, /* ran with a later connection's prompt */
	ST_HANDSHAKES, /* 0x00 sent */
	ST_MSGS_IN, /* WebSocket messages received */
	ST_BYTES_IN, /* Ogg bytes (after 0x01) fed to the reader */
	ST_PAGES_IN,
	ST_PACKETS_IN,
	ST_PACKETS_DECODED,
	ST_SAMPLES_IN, /* decoded, 24 kHz */
	ST_STEPS, /* 80 ms model steps */
	ST_PAGES_OUT, /* queued, headers included */
	ST_TEXT_OUT,
	ST_OUT_DROPPED, /* output queue full: message dropped */
	ST_COUNTER_N
};

enum stats_gauge {
	ST_SESSIONS_ACTIVE = 0, /* open /api/chat sockets */
	ST_SESSIONS_WAITING, /* of those, waiting for the lock */
	ST_MAX_CONCURRENT, /* most open sockets one listener ever had */
	ST_GAUGE_N
};

struct stats;

/* Registers the series in m. The caller frees with stats_free. Returns 0
 * or ENOMEM. */
int  stats_alloc(struct stats **out, struct metrics *m);
void stats_free(struct stats *s);

void stats_add(struct stats *s, enum stats_counter c, int64_t n);
void stats_gauge_add(struct stats *s, enum stats_gauge g, int64_t n);
/* Raises the gauge to v if v is higher. */
void    stats_gauge_max(struct stats *s, enum stats_gauge g, int64_t v);
int64_t stats_get(struct stats *s, enum stats_counter c);

/* Something a correct bridge never does (kind: snake_case, a literal or
 * a string that outlives s). Counted in total and by kind. */
void stats_violation(struct stats *s, const char *kind);
/* Something RFC 7845 asks for but the real server does not check. */
void     stats_warning(struct stats *s, const char *kind);
uint64_t stats_violations(struct stats *s, const char *kind);
uint64_t stats_violations_total(struct stats *s);

/* The last query seen (copies the strings; NULL = absent). */
void stats_query(struct stats *s, const char *voice, const char *text);

/* Per-listener rows: add one per listener at start (returns its index),
 * then update it when its state changes. */
int  stats_server_add(struct stats *s, const char *addr);
void stats_server_set(struct stats *s, int idx, int open, int waiting,
    bool busy, uint64_t conversations, int max_open);

/* The /stats document (malloc'd, caller frees), or NULL on ENOMEM. */
char *stats_json(struct stats *s);

#endif
