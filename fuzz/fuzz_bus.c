/*
 * fuzz_bus.c - bus messages (common/bus.c bus_parse, the receive path of
 * bus_recv) from a peer that may be another version, a buggy build or
 * anything that can reach a tcp:// bus port; then what a receiver does
 * with the frames: the transcoder's loop (loop_frame, the receiver with
 * the most to parse: call_start, caller audio, Ogg, sessions) and the
 * tap's JSON formatter. Oracles: bus_parse's result matches *env, and
 * every frame's body is there for its kind.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "fuzz.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tapfmt.h"

/* Opened once: NNG sockets are too slow to make per input. */
struct rig {
	struct log      lg;
	struct metrics *m;
	struct bus     *in, *eg;
	FILE           *null;
};

static struct rig rig;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct bus_opts bo;

	log_init(&rig.lg, "fuzz_bus", "text", "error");
	rig.lg.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	rig.null  = fopen("/dev/null", "w");
	FUZZ_CHECK(rig.lg.fd >= 0 && rig.null);
	FUZZ_CHECK(metrics_alloc(&rig.m, "exoplex_") == 0);
	/* Listening links without a peer: what the loop sends is queued
	 * (control frames up to control_max, then refused) or dropped. */
	bo = (struct bus_opts) { .link = "transcoder",
		.url                   = "inproc://fuzz-transcoder",
		.listen                = true,
		.self                  = "transcoder",
		.metrics               = rig.m,
		.log                   = &rig.lg,
		.control_max           = 256,
		.tap                   = "" };
	FUZZ_CHECK(bus_open(&rig.in, &bo) == 0);
	bo.link = "egress";
	bo.url  = "inproc://fuzz-egress";
	FUZZ_CHECK(bus_open(&rig.eg, &bo) == 0);
	return 0;
}

static int
body_present(const Exo__Frame *f)
{
	switch (f->body_case) {
	case EXO__FRAME__BODY__NOT_SET:
		return 1;
	case EXO__FRAME__BODY_CALL_START:
		return f->call_start != NULL;
	case EXO__FRAME__BODY_CALLER_AUDIO:
		return f->caller_audio != NULL;
	case EXO__FRAME__BODY_DOWNLINK_OGG:
		return f->downlink_ogg != NULL;
	case EXO__FRAME__BODY_CALL_STOP:
		return f->call_stop != NULL;
	default:
		return 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Exo__Envelope    *env = NULL;
	struct metrics   *m;
	struct loop      *l;
	struct tap_where  w   = { "transcoder", "egress" };
	struct tap_filter flt = { NULL, NULL };
	int               rv  = bus_parse(data, size, &env);

	FUZZ_CHECK(rv == 0 || rv == EPROTO || rv == EPROTONOSUPPORT);
	FUZZ_CHECK((rv == EPROTO) == (env == NULL));
	if (rv != 0) {
		if (env)
			FUZZ_CHECK(env->version != BUS_VERSION);
		bus_envelope_free(env);
		tapfmt_bad(rig.null, &w, size, 0);
		return 0;
	}
	FUZZ_CHECK(env->n_frames == 0 || env->frames != NULL);
	for (size_t i = 0; i < env->n_frames; i++) {
		const Exo__Frame *f = env->frames[i];
		FUZZ_CHECK(f != NULL && body_present(f));
		FUZZ_CHECK(bus_kind_name(f) != NULL);
		bus_droppable(f);
		bus_count_in(rig.in, f);
	}
	tapfmt_envelope(rig.null, env, &w, &flt);
	/* A fresh loop per input, so inputs do not depend on each other.
	 * Frames from a sender called "egress" come on the egress link. */
	FUZZ_CHECK(metrics_alloc(&m, "exoplex_") == 0);
	struct loop_opts lo = { .log = &rig.lg,
		.metrics             = m,
		.ingress             = rig.in,
		.egress              = rig.eg,
		.complexity          = 0,
		.bitrate             = 24000,
		.idle_s              = 60 };
	FUZZ_CHECK(loop_alloc(&l, &lo) == 0);
	int from_egress = env->sender && !strcmp(env->sender, "egress");
	for (size_t i = 0; i < env->n_frames; i++)
		loop_frame(l, from_egress ^ (int)(env->frames[i]->seq & 1),
		    env->frames[i]);
	loop_expire(l, mono_us() + 3600 * 1000000ull);
	loop_free(l);
	metrics_free(m);
	bus_flush(rig.in);
	bus_flush(rig.eg);
	bus_envelope_free(env);
	return 0;
}
