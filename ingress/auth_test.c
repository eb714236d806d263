/*
 * auth_test.c - configured credentials, the upgrade's verdict for every
 * way a credential can arrive, and the settings' validation.
 */
#include "auth.h"

#include <errno.h>
#include <stdint.h>

#include "base64.h"
#include "test.h"

static const char *
basic_hdr(char *buf, const char *userpass)
{
	memcpy(buf, "Basic ", 6);
	b64_encode(buf + 6, (const uint8_t *)userpass, strlen(userpass));
	return buf;
}

static int
test_parse(void)
{
	struct auth *a;
	char         err[200];

	TEST_EQ(auth_alloc(&a, NULL, NULL, err, sizeof(err)), 0);
	TEST_ASSERT(!auth_enabled(a));
	auth_free(a);
	TEST_EQ(auth_alloc(&a, "", "", err, sizeof(err)), 0);
	TEST_ASSERT(!auth_enabled(a));
	auth_free(a);

	TEST_EQ(
	    auth_alloc(&a, "u1:p1, u2:p:2", " t1 ,t2", err, sizeof(err)), 0);
	TEST_ASSERT(auth_enabled(a));
	TEST_EQ(auth_basic_count(a), 2);
	TEST_EQ(auth_token_count(a), 2);
	TEST_ASSERT(auth_basic_ok(a, "u1:p1"));
	TEST_ASSERT(auth_basic_ok(a, "u2:p:2")); /* the first ':' splits */
	TEST_ASSERT(!auth_basic_ok(a, "u1:p2"));
	TEST_ASSERT(!auth_basic_ok(a, "u1"));
	TEST_ASSERT(auth_token_ok(a, "t1"));
	TEST_ASSERT(auth_token_ok(a, "t2"));
	TEST_ASSERT(!auth_token_ok(a, "t3"));
	TEST_ASSERT(!auth_token_ok(a, "t"));
	TEST_ASSERT(!auth_token_ok(a, "t1 "));
	TEST_ASSERT(!auth_token_ok(a, ""));
	TEST_ASSERT(!auth_token_ok(a, "u1:p1")); /* kinds do not mix */
	TEST_ASSERT(!auth_basic_ok(a, "t1"));
	auth_free(a);

	/* Bad settings name the entry by position, never by its text. */
	TEST_EQ(auth_alloc(&a, "nocolon", NULL, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_AUTH_BASIC") != NULL);
	TEST_ASSERT(strstr(err, "entry 1") != NULL);
	TEST_ASSERT(strstr(err, "nocolon") == NULL);
	TEST_ASSERT(a == NULL);
	TEST_EQ(auth_alloc(&a, "u:p,,v:q", NULL, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "entry 2") != NULL);
	TEST_EQ(
	    auth_alloc(&a, NULL, "ok,has space", err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "EXOPLEX_AUTH_TOKENS") != NULL);
	TEST_ASSERT(strstr(err, "has space") == NULL);
	TEST_EQ(auth_alloc(&a, NULL, "a,", err, sizeof(err)), EINVAL);
	return 0;
}

static int
test_upgrade(void)
{
	struct auth  *a;
	enum auth_via via;
	char          err[200], h[200];

	TEST_EQ(
	    auth_alloc(&a, "exo:s3cret", "tok-1,tok-2", err, sizeof(err)), 0);

	/* Nothing presented: decided at start. */
	TEST_EQ(auth_upgrade(a, NULL, NULL, &via), AUTH_NONE);
	TEST_EQ(auth_upgrade(a, "", NULL, &via), AUTH_NONE);

	/* Basic right, wrong, and with its padding missing. */
	TEST_EQ(
	    auth_upgrade(a, basic_hdr(h, "exo:s3cret"), NULL, &via), AUTH_OK);
	TEST_EQ(via, AUTH_VIA_BASIC);
	TEST_EQ(
	    auth_upgrade(a, basic_hdr(h, "exo:wrong"), NULL, &via), AUTH_BAD);
	TEST_EQ(
	    auth_upgrade(a, basic_hdr(h, "exo:s3cre"), NULL, &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, "basic   ZXhvOnMzY3JldA ", NULL, &via),
	    AUTH_OK); /* "exo:s3cret" without its "==" */
	TEST_EQ(auth_upgrade(a, "Basic !!!notbase64", NULL, &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, "Basic ", NULL, &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, "Digest x=1", NULL, &via), AUTH_BAD);
	/* A token is not a Basic credential. */
	TEST_EQ(auth_upgrade(a, basic_hdr(h, "tok-1"), NULL, &via), AUTH_BAD);

	/* Bearer. */
	TEST_EQ(auth_upgrade(a, "Bearer tok-2", NULL, &via), AUTH_OK);
	TEST_EQ(via, AUTH_VIA_BEARER);
	TEST_EQ(auth_upgrade(a, "bearer  tok-1  ", NULL, &via), AUTH_OK);
	TEST_EQ(auth_upgrade(a, "Bearer tok-3", NULL, &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, "Bearer", NULL, &via), AUTH_BAD);

	/* ?token=. */
	TEST_EQ(auth_upgrade(a, NULL, "tok-1", &via), AUTH_OK);
	TEST_EQ(via, AUTH_VIA_QUERY);
	TEST_EQ(auth_upgrade(a, NULL, "tok-9", &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, NULL, "", &via), AUTH_BAD);

	/* Any valid credential lets the call in. */
	TEST_EQ(auth_upgrade(a, "Bearer nope", "tok-2", &via), AUTH_OK);
	TEST_EQ(via, AUTH_VIA_QUERY);
	TEST_EQ(auth_upgrade(a, basic_hdr(h, "exo:s3cret"), "nope", &via),
	    AUTH_OK);
	TEST_EQ(via, AUTH_VIA_BASIC);
	auth_free(a);

	/* Only tokens configured: Basic can never be right. */
	TEST_EQ(auth_alloc(&a, NULL, "tok-1", err, sizeof(err)), 0);
	TEST_EQ(
	    auth_upgrade(a, basic_hdr(h, "exo:s3cret"), NULL, &via), AUTH_BAD);
	TEST_EQ(auth_upgrade(a, "Bearer tok-1", NULL, &via), AUTH_OK);
	auth_free(a);

	/* Auth off: everything is let in, whatever is presented. */
	TEST_EQ(auth_alloc(&a, NULL, NULL, err, sizeof(err)), 0);
	TEST_EQ(auth_upgrade(a, "Bearer whatever", "x", &via), AUTH_OK);
	TEST_EQ(via, AUTH_VIA_NONE);
	auth_free(a);
	TEST_EQ(auth_upgrade(NULL, NULL, NULL, &via), AUTH_OK);
	return 0;
}

static int
test_long(void)
{
	struct auth  *a;
	char          err[200], big[AUTH_MAX_SECRET + 10];
	char          h[2 * AUTH_MAX_SECRET];
	enum auth_via via;

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	TEST_EQ(auth_alloc(&a, NULL, big, err, sizeof(err)), EINVAL);
	big[AUTH_MAX_SECRET] = '\0';
	TEST_EQ(auth_alloc(&a, NULL, big, err, sizeof(err)), 0);
	TEST_ASSERT(auth_token_ok(a, big));
	/* Overlong candidates never match and never overflow. */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	TEST_ASSERT(!auth_token_ok(a, big));
	snprintf(h, sizeof(h), "Bearer %s", big);
	TEST_EQ(auth_upgrade(a, h, NULL, &via), AUTH_BAD);
	memset(h, 'A', sizeof(h));
	memcpy(h, "Basic ", 6);
	h[sizeof(h) - 1] = '\0';
	TEST_EQ(auth_upgrade(a, h, NULL, &via), AUTH_BAD);
	auth_free(a);
	TEST_STREQ(auth_via_name(AUTH_VIA_CUSTOM), "custom_parameters");
	return 0;
}

TEST_MAIN(TEST(test_parse), TEST(test_upgrade), TEST(test_long))
