/*
 * resample.c - libsoxr wrapper for int16 mono streams.
 *
 * Settings: SOXR_LQ | SOXR_MINIMUM_PHASE with log2_min_dft_size = 8.
 * Measured on the 2-vCPU dev VM (libsoxr 0.1.3, engine cr32s), 20 ms
 * chunks, mean backlog (input time fed minus output time released):
 *
 *   setting          8k<->24k  16k<->24k  3.4 kHz at 8k  alias (24k->8k)
 *   HQ (default)      42.7 ms    21.3 ms      0 dB          < -110 dB
 *   LQ                22.5       11.3        -7.8 dB        < -110
 *   LQ, dft 2^8       10.6        5.3        -7.8 dB        < -110
 *   LQ, dft 2^8, min   8.5        4.2        -7.8 dB        < -112
 *   ... and at most 2^8   3.0        1.5        (the same filter)
 *   QQ (cubic)         0.2        0.1        -3.0 dB           0 dB
 *
 * QQ has no anti-alias filter at all: a 4.8 kHz tone from the model comes
 * out of 24k->8k at full level as 3.2 kHz. LQ's wider passband settings
 * (passband_end 0.8+) double the delay. So LQ + minimum phase + small DFT
 * is the lowest-delay setting that still filters, inside the 10 ms budget
 * per conversion; phase distortion is inaudible for speech. CPU is about
 * 0.1-0.2 ms per channel-second (vs 0.13 for HQ) and soxr_create about
 * 0.1-0.2 ms (minimum phase designs its filter at create; once per call).
 *
 * The DFT is also capped at 2^8 (log2_large_dft_size): soxr otherwise
 * takes 2^9 for this filter and releases output in blocks of 16 ms, so
 * at the end of a 20 ms chunk it held back up to 15 ms of it; in blocks
 * of 5.5 ms it holds back at most 5.5 ms (resample_hold). Same filter,
 * same output (within 2 LSB); 0.05 ms more CPU per call-second at 8 kHz.
 *
 * Priming: resample_alloc runs 640 ms of silence through a new converter
 * and drops what comes out (resample_process then skips the silence soxr
 * still holds, so output starts exactly as a fresh converter's would). It
 * measures resample_hold, and it makes soxr's input FIFO (16 kB, which
 * moves forward until it wraps, and on its first wrap grows by a realloc
 * that leaves the old 16 kB behind) wrap now, while the next converter's
 * allocations can reuse that space: 200 converters took 38 kB resident
 * each, against 49 unprimed and 57 before the DFT cap.
 */
#include "resample.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

struct resample {
	int    in_rate;
	int    out_rate;
	soxr_t soxr; /* NULL when in_rate == out_rate */
	size_t skip; /* output samples still to drop: the priming's silence */
	size_t hold; /* resample_hold */
};

#define PRIME_MS 640

static soxr_t
resample_soxr_create(int in_rate, int out_rate)
{
	soxr_error_t        err = NULL;
	soxr_io_spec_t      io  = soxr_io_spec(SOXR_INT16_I, SOXR_INT16_I);
	soxr_quality_spec_t q
	    = soxr_quality_spec(SOXR_LQ | SOXR_MINIMUM_PHASE, 0);
	soxr_runtime_spec_t rt = soxr_runtime_spec(1);

	rt.log2_min_dft_size   = 8; /* smaller blocks: half the LQ backlog */
	rt.log2_large_dft_size = 8; /* and no larger: a third of it again */
	return soxr_create(in_rate, out_rate, 1, &err, &io, &q, &rt);
}

/* Feeds PRIME_MS of silence in 20 ms chunks, noting the most soxr holds
 * back at a chunk's end, and drops the output (see the top). */
static int
resample_prime(struct resample *r)
{
	static const int16_t zeros[192000 / 50];
	int16_t              out[4096];
	size_t               chunk = (size_t)r->in_rate / 50;
	double               d     = 0;

	for (int k = 0; k < PRIME_MS / 20; k++) {
		size_t done = 0;
		while (done < chunk) {
			size_t idone = 0, odone = 0;
			if (soxr_process(r->soxr, zeros, chunk - done, &idone,
			        out, sizeof(out) / sizeof(*out), &odone))
				return EIO;
			if (idone == 0 && odone == 0)
				return EIO;
			done += idone;
		}
		if ((d = soxr_delay(r->soxr)) > (double)r->hold)
			r->hold = (size_t)ceil(d);
	}
	r->skip = (size_t)lround(d);
	return 0;
}

int
resample_alloc(struct resample **out, int in_rate, int out_rate)
{
	struct resample *r;

	*out = NULL;
	if (in_rate < 1000 || in_rate > 192000 || out_rate < 1000
	    || out_rate > 192000)
		return EINVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return ENOMEM;
	r->in_rate  = in_rate;
	r->out_rate = out_rate;
	if (in_rate != out_rate
	    && ((r->soxr = resample_soxr_create(in_rate, out_rate)) == NULL
	        || resample_prime(r) != 0)) {
		resample_free(r);
		return EIO;
	}
	*out = r;
	return 0;
}

void
resample_free(struct resample *r)
{
	if (r == NULL)
		return;
	if (r->soxr)
		soxr_delete(r->soxr);
	free(r);
}

int
resample_process(struct resample *r, const int16_t *in, size_t n, int16_t *out,
    size_t outcap, size_t *outn)
{
	size_t done = 0, produced = 0;

	*outn = 0;
	if (r->soxr == NULL) {
		size_t k = n < outcap ? n : outcap;
		memcpy(out, in, k * sizeof(*in));
		*outn = k;
		return k < n ? ENOBUFS : 0;
	}
	/* soxr may stop early when out is full; loop until it takes all. */
	while (done < n) {
		size_t idone = 0, odone = 0;
		if (soxr_process(r->soxr, in + done, n - done, &idone,
		        out + produced, outcap - produced, &odone))
			return EIO;
		done += idone;
		if (r->skip > 0) { /* the priming's silence, still held */
			size_t k = odone < r->skip ? odone : r->skip;
			memmove(out + produced, out + produced + k,
			    (odone - k) * sizeof(*out));
			r->skip -= k;
			odone -= k;
			if (idone == 0 && odone == 0 && k > 0)
				continue;
		}
		produced += odone;
		if (idone == 0 && odone == 0)
			break;
	}
	*outn = produced;
	return done < n ? ENOBUFS : 0;
}

size_t
resample_out_max(const struct resample *r, size_t n)
{
	double d = 0;

	if (r->soxr == NULL)
		return n;
	d = soxr_delay(r->soxr);
	return (size_t)(d + (double)n * r->out_rate / r->in_rate) + 64;
}

double
resample_delay(const struct resample *r)
{
	return r->soxr ? soxr_delay(r->soxr) - (double)r->skip : 0;
}

size_t
resample_hold(const struct resample *r)
{
	return r->hold;
}

const char *
resample_engine(char *buf, size_t len)
{
	soxr_t s = resample_soxr_create(8000, 24000);

	/* Copied before soxr_delete: soxr does not say who owns the name. */
	snprintf(buf, len, "%s", s ? soxr_engine(s) : "none");
	if (s)
		soxr_delete(s);
	return buf;
}
