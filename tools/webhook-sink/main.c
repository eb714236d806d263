/*
 * exoplex-webhook-sink - a strict webhook receiver for tests (sink.h).
 *
 * Takes exoplex's webhook POSTs, verifies their signatures with
 * --secret, checks headers and bodies, writes every request as a JSON
 * line to --out, fails on demand (--fail-first, --fail-for-ms, and
 * /control/... at run time) and reports what it saw at /stats.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "sink.h"

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	stop_flag = 1;
}

int
main(int argc, char **argv)
{
	struct sink_opts so = { 0 };
	struct cfg_opt   opts[8];
	const char      *level = NULL, *format = NULL;
	size_t           n = 0;
	char             err[512];
	struct log       lg;
	struct sink     *s  = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	int              rc;

	// clang-format off
	opts[n++] = (struct cfg_opt) { "listen", NULL, "127.0.0.1:8787",
	    CFG_STR, &so.listen, 0, 0, NULL, false,
	    "host:port to take webhooks on (port 0 = any free port)", NULL };
	opts[n++] = (struct cfg_opt) { "secret", "EXOPLEX_WEBHOOK_SECRET",
	    NULL, CFG_STR, &so.secret, 0, 0, NULL, true,
	    "HMAC-SHA256 key: verify X-Exoplex-Signature (unset: not "
	    "checked)", NULL };
	opts[n++] = (struct cfg_opt) { "out", NULL, NULL, CFG_STR, &so.out, 0,
	    0, NULL, false, "append every request to this file as a JSON "
	    "line", NULL };
	opts[n++] = (struct cfg_opt) { "fail-first", NULL, "0", CFG_INT,
	    &so.fail_first, 0, 1000000000, NULL, false,
	    "answer 500 to the first N webhook requests", NULL };
	opts[n++] = (struct cfg_opt) { "fail-for-ms", NULL, "0", CFG_INT,
	    &so.fail_for_ms, 0, 1000000000, NULL, false,
	    "answer 503 for M ms: from the start, or after the --fail-first "
	    "failures", NULL };
	opts[n++] = (struct cfg_opt) { "max-body", NULL, "1048576", CFG_INT,
	    &so.max_body, 1, 1 << 30, NULL, false,
	    "largest body taken, in bytes", NULL };
	opts[n++] = (struct cfg_opt) { "log-level", NULL, "info", CFG_ENUM,
	    &level, 0, 0, "debug|info|warn|error", false, "log level", NULL };
	opts[n++] = (struct cfg_opt) { "log-format", NULL, "text", CFG_ENUM,
	    &format, 0, 0, "text|json", false, "log format", NULL };
	// clang-format on

	rc = cfg_parse(
	    opts, n, argc, argv, "exoplex-webhook-sink", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc) {
		fprintf(stderr, "exoplex-webhook-sink: %s\n", err);
		return 2;
	}
	log_init(&lg, "webhook-sink", format, level);
	if ((rc = sink_start(&s, &so, err, sizeof(err)))) {
		LOGE(&lg, NULL, "%s", err);
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	LOGI(&lg, NULL,
	    "listening on port %d (stats: /stats; control: /control/fail-now, "
	    "/control/ok-now, /control/fail-for?ms=M, "
	    "/control/fail-next?n=N)%s",
	    sink_port(s), so.secret ? "; verifying signatures" : "");
	while (!stop_flag) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	char *st = sink_stats_json(s);
	LOGI(&lg, NULL, "stopping: %s", st ? st : "");
	free(st);
	sink_stop(s);
	return 0;
}
