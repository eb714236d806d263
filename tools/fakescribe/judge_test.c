/*
 * judge_test.c - the stand-in refuses what the real server refuses (and
 * the typos it would silently ignore), and flags every malformed chunk.
 */
#include "judge.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

struct seen {
	char kinds[1024];
	int  n;
};

static void
rec(void *arg, const char *kind, const char *detail)
{
	struct seen *s = arg;
	strcat(s->kinds, kind);
	strcat(s->kinds, " ");
	s->n++;
}

/* Adds every &-separated piece of query. */
static void
add_all(struct fsq *q, const char *query, struct seen *w)
{
	char buf[1024], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", query);
	for (tok = strtok_r(buf, "&", &save); tok;
	     tok = strtok_r(NULL, "&", &save))
		fsq_add(q, tok, strlen(tok), rec, w);
}

static const char *
judge(const char *query, struct seen *w, const char **text)
{
	static struct fsq q;

	memset(w, 0, sizeof(*w));
	fsq_init(&q);
	add_all(&q, query, w);
	return fsq_check(
	    &q, "scribe_v2_realtime,scribe_v2_realtime_turbo", rec, w, text);
}

static int
test_query_ok(void)
{
	struct seen w;
	const char *text;
	struct fsq  q;

	TEST_ASSERT(judge("model_id=scribe_v2_realtime&audio_format=pcm_8000"
	                  "&language_code=en&commit_strategy=vad"
	                  "&vad_silence_threshold_secs=0.8&vad_threshold=0.4"
	                  "&min_speech_duration_ms=100"
	                  "&min_silence_duration_ms=100",
	                &w, &text)
	    == NULL);
	TEST_EQ(w.n, 0);
	fsq_init(&q);
	add_all(&q,
	    "model_id=scribe_v2_realtime&audio_format=pcm_24000"
	    "&commit_strategy=vad&vad_silence_threshold_secs=0.3"
	    "&include_timestamps=true&keyterms=a&keyterms=b",
	    &w);
	TEST_ASSERT(
	    fsq_check(&q, "scribe_v2_realtime", rec, &w, &text) == NULL);
	TEST_EQ(q.rate, 24000);
	TEST_ASSERT(q.vad && q.timestamps);
	TEST_NEAR(q.vad_silence_s, 0.3, 1e-9);
	TEST_STREQ(q.language, "");
	/* Bounds are inclusive (research §1.3). */
	TEST_ASSERT(judge("model_id=scribe_v2_realtime&audio_format=pcm_16000"
	                  "&commit_strategy=vad&vad_silence_threshold_secs=3"
	                  "&vad_threshold=0.9&min_speech_duration_ms=2000"
	                  "&min_silence_duration_ms=50",
	                &w, &text)
	    == NULL);
	return 0;
}

static int
test_query_defaults_warned(void)
{
	struct seen w;
	const char *text;

	/* The real server defaults these silently: warnings, not errors. */
	TEST_ASSERT(judge("model_id=scribe_v2_realtime", &w, &text) == NULL);
	TEST_ASSERT(strstr(w.kinds, "audio_format_defaulted"));
	TEST_ASSERT(strstr(w.kinds, "commit_strategy_defaulted"));
	/* A repeated scalar (the JS SDK's audio_format bug). */
	TEST_ASSERT(judge("model_id=scribe_v2_realtime&audio_format=pcm_8000"
	                  "&audio_format=pcm_8000&commit_strategy=manual",
	                &w, &text)
	    == NULL);
	TEST_ASSERT(strstr(w.kinds, "duplicate_param"));
	return 0;
}

static int
test_query_refused(void)
{
	static const struct {
		const char *q, *kind;
	} cases[] = {
		{ "audio_format=pcm_8000", "missing_model_id" },
		{ "model_id=scribe_realtime_v2&audio_format=pcm_8000",
		    "bad_model_id" },
		{ "model_id=scribe_v2_realtime&audio_format=pcm_44100",
		    "bad_audio_format" },
		{ "model_id=scribe_v2_realtime&encoding=pcm_8000",
		    "unknown_param" },
		{ "model_id=scribe_v2_realtime&sample_rate=8000",
		    "unknown_param" },
		{ "model_id=scribe_v2_realtime&language_code=English",
		    "bad_language_code" },
		{ "model_id=scribe_v2_realtime&commit_strategy=auto",
		    "bad_commit_strategy" },
		{ "model_id=scribe_v2_realtime&vad_silence_threshold_secs=0.2",
		    "bad_vad_silence_threshold_secs" },
		{ "model_id=scribe_v2_realtime&vad_silence_threshold_secs=x",
		    "bad_vad_silence_threshold_secs" },
		{ "model_id=scribe_v2_realtime&vad_threshold=0.95",
		    "bad_vad_threshold" },
		{ "model_id=scribe_v2_realtime&min_speech_duration_ms=49",
		    "bad_min_speech_duration_ms" },
		{ "model_id=scribe_v2_realtime&min_silence_duration_ms=2001",
		    "bad_min_silence_duration_ms" },
		{ "model_id=scribe_v2_realtime&include_timestamps=1",
		    "bad_bool" },
	};
	struct seen w;
	const char *text, *kind;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kind = judge(cases[i].q, &w, &text);
		if (!kind || strcmp(kind, cases[i].kind))
			TEST_FAIL_("%s: got %s, expected %s", cases[i].q,
			    kind ? kind : "ok", cases[i].kind);
		TEST_ASSERT(text && *text);
	}
	kind = judge("model_id=scribe_realtime_v2", &w, &text);
	TEST_ASSERT(
	    strstr(text, "The model_id 'scribe_realtime_v2' is invalid"));
	return 0;
}

static int
check(const char *m, bool first, struct seen *w, struct fschunk *c,
    unsigned rate)
{
	struct fsq q;
	char       fmt[32];
	int        rc;

	fsq_init(&q);
	snprintf(fmt, sizeof(fmt), "audio_format=pcm_%u", rate);
	fsq_add(&q, fmt, strlen(fmt), NULL, NULL);
	memset(w, 0, sizeof(*w));
	rc = fsmsg_check(m, strlen(m), false, first, &q, rec, w, c);
	return rc;
}

static int
test_chunks(void)
{
	struct seen    w;
	struct fschunk c;

	/* The four fields: fine. "AAABAA==" is 4 bytes: 2 samples. */
	TEST_EQ(check("{\"message_type\":\"input_audio_chunk\","
	              "\"audio_base_64\":\"AAABAA==\",\"commit\":false,"
	              "\"sample_rate\":8000}",
	            false, &w, &c, 8000),
	    0);
	TEST_EQ(w.n, 0);
	TEST_EQ(c.len, 4);
	TEST_ASSERT(!c.commit);
	free(c.pcm);
	/* The commit: empty audio. */
	TEST_EQ(check("{\"message_type\":\"input_audio_chunk\","
	              "\"audio_base_64\":\"\",\"commit\":true,"
	              "\"sample_rate\":16000}",
	            false, &w, &c, 16000),
	    0);
	TEST_EQ(w.n, 0);
	TEST_ASSERT(c.commit && c.len == 0);
	free(c.pcm);
	/* previous_text on the first chunk: fine; later: a violation. */
	TEST_EQ(check("{\"message_type\":\"input_audio_chunk\","
	              "\"audio_base_64\":\"\",\"commit\":false,"
	              "\"sample_rate\":8000,\"previous_text\":\"hi\"}",
	            true, &w, &c, 8000),
	    0);
	TEST_EQ(w.n, 0);
	TEST_ASSERT(c.has_previous_text);
	TEST_STREQ(c.previous_text, "hi");
	free(c.pcm);
	check("{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
	      "\"\",\"commit\":false,\"sample_rate\":8000,\"previous_text\":"
	      "\"hi\"}",
	    false, &w, &c, 8000);
	TEST_STREQ(w.kinds, "previous_text_not_first ");
	free(c.pcm);
	return 0;
}

static int
test_bad_chunks(void)
{
	static const struct {
		const char *m, *kinds;
		bool        input_error;
	} cases[] = {
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"AAAAAA==\",\"sample_rate\":8000}",
		    "missing_commit ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"AAAAAA==\",\"commit\":false}",
		    "missing_sample_rate ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"AAAAAA==\",\"commit\":false,\"sample_rate\":16000}",
		    "sample_rate_mismatch ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"AAA\",\"commit\":false,\"sample_rate\":8000}",
		    "bad_base64 ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"AA==\",\"commit\":false,\"sample_rate\":8000}",
		    "odd_pcm_length ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"commit\":false,"
		  "\"sample_rate\":8000}",
		    "missing_audio_base_64 ", false },
		{ "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":"
		  "\"\",\"commit\":\"no\",\"sample_rate\":8000,\"x\":1}",
		    "unknown_field bad_commit ", false },
		{ "{\"message_type\":\"commit\"}", "unknown_message_type ",
		    true },
		{ "{\"audio_base_64\":\"\"}", "missing_message_type ", true },
		{ "[1]", "bad_json ", true },
	};
	struct seen    w;
	struct fschunk c;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check(cases[i].m, false, &w, &c, 8000);
		if (strcmp(w.kinds, cases[i].kinds))
			TEST_FAIL_("%s: got '%s', expected '%s'", cases[i].m,
			    w.kinds, cases[i].kinds);
		TEST_EQ(c.input_error != NULL, cases[i].input_error);
		free(c.pcm);
	}
	check("{\"message_type\":\"commit\"}", false, &w, &c, 8000);
	TEST_STREQ(c.input_error, "Unexpected message type: commit");
	return 0;
}

TEST_MAIN(TEST(test_query_ok), TEST(test_query_defaults_warned),
    TEST(test_query_refused), TEST(test_chunks), TEST(test_bad_chunks))
