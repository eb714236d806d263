/*
 * rxcheck.c - the checks of what a bot sends to Exotel.
 */
#include "rxcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"

static const char *const viol_names[RXV__COUNT] = {
	[RXV_INVALID_JSON]        = "invalid_json",
	[RXV_BINARY_FRAME]        = "binary_frame",
	[RXV_MESSAGE_TOO_LARGE]   = "message_too_large",
	[RXV_MISSING_EVENT]       = "missing_event",
	[RXV_UNKNOWN_EVENT]       = "unknown_event",
	[RXV_MISSING_PAYLOAD]     = "missing_payload",
	[RXV_INVALID_BASE64]      = "invalid_base64",
	[RXV_EMPTY_PAYLOAD]       = "empty_payload",
	[RXV_PARTIAL_FRAME]       = "partial_frame",
	[RXV_PAYLOAD_TOO_LARGE]   = "payload_too_large",
	[RXV_STREAM_SID_MISMATCH] = "stream_sid_mismatch",
	[RXV_MISSING_MARK_NAME]   = "missing_mark_name",
	[RXV_LEAD_OVER_LIMIT]     = "lead_over_limit",
};

const char *
rxcheck_viol_name(enum rxv v)
{
	if ((unsigned)v >= RXV__COUNT)
		return "unknown";
	return viol_names[v];
}

static int
check_media(const cJSON *root, int rate, uint8_t **buf, size_t *cap,
    struct rx_msg *out)
{
	const cJSON *media = cJSON_GetObjectItemCaseSensitive(root, "media");
	const cJSON *payload
	    = cJSON_GetObjectItemCaseSensitive(media, "payload");
	size_t frame = (size_t)rate / 50 * 2;

	if (!cJSON_IsString(payload) || !payload->valuestring) {
		out->viol |= 1u << RXV_MISSING_PAYLOAD;
		return 0;
	}
	size_t n    = strlen(payload->valuestring);
	size_t need = b64_decoded_max(n);
	if (need > *cap) {
		uint8_t *p = realloc(*buf, need);
		if (!p)
			return ENOMEM;
		*buf = p;
		*cap = need;
	}
	size_t got = 0;
	if (b64_decode(*buf, &got, payload->valuestring, n) != 0) {
		out->viol |= 1u << RXV_INVALID_BASE64;
		return 0;
	}
	out->pcm     = *buf;
	out->pcm_len = got;
	if (got == 0)
		out->viol |= 1u << RXV_EMPTY_PAYLOAD;
	else if (frame && got % frame)
		out->viol |= 1u << RXV_PARTIAL_FRAME;
	if (got > RX_MAX_PAYLOAD)
		out->viol |= 1u << RXV_PAYLOAD_TOO_LARGE;
	return 0;
}

int
rxcheck_text(const char *msg, size_t len, const char *stream_sid, int rate,
    uint8_t **buf, size_t *cap, struct rx_msg *out)
{
	int    rv   = 0;
	cJSON *root = NULL;

	memset(out, 0, sizeof(*out));
	/* cJSON stops after the first value; anything but whitespace after
	 * it makes the message invalid. */
	const char *end = NULL;
	root            = cJSON_ParseWithLengthOpts(msg, len, &end, 0);
	while (root && end && end < msg + len
	    && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (!root || !cJSON_IsObject(root) || !end || end != msg + len) {
		out->viol |= 1u << RXV_INVALID_JSON;
		goto out;
	}
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "event");
	if (!cJSON_IsString(ev) || !ev->valuestring) {
		out->viol |= 1u << RXV_MISSING_EVENT;
		goto out;
	}
	if (strcmp(ev->valuestring, "media") == 0)
		out->kind = RX_MEDIA;
	else if (strcmp(ev->valuestring, "mark") == 0)
		out->kind = RX_MARK;
	else if (strcmp(ev->valuestring, "clear") == 0)
		out->kind = RX_CLEAR;
	else {
		out->viol |= 1u << RXV_UNKNOWN_EVENT;
		goto out;
	}

	const cJSON *sid
	    = cJSON_GetObjectItemCaseSensitive(root, "stream_sid");
	if (!sid)
		out->sid_absent = true;
	else if (!cJSON_IsString(sid) || !sid->valuestring
	    || strcmp(sid->valuestring, stream_sid) != 0)
		out->viol |= 1u << RXV_STREAM_SID_MISMATCH;

	if (out->kind == RX_MEDIA) {
		rv = check_media(root, rate, buf, cap, out);
	} else if (out->kind == RX_MARK) {
		const cJSON *mark
		    = cJSON_GetObjectItemCaseSensitive(root, "mark");
		const cJSON *name
		    = cJSON_GetObjectItemCaseSensitive(mark, "name");
		if (!cJSON_IsString(name) || !name->valuestring) {
			out->viol |= 1u << RXV_MISSING_MARK_NAME;
		} else {
			out->mark_name = strdup(name->valuestring);
			if (!out->mark_name)
				rv = ENOMEM;
		}
	}
out:
	cJSON_Delete(root);
	return rv;
}
