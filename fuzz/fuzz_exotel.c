/*
 * fuzz_exotel.c - Exotel's WebSocket text messages (ingress/exotel.c), as
 * ingress gets them from the internet. Beyond not crashing: a parsed
 * message keeps its documented bounds, the token can be taken out of a
 * start, and a media payload survives exotel_build_media and a re-parse
 * byte for byte.
 */
#include <string.h>

#include "base64.h"
#include "exotel.h"
#include "fuzz.h"

static void
check_start(struct exotel_start *s)
{
	char tok[EXOTEL_VAL_MAX + 1];

	FUZZ_CHECK(strlen(s->call_sid) >= 1);
	FUZZ_CHECK(strlen(s->call_sid) <= EXOTEL_SID_MAX);
	FUZZ_CHECK(strlen(s->from) <= EXOTEL_NUM_MAX);
	FUZZ_CHECK(s->n_custom <= EXOTEL_KV_MAX);
	FUZZ_CHECK(s->n_extra <= EXOTEL_KV_MAX);
	FUZZ_CHECK(s->sample_rate == 0 || s->sample_rate == 8000
	    || s->sample_rate == 16000 || s->sample_rate == 24000);
	for (size_t i = 0; i < s->n_custom; i++) {
		FUZZ_CHECK(strlen(s->custom[i].key) <= EXOTEL_KEY_MAX);
		FUZZ_CHECK(strlen(s->custom[i].val) <= EXOTEL_VAL_MAX);
	}
	exotel_custom_take(s, "token", tok, sizeof(tok));
	for (size_t i = 0; i < s->n_custom; i++)
		FUZZ_CHECK(strcmp(s->custom[i].key, "token") != 0);
}

static void
check_media(const struct exotel_msg *m, const uint8_t *pcm, size_t cap)
{
	const struct exotel_media *x = &m->u.media;
	const char       *sid        = m->stream_sid[0] ? m->stream_sid : "S";
	size_t            need = exotel_media_size(x->pcm_len, strlen(sid));
	char             *out  = malloc(need);
	uint8_t          *back = malloc(cap);
	struct exotel_msg m2;

	FUZZ_CHECK(x->pcm == pcm);
	FUZZ_CHECK(x->pcm_len % 2 == 0 && x->pcm_len <= cap);
	FUZZ_CHECK(out && back);
	size_t n = exotel_build_media(out, need, sid, x->pcm, x->pcm_len);
	FUZZ_CHECK(n > 0 && n < need && out[n] == '\0');
	FUZZ_CHECK(exotel_parse(&m2, out, n, back, cap) == EXOTEL_OK);
	FUZZ_CHECK(m2.kind == EXOTEL_EV_MEDIA);
	FUZZ_CHECK(strcmp(m2.stream_sid, sid) == 0);
	FUZZ_CHECK(m2.u.media.pcm_len == x->pcm_len);
	FUZZ_CHECK(!x->pcm_len || !memcmp(back, x->pcm, x->pcm_len));
	/* One byte short of what it needs: refused, not overrun. */
	FUZZ_CHECK(exotel_build_media(out, n, sid, x->pcm, x->pcm_len) == 0);
	free(out);
	free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exotel_msg m;
	size_t            cap = b64_decoded_max(size);
	uint8_t          *pcm = malloc(cap);
	int               rv;

	FUZZ_CHECK(pcm);
	rv = exotel_parse(&m, (const char *)data, size, pcm, cap);
	FUZZ_CHECK(rv >= 0 && rv < EXOTEL_E_N);
	FUZZ_CHECK(exotel_err_name(rv) != NULL && m.reason != NULL);
	FUZZ_CHECK(m.kind < EXOTEL_EV_N);
	FUZZ_CHECK(exotel_event_name(m.kind) != NULL);
	FUZZ_CHECK(!m.stream_sid[0] || exotel_sid_ok(m.stream_sid));
	if (rv == EXOTEL_OK && m.kind == EXOTEL_EV_START)
		check_start(&m.u.start);
	if (rv == EXOTEL_OK && m.kind == EXOTEL_EV_MEDIA)
		check_media(&m, pcm, cap);
	if (rv == EXOTEL_OK && m.kind == EXOTEL_EV_MARK && m.stream_sid[0]) {
		char   out[2 * EXOTEL_MARK_MAX * 6 + EXOTEL_MSG_OVERHEAD];
		size_t n = exotel_build_mark(
		    out, sizeof(out), m.stream_sid, m.u.mark);
		struct exotel_msg m2;
		FUZZ_CHECK(n > 0);
		FUZZ_CHECK(exotel_parse(&m2, out, n, pcm, cap) == EXOTEL_OK);
		FUZZ_CHECK(m2.kind == EXOTEL_EV_MARK);
		FUZZ_CHECK(strcmp(m2.u.mark, m.u.mark) == 0);
	}
	/* A decode buffer that is too small is refused, not overrun. */
	free(pcm);
	cap = size / 3;
	pcm = malloc(cap ? cap : 1);
	FUZZ_CHECK(pcm);
	rv = exotel_parse(&m, (const char *)data, size, pcm, cap);
	FUZZ_CHECK(rv >= 0 && rv < EXOTEL_E_N);
	free(pcm);
	/* The text as a ?sample-rate= value. */
	char   rate[16];
	size_t rn = size < sizeof(rate) - 1 ? size : sizeof(rate) - 1;
	memcpy(rate, data, rn);
	rate[rn] = '\0';
	rv       = exotel_rate_parse(rate);
	FUZZ_CHECK(rv == 0 || rv == 8000 || rv == 16000 || rv == 24000);
	return 0;
}
