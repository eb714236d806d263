/*
 * exomsg.h - the messages exoplex-call sends, shaped like real Exotel.
 *
 * Shapes follow the real captures in research/exotel.md §1.3 (start) and
 * Exotel's templates (media, dtmf, mark, stop): snake_case keys in that
 * order, numbers as JSON strings unless `numbers` is set. Every builder
 * writes one NUL-terminated message into the caller's buffer and returns
 * 0 with its length in *len, or ENOSPC (buffer too small) / ENOMEM.
 */
#ifndef EXO_CALL_EXOMSG_H
#define EXO_CALL_EXOMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXOMSG_SID_LEN 32

struct exomsg_param {
	const char *key;
	const char *value; /* "" for a key-only parameter */
};

struct exomsg_call {
	const char *stream_sid;
	const char *call_sid;
	const char *account_sid;
	const char *from;
	const char *to;
	int         rate;
	/* custom_parameters: absent when !custom_present, {} when present
	 * with ncustom == 0. */
	const struct exomsg_param *custom;
	size_t                     ncustom;
	bool                       custom_present;
	bool                       numbers; /* numbers as JSON numbers */
};

/* Fills stream_sid and call_sid (each EXOMSG_SID_LEN chars + NUL): hex,
 * except that the shared last 4 characters may be any of [0-9a-z], as in
 * real traffic. *rng is the caller's generator state. */
void exomsg_gen_ids(char *stream_sid, char *call_sid, uint64_t *rng);

/* splitmix64: the tool's only random source, so runs are reproducible. */
uint64_t exomsg_rand(uint64_t *state);

int exomsg_connected(char *buf, size_t cap, size_t *len);
int exomsg_start(char *buf, size_t cap, size_t *len,
    const struct exomsg_call *c, unsigned seq);
/* pcm is little-endian PCM16 bytes; ts_ms is milliseconds of media since
 * the stream started. */
int exomsg_media(char *buf, size_t cap, size_t *len,
    const struct exomsg_call *c, unsigned seq, unsigned chunk, unsigned ts_ms,
    const uint8_t *pcm, size_t nbytes);
int exomsg_dtmf(char *buf, size_t cap, size_t *len,
    const struct exomsg_call *c, unsigned seq, char digit,
    unsigned duration_ms);
int exomsg_mark(char *buf, size_t cap, size_t *len,
    const struct exomsg_call *c, unsigned seq, const char *name);
int exomsg_stop(char *buf, size_t cap, size_t *len,
    const struct exomsg_call *c, unsigned seq, const char *reason);

/* Buffer size that always holds a media message of nbytes PCM for c. */
size_t exomsg_media_cap(const struct exomsg_call *c, size_t nbytes);

#endif
