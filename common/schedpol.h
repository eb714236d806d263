/*
 * schedpol.h - the Linux scheduling policy the processes run under.
 *
 * Why: exoplex's threads wake thousands of times a second (a socket, an
 * NNG message, a shard's batch) and each does a little work. Under
 * Linux's normal policy every wake-up may preempt the thread running,
 * so the busy threads of the three processes keep switching each other
 * out. SCHED_BATCH keeps the fair share but drops preemption on wake-up:
 * a woken thread runs when a CPU is free, when the running thread sleeps
 * or yields (the transcoder's shards yield within a long batch), or at
 * the next tick. On the 2-core VM it halved the trio's thread switches
 * and took up to a sixth off its CPU per call (docs/performance.md).
 * Unprivileged processes may choose it, so containers need nothing extra.
 * It is exoplex's default; normal stays a choice.
 */
#ifndef EXO_SCHEDPOL_H
#define EXO_SCHEDPOL_H

/* The choices of --sched-policy, for its table entry. */
#define SCHEDPOL_CHOICES "batch|normal"

/* Sets the calling thread's policy to name ("batch": SCHED_BATCH,
 * "normal": SCHED_OTHER). Threads it starts afterwards inherit it, so a
 * process calls this before it starts any (NNG's, libmicrohttpd's, its
 * own). Returns 0, EINVAL for another name, or the error of
 * sched_setscheduler(2) (then the policy is unchanged). */
int schedpol_set(const char *name);

/* schedpol_set, with a warning through lg when it fails (the process
 * then runs on under the policy it has). Returns what schedpol_set did. */
struct log;
int schedpol_apply(const char *name, const struct log *lg);

/* The calling thread's policy as a name ("batch", "normal", or "other"
 * for one exoplex never sets), for logs and tests. */
const char *schedpol_name(void);

#endif
