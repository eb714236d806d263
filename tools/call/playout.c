/*
 * playout.c - a FIFO of samples with marks pinned to positions in it.
 *
 * Positions are absolute sample counts since the call began (wr: queued,
 * rd: played), so a mark is due when rd reaches the wr it was queued at.
 * The sample buffer is compacted in place rather than used as a ring so
 * that pushes and plays are plain memcpy.
 */
#include "playout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pmark {
	uint64_t pos;
	char    *name;
	int      due; /* made due by a clear */
};

struct playout {
	size_t                   frame;
	enum playout_clear_marks on_clear;
	int16_t                 *buf; /* buf[off .. off + queued) unplayed */
	size_t                   off, queued, cap;
	uint64_t                 wr, rd;
	struct pmark            *marks; /* FIFO: marks[mhead .. mn) */
	size_t                   mhead, mn, mcap;
};

int
playout_alloc(
    struct playout **out, size_t frame, enum playout_clear_marks on_clear)
{
	struct playout *p;

	if (frame == 0)
		return EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return ENOMEM;
	p->frame    = frame;
	p->on_clear = on_clear;
	*out        = p;
	return 0;
}

void
playout_free(struct playout *p)
{
	if (!p)
		return;
	for (size_t i = p->mhead; i < p->mn; i++)
		free(p->marks[i].name);
	free(p->marks);
	free(p->buf);
	free(p);
}

int
playout_push(struct playout *p, const int16_t *pcm, size_t n)
{
	if (p->off + p->queued + n > p->cap) {
		if (p->off) {
			memmove(p->buf, p->buf + p->off,
			    p->queued * sizeof(*p->buf));
			p->off = 0;
		}
		if (p->queued + n > p->cap) {
			size_t ncap = p->cap ? p->cap : 4096;
			while (ncap < p->queued + n)
				ncap *= 2;
			int16_t *nb = realloc(p->buf, ncap * sizeof(*nb));
			if (!nb)
				return ENOMEM;
			p->buf = nb;
			p->cap = ncap;
		}
	}
	memcpy(p->buf + p->off + p->queued, pcm, n * sizeof(*pcm));
	p->queued += n;
	p->wr += n;
	return 0;
}

int
playout_mark(struct playout *p, const char *name)
{
	if (p->mn == p->mcap) {
		if (p->mhead) {
			memmove(p->marks, p->marks + p->mhead,
			    (p->mn - p->mhead) * sizeof(*p->marks));
			p->mn -= p->mhead;
			p->mhead = 0;
		}
		if (p->mn == p->mcap) {
			size_t        ncap = p->mcap ? p->mcap * 2 : 8;
			struct pmark *nm
			    = realloc(p->marks, ncap * sizeof(*nm));
			if (!nm)
				return ENOMEM;
			p->marks = nm;
			p->mcap  = ncap;
		}
	}
	char *copy = strdup(name);
	if (!copy)
		return ENOMEM;
	p->marks[p->mn++] = (struct pmark) { p->wr, copy, 0 };
	return 0;
}

size_t
playout_clear(struct playout *p)
{
	size_t dropped = p->queued;

	p->off    = 0;
	p->queued = 0;
	p->rd     = p->wr;
	/* Exotel's behaviour for marks pending at a clear is undocumented
	 * (research/exotel.md §10), so the caller picks. */
	for (size_t i = p->mhead; i < p->mn; i++) {
		if (p->on_clear == PLAYOUT_CLEAR_ECHO_MARKS) {
			p->marks[i].due = 1;
		} else {
			free(p->marks[i].name);
			p->marks[i].name = NULL;
		}
	}
	if (p->on_clear == PLAYOUT_CLEAR_DROP_MARKS)
		p->mhead = p->mn = 0;
	return dropped;
}

size_t
playout_tick(struct playout *p, int16_t *out)
{
	size_t n = p->queued < p->frame ? p->queued : p->frame;

	if (n)
		memcpy(out, p->buf + p->off, n * sizeof(*out));
	memset(out + n, 0, (p->frame - n) * sizeof(*out));
	p->off += n;
	p->queued -= n;
	p->rd += n;
	if (!p->queued)
		p->off = 0;
	return n;
}

char *
playout_due_mark(struct playout *p)
{
	if (p->mhead == p->mn)
		return NULL;
	struct pmark *m = &p->marks[p->mhead];
	if (!m->due && m->pos > p->rd)
		return NULL;
	p->mhead++;
	if (p->mhead == p->mn)
		p->mhead = p->mn = 0;
	return m->name;
}

size_t
playout_queued(const struct playout *p)
{
	return p->queued;
}

size_t
playout_pending_marks(const struct playout *p)
{
	return p->mn - p->mhead;
}
