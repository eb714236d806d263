/*
 * sttmsg_test.c - every Scribe server message of research/elevenlabs.md
 * §3, both error spellings, lenient config; input_audio_chunk built.
 */
#include "sttmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"
#include "test.h"

static int
parse(struct sttmsg *m, const char *s)
{
	return sttmsg_parse(m, s, strlen(s));
}

static int
test_session_started(void)
{
	struct sttmsg m;

	/* The captured real response (research §3.1). */
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"session_started\",\"session_id\":"
	            "\"b1b982e08f2d44cab9fa256fac8f93f3\",\"config\":{"
	            "\"sample_rate\":16000,\"audio_format\":\"pcm_16000\","
	            "\"language_code\":null,\"timestamps_granularity\":"
	            "\"word\",\"vad_commit_strategy\":false,"
	            "\"vad_silence_threshold_secs\":1.5,\"vad_threshold\":0.4,"
	            "\"min_speech_duration_ms\":100,\"min_silence_duration_"
	            "ms\":100,\"max_tokens_to_recompute\":5,\"model_id\":"
	            "\"scribe_v2_realtime\",\"disable_logging\":false,"
	            "\"include_timestamps\":false,\"include_language_"
	            "detection\":false}}"),
	    0);
	TEST_EQ(m.type, STTMSG_SESSION_STARTED);
	TEST_STREQ(m.session_id, "b1b982e08f2d44cab9fa256fac8f93f3");
	TEST_STREQ(m.audio_format, "pcm_16000");
	TEST_EQ(m.sample_rate, 16000);
	TEST_ASSERT(m.language_code == NULL);
	sttmsg_clear(&m);

	/* Drifted names, a string rate, extra keys. */
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"session_started\",\"config\":{"
	            "\"sample_rate\":\"8000\",\"audio_format\":\"pcm_8000\","
	            "\"commit_strategy\":\"vad\",\"enable_logging\":true,"
	            "\"language_code\":\"en\",\"new_key\":[1,2]}}"),
	    0);
	TEST_EQ(m.type, STTMSG_SESSION_STARTED);
	TEST_ASSERT(m.session_id == NULL);
	TEST_EQ(m.sample_rate, 8000);
	TEST_STREQ(m.language_code, "en");
	sttmsg_clear(&m);

	/* No config at all, or a config of the wrong type: still fine. */
	TEST_EQ(parse(&m, "{\"message_type\":\"session_started\"}"), 0);
	TEST_EQ(m.type, STTMSG_SESSION_STARTED);
	TEST_ASSERT(m.audio_format == NULL);
	TEST_EQ(m.sample_rate, 0);
	sttmsg_clear(&m);
	TEST_EQ(
	    parse(&m, "{\"message_type\":\"session_started\",\"config\":7}"),
	    0);
	TEST_EQ(m.type, STTMSG_SESSION_STARTED);
	TEST_EQ(m.sample_rate, 0);
	sttmsg_clear(&m);
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"session_started\",\"config\":{"
	            "\"sample_rate\":-5,\"audio_format\":3}}"),
	    0);
	TEST_EQ(m.sample_rate, 0);
	TEST_ASSERT(m.audio_format == NULL);
	sttmsg_clear(&m);
	return 0;
}

static int
test_transcripts(void)
{
	struct sttmsg m;

	TEST_EQ(parse(&m,
	            "{\"message_type\":\"partial_transcript\",\"text\":"
	            "\"Hello, how ca\"}"),
	    0);
	TEST_EQ(m.type, STTMSG_PARTIAL);
	TEST_STREQ(m.text, "Hello, how ca");
	TEST_STREQ(m.type_name, "partial_transcript");
	TEST_EQ(m.policy, STTERR_NONE);
	sttmsg_clear(&m);

	TEST_EQ(parse(&m,
	            "{\"message_type\":\"final_transcript\",\"text\":"
	            "\"Hello, how can I help\"}"),
	    0);
	TEST_EQ(m.type, STTMSG_FINAL);
	TEST_STREQ(m.text, "Hello, how can I help");
	sttmsg_clear(&m);

	TEST_EQ(parse(&m,
	            "{\"message_type\":\"final_transcript_with_timestamps\","
	            "\"text\":\"Hello world\",\"language_code\":\"en\","
	            "\"words\":[{\"text\":\"Hello\",\"start\":0,\"end\":0.5,"
	            "\"type\":\"word\"}]}"),
	    0);
	TEST_EQ(m.type, STTMSG_FINAL_TS);
	TEST_STREQ(m.language_code, "en");
	TEST_NEAR(m.t_start, 0, 1e-9);
	TEST_NEAR(m.t_end, 0.5, 1e-9);
	sttmsg_clear(&m);

	TEST_EQ(parse(&m,
	            "{\"message_type\":\"committed_transcript\",\"text\":"
	            "\"Hello, how can I help you today?\"}"),
	    0);
	TEST_EQ(m.type, STTMSG_COMMITTED);
	TEST_STREQ(m.text, "Hello, how can I help you today?");
	TEST_NEAR(m.t_start, -1, 1e-9);
	sttmsg_clear(&m);

	/* characters as objects (newest contract) and as strings (older),
	 * a spacing item, an audio_event: all accepted. */
	TEST_EQ(
	    parse(&m,
	        "{\"message_type\":\"committed_transcript_with_"
	        "timestamps\",\"text\":\"Hello, how\",\"language_code\":"
	        "\"en\",\"words\":[{\"text\":\"Hello\",\"start\":0.12,"
	        "\"end\":0.45,\"type\":\"word\",\"speaker_id\":"
	        "\"speaker_0\",\"logprob\":-0.05,\"characters\":[{"
	        "\"text\":\"H\",\"start\":0.12,\"end\":0.18}]},{\"text\":"
	        "\" \",\"start\":0.45,\"end\":0.5,\"type\":\"spacing\","
	        "\"logprob\":0.0},{\"text\":\"how\",\"start\":0.5,\"end\":"
	        "0.8,\"type\":\"word\",\"characters\":[\"h\",\"o\",\"w\"]},"
	        "{\"text\":\"(laughs)\",\"type\":\"audio_event\"}]}"),
	    0);
	TEST_EQ(m.type, STTMSG_COMMITTED_TS);
	TEST_NEAR(m.t_start, 0.12, 1e-9);
	TEST_NEAR(m.t_end, 0.8, 1e-9);
	sttmsg_clear(&m);

	/* words and language_code may be null; text may be empty. */
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"committed_transcript_with_"
	            "timestamps\",\"text\":\"\",\"language_code\":null,"
	            "\"words\":null}"),
	    0);
	TEST_EQ(m.type, STTMSG_COMMITTED_TS);
	TEST_STREQ(m.text, "");
	TEST_ASSERT(m.language_code == NULL);
	TEST_NEAR(m.t_start, -1, 1e-9);
	sttmsg_clear(&m);

	TEST_EQ(parse(&m,
	            "{\"message_type\":\"committed_transcript_entities\","
	            "\"text\":\"Call me at 555-123-4567\",\"entities\":[{"
	            "\"text\":\"555-123-4567\",\"entity_type\":"
	            "\"phone_number\",\"start_char\":11,\"end_char\":23}]}"),
	    0);
	TEST_EQ(m.type, STTMSG_ENTITIES);
	TEST_EQ(m.n_entities, 1);
	sttmsg_clear(&m);

	/* A missing or null text is an empty one. */
	TEST_EQ(parse(&m, "{\"message_type\":\"partial_transcript\"}"), 0);
	TEST_STREQ(m.text, "");
	sttmsg_clear(&m);
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"committed_transcript\",\"text\":"
	            "null}"),
	    0);
	TEST_STREQ(m.text, "");
	sttmsg_clear(&m);
	return 0;
}

struct err_case {
	const char        *type, *kind;
	enum stterr_policy policy;
};

static int
test_errors(void)
{
	static const struct err_case cases[] = {
		{ "auth_error", "auth_error", STTERR_FATAL },
		{ "quota_exceeded", "quota_exceeded", STTERR_FATAL },
		{ "quota_exceeded_error", "quota_exceeded", STTERR_FATAL },
		{ "unaccepted_terms", "unaccepted_terms", STTERR_FATAL },
		{ "unaccepted_terms_error", "unaccepted_terms", STTERR_FATAL },
		{ "invalid_request", "invalid_request", STTERR_FATAL },
		{ "input_error", "input_error", STTERR_RETRY },
		{ "chunk_size_exceeded", "chunk_size_exceeded", STTERR_RETRY },
		{ "commit_throttled", "commit_throttled", STTERR_NONFATAL },
		{ "rate_limited", "rate_limited", STTERR_RETRY },
		{ "queue_overflow", "queue_overflow", STTERR_RETRY },
		{ "resource_exhausted", "resource_exhausted", STTERR_RETRY },
		{ "transcriber_error", "transcriber_error", STTERR_RETRY },
		{ "session_time_limit_exceeded", "session_time_limit_exceeded",
		    STTERR_ROUTINE },
		{ "insufficient_audio_activity", "insufficient_audio_activity",
		    STTERR_ROUTINE },
		{ "error", "error", STTERR_RETRY },
	};
	struct sttmsg m;
	char          buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf),
		    "{\"message_type\":\"%s\",\"error\":\"detail %zu\"}",
		    cases[i].type, i);
		TEST_EQ(parse(&m, buf), 0);
		TEST_EQ(m.type, STTMSG_ERROR);
		TEST_STREQ(m.err_kind, cases[i].kind);
		TEST_EQ(m.policy, cases[i].policy);
		TEST_STREQ(m.type_name, cases[i].type);
		snprintf(buf, sizeof(buf), "detail %zu", i);
		TEST_STREQ(m.error, buf);
		sttmsg_clear(&m);
	}

	/* A known error type without any detail is still an error. */
	TEST_EQ(parse(&m, "{\"message_type\":\"rate_limited\"}"), 0);
	TEST_EQ(m.type, STTMSG_ERROR);
	TEST_STREQ(m.error, "");
	sttmsg_clear(&m);

	/* LiveKit reads `message`: the fallback when `error` is absent. */
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"auth_error\",\"message\":\"bad "
	            "key\"}"),
	    0);
	TEST_STREQ(m.error, "bad key");
	TEST_EQ(m.policy, STTERR_FATAL);
	sttmsg_clear(&m);

	/* An unknown type with a string error is an error... */
	TEST_EQ(parse(&m,
	            "{\"message_type\":\"brand_new_failure\",\"error\":"
	            "\"something\"}"),
	    0);
	TEST_EQ(m.type, STTMSG_ERROR);
	TEST_STREQ(m.err_kind, "other");
	TEST_EQ(m.policy, STTERR_RETRY);
	TEST_STREQ(m.type_name, "brand_new_failure");
	sttmsg_clear(&m);

	/* ...one without (or with a non-string error) is just unknown. */
	TEST_EQ(
	    parse(&m, "{\"message_type\":\"usage_report\",\"seconds\":3}"), 0);
	TEST_EQ(m.type, STTMSG_UNKNOWN);
	TEST_EQ(m.policy, STTERR_NONE);
	sttmsg_clear(&m);
	TEST_EQ(parse(&m, "{\"message_type\":\"odd\",\"error\":{}}"), 0);
	TEST_EQ(m.type, STTMSG_UNKNOWN);
	sttmsg_clear(&m);
	return 0;
}

static int
test_bad(void)
{
	static const char *bad[] = { "", "not json", "[1,2]", "\"x\"", "{}",
		"{\"message_type\":5}", "{\"message_type\":null}",
		"{\"message_type\":\"partial_transcript\"" };
	struct sttmsg      m;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TEST_EQ(parse(&m, bad[i]), EINVAL);
		TEST_EQ(m.type, STTMSG_BAD);
		TEST_ASSERT(m.why && *m.why);
		sttmsg_clear(&m);
	}
	/* Length-bounded: bytes past len are not read. */
	TEST_EQ(
	    sttmsg_parse(&m, "{\"message_type\":\"error\"}garbage", 24), 0);
	TEST_EQ(m.type, STTMSG_ERROR);
	sttmsg_clear(&m);
	return 0;
}

static int
test_chunk(void)
{
	uint8_t     pcm[1600];
	size_t      cap = sttmsg_chunk_max(sizeof(pcm), 0), n, dn;
	char       *buf = malloc(cap);
	cJSON      *j, *v;
	uint8_t     back[1700];
	const char *keys[]
	    = { "message_type", "audio_base_64", "commit", "sample_rate" };
	int nkeys = 0;

	for (size_t i = 0; i < sizeof(pcm); i++)
		pcm[i] = (uint8_t)(i * 7);
	TEST_ASSERT(buf);
	TEST_EQ(
	    sttmsg_chunk(buf, cap - 1, pcm, sizeof(pcm), 8000, false, NULL),
	    0);
	n = sttmsg_chunk(buf, cap, pcm, sizeof(pcm), 8000, false, NULL);
	TEST_ASSERT(n > 0 && n == strlen(buf));
	j = cJSON_Parse(buf);
	TEST_ASSERT(j);
	/* Exactly the four fields, no previous_text. */
	cJSON_ArrayForEach(v, j) nkeys++;
	TEST_EQ(nkeys, 4);
	for (int i = 0; i < 4; i++)
		TEST_ASSERT(cJSON_GetObjectItemCaseSensitive(j, keys[i]));
	TEST_STREQ(
	    cJSON_GetObjectItemCaseSensitive(j, "message_type")->valuestring,
	    "input_audio_chunk");
	TEST_ASSERT(
	    cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "commit")));
	TEST_EQ(cJSON_GetObjectItemCaseSensitive(j, "sample_rate")->valueint,
	    8000);
	v = cJSON_GetObjectItemCaseSensitive(j, "audio_base_64");
	TEST_EQ(
	    b64_decode(back, &dn, v->valuestring, strlen(v->valuestring)), 0);
	TEST_EQ(dn, sizeof(pcm));
	TEST_ASSERT(memcmp(back, pcm, dn) == 0);
	cJSON_Delete(j);
	free(buf);

	/* The commit message the SDKs send: empty audio, commit true. */
	cap = sttmsg_chunk_max(0, 0);
	buf = malloc(cap);
	TEST_ASSERT(buf);
	n = sttmsg_chunk(buf, cap, NULL, 0, 16000, true, NULL);
	TEST_STREQ(buf,
	    "{\"message_type\":\"input_audio_chunk\",\"audio_base_64\":\"\","
	    "\"commit\":true,\"sample_rate\":16000}");
	free(buf);

	/* previous_text, escaped. */
	const char *pt = "say \"hi\" \\ now\n";
	cap            = sttmsg_chunk_max(4, strlen(pt));
	buf            = malloc(cap);
	TEST_ASSERT(buf);
	TEST_ASSERT(sttmsg_chunk(buf, cap, pcm, 4, 24000, false, pt) > 0);
	j = cJSON_Parse(buf);
	TEST_ASSERT(j);
	TEST_STREQ(
	    cJSON_GetObjectItemCaseSensitive(j, "previous_text")->valuestring,
	    pt);
	cJSON_Delete(j);
	free(buf);
	return 0;
}

static int
test_previous_text(void)
{
	char out[51];

	TEST_EQ(sttmsg_previous_text(out, 50, NULL), 0);
	TEST_STREQ(out, "");
	TEST_EQ(sttmsg_previous_text(out, 50, "   "), 0);
	TEST_EQ(sttmsg_previous_text(out, 50, "Short text. "), 11);
	TEST_STREQ(out, "Short text.");
	/* A long text: the tail, from a word, within 50 bytes. */
	sttmsg_previous_text(out, 50,
	    "I would like to ask about the invoice number four four one one "
	    "that arrived yesterday");
	TEST_ASSERT(strlen(out) <= 50);
	TEST_STREQ(out, "number four four one one that arrived yesterday");
	/* One long word: cut, but never inside a UTF-8 sequence. */
	char word[200] = "";
	for (int i = 0; i < 30; i++)
		strcat(word, "\xc3\xa9"); /* é, 2 bytes */
	strcat(word, "x");
	size_t n = sttmsg_previous_text(out, 50, word);
	TEST_ASSERT(n <= 50);
	TEST_EQ(out[n - 1], 'x');
	TEST_EQ((unsigned char)out[0], 0xc3);
	/* Control characters become spaces; invalid bytes are dropped. */
	sttmsg_previous_text(out, 50,
	    "a\tb\xff"
	    "c");
	TEST_STREQ(out, "a bc");
	return 0;
}

/* Mutated real messages and random bytes: never a crash, and the
 * fields the client reads are always set. A poor man's fuzz run. */
static int
test_mutations(void)
{
	static const char *seeds[] = {
		"{\"message_type\":\"session_started\",\"session_id\":\"x\","
		"\"config\":{\"sample_rate\":16000,\"audio_format\":"
		"\"pcm_16000\"}}",
		"{\"message_type\":\"partial_transcript\",\"text\":\"Hi\"}",
		"{\"message_type\":\"committed_transcript_with_timestamps\","
		"\"text\":\"a\",\"words\":[{\"text\":\"a\",\"start\":0.1,"
		"\"end\":0.2,\"characters\":[\"a\"]}]}",
		"{\"message_type\":\"auth_error\",\"error\":\"bad\"}",
		"{\"message_type\":\"committed_transcript_entities\","
		"\"entities\":[{}]}",
	};
	uint64_t      rng = 88172645463325252ull;
	char          buf[512];
	struct sttmsg m;

	for (int i = 0; i < 20000; i++) {
		const char *seed = seeds[i % 5];
		size_t      n    = strlen(seed);
		memcpy(buf, seed, n);
		for (int k = 0; k < 1 + i % 4; k++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t at = rng % n;
			switch ((rng >> 32) % 3) {
			case 0:
				buf[at] = (char)(rng >> 40);
				break;
			case 1:
				n = at ? at : 1;
				break; /* truncate */
			default:
				buf[at] = "{}[]\":,0a\\"[(rng >> 40) % 11];
			}
		}
		sttmsg_parse(&m, buf, n);
		TEST_ASSERT(m.type_name && m.text && m.error);
		if (m.type == STTMSG_ERROR)
			TEST_ASSERT(m.err_kind);
		if (m.type == STTMSG_BAD)
			TEST_ASSERT(m.why);
		sttmsg_clear(&m);
	}
	return 0;
}

TEST_MAIN(TEST(test_mutations), TEST(test_session_started),
    TEST(test_transcripts), TEST(test_errors), TEST(test_bad),
    TEST(test_chunk), TEST(test_previous_text))
