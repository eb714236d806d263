/*
 * config.h - settings from --flags and environment variables.
 *
 * Each process describes its settings as a table of struct cfg_opt. A
 * setting's value comes from its --flag if given, else its environment
 * variable, else its default; it is then validated, and the first bad
 * setting stops the process with a message that names it. The table owns
 * nothing: strings stored through dst point into argv, the environment or
 * the table's defaults, which all live as long as the process.
 */
#ifndef EXO_CONFIG_H
#define EXO_CONFIG_H

#include <stddef.h>
#include <stdbool.h>

enum cfg_type {
	CFG_STR,  /* dst: const char ** (NULL when unset and no default) */
	CFG_INT,  /* dst: long *, checked against [min, max] */
	CFG_BOOL, /* dst: bool *; 1/0, true/false, yes/no, on/off */
	CFG_ADDR, /* dst: const char **; "host:port" or ":port" */
	CFG_ENUM, /* dst: const char **; one of choices ("a|b|c") */
};

struct cfg_opt {
	const char   *flag;    /* "listen" for --listen */
	const char   *env;     /* "EXOPLEX_LISTEN"; NULL for flag-only */
	const char   *def;     /* default as a string; NULL = unset */
	enum cfg_type type;
	void         *dst;
	long          min, max; /* CFG_INT */
	const char   *choices;  /* CFG_ENUM */
	bool          secret;   /* value never printed */
	const char   *help;
	/* Optional extra check: return 0 or fill err and return EINVAL. */
	int (*check)(const char *value, char *err, size_t errlen);
};

/* Parses argv and the environment into the table's dst pointers.
 * Returns 0; 1 after printing usage for --help; EINVAL with err filled
 * ("EXOPLEX_X (--x): '...' is not ...") for a bad or unknown setting. */
int cfg_parse(const struct cfg_opt *opts, size_t n, int argc, char **argv,
    const char *usage_name, char *err, size_t errlen);

/* Prints a usage table (flag, variable, default, help) to stdout. */
void cfg_usage(const struct cfg_opt *opts, size_t n, const char *name);

/* Splits "host:port" into host (may be "" for all interfaces) and port.
 * Returns 0 or EINVAL. */
int cfg_split_addr(const char *addr, char *host, size_t hostlen, int *port);

/* Settings every process has. */
struct cfg_common {
	const char *bus_dir;
	const char *bus_transcoder; /* ingress ↔ transcoder link URL */
	const char *bus_egress;     /* transcoder ↔ egress link URL */
	const char *bus_control;    /* ingress ↔ egress link URL */
	const char *admin;
	const char *log_format;
	const char *log_level;
	const char *bus_tap;        /* NULL: no tap (see bus_opts.tap) */
	long        bus_hold_us;    /* bus_opts.hold_us */
	long        bus_hold_max_us; /* bus_opts.hold_max_us */
	const char *sched_policy; /* schedpol_set's name */
};

/* Fills out[0..CFG_COMMON_N) with the common settings bound to c.
 * admin_default is the process's admin address. Returns CFG_COMMON_N. */
#define CFG_COMMON_N 11
size_t cfg_common_opts(struct cfg_opt *out, struct cfg_common *c,
    const char *admin_default);

/* Resolves a link URL: an unset URL becomes ipc://<bus_dir>/<name>.sock.
 * Writes into buf and returns buf. */
const char *cfg_bus_url(const struct cfg_common *c, const char *url,
    const char *name, char *buf, size_t buflen);

#endif
