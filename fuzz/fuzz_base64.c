/*
 * fuzz_base64.c - strict base64 (common/base64.c), which decodes every
 * Exotel media payload. Oracles: whatever decodes re-encodes to exactly
 * the same text (canonical form only), and any bytes survive an encode
 * and a decode.
 */
#include <errno.h>
#include <string.h>

#include "base64.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *dec = malloc(b64_decoded_max(size));
	char    *enc = malloc(b64_encoded_len(size) + 1);
	size_t   n   = 0;
	int      rv;

	FUZZ_CHECK(dec && enc);
	rv = b64_decode(dec, &n, (const char *)data, size);
	FUZZ_CHECK(rv == 0 || rv == EINVAL);
	if (rv == 0) {
		FUZZ_CHECK(n <= b64_decoded_max(size));
		FUZZ_CHECK(b64_encode(enc, dec, n) == size);
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	}
	/* The input as bytes: encode, then decode back. */
	size_t el = b64_encode(enc, data, size);
	FUZZ_CHECK(el == b64_encoded_len(size) && enc[el] == '\0');
	uint8_t *back = malloc(b64_decoded_max(el));
	FUZZ_CHECK(back);
	FUZZ_CHECK(b64_decode(back, &n, enc, el) == 0);
	FUZZ_CHECK(n == size && (!size || !memcmp(back, data, size)));
	free(back);
	free(dec);
	free(enc);
	return 0;
}
