/*
 * playout.h - Exotel's side of playback, simulated.
 *
 * Exotel queues the bot's audio and plays one 20 ms frame per 20 ms; a
 * mark is echoed once all audio queued before it has played; clear drops
 * what has not played yet (research/exotel.md §3). The lead is the audio
 * queued but not yet played: a well-paced bot keeps it small.
 */
#ifndef EXO_CALL_PLAYOUT_H
#define EXO_CALL_PLAYOUT_H

#include <stddef.h>
#include <stdint.h>

struct playout;

enum playout_clear_marks {
	PLAYOUT_CLEAR_DROP_MARKS = 0, /* pending marks are never echoed */
	PLAYOUT_CLEAR_ECHO_MARKS, /* pending marks are echoed at once */
};

/* frame is the samples played per tick (rate / 50). The caller frees the
 * playout with playout_free. Returns 0 or ENOMEM/EINVAL. */
int playout_alloc(
    struct playout **out, size_t frame, enum playout_clear_marks on_clear);
void playout_free(struct playout *p);

/* Queues n samples. Returns 0 or ENOMEM. */
int playout_push(struct playout *p, const int16_t *pcm, size_t n);
/* Queues a mark behind the audio queued so far; the name is copied.
 * Returns 0 or ENOMEM. */
int playout_mark(struct playout *p, const char *name);
/* Drops the unplayed audio (and pending marks, per on_clear). Returns the
 * number of samples dropped. */
size_t playout_clear(struct playout *p);

/* Plays one frame into out (frame samples; zeros where nothing was
 * queued). Returns the samples of real audio played (0 = underrun). */
size_t playout_tick(struct playout *p, int16_t *out);

/* Takes the next mark that is due for an echo, or NULL. The caller frees
 * the returned name. */
char *playout_due_mark(struct playout *p);

/* Samples queued and not yet played. */
size_t playout_queued(const struct playout *p);
/* Marks queued and not yet due. */
size_t playout_pending_marks(const struct playout *p);

#endif
