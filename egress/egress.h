/*
 * egress.h - the egress process's state: its lws context, the bus links
 * it listens on, the pool of PersonaPlex servers and the calls it bridges
 * to them (research/personaplex.md §5; docs/personaplex.md).
 *
 * Per call (call_start on "control"): a persona (persona.h) and a server
 * leased from the pool (pool.h) for the call's whole life; none free →
 * hangup{no_capacity} to ingress at once. The session's 0x00 handshake
 * becomes session_ready on "egress" (to the transcoder) and "control" (to
 * ingress); uplink_ogg pages of that session go to the server as 0x01 +
 * page; 0x01 from the server goes to the transcoder as downlink_ogg; 0x02
 * text pieces become agent_text utterances on "control". A session that
 * fails or goes silent is replaced (backoff with jitter, any free server,
 * the same persona, a new session number, so a new Ogg stream) and the
 * caller's stale audio cleared; past the reconnect budget the call is
 * hung up (persona_failed). call_stop closes the session with a
 * WebSocket close (1000). Warm sessions wait, handshake done, for calls
 * with the default persona. With STT on, each call that got a server is
 * transcribed (stt.h) from the caller_audio on "control", and its caller
 * transcripts go out as webhook events before its call.ended.
 * capacity{free,total} goes to ingress when it changes and when ingress
 * (re)connects.
 *
 * Each call's mode (mode.h) is decided at its call_start and sent as
 * call_mode to ingress and the transcoder. A "transcribe" call (agent
 * assist) leases no server and opens no session: it only has its STT
 * session, whose transcripts are speaker "call"; without STT it is
 * refused (hangup bridge_error, call.ended detail stt_not_configured).
 *
 * Everything runs on the thread that calls lws_service on egress_lws().
 */
#ifndef EXO_EGRESS_H
#define EXO_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stt.h"

struct bus;
struct egress;
struct hooks;
struct log;
struct lws_context;
struct metrics;

struct egress_opts {
	struct log     *log;
	struct metrics *metrics;
	struct bus     *to_transcoder; /* link "egress" (egress listens) */
	struct bus     *to_ingress; /* link "control" (egress listens) */
	const char     *urls; /* EXOPLEX_PERSONAPLEX_URLS; may be NULL */
	const char     *voice_prompt;
	const char     *text_prompt;
	const char     *personas; /* EXOPLEX_PERSONAS file; may be NULL */
	/* EXOPLEX_DEFAULT_MODE: "agent" or "transcribe" (mode.h); NULL =
	 * agent, or transcribe with no server configured. */
	const char *default_mode;
	const char *ca_file; /* extra CA bundle for wss://; NULL = system */
	bool        insecure; /* no certificate checks for wss:// */
	unsigned    text_gap_ms; /* 0 = 600: silence ending an utterance */
	unsigned    idle_ms; /* 0 = 30000: see egress.c */
	/* After ingress disconnects (or a new one connects), its calls not
	 * announced again within this many ms end (bridge_error). 0 = 3000 */
	unsigned ingress_grace_ms;
	size_t   uplink_queue; /* pages per session; 0 = 50 */
	unsigned warm; /* idle servers kept connected, handshake done */
	unsigned handshake_ms; /* 0 = 15000: wait for 0x00 */
	unsigned reconnect_ms; /* 0 = 10000: budget to replace a session */
	unsigned liveness_ms; /* 0 = 10000: silence that ends a session */
	/* Server backoff after failures: 0 = 1000 doubling to 30000. */
	unsigned      backoff_ms, backoff_max_ms;
	uint64_t      seed; /* jitter; 0 = from the clock */
	struct hooks *hooks; /* webhook events (hooks.h); NULL = none */
	/* Caller transcripts (stt.h): off when stt.api_key is NULL or "".
	 * egress fills in the context, vhost, protocol, log and metrics. */
	struct stt_env_opts stt;
};

/* Checks a comma-separated server list (a cfg_opt check function):
 * every URL must parse. An empty list is allowed (then calls fail). */
int egress_check_urls(const char *urls, char *err, size_t errlen);

/* Checks the servers with the personas: every URL parses, the personas
 * file loads, and every persona's request path fits every server
 * (ppurl_target). Returns 0, or EINVAL with err filled. Call
 * persona_lib_init first. */
int egress_check_opts(const struct egress_opts *o, char *err, size_t errlen);

/* Creates the lws context, adopts both bus links into it and starts the
 * housekeeping tick. Returns 0; EINVAL with err filled for a bad setting
 * (a URL, the personas, prompts that make a request path too long); or
 * another errno value after logging. The caller keeps o's pointers
 * alive. */
int egress_alloc(struct egress **out, const struct egress_opts *o, char *err,
    size_t errlen);
/* Closes every session (close frames are attempted but not awaited) and
 * destroys the lws context. The bus links stay the caller's. */
void egress_free(struct egress *e);

/* One turn of egress's loop (evloop_turn): when wait, waits for a socket,
 * a timer (the tick: at least every 100 ms) or a wake-up first. */
void egress_service(struct egress *e, bool wait);

/* The next egress_service waits no longer than us (evloop_wake_in). */
void egress_wake_in(struct egress *e, int64_t us);

/* Number of calls known. */
size_t egress_calls(const struct egress *e);

/* PersonaPlex servers free now (what capacity frames tell ingress); safe
 * from any thread. */
unsigned egress_servers_free(struct egress *e);

/* admin_ready_fn: ready once running; detail names servers and peers.
 * Reads only atomics and thread-safe bus state. */
int egress_ready(void *arg, char *detail, size_t len);

#endif
