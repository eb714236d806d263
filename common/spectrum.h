/*
 * spectrum.h - signal measurements for tools and tests.
 */
#ifndef EXO_SPECTRUM_H
#define EXO_SPECTRUM_H

#include <stddef.h>
#include <stdint.h>

/* The dominant frequency (Hz) of the non-silent parts of pcm, by an
 * averaged windowed FFT with peak interpolation. Returns 0 when the
 * signal is silent or shorter than one analysis window. */
double spectrum_dominant_hz(const int16_t *pcm, size_t n, int rate);

/* RMS level in dBFS of pcm (−inf for digital silence → returns -120). */
double spectrum_rms_dbfs(const int16_t *pcm, size_t n);

#endif
