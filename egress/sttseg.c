/*
 * sttseg.c - partial dedupe and one final per commit (see sttseg.h).
 */
#include "sttseg.h"

#include <string.h>

char *
sttseg_copy(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap) {
		n = cap - 1;
		/* Back off to the start of a UTF-8 sequence. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
	return dst;
}

static bool
blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

void
sttseg_init(struct sttseg *g, bool timed, unsigned fallback_ms)
{
	memset(g, 0, sizeof(*g));
	g->timed       = timed;
	g->fallback_us = (uint64_t)(fallback_ms ? fallback_ms : 300) * 1000;
	g->twin_us     = 2000 * 1000;
}

bool
sttseg_partial(struct sttseg *g, const char *text, const char **why)
{
	char t[STTSEG_TEXT_MAX];

	sttseg_copy(t, sizeof(t), text);
	*why = NULL;
	if (blank(t))
		*why = "empty";
	else if (!strcmp(t, g->last_partial))
		*why = "repeat";
	else if (!strcmp(t, g->last_commit))
		*why = "echo";
	if (*why)
		return false;
	memcpy(g->last_partial, t, sizeof(t));
	return true;
}

/* A new commit's text: partial state restarts from it. */
static void
boundary(struct sttseg *g, const char *text, struct sttseg_out *out)
{
	out->boundary = true;
	sttseg_copy(g->last_commit, sizeof(g->last_commit), text);
	g->last_partial[0] = '\0';
	if (blank(g->last_commit))
		out->empty = true;
}

static void
emit(struct sttseg *g, const char *text, double t0, double t1,
    struct sttseg_out *out)
{
	sttseg_copy(g->emit, sizeof(g->emit), text);
	out->text  = g->emit;
	out->t0    = t0;
	out->t1    = t1;
	out->final = !blank(g->emit);
}

void
sttseg_commit(struct sttseg *g, bool timed, const char *text, double t0,
    double t1, uint64_t now_us, struct sttseg_out *out)
{
	memset(out, 0, sizeof(*out));
	out->text = "";
	out->t0 = out->t1 = -1;

	if (!g->timed) {
		if (timed) {
			out->ignored = true;
			return;
		}
		boundary(g, text, out);
		emit(g, text, t0, t1, out);
		return;
	}

	/* A twin waited for too long is not coming. */
	if ((g->half == STTSEG_PLAIN_SENT || g->half == STTSEG_TIMED_SENT)
	    && now_us - g->half_us > g->twin_us)
		g->half = STTSEG_IDLE;

	switch (g->half) {
	case STTSEG_PLAIN_HELD:
		if (timed) {
			/* The preferred twin: it is the final. */
			sttseg_copy(
			    g->last_commit, sizeof(g->last_commit), text);
			emit(g, text, t0, t1, out);
			g->half = STTSEG_IDLE;
			return;
		}
		/* Another plain commit: the held one had no twin. */
		emit(g, g->held, g->held_t0, g->held_t1, out);
		break;
	case STTSEG_TIMED_SENT:
		if (!timed) {
			out->ignored = true;
			g->half      = STTSEG_IDLE;
			return;
		}
		break;
	case STTSEG_PLAIN_SENT:
		if (timed) {
			out->ignored = true;
			g->half      = STTSEG_IDLE;
			return;
		}
		break;
	case STTSEG_IDLE:
		break;
	}

	boundary(g, text, out);
	g->half_us = now_us;
	if (timed) {
		emit(g, text, t0, t1, out);
		g->half = STTSEG_TIMED_SENT;
	} else {
		sttseg_copy(g->held, sizeof(g->held), text);
		g->held_t0 = t0;
		g->held_t1 = t1;
		g->half    = STTSEG_PLAIN_HELD;
	}
}

bool
sttseg_poll(struct sttseg *g, uint64_t now_us, struct sttseg_out *out)
{
	memset(out, 0, sizeof(*out));
	out->text = "";
	out->t0 = out->t1 = -1;
	if (g->half != STTSEG_PLAIN_HELD
	    || now_us - g->half_us < g->fallback_us)
		return false;
	emit(g, g->held, g->held_t0, g->held_t1, out);
	g->half    = STTSEG_PLAIN_SENT;
	g->half_us = now_us;
	return out->final;
}

bool
sttseg_flush(struct sttseg *g, struct sttseg_out *out)
{
	memset(out, 0, sizeof(*out));
	out->text = "";
	out->t0 = out->t1 = -1;
	if (g->half != STTSEG_PLAIN_HELD)
		return false;
	emit(g, g->held, g->held_t0, g->held_t1, out);
	g->half = STTSEG_PLAIN_SENT;
	return out->final;
}
