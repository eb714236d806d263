/*
 * conv.h - one conversation's model side, without the network: the
 * handshake, the uplink through the strict Ogg reader and a 24 kHz libopus
 * decoder, 80 ms "model steps" clocked by the decoded input (no input, no
 * output: server.py opus_loop), and the downlink through the sphn writer.
 *
 * Instead of a model, a step returns the caller's own 80 ms (echo) or a
 * sine (tone). Replay, for load tests, neither decodes nor encodes: it
 * clocks the steps by the packets' durations (their TOC bytes) and sends
 * the next 80 ms packet of a clip encoded once at start (conv_clip_make),
 * so the stand-in costs little more than its sockets while the bridge
 * still decodes realistic 24 kHz speech. Text pieces, if configured, go out
 * one per step at the start of the conversation, each before its step's audio
 * page, as the real opus_loop sends them.
 */
#ifndef EXO_FAKEPLEX_CONV_H
#define EXO_FAKEPLEX_CONV_H

#include <stddef.h>
#include <stdint.h>

struct log;
struct stats;

enum conv_mode { CONV_ECHO = 0, CONV_TONE, CONV_REPLAY };

/* 80 ms Opus packets of 24 kHz audio, played in a loop by replay. */
struct conv_clip {
	uint8_t *data;
	size_t  *off, *len;
	size_t   n;
};

/* Encodes n samples of 24 kHz pcm as sphn would (VOIP, libopus defaults,
 * complexity as given if 0-10) into 80 ms packets. The caller frees the
 * clip with conv_clip_free. Returns 0, EINVAL (under 80 ms), ENOMEM or
 * EIO. */
int conv_clip_make(
    struct conv_clip **out, const int16_t *pcm, size_t n, int complexity);
void conv_clip_free(struct conv_clip *c);

struct conv_opts {
	enum conv_mode mode;
	double         tone_hz;
	const char    *text; /* "Hello there" → " Hello", " there"; NULL */
	/* Downlink encoder complexity 0-10; out of range (e.g. -1) keeps
	 * libopus's default, as sphn does. */
	int                     complexity;
	const struct conv_clip *clip; /* CONV_REPLAY's packets */
};

/* Sends one WebSocket binary message: kind, then n payload bytes. The
 * bytes are valid during the call only. Non-zero means the message could
 * not be queued; the conversation goes on (it is counted by the caller). */
typedef int (*conv_send_fn)(
    void *arg, uint8_t kind, const uint8_t *p, size_t n);

struct conv;

/* id names the session in log lines. opts, stats and log must outlive the
 * conversation. The caller frees it with conv_free. Returns 0, ENOMEM or
 * EIO (codec). */
int  conv_alloc(struct conv **out, const struct conv_opts *opts,
     struct stats *st, const struct log *lg, uint64_t id, conv_send_fn send,
     void *arg);
void conv_free(struct conv *c);

/* Sends 0x00, then the OpusHead and OpusTags pages. Returns 0 or EIO. */
int conv_handshake(struct conv *c);

/* Feeds the payload of one 0x01 message (Ogg bytes). Returns 0, or
 * EPROTO once the conversation hit a fatal error (the real server closes
 * the socket then; see conv_fatal). */
int conv_uplink(struct conv *c, const uint8_t *p, size_t n);

/* The kind of the fatal error ("bad_crc", "decode_error", ...) or NULL. */
const char *conv_fatal(const struct conv *c);

#endif
