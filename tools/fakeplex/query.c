/*
 * query.c - the /api/chat query checks (see query.h).
 */
#include "query.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const verdict_names[QUERY_VERDICT_N] = {
	[QUERY_OK]         = "ok",
	[QUERY_NO_VOICE]   = "missing_voice_prompt",
	[QUERY_BAD_VOICE]  = "bad_voice_prompt",
	[QUERY_NO_TEXT]    = "missing_text_prompt",
	[QUERY_SEED]       = "seed_sent",
	[QUERY_EMPTY_TEXT] = "empty_text_prompt",
};

const char *
query_verdict_name(enum query_verdict v)
{
	return (unsigned)v < QUERY_VERDICT_N ? verdict_names[v] : "unknown";
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

int
query_add(struct query *q, const char *piece, size_t len)
{
	const char *eq   = memchr(piece, '=', len);
	size_t      nlen = eq ? (size_t)(eq - piece) : len;
	const char *val  = eq ? eq + 1 : piece + len;
	size_t      vlen = len - (size_t)(val - piece);
	char      **dst  = NULL;

	if (nlen == 12 && !memcmp(piece, "voice_prompt", 12))
		dst = &q->voice;
	else if (nlen == 11 && !memcmp(piece, "text_prompt", 11))
		dst = &q->text;
	else if (nlen == 4 && !memcmp(piece, "seed", 4))
		q->seed = true;
	if (dst == NULL || *dst != NULL)
		return 0; /* other names ignored; the first value wins */
	return (*dst = dup_n(val, vlen)) == NULL ? ENOMEM : 0;
}

void
query_clear(struct query *q)
{
	free(q->voice);
	free(q->text);
	memset(q, 0, sizeof(*q));
}

bool
query_voice_valid(const char *name)
{
	static const struct {
		const char *prefix;
		char        max;
	} sets[] = { { "NATF", '3' }, { "NATM", '3' }, { "VARF", '4' },
		{ "VARM", '4' } };

	if (name == NULL || strlen(name) != 8 || strcmp(name + 5, ".pt"))
		return false;
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
		if (!strncmp(name, sets[i].prefix, 4))
			return name[4] >= '0' && name[4] <= sets[i].max;
	return false;
}

enum query_verdict
query_check(const struct query *q)
{
	if (q->voice == NULL)
		return QUERY_NO_VOICE;
	if (!query_voice_valid(q->voice))
		return QUERY_BAD_VOICE;
	if (q->text == NULL)
		return QUERY_NO_TEXT;
	if (q->seed)
		return QUERY_SEED;
	if (q->text[0] == '\0')
		return QUERY_EMPTY_TEXT;
	return QUERY_OK;
}

bool
query_sets_voice(const struct query *q)
{
	return query_voice_valid(q->voice);
}

bool
query_sets_text(const struct query *q)
{
	return query_sets_voice(q) && q->text != NULL;
}
