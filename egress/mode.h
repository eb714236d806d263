/*
 * mode.h - a call's mode: "agent" (PersonaPlex answers the caller) or
 * "transcribe" (agent assist: nothing goes back to Exotel, no PersonaPlex
 * server is leased, the call is only transcribed). See
 * docs/agent-assist.md.
 *
 * The first of these that says something decides:
 *   1. call_start.mode: custom_parameters.mode as ingress read it at
 *      `start` (or, in a re-announce, the mode decided before);
 *   2. the chosen persona's `mode` key (personas file);
 *   3. EXOPLEX_DEFAULT_MODE;
 *   4. "transcribe" when no PersonaPlex server is configured at all,
 *      else "agent".
 * Pure functions; no state.
 */
#ifndef EXO_MODE_H
#define EXO_MODE_H

#include <stddef.h>

enum mode { MODE_NONE, MODE_AGENT, MODE_TRANSCRIBE };

/* Which rule decided, in the order above. */
enum mode_by {
	MODE_BY_CALL, /* call_start.mode */
	MODE_BY_PERSONA,
	MODE_BY_DEFAULT, /* EXOPLEX_DEFAULT_MODE */
	MODE_BY_SERVERS, /* none set: by whether servers exist */
	MODE_BY_N
};

/* "agent" or "transcribe", any case, around spaces; MODE_NONE for
 * anything else (NULL, "", "assist"). */
enum mode mode_parse(const char *s);

/* "agent", "transcribe"; "" for MODE_NONE. Static strings. */
const char *mode_name(enum mode m);

/* "custom_parameter", "persona", "default" (EXOPLEX_DEFAULT_MODE, or the
 * built-in agent), "no_servers": for call_mode.by, logs and metrics. */
const char *mode_by_name(enum mode_by by, size_t servers);

struct mode_in {
	const char *asked; /* call_start.mode; NULL or "" = not said */
	const char *persona; /* the chosen persona's mode; NULL = not set */
	enum mode   dflt; /* EXOPLEX_DEFAULT_MODE; MODE_NONE = unset */
	size_t      servers; /* PersonaPlex servers configured */
};

/* The call's mode (never MODE_NONE); *by (may be NULL) gets the rule
 * that decided. A value that is not a mode counts as not said. */
enum mode mode_choose(const struct mode_in *in, enum mode_by *by);

#endif
