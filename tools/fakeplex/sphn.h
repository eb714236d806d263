/*
 * sphn.h - the server's downlink writer, as sphn 0.1's StreamWriter makes
 * it (research/personaplex.md §3.2): serial 42, a BOS page with OpusHead
 * (pre-skip 3840, rate 24000), an OpusTags page (vendor "sphn-pyo3"), then
 * one page per appended frame holding one Opus packet from a libopus
 * encoder (24 kHz mono VOIP, library defaults), granule = cumulative
 * 24 kHz samples, sequence numbers from 2, never an EOS page.
 */
#ifndef EXO_FAKEPLEX_SPHN_H
#define EXO_FAKEPLEX_SPHN_H

#include <stddef.h>
#include <stdint.h>

#define SPHN_RATE 24000
#define SPHN_SERIAL 42
#define SPHN_FRAME 1920 /* the server appends 80 ms frames */
/* Largest page sphn_page makes: header, 255 lacing values, data. */
#define SPHN_PAGE_MAX (27 + 255 + 255 * 254)

/* Writes one page holding exactly one whole packet, byte for byte as the
 * ogg crate's PacketWriter does with EndPage. Returns its length, or 0
 * when cap is too small or the packet does not fit one page. */
size_t sphn_page(uint8_t *out, size_t cap, uint8_t flags, uint64_t granule,
    uint32_t serial, uint32_t seq, const uint8_t *pkt, size_t len);

/* Receives each finished page; the bytes are valid during the call only.
 * A non-zero return is passed back to the caller of append. */
typedef int (*sphn_page_fn)(void *arg, const uint8_t *page, size_t len);

struct sphn_writer;

/* Creates the encoder and at once emits the OpusHead and OpusTags pages
 * through fn, as sphn's constructor queues them. The caller frees the
 * writer with sphn_writer_free. Returns 0, ENOMEM or EIO (encoder). */
int  sphn_writer_alloc(struct sphn_writer **out, sphn_page_fn fn, void *arg);
void sphn_writer_free(struct sphn_writer *w);

/* Sets the encoder's complexity (0-10). sphn never does, which leaves
 * libopus's default; lower values only make a cheaper stand-in. Returns 0
 * or EINVAL. */
int sphn_writer_complexity(struct sphn_writer *w, int complexity);

/* Encodes n samples (one of 120, 240, 480, 960, 1920, 2880, like sphn)
 * into one packet on one page. Returns 0, EINVAL, EIO or fn's value. */
int sphn_writer_append(struct sphn_writer *w, const float *pcm, size_t n);

/* Puts an already encoded packet of n samples (24 kHz) on the next page,
 * as append would have. Returns 0, EINVAL or fn's value. */
int sphn_writer_packet(
    struct sphn_writer *w, const uint8_t *pkt, size_t len, size_t n);

#endif
