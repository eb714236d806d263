/*
 * conv.c - a conversation's model side (see conv.h).
 */
#include "conv.h"

#include "log.h"
#include "oggstrict.h"
#include "sphn.h"
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <opus/opus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sphn's reader decodes into a 240000-sample buffer: an empty packet
 * makes libopus conceal that much (10 s) of loss. */
#define PLC_SAMPLES 240000
#define MAX_PACKET 2880 /* 120 ms at 24 kHz, the longest Opus packet */
#define TONE_AMP 0.3f
#define SERIALS_MAX 8

/* RFC 7845 bookkeeping per logical stream, for warnings only. */
struct serial_state {
	uint32_t serial;
	uint32_t last_seq;
	uint64_t packets;
	uint64_t samples48; /* audio samples decoded, 48 kHz */
	uint64_t audio_pages;
};

struct conv {
	const struct conv_opts *o;
	struct stats           *st;
	const struct log       *lg;
	uint64_t                id;
	conv_send_fn            send;
	void                   *arg;
	struct oggstrict       *rd;
	OpusDecoder            *dec;
	struct sphn_writer     *wr;
	const char             *fatal;
	float                   acc[SPHN_FRAME + MAX_PACKET];
	size_t                  nacc;
	double                  phase;
	const char             *text_next; /* the rest of o->text */
	uint8_t                 page_flags; /* of the page being read */
	size_t                  replay_fill; /* 24 kHz samples toward a step */
	size_t                  replay_next; /* the clip's next packet */
	struct serial_state     ser[SERIALS_MAX];
	size_t                  nser;
};

static void
fatal(struct conv *c, const char *kind, const char *detail)
{
	if (c->fatal == NULL)
		c->fatal = kind;
	stats_violation(c->st, kind);
	LOGW(c->lg, NULL, "session %llu: %s: %s (the real server closes)",
	    (unsigned long long)c->id, kind, detail);
}

static void
warn(struct conv *c, const char *kind, const char *detail)
{
	stats_warning(c->st, kind);
	LOGD(c->lg, NULL, "session %llu: warning %s: %s",
	    (unsigned long long)c->id, kind, detail);
}

static int
send_page(void *arg, const uint8_t *page, size_t len)
{
	struct conv *c = arg;

	stats_add(c->st, ST_PAGES_OUT, 1);
	if (c->send(c->arg, 0x01, page, len))
		stats_add(c->st, ST_OUT_DROPPED, 1);
	return 0;
}

/* The next text piece: " word" for each space-separated word. */
static int
send_text_piece(struct conv *c)
{
	char        piece[256];
	const char *w = c->text_next, *e;
	size_t      n;

	while (w && *w == ' ')
		w++;
	if (w == NULL || *w == '\0') {
		c->text_next = NULL;
		return 0;
	}
	for (e = w; *e && *e != ' '; e++)
		;
	n = (size_t)(e - w);
	if (n > sizeof(piece) - 2)
		n = sizeof(piece) - 2;
	piece[0] = ' ';
	memcpy(piece + 1, w, n);
	c->text_next = e;
	stats_add(c->st, ST_TEXT_OUT, 1);
	if (c->send(c->arg, 0x02, (const uint8_t *)piece, n + 1))
		stats_add(c->st, ST_OUT_DROPPED, 1);
	return 0;
}

/* One model step: 1920 input samples in, one 80 ms page out. */
static int
step(struct conv *c, const float *in)
{
	float tone[SPHN_FRAME];

	stats_add(c->st, ST_STEPS, 1);
	send_text_piece(c);
	if (c->o->mode == CONV_TONE) {
		double inc = 2 * M_PI * c->o->tone_hz / SPHN_RATE;
		for (int i = 0; i < SPHN_FRAME; i++) {
			tone[i] = TONE_AMP * (float)sin(c->phase);
			c->phase += inc;
		}
		c->phase = fmod(c->phase, 2 * M_PI);
		in       = tone;
	}
	return sphn_writer_append(c->wr, in, SPHN_FRAME);
}

/* Replay: n more 24 kHz samples arrived (not decoded); a step per 80 ms
 * sends the clip's next packet. */
static int
replay_in(struct conv *c, size_t n)
{
	const struct conv_clip *cl = c->o->clip;

	stats_add(c->st, ST_SAMPLES_IN, (int64_t)n);
	c->replay_fill += n;
	while (c->replay_fill >= SPHN_FRAME) {
		size_t i = c->replay_next;
		c->replay_fill -= SPHN_FRAME;
		stats_add(c->st, ST_STEPS, 1);
		send_text_piece(c);
		if (cl == NULL || cl->n == 0)
			return EIO;
		c->replay_next = (i + 1) % cl->n;
		if (sphn_writer_packet(
		        c->wr, cl->data + cl->off[i], cl->len[i], SPHN_FRAME))
			return EIO;
	}
	return 0;
}

static int
pcm_in(struct conv *c, const float *pcm, size_t n)
{
	size_t off = 0;

	stats_add(c->st, ST_SAMPLES_IN, (int64_t)n);
	while (off < n) {
		size_t k = sizeof(c->acc) / sizeof(c->acc[0]) - c->nacc;
		if (k > n - off)
			k = n - off;
		memcpy(c->acc + c->nacc, pcm + off, k * sizeof(float));
		c->nacc += k;
		off += k;
		while (c->nacc >= SPHN_FRAME) {
			if (step(c, c->acc))
				return EIO;
			c->nacc -= SPHN_FRAME;
			memmove(c->acc, c->acc + SPHN_FRAME,
			    c->nacc * sizeof(float));
		}
	}
	return 0;
}

static struct serial_state *
serial_get(struct conv *c, uint32_t serial)
{
	for (size_t i = 0; i < c->nser; i++)
		if (c->ser[i].serial == serial)
			return &c->ser[i];
	if (c->nser == SERIALS_MAX) /* keep the newest streams */
		memmove(c->ser, c->ser + 1, --c->nser * sizeof(c->ser[0]));
	memset(&c->ser[c->nser], 0, sizeof(c->ser[0]));
	c->ser[c->nser].serial = serial;
	return &c->ser[c->nser++];
}

static void
on_page(void *arg, const struct oggstrict_page *pg)
{
	struct conv         *c = arg;
	struct serial_state *s = serial_get(c, pg->serial);
	char                 d[96];

	stats_add(c->st, ST_PAGES_IN, 1);
	c->page_flags = pg->flags;
	if (!(pg->flags & 0x02) && pg->seq != s->last_seq + 1) {
		snprintf(d, sizeof(d), "serial %08x: page %u after %u",
		    pg->serial, pg->seq, s->last_seq);
		warn(c, "page_sequence", d);
	}
	s->last_seq = pg->seq;
}

static void
on_violation(void *arg, enum oggstrict_kind k, const char *detail)
{
	struct conv *c = arg;

	if (oggstrict_kind_fatal(k)) {
		fatal(c, oggstrict_kind_name(k), detail);
		return;
	}
	stats_violation(c->st, oggstrict_kind_name(k));
	LOGW(c->lg, NULL, "session %llu: %s: %s", (unsigned long long)c->id,
	    oggstrict_kind_name(k), detail);
}

static bool
starts(const struct oggstrict_packet *p, const char *magic)
{
	return p->len >= 8 && !memcmp(p->data, magic, 8);
}

/* RFC 7845 order and granules; the real server checks neither. */
static void
check_rfc7845(struct conv *c, const struct oggstrict_packet *p, bool audio)
{
	struct serial_state *s = serial_get(c, p->serial);
	char                 d[128];

	if (s->packets == 0 && !starts(p, "OpusHead"))
		warn(c, "no_opushead", "first packet of a stream");
	if (s->packets == 1 && !starts(p, "OpusTags"))
		warn(c, "no_opustags", "second packet of a stream");
	s->packets++;
	if (!audio)
		return;
	int n = opus_packet_get_nb_samples(p->data, (opus_int32)p->len, 48000);
	if (n > 0)
		s->samples48 += (uint64_t)n;
	if (!p->last_in_page)
		return;
	s->audio_pages++;
	/* Trimming lets the first and the last (EOS) page end earlier. */
	bool may_trim = s->audio_pages == 1 || (c->page_flags & 0x04);
	if (p->granule == s->samples48
	    || (may_trim && p->granule < s->samples48))
		return;
	snprintf(d, sizeof(d),
	    "serial %08x page %u: granule %llu, decoded %llu (48 kHz)",
	    p->serial, p->page_seq, (unsigned long long)p->granule,
	    (unsigned long long)s->samples48);
	warn(c, "granule", d);
}

static int
on_packet(void *arg, const struct oggstrict_packet *p)
{
	struct conv *c = arg;
	float        pcm[MAX_PACKET];
	int          n;

	stats_add(c->st, ST_PACKETS_IN, 1);
	/* sphn skips these wherever they appear (opus.rs:351-353). */
	if (starts(p, "OpusHead") || starts(p, "OpusTags")) {
		check_rfc7845(c, p, false);
		return 0;
	}
	check_rfc7845(c, p, true);
	if (p->len == 0) {
		/* Not fatal for the real server, but 10 s of concealment. */
		stats_violation(c->st, "empty_packet");
		LOGW(c->lg, NULL,
		    "session %llu: empty Opus packet: the real server "
		    "conceals 10 s of loss",
		    (unsigned long long)c->id);
		if (c->o->mode == CONV_REPLAY)
			return replay_in(c, PLC_SAMPLES) ? 1 : 0;
		for (int i = 0; i < PLC_SAMPLES / SPHN_FRAME; i++) {
			n = opus_decode_float(
			    c->dec, NULL, 0, pcm, SPHN_FRAME, 0);
			if (n < 0 || pcm_in(c, pcm, (size_t)n))
				return 1;
		}
		return 0;
	}
	if (c->o->mode == CONV_REPLAY) {
		/* What decoding would have found, from the TOC alone. */
		n = opus_packet_get_nb_samples(
		    p->data, (opus_int32)p->len, SPHN_RATE);
		if (n < 0 || n > MAX_PACKET) {
			char d[96];
			snprintf(d, sizeof(d), "%zu-byte packet: %s", p->len,
			    n < 0 ? opus_strerror(n) : "over 120 ms");
			fatal(c, "decode_error", d);
			return 1;
		}
		stats_add(c->st, ST_PACKETS_DECODED, 1);
		return replay_in(c, (size_t)n) ? 1 : 0;
	}
	n = opus_decode_float(
	    c->dec, p->data, (opus_int32)p->len, pcm, MAX_PACKET, 0);
	if (n < 0) {
		char d[96];
		snprintf(d, sizeof(d), "%zu-byte packet: %s", p->len,
		    opus_strerror(n));
		fatal(c, "decode_error", d);
		return 1;
	}
	stats_add(c->st, ST_PACKETS_DECODED, 1);
	return pcm_in(c, pcm, (size_t)n) ? 1 : 0;
}

int
conv_alloc(struct conv **out, const struct conv_opts *opts, struct stats *st,
    const struct log *lg, uint64_t id, conv_send_fn send, void *arg)
{
	struct oggstrict_ops ops = { on_packet, on_page, on_violation };
	struct conv         *c   = calloc(1, sizeof(*c));
	int                  err = 0, rc;

	if (c == NULL)
		return ENOMEM;
	c->o         = opts;
	c->st        = st;
	c->lg        = lg;
	c->id        = id;
	c->send      = send;
	c->arg       = arg;
	c->text_next = opts->text;
	if ((rc = oggstrict_alloc(&c->rd, &ops, c)) != 0)
		goto out;
	/* One mono decoder at 24 kHz up front; OpusHead is never read.
	 * Replay decodes nothing. */
	if (opts->mode == CONV_REPLAY) {
		*out = c;
		return 0;
	}
	c->dec = opus_decoder_create(SPHN_RATE, 1, &err);
	if (c->dec == NULL || err != OPUS_OK) {
		rc = EIO;
		goto out;
	}
	*out = c;
	return 0;
out:
	conv_free(c);
	return rc;
}

void
conv_free(struct conv *c)
{
	if (c == NULL)
		return;
	oggstrict_free(c->rd);
	if (c->dec)
		opus_decoder_destroy(c->dec);
	sphn_writer_free(c->wr);
	free(c);
}

int
conv_handshake(struct conv *c)
{
	static const uint8_t none[1] = { 0 };

	stats_add(c->st, ST_HANDSHAKES, 1);
	if (c->send(c->arg, 0x00, none, 0))
		stats_add(c->st, ST_OUT_DROPPED, 1);
	/* The writer queues its two header pages when it is made. */
	if (sphn_writer_alloc(&c->wr, send_page, c))
		return EIO;
	if (c->o->complexity >= 0 && c->o->complexity <= 10)
		sphn_writer_complexity(c->wr, c->o->complexity);
	return 0;
}

int
conv_uplink(struct conv *c, const uint8_t *p, size_t n)
{
	int rc;

	if (c->fatal)
		return EPROTO;
	if (c->wr == NULL)
		return EPROTO; /* no handshake yet: the caller discards */
	stats_add(c->st, ST_BYTES_IN, (int64_t)n);
	rc = oggstrict_feed(c->rd, p, n);
	if (rc == OGGSTRICT_STOPPED && c->fatal == NULL)
		fatal(c, "internal", "encoder or memory failure");
	return c->fatal ? EPROTO : 0;
}

const char *
conv_fatal(const struct conv *c)
{
	return c->fatal;
}

void
conv_clip_free(struct conv_clip *c)
{
	if (c == NULL)
		return;
	free(c->data);
	free(c->off);
	free(c->len);
	free(c);
}

int
conv_clip_make(
    struct conv_clip **out, const int16_t *pcm, size_t n, int complexity)
{
	struct conv_clip *c;
	OpusEncoder      *e;
	size_t            frames = n / SPHN_FRAME, used = 0;
	int               err = 0, rc = 0;

	*out = NULL;
	if (frames == 0)
		return EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL
	    || (c->data = malloc(frames * 1276 * 3)) == NULL
	    || (c->off = calloc(frames, sizeof(size_t))) == NULL
	    || (c->len = calloc(frames, sizeof(size_t))) == NULL) {
		conv_clip_free(c);
		return ENOMEM;
	}
	e = opus_encoder_create(SPHN_RATE, 1, OPUS_APPLICATION_VOIP, &err);
	if (e == NULL) {
		conv_clip_free(c);
		return EIO;
	}
	if (complexity >= 0 && complexity <= 10)
		opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(complexity));
	for (size_t i = 0; i < frames; i++) {
		opus_int32 k = opus_encode(e, pcm + i * SPHN_FRAME, SPHN_FRAME,
		    c->data + used, 1276 * 3);
		if (k <= 0) {
			rc = EIO;
			break;
		}
		c->off[c->n]   = used;
		c->len[c->n++] = (size_t)k;
		used += (size_t)k;
	}
	opus_encoder_destroy(e);
	if (rc) {
		conv_clip_free(c);
		return rc;
	}
	*out = c;
	return 0;
}
