/*
 * rxcheck.h - check one message a bot server sent to "Exotel".
 *
 * A bot may send only media, mark and clear (research/exotel.md §1.8),
 * with strict base64 PCM16LE in whole 20 ms frames at the call's rate and
 * at most 100 000 bytes per message (§2.3). Every rule broken is a
 * violation of a named kind; a missing stream_sid is tolerated (Exotel
 * ignores it) but noted.
 */
#ifndef EXO_CALL_RXCHECK_H
#define EXO_CALL_RXCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rxv {
	RXV_INVALID_JSON = 0,
	RXV_BINARY_FRAME,
	RXV_MESSAGE_TOO_LARGE,
	RXV_MISSING_EVENT,
	RXV_UNKNOWN_EVENT,
	RXV_MISSING_PAYLOAD,
	RXV_INVALID_BASE64,
	RXV_EMPTY_PAYLOAD,
	RXV_PARTIAL_FRAME,
	RXV_PAYLOAD_TOO_LARGE,
	RXV_STREAM_SID_MISMATCH,
	RXV_MISSING_MARK_NAME,
	RXV_LEAD_OVER_LIMIT, /* found by the playout, not here */
	RXV__COUNT
};

/* Exotel's maximum chunk (research/exotel.md §2.3). */
#define RX_MAX_PAYLOAD 100000

/* snake_case name of a violation kind, as used in the summary. */
const char *rxcheck_viol_name(enum rxv v);

enum rx_kind { RX_OTHER = 0, RX_MEDIA, RX_MARK, RX_CLEAR };

struct rx_msg {
	enum rx_kind kind;
	uint32_t     viol; /* bit (1u << enum rxv) per violation */
	bool         sid_absent;
	/* RX_MEDIA with decodable base64: the PCM in the caller's buffer. */
	const uint8_t *pcm;
	size_t         pcm_len;
	/* RX_MARK: the name, malloc'd; the caller frees it. */
	char *mark_name;
};

/* Checks one text message of len bytes. stream_sid is the call's; rate
 * its sample rate. Decoded PCM goes to *buf (grown with realloc as needed;
 * the caller owns and frees it). Returns 0, or ENOMEM (out is then
 * partly filled and should be ignored). */
int rxcheck_text(const char *msg, size_t len, const char *stream_sid, int rate,
    uint8_t **buf, size_t *cap, struct rx_msg *out);

#endif
