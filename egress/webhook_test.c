/*
 * webhook_test.c - signatures, the headers setting, the breaker, and
 * delivery against the webhook sink on loopback (retries, order per call,
 * signatures, restarts, the breaker, the flush at stop).
 */
#include "webhook.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "sink.h"
#include "test.h"

#define SECRET "It's a Secret to Everybody"

static char       dir[] = "/tmp/webhook_test.XXXXXX";
static struct log lg;
static int        made;

/* The temporary directory and the logger, made on first use so a single
 * test can be run by name. */
static const char *
base(void)
{
	if (!made) {
		made = mkdtemp(dir) != NULL;
		log_init(&lg, "webhook_test", "text",
		    getenv("TEST_LOG") ? getenv("TEST_LOG") : "error");
	}
	return dir;
}

/* ---- pure parts ------------------------------------------------------- */

static int
test_sign(void)
{
	char sig[WEBHOOK_SIG_LEN];
	char key[21];

	/* RFC 4231 test cases 1 and 2. */
	memset(key, 0x0b, 20);
	key[20] = 0;
	webhook_sign(key, "Hi There", 8, sig);
	TEST_STREQ(sig,
	    "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da"
	    "726e9376c2e32cff7");
	webhook_sign("Jefe", "what do ya want for nothing?", 28, sig);
	TEST_STREQ(sig,
	    "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739"
	    "839dec58b964ec3843");
	/* GitHub's documented example (same scheme, same header form). */
	webhook_sign(SECRET, "Hello, World!", 13, sig);
	TEST_STREQ(sig,
	    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22"
	    "c46f4379c8b043e17");
	return 0;
}

static int
hdr(const char *spec, const char *want)
{
	char buf[512], err[256] = "";
	int  rc
	    = webhook_headers_parse(spec, buf, sizeof(buf), err, sizeof(err));

	if (rc || strcmp(buf, want)) {
		fprintf(stderr, "  '%s': rc %d (%s), got '%s'\n",
		    spec ? spec : "(null)", rc, err, buf);
		return 1;
	}
	return 0;
}

static int
hdr_bad(const char *spec, const char *in_err)
{
	char buf[512], err[256] = "";
	int  rc
	    = webhook_headers_parse(spec, buf, sizeof(buf), err, sizeof(err));

	if (rc != EINVAL || !strstr(err, in_err)) {
		fprintf(stderr, "  '%s': rc %d, err '%s', wanted '%s'\n",
		    spec ? spec : "(null)", rc, err, in_err);
		return 1;
	}
	return 0;
}

static int
test_headers(void)
{
	/* Supabase's REST API: key, bearer, and no body back. */
	TEST_EQ(hdr("apikey: KEY;;Authorization: Bearer KEY;;Prefer: "
	            "return=minimal",
	            "apikey: KEY\nAuthorization: Bearer KEY\nPrefer: "
	            "return=minimal\n"),
	    0);
	/* Newlines (CRLF too), blank entries, spaces around. */
	TEST_EQ(hdr("  X-A :  1 \r\n\n;;X-B:two words\n",
	            "X-A: 1\nX-B: two words\n"),
	    0);
	/* A value may hold ':' and ';'. */
	TEST_EQ(hdr("X-T: a:b;c", "X-T: a:b;c\n"), 0);
	TEST_EQ(hdr("", ""), 0);
	TEST_EQ(hdr(NULL, ""), 0);

	TEST_EQ(hdr_bad("NoColon", "header 1 is not"), 0);
	TEST_EQ(hdr_bad("X-A: 1;;: v", "header 2 has no name"), 0);
	TEST_EQ(hdr_bad("Bad Name: v", "not an HTTP token"), 0);
	TEST_EQ(hdr_bad("content-type: text/plain", "set by exoplex"), 0);
	TEST_EQ(hdr_bad("X-Exoplex-Event: x", "set by exoplex"), 0);
	TEST_EQ(hdr_bad("Host: evil", "set by exoplex"), 0);
	TEST_EQ(hdr_bad("X-Empty:", "has no value"), 0);
	/* Errors never show a value: values are secrets. */
	char buf[512], err[256] = "";
	TEST_EQ(webhook_headers_parse("Authorization: Bearer s3cr\x01t", buf,
	            sizeof(buf), err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "control character"));
	TEST_ASSERT(!strstr(err, "s3cr"));
	TEST_EQ(webhook_headers_parse(
	            "X-A: 1234567890", buf, 10, err, sizeof(err)),
	    E2BIG);
	TEST_EQ(webhook_check_headers("X-A 1", err, sizeof(err)), EINVAL);
	TEST_EQ(webhook_check_headers("X-A: 1", err, sizeof(err)), 0);

	/* From a file. */
	char  path[256];
	FILE *f;
	snprintf(path, sizeof(path), "%s/headers", base());
	TEST_ASSERT((f = fopen(path, "w")));
	fputs("apikey: K\nAuthorization: Bearer K\n", f);
	fclose(f);
	char spec[260];
	snprintf(spec, sizeof(spec), "@%s", path);
	TEST_EQ(hdr(spec, "apikey: K\nAuthorization: Bearer K\n"), 0);
	TEST_EQ(webhook_headers_parse(
	            "@/nonexistent/h", buf, sizeof(buf), err, sizeof(err)),
	    ENOENT);
	TEST_ASSERT(strstr(err, "/nonexistent/h"));
	return 0;
}

static int
test_url(void)
{
	char err[256];

	TEST_EQ(
	    webhook_check_url("http://127.0.0.1:8787/hooks", err, sizeof(err)),
	    0);
	TEST_EQ(webhook_check_url(
	            "https://x.supabase.co/rest/v1/events", err, sizeof(err)),
	    0);
	TEST_EQ(webhook_check_url("ftp://x/", err, sizeof(err)), EINVAL);
	TEST_EQ(webhook_check_url("http://", err, sizeof(err)), EINVAL);
	TEST_EQ(webhook_check_url("http:///path", err, sizeof(err)), EINVAL);
	TEST_EQ(webhook_check_url("http://a b/", err, sizeof(err)), EINVAL);
	TEST_EQ(webhook_check_url("x.example.com", err, sizeof(err)), EINVAL);
	return 0;
}

static int
test_breaker(void)
{
	struct wh_breaker b;

	wh_breaker_init(&b, 3, 1000);
	TEST_EQ(wh_breaker_room(&b, 0, 5), SIZE_MAX);
	/* Two failures, a success: the run starts over. */
	TEST_ASSERT(!wh_breaker_done(&b, false, 10));
	TEST_ASSERT(!wh_breaker_done(&b, false, 20));
	TEST_ASSERT(!wh_breaker_done(&b, true, 30));
	TEST_EQ(b.state, WH_CLOSED);
	TEST_ASSERT(!wh_breaker_done(&b, false, 40));
	TEST_ASSERT(!wh_breaker_done(&b, false, 50));
	TEST_EQ(wh_breaker_room(&b, 55, 0), SIZE_MAX);
	/* The third in a row opens it until 60 + 1000. */
	TEST_ASSERT(!wh_breaker_done(&b, false, 60));
	TEST_EQ(b.state, WH_OPEN);
	TEST_EQ(wh_breaker_room(&b, 61, 0), 0);
	TEST_EQ(wh_breaker_room(&b, 1059, 0), 0);
	/* Then one probe, and only while nothing else is in flight. */
	TEST_EQ(wh_breaker_room(&b, 1060, 1), 0);
	TEST_EQ(b.state, WH_HALF_OPEN);
	TEST_EQ(wh_breaker_room(&b, 1060, 0), 1);
	/* The probe fails: open for another interval from now. */
	TEST_ASSERT(!wh_breaker_done(&b, false, 1500));
	TEST_EQ(b.state, WH_OPEN);
	TEST_EQ(wh_breaker_room(&b, 2499, 0), 0);
	TEST_EQ(wh_breaker_room(&b, 2500, 0), 1);
	/* The next probe succeeds: closed, and the caller is told. */
	TEST_ASSERT(wh_breaker_done(&b, true, 2600));
	TEST_EQ(b.state, WH_CLOSED);
	TEST_EQ(wh_breaker_room(&b, 2600, 3), SIZE_MAX);
	TEST_ASSERT(!wh_breaker_done(&b, true, 2700));
	/* A late success from a request started before it opened closes it
	 * too: the frontend answered. */
	for (int i = 0; i < 3; i++)
		wh_breaker_done(&b, false, 3000);
	TEST_EQ(b.state, WH_OPEN);
	TEST_ASSERT(wh_breaker_done(&b, true, 3001));
	TEST_EQ(b.state, WH_CLOSED);
	return 0;
}

/* ---- against the sink ------------------------------------------------- */

#define REC_MAX 512

struct rec {
	unsigned status;
	char     event[24];
	char     delivery[40];
	char     sid[16];
	uint64_t seq;
	int      sigok;
};

struct seen {
	pthread_mutex_t mu;
	struct rec      r[REC_MAX];
	size_t          n;
};

static void
on_request(void *arg, const struct sink_request *q)
{
	struct seen *s = arg;

	pthread_mutex_lock(&s->mu);
	if (s->n < REC_MAX) {
		struct rec *r = &s->r[s->n++];
		r->status     = q->status;
		snprintf(r->event, sizeof(r->event), "%s", q->event);
		snprintf(r->delivery, sizeof(r->delivery), "%s", q->delivery);
		snprintf(r->sid, sizeof(r->sid), "%s",
		    q->stream_sid ? q->stream_sid : "");
		r->seq   = q->seq;
		r->sigok = q->signature_ok;
	}
	pthread_mutex_unlock(&s->mu);
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Waits (bounded: 30 s) until the sink has seen `events` distinct events
 * accepted. */
static int
wait_events(struct sink *k, uint64_t events)
{
	struct sink_stats st;

	for (int i = 0; i < 3000; i++) {
		sink_stats(k, &st);
		if (st.events >= events)
			return 0;
		nap_ms(10);
	}
	fprintf(stderr, "  sink saw %llu events, wanted %llu\n",
	    (unsigned long long)st.events, (unsigned long long)events);
	return 1;
}

static int
wait_requests(struct sink *k, uint64_t n)
{
	struct sink_stats st;

	for (int i = 0; i < 3000; i++) {
		sink_stats(k, &st);
		if (st.requests >= n)
			return 0;
		nap_ms(10);
	}
	return 1;
}

static void
opts_for(struct webhook_opts *o, struct metrics *m, const char *url,
    const char *state)
{
	memset(o, 0, sizeof(*o));
	o->log              = &lg;
	o->metrics          = m;
	o->url              = url;
	o->secret           = SECRET;
	o->headers          = "apikey: K;;Authorization: Bearer K";
	o->state_dir        = state;
	o->backoff_ms       = 10;
	o->backoff_max_ms   = 40;
	o->breaker_failures = 1000;
	o->breaker_probe_ms = 100;
	o->flush_ms         = 10000;
}

/* Enqueues a real dtmf body for call sid, seq. */
static int
enqueue(struct webhook *w, const char *sid, uint64_t seq)
{
	struct events_call ids = { "CA", sid, "AC", seq, 0 };
	struct events_dtmf d   = { "5", 100 };
	char              *b   = events_dtmf(&ids, &d);
	struct outbox_new  ev
	    = { .call = sid, .seq = seq, .event = EVENTS_DTMF, .body = b };
	int rc;

	if (!b)
		return ENOMEM;
	rc = webhook_enqueue(w, &ev);
	free(b);
	return rc;
}

static int
state_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", base(), name);
	return mkdir(buf, 0700);
}

static int
test_delivery(void)
{
	static struct seen  seen = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct sink        *k    = NULL;
	struct sink_opts    so   = { .secret = SECRET,
		     .fail_first             = 5,
		     .on_request             = on_request,
		     .arg                    = &seen };
	struct webhook     *w    = NULL;
	struct webhook_opts o;
	struct metrics     *m = NULL;
	struct sink_stats   st;
	char                err[256], url[64], sd[256];

	TEST_EQ(state_dir(sd, sizeof(sd), "delivery"), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks", sink_port(k));
	opts_for(&o, m, url, sd);
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), 0);

	/* Three calls, interleaved. */
	const char *calls[3] = { "SA", "SB", "SC" };
	for (uint64_t s = 1; s <= 6; s++)
		for (int c = 0; c < 3; c++)
			TEST_EQ(enqueue(w, calls[c], s), 0);
	TEST_EQ(wait_events(k, 18), 0);
	sink_stats(k, &st);
	TEST_EQ(st.out_of_order, 0);
	TEST_EQ(st.bad_signatures, 0);
	TEST_EQ(st.bad_requests, 0);
	TEST_EQ(st.delivery_reused, 0);
	TEST_EQ(st.seq_reused, 0);
	TEST_EQ(st.failed_on_demand, 5);
	TEST_EQ(st.verified, st.requests);
	TEST_EQ(st.dtmf, 18);

	/* Every failed attempt's id was later accepted: retries reuse it;
	 * and per call, nothing went out before its predecessor was
	 * accepted. */
	pthread_mutex_lock(&seen.mu);
	for (size_t i = 0; i < seen.n; i++) {
		struct rec *r = &seen.r[i];
		TEST_EQ(r->sigok, 1);
		TEST_STREQ(r->event, "dtmf");
		bool later_ok = false;
		for (size_t j = i; j < seen.n; j++)
			later_ok |= seen.r[j].status == 200
			    && !strcmp(seen.r[j].delivery, r->delivery);
		TEST_ASSERT(later_ok);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(seen.r[j].sid, r->sid)
			    && seen.r[j].seq == r->seq - 1
			    && seen.r[j].status == 200)
				goto ordered;
		TEST_EQ(r->seq, 1);
	ordered:;
	}
	pthread_mutex_unlock(&seen.mu);

	/* The backlog drains to 0 (housekeeping runs every second). */
	char state[256];
	for (int i = 0; i < 300; i++) {
		webhook_state(w, state, sizeof(state));
		if (!strcmp(state, "ok, backlog 0"))
			break;
		nap_ms(10);
	}
	TEST_STREQ(state, "ok, backlog 0");
	TEST_EQ(webhook_state(w, state, sizeof(state)), 1);
	webhook_free(w);
	sink_stop(k);

	char *txt = metrics_render(m, NULL);
	TEST_ASSERT(txt);
	TEST_ASSERT(strstr(txt, "exoplex_webhook_delivered_total 18\n"));
	TEST_ASSERT(strstr(txt, "exoplex_webhook_attempts_failed_total 5\n"));
	TEST_ASSERT(strstr(txt,
	    "exoplex_webhook_events_queued_total{event="
	    "\"dtmf\"} 18\n"));
	TEST_ASSERT(strstr(txt, "exoplex_webhook_backlog 0\n"));
	free(txt);
	metrics_free(m);
	return 0;
}

/* Events queued while the frontend is down survive the process: a new
 * webhook on the same state directory delivers them. */
static int
test_restart(void)
{
	struct sink        *k  = NULL;
	struct sink_opts    so = { .secret = SECRET };
	struct webhook     *w  = NULL;
	struct webhook_opts o;
	struct metrics     *m = NULL;
	struct sink_stats   st;
	struct outbox_call  c;
	char                err[256], url[64], sd[256], path[300];

	TEST_EQ(state_dir(sd, sizeof(sd), "restart"), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	sink_fail_now(k);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sink_port(k));
	opts_for(&o, m, url, sd);
	o.flush_ms = 100;
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), 0);
	for (uint64_t s = 1; s <= 3; s++)
		TEST_EQ(enqueue(w, "SR", s), 0);
	TEST_EQ(wait_requests(k, 2), 0);
	webhook_free(w);

	/* All three are still in the file. */
	struct outbox *ob = NULL;
	uint64_t       backlog;
	snprintf(path, sizeof(path), "%s/%s", sd, OUTBOX_FILE);
	TEST_EQ(outbox_open(&ob, path, false, err, sizeof(err)), 0);
	TEST_EQ(outbox_counts(ob, &backlog, NULL), 0);
	TEST_EQ(backlog, 3);
	outbox_close(ob);

	sink_ok_now(k);
	w = NULL;
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), 0);
	TEST_EQ(webhook_call_get(w, "SR", &c), 0);
	TEST_EQ(c.last_seq, 3);
	TEST_EQ(wait_events(k, 3), 0);
	sink_stats(k, &st);
	TEST_EQ(st.out_of_order, 0);
	TEST_EQ(st.seq_reused, 0);
	TEST_ASSERT(st.retries >= 1);
	webhook_free(w);
	sink_stop(k);
	metrics_free(m);
	return 0;
}

/* A dead frontend opens the breaker (readyz detail says so); once it
 * answers, a probe closes it and everything goes. */
static int
test_breaker_live(void)
{
	struct sink        *k  = NULL;
	struct sink_opts    so = { .secret = SECRET };
	struct webhook     *w  = NULL;
	struct webhook_opts o;
	struct metrics     *m = NULL;
	char                err[256], url[64], sd[256], state[256] = "";

	TEST_EQ(state_dir(sd, sizeof(sd), "breaker"), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	sink_fail_now(k);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sink_port(k));
	opts_for(&o, m, url, sd);
	o.breaker_failures = 2;
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), 0);
	TEST_EQ(enqueue(w, "SX", 1), 0);
	TEST_EQ(enqueue(w, "SY", 1), 0);
	int down = 0;
	for (int i = 0; i < 3000 && !down; i++) {
		down = webhook_state(w, state, sizeof(state)) == 0;
		if (!down)
			nap_ms(10);
	}
	TEST_ASSERT(down);
	TEST_ASSERT(strstr(state, "down (") && strstr(state, "HTTP 503"));
	/* Back: both events arrive and the state is ok again. */
	sink_ok_now(k);
	TEST_EQ(wait_events(k, 2), 0);
	for (int i = 0; i < 300 && !webhook_state(w, state, sizeof(state));
	     i++)
		nap_ms(10);
	TEST_EQ(webhook_state(w, state, sizeof(state)), 1);
	webhook_free(w);
	sink_stop(k);
	metrics_free(m);
	return 0;
}

/* At stop, what is due is delivered before webhook_free returns. */
static int
test_flush_at_stop(void)
{
	struct sink        *k  = NULL;
	struct sink_opts    so = { .secret = SECRET };
	struct webhook     *w  = NULL;
	struct webhook_opts o;
	struct metrics     *m = NULL;
	struct sink_stats   st;
	char                err[256], url[64], sd[256], sid[8];

	TEST_EQ(state_dir(sd, sizeof(sd), "flush"), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sink_port(k));
	opts_for(&o, m, url, sd);
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), 0);
	for (int i = 0; i < 8; i++) {
		snprintf(sid, sizeof(sid), "F%d", i);
		TEST_EQ(enqueue(w, sid, 1), 0);
		TEST_EQ(enqueue(w, sid, 2), 0);
	}
	webhook_free(w);
	sink_stats(k, &st);
	TEST_EQ(st.events, 16);
	TEST_EQ(st.out_of_order, 0);
	sink_stop(k);
	metrics_free(m);
	return 0;
}

static int
test_bad_state_dir(void)
{
	struct webhook     *w = NULL;
	struct webhook_opts o;
	struct metrics     *m        = NULL;
	char                err[256] = "";

	base();
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	opts_for(&o, m, "http://127.0.0.1:1/", "/nonexistent/state");
	TEST_ASSERT(webhook_alloc(&w, &o, err, sizeof(err)) != 0);
	TEST_ASSERT(w == NULL);
	TEST_ASSERT(strstr(err, "/nonexistent/state/outbox.db"));
	opts_for(&o, m, "http://127.0.0.1:1/", base());
	o.headers = "Content-Type: text/plain";
	TEST_EQ(webhook_alloc(&w, &o, err, sizeof(err)), EINVAL);
	metrics_free(m);
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

TEST_MAIN(TEST(test_sign), TEST(test_headers), TEST(test_url),
    TEST(test_breaker), TEST(test_delivery), TEST(test_restart),
    TEST(test_breaker_live), TEST(test_flush_at_stop),
    TEST(test_bad_state_dir), TEST(teardown))
