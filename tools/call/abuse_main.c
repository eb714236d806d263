/*
 * abuse_main.c - exoplex-abuse: a misbehaving Exotel, for robustness tests.
 *
 * Parse the command line, run each asked-for kind of bad input on its own
 * connection (one after another), then the churn, printing one JSON line
 * per run. Loopback testing only: every run is bounded in time.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "abuse.h"
#include "base64.h"
#include "opts.h"

#define EXIT_ARGS 2
#define EXIT_CONNECT 3
#define MAX_CHURN 100000

static void
usage(void)
{
	printf("usage: exoplex-abuse --url ws://HOST:PORT/exotel?... "
	       "[--kind K[,K...]|all] [--churn N]\n"
	       "  --url URL           ws:// only; user:pass@ becomes Basic "
	       "auth\n"
	       "  --bearer TOKEN      Authorization: Bearer TOKEN\n"
	       "  --kind LIST         comma-separated kinds, or all (every "
	       "one but start_only):\n"
	       "                      ");
	for (int k = 0; k < AB_N; k++)
		printf("%s%s", abuse_kind_name((enum abuse_kind)k),
		    k + 1 < AB_N
		        ? (k % 5 == 4 ? ",\n                      " : ",")
		        : "\n");
	printf("  --after-start       a valid connected+start before the bad "
	       "input (where it applies)\n"
	       "  --rate HZ           rate of the valid start/media (default: "
	       "URL sample-rate, else 8000)\n"
	       "  --wait-ms MS        wait for the server's reaction (500)\n"
	       "  --start-wait-ms MS  no_start waits this long (11000)\n"
	       "  --huge-bytes N      size of the huge frame (1048576)\n"
	       "  --flood N           messages in a flood (1000)\n"
	       "  --churn N           N rapid connect/disconnects (at most "
	       "%d)\n"
	       "  --churn-ms MS       the churn stops after this long "
	       "(20000)\n"
	       "  --churn-start       churn also sends a valid start, then "
	       "drops\n"
	       "  --timeout-ms MS     connect/upgrade/each write (3000)\n"
	       "  --seed N            ids and junk bytes (default: random)\n"
	       "Prints one JSON line per run. Exit 0; 2 bad arguments; 3 the "
	       "server could not be reached.\n",
	    MAX_CHURN);
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno  = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return EINVAL;
	*out = v;
	return 0;
}

static int
parse_kinds(const char *s, bool want[AB_N])
{
	char buf[1024], *save = NULL;

	if (strcmp(s, "all") == 0) {
		for (int k = 0; k < AB_N; k++)
			want[k] = abuse_kind_in_all((enum abuse_kind)k);
		return 0;
	}
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return EINVAL;
	for (char *t = strtok_r(buf, ",", &save); t;
	     t       = strtok_r(NULL, ",", &save)) {
		int k = abuse_kind_parse(t);
		if (k < 0) {
			fprintf(
			    stderr, "exoplex-abuse: unknown kind '%s'\n", t);
			return EINVAL;
		}
		want[k] = true;
	}
	return 0;
}

static void
emit(char *json)
{
	if (json) {
		puts(json);
		fflush(stdout);
		free(json);
	}
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "bearer", required_argument, NULL, 'b' },
		{ "kind", required_argument, NULL, 'k' },
		{ "after-start", no_argument, NULL, 'a' },
		{ "rate", required_argument, NULL, 'r' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "start-wait-ms", required_argument, NULL, 'W' },
		{ "huge-bytes", required_argument, NULL, 'H' },
		{ "flood", required_argument, NULL, 'f' },
		{ "churn", required_argument, NULL, 'c' },
		{ "churn-ms", required_argument, NULL, 'C' },
		{ "churn-start", no_argument, NULL, 'S' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct call_opts  u; /* only its URL fields */
	struct abuse_opts o          = { .wait_ms = 500,
		         .start_wait_ms           = 11000,
		         .huge_bytes              = 1u << 20,
		         .flood_n                 = 1000,
		         .io_timeout_ms           = 3000 };
	bool              want[AB_N] = { false }, any = false;
	bool              seed_set = false, churn_start = false;
	const char       *url = NULL, *bearer = NULL;
	long              v, churn = 0, churn_ms = 20000;
	char              err[512], host_hdr[300], auth[512];
	int               c, li = 0, status = 0;

	memset(&u, 0, sizeof(u));
	while ((c = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		int bad = 0;
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'b':
			bearer = optarg;
			break;
		case 'k':
			bad = parse_kinds(optarg, want);
			break;
		case 'a':
			o.after_start = true;
			break;
		case 'r':
			bad    = parse_int(optarg, 1, 192000, &v);
			o.rate = (int)v;
			break;
		case 'w':
			bad       = parse_int(optarg, 0, 600000, &v);
			o.wait_ms = (int)v;
			break;
		case 'W':
			bad             = parse_int(optarg, 0, 600000, &v);
			o.start_wait_ms = (int)v;
			break;
		case 'H':
			bad          = parse_int(optarg, 16, 64L << 20, &v);
			o.huge_bytes = (size_t)v;
			break;
		case 'f':
			bad       = parse_int(optarg, 1, 100000, &v);
			o.flood_n = (unsigned)v;
			break;
		case 'c':
			bad = parse_int(optarg, 0, MAX_CHURN, &churn);
			break;
		case 'C':
			bad = parse_int(optarg, 1, 600000, &churn_ms);
			break;
		case 'S':
			churn_start = true;
			break;
		case 't':
			bad             = parse_int(optarg, 1, 60000, &v);
			o.io_timeout_ms = (int)v;
			break;
		case 's':
			o.seed   = strtoull(optarg, NULL, 0);
			seed_set = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			fprintf(stderr, "exoplex-abuse: try --help\n");
			return EXIT_ARGS;
		}
		if (bad) {
			fprintf(stderr,
			    "exoplex-abuse: bad value '%s' for --%s\n", optarg,
			    lo[li].name);
			return EXIT_ARGS;
		}
	}
	for (int k = 0; k < AB_N; k++)
		any |= want[k];
	if (!url || (!any && churn == 0) || optind != argc) {
		fprintf(stderr,
		    "exoplex-abuse: need --url and --kind or --churn (try "
		    "--help)\n");
		return EXIT_ARGS;
	}
	if (opts_split_url(&u, url, err, sizeof(err)) != 0) {
		fprintf(stderr, "exoplex-abuse: %s\n", err);
		return EXIT_ARGS;
	}
	if (u.tls) {
		fprintf(stderr, "exoplex-abuse: ws:// only\n");
		return EXIT_ARGS;
	}
	if (!o.rate) {
		const char *q = strstr(u.path, "sample-rate=");
		if (!q)
			q = strstr(u.path, "sample_rate=");
		o.rate = q ? atoi(q + 12) : 8000;
		if (o.rate <= 0)
			o.rate = 8000;
	}
	if (!seed_set
	    && getrandom(&o.seed, sizeof(o.seed), 0)
	        != (ssize_t)sizeof(o.seed))
		o.seed = (uint64_t)time(NULL);
	snprintf(host_hdr, sizeof(host_hdr), "%s%s%s:%d",
	    strchr(u.host, ':') ? "[" : "", u.host,
	    strchr(u.host, ':') ? "]" : "", u.port);
	if (u.userinfo[0]) {
		char b64[400];
		if (b64_encoded_len(strlen(u.userinfo)) >= sizeof(b64)) {
			fprintf(stderr, "exoplex-abuse: user:pass too long\n");
			return EXIT_ARGS;
		}
		b64_encode(
		    b64, (const uint8_t *)u.userinfo, strlen(u.userinfo));
		snprintf(auth, sizeof(auth), "Basic %s", b64);
		o.auth = auth;
	} else if (bearer) {
		snprintf(auth, sizeof(auth), "Bearer %s", bearer);
		o.auth = auth;
	}
	o.host     = u.host;
	o.port     = u.port;
	o.host_hdr = host_hdr;
	o.path     = u.path;

	for (int k = 0; k < AB_N; k++) {
		struct abuse_result r;
		if (!want[k])
			continue;
		if (abuse_run((enum abuse_kind)k, &o, &r) != 0) {
			fprintf(stderr, "exoplex-abuse: out of memory\n");
			return 1;
		}
		if (r.error)
			status = EXIT_CONNECT;
		emit(abuse_result_json(&r));
	}
	if (churn > 0) {
		struct abuse_churn ch;
		abuse_churn_run(
		    &o, (unsigned)churn, (int)churn_ms, churn_start, &ch);
		if (ch.tcp_connected == 0)
			status = EXIT_CONNECT;
		emit(abuse_churn_json(&ch));
	}
	return status;
}
