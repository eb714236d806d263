/*
 * wav.c - minimal RIFF/WAVE PCM16 reader and writer (little-endian host).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wav.h"

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
	    (uint32_t) p[3] << 24;
}

static uint16_t
le16(const uint8_t *p)
{
	return (uint16_t) (p[0] | p[1] << 8);
}

int
wav_read(const char *path, int16_t **pcm, size_t *nsamples, int *rate)
{
	FILE *f = fopen(path, "rb");
	uint8_t hdr[12], ch[8], fmt[16];
	int err = EINVAL, channels = 0, bits = 0;
	int16_t *data = NULL;

	if (!f)
		return errno;
	if (fread(hdr, 1, 12, f) != 12 || memcmp(hdr, "RIFF", 4) ||
	    memcmp(hdr + 8, "WAVE", 4))
		goto out;
	*rate = 0;
	for (;;) {
		if (fread(ch, 1, 8, f) != 8)
			goto out;
		uint32_t len = le32(ch + 4);
		if (!memcmp(ch, "fmt ", 4)) {
			if (len < 16 || fread(fmt, 1, 16, f) != 16)
				goto out;
			if (le16(fmt) != 1 && le16(fmt) != 0xfffe)
				goto out; /* not PCM */
			channels = le16(fmt + 2);
			*rate = (int) le32(fmt + 4);
			bits = le16(fmt + 14);
			if (fseek(f, (long) (len - 16 + (len & 1)), SEEK_CUR))
				goto out;
		} else if (!memcmp(ch, "data", 4)) {
			if (bits != 16 || channels < 1 || channels > 2 ||
			    *rate <= 0)
				goto out;
			size_t frames = len / (2u * (unsigned) channels);
			data = malloc(frames * 2 * (size_t) channels + 2);
			if (!data) {
				err = ENOMEM;
				goto out;
			}
			frames = fread(data, 2u * (unsigned) channels, frames, f);
			if (channels == 2)
				for (size_t i = 0; i < frames; i++)
					data[i] = (int16_t) (((int) data[2 * i] +
					    data[2 * i + 1]) / 2);
			*pcm = data;
			*nsamples = frames;
			data = NULL;
			err = 0;
			goto out;
		} else if (fseek(f, (long) (len + (len & 1)), SEEK_CUR)) {
			goto out;
		}
	}
out:
	free(data);
	fclose(f);
	return err;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) v;
	p[1] = (uint8_t) (v >> 8);
	p[2] = (uint8_t) (v >> 16);
	p[3] = (uint8_t) (v >> 24);
}

int
wav_write(const char *path, const int16_t *pcm, size_t nsamples, int rate)
{
	uint8_t h[44];
	uint32_t bytes = (uint32_t) (nsamples * 2);
	FILE *f = fopen(path, "wb");
	int err = 0;

	if (!f)
		return errno;
	memcpy(h, "RIFF", 4);
	put32(h + 4, 36 + bytes);
	memcpy(h + 8, "WAVEfmt ", 8);
	put32(h + 16, 16);
	h[20] = 1, h[21] = 0; /* PCM */
	h[22] = 1, h[23] = 0; /* mono */
	put32(h + 24, (uint32_t) rate);
	put32(h + 28, (uint32_t) rate * 2);
	h[32] = 2, h[33] = 0;
	h[34] = 16, h[35] = 0;
	memcpy(h + 36, "data", 4);
	put32(h + 40, bytes);
	if (fwrite(h, 1, 44, f) != 44 ||
	    fwrite(pcm, 2, nsamples, f) != nsamples)
		err = EIO;
	if (fclose(f) && !err)
		err = errno;
	return err;
}
