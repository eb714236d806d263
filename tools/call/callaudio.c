/*
 * callaudio.c - tone and speech-like test signals.
 *
 * The speech signal is a classic source-filter model, cheap and
 * deterministic: it has speech's pitch range, formant band (300-3000 Hz,
 * inside telephone bandwidth at 8 kHz), syllable rhythm and pauses, which
 * is what a codec, a resampler or a voice-activity detector notice.
 */
#include "callaudio.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "exomsg.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static int16_t
clip16(double v)
{
	if (v > 32767.0)
		return 32767;
	if (v < -32768.0)
		return -32768;
	return (int16_t)lrint(v);
}

int
callaudio_tone(int16_t **out, size_t n, int rate, double hz, double dbfs)
{
	if (rate <= 0 || hz <= 0 || hz >= rate / 2.0)
		return EINVAL;
	int16_t *p = malloc((n ? n : 1) * sizeof(*p));
	if (!p)
		return ENOMEM;
	double amp = 32767.0 * pow(10.0, dbfs / 20.0);
	for (size_t i = 0; i < n; i++) {
		/* Phase from the index, reduced exactly, so long signals keep
		 * their precision. */
		double ph = fmod(hz * (double)i, (double)rate) / rate;
		p[i]      = clip16(amp * sin(2.0 * M_PI * ph));
	}
	*out = p;
	return 0;
}

/* Formants F1-F3 (Hz) of a few vowels (Peterson & Barney averages). */
static const double vowels[][3] = {
	{ 730, 1090, 2440 }, /* a */
	{ 270, 2290, 3010 }, /* i */
	{ 300, 870, 2240 }, /* u */
	{ 530, 1840, 2480 }, /* e */
	{ 570, 840, 2410 }, /* o */
	{ 660, 1720, 2410 }, /* ae */
};
#define NVOWELS (sizeof(vowels) / sizeof(vowels[0]))

struct reson {
	double y1, y2;
};

/* A two-pole resonator at f with bandwidth bw, unity gain at f. */
static double
reson_run(struct reson *r, double x, double f, double bw, int rate)
{
	double rr = exp(-M_PI * bw / rate);
	double a1 = 2.0 * rr * cos(2.0 * M_PI * f / rate);
	double a2 = -rr * rr;
	double g  = (1.0 - rr)
	    * sqrt(1.0 - 2.0 * rr * cos(4.0 * M_PI * f / rate) + rr * rr);
	double y = g * x + a1 * r->y1 + a2 * r->y2;
	r->y2    = r->y1;
	r->y1    = y;
	return y;
}

static double
uniform(uint64_t *rng)
{
	return (double)(exomsg_rand(rng) >> 11) / 9007199254740992.0;
}

int
callaudio_speech(int16_t **out, size_t n, int rate, uint64_t seed)
{
	uint64_t     rng   = seed ? seed : 1;
	struct reson rs[3] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };
	double      *tmp;
	int16_t     *p;

	if (rate < 8000)
		return EINVAL;
	tmp = malloc((n ? n : 1) * sizeof(*tmp));
	p   = malloc((n ? n : 1) * sizeof(*p));
	if (!tmp || !p) {
		free(tmp);
		free(p);
		return ENOMEM;
	}

	/* Segment state: a syllable glides between two vowels under a
	 * raised-cosine envelope; a pause is silence. */
	size_t seg_left = 0, seg_len = 1, syl_left_in_phrase = 0;
	int    in_pause = 1;
	size_t va = 0, vb = 1;
	double f0_start = 120, f0_end = 120, glottal_phase = 0, tilt = 0;
	double peak = 0;
	double hp_r = 1.0 - 2.0 * M_PI * 80.0 / rate, hp_x1 = 0, hp_y1 = 0;

	for (size_t i = 0; i < n; i++) {
		if (seg_left == 0) {
			if (syl_left_in_phrase == 0 && !in_pause) {
				in_pause = 1;
				seg_len  = (size_t)((0.3 + 0.5 * uniform(&rng))
                                    * rate);
			} else {
				if (in_pause)
					syl_left_in_phrase
					    = 4 + (size_t)(uniform(&rng) * 8);
				in_pause = 0;
				syl_left_in_phrase--;
				seg_len
				    = (size_t)((0.18 + 0.12 * uniform(&rng))
				        * rate);
				va       = vb;
				vb       = (size_t)(uniform(&rng) * NVOWELS);
				f0_start = f0_end;
				f0_end   = 100 + 50 * uniform(&rng);
			}
			seg_left = seg_len;
		}
		double t = 1.0 - (double)seg_left / (double)seg_len;
		seg_left--;

		double x = 0;
		if (!in_pause) {
			double f0 = f0_start + (f0_end - f0_start) * t;
			glottal_phase += f0 / rate;
			if (glottal_phase >= 1.0) {
				glottal_phase -= 1.0;
				x = 1.0; /* one glottal pulse per period */
			}
			x += 0.02 * (uniform(&rng) - 0.5); /* breath */
			double env = sin(M_PI * t);
			x *= env * env;
		}
		/* Spectral tilt of the glottal source: one-pole low-pass. */
		tilt     = 0.9 * tilt + x;
		double y = 0;
		for (int k = 0; k < 3; k++) {
			double f = vowels[va][k]
			    + (vowels[vb][k] - vowels[va][k]) * t;
			/* Keep F3 below Nyquist at 8 kHz. */
			if (f > 0.45 * rate)
				f = 0.45 * rate;
			y += reson_run(&rs[k], tilt, f, 60.0 + 40.0 * k, rate)
			    / (1.0 + k);
		}
		/* DC blocker (about 80 Hz): a pulse train has a mean that
		 * real speech (a flow derivative) does not. */
		double hp = y - hp_x1 + hp_r * hp_y1;
		hp_x1     = y;
		hp_y1     = hp;
		y         = hp;
		tmp[i]    = y;
		if (fabs(y) > peak)
			peak = fabs(y);
	}
	/* Peak at -3 dBFS. */
	double gain = peak > 0 ? 0.708 * 32767.0 / peak : 0;
	for (size_t i = 0; i < n; i++)
		p[i] = clip16(tmp[i] * gain);
	free(tmp);
	*out = p;
	return 0;
}
