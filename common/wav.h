/*
 * wav.h - read and write 16-bit mono PCM WAV files (tools and tests).
 */
#ifndef EXO_WAV_H
#define EXO_WAV_H

#include <stddef.h>
#include <stdint.h>

/* Reads a PCM16 WAV. Stereo is mixed to mono. *pcm is malloc'd and owned
 * by the caller. Returns 0, or EINVAL/ENOMEM/errno. */
int wav_read(const char *path, int16_t **pcm, size_t *nsamples, int *rate);
/* Writes a mono PCM16 WAV. Returns 0 or errno. */
int wav_write(const char *path, const int16_t *pcm, size_t nsamples,
    int rate);

#endif
