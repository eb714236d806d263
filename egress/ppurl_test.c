#include "ppurl.h"

#include <errno.h>

#include "test.h"

static char err[512];

static int
test_plain_no_path(void)
{
	struct ppurl u;
	TEST_EQ(ppurl_parse(&u, "ws://gpu1:8998", err, sizeof(err)), 0);
	TEST_ASSERT(!u.tls);
	TEST_STREQ(u.host, "gpu1");
	TEST_EQ(u.port, 8998);
	TEST_STREQ(u.path, "/api/chat");
	TEST_STREQ(u.hosthdr, "gpu1:8998");
	TEST_STREQ(u.base, "ws://gpu1:8998/api/chat");
	/* Just "/" is no path either. */
	TEST_EQ(ppurl_parse(&u, "ws://gpu1:8998/", err, sizeof(err)), 0);
	TEST_STREQ(u.path, "/api/chat");
	return 0;
}

static int
test_tls_with_path(void)
{
	struct ppurl u;
	TEST_EQ(ppurl_parse(&u, "wss://pp.example.com:9443/proxy/chat", err,
	            sizeof(err)),
	    0);
	TEST_ASSERT(u.tls);
	TEST_STREQ(u.host, "pp.example.com");
	TEST_EQ(u.port, 9443);
	TEST_STREQ(u.path, "/proxy/chat");
	TEST_STREQ(u.base, "wss://pp.example.com:9443/proxy/chat");
	/* Scheme is case-insensitive. */
	TEST_EQ(ppurl_parse(&u, "WSS://h/x", err, sizeof(err)), 0);
	TEST_ASSERT(u.tls);
	return 0;
}

static int
test_default_ports(void)
{
	struct ppurl u;
	TEST_EQ(ppurl_parse(&u, "ws://h", err, sizeof(err)), 0);
	TEST_EQ(u.port, 80);
	TEST_STREQ(u.hosthdr, "h");
	TEST_STREQ(u.base, "ws://h:80/api/chat");
	TEST_EQ(ppurl_parse(&u, "wss://h", err, sizeof(err)), 0);
	TEST_EQ(u.port, 443);
	TEST_STREQ(u.hosthdr, "h");
	TEST_EQ(ppurl_parse(&u, "wss://h:443/a", err, sizeof(err)), 0);
	TEST_STREQ(u.hosthdr, "h");
	TEST_EQ(ppurl_parse(&u, "ws://h:443/a", err, sizeof(err)), 0);
	TEST_STREQ(u.hosthdr, "h:443");
	return 0;
}

static int
test_ipv6(void)
{
	struct ppurl u;
	TEST_EQ(ppurl_parse(&u, "ws://[::1]:8998", err, sizeof(err)), 0);
	TEST_STREQ(u.host, "::1");
	TEST_EQ(u.port, 8998);
	TEST_STREQ(u.hosthdr, "[::1]:8998");
	TEST_STREQ(u.base, "ws://[::1]:8998/api/chat");
	TEST_EQ(ppurl_parse(&u, "wss://[fe80::1:2]/p", err, sizeof(err)), 0);
	TEST_STREQ(u.host, "fe80::1:2");
	TEST_EQ(u.port, 443);
	TEST_STREQ(u.hosthdr, "[fe80::1:2]");
	TEST_STREQ(u.path, "/p");
	TEST_EQ(ppurl_parse(&u, "ws://[::1", err, sizeof(err)), EINVAL);
	TEST_EQ(ppurl_parse(&u, "ws://[zz::1]:80", err, sizeof(err)), EINVAL);
	TEST_EQ(ppurl_parse(&u, "ws://[::1]x:80", err, sizeof(err)), EINVAL);
	return 0;
}

static int
test_bad_urls(void)
{
	struct ppurl       u;
	static const char *bad[] = {
		"",
		"http://h:1",
		"h:8998",
		"ws://",
		"ws://:8998",
		"ws://h:",
		"ws://h:0",
		"ws://h:65536",
		"ws://h:12ab",
		"ws://h:8998/a b",
		"ws://h:8998/a#frag",
		"ws://user:pw@h:8998",
		"ws://h!x:8998",
		"ws://h:8998\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (ppurl_parse(&u, bad[i], err, sizeof(err)) != EINVAL)
			TEST_FAIL_("accepted '%s'", bad[i]);
		TEST_ASSERT(strstr(err, "PersonaPlex URL") != NULL);
	}
	TEST_EQ(ppurl_parse(&u, "ws://h:8998", err, sizeof(err)), 0);
	TEST_EQ(ppurl_parse(&u, "ws://h:65535", err, sizeof(err)), 0);
	return 0;
}

static int
test_encode(void)
{
	char buf[256];
	TEST_EQ(ppurl_encode(buf, sizeof(buf), "aZ09-._~"), 8);
	TEST_STREQ(buf, "aZ09-._~");
	ppurl_encode(buf, sizeof(buf), "a b+c&d=e?f/g%h");
	TEST_STREQ(buf, "a+b%2Bc%26d%3De%3Ff%2Fg%25h");
	/* UTF-8 bytes each become %XX, upper-case hex. */
	ppurl_encode(buf, sizeof(buf), "\xc3\xa9\n");
	TEST_STREQ(buf, "%C3%A9%0A");
	/* Exactly fits ("%0A" + NUL = 4) and one byte short. */
	TEST_EQ(ppurl_encode(buf, 4, "\n"), 3);
	TEST_EQ(ppurl_encode(buf, 3, "\n"), (size_t)-1);
	TEST_EQ(ppurl_encode(buf, 2, " "), 1);
	TEST_STREQ(buf, "+");
	TEST_EQ(ppurl_encode(buf, 2, "ab"), (size_t)-1);
	return 0;
}

static int
test_target(void)
{
	struct ppurl u;
	char         t[PPURL_URL_MAX + 1];
	TEST_EQ(ppurl_parse(&u, "ws://h:8998", err, sizeof(err)), 0);
	TEST_EQ(ppurl_target(&u, "NATF2.pt", "You are kind. Answer + help!", 0,
	            t, sizeof(t), err, sizeof(err)),
	    0);
	TEST_STREQ(t,
	    "/api/chat?voice_prompt=NATF2.pt&text_prompt=You+are+kind.+"
	    "Answer+%2B+help%21");
	TEST_ASSERT(strstr(t, "seed") == NULL);
	/* A path with a query keeps it and appends. */
	TEST_EQ(ppurl_parse(&u, "wss://h/x?tok=1", err, sizeof(err)), 0);
	TEST_EQ(
	    ppurl_target(&u, "V.pt", "t", 0, t, sizeof(t), err, sizeof(err)),
	    0);
	TEST_STREQ(t, "/x?tok=1&voice_prompt=V.pt&text_prompt=t");
	TEST_EQ(ppurl_parse(&u, "ws://h:1?tok=1", err, sizeof(err)), 0);
	TEST_STREQ(u.path, "/api/chat?tok=1");
	return 0;
}

static int
test_target_refuses_empty(void)
{
	struct ppurl u;
	char         t[256];
	TEST_EQ(ppurl_parse(&u, "ws://h:8998", err, sizeof(err)), 0);
	TEST_EQ(ppurl_target(
	            &u, "NATF2.pt", "", 0, t, sizeof(t), err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_TEXT_PROMPT") != NULL);
	TEST_EQ(ppurl_target(&u, "NATF2.pt", " \t\n", 0, t, sizeof(t), err,
	            sizeof(err)),
	    EINVAL);
	TEST_EQ(ppurl_target(
	            &u, "NATF2.pt", NULL, 0, t, sizeof(t), err, sizeof(err)),
	    EINVAL);
	TEST_EQ(ppurl_target(&u, "", "hi", 0, t, sizeof(t), err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_VOICE_PROMPT") != NULL);
	return 0;
}

static int
test_target_lengths(void)
{
	struct ppurl u;
	static char  t[3 * PPURL_URL_MAX], text[PPURL_URL_MAX];
	const char  *pre   = "/api/chat?voice_prompt=V&text_prompt=";
	size_t       fixed = strlen(pre);

	TEST_EQ(ppurl_parse(&u, "ws://h", err, sizeof(err)), 0);
	/* lws limit: a target of exactly 2032 bytes passes, 2033 fails. */
	memset(text, 'a', PPURL_TARGET_MAX_LWS - fixed);
	text[PPURL_TARGET_MAX_LWS - fixed] = '\0';
	TEST_EQ(
	    ppurl_target(&u, "V", text, 0, t, sizeof(t), err, sizeof(err)), 0);
	TEST_EQ(strlen(t), PPURL_TARGET_MAX_LWS);
	strcat(text, "a");
	TEST_EQ(ppurl_target(&u, "V", text, 0, t, sizeof(t), err, sizeof(err)),
	    E2BIG);
	TEST_ASSERT(strstr(err, "libwebsockets") != NULL);

	/* Server limit: the whole URL "ws://h" + target at most 8 KB, with
	 * a client that allows more. Each newline costs 3 bytes. */
	size_t room = PPURL_URL_MAX - strlen("ws://h") - fixed;
	memset(text, 'b', room);
	text[room] = '\0';
	TEST_EQ(ppurl_target(
	            &u, "V", text, 100000, t, sizeof(t), err, sizeof(err)),
	    0);
	TEST_EQ(strlen("ws://h") + strlen(t), PPURL_URL_MAX);
	text[0] = '\n';
	TEST_EQ(ppurl_target(
	            &u, "V", text, 100000, t, sizeof(t), err, sizeof(err)),
	    E2BIG);
	TEST_ASSERT(strstr(err, "8192") != NULL);
	/* A buffer too small is E2BIG too, never an overflow. */
	TEST_EQ(
	    ppurl_target(&u, "V", "hello", 0, t, 20, err, sizeof(err)), E2BIG);
	return 0;
}

TEST_MAIN(TEST(test_plain_no_path), TEST(test_tls_with_path),
    TEST(test_default_ports), TEST(test_ipv6), TEST(test_bad_urls),
    TEST(test_encode), TEST(test_target), TEST(test_target_refuses_empty),
    TEST(test_target_lengths))
