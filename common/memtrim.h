/*
 * memtrim.h - hands memory a process freed back to the kernel.
 *
 * Why: glibc keeps freed memory resident in its arenas (only the top of a
 * heap shrinks on its own), so the state of calls that ended (codec state,
 * lws's buffers, ~30-150 kB a call) would hold a process near its busiest
 * size long after, as would buffers a backlog grew (the shards' work
 * arrays, a bus's send queue). Code that frees a call or such a buffer
 * calls memtrim_note; a housekeeping tick calls memtrim_maybe, which runs malloc_trim(0) (every
 * arena's free pages go back) at most once per MEMTRIM_EVERY_US, and only
 * when something was noted. Thread-safe; nothing to set up or free.
 */
#ifndef EXO_MEMTRIM_H
#define EXO_MEMTRIM_H

#include <stdbool.h>
#include <stdint.h>

#define MEMTRIM_EVERY_US 1000000u

/* Says that memory worth handing back was freed. */
void memtrim_note(void);

/* Trims if something was noted and the last trim was at least
 * MEMTRIM_EVERY_US before now_us (a monotonic time). Returns whether it
 * trimmed. */
bool memtrim_maybe(uint64_t now_us);

#endif
