#include <pthread.h>
#include <stdlib.h>

#include "metrics.h"
#include "test.h"

static int
test_render_groups_families(void)
{
	struct metrics *m;
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	struct metric *a = metrics_counter(m, "frames_total", "Frames.",
	    "kind=\"media\"");
	struct metric *g = metrics_gauge(m, "calls_active", "Calls.", NULL);
	struct metric *b = metrics_counter(m, "frames_total", "Frames.",
	    "kind=\"start\"");
	TEST_ASSERT(metrics_counter(m, "frames_total", "Frames.",
			"kind=\"media\"") == a);
	metric_add(a, 5);
	metric_inc(b);
	metric_set(g, 3);
	metric_set(g, 2);
	size_t len;
	char  *txt = metrics_render(m, &len);
	TEST_ASSERT(txt != NULL);
	TEST_EQ(strlen(txt), len);
	const char *want =
	    "# HELP exoplex_frames_total Frames.\n"
	    "# TYPE exoplex_frames_total counter\n"
	    "exoplex_frames_total{kind=\"media\"} 5\n"
	    "exoplex_frames_total{kind=\"start\"} 1\n"
	    "# HELP exoplex_calls_active Calls.\n"
	    "# TYPE exoplex_calls_active gauge\n"
	    "exoplex_calls_active 2\n";
	TEST_STREQ(txt, want);
	free(txt);
	metrics_free(m);
	return 0;
}

static void *
bump(void *arg)
{
	for (int i = 0; i < 100000; i++)
		metric_inc(arg);
	return NULL;
}

static int
test_atomic_from_threads(void)
{
	struct metrics *m;
	pthread_t       t[4];
	TEST_EQ(metrics_alloc(&m, ""), 0);
	struct metric *c = metrics_counter(m, "c", "c", NULL);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, bump, c);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	TEST_EQ(metric_get(c), 400000);
	metrics_free(m);
	return 0;
}

static int
test_overflow_returns_sink(void)
{
	struct metrics *m;
	char            l[32];
	TEST_EQ(metrics_alloc(&m, ""), 0);
	struct metric *last = NULL;
	for (int i = 0; i < 2000; i++) {
		snprintf(l, sizeof(l), "i=\"%d\"", i);
		last = metrics_counter(m, "x", "x", l);
		TEST_ASSERT(last != NULL);
		metric_inc(last);
	}
	char *txt = metrics_render(m, NULL);
	TEST_ASSERT(txt && strstr(txt, "x{i=\"1023\"} 1") &&
	    !strstr(txt, "i=\"1024\""));
	free(txt);
	metrics_free(m);
	return 0;
}

static int
test_histogram(void)
{
	struct metrics *m;
	const int64_t   b[] = { 100, 1000, 5000 };
	const int64_t   bad[] = { 100, 100 };
	TEST_EQ(metrics_alloc(&m, "exoplex_"), 0);
	struct metric *h = metrics_histogram(m, "age_microseconds", "Age.",
	    "link=\"t\"", b, 3);
	struct metric *n = metrics_histogram(m, "plain", "P.", NULL, b, 1);
	/* Bad bounds give the sink, which still counts. */
	struct metric *s = metrics_histogram(m, "bad", "B.", NULL, bad, 2);
	TEST_ASSERT(s != h && s != n);
	metric_observe(s, 5);
	TEST_ASSERT(metrics_histogram(m, "age_microseconds", "Age.",
			"link=\"t\"", b, 3) == h);
	metric_observe(h, 50);
	metric_observe(h, 100); /* le is inclusive */
	metric_observe(h, 101);
	metric_observe(h, 4000);
	metric_observe(h, 70000);
	metric_observe(n, 7);
	TEST_EQ(metric_get(h), 5);
	char *txt = metrics_render(m, NULL);
	TEST_ASSERT(txt != NULL);
	const char *want =
	    "# HELP exoplex_age_microseconds Age.\n"
	    "# TYPE exoplex_age_microseconds histogram\n"
	    "exoplex_age_microseconds_bucket{link=\"t\",le=\"100\"} 2\n"
	    "exoplex_age_microseconds_bucket{link=\"t\",le=\"1000\"} 3\n"
	    "exoplex_age_microseconds_bucket{link=\"t\",le=\"5000\"} 4\n"
	    "exoplex_age_microseconds_bucket{link=\"t\",le=\"+Inf\"} 5\n"
	    "exoplex_age_microseconds_sum{link=\"t\"} 74251\n"
	    "exoplex_age_microseconds_count{link=\"t\"} 5\n"
	    "# HELP exoplex_plain P.\n"
	    "# TYPE exoplex_plain histogram\n"
	    "exoplex_plain_bucket{le=\"100\"} 1\n"
	    "exoplex_plain_bucket{le=\"+Inf\"} 1\n"
	    "exoplex_plain_sum 7\n"
	    "exoplex_plain_count 1\n";
	TEST_STREQ(txt, want);
	free(txt);
	metrics_free(m);
	return 0;
}

TEST_MAIN(TEST(test_render_groups_families), TEST(test_atomic_from_threads),
    TEST(test_overflow_returns_sink), TEST(test_histogram))
