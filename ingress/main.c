/*
 * main.c - exoplex-ingress: the Exotel side of exoplex.
 *
 * Reads settings, opens the admin server and the two bus links it dials
 * ("transcoder" and "control"), serves Exotel's WebSocket on
 * EXOPLEX_LISTEN at /exotel, and runs one loop until SIGTERM/SIGINT:
 * lws → bus flush → heartbeat.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

static volatile sig_atomic_t stop_flag;
static struct log           *lws_log; /* for lws's own lines */

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
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

static int
ready(void *arg, char *detail, size_t len)
{
	struct server **srv = arg;

	return server_ready(*srv, detail, len);
}

int
main(int argc, char **argv)
{
	struct cfg_common cc;
	const char       *listen;
	long              chunk_ms, lead_ms;
	struct cfg_opt    opts[CFG_COMMON_N + 3];
	size_t            n = cfg_common_opts(opts, &cc, "127.0.0.1:9100");
	char              err[512], url_t[512], url_c[512];
	struct log        lg;
	struct metrics   *m   = NULL;
	struct admin     *adm = NULL;
	struct bus       *bt = NULL, *bc = NULL;
	struct server    *srv = NULL;
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
	rv        = cfg_parse(
	           opts, n, argc, argv, "exoplex-ingress", err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "exoplex-ingress: %s\n", err);
		return 2;
	}
	if (log_init(&lg, "ingress", cc.log_format, cc.log_level) != 0) {
		fprintf(stderr, "exoplex-ingress: bad log settings\n");
		return 2;
	}
	lws_log = &lg;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);

	if (metrics_alloc(&m, "exoplex_") != 0)
		goto out;
	if (admin_start(&adm,
	        &(struct admin_opts) { .addr = cc.admin,
	            .metrics                 = m,
	            .log                     = &lg,
	            .ready                   = ready,
	            .arg                     = &srv })
	    != 0)
		goto out;
	if (bus_open(&bt,
	        &(struct bus_opts) { .link = "transcoder",
	            .url  = cfg_bus_url(&cc, cc.bus_transcoder, "transcoder",
	                 url_t, sizeof(url_t)),
	            .self = "ingress",
	            .metrics = m,
	            .log     = &lg })
	        != 0
	    || bus_open(&bc,
	           &(struct bus_opts) { .link = "control",
	               .url     = cfg_bus_url(&cc, cc.bus_control, "control",
	                       url_c, sizeof(url_c)),
	               .self    = "ingress",
	               .metrics = m,
	               .log     = &lg })
	        != 0)
		goto out;
	if (server_start(&srv,
	        &(struct server_opts) { .listen = listen,
	            .msg_ms                     = (unsigned)chunk_ms,
	            .lead_ms                    = (unsigned)lead_ms,
	            .log                        = &lg,
	            .metrics                    = m,
	            .bus_transcoder             = bt,
	            .bus_control                = bc })
	    != 0)
		goto out;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	while (!stop_flag) {
		if (server_service(srv) < 0)
			break;
		bus_flush(bt);
		bus_flush(bc);
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
	bus_close(bc);
	bus_close(bt);
	metrics_free(m);
	return status;
}
