/*
 * oggw.h - an Ogg Opus stream writer (RFC 7845) on libogg: a BOS page
 * with OpusHead, an OpusTags page, then one page per audio packet with
 * the granule position in 48 kHz units.
 *
 * A writer is reused for every stream of a call (oggw_begin starts the
 * next one). Pages are handed to a callback and are valid only during
 * it. A writer is a few bytes of state; oggw_free releases it.
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

struct oggw;

/* One whole Ogg page; header is true for the OpusHead and OpusTags
 * pages. */
typedef void (*oggw_page_fn)(
    void *arg, const uint8_t *page, size_t n, bool header);

int  oggw_alloc(struct oggw **out);
void oggw_free(struct oggw *w);

/* Starts a new logical stream with this serial and writes its two header
 * pages: OpusHead (version 1, mono, pre-skip in 48 kHz samples, the
 * encoder's input rate, gain 0, mapping 0) and OpusTags (vendor
 * "exoplex", no comments). Returns 0. */
int oggw_begin(struct oggw *w, uint32_t serial, uint32_t input_rate,
    uint16_t preskip, oggw_page_fn fn, void *arg);

/* Writes one Opus packet lasting samples48 (960 for 20 ms) as one page;
 * eos marks the stream's last page (a live stream never has one; files
 * do). Returns 0, EINVAL before oggw_begin, after eos or for an empty
 * packet, or EMSGSIZE for one longer than OGGW_PACKET_MAX. */
int oggw_packet(struct oggw *w, const uint8_t *pkt, size_t n,
    uint32_t samples48, bool eos, oggw_page_fn fn, void *arg);

/* Fills the 19-byte OpusHead packet. */
void oggw_opushead(
    uint8_t out[OGGW_OPUSHEAD_LEN], uint32_t input_rate, uint16_t preskip);

#endif
