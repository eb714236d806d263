/*
 * base64.h - strict RFC 4648 base64 (standard alphabet, padded).
 */
#ifndef EXO_BASE64_H
#define EXO_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode n bytes, not counting a terminating NUL. */
static inline size_t
b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Upper bound of the decoded size of n characters. */
static inline size_t
b64_decoded_max(size_t n)
{
	return n / 4 * 3 + 3;
}

/* Encodes src into dst (which must hold b64_encoded_len(n) + 1 bytes) and
 * NUL-terminates it. Returns the encoded length. */
size_t b64_encode(char *dst, const uint8_t *src, size_t n);

/* Decodes n characters of src into dst (at least b64_decoded_max(n)
 * bytes). Returns 0 and sets *out_len, or EINVAL for anything that is not
 * canonical padded base64 (bad character, bad length, bad padding). */
int b64_decode(uint8_t *dst, size_t *out_len, const char *src, size_t n);

#endif
