/*
 * fuzz_sttmsg.c - ElevenLabs Scribe messages (egress/sttmsg.c), as egress
 * gets them from the STT server, and the two things egress builds from
 * outside text: previous_text (from committed transcripts) and the
 * input_audio_chunk carrying it. Oracles: a parsed message's fields are
 * consistent with its type; previous_text is short and free of control
 * characters; a chunk is JSON whose audio and previous_text come back
 * exactly.
 */
#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"
#include "fuzz.h"
#include "sttmsg.h"

static void
check_parsed(const uint8_t *data, size_t size)
{
	struct sttmsg m;
	int           rv = sttmsg_parse(&m, (const char *)data, size);

	FUZZ_CHECK(rv == 0 || rv == EINVAL);
	FUZZ_CHECK((rv == EINVAL) == (m.type == STTMSG_BAD));
	FUZZ_CHECK(m.type_name && m.text && m.error);
	if (rv)
		FUZZ_CHECK(m.why != NULL);
	if (m.type == STTMSG_ERROR) {
		enum stterr_policy p;
		FUZZ_CHECK(m.err_kind != NULL && m.policy != STTERR_NONE);
		if (strcmp(m.err_kind, "other"))
			FUZZ_CHECK(stterr_kind(m.type_name, &p) != NULL
			    && p == m.policy);
	} else
		FUZZ_CHECK(m.policy == STTERR_NONE);
	FUZZ_CHECK(m.t_start == -1 || m.t_start >= 0);
	FUZZ_CHECK(m.t_end == -1 || m.t_end >= 0);
	sttmsg_clear(&m);
	FUZZ_CHECK(m.root == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char  *text = malloc(size + 1);
	char   prev[51];
	size_t max = size % 51, pn;

	check_parsed(data, size);
	FUZZ_CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	pn         = sttmsg_previous_text(prev, max, text);
	FUZZ_CHECK(pn <= max && strlen(prev) == pn);
	for (size_t i = 0; i < pn; i++)
		FUZZ_CHECK((unsigned char)prev[i] >= 0x20 && prev[i] != 0x7f);

	/* The chunk: the input as audio, previous_text as computed. */
	size_t cap = sttmsg_chunk_max(size, pn);
	char  *msg = malloc(cap);
	FUZZ_CHECK(msg);
	FUZZ_CHECK(
	    sttmsg_chunk(msg, cap - 1, data, size, 8000, size & 1, prev) == 0);
	size_t n = sttmsg_chunk(
	    msg, cap, data, size, 16000, size & 1, pn ? prev : NULL);
	FUZZ_CHECK(n > 0 && n < cap && strlen(msg) == n);
	cJSON *j = cJSON_ParseWithLength(msg, n);
	FUZZ_CHECK(j != NULL);
	const cJSON *a  = cJSON_GetObjectItemCaseSensitive(j, "audio_base_64");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "previous_text");
	FUZZ_CHECK(cJSON_IsString(a));
	uint8_t *back = malloc(b64_decoded_max(strlen(a->valuestring)));
	size_t   bn;
	FUZZ_CHECK(back);
	FUZZ_CHECK(
	    b64_decode(back, &bn, a->valuestring, strlen(a->valuestring))
	    == 0);
	FUZZ_CHECK(bn == size && (!size || !memcmp(back, data, size)));
	if (pn)
		FUZZ_CHECK(
		    cJSON_IsString(pt) && !strcmp(pt->valuestring, prev));
	else
		FUZZ_CHECK(pt == NULL);
	cJSON_Delete(j);
	free(back);
	free(msg);
	free(text);
	return 0;
}
