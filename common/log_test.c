#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "test.h"

/* Captures what one log_write call writes. */
static int
capture(struct log *lg, char *buf, size_t cap, enum log_level lvl,
    const struct log_call *call, const char *msg)
{
	int p[2];
	if (pipe(p))
		return -1;
	lg->fd = p[1];
	log_write(lg, lvl, call, "%s", msg);
	close(p[1]);
	ssize_t n = read(p[0], buf, cap - 1);
	close(p[0]);
	buf[n < 0 ? 0 : n] = '\0';
	return (int) (n < 0 ? 0 : n);
}

static int
test_text_line_carries_ids(void)
{
	struct log      lg;
	char            buf[8192];
	struct log_call c = { "CA1", "ST1" };
	TEST_EQ(log_init(&lg, "ingress", "text", "info"), 0);
	capture(&lg, buf, sizeof(buf), LOG_INFO, &c, "call started");
	TEST_ASSERT(strstr(buf, " info  ingress: call started call_sid=CA1 "
				"stream_sid=ST1\n") != NULL);
	TEST_EQ(capture(&lg, buf, sizeof(buf), LOG_DEBUG, &c, "hidden"), 0);
	return 0;
}

static int
test_json_line_is_json(void)
{
	struct log      lg;
	char            buf[8192];
	struct log_call c = { "CA\"1", "ST1" };
	TEST_EQ(log_init(&lg, "egress", "json", "debug"), 0);
	capture(&lg, buf, sizeof(buf), LOG_WARN, &c, "a \"quoted\"\nline\x01");
	TEST_ASSERT(strstr(buf, "\"level\":\"warn\",\"proc\":\"egress\","
				"\"msg\":\"a \\\"quoted\\\"\\nline\\u0001\","
				"\"call_sid\":\"CA\\\"1\",\"stream_sid\":\"ST1\"}\n"));
	/* A huge message is cut, and the line is still one JSON object. */
	char *big = malloc(10000);
	memset(big, 'x', 9999);
	big[9999] = '\0';
	int n = capture(&lg, buf, sizeof(buf), LOG_ERROR, &c, big);
	free(big);
	TEST_ASSERT(n > 100 && n <= 4096);
	TEST_ASSERT(buf[n - 1] == '\n' && buf[n - 2] == '}' && buf[n - 3] == '"');
	return 0;
}

static int
test_parse(void)
{
	enum log_level l;
	int            j;
	TEST_EQ(log_parse_level("WARNING", &l), 0);
	TEST_EQ(l, LOG_WARN);
	TEST_ASSERT(log_parse_level("loud", &l) != 0);
	TEST_EQ(log_parse_format("json", &j), 0);
	TEST_EQ(j, 1);
	TEST_ASSERT(log_parse_format("xml", &j) != 0);
	return 0;
}

TEST_MAIN(TEST(test_text_line_carries_ids), TEST(test_json_line_is_json),
    TEST(test_parse))
