/*
 * bus.h - one link of the exoplex bus: an NNG pair1 socket to one peer
 * process, carrying protobuf-c Envelopes of Frames (proto/exoplex.proto).
 *
 * Sending is two steps. bus_send packs a frame and queues it; bus_flush
 * sends everything queued as one NNG message (an Envelope of all frames)
 * without blocking. Call bus_flush once per turn of the event loop, so the
 * frames of many calls share a message. When calls' frames arrive spread
 * out (real calls do), a turn holds about one frame; with hold_us set,
 * bus_flush sends at most one message per hold_us (a first frame after a
 * quiet spell goes at once; those that follow it within hold_us wait for
 * the end of it), so frames still share messages (each NNG message costs
 * thread wake-ups on both sides), and bus_due_us tells the owner when to
 * flush again. While the audio it sends is already late, the hold
 * stretches toward hold_max_us (bus_opts). If the peer is absent or slow the
 * frames stay queued: audio frames (caller/playback audio, non-header Ogg)
 * at most audio_max per call, the oldest dropped and counted; control
 * frames at most control_max in all, past which bus_send refuses, logs and
 * counts (never a silent drop). NNG redials a lost peer on its own.
 *
 * A bus is owned by one thread: bus_send, bus_flush and bus_recv are not
 * thread-safe. The metrics it keeps are:
 *   exoplex_bus_frames_total{link,dir,kind}, exoplex_bus_frames_dropped_total
 *   {link,kind}, exoplex_bus_messages_total{link,dir},
 *   exoplex_bus_bad_messages_total{link}, exoplex_bus_peer_connected{link},
 *   and (by bus_count_in) the histogram exoplex_bus_frame_age_microseconds
 *   {link,kind} of audio frames' age on arrival (now - ts_us), and the
 *   gauge exoplex_bus_hold_microseconds{link}, the hold now.
 *
 * Tap: for debugging a live system, a bus can also publish a copy of every
 * Envelope it sends and receives, unchanged, on an NNG pub socket (by
 * default ipc://<dir>/tap-<self>-<link>.sock). Subscribers (exoplex-tap,
 * nngcat --sub) never slow the link: pub drops what a slow or absent
 * subscriber cannot take. A subscriber tells sent from received by the
 * Envelope's sender (== self: sent). Off unless asked for; when off it
 * costs one branch per message. A tap that cannot be opened is logged and
 * left off; the link works regardless.
 */
#ifndef EXO_BUS_H
#define EXO_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "exoplex.pb-c.h"

#define BUS_VERSION 1

struct bus;
struct metrics;
struct log;

struct bus_opts {
	const char     *link; /* label: "transcoder", "egress", "control" */
	const char     *url; /* ipc:///run/exoplex/x.sock, tcp://h:p, ... */
	bool            listen; /* true: listen on url; false: dial it */
	const char     *self; /* Envelope.sender: "ingress", ... */
	struct metrics *metrics;
	struct log     *log;
	size_t          audio_max; /* per call; 0 = 25 frames */
	size_t          control_max; /* 0 = 8192 frames */
	size_t          msg_max; /* bytes per NNG message; 0 = 1 MiB */
	unsigned        hold_us; /* 0: bus_flush sends at once */
	/* While the audio a message carries is already a frame (20 ms)
	 * late, the hold doubles up to this: fewer messages, so fewer
	 * wake-ups, when CPU is short. It halves back after each
	 * hold_calm_us (0: 1 s) with no late audio. At or below hold_us,
	 * or with hold_us 0: the hold stays hold_us. */
	unsigned hold_max_us;
	unsigned hold_calm_us;
	/* Tap: NULL = the environment variable EXOPLEX_BUS_TAP; "", "0",
	 * "off", "no", "false" = no tap; "1", "on", "yes", "true" =
	 * ipc://<dir>/tap-<self>-<link>.sock, dir being the ipc:// link's
	 * directory, else $EXOPLEX_BUS_DIR, else /run/exoplex; an absolute
	 * path = that directory instead; a URL (has "://") = that URL. */
	const char *tap;
};

#define BUS_TAP_ENV "EXOPLEX_BUS_TAP"

/* Resolves a tap setting (as bus_opts.tap, but NULL means no tap here:
 * the environment is not read) for a link into buf. Returns 0 with buf
 * filled, ENOENT when the setting means no tap, EINVAL for a value it
 * does not understand or a buf too small. */
int bus_tap_url(const char *tap, const char *self, const char *link,
    const char *link_url, char *buf, size_t buflen);

/* Opens the socket and starts listening or dialing (a dial that fails now
 * keeps retrying in the background). For ipc:// the socket's directory is
 * created if missing. Returns 0 or an errno-style value after logging. */
int  bus_open(struct bus **out, const struct bus_opts *o);
void bus_close(struct bus *b);
/* After the last bus_close of the process, at exit: waits for NNG to free
 * what its threads still hold (a message a closed socket had queued), so
 * leak checkers see nothing. Not thread-safe; nothing of NNG may run. */
void bus_lib_fini(void);

/* Packs f (which the caller keeps) and queues it. Returns 0, or ENOSPC
 * when a control frame finds the control queue full (logged, counted). */
int bus_send(struct bus *b, const Exo__Frame *f);

/* What bus_send needs to know of a frame besides its bytes. */
struct bus_meta {
	uint64_t call; /* hash of call_id */
	uint8_t  kind;
	bool     audio; /* bus_droppable */
	uint64_t ts_us; /* the frame's ts_us */
};

/* Fills *m for f; a pure function, callable from any thread. */
void bus_meta(const Exo__Frame *f, struct bus_meta *m);

/* bus_send for a frame already packed (len bytes from exo__frame__pack,
 * which the caller keeps; they are copied), with *m from bus_meta on the
 * same frame: a thread that packed it saves the owner unpacking it
 * again. Returns as bus_send. */
int bus_send_packed(struct bus *b, const struct bus_meta *m,
    const uint8_t *buf, size_t len);

/* Sends what is queued, in order, as few NNG messages as msg_max allows,
 * unless hold_us is set, the last message went less than hold_us ago and
 * the queue is under half a message. Never blocks; what the peer
 * cannot take now stays queued. Returns the number of frames still
 * queued. */
size_t bus_flush(struct bus *b);

/* Microseconds until bus_flush will send the frames it holds back, or -1
 * when it holds none back: nothing is queued, or what is queued goes at
 * the next bus_flush or waits for the peer (so a loop that arms a wake-up
 * from this never spins on a slow or absent peer). */
int64_t bus_due_us(const struct bus *b);

/* The sooner of two bus_due_us values (-1: neither is due). */
static inline int64_t
bus_due_min(int64_t a, int64_t b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* Frames waiting to be sent. */
size_t bus_pending(const struct bus *b);

/* Receives one Envelope without blocking. Returns 0 and sets *env (free it
 * with bus_envelope_free), EAGAIN when nothing is waiting, or EPROTO for a
 * message that is not a valid Envelope of a known version (logged once
 * per link per minute, counted, discarded). */
int  bus_recv(struct bus *b, Exo__Envelope **env);
void bus_envelope_free(Exo__Envelope *env);

/* bus_recv without a heap allocation: the Envelope lives in b's arena and
 * stays valid until the next bus_next on b or bus_close; never free it.
 * For owners that handle each Envelope before taking the next. */
int bus_next(struct bus *b, const Exo__Envelope **env);

/* bus_recv into the caller's arena a: the Envelope lives until the
 * caller resets a (never free it). For owners that keep Envelopes across
 * receives, one arena each. */
struct arena;
int bus_recv_in(struct bus *b, struct arena *a, Exo__Envelope **env);

/* Unpacks len received bytes the way bus_recv does, without logging or
 * counting (bus_recv uses it; so do the fuzz targets). Returns 0 with
 * *env set; EPROTO for bytes that are not an Envelope (*env NULL); or
 * EPROTONOSUPPORT for an Envelope of another version, with *env still set
 * so the caller can say who sent it. The caller frees *env when set. */
int bus_parse(const uint8_t *buf, size_t len, Exo__Envelope **env);

/* A file descriptor that polls readable while an Envelope is waiting.
 * Owned by NNG: poll it, never read, write or close it. */
int bus_fd(struct bus *b);

/* Number of connected peers (0 or 1), safe from any thread. */
int bus_peers(const struct bus *b);

/* True once per reconnection: a peer connected since the last call.
 * Lets the owner re-announce state to a restarted peer. */
bool bus_take_new_peer(struct bus *b);

/* Counts a received frame of f's kind (for frames-in metrics) and, for
 * audio kinds, its age; bus_recv callers that walk an Envelope call it
 * per frame, as they receive it. */
void bus_count_in(struct bus *b, const Exo__Frame *f);

/* Name of a frame's kind ("caller_audio", ...), for logs and metrics. */
const char *bus_kind_name(const Exo__Frame *f);

/* Whether the bus may drop f under back-pressure. */
bool bus_droppable(const Exo__Frame *f);

#endif
