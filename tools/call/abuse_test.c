/*
 * abuse_test.c - each kind's plan holds exactly the fault it names, and
 * nothing else is wrong with it.
 */
#include "abuse.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "base64.h"
#include "test.h"
#include "wsraw.h"

static struct abuse_opts
opts(void)
{
	struct abuse_opts o = { .rate = 16000,
		.wait_ms              = 300,
		.start_wait_ms        = 4000,
		.huge_bytes           = 1u << 20,
		.flood_n              = 50,
		.io_timeout_ms        = 1000,
		.host                 = "127.0.0.1",
		.port                 = 1,
		.host_hdr             = "127.0.0.1:1",
		.path                 = "/exotel?sample-rate=16000",
		.seed                 = 42 };
	return o;
}

/* The event of a message, or NULL (not JSON, no event). Frees nothing:
 * the caller deletes *root. */
static const char *
event_of(const struct abuse_msg *m, cJSON **root)
{
	const cJSON *e;

	*root = cJSON_ParseWithLength(m->data, m->len);
	if (!*root)
		return NULL;
	e = cJSON_GetObjectItemCaseSensitive(*root, "event");
	return cJSON_IsString(e) ? e->valuestring : NULL;
}

static int
is_event(const struct abuse_msg *m, const char *ev)
{
	cJSON      *r;
	const char *e  = event_of(m, &r);
	int         ok = m->opcode == WSRAW_TEXT && e && strcmp(e, ev) == 0;
	cJSON_Delete(r);
	return ok;
}

/* media.payload of a media message, decoded; -1 when not base64. */
static long
payload_len(const struct abuse_msg *m)
{
	cJSON       *r = cJSON_ParseWithLength(m->data, m->len);
	const cJSON *md, *pl;
	long         n = -2;

	md = cJSON_GetObjectItemCaseSensitive(r, "media");
	pl = cJSON_GetObjectItemCaseSensitive(md, "payload");
	if (cJSON_IsString(pl)) {
		size_t   sl = strlen(pl->valuestring), out = 0;
		uint8_t *d = malloc(b64_decoded_max(sl) + 1);
		n          = d && b64_decode(d, &out, pl->valuestring, sl) == 0
		             ? (long)out
		             : -1;
		free(d);
	}
	cJSON_Delete(r);
	return n;
}

static int
test_names(void)
{
	for (int k = 0; k < AB_N; k++) {
		const char *n = abuse_kind_name((enum abuse_kind)k);
		TEST_ASSERT(n && n[0] && strcmp(n, "?") != 0);
		TEST_EQ(abuse_kind_parse(n), k);
	}
	TEST_EQ(abuse_kind_parse("churn"), -1);
	TEST_EQ(abuse_kind_parse(""), -1);
	return 0;
}

static int
test_every_plan_starts_connected(void)
{
	struct abuse_opts o = opts();
	struct abuse_plan p;

	for (int k = 0; k < AB_N; k++) {
		TEST_EQ(abuse_plan_make(&p, (enum abuse_kind)k, &o), 0);
		if (k == AB_GARBAGE) {
			TEST_ASSERT(!p.upgrade);
			TEST_EQ(p.n, 1);
			TEST_EQ(p.msgs[0].opcode, AB_RAW);
			TEST_ASSERT(memcmp(p.msgs[0].data, "GET ", 4) != 0);
		} else if (k == AB_BAD_PATH) {
			TEST_ASSERT(p.upgrade);
			TEST_EQ(p.n, 0);
			TEST_ASSERT(strncmp(p.path, "/exotel", 7) != 0);
		} else {
			TEST_ASSERT(p.upgrade);
			TEST_STREQ(p.path, o.path);
			TEST_ASSERT(p.n >= 1);
			TEST_ASSERT(is_event(&p.msgs[0], "connected"));
		}
		TEST_EQ(p.wait_ms, k == AB_NO_START ? 4000 : 300);
		abuse_plan_free(&p);
	}
	return 0;
}

static int
test_faults(void)
{
	struct abuse_opts o = opts();
	struct abuse_plan p;
	cJSON            *r;

	TEST_EQ(abuse_plan_make(&p, AB_MEDIA_BEFORE_START, &o), 0);
	TEST_EQ(p.n, 6);
	for (size_t i = 1; i < p.n; i++) {
		TEST_ASSERT(is_event(&p.msgs[i], "media"));
		TEST_EQ(payload_len(&p.msgs[i]), 640); /* 20 ms at 16 kHz */
	}
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_INVALID_JSON, &o), 0);
	TEST_EQ(p.n, 2);
	r = cJSON_ParseWithLength(p.msgs[1].data, p.msgs[1].len);
	TEST_ASSERT(r == NULL);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_NOT_OBJECT, &o), 0);
	r = cJSON_ParseWithLength(p.msgs[1].data, p.msgs[1].len);
	TEST_ASSERT(cJSON_IsArray(r));
	cJSON_Delete(r);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_NO_EVENT, &o), 0);
	TEST_ASSERT(event_of(&p.msgs[1], &r) == NULL && cJSON_IsObject(r));
	cJSON_Delete(r);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_INVALID_BASE64, &o), 0);
	TEST_ASSERT(is_event(&p.msgs[1], "media"));
	TEST_EQ(payload_len(&p.msgs[1]), -1);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_ODD_PCM, &o), 0);
	TEST_ASSERT(is_event(&p.msgs[1], "media"));
	TEST_EQ(payload_len(&p.msgs[1]), 321);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_BINARY_FRAME, &o), 0);
	TEST_EQ(p.msgs[1].opcode, WSRAW_BINARY);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_HUGE_FRAME, &o), 0);
	TEST_ASSERT(p.msgs[1].len <= o.huge_bytes);
	TEST_ASSERT(p.msgs[1].len > o.huge_bytes - 300);
	TEST_ASSERT(is_event(&p.msgs[1], "media")); /* valid, only big */
	TEST_ASSERT(payload_len(&p.msgs[1]) > 700000);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_START_MISSING_FIELDS, &o), 0);
	TEST_ASSERT(is_event(&p.msgs[1], "start"));
	TEST_ASSERT(strstr(p.msgs[1].data, "stream_sid") == NULL);
	TEST_ASSERT(strstr(p.msgs[1].data, "call_sid") == NULL);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_SECOND_START, &o), 0);
	TEST_EQ(p.n, 3);
	TEST_ASSERT(p.after_start);
	TEST_ASSERT(is_event(&p.msgs[1], "start"));
	TEST_ASSERT(is_event(&p.msgs[2], "start"));
	TEST_ASSERT(strstr(p.msgs[1].data, "\"sample_rate\":\"16000\""));
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_UNKNOWN_EVENT, &o), 0);
	TEST_ASSERT(is_event(&p.msgs[1], "silence"));
	TEST_ASSERT(is_event(&p.msgs[2], "transcript"));
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_BAD_SAMPLE_RATE, &o), 0);
	TEST_ASSERT(is_event(&p.msgs[1], "start"));
	TEST_ASSERT(strstr(p.msgs[1].data, "\"sample_rate\":\"44100\""));
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_NO_START, &o), 0);
	TEST_EQ(p.n, 1);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_GARBAGE_WS, &o), 0);
	TEST_EQ(p.msgs[1].opcode, AB_RAW);
	TEST_EQ((uint8_t)p.msgs[1].data[0], 0xff);
	abuse_plan_free(&p);

	TEST_EQ(abuse_plan_make(&p, AB_FLOOD, &o), 0);
	TEST_EQ(p.n, 51);
	abuse_plan_free(&p);

	/* Not bad at all: a probe of how a valid start is answered. */
	TEST_EQ(abuse_plan_make(&p, AB_START_ONLY, &o), 0);
	TEST_EQ(p.n, 2);
	TEST_ASSERT(p.after_start);
	TEST_ASSERT(is_event(&p.msgs[1], "start"));
	TEST_ASSERT(!abuse_kind_in_all(AB_START_ONLY));
	TEST_ASSERT(abuse_kind_in_all(AB_FLOOD));
	abuse_plan_free(&p);
	return 0;
}

static int
test_after_start(void)
{
	struct abuse_opts o = opts();
	struct abuse_plan p;

	o.after_start = true;
	for (int k = 0; k < AB_N; k++) {
		bool ok = abuse_kind_after_start_ok((enum abuse_kind)k);
		TEST_EQ(abuse_plan_make(&p, (enum abuse_kind)k, &o), 0);
		TEST_EQ(p.after_start,
		    ok || k == AB_SECOND_START || k == AB_START_ONLY);
		if (p.after_start)
			TEST_ASSERT(p.n >= (k == AB_START_ONLY ? 2u : 3u)
			    && is_event(&p.msgs[1], "start"));
		abuse_plan_free(&p);
	}
	/* Before a start by definition. */
	TEST_ASSERT(!abuse_kind_after_start_ok(AB_MEDIA_BEFORE_START));
	TEST_ASSERT(!abuse_kind_after_start_ok(AB_NO_START));
	TEST_ASSERT(abuse_kind_after_start_ok(AB_ODD_PCM));
	return 0;
}

static int
test_json(void)
{
	struct abuse_result r;
	struct abuse_churn  c;
	char               *s;
	cJSON              *j;

	memset(&r, 0, sizeof(r));
	r.kind        = AB_HUGE_FRAME;
	r.http_status = 101;
	r.upgraded    = true;
	r.closed_by   = "server";
	r.close_code  = 1009;
	snprintf(
	    r.close_reason, sizeof(r.close_reason), "message \"too\" large");
	s = abuse_result_json(&r);
	j = cJSON_Parse(s);
	TEST_ASSERT(j);
	TEST_STREQ(cJSON_GetObjectItem(j, "kind")->valuestring, "huge_frame");
	TEST_STREQ(cJSON_GetObjectItem(j, "closed_by")->valuestring, "server");
	TEST_EQ(cJSON_GetObjectItem(j, "close_code")->valueint, 1009);
	TEST_STREQ(cJSON_GetObjectItem(j, "close_reason")->valuestring,
	    "message \"too\" large");
	TEST_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(j, "open_after_wait")));
	cJSON_Delete(j);
	free(s);

	r.closed_by = NULL;
	s           = abuse_result_json(&r);
	j           = cJSON_Parse(s);
	TEST_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "closed_by")));
	cJSON_Delete(j);
	free(s);

	memset(&c, 0, sizeof(c));
	c.attempts = 200;
	c.upgraded = 100;
	s          = abuse_churn_json(&c);
	j          = cJSON_Parse(s);
	TEST_STREQ(cJSON_GetObjectItem(j, "kind")->valuestring, "churn");
	TEST_EQ(cJSON_GetObjectItem(j, "attempts")->valueint, 200);
	TEST_EQ(cJSON_GetObjectItem(j, "upgraded")->valueint, 100);
	cJSON_Delete(j);
	free(s);
	return 0;
}

static int
test_unreachable(void)
{
	struct abuse_opts   o = opts();
	struct abuse_result r;

	/* Port 1 on loopback: nobody listens. */
	TEST_EQ(abuse_run(AB_INVALID_JSON, &o, &r), 0);
	TEST_ASSERT(r.error != 0);
	TEST_ASSERT(!r.upgraded);
	TEST_EQ(r.sent, 0);
	return 0;
}

TEST_MAIN(TEST(test_names), TEST(test_every_plan_starts_connected),
    TEST(test_faults), TEST(test_after_start), TEST(test_json),
    TEST(test_unreachable))
