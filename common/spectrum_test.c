/*
 * spectrum_test.c - dominant frequency and RMS level.
 */
#include "spectrum.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Deterministic noise so a failure can be reproduced. */
struct rng {
	uint32_t s;
};

static double
rng_uniform(struct rng *r)
{
	r->s = r->s * 1664525u + 1013904223u;
	return ((double)(r->s >> 8) / (double)(1u << 24)) * 2.0 - 1.0;
}

static int16_t
clip16(double v)
{
	if (v > 32767)
		return 32767;
	if (v < -32768)
		return -32768;
	return (int16_t)lrint(v);
}

/* amp in [0,1] of full scale; phase in radians. */
static int16_t *
make_tone(size_t n, int rate, double hz, double amp, double phase)
{
	int16_t *p = malloc(n * sizeof(*p));
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = clip16(32767.0 * amp
		    * sin(2.0 * M_PI * hz * (double)i / rate + phase));
	return p;
}

static int
check_tone(int rate, double hz, double secs)
{
	size_t   n = (size_t)(secs * rate);
	int16_t *p = make_tone(n, rate, hz, 0.5, 0.3);
	TEST_ASSERT(p);
	double got = spectrum_dominant_hz(p, n, rate);
	free(p);
	/* The tool's contract is ±0.5%; hold the estimator to a tenth. */
	if (fabs(got - hz) > hz * 0.0005)
		TEST_FAIL_("rate %d tone %.2f Hz: got %.4f Hz", rate, hz, got);
	return 0;
}

static int
test_tones(void)
{
	static const int    rates[] = { 8000, 16000, 24000 };
	static const double tones[] = { 150, 440, 1000, 1234.5, 3000 };
	for (size_t r = 0; r < 3; r++)
		for (size_t t = 0; t < 5; t++)
			if (check_tone(rates[r], tones[t], 2.0))
				return 1;
	TEST_ASSERT(check_tone(16000, 7000, 2.0) == 0);
	TEST_ASSERT(check_tone(24000, 11000, 2.0) == 0);
	TEST_ASSERT(check_tone(24000, 100, 2.0) == 0);
	return 0;
}

static int
test_sweep_offsets(void)
{
	/* Frequencies between bins: the interpolation must hold everywhere,
	 * not only near bin centres. */
	for (int i = 0; i < 40; i++) {
		double hz = 990.0 + i * 0.5;
		if (check_tone(8000, hz, 1.0))
			return 1;
	}
	return 0;
}

static int
test_tone_plus_noise(void)
{
	int        rate = 16000;
	size_t     n    = 10 * (size_t)rate;
	int16_t   *p    = malloc(n * sizeof(*p));
	struct rng r    = { 12345 };
	TEST_ASSERT(p);
	/* Noise RMS ≈ 0.29 × 0.3 vs tone RMS 0.07: about -2 dB SNR. */
	for (size_t i = 0; i < n; i++)
		p[i] = clip16(32767.0
		    * (0.1 * sin(2.0 * M_PI * 1000.0 * (double)i / rate)
		        + 0.3 * rng_uniform(&r)));
	double got = spectrum_dominant_hz(p, n, rate);
	free(p);
	TEST_NEAR(got, 1000.0, 5.0);
	return 0;
}

static int
test_louder_tone_wins(void)
{
	int      rate = 8000;
	size_t   n    = 3 * (size_t)rate;
	int16_t *p    = malloc(n * sizeof(*p));
	TEST_ASSERT(p);
	for (size_t i = 0; i < n; i++)
		p[i] = clip16(32767.0
		    * (0.2 * sin(2.0 * M_PI * 400.0 * (double)i / rate)
		        + 0.5 * sin(2.0 * M_PI * 2500.0 * (double)i / rate)));
	double got = spectrum_dominant_hz(p, n, rate);
	free(p);
	TEST_NEAR(got, 2500.0, 12.5);
	return 0;
}

static int
test_gaps_ignored(void)
{
	/* A tone that plays only a third of the time, with low noise in the
	 * pauses: the pauses must not pull the answer anywhere. */
	int        rate = 8000;
	size_t     n    = 9 * (size_t)rate;
	int16_t   *p    = malloc(n * sizeof(*p));
	struct rng r    = { 7 };
	TEST_ASSERT(p);
	for (size_t i = 0; i < n; i++) {
		int on = (i / rate) % 3 == 0;
		p[i]   = clip16(on
		          ? 16000.0 * sin(2.0 * M_PI * 1000.0 * (double)i / rate)
		          : 20.0 * rng_uniform(&r));
	}
	double got = spectrum_dominant_hz(p, n, rate);
	free(p);
	TEST_NEAR(got, 1000.0, 5.0);
	return 0;
}

static int
test_silence(void)
{
	size_t   n = 16000;
	int16_t *p = calloc(n, sizeof(*p));
	TEST_ASSERT(p);
	TEST_NEAR(spectrum_dominant_hz(p, n, 8000), 0.0, 0.0);
	/* Low-level noise (about -70 dBFS) is silence too. */
	struct rng r = { 99 };
	for (size_t i = 0; i < n; i++)
		p[i] = clip16(15.0 * rng_uniform(&r));
	TEST_NEAR(spectrum_dominant_hz(p, n, 8000), 0.0, 0.0);
	free(p);
	return 0;
}

static int
test_too_short(void)
{
	int16_t *p = make_tone(200, 8000, 1000, 0.5, 0);
	TEST_ASSERT(p);
	TEST_NEAR(spectrum_dominant_hz(p, 200, 8000), 0.0, 0.0);
	TEST_NEAR(spectrum_dominant_hz(p, 0, 8000), 0.0, 0.0);
	TEST_NEAR(spectrum_dominant_hz(NULL, 0, 8000), 0.0, 0.0);
	TEST_NEAR(spectrum_dominant_hz(p, 200, 0), 0.0, 0.0);
	free(p);
	return 0;
}

static int
test_rms(void)
{
	size_t   n = 8000;
	int16_t *p = make_tone(n, 8000, 1000, 1.0, 0);
	TEST_ASSERT(p);
	/* A full-scale sine is -3.01 dBFS. */
	TEST_NEAR(spectrum_rms_dbfs(p, n), -3.01, 0.02);
	free(p);
	p = make_tone(n, 8000, 1000, 0.1, 0);
	TEST_ASSERT(p);
	TEST_NEAR(spectrum_rms_dbfs(p, n), -23.01, 0.02);
	for (size_t i = 0; i < n; i++)
		p[i] = -32768;
	TEST_NEAR(spectrum_rms_dbfs(p, n), 0.0, 0.001);
	for (size_t i = 0; i < n; i++)
		p[i] = 0;
	TEST_NEAR(spectrum_rms_dbfs(p, n), -120.0, 0.0);
	TEST_NEAR(spectrum_rms_dbfs(p, 0), -120.0, 0.0);
	TEST_NEAR(spectrum_rms_dbfs(NULL, 0), -120.0, 0.0);
	free(p);
	return 0;
}

TEST_MAIN(TEST(test_tones), TEST(test_sweep_offsets),
    TEST(test_tone_plus_noise), TEST(test_louder_tone_wins),
    TEST(test_gaps_ignored), TEST(test_silence), TEST(test_too_short),
    TEST(test_rms))
