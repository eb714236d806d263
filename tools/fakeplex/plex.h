/*
 * plex.h - the PersonaPlex stand-in's network side: one libwebsockets
 * context (owned by the calling thread), one vhost per listener, each
 * listener behaving like one real server process (research/personaplex.md
 * §1, §2, §5):
 *
 *  - /api/chat upgrades at once; other paths get 404. The query is judged
 *    as handle_chat does; a failing one aborts the socket right after the
 *    upgrade (no close frame), after storing what the real code would
 *    already have stored in the listener's shared prompt state.
 *  - one conversation per listener (the global lock, FIFO); others wait
 *    with nothing sent, and take the shared prompt as it is when their
 *    turn comes (the real prompt race).
 *  - after the handshake delay (counted on one shared tick from taking
 *    the lock): 0x00, OpusHead, OpusTags, then output clocked by input.
 *  - anything received before 0x00 is discarded and counted; a fatal
 *    uplink error closes with 1000, as ws.close() does after opus_loop dies.
 */
#ifndef EXO_FAKEPLEX_PLEX_H
#define EXO_FAKEPLEX_PLEX_H

#include "conv.h"

#include <stdbool.h>

struct admin;
struct log;
struct stats;

struct plex_opts {
	/* "host:port[,host:port...]"; a port may be a range "9000-9015". */
	const char      *listen;
	struct conv_opts conv;
	long             handshake_delay_ms;
	long             drop_after_ms; /* 0: never drop a live session */
	long             drop_count; /* drop only the first N; 0: all */
	bool             refuse; /* abort every session at once */
	long             out_max; /* queued messages per session (0: 4096) */
};

/* Checks a listen list; returns 0, or EINVAL with err filled. */
int plex_check_listen(const char *listen, char *err, size_t errlen);

struct plex;

/* Creates the context and every listener. o, st, lg and adm (may be NULL;
 * it gets a heartbeat from the tick) must outlive the plex. Returns 0, or
 * an errno value after logging why. The caller frees with plex_free. */
int  plex_alloc(struct plex **out, const struct plex_opts *o, struct stats *st,
     const struct log *lg, struct admin *adm);
void plex_free(struct plex *p);

/* Runs one turn of the event loop (returns within ~10 ms). */
int plex_service(struct plex *p);

#endif
