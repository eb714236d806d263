/*
 * exoplex-fakescribe - a strict ElevenLabs Scribe v2 realtime stand-in.
 *
 * Speaks the realtime STT wire protocol (research/elevenlabs.md): checks
 * the xi-api-key header, the query and every input_audio_chunk, sends
 * session_started, partials and commits from an energy VAD over the audio
 * it receives, closes idle sessions after 15 s like the real one, and can
 * end sessions with session_time_limit_exceeded. /metrics and /stats
 * (JSON) on the admin address tell tests what it saw.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "admin.h"
#include "config.h"
#include "fsstats.h"
#include "log.h"
#include "metrics.h"
#include "scribe.h"

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	stop_flag = 1;
}

/* admin_path_fn: the /stats JSON. */
static int
stats_path(void *arg, const char *path, char **body, const char **ctype)
{
	if (strcmp(path, "/stats"))
		return 0;
	if (!(*body = fsstats_json(arg)))
		return 500;
	*ctype = "application/json";
	return 200;
}

int
main(int argc, char **argv)
{
	struct scribe_opts               so = { 0 };
	struct cfg_common                common;
	struct cfg_opt                   opts[24], all[CFG_COMMON_N];
	const char                      *listen = NULL, *admin_addr = NULL;
	long                             word_ms = 0, idle_s = 0, limit_s = 0;
	bool                             quirks = true, wrong = false;
	size_t                           n = 0;
	char                             err[256], host[256];
	struct log                       lg;
	struct metrics                  *m   = NULL;
	struct fsstats                  *st  = NULL;
	struct admin                    *adm = NULL;
	struct scribe                   *sc  = NULL;
	struct lws_context              *ctx = NULL;
	struct lws_context_creation_info ci;
	struct sigaction                 sa;
	int                              port, rc = 1;

	// clang-format off
	opts[n++] = (struct cfg_opt) { "listen", "EXOPLEX_FAKESCRIBE_LISTEN",
	    "127.0.0.1:8765", CFG_ADDR, &listen, 0, 0, NULL, false,
	    "WebSocket listener host:port (port 0: any free one)", NULL };
	opts[n++] = (struct cfg_opt) { "admin", "EXOPLEX_FAKESCRIBE_ADMIN",
	    "127.0.0.1:9111", CFG_ADDR, &admin_addr, 0, 0, NULL, false,
	    "admin HTTP address (/healthz, /metrics, /stats)", NULL };
	opts[n++] = (struct cfg_opt) { "path", "EXOPLEX_FAKESCRIBE_PATH",
	    "/v1/speech-to-text/realtime", CFG_STR, &so.path, 0, 0, NULL,
	    false, "the one path that upgrades", NULL };
	opts[n++] = (struct cfg_opt) { "api-key", "EXOPLEX_FAKESCRIBE_API_KEY",
	    NULL, CFG_STR, &so.api_key, 0, 0, NULL, true,
	    "the xi-api-key expected (unset: any non-empty key)", NULL };
	opts[n++] = (struct cfg_opt) { "models", "EXOPLEX_FAKESCRIBE_MODELS",
	    "scribe_v2_realtime,scribe_v2_realtime_turbo", CFG_STR,
	    &so.models, 0, 0, NULL, false, "model_id values accepted", NULL };
	opts[n++] = (struct cfg_opt) { "text", "EXOPLEX_FAKESCRIBE_TEXT",
	    NULL, CFG_STR, &so.text, 0, 0, NULL, false,
	    "the words transcribed, one per --word-ms of speech (cycling)",
	    NULL };
	opts[n++] = (struct cfg_opt) { "word-ms", "EXOPLEX_FAKESCRIBE_WORD_MS",
	    "250", CFG_INT, &word_ms, 20, 10000, NULL, false,
	    "voiced audio per word", NULL };
	opts[n++] = (struct cfg_opt) { "quirks", "EXOPLEX_FAKESCRIBE_QUIRKS",
	    "1", CFG_BOOL, &quirks, 0, 0, NULL, false,
	    "the live server's repeated partials and post-commit echoes",
	    NULL };
	opts[n++] = (struct cfg_opt) { "idle-s", "EXOPLEX_FAKESCRIBE_IDLE_S",
	    "15", CFG_INT, &idle_s, 1, 3600, NULL, false,
	    "close a session after this long without a chunk", NULL };
	opts[n++] = (struct cfg_opt) { "session-limit-s",
	    "EXOPLEX_FAKESCRIBE_SESSION_LIMIT_S", "0", CFG_INT, &limit_s, 0,
	    86400, NULL, false, "end each session this old with "
	    "session_time_limit_exceeded; 0 = never", NULL };
	opts[n++] = (struct cfg_opt) { "cert", "EXOPLEX_FAKESCRIBE_CERT",
	    NULL, CFG_STR, &so.cert, 0, 0, NULL, false,
	    "PEM certificate: serve wss:// (with --key)", NULL };
	opts[n++] = (struct cfg_opt) { "key", "EXOPLEX_FAKESCRIBE_KEY",
	    NULL, CFG_STR, &so.key, 0, 0, NULL, false,
	    "PEM private key for --cert", NULL };
	opts[n++] = (struct cfg_opt) { "wrong-format",
	    "EXOPLEX_FAKESCRIBE_WRONG_FORMAT", "0", CFG_BOOL, &wrong, 0, 0,
	    NULL, false, "session_started says pcm_16000 whatever was asked",
	    NULL };
	// clang-format on
	/* Only the log settings of the common table: no bus here. */
	cfg_common_opts(all, &common, "127.0.0.1:9111");
	for (size_t i = 0; i < CFG_COMMON_N; i++)
		if (!strncmp(all[i].flag, "log-", 4))
			opts[n++] = all[i];

	rc = cfg_parse(
	    opts, n, argc, argv, "exoplex-fakescribe", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc || cfg_split_addr(listen, host, sizeof(host), &port)) {
		fprintf(stderr, "exoplex-fakescribe: %s\n",
		    rc ? err : "bad --listen");
		return 2;
	}
	so.host            = host;
	so.port            = port;
	so.word_ms         = (unsigned)word_ms;
	so.idle_s          = (unsigned)idle_s;
	so.session_limit_s = (unsigned)limit_s;
	so.quirks          = quirks;
	so.wrong_format    = wrong;
	rc                 = 1;
	if (log_init(&lg, "fakescribe", common.log_format, common.log_level))
		return 2;
	lws_set_log_level(LLL_ERR, NULL);
	if (metrics_alloc(&m, "exoplex_") || fsstats_alloc(&st, m))
		goto out;
	struct admin_opts ao = { .addr = admin_addr,
		.metrics               = m,
		.log                   = &lg,
		.path                  = stats_path,
		.arg                   = st };
	if (admin_start(&adm, &ao))
		goto out;
	memset(&ci, 0, sizeof(ci));
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (so.cert && so.key)
		ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (!(ctx = lws_create_context(&ci))) {
		LOGE(&lg, NULL, "cannot create the libwebsockets context");
		goto out;
	}
	if (scribe_start(&sc, ctx, &so, st, &lg))
		goto out;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: wake the poll */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	LOGI(&lg, NULL, "key %s, idle close %ld s, session limit %ld s%s",
	    so.api_key ? "checked" : "any", idle_s, limit_s,
	    quirks ? ", quirks on" : "");
	while (!stop_flag) {
		lws_service(ctx, 0);
		admin_heartbeat(adm);
	}
	LOGI(&lg, NULL, "stopping");
	rc = 0;
out:
	scribe_stop(sc);
	if (ctx)
		lws_context_destroy(ctx);
	scribe_free(sc);
	admin_stop(adm);
	fsstats_free(st);
	metrics_free(m);
	return rc;
}
