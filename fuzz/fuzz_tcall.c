/*
 * fuzz_tcall.c - the transcoder's per-call downlink (tcall_downlink):
 * PersonaPlex's Ogg bytes, cut into bus frames, through the demuxer, the
 * Opus decoder and the resampler to the call's rate, with the session
 * changing now and then as after a reconnect. A little caller PCM goes
 * the other way too. Byte 0 picks the call's rate; the rest is raw bytes
 * or page descriptions (oggpage.h). Oracles: playback PCM arrives in
 * sane amounts, and the counters add up.
 */
#include <string.h>

#include "fuzz.h"
#include "oggpage.h"
#include "tcall.h"

struct out {
	uint64_t samples, pages;
};

static void
on_pcm(void *arg, const int16_t *pcm, size_t n)
{
	struct out *o = arg;

	FUZZ_CHECK(pcm != NULL && n > 0);
	o->samples += n;
}

static void
on_page(
    void *arg, uint32_t session, const uint8_t *page, size_t n, bool header)
{
	struct out *o = arg;

	FUZZ_CHECK(page != NULL && n >= 27 && !memcmp(page, "OggS", 4));
	o->pages++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int   rates[3] = { 8000, 16000, 24000 };
	struct out         o        = { 0, 0 };
	struct tcall      *c;
	struct tcall_stats st;
	size_t             n;
	uint8_t           *buf;
	uint32_t           session = 1, rng;

	if (size < 2)
		return 0;
	struct tcall_opts opts = { .rate = rates[data[0] % 3],
		.complexity              = 0,
		.bitrate                 = 24000,
		.on_page                 = on_page,
		.on_pcm                  = on_pcm,
		.arg                     = &o };
	rng                    = data[0] * 2654435761u + 7;
	buf                    = oggpage_stream(data + 1, size - 1, &n);
	FUZZ_CHECK(tcall_alloc(&c, &opts) == 0);
	if (data[0] & 0x80) {
		/* Some caller audio first, as PCM16 of the input's bytes. */
		size_t  ns = (size - 1) / 2 < 960 ? (size - 1) / 2 : 960;
		int16_t pcm[960];
		memcpy(pcm, data + 1, ns * 2);
		FUZZ_CHECK(tcall_session_start(c, 1, 0x1234) == 0);
		FUZZ_CHECK(o.pages >= 2);
		FUZZ_CHECK(tcall_uplink(c, pcm, ns) == 0);
		tcall_session_end(c, 1);
	}
	for (size_t off = 0; off < n;) {
		rng      = rng * 1103515245u + 12345u;
		size_t k = 1 + (rng >> 16) % 3000;
		if (k > n - off)
			k = n - off;
		if ((rng >> 8 & 31) == 0)
			session++; /* a reconnect */
		FUZZ_CHECK(tcall_downlink(c, session, buf + off, k) == 0);
		off += k;
	}
	tcall_stats(c, &st);
	FUZZ_CHECK(st.bytes_in == n);
	FUZZ_CHECK(st.samples_out == o.samples);
	/* At most 120 ms per decoded packet, plus a resampler's latency. */
	FUZZ_CHECK(
	    o.samples <= st.frames_decoded * (uint64_t)opts.rate * 12 / 100
	        + (uint64_t)opts.rate);
	tcall_free(c);
	free(buf);
	return 0;
}
