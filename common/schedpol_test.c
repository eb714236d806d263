/*
 * schedpol_test.c - the policy is set on the calling thread, threads started
 * after it inherit it, and a bad name changes nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "schedpol.h"
#include "test.h"

static void *
policy_of_new_thread(void *arg)
{
	(void)arg;
	return (void *)schedpol_name();
}

static const char *
new_thread_policy(void)
{
	pthread_t t;
	void     *name = NULL;

	if (pthread_create(&t, NULL, policy_of_new_thread, NULL) != 0)
		return "no thread";
	pthread_join(t, &name);
	return name;
}

static int
test_batch_then_normal(void)
{
	TEST_EQ(schedpol_set("batch"), 0);
	TEST_STREQ(schedpol_name(), "batch");
	TEST_STREQ(new_thread_policy(), "batch");
	TEST_EQ(schedpol_set("normal"), 0);
	TEST_STREQ(schedpol_name(), "normal");
	TEST_STREQ(new_thread_policy(), "normal");
	return 0;
}

static int
test_bad_name_changes_nothing(void)
{
	TEST_EQ(schedpol_set("batch"), 0);
	TEST_EQ(schedpol_set("fifo"), EINVAL);
	TEST_EQ(schedpol_set(""), EINVAL);
	TEST_EQ(schedpol_set(NULL), EINVAL);
	TEST_STREQ(schedpol_name(), "batch");
	TEST_EQ(schedpol_set("normal"), 0);
	return 0;
}

TEST_MAIN(TEST(test_batch_then_normal), TEST(test_bad_name_changes_nothing))
