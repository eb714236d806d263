/*
 * fuzz_oggdemux.c - the transcoder's streaming Ogg demuxer
 * (transcoder/oggdemux.c), fed PersonaPlex's downlink bytes. The input is
 * raw bytes or page descriptions (oggpage.h). Oracles: the packets that
 * come out do not depend on how the bytes were cut into chunks, and the
 * counters only grow.
 */
#include <string.h>

#include "fuzz.h"
#include "oggdemux.h"
#include "oggpage.h"

struct seen {
	uint64_t n, bytes, hash;
};

static void
on_packet(void *arg, const uint8_t *pkt, size_t n)
{
	struct seen *s = arg;

	FUZZ_CHECK(pkt != NULL && n > 0);
	s->n++;
	s->bytes += n;
	for (size_t i = 0; i < n; i++)
		s->hash = (s->hash ^ pkt[i]) * 0x100000001b3ull;
	s->hash = (s->hash ^ n) * 0x100000001b3ull;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oggdemux      *d;
	struct oggdemux_stats st, prev;
	struct seen           whole = { 0, 0, 0xcbf29ce484222325ull };
	struct seen           cut = whole, reset = whole;
	size_t                n;
	uint8_t              *buf = oggpage_stream(data, size, &n);
	/* Chunk sizes: a generator seeded by the input's last byte. */
	uint32_t rng = size ? data[size - 1] * 2654435761u + 1 : 1;

	FUZZ_CHECK(oggdemux_alloc(&d) == 0);
	FUZZ_CHECK(oggdemux_feed(d, buf, n, on_packet, &whole) == 0);
	oggdemux_stats(d, &st);
	FUZZ_CHECK(st.packets == whole.n);
	oggdemux_free(d);

	FUZZ_CHECK(oggdemux_alloc(&d) == 0);
	memset(&prev, 0, sizeof(prev));
	for (size_t o = 0; o < n;) {
		rng      = rng * 1103515245u + 12345u;
		size_t k = 1 + (rng >> 16) % 700;
		if (k > n - o)
			k = n - o;
		FUZZ_CHECK(oggdemux_feed(d, buf + o, k, on_packet, &cut) == 0);
		o += k;
		oggdemux_stats(d, &st);
		FUZZ_CHECK(
		    st.pages >= prev.pages && st.packets >= prev.packets);
		FUZZ_CHECK(st.streams >= prev.streams);
		FUZZ_CHECK(st.sync_errors >= prev.sync_errors);
		prev = st;
	}
	FUZZ_CHECK(cut.n == whole.n && cut.bytes == whole.bytes);
	FUZZ_CHECK(cut.hash == whole.hash);
	/* The same bytes again after a reset, in halves, with a reset
	 * between: a new session on a used demuxer. */
	oggdemux_reset(d);
	FUZZ_CHECK(oggdemux_serial(d) == 0);
	FUZZ_CHECK(oggdemux_feed(d, buf, n / 2, on_packet, &reset) == 0);
	oggdemux_reset(d);
	FUZZ_CHECK(
	    oggdemux_feed(d, buf + n / 2, n - n / 2, on_packet, &reset) == 0);
	oggdemux_stats(d, &st);
	FUZZ_CHECK(st.packets == cut.n + reset.n);
	oggdemux_free(d);
	free(buf);
	return 0;
}
