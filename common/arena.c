/*
 * arena.c - a bump allocator for the objects of one message (arena.h).
 */
#include "arena.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#define ALIGN alignof(max_align_t)

/* A block that did not fit in the buffer, kept until the reset. */
struct spill {
	struct spill *next;
	size_t        n;
	alignas(ALIGN) unsigned char data[];
};

struct arena {
	unsigned char     *buf;
	size_t             cap, max, used;
	size_t             wanted; /* bytes asked for since the reset */
	size_t             spills;
	struct spill      *spilled;
	ProtobufCAllocator pb;
};

static void *
pb_alloc(void *data, size_t n)
{
	return arena_get(data, n);
}

static void
pb_free(void *data, void *p)
{
	/* Taken back at arena_reset. */
	(void)data;
	(void)p;
}

int
arena_alloc(struct arena **out, size_t cap, size_t max)
{
	struct arena *a;

	if (cap == 0 || max < cap)
		return EINVAL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return ENOMEM;
	if ((a->buf = malloc(cap)) == NULL) {
		free(a);
		return ENOMEM;
	}
	a->cap = cap;
	a->max = max;
	a->pb  = (ProtobufCAllocator) { pb_alloc, pb_free, a };
	*out   = a;
	return 0;
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->buf);
	free(a);
}

void *
arena_get(struct arena *a, size_t n)
{
	size_t        k = (n + ALIGN - 1) / ALIGN * ALIGN;
	struct spill *s;

	if (k < n)
		return NULL;
	a->wanted += k;
	if (k <= a->cap - a->used) {
		void *p = a->buf + a->used;
		a->used += k;
		return p;
	}
	if (k > SIZE_MAX - sizeof(*s) || (s = malloc(sizeof(*s) + k)) == NULL)
		return NULL;
	s->n       = k;
	s->next    = a->spilled;
	a->spilled = s;
	a->spills++;
	return s->data;
}

void
arena_reset(struct arena *a)
{
	struct spill *s, *next;
	bool          spilled = a->spilled != NULL;

	for (s = a->spilled; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	a->spilled = NULL;
	/* Grow to what this message needed, so the next one like it fits;
	 * the buffer holds nothing live now. */
	if (spilled && a->cap < a->max) {
		size_t cap = a->cap;
		while (cap < a->wanted && cap < a->max)
			cap = cap > a->max / 2 ? a->max : cap * 2;
		unsigned char *nb = malloc(cap);
		if (nb != NULL) {
			free(a->buf);
			a->buf = nb;
			a->cap = cap;
		}
	}
	a->used   = 0;
	a->wanted = 0;
}

bool
arena_owns(const struct arena *a, const void *p)
{
	const unsigned char *q = p;

	if (q >= a->buf && q < a->buf + a->cap)
		return true;
	for (const struct spill *s = a->spilled; s != NULL; s = s->next)
		if (q >= s->data && q < s->data + s->n)
			return true;
	return false;
}

ProtobufCAllocator *
arena_pb(struct arena *a)
{
	return &a->pb;
}

size_t
arena_spills(const struct arena *a)
{
	return a->spills;
}

size_t
arena_cap(const struct arena *a)
{
	return a->cap;
}

size_t
arena_used(const struct arena *a)
{
	return a->wanted;
}
