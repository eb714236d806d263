/*
 * sink.h - a strict webhook receiver for tests (exoplex-webhook-sink).
 *
 * An HTTP server (libmicrohttpd, its own thread) that takes exoplex's
 * webhook POSTs on any path but /stats and /control/..., checks each one
 * against docs/webhooks.md (X-Exoplex-Event and X-Exoplex-Delivery
 * present, the body a JSON object whose event, call_sid, stream_sid,
 * account_sid, seq and ts are there and agree with the headers; the
 * X-Exoplex-Signature when a secret is set) and keeps count:
 *
 * - a delivery id already answered 2xx is a duplicate (at least once
 *   allows it); one answered with a failure before is a retry; the same
 *   id with another call or seq is `delivery_reused` (an error), and the
 *   same call and seq under a new id is `seq_reused` (an error);
 * - per call (stream_sid), a newly accepted event whose seq is not the
 *   last accepted one + 1 is `out_of_order`.
 *
 * It can fail on demand: the first N requests get 500, then (or from the
 * start) requests get 503 for M ms; /control/fail-now, /control/ok-now,
 * /control/fail-for?ms=M and /control/fail-next?n=N change that at run
 * time. Failed requests are checked and counted too. /stats answers the
 * counts as JSON.
 *
 * Every request is written to the out file (if any) as one JSON line:
 * {"at":..., "status":200, "event":..., "delivery":..., "signature_ok":
 * true|false|null, "duplicate":bool, "retry":bool, "errors":[...],
 * "body":{...}}.
 */
#ifndef EXO_SINK_H
#define EXO_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink;

/* One request, as the on_request callback sees it (pointers valid only
 * during the call). */
struct sink_request {
	unsigned    status; /* what was answered */
	const char *event; /* X-Exoplex-Event; NULL if absent */
	const char *delivery; /* X-Exoplex-Delivery; NULL if absent */
	const char *stream_sid; /* from the body; NULL if absent */
	uint64_t    seq; /* from the body; 0 if absent */
	int         signature_ok; /* 1, 0, or -1 (no secret configured) */
	bool        duplicate;
	bool        retry;
	const char *body;
	size_t      body_len;
	const char *headers; /* "name: value\n" lines as received */
};

struct sink_opts {
	const char *listen; /* "127.0.0.1:0" (0 = any free port) */
	const char *secret; /* NULL: signatures are not checked */
	const char *out; /* JSON lines file; NULL = none */
	long        fail_first; /* answer 500 to the first N requests */
	long        fail_for_ms; /* then 503 for M ms */
	long        max_body; /* bytes; 0 = 1 MiB */
	/* Optional: called on the server thread for every webhook request,
	 * under the sink's lock (do not call sink functions from it). */
	void (*on_request)(void *arg, const struct sink_request *r);
	void *arg;
};

/* Starts the server. Returns 0, or an errno value with err filled. The
 * caller stops it with sink_stop; o's strings are copied. */
int sink_start(
    struct sink **out, const struct sink_opts *o, char *err, size_t errlen);
void sink_stop(struct sink *s);
int  sink_port(const struct sink *s);

struct sink_stats {
	uint64_t requests; /* webhook requests, any outcome */
	uint64_t accepted; /* answered 2xx (duplicates included) */
	uint64_t failed_on_demand; /* answered 500/503 as told */
	uint64_t verified; /* signature checked and right */
	uint64_t bad_signatures; /* wrong or missing with a secret */
	uint64_t bad_requests; /* answered 400: headers or body wrong */
	uint64_t duplicates;
	uint64_t retries;
	uint64_t delivery_reused;
	uint64_t seq_reused;
	uint64_t out_of_order;
	uint64_t events; /* distinct events accepted */
	uint64_t started, transcripts, dtmf, ended; /* distinct, by type */
};
void sink_stats(struct sink *s, struct sink_stats *st);
/* The same as JSON (malloc'd; the caller frees), with by_event and the
 * failure mode. */
char *sink_stats_json(struct sink *s);

/* Failure on demand. */
void sink_fail_now(struct sink *s); /* 503 until sink_ok_now */
void sink_ok_now(struct sink *s); /* clears every failure mode */
void sink_fail_for(struct sink *s, long ms); /* 503 for ms from now */
void sink_fail_next(struct sink *s, long n); /* 500 for the next n */

#endif
