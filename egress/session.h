/*
 * session.h - one WebSocket to one PersonaPlex server (research/
 * personaplex.md §2, §5).
 *
 * A session connects, waits for the server's 0x00 handshake (sending
 * nothing before it), then sends each queued Ogg page as one message
 * 0x01 + page and hands received audio and text to its owner. It knows
 * nothing of calls or the bus: its owner (a call today; a pool's warm
 * slot later) gets callbacks and may be swapped with session_set_owner.
 *
 * All sessions of a process share a struct session_env: the lws vhost
 * they connect from, the log, the metrics and the limits. Everything
 * runs on the thread that services the lws context.
 *
 * Lifetime: session_open creates a session. It ends in exactly one of
 * two ways: the owner calls session_close (no callback follows), or the
 * session fails and calls cb->ended once (the owner must forget the
 * session in that callback). Either way the session frees itself once
 * lws is done with its socket, and then calls the env's gone callback
 * with the session's tag (session_set_tag), so a pool knows when the
 * server has seen the last of that socket.
 */
#ifndef EXO_SESSION_H
#define EXO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

struct log;
struct log_call;
struct metrics;
struct ppurl;
struct session;
struct session_env;

enum session_state {
	SESSION_CONNECTING, /* TCP, TLS and the HTTP upgrade */
	SESSION_PROMPTING, /* upgraded; the server runs its prompts */
	SESSION_READY, /* 0x00 received: audio may flow */
	SESSION_CLOSING, /* closed by its owner or failed */
};

/* Why a session failed: the label of exoplex_egress_session_failures
 * and Session.reason. */
#define SESSION_CONNECT_FAILED "connect_failed"
#define SESSION_CLOSED_PROMPTING "closed_before_handshake"
#define SESSION_CLOSED "closed"
#define SESSION_SEND_FAILED "send_failed"
/* Reasons an owner gives session_fail. */
#define SESSION_HANDSHAKE_TIMEOUT "handshake_timeout"
#define SESSION_SILENT "silent"

struct session_cb {
	/* 0x00 arrived: the session is ready for audio. */
	void (*handshake)(void *owner, struct session *s);
	/* 0x01: Ogg bytes as received (a page, part of one, or several),
	 * valid only during the call; rx_us is the arrival wall clock. */
	void (*audio)(void *owner, struct session *s, const uint8_t *ogg,
	    size_t len, uint64_t rx_us);
	/* 0x02: one UTF-8 piece (validated; not NUL-terminated). */
	void (*text)(
	    void *owner, struct session *s, const char *utf8, size_t len);
	/* The session failed (reason is one of SESSION_*, or the owner's
	 * own for session_fail; detail a human-readable cause). s must not
	 * be used after this returns. */
	void (*ended)(void *owner, struct session *s, const char *reason,
	    const char *detail);
};

struct session_env_opts {
	struct lws_context *context;
	struct lws_vhost   *vhost; /* clients connect from this vhost */
	const char         *protocol; /* its protocol that calls
	                                 session_lws_callback */
	struct log     *log;
	struct metrics *metrics;
	size_t          queue_max; /* uplink pages queued; 0 = 50 */
	size_t          rx_max; /* largest message; 0 = 256 KiB */
	/* Skip certificate checks for wss:// (private links only). The CA
	 * file is a vhost setting: see client_ssl_ca_filepath. */
	bool insecure;
	/* Called once per tagged session when its socket is gone (after
	 * session_close or cb->ended; never during session_env_free). */
	void (*gone)(void *arg, long tag);
	void *gone_arg;
};

/* Creates the shared state and registers the session metrics. Returns 0
 * or ENOMEM. The caller keeps o's pointers alive. */
int session_env_alloc(
    struct session_env **out, const struct session_env_opts *o);
/* Forgets every session still open (no callbacks; their sockets are left
 * to lws), then frees env. Call before lws_context_destroy. */
void session_env_free(struct session_env *env);

/* Number of sessions not yet freed (closing ones included). */
size_t session_env_count(const struct session_env *env);

/* A safety net: for each session closed before before_us (CLOCK_MONOTONIC
 * µs) whose socket lws has still not reported gone, calls the gone
 * callback now (once), so its server is not lost to the pool for good.
 * Returns how many. */
size_t session_env_reap(struct session_env *env, uint64_t before_us);

/* Opens a session to url, requesting target (ppurl_target). ids are
 * copied, for log lines. Returns 0 and sets *out, or an errno value after
 * logging (nothing else follows then: no callback). */
int session_open(struct session **out, struct session_env *env,
    const struct ppurl *url, const char *target, const struct log_call *ids,
    const struct session_cb *cb, void *owner);

/* The owner is done: closes the WebSocket with a close frame (1000) once
 * it is upgraded, or drops the connection attempt. No callback follows;
 * s must not be used after. */
void session_close(struct session *s, const char *why);

/* Sets the tag env's gone callback will get for s (default -1: none). */
void session_set_tag(struct session *s, long tag);

/* The owner judges the session failed (e.g. a handshake or liveness
 * timeout): logs, counts reason, closes like session_close and calls
 * cb->ended before returning. */
void session_fail(struct session *s, const char *reason, const char *detail);

/* Hands the session to another owner (a pool giving a warm session to a
 * call). ids are copied. */
void session_set_owner(struct session *s, const struct session_cb *cb,
    void *owner, const struct log_call *ids);

/* Queues an Ogg page to send as 0x01 + page. Returns 0; EAGAIN before
 * the handshake (nothing sent; the caller counts it); ENOBUFS when the
 * queue was full and a non-header page was dropped (the oldest queued
 * audio page, or this one if only header pages are queued; counted).
 * Header pages are never dropped. */
int session_send_ogg(
    struct session *s, const uint8_t *page, size_t len, bool header);

enum session_state session_state(const struct session *s);
/* The server's base URL (ppurl.base), for logs and Session.server. */
const char *session_server(const struct session *s);
/* CLOCK_MONOTONIC µs of: session_open; the handshake (0 before); the last
 * message received (0 before any). For handshake and liveness timeouts. */
uint64_t session_opened_us(const struct session *s);
uint64_t session_ready_us(const struct session *s);
uint64_t session_last_rx_us(const struct session *s);
/* Pages waiting in the outbound queue. */
size_t session_queued(const struct session *s);

/* The lws protocol callback for opts.protocol. lws 4.1 sends a wsi's
 * LWS_CALLBACK_WSI_DESTROY to its vhost's first protocol: if that is not
 * opts.protocol, its callback must pass WSI_DESTROY for wsis bound to
 * opts.protocol on to this one, or a session dropped before its upgrade
 * may never learn that its socket is gone. */
int session_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
    void *user, void *in, size_t len);

#endif
