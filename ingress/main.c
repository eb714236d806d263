/*
 * main.c - exoplex-ingress: the Exotel side of exoplex.
 *
 * Reads settings, opens the admin server and the two bus links it dials
 * ("transcoder" and "control"), serves Exotel's WebSocket on
 * EXOPLEX_LISTEN at /exotel (wss:// with EXOPLEX_TLS_CERT and
 * EXOPLEX_TLS_KEY), and runs one loop until SIGTERM/SIGINT:
 * lws → bus flush → heartbeat. The first signal drains: no new calls,
 * live ones finish, for at most EXOPLEX_DRAIN_MS; then the rest are
 * ended (close 1000) and ingress exits 0. A second signal stops at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "admin.h"
#include "auth.h"
#include "bus.h"
#include "clock.h"
#include "config.h"
#include "exitdog.h"
#include "log.h"
#include "metrics.h"
#include "schedpol.h"
#include "server.h"

#define EXIT_BOUND_MS 2000 /* for closing the buses, normally < 10 ms */

static volatile sig_atomic_t stop_flag; /* signals received */
static struct log           *lws_log; /* for lws's own lines */

static void
on_signal(int sig)
{
	(void)sig;
	if (stop_flag < 2)
		stop_flag++;
}

/* Time for the last close frames to go out once the calls are ended. */
#define CLOSE_WAIT_US (2 * 1000 * 1000)

/* The graceful stop's state, kept by the loop. */
struct drain {
	uint64_t until_us; /* mono: the drain time is up */
	uint64_t close_us; /* mono: stop waiting for the closes */
	bool     on, ended;
};

/* Whether the loop should stop now, after drain_ms of draining at most
 * (0: at once). */
static bool
drain_step(struct drain *d, struct server *srv, struct log *lg, long drain_ms)
{
	uint64_t now = mono_us();
	size_t   open;

	if (stop_flag == 0)
		return false;
	if (stop_flag > 1 || drain_ms == 0)
		return true;
	open = server_open_sockets(srv);
	if (!d->on) {
		d->on       = true;
		d->until_us = now + (uint64_t)drain_ms * 1000;
		server_drain(srv);
		LOGI(lg, NULL,
		    "signal: draining for at most %.1f s (EXOPLEX_DRAIN_MS); "
		    "a "
		    "second signal stops at once",
		    drain_ms / 1000.0);
	}
	if (open == 0) {
		LOGI(lg, NULL, "drained: no call left");
		return true;
	}
	if (!d->ended && now >= d->until_us) {
		LOGW(lg, NULL,
		    "drain time is up with %zu socket(s) open: ending them",
		    open);
		server_end_calls(srv, "bridge_error");
		d->ended    = true;
		d->close_us = now + CLOSE_WAIT_US;
	}
	return d->ended && now >= d->close_us;
}

static void
lws_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_write(lws_log, level == LLL_ERR ? LOG_ERROR : LOG_WARN, NULL,
	    "lws: %.*s", (int)n, line);
}

/* EXOPLEX_DTMF_HANGUP: keypad characters only. */
static int
check_digits(const char *v, char *err, size_t len)
{
	for (const char *p = v; *p; p++)
		if (strchr("0123456789*#ABCD", *p) == NULL) {
			snprintf(err, len,
			    "'%s' has '%c'; use keypad digits 0-9 * # A-D", v,
			    *p);
			return EINVAL;
		}
	return 0;
}

/* EXOPLEX_TLS_CERT / _KEY: a file we can read now, not at the first
 * call. */
static int
check_readable(const char *v, char *err, size_t len)
{
	FILE *f = fopen(v, "r");

	if (f == NULL) {
		snprintf(err, len, "cannot read '%s': %s", v, strerror(errno));
		return EINVAL;
	}
	fclose(f);
	return 0;
}

/* The admin thread probes readiness from admin_start on, before the
 * server exists and after it is stopped: it sees the server only through
 * this pointer, published with release once started. */
static int
ready(void *arg, char *detail, size_t len)
{
	_Atomic(struct server *) *live = arg;
	struct server            *s    = atomic_load(live);

	if (s == NULL) {
		snprintf(detail, len, "starting");
		return 0;
	}
	return server_ready(s, detail, len);
}

int
main(int argc, char **argv)
{
	struct cfg_common cc;
	const char       *listen, *auth_basic, *auth_tokens, *dtmf_hangup;
	const char       *tls_cert, *tls_key;
	long              chunk_ms, lead_ms, max_calls, max_msg, start_ms;
	long              mark_ms, mark_timeout_ms, drain_ms, control_hold_us;
	struct drain      drain = { 0 };
	struct cfg_opt    opts[CFG_COMMON_N + 15];
	size_t            n = cfg_common_opts(opts, &cc, "127.0.0.1:9100");
	char              err[512], url_t[512], url_c[512];
	struct log        lg;
	struct metrics   *m   = NULL;
	struct admin     *adm = NULL;
	struct bus       *bt = NULL, *bc = NULL;
	struct server    *srv  = NULL;
	_Atomic(struct server *) live = NULL; /* srv, for the admin thread */
	struct auth      *auth = NULL;
	struct sigaction  sa;
	int               rv, status = 1;

	opts[n++] = (struct cfg_opt) { .flag = "listen",
		.env                         = "EXOPLEX_LISTEN",
		.def                         = "0.0.0.0:8080",
		.type                        = CFG_ADDR,
		.dst                         = &listen,
		.help = "Exotel WebSocket listener (endpoint path /exotel)" };
	opts[n++] = (struct cfg_opt) { .flag = "playback-chunk-ms",
		.env                         = "EXOPLEX_PLAYBACK_CHUNK_MS",
		.def                         = "100",
		.type                        = CFG_INT,
		.dst                         = &chunk_ms,
		.min                         = 20,
		.max                         = 1000,
		.help = "audio per media message to Exotel, ms (whole 20 ms "
		        "frames)" };
	opts[n++] = (struct cfg_opt) { .flag = "playback-lead-ms",
		.env                         = "EXOPLEX_PLAYBACK_LEAD_MS",
		.def                         = "200",
		.type                        = CFG_INT,
		.dst                         = &lead_ms,
		.min                         = 20,
		.max                         = 1000,
		.help = "how far playback may run ahead of real time, ms" };
	opts[n++] = (struct cfg_opt) { .flag = "auth-basic",
		.env                         = "EXOPLEX_AUTH_BASIC",
		.type                        = CFG_STR,
		.dst                         = &auth_basic,
		.secret                      = true,
		.help = "user:pass[,user:pass...] accepted as Basic auth "
		        "(wss://user:pass@host/exotel)" };
	opts[n++] = (struct cfg_opt) { .flag = "auth-tokens",
		.env                         = "EXOPLEX_AUTH_TOKENS",
		.type                        = CFG_STR,
		.dst                         = &auth_tokens,
		.secret                      = true,
		.help
		= "tokens accepted as ?token=, Authorization: Bearer, or "
		  "custom_parameters.token (comma-separated)" };
	opts[n++] = (struct cfg_opt) { .flag = "dtmf-hangup",
		.env                         = "EXOPLEX_DTMF_HANGUP",
		.type                        = CFG_STR,
		.dst                         = &dtmf_hangup,
		.check                       = check_digits,
		.help = "keypad digits that end the call (Exotel then runs "
		        "the next applet), e.g. \"#*0\"" };
	opts[n++] = (struct cfg_opt) { .flag = "max-calls",
		.env                         = "EXOPLEX_MAX_CALLS",
		.def                         = "1000",
		.type                        = CFG_INT,
		.dst                         = &max_calls,
		.min                         = 1,
		.max                         = 100000,
		.help = "live calls at most; more are refused at start (close "
		        "1013, reason no_capacity)" };
	opts[n++] = (struct cfg_opt) { .flag = "max-message-bytes",
		.env                         = "EXOPLEX_MAX_MESSAGE_BYTES",
		.def                         = "262144",
		.type                        = CFG_INT,
		.dst                         = &max_msg,
		.min                         = 4096,
		.max                         = 16777216,
		.help = "largest message accepted from Exotel; bigger: close "
		        "1009" };
	opts[n++] = (struct cfg_opt) { .flag = "start-timeout-ms",
		.env                         = "EXOPLEX_START_TIMEOUT_MS",
		.def                         = "10000",
		.type                        = CFG_INT,
		.dst                         = &start_ms,
		.min                         = 100,
		.max                         = 600000,
		.help
		= "time from the upgrade to Exotel's start; later: close "
		  "1008" };
	opts[n++] = (struct cfg_opt) { .flag = "mark-interval-ms",
		.env                         = "EXOPLEX_MARK_INTERVAL_MS",
		.def                         = "500",
		.type                        = CFG_INT,
		.dst                         = &mark_ms,
		.min                         = 20,
		.max                         = 60000,
		.help = "a mark after at most this much agent audio (and at "
		        "the end of every burst); 20 = after every message" };
	opts[n++] = (struct cfg_opt) { .flag = "mark-timeout-ms",
		.env                         = "EXOPLEX_MARK_TIMEOUT_MS",
		.def                         = "2000",
		.type                        = CFG_INT,
		.dst                         = &mark_timeout_ms,
		.min                         = 100,
		.max                         = 60000,
		.help = "a mark's echo this late past its audio's expected "
		        "end: the audio is taken as played" };
	opts[n++] = (struct cfg_opt) { .flag = "drain-ms",
		.env                         = "EXOPLEX_DRAIN_MS",
		.def                         = "30000",
		.type                        = CFG_INT,
		.dst                         = &drain_ms,
		.min                         = 0,
		.max                         = 86400000,
		.help = "on SIGTERM, how long live calls may go on (no new "
		        "ones) before the rest are ended; 0 = end at once" };
	opts[n++] = (struct cfg_opt) { .flag = "bus-control-hold-us",
		.env                         = "EXOPLEX_BUS_CONTROL_HOLD_US",
		.def                         = "20000",
		.type                        = CFG_INT,
		.dst                         = &control_hold_us,
		.min                         = 0,
		.max                         = 100000,
		.help = "the control link's hold (ingress to egress: the "
		        "caller's audio for speech-to-text, marks, DTMF); "
		        "0 = send every loop turn (docs/bus.md)" };
	opts[n++] = (struct cfg_opt) { .flag = "tls-cert",
		.env                         = "EXOPLEX_TLS_CERT",
		.type                        = CFG_STR,
		.dst                         = &tls_cert,
		.check                       = check_readable,
		.help = "PEM certificate (chain): with --tls-key, serve "
		        "wss:// (TLS 1.2+) instead of ws://" };
	opts[n++] = (struct cfg_opt) { .flag = "tls-key",
		.env                         = "EXOPLEX_TLS_KEY",
		.type                        = CFG_STR,
		.dst                         = &tls_key,
		.check                       = check_readable,
		.help = "PEM private key of --tls-cert" };
	rv        = cfg_parse(
	           opts, n, argc, argv, "exoplex-ingress", err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "exoplex-ingress: %s\n", err);
		return 2;
	}
	if (!tls_cert != !tls_key) {
		fprintf(stderr,
		    "exoplex-ingress: %s: set EXOPLEX_TLS_CERT (--tls-cert) "
		    "and EXOPLEX_TLS_KEY (--tls-key) together\n",
		    tls_cert ? "EXOPLEX_TLS_KEY (--tls-key) is missing"
		             : "EXOPLEX_TLS_CERT (--tls-cert) is missing");
		return 2;
	}
	if (log_init(&lg, "ingress", cc.log_format, cc.log_level) != 0) {
		fprintf(stderr, "exoplex-ingress: bad log settings\n");
		return 2;
	}
	/* Before any thread starts: they inherit it (schedpol.h). */
	schedpol_apply(cc.sched_policy, &lg);
	lws_log = &lg;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
	if ((rv = auth_alloc(&auth, auth_basic, auth_tokens, err, sizeof(err)))
	    != 0) {
		fprintf(stderr, "exoplex-ingress: %s\n",
		    rv == EINVAL ? err : strerror(rv));
		return 2;
	}

	if (metrics_alloc(&m, "exoplex_") != 0)
		goto out;
	if (admin_start(&adm,
	        &(struct admin_opts) { .addr = cc.admin,
	            .metrics                 = m,
	            .log                     = &lg,
	            .ready                   = ready,
	            .arg                     = &live })
	    != 0)
		goto out;
	if (bus_open(&bt,
	        &(struct bus_opts) { .link = "transcoder",
	            .url  = cfg_bus_url(&cc, cc.bus_transcoder, "transcoder",
	                 url_t, sizeof(url_t)),
	            .self = "ingress",
	            .tap  = cc.bus_tap,
	            .hold_us     = (unsigned)cc.bus_hold_us,
	            .hold_max_us = (unsigned)cc.bus_hold_max_us,
	            .metrics     = m,
	            .log         = &lg })
	        != 0
	    || bus_open(&bc,
	           &(struct bus_opts) { .link = "control",
	               .url     = cfg_bus_url(&cc, cc.bus_control, "control",
	                       url_c, sizeof(url_c)),
	               .self    = "ingress",
	               .tap     = cc.bus_tap,
	               /* Nothing on it waits on a few ms (STT works in
	                * hundreds), and the caller's audio on it would
	                * cost an NNG message per hold_us. */
	               .hold_us = (unsigned)control_hold_us,
	               .metrics     = m,
	               .log         = &lg })
	        != 0)
		goto out;
	if (server_start(&srv,
	        &(struct server_opts) { .listen = listen,
	            .msg_ms                     = (unsigned)chunk_ms,
	            .lead_ms                    = (unsigned)lead_ms,
	            .start_ms                   = (unsigned)start_ms,
	            .max_msg                    = (size_t)max_msg,
	            .max_calls                  = (unsigned)max_calls,
	            .mark_interval_ms           = (unsigned)mark_ms,
	            .mark_timeout_ms            = (unsigned)mark_timeout_ms,
	            .dtmf_hangup                = dtmf_hangup,
	            .tls_cert                   = tls_cert,
	            .tls_key                    = tls_key,
	            .auth                       = auth,
	            .log                        = &lg,
	            .metrics                    = m,
	            .bus_transcoder             = bt,
	            .bus_control                = bc })
	    != 0)
		goto out;
	atomic_store(&live, srv);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!drain_step(&drain, srv, &lg, drain_ms)) {
		server_service(srv);
		bus_flush(bt);
		bus_flush(bc);
		server_wake_in(
		    srv, bus_due_min(bus_due_us(bt), bus_due_us(bc)));
		admin_heartbeat(adm);
	}
	LOGI(&lg, NULL, "stopping");
	status = 0;
out:
	/* Admin first: its thread's probes read the server and buses. */
	admin_stop(adm);
	if (srv) {
		server_stop(srv);
		/* Best effort: let the call_stops reach connected peers. */
		for (int i = 0; i < 50; i++) {
			size_t left = 0;
			if (bus_peers(bt))
				left += bus_flush(bt);
			if (bus_peers(bc))
				left += bus_flush(bc);
			if (left == 0)
				break;
			nanosleep(&(struct timespec) { 0, 10000000 }, NULL);
		}
	}
	/* Calls are over; NNG 1.5.2 can hang closing (exitdog.h). */
	exitdog_arm(&lg, EXIT_BOUND_MS, "closing the buses", status);
	bus_close(bc);
	bus_close(bt);
	bus_lib_fini();
	metrics_free(m);
	auth_free(auth);
	return status;
}
