/*
 * evloop.c - an lws context on a libev loop run one turn at a time.
 *
 * libev rather than libuv: Debian's lws 4.1.6 is built with _DEBUG, and
 * on libuv its service code then closes every WebSocket a callback ends a
 * second time at once, killing it without its close frame (lws issue
 * #3569, fixed after 4.1). On libev a close is what it is on lws's own
 * loop, and lws_context_destroy is one call.
 *
 * lws 4.1's libev glue has two gaps this file covers or bounds:
 *  - it does its "forced service" (TLS records already decrypted, data
 *    lws buffered) from an ev_idle watcher, which libev runs only on a
 *    pass with no other event pending: under load that is never. A
 *    prepare watcher here does it before every wait instead, and keeps
 *    the wait from blocking while lws still has such work.
 *  - it re-arms its timer with ev_timer_set on a running timer, which
 *    libev ignores, so a timer lws_sul_schedule sets earlier than the one
 *    armed runs when the armed one fires (or at the next idle pass). The
 *    owners all keep a periodic lws_sul tick (20-100 ms), which bounds
 *    that lateness; nothing here needs finer timers than that.
 *
 * It also serves lws_get_random (below), which every process that runs
 * lws links with this file.
 */
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "evloop.h"

struct evloop {
	struct ev_loop     *loop;
	ev_prepare          forced; /* lws's forced service, every pass */
	ev_idle             busy; /* active: lws has more; do not block */
	ev_timer            wake; /* evloop_wake_in */
	void               *foreign[1]; /* for info->foreign_loops */
	struct lws_context *ctx;
};

static void
forced_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct evloop *l    = w->data;
	int            more = 0;

	(void)revents;
	/* What lws's idle watcher does (lib/event-libs/libev), less rx
	 * flow control, which nothing of ours uses. */
	if (lws_service_adjust_timeout(l->ctx, 1, 0) == 0)
		more = _lws_plat_service_forced_tsi(l->ctx, 0);
	if (more)
		ev_idle_start(loop, &l->busy);
	else
		ev_idle_stop(loop, &l->busy);
}

static void
busy_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents; /* forced_cb does the work and stops it */
}

static void
wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents; /* waking the turn is all it is for */
}

int
evloop_create(struct evloop **out, struct lws_context_creation_info *info)
{
	struct evloop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return ENOMEM;
	/* epoll; signals stay the process's own (no signalfd, no mask). */
	l->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
	if (l->loop == NULL) {
		free(l);
		return ENOMEM;
	}
	l->foreign[0] = l->loop;
	info->options |= LWS_SERVER_OPTION_LIBEV;
	info->foreign_loops = l->foreign;
	l->ctx              = lws_create_context(info);
	info->foreign_loops = NULL;
	if (l->ctx == NULL) {
		ev_loop_destroy(l->loop);
		free(l);
		return EIO;
	}
	ev_prepare_init(&l->forced, forced_cb);
	l->forced.data = l;
	ev_prepare_start(l->loop, &l->forced);
	ev_idle_init(&l->busy, busy_cb);
	ev_timer_init(&l->wake, wake_cb, 0, 0);
	*out = l;
	return 0;
}

struct lws_context *
evloop_lws(const struct evloop *l)
{
	return l->ctx;
}

void
evloop_turn(struct evloop *l, bool wait)
{
	ev_run(l->loop, wait ? EVRUN_ONCE : EVRUN_NOWAIT);
}

void
evloop_wake_in(struct evloop *l, int64_t us)
{
	ev_timer_stop(l->loop, &l->wake);
	if (us < 0)
		return;
	/* libev times from the start of this pass; "now" is later. */
	ev_now_update(l->loop);
	ev_timer_set(&l->wake, (double)us / 1e6, 0);
	ev_timer_start(l->loop, &l->wake);
}

void
evloop_destroy(struct evloop *l)
{
	if (l == NULL)
		return;
	ev_timer_stop(l->loop, &l->wake);
	ev_prepare_stop(l->loop, &l->forced);
	ev_idle_stop(l->loop, &l->busy);
	lws_context_destroy(l->ctx);
	ev_loop_destroy(l->loop);
	free(l);
}

/* lws masks every frame a client sends with 4 bytes from lws_get_random,
 * which in lws 4.1 is a read(2) of /dev/urandom: a syscall per page
 * egress sends PersonaPlex, and per message the load generator sends.
 * This definition takes the library's place (lws calls it through its
 * PLT) and serves the same kernel generator, getrandom(2), from a
 * per-thread buffer: one syscall per 64 masks. A forked child starts
 * with an empty buffer, so the two never send the same bytes. */
#define RAND_BUF 256 /* getrandom(2) fills up to 256 bytes in one call */

static _Atomic unsigned      rand_gen; /* bumped in a forked child */
static _Atomic unsigned long rand_draws;
static pthread_once_t        rand_once = PTHREAD_ONCE_INIT;

static void
rand_forked(void)
{
	atomic_fetch_add(&rand_gen, 1);
}

static void
rand_init(void)
{
	pthread_atfork(NULL, NULL, rand_forked);
}

size_t
lws_get_random(struct lws_context *context, void *buf, size_t len)
{
	static _Thread_local struct {
		uint8_t  b[RAND_BUF];
		size_t   off; /* first unserved byte */
		unsigned gen;
		bool     filled; /* b has been filled in this gen */
	} r;
	uint8_t *p    = buf;
	size_t   done = 0;
	unsigned gen;

	(void)context;
	pthread_once(&rand_once, rand_init);
	atomic_fetch_add_explicit(&rand_draws, 1, memory_order_relaxed);
	gen = atomic_load_explicit(&rand_gen, memory_order_relaxed);
	if (!r.filled || r.gen != gen) {
		r.off    = RAND_BUF;
		r.gen    = gen;
		r.filled = true;
	}
	while (done < len) {
		size_t n;
		if (r.off == RAND_BUF) {
			/* lws takes a short count as a failure */
			if (getrandom(r.b, RAND_BUF, 0) != RAND_BUF)
				break;
			r.off = 0;
		}
		n = RAND_BUF - r.off;
		if (n > len - done)
			n = len - done;
		memcpy(p + done, r.b + r.off, n);
		memset(r.b + r.off, 0, n); /* served once only */
		r.off += n;
		done += n;
	}
	return done;
}

unsigned long
evloop_random_draws(void)
{
	return atomic_load(&rand_draws);
}
