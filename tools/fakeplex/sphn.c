/*
 * sphn.c - sphn 0.1 StreamWriter in C (see sphn.h; sphn src/opus.rs).
 */
#include "sphn.h"
#include "oggstrict.h"

#include <errno.h>
#include <opus/opus.h>
#include <stdlib.h>
#include <string.h>

struct sphn_writer {
	OpusEncoder *enc;
	sphn_page_fn fn;
	void        *arg;
	uint32_t     seq;
	uint64_t     total; /* samples appended: the granule */
	/* sphn passes 50000 bytes, but libopus never uses more than
	 * 1276 * 6 (opus_encode_native), so this is the same encoder. */
	uint8_t pkt[1276 * 6];
	uint8_t page[27 + 255 + 1276 * 6];
};

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

size_t
sphn_page(uint8_t *out, size_t cap, uint8_t flags, uint64_t granule,
    uint32_t serial, uint32_t seq, const uint8_t *pkt, size_t len)
{
	size_t nsegs = len / 255 + 1, n = 27 + nsegs + len;

	if (nsegs > 255 || n > cap)
		return 0;
	memcpy(out, "OggS", 4);
	out[4] = 0;
	out[5] = flags;
	put32(out + 6, (uint32_t)granule);
	put32(out + 10, (uint32_t)(granule >> 32));
	put32(out + 14, serial);
	put32(out + 18, seq);
	put32(out + 22, 0);
	out[26] = (uint8_t)nsegs;
	memset(out + 27, 255, nsegs - 1);
	out[27 + nsegs - 1] = (uint8_t)(len % 255);
	if (len) /* an empty packet may come with pkt == NULL */
		memcpy(out + 27 + nsegs, pkt, len);
	put32(out + 22, oggstrict_crc(0, out, n));
	return n;
}

static int
emit(struct sphn_writer *w, uint8_t flags, uint64_t granule,
    const uint8_t *pkt, size_t len)
{
	size_t n = sphn_page(w->page, sizeof(w->page), flags, granule,
	    SPHN_SERIAL, w->seq, pkt, len);

	if (n == 0)
		return EIO;
	w->seq++;
	return w->fn(w->arg, w->page, n);
}

int
sphn_writer_alloc(struct sphn_writer **out, sphn_page_fn fn, void *arg)
{
	static const uint8_t head[19] = { 'O', 'p', 'u', 's', 'H', 'e', 'a',
		'd', 1, 1, 0x00, 0x0f, 0xc0, 0x5d, 0x00, 0x00, 0, 0, 0 };
	static const uint8_t tags[25]
	    = { 'O', 'p', 'u', 's', 'T', 'a', 'g', 's', 9, 0, 0, 0, 's', 'p',
		      'h', 'n', '-', 'p', 'y', 'o', '3', 0, 0, 0, 0 };
	struct sphn_writer *w;
	int                 err = 0, rc;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return ENOMEM;
	w->fn  = fn;
	w->arg = arg;
	w->enc
	    = opus_encoder_create(SPHN_RATE, 1, OPUS_APPLICATION_VOIP, &err);
	if (w->enc == NULL || err != OPUS_OK) {
		rc = EIO;
		goto out;
	}
	if ((rc = emit(w, 0x02, 0, head, sizeof(head))) != 0
	    || (rc = emit(w, 0x00, 0, tags, sizeof(tags))) != 0)
		goto out;
	*out = w;
	return 0;
out:
	sphn_writer_free(w);
	return rc;
}

void
sphn_writer_free(struct sphn_writer *w)
{
	if (w == NULL)
		return;
	if (w->enc)
		opus_encoder_destroy(w->enc);
	free(w);
}

int
sphn_writer_complexity(struct sphn_writer *w, int complexity)
{
	if (complexity < 0 || complexity > 10
	    || opus_encoder_ctl(w->enc, OPUS_SET_COMPLEXITY(complexity))
	        != OPUS_OK)
		return EINVAL;
	return 0;
}

int
sphn_writer_append(struct sphn_writer *w, const float *pcm, size_t n)
{
	opus_int32 len;

	if (n != 120 && n != 240 && n != 480 && n != 960 && n != 1920
	    && n != 2880)
		return EINVAL;
	len = opus_encode_float(
	    w->enc, pcm, (int)n, w->pkt, (opus_int32)sizeof(w->pkt));
	if (len < 0)
		return EIO;
	w->total += n;
	return emit(w, 0x00, w->total, w->pkt, (size_t)len);
}

int
sphn_writer_packet(
    struct sphn_writer *w, const uint8_t *pkt, size_t len, size_t n)
{
	if (len == 0 || n == 0)
		return EINVAL;
	w->total += n;
	return emit(w, 0x00, w->total, pkt, len);
}
