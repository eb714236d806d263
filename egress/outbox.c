/*
 * outbox.c - the webhook outbox on SQLite.
 *
 * Durability: WAL journal. With synchronous=NORMAL (the default) a commit
 * is a write(2) into the WAL and no fsync: once outbox_enqueue returns,
 * the event survives the egress process being killed (the kernel holds
 * the pages), which is the failure the design is about (the supervisor
 * restarts egress; the host keeps running). Only an OS crash or power
 * loss can lose the commits since the last checkpoint, and that also
 * ends every live call. synchronous=FULL (EXOPLEX_OUTBOX_SYNC=full) adds
 * an fsync per commit, on the event loop's thread, which carries every
 * call's audio: a slow disk would then stall calls, so it is opt-in.
 *
 * Ordering: ids grow with every insert (AUTOINCREMENT), and one call's
 * events are inserted in seq order by one thread, so "the head of a call"
 * is its lowest remaining id.
 */
#include "outbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <sqlite3.h>

#define ERROR_MAX 500
#define HEADS_EXTRA 256 /* heads looked at beyond those wanted */
#define BUSY_MS 5000

enum {
	ST_CALL_GET,
	ST_CALL_PUT,
	ST_INSERT,
	ST_HEADS,
	ST_DELETE,
	ST_FAILED,
	ST_RETRY_NOW,
	ST_DEAD_COPY,
	ST_DEAD_DELETE,
	ST_COUNT_EVENTS,
	ST_COUNT_DEAD,
	ST_PRUNE,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_N
};

static const char *const sql[ST_N] = {
	[ST_CALL_GET] = "SELECT last_seq, started, ended, started_us, "
	                "call_sid, account_sid, persona, updated_us "
	                "FROM calls WHERE call = ?1",
	/* The ids are kept from call.started: enough to end the call
	 * (call.ended) if a restarted egress hears only of its end. */
	[ST_CALL_PUT] = "INSERT INTO calls (call, last_seq, started, ended, "
	                "started_us, updated_us, call_sid, account_sid, "
	                "persona) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
	                "ON CONFLICT (call) DO UPDATE SET "
	                "last_seq = max(last_seq, excluded.last_seq), "
	                "started = started OR excluded.started, "
	                "ended = ended OR excluded.ended, "
	                "started_us = CASE WHEN excluded.started "
	                "THEN excluded.started_us ELSE started_us END, "
	                "call_sid = CASE WHEN excluded.started "
	                "THEN excluded.call_sid ELSE call_sid END, "
	                "account_sid = CASE WHEN excluded.started "
	                "THEN excluded.account_sid ELSE account_sid END, "
	                "persona = CASE WHEN excluded.started "
	                "THEN excluded.persona ELSE persona END, "
	                "updated_us = excluded.updated_us",
	[ST_INSERT] = "INSERT INTO events (call, seq, event, body, delivery, "
	              "created_us, attempts, next_us) VALUES (?1, ?2, ?3, "
	              "?4, ?5, ?6, 0, ?6)",
	/* The oldest event of each call, oldest calls first. */
	[ST_HEADS]       = "SELECT id, call, seq, event, body, delivery, "
	                   "created_us, attempts, next_us FROM events AS e WHERE "
	                   "NOT EXISTS (SELECT 1 FROM events AS p WHERE p.call = "
	                   "e.call AND p.id < e.id) ORDER BY id LIMIT ?1",
	[ST_DELETE]      = "DELETE FROM events WHERE id = ?1",
	[ST_FAILED]      = "UPDATE events SET attempts = attempts + 1, "
	                   "next_us = ?2, last_error = ?3 WHERE id = ?1",
	[ST_RETRY_NOW]   = "UPDATE events SET next_us = ?1 WHERE next_us > ?1",
	[ST_DEAD_COPY]   = "INSERT INTO dead_letter (id, call, seq, event, "
	                   "body, delivery, created_us, attempts, last_error, "
	                   "dead_us, reason) SELECT id, call, seq, event, body, "
	                   "delivery, created_us, attempts, last_error, ?2, ?3 "
	                   "FROM events WHERE created_us < ?1",
	[ST_DEAD_DELETE] = "DELETE FROM events WHERE created_us < ?1",
	[ST_COUNT_EVENTS] = "SELECT count(*) FROM events",
	[ST_COUNT_DEAD]   = "SELECT count(*) FROM dead_letter",
	[ST_PRUNE]    = "DELETE FROM calls WHERE (ended AND updated_us < ?1 "
	                "OR updated_us < ?2) "
	                "AND NOT EXISTS (SELECT 1 FROM events AS e WHERE "
	                "e.call = calls.call)",
	[ST_BEGIN]    = "BEGIN IMMEDIATE",
	[ST_COMMIT]   = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

static const char schema[]
    = "CREATE TABLE IF NOT EXISTS events ("
      " id INTEGER PRIMARY KEY AUTOINCREMENT,"
      " call TEXT NOT NULL,"
      " seq INTEGER NOT NULL,"
      " event TEXT NOT NULL,"
      " body TEXT NOT NULL,"
      " delivery TEXT NOT NULL UNIQUE,"
      " created_us INTEGER NOT NULL,"
      " attempts INTEGER NOT NULL DEFAULT 0,"
      " next_us INTEGER NOT NULL,"
      " last_error TEXT);"
      "CREATE INDEX IF NOT EXISTS events_by_call ON events (call, id);"
      "CREATE INDEX IF NOT EXISTS events_by_age ON events (created_us);"
      "CREATE TABLE IF NOT EXISTS dead_letter ("
      " id INTEGER PRIMARY KEY,"
      " call TEXT NOT NULL,"
      " seq INTEGER NOT NULL,"
      " event TEXT NOT NULL,"
      " body TEXT NOT NULL,"
      " delivery TEXT NOT NULL,"
      " created_us INTEGER NOT NULL,"
      " attempts INTEGER NOT NULL,"
      " last_error TEXT,"
      " dead_us INTEGER NOT NULL,"
      " reason TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS calls ("
      " call TEXT PRIMARY KEY,"
      " last_seq INTEGER NOT NULL,"
      " started INTEGER NOT NULL,"
      " ended INTEGER NOT NULL,"
      " started_us INTEGER NOT NULL,"
      " updated_us INTEGER NOT NULL,"
      " call_sid TEXT,"
      " account_sid TEXT,"
      " persona TEXT);"
      "PRAGMA user_version = 1;";

struct outbox {
	sqlite3      *db;
	sqlite3_stmt *st[ST_N];
};

/* Waits for the other connection's write to finish. SQLite's default
 * handler sleeps 1, 2, 5, 10... ms; the writes here take microseconds and
 * one side is the event loop, so poll finely first. Gives up after ~5 s. */
static int
busy(void *arg, int n)
{
	if (n >= 50 + BUSY_MS)
		return 0;
	usleep(n < 50 ? 100 : 1000);
	return 1;
}

static int
fail(char *err, size_t errlen, int rc, const char *what, sqlite3 *db)
{
	if (err)
		snprintf(err, errlen, "%s: %s", what,
		    db ? sqlite3_errmsg(db) : "out of memory");
	return rc;
}

int
outbox_open(struct outbox **out, const char *path, bool sync_full, char *err,
    size_t errlen)
{
	struct outbox *ob;
	char          *msg = NULL;
	int            rc  = EIO;

	*out = NULL;
	if (!(ob = calloc(1, sizeof(*ob))))
		return fail(err, errlen, ENOMEM, path, NULL);
	if (sqlite3_open_v2(path, &ob->db,
	        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
	            | SQLITE_OPEN_NOMUTEX,
	        NULL)
	    != SQLITE_OK) {
		fail(err, errlen, EIO, path, ob->db);
		goto out;
	}
	sqlite3_busy_handler(ob->db, busy, NULL);
	/* journal_mode answers with a row; WAL must really be on. */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(
	        ob->db, "PRAGMA journal_mode = WAL", -1, &st, NULL)
	        != SQLITE_OK
	    || sqlite3_step(st) != SQLITE_ROW
	    || strcmp((const char *)sqlite3_column_text(st, 0), "wal")) {
		sqlite3_finalize(st);
		fail(err, errlen, EIO, "cannot use a WAL journal", ob->db);
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_exec(ob->db,
	        sync_full ? "PRAGMA synchronous = FULL"
	                  : "PRAGMA synchronous = NORMAL",
	        NULL, NULL, &msg)
	        != SQLITE_OK
	    || sqlite3_exec(ob->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
		if (err)
			snprintf(err, errlen, "%s: %s", path,
			    msg ? msg : "cannot create the schema");
		sqlite3_free(msg);
		goto out;
	}
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(ob->db, sql[i], -1,
		        SQLITE_PREPARE_PERSISTENT, &ob->st[i], NULL)
		    != SQLITE_OK) {
			fail(err, errlen, EIO, sql[i], ob->db);
			goto out;
		}
	*out = ob;
	ob   = NULL;
	rc   = 0;
out:
	outbox_close(ob);
	return rc;
}

void
outbox_close(struct outbox *ob)
{
	if (!ob)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(ob->st[i]);
	sqlite3_close(ob->db);
	free(ob);
}

/* A prepared statement, reset and with its bindings cleared. */
static sqlite3_stmt *
stmt(struct outbox *ob, int i)
{
	sqlite3_reset(ob->st[i]);
	sqlite3_clear_bindings(ob->st[i]);
	return ob->st[i];
}

/* Runs a statement that returns no rows. */
static int
run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : EIO;
}

static int
count(struct outbox *ob, int i, uint64_t *v)
{
	sqlite3_stmt *st = stmt(ob, i);
	int           rc = EIO;

	if (sqlite3_step(st) == SQLITE_ROW) {
		*v = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_reset(st);
	return rc;
}

static void
col_copy(char dst[OUTBOX_SID_MAX], sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	snprintf(dst, OUTBOX_SID_MAX, "%s", s ? s : "");
}

int
outbox_call_get(struct outbox *ob, const char *call, struct outbox_call *c)
{
	sqlite3_stmt *st = stmt(ob, ST_CALL_GET);
	int           rc;

	memset(c, 0, sizeof(*c));
	sqlite3_bind_text(st, 1, call, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->last_seq   = (uint64_t)sqlite3_column_int64(st, 0);
		c->started    = sqlite3_column_int(st, 1) != 0;
		c->ended      = sqlite3_column_int(st, 2) != 0;
		c->started_us = (uint64_t)sqlite3_column_int64(st, 3);
		col_copy(c->call_sid, st, 4);
		col_copy(c->account_sid, st, 5);
		col_copy(c->persona, st, 6);
		c->updated_us = (uint64_t)sqlite3_column_int64(st, 7);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : EIO;
}

static int
new_id(char id[OUTBOX_ID_LEN])
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return EIO;
	for (int i = 0; i < 16; i++)
		snprintf(id + 2 * i, 3, "%02x", r[i]);
	return 0;
}

int
outbox_enqueue(struct outbox *ob, const struct outbox_new *ev,
    char delivery[OUTBOX_ID_LEN])
{
	char          id[OUTBOX_ID_LEN];
	sqlite3_stmt *st;
	int64_t       now = (int64_t)ev->now_us;

	if (new_id(id))
		return EIO;
	if (run(stmt(ob, ST_BEGIN)))
		return EIO;
	st = stmt(ob, ST_INSERT);
	sqlite3_bind_text(st, 1, ev->call, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)ev->seq);
	sqlite3_bind_text(st, 3, ev->event, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ev->body, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	if (run(st))
		goto fail;
	st = stmt(ob, ST_CALL_PUT);
	sqlite3_bind_text(st, 1, ev->call, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)ev->seq);
	sqlite3_bind_int(st, 3, (ev->flags & OUTBOX_STARTS) != 0);
	sqlite3_bind_int(st, 4, (ev->flags & OUTBOX_ENDS) != 0);
	sqlite3_bind_int64(st, 5, (int64_t)ev->started_us);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_text(st, 7, ev->call_sid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, ev->account_sid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, ev->persona, -1, SQLITE_STATIC);
	if (run(st) || run(stmt(ob, ST_COMMIT)))
		goto fail;
	if (delivery)
		memcpy(delivery, id, OUTBOX_ID_LEN);
	return 0;
fail:
	run(stmt(ob, ST_ROLLBACK));
	return EIO;
}

void
outbox_event_clear(struct outbox_event *e)
{
	free(e->call);
	free(e->event);
	free(e->body);
	memset(e, 0, sizeof(*e));
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return strdup(s ? s : "");
}

static bool
skipped(int64_t id, const int64_t *skip, size_t nskip)
{
	for (size_t i = 0; i < nskip; i++)
		if (skip[i] == id)
			return true;
	return false;
}

int
outbox_due(struct outbox *ob, uint64_t now_us, const int64_t *skip,
    size_t nskip, struct outbox_event *evs, size_t max, size_t *n,
    uint64_t *next_us)
{
	sqlite3_stmt *st   = stmt(ob, ST_HEADS);
	uint64_t      next = UINT64_MAX;
	int           rc;

	*n = 0;
	sqlite3_bind_int64(st, 1, (int64_t)(max + nskip + HEADS_EXTRA));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t  id = sqlite3_column_int64(st, 0);
		uint64_t at = (uint64_t)sqlite3_column_int64(st, 8);

		if (skipped(id, skip, nskip))
			continue;
		if (at > now_us) {
			if (at < next)
				next = at;
			continue;
		}
		if (*n == max)
			continue;
		struct outbox_event *e = &evs[*n];
		const char *d = (const char *)sqlite3_column_text(st, 5);
		memset(e, 0, sizeof(*e));
		e->id         = id;
		e->call       = col_dup(st, 1);
		e->seq        = (uint64_t)sqlite3_column_int64(st, 2);
		e->event      = col_dup(st, 3);
		e->body       = col_dup(st, 4);
		e->created_us = (uint64_t)sqlite3_column_int64(st, 6);
		e->attempts   = (unsigned)sqlite3_column_int(st, 7);
		e->next_us    = at;
		snprintf(e->delivery, sizeof(e->delivery), "%s", d ? d : "");
		(*n)++;
		if (!e->call || !e->event || !e->body) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < *n; i++)
			outbox_event_clear(&evs[i]);
		*n = 0;
		return rc == SQLITE_NOMEM ? ENOMEM : EIO;
	}
	if (next_us)
		*next_us = next;
	return 0;
}

int
outbox_delivered(struct outbox *ob, int64_t id)
{
	sqlite3_stmt *st = stmt(ob, ST_DELETE);

	sqlite3_bind_int64(st, 1, id);
	return run(st);
}

int
outbox_failed(
    struct outbox *ob, int64_t id, uint64_t next_us, const char *error)
{
	sqlite3_stmt *st = stmt(ob, ST_FAILED);
	size_t        n  = error ? strnlen(error, ERROR_MAX) : 0;

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)next_us);
	if (error)
		sqlite3_bind_text(st, 3, error, (int)n, SQLITE_STATIC);
	return run(st);
}

uint64_t
outbox_backoff_us(
    unsigned attempts, uint64_t base_us, uint64_t max_us, uint32_t rnd)
{
	uint64_t d = base_us;

	for (unsigned i = 1; i < attempts && d < max_us; i++)
		d *= 2;
	if (d > max_us)
		d = max_us;
	return d / 2 + (uint64_t)((double)(d - d / 2) * rnd / 4294967296.0);
}

int
outbox_retry_now(struct outbox *ob, uint64_t now_us)
{
	sqlite3_stmt *st = stmt(ob, ST_RETRY_NOW);

	sqlite3_bind_int64(st, 1, (int64_t)now_us);
	return run(st);
}

int
outbox_expire(struct outbox *ob, uint64_t now_us, uint64_t max_age_us,
    const char *reason, size_t *moved)
{
	int64_t       before = (int64_t)(now_us - max_age_us);
	sqlite3_stmt *st;

	if (moved)
		*moved = 0;
	if (now_us < max_age_us)
		return 0;
	if (run(stmt(ob, ST_BEGIN)))
		return EIO;
	st = stmt(ob, ST_DEAD_COPY);
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int64(st, 2, (int64_t)now_us);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	if (run(st))
		goto fail;
	st = stmt(ob, ST_DEAD_DELETE);
	sqlite3_bind_int64(st, 1, before);
	if (run(st))
		goto fail;
	if (moved)
		*moved = (size_t)sqlite3_changes(ob->db);
	if (run(stmt(ob, ST_COMMIT)))
		goto fail;
	return 0;
fail:
	run(stmt(ob, ST_ROLLBACK));
	if (moved)
		*moved = 0;
	return EIO;
}

int
outbox_counts(struct outbox *ob, uint64_t *backlog, uint64_t *dead)
{
	if (backlog && count(ob, ST_COUNT_EVENTS, backlog))
		return EIO;
	if (dead && count(ob, ST_COUNT_DEAD, dead))
		return EIO;
	return 0;
}

int
outbox_prune_calls(
    struct outbox *ob, uint64_t ended_before_us, uint64_t any_before_us)
{
	sqlite3_stmt *st = stmt(ob, ST_PRUNE);

	sqlite3_bind_int64(st, 1, (int64_t)ended_before_us);
	sqlite3_bind_int64(st, 2, (int64_t)any_before_us);
	return run(st);
}
