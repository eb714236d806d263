/*
 * fuzz_auth.c - credentials presented at ingress's WebSocket upgrade
 * (ingress/auth.c): the Authorization header (Basic, decoded from base64,
 * or Bearer) and the ?token= value, both from anyone who can reach the
 * port. The input is the header, a newline, then the query token.
 * Oracles: only the configured credentials are accepted, and they are,
 * whatever the spacing and case of the scheme.
 */
#include <string.h>

#include "auth.h"
#include "base64.h"
#include "fuzz.h"

static struct auth *a;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	FUZZ_CHECK(auth_alloc(&a, "alice:s3cret, bob:pa:ss", "tok1,tok2", err,
	               sizeof(err))
	    == 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char            *text = malloc(size + 1), *query = NULL;
	enum auth_via    via;
	enum auth_result r;

	FUZZ_CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	if ((query = strchr(text, '\n')))
		*query++ = '\0';
	r = auth_upgrade(a, text, query, &via);
	FUZZ_CHECK(r == AUTH_OK || r == AUTH_BAD || r == AUTH_NONE);
	FUZZ_CHECK((r == AUTH_OK) == (via != AUTH_VIA_NONE));
	FUZZ_CHECK(auth_via_name(via) != NULL);
	if (via == AUTH_VIA_QUERY)
		FUZZ_CHECK(!strcmp(query, "tok1") || !strcmp(query, "tok2"));
	if (!text[0] && !query)
		FUZZ_CHECK(r == AUTH_NONE);
	/* The text itself as a token and as user:pass. */
	FUZZ_CHECK(auth_token_ok(a, text)
	    == (!strcmp(text, "tok1") || !strcmp(text, "tok2")));
	FUZZ_CHECK(auth_basic_ok(a, text)
	    == (!strcmp(text, "alice:s3cret") || !strcmp(text, "bob:pa:ss")));
	if (auth_basic_ok(a, text)) {
		/* The same, as a header. */
		char hdr[64] = "basic  ";
		b64_encode(hdr + 7, (const uint8_t *)text, strlen(text));
		FUZZ_CHECK(auth_upgrade(a, hdr, NULL, &via) == AUTH_OK);
	}
	free(text);
	return 0;
}
