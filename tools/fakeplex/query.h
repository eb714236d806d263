/*
 * query.h - the /api/chat query, judged as the real server's handle_chat
 * judges it (research/personaplex.md §1.3, server.py:148-171).
 *
 * Parameters come in as decoded "name=value" pieces: libwebsockets splits
 * the query at '&' and undoes %XX and '+' (standard query decoding, as
 * aiohttp does). Like aiohttp's request.query, the first occurrence of a
 * name wins and a name without '=' is present with an empty value.
 */
#ifndef EXO_FAKEPLEX_QUERY_H
#define EXO_FAKEPLEX_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* Why the real server would fail the session, in the order it checks. */
enum query_verdict {
	QUERY_OK = 0,
	QUERY_NO_VOICE, /* voice_prompt missing: KeyError after upgrade */
	QUERY_BAD_VOICE, /* not one of the 18 shipped .pt files */
	QUERY_NO_TEXT, /* text_prompt missing: KeyError after upgrade */
	QUERY_SEED, /* seed present: server.py:171 bug, KeyError */
	QUERY_EMPTY_TEXT, /* text_prompt "": dies later, in the prompt phase */
	QUERY_VERDICT_N
};

struct query {
	char *voice; /* NULL when absent; malloc'd */
	char *text; /* NULL when absent; malloc'd */
	bool  seed;
};

/* Stable snake_case name for logs and metrics ("bad_voice_prompt"). */
const char *query_verdict_name(enum query_verdict v);

/* Adds one decoded "name=value" piece. Returns 0 or ENOMEM. */
int  query_add(struct query *q, const char *piece, size_t len);
void query_clear(struct query *q);

/* The first check the real server would fail, or QUERY_OK. What it would
 * already have stored in its shared prompt state before failing is told
 * by query_sets_voice/query_sets_text. */
enum query_verdict query_check(const struct query *q);
bool               query_sets_voice(const struct query *q);
bool               query_sets_text(const struct query *q);

/* One of NATF0-3, NATM0-3, VARF0-4, VARM0-4 followed by ".pt". */
bool query_voice_valid(const char *name);

#endif
