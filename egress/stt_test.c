/*
 * stt_test.c - STT sessions against the Scribe stand-in's own server code
 * (tools/fakescribe), served by the same lws context: one thread,
 * loopback, both ends visible.
 */
#include "stt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fsstats.h"
#include "log.h"
#include "metrics.h"
#include "scribe.h"
#include "test.h"

#define MAXT 256

struct owner {
	int     n, finals, partials, done;
	char    text[MAXT][128];
	bool    final[MAXT];
	int64_t t0[MAXT], t1[MAXT];
};

struct fix {
	struct lws_context    *ctx;
	struct lws_vhost      *client;
	struct lws_protocols   protos[2];
	struct stt_env        *env;
	struct metrics        *m, *sm;
	struct fsstats        *st;
	struct scribe         *sc;
	struct log             lg;
	lws_sorted_usec_list_t sul;
	char                   url[128];
	struct owner           o;
	struct stt            *s;
	double                 phase;
};

static void
on_transcript(void *arg, const struct stt_transcript *t)
{
	struct owner *o = arg;

	if (o->n >= MAXT)
		return;
	snprintf(o->text[o->n], sizeof(o->text[0]), "%s", t->text);
	o->final[o->n] = t->final;
	o->t0[o->n]    = t->start_ms;
	o->t1[o->n]    = t->end_ms;
	o->n++;
	if (t->final)
		o->finals++;
	else
		o->partials++;
}

static void
on_done(void *arg)
{
	((struct owner *)arg)->done++;
}

static const struct stt_cb cb = { on_transcript, on_done };

static void
wake(lws_sorted_usec_list_t *sul)
{
	struct fix *x = lws_container_of(sul, struct fix, sul);
	lws_sul_schedule(x->ctx, 0, &x->sul, wake, 5 * 1000);
}

struct fix_opts {
	struct scribe_opts  so;
	struct stt_env_opts eo;
	bool                no_server; /* the URL points at a closed port */
	const char         *host; /* in the URL; NULL = 127.0.0.1 */
	const char         *ca; /* the client trusts it (wss://) */
};

static int
fix_init(struct fix *x, struct fix_opts *fo)
{
	struct lws_context_creation_info ci;
	char                             err[256];

	memset(x, 0, sizeof(*x));
	lws_set_log_level(LLL_ERR, NULL);
	log_init(&x->lg, "stt_test", "text",
	    getenv("TEST_DEBUG") ? "debug" : "error");
	if (metrics_alloc(&x->m, "exoplex_")
	    || metrics_alloc(&x->sm, "exoplex_")
	    || fsstats_alloc(&x->st, x->sm))
		return 1;
	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS
	    | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.port = CONTEXT_PORT_NO_LISTEN;
	if (!(x->ctx = lws_create_context(&ci)))
		return 1;
	fo->so.host = "127.0.0.1";
	if (scribe_start(&x->sc, x->ctx, &fo->so, x->st, &x->lg))
		return 1;
	x->protos[0] = (struct lws_protocols) { .name = "stt",
		.callback                             = stt_lws_callback };
	memset(&ci, 0, sizeof(ci));
	ci.port                   = CONTEXT_PORT_NO_LISTEN;
	ci.vhost_name             = "client";
	ci.protocols              = x->protos;
	ci.options                = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ci.client_ssl_ca_filepath = fo->ca;
	if (!(x->client = lws_create_vhost(x->ctx, &ci)))
		return 1;
	snprintf(x->url, sizeof(x->url),
	    "%s://%s:%d/v1/speech-to-text/realtime",
	    fo->so.cert ? "wss" : "ws", fo->host ? fo->host : "127.0.0.1",
	    fo->no_server ? 1 : scribe_port(x->sc));
	fo->eo.context  = x->ctx;
	fo->eo.vhost    = x->client;
	fo->eo.protocol = "stt";
	fo->eo.log      = &x->lg;
	fo->eo.metrics  = x->m;
	fo->eo.url      = x->url;
	if (!fo->eo.api_key)
		fo->eo.api_key = "test-key";
	if (!fo->eo.backoff_min_ms)
		fo->eo.backoff_min_ms = 50;
	if (!fo->eo.backoff_max_ms)
		fo->eo.backoff_max_ms = 200;
	if (stt_env_alloc(&x->env, &fo->eo, err, sizeof(err))) {
		fprintf(stderr, "stt_env_alloc: %s\n", err);
		return 1;
	}
	lws_sul_schedule(x->ctx, 0, &x->sul, wake, 5 * 1000);
	return 0;
}

static void
fix_fini(struct fix *x)
{
	stt_env_free(x->env);
	/* A moment for the orphans' close frames. */
	for (uint64_t end = mono_us() + 100000; mono_us() < end;)
		lws_service(x->ctx, 0);
	scribe_stop(x->sc);
	lws_sul_cancel(&x->sul);
	lws_context_destroy(x->ctx);
	scribe_free(x->sc);
	fsstats_free(x->st);
	metrics_free(x->sm);
	metrics_free(x->m);
}

static void
run_for(struct fix *x, unsigned ms)
{
	uint64_t end = mono_us() + ms * 1000ull;
	while (mono_us() < end)
		lws_service(x->ctx, 0);
}

/* Services until *flag (a guard, not a timing). */
static bool
run_until(struct fix *x, const int *flag, unsigned ms)
{
	uint64_t end = mono_us() + ms * 1000ull;
	while (!*flag && mono_us() < end)
		lws_service(x->ctx, 0);
	return *flag;
}

static int64_t
metric_val(struct metrics *m, const char *series)
{
	size_t    n;
	char     *txt = metrics_render(m, &n), *p;
	long long v   = 0;
	if (!txt)
		return -1;
	for (p = txt; (p = strstr(p, series)); p++)
		if ((p == txt || p[-1] == '\n') && p[strlen(series)] == ' ') {
			v = atoll(p + strlen(series) + 1);
			break;
		}
	free(txt);
	return v;
}

/* Services until *n reaches min (a guard of 5 s, not a timing). */
static bool
run_until_n(struct fix *x, const int *n, int min)
{
	uint64_t end = mono_us() + 5000000;
	while (*n < min && mono_us() < end)
		lws_service(x->ctx, 0);
	return *n >= min;
}

/* Services until a series reaches min (a guard of 5 s, not a timing). */
static bool
run_until_metric(struct fix *x, const char *series, int64_t min)
{
	uint64_t end = mono_us() + 5000000;
	while (metric_val(x->m, series) < min && mono_us() < end)
		run_for(x, 10);
	return metric_val(x->m, series) >= min;
}

/* ms of audio in 100 ms chunks, a chunk per step_ms: a 300 Hz tone at
 * -6 dBFS, or silence. */
static void
feed_at(struct fix *x, unsigned rate, unsigned ms, bool tone, unsigned step_ms)
{
	size_t  n = rate / 10;
	int16_t pcm[4800];

	for (unsigned done = 0; done < ms; done += 100) {
		for (size_t i = 0; i < n; i++) {
			pcm[i] = tone ? (int16_t)(16000 * sin(x->phase)) : 0;
			x->phase += 2 * M_PI * 300 / rate;
		}
		stt_audio(x->s, (const uint8_t *)pcm, n * 2, 0);
		run_for(x, step_ms);
	}
}

/* At 4x real time: what pacing allows. */
static void
feed(struct fix *x, unsigned rate, unsigned ms, bool tone)
{
	feed_at(x, rate, ms, tone, 25);
}

/* The k-th final's text, or "". */
static const char *
nth_final(const struct owner *o, int k)
{
	for (int i = 0; i < o->n; i++)
		if (o->final[i] && k-- == 0)
			return o->text[i];
	return "";
}

/* No partial repeats its predecessor or the last final. */
static int
check_dedupe(const struct owner *o)
{
	const char *last = "", *commit = "";

	for (int i = 0; i < o->n; i++) {
		if (o->final[i]) {
			commit = o->text[i];
			last   = "";
			continue;
		}
		if (!strcmp(o->text[i], last) || !strcmp(o->text[i], commit))
			TEST_FAIL_("partial %d '%s' repeats", i, o->text[i]);
		last = o->text[i];
	}
	return 0;
}

static int
test_transcripts(void)
{
	struct fix      x;
	struct fix_opts fo  = { .so = { .quirks = true,
		                    .text       = "one two three four five six "
		                                   "seven eight nine ten" },
		 .eo                = { .vad_silence_s = 0.3 } };
	struct log_call ids = { "CA1", "SS1" };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, &ids, 8000, wall_us(), &cb, &x.o), 0);
	/* Two utterances, each followed by silence the VAD commits on. */
	feed(&x, 8000, 200, false);
	feed(&x, 8000, 1000, true);
	feed(&x, 8000, 1000, false);
	feed(&x, 8000, 600, true);
	feed(&x, 8000, 1500, false);
	TEST_ASSERT(run_until_n(&x, &x.o.finals, 2));
	TEST_ASSERT(x.o.partials >= 3);
	TEST_EQ(x.o.finals, 2);
	/* A word at 100 ms of speech, then one per 250 ms. */
	TEST_STREQ(nth_final(&x.o, 0), "one two three four");
	TEST_STREQ(nth_final(&x.o, 1), "five six");
	/* The stand-in repeated and echoed partials: none came through. */
	TEST_ASSERT(
	    metric_val(
	        x.m, "exoplex_egress_stt_partials_dropped_total{why=\"echo\"}")
	    >= 1);
	TEST_ASSERT(check_dedupe(&x.o) == 0);
	/* Offsets: the first final starts after the leading 200 ms and ends
	 * near the end of the first tone (1.2 s). */
	for (int i = 0; i < x.o.n; i++)
		if (x.o.final[i]) {
			TEST_ASSERT(x.o.t0[i] >= 150 && x.o.t0[i] <= 400);
			TEST_ASSERT(x.o.t1[i] >= 1000 && x.o.t1[i] <= 1500);
			break;
		}
	/* Then speech the VAD has not committed: the final commit at the
	 * end gets it, and the socket closes with 1000. */
	feed(&x, 8000, 500, true);
	/* A new owner (what outlives a call) hears the rest. */
	struct owner o2 = { 0 };
	stt_set_owner(x.s, &cb, &o2);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &o2.done, 3000));
	TEST_EQ(x.o.done, 0);
	TEST_EQ(x.o.finals, 2);
	TEST_EQ(o2.finals, 1);
	TEST_STREQ(nth_final(&o2, 0), "seven eight");
	run_for(&x, 100);
	TEST_EQ(fsstats_get(x.st, FS_COMMIT_REQUESTS), 1);
	TEST_EQ(fsstats_get(x.st, FS_CLOSED_1000), 1);
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 1);
	TEST_EQ(fsstats_violations(x.st), 0);
	TEST_EQ(fsstats_get(x.st, FS_COMMITS), x.o.finals + o2.finals);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_stt_transcripts_total{kind="
	            "\"final\"}"),
	    3);
	TEST_ASSERT(
	    metric_val(x.m, "exoplex_egress_stt_audio_sent_ms_total") >= 4700);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_sessions_active"), 0);
	TEST_EQ(stt_env_count(x.env), 0);
	fix_fini(&x);
	return 0;
}

static int
test_timestamps_one_final(void)
{
	struct fix      x;
	struct fix_opts fo = { .so = { .quirks = true },
		.eo = { .vad_silence_s = 0.3, .timestamps = true } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 16000, 0, &cb, &x.o), 0);
	for (int i = 0; i < 3; i++) {
		feed(&x, 16000, 500, true);
		feed(&x, 16000, 700, false);
	}
	TEST_ASSERT(run_until_n(&x, &x.o.finals, 3));
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	/* Both twins of every commit came; one final each. */
	TEST_EQ(fsstats_get(x.st, FS_TIMESTAMPED),
	    fsstats_get(x.st, FS_COMMITS)
	        + fsstats_get(x.st, FS_COMMITS_EMPTY));
	TEST_EQ(x.o.finals, 3);
	TEST_EQ(fsstats_get(x.st, FS_COMMITS), 3);
	TEST_EQ(fsstats_violations(x.st), 0);
	fix_fini(&x);
	return 0;
}

static int
test_bad_key(void)
{
	struct fix      x;
	struct fix_opts fo = { .so = { .api_key = "right" },
		.eo = { .api_key = "wrong", .hold_ms = 60000 } };
	struct stt     *s2;
	struct owner    o2 = { 0 };
	char            d[256];

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 1000, true);
	TEST_ASSERT(
	    run_until_metric(&x, "exoplex_egress_stt_gave_up_total", 1));
	TEST_EQ(fsstats_get(x.st, FS_REJECTED_AUTH), 1);
	TEST_EQ(metric_val(x.m,
	            "exoplex_egress_stt_errors_total{type=\"auth_error\"}"),
	    1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_gave_up_total"), 1);
	/* No hammering: not even this call retries, and a new call waits
	 * out the hold. */
	TEST_EQ(stt_open(&s2, x.env, NULL, 8000, 0, &cb, &o2), 0);
	feed(&x, 8000, 500, true);
	run_for(&x, 500);
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_sessions_total"), 1);
	stt_env_describe(x.env, d, sizeof(d));
	TEST_ASSERT(strstr(d, "auth_error") && strstr(d, "held"));
	stt_finish(x.s);
	stt_finish(s2);
	TEST_ASSERT(run_until(&x, &x.o.done, 1000));
	TEST_ASSERT(run_until(&x, &o2.done, 1000));
	TEST_EQ(x.o.n + o2.n, 0);
	fix_fini(&x);
	return 0;
}

static int
test_invalid_request(void)
{
	struct fix      x;
	struct fix_opts fo = { .eo = { .model = "scribe_realtime_v2" } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 24000, 0, &cb, &x.o), 0);
	feed(&x, 24000, 500, true);
	TEST_ASSERT(
	    run_until_metric(&x, "exoplex_egress_stt_gave_up_total", 1));
	TEST_EQ(fsstats_get(x.st, FS_REJECTED_INVALID), 1);
	TEST_EQ(
	    metric_val(x.m,
	        "exoplex_egress_stt_errors_total{type=\"invalid_request\"}"),
	    1);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_gave_up_total"), 1);
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 1);
	stt_close(x.s);
	fix_fini(&x);
	return 0;
}

static int
test_time_limit_replays(void)
{
	struct fix      x;
	struct fix_opts fo = { .so = { .session_limit_s = 1, .quirks = true },
		.eo                = { .vad_silence_s = 0.3 } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	/* A commit within the first second, then speech across the
	 * limit: the next connection replays it with previous_text. */
	feed_at(&x, 8000, 400, true, 100);
	feed_at(&x, 8000, 400, false, 100);
	TEST_ASSERT(run_until_n(&x, &x.o.finals, 1));
	feed_at(&x, 8000, 2000, true, 100);
	feed_at(&x, 8000, 1000, false, 100);
	TEST_ASSERT(fsstats_get(x.st, FS_TIME_LIMITS) >= 1);
	TEST_ASSERT(
	    metric_val(x.m, "exoplex_egress_stt_reconnects_total") >= 1);
	TEST_ASSERT(fsstats_get(x.st, FS_PREVIOUS_TEXTS) >= 1);
	TEST_ASSERT(
	    metric_val(x.m, "exoplex_egress_stt_audio_replayed_ms_total") > 0);
	TEST_ASSERT(x.o.finals >= 2);
	TEST_EQ(fsstats_violations(x.st), 0);
	TEST_ASSERT(check_dedupe(&x.o) == 0);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	fix_fini(&x);
	return 0;
}

static int
test_silence_keeps_alive(void)
{
	struct fix      x;
	struct fix_opts fo = { .so = { .idle_s = 2 } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 300, true);
	/* The call sends nothing for 3.5 s: silence fills in. */
	run_for(&x, 3500);
	TEST_EQ(fsstats_get(x.st, FS_IDLE_CLOSES), 0);
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 1);
	TEST_ASSERT(
	    metric_val(x.m, "exoplex_egress_stt_silence_filled_ms_total")
	    >= 1000);
	TEST_EQ(fsstats_violations(x.st), 0);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	fix_fini(&x);
	return 0;
}

static int
test_no_server_retries(void)
{
	struct fix      x;
	struct fix_opts fo = { .no_server = true };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 1000, true);
	TEST_ASSERT(
	    run_until_metric(&x, "exoplex_egress_stt_sessions_total", 3));
	TEST_ASSERT(metric_val(x.m,
	                "exoplex_egress_stt_disconnects_total{why="
	                "\"connect_failed\"}")
	    >= 2);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_gave_up_total"), 0);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	fix_fini(&x);
	return 0;
}

static int
test_mismatch_and_bad_path(void)
{
	struct fix      x;
	struct fix_opts fo = { .so = { .wrong_format = true } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 300, true);
	/* audio_format and sample_rate: both differ. */
	TEST_ASSERT(run_until_metric(
	    &x, "exoplex_egress_stt_config_mismatches_total", 2));
	TEST_EQ(
	    metric_val(x.m, "exoplex_egress_stt_config_mismatches_total"), 2);
	stt_close(x.s);
	fix_fini(&x);

	/* A wrong path: 404 at the upgrade, retried (not fatal). */
	memset(&fo, 0, sizeof(fo));
	TEST_EQ(fix_init(&x, &fo), 0);
	snprintf(x.url, sizeof(x.url), "ws://127.0.0.1:%d/v1/other",
	    scribe_port(x.sc));
	stt_env_free(x.env);
	fo.eo.url = x.url;
	char err[128];
	TEST_EQ(stt_env_alloc(&x.env, &fo.eo, err, sizeof(err)), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 600, true);
	TEST_ASSERT(run_until_metric(&x,
	    "exoplex_egress_stt_disconnects_total{why=\"connect_failed\"}",
	    2));
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 0);
	stt_close(x.s);
	fix_fini(&x);
	return 0;
}

/* A host name is resolved off the loop (a thread): the session works
 * through it, and a name that does not resolve is retried, not fatal. */
static int
test_host_names(void)
{
	struct fix      x;
	struct fix_opts fo
	    = { .host = "localhost", .eo = { .vad_silence_s = 0.3 } };

	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	feed(&x, 8000, 500, true);
	feed(&x, 8000, 600, false);
	TEST_ASSERT(run_until_n(&x, &x.o.finals, 1));
	TEST_EQ(fsstats_violations(x.st), 0);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	fix_fini(&x);

	memset(&fo, 0, sizeof(fo));
	fo.host = "no-such-host.invalid";
	memset(&x.o, 0, sizeof(x.o));
	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 8000, 0, &cb, &x.o), 0);
	/* A generous guard: some resolvers are slow to say no. */
	for (int i = 0; i < 4
	     && !run_until_metric(&x,
	         "exoplex_egress_stt_disconnects_total{why=\"dns_failed\"}",
	         2);
	     i++)
		;
	TEST_ASSERT(metric_val(x.m,
	                "exoplex_egress_stt_disconnects_total{why="
	                "\"dns_failed\"}")
	    >= 2);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_gave_up_total"), 0);
	TEST_EQ(metric_val(x.m, "exoplex_egress_stt_sessions_total"), 0);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	fix_fini(&x);
	return 0;
}

/* A throw-away self-signed certificate for localhost (a name, so the
 * client must connect to the resolved address yet check the name),
 * made with the openssl tool; false (test skipped) if that fails. */
static bool
make_cert(char *dir, size_t len, char *cert, char *key, size_t flen)
{
	char cmd[1024];

	snprintf(dir, len, "/tmp/stt_test.XXXXXX");
	if (!mkdtemp(dir))
		return false;
	snprintf(cert, flen, "%s/cert.pem", dir);
	snprintf(key, flen, "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
	    "/CN=localhost -addext subjectAltName=DNS:localhost -keyout "
	    "'%s' -out '%s' >/dev/null 2>&1",
	    key, cert);
	return system(cmd) == 0;
}

static int
test_wss_by_name(void)
{
	struct fix      x;
	char            dir[64], cert[128], key[128], cmd[128];
	struct fix_opts fo
	    = { .host = "localhost", .eo = { .vad_silence_s = 0.3 } };

	if (!make_cert(dir, sizeof(dir), cert, key, sizeof(cert))) {
		printf("skip test_wss_by_name: cannot make a certificate\n");
		return 0;
	}
	fo.so.cert = cert;
	fo.so.key  = key;
	fo.ca      = cert;
	TEST_EQ(fix_init(&x, &fo), 0);
	TEST_EQ(stt_open(&x.s, x.env, NULL, 16000, 0, &cb, &x.o), 0);
	feed(&x, 16000, 500, true);
	feed(&x, 16000, 600, false);
	TEST_ASSERT(run_until_n(&x, &x.o.finals, 1));
	TEST_EQ(fsstats_get(x.st, FS_SESSIONS), 1);
	stt_finish(x.s);
	TEST_ASSERT(run_until(&x, &x.o.done, 3000));
	TEST_EQ(fsstats_violations(x.st), 0);
	fix_fini(&x);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) { }
	return 0;
}

static int
test_settings(void)
{
	char err[256];

	TEST_EQ(stt_check_url(STT_DEFAULT_URL, err, sizeof(err)), 0);
	TEST_EQ(stt_check_url("ws://[::1]:9000/x", err, sizeof(err)), 0);
	TEST_ASSERT(stt_check_url("https://a/b", err, sizeof(err)));
	TEST_ASSERT(
	    stt_check_url("wss://api.elevenlabs.io", err, sizeof(err)));
	TEST_ASSERT(strstr(err, "no path"));
	TEST_ASSERT(stt_check_url("wss://a/b?model_id=x", err, sizeof(err)));
	TEST_ASSERT(strstr(err, "query"));
	TEST_ASSERT(stt_check_url("wss://a:99999/b", err, sizeof(err)));
	TEST_EQ(stt_check_vad_silence("0.3", err, sizeof(err)), 0);
	TEST_EQ(stt_check_vad_silence("3", err, sizeof(err)), 0);
	TEST_ASSERT(stt_check_vad_silence("0.29", err, sizeof(err)));
	TEST_ASSERT(stt_check_vad_silence("1s", err, sizeof(err)));
	TEST_EQ(stt_check_vad_threshold("0.4", err, sizeof(err)), 0);
	TEST_ASSERT(stt_check_vad_threshold("1", err, sizeof(err)));
	TEST_EQ(stt_check_language("", err, sizeof(err)), 0);
	TEST_EQ(stt_check_language("en", err, sizeof(err)), 0);
	TEST_EQ(stt_check_language("eng", err, sizeof(err)), 0);
	TEST_ASSERT(stt_check_language("English", err, sizeof(err)));
	TEST_ASSERT(stt_check_language("EN", err, sizeof(err)));
	return 0;
}

TEST_MAIN(TEST(test_settings), TEST(test_transcripts),
    TEST(test_timestamps_one_final), TEST(test_bad_key),
    TEST(test_invalid_request), TEST(test_time_limit_replays),
    TEST(test_silence_keeps_alive), TEST(test_no_server_retries),
    TEST(test_mismatch_and_bad_path), TEST(test_host_names),
    TEST(test_wss_by_name))
