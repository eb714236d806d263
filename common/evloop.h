/*
 * evloop.h - a libwebsockets context on a libev (epoll) loop that the
 * calling thread runs one turn at a time.
 *
 * Why: lws 4.1's own loop poll()s every socket it has on every wake-up,
 * so with hundreds of calls the kernel's poll was the largest cost after
 * the codecs (docs/performance.md). On epoll a wake-up costs what is
 * ready. lws runs on the loop as a "foreign" loop so that its owner keeps
 * its own turn: evloop_turn runs what is ready once and returns, and the
 * owner then does its per-turn work (bus_flush). lws loads its libev
 * support from Debian's libwebsockets-evlib-ev at run time.
 *
 * One thread owns an evloop and everything on it; other threads wake it
 * with lws_cancel_service, as before.
 */
#ifndef EXO_EVLOOP_H
#define EXO_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct lws_context;
struct lws_context_creation_info;

/* Creates an epoll loop and an lws context on it from info (which the
 * caller keeps; its options and foreign_loops are set here). Returns 0,
 * ENOMEM, or EIO when lws could not create the context (listen address
 * in use, TLS files unreadable, libev support missing: lws logs why). */
int evloop_create(struct evloop **out, struct lws_context_creation_info *info);

/* The lws context; the evloop owns it. */
struct lws_context *evloop_lws(const struct evloop *l);

/* Runs what is ready: when wait, first waits for something (a socket, a
 * timer lws_sul_schedule set, lws_cancel_service, a signal). */
void evloop_turn(struct evloop *l, bool wait);

/* Makes the next turns wait no longer than us microseconds from now (a
 * later call replaces it; us < 0 cancels): for work of the owner's own
 * that falls due, such as a bus's held frames (bus_due_us). */
void evloop_wake_in(struct evloop *l, int64_t us);

/* Destroys the lws context (closing its sockets, with their callbacks),
 * then the loop, and frees l. NULL is a no-op. */
void evloop_destroy(struct evloop *l);

/* How many times lws drew random bytes through evloop.c's
 * lws_get_random (the masks of client frames; see evloop.c): for tests
 * that check lws calls it. */
unsigned long evloop_random_draws(void);

#endif
