/*
 * exotel_test.c - the Exotel parser and builders against the real
 * captures and templates of research/exotel.md §1, and bad input.
 */
#include "exotel.h"

#include <cjson/cJSON.h>

#include "arena.h"
#include "base64.h"
#include "test.h"

static uint8_t           pcm[65536];
static struct exotel_msg msg;

static int
parse(const char *s)
{
	return exotel_parse(&msg, s, strlen(s), pcm, sizeof(pcm));
}

static const char *
custom(const char *key)
{
	for (size_t i = 0; i < msg.u.start.n_custom; i++)
		if (strcmp(msg.u.start.custom[i].key, key) == 0)
			return msg.u.start.custom[i].val;
	return NULL;
}

static const char *
extra(const char *key)
{
	for (size_t i = 0; i < msg.u.start.n_extra; i++)
		if (strcmp(msg.u.start.extra[i].key, key) == 0)
			return msg.u.start.extra[i].val;
	return NULL;
}

/* §1.3 R1: pipecat-examples exotel-chatbot/README.md, a real call. */
static const char r1[]
    = "{\n"
      "  \"event\": \"start\",\n"
      "  \"stream_sid\": \"95be037f0ff02b427c3a4a59ae72198c\",\n"
      "  \"sequence_number\": \"1\",\n"
      "  \"start\": {\n"
      "    \"stream_sid\": \"95be037f0ff02b427c3a4a59ae72198c\",\n"
      "    \"call_sid\": \"75b90b4b77ce9e6fe9a60a26f03d198c\",\n"
      "    \"account_sid\": \"ezora2\",\n"
      "    \"from\": \"+14129162450\",\n"
      "    \"to\": \"08045680571\",\n"
      "    \"custom_parameters\": { \"serviceHost\": "
      "\"customer-support.acme-corp\" },\n"
      "    \"media_format\": { \"encoding\": \"base64\", \"sample_rate\": "
      "\"8000\", \"bit_rate\": \"128kbps\" }\n"
      "  }\n"
      "}\n";

static int
test_start_r1(void)
{
	TEST_EQ(parse(r1), EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_START);
	TEST_STREQ(msg.event, "start");
	TEST_STREQ(msg.stream_sid, "95be037f0ff02b427c3a4a59ae72198c");
	TEST_ASSERT(msg.has_seq);
	TEST_EQ(msg.seq, 1);
	TEST_STREQ(msg.u.start.call_sid, "75b90b4b77ce9e6fe9a60a26f03d198c");
	TEST_STREQ(msg.u.start.account_sid, "ezora2");
	TEST_STREQ(msg.u.start.from, "+14129162450");
	TEST_STREQ(msg.u.start.to, "08045680571");
	TEST_ASSERT(msg.u.start.custom_present);
	TEST_EQ(msg.u.start.n_custom, 1);
	TEST_STREQ(custom("serviceHost"), "customer-support.acme-corp");
	TEST_STREQ(msg.u.start.encoding, "base64");
	TEST_STREQ(msg.u.start.bit_rate, "128kbps");
	TEST_EQ(msg.u.start.sample_rate, 8000);
	TEST_EQ(msg.u.start.n_extra, 0);
	TEST_EQ(msg.u.start.n_dropped, 0);
	TEST_STREQ(msg.reason, "");
	return 0;
}

/* §1.3 R2: a logged Python dict, converted to JSON (quotes only). */
static int
test_start_r2(void)
{
	const char *s
	    = "{\"event\": \"start\", \"stream_sid\": "
	      "\"3357459ca698d8c765bac10b0ec418bl\", \"sequence_number\": "
	      "\"1\", \"start\": {\"stream_sid\": "
	      "\"3357459ca698d8c765bac10b0ec418bl\", \"call_sid\": "
	      "\"b0c8aea60aceb0007fc5a1bb75c218bl\", \"account_sid\": "
	      "\"kritibudh1\", \"from\": \"09992750105\", \"to\": "
	      "\"04446972319\", \"media_format\": {\"encoding\": \"base64\", "
	      "\"sample_rate\": \"8000\", \"bit_rate\": \"128kbps\"}}}";

	TEST_EQ(parse(s), EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_START);
	/* Not hex: the last characters are letters. */
	TEST_STREQ(msg.stream_sid, "3357459ca698d8c765bac10b0ec418bl");
	TEST_STREQ(msg.u.start.call_sid, "b0c8aea60aceb0007fc5a1bb75c218bl");
	TEST_STREQ(msg.u.start.account_sid, "kritibudh1");
	TEST_STREQ(msg.u.start.from, "09992750105");
	TEST_STREQ(msg.u.start.to, "04446972319");
	TEST_ASSERT(!msg.u.start.custom_present);
	TEST_EQ(msg.u.start.n_custom, 0);
	TEST_EQ(msg.u.start.sample_rate, 8000);
	return 0;
}

/* §1.3 R3: the Convixx log. */
static int
test_start_r3(void)
{
	const char *s
	    = "{\"event\":\"start\",\"stream_sid\":"
	      "\"a96749544f73ee386db308b7c6811a4f\",\"sequence_number\":\"1\","
	      "\"start\":{\"stream_sid\":\"a96749544f73ee386db308b7c6811a4f\","
	      "\"call_sid\":\"d91ee51111768cacafc4f2b158b11a4f\","
	      "\"account_sid\":\"convixxai1\",\"from\":\"07900002299\","
	      "\"to\":\"08037091588\",\"media_format\":{\"encoding\":"
	      "\"base64\",\"sample_rate\":\"8000\",\"bit_rate\":\"128kbps\"}}"
	      "}";

	TEST_EQ(parse(s), EXOTEL_OK);
	TEST_STREQ(msg.stream_sid, "a96749544f73ee386db308b7c6811a4f");
	TEST_STREQ(msg.u.start.call_sid, "d91ee51111768cacafc4f2b158b11a4f");
	TEST_STREQ(msg.u.start.account_sid, "convixxai1");
	TEST_EQ(msg.u.start.sample_rate, 8000);
	TEST_ASSERT(!msg.u.start.custom_present);
	return 0;
}

/* §1.3 the documented template with numbers; R5's integer sample rate,
 * leg_sid, key-only custom parameters; start.stream_sid absent. */
static int
test_start_variants(void)
{
	TEST_EQ(parse("{\"event\":\"start\",\"sequence_number\":1,"
	              "\"stream_sid\":\"S1\",\"start\":{\"call_sid\":\"C1\","
	              "\"account_sid\":\"a\",\"from\":\"1\",\"to\":\"2\","
	              "\"leg_sid\":\"L9\",\"custom_parameters\":{},"
	              "\"media_format\":{\"encoding\":\"raw/slin\","
	              "\"sample_rate\":16000,\"bit_rate\":\"256kbps\"}}}"),
	    EXOTEL_OK);
	TEST_STREQ(msg.stream_sid, "S1"); /* top-level fallback */
	TEST_EQ(msg.seq, 1);
	TEST_EQ(msg.u.start.sample_rate, 16000);
	TEST_ASSERT(msg.u.start.custom_present);
	TEST_EQ(msg.u.start.n_custom, 0);
	TEST_STREQ(extra("leg_sid"), "L9");
	TEST_STREQ(msg.u.start.encoding, "raw/slin");

	/* Key-only custom parameters (R5), a token, 24 kHz as a string,
	 * start.stream_sid preferred over a different top-level one. */
	TEST_EQ(parse("{\"event\":\"start\",\"stream_sid\":\"TOP\","
	              "\"start\":{\"stream_sid\":\"INNER\",\"call_sid\":"
	              "\"C\",\"custom_parameters\":{\"voice/0000-x\":\"\","
	              "\"token\":\"t0k\",\"n\":5},\"media_format\":{"
	              "\"sample_rate\":\"24000\"},\"future\":{\"a\":1}}}"),
	    EXOTEL_OK);
	TEST_STREQ(msg.stream_sid, "INNER");
	TEST_EQ(msg.u.start.n_custom, 3);
	TEST_STREQ(custom("voice/0000-x"), "");
	TEST_STREQ(custom("token"), "t0k");
	TEST_STREQ(custom("n"), "5");
	TEST_EQ(msg.u.start.sample_rate, 24000);
	TEST_EQ(msg.u.start.n_extra, 0); /* objects are not kept */
	TEST_ASSERT(!msg.has_seq);
	TEST_STREQ(msg.u.start.account_sid, "");

	/* No media_format at all: rate 0, the caller falls back. */
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	              "\"call_sid\":\"c\"}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.u.start.sample_rate, 0);

	/* Too many custom parameters: kept up to the limit, rest counted. */
	TEST_EQ(
	    parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	          "\"call_sid\":\"c\",\"custom_parameters\":{\"a\":\"1\","
	          "\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":"
	          "\"6\",\"g\":\"7\",\"h\":\"8\",\"i\":\"9\",\"j\":[1]}}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.u.start.n_custom, EXOTEL_KV_MAX);
	TEST_EQ(msg.u.start.n_dropped, 2);
	return 0;
}

static int
test_start_bad(void)
{
	/* No start object. */
	TEST_EQ(parse("{\"event\":\"start\",\"stream_sid\":\"s\"}"),
	    EXOTEL_E_START_FIELD);
	TEST_EQ(msg.kind, EXOTEL_EV_START);
	TEST_ASSERT(strlen(msg.reason) > 0);
	/* No stream_sid anywhere. */
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"call_sid\":\"c\"}}"),
	    EXOTEL_E_START_FIELD);
	/* No call_sid. */
	TEST_EQ(
	    parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\"}}"),
	    EXOTEL_E_START_FIELD);
	TEST_STREQ(msg.reason, "start.call_sid missing");
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	              "\"call_sid\":\"\"}}"),
	    EXOTEL_E_BAD_SID);
	/* start not an object. */
	TEST_EQ(parse("{\"event\":\"start\",\"start\":\"x\"}"),
	    EXOTEL_E_START_FIELD);
	/* Unsupported and unparsable rates. */
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	              "\"call_sid\":\"c\",\"media_format\":{\"sample_rate\":"
	              "\"44100\"}}}"),
	    EXOTEL_E_RATE);
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	              "\"call_sid\":\"c\",\"media_format\":{\"sample_rate\":"
	              "\"8k\"}}}"),
	    EXOTEL_E_RATE);
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"s\","
	              "\"call_sid\":\"c\",\"media_format\":{\"sample_rate\":"
	              "8000.5}}}"),
	    EXOTEL_E_RATE);
	/* Sids: 64 characters fine, 65 not, spaces and quotes not. */
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":"
	              "\"0123456789012345678901234567890123456789012345678901"
	              "234567890123\",\"call_sid\":\"c\"}}"),
	    EXOTEL_OK);
	TEST_EQ(strlen(msg.stream_sid), 64);
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":"
	              "\"0123456789012345678901234567890123456789012345678901"
	              "2345678901234\",\"call_sid\":\"c\"}}"),
	    EXOTEL_E_BAD_SID);
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"a b\","
	              "\"call_sid\":\"c\"}}"),
	    EXOTEL_E_BAD_SID);
	TEST_EQ(
	    parse("{\"event\":\"start\",\"start\":{\"stream_sid\":\"a\\\"\","
	          "\"call_sid\":\"c\"}}"),
	    EXOTEL_E_BAD_SID);
	TEST_EQ(parse("{\"event\":\"start\",\"start\":{\"stream_sid\":7,"
	              "\"call_sid\":\"c\"}}"),
	    EXOTEL_E_BAD_SID);
	return 0;
}

/* §1.4: the S1 template (numbers, timestamp a string) and S6's
 * all-strings version; 320 B of PCM. */
static int
test_media(void)
{
	uint8_t src[320];
	char    b64[1024], js[2048];

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	b64_encode(b64, src, sizeof(src));

	snprintf(js, sizeof(js),
	    "{\"event\":\"media\",\"sequence_number\":3,\"stream_sid\":"
	    "\"95be037f0ff02b427c3a4a59ae72198c\",\"media\":{\"chunk\":2,"
	    "\"timestamp\":\"10\",\"payload\":\"%s\"}}",
	    b64);
	TEST_EQ(parse(js), EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_MEDIA);
	TEST_STREQ(msg.stream_sid, "95be037f0ff02b427c3a4a59ae72198c");
	TEST_EQ(msg.seq, 3);
	TEST_ASSERT(msg.u.media.has_chunk && msg.u.media.has_timestamp);
	TEST_EQ(msg.u.media.chunk, 2);
	TEST_EQ(msg.u.media.timestamp, 10);
	TEST_EQ(msg.u.media.pcm_len, 320);
	TEST_ASSERT(msg.u.media.pcm == pcm);
	TEST_ASSERT(memcmp(pcm, src, 320) == 0);

	snprintf(js, sizeof(js),
	    "{\"event\":\"media\",\"sequence_number\":\"3\",\"stream_sid\":"
	    "\"x\",\"media\":{\"chunk\":\"2\",\"timestamp\":\"200\","
	    "\"payload\":\"%s\"}}",
	    b64);
	TEST_EQ(parse(js), EXOTEL_OK);
	TEST_EQ(msg.seq, 3);
	TEST_EQ(msg.u.media.chunk, 2);
	TEST_EQ(msg.u.media.timestamp, 200);
	TEST_EQ(msg.u.media.pcm_len, 320);

	/* Garbage in optional numbers is tolerated, just not reported. */
	TEST_EQ(parse("{\"event\":\"media\",\"sequence_number\":\"x3\","
	              "\"media\":{\"chunk\":[],\"payload\":\"AAAAAA==\"}}"),
	    EXOTEL_OK);
	TEST_ASSERT(!msg.has_seq && !msg.u.media.has_chunk);
	TEST_EQ(msg.u.media.pcm_len, 4);
	return 0;
}

static int
test_media_bad(void)
{
	uint8_t small[8];

	TEST_EQ(
	    parse("{\"event\":\"media\",\"media\":{\"payload\":\"A!AA\"}}"),
	    EXOTEL_E_BASE64);
	TEST_EQ(parse("{\"event\":\"media\",\"media\":{\"payload\":\"AAA\"}}"),
	    EXOTEL_E_BASE64);
	TEST_EQ(
	    parse("{\"event\":\"media\",\"media\":{\"payload\":\"A===\"}}"),
	    EXOTEL_E_BASE64);
	TEST_EQ(parse("{\"event\":\"media\",\"media\":{\"payload\":"
	              "\"AAAA\\nAAAA\"}}"),
	    EXOTEL_E_BASE64);
	/* One byte of PCM16 is not a sample. */
	TEST_EQ(
	    parse("{\"event\":\"media\",\"media\":{\"payload\":\"AA==\"}}"),
	    EXOTEL_E_ODD_PCM);
	TEST_EQ(msg.kind, EXOTEL_EV_MEDIA);
	TEST_EQ(
	    parse("{\"event\":\"media\",\"media\":{\"payload\":\"AAE=\"}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.u.media.pcm_len, 2);
	TEST_EQ(parse("{\"event\":\"media\",\"media\":{\"payload\":5}}"),
	    EXOTEL_E_NO_PAYLOAD);
	TEST_EQ(
	    parse("{\"event\":\"media\",\"media\":{}}"), EXOTEL_E_NO_PAYLOAD);
	TEST_EQ(parse("{\"event\":\"media\"}"), EXOTEL_E_NO_PAYLOAD);
	/* Bigger than the caller's buffer. */
	{
		const char *s = "{\"event\":\"media\",\"media\":{\"payload\":"
		                "\"AAAAAAAAAAAAAAAA\"}}";
		TEST_EQ(exotel_parse(&msg, s, strlen(s), small, sizeof(small)),
		    EXOTEL_E_TOO_LARGE);
	}
	TEST_EQ(parse("{\"event\":\"media\",\"stream_sid\":\"has space\","
	              "\"media\":{\"payload\":\"AAAA\"}}"),
	    EXOTEL_E_BAD_SID);
	return 0;
}

/* §1.5 template (numbers as strings) plus a numeric variant. */
static int
test_dtmf(void)
{
	TEST_EQ(
	    parse("{\"event\":\"dtmf\",\"sequence_number\":1,\"stream_sid\":"
	          "\"s\",\"dtmf\":{\"duration\":\"200\",\"digit\":\"5\"}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_DTMF);
	TEST_STREQ(msg.u.dtmf.digit, "5");
	TEST_ASSERT(msg.u.dtmf.has_duration);
	TEST_EQ(msg.u.dtmf.duration_ms, 200);
	TEST_EQ(parse("{\"event\":\"dtmf\",\"stream_sid\":\"s\",\"dtmf\":{"
	              "\"duration\":150,\"digit\":\"#\"}}"),
	    EXOTEL_OK);
	TEST_STREQ(msg.u.dtmf.digit, "#");
	TEST_EQ(msg.u.dtmf.duration_ms, 150);
	TEST_EQ(
	    parse("{\"event\":\"dtmf\",\"dtmf\":{\"digit\":7}}"), EXOTEL_OK);
	TEST_STREQ(msg.u.dtmf.digit, "7");
	TEST_ASSERT(!msg.u.dtmf.has_duration);
	TEST_EQ(parse("{\"event\":\"dtmf\",\"dtmf\":{\"duration\":\"1\"}}"),
	    EXOTEL_E_FIELD);
	TEST_EQ(parse("{\"event\":\"dtmf\"}"), EXOTEL_E_FIELD);
	return 0;
}

/* §1.6 and R3's echo. */
static int
test_mark(void)
{
	TEST_EQ(parse("{\"event\":\"mark\",\"sequence_number\":15,"
	              "\"stream_sid\":\"s\",\"mark\":{\"name\":\"mark_1\"}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_MARK);
	TEST_STREQ(msg.u.mark, "mark_1");
	TEST_EQ(msg.seq, 15);
	TEST_EQ(parse("{\"event\":\"mark\",\"mark\":{}}"), EXOTEL_E_FIELD);
	return 0;
}

/* §1.7 and §1.2. */
static int
test_stop_connected(void)
{
	TEST_EQ(parse("{\"event\":\"stop\",\"sequence_number\":10,"
	              "\"stream_sid\":\"s\",\"stop\":{\"call_sid\":\"c\","
	              "\"account_sid\":\"a\",\"reason\":\"stopped\"}}"),
	    EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_STOP);
	TEST_STREQ(msg.u.stop.reason, "stopped");
	TEST_STREQ(msg.u.stop.call_sid, "c");
	TEST_STREQ(msg.u.stop.account_sid, "a");
	TEST_EQ(msg.seq, 10);
	TEST_EQ(parse("{\"event\":\"stop\",\"sequence_number\":\"120\","
	              "\"stream_sid\":\"s\",\"stop\":{\"reason\":"
	              "\"callended\"}}"),
	    EXOTEL_OK);
	TEST_STREQ(msg.u.stop.reason, "callended");
	TEST_EQ(parse("{\"event\":\"stop\"}"), EXOTEL_OK);
	TEST_STREQ(msg.u.stop.reason, "");

	TEST_EQ(parse("{\"event\": \"connected\"}"), EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_CONNECTED);
	TEST_STREQ(msg.stream_sid, "");
	TEST_ASSERT(!msg.has_seq);
	/* Twilio-style extras from fake clients. */
	TEST_EQ(parse("{\"event\":\"connected\",\"protocol\":\"Call\","
	              "\"version\":\"1.0.0\"}"),
	    EXOTEL_OK);
	return 0;
}

static int
test_unknown(void)
{
	TEST_EQ(parse("{\"event\":\"silence\",\"stream_sid\":\"s\",\"track\":"
	              "\"inbound\"}"),
	    EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_UNKNOWN);
	TEST_STREQ(msg.event, "silence");
	TEST_STREQ(exotel_event_name(msg.kind), "unknown");
	/* clear is ours; received, it is tolerated and ignored. */
	TEST_EQ(
	    parse("{\"event\":\"clear\",\"stream_sid\":\"s\"}"), EXOTEL_OK);
	TEST_EQ(msg.kind, EXOTEL_EV_CLEAR);
	return 0;
}

static int
test_junk(void)
{
	static const uint8_t bin[] = { 0x00, 0xff, 0x7b, 0x22, 0x80, 0x01 };
	uint32_t             x     = 12345;
	char                 buf[257];

	TEST_EQ(parse("{\"event\":\"media\""), EXOTEL_E_JSON);
	TEST_EQ(parse(""), EXOTEL_E_JSON);
	TEST_EQ(parse("nope"), EXOTEL_E_JSON);
	TEST_ASSERT(strlen(msg.reason) > 0);
	TEST_EQ(exotel_parse(
	            &msg, (const char *)bin, sizeof(bin), pcm, sizeof(pcm)),
	    EXOTEL_E_JSON);
	TEST_EQ(parse("[1,2]"), EXOTEL_E_NOT_OBJECT);
	TEST_EQ(parse("\"event\""), EXOTEL_E_NOT_OBJECT);
	TEST_EQ(parse("{}"), EXOTEL_E_NO_EVENT);
	TEST_EQ(parse("{\"event\":5}"), EXOTEL_E_NO_EVENT);
	TEST_EQ(parse("{\"Event\":\"start\"}"), EXOTEL_E_NO_EVENT);
	/* Trailing garbage after a valid object is invalid JSON. */
	TEST_EQ(parse("{\"event\":\"stop\"}xx"), EXOTEL_E_JSON);
	/* Deep nesting must not blow the stack. */
	{
		static char deep[20000];
		size_t      i;
		for (i = 0; i < 9000; i++)
			deep[i] = '[';
		deep[i] = '\0';
		TEST_EQ(parse(deep), EXOTEL_E_JSON);
	}
	/* Random bytes: any error or OK, never a crash. */
	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round % 256);
		for (size_t i = 0; i < n; i++) {
			x      = x * 1103515245u + 12345u;
			buf[i] = (char)(x >> 16);
		}
		if (round % 3 == 0 && n > 2) {
			buf[0] = '{';
			buf[1] = '"';
		}
		int rv = exotel_parse(&msg, buf, n, pcm, sizeof(pcm));
		TEST_ASSERT(rv >= 0 && rv < EXOTEL_E_N);
		TEST_ASSERT(msg.reason != NULL);
		TEST_ASSERT(strcmp(exotel_err_name(rv), "unknown_error") != 0);
	}
	return 0;
}

/* §1.8: outbound shapes, parsed back with cJSON. */
static int
test_build(void)
{
	uint8_t src[1600];
	char    out[4096];
	size_t  n;
	cJSON  *j;

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i ^ 0x5a);
	n = exotel_build_media(out, sizeof(out),
	    "95be037f0ff02b427c3a4a59ae72198c", src, sizeof(src));
	TEST_ASSERT(n > 0);
	TEST_EQ(strlen(out), n);
	TEST_ASSERT(n < exotel_media_size(sizeof(src), 32));
	TEST_ASSERT(strncmp(out,
	                "{\"event\":\"media\",\"stream_sid\":"
	                "\"95be037f0ff02b427c3a4a59ae72198c\",\"media\":{"
	                "\"payload\":\"",
	                strlen("{\"event\":\"media\",\"stream_sid\":"
	                       "\"95be037f0ff02b427c3a4a59ae72198c\","
	                       "\"media\":{\"payload\":\""))
	    == 0);
	j = cJSON_Parse(out);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(cJSON_GetObjectItem(j, "event")->valuestring, "media");
	TEST_EQ(cJSON_GetArraySize(j), 3);
	cJSON_Delete(j);
	/* Our own media parses as media, with the same PCM. */
	TEST_EQ(parse(out), EXOTEL_OK);
	TEST_EQ(msg.u.media.pcm_len, sizeof(src));
	TEST_ASSERT(memcmp(pcm, src, sizeof(src)) == 0);
	/* Too small a buffer: 0, never an overflow. */
	TEST_EQ(exotel_build_media(out, 100, "s", src, sizeof(src)), 0);

	n = exotel_build_mark(out, sizeof(out), "s", "m\"1\\");
	TEST_ASSERT(n > 0);
	TEST_STREQ(out,
	    "{\"event\":\"mark\",\"stream_sid\":\"s\",\"mark\":{"
	    "\"name\":\"m\\\"1\\\\\"}}");
	TEST_EQ(parse(out), EXOTEL_OK);
	TEST_STREQ(msg.u.mark, "m\"1\\");
	TEST_EQ(exotel_build_mark(out, 20, "s", "x"), 0);

	n = exotel_build_clear(out, sizeof(out), "abc");
	TEST_STREQ(out, "{\"event\":\"clear\",\"stream_sid\":\"abc\"}");
	TEST_EQ(n, strlen(out));
	TEST_EQ(exotel_build_clear(out, 10, "abc"), 0);
	return 0;
}

static int
test_rate_parse(void)
{
	TEST_EQ(exotel_rate_parse("8000"), 8000);
	TEST_EQ(exotel_rate_parse("16000"), 16000);
	TEST_EQ(exotel_rate_parse("24000"), 24000);
	TEST_EQ(exotel_rate_parse("44100"), 0);
	TEST_EQ(exotel_rate_parse(""), 0);
	TEST_EQ(exotel_rate_parse("8000x"), 0);
	TEST_EQ(exotel_rate_parse(" 8000"), 0);
	TEST_EQ(exotel_rate_parse(NULL), 0);
	return 0;
}

/* exotel_parse_in builds cJSON's tree in the arena (none of it on the
 * heap once the arena has grown), reads the same as exotel_parse, and
 * leaves cJSON's other users on the heap. */
static int
test_parse_in_arena(void)
{
	struct arena     *a;
	struct exotel_msg m2;
	uint8_t           src[320], pcm2[1024];
	char              b64[1024], js[2048];
	cJSON            *outside = cJSON_CreateObject();

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 3 + 5);
	b64_encode(b64, src, sizeof(src));
	snprintf(js, sizeof(js),
	    "{\"event\":\"media\",\"sequence_number\":\"4\",\"stream_sid\":"
	    "\"95be037f0ff02b427c3a4a59ae72198c\",\"media\":{\"chunk\":\"3\","
	    "\"timestamp\":\"60\",\"payload\":\"%s\"}}",
	    b64);
	/* 64 bytes: the first message spills, the reset grows it. */
	TEST_EQ(arena_alloc(&a, 64, 1 << 16), 0);
	for (int i = 0; i < 3; i++) {
		size_t spills = arena_spills(a);
		TEST_EQ(exotel_parse_in(
		            a, &m2, js, strlen(js), pcm2, sizeof(pcm2)),
		    EXOTEL_OK);
		TEST_ASSERT(arena_used(a) > 320); /* the payload string too */
		if (i == 0)
			TEST_ASSERT(arena_spills(a) > spills);
		else
			TEST_EQ(arena_spills(a), spills);
		TEST_EQ(m2.kind, EXOTEL_EV_MEDIA);
		TEST_EQ(m2.seq, 4);
		TEST_EQ(m2.u.media.chunk, 3);
		TEST_EQ(m2.u.media.pcm_len, 320);
		TEST_ASSERT(memcmp(pcm2, src, 320) == 0);
		TEST_STREQ(m2.stream_sid, "95be037f0ff02b427c3a4a59ae72198c");
	}
	/* A start with custom parameters, and junk, on the same arena. */
	TEST_EQ(exotel_parse_in(a, &m2, r1, strlen(r1), pcm2, sizeof(pcm2)),
	    EXOTEL_OK);
	TEST_EQ(parse(r1), EXOTEL_OK);
	TEST_EQ(m2.u.start.n_custom, msg.u.start.n_custom);
	TEST_STREQ(m2.u.start.call_sid, msg.u.start.call_sid);
	TEST_EQ(exotel_parse_in(a, &m2, "{\"event\":", 10, pcm2, sizeof(pcm2)),
	    EXOTEL_E_JSON);
	/* Made before, freed after: the heap's, untouched by the arena. */
	cJSON_AddStringToObject(outside, "k", "v");
	TEST_ASSERT(!arena_owns(a, outside));
	cJSON_Delete(outside);
	arena_free(a);
	return 0;
}

TEST_MAIN(TEST(test_start_r1), TEST(test_start_r2), TEST(test_start_r3),
    TEST(test_start_variants), TEST(test_start_bad), TEST(test_media),
    TEST(test_media_bad), TEST(test_dtmf), TEST(test_mark),
    TEST(test_stop_connected), TEST(test_unknown), TEST(test_junk),
    TEST(test_build), TEST(test_rate_parse), TEST(test_parse_in_arena))
