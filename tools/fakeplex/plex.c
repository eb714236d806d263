/*
 * plex.c - the stand-in's libwebsockets side (see plex.h). References are
 * to NVIDIA/personaplex moshi/moshi/server.py unless said otherwise.
 */
#include "plex.h"

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "evloop.h"
#include "log.h"
#include "query.h"
#include "stats.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_US (10 * LWS_US_PER_MS)
#define OUT_MAX_DEFAULT 4096
#define ARG_MAX 32768 /* longest query piece we read */

enum ps_state {
	PS_NONE = 0, /* upgraded, not judged yet */
	PS_WAITING, /* queued behind the lock holder */
	PS_PROMPT, /* holds the lock, "processing prompts" */
	PS_LIVE, /* handshake sent */
	PS_CLOSING, /* fatal error: close with 1000 */
	PS_ABORT, /* handler error: drop without a close frame */
	PS_ENDED,
};

struct outmsg {
	struct outmsg *next;
	size_t         len; /* kind byte + payload */
	unsigned char  buf[];
};

struct server;

/* Per connection; lws allocates it zeroed (per_session_data_size). */
struct psess {
	struct server     *srv;
	struct lws        *wsi;
	uint64_t           id;
	enum ps_state      st;
	struct query       q;
	enum query_verdict verdict;
	struct conv       *conv;
	uint64_t           deadline_us; /* handshake due (PS_PROMPT) */
	uint64_t           live_us; /* handshake sent */
	struct psess      *next_wait;
	struct outmsg     *out_head, *out_tail;
	long               nout;
	bool               rx_have_kind, rx_bin;
	uint8_t            rx_kind;
	size_t             rx_len;
};

/* One listener = one real server process with its global lock. */
struct server {
	struct plex      *p;
	int               idx, stats_idx;
	char              addr[160];
	struct lws_vhost *vh;
	struct psess     *holder;
	struct psess     *wait_head, *wait_tail;
	int               open, waiting, max_open;
	uint64_t          conversations;
	/* lm_gen's prompt state, overwritten by every connection before it
	 * takes the lock (server.py:164-170). */
	char *voice, *text;
};

struct plex {
	const struct plex_opts *o;
	struct stats           *st;
	const struct log       *lg;
	struct admin           *adm;
	struct evloop          *loop; /* owns ctx */
	struct lws_context     *ctx;
	lws_sorted_usec_list_t  sul;
	struct server          *srv;
	size_t                  nsrv;
	uint64_t                next_id;
	bool                    stopping;
};

static void acquire(struct server *s, struct psess *ps);

static void
srv_publish(struct server *s)
{
	stats_server_set(s->p->st, s->stats_idx, s->open, s->waiting,
	    s->holder != NULL, s->conversations, s->max_open);
}

/* Writes the first queued message. Returns 0, or -1 when it failed. */
static int
write_head(struct psess *ps, struct lws *wsi)
{
	struct outmsg *m = ps->out_head;
	int            n;

	n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_BINARY);
	if (n < (int)m->len)
		return -1;
	ps->out_head = m->next;
	if (ps->out_head == NULL)
		ps->out_tail = NULL;
	ps->nout--;
	free(m);
	return 0;
}

/* Queues one message; conv_send_fn. */
static int
ps_send(void *arg, uint8_t kind, const uint8_t *data, size_t n)
{
	struct psess  *ps  = arg;
	long           max = ps->srv->p->o->out_max ? ps->srv->p->o->out_max
	                                            : OUT_MAX_DEFAULT;
	struct outmsg *m;

	if (ps->nout >= max)
		return 1;
	if ((m = malloc(sizeof(*m) + LWS_PRE + 1 + n)) == NULL)
		return 1;
	m->next         = NULL;
	m->len          = 1 + n;
	m->buf[LWS_PRE] = kind;
	if (n)
		memcpy(m->buf + LWS_PRE + 1, data, n);
	if (ps->out_tail)
		ps->out_tail->next = m;
	else
		ps->out_head = m;
	ps->out_tail = m;
	ps->nout++;
	/* A lone message goes out now unless lws holds part of an earlier
	 * one: lws's writeable callback costs a wake-up and two epoll_ctl. */
	if (ps->nout == 1 && (ps->st == PS_PROMPT || ps->st == PS_LIVE)
	    && !lws_partial_buffered(ps->wsi)) {
		if (write_head(ps, ps->wsi) == 0)
			return 0;
		ps->st = PS_ABORT;
		lws_set_timeout(
		    ps->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return 0;
	}
	lws_callback_on_writable(ps->wsi);
	return 0;
}

static void
out_clear(struct psess *ps)
{
	while (ps->out_head) {
		struct outmsg *m = ps->out_head;
		ps->out_head     = m->next;
		free(m);
	}
	ps->out_tail = NULL;
	ps->nout     = 0;
}

/* Ends the socket: abort (no close frame, what the client of a crashed
 * handler sees) or a normal close (1000). */
static void
ps_finish(struct psess *ps, enum ps_state how)
{
	if (ps->st == PS_CLOSING || ps->st == PS_ABORT || ps->st == PS_ENDED)
		return;
	ps->st = how;
	out_clear(ps); /* send_loop is cancelled: queued pages are lost */
	lws_callback_on_writable(ps->wsi);
}

static void
handshake(struct psess *ps)
{
	struct plex *p = ps->srv->p;

	ps->st      = PS_LIVE;
	ps->live_us = mono_us();
	ps->srv->conversations++;
	srv_publish(ps->srv);
	if (conv_handshake(ps->conv)) {
		LOGE(p->lg, NULL, "session %llu: cannot start the writer",
		    (unsigned long long)ps->id);
		ps_finish(ps, PS_ABORT);
		return;
	}
	LOGI(p->lg, NULL, "session %llu on %s: handshake sent",
	    (unsigned long long)ps->id, ps->srv->addr);
}

static bool
same(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : a == b;
}

/* ps takes the lock: reset the model state, then the prompt phase. */
static void
acquire(struct server *s, struct psess *ps)
{
	struct plex *p = s->p;

	s->holder = ps;
	ps->st    = PS_PROMPT;
	srv_publish(s);
	if (!same(s->voice, ps->q.voice) || !same(s->text, ps->q.text)) {
		stats_add(p->st, ST_PROMPT_OVERWRITTEN, 1);
		LOGW(p->lg, NULL,
		    "session %llu: runs with a later connection's prompt "
		    "(voice %s): the real server's shared-prompt race",
		    (unsigned long long)ps->id, s->voice ? s->voice : "-");
	}
	if (s->text == NULL || s->text[0] == '\0') {
		/* text_prompt_tokens is None: the prompt phase raises
		 * (lm.py:1096-1098) and the handler dies. */
		LOGW(p->lg, NULL,
		    "session %llu: empty text prompt: the real server fails "
		    "in the prompt phase",
		    (unsigned long long)ps->id);
		ps_finish(ps, PS_ABORT);
		return;
	}
	if (conv_alloc(
	        &ps->conv, &p->o->conv, p->st, p->lg, ps->id, ps_send, ps)) {
		LOGE(p->lg, NULL, "session %llu: out of memory",
		    (unsigned long long)ps->id);
		ps_finish(ps, PS_ABORT);
		return;
	}
	ps->deadline_us
	    = mono_us() + (uint64_t)p->o->handshake_delay_ms * 1000;
	if (p->o->handshake_delay_ms <= 0)
		handshake(ps);
}

static void
release(struct server *s)
{
	struct psess *next = s->wait_head;

	s->holder = NULL;
	srv_publish(s);
	if (next == NULL || s->p->stopping)
		return;
	s->wait_head = next->next_wait;
	if (s->wait_head == NULL)
		s->wait_tail = NULL;
	next->next_wait = NULL;
	s->waiting--;
	stats_gauge_add(s->p->st, ST_SESSIONS_WAITING, -1);
	acquire(s, next);
}

static void
wait_remove(struct server *s, struct psess *ps)
{
	struct psess **pp = &s->wait_head, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->next_wait) {
		if (*pp != ps)
			continue;
		*pp = ps->next_wait;
		if (s->wait_tail == ps)
			s->wait_tail = prev;
		s->waiting--;
		stats_gauge_add(s->p->st, ST_SESSIONS_WAITING, -1);
		return;
	}
}

/* The socket is gone: free everything and pass the lock on. Safe to call
 * twice (CLOSED, then WSI_DESTROY). */
static void
ps_end(struct psess *ps)
{
	struct server *s = ps->srv;

	if (s == NULL || ps->st == PS_ENDED)
		return;
	if (s->holder == ps) {
		release(s);
	} else {
		wait_remove(s, ps);
	}
	ps->st = PS_ENDED;
	s->open--;
	stats_gauge_add(s->p->st, ST_SESSIONS_ACTIVE, -1);
	srv_publish(s);
	LOGI(s->p->lg, NULL, "session %llu on %s: ended",
	    (unsigned long long)ps->id, s->addr);
	conv_free(ps->conv);
	ps->conv = NULL;
	out_clear(ps);
	query_clear(&ps->q);
}

/* Reads the query while the headers are still there. */
static void
read_query(struct psess *ps, struct lws *wsi)
{
	char *buf = malloc(ARG_MAX);
	int   n;

	if (buf == NULL)
		return;
	for (int i = 0; (n = lws_hdr_copy_fragment(
	                     wsi, buf, ARG_MAX, WSI_TOKEN_HTTP_URI_ARGS, i))
	     >= 0;
	     i++)
		if (query_add(&ps->q, buf, (size_t)n))
			break;
	free(buf);
}

static void
established(struct server *s, struct psess *ps, struct lws *wsi)
{
	struct plex *p = s->p;

	ps->srv     = s;
	ps->wsi     = wsi;
	ps->id      = ++p->next_id;
	ps->verdict = query_check(&ps->q);
	s->open++;
	if (s->open > s->max_open)
		s->max_open = s->open;
	stats_add(p->st, ST_SESSIONS_STARTED, 1);
	stats_gauge_add(p->st, ST_SESSIONS_ACTIVE, 1);
	stats_gauge_max(p->st, ST_MAX_CONCURRENT, s->max_open);
	stats_query(p->st, ps->q.voice, ps->q.text);
	LOGI(p->lg, NULL,
	    "session %llu on %s: voice_prompt=%s text_prompt=%.120s%s (%d "
	    "open)",
	    (unsigned long long)ps->id, s->addr,
	    ps->q.voice ? ps->q.voice : "(none)",
	    ps->q.text ? ps->q.text : "(none)",
	    ps->q.text && strlen(ps->q.text) > 120 ? "..." : "", s->open);

	/* What handle_chat stores before it can fail (server.py:164-170). */
	if (query_sets_voice(&ps->q)) {
		free(s->voice);
		s->voice = strdup(ps->q.voice);
	}
	if (query_sets_text(&ps->q)) {
		free(s->text);
		s->text = strdup(ps->q.text);
	}
	if (ps->verdict != QUERY_OK) {
		stats_violation(p->st, query_verdict_name(ps->verdict));
		LOGW(p->lg, NULL, "session %llu: %s",
		    (unsigned long long)ps->id,
		    query_verdict_name(ps->verdict));
	}
	if (ps->verdict != QUERY_OK && ps->verdict != QUERY_EMPTY_TEXT) {
		stats_add(p->st, ST_SESSIONS_REJECTED, 1);
		ps_finish(ps, PS_ABORT);
		srv_publish(s);
		return;
	}
	if (p->o->refuse) {
		stats_add(p->st, ST_SESSIONS_REFUSED, 1);
		ps_finish(ps, PS_ABORT);
		srv_publish(s);
		return;
	}
	if (s->holder == NULL) {
		acquire(s, ps);
		return;
	}
	/* async with self.lock: queued, told nothing. */
	ps->st = PS_WAITING;
	if (s->wait_tail)
		s->wait_tail->next_wait = ps;
	else
		s->wait_head = ps;
	s->wait_tail = ps;
	s->waiting++;
	stats_add(p->st, ST_SESSIONS_WAITED, 1);
	stats_gauge_add(p->st, ST_SESSIONS_WAITING, 1);
	srv_publish(s);
	LOGW(p->lg, NULL,
	    "session %llu on %s: waits for the lock (session %llu holds it)",
	    (unsigned long long)ps->id, s->addr,
	    (unsigned long long)s->holder->id);
}

/* One received fragment. */
static void
receive(struct psess *ps, struct lws *wsi, const uint8_t *in, size_t len)
{
	struct plex *p     = ps->srv->p;
	bool         first = lws_is_first_fragment(wsi);
	bool         final = lws_is_final_fragment(wsi);

	if (first) {
		ps->rx_have_kind = false;
		ps->rx_bin       = lws_frame_is_binary(wsi);
		ps->rx_len       = 0;
	}
	ps->rx_len += len;
	if (ps->st == PS_LIVE && ps->rx_bin && len > 0) {
		if (!ps->rx_have_kind) {
			ps->rx_have_kind = true;
			ps->rx_kind      = in[0];
			in++;
			len--;
		}
		if (ps->rx_kind == 0x01 && len > 0
		    && conv_uplink(ps->conv, in, len)) {
			LOGW(p->lg, NULL,
			    "session %llu: %s: closing, as the real server "
			    "does",
			    (unsigned long long)ps->id, conv_fatal(ps->conv));
			ps_finish(ps, PS_CLOSING);
		}
	}
	if (!final)
		return;
	stats_add(p->st, ST_MSGS_IN, 1);
	switch (ps->st) {
	case PS_NONE:
	case PS_WAITING:
	case PS_PROMPT:
		/* is_alive() swallows it (server.py:268-281). */
		stats_violation(p->st, "sent_before_handshake");
		LOGW(p->lg, NULL,
		    "session %llu: %zu-byte message before the handshake: "
		    "discarded",
		    (unsigned long long)ps->id, ps->rx_len);
		break;
	case PS_LIVE:
		if (!ps->rx_bin) {
			stats_violation(p->st, "text_frame");
			LOGW(p->lg, NULL, "session %llu: text frame ignored",
			    (unsigned long long)ps->id);
		} else if (ps->rx_len == 0) {
			stats_violation(p->st, "empty_message");
			LOGW(p->lg, NULL,
			    "session %llu: empty message ignored",
			    (unsigned long long)ps->id);
		} else if (ps->rx_kind != 0x01) {
			stats_violation(p->st, "unknown_kind");
			LOGW(p->lg, NULL,
			    "session %llu: unknown message kind %u ignored",
			    (unsigned long long)ps->id, ps->rx_kind);
		}
		break;
	default:
		break;
	}
}

static int
writeable(struct psess *ps, struct lws *wsi)
{
	if (ps->st == PS_ABORT)
		return -1;
	if (ps->st == PS_CLOSING) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (ps->out_head == NULL)
		return 0;
	if (write_head(ps, wsi))
		return -1;
	if (ps->out_head)
		lws_callback_on_writable(wsi);
	return 0;
}

static int
http_status(struct lws *wsi, unsigned status)
{
	if (lws_return_http_status(wsi, status, NULL))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static bool
is_chat_path(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0)
		return false;
	return !strcmp(uri, "/api/chat");
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	struct psess  *ps = user;
	struct server *s;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		/* A plain GET: aiohttp's WebSocketResponse answers 400, any
		 * other path is 404. */
		return http_status(wsi,
		    is_chat_path(wsi) ? HTTP_STATUS_BAD_REQUEST
		                      : HTTP_STATUS_NOT_FOUND);
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		if (!is_chat_path(wsi)) {
			lws_return_http_status(
			    wsi, HTTP_STATUS_NOT_FOUND, NULL);
			return 1;
		}
		return 0;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (ps)
			read_query(ps, wsi);
		return 0;
	case LWS_CALLBACK_ESTABLISHED:
		s = lws_get_vhost_user(lws_get_vhost(wsi));
		if (s == NULL || ps == NULL)
			return -1;
		established(s, ps, wsi);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (ps && ps->srv)
			receive(ps, wsi, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ps && ps->srv ? writeable(ps, wsi) : 0;
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (ps) {
			ps_end(ps);
			query_clear(&ps->q);
		}
		return 0;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "personaplex", callback, sizeof(struct psess), 8192, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* The shared tick: due handshakes, planned drops, the heartbeat. */
static void
tick(lws_sorted_usec_list_t *sul)
{
	struct plex *p   = lws_container_of(sul, struct plex, sul);
	uint64_t     now = mono_us();

	for (size_t i = 0; i < p->nsrv; i++) {
		struct psess *h = p->srv[i].holder;
		if (h == NULL)
			continue;
		if (h->st == PS_PROMPT && now >= h->deadline_us) {
			handshake(h);
		} else if (h->st == PS_LIVE && p->o->drop_after_ms > 0
		    && (p->o->drop_count == 0
		        || stats_get(p->st, ST_SESSIONS_DROPPED)
		            < p->o->drop_count)
		    && now - h->live_us
		        >= (uint64_t)p->o->drop_after_ms * 1000) {
			stats_add(p->st, ST_SESSIONS_DROPPED, 1);
			LOGI(p->lg, NULL, "session %llu: dropped on purpose",
			    (unsigned long long)h->id);
			ps_finish(h, PS_ABORT);
		}
	}
	if (p->adm)
		admin_heartbeat(p->adm);
	lws_sul_schedule(p->ctx, 0, &p->sul, tick, TICK_US);
}

/* Calls fn for each "host:port" of the list, ranges expanded. */
static int
each_listen(const char *list, int (*fn)(void *arg, const char *host, int port),
    void *arg, char *err, size_t errlen)
{
	const char *s = list;

	while (s && *s) {
		const char *e = strchr(s, ',');
		size_t      n = e ? (size_t)(e - s) : strlen(s);
		char        item[128];
		char       *colon, *dash, *end;
		long        lo, hi;
		int         rc;

		if (n == 0 || n >= sizeof(item))
			goto bad;
		memcpy(item, s, n);
		item[n] = '\0';
		if ((colon = strrchr(item, ':')) == NULL)
			goto bad;
		*colon = '\0';
		lo     = strtol(colon + 1, &end, 10);
		hi     = lo;
		if ((dash = end) && *dash == '-')
			hi = strtol(dash + 1, &end, 10);
		if (*end || end == colon + 1 || lo < 1 || hi > 65535 || hi < lo
		    || hi - lo > 4096)
			goto bad;
		for (long port = lo; port <= hi; port++)
			if (fn && (rc = fn(arg, item, (int)port)) != 0)
				return rc;
		s = e ? e + 1 : NULL;
		continue;
	bad:
		snprintf(err, errlen,
		    "'%.*s' is not host:port or host:port-port", (int)n, s);
		return EINVAL;
	}
	return 0;
}

int
plex_check_listen(const char *listen, char *err, size_t errlen)
{
	if (listen == NULL || *listen == '\0') {
		snprintf(err, errlen, "no listen address");
		return EINVAL;
	}
	return each_listen(listen, NULL, NULL, err, errlen);
}

static int
count_one(void *arg, const char *host, int port)
{
	(*(size_t *)arg)++;
	return 0;
}

static int
add_one(void *arg, const char *host, int port)
{
	struct plex                     *p = arg;
	struct server                   *s = &p->srv[p->nsrv];
	struct lws_context_creation_info info;

	memset(s, 0, sizeof(*s));
	s->p   = p;
	s->idx = (int)p->nsrv;
	snprintf(s->addr, sizeof(s->addr), "%s:%d", host, port);
	memset(&info, 0, sizeof(info));
	info.port       = port;
	info.iface      = *host ? host : NULL;
	info.protocols  = protocols;
	info.vhost_name = s->addr;
	info.user       = s;
	info.options    = LWS_SERVER_OPTION_DISABLE_IPV6;
	if ((s->vh = lws_create_vhost(p->ctx, &info)) == NULL) {
		LOGE(p->lg, NULL, "cannot listen on %s", s->addr);
		return EADDRINUSE;
	}
	s->stats_idx = stats_server_add(p->st, s->addr);
	p->nsrv++;
	return 0;
}

int
plex_alloc(struct plex **out, const struct plex_opts *o, struct stats *st,
    const struct log *lg, struct admin *adm)
{
	struct lws_context_creation_info info;
	struct plex                     *p;
	size_t                           n = 0;
	char                             err[160];
	int                              rc;

	if ((rc = each_listen(o->listen, count_one, &n, err, sizeof(err)))) {
		LOGE(lg, NULL, "listen: %s", err);
		return rc;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL
	    || (p->srv = calloc(n, sizeof(*p->srv))) == NULL) {
		free(p);
		return ENOMEM;
	}
	p->o   = o;
	p->st  = st;
	p->lg  = lg;
	p->adm = adm;
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.user    = p;
	/* Long text prompts: aiohttp takes request lines up to 8190 bytes. */
	info.max_http_header_data = 16384;
	if ((rc = evloop_create(&p->loop, &info)) != 0) {
		LOGE(lg, NULL, "cannot create the libwebsockets context");
		goto out;
	}
	p->ctx = evloop_lws(p->loop);
	if ((rc = each_listen(o->listen, add_one, p, err, sizeof(err))))
		goto out;
	lws_sul_schedule(p->ctx, 0, &p->sul, tick, TICK_US);
	for (size_t i = 0; i < p->nsrv; i++)
		LOGI(lg, NULL, "PersonaPlex stand-in on ws://%s/api/chat",
		    p->srv[i].addr);
	*out = p;
	return 0;
out:
	plex_free(p);
	return rc;
}

void
plex_free(struct plex *p)
{
	if (p == NULL)
		return;
	p->stopping = true;
	if (p->ctx)
		lws_sul_cancel(&p->sul);
	evloop_destroy(p->loop);
	for (size_t i = 0; i < p->nsrv; i++) {
		free(p->srv[i].voice);
		free(p->srv[i].text);
	}
	free(p->srv);
	free(p);
}

int
plex_service(struct plex *p)
{
	evloop_turn(p->loop, true);
	return 0;
}
