/*
 * shards.h - a threaded transcoder: the calls spread over n loops
 * (loop.h), each on a thread of its own, so the codecs of many calls use
 * every core. One loop on one thread carries about 100 calls at Opus
 * complexity 5 on the dev VM (docs/performance.md).
 *
 * The thread that calls shards_turn owns the buses. It receives the
 * Envelopes, hands each frame to the shard of its call (the one with the
 * fewest live calls when its call_id first came; a call's frames stay in
 * order on one thread), and sends
 * what the shards produce; a shard never touches a bus. A shard's output
 * is packed once on its thread and repacked by bus_send on the bus
 * thread. An eventfd wakes the bus thread when a shard has output: at
 * the end of a batch and, in a long one, every publish_us. A shard
 * decodes the downlink pages it holds before the caller audio taken with
 * them (each link keeps its own order), and drops caller audio that
 * waited past max_wait_ms.
 *
 * shards_free stops and joins the threads and frees every call; it does
 * not own the buses, the log, the metrics or the admin server.
 */
#ifndef EXO_SHARDS_H
#define EXO_SHARDS_H

#include <stddef.h>

#include "loop.h"

struct shards;

struct shards_opts {
	/* Every shard's loop settings; ingress and egress are the buses
	 * the calling thread serves (send must be NULL). */
	struct loop_opts loop;
	unsigned         n; /* threads, 1..SHARDS_MAX */
	/* A shard hands what it has produced to the bus thread when it
	 * has handled what it took, and during a longer batch (a burst, or
	 * the host stalled it) at least this often. 0: 1000. */
	unsigned publish_us;
	/* Caller audio that waited longer than this for its shard is
	 * dropped, not encoded late (counted in
	 * transcoder_stale_frames_total): an overloaded transcoder sheds
	 * its backlog instead of falling further behind. 0: never. */
	unsigned max_wait_ms;
};

#define SHARDS_MAX 64

/* Starts n threads. Returns 0, EINVAL, ENOMEM or the pthread error. */
int  shards_alloc(struct shards **out, const struct shards_opts *o);
void shards_free(struct shards *s);

/* One turn of the bus thread: waits up to timeout_ms for bus input or
 * shard output, hands out the input, sends the output, watches the
 * ingress link (loop_ingress_lost on every shard), flushes both buses. */
void shards_turn(struct shards *s, int timeout_ms);

/* The shard (0..n-1) a call_id's frames go to, or -1 while none has come
 * (or it was forgotten, idle_s + 10 s after its last frame). Call on the
 * thread that calls shards_turn. */
int shards_owner(const struct shards *s, const char *call_id);

#endif
