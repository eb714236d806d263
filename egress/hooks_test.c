/*
 * hooks_test.c - a call's events as the frontend gets them (through the
 * outbox and the sink on loopback): numbering, bodies, a restart in the
 * middle of a call, refused calls, webhooks off.
 */
#include "hooks.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "test.h"

#define SECRET "k"
#define MAXB 64

static char       dir[] = "/tmp/hooks_test.XXXXXX";
static int        made;
static struct log lg;

struct got {
	pthread_mutex_t mu;
	char           *body[MAXB];
	size_t          n;
};

static void
on_request(void *arg, const struct sink_request *r)
{
	struct got *g = arg;

	if (r->status != 200 || r->duplicate)
		return;
	pthread_mutex_lock(&g->mu);
	if (g->n < MAXB)
		g->body[g->n++] = strndup(r->body, r->body_len);
	pthread_mutex_unlock(&g->mu);
}

static void
got_clear(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->body[i]);
	g->n = 0;
}

static const char *
base(void)
{
	if (!made) {
		made = mkdtemp(dir) != NULL;
		log_init(&lg, "hooks_test", "text",
		    getenv("TEST_LOG") ? getenv("TEST_LOG") : "error");
	}
	return dir;
}

static int
wait_n(struct got *g, size_t n)
{
	for (int i = 0; i < 3000; i++) {
		pthread_mutex_lock(&g->mu);
		size_t have = g->n;
		pthread_mutex_unlock(&g->mu);
		if (have >= n)
			return 0;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 1;
}

static void
opts(
    struct webhook_opts *o, struct metrics *m, const char *url, const char *sd)
{
	memset(o, 0, sizeof(*o));
	o->log        = &lg;
	o->metrics    = m;
	o->url        = url;
	o->secret     = SECRET;
	o->state_dir  = sd;
	o->backoff_ms = 10;
}

/* A field of body i as text ("" if absent). */
static const char *
field(struct got *g, size_t i, const char *path, char *buf, size_t len)
{
	cJSON *o = cJSON_Parse(g->body[i]), *x = o;
	char   p[128], *save                   = NULL;

	snprintf(p, sizeof(p), "%s", path);
	for (char *k = strtok_r(p, ".", &save); k && x;
	     k       = strtok_r(NULL, ".", &save))
                x = cJSON_GetObjectItemCaseSensitive(x, k);
	buf[0] = 0;
	if (cJSON_IsString(x))
		snprintf(buf, len, "%s", x->valuestring);
	else if (x) {
		char *s = cJSON_PrintUnformatted(x);
		snprintf(buf, len, "%s", s ? s : "");
		free(s);
	}
	cJSON_Delete(o);
	return buf;
}

#define F(i, path) field(&g, i, path, fb, sizeof(fb))

static Exo__CallStart
start(const char *sid, Exo__CallStart__CustomParametersEntry **kv, size_t n)
{
	Exo__CallStart cs = EXO__CALL_START__INIT;

	cs.stream_sid          = (char *)sid;
	cs.call_sid            = "CA1";
	cs.account_sid         = "AC1";
	cs.from                = "+911";
	cs.to                  = "+912";
	cs.sample_rate         = 8000;
	cs.mode                = "agent";
	cs.started_us          = wall_us() - 5000000; /* 5 s ago */
	cs.custom_parameters   = kv;
	cs.n_custom_parameters = n;
	return cs;
}

static int
test_call(void)
{
	static struct got g = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct sink_opts  so
	    = { .secret = SECRET, .on_request = on_request, .arg = &g };
	struct sink        *k = NULL;
	struct metrics     *m = NULL;
	struct hooks       *h = NULL;
	struct webhook_opts o;
	char                err[256], url[64], sd[256], fb[256];
	struct sink_stats   st;

	snprintf(sd, sizeof(sd), "%s/call", base());
	TEST_EQ(mkdir(sd, 0700), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sink_port(k));
	opts(&o, m, url, sd);
	TEST_EQ(hooks_alloc(&h, &o, err, sizeof(err)), 0);

	Exo__CallStart__CustomParametersEntry p1
	    = EXO__CALL_START__CUSTOM_PARAMETERS_ENTRY__INIT,
	    p2   = EXO__CALL_START__CUSTOM_PARAMETERS_ENTRY__INIT;
	p1.key   = "lang";
	p1.value = "hi";
	p2.key   = "token";
	p2.value = "s3cret";
	Exo__CallStart__CustomParametersEntry *kv[2] = { &p1, &p2 };
	Exo__CallStart                         cs    = start("S1", kv, 2);
	struct hooks_call *c = hooks_call_open(h, &cs, NULL, NULL);
	TEST_ASSERT(c);
	hooks_call_persona(c, "sales");
	hooks_call_dtmf(c, "7", 120, 0);
	hooks_call_transcript(c, "agent", "Namaste!", true,
	    hooks_call_ms(c, cs.started_us + 1500000),
	    hooks_call_ms(c, cs.started_us + 2250000));
	hooks_call_transcript(c, "caller", "hello", false, -1, -1);
	TEST_EQ(hooks_call_ms(c, 0), -1);
	TEST_EQ(hooks_call_ms(c, cs.started_us - 1000), 0);
	TEST_EQ(hooks_call_ms(NULL, cs.started_us), -1);

	/* egress restarts in the middle of the call: the re-announced call
	 * gets no second call.started and its seq goes on. */
	hooks_call_close(c);
	hooks_free(h);
	h = NULL;
	TEST_EQ(hooks_alloc(&h, &o, err, sizeof(err)), 0);
	cs.reannounce = 1;
	c             = hooks_call_open(h, &cs, "sales", NULL);
	TEST_ASSERT(c);
	hooks_call_dtmf(c, "#", 80, 0);
	struct events_counters kc = { 4.98, 3.2, 0, 2 };
	hooks_call_end(c, "callended", &kc);

	TEST_EQ(wait_n(&g, 6), 0);
	sink_stats(k, &st);
	TEST_EQ(st.out_of_order, 0);
	TEST_EQ(st.started, 1);
	TEST_EQ(st.bad_signatures, 0);
	TEST_EQ(st.bad_requests, 0);
	TEST_EQ(g.n, 6);
	const char *events[6] = { "call.started", "dtmf", "transcript",
		"transcript", "dtmf", "call.ended" };
	for (size_t i = 0; i < 6; i++) {
		char want[8];
		TEST_STREQ(F(i, "event"), events[i]);
		snprintf(want, sizeof(want), "%zu", i + 1);
		TEST_STREQ(F(i, "seq"), want);
		TEST_STREQ(F(i, "call_sid"), "CA1");
		TEST_STREQ(F(i, "stream_sid"), "S1");
		TEST_STREQ(F(i, "account_sid"), "AC1");
	}
	TEST_STREQ(F(0, "custom_parameters"), "{\"lang\":\"hi\"}");
	TEST_STREQ(F(0, "persona"), "null");
	TEST_STREQ(F(0, "mode"), "agent");
	TEST_STREQ(F(0, "sample_rate"), "8000");
	TEST_STREQ(F(1, "digit"), "7");
	TEST_STREQ(F(1, "duration_ms"), "120");
	TEST_STREQ(F(2, "speaker"), "agent");
	TEST_STREQ(F(2, "text"), "Namaste!");
	TEST_STREQ(F(2, "start_ms"), "1500");
	TEST_STREQ(F(2, "end_ms"), "2250");
	TEST_STREQ(F(3, "final"), "false");
	TEST_STREQ(F(3, "start_ms"), "null");
	TEST_STREQ(F(5, "reason"), "callended");
	TEST_STREQ(F(5, "persona"), "sales");
	TEST_STREQ(F(5, "mode"), "agent");
	TEST_STREQ(F(5, "detail"), ""); /* absent */
	TEST_STREQ(F(5, "counters.audio_in_s"), "4.98");
	TEST_STREQ(F(5, "counters.frames_dropped"), "2");
	/* The call began 5 s before: duration from the call's own start. */
	long dur = atol(F(5, "duration_ms"));
	TEST_ASSERT(dur >= 5000 && dur < 60000);
	got_clear(&g);
	hooks_free(h);
	sink_stop(k);
	metrics_free(m);
	return 0;
}

static int
test_refused_and_off(void)
{
	static struct got g = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct sink_opts  so
	    = { .secret = SECRET, .on_request = on_request, .arg = &g };
	struct sink        *k = NULL;
	struct metrics     *m = NULL;
	struct hooks       *h = NULL;
	struct webhook_opts o;
	char                err[256], url[64], sd[256], fb[256], st[128];

	snprintf(sd, sizeof(sd), "%s/refused", base());
	TEST_EQ(mkdir(sd, 0700), 0);
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	TEST_EQ(sink_start(&k, &so, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sink_port(k));
	opts(&o, m, url, sd);
	TEST_EQ(hooks_alloc(&h, &o, err, sizeof(err)), 0);
	Exo__CallStart cs    = start("S2", NULL, 0);
	cs.refused           = "no_capacity";
	struct hooks_call *c = hooks_call_open(h, &cs, NULL, NULL);
	hooks_call_end(c, "no_capacity", NULL);
	TEST_EQ(wait_n(&g, 2), 0);
	TEST_STREQ(F(0, "mode"), "refused");
	TEST_STREQ(F(1, "reason"), "no_capacity");
	TEST_STREQ(F(1, "mode"), "refused");
	TEST_STREQ(F(1, "counters.reconnects"), "0");
	TEST_ASSERT(hooks_call_find(h, "S2") == NULL); /* ended */
	TEST_ASSERT(hooks_call_find(h, "nobody") == NULL);

	/* egress restarts and hears only the end of a call it had
	 * started: call.ended from the outbox's record of it. */
	cs = start("S3", NULL, 0);
	c  = hooks_call_open(h, &cs, "p1", "transcribe");
	hooks_call_dtmf(c, "4", 50, 0);
	hooks_call_close(c);
	hooks_free(h);
	h = NULL;
	TEST_EQ(hooks_alloc(&h, &o, err, sizeof(err)), 0);
	c = hooks_call_find(h, "S3");
	TEST_ASSERT(c);
	/* Its mode comes with the end (call_stop.mode). */
	hooks_call_mode(c, "transcribe");
	hooks_call_detail(c, "stt_not_configured");
	hooks_call_end(c, "bridge_error", NULL);
	TEST_EQ(wait_n(&g, 5), 0);
	TEST_STREQ(F(4, "event"), "call.ended");
	TEST_STREQ(F(4, "seq"), "3");
	TEST_STREQ(F(4, "call_sid"), "CA1");
	TEST_STREQ(F(4, "account_sid"), "AC1");
	TEST_STREQ(F(4, "persona"), "p1");
	TEST_STREQ(F(2, "mode"), "transcribe"); /* its call.started */
	TEST_STREQ(F(4, "mode"), "transcribe");
	TEST_STREQ(F(4, "reason"), "bridge_error");
	TEST_STREQ(F(4, "detail"), "stt_not_configured");
	TEST_ASSERT(atol(F(4, "duration_ms")) >= 5000);
	hooks_state(h, st, sizeof(st));
	TEST_ASSERT(!strncmp(st, "webhooks ok", 11));
	got_clear(&g);
	hooks_free(h);
	sink_stop(k);

	/* Off: nothing is tracked, nothing breaks. */
	h = NULL;
	opts(&o, m, NULL, sd);
	TEST_EQ(hooks_alloc(&h, &o, err, sizeof(err)), 0);
	c = hooks_call_open(h, &cs, NULL, NULL);
	TEST_ASSERT(c == NULL);
	hooks_call_dtmf(c, "1", 1, 0);
	hooks_call_transcript(c, "agent", "x", true, -1, -1);
	hooks_call_end(c, "stopped", NULL);
	hooks_call_close(NULL);
	hooks_state(h, st, sizeof(st));
	TEST_STREQ(st, "webhooks off");
	hooks_free(h);
	metrics_free(m);
	return 0;
}

static int
test_settings(void)
{
	struct webhook_opts o = { 0 };
	struct cfg_opt      t[HOOKS_CFG_N];
	char                err[512];
	char *argv[] = { "x", "--webhook-url", "https://h.example/hooks",
		"--webhook-headers", "apikey: K;;Prefer: return=minimal",
		"--webhook-max-age-s", "60", "--outbox-sync", "full", NULL };

	TEST_EQ(hooks_cfg_opts(t, &o), HOOKS_CFG_N);
	TEST_EQ(cfg_parse(t, HOOKS_CFG_N, 9, argv, "x", err, sizeof(err)), 0);
	TEST_STREQ(o.url, "https://h.example/hooks");
	TEST_STREQ(o.headers, "apikey: K;;Prefer: return=minimal");
	TEST_EQ(o.max_age_s, 60);
	TEST_EQ(o.concurrency, 4);
	TEST_EQ(o.backoff_max_ms, 60000);
	TEST_STREQ(o.sync, "full");
	TEST_STREQ(o.state_dir, ".");
	TEST_ASSERT(o.secret == NULL);

	char *bad[] = { "x", "--webhook-headers", "Host: x", NULL };
	memset(&o, 0, sizeof(o));
	TEST_EQ(
	    cfg_parse(t, HOOKS_CFG_N, 3, bad, "x", err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_WEBHOOK_HEADERS"));
	char *badurl[] = { "x", "--webhook-url", "ftp://x", NULL };
	TEST_EQ(cfg_parse(t, HOOKS_CFG_N, 3, badurl, "x", err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_WEBHOOK_URL"));
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

TEST_MAIN(TEST(test_call), TEST(test_refused_and_off), TEST(test_settings),
    TEST(teardown))
