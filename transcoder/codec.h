/*
 * codec.h - the libopus encoder and decoder PersonaPlex speaks: 24 kHz
 * mono, 20 ms frames up, any legal frame size down. Either side may also
 * run at another Opus rate (8, 12 or 16 kHz): an Opus stream decodes at
 * any rate, so an 8 kHz call can skip resampling both ways (the density
 * profile, docs/performance.md).
 *
 * Each object owns its libopus state; the matching _free releases it.
 */
#ifndef EXO_CODEC_H
#define EXO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CODEC_RATE 24000 /* the default, and the highest rate allowed */
#define CODEC_FRAME 480 /* 20 ms at 24 kHz: what we encode */
#define CODEC_MAX_FRAME 2880 /* 120 ms at 24 kHz: the longest Opus packet */
#define CODEC_MAX_PACKET 1275 /* longest 20 ms Opus packet */
#define CODEC_COMPLEXITY_DEF 5
#define CODEC_BITRATE_DEF 24000

struct codec_enc;
struct codec_dec;

/* True for the rates these codecs run at: 8000, 12000, 16000, 24000. */
int codec_rate_ok(int rate);

/* Creates a 24 kHz VOIP encoder (signal voice, DTX off) with complexity
 * 0..10 and bitrate in bit/s (500..512000). Returns 0, EINVAL or ENOMEM. */
int codec_enc_alloc(struct codec_enc **out, int complexity, int bitrate);
/* The same at rate (codec_rate_ok), for audio that came at src_rate (the
 * call's rate, before resampling): from a call at 16 kHz or less the
 * coded band stops at wideband (codec.c says why). */
int  codec_enc_alloc_rate(struct codec_enc **out, int rate, int src_rate,
     int complexity, int bitrate);
void codec_enc_free(struct codec_enc *e);
/* Forgets the signal history, for a stream that a fresh decoder reads. */
void codec_enc_reset(struct codec_enc *e);
/* The encoder's look-ahead in samples at its rate. */
int codec_enc_lookahead(const struct codec_enc *e);
/* Samples in one 20 ms frame at the encoder's rate (480 at 24 kHz). */
int codec_enc_frame(const struct codec_enc *e);
/* Encodes one 20 ms frame (codec_enc_frame samples) of pcm into out
 * (CODEC_MAX_PACKET bytes is enough) and sets *outn. Returns 0 or EIO. */
int codec_encode(struct codec_enc *e, const int16_t *pcm, uint8_t *out,
    size_t cap, size_t *outn);

/* Creates a 24 kHz mono decoder. Returns 0 or ENOMEM. */
int codec_dec_alloc(struct codec_dec **out);
/* The same decoding to rate (codec_rate_ok). Returns 0, EINVAL or
 * ENOMEM. */
int  codec_dec_alloc_rate(struct codec_dec **out, int rate);
void codec_dec_free(struct codec_dec *d);
void codec_dec_reset(struct codec_dec *d);
/* Decodes one packet into pcm (cap samples; CODEC_MAX_FRAME is enough)
 * and sets *outn. Returns 0, or EINVAL for a packet libopus refuses (a
 * corrupt or empty packet) with *outn = 0. */
int codec_decode(struct codec_dec *d, const uint8_t *pkt, size_t n,
    int16_t *pcm, size_t cap, size_t *outn);

#endif
