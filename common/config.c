/*
 * config.c - --flags over environment variables over defaults.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "schedpol.h"

static const char *
opt_name(const struct cfg_opt *o, char *buf, size_t len)
{
	if (o->env)
		snprintf(buf, len, "%s (--%s)", o->env, o->flag);
	else
		snprintf(buf, len, "--%s", o->flag);
	return buf;
}

int
cfg_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t hl;

	if (!addr || !*addr)
		return EINVAL;
	if (addr[0] == '[') { /* [::1]:8080 */
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':')
			return EINVAL;
		hl = (size_t) (rb - addr - 1);
		if (hl >= hostlen)
			return EINVAL;
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return EINVAL;
		hl = (size_t) (colon - addr);
		if (hl >= hostlen || memchr(addr, ':', hl))
			return EINVAL;
		memcpy(host, addr, hl);
		host[hl] = '\0';
	}
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return EINVAL;
	*port = (int) p;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *yes[] = { "1", "true", "yes", "on" };
	static const char *no[] = { "0", "false", "no", "off" };
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return EINVAL;
}

static int
in_choices(const char *v, const char *choices)
{
	size_t n = strlen(v);
	const char *p = choices;
	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t) (bar - p) : strlen(p);
		if (len == n && !strncmp(p, v, n))
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Stores value (non-NULL) into o->dst after checking it. */
static int
apply(const struct cfg_opt *o, const char *v, char *err, size_t errlen)
{
	char name[128], host[256];
	int port;

	opt_name(o, name, sizeof(name));
	switch (o->type) {
	case CFG_STR:
		break;
	case CFG_INT: {
		char *end;
		errno = 0;
		long x = strtol(v, &end, 10);
		if (errno || end == v || *end) {
			snprintf(err, errlen, "%s: '%s' is not a number", name,
			    v);
			return EINVAL;
		}
		if (x < o->min || x > o->max) {
			snprintf(err, errlen, "%s: %ld is outside %ld..%ld",
			    name, x, o->min, o->max);
			return EINVAL;
		}
		*(long *) o->dst = x;
		break;
	}
	case CFG_BOOL:
		if (parse_bool(v, (bool *) o->dst)) {
			snprintf(err, errlen,
			    "%s: '%s' is not a boolean (1/0, true/false, "
			    "yes/no, on/off)",
			    name, v);
			return EINVAL;
		}
		break;
	case CFG_ADDR:
		if (cfg_split_addr(v, host, sizeof(host), &port)) {
			snprintf(err, errlen,
			    "%s: '%s' is not host:port (e.g. 0.0.0.0:8080 or "
			    ":8080)",
			    name, v);
			return EINVAL;
		}
		break;
	case CFG_ENUM:
		if (!in_choices(v, o->choices)) {
			snprintf(err, errlen, "%s: '%s' is not one of %s", name,
			    v, o->choices);
			return EINVAL;
		}
		break;
	}
	if (o->check) {
		char why[256] = "";
		if (o->check(v, why, sizeof(why))) {
			snprintf(err, errlen, "%s: %s", name, why);
			return EINVAL;
		}
	}
	if (o->type == CFG_STR || o->type == CFG_ADDR || o->type == CFG_ENUM)
		*(const char **) o->dst = v;
	return 0;
}

void
cfg_usage(const struct cfg_opt *opts, size_t n, const char *name)
{
	printf("usage: %s [--flag value | --flag=value]...\n\n", name);
	printf("Every setting is a flag and, where shown, an environment "
	       "variable;\nthe flag wins.\n\n");
	for (size_t i = 0; i < n; i++) {
		const struct cfg_opt *o = &opts[i];
		printf("  --%-24s %s\n", o->flag, o->help ? o->help : "");
		printf("    %-24s   default: %s\n", o->env ? o->env : "",
		    o->secret ? (o->def ? "(secret)" : "unset")
			      : (o->def ? o->def : "unset"));
	}
}

int
cfg_parse(const struct cfg_opt *opts, size_t n, int argc, char **argv,
    const char *usage_name, char *err, size_t errlen)
{
	const char *given[128] = { 0 };
	int err_;

	if (n > 128) {
		snprintf(err, errlen, "too many settings");
		return EINVAL;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t flen;
		size_t k;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			cfg_usage(opts, n, usage_name);
			return 1;
		}
		if (strncmp(a, "--", 2)) {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return EINVAL;
		}
		a += 2;
		const char *eq = strchr(a, '=');
		flen = eq ? (size_t) (eq - a) : strlen(a);
		for (k = 0; k < n; k++)
			if (strlen(opts[k].flag) == flen &&
			    !strncmp(opts[k].flag, a, flen))
				break;
		if (k == n) {
			snprintf(err, errlen, "unknown flag '--%.*s' (see --help)",
			    (int) flen, a);
			return EINVAL;
		}
		if (eq)
			val = eq + 1;
		else if (opts[k].type == CFG_BOOL &&
		    (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)))
			val = "1"; /* a bare boolean flag means true */
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "--%s needs a value",
			    opts[k].flag);
			return EINVAL;
		}
		given[k] = val;
	}
	for (size_t k = 0; k < n; k++) {
		const struct cfg_opt *o = &opts[k];
		const char *v = given[k];
		if (!v && o->env) {
			v = getenv(o->env);
			if (v && !*v)
				v = NULL; /* VAR= means unset */
		}
		if (!v)
			v = o->def;
		if (!v) {
			if (o->type == CFG_STR || o->type == CFG_ADDR ||
			    o->type == CFG_ENUM)
				*(const char **) o->dst = NULL;
			continue;
		}
		if ((err_ = apply(o, v, err, errlen)) != 0)
			return err_;
	}
	return 0;
}

static int
check_log_format(const char *v, char *err, size_t len)
{
	if (strcasecmp(v, "text") && strcasecmp(v, "json")) {
		snprintf(err, len, "'%s' is not text or json", v);
		return EINVAL;
	}
	return 0;
}

static int
check_log_level(const char *v, char *err, size_t len)
{
	static const char *ok[] = { "debug", "info", "warn", "warning",
		"error" };
	for (int i = 0; i < 5; i++)
		if (!strcasecmp(v, ok[i]))
			return 0;
	snprintf(err, len, "'%s' is not debug, info, warn or error", v);
	return EINVAL;
}

static int
check_bus_url(const char *v, char *err, size_t len)
{
	if (strncmp(v, "ipc://", 6) && strncmp(v, "tcp://", 6) &&
	    strncmp(v, "tcp4://", 7) && strncmp(v, "tcp6://", 7) &&
	    strncmp(v, "inproc://", 9)) {
		snprintf(err, len,
		    "'%s' is not an NNG URL (ipc://path or tcp://host:port)",
		    v);
		return EINVAL;
	}
	return 0;
}

size_t
cfg_common_opts(struct cfg_opt *out, struct cfg_common *c,
    const char *admin_default)
{
	const struct cfg_opt common[CFG_COMMON_N] = {
		{ .flag = "bus-dir", .env = "EXOPLEX_BUS_DIR",
		    .def = "/run/exoplex", .type = CFG_STR, .dst = &c->bus_dir,
		    .help = "directory of the ipc:// bus sockets" },
		{ .flag = "bus-transcoder", .env = "EXOPLEX_BUS_TRANSCODER",
		    .type = CFG_STR, .dst = &c->bus_transcoder,
		    .check = check_bus_url,
		    .help = "ingress<->transcoder link URL (transcoder "
			    "listens); default ipc://BUS_DIR/transcoder.sock" },
		{ .flag = "bus-egress", .env = "EXOPLEX_BUS_EGRESS",
		    .type = CFG_STR, .dst = &c->bus_egress,
		    .check = check_bus_url,
		    .help = "transcoder<->egress link URL (egress listens); "
			    "default ipc://BUS_DIR/egress.sock" },
		{ .flag = "bus-control", .env = "EXOPLEX_BUS_CONTROL",
		    .type = CFG_STR, .dst = &c->bus_control,
		    .check = check_bus_url,
		    .help = "ingress<->egress link URL (egress listens); "
			    "default ipc://BUS_DIR/control.sock" },
		{ .flag = "admin", .env = "EXOPLEX_ADMIN", .def = admin_default,
		    .type = CFG_ADDR, .dst = &c->admin,
		    .help = "admin HTTP address (/healthz, /readyz, /metrics)" },
		{ .flag = "log-format", .env = "EXOPLEX_LOG_FORMAT",
		    .def = "text", .type = CFG_STR, .dst = &c->log_format,
		    .check = check_log_format, .help = "text or json" },
		{ .flag = "log-level", .env = "EXOPLEX_LOG_LEVEL", .def = "info",
		    .type = CFG_STR, .dst = &c->log_level,
		    .check = check_log_level,
		    .help = "debug, info, warn or error" },
		{ .flag = "bus-tap", .env = "EXOPLEX_BUS_TAP",
		    .type = CFG_STR, .dst = &c->bus_tap,
		    .help = "publish copies of bus frames for exoplex-tap: 1, "
			    "a directory, or an NNG URL (docs/debugging.md)" },
		{ .flag = "bus-hold-us", .env = "EXOPLEX_BUS_HOLD_US",
		    .def = "1000", .type = CFG_INT, .dst = &c->bus_hold_us,
		    .min = 0, .max = 20000,
		    .help = "hold bus frames up to this many microseconds so "
			    "calls' frames share NNG messages; 0 = send every "
			    "loop turn (docs/bus.md)" },
		{ .flag = "bus-hold-max-us", .env = "EXOPLEX_BUS_HOLD_MAX_US",
		    .def = "4000", .type = CFG_INT, .dst = &c->bus_hold_max_us,
		    .min = 0, .max = 20000,
		    .help = "while the audio a link sends is already late, "
			    "stretch its hold up to this many microseconds "
			    "(fewer messages when CPU is short; docs/bus.md)" },
		{ .flag = "sched-policy", .env = "EXOPLEX_SCHED_POLICY",
		    .def = "batch", .type = CFG_ENUM, .dst = &c->sched_policy,
		    .choices = SCHEDPOL_CHOICES,
		    .help = "Linux scheduling policy of every thread: batch "
			    "(no preemption on wake-up: half the thread "
			    "switches; docs/performance.md) or normal" },
	};
	memcpy(out, common, sizeof(common));
	return CFG_COMMON_N;
}

const char *
cfg_bus_url(const struct cfg_common *c, const char *url, const char *name,
    char *buf, size_t buflen)
{
	if (url)
		snprintf(buf, buflen, "%s", url);
	else
		snprintf(buf, buflen, "ipc://%s/%s.sock", c->bus_dir, name);
	return buf;
}
