/*
 * callbus.c - bus frames about a call. See callbus.h.
 */
#include "callbus.h"

#include <string.h>
#include <strings.h>

void
callbus_start_frame(Exo__Frame *f, struct callbus_start *b,
    const struct call_info *ci, bool reannounce)
{
	const struct exotel_start *s  = &ci->start;
	Exo__CallStart            *cs = &b->cs;

	exo__call_start__init(cs);
	/* protobuf-c wants char *, and never writes through them. */
	cs->stream_sid  = (char *)ci->stream_sid;
	cs->call_sid    = (char *)s->call_sid;
	cs->account_sid = (char *)s->account_sid;
	cs->from        = (char *)s->from;
	cs->to          = (char *)s->to;
	for (size_t i = 0; i < s->n_custom; i++) {
		exo__call_start__custom_parameters_entry__init(&b->ce[i]);
		b->ce[i].key   = (char *)s->custom[i].key;
		b->ce[i].value = (char *)s->custom[i].val;
		b->cp[i]       = &b->ce[i];
	}
	cs->n_custom_parameters       = s->n_custom;
	cs->custom_parameters         = s->n_custom ? b->cp : NULL;
	cs->custom_parameters_present = s->custom_present;
	for (size_t i = 0; i < s->n_extra; i++) {
		exo__call_start__extra_entry__init(&b->ee[i]);
		b->ee[i].key   = (char *)s->extra[i].key;
		b->ee[i].value = (char *)s->extra[i].val;
		b->ep[i]       = &b->ee[i];
	}
	cs->n_extra     = s->n_extra;
	cs->extra       = s->n_extra ? b->ep : NULL;
	cs->sample_rate = (uint32_t)ci->rate;
	cs->encoding    = (char *)s->encoding;
	cs->bit_rate    = (char *)s->bit_rate;
	cs->started_us  = ci->started_us;
	cs->reannounce  = reannounce;
	/* Empty until decided: egress decides and says so (call_mode). */
	cs->mode = (char *)(ci->mode ? ci->mode : "");
	if (ci->refused && *ci->refused)
		cs->refused = (char *)ci->refused;

	f->call_id    = (char *)ci->stream_sid;
	f->body_case  = EXO__FRAME__BODY_CALL_START;
	f->call_start = cs;
}

const char *
callbus_mode_name(const char *v)
{
	if (v && !strcasecmp(v, "agent"))
		return "agent";
	if (v && !strcasecmp(v, "transcribe"))
		return "transcribe";
	return NULL;
}

const char *
callbus_mode_asked(const struct exotel_start *s, bool *bad)
{
	const char *m;

	if (bad)
		*bad = false;
	for (size_t i = 0; i < s->n_custom; i++) {
		if (strcmp(s->custom[i].key, "mode") != 0)
			continue;
		if ((m = callbus_mode_name(s->custom[i].val)) == NULL && bad)
			*bad = true;
		return m;
	}
	return NULL;
}

void
callbus_audio_frame(Exo__Frame *f, Exo__Audio *a, const struct call_info *ci,
    const uint8_t *pcm, size_t n)
{
	exo__audio__init(a);
	a->sample_rate  = (uint32_t)ci->rate;
	a->pcm.data     = (uint8_t *)pcm;
	a->pcm.len      = n;
	f->call_id      = (char *)ci->stream_sid;
	f->body_case    = EXO__FRAME__BODY_CALLER_AUDIO;
	f->caller_audio = a;
}

void
callbus_stop_frame(Exo__Frame *f, Exo__CallStop *s, const struct call_info *ci,
    const char *reason)
{
	exo__call_stop__init(s);
	s->reason    = (char *)reason;
	s->mode      = (char *)(ci->mode ? ci->mode : "");
	f->call_id   = (char *)ci->stream_sid;
	f->body_case = EXO__FRAME__BODY_CALL_STOP;
	f->call_stop = s;
}

void
callbus_dtmf_frame(Exo__Frame *f, Exo__Dtmf *d, const struct call_info *ci,
    const struct exotel_dtmf *x)
{
	exo__dtmf__init(d);
	d->digit = (char *)x->digit;
	d->duration_ms
	    = x->has_duration && x->duration_ms > 0 && x->duration_ms < 3600000
	    ? (uint32_t)x->duration_ms
	    : 0;
	f->call_id   = (char *)ci->stream_sid;
	f->body_case = EXO__FRAME__BODY_DTMF;
	f->dtmf      = d;
}

void
callbus_mark_frame(
    Exo__Frame *f, Exo__Mark *m, const struct call_info *ci, const char *name)
{
	exo__mark__init(m);
	m->name      = (char *)name;
	f->call_id   = (char *)ci->stream_sid;
	f->body_case = EXO__FRAME__BODY_MARK;
	f->mark      = m;
}

void
callbus_playout_frame(Exo__Frame *f, Exo__Playout *p,
    const struct call_info *ci, bool playing, uint32_t lag_ms)
{
	exo__playout__init(p);
	p->playing   = playing;
	p->lag_ms    = lag_ms;
	f->call_id   = (char *)ci->stream_sid;
	f->body_case = EXO__FRAME__BODY_PLAYOUT;
	f->playout   = p;
}
