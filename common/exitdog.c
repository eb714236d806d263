/*
 * exitdog.c - a bound on the last steps of a stop (exitdog.h).
 */
#include "exitdog.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

struct dog {
	const struct log *lg;
	unsigned          ms;
	const char       *what;
	int               status;
};

/* One per process: armed once, at the end. Static, so nothing is left
 * for a leak checker if the process exits before the thread runs. */
static struct dog the_dog;

static void *
dog_main(void *arg)
{
	struct dog      d = *(struct dog *)arg;
	struct timespec t = { .tv_sec = d.ms / 1000,
		.tv_nsec              = (long)(d.ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) == EINTR)
		;
	LOGW(d.lg, NULL,
	    "stopping: %s did not finish within %u ms; exiting without it",
	    d.what, d.ms);
	_exit(d.status);
	return NULL;
}

int
exitdog_arm(const struct log *lg, unsigned ms, const char *what, int status)
{
	pthread_attr_t a;
	pthread_t      th;
	int            rc;

	the_dog = (struct dog) { lg, ms, what, status };
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &a, dog_main, &the_dog);
	pthread_attr_destroy(&a);
	return rc;
}
