/*
 * summary.h - what a simulated call saw, as JSON, and the expectations.
 */
#ifndef EXO_CALL_SUMMARY_H
#define EXO_CALL_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gaps.h"
#include "opts.h"
#include "rxcheck.h"

struct call_result {
	char stream_sid[EXOMSG_SID_LEN * 2 + 1];
	char call_sid[EXOMSG_SID_LEN * 2 + 1];
	bool connected;
	int  http_status; /* of a refused upgrade; 0 if none */
	char error[160]; /* why the connection failed */

	double      seconds_sent;
	uint64_t    messages_sent, media_sent, dtmf_sent, marks_echoed;
	uint64_t    messages_received, media_messages, marks_received;
	uint64_t    clears_received, pcm_bytes_received, samples_cleared;
	uint64_t    viol[RXV__COUNT];
	uint64_t    sid_absent, after_stop;
	double      max_lead_ms;
	uint64_t    underrun_ticks, underruns;
	double      first_audio_ms; /* < 0: no audio */
	const char *closed_by; /* "server", "client" or NULL */
	int         close_code;
	bool        closed_before_stop;
	struct gaps gaps; /* quiet runs heard after the first audio */

	/* All audio received, in order, for the analysis. Not owned. */
	const int16_t *rx_pcm;
	size_t         rx_n;
	int            rate;
	double         dominant_hz, rms_dbfs; /* set by summary_analyse */
};

/* Fills dominant_hz and rms_dbfs from rx_pcm. */
void summary_analyse(struct call_result *r);

/* The summary of n calls as one line of JSON; malloc'd, the caller frees
 * it. NULL on ENOMEM. */
char *summary_json(
    const struct call_opts *o, const struct call_result *r, size_t n);

/* Checks o's expectations against every call. Writes one line per failed
 * expectation, naming it, to err (may be NULL). Returns how many failed. */
int summary_check(const struct call_opts *o, const struct call_result *r,
    size_t n, char *err, size_t errlen);

#endif
