/*
 * rxcheck_test.c - every kind of bad message a bot could send.
 */
#include "rxcheck.h"
#include "test.h"

#include "base64.h"

#define SID "95be037f0ff02b427c3a4a59ae72198c"

/* The decode buffer a check owns (freed by whoever made it). */
struct dbuf {
	uint8_t *p;
	size_t   cap;
};

static uint32_t
check_into(struct dbuf *d, const char *msg, int rate, struct rx_msg *m)
{
	if (rxcheck_text(msg, strlen(msg), SID, rate, &d->p, &d->cap, m) != 0)
		return 0xffffffffu;
	return m->viol;
}

static uint32_t
check(const char *msg, int rate, struct rx_msg *m)
{
	struct dbuf d = { NULL, 0 };
	uint32_t    v = check_into(&d, msg, rate, m);
	free(d.p);
	m->pcm = NULL;
	return v;
}

/* A media message with n bytes of PCM (value i & 0xff). */
static char *
media(size_t n, const char *sid)
{
	uint8_t *p   = malloc(n ? n : 1);
	char    *b   = malloc(b64_encoded_len(n) + 1);
	char    *msg = malloc(b64_encoded_len(n) + 200);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)i;
	b64_encode(b, p, n);
	if (sid)
		sprintf(msg,
		    "{\"event\":\"media\",\"stream_sid\":\"%s\",\"media\":{"
		    "\"payload\":\"%s\"}}",
		    sid, b);
	else
		sprintf(msg,
		    "{\"event\":\"media\",\"media\":{\"payload\":\"%s\"}}", b);
	free(p);
	free(b);
	return msg;
}

static int
expect_media(size_t n, int rate, uint32_t viol)
{
	struct rx_msg m;
	struct dbuf   d   = { NULL, 0 };
	char         *msg = media(n, SID);
	uint32_t      got = check_into(&d, msg, rate, &m);
	free(msg);
	if (got != viol)
		TEST_FAIL_("%zu bytes at %d: viol 0x%x, expected 0x%x", n,
		    rate, got, viol);
	TEST_EQ(m.kind, RX_MEDIA);
	TEST_EQ(m.pcm_len, n);
	for (size_t i = 0; i < n; i++)
		if (m.pcm[i] != (uint8_t)i)
			TEST_FAIL_("byte %zu differs", i);
	free(d.p);
	return 0;
}

static int
test_good_media(void)
{
	TEST_ASSERT(expect_media(320, 8000, 0) == 0);
	TEST_ASSERT(expect_media(1600, 8000, 0) == 0);
	TEST_ASSERT(expect_media(640, 16000, 0) == 0);
	TEST_ASSERT(expect_media(4800, 24000, 0) == 0);
	TEST_ASSERT(expect_media(99840, 8000, 0) == 0); /* 312 frames */
	return 0;
}

static int
test_bad_media(void)
{
	struct rx_msg m;
	/* Whole frames depend on the rate: 320 B is half a frame at 16k. */
	TEST_ASSERT(expect_media(320, 16000, 1u << RXV_PARTIAL_FRAME) == 0);
	TEST_ASSERT(expect_media(640, 24000, 1u << RXV_PARTIAL_FRAME) == 0);
	TEST_ASSERT(expect_media(321, 8000, 1u << RXV_PARTIAL_FRAME) == 0);
	TEST_ASSERT(expect_media(4096, 8000, 1u << RXV_PARTIAL_FRAME) == 0);
	TEST_ASSERT(expect_media(0, 8000, 1u << RXV_EMPTY_PAYLOAD) == 0);
	TEST_ASSERT(
	    expect_media(100160, 8000, 1u << RXV_PAYLOAD_TOO_LARGE) == 0);
	TEST_EQ(check("{\"event\":\"media\",\"stream_sid\":\"" SID
	              "\",\"media\":{\"payload\":\"AAA\"}}",
	            8000, &m),
	    1u << RXV_INVALID_BASE64);
	TEST_EQ(check("{\"event\":\"media\",\"stream_sid\":\"" SID
	              "\",\"media\":{\"payload\":\"AA==\\n\"}}",
	            8000, &m),
	    1u << RXV_INVALID_BASE64);
	TEST_EQ(check("{\"event\":\"media\",\"stream_sid\":\"" SID
	              "\",\"media\":{}}",
	            8000, &m),
	    1u << RXV_MISSING_PAYLOAD);
	TEST_EQ(check("{\"event\":\"media\",\"stream_sid\":\"" SID "\"}", 8000,
	            &m),
	    1u << RXV_MISSING_PAYLOAD);
	TEST_EQ(check("{\"event\":\"media\",\"stream_sid\":\"" SID
	              "\",\"media\":{\"payload\":42}}",
	            8000, &m),
	    1u << RXV_MISSING_PAYLOAD);
	return 0;
}

static int
test_stream_sid(void)
{
	struct rx_msg m;
	char         *msg = media(320, NULL);
	TEST_EQ(check(msg, 8000, &m), 0);
	TEST_ASSERT(m.sid_absent); /* tolerated, noted */
	free(msg);
	msg = media(320, "other");
	TEST_EQ(check(msg, 8000, &m), 1u << RXV_STREAM_SID_MISMATCH);
	TEST_ASSERT(!m.sid_absent);
	free(msg);
	TEST_EQ(check("{\"event\":\"clear\",\"stream_sid\":7}", 8000, &m),
	    1u << RXV_STREAM_SID_MISMATCH);
	/* Two things wrong at once: both counted. */
	msg = media(100, "other");
	TEST_EQ(check(msg, 8000, &m),
	    (1u << RXV_STREAM_SID_MISMATCH) | (1u << RXV_PARTIAL_FRAME));
	free(msg);
	return 0;
}

static int
test_events(void)
{
	struct rx_msg m;
	TEST_EQ(check("{\"event\":\"clear\",\"stream_sid\":\"" SID "\"}", 8000,
	            &m),
	    0);
	TEST_EQ(m.kind, RX_CLEAR);
	TEST_EQ(check("{\"event\":\"mark\",\"stream_sid\":\"" SID
	              "\",\"mark\":{\"name\":\"utt-1\"}}",
	            8000, &m),
	    0);
	TEST_EQ(m.kind, RX_MARK);
	TEST_STREQ(m.mark_name, "utt-1");
	free(m.mark_name);
	TEST_EQ(check("{\"event\":\"mark\",\"stream_sid\":\"" SID
	              "\",\"mark\":{}}",
	            8000, &m),
	    1u << RXV_MISSING_MARK_NAME);
	TEST_ASSERT(m.mark_name == NULL);
	/* Exotel → bot events are not for the bot to send. */
	TEST_EQ(check("{\"event\":\"start\",\"stream_sid\":\"" SID "\"}", 8000,
	            &m),
	    1u << RXV_UNKNOWN_EVENT);
	TEST_EQ(
	    check("{\"event\":\"Media\"}", 8000, &m), 1u << RXV_UNKNOWN_EVENT);
	TEST_EQ(check("{\"stream_sid\":\"" SID "\"}", 8000, &m),
	    1u << RXV_MISSING_EVENT);
	TEST_EQ(check("{\"event\":3}", 8000, &m), 1u << RXV_MISSING_EVENT);
	return 0;
}

static int
test_invalid_json(void)
{
	static const char *bad[] = { "", "{", "[1,2]", "\"media\"", "null",
		"{\"event\":\"media\",}", "{\"event\":\"media\"} x" };
	struct rx_msg      m;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (check(bad[i], 8000, &m) != 1u << RXV_INVALID_JSON)
			TEST_FAIL_("'%s' not flagged invalid_json", bad[i]);
	/* Not NUL-terminated within len: only len bytes are read. */
	const char *s = "{\"event\":\"clear\",\"stream_sid\":\"" SID "\"}xyz";
	struct dbuf d = { NULL, 0 };
	TEST_EQ(
	    rxcheck_text(s, strlen(s) - 3, SID, 8000, &d.p, &d.cap, &m), 0);
	free(d.p);
	TEST_EQ(m.viol, 0);
	return 0;
}

static int
test_names(void)
{
	for (int k = 0; k < RXV__COUNT; k++) {
		const char *n = rxcheck_viol_name((enum rxv)k);
		TEST_ASSERT(n && *n && strcmp(n, "unknown"));
		for (int j = 0; j < k; j++)
			TEST_ASSERT(strcmp(n, rxcheck_viol_name((enum rxv)j)));
	}
	TEST_STREQ(rxcheck_viol_name(RXV__COUNT), "unknown");
	TEST_ASSERT(RXV__COUNT <= 32); /* they fit the bit mask */
	return 0;
}

TEST_MAIN(TEST(test_good_media), TEST(test_bad_media), TEST(test_stream_sid),
    TEST(test_events), TEST(test_invalid_json), TEST(test_names))
