/*
 * oggw.h - an Ogg Opus stream writer (RFC 7845) on libogg: a BOS page
 * with OpusHead, an OpusTags page, then audio pages of one to
 * OGGW_PER_PAGE_MAX packets each, granule positions in 48 kHz units.
 *
 * A writer is reused for every stream of a call (oggw_begin starts the
 * next one). Pages are handed to a callback and are valid only during
 * it. A writer holds the packets of the page it is filling (at most
 * OGGW_PEND_MAX bytes); oggw_free releases it.
 */
#ifndef EXO_OGGW_H
#define EXO_OGGW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OGGW_OPUSHEAD_LEN 19
#define OGGW_VENDOR "exoplex"
/* The longest packet a page takes: six 1275-byte frames, the most Opus
 * puts in 120 ms (RFC 6716 section 3.2.5). */
#define OGGW_PACKET_MAX (6 * 1275)
/* PersonaPlex steps every 80 ms: four 20 ms packets. */
#define OGGW_PER_PAGE_MAX 4
/* Packets waiting for their page: four at 24 kb/s take about 240 bytes.
 * One that does not fit ends the page early. */
#define OGGW_PEND_MAX 1024

struct oggw;

/* One whole Ogg page; header is true for the OpusHead and OpusTags
 * pages. */
typedef void (*oggw_page_fn)(
    void *arg, const uint8_t *page, size_t n, bool header);

int  oggw_alloc(struct oggw **out);
void oggw_free(struct oggw *w);

/* Sets how many audio packets make a page, from the next page on: 1 to
 * OGGW_PER_PAGE_MAX (1 when never set). A page ends after every n-th
 * packet of the stream, counted from its first, so pages keep the same
 * boundaries even when one ended early. Returns 0 or EINVAL. */
int oggw_set_per_page(struct oggw *w, unsigned n);

/* Starts a new logical stream with this serial (packets still waiting
 * for the old stream's page are dropped) and writes its two header
 * pages: OpusHead (version 1, mono, pre-skip in 48 kHz samples, the
 * encoder's input rate, gain 0, mapping 0) and OpusTags (vendor
 * "exoplex", no comments). Returns 0. */
int oggw_begin(struct oggw *w, uint32_t serial, uint32_t input_rate,
    uint16_t preskip, oggw_page_fn fn, void *arg);

/* Adds one Opus packet lasting samples48 (960 for 20 ms) to the stream:
 * the page goes to fn when this packet completes it. eos ends the stream
 * with this packet's page (a live stream never has one; files do).
 * Returns 0, EINVAL before oggw_begin, after eos or for an empty packet,
 * or EMSGSIZE for one longer than OGGW_PACKET_MAX. */
int oggw_packet(struct oggw *w, const uint8_t *pkt, size_t n,
    uint32_t samples48, bool eos, oggw_page_fn fn, void *arg);

/* Writes the packets waiting for their page as a shorter page now (the
 * caller's audio ended). Returns 0; nothing is written when none wait. */
int oggw_flush(struct oggw *w, oggw_page_fn fn, void *arg);

/* Packets waiting for their page. */
unsigned oggw_pending(const struct oggw *w);

/* Fills the 19-byte OpusHead packet. */
void oggw_opushead(
    uint8_t out[OGGW_OPUSHEAD_LEN], uint32_t input_rate, uint16_t preskip);

#endif
