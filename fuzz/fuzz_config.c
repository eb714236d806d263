/*
 * fuzz_config.c - the configuration: flags and environment variables
 * through cfg_parse (common/config.c) with a table like the processes'
 * (the common settings, the webhook settings, ingress's and egress's
 * kinds of setting), then what the processes do with the values: auth
 * lists, PersonaPlex URLs, addresses, bus and tap URLs, log settings.
 *
 * The input is lines: "NAME=value" with an upper-case NAME sets that
 * environment variable, any other line is one argv entry. Oracles: a
 * parse either succeeds or names what is wrong; a bad auth entry is named
 * by position, never by its text (auth.h).
 */
#include <errno.h>
#include <string.h>

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "fuzz.h"
#include "hooks.h"
#include "log.h"
#include "ppurl.h"
#include "webhook.h"

#define MAXARGS 64
#define MAXENV 64
#define NAMEMAX 256
/* Secrets in the seeds carry this, so leaks are seen whatever the
 * messages say. */
#define MARK "SECRETMARK"

/* @file would read files: not something to fuzz on a shared machine. */
static int
check_headers(const char *v, char *err, size_t errlen)
{
	if (v[0] == '@') {
		snprintf(err, errlen, "no @files here");
		return EINVAL;
	}
	return webhook_check_headers(v, err, errlen);
}

struct vals {
	struct cfg_common   cc;
	struct webhook_opts wo;
	const char         *listen, *basic, *tokens, *urls, *mode, *ca;
	long                chunk_ms, max_calls;
	bool                insecure;
};

static size_t
table(struct cfg_opt *o, struct vals *v)
{
	size_t n = cfg_common_opts(o, &v->cc, "127.0.0.1:9100");
	size_t h = n;

	n += hooks_cfg_opts(o + n, &v->wo);
	for (size_t i = h; i < n; i++)
		if (!strcmp(o[i].flag, "webhook-headers"))
			o[i].check = check_headers;
	o[n++] = (struct cfg_opt) { "listen", "EXOPLEX_LISTEN", "0.0.0.0:8080",
		CFG_ADDR, &v->listen, 0, 0, NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "auth-basic", "EXOPLEX_AUTH_BASIC", NULL,
		CFG_STR, &v->basic, 0, 0, NULL, true, "", NULL };
	o[n++] = (struct cfg_opt) { "auth-tokens", "EXOPLEX_AUTH_TOKENS", NULL,
		CFG_STR, &v->tokens, 0, 0, NULL, true, "", NULL };
	o[n++] = (struct cfg_opt) { "personaplex-urls",
		"EXOPLEX_PERSONAPLEX_URLS", NULL, CFG_STR, &v->urls, 0, 0,
		NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "personaplex-insecure",
		"EXOPLEX_PERSONAPLEX_INSECURE", "0", CFG_BOOL, &v->insecure, 0,
		0, NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "personaplex-ca", "EXOPLEX_PERSONAPLEX_CA",
		NULL, CFG_STR, &v->ca, 0, 0, NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "playback-chunk-ms",
		"EXOPLEX_PLAYBACK_CHUNK_MS", "100", CFG_INT, &v->chunk_ms, 20,
		1000, NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "max-calls", "EXOPLEX_MAX_CALLS", "1000",
		CFG_INT, &v->max_calls, 1, 100000, NULL, false, "", NULL };
	o[n++] = (struct cfg_opt) { "mode", "EXOPLEX_MODE", "agent", CFG_ENUM,
		&v->mode, 0, 0, "agent|listen|off", false, "", NULL };
	return n;
}

/* What the processes do with parsed settings. */
static void
use(struct vals *v)
{
	char         err[512], host[256], url[512];
	int          port;
	struct log   lg;
	struct auth *a = NULL;

	if (log_init(&lg, "fuzz", v->cc.log_format, v->cc.log_level) != 0)
		return;
	if (v->cc.admin) {
		FUZZ_CHECK(
		    cfg_split_addr(v->cc.admin, host, sizeof(host), &port)
		    == 0);
		FUZZ_CHECK(port >= 0 && port <= 65535);
	}
	if (v->listen)
		FUZZ_CHECK(
		    cfg_split_addr(v->listen, host, sizeof(host), &port) == 0);
	cfg_bus_url(
	    &v->cc, v->cc.bus_transcoder, "transcoder", url, sizeof(url));
	FUZZ_CHECK(strlen(url) < sizeof(url));
	char tap[512];
	int  rv = bus_tap_url(
	     v->cc.bus_tap, "ingress", "transcoder", url, tap, sizeof(tap));
	FUZZ_CHECK(rv == 0 || rv == ENOENT || rv == EINVAL);
	rv = auth_alloc(&a, v->basic, v->tokens, err, sizeof(err));
	FUZZ_CHECK(rv == 0 || rv == EINVAL);
	if (rv == 0) {
		enum auth_via via;
		auth_upgrade(a, "Basic dXNlcjpwYXNz", "tok", &via);
		auth_token_ok(a, v->tokens ? v->tokens : "");
		auth_free(a);
	} else {
		/* A bad entry is named by position, never by its text. */
		FUZZ_CHECK(!strstr(err, MARK));
	}
	if (v->urls) {
		char *copy = strdup(v->urls), *save = NULL;
		FUZZ_CHECK(copy);
		for (char *t = strtok_r(copy, ",", &save); t;
		     t       = strtok_r(NULL, ",", &save)) {
			struct ppurl u;
			char         tgt[4096];
			if (ppurl_parse(&u, t, err, sizeof(err)) != 0)
				continue;
			FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
			rv = ppurl_target(&u, "NATF2.pt", t, 0, tgt,
			    sizeof(tgt), err, sizeof(err));
			FUZZ_CHECK(rv == 0 || rv == EINVAL || rv == E2BIG);
		}
		free(copy);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_opt opts[CFG_COMMON_N + HOOKS_CFG_N + 16];
	struct vals    v;
	char          *text = malloc(size + 1), *argv[MAXARGS + 1], err[512];
	char          *envs[MAXENV];
	int            argc = 1, nenv = 0, rv;
	size_t         n;

	memset(&v, 0, sizeof(v));
	n = table(opts, &v);
	FUZZ_CHECK(text && n <= sizeof(opts) / sizeof(opts[0]));
	for (size_t i = 0; i < n; i++)
		if (opts[i].env)
			unsetenv(opts[i].env);
	memcpy(text, data, size);
	text[size] = '\0';
	argv[0]    = "exoplex-fuzz";
	/* putenv, not setenv: glibc keeps every value ever given to setenv
	 * (so old getenv results stay valid), which millions of inputs
	 * turn into gigabytes. putenv points environ into text instead. */
	for (char *line = text, *nl; line; line = nl) {
		if ((nl = strchr(line, '\n')))
			*nl++ = '\0';
		char *eq = strchr(line, '=');
		if (line[0] >= 'A' && line[0] <= 'Z' && eq
		    && eq - line < NAMEMAX && nenv < MAXENV) {
			putenv(line);
			envs[nenv++] = line;
		} else if (strcmp(line, "--help") && strcmp(line, "-h")
		    && argc < MAXARGS)
			argv[argc++] = line;
	}
	argv[argc] = NULL;
	err[0]     = '\0';
	rv = cfg_parse(opts, n, argc, argv, "exoplex-fuzz", err, sizeof(err));
	FUZZ_CHECK(rv == 0 || rv == EINVAL);
	if (rv == EINVAL)
		FUZZ_CHECK(err[0] != '\0');
	else
		use(&v);
	/* Leave no variable behind (environ points into text). */
	for (int i = 0; i < nenv; i++) {
		char   name[NAMEMAX];
		size_t k = (size_t)(strchr(envs[i], '=') - envs[i]);
		memcpy(name, envs[i], k);
		name[k] = '\0';
		unsetenv(name);
	}
	free(text);
	return 0;
}
