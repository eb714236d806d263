/*
 * loop.h - the transcoder's event loop: the call table and the bus
 * protocol around the per-call pipelines (tcall.h).
 *
 * From ingress (link "transcoder"): call_start, caller_audio, call_stop.
 * From egress (link "egress"): session_ready, session_ended,
 * downlink_ogg. Out: uplink_ogg to egress, playback_audio and announce to
 * ingress. A frame for an unknown call is dropped (counted) and answered
 * with announce, at most once a second per call id; a session_ready for
 * an unknown call is remembered so the call starts encoding as soon as
 * its call_start arrives. Calls silent for idle_s seconds are freed, and
 * so are calls a disconnected ingress does not announce again within
 * ingress_grace_ms (loop_ingress_lost).
 *
 * The loop does not own the buses, the log, the metrics or the admin
 * server; loop_free frees the calls.
 */
#ifndef EXO_LOOP_H
#define EXO_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exoplex.pb-c.h"

struct loop;
struct bus;
struct log;
struct metrics;
struct admin;

struct loop_opts {
	struct log     *log;
	struct metrics *metrics;
	struct bus     *ingress; /* link "transcoder" (we listen) */
	struct bus     *egress; /* link "egress" (we dial) */
	struct admin   *admin; /* heartbeat; may be NULL */
	int             complexity;
	int             bitrate;
	bool            opus_call_rate; /* Opus at the call's rate, not 24k */
	unsigned        frames_per_page; /* uplink Opus frames per Ogg page */
	unsigned        idle_s; /* 0 = 60 */
	/* After ingress leaves (or a new one connects), its calls not
	 * announced again within this many ms are freed. 0 = 3000. */
	unsigned ingress_grace_ms;
	/* NULL: frames go out with bus_send on ingress/egress. Else every
	 * frame the loop sends goes to send (which copies it; returns 0 or
	 * an errno) and loop_frame never touches the buses: the loop is a
	 * shard of a threaded transcoder (shards.h), and loop_turn is not
	 * used. */
	int (*send)(void *arg, bool to_egress, const Exo__Frame *f);
	void *send_arg;
};

/* Returns 0 or ENOMEM. */
int  loop_alloc(struct loop **out, const struct loop_opts *o);
void loop_free(struct loop *l);

/* One turn: waits up to timeout_ms for bus input, handles all of it,
 * does the once-a-second housekeeping, flushes both buses. */
void loop_turn(struct loop *l, int timeout_ms);

/* timeout_ms, or less when frames held on bus a or b fall due sooner
 * (bus_due_us, rounded up to whole ms): a turn's poll() timeout. */
int loop_hold_timeout(
    const struct bus *a, const struct bus *b, int timeout_ms);

/* The housekeeping of loop_turn without the buses: frees orphaned calls
 * (loop_orphans) and, once a second, idle ones (loop_expire). */
void loop_housekeeping(struct loop *l, uint64_t now_us);

/* Handles one received frame (from_egress: which link it came on). */
void loop_frame(struct loop *l, int from_egress, const Exo__Frame *f);

/* Frees calls with no frame since idle_s before now_us (mono_us) and
 * forgets stale unknown-call entries. Returns the calls freed. */
size_t loop_expire(struct loop *l, uint64_t now_us);

/* Ingress went away, or a (new) ingress connected, at since_us (mono_us):
 * every call must be announced again (a call_start after since_us)
 * within ingress_grace_ms, or loop_orphans frees it. A restarted ingress
 * has no calls: all of them go. loop_turn calls it when it sees the link
 * change; exposed for tests. */
void loop_ingress_lost(struct loop *l, uint64_t since_us);

/* Once the grace is over at now_us, frees the calls not announced again
 * since. Returns the calls freed (0 while the grace runs). */
size_t loop_orphans(struct loop *l, uint64_t now_us);

size_t loop_calls(const struct loop *l);
/* Whether the loop holds a pipeline for call_id. */
bool loop_has_call(const struct loop *l, const char *call_id);

#endif
