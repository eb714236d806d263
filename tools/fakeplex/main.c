/*
 * exoplex-fakeplex - a PersonaPlex stand-in for machines without a GPU.
 *
 * Speaks the real server's wire protocol (research/personaplex.md): the
 * /api/chat query checks, one conversation per listener, the 0x00
 * handshake after a delay, a downlink shaped like sphn's, output clocked
 * by input, and a strict uplink reader that counts every violation. The
 * "model" echoes the caller or plays a tone. /metrics and /stats (JSON)
 * on the admin address tell tests what it saw.
 */
#include "admin.h"
#include "callaudio.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "plex.h"
#include "stats.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int
check_listen(const char *v, char *err, size_t len)
{
	return plex_check_listen(v, err, len);
}

/* admin_path_fn: the /stats JSON. */
static int
stats_path(void *arg, const char *path, char **body, const char **ctype)
{
	if (strcmp(path, "/stats"))
		return 0;
	if ((*body = stats_json(arg)) == NULL)
		return 500;
	*ctype = "application/json";
	return 200;
}

int
main(int argc, char **argv)
{
	struct plex_opts  po   = { 0 };
	struct conv_clip *clip = NULL;
	struct cfg_common common;
	struct cfg_opt    opts[20], all[CFG_COMMON_N];
	const char       *admin_addr = NULL, *mode = NULL;
	long              tone_hz = 0, complexity = -1;
	bool              refuse = false;
	size_t            n      = 0;
	char              err[256];
	struct log        lg;
	struct metrics   *m   = NULL;
	struct stats     *st  = NULL;
	struct admin     *adm = NULL;
	struct plex      *p   = NULL;
	struct sigaction  sa;
	int               rc = 1;

	opts[n++] = (struct cfg_opt) { .flag = "listen",
		.env                         = "EXOPLEX_FAKEPLEX_LISTEN",
		.def                         = "127.0.0.1:8998",
		.type                        = CFG_STR,
		.dst                         = &po.listen,
		.check                       = check_listen,
		.help = "WebSocket listeners, host:port[,host:port...]; a "
		        "port may be a range a-b (one conversation each)" };
	opts[n++] = (struct cfg_opt) { .flag = "admin",
		.env                         = "EXOPLEX_FAKEPLEX_ADMIN",
		.def                         = "127.0.0.1:9110",
		.type                        = CFG_ADDR,
		.dst                         = &admin_addr,
		.help = "admin HTTP address (/healthz, /metrics, /stats)" };
	opts[n++] = (struct cfg_opt) { .flag = "mode",
		.env                         = "EXOPLEX_FAKEPLEX_MODE",
		.def                         = "echo",
		.type                        = CFG_ENUM,
		.dst                         = &mode,
		.choices                     = "echo|tone|replay",
		.help = "echo: return the caller's audio; tone: a sine; "
		        "replay: a speech-like clip encoded once, no codec "
		        "work per session (cheap, for load tests)" };
	opts[n++] = (struct cfg_opt) { .flag = "tone-hz",
		.env                         = "EXOPLEX_FAKEPLEX_TONE_HZ",
		.def                         = "440",
		.type                        = CFG_INT,
		.dst                         = &tone_hz,
		.min                         = 20,
		.max                         = 11000,
		.help                        = "frequency of the tone mode" };
	opts[n++] = (struct cfg_opt) { .flag = "complexity",
		.env                         = "EXOPLEX_FAKEPLEX_COMPLEXITY",
		.def                         = "-1",
		.type                        = CFG_INT,
		.dst                         = &complexity,
		.min                         = -1,
		.max                         = 10,
		.help = "downlink Opus complexity; -1 = libopus default, as "
		        "sphn (lower is cheaper for load tests)" };
	opts[n++] = (struct cfg_opt) { .flag = "handshake-delay-ms",
		.env  = "EXOPLEX_FAKEPLEX_HANDSHAKE_DELAY_MS",
		.def  = "0",
		.type = CFG_INT,
		.dst  = &po.handshake_delay_ms,
		.min  = 0,
		.max  = 600000,
		.help = "prompt phase: from taking the lock to 0x00" };
	opts[n++] = (struct cfg_opt) { .flag = "text",
		.env                         = "EXOPLEX_FAKEPLEX_TEXT",
		.type                        = CFG_STR,
		.dst                         = &po.conv.text,
		.help
		= "words sent as 0x02 pieces (\" word\") at the start of "
		  "each conversation, one per step" };
	opts[n++] = (struct cfg_opt) { .flag = "drop-after-ms",
		.env  = "EXOPLEX_FAKEPLEX_DROP_AFTER_MS",
		.def  = "0",
		.type = CFG_INT,
		.dst  = &po.drop_after_ms,
		.min  = 0,
		.max  = 86400000,
		.help = "drop each conversation (no close frame) this long "
		        "after its handshake; 0 = never" };
	opts[n++] = (struct cfg_opt) { .flag = "drop-count",
		.env                         = "EXOPLEX_FAKEPLEX_DROP_COUNT",
		.def                         = "0",
		.type                        = CFG_INT,
		.dst                         = &po.drop_count,
		.min                         = 0,
		.max                         = 1000000,
		.help
		= "with --drop-after-ms: drop only the first N "
		  "conversations (all listeners together); 0 = every one" };
	opts[n++] = (struct cfg_opt) { .flag = "refuse",
		.env                         = "EXOPLEX_FAKEPLEX_REFUSE",
		.def                         = "0",
		.type                        = CFG_BOOL,
		.dst                         = &refuse,
		.help = "abort every session right after the upgrade" };
	/* Only the log settings of the common table: fakeplex has no bus. */
	cfg_common_opts(all, &common, "127.0.0.1:9110");
	for (size_t i = 0; i < CFG_COMMON_N; i++)
		if (!strncmp(all[i].flag, "log-", 4))
			opts[n++] = all[i];

	rc = cfg_parse(
	    opts, n, argc, argv, "exoplex-fakeplex", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc != 0) {
		fprintf(stderr, "exoplex-fakeplex: %s\n", err);
		return 2;
	}
	po.conv.mode       = !strcmp(mode, "tone") ? CONV_TONE
	          : !strcmp(mode, "replay")        ? CONV_REPLAY
	                                           : CONV_ECHO;
	po.conv.tone_hz    = (double)tone_hz;
	po.conv.complexity = (int)complexity;
	po.refuse          = refuse;
	rc                 = 1;
	if (log_init(&lg, "fakeplex", common.log_format, common.log_level))
		return 2;
	if (po.conv.mode == CONV_REPLAY) {
		/* 20 s of exoplex-call's speech signal, encoded once. */
		int16_t *speech = NULL;
		if (callaudio_speech(&speech, 20 * 24000, 24000, 7)
		    || conv_clip_make(
		        &clip, speech, 20 * 24000, po.conv.complexity)) {
			free(speech);
			LOGE(&lg, NULL, "cannot make the replay clip");
			goto out;
		}
		free(speech);
		po.conv.clip = clip;
	}
	if (metrics_alloc(&m, "exoplex_") || stats_alloc(&st, m))
		goto out;
	struct admin_opts ao = { .addr = admin_addr,
		.metrics               = m,
		.log                   = &lg,
		.path                  = stats_path,
		.arg                   = st };
	if (admin_start(&adm, &ao))
		goto out;
	if (plex_alloc(&p, &po, st, &lg, adm))
		goto out;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: wake the poll */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	LOGI(&lg, NULL, "mode %s (tone %ld Hz), handshake delay %ld ms", mode,
	    tone_hz, po.handshake_delay_ms);
	while (!stop_flag)
		plex_service(p);
	LOGI(&lg, NULL, "stopping");
	rc = 0;
out:
	plex_free(p);
	conv_clip_free(clip);
	admin_stop(adm);
	stats_free(st);
	metrics_free(m);
	return rc;
}
