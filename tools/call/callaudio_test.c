/*
 * callaudio_test.c - the test signals are what they claim to be.
 */
#include "callaudio.h"
#include "test.h"

#include <errno.h>
#include <math.h>

#include "spectrum.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static int
test_tone(void)
{
	int16_t *p;
	TEST_EQ(callaudio_tone(&p, 16000, 8000, 1000, -6), 0);
	TEST_NEAR(spectrum_dominant_hz(p, 16000, 8000), 1000, 1);
	TEST_NEAR(spectrum_rms_dbfs(p, 16000), -9.03, 0.05);
	free(p);
	TEST_EQ(callaudio_tone(&p, 48000, 24000, 440, -20), 0);
	TEST_NEAR(spectrum_dominant_hz(p, 48000, 24000), 440, 0.5);
	TEST_NEAR(spectrum_rms_dbfs(p, 48000), -23.03, 0.05);
	free(p);
	TEST_EQ(callaudio_tone(&p, 10, 8000, 4000, -6), EINVAL);
	TEST_EQ(callaudio_tone(&p, 10, 8000, 0, -6), EINVAL);
	return 0;
}

/* Energy at f by Goertzel over p[0..n). */
static double
goertzel(const int16_t *p, size_t n, int rate, double f)
{
	double w = 2.0 * cos(2.0 * M_PI * f / rate), s1 = 0, s2 = 0;
	for (size_t i = 0; i < n; i++) {
		double s = p[i] + w * s1 - s2;
		s2       = s1;
		s1       = s;
	}
	return s1 * s1 + s2 * s2 - w * s1 * s2;
}

static int
check_speech(int rate)
{
	size_t   n = (size_t)rate * 20;
	int16_t *p;
	TEST_EQ(callaudio_speech(&p, n, rate, 7), 0);

	/* Loud enough, but not clipped all over. */
	double rms = spectrum_rms_dbfs(p, n);
	if (rms < -30 || rms > -8)
		TEST_FAIL_("rate %d: rms %.1f dBFS", rate, rms);

	/* Pitch/formant energy, not hum or hiss. */
	double hz = spectrum_dominant_hz(p, n, rate);
	if (hz < 90 || hz > 1200)
		TEST_FAIL_("rate %d: dominant %.1f Hz", rate, hz);

	/* Nearly all energy in the telephone band. */
	double in = 0, all = 0;
	for (double f = 25; f < rate / 2.0; f += 25) {
		double e = goertzel(p, (size_t)rate * 2, rate, f);
		all += e;
		if (f >= 100 && f <= 3400)
			in += e;
	}
	if (in / all < 0.9)
		TEST_FAIL_(
		    "rate %d: %.0f%% in 100-3400 Hz", rate, 100 * in / all);

	/* Pauses, and syllables at a speaking rate: 10 ms RMS envelope,
	 * onsets = rises through a third of the loudest frame. */
	size_t w = (size_t)rate / 100, frames = n / w, quiet = 0, onsets = 0;
	double maxr = 0, *env = malloc(frames * sizeof(double));
	TEST_ASSERT(env);
	for (size_t f = 0; f < frames; f++) {
		double acc = 0;
		for (size_t i = 0; i < w; i++)
			acc += (double)p[f * w + i] * p[f * w + i];
		env[f] = sqrt(acc / w);
		if (env[f] > maxr)
			maxr = env[f];
		if (env[f] < 32768 * 0.003) /* -50 dBFS */
			quiet++;
	}
	for (size_t f = 1; f < frames; f++)
		if (env[f - 1] < maxr / 3 && env[f] >= maxr / 3)
			onsets++;
	free(env);
	double quiet_share = (double)quiet / frames;
	double per_s       = onsets / 20.0;
	if (quiet_share < 0.08 || quiet_share > 0.5)
		TEST_FAIL_("rate %d: %.0f%% quiet", rate, 100 * quiet_share);
	if (per_s < 2 || per_s > 7)
		TEST_FAIL_("rate %d: %.1f syllables/s", rate, per_s);
	free(p);
	return 0;
}

static int
test_speech(void)
{
	TEST_ASSERT(check_speech(8000) == 0);
	TEST_ASSERT(check_speech(16000) == 0);
	TEST_ASSERT(check_speech(24000) == 0);
	return 0;
}

static int
test_speech_deterministic(void)
{
	int16_t *a, *b, *c;
	TEST_EQ(callaudio_speech(&a, 8000, 8000, 1), 0);
	TEST_EQ(callaudio_speech(&b, 8000, 8000, 1), 0);
	TEST_EQ(callaudio_speech(&c, 8000, 8000, 2), 0);
	TEST_ASSERT(memcmp(a, b, 8000 * sizeof(*a)) == 0);
	TEST_ASSERT(memcmp(a, c, 8000 * sizeof(*a)) != 0);
	free(a);
	free(b);
	free(c);
	TEST_EQ(callaudio_speech(&a, 10, 4000, 1), EINVAL);
	return 0;
}

TEST_MAIN(TEST(test_tone), TEST(test_speech), TEST(test_speech_deterministic))
