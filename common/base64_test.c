#include <errno.h>

#include "base64.h"
#include "test.h"

static int
dec(const char *s, uint8_t *out, size_t *n)
{
	return b64_decode(out, n, s, strlen(s));
}

static int
test_rfc4648_vectors(void)
{
	static const char *in[] = { "", "f", "fo", "foo", "foob", "fooba",
		"foobar" };
	static const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
		"Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < 7; i++) {
		char    e[16];
		uint8_t d[16];
		size_t  n;
		TEST_EQ(b64_encode(e, (const uint8_t *) in[i], strlen(in[i])),
		    strlen(out[i]));
		TEST_STREQ(e, out[i]);
		TEST_EQ(dec(out[i], d, &n), 0);
		TEST_EQ(n, strlen(in[i]));
		TEST_ASSERT(memcmp(d, in[i], n) == 0);
	}
	return 0;
}

static int
test_roundtrip_binary(void)
{
	uint8_t src[1000], back[1000 + 3];
	char    enc[1400];
	size_t  n;
	for (size_t len = 0; len < sizeof(src); len += 37) {
		for (size_t i = 0; i < len; i++)
			src[i] = (uint8_t) (i * 131 + len);
		size_t el = b64_encode(enc, src, len);
		TEST_EQ(el, b64_encoded_len(len));
		TEST_EQ(b64_decode(back, &n, enc, el), 0);
		TEST_EQ(n, len);
		TEST_ASSERT(memcmp(src, back, len) == 0);
	}
	return 0;
}

static int
test_rejects_malformed(void)
{
	static const char *bad[] = {
		"Zg=",      /* length not a multiple of 4 */
		"Zg",       /* unpadded */
		"Z===",     /* too much padding */
		"Zg=a",     /* data after padding */
		"Zh==",     /* non-zero unused bits */
		"Zm9=",     /* non-zero unused bits, one pad */
		"Zm9v\n",   /* whitespace */
		"Zm 9v",    /* space */
		"Zm9-",     /* url-safe alphabet */
		"Zg==Zg==", /* padding in the middle */
		"=Zg=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t d[16];
		size_t  n;
		if (dec(bad[i], d, &n) != EINVAL)
			TEST_FAIL_("accepted \"%s\"", bad[i]);
	}
	return 0;
}

static int
test_high_bytes_rejected(void)
{
	const char s[] = { 'Z', 'g', (char) 0xc3, (char) 0xa9, 0 };
	uint8_t    d[8];
	size_t     n;
	TEST_EQ(dec(s, d, &n), EINVAL);
	return 0;
}

TEST_MAIN(TEST(test_rfc4648_vectors), TEST(test_roundtrip_binary),
    TEST(test_rejects_malformed), TEST(test_high_bytes_rejected))
