/*
 * exoplex-tap - the bus frames of a live system, one JSON line per frame.
 *
 * The three processes publish a copy of every Envelope they send and
 * receive when started with EXOPLEX_BUS_TAP=1 (common/bus.h), on
 * ipc://$EXOPLEX_BUS_DIR/tap-<process>-<link>.sock. This subscribes to
 * all of them (or to the --url given), so it never touches the pair1
 * links themselves: a tap that is slow or absent costs the system nothing.
 * Each frame is shown once, as its sender sent it, unless only the
 * receiver is tapped (--side changes that).
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "clock.h"
#include "tapfmt.h"

#define MAX_SOURCES 64

static volatile sig_atomic_t stop_flag;

struct source {
	nng_socket  sock;
	char        url[512], at[32], link[32];
	_Atomic int pipes; /* connected: 1 */
	int         shown; /* pipes when last said on stderr */
};

struct tap {
	struct source    *src;
	size_t            n;
	const char       *side; /* auto, out, in, both */
	struct tap_filter flt;
	long              count; /* lines left; < 0 = no limit */
};

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct source *s = arg;
	(void)p;
	atomic_fetch_add(&s->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

static void
usage(FILE *out)
{
	fputs("usage: exoplex-tap [options]\n"
	      "  --bus-dir DIR  where the tap sockets are (EXOPLEX_BUS_DIR, "
	      "default /run/exoplex)\n"
	      "  --url URL      a tap socket to watch instead (repeatable), "
	      "e.g. ipc:///run/exoplex/tap-ingress-transcoder.sock\n"
	      "  --call SID     only this call (its stream_sid)\n"
	      "  --kind LIST    only these kinds, e.g. call_start,call_stop\n"
	      "  --side SIDE    auto (each frame once, from its sender's tap "
	      "when there is one), out, in or both\n"
	      "  --count N      exit after N lines\n"
	      "  --seconds S    exit after S seconds\n"
	      "Start the processes with EXOPLEX_BUS_TAP=1 to open their "
	      "taps.\n",
	    out);
}

/* Adds a source for url unless it is there already. */
static int
source_add(struct tap *t, const char *url)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->src[i].url, url))
			return 0;
	if (t->n == MAX_SOURCES)
		return ENOSPC;
	struct source *s = &t->src[t->n];
	snprintf(s->url, sizeof(s->url), "%s", url);
	if (tapfmt_name(url, s->at, sizeof(s->at), s->link, sizeof(s->link))) {
		snprintf(s->at, sizeof(s->at), "?");
		snprintf(s->link, sizeof(s->link), "?");
	}
	int rv = nng_sub0_open(&s->sock);
	if (rv == 0)
		rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	if (rv != 0) {
		fprintf(
		    stderr, "exoplex-tap: %s: %s\n", url, nng_strerror(rv));
		return EIO;
	}
	/* Room for bursts: sub drops what does not fit. */
	nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, 1024);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s);
	nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s);
	/* Non-blocking: a process not up yet is dialed again and again. */
	if ((rv = nng_dial(s->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		fprintf(stderr, "exoplex-tap: cannot dial %s: %s\n", url,
		    nng_strerror(rv));
		nng_close(s->sock);
		return EINVAL;
	}
	t->n++;
	return 0;
}

/* The taps the trio opens, and any other tap-*.sock already in dir. */
static int
sources_in_dir(struct tap *t, const char *dir)
{
	static const char *const std[] = { "ingress-transcoder",
		"ingress-control", "transcoder-transcoder",
		"transcoder-egress", "egress-egress", "egress-control" };
	char                     url[600];
	glob_t                   g;
	int                      rv = 0;

	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]) && !rv; i++) {
		snprintf(
		    url, sizeof(url), "ipc://%s/tap-%s.sock", dir, std[i]);
		rv = source_add(t, url);
	}
	snprintf(url, sizeof(url), "%s/tap-*.sock", dir);
	if (!rv && glob(url, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc && !rv; i++) {
			snprintf(url, sizeof(url), "ipc://%s", g.gl_pathv[i]);
			rv = source_add(t, url);
		}
		globfree(&g);
	}
	return rv;
}

/* Whether the sender of a frame this source received is tapped too (then
 * its own copy, "out", is the one shown). */
static int
sender_tapped(const struct tap *t, const char *sender, const char *link)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->src[i].at, sender)
		    && !strcmp(t->src[i].link, link)
		    && atomic_load(&t->src[i].pipes) > 0)
			return 1;
	return 0;
}

/* Prints what source s has waiting. */
static void
drain(struct tap *t, struct source *s)
{
	nng_msg *m;
	while (t->count != 0
	    && nng_recvmsg(s->sock, &m, NNG_FLAG_NONBLOCK) == 0) {
		struct tap_where w = { .at = s->at, .link = s->link };
		Exo__Envelope   *e = exo__envelope__unpack(
		      NULL, nng_msg_len(m), nng_msg_body(m));
		if (!e) {
			if (strcmp(t->side, "in") != 0) {
				tapfmt_bad(
				    stdout, &w, nng_msg_len(m), wall_us());
				t->count -= t->count > 0;
			}
			nng_msg_free(m);
			continue;
		}
		nng_msg_free(m);
		const char *sender = e->sender ? e->sender : "";
		int         out    = !strcmp(sender, s->at);
		int         show   = !strcmp(t->side, "both")
		    || (out && !strcmp(t->side, "out"))
		    || (!out && !strcmp(t->side, "in"))
		    || (!strcmp(t->side, "auto")
		        && (out || !sender_tapped(t, sender, s->link)));
		if (show) {
			size_t lines = tapfmt_envelope(stdout, e, &w, &t->flt);
			if (t->count > 0)
				t->count -= (long)lines < t->count
				    ? (long)lines
				    : t->count;
		}
		exo__envelope__free_unpacked(e, NULL);
	}
	fflush(stdout);
}

/* Says on stderr which taps came and went (pipe_cb runs on NNG's
 * threads, so the main loop does the talking). */
static void
report_links(struct tap *t)
{
	for (size_t i = 0; i < t->n; i++) {
		int now = atomic_load(&t->src[i].pipes) > 0;
		if (now != t->src[i].shown)
			fprintf(stderr, "exoplex-tap: %s %s\n",
			    now ? "connected to" : "lost", t->src[i].url);
		t->src[i].shown = now;
	}
}

static int
run(struct tap *t, long seconds)
{
	struct pollfd pfd[MAX_SOURCES];
	uint64_t      end
	    = seconds > 0 ? mono_us() + (uint64_t)seconds * 1000000u : 0;

	for (size_t i = 0; i < t->n; i++) {
		int fd = -1;
		if (nng_socket_get_int(t->src[i].sock, NNG_OPT_RECVFD, &fd))
			return EIO;
		pfd[i] = (struct pollfd) { .fd = fd, .events = POLLIN };
	}
	while (!stop_flag && t->count != 0 && (!end || mono_us() < end)) {
		report_links(t);
		if (poll(pfd, t->n, 100) < 0 && errno != EINTR)
			return errno;
		for (size_t i = 0; i < t->n; i++)
			if (pfd[i].revents & POLLIN)
				drain(t, &t->src[i]);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = { { "bus-dir", 1, NULL, 'd' },
		{ "url", 1, NULL, 'u' }, { "call", 1, NULL, 'c' },
		{ "kind", 1, NULL, 'k' }, { "side", 1, NULL, 's' },
		{ "count", 1, NULL, 'n' }, { "seconds", 1, NULL, 't' },
		{ "help", 0, NULL, 'h' }, { 0 } };
	struct source              src[MAX_SOURCES];
	struct tap  t       = { .src = src, .side = "auto", .count = -1 };
	const char *dir     = getenv("EXOPLEX_BUS_DIR"), *urls[MAX_SOURCES];
	size_t      nurls   = 0;
	long        seconds = 0;
	char       *end;
	int         c, rc = 1;

	memset(src, 0, sizeof(src));
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'u':
			if (nurls == MAX_SOURCES)
				goto bad;
			urls[nurls++] = optarg;
			break;
		case 'c':
			t.flt.call = optarg;
			break;
		case 'k':
			t.flt.kinds = optarg;
			break;
		case 's':
			t.side = optarg;
			if (strcmp(t.side, "auto") && strcmp(t.side, "out")
			    && strcmp(t.side, "in")
			    && strcmp(t.side, "both")) {
				fprintf(stderr,
				    "exoplex-tap: --side: '%s' is "
				    "not auto, out, in or both\n",
				    optarg);
				return 2;
			}
			break;
		case 'n':
		case 't': {
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0) {
				fprintf(stderr,
				    "exoplex-tap: --%s: '%s' is "
				    "not a positive number\n",
				    c == 'n' ? "count" : "seconds", optarg);
				return 2;
			}
			*(c == 'n' ? &t.count : &seconds) = v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (!dir || !*dir)
		dir = "/run/exoplex";

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < nurls; i++)
		if (source_add(&t, urls[i]))
			goto out;
	if (nurls == 0 && sources_in_dir(&t, dir))
		goto out;
	fprintf(stderr, "exoplex-tap: watching %zu tap socket%s%s%s\n", t.n,
	    t.n == 1 ? "" : "s", nurls ? "" : " in ", nurls ? "" : dir);
	rc = run(&t, seconds) ? 1 : 0;
out:
	for (size_t i = 0; i < t.n; i++)
		nng_close(src[i].sock);
	return rc;
bad:
	usage(stderr);
	return 2;
}
