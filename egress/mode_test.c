/*
 * mode_test.c - a call's mode: custom parameter, then persona, then
 * EXOPLEX_DEFAULT_MODE, then whether any PersonaPlex server exists.
 */
#include "mode.h"

#include "test.h"

static int
test_parse(void)
{
	TEST_EQ(mode_parse("agent"), MODE_AGENT);
	TEST_EQ(mode_parse("transcribe"), MODE_TRANSCRIBE);
	TEST_EQ(mode_parse("Transcribe"), MODE_TRANSCRIBE);
	TEST_EQ(mode_parse(" AGENT "), MODE_AGENT);
	TEST_EQ(mode_parse(NULL), MODE_NONE);
	TEST_EQ(mode_parse(""), MODE_NONE);
	TEST_EQ(mode_parse("assist"), MODE_NONE);
	TEST_EQ(mode_parse("transcribed"), MODE_NONE);
	TEST_EQ(mode_parse("agen"), MODE_NONE);
	TEST_STREQ(mode_name(MODE_AGENT), "agent");
	TEST_STREQ(mode_name(MODE_TRANSCRIBE), "transcribe");
	TEST_STREQ(mode_name(MODE_NONE), "");
	return 0;
}

static int
test_custom_parameter_first(void)
{
	struct mode_in in = { .asked = "transcribe",
		.persona             = "agent",
		.dflt                = MODE_AGENT,
		.servers             = 4 };
	enum mode_by   by = MODE_BY_N;

	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_CALL);
	TEST_STREQ(mode_by_name(by, 4), "custom_parameter");
	/* An agent asked for with no server at all: still an agent (it
	 * will be refused with no_capacity, as asked). */
	in = (struct mode_in) { .asked = "agent", .servers = 0 };
	TEST_EQ(mode_choose(&in, &by), MODE_AGENT);
	TEST_EQ(by, MODE_BY_CALL);
	/* Nonsense is as good as nothing. */
	in = (struct mode_in) {
		.asked = "both", .persona = "transcribe", .servers = 1
	};
	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_PERSONA);
	return 0;
}

static int
test_persona(void)
{
	struct mode_in in
	    = { .persona = "transcribe", .dflt = MODE_AGENT, .servers = 2 };
	enum mode_by by;

	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_PERSONA);
	TEST_STREQ(mode_by_name(by, 2), "persona");
	/* A persona may insist on an agent where the default is not. */
	in = (struct mode_in) {
		.persona = "agent", .dflt = MODE_TRANSCRIBE, .servers = 2
	};
	TEST_EQ(mode_choose(&in, &by), MODE_AGENT);
	TEST_EQ(by, MODE_BY_PERSONA);
	/* A persona without a mode says nothing. */
	in = (struct mode_in) {
		.persona = NULL, .dflt = MODE_TRANSCRIBE, .servers = 2
	};
	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_DEFAULT);
	return 0;
}

static int
test_default(void)
{
	struct mode_in in = { .dflt = MODE_TRANSCRIBE, .servers = 3 };
	enum mode_by   by;

	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_DEFAULT);
	TEST_STREQ(mode_by_name(by, 3), "default");
	/* Set to agent with no server: the setting is obeyed. */
	in = (struct mode_in) { .dflt = MODE_AGENT, .servers = 0 };
	TEST_EQ(mode_choose(&in, &by), MODE_AGENT);
	TEST_EQ(by, MODE_BY_DEFAULT);
	return 0;
}

static int
test_no_servers(void)
{
	struct mode_in in = { .servers = 0 };
	enum mode_by   by;

	TEST_EQ(mode_choose(&in, &by), MODE_TRANSCRIBE);
	TEST_EQ(by, MODE_BY_SERVERS);
	TEST_STREQ(mode_by_name(by, 0), "no_servers");
	in.servers = 1;
	TEST_EQ(mode_choose(&in, &by), MODE_AGENT);
	TEST_EQ(by, MODE_BY_SERVERS);
	TEST_STREQ(mode_by_name(by, 1), "default");
	/* NULL by is fine. */
	TEST_EQ(mode_choose(&in, NULL), MODE_AGENT);
	return 0;
}

TEST_MAIN(TEST(test_parse), TEST(test_custom_parameter_first),
    TEST(test_persona), TEST(test_default), TEST(test_no_servers))
