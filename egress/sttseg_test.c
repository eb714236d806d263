/*
 * sttseg_test.c - partial dedupe and exactly one final per commit, in
 * both timestamp modes and every arrival order of the twins.
 */
#include "sttseg.h"

#include "test.h"

#define MS 1000ull

static int
test_partials(void)
{
	struct sttseg     g;
	struct sttseg_out o;
	const char       *why;

	sttseg_init(&g, false, 0);
	TEST_ASSERT(sttseg_partial(&g, "Hello", &why));
	/* The server re-sends the same partial about every second. */
	TEST_ASSERT(!sttseg_partial(&g, "Hello", &why));
	TEST_STREQ(why, "repeat");
	TEST_ASSERT(!sttseg_partial(&g, "  ", &why));
	TEST_STREQ(why, "empty");
	TEST_ASSERT(!sttseg_partial(&g, "Hello", &why)); /* still a repeat */
	TEST_ASSERT(sttseg_partial(&g, "Hello how", &why));
	TEST_ASSERT(sttseg_partial(&g, "Hello", &why)); /* changed back */
	sttseg_commit(&g, false, "Hello how are you", -1, -1, 0, &o);
	TEST_ASSERT(o.boundary && o.final);
	/* The echo of the committed text after a commit is dropped. */
	TEST_ASSERT(!sttseg_partial(&g, "Hello how are you", &why));
	TEST_STREQ(why, "echo");
	/* After a commit, a partial equal to the previous one is new. */
	TEST_ASSERT(sttseg_partial(&g, "Hello", &why));
	TEST_ASSERT(why == NULL);
	return 0;
}

static int
test_plain_mode(void)
{
	struct sttseg     g;
	struct sttseg_out o;

	sttseg_init(&g, false, 0);
	sttseg_commit(&g, false, "one", -1, -1, 0, &o);
	TEST_ASSERT(o.boundary && o.final && !o.ignored);
	TEST_STREQ(o.text, "one");
	/* A timed twin sent anyway (research §3.4): ignored. */
	sttseg_commit(&g, true, "one", 0.1, 0.4, 10 * MS, &o);
	TEST_ASSERT(!o.boundary && !o.final && o.ignored);
	/* An empty commit: a boundary, no final. */
	sttseg_commit(&g, false, "", -1, -1, 20 * MS, &o);
	TEST_ASSERT(o.boundary && !o.final && o.empty);
	/* Identical text in two commits: two finals (said twice). */
	sttseg_commit(&g, false, "yes", -1, -1, 30 * MS, &o);
	TEST_ASSERT(o.final);
	sttseg_commit(&g, false, "yes", -1, -1, 40 * MS, &o);
	TEST_ASSERT(o.final && o.boundary);
	TEST_ASSERT(!sttseg_poll(&g, 10000 * MS, &o));
	return 0;
}

static int
test_timed_plain_first(void)
{
	struct sttseg     g;
	struct sttseg_out o;

	sttseg_init(&g, true, 300);
	sttseg_commit(&g, false, "hello", -1, -1, 0, &o);
	TEST_ASSERT(o.boundary && !o.final);
	TEST_ASSERT(!sttseg_poll(&g, 100 * MS, &o));
	sttseg_commit(&g, true, "hello", 0.2, 0.6, 150 * MS, &o);
	TEST_ASSERT(!o.boundary && o.final);
	TEST_STREQ(o.text, "hello");
	TEST_NEAR(o.t0, 0.2, 1e-9);
	/* Nothing left to emit. */
	TEST_ASSERT(!sttseg_poll(&g, 1000 * MS, &o));
	return 0;
}

static int
test_timed_timed_first(void)
{
	struct sttseg     g;
	struct sttseg_out o;

	sttseg_init(&g, true, 300);
	sttseg_commit(&g, true, "hi there", 0.1, 0.9, 0, &o);
	TEST_ASSERT(o.boundary && o.final);
	sttseg_commit(&g, false, "hi there", -1, -1, 20 * MS, &o);
	TEST_ASSERT(!o.boundary && !o.final && o.ignored);
	/* The next commit pair is a new commit. */
	sttseg_commit(&g, true, "again", 1.1, 1.5, 2500 * MS, &o);
	TEST_ASSERT(o.boundary && o.final);
	TEST_STREQ(o.text, "again");
	return 0;
}

static int
test_timed_fallback(void)
{
	struct sttseg     g;
	struct sttseg_out o;

	sttseg_init(&g, true, 300);
	sttseg_commit(&g, false, "only plain", -1, -1, 0, &o);
	TEST_ASSERT(o.boundary && !o.final);
	TEST_ASSERT(!sttseg_poll(&g, 299 * MS, &o));
	TEST_ASSERT(sttseg_poll(&g, 300 * MS, &o));
	TEST_STREQ(o.text, "only plain");
	/* Its timed twin, late: swallowed. */
	sttseg_commit(&g, true, "only plain", 0, 1, 400 * MS, &o);
	TEST_ASSERT(o.ignored && !o.final && !o.boundary);
	/* A plain after a held plain: the held one is emitted, the new
	 * one is held. */
	sttseg_commit(&g, false, "first", -1, -1, 1000 * MS, &o);
	TEST_ASSERT(o.boundary && !o.final);
	sttseg_commit(&g, false, "second", -1, -1, 1100 * MS, &o);
	TEST_ASSERT(o.boundary && o.final);
	TEST_STREQ(o.text, "first");
	TEST_ASSERT(sttseg_flush(&g, &o));
	TEST_STREQ(o.text, "second");
	TEST_ASSERT(!sttseg_flush(&g, &o));
	/* Only timed ones, back to back: each is a commit. */
	sttseg_commit(&g, true, "t1", 0, 1, 5000 * MS, &o);
	TEST_ASSERT(o.boundary && o.final);
	sttseg_commit(&g, true, "t2", 1, 2, 5100 * MS, &o);
	TEST_ASSERT(o.boundary && o.final);
	TEST_STREQ(o.text, "t2");
	return 0;
}

static int
test_long_text_cut(void)
{
	struct sttseg g;
	char          big[STTSEG_TEXT_MAX + 100];
	const char   *why;

	sttseg_init(&g, false, 0);
	for (size_t i = 0; i + 2 < sizeof(big); i += 2)
		big[i] = (char)0xc3, big[i + 1] = (char)0xa9;
	big[sizeof(big) - 1] = '\0';
	TEST_ASSERT(sttseg_partial(&g, big, &why));
	TEST_ASSERT(strlen(g.last_partial) < STTSEG_TEXT_MAX);
	TEST_EQ(strlen(g.last_partial) % 2, 0);
	return 0;
}

TEST_MAIN(TEST(test_partials), TEST(test_plain_mode),
    TEST(test_timed_plain_first), TEST(test_timed_timed_first),
    TEST(test_timed_fallback), TEST(test_long_text_cut))
