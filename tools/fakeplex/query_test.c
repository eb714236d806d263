/*
 * query_test.c - the /api/chat query verdicts, in the real server's order.
 */
#include "query.h"
#include "test.h"

static enum query_verdict
judge(struct query *q, const char *const *pieces)
{
	query_clear(q);
	for (; *pieces; pieces++)
		if (query_add(q, *pieces, strlen(*pieces)))
			return QUERY_VERDICT_N;
	return query_check(q);
}

static int
test_voices(void)
{
	static const char *good[] = { "NATF0.pt", "NATF3.pt", "NATM2.pt",
		"VARF4.pt", "VARM0.pt", "VARM4.pt" };
	static const char *bad[]  = { "NATF4.pt", "NATM4.pt", "VARF5.pt",
		 "NATF2", "NATF2.wav", "natf2.pt", "", "../NATF2.pt",
		 "NATF2.pt ", "XATF2.pt", "NATF2.ptx" };
	int                n      = 0;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		TEST_ASSERT(query_voice_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		TEST_ASSERT(!query_voice_valid(bad[i]));
	/* Exactly 18 names. */
	const char *sets[] = { "NATF", "NATM", "VARF", "VARM" };
	for (int s = 0; s < 4; s++)
		for (char d = '0'; d <= '9'; d++) {
			char name[16];
			snprintf(name, sizeof(name), "%s%c.pt", sets[s], d);
			n += query_voice_valid(name);
		}
	TEST_EQ(n, 18);
	return 0;
}

static int
test_verdicts(void)
{
	struct query q = { 0 };

	TEST_EQ(judge(&q,
	            (const char *[]) { "voice_prompt=NATF2.pt",
	                "text_prompt=You are kind.", NULL }),
	    QUERY_OK);
	TEST_STREQ(q.voice, "NATF2.pt");
	TEST_STREQ(q.text, "You are kind.");
	TEST_EQ(judge(&q, (const char *[]) { "text_prompt=x", NULL }),
	    QUERY_NO_VOICE);
	TEST_ASSERT(!query_sets_voice(&q));
	TEST_EQ(judge(&q,
	            (const char *[]) {
	                "voice_prompt=NATF9.pt", "text_prompt=x", NULL }),
	    QUERY_BAD_VOICE);
	TEST_EQ(
	    judge(&q,
	        (const char *[]) { "voice_prompt", "text_prompt=x", NULL }),
	    QUERY_BAD_VOICE);
	TEST_EQ(judge(&q, (const char *[]) { "voice_prompt=NATF2.pt", NULL }),
	    QUERY_NO_TEXT);
	/* The voice was already stored in the shared state, the text not. */
	TEST_ASSERT(query_sets_voice(&q));
	TEST_ASSERT(!query_sets_text(&q));
	TEST_EQ(judge(&q,
	            (const char *[]) { "seed=-1", "voice_prompt=NATF2.pt",
	                "text_prompt=x", NULL }),
	    QUERY_SEED);
	TEST_ASSERT(query_sets_text(&q));
	TEST_EQ(judge(&q,
	            (const char *[]) { "voice_prompt=NATF2.pt",
	                "text_prompt=x", "seed", NULL }),
	    QUERY_SEED);
	TEST_EQ(judge(&q,
	            (const char *[]) {
	                "voice_prompt=NATF2.pt", "text_prompt=", NULL }),
	    QUERY_EMPTY_TEXT);
	TEST_EQ(judge(&q,
	            (const char *[]) {
	                "voice_prompt=NATF2.pt", "text_prompt", NULL }),
	    QUERY_EMPTY_TEXT);
	/* Missing voice is reported before a seed. */
	TEST_EQ(
	    judge(&q, (const char *[]) { "seed=1", NULL }), QUERY_NO_VOICE);
	query_clear(&q);
	return 0;
}

static int
test_first_wins_and_extras(void)
{
	struct query q = { 0 };

	TEST_EQ(judge(&q,
	            (const char *[]) { "text_temperature=0.7",
	                "voice_prompt=VARM1.pt", "voice_prompt=X",
	                "text_prompt=a=b&c", "text_prompt=second",
	                "worker_auth_id=1", NULL }),
	    QUERY_OK);
	TEST_STREQ(q.voice, "VARM1.pt");
	TEST_STREQ(q.text, "a=b&c");
	query_clear(&q);
	return 0;
}

TEST_MAIN(
    TEST(test_voices), TEST(test_verdicts), TEST(test_first_wins_and_extras))
