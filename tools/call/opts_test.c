/*
 * opts_test.c - the command line: defaults, URLs, repeatable flags, errors.
 */
#include "opts.h"
#include "test.h"

#include <errno.h>

/* Arguments are copied into the caller's store, which must outlive o:
 * o points into it and --custom edits it. */
struct argstore {
	char s[32][256];
};

/* Parses a NULL-terminated list of arguments. */
static int
parse(struct argstore *st, struct call_opts *o, char *err, const char **args)
{
	char(*store)[256] = st->s;
	char *argv[33];
	int   argc   = 0;
	argv[argc++] = (char *)"exoplex-call";
	for (; *args; args++, argc++) {
		snprintf(store[argc], sizeof(store[argc]), "%s", *args);
		argv[argc] = store[argc];
	}
	argv[argc] = NULL;
	return opts_parse(o, argc, argv, err, 256);
}

#define PARSE(o, err, ...)                                                    \
	parse(&st, o, err, (const char *[]) { __VA_ARGS__, NULL })

static int
test_defaults(void)
{
	struct argstore  st;
	struct call_opts o;
	char             err[256];
	TEST_EQ(parse(&st, &o, err, (const char *[]) { NULL }), 0);
	TEST_STREQ(o.host, "127.0.0.1");
	TEST_EQ(o.port, 8080);
	TEST_STREQ(o.path, "/exotel?sample-rate=8000");
	TEST_ASSERT(!o.tls);
	TEST_EQ(o.rate, 8000);
	TEST_EQ(o.chunk_ms, 20);
	TEST_NEAR(o.seconds, 10, 0);
	TEST_EQ(o.source, SRC_TONE);
	TEST_STREQ(o.stop_reason, "callended");
	TEST_EQ(o.linger_ms, 1000);
	TEST_EQ(o.calls, 1);
	TEST_EQ(o.ncustom, 0);
	TEST_ASSERT(!o.custom_empty);
	TEST_NEAR(o.expect_tolerance, 0.02, 0);
	TEST_NEAR(o.analyze_seconds, 60, 0);
	return 0;
}

static int
test_urls(void)
{
	struct argstore  st;
	struct call_opts o;
	char             err[256];
	TEST_EQ(
	    PARSE(&o, err, "--url", "wss://u%40x:p%3Aw@example.com/ws"), 0);
	TEST_ASSERT(o.tls);
	TEST_EQ(o.port, 443);
	TEST_STREQ(o.host, "example.com");
	TEST_STREQ(o.userinfo, "u@x:p:w");
	TEST_STREQ(o.url_shown, "wss://u%40x:***@example.com/ws");
	TEST_STREQ(o.path, "/ws");
	TEST_EQ(
	    PARSE(&o, err, "--url", "ws://[::1]:9000?sample_rate=16000"), 0);
	TEST_STREQ(o.host, "::1");
	TEST_EQ(o.port, 9000);
	TEST_STREQ(o.path, "/?sample_rate=16000");
	TEST_STREQ(o.url_shown, "ws://[::1]:9000?sample_rate=16000");
	TEST_EQ(o.rate, 16000); /* from the URL */
	TEST_EQ(PARSE(&o, err, "--url", "ws://h/x?a=1&sample-rate=24000",
	            "--rate", "8000"),
	    0);
	TEST_EQ(o.rate, 8000); /* --rate wins: a mismatch is a test case */
	TEST_EQ(PARSE(&o, err, "--url", "ws://h"), 0);
	TEST_STREQ(o.path, "/");
	TEST_EQ(o.port, 80);
	static const char *bad[] = { "http://h/", "ws://", "ws://h:0/",
		"ws://h:99999/", "ws://h:x/", "ws://user@h/", "ws://[::1/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (PARSE(&o, err, "--url", bad[i]) != EINVAL)
			TEST_FAIL_("'%s' accepted", bad[i]);
		TEST_ASSERT(strstr(err, "--url"));
	}
	return 0;
}

static int
test_custom_dtmf(void)
{
	struct argstore  st;
	struct call_opts o;
	char             err[256];
	TEST_EQ(PARSE(&o, err, "--custom", "persona=alice", "--custom",
	            "token", "--custom", "x=a=b", "--dtmf", "5@2000,#@4000:80",
	            "--dtmf", "*@10"),
	    0);
	TEST_EQ(o.ncustom, 3);
	TEST_STREQ(o.custom[0].key, "persona");
	TEST_STREQ(o.custom[0].value, "alice");
	TEST_STREQ(o.custom[1].key, "token");
	TEST_STREQ(o.custom[1].value, "");
	TEST_STREQ(o.custom[2].key, "x");
	TEST_STREQ(o.custom[2].value, "a=b");
	TEST_EQ(o.ndtmf, 3);
	TEST_EQ(o.dtmf[0].digit, '5');
	TEST_EQ(o.dtmf[0].at_ms, 2000);
	TEST_EQ(o.dtmf[0].duration_ms, 200);
	TEST_EQ(o.dtmf[1].digit, '#');
	TEST_EQ(o.dtmf[1].duration_ms, 80);
	TEST_EQ(o.dtmf[2].digit, '*');
	TEST_EQ(PARSE(&o, err, "--custom-empty"), 0);
	TEST_ASSERT(o.custom_empty);
	TEST_EQ(PARSE(&o, err, "--custom-empty", "--custom", "a=b"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--dtmf", "x@1"), EINVAL);
	TEST_ASSERT(strstr(err, "--dtmf"));
	TEST_EQ(PARSE(&o, err, "--dtmf", "5@"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--dtmf", "5@1;"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--custom", "=v"), EINVAL);
	return 0;
}

static int
test_errors(void)
{
	struct argstore  st;
	struct call_opts o;
	char             err[256];
	struct {
		const char *a, *b, *flag;
	} bad[] = {
		{ "--rate", "44100", "--rate" },
		{ "--chunk-ms", "30", "--chunk-ms" },
		{ "--chunk-ms", "0", "--chunk-ms" },
		{ "--seconds", "-1", "--seconds" },
		{ "--seconds", "abc", "--seconds" },
		{ "--tone", "5000", "--tone" }, /* above Nyquist at 8 kHz */
		{ "--signal", "music", "--signal" },
		{ "--stop-reason", "hangup", "--stop-reason" },
		{ "--calls", "0", "--calls" },
		{ "--clear-marks", "keep", "--clear-marks" },
		{ "--expect-tolerance", "2", "--expect-tolerance" },
		{ "--expect-closed-by", "nobody", "--expect-closed-by" },
		{ "--level", "3", "--level" },
		{ "--bogus", "1", "--bogus" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (PARSE(&o, err, bad[i].a, bad[i].b) != EINVAL)
			TEST_FAIL_("%s %s accepted", bad[i].a, bad[i].b);
		if (!strstr(err, bad[i].flag))
			TEST_FAIL_(
			    "error '%s' does not name %s", err, bad[i].flag);
	}
	TEST_EQ(PARSE(&o, err, "--tone", "440", "--silence"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--rate"), EINVAL);
	TEST_EQ(PARSE(&o, err, "stray"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--calls", "2", "--stream-sid", "x"), EINVAL);
	TEST_EQ(PARSE(&o, err, "--tone", "5000", "--rate", "16000"), 0);
	TEST_EQ(PARSE(&o, err, "--stop-reason", "none"), 0);
	TEST_ASSERT(o.stop_reason == NULL);
	TEST_EQ(PARSE(&o, err, "--signal", "speech", "--chunk-ms", "100",
	            "--seconds", "2.5", "--calls", "3", "--ramp-ms", "100"),
	    0);
	TEST_EQ(o.source, SRC_SPEECH);
	TEST_EQ(o.chunk_ms, 100);
	TEST_NEAR(o.seconds, 2.5, 0);
	TEST_EQ(o.calls, 3);
	return 0;
}

TEST_MAIN(TEST(test_defaults), TEST(test_urls), TEST(test_custom_dtmf),
    TEST(test_errors))
