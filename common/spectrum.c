/*
 * spectrum.c - dominant frequency and level of PCM16 audio.
 *
 * The signal is cut into Hann-windowed frames of about a quarter second
 * (a power of two, hop half a frame). Frames that are silent, or much
 * quieter than the loudest frame, are skipped so pauses and codec noise
 * do not dilute the average. The magnitude spectra of the remaining frames
 * are averaged, the largest bin is found, and its position is refined by
 * a parabola through the log magnitudes of it and its neighbours (exact
 * for a Gaussian peak, within a few hundredths of a bin for Hann).
 */
#include "spectrum.h"

#include <math.h>
#include <stdlib.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* A frame counts as sound when its RMS is above this (about -60 dBFS)
 * and within SPECTRUM_REL_DB of the loudest frame. */
#define SPECTRUM_MIN_RMS 32.0
#define SPECTRUM_REL_DB 30.0

struct fft {
	size_t  n;
	int     log2n;
	double *cos_t; /* n/2 twiddles */
	double *sin_t;
};

static void
fft_free(struct fft *f)
{
	free(f->cos_t);
	free(f->sin_t);
}

static int
fft_init(struct fft *f, size_t n)
{
	f->n     = n;
	f->log2n = 0;
	while (((size_t)1 << f->log2n) < n)
		f->log2n++;
	f->cos_t = malloc(n / 2 * sizeof(double));
	f->sin_t = malloc(n / 2 * sizeof(double));
	if (!f->cos_t || !f->sin_t) {
		fft_free(f);
		return -1;
	}
	for (size_t i = 0; i < n / 2; i++) {
		f->cos_t[i] = cos(2.0 * M_PI * (double)i / (double)n);
		f->sin_t[i] = -sin(2.0 * M_PI * (double)i / (double)n);
	}
	return 0;
}

/* In-place iterative radix-2 decimation-in-time forward FFT. */
static void
fft_run(const struct fft *f, double *re, double *im)
{
	size_t n = f->n;

	for (size_t i = 0, j = 0; i < n; i++) {
		if (i < j) {
			double t = re[i];
			re[i]    = re[j];
			re[j]    = t;
			t        = im[i];
			im[i]    = im[j];
			im[j]    = t;
		}
		size_t bit = n >> 1;
		while (bit && (j & bit)) {
			j ^= bit;
			bit >>= 1;
		}
		j |= bit;
	}
	for (size_t len = 2; len <= n; len <<= 1) {
		size_t half = len / 2, step = n / len;
		for (size_t s = 0; s < n; s += len) {
			for (size_t k = 0; k < half; k++) {
				double wr = f->cos_t[k * step];
				double wi = f->sin_t[k * step];
				size_t a = s + k, b = a + half;
				double tr = re[b] * wr - im[b] * wi;
				double ti = re[b] * wi + im[b] * wr;
				re[b]     = re[a] - tr;
				im[b]     = im[a] - ti;
				re[a] += tr;
				im[a] += ti;
			}
		}
	}
}

static double
frame_rms(const int16_t *p, size_t n)
{
	double acc = 0;
	for (size_t i = 0; i < n; i++)
		acc += (double)p[i] * (double)p[i];
	return sqrt(acc / (double)n);
}

double
spectrum_dominant_hz(const int16_t *pcm, size_t n, int rate)
{
	struct fft f;
	double    *re = NULL, *im = NULL, *win = NULL, *mag = NULL;
	double     hz = 0, max_rms = 0;
	size_t     len = 256, hop, used = 0;

	if (!pcm || rate <= 0)
		return 0;
	while (len < (size_t)rate / 4)
		len <<= 1;
	hop = len / 2;
	if (n < len)
		return 0;
	if (fft_init(&f, len) != 0)
		return 0;
	re  = malloc(len * sizeof(double));
	im  = malloc(len * sizeof(double));
	win = malloc(len * sizeof(double));
	mag = calloc(len / 2 + 1, sizeof(double));
	if (!re || !im || !win || !mag)
		goto out;
	for (size_t i = 0; i < len; i++)
		win[i] = 0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)len);

	for (size_t off = 0; off + len <= n; off += hop) {
		double r = frame_rms(pcm + off, len);
		if (r > max_rms)
			max_rms = r;
	}
	if (max_rms < SPECTRUM_MIN_RMS)
		goto out;
	double floor_rms = max_rms * pow(10.0, -SPECTRUM_REL_DB / 20.0);
	if (floor_rms < SPECTRUM_MIN_RMS)
		floor_rms = SPECTRUM_MIN_RMS;

	for (size_t off = 0; off + len <= n; off += hop) {
		const int16_t *p = pcm + off;
		if (frame_rms(p, len) < floor_rms)
			continue;
		double mean = 0;
		for (size_t i = 0; i < len; i++)
			mean += p[i];
		mean /= (double)len;
		for (size_t i = 0; i < len; i++) {
			re[i] = ((double)p[i] - mean) * win[i];
			im[i] = 0;
		}
		fft_run(&f, re, im);
		for (size_t k = 0; k <= len / 2; k++)
			mag[k] += sqrt(re[k] * re[k] + im[k] * im[k]);
		used++;
	}
	if (!used)
		goto out;

	/* Skip sub-audio bins (below 20 Hz, and at least DC and its
	 * neighbour): what is left of DC and level changes after the mean
	 * removal is not a frequency anyone listens for. */
	size_t kmin = (size_t)ceil(20.0 * (double)len / (double)rate);
	if (kmin < 2)
		kmin = 2;
	size_t best = kmin;
	for (size_t k = kmin + 1; k < len / 2; k++)
		if (mag[k] > mag[best])
			best = k;
	if (mag[best] <= 0)
		goto out;
	double delta = 0;
	double a = mag[best - 1], b = mag[best], c = mag[best + 1];
	if (a > 0 && c > 0) {
		double la = log(a), lb = log(b), lc = log(c);
		double den = la - 2.0 * lb + lc;
		if (den < 0)
			delta = 0.5 * (la - lc) / den;
	}
	if (delta > 0.5)
		delta = 0.5;
	if (delta < -0.5)
		delta = -0.5;
	hz = ((double)best + delta) * (double)rate / (double)len;
out:
	fft_free(&f);
	free(re);
	free(im);
	free(win);
	free(mag);
	return hz;
}

double
spectrum_rms_dbfs(const int16_t *pcm, size_t n)
{
	if (!pcm || n == 0)
		return -120.0;
	double r = frame_rms(pcm, n);
	if (r <= 0)
		return -120.0;
	double db = 20.0 * log10(r / 32768.0);
	return db < -120.0 ? -120.0 : db;
}
