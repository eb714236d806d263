/*
 * exitdog.h - a bound on the last steps of a stop.
 *
 * NNG 1.5.2 (Debian 12's) can hang in nng_close (nanomsg/nng#1543 and
 * #1813 report such hangs): under load, a stopping ingress whose calls
 * had ended sat in nng_close with every NNG thread idle. The processes
 * arm this before closing their buses, so a stuck library costs a stop
 * at most ms, logged, instead of the supervisor's kill.
 */
#ifndef EXO_EXITDOG_H
#define EXO_EXITDOG_H

#include "log.h"

/* Starts a thread that, if the process is still running ms from now,
 * logs a warning through lg naming what (the step under way) and calls
 * _exit(status). Once per process; lg and what must stay valid until
 * exit. Returns 0 or an errno (then there is no bound). */
int exitdog_arm(
    const struct log *lg, unsigned ms, const char *what, int status);

#endif
