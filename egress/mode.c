/*
 * mode.c - choosing a call's mode (see mode.h).
 */
#include "mode.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum mode
mode_parse(const char *s)
{
	size_t n;

	if (!s)
		return MODE_NONE;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 5 && !strncasecmp(s, "agent", 5))
		return MODE_AGENT;
	if (n == 10 && !strncasecmp(s, "transcribe", 10))
		return MODE_TRANSCRIBE;
	return MODE_NONE;
}

const char *
mode_name(enum mode m)
{
	return m == MODE_AGENT     ? "agent"
	    : m == MODE_TRANSCRIBE ? "transcribe"
	                           : "";
}

const char *
mode_by_name(enum mode_by by, size_t servers)
{
	switch (by) {
	case MODE_BY_CALL:
		return "custom_parameter";
	case MODE_BY_PERSONA:
		return "persona";
	case MODE_BY_DEFAULT:
		return "default";
	default:
		/* Built in: agent, or transcribe without any server. */
		return servers ? "default" : "no_servers";
	}
}

enum mode
mode_choose(const struct mode_in *in, enum mode_by *by)
{
	enum mode    m;
	enum mode_by b;

	if ((m = mode_parse(in->asked)) != MODE_NONE)
		b = MODE_BY_CALL;
	else if ((m = mode_parse(in->persona)) != MODE_NONE)
		b = MODE_BY_PERSONA;
	else if ((m = in->dflt) == MODE_AGENT || m == MODE_TRANSCRIBE)
		b = MODE_BY_DEFAULT;
	else {
		/* Nothing to answer with: the only thing a call can get. */
		m = in->servers ? MODE_AGENT : MODE_TRANSCRIBE;
		b = MODE_BY_SERVERS;
	}
	if (by)
		*by = b;
	return m;
}
