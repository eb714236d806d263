/*
 * events_test.c - webhook bodies compared byte for byte.
 */
#include "events.h"

#include <stdlib.h>

#include "test.h"

/* 2026-11-21T16:40:00.123Z */
#define TS_US 1795279200123456ull

static const struct events_call ids = { "CA1", "ST1", "AC1", 1, TS_US };

#define HEAD(ev, seq)                                                         \
	"{\"event\":\"" ev "\",\"call_sid\":\"CA1\",\"stream_sid\":\"ST1\","  \
	"\"account_sid\":\"AC1\",\"seq\":" seq                                \
	",\"ts\":\"2026-11-21T16:40:00.123Z\""

static int
check(char *got, const char *want)
{
	int rc = 0;

	if (!got || strcmp(got, want)) {
		fprintf(stderr, "  got  %s\n  want %s\n", got ? got : "(null)",
		    want);
		rc = 1;
	}
	free(got);
	return rc;
}

static int
test_ts(void)
{
	char b[EVENTS_TS_LEN];

	TEST_STREQ(events_ts(b, TS_US), "2026-11-21T16:40:00.123Z");
	TEST_STREQ(events_ts(b, 0), "1970-01-01T00:00:00.000Z");
	TEST_STREQ(events_ts(b, 999999), "1970-01-01T00:00:00.999Z");
	/* A leap day and the end of a year. */
	TEST_STREQ(
	    events_ts(b, 1709164799001000ull), "2024-02-28T23:59:59.001Z");
	TEST_STREQ(
	    events_ts(b, 1735689599999999ull), "2024-12-31T23:59:59.999Z");
	return 0;
}

static int
test_secret_keys(void)
{
	TEST_ASSERT(events_secret_key("token"));
	TEST_ASSERT(events_secret_key("Token"));
	TEST_ASSERT(events_secret_key("auth_token"));
	TEST_ASSERT(events_secret_key("API_KEY"));
	TEST_ASSERT(events_secret_key("password"));
	TEST_ASSERT(events_secret_key("Authorization"));
	TEST_ASSERT(events_secret_key("client_secret"));
	TEST_ASSERT(!events_secret_key("persona"));
	TEST_ASSERT(!events_secret_key("customer_id"));
	TEST_ASSERT(!events_secret_key("lang"));
	return 0;
}

static int
test_reason(void)
{
	TEST_STREQ(events_reason("callended"), "callended");
	TEST_STREQ(events_reason("stopped"), "stopped");
	TEST_STREQ(events_reason("no_capacity"), "no_capacity");
	TEST_STREQ(events_reason("persona_failed"), "persona_failed");
	TEST_STREQ(events_reason("auth_failed"), "auth_failed");
	TEST_STREQ(events_reason("bridge_error"), "bridge_error");
	TEST_STREQ(events_reason("socket closed"), "bridge_error");
	TEST_STREQ(events_reason(""), "bridge_error");
	TEST_STREQ(events_reason(NULL), "bridge_error");
	return 0;
}

static int
test_started(void)
{
	struct events_kv      kv[] = { { "persona", "sales" },
		     { "token", "s3cret" }, { "lang", "hi" }, { "API_KEY", "k" },
		     { "lang", "dup" } };
	struct events_started s    = { "+919800000001", "+918000000002", 8000,
		   "sales", "agent", kv, 5 };

	if (check(events_call_started(&ids, &s),
	        HEAD("call.started", "1") ",\"from\":\"+919800000001\","
	                                  "\"to\":\"+918000000002\","
	                                  "\"sample_rate\":8000,"
	                                  "\"persona\":\"sales\","
	                                  "\"mode\":\"agent\","
	                                  "\"custom_parameters\":{"
	                                  "\"persona\":\"sales\","
	                                  "\"lang\":\"hi\"}}"))
		return 1;

	/* Unknown persona is null, no mode means no key, no parameters an
	 * empty object. */
	struct events_started e = { "a", "b", 16000, NULL, NULL, NULL, 0 };
	return check(events_call_started(&ids, &e),
	    HEAD("call.started", "1") ",\"from\":\"a\",\"to\":\"b\","
	                              "\"sample_rate\":16000,"
	                              "\"persona\":null,"
	                              "\"custom_parameters\":{}}");
}

static int
test_transcript(void)
{
	struct events_call       c = ids;
	struct events_transcript t
	    = { "agent", "Hello, how can I help?", true, 1200, 2350 };

	c.seq = 7;
	if (check(events_transcript(&c, &t),
	        HEAD("transcript", "7") ",\"speaker\":\"agent\","
	                                "\"text\":\"Hello, how can I "
	                                "help?\",\"final\":true,"
	                                "\"start_ms\":1200,"
	                                "\"end_ms\":2350}"))
		return 1;

	/* Offsets unknown; quotes, control characters and non-ASCII
	 * escaped or kept as JSON wants. */
	struct events_transcript p
	    = { "caller", "say \"hi\"\n\xe0\xa4\xa8", false, -1, -1 };
	if (check(events_transcript(&c, &p),
	        HEAD("transcript", "7") ",\"speaker\":\"caller\","
	                                "\"text\":\"say \\\"hi\\\"\\n"
	                                "\xe0\xa4\xa8\",\"final\":false,"
	                                "\"start_ms\":null,"
	                                "\"end_ms\":null}"))
		return 1;

	/* Invalid UTF-8 becomes U+FFFD: a lone continuation byte, a
	 * truncated sequence, an overlong '/', a surrogate. */
	struct events_transcript b = { "agent",
		"a\x80"
		"b\xe0\xa4"
		"c\xc0\xaf"
		"d\xed\xa0\x80",
		true, 0, 0 };
	return check(events_transcript(&c, &b),
	    HEAD("transcript", "7") ",\"speaker\":\"agent\","
	                            "\"text\":\"a\xef\xbf\xbd"
	                            "b\xef\xbf\xbd\xef\xbf\xbd"
	                            "c\xef\xbf\xbd\xef\xbf\xbd"
	                            "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
	                            "\"final\":true,\"start_ms\":0,"
	                            "\"end_ms\":0}");
}

static int
test_dtmf(void)
{
	struct events_call c = ids;
	struct events_dtmf d = { "#", 200 };

	c.seq = 3;
	return check(events_dtmf(&c, &d),
	    HEAD("dtmf", "3") ",\"digit\":\"#\",\"duration_ms\":200}");
}

static int
test_ended(void)
{
	struct events_call  c = ids;
	struct events_ended e = { "callended", 61234, "sales",
		{ 60.0200000001, 58.5, 1, 12 }, NULL, NULL };

	c.seq = 4000000000u; /* past INT_MAX: still an integer */
	if (check(events_call_ended(&c, &e),
	        HEAD("call.ended", "4000000000") ",\"reason\":\"callended\","
	                                         "\"duration_ms\":61234,"
	                                         "\"persona\":\"sales\","
	                                         "\"counters\":{"
	                                         "\"audio_in_s\":60.02,"
	                                         "\"audio_out_s\":58.5,"
	                                         "\"reconnects\":1,"
	                                         "\"frames_dropped\":12}}"))
		return 1;

	struct events_ended r
	    = { "something else", 0, NULL, { 0, 0, 0, 0 }, NULL, NULL };
	c.seq = 2;
	if (check(events_call_ended(&c, &r),
	        HEAD("call.ended", "2") ",\"reason\":\"bridge_error\","
	                                "\"duration_ms\":0,\"persona\":null,"
	                                "\"counters\":{\"audio_in_s\":0,"
	                                "\"audio_out_s\":0,\"reconnects\":0,"
	                                "\"frames_dropped\":0}}"))
		return 1;

	/* A transcribe call refused for want of speech-to-text: the mode,
	 * and the detail beside the contract's reason. */
	struct events_ended t = { "bridge_error", 3, "assist", { 0, 0, 0, 0 },
		"transcribe", "stt_not_configured" };
	c.seq                 = 2;
	return check(events_call_ended(&c, &t),
	    HEAD("call.ended", "2") ",\"reason\":\"bridge_error\","
	                            "\"detail\":\"stt_not_configured\","
	                            "\"duration_ms\":3,\"persona\":\"assist\","
	                            "\"mode\":\"transcribe\","
	                            "\"counters\":{\"audio_in_s\":0,"
	                            "\"audio_out_s\":0,\"reconnects\":0,"
	                            "\"frames_dropped\":0}}");
}

TEST_MAIN(TEST(test_ts), TEST(test_secret_keys), TEST(test_reason),
    TEST(test_started), TEST(test_transcript), TEST(test_dtmf),
    TEST(test_ended))
