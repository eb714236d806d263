/*
 * main.c - exoplex-transcoder: all of exoplex's DSP.
 *
 * Caller PCM from ingress is resampled to 24 kHz, Opus-encoded and paged
 * into one Ogg stream per PersonaPlex session for egress; PersonaPlex's
 * Ogg Opus from egress is demuxed, decoded and resampled back to the
 * call's rate for ingress (loop.c, tcall.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "bus.h"
#include "codec.h"
#include "config.h"
#include "exitdog.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "resample.h"
#include "schedpol.h"
#include "shards.h"

#define EXIT_BOUND_MS 2000 /* for closing the buses, normally < 10 ms */

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct ready_ctx {
	struct bus     *ingress;
	struct bus     *egress;
	struct metrics *metrics;
	struct metric  *calls;
};

/* Ready once the loop runs; a missing peer is normal (it may restart),
 * so the peers only show in the detail. Runs on the admin thread. */
static int
ready(void *arg, char *detail, size_t len)
{
	struct ready_ctx *r = arg;

	snprintf(detail, len, "ingress %s, egress %s, %lld calls",
	    bus_peers(r->ingress) ? "connected" : "not connected",
	    bus_peers(r->egress) ? "connected" : "not connected",
	    (long long)metric_get(r->calls));
	return 1;
}

int
main(int argc, char **argv)
{
	struct cfg_common cc;
	struct cfg_opt    opts[CFG_COMMON_N + 8];
	long             complexity = 0, bitrate = 0, idle_s = 0, grace_ms = 0;
	long             threads = 0, max_wait_ms = 0;
	const char      *opus_rate = NULL, *per_page = NULL;
	char             err[512], url_in[512], url_eg[512], engine[32];
	struct log       lg;
	struct metrics  *metrics = NULL;
	struct admin    *admin   = NULL;
	struct bus      *bus_in = NULL, *bus_eg = NULL;
	struct loop     *loop   = NULL;
	struct shards   *shards = NULL;
	struct ready_ctx rc     = { 0 };
	int              status = 1, n, rv;

	n         = (int)cfg_common_opts(opts, &cc, "127.0.0.1:9101");
	opts[n++] = (struct cfg_opt) { .flag = "opus-complexity",
		.env                         = "EXOPLEX_OPUS_COMPLEXITY",
		.def                         = "5",
		.type                        = CFG_INT,
		.dst                         = &complexity,
		.min                         = 0,
		.max                         = 10,
		.help = "Opus encoder complexity, 0 (cheapest) to 10" };
	opts[n++] = (struct cfg_opt) { .flag = "opus-bitrate",
		.env                         = "EXOPLEX_OPUS_BITRATE",
		.def                         = "24000",
		.type                        = CFG_INT,
		.dst                         = &bitrate,
		.min                         = 6000,
		.max                         = 510000,
		.help = "Opus encoder bit rate toward PersonaPlex, bit/s" };
	opts[n++] = (struct cfg_opt) { .flag = "opus-rate",
		.env                         = "EXOPLEX_OPUS_RATE",
		.def                         = "24000",
		.type                        = CFG_ENUM,
		.dst                         = &opus_rate,
		.choices                     = "24000|call",
		.help
		= "Opus rate of the caller's audio toward PersonaPlex: 24000, or call "
		  "(the call's own rate: no resampling, less CPU; "
		  "docs/performance.md)" };
	opts[n++] = (struct cfg_opt) { .flag = "opus-frames-per-page",
		.env                         = "EXOPLEX_OPUS_FRAMES_PER_PAGE",
		.def                         = "2",
		.type                        = CFG_ENUM,
		.dst                         = &per_page,
		.choices                     = "1|2|4",
		.help
		= "20 ms Opus frames per uplink Ogg page: 2 as the browser "
		  "client sends; 4, one page per 80 ms PersonaPlex step, "
		  "costs least (docs/performance.md)" };
	opts[n++] = (struct cfg_opt) { .flag = "call-idle-s",
		.env                         = "EXOPLEX_CALL_IDLE_S",
		.def                         = "60",
		.type                        = CFG_INT,
		.dst                         = &idle_s,
		.min                         = 1,
		.max                         = 86400,
		.help = "free a call after this many seconds without frames" };
	opts[n++] = (struct cfg_opt) { .flag = "ingress-grace-ms",
		.env                         = "EXOPLEX_INGRESS_GRACE_MS",
		.def                         = "3000",
		.type                        = CFG_INT,
		.dst                         = &grace_ms,
		.min                         = 100,
		.max                         = 600000,
		.help
		= "when ingress disconnects (or a new one connects), "
		  "free its calls not announced again within this time" };
	opts[n++] = (struct cfg_opt) { .flag = "threads",
		.env                         = "EXOPLEX_TRANSCODER_THREADS",
		.def                         = "0",
		.type                        = CFG_INT,
		.dst                         = &threads,
		.min                         = 0,
		.max                         = SHARDS_MAX,
		.help = "threads the calls are spread over (one carries about "
		        "100 calls at complexity 5); 0 = one per online CPU" };
	opts[n++] = (struct cfg_opt) { .flag = "max-wait-ms",
		.env  = "EXOPLEX_TRANSCODER_MAX_WAIT_MS",
		.def  = "1000",
		.type = CFG_INT,
		.dst  = &max_wait_ms,
		.min  = 0,
		.max  = 600000,
		.help = "caller audio that waited longer than this for a "
		        "thread is dropped, not encoded late (overload); "
		        "0 = never" };
	rv = cfg_parse(opts, (size_t)n, argc, argv, "exoplex-transcoder", err,
	    sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "exoplex-transcoder: %s\n", err);
		return 2;
	}
	if (log_init(&lg, "transcoder", cc.log_format, cc.log_level) != 0) {
		fprintf(stderr, "exoplex-transcoder: bad log settings\n");
		return 2;
	}
	/* Before any thread starts: they inherit it (schedpol.h). */
	schedpol_apply(cc.sched_policy, &lg);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	LOGI(&lg, NULL,
	    "starting: soxr engine: %s; opus complexity %ld, %ld bit/s, at "
	    "%s, %s frames per page",
	    resample_engine(engine, sizeof(engine)), complexity, bitrate,
	    strcmp(opus_rate, "call") ? "24000 Hz" : "the call's rate",
	    per_page);

	if (metrics_alloc(&metrics, "exoplex_") != 0) {
		LOGE(&lg, NULL, "out of memory");
		goto out;
	}
	struct bus_opts bo = { .link = "transcoder",
		.listen              = true,
		.self                = "transcoder",
		.tap                 = cc.bus_tap,
		.hold_us             = (unsigned)cc.bus_hold_us,
		.hold_max_us         = (unsigned)cc.bus_hold_max_us,
		.metrics             = metrics,
		.log                 = &lg,
		.url = cfg_bus_url(&cc, cc.bus_transcoder, "transcoder",
		    url_in, sizeof(url_in)) };
	if (bus_open(&bus_in, &bo) != 0)
		goto out;
	bo.link   = "egress";
	bo.listen = false;
	bo.url    = cfg_bus_url(
	       &cc, cc.bus_egress, "egress", url_eg, sizeof(url_eg));
	if (bus_open(&bus_eg, &bo) != 0)
		goto out;

	rc                   = (struct ready_ctx) { .ingress = bus_in,
		                  .egress                    = bus_eg,
		                  .metrics                   = metrics,
		                  .calls = metrics_gauge(metrics, "calls_active",
		                      "Calls the transcoder holds a pipeline for.", NULL) };
	struct admin_opts ao = { .addr = cc.admin,
		.metrics               = metrics,
		.log                   = &lg,
		.ready                 = ready,
		.arg                   = &rc };
	if (admin_start(&admin, &ao) != 0)
		goto out;

	struct loop_opts lo = { .log = &lg,
		.metrics             = metrics,
		.ingress             = bus_in,
		.egress              = bus_eg,
		.admin               = admin,
		.complexity          = (int)complexity,
		.bitrate             = (int)bitrate,
		.opus_call_rate      = !strcmp(opus_rate, "call"),
		.frames_per_page     = (unsigned)atoi(per_page),
		.idle_s              = (unsigned)idle_s,
		.ingress_grace_ms    = (unsigned)grace_ms };
	if (threads == 0)
		threads = sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;
	if (threads > SHARDS_MAX)
		threads = SHARDS_MAX;
	/* One thread: the loop runs on this one, as it always did. */
	if (threads == 1 && loop_alloc(&loop, &lo) != 0) {
		LOGE(&lg, NULL, "out of memory");
		goto out;
	}
	if (threads > 1
	    && (rv = shards_alloc(&shards,
	            &(struct shards_opts) { .loop = lo,
	                .n                        = (unsigned)threads,
	                .max_wait_ms              = (unsigned)max_wait_ms }))
	        != 0) {
		LOGE(&lg, NULL, "cannot start %ld threads: %s", threads,
		    strerror(rv));
		goto out;
	}
	LOGI(&lg, NULL, "calls spread over %ld thread%s", threads,
	    threads > 1 ? "s" : "");
	LOGI(&lg, NULL, "running");
	while (!stop_flag)
		if (shards)
			shards_turn(shards, 20);
		else
			loop_turn(loop, 20);
	LOGI(&lg, NULL, "stopping: %lld calls open",
	    (long long)metric_get(rc.calls));
	status = 0;
out:
	shards_free(shards);
	loop_free(loop);
	admin_stop(admin);
	/* Calls are over; NNG 1.5.2 can hang closing (exitdog.h). */
	exitdog_arm(&lg, EXIT_BOUND_MS, "closing the buses", status);
	bus_close(bus_eg);
	bus_close(bus_in);
	bus_lib_fini();
	metrics_free(metrics);
	return status;
}
