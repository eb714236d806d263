/*
 * callaudio.h - the caller's audio: test signals for simulated calls.
 */
#ifndef EXO_CALL_CALLAUDIO_H
#define EXO_CALL_CALLAUDIO_H

#include <stddef.h>
#include <stdint.h>

/* n samples of a sine of hz at level dbfs (peak, e.g. -6). *out is
 * malloc'd; the caller frees it. Returns 0, EINVAL or ENOMEM. */
int callaudio_tone(int16_t **out, size_t n, int rate, double hz, double dbfs);

/* n samples of a speech-like signal: a glottal pulse train (pitch
 * 100-150 Hz, gliding) through three formant resonators that move from
 * vowel to vowel, shaped into syllables at about 4 a second, in phrases
 * of 1-3 s separated by 0.3-0.8 s pauses of near silence. Deterministic
 * for a given seed. *out is malloc'd; the caller frees it. Returns 0,
 * EINVAL or ENOMEM. */
int callaudio_speech(int16_t **out, size_t n, int rate, uint64_t seed);

#endif
