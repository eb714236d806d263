/*
 * exitdog_test.c - a stuck stop is ended with the armed status and a
 * warning; a stop that finishes first exits as it would have.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitdog.h"
#include "test.h"

/* Runs child() in a fork with stderr into a file; returns its wait
 * status, and the first bytes of what it logged in out. Kills it if it
 * is still there after 10 s (then the status says so). */
static int
run(void (*child)(void), char *out, size_t cap)
{
	char  path[] = "/tmp/exitdog-test-XXXXXX";
	int   fd = mkstemp(path), st = -1;
	pid_t pid;

	if (fd < 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fd, 2);
		child();
		_exit(99);
	}
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		usleep(10000);
		if (i == 999) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
	}
	ssize_t n          = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return st;
}

static struct log lg;

static void
stuck(void)
{
	log_init(&lg, "exitdog", "text", "info");
	if (exitdog_arm(&lg, 50, "closing the buses", 0) != 0)
		_exit(98);
	for (;;)
		pause(); /* as a hung nng_close */
}

static void
finishes(void)
{
	log_init(&lg, "exitdog", "text", "info");
	if (exitdog_arm(&lg, 5000, "closing the buses", 0) != 0)
		_exit(98);
	exit(3); /* the stop's own end comes first */
}

static int
test_stuck_stop_ends(void)
{
	char buf[512];
	int  st = run(stuck, buf, sizeof(buf));

	TEST_ASSERT(WIFEXITED(st));
	TEST_EQ(WEXITSTATUS(st), 0);
	TEST_ASSERT(
	    strstr(buf, "closing the buses did not finish within 50 ms")
	    != NULL);
	return 0;
}

static int
test_finished_stop_untouched(void)
{
	char buf[512];
	int  st = run(finishes, buf, sizeof(buf));

	TEST_ASSERT(WIFEXITED(st));
	TEST_EQ(WEXITSTATUS(st), 3);
	TEST_ASSERT(strstr(buf, "did not finish") == NULL);
	return 0;
}

TEST_MAIN(TEST(test_stuck_stop_ends), TEST(test_finished_stop_untouched))
