/*
 * oggdemux.h - a streaming Ogg Opus demuxer on libogg.
 *
 * Bytes go in as they arrive, in chunks of any size: a page may be split
 * across chunks and a chunk may hold several pages. Audio packets come
 * out through a callback (valid only during it); OpusHead and OpusTags
 * packets are skipped. A BOS page, or a page of another serial, starts
 * the stream over (chained streams, a server that restarted). Damage is
 * counted, never fatal: bytes that are not a valid page (bad CRC,
 * garbage) are skipped, and a lost page drops the packet it cut.
 * The demuxer owns its libogg state; oggdemux_free releases it.
 */
#ifndef EXO_OGGDEMUX_H
#define EXO_OGGDEMUX_H

#include <stddef.h>
#include <stdint.h>

struct oggdemux;

struct oggdemux_stats {
	uint64_t pages; /* valid pages read */
	uint64_t packets; /* audio packets handed out */
	uint64_t headers; /* OpusHead/OpusTags packets skipped */
	uint64_t streams; /* logical streams begun (BOS or new serial) */
	uint64_t sync_errors; /* times bytes were skipped to find a page */
	uint64_t holes; /* gaps in a stream (lost pages or packets) */
	uint64_t no_bos; /* streams that began without a BOS page */
};

typedef void (*oggdemux_packet_fn)(void *arg, const uint8_t *pkt, size_t n);

int  oggdemux_alloc(struct oggdemux **out);
void oggdemux_free(struct oggdemux *d);

/* Forgets buffered bytes and the current stream (a new session). The
 * counters keep counting. */
void oggdemux_reset(struct oggdemux *d);

/* Feeds n bytes and calls fn for each audio packet they complete.
 * Returns 0, or ENOMEM (the bytes are then lost, and counted as a sync
 * error when the stream resumes). */
int oggdemux_feed(struct oggdemux *d, const uint8_t *buf, size_t n,
    oggdemux_packet_fn fn, void *arg);

void oggdemux_stats(const struct oggdemux *d, struct oggdemux_stats *out);

/* The serial number of the current stream; 0 before any page. */
uint32_t oggdemux_serial(const struct oggdemux *d);

#endif
