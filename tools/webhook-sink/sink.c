/*
 * sink.c - the webhook sink's server: libmicrohttpd on its own thread,
 * every piece of state behind one mutex (the control functions are
 * called from other threads).
 */
#include "sink.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clock.h"
#include "strmap.h"

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

#define MAX_BODY_DEFAULT (1024 * 1024)

/* What a delivery id has been used for. */
struct seen {
	char    *call;
	uint64_t seq;
	bool     accepted;
};

/* Per call: the last seq accepted. */
struct callseq {
	uint64_t last;
};

struct sink {
	struct MHD_Daemon *d;
	pthread_mutex_t    mu;
	char              *secret;
	FILE              *out;
	long               max_body;
	void (*on_request)(void *arg, const struct sink_request *r);
	void *arg;
	int   port;

	/* failure modes */
	long     fail_next; /* 500 for this many more */
	bool     fail_always; /* 503 */
	uint64_t fail_until_us; /* 503 until (mono) */
	long     fail_for_ms_after; /* window to open when fail_next ends */

	struct strmap    *deliveries; /* id → struct seen */
	struct strmap    *calls; /* stream_sid → struct callseq */
	struct strmap    *keys; /* "stream_sid/seq" → delivery id (strdup) */
	struct sink_stats st;
};

struct upload {
	char  *buf;
	size_t len, cap;
	bool   too_big;
};

static void
free_seen(const char *k, void *v, void *arg)
{
	struct seen *s = v;
	free(s->call);
	free(s);
}

static void
free_val(const char *k, void *v, void *arg)
{
	free(v);
}

/* ---- failure modes ---------------------------------------------------- */

/* The status a webhook request gets before any check: 0 = go on. */
static unsigned
fail_status(struct sink *s)
{
	if (s->fail_next > 0) {
		if (--s->fail_next == 0 && s->fail_for_ms_after > 0) {
			s->fail_until_us = mono_us()
			    + (uint64_t)s->fail_for_ms_after * 1000;
			s->fail_for_ms_after = 0;
		}
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	if (s->fail_always || mono_us() < s->fail_until_us)
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	return 0;
}

void
sink_fail_now(struct sink *s)
{
	pthread_mutex_lock(&s->mu);
	s->fail_always = true;
	pthread_mutex_unlock(&s->mu);
}

void
sink_ok_now(struct sink *s)
{
	pthread_mutex_lock(&s->mu);
	s->fail_always       = false;
	s->fail_until_us     = 0;
	s->fail_next         = 0;
	s->fail_for_ms_after = 0;
	pthread_mutex_unlock(&s->mu);
}

void
sink_fail_for(struct sink *s, long ms)
{
	pthread_mutex_lock(&s->mu);
	s->fail_until_us = mono_us() + (uint64_t)(ms > 0 ? ms : 0) * 1000;
	pthread_mutex_unlock(&s->mu);
}

void
sink_fail_next(struct sink *s, long n)
{
	pthread_mutex_lock(&s->mu);
	s->fail_next = n > 0 ? n : 0;
	pthread_mutex_unlock(&s->mu);
}

/* ---- checking one request --------------------------------------------- */

static int
sig_ok(struct sink *s, const char *hdr, const char *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int  n = 0;
	char          want[7 + 64 + 1];

	if (!s->secret)
		return -1;
	if (!hdr)
		return 0;
	HMAC(EVP_sha256(), s->secret, (int)strlen(s->secret),
	    (const unsigned char *)body, len, mac, &n);
	memcpy(want, "sha256=", 7);
	for (unsigned i = 0; i < n && i < 32; i++)
		snprintf(want + 7 + 2 * i, 3, "%02x", mac[i]);
	return strlen(hdr) == 71 && CRYPTO_memcmp(hdr, want, 71) == 0;
}

struct hdrs {
	char  *buf;
	size_t len, cap;
};

static mhd_result
collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	struct hdrs *h    = cls;
	size_t       need = strlen(k) + (v ? strlen(v) : 0) + 4;

	if (h->len + need > h->cap) {
		size_t cap = (h->cap + need) * 2;
		char  *b   = realloc(h->buf, cap);
		if (!b)
			return MHD_NO;
		h->buf = b;
		h->cap = cap;
	}
	h->len += (size_t)snprintf(
	    h->buf + h->len, h->cap - h->len, "%s: %s\n", k, v ? v : "");
	return MHD_YES;
}

static const char *
body_str(cJSON *o, const char *k)
{
	cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Checks the body against the contract; adds error strings to errs. */
static void
check_body(
    cJSON *o, const char *event, cJSON *errs, const char **sid, uint64_t *seq)
{
	static const char *const strs[]
	    = { "event", "call_sid", "stream_sid", "account_sid", "ts" };
	cJSON *q;

	if (!cJSON_IsObject(o)) {
		cJSON_AddItemToArray(
		    errs, cJSON_CreateString("body is not a JSON object"));
		return;
	}
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!body_str(o, strs[i])) {
			char m[64];
			snprintf(m, sizeof(m), "body.%s missing", strs[i]);
			cJSON_AddItemToArray(errs, cJSON_CreateString(m));
		}
	q = cJSON_GetObjectItemCaseSensitive(o, "seq");
	if (!cJSON_IsNumber(q) || q->valuedouble < 1)
		cJSON_AddItemToArray(
		    errs, cJSON_CreateString("body.seq missing or < 1"));
	else
		*seq = (uint64_t)q->valuedouble;
	*sid = body_str(o, "stream_sid");
	if (event && body_str(o, "event")
	    && strcmp(event, body_str(o, "event")))
		cJSON_AddItemToArray(errs,
		    cJSON_CreateString(
		        "X-Exoplex-Event differs from body.event"));
	const char *ts = body_str(o, "ts");
	if (ts) { /* 2026-11-21T16:40:00.123Z */
		int  y, mo, d, h, mi, sec, ms;
		char z = 0;
		if (strlen(ts) != 24
		    || sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d,
		           &h, &mi, &sec, &ms, &z)
		        != 8
		    || z != 'Z')
			cJSON_AddItemToArray(errs,
			    cJSON_CreateString("body.ts is not RFC 3339 UTC "
			                       "with milliseconds"));
	}
}

static void
count_event(struct sink *s, const char *event)
{
	s->st.events++;
	if (!event)
		return;
	if (!strcmp(event, "call.started"))
		s->st.started++;
	else if (!strcmp(event, "transcript"))
		s->st.transcripts++;
	else if (!strcmp(event, "dtmf"))
		s->st.dtmf++;
	else if (!strcmp(event, "call.ended"))
		s->st.ended++;
}

/* Bookkeeping of ids, calls and order; returns the errors found. */
static void
track(struct sink *s, const char *delivery, const char *sid, uint64_t seq,
    bool accepted, bool *dup, bool *retry, cJSON *errs, const char *event)
{
	struct seen *sn = strmap_get(s->deliveries, delivery);
	char         key[512];

	*dup = *retry = false;
	if (sn) {
		if (strcmp(sn->call, sid) || sn->seq != seq) {
			s->st.delivery_reused++;
			cJSON_AddItemToArray(errs,
			    cJSON_CreateString("delivery id reused for "
			                       "another event"));
			return;
		}
		if (sn->accepted)
			*dup = true, s->st.duplicates++;
		else
			*retry = true, s->st.retries++;
	} else {
		snprintf(
		    key, sizeof(key), "%s/%llu", sid, (unsigned long long)seq);
		if (strmap_get(s->keys, key)) {
			s->st.seq_reused++;
			cJSON_AddItemToArray(errs,
			    cJSON_CreateString("a new delivery id for an "
			                       "event already seen"));
			accepted = false; /* not a new event: not ordered */
		} else {
			char *id = strdup(delivery);
			if (id && strmap_put(s->keys, key, id))
				free(id);
		}
		if (!(sn = calloc(1, sizeof(*sn))) || !(sn->call = strdup(sid))
		    || strmap_put(s->deliveries, delivery, sn)) {
			if (sn)
				free(sn->call);
			free(sn);
			return;
		}
		sn->seq = seq;
	}
	if (!accepted || sn->accepted)
		return;
	sn->accepted      = true;
	struct callseq *c = strmap_get(s->calls, sid);
	if (!c) {
		if (!(c = calloc(1, sizeof(*c)))
		    || strmap_put(s->calls, sid, c)) {
			free(c);
			return;
		}
	}
	if (seq != c->last + 1) {
		s->st.out_of_order++;
		char m[96];
		snprintf(m, sizeof(m), "seq %llu after %llu",
		    (unsigned long long)seq, (unsigned long long)c->last);
		cJSON_AddItemToArray(errs, cJSON_CreateString(m));
	}
	if (seq > c->last)
		c->last = seq;
	count_event(s, event);
}

static void
record(struct sink *s, unsigned status, const char *event,
    const char *delivery, int sigok, bool dup, bool retry, cJSON *errs,
    cJSON *body, const char *raw)
{
	cJSON          *o = cJSON_CreateObject();
	char            at[32], *line;
	struct timespec ts;
	struct tm       tm;

	if (!s->out || !o) {
		cJSON_Delete(o);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(at + n, sizeof(at) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	cJSON_AddStringToObject(o, "at", at);
	cJSON_AddNumberToObject(o, "status", status);
	event ? cJSON_AddStringToObject(o, "event", event)
	      : cJSON_AddNullToObject(o, "event");
	delivery ? cJSON_AddStringToObject(o, "delivery", delivery)
	         : cJSON_AddNullToObject(o, "delivery");
	sigok < 0 ? cJSON_AddNullToObject(o, "signature_ok")
	          : cJSON_AddBoolToObject(o, "signature_ok", sigok);
	cJSON_AddBoolToObject(o, "duplicate", dup);
	cJSON_AddBoolToObject(o, "retry", retry);
	cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(errs, true));
	if (body)
		cJSON_AddItemToObject(o, "body", cJSON_Duplicate(body, true));
	else
		cJSON_AddStringToObject(o, "body", raw);
	if ((line = cJSON_PrintUnformatted(o))) {
		fprintf(s->out, "%s\n", line);
		fflush(s->out);
		free(line);
	}
	cJSON_Delete(o);
}

/* ---- HTTP ------------------------------------------------------------- */

static mhd_result
reply(struct MHD_Connection *c, unsigned status, const char *body,
    const char *ctype)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	mhd_result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static mhd_result
webhook(struct sink *s, struct MHD_Connection *c, struct upload *u)
{
	const char *event = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, "X-Exoplex-Event");
	const char *delivery = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, "X-Exoplex-Delivery");
	const char *sig = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, "X-Exoplex-Signature");
	const char *ctype
	    = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	struct hdrs h    = { 0 };
	cJSON      *errs = cJSON_CreateArray(), *body = NULL;
	const char *sid = NULL;
	uint64_t    seq = 0;
	bool        dup = false, retry = false;
	unsigned    status;
	int         sigok;
	char        raw_empty[1] = "";
	const char *raw          = u->buf ? u->buf : raw_empty;

	MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &h);
	pthread_mutex_lock(&s->mu);
	s->st.requests++;
	sigok = sig_ok(s, sig, raw, u->len);
	if (sigok == 1)
		s->st.verified++;
	else if (sigok == 0) {
		s->st.bad_signatures++;
		cJSON_AddItemToArray(errs,
		    cJSON_CreateString(sig ? "signature does not match"
		                           : "X-Exoplex-Signature missing"));
	}
	if (!event || !*event)
		cJSON_AddItemToArray(
		    errs, cJSON_CreateString("X-Exoplex-Event missing"));
	if (!delivery || !*delivery)
		cJSON_AddItemToArray(
		    errs, cJSON_CreateString("X-Exoplex-Delivery missing"));
	if (!ctype || strncmp(ctype, "application/json", 16))
		cJSON_AddItemToArray(errs,
		    cJSON_CreateString(
		        "Content-Type is not application/json"));
	if (u->too_big)
		cJSON_AddItemToArray(
		    errs, cJSON_CreateString("body too large"));
	else {
		body = cJSON_ParseWithLength(raw, u->len);
		check_body(body, event, errs, &sid, &seq);
	}
	/* Header or body errors are the sender's bug: 400, not tracked. */
	bool bad = cJSON_GetArraySize(errs) > (sigok == 0 ? 1 : 0);
	if (bad) {
		status = MHD_HTTP_BAD_REQUEST;
		s->st.bad_requests++;
	} else if ((status = fail_status(s))) {
		s->st.failed_on_demand++;
	} else {
		status = MHD_HTTP_OK;
		s->st.accepted++;
	}
	if (!bad)
		track(s, delivery, sid, seq, status == MHD_HTTP_OK, &dup,
		    &retry, errs, event);
	record(s, status, event, delivery, sigok, dup, retry, errs, body, raw);
	if (s->on_request) {
		struct sink_request r = { status, event, delivery, sid, seq,
			sigok, dup, retry, raw, u->len, h.buf ? h.buf : "" };
		s->on_request(s->arg, &r);
	}
	pthread_mutex_unlock(&s->mu);
	cJSON_Delete(errs);
	cJSON_Delete(body);
	free(h.buf);
	return reply(c, status,
	    status == MHD_HTTP_OK ? "{\"ok\":true}"
	        : status == MHD_HTTP_BAD_REQUEST
	        ? "{\"ok\":false}"
	        : "{\"ok\":false,\"retry\":true}",
	    "application/json");
}

static long
arg_long(struct MHD_Connection *c, const char *k, long def)
{
	const char *v
	    = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
	return v ? strtol(v, NULL, 10) : def;
}

static mhd_result
control(struct sink *s, struct MHD_Connection *c, const char *url)
{
	if (!strcmp(url, "/control/fail-now"))
		sink_fail_now(s);
	else if (!strcmp(url, "/control/ok-now"))
		sink_ok_now(s);
	else if (!strcmp(url, "/control/fail-for"))
		sink_fail_for(s, arg_long(c, "ms", 0));
	else if (!strcmp(url, "/control/fail-next"))
		sink_fail_next(s, arg_long(c, "n", 1));
	else
		return reply(
		    c, MHD_HTTP_NOT_FOUND, "unknown control\n", "text/plain");
	return reply(c, MHD_HTTP_OK, "ok\n", "text/plain");
}

static mhd_result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *data,
    size_t *data_size, void **con_cls)
{
	struct sink   *s = cls;
	struct upload *u = *con_cls;

	if (!u) {
		if (!(u = calloc(1, sizeof(*u))))
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*data_size) {
		if (u->len + *data_size > (size_t)s->max_body)
			u->too_big = true;
		else {
			if (u->len + *data_size + 1 > u->cap) {
				size_t cap = (u->len + *data_size + 1) * 2;
				char  *b   = realloc(u->buf, cap);
				if (!b)
					return MHD_NO;
				u->buf = b;
				u->cap = cap;
			}
			memcpy(u->buf + u->len, data, *data_size);
			u->len += *data_size;
			u->buf[u->len] = 0;
		}
		*data_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/stats")) {
		char *j = sink_stats_json(s);
		if (!j)
			return MHD_NO;
		mhd_result r = reply(c, MHD_HTTP_OK, j, "application/json");
		free(j);
		return r;
	}
	if (!strncmp(url, "/control/", 9))
		return control(s, c, url);
	if (strcmp(method, "POST"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only\n",
		    "text/plain");
	return webhook(s, c, u);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	if (u) {
		free(u->buf);
		free(u);
		*con_cls = NULL;
	}
}

/* ---- life ------------------------------------------------------------- */

int
sink_start(
    struct sink **out, const struct sink_opts *o, char *err, size_t errlen)
{
	struct sink     *s;
	char             host[256], port[16];
	const char      *addr  = o->listen ? o->listen : "127.0.0.1:0", *colon;
	struct addrinfo  hints = { .ai_socktype = SOCK_STREAM,
		 .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST };
	struct addrinfo *ai    = NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	int      rc;

	*out = NULL;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		colon          = rb && rb[1] == ':' ? rb + 1 : NULL;
		snprintf(host, sizeof(host), "%.*s",
		    rb ? (int)(rb - addr - 1) : 0, addr + 1);
	} else {
		colon = strrchr(addr, ':');
		snprintf(host, sizeof(host), "%.*s",
		    colon ? (int)(colon - addr) : 0, addr);
	}
	if (!colon || !colon[1]) {
		snprintf(err, errlen, "--listen: '%s' is not host:port", addr);
		return EINVAL;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai))) {
		snprintf(
		    err, errlen, "--listen: '%s': %s", addr, gai_strerror(rc));
		return EINVAL;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		freeaddrinfo(ai);
		return ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->max_body   = o->max_body > 0 ? o->max_body : MAX_BODY_DEFAULT;
	s->on_request = o->on_request;
	s->arg        = o->arg;
	s->fail_next  = o->fail_first > 0 ? o->fail_first : 0;
	s->fail_for_ms_after = s->fail_next ? o->fail_for_ms : 0;
	if (!s->fail_next && o->fail_for_ms > 0)
		s->fail_until_us = mono_us() + (uint64_t)o->fail_for_ms * 1000;
	rc = ENOMEM;
	if ((o->secret && *o->secret && !(s->secret = strdup(o->secret)))
	    || strmap_alloc(&s->deliveries) || strmap_alloc(&s->calls)
	    || strmap_alloc(&s->keys))
		goto fail;
	if (o->out && !(s->out = fopen(o->out, "a"))) {
		rc = errno;
		snprintf(err, errlen, "--out: cannot open '%s': %s", o->out,
		    strerror(rc));
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s,
	    MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
	    completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	    MHD_OPTION_END);
	if (!s->d) {
		rc = EADDRINUSE;
		snprintf(err, errlen, "cannot listen on %s", addr);
		goto fail;
	}
	const union MHD_DaemonInfo *di
	    = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : 0;
	freeaddrinfo(ai);
	*out = s;
	return 0;
fail:
	if (rc == ENOMEM)
		snprintf(err, errlen, "out of memory");
	freeaddrinfo(ai);
	sink_stop(s);
	return rc;
}

void
sink_stop(struct sink *s)
{
	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	if (s->out)
		fclose(s->out);
	if (s->deliveries) {
		strmap_each(s->deliveries, free_seen, NULL);
		strmap_free(s->deliveries);
	}
	if (s->calls) {
		strmap_each(s->calls, free_val, NULL);
		strmap_free(s->calls);
	}
	if (s->keys) {
		strmap_each(s->keys, free_val, NULL);
		strmap_free(s->keys);
	}
	pthread_mutex_destroy(&s->mu);
	free(s->secret);
	free(s);
}

int
sink_port(const struct sink *s)
{
	return s->port;
}

void
sink_stats(struct sink *s, struct sink_stats *st)
{
	pthread_mutex_lock(&s->mu);
	*st = s->st;
	pthread_mutex_unlock(&s->mu);
}

char *
sink_stats_json(struct sink *s)
{
	cJSON *o = cJSON_CreateObject(), *by;
	char  *j = NULL;

	if (!o)
		return NULL;
	pthread_mutex_lock(&s->mu);
	struct sink_stats st   = s->st;
	const char       *mode = s->fail_next > 0 ? "fail-next"
	          : s->fail_always                ? "fail-now"
	          : mono_us() < s->fail_until_us  ? "fail-for"
	                                          : "ok";
	long              left = s->fail_next;
	pthread_mutex_unlock(&s->mu);
#define N(k) cJSON_AddNumberToObject(o, #k, (double)st.k)
	N(requests);
	N(accepted);
	N(failed_on_demand);
	N(verified);
	N(bad_signatures);
	N(bad_requests);
	N(duplicates);
	N(retries);
	N(delivery_reused);
	N(seq_reused);
	N(out_of_order);
	N(events);
#undef N
	if ((by = cJSON_AddObjectToObject(o, "by_event"))) {
		cJSON_AddNumberToObject(
		    by, "call.started", (double)st.started);
		cJSON_AddNumberToObject(
		    by, "transcript", (double)st.transcripts);
		cJSON_AddNumberToObject(by, "dtmf", (double)st.dtmf);
		cJSON_AddNumberToObject(by, "call.ended", (double)st.ended);
	}
	cJSON_AddStringToObject(o, "mode", mode);
	cJSON_AddNumberToObject(o, "fail_next", (double)left);
	j = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return j;
}
