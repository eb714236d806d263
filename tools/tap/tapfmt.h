/*
 * tapfmt.h - bus Envelopes as JSON lines, one per frame, for exoplex-tap.
 *
 * A tap copy of an Envelope comes from one process's tap on one link
 * (bus.h: ipc://<dir>/tap-<at>-<link>.sock); the frame went out when the
 * Envelope's sender is that process, else it came in. Each line names the
 * call, kind, sequence, sizes, the frame's age when it was sent (sent_us -
 * ts_us) and the fields that matter for its kind (session, reason, digit,
 * ...). Nothing here allocates or keeps state.
 */
#ifndef EXO_TAPFMT_H
#define EXO_TAPFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "exoplex.pb-c.h"

/* Where a tap copy came from. */
struct tap_where {
	const char *at; /* the tapped process, e.g. "ingress" */
	const char *link; /* "transcoder", "egress", "control" */
};

/* Which frames to show. */
struct tap_filter {
	const char *call; /* only this call_id; NULL = every call */
	const char *kinds; /* comma-separated kinds; NULL = every kind */
};

/* Writes one JSON line to out for each frame of env that passes flt.
 * Returns the number of lines written. */
size_t tapfmt_envelope(FILE *out, const Exo__Envelope *env,
    const struct tap_where *w, const struct tap_filter *flt);

/* Writes a line for a tapped message that is not a bus Envelope. */
void tapfmt_bad(
    FILE *out, const struct tap_where *w, size_t len, uint64_t now_us);

/* Splits a tap socket name ".../tap-<at>-<link>.sock" into at and link.
 * Returns 0, or EINVAL when url is not named that way. */
int tapfmt_name(
    const char *url, char *at, size_t atlen, char *link, size_t linklen);

/* Whether kind is in the comma-separated list (NULL list: every kind). */
int tapfmt_kind_in(const char *list, const char *kind);

#endif
