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
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "egress.h"
#include "exitdog.h"
#include "hooks.h"
#include "log.h"
#include "metrics.h"
#include "persona.h"
#include "schedpol.h"
#include "stt.h"

#define DEFAULT_TEXT_PROMPT                                                   \
	"You are a helpful, friendly phone assistant. Keep your answers "     \
	"short and clear, and let the caller finish speaking."

struct settings {
	struct cfg_common  common;
	struct egress_opts eg;
	long warm, handshake_ms, reconnect_ms, liveness_ms, text_gap_ms;
	long ingress_grace_ms;
	struct webhook_opts hooks;
	const char         *vad_silence, *vad_threshold;
	long                min_speech_ms, min_silence_ms;
	struct cfg_opt      opts[CFG_COMMON_N + 13 + HOOKS_CFG_N + 9];
	size_t              n;
};

#define EXIT_BOUND_MS 2000 /* for closing the buses, normally < 10 ms */

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

/* Caller transcripts (stt.h; research/elevenlabs.md §1.3 for the VAD
 * ranges). */
static void
stt_settings(struct settings *s)
{
	struct stt_env_opts *t = &s->eg.stt;

	// clang-format off
	s->opts[s->n++] = (struct cfg_opt) { "elevenlabs-api-key",
	    "ELEVENLABS_API_KEY", NULL, CFG_STR, &t->api_key, 0, 0, NULL,
	    true, "ElevenLabs API key (xi-api-key): caller transcripts with "
	    "Scribe v2 realtime; unset = STT off", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "stt-url", "EXOPLEX_STT_URL",
	    STT_DEFAULT_URL, CFG_STR, &t->url, 0, 0, NULL, false,
	    "realtime STT URL with its path, no query (egress adds it); "
	    "e.g. a regional host or a stand-in", stt_check_url };
	s->opts[s->n++] = (struct cfg_opt) { "elevenlabs-model",
	    "ELEVENLABS_MODEL", STT_DEFAULT_MODEL, CFG_STR, &t->model, 0, 0,
	    NULL, false, "model_id", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "elevenlabs-language",
	    "ELEVENLABS_LANGUAGE", "en", CFG_STR, &t->language, 0, 0, NULL,
	    false, "language_code (ISO 639-1/3); empty = auto-detect",
	    stt_check_language };
	s->opts[s->n++] = (struct cfg_opt) { "stt-vad-silence-secs",
	    "EXOPLEX_STT_VAD_SILENCE_SECS", "0.8", CFG_STR, &s->vad_silence,
	    0, 0, NULL, false, "silence that commits a caller transcript "
	    "(0.3-3.0)", stt_check_vad_silence };
	s->opts[s->n++] = (struct cfg_opt) { "stt-vad-threshold",
	    "EXOPLEX_STT_VAD_THRESHOLD", "0.4", CFG_STR, &s->vad_threshold,
	    0, 0, NULL, false, "server VAD threshold, lower is more "
	    "sensitive (0.1-0.9)", stt_check_vad_threshold };
	s->opts[s->n++] = (struct cfg_opt) { "stt-min-speech-ms",
	    "EXOPLEX_STT_MIN_SPEECH_MS", "100", CFG_INT, &s->min_speech_ms,
	    50, 2000, NULL, false, "server VAD min_speech_duration_ms", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "stt-min-silence-ms",
	    "EXOPLEX_STT_MIN_SILENCE_MS", "100", CFG_INT, &s->min_silence_ms,
	    50, 2000, NULL, false, "server VAD min_silence_duration_ms", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "stt-timestamps",
	    "EXOPLEX_STT_TIMESTAMPS", "0", CFG_BOOL, &t->timestamps, 0, 0,
	    NULL, false, "ask for word timestamps (include_timestamps): "
	    "transcript offsets from the server's word times", NULL };
	// clang-format on
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
	    "personas ([name] voice, text, numbers, mode), chosen per call "
	    "by custom_parameters.persona or the dialled number", NULL };
	s->opts[s->n++] = (struct cfg_opt) { "default-mode",
	    "EXOPLEX_DEFAULT_MODE", NULL, CFG_ENUM, &e->default_mode, 0, 0,
	    "agent|transcribe", false, "mode of a call that neither "
	    "custom_parameters.mode nor its persona sets; unset: agent, or "
	    "transcribe when no PersonaPlex server is configured", NULL };
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
	s->opts[s->n++] = (struct cfg_opt) { "ingress-grace-ms",
	    "EXOPLEX_INGRESS_GRACE_MS", "3000", CFG_INT, &s->ingress_grace_ms,
	    100, 600000, NULL, false, "when ingress disconnects (or a new "
	    "one connects), end its calls not announced again within this "
	    "time (sessions closed, call.ended bridge_error)", NULL };
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
	stt_settings(s);
}

static int
open_link(struct bus **b, const char *name, const char *url,
    struct settings *s, struct metrics *m, char *buf, size_t len)
{
	struct bus_opts o = { .link = name, .listen = true, .self = "egress" };

	o.url     = cfg_bus_url(&s->common, url, name, buf, len);
	o.tap     = s->common.bus_tap;
	o.hold_us = (unsigned)s->common.bus_hold_us;
	o.hold_max_us = (unsigned)s->common.bus_hold_max_us;
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
	s.eg.warm             = (unsigned)s.warm;
	s.eg.handshake_ms     = (unsigned)s.handshake_ms;
	s.eg.reconnect_ms     = (unsigned)s.reconnect_ms;
	s.eg.liveness_ms      = (unsigned)s.liveness_ms;
	s.eg.text_gap_ms      = (unsigned)s.text_gap_ms;
	s.eg.ingress_grace_ms = (unsigned)s.ingress_grace_ms;
	if (rc == 0) {
		s.eg.stt.vad_silence_s  = strtod(s.vad_silence, NULL);
		s.eg.stt.vad_threshold  = strtod(s.vad_threshold, NULL);
		s.eg.stt.min_speech_ms  = (unsigned)s.min_speech_ms;
		s.eg.stt.min_silence_ms = (unsigned)s.min_silence_ms;
	}
	persona_lib_init();
	if (rc || egress_check_opts(&s.eg, err, sizeof(err))) {
		fprintf(stderr, "exoplex-egress: %s\n", err);
		return 2;
	}
	log_init(&lg, "egress", s.common.log_format, s.common.log_level);
	/* Before any thread starts: they inherit it (schedpol.h). */
	schedpol_apply(s.common.sched_policy, &lg);
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
	while (!stopping) {
		egress_service(eg, true);
		bus_flush(to_t);
		bus_flush(to_i);
		egress_wake_in(
		    eg, bus_due_min(bus_due_us(to_t), bus_due_us(to_i)));
		admin_heartbeat(adm);
	}
	LOGI(&lg, NULL, "stopping: %zu call(s) open", egress_calls(eg));
	status = 0;
out:
	admin_stop(adm);
	egress_free(eg);
	hooks_free(hk); /* delivers what is due, briefly */
	/* Calls and webhooks are done; NNG 1.5.2 can hang closing
	 * (exitdog.h). */
	exitdog_arm(&lg, EXIT_BOUND_MS, "closing the buses", status);
	bus_close(to_i);
	bus_close(to_t);
	bus_lib_fini();
	metrics_free(m);
	return status;
}
