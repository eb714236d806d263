/*
 * opts.h - exoplex-call's command line.
 */
#ifndef EXO_CALL_OPTS_H
#define EXO_CALL_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "exomsg.h"
#include "playout.h"

#define OPTS_MAX_CUSTOM 16
#define OPTS_MAX_DTMF 64

enum opts_source { SRC_TONE = 0, SRC_WAV, SRC_SPEECH, SRC_SILENCE };

struct opts_dtmf {
	char     digit;
	unsigned at_ms; /* from the start message */
	unsigned duration_ms; /* the "duration" field */
};

struct call_opts {
	/* The URL, split. path includes the query. */
	const char *url;
	char        url_shown[2400]; /* url with the password as *** */
	bool        tls;
	char        host[256];
	int         port;
	char        path[2048];
	char        userinfo[256]; /* "user:pass" from the URL, or "" */
	const char *bearer; /* Authorization: Bearer */
	bool        insecure; /* accept any server certificate */
	const char *ca_file;

	int              rate;
	int              chunk_ms;
	double           seconds;
	enum opts_source source;
	double           tone_hz;
	double           level_dbfs;
	const char      *wav;

	const char         *from, *to, *account;
	const char         *stream_sid, *call_sid; /* NULL: generated */
	struct exomsg_param custom[OPTS_MAX_CUSTOM];
	size_t              ncustom;
	bool                custom_empty;
	bool                numbers;
	struct opts_dtmf    dtmf[OPTS_MAX_DTMF];
	size_t              ndtmf;
	const char         *stop_reason; /* NULL: close without stop */
	int                 linger_ms;
	int                 connect_timeout_ms;

	enum playout_clear_marks clear_marks;
	int                      max_lead_ms;
	int                      gap_ms; /* quiet runs reported as gaps */
	const char              *record;
	int                      calls;
	int                      ramp_ms; /* spread of call starts */
	bool                     spread; /* calls' 20 ms phases spread */
	unsigned long long       seed;
	bool                     seed_set;
	bool                     per_call;
	double                   analyze_seconds; /* kept per call */
	bool                     verbose;

	double      expect_hz, expect_tolerance, expect_min_seconds;
	bool        expect_no_violations;
	const char *expect_closed_by;
	int         expect_close_code; /* 0: not checked */
};

/* Parses argv into o (strings point into argv). Returns 0; 1 after
 * printing help; EINVAL with err filled for a bad argument. */
int opts_parse(
    struct call_opts *o, int argc, char **argv, char *err, size_t errlen);

/* Splits a ws:// or wss:// URL into o's url fields. Returns 0 or EINVAL. */
int opts_split_url(
    struct call_opts *o, const char *url, char *err, size_t errlen);

void opts_usage(const char *prog);

#endif
