/*
 * schedpol.c - the Linux scheduling policy (schedpol.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SCHED_BATCH */
#endif
#include "schedpol.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "log.h"

int
schedpol_set(const char *name)
{
	struct sched_param sp = { .sched_priority = 0 };
	int                policy;

	if (name == NULL)
		return EINVAL;
	if (strcmp(name, "batch") == 0)
		policy = SCHED_BATCH;
	else if (strcmp(name, "normal") == 0)
		policy = SCHED_OTHER;
	else
		return EINVAL;
	/* pid 0 is the calling thread on Linux, not the whole process. */
	if (sched_setscheduler(0, policy, &sp) != 0)
		return errno;
	return 0;
}

int
schedpol_apply(const char *name, const struct log *lg)
{
	int rv = schedpol_set(name);

	if (rv != 0)
		LOGW(lg, NULL,
		    "scheduling policy %s not set: %s; running as %s",
		    name ? name : "(none)", strerror(rv), schedpol_name());
	return rv;
}

const char *
schedpol_name(void)
{
	switch (sched_getscheduler(0)) {
	case SCHED_BATCH:
		return "batch";
	case SCHED_OTHER:
		return "normal";
	default:
		return "other";
	}
}
