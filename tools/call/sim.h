/*
 * sim.h - simulated Exotel calls on one libwebsockets context.
 *
 * One thread (the caller of sim_run) owns the context. One lws_sul tick
 * every 20 ms paces everything: dialling, media out, the simulated
 * playout of what comes back, mark echoes, DTMF, stop and the linger.
 */
#ifndef EXO_CALL_SIM_H
#define EXO_CALL_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "opts.h"
#include "summary.h"

struct sim;

/* The caller's audio: src[0..n) for every call, looped when loop is set,
 * else followed by silence. src must outlive the sim. */
struct sim_audio {
	const int16_t *pcm;
	size_t         n;
	int            loop;
};

/* Sets up o->calls calls (nothing is dialled yet). o, lg and audio must
 * outlive the sim; the caller frees it with sim_free. Returns 0, ENOMEM,
 * or EIO when the lws context cannot be created. */
int sim_alloc(struct sim **out, const struct call_opts *o,
    const struct log *lg, const struct sim_audio *audio, uint64_t seed);

/* Runs every call to its end. *interrupt (set by a signal handler) makes
 * calls still sending media stop early, with a normal stop. Returns 0. */
int sim_run(struct sim *s, volatile sig_atomic_t *interrupt);

/* Results of call i (valid until sim_free). */
size_t              sim_ncalls(const struct sim *s);
struct call_result *sim_result(struct sim *s, size_t i);
/* What call i's caller heard from the start on (frames as played,
 * silence in gaps; *pcm may be NULL when *n is 0). False when call i was
 * not recorded. */
bool sim_recording(
    const struct sim *s, size_t i, const int16_t **pcm, size_t *n);

void sim_free(struct sim *s);

#endif
