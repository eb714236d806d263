/*
 * exomsg_test.c - the simulator's messages against the real captures.
 */
#include "exomsg.h"
#include "test.h"

#include <errno.h>

#include <cjson/cJSON.h>

#include "base64.h"

/* R2 in research/exotel.md §1.3, byte for byte. */
static int
test_start_r2(void)
{
	char               buf[4096];
	struct exomsg_call c = {
		.stream_sid  = "3357459ca698d8c765bac10b0ec418bl",
		.call_sid    = "b0c8aea60aceb0007fc5a1bb75c218bl",
		.account_sid = "kritibudh1",
		.from        = "09992750105",
		.to          = "04446972319",
		.rate        = 8000,
	};
	size_t len;
	TEST_EQ(exomsg_start(buf, sizeof(buf), &len, &c, 1), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"start\",\"stream_sid\":"
	    "\"3357459ca698d8c765bac10b0ec418bl\",\"sequence_number\":\"1\","
	    "\"start\":{\"stream_sid\":\"3357459ca698d8c765bac10b0ec418bl\","
	    "\"call_sid\":\"b0c8aea60aceb0007fc5a1bb75c218bl\","
	    "\"account_sid\":\"kritibudh1\",\"from\":\"09992750105\","
	    "\"to\":\"04446972319\",\"media_format\":{\"encoding\":\"base64\","
	    "\"sample_rate\":\"8000\",\"bit_rate\":\"128kbps\"}}}");
	TEST_EQ(len, strlen(buf));
	return 0;
}

/* R1, with custom parameters. */
static int
test_start_r1_custom(void)
{
	char                buf[4096];
	struct exomsg_param p[]
	    = { { "serviceHost", "customer-support.acme-corp" } };
	struct exomsg_call c = {
		.stream_sid  = "95be037f0ff02b427c3a4a59ae72198c",
		.call_sid    = "75b90b4b77ce9e6fe9a60a26f03d198c",
		.account_sid = "ezora2",
		.from        = "+14129162450",
		.to          = "08045680571",
		.rate        = 8000,
		.custom      = p,
		.ncustom     = 1,
	};
	size_t len;
	TEST_EQ(exomsg_start(buf, sizeof(buf), &len, &c, 1), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"start\",\"stream_sid\":"
	    "\"95be037f0ff02b427c3a4a59ae72198c\",\"sequence_number\":\"1\","
	    "\"start\":{\"stream_sid\":\"95be037f0ff02b427c3a4a59ae72198c\","
	    "\"call_sid\":\"75b90b4b77ce9e6fe9a60a26f03d198c\","
	    "\"account_sid\":\"ezora2\",\"from\":\"+14129162450\","
	    "\"to\":\"08045680571\",\"custom_parameters\":{\"serviceHost\":"
	    "\"customer-support.acme-corp\"},\"media_format\":{\"encoding\":"
	    "\"base64\",\"sample_rate\":\"8000\",\"bit_rate\":\"128kbps\"}}}");
	return 0;
}

static int
test_start_variants(void)
{
	char                buf[4096];
	struct exomsg_param p[] = { { "token", "" }, { "q\"x", "a\\b\n" } };
	struct exomsg_call  c   = { .stream_sid = "s",
		   .call_sid                    = "c",
		   .account_sid                 = "a",
		   .from                        = "f",
		   .to                          = "t",
		   .rate                        = 16000,
		   .custom_present              = true };
	size_t              len;

	TEST_EQ(exomsg_start(buf, sizeof(buf), &len, &c, 1), 0);
	TEST_ASSERT(strstr(buf, ",\"custom_parameters\":{},\"media_format\""));
	TEST_ASSERT(strstr(buf,
	    "\"sample_rate\":\"16000\",\"bit_rate\":"
	    "\"256kbps\""));
	c.custom  = p;
	c.ncustom = 2;
	c.numbers = true;
	c.rate    = 24000;
	TEST_EQ(exomsg_start(buf, sizeof(buf), &len, &c, 1), 0);
	/* Key-only parameters carry "", and everything is escaped. */
	TEST_ASSERT(
	    strstr(buf, "{\"token\":\"\",\"q\\\"x\":\"a\\\\b\\u000a\"}"));
	TEST_ASSERT(strstr(buf, "\"sequence_number\":1,"));
	TEST_ASSERT(
	    strstr(buf, "\"sample_rate\":24000,\"bit_rate\":\"384kbps\""));
	cJSON *j = cJSON_Parse(buf);
	TEST_ASSERT(j);
	cJSON *cp = cJSON_GetObjectItem(
	    cJSON_GetObjectItem(j, "start"), "custom_parameters");
	TEST_STREQ(cJSON_GetObjectItem(cp, "q\"x")->valuestring, "a\\b\n");
	cJSON_Delete(j);
	/* Too small a buffer is ENOSPC, never an overflow. */
	TEST_EQ(exomsg_start(buf, 40, &len, &c, 1), ENOSPC);
	TEST_ASSERT(strlen(buf) < 40);
	return 0;
}

static int
test_media(void)
{
	char               buf[4096];
	struct exomsg_call c = { .stream_sid = "SID", .rate = 8000 };
	uint8_t            pcm[320];
	size_t             len;
	for (size_t i = 0; i < sizeof(pcm); i++)
		pcm[i] = (uint8_t)(i * 7);
	TEST_ASSERT(exomsg_media_cap(&c, sizeof(pcm)) < sizeof(buf));
	TEST_EQ(exomsg_media(buf, sizeof(buf), &len, &c, 2, 1, 0, pcm, 3), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"media\",\"sequence_number\":\"2\",\"stream_sid\":"
	    "\"SID\",\"media\":{\"chunk\":\"1\",\"timestamp\":\"0\","
	    "\"payload\":\"AAcO\"}}");
	TEST_EQ(exomsg_media(
	            buf, sizeof(buf), &len, &c, 9, 8, 140, pcm, sizeof(pcm)),
	    0);
	cJSON *j = cJSON_Parse(buf);
	TEST_ASSERT(j);
	cJSON *m = cJSON_GetObjectItem(j, "media");
	TEST_STREQ(
	    cJSON_GetObjectItem(j, "sequence_number")->valuestring, "9");
	TEST_STREQ(cJSON_GetObjectItem(m, "chunk")->valuestring, "8");
	TEST_STREQ(cJSON_GetObjectItem(m, "timestamp")->valuestring, "140");
	const char *p = cJSON_GetObjectItem(m, "payload")->valuestring;
	uint8_t     back[400];
	size_t      n;
	TEST_EQ(b64_decode(back, &n, p, strlen(p)), 0);
	TEST_EQ(n, sizeof(pcm));
	TEST_ASSERT(memcmp(back, pcm, n) == 0);
	cJSON_Delete(j);
	TEST_EQ(exomsg_media(buf, exomsg_media_cap(&c, 320), &len, &c, 9, 8,
	            140, pcm, sizeof(pcm)),
	    0);
	TEST_EQ(exomsg_media(buf, 100, &len, &c, 9, 8, 140, pcm, sizeof(pcm)),
	    ENOSPC);
	return 0;
}

static int
test_others(void)
{
	char               buf[4096];
	struct exomsg_call c = { .stream_sid = "S",
		.call_sid                    = "C",
		.account_sid                 = "A",
		.rate                        = 8000 };
	size_t             len;

	TEST_EQ(exomsg_connected(buf, sizeof(buf), &len), 0);
	TEST_STREQ(buf, "{\"event\":\"connected\"}");
	TEST_EQ(exomsg_dtmf(buf, sizeof(buf), &len, &c, 5, '#', 200), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"dtmf\",\"sequence_number\":\"5\","
	    "\"stream_sid\":\"S\",\"dtmf\":{\"duration\":\"200\","
	    "\"digit\":\"#\"}}");
	TEST_EQ(exomsg_mark(buf, sizeof(buf), &len, &c, 6, "m\"1"), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"mark\",\"sequence_number\":\"6\","
	    "\"stream_sid\":\"S\",\"mark\":{\"name\":\"m\\\"1\"}}");
	TEST_EQ(exomsg_stop(buf, sizeof(buf), &len, &c, 7, "callended"), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"stop\",\"sequence_number\":\"7\","
	    "\"stream_sid\":\"S\",\"stop\":{\"call_sid\":\"C\","
	    "\"account_sid\":\"A\",\"reason\":\"callended\"}}");
	c.numbers = true;
	TEST_EQ(exomsg_dtmf(buf, sizeof(buf), &len, &c, 5, '1', 80), 0);
	TEST_STREQ(buf,
	    "{\"event\":\"dtmf\",\"sequence_number\":5,"
	    "\"stream_sid\":\"S\",\"dtmf\":{\"duration\":80,"
	    "\"digit\":\"1\"}}");
	return 0;
}

static int
test_ids(void)
{
	char     s1[33], c1[33], s2[33], c2[33];
	uint64_t r1 = 42, r2 = 42;
	int      letters = 0;

	exomsg_gen_ids(s1, c1, &r1);
	exomsg_gen_ids(s2, c2, &r2);
	TEST_STREQ(s1, s2); /* reproducible from the seed */
	TEST_EQ(strlen(s1), 32);
	TEST_EQ(strlen(c1), 32);
	TEST_STREQ(s1 + 28, c1 + 28);
	TEST_ASSERT(strncmp(s1, c1, 28) != 0);
	for (int k = 0; k < 200; k++) {
		exomsg_gen_ids(s1, c1, &r1);
		TEST_ASSERT(strcmp(s1, s2) != 0);
		TEST_STREQ(s1 + 28, c1 + 28);
		for (int i = 0; i < 28; i++)
			TEST_ASSERT(strchr("0123456789abcdef", s1[i]));
		for (int i = 28; i < 32; i++) {
			TEST_ASSERT(strchr(
			    "0123456789abcdefghijklmnopqrstuvwxyz", s1[i]));
			letters += s1[i] > 'f';
		}
	}
	/* Real tails such as "18bl" have letters beyond hex: so do ours. */
	TEST_ASSERT(letters > 0);
	return 0;
}

TEST_MAIN(TEST(test_start_r2), TEST(test_start_r1_custom),
    TEST(test_start_variants), TEST(test_media), TEST(test_others),
    TEST(test_ids))
