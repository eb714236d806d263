/*
 * webhook.h - delivering the outbox to the frontend (docs/webhooks.md).
 *
 * A struct webhook owns two connections to outbox.db: the enqueuing side
 * (webhook_enqueue, webhook_call_get: call them from one thread, egress's
 * event loop) and a delivery thread of its own. The delivery thread runs
 * a libcurl multi handle: it POSTs the head event of up to `concurrency`
 * calls at a time (never two of one call, so each call's events arrive
 * in order), deletes an event on a 2xx answer, and otherwise counts the
 * attempt and retries it after an exponential backoff with jitter, until
 * the event is older than max_age_s: then it moves to the dead_letter
 * table (and a metric). A circuit breaker stops sending after a run of
 * failures and probes with one request per interval instead.
 *
 * Why a thread and not curl inside the lws loop: the loop carries every
 * call's real-time audio, and a webhook's work (DNS, TLS handshakes,
 * SQLite reads and writes) must never stall it. The thread blocks only
 * in curl_multi_poll, and webhook_enqueue wakes it (curl_multi_wakeup).
 */
#ifndef EXO_WEBHOOK_H
#define EXO_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox.h"

struct log;
struct metrics;
struct webhook;

struct webhook_opts {
	struct log     *log;
	struct metrics *metrics;
	const char     *url; /* EXOPLEX_WEBHOOK_URL */
	const char     *secret; /* HMAC key; NULL or "" = unsigned */
	const char     *headers; /* EXOPLEX_WEBHOOK_HEADERS; may be NULL */
	const char     *state_dir; /* EXOPLEX_STATE_DIR: holds outbox.db */
	const char     *sync; /* "normal" (NULL) or "full": see outbox_open */
	/* Numbers are long so a cfg_opt table can bind them; 0 = default. */
	long connect_timeout_ms; /* 0 = 5000 */
	long timeout_ms; /* whole request; 0 = 10000 */
	long backoff_ms; /* first retry delay; 0 = 1000 */
	long backoff_max_ms; /* 0 = 60000 */
	long max_age_s; /* then dead letter; 0 = 86400 */
	long breaker_failures; /* in a row to open; 0 = 5 */
	long breaker_probe_ms; /* open: one probe this often; 0 = 5000 */
	long concurrency; /* requests at once; 0 = 4 */
	long flush_ms; /* at stop, time to deliver what is due; 0 = 3000 */
};

/* Opens the outbox and starts the delivery thread. Returns 0; EINVAL
 * with err filled for a bad setting (headers); another errno value with
 * err filled (the outbox cannot be opened, no thread). The caller frees
 * with webhook_free and keeps o's strings alive. */
int webhook_alloc(struct webhook **out, const struct webhook_opts *o,
    char *err, size_t errlen);
/* Delivers what is due for up to flush_ms, then stops the thread (events
 * still undelivered stay in the outbox for the next start). */
void webhook_free(struct webhook *w);

/* Enqueuing side (one thread). */
int webhook_call_get(
    struct webhook *w, const char *call, struct outbox_call *c);
/* Commits ev (ev->now_us 0 = now) and wakes the delivery thread. Returns
 * 0, or EIO after logging and counting it (the event is lost: the disk
 * is full or broken). */
int webhook_enqueue(struct webhook *w, const struct outbox_new *ev);

/* The frontend's state for /readyz, e.g. "ok, backlog 0" or "down
 * (breaker open: HTTP 503), backlog 12". Thread-safe. Returns 1 when
 * the frontend is taking events. */
int webhook_state(struct webhook *w, char *buf, size_t len);

/* ---- the parts, exposed for tests ------------------------------------ */

/* "sha256=" + 64 lower-case hex digits + NUL */
#define WEBHOOK_SIG_LEN 72

/* X-Exoplex-Signature's value for body: HMAC-SHA256 keyed by secret. */
void webhook_sign(const char *secret, const void *body, size_t len,
    char out[WEBHOOK_SIG_LEN]);

/* EXOPLEX_WEBHOOK_HEADERS: "Name: value" entries separated by newlines or
 * ";;" (white space around names and values is dropped, empty entries
 * are skipped); "@/path" reads the entries from a file. Names are HTTP
 * tokens; values are non-empty and have no control characters; exoplex's
 * own headers (Content-Type, Content-Length, Host, Transfer-Encoding,
 * X-Exoplex-*) cannot be replaced. Writes the entries as "Name: value"
 * lines, each ended by '\n', into buf. Returns 0; EINVAL with err filled
 * (naming the entry, never its value: values are secrets); E2BIG when
 * buf is too small; or errno of reading the file. */
int webhook_headers_parse(
    const char *spec, char *buf, size_t len, char *err, size_t errlen);
/* A cfg_opt check function for EXOPLEX_WEBHOOK_HEADERS. */
int webhook_check_headers(const char *spec, char *err, size_t errlen);
/* A cfg_opt check function for EXOPLEX_WEBHOOK_URL: http:// or https://
 * with a host. */
int webhook_check_url(const char *url, char *err, size_t errlen);

enum wh_breaker_state { WH_CLOSED = 0, WH_OPEN = 1, WH_HALF_OPEN = 2 };

/* The circuit breaker, on a monotonic clock passed in. Closed: requests
 * go. `failures` failed requests in a row open it: nothing goes for
 * probe_us, then one request (half-open) probes; its success closes the
 * breaker, its failure opens it for another probe_us. Any success closes
 * it. */
struct wh_breaker {
	enum wh_breaker_state state;
	unsigned              failures; /* threshold */
	uint64_t              probe_us;
	unsigned              run; /* failures in a row */
	uint64_t              until_us; /* open: when the next probe may go */
};
void wh_breaker_init(
    struct wh_breaker *b, unsigned failures, uint64_t probe_us);
/* How many more requests may start now, with inflight already going
 * (SIZE_MAX when closed). Moves open to half-open when due. */
size_t wh_breaker_room(struct wh_breaker *b, uint64_t now_us, size_t inflight);
/* A request's outcome. Returns true when this closed an open or
 * half-open breaker (the frontend is back). */
bool wh_breaker_done(struct wh_breaker *b, bool ok, uint64_t now_us);

#endif
