/*
 * persona.h - who the agent is on a call: a voice prompt and a text
 * prompt for PersonaPlex, chosen per call.
 *
 * Personas come from a hand-edited INI file (EXOPLEX_PERSONAS), parsed by
 * inih. Each [section] is a persona named after it:
 *
 *   [sales]
 *   voice   = NATM1.pt
 *   text    = You sell solar panels for Acme. The caller, {from}, rang
 *       {to}. Their reference is {order_id}.
 *   numbers = +91 80 4000 1234, 08040001235
 *
 * voice (or voice_prompt) is a PersonaPlex voice file; text (or
 * text_prompt) is the persona prompt, continued on indented lines (joined
 * with a space); numbers (or number) lists the dialled numbers this
 * persona answers, compared by their digits (the last 10 when both have
 * at least 10, so +91 80 4000 1234 matches 08040001234); mode is
 * "agent" or "transcribe" (mode.h: a transcribe-only persona needs no
 * text, and takes the default's should a call ask for an agent). A line
 * starting with ';' or '#' is a comment; ';' elsewhere is text. A [default]
 * section is the default persona; without one the default is
 * EXOPLEX_VOICE_PROMPT / EXOPLEX_TEXT_PROMPT, and a persona without a
 * voice takes the default's.
 *
 * A call gets the persona its custom parameter names (custom_parameters.
 * persona), else the one answering the dialled number (`to`), else the
 * default. The text prompt may use {from}, {to} and {any_custom_key}
 * (never {token}: secrets stay out of prompts); "{{" is a literal "{".
 *
 * Everything is loaded once at start and read-only after.
 */
#ifndef EXO_PERSONA_H
#define EXO_PERSONA_H

#include <stdbool.h>
#include <stddef.h>

struct ppurl;

#define PERSONA_LINE_MAX 16384 /* longest line in the file */
#define PERSONA_FILE_MAX (1024 * 1024)
#define PERSONA_VALUE_MAX 256 /* a substituted value, at most */

struct persona {
	const char *name;
	const char *voice;
	const char *text; /* the template, placeholders and all */
	const char *source; /* "file:line" or the settings, for messages */
	const char *mode; /* "agent", "transcribe", or NULL: not set */
	bool        templated; /* text has placeholders */
};

/* What a call's text prompt may refer to. Custom parameters are n pairs
 * keys[i] = values[i]. Any pointer may be NULL (empty). */
struct persona_vars {
	const char        *from, *to;
	const char *const *keys;
	const char *const *values;
	size_t             n;
};

enum persona_why { PERSONA_BY_NAME, PERSONA_BY_NUMBER, PERSONA_BY_DEFAULT };

struct personas;

/* Sets inih's process-wide options (long lines, ';' only as a comment at
 * the start of a line). Call once from main before personas_load. */
void persona_lib_init(void);

/* Loads path (NULL: no file) with voice/text as the default persona's
 * settings. Returns 0; EINVAL with err filled with one sentence naming the
 * file, line and persona for anything wrong (a syntax error, an unknown
 * key, a key set twice, a persona without text, a number answered by two
 * personas, an unreadable file); or ENOMEM. Free with personas_free. */
int  personas_load(struct personas **out, const char *path, const char *voice,
     const char *text, char *err, size_t errlen);
void personas_free(struct personas *ps);

/* Checks that each persona's request target fits every server (ppurl_
 * target with its placeholders empty). Returns 0, or EINVAL/E2BIG with
 * err naming the persona and where it was defined. */
int personas_check(const struct personas *ps, const struct ppurl *servers,
    size_t n, char *err, size_t errlen);

size_t                personas_count(const struct personas *ps);
const struct persona *personas_at(const struct personas *ps, size_t i);
const struct persona *personas_default(const struct personas *ps);
/* By name, ignoring case; NULL if none. */
const struct persona *personas_find(
    const struct personas *ps, const char *name);
/* The persona answering a dialled number; NULL if none. */
const struct persona *personas_for_number(
    const struct personas *ps, const char *number);

/* The persona for a call: asked (the custom parameter; NULL or "" for
 * none) if it names one, else the one for `to`, else the default. Sets
 * *why, and *unknown when asked named no persona. Never NULL. */
const struct persona *persona_choose(const struct personas *ps,
    const char *asked, const char *to, enum persona_why *why, bool *unknown);

/* Writes p's text prompt with v's values (v NULL: every placeholder
 * empty) into buf. Values are cut at PERSONA_VALUE_MAX bytes and control
 * characters become spaces. Returns 0, or E2BIG when it does not fit
 * (buf then holds a cut, NUL-terminated prefix). */
int persona_render(const struct persona *p, const struct persona_vars *v,
    char *buf, size_t len);

/* Whether two phone numbers are the same for persona selection. */
bool persona_number_match(const char *a, const char *b);

#endif
