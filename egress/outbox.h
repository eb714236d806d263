/*
 * outbox.h - the durable webhook outbox: one SQLite file (outbox.db, WAL).
 *
 * Every webhook event is committed here before anything else happens to
 * it, with a delivery id (128 random bits as 32 hex digits) that every
 * retry reuses. An event leaves the table when it is delivered (deleted)
 * or dead-lettered (moved to dead_letter, with the reason). Delivery is
 * in order per call: only the oldest remaining event of a call (its
 * "head") is ever due. A small calls table remembers, per call, the last
 * sequence number used and whether call.started / call.ended were
 * queued, so a restarted egress neither repeats a call.started nor
 * reuses a seq.
 *
 * A struct outbox is one SQLite connection: use it from one thread only.
 * Two connections (the event loop's and the delivery thread's) may share
 * a file; SQLite's locking and a busy timeout serialise their writes.
 * Times are wall clock µs, passed in (tests inject them).
 */
#ifndef EXO_OUTBOX_H
#define EXO_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOX_FILE "outbox.db"
#define OUTBOX_ID_LEN 33 /* 32 hex digits and a NUL */
#define OUTBOX_SID_MAX 128 /* ids kept per call, with the NUL */

struct outbox;

/* Opens (creating if needed) the database at path. sync_full: fsync
 * every commit (survives power loss; costs a disk flush per event);
 * otherwise WAL with synchronous=NORMAL (survives any crash of the
 * process; a power loss may lose the last commits): see outbox.c.
 * Returns 0, or an errno value with err filled. The caller frees with
 * outbox_close. */
int  outbox_open(struct outbox **out, const char *path, bool sync_full,
     char *err, size_t errlen);
void outbox_close(struct outbox *ob);

/* What a call has queued so far (all zero for a call never seen). */
struct outbox_call {
	uint64_t last_seq;
	bool     started; /* its call.started is queued (or sent) */
	bool     ended; /* its call.ended is queued (or sent) */
	uint64_t started_us; /* as given with OUTBOX_STARTS */
	uint64_t updated_us; /* the last event's now_us */
	/* As given with OUTBOX_STARTS ("" if not, or longer than kept). */
	char call_sid[OUTBOX_SID_MAX];
	char account_sid[OUTBOX_SID_MAX];
	char persona[OUTBOX_SID_MAX];
};
int outbox_call_get(
    struct outbox *ob, const char *call, struct outbox_call *c);

#define OUTBOX_STARTS 1u /* this event is the call's call.started */
#define OUTBOX_ENDS 2u /* this event is the call's call.ended */

struct outbox_new {
	const char *call; /* the key events are ordered by (stream_sid) */
	uint64_t    seq;
	const char *event; /* "call.started", ... */
	const char *body;
	unsigned    flags; /* OUTBOX_STARTS, OUTBOX_ENDS */
	uint64_t    started_us; /* with OUTBOX_STARTS: the call's start */
	uint64_t    now_us;
	/* With OUTBOX_STARTS: kept in the call's record (may be NULL). */
	const char *call_sid;
	const char *account_sid;
	const char *persona;
};

/* Commits one event (and the call's new state) in one transaction, due
 * at once. Fills delivery (may be NULL) with its id. Returns 0, or an
 * errno value (EIO for a database error: the event is not queued). */
int outbox_enqueue(struct outbox *ob, const struct outbox_new *ev,
    char delivery[OUTBOX_ID_LEN]);

/* An event read back. Strings are malloc'd: outbox_event_clear frees
 * them. */
struct outbox_event {
	int64_t  id;
	char    *call;
	uint64_t seq;
	char    *event;
	char    *body;
	char     delivery[OUTBOX_ID_LEN];
	uint64_t created_us;
	unsigned attempts;
	uint64_t next_us;
};
void outbox_event_clear(struct outbox_event *e);

/* Fills evs with up to max events that are due now (next_us <= now_us),
 * each the head of its call, oldest first, skipping the ids in skip (the
 * ones being delivered). *next_us (may be NULL) gets the earliest
 * next_us among the heads looked at that are not due yet (UINT64_MAX if
 * none; only the oldest few hundred calls' heads are looked at, so sleep
 * at most a second on it). Returns 0 with *n set, or EIO/ENOMEM. */
int outbox_due(struct outbox *ob, uint64_t now_us, const int64_t *skip,
    size_t nskip, struct outbox_event *evs, size_t max, size_t *n,
    uint64_t *next_us);

/* Delivered: the event leaves the outbox. Returns 0 or EIO. */
int outbox_delivered(struct outbox *ob, int64_t id);

/* A failed attempt: attempts + 1, next attempt at next_us, error kept
 * (truncated to 500 bytes). Returns 0 or EIO. */
int outbox_failed(
    struct outbox *ob, int64_t id, uint64_t next_us, const char *error);

/* The delay before the next attempt after `attempts` failed ones:
 * base * 2^(attempts-1), capped at max, then "equal jitter": half of it
 * fixed, the other half scaled by rnd / 2^32. */
uint64_t outbox_backoff_us(
    unsigned attempts, uint64_t base_us, uint64_t max_us, uint32_t rnd);

/* Makes every waiting event due at now_us (the frontend is back: retry
 * the backlog at once rather than after each event's backoff). Returns 0
 * or EIO. */
int outbox_retry_now(struct outbox *ob, uint64_t now_us);

/* Moves every event created before now_us - max_age_us to dead_letter
 * with the given reason. *moved (may be NULL) gets how many. Returns 0 or
 * EIO. */
int outbox_expire(struct outbox *ob, uint64_t now_us, uint64_t max_age_us,
    const char *reason, size_t *moved);

/* Rows in events and in dead_letter. Returns 0 or EIO. */
int outbox_counts(struct outbox *ob, uint64_t *backlog, uint64_t *dead);

/* Forgets calls that have no events left and were last touched before
 * ended_before_us (their call.ended is queued) or before any_before_us
 * (ended or not: egress never heard their end). A live call's row must
 * outlive any restart of egress, or a re-announced call would start over
 * with call.started and seq 1. Returns 0 or EIO. */
int outbox_prune_calls(
    struct outbox *ob, uint64_t ended_before_us, uint64_t any_before_us);

#endif
