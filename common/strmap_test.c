#include <stdio.h>

#include "strmap.h"
#include "test.h"

static int
test_put_get_del(void)
{
	struct strmap *m;
	char           key[32];
	TEST_EQ(strmap_alloc(&m), 0);
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		TEST_EQ(strmap_put(m, key, (void *) (i + 1)), 0);
	}
	TEST_EQ(strmap_count(m), 5000);
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		TEST_EQ((long) strmap_get(m, key), i + 1);
	}
	TEST_ASSERT(strmap_get(m, "nope") == NULL);
	for (long i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		TEST_EQ((long) strmap_del(m, key), i + 1);
	}
	TEST_EQ(strmap_count(m), 2500);
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		TEST_EQ((long) strmap_get(m, key), i % 2 ? i + 1 : 0);
	}
	strmap_free(m);
	return 0;
}

static int
test_churn_reuses_tombstones(void)
{
	struct strmap *m;
	char           key[32];
	TEST_EQ(strmap_alloc(&m), 0);
	/* Calls come and go for ever: the table must not fill with tombs. */
	for (long i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "call-%ld", i);
		TEST_EQ(strmap_put(m, key, (void *) 1), 0);
		if (i >= 10) {
			snprintf(key, sizeof(key), "call-%ld", i - 10);
			TEST_ASSERT(strmap_del(m, key) != NULL);
		}
	}
	TEST_EQ(strmap_count(m), 10);
	strmap_free(m);
	return 0;
}

static int
test_replace(void)
{
	struct strmap *m;
	TEST_EQ(strmap_alloc(&m), 0);
	TEST_EQ(strmap_put(m, "a", (void *) 1), 0);
	TEST_EQ(strmap_put(m, "a", (void *) 2), 0);
	TEST_EQ(strmap_count(m), 1);
	TEST_EQ((long) strmap_get(m, "a"), 2);
	strmap_free(m);
	return 0;
}

static bool
is_odd(const char *key, void *val, void *arg)
{
	(void)key;
	(*(int *)arg)++;
	return (long)val % 2 == 1;
}

/* del_if removes exactly what fn picks, and what stays is found still:
 * removals in the middle of probe chains leave them whole. */
static int
test_del_if(void)
{
	struct strmap *m;
	char           key[32];
	int            calls = 0;

	TEST_EQ(strmap_alloc(&m), 0);
	for (long i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		TEST_EQ(strmap_put(m, key, (void *)i), 0);
	}
	TEST_EQ(strmap_del_if(m, is_odd, &calls), 1500);
	TEST_EQ(calls, 3000);
	TEST_EQ(strmap_count(m), 1500);
	for (long i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "sid-%ld", i);
		if (i % 2)
			TEST_ASSERT(strmap_get(m, key) == NULL);
		else
			TEST_EQ((long)strmap_get(m, key), i);
	}
	strmap_free(m);
	return 0;
}

TEST_MAIN(TEST(test_put_get_del), TEST(test_churn_reuses_tombstones),
    TEST(test_replace), TEST(test_del_if))
