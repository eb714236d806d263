/*
 * shards.c - the transcoder's calls on n threads (see shards.h).
 */
#include "shards.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "arena.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "strmap.h"

#define FLUSH_AT 16 /* queued frames that make the bus thread flush */
#define IDLE_WAIT_MS 100 /* a shard's housekeeping without input */
#define ENV_SPARES 4 /* received Envelopes' arenas kept for reuse */
#define ENV_SPARE_CAP (256u << 10) /* and the largest kept */
#define OWNER_SLACK_US (10 * 1000000ull) /* see owner_old */
#define PUBLISH_US 1000 /* shards_opts.publish_us's default: the bus hold */
#define STALE_WARN_US (10 * 1000000ull) /* a shard's overload warnings */
/* Emptied arrays and buffers past these are freed rather than kept: they
 * grew in a backlog (a stalled host, a burst) and would hold the process
 * at that high-water mark. A turn of 400 calls' frames fits in them. */
#define ITEMS_KEEP 4096 /* items: 128 kB */
#define OUTBUF_KEEP (256u << 10)

/* A received Envelope in its own arena, which goes back to the shards'
 * spares when the last of its frames is handled. */
struct envref {
	Exo__Envelope *env;
	_Atomic int    refs;
	struct arena  *arena;
	struct shards *s;
	struct envref *next; /* in spares */
};

/* One frame for a shard, or (f == NULL) "ingress lost at lost_us". */
struct item {
	const Exo__Frame *f;
	struct envref    *ref;
	uint64_t          lost_us;
	uint64_t          rx_us; /* mono: taken off the link */
	bool              from_egress;
	bool              done; /* shard_work's: handled ahead of its turn */
};

struct items {
	struct item *v;
	size_t       n, cap;
};

/* Packed output frames, each [struct out_hdr][frame], for the bus thread
 * to queue as they are (bus_send_packed). */
struct out_hdr {
	struct bus_meta meta;
	uint32_t        len;
	bool            to_egress;
};
struct outbuf {
	uint8_t *p;
	size_t   len, cap;
};

struct shard {
	struct shards  *s;
	struct loop    *loop;
	pthread_t       th;
	bool            running;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	struct items    inbox; /* mu */
	struct outbuf   outbox; /* mu */
	bool            stop; /* mu */
	struct outbuf   local; /* the shard thread's: this batch's output */
	struct items    pend; /* the bus thread's: this turn's input */
	bool            oom_logged;
	uint64_t        stale_n; /* the shard thread's: since the warning */
	uint64_t        stale_warn_us;
};

/* Where a call's frames go (the bus thread's): set by its first frame,
 * so what a shard keeps for a call not yet started (a session ready
 * first, the announce it asked for) is where the call_start lands. */
struct owner {
	unsigned shard;
	bool     live; /* call_start seen, call_stop not: counted in nlive */
	uint64_t seen_us; /* mono, the last frame routed */
};

struct shards {
	struct shards_opts o;
	struct shard      *sh;
	struct strmap     *owners; /* call_id -> struct owner */
	unsigned           nlive[SHARDS_MAX]; /* live owners per shard */
	uint64_t           owner_keep_us, sweep_us;
	bool               owner_oom_logged;
	struct metric     *m_stale;
	int                evfd;
	struct outbuf      take; /* the bus thread's: an outbox swapped out */
	int                in_peers;
	uint64_t           check_us;
	pthread_mutex_t    spare_mu; /* the bus and shard threads return */
	struct envref     *spare; /* spare_mu */
	unsigned           nspare; /* spare_mu */
	struct envref     *ready; /* the bus thread's: taken, not yet used */
};

/* A spare envref with an empty arena, or a new one; NULL without
 * memory. */
static struct envref *
envref_get(struct shards *s)
{
	struct envref *r;

	pthread_mutex_lock(&s->spare_mu);
	if ((r = s->spare) != NULL) {
		s->spare = r->next;
		s->nspare--;
	}
	pthread_mutex_unlock(&s->spare_mu);
	if (r != NULL)
		return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	/* Grows to the Envelopes it gets (~50 kB at 100 calls in a burst). */
	if (arena_alloc(&r->arena, 16u << 10, 16u << 20)) {
		free(r);
		return NULL;
	}
	r->s = s;
	return r;
}

/* Keeps r for the next Envelope; past ENV_SPARES (after a backlog, when
 * many were in flight) or grown past ENV_SPARE_CAP, frees it instead, so
 * a burst does not hold its memory for good. */
static void
envref_spare(struct envref *r)
{
	struct shards *s    = r->s;
	bool           keep = false;

	arena_reset(r->arena);
	r->env = NULL;
	if (arena_cap(r->arena) <= ENV_SPARE_CAP) {
		pthread_mutex_lock(&s->spare_mu);
		if ((keep = s->nspare < ENV_SPARES)) {
			r->next  = s->spare;
			s->spare = r;
			s->nspare++;
		}
		pthread_mutex_unlock(&s->spare_mu);
	}
	if (!keep) {
		arena_free(r->arena);
		free(r);
	}
}

static void
envref_put(struct envref *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1)
		envref_spare(r);
}

static int
items_push(struct items *v, const struct item *it)
{
	if (v->n == v->cap) {
		size_t       cap = v->cap ? v->cap * 2 : 256;
		struct item *nv  = realloc(v->v, cap * sizeof(*nv));
		if (nv == NULL)
			return ENOMEM;
		v->v   = nv;
		v->cap = cap;
	}
	v->v[v->n++] = *it;
	return 0;
}

/* Empties v, and frees its array if it grew past ITEMS_KEEP. */
static void
items_empty(struct items *v)
{
	v->n = 0;
	if (v->cap > ITEMS_KEEP) {
		free(v->v);
		v->v   = NULL;
		v->cap = 0;
		memtrim_note();
	}
}

/* Empties b, and frees its buffer if it grew past OUTBUF_KEEP. */
static void
outbuf_empty(struct outbuf *b)
{
	b->len = 0;
	if (b->cap > OUTBUF_KEEP) {
		free(b->p);
		b->p   = NULL;
		b->cap = 0;
		memtrim_note();
	}
}

static int
outbuf_reserve(struct outbuf *b, size_t more)
{
	if (b->len + more > b->cap) {
		size_t   cap = b->cap ? b->cap : 16384;
		uint8_t *np;
		while (cap < b->len + more)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return ENOMEM;
		b->p   = np;
		b->cap = cap;
	}
	return 0;
}

/* The loop's send hook, on the shard's thread: pack into this batch's
 * output. */
static int
shard_send(void *arg, bool to_egress, const Exo__Frame *f)
{
	struct shard  *sh = arg;
	size_t         n  = exo__frame__get_packed_size(f);
	struct out_hdr h  = { .len = (uint32_t)n, .to_egress = to_egress };
	uint8_t       *p;

	if (n > UINT32_MAX || outbuf_reserve(&sh->local, sizeof(h) + n)) {
		if (!sh->oom_logged)
			LOGE(sh->s->o.loop.log, NULL,
			    "shard: out of memory: output frames dropped");
		sh->oom_logged = true;
		return ENOMEM;
	}
	bus_meta(f, &h.meta);
	p = sh->local.p + sh->local.len;
	memcpy(p, &h, sizeof(h));
	exo__frame__pack(f, p + sizeof(h));
	sh->local.len += sizeof(h) + n;
	return 0;
}

static void
shard_handle(struct shard *sh, const struct item *it)
{
	if (it->f == NULL) {
		loop_ingress_lost(sh->loop, it->lost_us);
		return;
	}
	loop_frame(sh->loop, it->from_egress, it->f);
	envref_put(it->ref);
}

/* Moves the shard's output to its outbox and wakes the bus thread. Call
 * with sh->mu held. */
static void
shard_publish(struct shard *sh)
{
	uint64_t one = 1;

	if (sh->local.len == 0)
		return;
	if (outbuf_reserve(&sh->outbox, sh->local.len) == 0) {
		memcpy(
		    sh->outbox.p + sh->outbox.len, sh->local.p, sh->local.len);
		sh->outbox.len += sh->local.len;
	}
	outbuf_empty(&sh->local);
	if (write(sh->s->evfd, &one, sizeof(one)) < 0) {
		/* The counter is saturated: a wake is due anyway. */
	}
}

/* Whether it may be handled ahead of ingress frames that came before it:
 * a downlink page for a call this shard holds. Such a page decodes in a
 * tenth of the time caller audio takes to encode, and the two links'
 * order relative to each other was never defined (the bus thread drains
 * one link, then the other); a call's control frames keep their place. */
static bool
may_jump(struct shard *sh, const struct item *it)
{
	return it->from_egress && it->f
	    && it->f->body_case == EXO__FRAME__BODY_DOWNLINK_OGG
	    && loop_has_call(sh->loop, it->f->call_id);
}

/* The egress frame it: handled now if it may jump and none before it in
 * this batch was kept back (each link keeps its order); else false. */
static bool
jump(struct shard *sh, struct item *it, bool *held)
{
	if (!it->from_egress)
		return false;
	if (*held || !may_jump(sh, it)) {
		*held = true;
		return false;
	}
	shard_handle(sh, it);
	return true;
}

/* Drops it (counts it, releases its Envelope, returns true) when it is
 * caller audio that waited for this shard longer than max_wait_ms: the
 * shard is behind (more calls than the CPU can encode, or the host
 * stalled it). Such audio is dropped rather than encoded late, so that a
 * backlog shrinks instead of growing with every second of overload, and
 * with it the delay of every call and the memory the queued frames hold.
 */
static bool
drop_stale(struct shard *sh, const struct item *it, uint64_t now)
{
	uint64_t max = (uint64_t)sh->s->o.max_wait_ms * 1000;

	if (max == 0 || it->from_egress || it->f == NULL
	    || it->f->body_case != EXO__FRAME__BODY_CALLER_AUDIO
	    || now - it->rx_us <= max)
		return false;
	metric_inc(sh->s->m_stale);
	sh->stale_n++;
	if (now - sh->stale_warn_us >= STALE_WARN_US) {
		LOGW(sh->s->o.loop.log, NULL,
		    "overloaded: %llu caller audio frames waited over %u ms "
		    "for this thread and were dropped",
		    (unsigned long long)sh->stale_n, sh->s->o.max_wait_ms);
		sh->stale_n       = 0;
		sh->stale_warn_us = now;
	}
	envref_put(it->ref);
	return true;
}

/* Handles work, taken from the inbox: downlink pages first (may_jump),
 * then the rest in order. During a long batch (a burst, or the host
 * stalled this thread) the output goes to the bus thread at least every
 * publish_us, and what arrived meanwhile is taken too, its downlink pages
 * handled at once. late is a spare array for that, left empty. */
static void
shard_work(struct shard *sh, struct items *work, struct items *late)
{
	uint64_t     published = mono_us();
	bool         held      = false;
	struct items tmp;
	size_t       i = 0;

	for (size_t k = 0; k < work->n; k++)
		work->v[k].done = jump(sh, &work->v[k], &held);
	while (i < work->n) {
		struct item *it = &work->v[i++];
		if (it->done || drop_stale(sh, it, mono_us()))
			continue;
		shard_handle(sh, it);
		if (i == work->n
		    || mono_us() - published < sh->s->o.publish_us)
			continue;
		/* Under a sustained overload the batch never ends: drop what
		 * it handled once that is half the array, or the array grows
		 * by every frame that comes (each item moves once on
		 * average). */
		if (2 * i >= work->n) {
			memmove(work->v, work->v + i,
			    (work->n - i) * sizeof(*work->v));
			work->n -= i;
			i = 0;
		}
		pthread_mutex_lock(&sh->mu);
		shard_publish(sh);
		tmp       = sh->inbox;
		sh->inbox = *late;
		*late     = tmp;
		pthread_mutex_unlock(&sh->mu);
		/* Under SCHED_BATCH (schedpol.h) the bus thread just woken,
		 * and any other the kernel queued behind this one, would wait
		 * for the next tick (4 ms at HZ 250) while this batch runs:
		 * let them run now. A no-op when none waits. */
		sched_yield();
		for (size_t k = 0; k < late->n; k++) {
			struct item *lt = &late->v[k];
			if (jump(sh, lt, &held))
				continue;
			lt->done = false;
			if (items_push(work, lt) == 0)
				continue;
			/* Out of memory: dropped, as dispatch would. */
			if (lt->f)
				envref_put(lt->ref);
		}
		items_empty(late);
		published = mono_us();
		/* Under a sustained overload this batch may not end soon. */
		loop_housekeeping(sh->loop, published);
	}
	items_empty(work);
}

static void *
shard_main(void *arg)
{
	struct shard   *sh   = arg;
	struct items    work = { 0 }, late = { 0 }, tmp;
	struct timespec ts;

	pthread_mutex_lock(&sh->mu);
	for (;;) {
		if (!sh->stop && sh->inbox.n == 0) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
		}
		if (sh->stop)
			break;
		/* Take the inbox whole; give it the emptied work array. */
		tmp       = sh->inbox;
		sh->inbox = work;
		work      = tmp;
		pthread_mutex_unlock(&sh->mu);

		shard_work(sh, &work, &late);
		loop_housekeeping(sh->loop, mono_us());

		pthread_mutex_lock(&sh->mu);
		shard_publish(sh);
	}
	pthread_mutex_unlock(&sh->mu);
	free(work.v);
	free(late.v);
	return NULL;
}

/* A call_id's shard by hash: for when its owner cannot be recorded. */
static unsigned
hash_shard(const struct shards *s, const char *call_id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = call_id; p && *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % s->o.n;
}

static unsigned
least_loaded(const struct shards *s)
{
	unsigned best = 0;

	for (unsigned i = 1; i < s->o.n; i++)
		if (s->nlive[i] < s->nlive[best])
			best = i;
	return best;
}

/* The shard for frame f, recording a new call_id's owner: the shard with
 * the fewest live calls. A hash spreads n calls over two shards only to
 * within about sqrt(n)/2 of even (at 170 calls, 85 +- 6.5), and the
 * busier thread is the one that falls behind first. */
static unsigned
route(struct shards *s, const Exo__Frame *f, uint64_t now)
{
	struct owner *o;

	if (f->call_id == NULL || *f->call_id == '\0')
		return 0; /* its shard logs and counts it */
	if ((o = strmap_get(s->owners, f->call_id)) == NULL) {
		if ((o = calloc(1, sizeof(*o))) == NULL
		    || strmap_put(s->owners, f->call_id, o)) {
			free(o);
			if (!s->owner_oom_logged)
				LOGE(s->o.loop.log, NULL,
				    "out of memory: calls placed by hash, not "
				    "by load");
			s->owner_oom_logged = true;
			return hash_shard(s, f->call_id);
		}
		o->shard = least_loaded(s);
	}
	o->seen_us = now;
	if (f->body_case == EXO__FRAME__BODY_CALL_START && !o->live) {
		o->live = true;
		s->nlive[o->shard]++;
	} else if (f->body_case == EXO__FRAME__BODY_CALL_STOP && o->live) {
		o->live = false;
		s->nlive[o->shard]--;
	}
	return o->shard;
}

/* Forgets an owner no frame has come for in owner_keep_us: longer than
 * a shard keeps anything for a call without frames (idle_s, then a
 * pending entry's 10 s), so the call_id may start again on any shard. */
static bool
owner_old(const char *key, void *val, void *arg)
{
	struct shards *s = arg;
	struct owner  *o = val;

	(void)key;
	if (s->sweep_us - o->seen_us < s->owner_keep_us)
		return false;
	if (o->live)
		s->nlive[o->shard]--;
	free(o);
	return true;
}

static void
free_owner(const char *key, void *val, void *arg)
{
	(void)key;
	(void)arg;
	free(val);
}

int
shards_owner(const struct shards *s, const char *call_id)
{
	const struct owner *o = strmap_get(s->owners, call_id);

	return o ? (int)o->shard : -1;
}

static void
shard_stop(struct shard *sh)
{
	if (!sh->running)
		return;
	pthread_mutex_lock(&sh->mu);
	sh->stop = true;
	pthread_cond_signal(&sh->cv);
	pthread_mutex_unlock(&sh->mu);
	pthread_join(sh->th, NULL);
	sh->running = false;
}

void
shards_free(struct shards *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->o.n; i++)
		shard_stop(&s->sh[i]);
	for (unsigned i = 0; i < s->o.n; i++) {
		struct shard *sh = &s->sh[i];
		/* Frames never handled still hold their Envelopes. */
		for (size_t k = 0; k < sh->inbox.n; k++)
			if (sh->inbox.v[k].f)
				envref_put(sh->inbox.v[k].ref);
		for (size_t k = 0; k < sh->pend.n; k++)
			if (sh->pend.v[k].f)
				envref_put(sh->pend.v[k].ref);
		loop_free(sh->loop);
		free(sh->inbox.v);
		free(sh->pend.v);
		free(sh->outbox.p);
		free(sh->local.p);
		pthread_mutex_destroy(&sh->mu);
		pthread_cond_destroy(&sh->cv);
	}
	if (s->evfd >= 0)
		close(s->evfd);
	if (s->ready) {
		arena_free(s->ready->arena);
		free(s->ready);
	}
	while (s->spare) {
		struct envref *r = s->spare;
		s->spare         = r->next;
		arena_free(r->arena);
		free(r);
	}
	pthread_mutex_destroy(&s->spare_mu);
	if (s->owners) {
		strmap_each(s->owners, free_owner, NULL);
		strmap_free(s->owners);
	}
	free(s->take.p);
	free(s->sh);
	free(s);
}

int
shards_alloc(struct shards **out, const struct shards_opts *o)
{
	struct shards *s;
	int            rc = 0;

	*out = NULL;
	if (o->n < 1 || o->n > SHARDS_MAX || o->loop.send)
		return EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ENOMEM;
	s->o    = *o;
	s->evfd = -1;
	if (s->o.publish_us == 0)
		s->o.publish_us = PUBLISH_US;
	s->m_stale
	    = metrics_counter(o->loop.metrics, "transcoder_stale_frames_total",
	        "Caller audio frames dropped after waiting longer than "
	        "EXOPLEX_TRANSCODER_MAX_WAIT_MS for a transcoder thread.",
	        NULL);
	/* As loop_alloc's default. */
	s->owner_keep_us = (o->loop.idle_s ? o->loop.idle_s : 60) * 1000000ull
	    + OWNER_SLACK_US;
	pthread_mutex_init(&s->spare_mu, NULL);
	if ((s->sh = calloc(o->n, sizeof(*s->sh))) == NULL
	    || strmap_alloc(&s->owners)) {
		free(s->sh);
		pthread_mutex_destroy(&s->spare_mu);
		free(s);
		return ENOMEM;
	}
	for (unsigned i = 0; i < o->n; i++) {
		pthread_mutex_init(&s->sh[i].mu, NULL);
		pthread_cond_init(&s->sh[i].cv, NULL);
		s->sh[i].s = s;
	}
	if ((s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = errno;
		goto fail;
	}
	for (unsigned i = 0; i < o->n; i++) {
		struct shard    *sh = &s->sh[i];
		struct loop_opts lo = o->loop;

		lo.send     = shard_send;
		lo.send_arg = sh;
		lo.admin    = NULL; /* the bus thread beats for all */
		if ((rc = loop_alloc(&sh->loop, &lo)) != 0)
			goto fail;
	}
	for (unsigned i = 0; i < o->n; i++) {
		if ((rc = pthread_create(
		         &s->sh[i].th, NULL, shard_main, &s->sh[i]))
		    != 0)
			goto fail;
		s->sh[i].running = true;
	}
	s->in_peers = bus_peers(o->loop.ingress);
	s->check_us = mono_us();
	*out        = s;
	return 0;
fail:
	shards_free(s);
	return rc;
}

/* Hands the Envelopes waiting on b to the shards' pending lists. */
static void
drain(struct shards *s, struct bus *b, bool from_egress, uint64_t now)
{
	Exo__Envelope *env;
	int            rc;

	for (int i = 0; i < 256; i++) {
		/* Most turns find nothing: keep the envref for the next
		 * rather than lock twice to hand it back. */
		struct envref *ref = s->ready ? s->ready : envref_get(s);
		s->ready           = NULL;
		if (ref == NULL) {
			/* Out of memory: the link must keep moving, so take
			 * the Envelope off it anyway and say what was lost. */
			if ((rc = bus_recv(b, &env)) == EAGAIN)
				return;
			if (rc == 0) {
				LOGE(s->o.loop.log, NULL,
				    "out of memory: %zu received frames "
				    "dropped",
				    env->n_frames);
				bus_envelope_free(env);
			}
			continue;
		}
		if ((rc = bus_recv_in(b, ref->arena, &env)) != 0) {
			arena_reset(ref->arena); /* what a bad message left */
			s->ready = ref;
			if (rc == EAGAIN)
				return;
			continue; /* logged and counted by the bus */
		}
		ref->env = env;
		atomic_init(&ref->refs, 1);
		for (size_t k = 0; k < env->n_frames; k++) {
			const Exo__Frame *f  = env->frames[k];
			struct shard     *sh = &s->sh[route(s, f, now)];
			struct item       it = { .f = f,
				      .ref          = ref,
				      .rx_us        = now,
				      .from_egress  = from_egress };
			bus_count_in(b, f);
			atomic_fetch_add(&ref->refs, 1);
			if (items_push(&sh->pend, &it)) {
				atomic_fetch_sub(&ref->refs, 1);
				LOGE(s->o.loop.log, NULL,
				    "out of memory: a received frame dropped");
			}
		}
		envref_put(ref);
	}
}

/* Moves this turn's input to the shards and wakes them. */
static void
dispatch(struct shards *s)
{
	for (unsigned i = 0; i < s->o.n; i++) {
		struct shard *sh = &s->sh[i];
		if (sh->pend.n == 0)
			continue;
		pthread_mutex_lock(&sh->mu);
		if (sh->inbox.n == 0) {
			struct items t = sh->inbox;
			sh->inbox      = sh->pend;
			sh->pend       = t;
		} else {
			for (size_t k = 0; k < sh->pend.n; k++)
				if (items_push(&sh->inbox, &sh->pend.v[k])
				    && sh->pend.v[k].f)
					envref_put(sh->pend.v[k].ref);
		}
		pthread_cond_signal(&sh->cv);
		pthread_mutex_unlock(&sh->mu);
		items_empty(&sh->pend);
	}
}

/* Sends what the shards produced. */
static void
collect(struct shards *s)
{
	struct bus *in = s->o.loop.ingress, *eg = s->o.loop.egress;

	for (unsigned i = 0; i < s->o.n; i++) {
		struct shard *sh = &s->sh[i];
		struct outbuf t;

		pthread_mutex_lock(&sh->mu);
		t          = sh->outbox;
		sh->outbox = s->take;
		pthread_mutex_unlock(&sh->mu);
		s->take = t;
		for (size_t off = 0; off + sizeof(struct out_hdr) <= t.len;) {
			struct out_hdr h;
			memcpy(&h, t.p + off, sizeof(h));
			off += sizeof(h);
			if (h.len > t.len - off)
				break;
			bus_send_packed(
			    h.to_egress ? eg : in, &h.meta, t.p + off, h.len);
			off += h.len;
			/* Early in a burst, before a call's output reaches
			 * the bus's per-call cap. */
			if (bus_pending(in) >= FLUSH_AT)
				bus_flush(in);
			if (bus_pending(eg) >= FLUSH_AT)
				bus_flush(eg);
		}
		outbuf_empty(&s->take);
	}
}

void
shards_turn(struct shards *s, int timeout_ms)
{
	struct bus   *in = s->o.loop.ingress, *eg = s->o.loop.egress;
	struct pollfd p[3];
	nfds_t        n = 0;
	int           fd;
	uint64_t      now, cnt;

	if ((fd = bus_fd(in)) >= 0)
		p[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
	if ((fd = bus_fd(eg)) >= 0)
		p[n++] = (struct pollfd) { .fd = fd, .events = POLLIN };
	p[n++] = (struct pollfd) { .fd = s->evfd, .events = POLLIN };
	poll(p, n, loop_hold_timeout(in, eg, timeout_ms));
	if (read(s->evfd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: no shard output since the last turn */
	}
	now = mono_us();
	drain(s, in, false, now);
	drain(s, eg, true, now);
	if (now - s->sweep_us >= 1000000) {
		s->sweep_us = now;
		strmap_del_if(s->owners, owner_old, s);
	}
	{
		/* As loop_turn: calls a new or departed ingress does not
		 * announce again within the grace are freed, by every
		 * shard. */
		bool fresh = bus_take_new_peer(in);
		int  peers = bus_peers(in);
		if (fresh)
			LOGI(s->o.loop.log, NULL,
			    "bus transcoder: ingress connected");
		else if (s->in_peers && !peers)
			LOGW(s->o.loop.log, NULL,
			    "bus transcoder: ingress disconnected");
		if (fresh || (s->in_peers && !peers)) {
			struct item it = { .lost_us = s->check_us };
			for (unsigned i = 0; i < s->o.n; i++)
				if (items_push(&s->sh[i].pend, &it))
					LOGE(s->o.loop.log, NULL,
					    "out of memory: ingress change "
					    "not handed to a shard");
		}
		s->in_peers = peers;
		s->check_us = now;
	}
	if (bus_take_new_peer(eg))
		LOGI(s->o.loop.log, NULL, "bus egress: egress connected");
	dispatch(s);
	collect(s);
	if (s->o.loop.admin)
		admin_heartbeat(s->o.loop.admin);
	bus_flush(in);
	bus_flush(eg);
}
