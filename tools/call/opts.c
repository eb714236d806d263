/*
 * opts.c - parse exoplex-call's command line.
 *
 * getopt_long rather than common/config: the tool takes repeatable flags
 * (--custom, --dtmf) and has no environment settings.
 */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "ws://127.0.0.1:8080/exotel?sample-rate=8000"

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return EINVAL;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes src[0..n) into dst (size dstlen). Returns 0 or EINVAL. */
static int
pct_decode(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			if (i + 2 >= n)
				return EINVAL;
			int h = hexval(src[i + 1]), l = hexval(src[i + 2]);
			if (h < 0 || l < 0)
				return EINVAL;
			c = h * 16 + l;
			i += 2;
		}
		if (o + 1 >= dstlen)
			return EINVAL;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

int
opts_split_url(struct call_opts *o, const char *url, char *err, size_t errlen)
{
	const char *p;

	o->url = url;
	if (strncmp(url, "ws://", 5) == 0) {
		o->tls = false;
		p      = url + 5;
	} else if (strncmp(url, "wss://", 6) == 0) {
		o->tls = true;
		p      = url + 6;
	} else {
		return fail(err, errlen,
		    "--url: '%s' is not a ws:// or wss:// URL", url);
	}
	size_t      alen = strcspn(p, "/?#");
	const char *rest = p + alen;
	const char *at   = NULL;
	for (const char *q = p; q < rest; q++)
		if (*q == '@')
			at = q;
	o->userinfo[0] = '\0';
	/* What logs and the summary show: never the password. */
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		snprintf(o->url_shown, sizeof(o->url_shown), "%.*s%s%s",
		    (int)((colon ? colon : at) - url), url,
		    colon ? ":***" : "", at);
	} else {
		snprintf(o->url_shown, sizeof(o->url_shown), "%s", url);
	}
	if (at) {
		if (pct_decode(
		        o->userinfo, sizeof(o->userinfo), p, (size_t)(at - p))
		        != 0
		    || !strchr(o->userinfo, ':'))
			return fail(err, errlen,
			    "--url: bad user:password in '%s'", url);
		p = at + 1;
	}
	size_t hlen = (size_t)(rest - p);
	o->port     = o->tls ? 443 : 80;
	if (hlen && p[0] == '[') {
		const char *close = memchr(p, ']', hlen);
		if (!close)
			return fail(
			    err, errlen, "--url: bad host in '%s'", url);
		size_t n = (size_t)(close - p - 1);
		if (n == 0 || n >= sizeof(o->host))
			return fail(
			    err, errlen, "--url: bad host in '%s'", url);
		memcpy(o->host, p + 1, n);
		o->host[n] = '\0';
		p          = close + 1;
		hlen       = (size_t)(rest - p);
		if (hlen && *p != ':')
			return fail(
			    err, errlen, "--url: bad host in '%s'", url);
	} else {
		const char *colon = memchr(p, ':', hlen);
		size_t      n     = colon ? (size_t)(colon - p) : hlen;
		if (n == 0 || n >= sizeof(o->host))
			return fail(
			    err, errlen, "--url: no host in '%s'", url);
		memcpy(o->host, p, n);
		o->host[n] = '\0';
		p += n;
		hlen -= n;
	}
	if (hlen) { /* ":port" */
		char *end;
		long  port = strtol(p + 1, &end, 10);
		if (end != rest || port < 1 || port > 65535 || hlen < 2)
			return fail(
			    err, errlen, "--url: bad port in '%s'", url);
		o->port = (int)port;
	}
	const char *hash = strchr(rest, '#');
	size_t      plen = hash ? (size_t)(hash - rest) : strlen(rest);
	int         n    = snprintf(o->path, sizeof(o->path), "%s%.*s",
            (plen && rest[0] == '/') ? "" : "/", (int)plen, rest);
	if (n < 0 || (size_t)n >= sizeof(o->path))
		return fail(err, errlen, "--url: path too long");
	return 0;
}

/* The rate named by ?sample-rate= or ?sample_rate=, or 0. */
static int
url_rate(const char *path)
{
	const char *q = strchr(path, '?');
	while (q) {
		q++;
		if (strncmp(q, "sample-rate=", 12) == 0
		    || strncmp(q, "sample_rate=", 12) == 0)
			return atoi(q + 12);
		q = strchr(q, '&');
	}
	return 0;
}

static int
parse_double(const char *s, double *out)
{
	char *end;
	errno    = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end)
		return EINVAL;
	*out = v;
	return 0;
}

static int
parse_long(const char *s, long *out)
{
	char *end;
	errno  = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return EINVAL;
	*out = v;
	return 0;
}

/* "D@MS[:DUR]" items separated by commas. */
static int
parse_dtmf(struct call_opts *o, const char *s, char *err, size_t errlen)
{
	while (*s) {
		char          digit = *s;
		unsigned long at, dur = 200;
		char         *end;
		if (!strchr("0123456789*#", digit) || s[1] != '@')
			return fail(err, errlen,
			    "--dtmf: '%s' is not DIGIT@MS[:DURATION]", s);
		at = strtoul(s + 2, &end, 10);
		if (end == s + 2)
			return fail(err, errlen, "--dtmf: no time in '%s'", s);
		if (*end == ':') {
			const char *d = end + 1;
			dur           = strtoul(d, &end, 10);
			if (end == d)
				return fail(err, errlen,
				    "--dtmf: no duration in '%s'", s);
		}
		if (*end && *end != ',')
			return fail(err, errlen, "--dtmf: junk in '%s'", s);
		if (o->ndtmf == OPTS_MAX_DTMF)
			return fail(err, errlen, "--dtmf: more than %d digits",
			    OPTS_MAX_DTMF);
		o->dtmf[o->ndtmf++] = (struct opts_dtmf) { digit, (unsigned)at,
			(unsigned)dur };
		s                   = *end ? end + 1 : end;
	}
	return 0;
}

void
opts_usage(const char *prog)
{
	printf(
	    "usage: %s [options]\n"
	    "Simulates Exotel calling a bot's WebSocket: connected, start,\n"
	    "20 ms media in real time, stop; plays back and checks what\n"
	    "the bot sends; prints a JSON summary on stdout.\n\n"
	    "  --url URL             "
	    "ws[s]://[user:pass@]host[:port]/path?query\n"
	    "                        (default " DEFAULT_URL ")\n"
	    "  --rate HZ             8000|16000|24000 (default: the URL's\n"
	    "                        sample-rate, else 8000)\n"
	    "  --chunk-ms MS         media per message, multiple of 20 (20)\n"
	    "  --seconds S           audio to send (10)\n"
	    "  --tone HZ             send a sine (default: 1000 Hz)\n"
	    "  --level DBFS          tone peak level (-6)\n"
	    "  --wav FILE            send a mono PCM16 WAV at --rate, then\n"
	    "                        silence\n"
	    "  --signal speech       send a speech-like test signal\n"
	    "  --silence             send digital silence\n"
	    "  --from N --to N --account A   start fields\n"
	    "  --stream-sid S --call-sid S   fixed ids (one call only)\n"
	    "  --custom K[=V]        a custom parameter (repeatable)\n"
	    "  --custom-empty        send custom_parameters as {}\n"
	    "  --numbers             numbers as JSON numbers, not strings\n"
	    "  --dtmf D@MS[:DUR],..  send DTMF digits at ms after start\n"
	    "  --stop-reason R       callended|stopped|none (callended);\n"
	    "                        none closes without a stop\n"
	    "  --linger-ms MS        wait for the server's close (1000)\n"
	    "  --connect-timeout-ms MS  (10000)\n"
	    "  --clear-marks P       drop|echo marks pending at a clear\n"
	    "                        (drop)\n"
	    "  --max-lead-ms MS      playout lead that counts as a\n"
	    "                        violation (1000)\n"
	    "  --gap-ms MS           report quiet runs (underrun or\n"
	    "                        silence) this long as gaps (100)\n"
	    "  --record FILE         write what the caller heard (a %%d in\n"
	    "                        FILE records every call)\n"
	    "  --calls N             concurrent calls on one tick (1)\n"
	    "  --ramp-ms MS          spread call starts over MS (0)\n"
	    "  --spread              give the calls phases spread over the\n"
	    "                        20 ms, as independent calls have (the\n"
	    "                        tick runs every 2 ms); default: every\n"
	    "                        call on the same 20 ms boundary\n"
	    "  --seed N              random seed for ids and the signal\n"
	    "  --per-call            add a per-call array to the summary\n"
	    "  --analyze-seconds S   received audio kept per call for\n"
	    "                        dominant_hz and rms_dbfs (60)\n"
	    "  --bearer TOKEN        send Authorization: Bearer TOKEN\n"
	    "  --insecure            accept any TLS certificate\n"
	    "  --ca FILE             CA bundle for wss://\n"
	    "  --expect-hz F         received dominant frequency F ...\n"
	    "  --expect-tolerance R  ... within R relative (0.02)\n"
	    "  --expect-min-seconds S  at least S s of audio received\n"
	    "  --expect-no-violations\n"
	    "  --expect-closed-by server|client\n"
	    "  --expect-close-code N\n"
	    "  -v, --verbose         log every message\n"
	    "Exit: 0 ok, 1 an expectation failed, 2 bad arguments,\n"
	    "3 a connection failed.\n",
	    prog);
}

enum {
	O_URL = 256,
	O_RATE,
	O_CHUNK,
	O_SECONDS,
	O_TONE,
	O_LEVEL,
	O_WAV,
	O_SIGNAL,
	O_SILENCE,
	O_FROM,
	O_TO,
	O_ACCOUNT,
	O_STREAM_SID,
	O_CALL_SID,
	O_CUSTOM,
	O_CUSTOM_EMPTY,
	O_NUMBERS,
	O_DTMF,
	O_STOP_REASON,
	O_LINGER,
	O_CONNECT_TIMEOUT,
	O_CLEAR_MARKS,
	O_MAX_LEAD,
	O_GAP,
	O_RECORD,
	O_CALLS,
	O_RAMP,
	O_SPREAD,
	O_SEED,
	O_PER_CALL,
	O_ANALYZE,
	O_BEARER,
	O_INSECURE,
	O_CA,
	O_EXPECT_HZ,
	O_EXPECT_TOL,
	O_EXPECT_MIN,
	O_EXPECT_NOVIOL,
	O_EXPECT_CLOSED_BY,
	O_EXPECT_CLOSE_CODE,
};

static const struct option longopts[] = {
	{ "url", required_argument, NULL, O_URL },
	{ "rate", required_argument, NULL, O_RATE },
	{ "chunk-ms", required_argument, NULL, O_CHUNK },
	{ "seconds", required_argument, NULL, O_SECONDS },
	{ "tone", required_argument, NULL, O_TONE },
	{ "level", required_argument, NULL, O_LEVEL },
	{ "wav", required_argument, NULL, O_WAV },
	{ "signal", required_argument, NULL, O_SIGNAL },
	{ "silence", no_argument, NULL, O_SILENCE },
	{ "from", required_argument, NULL, O_FROM },
	{ "to", required_argument, NULL, O_TO },
	{ "account", required_argument, NULL, O_ACCOUNT },
	{ "stream-sid", required_argument, NULL, O_STREAM_SID },
	{ "call-sid", required_argument, NULL, O_CALL_SID },
	{ "custom", required_argument, NULL, O_CUSTOM },
	{ "custom-empty", no_argument, NULL, O_CUSTOM_EMPTY },
	{ "numbers", no_argument, NULL, O_NUMBERS },
	{ "dtmf", required_argument, NULL, O_DTMF },
	{ "stop-reason", required_argument, NULL, O_STOP_REASON },
	{ "linger-ms", required_argument, NULL, O_LINGER },
	{ "connect-timeout-ms", required_argument, NULL, O_CONNECT_TIMEOUT },
	{ "clear-marks", required_argument, NULL, O_CLEAR_MARKS },
	{ "max-lead-ms", required_argument, NULL, O_MAX_LEAD },
	{ "gap-ms", required_argument, NULL, O_GAP },
	{ "record", required_argument, NULL, O_RECORD },
	{ "calls", required_argument, NULL, O_CALLS },
	{ "ramp-ms", required_argument, NULL, O_RAMP },
	{ "spread", no_argument, NULL, O_SPREAD },
	{ "seed", required_argument, NULL, O_SEED },
	{ "per-call", no_argument, NULL, O_PER_CALL },
	{ "analyze-seconds", required_argument, NULL, O_ANALYZE },
	{ "bearer", required_argument, NULL, O_BEARER },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "ca", required_argument, NULL, O_CA },
	{ "expect-hz", required_argument, NULL, O_EXPECT_HZ },
	{ "expect-tolerance", required_argument, NULL, O_EXPECT_TOL },
	{ "expect-min-seconds", required_argument, NULL, O_EXPECT_MIN },
	{ "expect-no-violations", no_argument, NULL, O_EXPECT_NOVIOL },
	{ "expect-closed-by", required_argument, NULL, O_EXPECT_CLOSED_BY },
	{ "expect-close-code", required_argument, NULL, O_EXPECT_CLOSE_CODE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int
set_source(struct call_opts *o, int *nsrc, enum opts_source s, char *err,
    size_t errlen)
{
	if ((*nsrc)++)
		return fail(err, errlen,
		    "only one of --tone, --wav, --signal, --silence");
	o->source = s;
	return 0;
}

int
opts_parse(
    struct call_opts *o, int argc, char **argv, char *err, size_t errlen)
{
	const char *url  = DEFAULT_URL;
	long        rate = 0, l;
	int         c, nsrc = 0, rv;

	memset(o, 0, sizeof(*o));
	o->chunk_ms           = 20;
	o->seconds            = 10;
	o->source             = SRC_TONE;
	o->tone_hz            = 1000;
	o->level_dbfs         = -6;
	o->from               = "09876543210";
	o->to                 = "08045680571";
	o->account            = "exoplexsim1";
	o->stop_reason        = "callended";
	o->linger_ms          = 1000;
	o->connect_timeout_ms = 10000;
	o->clear_marks        = PLAYOUT_CLEAR_DROP_MARKS;
	o->max_lead_ms        = 1000;
	o->gap_ms             = 100;
	o->calls              = 1;
	o->expect_tolerance   = 0.02;
	o->expect_min_seconds = -1;
	o->analyze_seconds    = 60;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
		const char *a = optarg;
		switch (c) {
		case O_URL:
			url = a;
			break;
		case O_RATE:
			if (parse_long(a, &rate)
			    || (rate != 8000 && rate != 16000
			        && rate != 24000))
				return fail(err, errlen,
				    "--rate: '%s' is not 8000, 16000 or 24000",
				    a);
			break;
		case O_CHUNK:
			if (parse_long(a, &l) || l < 20 || l > 1000 || l % 20)
				return fail(err, errlen,
				    "--chunk-ms: '%s' is not a multiple of 20 "
				    "in [20, 1000]",
				    a);
			o->chunk_ms = (int)l;
			break;
		case O_SECONDS:
			if (parse_double(a, &o->seconds) || o->seconds < 0
			    || o->seconds > 86400)
				return fail(err, errlen,
				    "--seconds: '%s' is not in [0, 86400]", a);
			break;
		case O_TONE:
			if ((rv = set_source(o, &nsrc, SRC_TONE, err, errlen)))
				return rv;
			if (parse_double(a, &o->tone_hz) || o->tone_hz <= 0)
				return fail(err, errlen,
				    "--tone: '%s' is not a frequency", a);
			break;
		case O_LEVEL:
			if (parse_double(a, &o->level_dbfs)
			    || o->level_dbfs > 0 || o->level_dbfs < -96)
				return fail(err, errlen,
				    "--level: '%s' is not in [-96, 0] dBFS",
				    a);
			break;
		case O_WAV:
			if ((rv = set_source(o, &nsrc, SRC_WAV, err, errlen)))
				return rv;
			o->wav = a;
			break;
		case O_SIGNAL:
			if ((rv = set_source(
			         o, &nsrc, SRC_SPEECH, err, errlen)))
				return rv;
			if (strcmp(a, "speech") != 0)
				return fail(err, errlen,
				    "--signal: '%s' is not 'speech'", a);
			break;
		case O_SILENCE:
			if ((rv = set_source(
			         o, &nsrc, SRC_SILENCE, err, errlen)))
				return rv;
			break;
		case O_FROM:
			o->from = a;
			break;
		case O_TO:
			o->to = a;
			break;
		case O_ACCOUNT:
			o->account = a;
			break;
		case O_STREAM_SID:
			o->stream_sid = a;
			break;
		case O_CALL_SID:
			o->call_sid = a;
			break;
		case O_CUSTOM: {
			if (o->ncustom == OPTS_MAX_CUSTOM)
				return fail(err, errlen,
				    "--custom: more than %d parameters",
				    OPTS_MAX_CUSTOM);
			/* Split in place: argv strings are ours to edit. */
			char *eq = strchr(optarg, '=');
			if (eq)
				*eq = '\0';
			if (!optarg[0])
				return fail(err, errlen,
				    "--custom: empty key in '%s'", a);
			o->custom[o->ncustom++]
			    = (struct exomsg_param) { optarg,
				      eq ? eq + 1 : "" };
			break;
		}
		case O_CUSTOM_EMPTY:
			o->custom_empty = true;
			break;
		case O_NUMBERS:
			o->numbers = true;
			break;
		case O_DTMF:
			if ((rv = parse_dtmf(o, a, err, errlen)))
				return rv;
			break;
		case O_STOP_REASON:
			if (strcmp(a, "none") == 0)
				o->stop_reason = NULL;
			else if (strcmp(a, "callended") == 0
			    || strcmp(a, "stopped") == 0)
				o->stop_reason = a;
			else
				return fail(err, errlen,
				    "--stop-reason: '%s' is not callended, "
				    "stopped or none",
				    a);
			break;
		case O_LINGER:
			if (parse_long(a, &l) || l < 0 || l > 600000)
				return fail(err, errlen,
				    "--linger-ms: '%s' is not in [0, 600000]",
				    a);
			o->linger_ms = (int)l;
			break;
		case O_CONNECT_TIMEOUT:
			if (parse_long(a, &l) || l < 100 || l > 600000)
				return fail(err, errlen,
				    "--connect-timeout-ms: '%s' is not in "
				    "[100, 600000]",
				    a);
			o->connect_timeout_ms = (int)l;
			break;
		case O_CLEAR_MARKS:
			if (strcmp(a, "drop") == 0)
				o->clear_marks = PLAYOUT_CLEAR_DROP_MARKS;
			else if (strcmp(a, "echo") == 0)
				o->clear_marks = PLAYOUT_CLEAR_ECHO_MARKS;
			else
				return fail(err, errlen,
				    "--clear-marks: '%s' is not drop or echo",
				    a);
			break;
		case O_MAX_LEAD:
			if (parse_long(a, &l) || l < 20 || l > 600000)
				return fail(err, errlen,
				    "--max-lead-ms: '%s' is not in "
				    "[20, 600000]",
				    a);
			o->max_lead_ms = (int)l;
			break;
		case O_GAP:
			if (parse_long(a, &l) || l < 20 || l > 600000)
				return fail(err, errlen,
				    "--gap-ms: '%s' is not in [20, 600000]",
				    a);
			o->gap_ms = (int)l;
			break;
		case O_RECORD:
			o->record = a;
			break;
		case O_CALLS:
			if (parse_long(a, &l) || l < 1 || l > 20000)
				return fail(err, errlen,
				    "--calls: '%s' is not in [1, 20000]", a);
			o->calls = (int)l;
			break;
		case O_RAMP:
			if (parse_long(a, &l) || l < 0 || l > 3600000)
				return fail(err, errlen,
				    "--ramp-ms: '%s' is not in [0, 3600000]",
				    a);
			o->ramp_ms = (int)l;
			break;
		case O_SPREAD:
			o->spread = true;
			break;
		case O_SEED: {
			char *end;
			errno   = 0;
			o->seed = strtoull(a, &end, 0);
			if (errno || end == a || *end)
				return fail(err, errlen,
				    "--seed: '%s' is not a number", a);
			o->seed_set = true;
			break;
		}
		case O_PER_CALL:
			o->per_call = true;
			break;
		case O_ANALYZE:
			if (parse_double(a, &o->analyze_seconds)
			    || o->analyze_seconds < 1
			    || o->analyze_seconds > 86400)
				return fail(err, errlen,
				    "--analyze-seconds: '%s' is not in [1, "
				    "86400]",
				    a);
			break;
		case O_BEARER:
			o->bearer = a;
			break;
		case O_INSECURE:
			o->insecure = true;
			break;
		case O_CA:
			o->ca_file = a;
			break;
		case O_EXPECT_HZ:
			if (parse_double(a, &o->expect_hz)
			    || o->expect_hz <= 0)
				return fail(err, errlen,
				    "--expect-hz: '%s' is not a frequency", a);
			break;
		case O_EXPECT_TOL:
			if (parse_double(a, &o->expect_tolerance)
			    || o->expect_tolerance <= 0
			    || o->expect_tolerance >= 1)
				return fail(err, errlen,
				    "--expect-tolerance: '%s' is not in (0, "
				    "1)",
				    a);
			break;
		case O_EXPECT_MIN:
			if (parse_double(a, &o->expect_min_seconds)
			    || o->expect_min_seconds < 0)
				return fail(err, errlen,
				    "--expect-min-seconds: '%s' is not a "
				    "duration",
				    a);
			break;
		case O_EXPECT_NOVIOL:
			o->expect_no_violations = true;
			break;
		case O_EXPECT_CLOSED_BY:
			if (strcmp(a, "server") && strcmp(a, "client"))
				return fail(err, errlen,
				    "--expect-closed-by: '%s' is not server "
				    "or "
				    "client",
				    a);
			o->expect_closed_by = a;
			break;
		case O_EXPECT_CLOSE_CODE:
			if (parse_long(a, &l) || l < 1000 || l > 4999)
				return fail(err, errlen,
				    "--expect-close-code: '%s' is not in "
				    "[1000, 4999]",
				    a);
			o->expect_close_code = (int)l;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			opts_usage(argv[0]);
			return 1;
		case ':':
			return fail(err, errlen, "%s: needs a value",
			    argv[optind - 1]);
		default:
			return fail(err, errlen, "unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(
		    err, errlen, "unexpected argument '%s'", argv[optind]);
	if ((rv = opts_split_url(o, url, err, errlen)))
		return rv;
	if (!rate) {
		rate = url_rate(o->path);
		if (rate != 8000 && rate != 16000 && rate != 24000)
			rate = 8000;
	}
	o->rate = (int)rate;
	if (o->source == SRC_TONE && o->tone_hz >= o->rate / 2.0)
		return fail(err, errlen,
		    "--tone: %g Hz is not below Nyquist at %d Hz", o->tone_hz,
		    o->rate);
	if (o->calls > 1 && (o->stream_sid || o->call_sid))
		return fail(
		    err, errlen, "--stream-sid/--call-sid need --calls 1");
	if (o->ncustom && o->custom_empty)
		return fail(err, errlen,
		    "--custom-empty and --custom exclude each other");
	return 0;
}
