/*
 * pool.h - which PersonaPlex server each of our sessions may use: the
 * lease rules of the pool, without sockets or clocks (time is passed in).
 *
 * A PersonaPlex server process serves one conversation at a time and
 * queues any other client silently (research/personaplex.md §5.3), so a
 * server is used by at most one session of ours: a call's, or a warm one
 * waiting for a call. A server we let go of is "closing" until our socket
 * to it is really gone, and a server that failed (no connection, no
 * handshake in time, silent) is left alone for a backoff that grows with
 * each consecutive failure.
 *
 * What a server is doing (its "use") is set by the owner; what it looks
 * like from outside (its "view", for metrics and admission) follows from
 * the use, the closing flag and the backoff:
 *
 *   view      use        closing  in backoff
 *   busy      call       any      any
 *   warm      warm       -        -
 *   warming   warming    -        -
 *   failed    idle       any      yes
 *   closing   idle       yes      no
 *   free      idle       no       no
 *
 * A call may take a free, warm or warming server (pool_pick). One thread
 * only; nothing here blocks.
 */
#ifndef EXO_POOL_H
#define EXO_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backoff.h"

enum pool_use {
	POOL_IDLE, /* no session of ours (maybe one still closing) */
	POOL_WARMING, /* a warm session waits for its handshake */
	POOL_WARM, /* a warm session is ready and waits for a call */
	POOL_CALL, /* leased by a call for its whole life */
};

enum pool_view {
	POOL_V_FREE,
	POOL_V_WARMING,
	POOL_V_WARM,
	POOL_V_BUSY,
	POOL_V_CLOSING,
	POOL_V_FAILED,
	POOL_VIEWS
};

/* What the session that will use the picked server is for. */
enum pool_want {
	/* A call with the default persona: a warm session is best (its
	 * handshake is done), then a warming one, then a free server. */
	POOL_WANT_DEFAULT,
	/* A call with another persona: a free server is best; a warming or
	 * warm one has to be closed first (warming is cheaper to lose). */
	POOL_WANT_OTHER,
	/* A new warm session: free servers only. */
	POOL_WANT_WARM,
};

struct pool;

/* A pool of n servers, all free. Backoff after failures follows bo; its
 * jitter comes from a generator seeded with seed. Returns 0 or ENOMEM;
 * free with pool_free. */
int pool_alloc(
    struct pool **out, size_t n, const struct backoff *bo, uint64_t seed);
void pool_free(struct pool *p);

size_t pool_size(const struct pool *p);

/* The best server for want at time now (µs, any monotonic clock), or -1
 * when none can be had. Among the best candidates, prefer (-1: none) wins;
 * otherwise the lowest index. */
int pool_pick(
    const struct pool *p, uint64_t now, enum pool_want want, int prefer);

/* The owner says what server i is now used for. */
void          pool_set_use(struct pool *p, size_t i, enum pool_use use);
enum pool_use pool_use_of(const struct pool *p, size_t i);

/* Our session to i is closing: i is not free until pool_closed. */
void pool_closing(struct pool *p, size_t i);
void pool_closed(struct pool *p, size_t i);
bool pool_is_closing(const struct pool *p, size_t i);

/* Server i failed (again): returns the backoff in ms; until now + that,
 * i is "failed" and pool_pick skips it. */
uint32_t pool_failed(struct pool *p, size_t i, uint64_t now);
/* Server i completed a handshake: its failure count restarts. */
void     pool_succeeded(struct pool *p, size_t i);
unsigned pool_failures(const struct pool *p, size_t i);

enum pool_view pool_view(const struct pool *p, size_t i, uint64_t now);
/* Servers in view v at time now. */
size_t pool_count(const struct pool *p, enum pool_view v, uint64_t now);
/* Servers a call could take now: free, warm or warming. */
size_t pool_available(const struct pool *p, uint64_t now);
/* "free", "warming", ... for labels and logs. */
const char *pool_view_name(enum pool_view v);

#endif
