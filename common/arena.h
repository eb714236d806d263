/*
 * arena.h - a bump allocator for the objects of one message.
 *
 * Parsing a bus frame or an Exotel message makes a dozen small objects
 * that all die together; an arena hands them out from one buffer and
 * takes them all back at once, so the hot paths make no heap allocation
 * per message. What does not fit spills to malloc, and the next reset
 * grows the buffer to what was needed (up to its limit).
 */
#ifndef EXO_ARENA_H
#define EXO_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena;

/* A new arena with a cap-byte buffer that may grow to max bytes. The
 * caller frees it with arena_free. Returns 0, EINVAL or ENOMEM. */
int  arena_alloc(struct arena **out, size_t cap, size_t max);
void arena_free(struct arena *a);

/* n bytes aligned for any type, owned by the arena until arena_reset;
 * never free them. NULL only when out of memory. */
void *arena_get(struct arena *a, size_t n);

/* Takes back everything arena_get handed out. */
void arena_reset(struct arena *a);

/* Whether p came from arena_get since the last reset. */
bool arena_owns(const struct arena *a, const void *p);

/* A protobuf-c allocator on the arena: unpack with it, then drop the
 * message with arena_reset instead of free_unpacked. Owned by a. */
ProtobufCAllocator *arena_pb(struct arena *a);

/* Allocations that spilled to malloc since arena_alloc, the buffer's
 * size now, and the bytes handed out since the last reset. */
size_t arena_spills(const struct arena *a);
size_t arena_cap(const struct arena *a);
size_t arena_used(const struct arena *a);

#endif
