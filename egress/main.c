/*
 * exoplex-egress: the PersonaPlex side of the bridge.
 *
 * Listens on two bus links ("egress" from the transcoder, "control" from
 * ingress), leases a PersonaPlex server from the pool per call, opens a
 * session there with the call's persona, and moves Ogg pages between
 * them. One thread: lws services the sockets and the adopted bus fds;
 * each turn of the loop flushes what the bus queued.
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
#include "hooks.h"
#include "log.h"
#include "metrics.h"
#include "persona.h"

#define DEFAULT_TEXT_PROMPT                                                   \
	"You are a helpful, friendly phone assistant. Keep your answers "     \
	"short and clear, and let the caller finish speaking."

struct settings {
	struct cfg_common  common;
	struct egress_opts eg;
	long warm, handshake_ms, reconnect_ms, liveness_ms, text_gap_ms;
	struct webhook_opts hooks;
	struct cfg_opt      opts[CFG_COMMON_N + 11 + HOOKS_CFG_N];
	size_t              n;
};

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

/* The common settings, then egress's own. */
static void
settings_table(struct settings *s)
{
	struct egress_opts *e = &s->eg;

	s->n = cfg_common_opts(s->opts, &s->common, "127.0.0.1:9102");
	// clang-format off
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-urls",
	    "EXOPLEX_PERSONAPLEX_URLS", NULL, CFG_STR, &e->urls, 0, 0, NULL,
	    false, "comma-separated ws:// or wss:// PersonaPlex servers (no "
	    "path means /api/chat), one call at a time each; IP addresses "
	    "avoid a blocking DNS lookup per session", egress_check_urls };
	s->opts[s->n++] = (struct cfg_opt) { "voice-prompt",
	    "EXOPLEX_VOICE_PROMPT", "NATF2.pt", CFG_STR, &e->voice_prompt, 0,
	    0, NULL, false, "default persona's voice (voice_prompt)", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "text-prompt",
	    "EXOPLEX_TEXT_PROMPT", DEFAULT_TEXT_PROMPT, CFG_STR,
	    &e->text_prompt, 0, 0, NULL, false,
	    "default persona's text prompt (text_prompt), non-empty", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personas", "EXOPLEX_PERSONAS",
	    NULL, CFG_STR, &e->personas, 0, 0, NULL, false, "INI file of "
	    "personas ([name] voice, text, numbers), chosen per call by "
	    "custom_parameters.persona or the dialled number", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-warm",
	    "EXOPLEX_PERSONAPLEX_WARM", "0", CFG_INT, &s->warm, 0, 1000, NULL,
	    false, "idle servers kept connected with the default persona, "
	    "handshake done, for the next calls", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-handshake-ms",
	    "EXOPLEX_PERSONAPLEX_HANDSHAKE_MS", "15000", CFG_INT,
	    &s->handshake_ms, 100, 600000, NULL, false, "wait this long for "
	    "a server's 0x00 handshake, then try another server", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-reconnect-ms",
	    "EXOPLEX_PERSONAPLEX_RECONNECT_MS", "10000", CFG_INT,
	    &s->reconnect_ms, 100, 600000, NULL, false, "time to replace a "
	    "lost session before the call is hung up (persona_failed)", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-liveness-ms",
	    "EXOPLEX_PERSONAPLEX_LIVENESS_MS", "10000", CFG_INT,
	    &s->liveness_ms, 100, 600000, NULL, false, "a session that "
	    "sends nothing this long while we send audio is replaced", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "agent-text-gap-ms",
	    "EXOPLEX_AGENT_TEXT_GAP_MS", "600", CFG_INT, &s->text_gap_ms, 50,
	    60000, NULL, false, "silence in the agent's text that ends an "
	    "utterance (agent_text)", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-ca",
	    "EXOPLEX_PERSONAPLEX_CA", NULL, CFG_STR, &e->ca_file, 0, 0, NULL,
	    false, "PEM CA file trusted for wss:// besides the system's "
	    "(e.g. PersonaPlex's mkcert CA)", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "personaplex-insecure",
	    "EXOPLEX_PERSONAPLEX_INSECURE", "0", CFG_BOOL, &e->insecure, 0, 0,
	    NULL, false, "skip wss:// certificate checks (private links "
	    "only: anyone on the path could pose as the server)", NULL };
	// clang-format on
	s->n += hooks_cfg_opts(s->opts + s->n, &s->hooks);
}

static int
open_link(struct bus **b, const char *name, const char *url,
    struct settings *s, struct metrics *m, char *buf, size_t len)
{
	struct bus_opts o = { .link = name, .listen = true, .self = "egress" };

	o.url     = cfg_bus_url(&s->common, url, name, buf, len);
	o.tap     = s->common.bus_tap;
	o.metrics = m;
	o.log     = &lg;
	return bus_open(b, &o);
}

int
main(int argc, char **argv)
{
	struct settings   s    = { 0 };
	struct metrics   *m    = NULL;
	struct admin     *adm  = NULL;
	struct bus       *to_t = NULL, *to_i = NULL;
	struct egress    *eg = NULL;
	struct hooks     *hk = NULL;
	struct admin_opts ao = { 0 };
	struct sigaction  sa = { .sa_handler = on_signal };
	char              err[512], u1[1024], u2[1024];
	int               rc, status = 1;

	settings_table(&s);
	rc = cfg_parse(
	    s.opts, s.n, argc, argv, "exoplex-egress", err, sizeof(err));
	if (rc == 1)
		return 0;
	s.eg.warm         = (unsigned)s.warm;
	s.eg.handshake_ms = (unsigned)s.handshake_ms;
	s.eg.reconnect_ms = (unsigned)s.reconnect_ms;
	s.eg.liveness_ms  = (unsigned)s.liveness_ms;
	s.eg.text_gap_ms  = (unsigned)s.text_gap_ms;
	persona_lib_init();
	if (rc || egress_check_opts(&s.eg, err, sizeof(err))) {
		fprintf(stderr, "exoplex-egress: %s\n", err);
		return 2;
	}
	log_init(&lg, "egress", s.common.log_format, s.common.log_level);
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_line);
	if (metrics_alloc(&m, "exoplex_"))
		goto out;

	if (open_link(
	        &to_t, "egress", s.common.bus_egress, &s, m, u1, sizeof(u1))
	    || open_link(
	        &to_i, "control", s.common.bus_control, &s, m, u2, sizeof(u2)))
		goto out;

	s.hooks.log     = &lg;
	s.hooks.metrics = m;
	if ((rc = hooks_alloc(&hk, &s.hooks, err, sizeof(err)))) {
		LOGE(&lg, NULL, "webhooks: %s", err);
		status = 2;
		goto out;
	}

	s.eg.hooks         = hk;
	s.eg.log           = &lg;
	s.eg.metrics       = m;
	s.eg.to_transcoder = to_t;
	s.eg.to_ingress    = to_i;
	if ((rc = egress_alloc(&eg, &s.eg, err, sizeof(err)))) {
		if (rc == EINVAL) {
			LOGE(&lg, NULL, "%s", err);
			status = 2;
		}
		goto out;
	}

	ao.addr    = s.common.admin;
	ao.metrics = m;
	ao.log     = &lg;
	ao.ready   = egress_ready;
	ao.arg     = eg;
	if (admin_start(&adm, &ao))
		goto out;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	LOGI(&lg, NULL, "running: bus %s and %s, admin %s", u1, u2,
	    s.common.admin);
	/* lws_service returns at least every 100 ms (egress's tick). */
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
	hooks_free(hk); /* delivers what is due, briefly */
	bus_close(to_i);
	bus_close(to_t);
	metrics_free(m);
	return status;
}
