/*
 * outbox_test.c - ordering per call, backoff, dead letters, reopening,
 * and a writer killed mid-stream.
 */
#include "outbox.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char dir[] = "/tmp/outbox_test.XXXXXX";
static char path[256];
static int  made; /* dir exists (made on first use: tests run alone too) */

/* A fresh database file per test. */
static struct outbox *
fresh(void)
{
	struct outbox *ob = NULL;
	char           err[256];
	static int     n;

	if (!made)
		made = mkdtemp(dir) != NULL;
	snprintf(path, sizeof(path), "%s/t%d.db", dir, ++n);
	if (outbox_open(&ob, path, false, err, sizeof(err)))
		fprintf(stderr, "  open: %s\n", err);
	return ob;
}

static int
put(struct outbox *ob, const char *call, uint64_t seq, uint64_t now, char *id)
{
	char              body[64];
	struct outbox_new ev = { .call = call,
		.seq                   = seq,
		.event                 = "dtmf",
		.body                  = body,
		.now_us                = now };

	snprintf(body, sizeof(body), "{\"call\":\"%s\",\"seq\":%llu}", call,
	    (unsigned long long)seq);
	if (seq == 1) {
		ev.event       = "call.started";
		ev.flags       = OUTBOX_STARTS;
		ev.started_us  = now;
		ev.call_sid    = "CA-";
		ev.account_sid = "AC";
		ev.persona     = NULL;
	}
	return outbox_enqueue(ob, &ev, id);
}

static void
clear_all(struct outbox_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		outbox_event_clear(&e[i]);
}

static int
test_order_per_call(void)
{
	struct outbox      *ob = fresh();
	struct outbox_event e[8];
	size_t              n;
	uint64_t            next;
	int                 rc = 1;

	TEST_ASSERT(ob);
	for (uint64_t s = 1; s <= 3; s++)
		TEST_EQ(put(ob, "A", s, 100 + s, NULL), 0);
	TEST_EQ(put(ob, "B", 1, 200, NULL), 0);
	TEST_EQ(put(ob, "B", 2, 201, NULL), 0);

	/* Only each call's head is due. */
	TEST_EQ(outbox_due(ob, 1000, NULL, 0, e, 8, &n, &next), 0);
	TEST_EQ(n, 2);
	TEST_STREQ(e[0].call, "A");
	TEST_EQ(e[0].seq, 1);
	TEST_STREQ(e[0].event, "call.started");
	TEST_STREQ(e[0].body, "{\"call\":\"A\",\"seq\":1}");
	TEST_EQ(e[0].created_us, 101);
	TEST_EQ(e[0].attempts, 0);
	TEST_STREQ(e[1].call, "B");
	TEST_EQ(e[1].seq, 1);
	TEST_EQ(next, UINT64_MAX);

	/* A's head fails and waits: A's later events wait behind it. */
	int64_t a1 = e[0].id, b1 = e[1].id;
	clear_all(e, n);
	TEST_EQ(outbox_failed(ob, a1, 5000, "HTTP 503"), 0);
	TEST_EQ(outbox_due(ob, 1000, NULL, 0, e, 8, &n, &next), 0);
	TEST_EQ(n, 1);
	TEST_STREQ(e[0].call, "B");
	TEST_EQ(next, 5000);
	clear_all(e, n);

	/* An event being delivered is skipped, and holds its call back. */
	TEST_EQ(outbox_due(ob, 1000, &b1, 1, e, 8, &n, NULL), 0);
	TEST_EQ(n, 0);
	TEST_EQ(outbox_delivered(ob, b1), 0);
	TEST_EQ(outbox_due(ob, 1000, NULL, 0, e, 8, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_STREQ(e[0].call, "B");
	TEST_EQ(e[0].seq, 2);
	TEST_EQ(outbox_delivered(ob, e[0].id), 0);
	clear_all(e, n);

	/* A is due again at 5000, with its attempt counted. */
	TEST_EQ(outbox_due(ob, 4999, NULL, 0, e, 8, &n, NULL), 0);
	TEST_EQ(n, 0);
	TEST_EQ(outbox_due(ob, 5000, NULL, 0, e, 8, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_EQ(e[0].seq, 1);
	TEST_EQ(e[0].attempts, 1);
	TEST_EQ(outbox_delivered(ob, e[0].id), 0);
	clear_all(e, n);
	for (uint64_t s = 2; s <= 3; s++) {
		TEST_EQ(outbox_due(ob, 5000, NULL, 0, e, 8, &n, NULL), 0);
		TEST_EQ(n, 1);
		TEST_EQ(e[0].seq, s);
		TEST_EQ(outbox_delivered(ob, e[0].id), 0);
		clear_all(e, n);
	}
	uint64_t backlog, dead;
	TEST_EQ(outbox_counts(ob, &backlog, &dead), 0);
	TEST_EQ(backlog, 0);
	TEST_EQ(dead, 0);
	rc = 0;
	outbox_close(ob);
	return rc;
}

static int
test_max_and_ids(void)
{
	struct outbox      *ob = fresh();
	struct outbox_event e[4];
	char                ids[6][OUTBOX_ID_LEN];
	size_t              n;

	TEST_ASSERT(ob);
	for (int i = 0; i < 6; i++) {
		char call[8];
		snprintf(call, sizeof(call), "C%d", i);
		TEST_EQ(put(ob, call, 1, 10, ids[i]), 0);
		TEST_EQ(strlen(ids[i]), 32);
		TEST_EQ(strspn(ids[i], "0123456789abcdef"), 32);
		for (int j = 0; j < i; j++)
			TEST_ASSERT(strcmp(ids[i], ids[j]));
	}
	/* At most max, oldest first, carrying the ids they were given. */
	TEST_EQ(outbox_due(ob, 10, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 4);
	for (int i = 0; i < 4; i++)
		TEST_STREQ(e[i].delivery, ids[i]);
	clear_all(e, n);
	outbox_close(ob);
	return 0;
}

static int
test_backoff(void)
{
	const uint64_t base = 1000, max = 60000;

	/* rnd 0: half the delay; rnd at its top: (almost) all of it. */
	TEST_EQ(outbox_backoff_us(1, base, max, 0), 500);
	TEST_EQ(outbox_backoff_us(1, base, max, UINT32_MAX), 999);
	TEST_EQ(outbox_backoff_us(2, base, max, 0), 1000);
	TEST_EQ(outbox_backoff_us(3, base, max, 0), 2000);
	TEST_EQ(outbox_backoff_us(3, base, max, 1u << 31), 3000);
	/* Capped, however many attempts. */
	TEST_EQ(outbox_backoff_us(7, base, max, 0), 30000);
	TEST_EQ(outbox_backoff_us(60, base, max, 0), 30000);
	TEST_EQ(outbox_backoff_us(1000000, base, max, UINT32_MAX), 59999);
	/* Growing with the attempts for any fixed rnd. */
	for (unsigned a = 1; a < 20; a++)
		TEST_ASSERT(outbox_backoff_us(a + 1, base, max, 12345)
		    >= outbox_backoff_us(a, base, max, 12345));
	return 0;
}

static int
test_dead_letter(void)
{
	struct outbox      *ob = fresh();
	struct outbox_event e[4];
	size_t              n, moved;
	uint64_t            backlog, dead;

	TEST_ASSERT(ob);
	TEST_EQ(put(ob, "A", 1, 1000, NULL), 0);
	TEST_EQ(put(ob, "A", 2, 2000, NULL), 0);
	TEST_EQ(put(ob, "A", 3, 9000, NULL), 0);
	TEST_EQ(outbox_due(ob, 1000, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_EQ(outbox_failed(ob, e[0].id, 99999, "HTTP 500"), 0);
	clear_all(e, n);

	/* Older than 7000 µs at 10000: the first two go, in one step. */
	TEST_EQ(outbox_expire(ob, 10000, 7000, "max age", &moved), 0);
	TEST_EQ(moved, 2);
	TEST_EQ(outbox_counts(ob, &backlog, &dead), 0);
	TEST_EQ(backlog, 1);
	TEST_EQ(dead, 2);
	/* Nothing else is old enough; the call's next event is due. */
	TEST_EQ(outbox_expire(ob, 10000, 7000, "max age", &moved), 0);
	TEST_EQ(moved, 0);
	TEST_EQ(outbox_due(ob, 10000, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_EQ(e[0].seq, 3);
	clear_all(e, n);
	/* A max age longer than time itself moves nothing. */
	TEST_EQ(outbox_expire(ob, 10, 7000, "max age", &moved), 0);
	TEST_EQ(moved, 0);
	outbox_close(ob);

	/* The dead letters keep what the frontend never got. */
	sqlite3      *db;
	sqlite3_stmt *st;
	char          row[256];
	TEST_EQ(sqlite3_open(path, &db), SQLITE_OK);
	TEST_EQ(sqlite3_prepare_v2(db,
	            "SELECT seq, attempts, coalesce(last_error, '-'), reason, "
	            "dead_us, length(delivery) FROM dead_letter ORDER BY id",
	            -1, &st, NULL),
	    SQLITE_OK);
	const char *want[]
	    = { "1 1 HTTP 500 max age 10000 32", "2 0 - max age 10000 32" };
	for (int i = 0; i < 2; i++) {
		TEST_EQ(sqlite3_step(st), SQLITE_ROW);
		snprintf(row, sizeof(row), "%lld %d %s %s %lld %d",
		    sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    (const char *)sqlite3_column_text(st, 3),
		    sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5));
		TEST_STREQ(row, want[i]);
	}
	TEST_EQ(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}

static int
test_reopen(void)
{
	struct outbox      *ob = fresh();
	struct outbox_event e[4];
	struct outbox_call  c;
	char                id1[OUTBOX_ID_LEN], id2[OUTBOX_ID_LEN], err[256];
	size_t              n;

	TEST_ASSERT(ob);
	TEST_EQ(put(ob, "A", 1, 100, id1), 0);
	TEST_EQ(put(ob, "A", 2, 200, id2), 0);
	TEST_EQ(outbox_due(ob, 300, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_EQ(outbox_failed(ob, e[0].id, 400, "timeout"), 0);
	clear_all(e, n);
	outbox_close(ob);

	ob = NULL;
	TEST_EQ(outbox_open(&ob, path, false, err, sizeof(err)), 0);
	TEST_EQ(outbox_call_get(ob, "A", &c), 0);
	TEST_EQ(c.last_seq, 2);
	TEST_ASSERT(c.started);
	TEST_ASSERT(!c.ended);
	TEST_EQ(c.started_us, 100);
	TEST_EQ(c.updated_us, 200);
	TEST_STREQ(c.call_sid, "CA-");
	TEST_STREQ(c.account_sid, "AC");
	TEST_STREQ(c.persona, "");
	TEST_EQ(outbox_call_get(ob, "nobody", &c), 0);
	TEST_EQ(c.last_seq, 0);
	TEST_ASSERT(!c.started);

	/* The same events, ids and attempts; still in order. */
	TEST_EQ(outbox_due(ob, 400, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_STREQ(e[0].delivery, id1);
	TEST_EQ(e[0].attempts, 1);
	TEST_EQ(outbox_delivered(ob, e[0].id), 0);
	clear_all(e, n);
	TEST_EQ(outbox_due(ob, 400, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 1);
	TEST_STREQ(e[0].delivery, id2);
	TEST_EQ(e[0].seq, 2);
	clear_all(e, n);
	outbox_close(ob);
	return 0;
}

static int
test_retry_now_and_prune(void)
{
	struct outbox      *ob = fresh();
	struct outbox_event e[4];
	struct outbox_call  c;
	struct outbox_new   end = { .call = "A",
		  .seq                    = 2,
		  .event                  = "call.ended",
		  .body                   = "{}",
		  .flags                  = OUTBOX_ENDS,
		  .now_us                 = 300 };
	size_t              n;

	TEST_ASSERT(ob);
	TEST_EQ(put(ob, "A", 1, 100, NULL), 0);
	TEST_EQ(put(ob, "B", 1, 100, NULL), 0);
	TEST_EQ(outbox_due(ob, 100, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 2);
	TEST_EQ(outbox_failed(ob, e[0].id, 1000000, "x"), 0);
	TEST_EQ(outbox_failed(ob, e[1].id, 2000000, "x"), 0);
	clear_all(e, n);
	TEST_EQ(outbox_due(ob, 200, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 0);
	TEST_EQ(outbox_retry_now(ob, 200), 0);
	TEST_EQ(outbox_due(ob, 200, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(n, 2);
	TEST_EQ(outbox_delivered(ob, e[0].id), 0);
	TEST_EQ(outbox_delivered(ob, e[1].id), 0);
	clear_all(e, n);

	/* A ends; B does not. Pruning keeps calls with events left, and a
	 * call not known to have ended until the longer age. */
	TEST_EQ(outbox_enqueue(ob, &end, NULL), 0);
	TEST_EQ(outbox_prune_calls(ob, 1000, 50), 0);
	TEST_EQ(outbox_call_get(ob, "A", &c), 0);
	TEST_ASSERT(c.ended && c.started && c.last_seq == 2);
	TEST_EQ(outbox_due(ob, 300, NULL, 0, e, 4, &n, NULL), 0);
	TEST_EQ(outbox_delivered(ob, e[0].id), 0);
	clear_all(e, n);
	TEST_EQ(outbox_prune_calls(ob, 1000, 50), 0);
	TEST_EQ(outbox_call_get(ob, "A", &c), 0);
	TEST_ASSERT(!c.started && c.last_seq == 0);
	TEST_EQ(outbox_call_get(ob, "B", &c), 0);
	TEST_ASSERT(c.started);
	TEST_EQ(outbox_prune_calls(ob, 1000, 150), 0);
	TEST_EQ(outbox_call_get(ob, "B", &c), 0);
	TEST_ASSERT(!c.started);
	outbox_close(ob);
	return 0;
}

/* A child enqueues as fast as it can and reports each committed seq on a
 * pipe; it is killed with SIGKILL after some commits. Every event it
 * reported must be there after reopening, in order, and the file must
 * pass SQLite's integrity check. */
static int
test_killed_writer(void)
{
	struct outbox *ob = fresh();
	int            p[2];
	pid_t          pid;
	uint64_t       acked = 0, got;
	char           err[256];

	TEST_ASSERT(ob);
	outbox_close(ob);
	TEST_EQ(pipe(p), 0);
	pid = fork();
	TEST_ASSERT(pid >= 0);
	if (pid == 0) {
		struct outbox *w = NULL;
		close(p[0]);
		if (outbox_open(&w, path, false, err, sizeof(err)))
			_exit(1);
		for (uint64_t s = 1;; s++) {
			if (put(w, "K", s, s, NULL))
				_exit(1);
			if (write(p[1], &s, sizeof(s)) != sizeof(s))
				_exit(1);
		}
	}
	close(p[1]);
	while (acked < 300 && read(p[0], &got, sizeof(got)) == sizeof(got))
		acked = got;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	TEST_ASSERT(acked >= 300);

	ob = NULL;
	TEST_EQ(outbox_open(&ob, path, false, err, sizeof(err)), 0);
	struct outbox_call c;
	TEST_EQ(outbox_call_get(ob, "K", &c), 0);
	TEST_ASSERT(c.last_seq >= acked);
	uint64_t backlog;
	TEST_EQ(outbox_counts(ob, &backlog, NULL), 0);
	TEST_EQ(backlog, c.last_seq);
	/* Delivered one by one, they come in seq order without a gap. */
	for (uint64_t s = 1; s <= backlog; s++) {
		struct outbox_event e;
		size_t              n;
		TEST_EQ(
		    outbox_due(ob, UINT64_MAX >> 2, NULL, 0, &e, 1, &n, NULL),
		    0);
		TEST_EQ(n, 1);
		TEST_EQ(e.seq, s);
		TEST_EQ(outbox_delivered(ob, e.id), 0);
		outbox_event_clear(&e);
	}
	outbox_close(ob);
	return 0;
}

static int
test_open_errors(void)
{
	struct outbox *ob       = NULL;
	char           err[256] = "";

	TEST_ASSERT(outbox_open(&ob, "/nonexistent/dir/outbox.db", false, err,
	                sizeof(err))
	    != 0);
	TEST_ASSERT(ob == NULL);
	TEST_ASSERT(strstr(err, "/nonexistent/dir/outbox.db") != NULL);
	return 0;
}

static int
teardown(void)
{
	char cmd[300];

	if (!made)
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	TEST_EQ(system(cmd), 0);
	return 0;
}

TEST_MAIN(TEST(test_order_per_call), TEST(test_max_and_ids),
    TEST(test_backoff), TEST(test_dead_letter), TEST(test_reopen),
    TEST(test_retry_now_and_prune), TEST(test_killed_writer),
    TEST(test_open_errors), TEST(teardown))
