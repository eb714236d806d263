/*
 * summary_test.c - the JSON summary and the expectations.
 */
#include "summary.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static void
base_opts(struct call_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->url                = "ws://h/exotel";
	o->rate               = 8000;
	o->chunk_ms           = 20;
	o->expect_tolerance   = 0.02;
	o->expect_min_seconds = -1;
}

static void
base_result(struct call_result *r, int16_t *pcm, size_t n, double hz)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->stream_sid, sizeof(r->stream_sid), "sid");
	snprintf(r->call_sid, sizeof(r->call_sid), "csid");
	r->connected = true;
	r->rate      = 8000;
	for (size_t i = 0; i < n; i++)
		pcm[i] = (int16_t)(10000 * sin(2 * M_PI * hz * i / 8000));
	r->rx_pcm             = pcm;
	r->rx_n               = n;
	r->pcm_bytes_received = n * 2;
	r->first_audio_ms     = 120;
	r->closed_by          = "server";
	r->close_code         = 1000;
	summary_analyse(r);
}

static int
test_one_call(void)
{
	struct call_opts   o;
	struct call_result r;
	int16_t           *pcm = malloc(8000 * 7 * sizeof(*pcm));
	char               err[512];

	base_opts(&o);
	base_result(&r, pcm, 8000 * 7, 1000);
	r.viol[RXV_PARTIAL_FRAME] = 2;
	r.seconds_sent            = 10;
	char *s                   = summary_json(&o, &r, 1);
	TEST_ASSERT(s);
	cJSON *j = cJSON_Parse(s);
	TEST_ASSERT(j);
	TEST_NEAR(
	    cJSON_GetObjectItem(j, "seconds_received")->valuedouble, 7, 0.001);
	TEST_NEAR(cJSON_GetObjectItem(j, "seconds_sent")->valuedouble, 10, 0);
	TEST_NEAR(
	    cJSON_GetObjectItem(j, "dominant_hz")->valuedouble, 1000, 0.5);
	TEST_EQ(cJSON_GetObjectItem(j, "violations")->valuedouble, 2);
	TEST_EQ(
	    cJSON_GetObjectItem(
	        cJSON_GetObjectItem(j, "violations_by_kind"), "partial_frame")
	        ->valuedouble,
	    2);
	TEST_STREQ(cJSON_GetObjectItem(j, "closed_by")->valuestring, "server");
	TEST_EQ(cJSON_GetObjectItem(j, "close_code")->valuedouble, 1000);
	TEST_NEAR(
	    cJSON_GetObjectItem(j, "first_audio_ms")->valuedouble, 120, 0);
	TEST_ASSERT(cJSON_GetObjectItem(j, "rms_dbfs"));
	TEST_ASSERT(cJSON_GetObjectItem(j, "max_lead_ms"));
	TEST_ASSERT(cJSON_GetObjectItem(j, "messages_received"));
	TEST_ASSERT(cJSON_GetObjectItem(j, "media_messages"));
	cJSON_Delete(j);
	free(s);

	/* Expectations: each named when it fails. */
	TEST_EQ(summary_check(&o, &r, 1, err, sizeof(err)), 0);
	o.expect_hz          = 1000;
	o.expect_min_seconds = 6;
	TEST_EQ(summary_check(&o, &r, 1, err, sizeof(err)), 0);
	o.expect_hz = 1100;
	TEST_EQ(summary_check(&o, &r, 1, err, sizeof(err)), 1);
	TEST_ASSERT(strstr(err, "expect-hz"));
	o.expect_hz          = 1015; /* within 2% */
	o.expect_min_seconds = 8;
	TEST_EQ(summary_check(&o, &r, 1, err, sizeof(err)), 1);
	TEST_ASSERT(strstr(err, "expect-min-seconds"));
	o.expect_no_violations = true;
	o.expect_closed_by     = "client";
	o.expect_close_code    = 1008;
	TEST_EQ(summary_check(&o, &r, 1, err, sizeof(err)), 4);
	TEST_ASSERT(strstr(err, "expect-no-violations"));
	TEST_ASSERT(strstr(err, "expect-closed-by"));
	TEST_ASSERT(strstr(err, "expect-close-code"));
	/* Silence received: dominant 0, so any expected pitch fails. */
	memset(pcm, 0, 8000 * 7 * sizeof(*pcm));
	summary_analyse(&r);
	base_opts(&o);
	o.expect_hz = 1000;
	TEST_EQ(summary_check(&o, &r, 1, NULL, 0), 1);
	free(pcm);
	return 0;
}

static int
test_many_calls(void)
{
	struct call_opts   o;
	struct call_result r[3];
	int16_t           *pcm[3];
	char               err[512];

	base_opts(&o);
	for (int i = 0; i < 3; i++) {
		pcm[i] = malloc(8000 * 2 * sizeof(int16_t));
		base_result(&r[i], pcm[i], 8000 * 2, i == 2 ? 500 : 1000);
		r[i].max_lead_ms    = 100 * (i + 1);
		r[i].first_audio_ms = 100 + i;
	}
	o.per_call = true;
	char  *s   = summary_json(&o, r, 3);
	cJSON *j   = cJSON_Parse(s);
	TEST_ASSERT(j);
	TEST_EQ(cJSON_GetObjectItem(j, "calls")->valuedouble, 3);
	TEST_EQ(cJSON_GetObjectItem(j, "calls_connected")->valuedouble, 3);
	TEST_NEAR(
	    cJSON_GetObjectItem(j, "seconds_received")->valuedouble, 6, 0.001);
	TEST_NEAR(cJSON_GetObjectItem(j, "dominant_hz")->valuedouble, 1000, 1);
	TEST_NEAR(
	    cJSON_GetObjectItem(j, "dominant_hz_min")->valuedouble, 500, 1);
	TEST_NEAR(cJSON_GetObjectItem(j, "max_lead_ms")->valuedouble, 300, 0);
	TEST_NEAR(cJSON_GetObjectItem(
	              cJSON_GetObjectItem(j, "first_audio_ms"), "max")
	              ->valuedouble,
	    102, 0);
	TEST_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_call")), 3);
	cJSON_Delete(j);
	free(s);
	/* One call off pitch fails the expectation for the run. */
	o.expect_hz = 1000;
	TEST_EQ(summary_check(&o, r, 3, err, sizeof(err)), 1);
	TEST_ASSERT(strstr(err, "1 call(s)"));
	TEST_ASSERT(strstr(err, "call 2"));
	for (int i = 0; i < 3; i++)
		free(pcm[i]);
	return 0;
}

TEST_MAIN(TEST(test_one_call), TEST(test_many_calls))
