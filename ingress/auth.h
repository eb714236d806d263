/*
 * auth.h - who may place calls: Basic credentials and bearer tokens.
 *
 * Built once from EXOPLEX_AUTH_BASIC ("user:pass[,user:pass...]") and
 * EXOPLEX_AUTH_TOKENS ("tok[,tok...]"). Only SHA-256 digests of the
 * secrets are kept. A check hashes the candidate and compares it with
 * every entry, without stopping at a match, using CRYPTO_memcmp: neither
 * which entry matched nor how long a secret is shows in the timing.
 *
 * Where credentials come from (research/exotel.md §4): Exotel turns
 * wss://user:pass@host/... into "Authorization: Basic", a token may be in
 * the URL (?token=) or an "Authorization: Bearer" header, and because the
 * Voicebot applet may strip the query, also in start.custom_parameters.
 * So the upgrade can only refuse credentials that are present and wrong;
 * absent ones are decided at start.
 *
 * Immutable after auth_alloc (safe to share); auth_free frees it.
 */
#ifndef EXO_INGRESS_AUTH_H
#define EXO_INGRESS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_MAX_ENTRIES 64
#define AUTH_MAX_SECRET 512 /* longer candidates never match */

enum auth_result {
	AUTH_NONE = 0, /* no credentials presented */
	AUTH_OK, /* a presented credential is valid */
	AUTH_BAD, /* credentials presented, none valid */
};

enum auth_via {
	AUTH_VIA_NONE = 0, /* auth is off */
	AUTH_VIA_BASIC, /* Authorization: Basic */
	AUTH_VIA_BEARER, /* Authorization: Bearer */
	AUTH_VIA_QUERY, /* ?token= */
	AUTH_VIA_CUSTOM, /* start.custom_parameters.token */
	AUTH_VIA_N
};

struct auth;

/* basic and tokens may be NULL or "" (that kind is off). Entries are
 * comma-separated and trimmed of spaces; a Basic entry needs a ':'.
 * Returns 0, EINVAL with err naming the bad entry by position (never its
 * text), or ENOMEM. */
int  auth_alloc(struct auth **out, const char *basic, const char *tokens,
     char *err, size_t errlen);
void auth_free(struct auth *a);

/* Whether any credential is configured; with none, every call is let in. */
bool   auth_enabled(const struct auth *a);
size_t auth_basic_count(const struct auth *a);
size_t auth_token_count(const struct auth *a);

/* Checks a token (from ?token=, Bearer or custom_parameters). */
bool auth_token_ok(const struct auth *a, const char *token);
/* Checks "user:pass" as decoded from a Basic header. */
bool auth_basic_ok(const struct auth *a, const char *userpass);

/* The upgrade's verdict from an Authorization header value and a ?token=
 * value (either may be NULL when absent): AUTH_OK if any presented one is
 * valid (*via says which), AUTH_BAD if something was presented and
 * nothing is valid (an unknown scheme or malformed header counts as
 * presented), AUTH_NONE if nothing was. With auth off: AUTH_OK, via
 * NONE. */
enum auth_result auth_upgrade(const struct auth *a, const char *header,
    const char *query_token, enum auth_via *via);

/* Stable names for metrics labels and logs. */
const char *auth_via_name(enum auth_via v);

#endif
