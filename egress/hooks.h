/*
 * hooks.h - egress's calls as webhook events (docs/webhooks.md).
 *
 * The glue between egress's call table and the webhook outbox: a struct
 * hooks_call per call numbers its events (seq, from 1, continued across
 * egress restarts from the outbox's call record), builds their bodies
 * (events.h) and commits them (webhook.h). A call re-announced to a
 * restarted egress whose call.started is already in the outbox does not
 * get a second one. With EXOPLEX_WEBHOOK_URL unset everything here is a
 * no-op: hooks_call_open returns NULL and every hooks_call_* function
 * accepts NULL.
 *
 * All functions but hooks_state run on egress's event-loop thread.
 */
#ifndef EXO_HOOKS_H
#define EXO_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "exoplex.pb-c.h"
#include "webhook.h"

struct cfg_opt;
struct hooks;
struct hooks_call;

/* Fills out[0..HOOKS_CFG_N) with the webhook settings bound to o
 * (EXOPLEX_WEBHOOK_*, EXOPLEX_STATE_DIR, EXOPLEX_OUTBOX_SYNC; see
 * docs/webhooks.md). Returns HOOKS_CFG_N. */
#define HOOKS_CFG_N 14
size_t hooks_cfg_opts(struct cfg_opt *out, struct webhook_opts *o);

/* o->url NULL or "": webhooks off (said once in the log). Otherwise
 * starts delivery (webhook_alloc: see its errors). The caller frees with
 * hooks_free and keeps o's strings alive. */
int  hooks_alloc(struct hooks **out, const struct webhook_opts *o, char *err,
     size_t errlen);
void hooks_free(struct hooks *h);

/* For /readyz's detail: "webhooks off" or "webhooks ok, backlog 0", ...
 * Thread-safe. Never makes egress unready: a down frontend is a detail. */
void hooks_state(struct hooks *h, char *buf, size_t len);

/* A call starts (or is re-announced, or was refused: cs->refused). Queues
 * call.started unless the outbox says it already was. persona: the one
 * chosen for the call (NULL = cs->persona); mode: the call's mode, in
 * call.started and call.ended (NULL = cs->mode; "refused" for a refused
 * call). Returns NULL when webhooks are off or the call cannot be tracked
 * (logged); free with hooks_call_end or hooks_call_close. */
struct hooks_call *hooks_call_open(struct hooks *h, const Exo__CallStart *cs,
    const char *persona, const char *mode);

/* A call egress does not know (it was restarted) ends: the call as the
 * outbox remembers it, if its call.started was queued and its call.ended
 * was not; else NULL. End it with hooks_call_end (counters unknown). */
struct hooks_call *hooks_call_find(struct hooks *h, const char *stream_sid);

/* The persona once it is decided (for call.ended). */
void hooks_call_persona(struct hooks_call *c, const char *persona);
/* The mode, for call.ended (a call from hooks_call_find has none). */
void hooks_call_mode(struct hooks_call *c, const char *mode);
/* call.ended's detail: why, beyond its reason (e.g. "stt_not_configured"). */
void hooks_call_detail(struct hooks_call *c, const char *detail);

void hooks_call_dtmf(struct hooks_call *c, const char *digit,
    unsigned duration_ms, uint64_t ts_us);

/* speaker "caller" or "agent"; start_ms/end_ms: from the call's start
 * (its call_start.started_us), -1 = unknown. */
void hooks_call_transcript(struct hooks_call *c, const char *speaker,
    const char *text, bool final, int64_t start_ms, int64_t end_ms);

/* A wall clock time (µs) as ms from the call's start (0 if earlier, -1 for
 * no call or time 0). */
int64_t hooks_call_ms(const struct hooks_call *c, uint64_t wall_us);

/* Queues call.ended (reason: see events_reason) and frees c. */
void hooks_call_end(
    struct hooks_call *c, const char *reason, const struct events_counters *k);

/* Frees c without an event: egress stops while the call goes on (a
 * restarted egress continues it). */
void hooks_call_close(struct hooks_call *c);

#endif
