/*
 * resample.h - a streaming int16 mono resampler (libsoxr) tuned for low
 * latency in 20 ms telephony chunks.
 *
 * Equal rates are a plain copy with no delay and no soxr state. The
 * resampler owns its soxr state; resample_free releases it.
 */
#ifndef EXO_RESAMPLE_H
#define EXO_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

struct resample;

/* Creates a resampler from in_rate to out_rate (Hz, 1000..192000).
 * Returns 0, EINVAL for a bad rate, or ENOMEM/EIO if soxr refuses. */
int  resample_alloc(struct resample **out, int in_rate, int out_rate);
void resample_free(struct resample *r);

/* Resamples n samples of in and appends the output to out (outcap
 * samples), setting *outn. soxr releases output in blocks, so one call may
 * return less or more than n * ratio; resample_out_max bounds it. Returns
 * 0, or ENOBUFS when out filled up before all input was taken (the rest
 * of in is dropped: size out with resample_out_max). */
int resample_process(struct resample *r, const int16_t *in, size_t n,
    int16_t *out, size_t outcap, size_t *outn);

/* An upper bound of the output of the next resample_process of n
 * samples (what the filter holds plus n times the ratio). */
size_t resample_out_max(const struct resample *r, size_t n);

/* The samples (at the output rate) held inside the resampler now. */
double resample_delay(const struct resample *r);

/* The most samples (at the output rate) it holds back at the end of a
 * 20 ms chunk of input (soxr releases output in blocks), as seen over
 * the 640 ms resample_alloc primes it with (at the rates the transcoder
 * uses, 20 s of chunks see no more); 0 for a copy.
 * A consumer that cuts the output into 20 ms frames ends its frames that
 * much before each chunk's end, so that a frame is whole when the chunk
 * that completes it has been processed, not one chunk later. */
size_t resample_hold(const struct resample *r);

/* Copies the name of the soxr engine (SIMD flavour) this build uses, e.g.
 * "cr32s", into buf ("none" if soxr cannot be created). Returns buf. */
const char *resample_engine(char *buf, size_t len);

#endif
