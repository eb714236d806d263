/*
 * server.h - the Exotel WebSocket server: one libwebsockets context that
 * also reads the bus links, one shared 20 ms tick that paces playback for
 * every call.
 *
 * The owner runs the loop: server_service (one lws turn), then bus_flush
 * on both links, then admin_heartbeat. The server never frees what it was
 * given (log, metrics, buses); server_stop frees everything it made.
 */
#ifndef EXO_INGRESS_SERVER_H
#define EXO_INGRESS_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct log;
struct metrics;
struct bus;
struct auth;

struct server_opts {
	const char *listen; /* "host:port"; "" or 0.0.0.0 = all */
	unsigned    msg_ms; /* playback message size; 0 = 100 */
	unsigned    lead_ms; /* playback lead; 0 = 200 */
	unsigned    start_ms; /* upgrade → start deadline; 0 = 10000 */
	unsigned    stop_grace_ms; /* close after stop if Exotel has not;
	                            * 0 = 2000 */
	size_t   max_msg; /* largest inbound message; 0 = 256 kB */
	unsigned max_calls; /* live calls; more are refused; 0 = 1000 */
	unsigned mark_interval_ms; /* a mark at least this often while
	                            * audio flows; 0 = 500 */
	unsigned mark_timeout_ms; /* an echo this late past the expected
	                           * end: taken as played; 0 = 2000 */
	unsigned write_stall_ms; /* Exotel reads nothing this long while
	                          * we have messages: close; 0 = 10000 */
	int send_buffer; /* SO_SNDBUF of an Exotel socket, bytes; 0 = 64 kB
	                  * (the kernel doubles it) */
	const char *dtmf_hangup; /* digits that end the call; NULL/"" none */
	/* PEM certificate (chain) and private key files: set both to serve
	 * wss:// (TLS 1.2 or later) instead of ws://. */
	const char        *tls_cert, *tls_key;
	const struct auth *auth; /* NULL or no credentials: auth off */
	struct log        *log;
	struct metrics    *metrics;
	struct bus        *bus_transcoder; /* link "transcoder" (dialed) */
	struct bus        *bus_control; /* link "control" (dialed) */
};

/* Creates the context, listens, adopts both bus fds and starts the tick.
 * Returns 0, or an errno value after logging why. */
int server_start(struct server **out, const struct server_opts *o);
/* Ends every call (call_stop on the bus, reason "bridge_error"), closes
 * the sockets and frees the server. The owner flushes the buses after. */
void server_stop(struct server *s);

/* Graceful stop, first step: from now on new upgrades get 503 and
 * /readyz answers 503 "draining"; calls already up go on as before. */
void server_drain(struct server *s);

/* Exotel sockets still open: calls, and sockets waiting for their start. */
size_t server_open_sockets(const struct server *s);

/* Graceful stop, when the drain time is up: ends every call still up
 * (call_stop with reason, then a normal close, 1000) and closes sockets
 * still waiting for their start. They close over the next turns. */
void server_end_calls(struct server *s, const char *reason);

/* One turn of the loop (evloop_turn): waits for a socket, the tick or a
 * wake-up, and handles what is ready. */
void server_service(struct server *s);

/* The next server_service waits no longer than us (evloop_wake_in). */
void server_wake_in(struct server *s, int64_t us);

/* The TCP port listened on (useful when the listen port was 0). */
int server_port(const struct server *s);

/* For /readyz (any thread): 1 once listening; detail names the bus
 * peers and the number of calls. */
int server_ready(struct server *s, char *detail, size_t len);

#endif
