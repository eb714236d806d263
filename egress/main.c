/*
 * exoplex-egress: the PersonaPlex side of the bridge.
 *
 * Listens on two bus links ("egress" from the transcoder, "control" from
 * ingress), opens a PersonaPlex WebSocket per call, and moves Ogg pages
 * between them. One thread: lws services the sockets and the adopted bus
 * fds; each turn of the loop flushes what the bus queued.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "egress.h"
#include "log.h"
#include "metrics.h"

#define DEFAULT_TEXT_PROMPT                                                   \
	"You are a helpful, friendly phone assistant. Keep your answers "     \
	"short and clear, and let the caller finish speaking."

static volatile sig_atomic_t stopping;
static struct log            lg; /* lws's own lines go here too */

static void
on_signal(int sig)
{
	stopping = 1;
}

static void
lws_line(int level, const char *line)
{
	LOGW(&lg, NULL, "lws: %.*s", (int)strcspn(line, "\r\n"), line);
}

int
main(int argc, char **argv)
{
	struct cfg_common  cc;
	struct cfg_opt     opts[CFG_COMMON_N + 5];
	struct egress_opts eo       = { 0 };
	const char        *ca       = NULL;
	bool               insecure = false;
	struct metrics    *m        = NULL;
	struct admin      *adm      = NULL;
	struct bus        *to_t = NULL, *to_i = NULL;
	struct egress     *eg = NULL;
	struct sigaction   sa = { .sa_handler = on_signal };
	char               err[512], u1[1024], u2[1024];
	size_t             n;
	int                rc, status = 1;

	n         = cfg_common_opts(opts, &cc, "127.0.0.1:9102");
	opts[n++] = (struct cfg_opt) { .flag = "personaplex-urls",
		.env                         = "EXOPLEX_PERSONAPLEX_URLS",
		.type                        = CFG_STR,
		.dst                         = &eo.urls,
		.check                       = egress_check_urls,
		.help = "comma-separated ws:// or wss:// PersonaPlex servers "
		        "(no path means /api/chat); issue 2 uses the first" };
	opts[n++] = (struct cfg_opt) { .flag = "voice-prompt",
		.env                         = "EXOPLEX_VOICE_PROMPT",
		.def                         = "NATF2.pt",
		.type                        = CFG_STR,
		.dst                         = &eo.voice_prompt,
		.help = "PersonaPlex voice (voice_prompt)" };
	opts[n++] = (struct cfg_opt) { .flag = "text-prompt",
		.env                         = "EXOPLEX_TEXT_PROMPT",
		.def                         = DEFAULT_TEXT_PROMPT,
		.type                        = CFG_STR,
		.dst                         = &eo.text_prompt,
		.help = "PersonaPlex persona text (text_prompt), non-empty" };
	opts[n++] = (struct cfg_opt) { .flag = "personaplex-ca",
		.env                         = "EXOPLEX_PERSONAPLEX_CA",
		.type                        = CFG_STR,
		.dst                         = &ca,
		.help = "PEM CA bundle trusted for wss:// besides the "
		        "system's (e.g. PersonaPlex's mkcert CA)" };
	opts[n++] = (struct cfg_opt) { .flag = "personaplex-insecure",
		.env                         = "EXOPLEX_PERSONAPLEX_INSECURE",
		.def                         = "0",
		.type                        = CFG_BOOL,
		.dst                         = &insecure,
		.help
		= "skip wss:// certificate checks (private links only)" };

	rc = cfg_parse(
	    opts, n, argc, argv, "exoplex-egress", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc) {
		fprintf(stderr, "exoplex-egress: %s\n", err);
		return 2;
	}
	if (egress_check_opts(&eo, err, sizeof(err))) {
		fprintf(stderr, "exoplex-egress: %s\n", err);
		return 2;
	}
	log_init(&lg, "egress", cc.log_format, cc.log_level);
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_line);
	if (metrics_alloc(&m, "exoplex_"))
		goto out;

	struct bus_opts bo = { .link = "egress",
		.listen              = true,
		.self                = "egress",
		.metrics             = m,
		.log                 = &lg };
	bo.url = cfg_bus_url(&cc, cc.bus_egress, "egress", u1, sizeof(u1));
	if (bus_open(&to_t, &bo))
		goto out;
	bo.link = "control";
	bo.url  = cfg_bus_url(&cc, cc.bus_control, "control", u2, sizeof(u2));
	if (bus_open(&to_i, &bo))
		goto out;

	eo.log = &lg, eo.metrics = m, eo.to_transcoder = to_t;
	eo.to_ingress = to_i, eo.ca_file = ca, eo.insecure = insecure;
	rc = egress_alloc(&eg, &eo, err, sizeof(err));
	if (rc == EINVAL) {
		LOGE(&lg, NULL, "%s", err);
		status = 2;
		goto out;
	}
	if (rc)
		goto out;

	struct admin_opts ao = { .addr = cc.admin,
		.metrics               = m,
		.log                   = &lg,
		.ready                 = egress_ready,
		.arg                   = eg };
	if (admin_start(&adm, &ao))
		goto out;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	LOGI(&lg, NULL, "running: bus %s and %s, admin %s", u1, u2, cc.admin);
	while (!stopping) {
		lws_service(egress_lws(eg), 0);
		bus_flush(to_t);
		bus_flush(to_i);
		admin_heartbeat(adm);
	}
	LOGI(&lg, NULL, "stopping: %zu call(s) open", egress_calls(eg));
	status = 0;
out:
	admin_stop(adm);
	egress_free(eg);
	bus_close(to_i);
	bus_close(to_t);
	metrics_free(m);
	return status;
}
