#include <errno.h>
#include <stdlib.h>

#include "config.h"
#include "test.h"

struct conf {
	const char *listen, *name, *mode;
	long        n;
	bool        flag;
};

static size_t
table(struct cfg_opt *o, struct conf *c)
{
	struct cfg_opt t[] = {
		{ .flag = "listen", .env = "T_LISTEN", .def = "0.0.0.0:8080",
		    .type = CFG_ADDR, .dst = &c->listen },
		{ .flag = "name", .env = "T_NAME", .type = CFG_STR,
		    .dst = &c->name },
		{ .flag = "count", .env = "T_COUNT", .def = "5",
		    .type = CFG_INT, .dst = &c->n, .min = 1, .max = 10 },
		{ .flag = "on", .env = "T_ON", .def = "0", .type = CFG_BOOL,
		    .dst = &c->flag },
		{ .flag = "mode", .env = "T_MODE", .def = "a",
		    .type = CFG_ENUM, .choices = "a|bb|c", .dst = &c->mode },
	};
	memcpy(o, t, sizeof(t));
	return sizeof(t) / sizeof(t[0]);
}

static int
parse(struct conf *c, int argc, char **argv, char *err)
{
	struct cfg_opt o[8];
	size_t         n = table(o, c);
	return cfg_parse(o, n, argc, argv, "t", err, 256);
}

static void
clear_env(void)
{
	unsetenv("T_LISTEN");
	unsetenv("T_NAME");
	unsetenv("T_COUNT");
	unsetenv("T_ON");
	unsetenv("T_MODE");
}

static int
test_defaults(void)
{
	struct conf c;
	char        err[256];
	char       *argv[] = { "t", NULL };
	clear_env();
	TEST_EQ(parse(&c, 1, argv, err), 0);
	TEST_STREQ(c.listen, "0.0.0.0:8080");
	TEST_ASSERT(c.name == NULL);
	TEST_EQ(c.n, 5);
	TEST_EQ(c.flag, 0);
	TEST_STREQ(c.mode, "a");
	return 0;
}

static int
test_flag_beats_env(void)
{
	struct conf c;
	char        err[256];
	char       *argv[] = { "t", "--count", "7", "--name=x", "--on", NULL };
	clear_env();
	setenv("T_COUNT", "3", 1);
	setenv("T_NAME", "envname", 1);
	setenv("T_LISTEN", "127.0.0.1:9", 1);
	TEST_EQ(parse(&c, 5, argv, err), 0);
	TEST_EQ(c.n, 7);
	TEST_STREQ(c.name, "x");
	TEST_STREQ(c.listen, "127.0.0.1:9");
	TEST_EQ(c.flag, 1);
	clear_env();
	return 0;
}

static int
test_errors_name_the_setting(void)
{
	struct conf c;
	char        err[256];
	char       *a1[] = { "t", "--count", "11", NULL };
	char       *a2[] = { "t", "--listen", "nope", NULL };
	char       *a3[] = { "t", "--bogus", NULL };
	char       *a4[] = { "t", "--mode", "d", NULL };
	char       *a5[] = { "t", NULL };
	clear_env();
	TEST_EQ(parse(&c, 3, a1, err), EINVAL);
	TEST_ASSERT(strstr(err, "T_COUNT (--count)") != NULL);
	TEST_EQ(parse(&c, 3, a2, err), EINVAL);
	TEST_ASSERT(strstr(err, "T_LISTEN") && strstr(err, "'nope'"));
	TEST_EQ(parse(&c, 2, a3, err), EINVAL);
	TEST_ASSERT(strstr(err, "--bogus") != NULL);
	TEST_EQ(parse(&c, 3, a4, err), EINVAL);
	TEST_ASSERT(strstr(err, "T_MODE") != NULL);
	setenv("T_ON", "maybe", 1);
	TEST_EQ(parse(&c, 1, a5, err), EINVAL);
	TEST_ASSERT(strstr(err, "T_ON") && strstr(err, "maybe"));
	clear_env();
	return 0;
}

static int
test_split_addr(void)
{
	char host[64];
	int  port;
	TEST_EQ(cfg_split_addr("0.0.0.0:8080", host, sizeof(host), &port), 0);
	TEST_STREQ(host, "0.0.0.0");
	TEST_EQ(port, 8080);
	TEST_EQ(cfg_split_addr(":9100", host, sizeof(host), &port), 0);
	TEST_STREQ(host, "");
	TEST_EQ(cfg_split_addr("[::1]:80", host, sizeof(host), &port), 0);
	TEST_STREQ(host, "::1");
	TEST_EQ(cfg_split_addr("::1:80", host, sizeof(host), &port), EINVAL);
	TEST_EQ(cfg_split_addr("h:0", host, sizeof(host), &port), EINVAL);
	TEST_EQ(cfg_split_addr("h:70000", host, sizeof(host), &port), EINVAL);
	TEST_EQ(cfg_split_addr("h", host, sizeof(host), &port), EINVAL);
	return 0;
}

static int
test_common_and_bus_url(void)
{
	struct cfg_common c;
	struct cfg_opt    o[CFG_COMMON_N];
	char              err[256], buf[256];
	char             *argv[] = { "t", "--bus-dir", "/tmp/x", "--bus-egress",
                    "tcp://127.0.0.1:7000", NULL };
	TEST_EQ(cfg_common_opts(o, &c, "127.0.0.1:9100"), CFG_COMMON_N);
	TEST_EQ(cfg_parse(o, CFG_COMMON_N, 5, argv, "t", err, sizeof(err)), 0);
	TEST_STREQ(cfg_bus_url(&c, c.bus_transcoder, "transcoder", buf,
		       sizeof(buf)),
	    "ipc:///tmp/x/transcoder.sock");
	TEST_STREQ(cfg_bus_url(&c, c.bus_egress, "egress", buf, sizeof(buf)),
	    "tcp://127.0.0.1:7000");
	TEST_STREQ(c.admin, "127.0.0.1:9100");
	char *bad[] = { "t", "--bus-control", "http://x", NULL };
	TEST_EQ(cfg_parse(o, CFG_COMMON_N, 3, bad, "t", err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_BUS_CONTROL") != NULL);
	return 0;
}

TEST_MAIN(TEST(test_defaults), TEST(test_flag_beats_env),
    TEST(test_errors_name_the_setting), TEST(test_split_addr),
    TEST(test_common_and_bus_url))
