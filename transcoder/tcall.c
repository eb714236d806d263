/*
 * tcall.c - the per-call transcoding pipeline.
 */
#include "tcall.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "oggdemux.h"
#include "oggw.h"
#include "resample.h"

/* Resampler output scratch, in samples. soxr releases output in blocks:
 * for a 10 ms slice it holds well under 1000; resample_out_max is checked
 * before every slice anyway. */
#define TCALL_SCRATCH 8192

/* Buffers used only inside one tcall_uplink or tcall_downlink: the
 * tcalls of a thread may share them (tcall_scratch_alloc). */
struct tcall_scratch {
	int16_t up[TCALL_SCRATCH];
	int16_t dn_pcm[CODEC_MAX_FRAME];
};

struct tcall {
	int                rate;
	int                opus_rate;
	size_t             frame_n; /* samples per 20 ms at opus_rate */
	tcall_page_fn      on_page;
	tcall_pcm_fn       on_pcm;
	void              *arg;
	struct tcall_stats st;

	/* uplink */
	struct resample  *up_rs;
	struct codec_enc *enc;
	struct oggw      *oggw;
	uint32_t          up_session; /* 0: not encoding */
	int16_t           frame[CODEC_FRAME];
	size_t            frame_fill;
	size_t            idle_fill; /* samples towards frames_idle */
	uint8_t           packet[CODEC_MAX_PACKET];

	/* downlink */
	struct oggdemux      *demux;
	struct codec_dec     *dec; /* at the call's rate */
	uint32_t              dn_session;
	struct tcall_scratch *sc;
	bool                  own_sc;
};

int
tcall_scratch_alloc(struct tcall_scratch **out)
{
	/* malloc, not calloc: only what soxr and libopus write is read. */
	*out = malloc(sizeof(**out));
	return *out ? 0 : ENOMEM;
}

void
tcall_scratch_free(struct tcall_scratch *s)
{
	free(s);
}

int
tcall_alloc(struct tcall **out, const struct tcall_opts *o)
{
	struct tcall *c;
	int           rc;

	*out = NULL;
	if (o->rate != 8000 && o->rate != 16000 && o->rate != 24000)
		return EINVAL;
	if (o->opus_rate != 0 && !codec_rate_ok(o->opus_rate))
		return EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return ENOMEM;
	c->rate      = o->rate;
	c->opus_rate = o->opus_rate ? o->opus_rate : CODEC_RATE;
	c->frame_n   = (size_t)c->opus_rate / 50;
	c->sc        = o->scratch;
	if (c->sc == NULL) {
		if ((rc = tcall_scratch_alloc(&c->sc)) != 0) {
			free(c);
			return rc;
		}
		c->own_sc = true;
	}
	c->on_page = o->on_page;
	c->on_pcm  = o->on_pcm;
	c->arg     = o->arg;
	if ((rc = resample_alloc(&c->up_rs, o->rate, c->opus_rate)) != 0
	    || (rc = codec_enc_alloc_rate(
	            &c->enc, c->opus_rate, o->rate, o->complexity, o->bitrate))
	        != 0
	    || (rc = codec_dec_alloc_rate(&c->dec, o->rate)) != 0
	    || (rc = oggw_alloc(&c->oggw)) != 0
	    || (rc = oggw_set_per_page(
	            c->oggw, o->frames_per_page ? o->frames_per_page : 1))
	        != 0
	    || (rc = oggdemux_alloc(&c->demux)) != 0) {
		tcall_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
tcall_free(struct tcall *c)
{
	if (c == NULL)
		return;
	resample_free(c->up_rs);
	codec_enc_free(c->enc);
	codec_dec_free(c->dec);
	oggw_free(c->oggw);
	oggdemux_free(c->demux);
	if (c->own_sc)
		tcall_scratch_free(c->sc);
	free(c);
}

int
tcall_rate(const struct tcall *c)
{
	return c->rate;
}

static void
tcall_page(void *arg, const uint8_t *page, size_t n, bool header)
{
	struct tcall *c = arg;

	c->st.pages_out++;
	if (c->on_page)
		c->on_page(c->arg, c->up_session, page, n, header);
}

static int tcall_frames(struct tcall *c, const int16_t *pcm, size_t n);

/* Pads the frame being filled with silence so that frames end where the
 * resampler's output stands at the end of a 20 ms chunk: resample_hold
 * before the chunk's end. Called between chunks, at a session's start.
 * Frames cut anywhere else left part of each chunk's audio waiting for
 * the next chunk, 20 ms later: on average 15.8 ms of it at 8 kHz and
 * 13.0 at 16 kHz (sessions started 0-15 chunks into a call), against
 * 5.5 and 2.8 aligned, what soxr itself holds back; none without a
 * resampler. */
static int
tcall_align(struct tcall *c)
{
	static const int16_t zeros[CODEC_FRAME];
	long                 want
	    = (long)resample_hold(c->up_rs) - lround(resample_delay(c->up_rs));
	size_t target = want > 0 ? (size_t)want % c->frame_n : 0;
	size_t pad    = (target + c->frame_n - c->frame_fill) % c->frame_n;

	/* A partial frame kept from an earlier session is completed (and
	 * sent) first: its audio is not lost. */
	return pad ? tcall_frames(c, zeros, pad) : 0;
}

int
tcall_session_start(struct tcall *c, uint32_t session, uint32_t serial)
{
	int rc;

	/* The server's decoder is new: so is our encoder's history. The
	 * partial frame is kept, so no caller audio is lost. */
	codec_enc_reset(c->enc);
	c->up_session = session;
	rc            = oggw_begin(c->oggw, serial, (uint32_t)c->rate,
	               (uint16_t)(codec_enc_lookahead(c->enc) * 48000 / c->opus_rate),
	               tcall_page, c);
	if (rc)
		c->up_session = 0;
	else
		(void)tcall_align(c); /* an encode error is counted there */
	return rc;
}

void
tcall_session_end(struct tcall *c, uint32_t session)
{
	if (session == c->up_session)
		c->up_session = 0;
}

uint32_t
tcall_session(const struct tcall *c)
{
	return c->up_session;
}

/* Cuts PCM at the Opus rate into 20 ms frames and encodes them while a session
 * is on; without one the samples only count towards frames_idle. */
static int
tcall_frames(struct tcall *c, const int16_t *pcm, size_t n)
{
	size_t len;
	int    rc = 0;

	if (c->up_session == 0) {
		c->idle_fill += n;
		c->st.frames_idle += c->idle_fill / c->frame_n;
		c->idle_fill %= c->frame_n;
		return 0;
	}
	while (n > 0) {
		size_t k = c->frame_n - c->frame_fill;
		if (k > n)
			k = n;
		memcpy(c->frame + c->frame_fill, pcm, k * sizeof(*pcm));
		c->frame_fill += k;
		pcm += k;
		n -= k;
		if (c->frame_fill < c->frame_n)
			break;
		c->frame_fill = 0;
		if (codec_encode(c->enc, c->frame, c->packet,
		        sizeof(c->packet), &len)) {
			c->st.encode_errors++;
			rc = EIO;
			continue;
		}
		if (oggw_packet(c->oggw, c->packet, len,
		        960 /* 20 ms at 48 kHz */, false, tcall_page, c)) {
			c->st.encode_errors++;
			rc = EIO;
			continue;
		}
		c->st.frames_encoded++;
	}
	return rc;
}

int
tcall_flush(struct tcall *c)
{
	if (c->up_session == 0)
		return 0;
	return oggw_flush(c->oggw, tcall_page, c);
}

int
tcall_uplink(struct tcall *c, const int16_t *pcm, size_t n)
{
	size_t slice = (size_t)c->rate / 100; /* 10 ms */
	int    rc    = 0;

	c->st.samples_in += n;
	while (n > 0) {
		size_t k = n < slice ? n : slice, got = 0;
		if (resample_out_max(c->up_rs, k) > TCALL_SCRATCH
		    || resample_process(
		        c->up_rs, pcm, k, c->sc->up, TCALL_SCRATCH, &got)) {
			rc = EIO; /* not expected: the scratch is ample */
		}
		if (tcall_frames(c, c->sc->up, got))
			rc = EIO;
		pcm += k;
		n -= k;
	}
	return rc;
}

/* One downlink Opus packet, decoded straight at the call's rate: libopus
 * band-limits as it synthesizes at any of its rates, so the downlink needs
 * no resampler (less CPU, about 120 kB less per call, no soxr delay). */
static void
tcall_packet(void *arg, const uint8_t *pkt, size_t n)
{
	struct tcall *c   = arg;
	size_t        got = 0;

	if (codec_decode(
	        c->dec, pkt, n, c->sc->dn_pcm, CODEC_MAX_FRAME, &got)) {
		c->st.decode_errors++;
		return;
	}
	c->st.frames_decoded++;
	if (got == 0)
		return;
	c->st.samples_out += got;
	if (c->on_pcm)
		c->on_pcm(c->arg, c->sc->dn_pcm, got);
}

int
tcall_downlink(struct tcall *c, uint32_t session, const uint8_t *buf, size_t n)
{
	if (session != c->dn_session) {
		/* A new PersonaPlex connection: a new stream, a fresh
		 * encoder on its side. */
		oggdemux_reset(c->demux);
		codec_dec_reset(c->dec);
		c->dn_session = session;
	}
	c->st.bytes_in += n;
	return oggdemux_feed(c->demux, buf, n, tcall_packet, c);
}

void
tcall_stats(const struct tcall *c, struct tcall_stats *out)
{
	struct oggdemux_stats ds;

	*out = c->st;
	oggdemux_stats(c->demux, &ds);
	out->ogg_sync_errors = ds.sync_errors;
	out->ogg_holes       = ds.holes;
	out->ogg_streams     = ds.streams;
	out->ogg_no_bos      = ds.no_bos;
}
