/*
 * model.c - energy VAD and canned words (see model.h).
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEXT                                                          \
	"hello I would like to check the status of my order it was placed "   \
	"last week and has not arrived yet could you please help me"

int
fsmodel_init(struct fsmodel *m, const struct fsmodel_opts *o)
{
	const char *t = o->text && *o->text ? o->text : DEFAULT_TEXT;
	size_t      n = strlen(t);

	memset(m, 0, sizeof(*m));
	m->o = *o;
	if (!m->o.threshold_dbfs)
		m->o.threshold_dbfs = -40;
	if (!m->o.word_ms)
		m->o.word_ms = 250;
	m->frame = o->rate / 50;
	if (!(m->words = malloc(n + 1)) || !(m->acc = malloc(m->frame * 2)))
		goto fail;
	/* Split at spaces: words are NUL-separated in place. */
	for (size_t i = 0, start = 0; i <= n; i++) {
		if (i == n || t[i] == ' ') {
			if (i > start) {
				memcpy(m->words + start, t + start, i - start);
				m->nwords++;
			}
			m->words[i] = '\0';
			start       = i + 1;
		}
	}
	if (!m->nwords) {
		strcpy(m->words, "word");
		m->nwords = 1;
	}
	return 0;
fail:
	fsmodel_fini(m);
	return ENOMEM;
}

void
fsmodel_fini(struct fsmodel *m)
{
	free(m->words);
	free(m->acc);
	m->words = NULL;
	m->acc   = NULL;
}

/* The k-th canned word (cycling). */
static const char *
word(struct fsmodel *m, size_t k)
{
	const char *w = m->words;
	size_t      i = 0;

	k %= m->nwords;
	while (1) {
		while (!*w)
			w++;
		if (i++ == k)
			return w;
		w += strlen(w);
	}
}

static double
secs(const struct fsmodel *m, uint64_t samples)
{
	return (double)samples / m->o.rate;
}

static void
partial(struct fsmodel *m, fsmodel_emit_fn emit, void *arg, bool quirk,
    const char *text)
{
	struct fsev ev
	    = { .kind = FSEV_PARTIAL, .text = text, .quirk = quirk };

	m->last_partial_at = m->samples;
	emit(arg, &ev);
}

static void
add_word(struct fsmodel *m, fsmodel_emit_fn emit, void *arg)
{
	const char *w = word(m, m->next_word++);
	size_t      n = strlen(m->seg);

	if (m->seg_n >= FSMODEL_WORDS_MAX
	    || n + strlen(w) + 2 > sizeof(m->seg))
		return;
	if (n)
		m->seg[n++] = ' ';
	strcpy(m->seg + n, w);
	m->seg_words[m->seg_n] = m->seg + n;
	m->seg_end[m->seg_n]   = secs(m, m->samples);
	m->seg_start[m->seg_n]
	    = m->seg_end[m->seg_n] - m->o.word_ms / 1000.0 > 0
	    ? m->seg_end[m->seg_n] - m->o.word_ms / 1000.0
	    : 0;
	m->seg_n++;
	partial(m, emit, arg, false, m->seg);
}

static void
commit(struct fsmodel *m, fsmodel_emit_fn emit, void *arg, bool requested)
{
	/* The words as separate strings: seg holds them space-joined. */
	char        copy[sizeof(m->seg)];
	const char *w[FSMODEL_WORDS_MAX];
	struct fsev ev = { .kind = FSEV_COMMIT,
		.requested       = requested,
		.nwords          = m->seg_n,
		.starts          = m->seg_start,
		.ends            = m->seg_end,
		.words           = w };

	memcpy(copy, m->seg, sizeof(copy));
	for (size_t i = 0; i < m->seg_n; i++) {
		size_t off = (size_t)(m->seg_words[i] - m->seg);
		char  *sp  = strchr(copy + off, ' ');
		if (sp)
			*sp = '\0';
		w[i] = copy + off;
	}
	ev.text = m->seg;
	emit(arg, &ev);
	strcpy(m->echo, m->seg);
	m->seg[0]        = '\0';
	m->seg_n         = 0;
	m->in_speech     = false;
	m->voiced_in_seg = 0;
	m->voiced_run    = 0;
	m->silent_run    = 0;
	/* The live server echoes the committed text as a partial. */
	if (m->o.quirks && m->echo[0])
		partial(m, emit, arg, true, m->echo);
}

static void
frame(struct fsmodel *m, const int16_t *p, fsmodel_emit_fn emit, void *arg)
{
	double sum = 0, db;

	for (size_t i = 0; i < m->frame; i++)
		sum += (double)p[i] * p[i];
	db = 10 * log10(sum / m->frame / (32768.0 * 32768.0) + 1e-12);
	m->samples += m->frame;
	if (db > m->o.threshold_dbfs) {
		m->voiced_run += m->frame;
		m->silent_run = 0;
		if (!m->in_speech
		    && m->voiced_run * 1000
		        >= (uint64_t)m->o.min_speech_ms * m->o.rate) {
			m->in_speech     = true;
			m->voiced_in_seg = 0;
			add_word(m, emit, arg);
		} else if (m->in_speech) {
			m->voiced_in_seg += m->frame;
			if (m->voiced_in_seg * 1000
			    >= (uint64_t)m->o.word_ms * m->o.rate) {
				m->voiced_in_seg = 0;
				add_word(m, emit, arg);
			}
		}
	} else {
		m->silent_run += m->frame;
		m->voiced_run = 0;
		if (m->in_speech && m->o.vad
		    && secs(m, m->silent_run) >= m->o.vad_silence_s) {
			commit(m, emit, arg, false);
			return;
		}
	}
	/* The stale partial, again, after each second (even in silence). */
	if (m->o.quirks && m->seg[0]
	    && m->samples - m->last_partial_at >= m->o.rate)
		partial(m, emit, arg, true, m->seg);
}

void
fsmodel_feed(struct fsmodel *m, const int16_t *pcm, size_t n,
    fsmodel_emit_fn emit, void *arg)
{
	while (n) {
		size_t k = m->frame - m->nacc;
		if (k > n)
			k = n;
		memcpy(m->acc + m->nacc, pcm, k * 2);
		m->nacc += k;
		pcm += k;
		n -= k;
		if (m->nacc == m->frame) {
			m->nacc = 0;
			frame(m, m->acc, emit, arg);
		}
	}
}

void
fsmodel_commit(struct fsmodel *m, fsmodel_emit_fn emit, void *arg)
{
	commit(m, emit, arg, true);
}
