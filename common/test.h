/*
 * test.h - the tiny unit-test harness every x_test.c uses.
 *
 * A test is a function returning int (0 = pass). The assertion macros log
 * the failing expression with file:line and return 1. TEST_MAIN runs the
 * table in order, prints one line per test and a closing
 * "N passed, N failed" line, and exits non-zero on any failure.
 */
#ifndef EXO_TEST_H
#define EXO_TEST_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#define TEST_FAIL_(...)                                                     \
	do {                                                                \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);           \
		fprintf(stderr, __VA_ARGS__);                               \
		fputc('\n', stderr);                                        \
		return 1;                                                   \
	} while (0)

#define TEST_ASSERT(c)                                                      \
	do {                                                                \
		if (!(c))                                                   \
			TEST_FAIL_("assertion failed: %s", #c);             \
	} while (0)

#define TEST_EQ(a, b)                                                       \
	do {                                                                \
		long long a_ = (long long) (a), b_ = (long long) (b);       \
		if (a_ != b_)                                               \
			TEST_FAIL_("%s == %lld, expected %s == %lld", #a,   \
			    a_, #b, b_);                                    \
	} while (0)

#define TEST_STREQ(a, b)                                                    \
	do {                                                                \
		const char *a_ = (a), *b_ = (b);                            \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                      \
			TEST_FAIL_("%s == \"%s\", expected \"%s\"", #a,     \
			    a_ ? a_ : "(null)", b_ ? b_ : "(null)");        \
	} while (0)

#define TEST_NEAR(a, b, tol)                                                \
	do {                                                                \
		double a_ = (a), b_ = (b);                                  \
		if (a_ - b_ > (tol) || b_ - a_ > (tol))                     \
			TEST_FAIL_("%s == %g, expected %g ± %g", #a, a_,    \
			    b_, (double) (tol));                            \
	} while (0)

struct test_case {
	const char *name;
	int (*fn)(void);
};

#define TEST_MAIN(...)                                                      \
	int main(int argc, char **argv)                                     \
	{                                                                   \
		static const struct test_case tests_[] = { __VA_ARGS__ };   \
		size_t n_ = sizeof(tests_) / sizeof(tests_[0]);             \
		int    pass_ = 0, fail_ = 0;                                \
		for (size_t i_ = 0; i_ < n_; i_++) {                        \
			if (argc > 1 && strcmp(argv[1], tests_[i_].name))   \
				continue;                                   \
			int r_ = tests_[i_].fn();                           \
			printf("%s %s\n", r_ ? "FAIL" : "ok  ",            \
			    tests_[i_].name);                               \
			fflush(stdout);                                     \
			if (r_)                                             \
				fail_++;                                    \
			else                                                \
				pass_++;                                    \
		}                                                           \
		printf("%d passed, %d failed\n", pass_, fail_);             \
		return fail_ ? 1 : 0;                                       \
	}

#define TEST(fn) { #fn, fn }

#endif
