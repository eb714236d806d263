/*
 * oggstrict.h - a strict streaming Ogg reader that behaves like the one
 * inside the real PersonaPlex server (sphn 0.1 StreamReader over the Rust
 * `ogg` crate 0.9 PacketReader; research/personaplex.md §3.3).
 *
 * Bytes arrive in arbitrary chunks (pages split across WebSocket messages
 * or several pages in one). The reader finds pages by their capture
 * pattern, checks them the way the ogg crate does and hands out whole
 * packets, reassembled across segments and pages. Written from the Ogg
 * spec with its own CRC so that exoplex's libogg-based writer is checked
 * by independent code.
 *
 * Like the real reader, the first fatal violation kills the reader: every
 * later feed returns the same error and delivers nothing. Non-fatal ones
 * (garbage before a capture pattern) are reported and reading goes on.
 * Page sequence numbers and granules are not checked (the crate does not);
 * they are passed on with each packet for callers that want to.
 */
#ifndef EXO_FAKEPLEX_OGGSTRICT_H
#define EXO_FAKEPLEX_OGGSTRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Violation kinds; the ones marked fatal end the real server's session. */
enum oggstrict_kind {
	OGGSTRICT_GARBAGE = 0, /* bytes skipped before "OggS" */
	OGGSTRICT_NO_CAPTURE, /* fatal: > 150 KiB without a page */
	OGGSTRICT_BAD_VERSION, /* fatal: stream structure version != 0 */
	OGGSTRICT_BAD_CRC, /* fatal: CRC32 mismatch */
	OGGSTRICT_NO_BOS, /* fatal: new serial's page lacks BOS */
	OGGSTRICT_CONTINUED_FIRST, /* fatal: new serial starts continued */
	OGGSTRICT_SECOND_BOS, /* fatal: BOS again on a known serial */
	OGGSTRICT_BAD_CONTINUATION, /* fatal: continued flag != previous end */
	OGGSTRICT_KIND_N
};

/* The crate gives up after reading this much while looking for a page. */
#define OGGSTRICT_CAPTURE_LIMIT (150 * 1024)

/* Stable snake_case name of a kind ("bad_crc"), for logs and metrics. */
const char *oggstrict_kind_name(enum oggstrict_kind k);
bool        oggstrict_kind_fatal(enum oggstrict_kind k);

struct oggstrict_page {
	uint32_t serial;
	uint32_t seq;
	uint64_t granule;
	uint8_t  flags; /* 0x01 continued, 0x02 BOS, 0x04 EOS */
	size_t   size; /* whole page, header included */
	size_t   nsegs;
};

struct oggstrict_packet {
	const uint8_t *data; /* valid only during the callback */
	size_t         len;
	uint32_t       serial;
	uint32_t       page_seq; /* page on which the packet ends */
	uint64_t       granule; /* that page's granule position */
	bool           first_in_stream; /* first packet of its serial */
	bool           last_in_page; /* no other packet ends on the page */
};

struct oggstrict_ops {
	/* Each whole packet, in order. Returning non-zero stops the feed,
	 * which then returns OGGSTRICT_STOPPED. */
	int (*packet)(void *arg, const struct oggstrict_packet *p);
	/* Optional: each page that passed every check, before its packets. */
	void (*page)(void *arg, const struct oggstrict_page *pg);
	/* Optional: each violation as it happens; detail is a short text. */
	void (*violation)(
	    void *arg, enum oggstrict_kind k, const char *detail);
};

struct oggstrict;

/* ops is copied; arg is passed to every callback. The caller frees the
 * reader with oggstrict_free. Returns 0 or ENOMEM. */
int oggstrict_alloc(
    struct oggstrict **out, const struct oggstrict_ops *ops, void *arg);
void oggstrict_free(struct oggstrict *r);

/* Returned by oggstrict_feed when the packet callback asked to stop. */
#define OGGSTRICT_STOPPED (-1)

/* Feeds len bytes. Returns 0; the fatal kind (always > 0) once the reader
 * is dead, for this and every later call; or OGGSTRICT_STOPPED after the
 * packet callback asked to stop (the reader then delivers nothing more). */
int oggstrict_feed(struct oggstrict *r, const uint8_t *buf, size_t len);

/* The fatal kind that killed the reader, or -1 while it is alive. */
int      oggstrict_fatal(const struct oggstrict *r);
uint64_t oggstrict_count(const struct oggstrict *r, enum oggstrict_kind k);
uint64_t oggstrict_pages(const struct oggstrict *r);
uint64_t oggstrict_packets(const struct oggstrict *r);
uint64_t oggstrict_garbage_bytes(const struct oggstrict *r);

/* The Ogg CRC32: polynomial 0x04C11DB7, init 0, no reflection, no final
 * xor. Feed the page with its CRC field zeroed. */
uint32_t oggstrict_crc(uint32_t crc, const uint8_t *buf, size_t len);

#endif
