/*
 * admin.h - the admin HTTP server: /healthz, /readyz, /metrics.
 *
 * libmicrohttpd serves it on its own thread, so a busy event loop never
 * delays a probe. /healthz answers 200 while the owner's loop has called
 * admin_heartbeat within the last stall_ms, else 503. /readyz asks the
 * owner's ready callback (called on the admin thread: it must only read
 * atomics or take short locks). Extra paths can be served by the optional
 * handler. The server does not own metrics.
 */
#ifndef EXO_ADMIN_H
#define EXO_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct admin;
struct metrics;
struct log;

/* Fills detail (NUL-terminated, may be left empty) and returns 1 if ready. */
typedef int (*admin_ready_fn)(void *arg, char *detail, size_t len);

/* Optional extra path handler: returns an HTTP status and sets *body to a
 * malloc'd string (freed by the server) and *ctype to a static string;
 * returns 0 for "not mine" (404). */
typedef int (*admin_path_fn)(void *arg, const char *path, char **body,
    const char **ctype);

struct admin_opts {
	const char     *addr; /* "127.0.0.1:9100"; ":9100" = all interfaces */
	struct metrics *metrics;
	struct log     *log;
	admin_ready_fn  ready;
	admin_path_fn   path;
	void           *arg;
	unsigned        stall_ms; /* 0 = 5000 */
};

/* Starts the server. Returns 0, or an errno value after logging why. */
int  admin_start(struct admin **out, const struct admin_opts *o);
void admin_stop(struct admin *a);
/* Called by the owner's loop to show it is alive. Thread-safe. */
void admin_heartbeat(struct admin *a);

#endif
