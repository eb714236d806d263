/*
 * scribe.c - the Scribe stand-in's libwebsockets side (see scribe.h).
 */
#include "scribe.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fsstats.h"
#include "judge.h"
#include "log.h"
#include "model.h"

#define TICK_US (100 * 1000)
#define DEFAULT_PATH "/v1/speech-to-text/realtime"
#define DEFAULT_MODELS "scribe_v2_realtime,scribe_v2_realtime_turbo"
#define RX_MAX (1024 * 1024)
#define OUT_MAX 4096
#define VIOL_LOG_MAX 10 /* violations logged per session at warn */

enum fss_state { FSS_NEW = 0, FSS_LIVE, FSS_CLOSING, FSS_ENDED };

struct outmsg {
	struct outmsg *next;
	size_t         len;
	unsigned char  buf[]; /* LWS_PRE + len */
};

struct scribe;

/* Per connection; lws allocates it zeroed. */
struct fss {
	struct scribe *sc;
	struct fss    *prev, *next;
	struct lws    *wsi;
	uint64_t       id;
	enum fss_state st;
	struct fsq     q;
	char           key[256];
	bool           have_key;
	struct fsmodel model;
	bool           model_ok;
	uint64_t       started_us, last_chunk_us;
	bool           chunk_seen;
	int            close_code;
	const char    *close_why;
	bool           close_sent;
	struct outmsg *head, *tail;
	size_t         nout;
	char          *rx;
	size_t         rx_len, rx_cap;
	bool           rx_bin, rx_over;
	int            client_close;
	int            viol_logged;
};

struct scribe {
	struct scribe_opts     o;
	struct fsstats        *st;
	const struct log      *lg;
	struct lws_context    *ctx;
	struct lws_vhost      *vh;
	struct lws_protocols   protos[2];
	lws_sorted_usec_list_t sul;
	struct fss            *list;
	uint64_t               next_id;
	int                    port;
};

static void
send_text(struct fss *s, char *json)
{
	struct outmsg *m;
	size_t         n;

	if (!json)
		return;
	n = strlen(json);
	if (s->nout >= OUT_MAX || !(m = malloc(sizeof(*m) + LWS_PRE + n))) {
		free(json);
		return;
	}
	m->next = NULL;
	m->len  = n;
	memcpy(m->buf + LWS_PRE, json, n);
	free(json);
	if (s->tail)
		s->tail->next = m;
	else
		s->head = m;
	s->tail = m;
	s->nout++;
	lws_callback_on_writable(s->wsi);
}

static cJSON *
msg(const char *type)
{
	cJSON *j = cJSON_CreateObject();
	if (j)
		cJSON_AddStringToObject(j, "message_type", type);
	return j;
}

static void
send_json(struct fss *s, cJSON *j)
{
	if (!j)
		return;
	send_text(s, cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
}

/* An error message, then a close with code (research §3.6: "an error
 * message will be returned before the WebSocket connection is closed"). */
static void
fail(struct fss *s, const char *type, const char *text, int code)
{
	cJSON *j = msg(type);

	if (j)
		cJSON_AddStringToObject(j, "error", text);
	send_json(s, j);
	s->st         = FSS_CLOSING;
	s->close_code = code;
	s->close_why  = type;
	lws_callback_on_writable(s->wsi);
}

static void
close_quietly(struct fss *s, int code, const char *why)
{
	s->st         = FSS_CLOSING;
	s->close_code = code;
	s->close_why  = why;
	lws_callback_on_writable(s->wsi);
}

static void
report_viol(void *arg, const char *kind, const char *detail)
{
	struct fss *s = arg;

	fsstats_violation(s->sc->st, kind);
	log_write(s->sc->lg,
	    s->viol_logged < VIOL_LOG_MAX ? LOG_WARN : LOG_DEBUG, NULL,
	    "session %llu: violation %s: %s", (unsigned long long)s->id, kind,
	    detail ? detail : "");
	s->viol_logged++;
}

static void
report_warn(void *arg, const char *kind, const char *detail)
{
	struct fss *s = arg;

	fsstats_warning(s->sc->st, kind);
	LOGI(s->sc->lg, NULL, "session %llu: warning %s: %s",
	    (unsigned long long)s->id, kind, detail ? detail : "");
}

static void
session_started(struct fss *s)
{
	struct fsq *q = &s->q;
	cJSON      *j = msg("session_started"), *c;
	char        id[40];

	snprintf(id, sizeof(id), "fake%028llx", (unsigned long long)s->id);
	if (!j)
		return;
	cJSON_AddStringToObject(j, "session_id", id);
	/* The captured real shape (research §3.1), echoing the request. */
	if ((c = cJSON_AddObjectToObject(j, "config"))) {
		bool wrong = s->sc->o.wrong_format;
		cJSON_AddNumberToObject(
		    c, "sample_rate", wrong ? 16000 : q->rate);
		cJSON_AddStringToObject(
		    c, "audio_format", wrong ? "pcm_16000" : q->format);
		if (q->language[0])
			cJSON_AddStringToObject(
			    c, "language_code", q->language);
		else
			cJSON_AddNullToObject(c, "language_code");
		cJSON_AddStringToObject(c, "timestamps_granularity", "word");
		cJSON_AddBoolToObject(c, "vad_commit_strategy", q->vad);
		cJSON_AddNumberToObject(
		    c, "vad_silence_threshold_secs", q->vad_silence_s);
		cJSON_AddNumberToObject(c, "vad_threshold", q->vad_threshold);
		cJSON_AddNumberToObject(
		    c, "min_speech_duration_ms", q->min_speech_ms);
		cJSON_AddNumberToObject(
		    c, "min_silence_duration_ms", q->min_silence_ms);
		cJSON_AddNumberToObject(c, "max_tokens_to_recompute", 5);
		cJSON_AddStringToObject(c, "model_id", q->model);
		cJSON_AddBoolToObject(c, "disable_logging", false);
		cJSON_AddBoolToObject(c, "include_timestamps", q->timestamps);
		cJSON_AddBoolToObject(
		    c, "include_language_detection", q->language_detection);
	}
	send_json(s, j);
	fsstats_add(s->sc->st, FS_SESSIONS_STARTED, 1);
}

/* fsmodel_emit_fn */
static void
on_event(void *arg, const struct fsev *ev)
{
	struct fss *s = arg;
	cJSON      *j, *w, *a;

	if (s->st != FSS_LIVE)
		return;
	if (ev->kind == FSEV_PARTIAL) {
		if ((j = msg("partial_transcript")))
			cJSON_AddStringToObject(j, "text", ev->text);
		send_json(s, j);
		fsstats_add(s->sc->st, FS_PARTIALS, 1);
		return;
	}
	if ((j = msg("committed_transcript")))
		cJSON_AddStringToObject(j, "text", ev->text);
	send_json(s, j);
	fsstats_add(s->sc->st, *ev->text ? FS_COMMITS : FS_COMMITS_EMPTY, 1);
	LOGI(s->sc->lg, NULL, "session %llu: committed%s: \"%s\"",
	    (unsigned long long)s->id, ev->requested ? " (asked)" : "",
	    ev->text);
	if (!s->q.timestamps && !s->q.language_detection)
		return;
	if (!(j = msg("committed_transcript_with_timestamps")))
		return;
	cJSON_AddStringToObject(j, "text", ev->text);
	cJSON_AddStringToObject(
	    j, "language_code", s->q.language[0] ? s->q.language : "en");
	if ((a = cJSON_AddArrayToObject(j, "words")))
		for (size_t i = 0; i < ev->nwords; i++) {
			if (!(w = cJSON_CreateObject()))
				break;
			cJSON_AddStringToObject(w, "text", ev->words[i]);
			cJSON_AddNumberToObject(w, "start", ev->starts[i]);
			cJSON_AddNumberToObject(w, "end", ev->ends[i]);
			cJSON_AddStringToObject(w, "type", "word");
			cJSON_AddItemToArray(a, w);
		}
	send_json(s, j);
	fsstats_add(s->sc->st, FS_TIMESTAMPED, 1);
}

static void
established(struct fss *s)
{
	struct scribe      *sc = s->sc;
	const char         *kind, *text;
	struct fsmodel_opts mo;

	s->started_us = s->last_chunk_us = mono_us();
	fsstats_add(sc->st, FS_SESSIONS, 1);
	fsstats_active(sc->st, 1);
	fsstats_query(sc->st, s->q.raw);
	LOGI(sc->lg, NULL, "session %llu: query %s", (unsigned long long)s->id,
	    s->q.raw);
	/* The key first: the real server authenticates before anything. */
	if (!s->have_key || !s->key[0]
	    || (sc->o.api_key && strcmp(s->key, sc->o.api_key))) {
		report_viol(s,
		    s->have_key ? "wrong_api_key" : "missing_api_key",
		    "xi-api-key");
		fsstats_add(sc->st, FS_REJECTED_AUTH, 1);
		fail(s, "auth_error",
		    s->have_key ? "Invalid API key"
		                : "Missing xi-api-key header",
		    1008);
		return;
	}
	if ((kind = fsq_check(&s->q, sc->o.models, report_warn, s, &text))) {
		report_viol(s, kind, text);
		fsstats_add(sc->st, FS_REJECTED_INVALID, 1);
		fail(s, "invalid_request", text, 1008);
		return;
	}
	memset(&mo, 0, sizeof(mo));
	mo.rate          = s->q.rate;
	mo.vad           = s->q.vad;
	mo.vad_silence_s = s->q.vad_silence_s;
	mo.min_speech_ms = s->q.min_speech_ms;
	mo.word_ms       = sc->o.word_ms;
	mo.text          = sc->o.text;
	mo.quirks        = sc->o.quirks;
	if (fsmodel_init(&s->model, &mo)) {
		close_quietly(s, 1011, "out of memory");
		return;
	}
	s->model_ok = true;
	s->st       = FSS_LIVE;
	session_started(s);
}

static void
chunk(struct fss *s, const char *data, size_t len, bool binary)
{
	struct scribe *sc = s->sc;
	struct fschunk c;
	bool           first = !s->chunk_seen;

	if (s->st != FSS_LIVE)
		return; /* after an error: the real server is closing */
	s->chunk_seen = true;
	if (fsmsg_check(data, len, binary, first, &s->q, report_viol, s, &c)) {
		if (c.input_error) {
			cJSON *j = msg("input_error");
			if (j)
				cJSON_AddStringToObject(
				    j, "error", c.input_error);
			send_json(s, j);
			fsstats_add(sc->st, FS_INPUT_ERRORS, 1);
		}
		return;
	}
	fsstats_add(sc->st, FS_CHUNKS, 1);
	s->last_chunk_us = mono_us();
	if (c.has_previous_text) {
		fsstats_add(sc->st, FS_PREVIOUS_TEXTS, 1);
		fsstats_previous_text(sc->st, c.previous_text);
		LOGI(sc->lg, NULL, "session %llu: previous_text \"%s\"",
		    (unsigned long long)s->id, c.previous_text);
	}
	if (c.len) {
		size_t   n = c.len / 2;
		int16_t *p = malloc(n * sizeof(*p));
		if (p) {
			for (size_t i = 0; i < n; i++)
				p[i] = (int16_t)(c.pcm[2 * i]
				    | c.pcm[2 * i + 1] << 8);
			fsmodel_feed(&s->model, p, n, on_event, s);
			free(p);
		}
		fsstats_add(
		    sc->st, FS_AUDIO_MS, (int64_t)(n * 1000 / s->q.rate));
	}
	if (c.commit) {
		fsstats_add(sc->st, FS_COMMIT_REQUESTS, 1);
		fsmodel_commit(&s->model, on_event, s);
	}
	free(c.pcm);
}

static void
receive(struct fss *s, struct lws *wsi, const void *in, size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		s->rx_len  = 0;
		s->rx_over = false;
		s->rx_bin  = lws_frame_is_binary(wsi);
	}
	if (!s->rx_over) {
		if (s->rx_len + len > RX_MAX) {
			s->rx_over = true;
			report_viol(s, "message_too_big", "over 1 MiB");
		} else {
			if (s->rx_len + len > s->rx_cap) {
				size_t cap = s->rx_cap ? s->rx_cap * 2 : 16384;
				char  *p;
				while (cap < s->rx_len + len)
					cap *= 2;
				if (!(p = realloc(s->rx, cap))) {
					s->rx_over = true;
					return;
				}
				s->rx     = p;
				s->rx_cap = cap;
			}
			memcpy(s->rx + s->rx_len, in, len);
			s->rx_len += len;
		}
	}
	if (lws_is_final_fragment(wsi) && !s->rx_over)
		chunk(s, s->rx, s->rx_len, s->rx_bin);
}

static int
writeable(struct fss *s, struct lws *wsi)
{
	struct outmsg *m = s->head;
	int            n;

	if (m) {
		n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
		if (n < (int)m->len)
			return -1;
		s->head = m->next;
		if (!s->head)
			s->tail = NULL;
		s->nout--;
		free(m);
		if (s->head || s->st == FSS_CLOSING)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (s->st == FSS_CLOSING) {
		if (!s->close_sent)
			LOGI(s->sc->lg, NULL, "session %llu: closing (%d, %s)",
			    (unsigned long long)s->id, s->close_code,
			    s->close_why ? s->close_why : "");
		s->close_sent = true;
		lws_close_reason(wsi, (enum lws_close_status)s->close_code,
		    (unsigned char *)(s->close_why ? s->close_why : ""),
		    s->close_why ? strlen(s->close_why) : 0);
		return -1;
	}
	return 0;
}

static void
ended(struct fss *s)
{
	struct scribe *sc = s->sc;

	if (!sc || s->st == FSS_ENDED)
		return;
	if (s->client_close == 1000)
		fsstats_add(sc->st, FS_CLOSED_1000, 1);
	else if (s->client_close)
		fsstats_add(sc->st, FS_CLOSED_OTHER, 1);
	else if (s->st != FSS_CLOSING)
		fsstats_add(sc->st, FS_DROPPED, 1);
	LOGI(sc->lg, NULL, "session %llu: ended%s%.0d",
	    (unsigned long long)s->id,
	    s->client_close ? ", the client closed with " : "",
	    s->client_close);
	s->st = FSS_ENDED;
	fsstats_active(sc->st, -1);
	if (s->prev)
		s->prev->next = s->next;
	else
		sc->list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	while (s->head) {
		struct outmsg *m = s->head;
		s->head          = m->next;
		free(m);
	}
	s->tail = NULL;
	if (s->model_ok)
		fsmodel_fini(&s->model);
	s->model_ok = false;
	free(s->rx);
	s->rx = NULL;
}

static bool
path_ok(struct scribe *sc, struct lws *wsi)
{
	char uri[256];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
		return false;
	return !strcmp(uri, sc->o.path);
}

static void
read_request(struct fss *s, struct lws *wsi)
{
	char buf[1024];
	int  n;

	fsq_init(&s->q);
	for (int i = 0; (n = lws_hdr_copy_fragment(wsi, buf, sizeof(buf),
	                     WSI_TOKEN_HTTP_URI_ARGS, i))
	     >= 0;
	     i++)
		fsq_add(&s->q, buf, (size_t)n, report_warn, s);
	n = lws_hdr_custom_length(wsi, "xi-api-key:", 11);
	if (n >= 0) {
		s->have_key = true;
		if (lws_hdr_custom_copy(
		        wsi, s->key, sizeof(s->key), "xi-api-key:", 11)
		    < 0)
			s->key[0] = '\0';
	}
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct fss    *s  = user;
	struct scribe *sc = NULL;

	/* Only real connections have a vhost (GET_THREAD_ID etc. do not). */
	switch (reason) {
	case LWS_CALLBACK_HTTP:
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
	case LWS_CALLBACK_ESTABLISHED:
		sc = lws_get_vhost_user(lws_get_vhost(wsi));
		break;
	default:
		break;
	}
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (lws_return_http_status(wsi,
		        sc && path_ok(sc, wsi) ? HTTP_STATUS_BAD_REQUEST
		                               : HTTP_STATUS_NOT_FOUND,
		        NULL))
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		if (!sc || !path_ok(sc, wsi)) {
			lws_return_http_status(
			    wsi, HTTP_STATUS_NOT_FOUND, NULL);
			return 1;
		}
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (s && sc) {
			s->sc = sc;
			s->id = ++sc->next_id;
			read_request(s, wsi);
		}
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		if (!s || !sc)
			return -1;
		s->sc   = sc;
		s->wsi  = wsi;
		s->next = sc->list;
		if (sc->list)
			sc->list->prev = s;
		sc->list = s;
		established(s);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (s && s->wsi)
			receive(s, wsi, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return s && s->wsi ? writeable(s, wsi) : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (s && len >= 2)
			s->client_close = ((const uint8_t *)in)[0] << 8
			    | ((const uint8_t *)in)[1];
		return 0;
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (s && s->wsi)
			ended(s);
		return 0;
	default:
		return 0;
	}
}

static void
tick(lws_sorted_usec_list_t *sul)
{
	struct scribe *sc  = lws_container_of(sul, struct scribe, sul);
	uint64_t       now = mono_us();

	for (struct fss *s = sc->list; s; s = s->next) {
		if (s->st != FSS_LIVE)
			continue;
		if (now - s->last_chunk_us
		    >= (uint64_t)sc->o.idle_s * 1000000) {
			/* "a normal close, with no error first" (§5.2). */
			fsstats_add(sc->st, FS_IDLE_CLOSES, 1);
			LOGI(sc->lg, NULL, "session %llu: %u s without audio",
			    (unsigned long long)s->id, sc->o.idle_s);
			close_quietly(s, 1000, "idle");
		} else if (sc->o.session_limit_s
		    && now - s->started_us
		        >= (uint64_t)sc->o.session_limit_s * 1000000) {
			fsstats_add(sc->st, FS_TIME_LIMITS, 1);
			fail(s, "session_time_limit_exceeded",
			    "Maximum session time has been reached. Please "
			    "start a new session or upgrade your subscription",
			    1000);
		}
	}
	lws_sul_schedule(sc->ctx, 0, &sc->sul, tick, TICK_US);
}

int
scribe_start(struct scribe **out, struct lws_context *ctx,
    const struct scribe_opts *o, struct fsstats *st, const struct log *lg)
{
	struct lws_context_creation_info ci;
	struct scribe                   *sc = calloc(1, sizeof(*sc));

	if (!sc)
		return ENOMEM;
	sc->o   = *o;
	sc->st  = st;
	sc->lg  = lg;
	sc->ctx = ctx;
	if (!sc->o.path)
		sc->o.path = DEFAULT_PATH;
	if (!sc->o.models)
		sc->o.models = DEFAULT_MODELS;
	if (!sc->o.idle_s)
		sc->o.idle_s = 15;
	sc->protos[0] = (struct lws_protocols) { .name = "scribe",
		.callback                              = callback,
		.per_session_data_size                 = sizeof(struct fss),
		.rx_buffer_size                        = 65536 };
	memset(&ci, 0, sizeof(ci));
	ci.port       = o->port;
	ci.iface      = o->host && *o->host ? o->host : NULL;
	ci.vhost_name = "fakescribe";
	ci.protocols  = sc->protos;
	ci.user       = sc;
	ci.options    = LWS_SERVER_OPTION_DISABLE_IPV6;
	if (o->cert && o->key) {
		ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		ci.ssl_cert_filepath        = o->cert;
		ci.ssl_private_key_filepath = o->key;
	}
	if (!(sc->vh = lws_create_vhost(ctx, &ci))) {
		LOGE(lg, NULL, "cannot listen on %s:%d",
		    o->host ? o->host : "*", o->port);
		free(sc);
		return EADDRINUSE;
	}
	sc->port = lws_get_vhost_listen_port(sc->vh);
	lws_sul_schedule(ctx, 0, &sc->sul, tick, TICK_US);
	LOGI(lg, NULL, "Scribe stand-in on %s://%s:%d%s",
	    o->cert ? "wss" : "ws", o->host ? o->host : "*", sc->port,
	    sc->o.path);
	*out = sc;
	return 0;
}

int
scribe_port(const struct scribe *sc)
{
	return sc->port;
}

void
scribe_stop(struct scribe *sc)
{
	if (sc)
		lws_sul_cancel(&sc->sul);
}

void
scribe_free(struct scribe *sc)
{
	free(sc);
}
