#include "ppframe.h"

#include "test.h"

/* The reference server's first messages (research/personaplex.md §3.2):
 * 0x00, then 0x01 + the OpusHead page of serial 42. */
static const uint8_t opushead_msg[] = { 0x01, 0x4f, 0x67, 0x67, 0x53, 0x00,
	0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0xef, 0x88,
	0x87, 0x22, 0x01, 0x13, 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 0x01,
	0x01, 0x00, 0x0f, 0xc0, 0x5d, 0, 0, 0, 0, 0 };

static int
test_handshake_any_length(void)
{
	struct ppframe f;
	uint8_t        one[]   = { 0x00 };
	uint8_t        nine[9] = { 0 };
	uint8_t        web[]   = { 0x00, 0x00, 0x00 };
	TEST_EQ(ppframe_classify(one, 1, true, &f), PPF_HANDSHAKE);
	TEST_EQ(f.len, 0);
	TEST_EQ(ppframe_classify(nine, 9, true, &f), PPF_HANDSHAKE);
	TEST_EQ(f.len, 8);
	TEST_EQ(ppframe_classify(web, 3, true, &f), PPF_HANDSHAKE);
	return 0;
}

static int
test_audio(void)
{
	struct ppframe f;
	TEST_EQ(ppframe_classify(opushead_msg, sizeof(opushead_msg), true, &f),
	    PPF_AUDIO);
	TEST_EQ(f.type, 0x01);
	TEST_EQ(f.len, 47);
	TEST_ASSERT(f.payload == opushead_msg + 1);
	TEST_ASSERT(memcmp(f.payload, "OggS", 4) == 0);
	/* 0x01 with nothing after it carries no Ogg: bad. */
	TEST_EQ(ppframe_classify(opushead_msg, 1, true, &f), PPF_BAD);
	return 0;
}

static int
test_text(void)
{
	struct ppframe f;
	const uint8_t  hello[]  = "\x02 Hello";
	const uint8_t  accent[] = "\x02 caf\xc3\xa9";
	const uint8_t  broken[] = "\x02 caf\xc3";
	const uint8_t  empty[]  = { 0x02 };
	TEST_EQ(
	    ppframe_classify(hello, sizeof(hello) - 1, true, &f), PPF_TEXT);
	TEST_EQ(f.len, 6);
	TEST_ASSERT(memcmp(f.payload, " Hello", 6) == 0);
	TEST_EQ(
	    ppframe_classify(accent, sizeof(accent) - 1, true, &f), PPF_TEXT);
	TEST_EQ(
	    ppframe_classify(broken, sizeof(broken) - 1, true, &f), PPF_BAD);
	TEST_EQ(ppframe_classify(empty, 1, true, &f), PPF_TEXT);
	TEST_EQ(f.len, 0);
	return 0;
}

static int
test_ignored(void)
{
	struct ppframe f;
	const uint8_t  ctrl[] = { 0x03, 0x01 };
	const uint8_t  ping[] = { 0x06 };
	const uint8_t  txt[]  = "hello";
	TEST_EQ(ppframe_classify(ctrl, 2, true, &f), PPF_UNKNOWN);
	TEST_EQ(f.type, 3);
	TEST_EQ(ppframe_classify(ping, 1, true, &f), PPF_UNKNOWN);
	TEST_EQ(ppframe_classify(ping, 0, true, &f), PPF_EMPTY);
	TEST_EQ(ppframe_classify(NULL, 0, true, &f), PPF_EMPTY);
	/* A text frame is never a PersonaPlex message, whatever byte 0. */
	TEST_EQ(ppframe_classify(txt, 5, false, &f), PPF_WS_TEXT);
	TEST_EQ(ppframe_classify(opushead_msg, 10, false, &f), PPF_WS_TEXT);
	TEST_STREQ(ppframe_kind_name(PPF_WS_TEXT), "ws_text");
	TEST_STREQ(ppframe_kind_name(PPF_AUDIO), "audio");
	return 0;
}

static int
test_utf8(void)
{
	static const struct {
		const char *s;
		bool        ok;
	} cases[] = {
		{ "plain ascii", true },
		{ "\xe2\x96\x81", true }, /* U+2581 */
		{ "\xf0\x9f\x98\x80", true }, /* U+1F600 */
		{ "\xc0\xaf", false }, /* overlong '/' */
		{ "\xe0\x80\xaf", false }, /* overlong */
		{ "\xed\xa0\x80", false }, /* surrogate */
		{ "\xf4\x90\x80\x80", false }, /* > U+10FFFF */
		{ "\x80", false }, /* lone continuation */
		{ "\xe2\x96", false }, /* truncated */
		{ "\xff", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ppframe_utf8_valid(
		        (const uint8_t *)cases[i].s, strlen(cases[i].s))
		    != cases[i].ok)
			TEST_FAIL_("case %zu", i);
	return 0;
}

static int
test_put_audio(void)
{
	uint8_t        out[64];
	struct ppframe f;
	TEST_EQ(ppframe_audio_len(47), 48);
	TEST_EQ(ppframe_put_audio(out, opushead_msg + 1, 47), 48);
	TEST_ASSERT(memcmp(out, opushead_msg, 48) == 0);
	/* What we build classifies back as the same audio. */
	TEST_EQ(ppframe_classify(out, 48, true, &f), PPF_AUDIO);
	TEST_EQ(f.len, 47);
	return 0;
}

TEST_MAIN(TEST(test_handshake_any_length), TEST(test_audio), TEST(test_text),
    TEST(test_ignored), TEST(test_utf8), TEST(test_put_audio))
