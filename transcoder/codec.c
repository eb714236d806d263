/*
 * codec.c - libopus mono, at 24 kHz unless asked otherwise.
 */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>

#include <opus/opus.h>

struct codec_enc {
	OpusEncoder *opus;
	int          lookahead;
	int          frame; /* samples per 20 ms */
};

struct codec_dec {
	OpusDecoder *opus;
};

int
codec_rate_ok(int rate)
{
	/* 48 kHz would be legal Opus, but CODEC_MAX_FRAME bounds 24 kHz. */
	return rate == 8000 || rate == 12000 || rate == 16000
	    || rate == CODEC_RATE;
}

int
codec_enc_alloc(struct codec_enc **out, int complexity, int bitrate)
{
	return codec_enc_alloc_rate(
	    out, CODEC_RATE, CODEC_RATE, complexity, bitrate);
}

int
codec_enc_alloc_rate(struct codec_enc **out, int rate, int src_rate,
    int complexity, int bitrate)
{
	struct codec_enc *e;
	int               err = 0;

	*out = NULL;
	if (!codec_rate_ok(rate) || complexity < 0 || complexity > 10
	    || bitrate < 500 || bitrate > 512000)
		return EINVAL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return ENOMEM;
	e->frame = rate / 50;
	e->opus  = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
	if (e->opus == NULL) {
		free(e);
		return ENOMEM;
	}
	/* DTX stays off: the server decodes every packet, and its output
	 * is clocked by its input, so every 20 ms must carry a packet. */
	if (opus_encoder_ctl(e->opus, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))
	    || opus_encoder_ctl(e->opus, OPUS_SET_COMPLEXITY(complexity))
	    || opus_encoder_ctl(e->opus, OPUS_SET_BITRATE(bitrate))
	    || opus_encoder_ctl(e->opus, OPUS_SET_DTX(0))
	    || opus_encoder_ctl(e->opus, OPUS_GET_LOOKAHEAD(&e->lookahead))) {
		codec_enc_free(e);
		return EINVAL;
	}
	/* A call at 16 kHz or less has nothing above 8 kHz. At complexity 7
	 * and up libopus analyses the signal and codes such audio, brought
	 * to 24 kHz, as SILK wideband (1,490 of 1,499 frames of the floor's
	 * speech at 8 kHz); below 7 it skips that analysis and codes hybrid
	 * super-wideband, CELT spending a tenth to a seventh of the encode on
	 * the empty 8-12 kHz band. This asks for what the analysis would
	 * choose (docs/performance.md); OPUS_RESET_STATE keeps it. */
	if (rate > 16000 && src_rate <= 16000
	    && opus_encoder_ctl(
	        e->opus, OPUS_SET_MAX_BANDWIDTH(OPUS_BANDWIDTH_WIDEBAND))) {
		codec_enc_free(e);
		return EINVAL;
	}
	*out = e;
	return 0;
}

void
codec_enc_free(struct codec_enc *e)
{
	if (e == NULL)
		return;
	opus_encoder_destroy(e->opus);
	free(e);
}

void
codec_enc_reset(struct codec_enc *e)
{
	opus_encoder_ctl(e->opus, OPUS_RESET_STATE);
}

int
codec_enc_lookahead(const struct codec_enc *e)
{
	return e->lookahead;
}

int
codec_enc_frame(const struct codec_enc *e)
{
	return e->frame;
}

int
codec_encode(struct codec_enc *e, const int16_t *pcm, uint8_t *out, size_t cap,
    size_t *outn)
{
	opus_int32 n;

	*outn = 0;
	n     = opus_encode(e->opus, pcm, e->frame, out,
            cap > 0x7fff ? 0x7fff : (opus_int32)cap);
	if (n < 0)
		return EIO;
	*outn = (size_t)n;
	return 0;
}

int
codec_dec_alloc(struct codec_dec **out)
{
	return codec_dec_alloc_rate(out, CODEC_RATE);
}

int
codec_dec_alloc_rate(struct codec_dec **out, int rate)
{
	struct codec_dec *d;
	int               err = 0;

	*out = NULL;
	if (!codec_rate_ok(rate))
		return EINVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return ENOMEM;
	if ((d->opus = opus_decoder_create(rate, 1, &err)) == NULL) {
		free(d);
		return ENOMEM;
	}
	*out = d;
	return 0;
}

void
codec_dec_free(struct codec_dec *d)
{
	if (d == NULL)
		return;
	opus_decoder_destroy(d->opus);
	free(d);
}

void
codec_dec_reset(struct codec_dec *d)
{
	opus_decoder_ctl(d->opus, OPUS_RESET_STATE);
}

int
codec_decode(struct codec_dec *d, const uint8_t *pkt, size_t n, int16_t *pcm,
    size_t cap, size_t *outn)
{
	int got;

	*outn = 0;
	/* An empty packet would make libopus conceal a loss: refuse it. */
	if (n == 0 || n > 0x7fffffff)
		return EINVAL;
	got = opus_decode(d->opus, pkt, (opus_int32)n, pcm,
	    cap > CODEC_MAX_FRAME ? CODEC_MAX_FRAME : (int)cap, 0);
	if (got < 0)
		return EINVAL;
	*outn = (size_t)got;
	return 0;
}
