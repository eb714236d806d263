/*
 * callbus.h - the bus frames ingress sends about a call, built from what
 * Exotel said. Pure functions that fill an Exo__Frame whose pointers
 * point into the caller's call_info and a caller-provided scratch struct;
 * bus_send packs at once, so both may be reused right after.
 */
#ifndef EXO_INGRESS_CALLBUS_H
#define EXO_INGRESS_CALLBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "exoplex.pb-c.h"
#include "exotel.h"

/* What ingress knows about a live call. */
struct call_info {
	char                stream_sid[EXOTEL_SID_MAX + 1];
	struct exotel_start start; /* as parsed from Exotel's start */
	int                 rate; /* the call's rate, decided */
	uint64_t            started_us; /* wall clock of start */
	/* "agent" or "transcribe" (static strings): custom_parameters.mode
	 * at start, then egress's call_mode; NULL = not decided yet. Goes
	 * in call_start.mode and call_stop.mode. */
	const char *mode;
	const char *refused; /* call_start.refused: NULL, or why refused */
};

/* Storage behind a call_start frame's pointers. */
struct callbus_start {
	Exo__CallStart                         cs;
	Exo__CallStart__CustomParametersEntry  ce[EXOTEL_KV_MAX];
	Exo__CallStart__CustomParametersEntry *cp[EXOTEL_KV_MAX];
	Exo__CallStart__ExtraEntry             ee[EXOTEL_KV_MAX];
	Exo__CallStart__ExtraEntry            *ep[EXOTEL_KV_MAX];
};

/* Fills f (call_id, body) with ci's call_start. The caller sets seq and
 * ts_us. */
void callbus_start_frame(Exo__Frame *f, struct callbus_start *b,
    const struct call_info *ci, bool reannounce);

/* "agent" or "transcribe" for v in any case (static strings); else NULL. */
const char *callbus_mode_name(const char *v);

/* The mode custom_parameters.mode asks for: "agent" or "transcribe"
 * (any case), else NULL; *bad (may be NULL) is set when the key is there
 * with another value. */
const char *callbus_mode_asked(const struct exotel_start *s, bool *bad);

/* Fills f with caller_audio / call_stop / dtmf for ci. */
void callbus_audio_frame(Exo__Frame *f, Exo__Audio *a,
    const struct call_info *ci, const uint8_t *pcm, size_t n);
void callbus_stop_frame(Exo__Frame *f, Exo__CallStop *s,
    const struct call_info *ci, const char *reason);
void callbus_dtmf_frame(Exo__Frame *f, Exo__Dtmf *d,
    const struct call_info *ci, const struct exotel_dtmf *x);
/* mark{name} (an echo from Exotel) and playout{playing, lag_ms}. */
void callbus_mark_frame(
    Exo__Frame *f, Exo__Mark *m, const struct call_info *ci, const char *name);
void callbus_playout_frame(Exo__Frame *f, Exo__Playout *p,
    const struct call_info *ci, bool playing, uint32_t lag_ms);

#endif
