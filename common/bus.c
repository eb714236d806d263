/*
 * bus.c - Envelopes of Frames over an NNG pair1 socket.
 *
 * Frames are packed once, at bus_send, into a byte arena as Envelope field
 * 4 (tag, length, frame): a run of them after an Envelope header is itself
 * a valid serialized Envelope, so bus_flush only copies the arena into one
 * NNG message. The arena and the entry ring are reused, so steady-state
 * sending allocates nothing but the NNG message itself.
 */
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pubsub0/pub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"

#include "arena.h"
#include "clock.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"

/* Frame kinds are the oneof's field numbers 16..(16 + KINDS - 1). */
#define KIND_BASE 16
#define KINDS 17
#define HOLD_LATE_US 20000 /* audio a frame late: see hold_adapt */
/* The send queue's buffers, freed when emptied past these: a turn of 400
 * calls' frames fits in them. */
#define BUS_ARENA_KEEP (512u << 10)
#define BUS_ENTS_KEEP 8192
#define BUS_CC_KEEP 4096 /* per-call counts' slots kept when emptied */

static const char *kind_names[KINDS] = {
	"call_start", "caller_audio", "uplink_ogg", "downlink_ogg",
	"playback_audio", "session_ready", "session_ended", "dtmf", "mark",
	"call_stop", "hangup", "clear", "announce", "agent_text", "playout",
	"capacity", "call_mode",
};

struct entry {
	size_t off, len; /* in the arena */
	uint64_t call;   /* hash of call_id, for the per-call audio cap */
	uint8_t kind;    /* index into kind_names, or KINDS for unknown */
	uint8_t audio;   /* droppable */
	uint8_t dropped;
	uint32_t age_us; /* audio: its age (now - ts_us) when queued */
};

/* Live audio frames queued for one call (by hash): a slot of the
 * per-call counts, which count only in the current generation. */
struct ccount {
	uint64_t call;
	uint32_t n;
	uint32_t gen;
};

struct bus {
	nng_socket sock;
	/* Reused by every send and receive (the owner's thread only):
	 * nng_sendmsg and nng_recvmsg allocate an aio per call, and NNG 1.5
	 * draws a random number for each with a getrandom(2) system call. */
	nng_aio *tx, *rx_aio;
	nng_dialer dialer;
	nng_listener listener;
	nng_socket tap; /* pub; valid only when tapping */
	bool tapping;
	struct bus_opts o;
	char link[32], self[32];
	struct log *log;

	uint8_t *arena;
	size_t arena_len, arena_cap;
	struct arena *rx; /* bus_next's Envelope; reset at the next */
	struct entry *ents; /* FIFO: ents[head .. head + n) */
	size_t ent_head, ent_n, ent_cap;
	uint64_t last_send_us; /* when bus_flush last sent a message */
	uint64_t calm_since_us; /* last late audio sent, or hold halved */
	unsigned hold_us; /* now: o.hold_us .. o.hold_max_us (stretch) */
	size_t audio_n; /* live audio entries queued */
	size_t control_n;
	/* Live audio entries per call, so that the per-call cap costs one
	 * lookup a frame (see cc_slot); open addressing, at most half
	 * full. cc_off: a grow failed, count by walking the queue until it
	 * holds no audio. */
	struct ccount *cc;
	size_t cc_cap, cc_used;
	uint32_t cc_gen;
	bool cc_off;

	_Atomic int peers;
	pthread_mutex_t pipe_mu; /* pipe_cb's, on NNG's threads */
	uint32_t pipe_id; /* the pipe added and not yet removed; 0: none */
	uint32_t gone_id; /* a pipe removed before it was added */
	_Atomic int new_peer;
	uint64_t bad_logged_us, full_logged_us;

	struct metric *out[KINDS + 1], *in[KINDS + 1], *dropped[KINDS + 1];
	struct metric *age[KINDS + 1]; /* audio kinds only; else NULL */
	struct metric *msgs_out, *msgs_in, *bad, *peer_g, *refused;
	struct metric *transit; /* sent_us to received, per Envelope */
	struct metric *hold_g;
};

static int
kind_index(const Exo__Frame *f)
{
	int k = (int) f->body_case - KIND_BASE;
	return k >= 0 && k < KINDS ? k : KINDS;
}

const char *
bus_kind_name(const Exo__Frame *f)
{
	int k = kind_index(f);
	return k < KINDS ? kind_names[k] : "unknown";
}

bool
bus_droppable(const Exo__Frame *f)
{
	switch (f->body_case) {
	case EXO__FRAME__BODY_CALLER_AUDIO:
	case EXO__FRAME__BODY_PLAYBACK_AUDIO:
	/* Playout reports are stale as soon as a newer one exists. */
	case EXO__FRAME__BODY_MARK:
	case EXO__FRAME__BODY_PLAYOUT:
		return true;
	case EXO__FRAME__BODY_UPLINK_OGG:
		return f->uplink_ogg && !f->uplink_ogg->header;
	case EXO__FRAME__BODY_DOWNLINK_OGG:
		return f->downlink_ogg && !f->downlink_ogg->header;
	default:
		return false;
	}
}

static uint64_t
hash64(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; s && *s; s++)
		h = (h ^ (uint8_t) *s) * 1099511628211ull;
	return h;
}

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t) (v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t) v;
	return n;
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct bus *b  = arg;
	uint32_t    id = (uint32_t) nng_pipe_id(p);
	/* pair1 takes one pipe at a time and refuses a second while it has
	 * one (a peer that redials before its old pipe is gone). NNG 1.5
	 * reports a refused pipe's removal though it never reported it
	 * added, and may report a pipe's removal before its addition (the
	 * reaper does not wait for the callback): so a removal counts only
	 * for the pipe that was added, and a pipe already removed is not
	 * added. A new pipe added before the old one's removal is reported
	 * is kept: that removal matches nothing. */
	pthread_mutex_lock(&b->pipe_mu);
	if (ev == NNG_PIPE_EV_ADD_POST && id != b->gone_id) {
		b->pipe_id = id;
		atomic_store(&b->peers, 1);
		atomic_store(&b->new_peer, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		if (id == b->pipe_id) {
			b->pipe_id = 0;
			atomic_store(&b->peers, 0);
		} else {
			b->gone_id = id;
		}
	}
	pthread_mutex_unlock(&b->pipe_mu);
	metric_set(b->peer_g, atomic_load(&b->peers) > 0);
}

/* Frame age on arrival (now - ts_us) in µs: fine where the 5 ms
 * latency budget is judged, coarse beyond. */
static const int64_t age_bounds[] = { 100, 200, 300, 500, 750, 1000, 1500,
	2000, 3000, 4000, 5000, 7500, 10000, 20000, 50000, 100000, 250000,
	1000000 };

static bool
kind_timed(int k)
{
	return k < KINDS && (!strcmp(kind_names[k], "caller_audio") ||
	    !strcmp(kind_names[k], "uplink_ogg") ||
	    !strcmp(kind_names[k], "downlink_ogg") ||
	    !strcmp(kind_names[k], "playback_audio"));
}

static void
register_metrics(struct bus *b)
{
	struct metrics *m = b->o.metrics;
	char l[128];

	for (int k = 0; k < KINDS; k++) {
		if (!kind_timed(k))
			continue;
		snprintf(l, sizeof(l), "link=\"%s\",kind=\"%s\"", b->link,
		    kind_names[k]);
		b->age[k] = metrics_histogram(m, "bus_frame_age_microseconds",
		    "Age of audio frames on arrival: now minus the frame's "
		    "ts_us (when its content entered exoplex), by link and "
		    "kind.",
		    l, age_bounds, sizeof(age_bounds) / sizeof(age_bounds[0]));
	}

	for (int k = 0; k <= KINDS; k++) {
		const char *kn = k < KINDS ? kind_names[k] : "unknown";
		snprintf(l, sizeof(l), "link=\"%s\",dir=\"out\",kind=\"%s\"",
		    b->link, kn);
		b->out[k] = metrics_counter(m, "bus_frames_total",
		    "Bus frames sent and received, by link and kind.", l);
		snprintf(l, sizeof(l), "link=\"%s\",dir=\"in\",kind=\"%s\"",
		    b->link, kn);
		b->in[k] = metrics_counter(m, "bus_frames_total",
		    "Bus frames sent and received, by link and kind.", l);
		snprintf(l, sizeof(l), "link=\"%s\",kind=\"%s\"", b->link, kn);
		b->dropped[k] = metrics_counter(m, "bus_frames_dropped_total",
		    "Bus frames dropped (audio under back-pressure or with no "
		    "peer; control only when the control queue is full).",
		    l);
	}
	snprintf(l, sizeof(l), "link=\"%s\",dir=\"out\"", b->link);
	b->msgs_out = metrics_counter(m, "bus_messages_total",
	    "NNG messages (Envelopes) sent and received.", l);
	snprintf(l, sizeof(l), "link=\"%s\",dir=\"in\"", b->link);
	b->msgs_in = metrics_counter(m, "bus_messages_total",
	    "NNG messages (Envelopes) sent and received.", l);
	snprintf(l, sizeof(l), "link=\"%s\"", b->link);
	b->transit = metrics_histogram(m, "bus_transit_microseconds",
	    "Envelopes' time from their sender's send (sent_us) to this "
	    "process taking them off the link: NNG's queues and this "
	    "process's own delay in reading, by link.",
	    l, age_bounds, sizeof(age_bounds) / sizeof(age_bounds[0]));
	b->hold_g = metrics_gauge(m, "bus_hold_microseconds",
	    "How long the link holds frames back to share a message: "
	    "EXOPLEX_BUS_HOLD_US, stretched toward EXOPLEX_BUS_HOLD_MAX_US "
	    "while the audio it sends is already late.",
	    l);
	b->bad = metrics_counter(m, "bus_bad_messages_total",
	    "Received messages that were not a valid Envelope.", l);
	b->refused = metrics_counter(m, "bus_control_refused_total",
	    "Control frames refused because the control queue was full.", l);
	b->peer_g = metrics_gauge(m, "bus_peer_connected",
	    "1 while the link's peer process is connected.", l);
}

static int
mkdir_p(const char *dir)
{
	char tmp[512];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof(tmp))
		return EINVAL;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return errno;
	return 0;
}

/* For ipc:// URLs, makes sure the socket's directory exists. */
static int
ensure_ipc_dir(const struct bus_opts *o)
{
	if (strncmp(o->url, "ipc://", 6))
		return 0;
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", o->url + 6);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	int err = mkdir_p(dir);
	if (err)
		LOGE(o->log, NULL, "bus %s: cannot create directory %s: %s",
		    o->link, dir, strerror(err));
	return err;
}

static bool
word_in(const char *v, const char *const *words)
{
	for (; *words; words++)
		if (!strcasecmp(v, *words))
			return true;
	return false;
}

int
bus_tap_url(const char *tap, const char *self, const char *link,
    const char *link_url, char *buf, size_t buflen)
{
	static const char *const off[] = { "", "0", "off", "no", "false",
		NULL };
	static const char *const on[] = { "1", "on", "yes", "true", NULL };
	char dir[512];
	int n;

	if (!tap || word_in(tap, off))
		return ENOENT;
	if (strstr(tap, "://")) {
		n = snprintf(buf, buflen, "%s", tap);
		return n < 0 || (size_t) n >= buflen ? EINVAL : 0;
	}
	if (tap[0] == '/') {
		snprintf(dir, sizeof(dir), "%s", tap);
	} else if (word_in(tap, on)) {
		const char *p = link_url, *slash = NULL;
		const char *env = getenv("EXOPLEX_BUS_DIR");
		if (p && !strncmp(p, "ipc://", 6))
			slash = strrchr(p + 6, '/');
		if (slash && slash > p + 6)
			snprintf(dir, sizeof(dir), "%.*s",
			    (int) (slash - (p + 6)), p + 6);
		else
			snprintf(dir, sizeof(dir), "%s",
			    env && *env ? env : "/run/exoplex");
	} else {
		return EINVAL;
	}
	n = snprintf(buf, buflen, "ipc://%s/tap-%s-%s.sock", dir, self, link);
	return n < 0 || (size_t) n >= buflen ? EINVAL : 0;
}

/* Opens the tap's pub socket if the settings ask for one. Never fatal:
 * the link works without it. */
static void
tap_open(struct bus *b, const struct bus_opts *o)
{
	const char *set = o->tap ? o->tap : getenv(BUS_TAP_ENV);
	char url[600];
	int rv = bus_tap_url(set, b->self, b->link, o->url, url, sizeof(url));

	if (rv == ENOENT)
		return;
	if (rv != 0) {
		LOGW(b->log, NULL,
		    "bus %s: tap setting '%s' (%s) is not off, on, a "
		    "directory or a URL: no tap",
		    b->link, set, BUS_TAP_ENV);
		return;
	}
	struct bus_opts d = { .link = b->link, .url = url, .log = b->log };
	if (ensure_ipc_dir(&d))
		return;
	if ((rv = nng_pub0_open(&b->tap)) != 0)
		goto fail;
	/* Room for bursts; beyond it pub drops for that subscriber only. */
	nng_socket_set_int(b->tap, NNG_OPT_SENDBUF, 256);
	if ((rv = nng_listen(b->tap, url, NULL, 0)) != 0) {
		nng_close(b->tap);
		goto fail;
	}
	b->tapping = true;
	LOGI(b->log, NULL, "bus %s: tap on %s", b->link, url);
	return;
fail:
	LOGW(b->log, NULL, "bus %s: cannot open tap %s: %s (no tap)",
	    b->link, url, nng_strerror(rv));
}

/* Publishes m (taking it) on the tap; pub never blocks. */
static void
tap_pub(struct bus *b, nng_msg *m)
{
	if (nng_sendmsg(b->tap, m, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(m);
}

int
bus_open(struct bus **out, const struct bus_opts *o)
{
	struct bus *b;
	int rv;

	b = calloc(1, sizeof(*b));
	if (!b)
		return ENOMEM;
	pthread_mutex_init(&b->pipe_mu, NULL);
	b->o = *o;
	b->log = o->log;
	b->cc_gen = 1; /* a calloc'd slot (gen 0) is empty */
	snprintf(b->link, sizeof(b->link), "%s", o->link);
	snprintf(b->self, sizeof(b->self), "%s", o->self);
	b->o.link = b->link;
	b->o.self = b->self;
	b->o.url = NULL; /* not kept */
	if (!b->o.audio_max)
		b->o.audio_max = 25;
	if (!b->o.control_max)
		b->o.control_max = 8192;
	if (!b->o.msg_max)
		b->o.msg_max = 1u << 20;
	/* No hold, no stretch: 0 sends every turn. */
	if (b->o.hold_max_us < b->o.hold_us || !b->o.hold_us)
		b->o.hold_max_us = b->o.hold_us;
	if (!b->o.hold_calm_us)
		b->o.hold_calm_us = 1000000;
	b->hold_us = b->o.hold_us;
	register_metrics(b);
	metric_set(b->hold_g, b->hold_us);
	/* A turn's Envelope at 100 calls unpacks into ~50 kB; the limit
	 * covers the largest message (msg_max) with room. */
	if ((rv = arena_alloc(&b->rx, 64u << 10, 16u << 20)) != 0)
		goto out;

	if ((rv = ensure_ipc_dir(o)) != 0)
		goto out;
	if ((rv = nng_aio_alloc(&b->tx, NULL, NULL)) != 0
	    || (rv = nng_aio_alloc(&b->rx_aio, NULL, NULL)) != 0
	    || (rv = nng_pair1_open(&b->sock)) != 0)
		goto nngerr;
	/* Never block: at once, or NNG_ETIMEDOUT. */
	nng_aio_set_timeout(b->tx, NNG_DURATION_ZERO);
	nng_aio_set_timeout(b->rx_aio, NNG_DURATION_ZERO);
	nng_socket_set_size(b->sock, NNG_OPT_RECVMAXSZ, 64u << 20);
	/* A small NNG buffer: beyond it frames wait in our queue, where stale
	 * audio can still be dropped. */
	nng_socket_set_int(b->sock, NNG_OPT_SENDBUF, 16);
	nng_socket_set_int(b->sock, NNG_OPT_RECVBUF, 256);
	/* A restarted peer is found again within a second. */
	nng_socket_set_ms(b->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(b->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_pipe_notify(b->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, b);
	nng_pipe_notify(b->sock, NNG_PIPE_EV_REM_POST, pipe_cb, b);
	if (o->listen) {
		rv = nng_listen(b->sock, o->url, &b->listener, 0);
	} else {
		/* Non-blocking: a peer not up yet is dialed again and
		 * again in the background. */
		rv = nng_dial(b->sock, o->url, &b->dialer, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0)
		goto nngerr;
	LOGI(b->log, NULL, "bus %s: %s %s", b->link,
	    o->listen ? "listening on" : "dialing", o->url);
	tap_open(b, o);
	*out = b;
	return 0;
nngerr:
	LOGE(b->log, NULL, "bus %s: cannot %s %s: %s", b->link,
	    o->listen ? "listen on" : "dial", o->url, nng_strerror(rv));
	rv = rv == NNG_EADDRINUSE ? EADDRINUSE
	    : rv == NNG_EADDRINVAL ? EINVAL
	    : rv == NNG_ENOMEM ? ENOMEM
				 : EIO;
out:
	if (nng_socket_id(b->sock) > 0)
		nng_close(b->sock);
	nng_aio_free(b->tx);
	nng_aio_free(b->rx_aio);
	arena_free(b->rx);
	pthread_mutex_destroy(&b->pipe_mu);
	free(b);
	return rv;
}

void
bus_close(struct bus *b)
{
	if (!b)
		return;
	nng_close(b->sock);
	if (b->tapping)
		nng_close(b->tap);
	nng_aio_free(b->tx);
	nng_aio_free(b->rx_aio);
	free(b->arena);
	free(b->ents);
	free(b->cc);
	arena_free(b->rx);
	pthread_mutex_destroy(&b->pipe_mu);
	free(b);
}

void
bus_lib_fini(void)
{
	nng_fini();
}

static struct entry *
ent_at(struct bus *b, size_t i)
{
	return &b->ents[(b->ent_head + i) % b->ent_cap];
}

static int
ent_push(struct bus *b, const struct entry *e)
{
	if (b->ent_n == b->ent_cap) {
		size_t ncap = b->ent_cap ? b->ent_cap * 2 : 256;
		struct entry *ne = malloc(ncap * sizeof(*ne));
		if (!ne)
			return ENOMEM;
		for (size_t i = 0; i < b->ent_n; i++)
			ne[i] = *ent_at(b, i);
		free(b->ents);
		b->ents = ne;
		b->ent_cap = ncap;
		b->ent_head = 0;
	}
	*ent_at(b, b->ent_n++) = *e;
	return 0;
}

static size_t
call_audio_queued(struct bus *b, uint64_t h)
{
	size_t n = 0;
	for (size_t i = 0; i < b->ent_n; i++) {
		struct entry *e = ent_at(b, i);
		n += e->audio && !e->dropped && e->call == h;
	}
	return n;
}

/* Rebuilds the per-call counts' table with the calls that still have
 * frames queued, sized for them (at least 64 slots, at most a quarter
 * full), leaving out the emptied slots: sized by those alone, a queue
 * that never empties while calls come and go would double it for good. */
static int
cc_grow(struct bus *b)
{
	size_t live = 0, ncap = 64;
	struct ccount *nc;

	for (size_t i = 0; i < b->cc_cap; i++)
		live += b->cc[i].gen == b->cc_gen && b->cc[i].n;
	while (ncap < 4 * (live + 1))
		ncap *= 2;
	if (!(nc = calloc(ncap, sizeof(*nc)))) /* gen 0: empty */
		return ENOMEM;
	b->cc_used = 0;
	for (size_t i = 0; i < b->cc_cap; i++) {
		struct ccount *c = &b->cc[i];
		if (c->gen != b->cc_gen || c->n == 0)
			continue;
		size_t j = (size_t) (c->call ^ c->call >> 32) & (ncap - 1);
		while (nc[j].gen == b->cc_gen)
			j = (j + 1) & (ncap - 1);
		nc[j] = *c;
		b->cc_used++;
	}
	free(b->cc);
	b->cc = nc;
	b->cc_cap = ncap;
	return 0;
}

/* The count of call h; with add, made (0) if it has none, else NULL.
 * Walking the queue for every frame instead made a turn of n calls'
 * frames cost O(n^2) once audio_max were queued in all: 4% of ingress
 * at 300 calls. NULL with add only when out of memory. */
static struct ccount *
cc_slot(struct bus *b, uint64_t h, bool add)
{
	if (add && 2 * (b->cc_used + 1) > b->cc_cap && cc_grow(b))
		return NULL;
	if (b->cc_cap == 0)
		return NULL;
	size_t mask = b->cc_cap - 1;
	for (size_t i = (size_t) (h ^ h >> 32) & mask;; i = (i + 1) & mask) {
		struct ccount *c = &b->cc[i];
		if (c->gen != b->cc_gen) {
			if (!add)
				return NULL;
			*c = (struct ccount) { .call = h, .gen = b->cc_gen };
			b->cc_used++;
			return c;
		}
		if (c->call == h)
			return c;
	}
}

static void
cc_inc(struct bus *b, uint64_t h)
{
	struct ccount *c;

	if (b->cc_off)
		return;
	if ((c = cc_slot(b, h, true)) == NULL)
		b->cc_off = true;
	else
		c->n++;
}

static void
cc_dec(struct bus *b, uint64_t h)
{
	struct ccount *c;

	if (!b->cc_off && (c = cc_slot(b, h, false)) != NULL && c->n)
		c->n--;
}

static size_t
cc_get(struct bus *b, uint64_t h)
{
	struct ccount *c;

	if (b->cc_off)
		return call_audio_queued(b, h);
	return (c = cc_slot(b, h, false)) != NULL ? c->n : 0;
}

/* Forgets every call's count: the queue holds no live audio. */
static void
cc_clear(struct bus *b)
{
	b->cc_used = 0;
	b->cc_off = false;
	/* Wrapped (2^32 clears: 50 days at 1,000 a second): slots of an old
	 * generation would count again. */
	if (++b->cc_gen == 0) {
		if (b->cc)
			memset(b->cc, 0, b->cc_cap * sizeof(*b->cc));
		b->cc_gen = 1;
	}
	if (b->cc_cap > BUS_CC_KEEP) { /* grown by a backlog */
		free(b->cc);
		b->cc = NULL;
		b->cc_cap = 0;
	}
}

/* Drops the oldest queued audio frame of the call with hash h. Cheap only
 * because it runs while the peer is slow and the queue is backed up. */
static void
drop_oldest_audio(struct bus *b, uint64_t h)
{
	for (size_t i = 0; i < b->ent_n; i++) {
		struct entry *e = ent_at(b, i);
		if (e->audio && !e->dropped && e->call == h) {
			e->dropped = 1;
			b->audio_n--;
			cc_dec(b, h);
			metric_inc(b->dropped[e->kind]);
			return;
		}
	}
}

void
bus_meta(const Exo__Frame *f, struct bus_meta *m)
{
	m->call = hash64(f->call_id);
	m->kind = (uint8_t) kind_index(f);
	m->audio = bus_droppable(f);
	m->ts_us = f->ts_us;
}

/* bus_send and bus_send_packed: queues the frame f packs to, or the flen
 * bytes at buf when f is NULL. */
static int
enqueue(struct bus *b, const struct bus_meta *m, const Exo__Frame *f,
    const uint8_t *buf, size_t flen)
{
	int k = m->kind <= KINDS ? m->kind : KINDS;
	bool audio = m->audio;
	uint64_t h = m->call;
	uint64_t now;

	if (audio && atomic_load(&b->peers) == 0) {
		/* Stale audio is worse than none for a peer that comes
		 * back: drop at once. */
		metric_inc(b->dropped[k]);
		return 0;
	}
	if (!audio && b->control_n >= b->o.control_max) {
		metric_inc(b->dropped[k]);
		metric_inc(b->refused);
		now = mono_us();
		if (now - b->full_logged_us > 10000000u) {
			b->full_logged_us = now;
			LOGE(b->log, NULL,
			    "bus %s: control queue full (%zu frames, peer %s): "
			    "refusing %s",
			    b->link, b->control_n,
			    atomic_load(&b->peers) ? "slow" : "absent",
			    k < KINDS ? kind_names[k] : "unknown");
		}
		return ENOSPC;
	}
	if (audio && b->audio_n >= b->o.audio_max &&
	    cc_get(b, h) >= b->o.audio_max)
		drop_oldest_audio(b, h);

	size_t need = b->arena_len + flen + 11;
	if (need > b->arena_cap) {
		size_t ncap = b->arena_cap ? b->arena_cap : 16384;
		while (ncap < need)
			ncap *= 2;
		uint8_t *na = realloc(b->arena, ncap);
		if (!na)
			return ENOMEM;
		b->arena = na;
		b->arena_cap = ncap;
	}
	struct entry e = { .off = b->arena_len, .call = h, .kind = (uint8_t) k,
		.audio = audio };
	if (audio && m->ts_us && b->o.hold_max_us > b->o.hold_us) {
		now = wall_us();
		if (now > m->ts_us)
			e.age_us = now - m->ts_us > UINT32_MAX
			    ? UINT32_MAX
			    : (uint32_t)(now - m->ts_us);
	}
	uint8_t *p = b->arena + b->arena_len;
	p[0] = (4 << 3) | 2; /* Envelope.frames, length-delimited */
	size_t hl = 1 + put_varint(p + 1, flen);
	if (f)
		exo__frame__pack(f, p + hl);
	else
		memcpy(p + hl, buf, flen);
	e.len = hl + flen;
	if (ent_push(b, &e))
		return ENOMEM;
	b->arena_len += e.len;
	if (audio) {
		b->audio_n++;
		cc_inc(b, h);
	} else
		b->control_n++;
	return 0;
}

int
bus_send(struct bus *b, const Exo__Frame *f)
{
	struct bus_meta m;

	bus_meta(f, &m);
	return enqueue(b, &m, f, NULL, exo__frame__get_packed_size(f));
}

int
bus_send_packed(struct bus *b, const struct bus_meta *m, const uint8_t *buf,
    size_t len)
{
	return enqueue(b, m, NULL, buf, len);
}

size_t
bus_pending(const struct bus *b)
{
	return b->audio_n + b->control_n;
}

/* Forgets the first n entries (sent or dropped) and compacts the arena. */
static void
consume(struct bus *b, size_t n)
{
	size_t audio = 0;

	for (size_t i = 0; i < n; i++) {
		struct entry *e = ent_at(b, i);
		if (!e->dropped) {
			if (e->audio)
				audio++;
			else
				b->control_n--;
		}
	}
	/* Usually all the queued audio left: forget the counts at once. */
	if (audio == b->audio_n) {
		b->audio_n = 0;
		cc_clear(b);
	} else {
		for (size_t i = 0; i < n; i++) {
			struct entry *e = ent_at(b, i);
			if (e->audio && !e->dropped) {
				b->audio_n--;
				cc_dec(b, e->call);
			}
		}
	}
	b->ent_head = (b->ent_head + n) % (b->ent_cap ? b->ent_cap : 1);
	b->ent_n -= n;
	if (b->ent_n == 0) {
		b->arena_len = 0;
		b->ent_head = 0;
		/* Grown by a backlog (an absent or slow peer): not kept at
		 * that high-water mark. */
		if (b->arena_cap > BUS_ARENA_KEEP || b->ent_cap > BUS_ENTS_KEEP) {
			free(b->arena);
			free(b->ents);
			b->arena = NULL;
			b->ents = NULL;
			b->arena_cap = b->ent_cap = 0;
			memtrim_note();
		}
		return;
	}
	size_t first = ent_at(b, 0)->off;
	if (first > b->arena_len / 2) {
		memmove(b->arena, b->arena + first, b->arena_len - first);
		b->arena_len -= first;
		for (size_t i = 0; i < b->ent_n; i++)
			ent_at(b, i)->off -= first;
	}
}

/* nng_sendmsg and nng_recvmsg with NNG_FLAG_NONBLOCK, on b's own aios:
 * the same calls NNG makes, less an aio's allocation each. send_now takes
 * m only when it returns 0. */
static int
send_now(struct bus *b, nng_msg *m)
{
	int rv;

	nng_aio_set_msg(b->tx, m);
	nng_send_aio(b->sock, b->tx);
	nng_aio_wait(b->tx);
	rv = nng_aio_result(b->tx);
	nng_aio_set_msg(b->tx, NULL);
	return rv == NNG_ETIMEDOUT ? NNG_EAGAIN : rv;
}

static int
recv_now(struct bus *b, nng_msg **m)
{
	int rv;

	nng_recv_aio(b->sock, b->rx_aio);
	nng_aio_wait(b->rx_aio);
	if ((rv = nng_aio_result(b->rx_aio)) == 0) {
		*m = nng_aio_get_msg(b->rx_aio);
		nng_aio_set_msg(b->rx_aio, NULL);
	}
	return rv == NNG_ETIMEDOUT ? NNG_EAGAIN : rv;
}

int64_t
bus_due_us(const struct bus *b)
{
	uint64_t now;

	if (b->ent_n == 0 || b->hold_us == 0
	    || b->arena_len >= b->o.msg_max / 2)
		return -1;
	now = mono_us();
	if (now - b->last_send_us >= b->hold_us)
		return -1; /* not held: goes at the next flush, or waits for
			    * the peer (then no wake-up would help) */
	return (int64_t)(b->last_send_us + b->hold_us - now);
}

/* After a message, sent at now, whose oldest audio frame was age old
 * when queued (its wait here aside): when audio already comes late
 * (HOLD_LATE_US), this process or one before it is short of CPU, and a
 * message costs thread wake-ups on both sides, so the hold doubles, up
 * to hold_max_us; after each hold_calm_us with no late audio it halves
 * back toward hold_us (not at the first timely message: within a burst
 * of late frames, the first ones are timely). A held frame waits a few
 * ms more, a late one much less than the queues that made it late. */
static void
hold_adapt(struct bus *b, uint32_t age, uint64_t now)
{
	unsigned h = b->hold_us;

	if (age >= HOLD_LATE_US) {
		h = h * 2 < b->o.hold_max_us ? h * 2 : b->o.hold_max_us;
		b->calm_since_us = now;
	} else if (h > b->o.hold_us
	    && now - b->calm_since_us >= b->o.hold_calm_us) {
		h = h / 2 > b->o.hold_us ? h / 2 : b->o.hold_us;
		b->calm_since_us = now;
	}
	if (h != b->hold_us)
		metric_set(b->hold_g, h);
	b->hold_us = h;
}

size_t
bus_flush(struct bus *b)
{
	if (b->hold_us && bus_due_us(b) > 0)
		return bus_pending(b);
	while (b->ent_n) {
		uint8_t hdr[64];
		size_t hl = 0, body = 0, n = 0;

		hdr[hl++] = (1 << 3) | 0; /* version */
		hl += put_varint(hdr + hl, BUS_VERSION);
		size_t sl = strlen(b->self);
		hdr[hl++] = (2 << 3) | 2; /* sender */
		hdr[hl++] = (uint8_t) sl;
		memcpy(hdr + hl, b->self, sl);
		hl += sl;
		hdr[hl++] = (3 << 3) | 0; /* sent_us */
		hl += put_varint(hdr + hl, wall_us());

		/* Take entries up to msg_max (at least one). */
		while (n < b->ent_n) {
			struct entry *e = ent_at(b, n);
			if (!e->dropped && body && hl + body + e->len >
			    b->o.msg_max)
				break;
			if (!e->dropped)
				body += e->len;
			n++;
		}
		if (body == 0) {
			consume(b, n);
			continue;
		}
		nng_msg *m;
		if (nng_msg_alloc(&m, hl + body) != 0)
			break;
		uint8_t *p = nng_msg_body(m);
		memcpy(p, hdr, hl);
		p += hl;
		for (size_t i = 0; i < n; i++) {
			struct entry *e = ent_at(b, i);
			if (e->dropped)
				continue;
			memcpy(p, b->arena + e->off, e->len);
			p += e->len;
		}
		nng_msg *copy = NULL;
		if (b->tapping && nng_msg_dup(&copy, m) != 0)
			copy = NULL;
		int rv = send_now(b, m);
		if (copy && rv == 0)
			tap_pub(b, copy);
		else if (copy)
			nng_msg_free(copy);
		if (rv != 0) {
			nng_msg_free(m);
			if (rv != NNG_EAGAIN)
				LOGW(b->log, NULL, "bus %s: send: %s", b->link,
				    nng_strerror(rv));
			break; /* keep it queued; try again next turn */
		}
		metric_inc(b->msgs_out);
		uint32_t age = 0;
		for (size_t i = 0; i < n; i++) {
			struct entry *e = ent_at(b, i);
			if (e->dropped)
				continue;
			metric_inc(b->out[e->kind]);
			if (e->age_us > age)
				age = e->age_us;
		}
		if (b->o.hold_us) {
			b->last_send_us = mono_us();
			hold_adapt(b, age, b->last_send_us);
		}
		consume(b, n);
	}
	/* Audio queued for a peer that has since gone is stale: drop it. */
	if (b->audio_n && atomic_load(&b->peers) == 0) {
		for (size_t i = 0; i < b->ent_n; i++) {
			struct entry *e = ent_at(b, i);
			if (e->audio && !e->dropped) {
				e->dropped = 1;
				b->audio_n--;
				metric_inc(b->dropped[e->kind]);
			}
		}
		cc_clear(b);
	}
	return bus_pending(b);
}

static int
parse_with(ProtobufCAllocator *al, const uint8_t *buf, size_t len,
    Exo__Envelope **env)
{
	Exo__Envelope *e = exo__envelope__unpack(al, len, buf);

	*env = e;
	if (!e)
		return EPROTO;
	return e->version == BUS_VERSION ? 0 : EPROTONOSUPPORT;
}

int
bus_parse(const uint8_t *buf, size_t len, Exo__Envelope **env)
{
	return parse_with(NULL, buf, len, env);
}

/* bus_recv and bus_next: al NULL for malloc, else b's arena (then the
 * Envelope is never freed, only dropped with the arena's reset). */
static int
recv_with(struct bus *b, ProtobufCAllocator *al, Exo__Envelope **env)
{
	nng_msg *m;
	int rv = recv_now(b, &m);
	if (rv == NNG_EAGAIN)
		return EAGAIN;
	if (rv != 0) {
		LOGW(b->log, NULL, "bus %s: receive: %s", b->link,
		    nng_strerror(rv));
		return EAGAIN;
	}
	metric_inc(b->msgs_in);
	Exo__Envelope *e   = NULL;
	size_t         len = nng_msg_len(m);
	int            pr  = parse_with(al, nng_msg_body(m), len, &e);
	if (b->tapping) {
		/* pair1 keeps its hop count in the header: not Envelope. */
		nng_msg_header_clear(m);
		tap_pub(b, m); /* as received, valid or not */
	}
	else
		nng_msg_free(m);
	if (pr != 0) {
		uint64_t now = mono_us();
		metric_inc(b->bad);
		if (now - b->bad_logged_us > 60000000u || !b->bad_logged_us) {
			b->bad_logged_us = now;
			if (!e)
				LOGW(b->log, NULL,
				    "bus %s: discarded a %zu-byte message that "
				    "is not an Envelope",
				    b->link, len);
			else
				LOGW(b->log, NULL,
				    "bus %s: discarded an Envelope of version "
				    "%u from '%s' (we speak %d)",
				    b->link, e->version,
				    e->sender ? e->sender : "", BUS_VERSION);
		}
		if (e && !al)
			exo__envelope__free_unpacked(e, NULL);
		return EPROTO;
	}
	if (e->sent_us) {
		uint64_t now = wall_us();
		metric_observe(b->transit,
		    now > e->sent_us ? (int64_t)(now - e->sent_us) : 0);
	}
	*env = e;
	return 0;
}

int
bus_recv(struct bus *b, Exo__Envelope **env)
{
	return recv_with(b, NULL, env);
}

int
bus_recv_in(struct bus *b, struct arena *a, Exo__Envelope **env)
{
	return recv_with(b, arena_pb(a), env);
}

int
bus_next(struct bus *b, const Exo__Envelope **env)
{
	Exo__Envelope *e;
	int rv;

	arena_reset(b->rx);
	rv = recv_with(b, arena_pb(b->rx), &e);
	if (rv == 0)
		*env = e;
	return rv;
}

void
bus_envelope_free(Exo__Envelope *env)
{
	if (env)
		exo__envelope__free_unpacked(env, NULL);
}

void
bus_count_in(struct bus *b, const Exo__Frame *f)
{
	int k = kind_index(f);

	metric_inc(b->in[k]);
	if (b->age[k] && f->ts_us) {
		uint64_t now = wall_us();
		metric_observe(b->age[k],
		    now > f->ts_us ? (int64_t) (now - f->ts_us) : 0);
	}
}

int
bus_fd(struct bus *b)
{
	int fd = -1;
	if (nng_socket_get_int(b->sock, NNG_OPT_RECVFD, &fd) != 0)
		return -1;
	return fd;
}

int
bus_peers(const struct bus *b)
{
	return atomic_load(&((struct bus *) b)->peers);
}

bool
bus_take_new_peer(struct bus *b)
{
	return atomic_exchange(&b->new_peer, 0) != 0;
}
