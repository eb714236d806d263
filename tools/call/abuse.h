/*
 * abuse.h - a misbehaving "Exotel": one kind of bad input per connection.
 *
 * Each kind is a plan (what to send after the upgrade, or instead of it)
 * run on its own socket by abuse_run, which reports what the server did:
 * the HTTP status, whether it closed the socket and with which code, or
 * that the socket was still open after the wait. abuse_churn opens and
 * drops many sockets quickly. Everything is bounded in count and time.
 */
#ifndef EXO_CALL_ABUSE_H
#define EXO_CALL_ABUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum abuse_kind {
	AB_MEDIA_BEFORE_START = 0,
	AB_INVALID_JSON,
	AB_NOT_OBJECT,
	AB_NO_EVENT,
	AB_INVALID_BASE64,
	AB_ODD_PCM,
	AB_BINARY_FRAME,
	AB_HUGE_FRAME,
	AB_START_MISSING_FIELDS,
	AB_SECOND_START,
	AB_UNKNOWN_EVENT,
	AB_BAD_SAMPLE_RATE,
	AB_NO_START,
	AB_GARBAGE, /* bytes that are not HTTP, instead of the upgrade */
	AB_GARBAGE_WS, /* bytes that are not frames, after the upgrade */
	AB_BAD_PATH,
	AB_FLOOD,
	AB_START_ONLY, /* not bad: connected + a valid start, then wait */
	AB_N
};

const char *abuse_kind_name(enum abuse_kind k);
/* The kind named s, or -1. */
int abuse_kind_parse(const char *s);
/* Whether `--kind all` runs k: every kind but start_only. */
bool abuse_kind_in_all(enum abuse_kind k);
/* Whether --after-start (a valid connected + start first) applies to k;
 * kinds about the start itself, or about never getting there, ignore it. */
bool abuse_kind_after_start_ok(enum abuse_kind k);

struct abuse_opts {
	int      rate; /* of the valid start and media */
	bool     after_start;
	int      wait_ms; /* for the server's reaction */
	int      start_wait_ms; /* for no_start: past the server's deadline */
	size_t   huge_bytes; /* size of the huge frame */
	unsigned flood_n; /* messages in a flood */
	int      io_timeout_ms; /* connect, upgrade, each write */
	const char *host;
	int         port;
	const char *host_hdr;
	const char *path; /* with the query */
	const char *auth; /* Authorization header value, or NULL */
	uint64_t    seed;
};

#define AB_RAW (-1) /* plan entry: bytes as they are, no framing */

struct abuse_msg {
	int    opcode; /* WSRAW_TEXT, WSRAW_BINARY or AB_RAW */
	char  *data;
	size_t len;
};

struct abuse_plan {
	struct abuse_msg *msgs;
	size_t            n;
	bool              upgrade; /* false: msgs go out instead of HTTP */
	const char       *path; /* the upgrade's path */
	int               wait_ms;
	bool              after_start; /* a valid start goes first */
};

/* Builds the plan for kind k. Returns 0 or ENOMEM; free with
 * abuse_plan_free. */
int abuse_plan_make(
    struct abuse_plan *p, enum abuse_kind k, const struct abuse_opts *o);
void abuse_plan_free(struct abuse_plan *p);

struct abuse_result {
	enum abuse_kind kind;
	bool            after_start;
	int             error; /* errno of a failed connect, else 0 */
	int             http_status;
	bool            upgraded;
	size_t          planned, sent; /* messages */
	bool            write_failed;
	const char     *closed_by; /* "server", "client" */
	int             close_code; /* 0 when we closed first */
	char            close_reason[124];
	bool            open_after_wait;
	unsigned long   messages_received;
	double          ms;
};

/* Runs kind k on a fresh connection. Returns 0 (the outcome is in *r) or
 * ENOMEM. */
int abuse_run(
    enum abuse_kind k, const struct abuse_opts *o, struct abuse_result *r);

/* JSON object for r; the caller frees it. NULL on ENOMEM. */
char *abuse_result_json(const struct abuse_result *r);

struct abuse_churn {
	unsigned attempts, tcp_connected, upgraded, http_refused, failed;
	unsigned with_start;
	bool     stopped_early; /* max_ms ran out */
	double   ms;
};

/* n connections opened and dropped one after another, cycling through
 * ways to leave (TCP only, half a request, upgrade then drop, connected
 * then a clean close; with_start adds a valid start then a drop), for at
 * most max_ms. */
void  abuse_churn_run(const struct abuse_opts *o, unsigned n, int max_ms,
     bool with_start, struct abuse_churn *c);
char *abuse_churn_json(const struct abuse_churn *c);

#endif
