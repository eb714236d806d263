/*
 * main.c - exoplex-call: an Exotel call simulator and load generator.
 *
 * Parse the command line, make the caller's audio, run the calls on one
 * lws context and one 20 ms tick, then print the JSON summary, write the
 * recordings and judge the expectations.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"
#include "opts.h"
#include "callaudio.h"
#include "sim.h"
#include "summary.h"
#include "wav.h"

#define EXIT_EXPECT 1
#define EXIT_ARGS 2
#define EXIT_CONNECT 3
/* Generated signals longer than this loop (a bench may run for hours). */
#define MAX_GEN_S 60

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int
make_audio(const struct call_opts *o, uint64_t seed, struct sim_audio *a,
    int16_t **owned, char *err, size_t errlen)
{
	double secs = o->seconds < MAX_GEN_S ? o->seconds : MAX_GEN_S;
	size_t n    = (size_t)(secs * o->rate) + 1;
	int    rv   = 0;

	a->loop = o->seconds > MAX_GEN_S;
	switch (o->source) {
	case SRC_TONE:
		rv = callaudio_tone(
		    owned, n, o->rate, o->tone_hz, o->level_dbfs);
		break;
	case SRC_SPEECH:
		rv = callaudio_speech(owned, n, o->rate, seed);
		break;
	case SRC_SILENCE:
		n      = 0;
		*owned = NULL;
		break;
	case SRC_WAV: {
		int rate = 0;
		rv       = wav_read(o->wav, owned, &n, &rate);
		if (rv) {
			snprintf(err, errlen, "--wav: cannot read '%s': %s",
			    o->wav, strerror(rv));
			return rv;
		}
		if (rate != o->rate) {
			snprintf(err, errlen,
			    "--wav: '%s' is at %d Hz but the call is at %d Hz "
			    "(--rate)",
			    o->wav, rate, o->rate);
			free(*owned);
			*owned = NULL;
			return EINVAL;
		}
		a->loop = 0; /* then silence, as a caller who went quiet */
		break;
	}
	}
	if (rv) {
		snprintf(
		    err, errlen, "cannot make the audio: %s", strerror(rv));
		return rv;
	}
	a->pcm = *owned;
	a->n   = n;
	return 0;
}

/* FILE with its first "%d" replaced by i. */
static void
record_path(char *dst, size_t len, const char *tmpl, size_t i)
{
	const char *d = strstr(tmpl, "%d");
	if (!d)
		snprintf(dst, len, "%s", tmpl);
	else
		snprintf(
		    dst, len, "%.*s%zu%s", (int)(d - tmpl), tmpl, i, d + 2);
}

int
main(int argc, char **argv)
{
	struct call_opts o;
	struct log       lg;
	struct sim      *sim   = NULL;
	struct sim_audio audio = { NULL, 0, 0 };
	int16_t         *pcm   = NULL;
	char             err[1024];
	uint64_t         seed;
	int              rv, status = 0;

	rv = opts_parse(&o, argc, argv, err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv) {
		fprintf(stderr, "exoplex-call: %s (try --help)\n", err);
		return EXIT_ARGS;
	}
	log_init(&lg, "call", "text", o.verbose ? "debug" : "info");
	lws_set_log_level(o.verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);

	seed = o.seed;
	if (!o.seed_set
	    && getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (make_audio(&o, seed, &audio, &pcm, err, sizeof(err)) != 0) {
		fprintf(stderr, "exoplex-call: %s\n", err);
		return EXIT_ARGS;
	}

	rv = sim_alloc(&sim, &o, &lg, &audio, seed);
	if (rv) {
		fprintf(stderr, "exoplex-call: cannot set up the calls: %s\n",
		    rv == EIO ? "lws context creation failed" : strerror(rv));
		free(pcm);
		return rv == EINVAL ? EXIT_ARGS : EXIT_CONNECT;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	sim_run(sim, &interrupted);

	size_t              n   = sim_ncalls(sim);
	struct call_result *res = calloc(n, sizeof(*res));
	if (!res) {
		fprintf(stderr, "exoplex-call: out of memory\n");
		status = EXIT_CONNECT;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		summary_analyse(sim_result(sim, i));
		res[i] = *sim_result(sim, i);
		if (!res[i].connected)
			status = EXIT_CONNECT;
	}
	char *json = summary_json(&o, res, n);
	if (json) {
		puts(json);
		fflush(stdout);
		free(json);
	}
	for (size_t i = 0; o.record && i < n; i++) {
		const int16_t *rec;
		size_t         rn;
		char           path[4096];
		if (!sim_recording(sim, i, &rec, &rn))
			continue;
		record_path(path, sizeof(path), o.record, i);
		static const int16_t none[1] = { 0 };
		rv = wav_write(path, rec ? rec : none, rn, o.rate);
		if (rv)
			fprintf(stderr, "exoplex-call: cannot write %s: %s\n",
			    path, strerror(rv));
	}
	if (summary_check(&o, res, n, err, sizeof(err)) > 0) {
		fputs(err, stderr);
		if (!status)
			status = EXIT_EXPECT;
	}
	if (status == EXIT_CONNECT)
		fprintf(stderr, "exoplex-call: %s\n",
		    n == 1 ? res[0].error : "some calls failed to connect");
	free(res);
out:
	sim_free(sim);
	free(pcm);
	return status;
}
