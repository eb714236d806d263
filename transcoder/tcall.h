/*
 * tcall.h - one call's audio pipeline in the transcoder.
 *
 *   uplink:   PCM at the call's rate → soxr → 24 kHz → 20 ms Opus frames
 *             → Ogg pages of the current session's stream
 *   downlink: the session's Ogg bytes → demux → Opus decode straight at
 *             the call's rate (libopus decodes any stream at 8-48 kHz)
 *
 * 24 kHz is the uplink's Opus rate by default; with opus_rate equal to
 * the call's rate the soxr step becomes a plain copy (the density
 * profile).
 *
 * Output leaves through the callbacks given at creation, synchronously
 * from tcall_uplink, tcall_session_start and tcall_downlink; the buffers
 * they get are valid only during the call. Everything is allocated by
 * tcall_alloc: the per-frame path does not allocate. A tcall is owned by
 * one thread; tcall_free releases it. The tcalls of one thread may share
 * one struct tcall_scratch (22 kB of work buffers) instead of one each.
 */
#ifndef EXO_TCALL_H
#define EXO_TCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tcall;
struct tcall_scratch;

/* An uplink Ogg page of session; header is true for OpusHead/OpusTags. */
typedef void (*tcall_page_fn)(
    void *arg, uint32_t session, const uint8_t *page, size_t n, bool header);
/* Playback PCM at the call's rate. */
typedef void (*tcall_pcm_fn)(void *arg, const int16_t *pcm, size_t n);

struct tcall_opts {
	int rate; /* the call's rate: 8000, 16000, 24000 */
	int opus_rate; /* encode at: 0 = 24000; or
	                  8000, 12000, 16000 (codec_rate_ok) */
	int                   complexity; /* Opus encoder complexity, 0..10 */
	int                   bitrate; /* Opus encoder bit/s */
	unsigned frames_per_page; /* uplink Opus frames per Ogg page, 1-4;
	                             0 = 1 */
	struct tcall_scratch *scratch; /* shared, outlives the tcall; NULL:
	                                  the tcall has its own */
	tcall_page_fn on_page;
	tcall_pcm_fn  on_pcm;
	void         *arg; /* passed to both callbacks */
};

struct tcall_stats {
	uint64_t samples_in; /* caller PCM samples taken */
	uint64_t frames_encoded; /* 20 ms Opus frames put on pages */
	uint64_t frames_idle; /* 20 ms at the Opus rate, no session */
	uint64_t encode_errors;
	uint64_t pages_out; /* uplink pages, headers included */
	uint64_t bytes_in; /* downlink Ogg bytes */
	uint64_t frames_decoded; /* downlink Opus packets decoded */
	uint64_t decode_errors; /* packets libopus refused */
	uint64_t samples_out; /* playback PCM samples at the call's rate */
	uint64_t ogg_sync_errors;
	uint64_t ogg_holes;
	uint64_t ogg_streams;
	uint64_t ogg_no_bos;
};

/* Work buffers for the tcalls of one thread (the caller frees them after
 * the last of those tcalls). Returns 0 or ENOMEM. */
int  tcall_scratch_alloc(struct tcall_scratch **out);
void tcall_scratch_free(struct tcall_scratch *s);

/* Returns 0, EINVAL for a bad rate or codec setting, or ENOMEM/EIO. */
int  tcall_alloc(struct tcall **out, const struct tcall_opts *o);
void tcall_free(struct tcall *c);

int tcall_rate(const struct tcall *c);

/* Starts session's uplink stream: a fresh encoder state and a new Ogg
 * stream with this serial, whose two header pages go out at once. Call
 * it between chunks of caller audio: it pads the frame being filled with
 * silence so that frames end resample_hold before each 20 ms chunk's
 * end, and each chunk's audio is encoded as the chunk arrives (a partial
 * frame kept from an earlier session is completed and sent first).
 * Returns 0 or ENOMEM. */
int tcall_session_start(struct tcall *c, uint32_t session, uint32_t serial);
/* Stops encoding if session is the current one. */
void tcall_session_end(struct tcall *c, uint32_t session);
/* The session being encoded, 0 for none. */
uint32_t tcall_session(const struct tcall *c);

/* Takes n samples of caller PCM at the call's rate. Resampled always;
 * encoded into pages only while a session is on. Returns 0 or EIO. */
int tcall_uplink(struct tcall *c, const int16_t *pcm, size_t n);

/* The caller's audio ended: frames still waiting for their page go out
 * on a shorter one. Returns 0. */
int tcall_flush(struct tcall *c);

/* Takes n bytes of session's downlink Ogg stream, as they arrived. A
 * session number other than the last one's starts the demuxer and the
 * decoder over. Damage is counted in the stats, never fatal. Returns 0
 * or ENOMEM. */
int tcall_downlink(
    struct tcall *c, uint32_t session, const uint8_t *buf, size_t n);

void tcall_stats(const struct tcall *c, struct tcall_stats *out);

#endif
