/*
 * resample_test.c - rate, delay and tone fidelity of the soxr wrapper in
 * 20 ms streaming, at the conversions the transcoder uses.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "resample.h"
#include "spectrum.h"
#include "test.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const int pairs[][2] = {
	{ 8000, 24000 },
	{ 16000, 24000 },
	{ 24000, 8000 },
	{ 24000, 16000 },
};
#define NPAIRS (sizeof(pairs) / sizeof(pairs[0]))

static void
tone(int16_t *buf, size_t n, size_t start, double hz, int rate)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (int16_t)(8000
		    * sin(2 * M_PI * hz * (double)(start + i) / rate));
}

/* Streams secs of a 1 kHz tone in chunks of chunk_ms and checks the
 * output count against the rate (what soxr still holds included). */
static int
check_rate(int in_rate, int out_rate, int chunk_ms, int secs)
{
	struct resample *r;
	size_t           cin   = (size_t)in_rate * chunk_ms / 1000;
	int16_t         *in    = malloc(cin * sizeof(*in));
	size_t           ocap  = (size_t)out_rate * secs + 4096;
	int16_t         *out   = malloc(ocap * sizeof(*out));
	size_t           total = 0;
	size_t           nch   = (size_t)secs * 1000 / chunk_ms;

	TEST_ASSERT(in && out);
	TEST_EQ(resample_alloc(&r, in_rate, out_rate), 0);
	for (size_t k = 0; k < nch; k++) {
		size_t got = 0;
		tone(in, cin, k * cin, 1000, in_rate);
		TEST_ASSERT(resample_out_max(r, cin) <= ocap - total);
		size_t bound = resample_out_max(r, cin);
		TEST_EQ(resample_process(
		            r, in, cin, out + total, ocap - total, &got),
		    0);
		TEST_ASSERT(got <= bound);
		total += got;
	}
	double expect = (double)out_rate * secs;
	/* Output plus what the filter holds accounts for all input. */
	TEST_NEAR(total + resample_delay(r), expect, 4);
	/* And the filter holds less than 20 ms of it. */
	TEST_ASSERT(total <= expect && total >= expect - out_rate / 50.0);

	/* The 1 kHz tone comes out at 1 kHz (skip the first 100 ms). */
	double hz = spectrum_dominant_hz(
	    out + out_rate / 10, total - out_rate / 10, out_rate);
	TEST_NEAR(hz, 1000, 5);
	resample_free(r);
	free(in);
	free(out);
	return 0;
}

static int
test_rate_20ms(void)
{
	for (size_t i = 0; i < NPAIRS; i++)
		if (check_rate(pairs[i][0], pairs[i][1], 20, 10))
			return 1;
	return 0;
}

static int
test_rate_100ms(void)
{
	for (size_t i = 0; i < NPAIRS; i++)
		if (check_rate(pairs[i][0], pairs[i][1], 100, 10))
			return 1;
	return 0;
}

/* The delay one conversion adds in 20 ms streaming: the mean backlog
 * (input time fed minus output time released, after warm-up) plus the
 * offset at which a click comes out relative to where it went in. */
static int
check_delay(int in_rate, int out_rate, double *ms)
{
	struct resample *r;
	size_t           cin = (size_t)in_rate / 50;
	int16_t          in[480], out[8192];
	size_t           total = 0, nb = 0;
	double           backsum = 0;
	size_t           click   = (size_t)in_rate * 5 + cin / 3;
	size_t           peak_at = 0;
	int              peak    = 0;

	TEST_EQ(resample_alloc(&r, in_rate, out_rate), 0);
	for (size_t k = 0; k < 400; k++) {
		size_t got = 0;
		for (size_t i = 0; i < cin; i++)
			in[i] = k * cin + i == click ? 30000 : 0;
		TEST_EQ(resample_process(r, in, cin, out, 8192, &got), 0);
		for (size_t i = 0; i < got; i++)
			if (abs(out[i]) > peak) {
				peak    = abs(out[i]);
				peak_at = total + i;
			}
		total += got;
		if (k >= 25) {
			backsum
			    += (double)(k + 1) / 50 - (double)total / out_rate;
			nb++;
		}
	}
	TEST_ASSERT(peak > 1000);
	double offset = (double)peak_at / out_rate - (double)click / in_rate;
	/* Output starts where a fresh converter's would: the priming's
	 * silence is all skipped. */
	TEST_ASSERT(fabs(offset) < 0.1e-3);
	*ms           = (backsum / nb + (offset > 0 ? offset : 0)) * 1000;
	printf("  %5d -> %5d: backlog %.2f ms, click offset %.2f ms\n",
	    in_rate, out_rate, backsum / nb * 1000, offset * 1000);
	resample_free(r);
	return 0;
}

static int
test_delay(void)
{
	for (size_t i = 0; i < NPAIRS; i++) {
		double ms = 0;
		if (check_delay(pairs[i][0], pairs[i][1], &ms))
			return 1;
		TEST_ASSERT(ms >= 0);
		TEST_ASSERT(ms <= 10.0);
	}
	return 0;
}

/* What it holds back at the end of each 20 ms chunk never exceeds
 * resample_hold, which is a few ms (soxr's blocks, capped at 2^8). */
static int
test_hold(void)
{
	for (size_t i = 0; i < NPAIRS; i++) {
		struct resample *r;
		int              in_rate = pairs[i][0], out_rate = pairs[i][1];
		size_t           cin = (size_t)in_rate / 50, hold;
		int16_t          in[480], out[8192];
		double           most = 0;

		TEST_EQ(resample_alloc(&r, in_rate, out_rate), 0);
		hold = resample_hold(r);
		for (size_t k = 0; k < 200; k++) {
			size_t got = 0;
			tone(in, cin, k * cin, 440, in_rate);
			TEST_EQ(
			    resample_process(r, in, cin, out, 8192, &got), 0);
			TEST_ASSERT(resample_delay(r) >= 0);
			TEST_ASSERT(resample_delay(r) <= (double)hold);
			if (resample_delay(r) > most)
				most = resample_delay(r);
		}
		printf("  %5d -> %5d: holds back at most %zu samples (%.1f "
		       "ms) at a chunk's end; seen %.0f\n",
		    in_rate, out_rate, hold, hold * 1000.0 / out_rate, most);
		TEST_ASSERT(hold > 0);
		TEST_ASSERT(hold * 1000.0 / out_rate <= 6.0);
		TEST_ASSERT(
		    most >= hold - out_rate / 1000.0); /* it is reached */
		resample_free(r);
	}
	struct resample *r;
	TEST_EQ(resample_alloc(&r, 8000, 8000), 0);
	TEST_EQ(resample_hold(r), 0);
	resample_free(r);
	return 0;
}

/* Equal rates: a plain copy, same samples, nothing held. */
static int
test_same_rate(void)
{
	struct resample *r;
	int16_t          in[480], out[480];
	size_t           got = 0;

	tone(in, 480, 0, 1000, 24000);
	TEST_EQ(resample_alloc(&r, 24000, 24000), 0);
	TEST_EQ(resample_process(r, in, 480, out, 480, &got), 0);
	TEST_EQ(got, 480);
	TEST_ASSERT(memcmp(in, out, sizeof(in)) == 0);
	TEST_NEAR(resample_delay(r), 0, 0);
	TEST_EQ(resample_process(r, in, 480, out, 100, &got), ENOBUFS);
	TEST_EQ(got, 100);
	resample_free(r);
	return 0;
}

static int
test_small_out(void)
{
	struct resample *r;
	int16_t          in[160] = { 0 }, out[16];
	size_t           got     = 0;

	TEST_EQ(resample_alloc(&r, 8000, 24000), 0);
	int rc = 0;
	for (int k = 0; k < 10 && rc == 0; k++)
		rc = resample_process(r, in, 160, out, 16, &got);
	TEST_EQ(rc, ENOBUFS);
	TEST_EQ(got, 16);
	resample_free(r);
	return 0;
}

static int
test_bad_rate(void)
{
	struct resample *r = (struct resample *)1;

	TEST_EQ(resample_alloc(&r, 0, 24000), EINVAL);
	TEST_ASSERT(r == NULL);
	TEST_EQ(resample_alloc(&r, 8000, 1000000), EINVAL);
	resample_free(NULL);
	return 0;
}

static int
test_engine(void)
{
	char name[32];

	resample_engine(name, sizeof(name));
	printf("  soxr engine: %s\n", name);
	TEST_ASSERT(name[0] != '\0');
	TEST_ASSERT(strcmp(name, "none") != 0);
	return 0;
}

TEST_MAIN(TEST(test_rate_20ms), TEST(test_rate_100ms), TEST(test_delay),
    TEST(test_hold), TEST(test_same_rate), TEST(test_small_out),
    TEST(test_bad_rate), TEST(test_engine))
