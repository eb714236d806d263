/*
 * tapfmt_test.c - every line is one valid JSON object with the frame's
 * call, kind, sequence, sizes and kind fields; filters; tap names.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

#include "tapfmt.h"
#include "test.h"

/* Formats env into a string (caller frees). Not inlined: GCC 12 at -O3
 * then takes the string for a pointer to the local buf
 * (-Wdangling-pointer, a false positive). */
__attribute__((noinline)) static char *
render(const Exo__Envelope *env, const char *at, const struct tap_filter *f,
    size_t *lines)
{
	char            *buf = NULL;
	size_t           len = 0;
	FILE            *out = open_memstream(&buf, &len);
	struct tap_where w   = { .at = at, .link = "transcoder" };
	*lines               = tapfmt_envelope(out, env, &w, f);
	fclose(out);
	return buf;
}

/* The n-th line of s parsed as JSON (caller deletes). */
static cJSON *
line(const char *s, int n)
{
	for (; n > 0 && s; n--) {
		s = strchr(s, '\n');
		s = s ? s + 1 : NULL;
	}
	if (!s)
		return NULL;
	const char *e = strchr(s, '\n');
	return e ? cJSON_ParseWithLength(s, (size_t)(e - s)) : NULL;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

struct sample {
	Exo__Envelope  env;
	Exo__Frame     f[4], *fp[4];
	Exo__CallStart cs;
	Exo__Audio     a;
	Exo__Ogg       o;
	Exo__CallStop  st;
	uint8_t        pcm[1600];
};

static void
sample_init(struct sample *s)
{
	exo__envelope__init(&s->env);
	s->env.version = 1;
	s->env.sender  = "ingress";
	s->env.sent_us = 1700000000123456ull;
	for (int i = 0; i < 4; i++) {
		exo__frame__init(&s->f[i]);
		s->fp[i] = &s->f[i];
	}
	s->env.frames   = s->fp;
	s->env.n_frames = 4;

	exo__call_start__init(&s->cs);
	s->cs.call_sid     = "CA\"1";
	s->cs.from         = "+911";
	s->cs.to           = "+912";
	s->cs.sample_rate  = 8000;
	s->cs.reannounce   = 1;
	s->f[0].call_id    = "S1";
	s->f[0].seq        = 1;
	s->f[0].body_case  = EXO__FRAME__BODY_CALL_START;
	s->f[0].call_start = &s->cs;

	exo__audio__init(&s->a);
	s->a.sample_rate     = 8000;
	s->a.pcm.data        = s->pcm;
	s->a.pcm.len         = sizeof(s->pcm);
	s->f[1].call_id      = "S1";
	s->f[1].seq          = 2;
	s->f[1].ts_us        = s->env.sent_us - 2500;
	s->f[1].body_case    = EXO__FRAME__BODY_CALLER_AUDIO;
	s->f[1].caller_audio = &s->a;

	exo__ogg__init(&s->o);
	s->o.session       = 3;
	s->o.data.data     = s->pcm;
	s->o.data.len      = 57;
	s->o.header        = 1;
	s->f[2].call_id    = "S2";
	s->f[2].seq        = 9;
	s->f[2].body_case  = EXO__FRAME__BODY_UPLINK_OGG;
	s->f[2].uplink_ogg = &s->o;

	exo__call_stop__init(&s->st);
	s->st.reason      = "callended";
	s->f[3].call_id   = "S1";
	s->f[3].seq       = 3;
	s->f[3].body_case = EXO__FRAME__BODY_CALL_STOP;
	s->f[3].call_stop = &s->st;
}

static int
test_every_frame_a_json_line(void)
{
	struct sample s;
	size_t        n;
	sample_init(&s);
	char *txt = render(&s.env, "ingress", NULL, &n);
	TEST_EQ(n, 4);
	cJSON *j = line(txt, 0);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "time"), "2023-11-14T22:13:20.123Z");
	TEST_STREQ(str(j, "at"), "ingress");
	TEST_STREQ(str(j, "link"), "transcoder");
	TEST_STREQ(str(j, "dir"), "out");
	TEST_STREQ(str(j, "sender"), "ingress");
	TEST_STREQ(str(j, "call"), "S1");
	TEST_STREQ(str(j, "kind"), "call_start");
	TEST_STREQ(str(j, "call_sid"), "CA\"1");
	TEST_EQ(num(j, "rate"), 8000);
	TEST_EQ(num(j, "seq"), 1);
	TEST_EQ(num(j, "msg_frames"), 4);
	TEST_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "reannounce")));
	cJSON_Delete(j);

	j = line(txt, 1);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "kind"), "caller_audio");
	TEST_EQ(num(j, "pcm_bytes"), 1600);
	TEST_NEAR(num(j, "ms"), 100.0, 0.01);
	TEST_NEAR(num(j, "age_ms"), 2.5, 0.0001);
	TEST_ASSERT(num(j, "bytes") > 1600);
	cJSON_Delete(j);

	j = line(txt, 2);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "kind"), "uplink_ogg");
	TEST_EQ(num(j, "session"), 3);
	TEST_EQ(num(j, "ogg_bytes"), 57);
	TEST_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(j, "header")));
	/* No ts_us: no age. */
	TEST_ASSERT(cJSON_GetObjectItem(j, "age_ms") == NULL);
	cJSON_Delete(j);

	j = line(txt, 3);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "kind"), "call_stop");
	TEST_STREQ(str(j, "reason"), "callended");
	cJSON_Delete(j);
	TEST_ASSERT(line(txt, 4) == NULL);
	free(txt);

	/* Seen at the receiver: "in". */
	txt = render(&s.env, "transcoder", NULL, &n);
	j   = line(txt, 0);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "dir"), "in");
	cJSON_Delete(j);
	free(txt);
	return 0;
}

static int
test_filters(void)
{
	struct sample     s;
	size_t            n;
	struct tap_filter f = { .call = "S1" };
	sample_init(&s);
	char *txt = render(&s.env, "ingress", &f, &n);
	TEST_EQ(n, 3);
	TEST_ASSERT(strstr(txt, "\"S2\"") == NULL);
	free(txt);

	f   = (struct tap_filter) { .call = "S1",
		  .kinds                  = "call_start,call_stop" };
	txt = render(&s.env, "ingress", &f, &n);
	TEST_EQ(n, 2);
	TEST_ASSERT(strstr(txt, "caller_audio") == NULL);
	free(txt);

	f   = (struct tap_filter) { .call = "nope" };
	txt = render(&s.env, "ingress", &f, &n);
	TEST_EQ(n, 0);
	free(txt);

	TEST_ASSERT(tapfmt_kind_in(NULL, "dtmf"));
	TEST_ASSERT(tapfmt_kind_in("dtmf", "dtmf"));
	TEST_ASSERT(!tapfmt_kind_in("dtmf_x,mark", "dtmf"));
	TEST_ASSERT(!tapfmt_kind_in("dtm", "dtmf"));
	TEST_ASSERT(tapfmt_kind_in("mark,dtmf", "dtmf"));
	return 0;
}

static int
test_control_chars_escaped(void)
{
	struct sample s;
	size_t        n;
	sample_init(&s);
	s.env.n_frames = 1;
	s.cs.from      = "a\nb\x01\\";
	char  *txt     = render(&s.env, "ingress", NULL, &n);
	cJSON *j       = line(txt, 0);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "from"), "a\nb\x01\\");
	cJSON_Delete(j);
	free(txt);
	return 0;
}

static int
test_names(void)
{
	char at[32], link[32];
	TEST_EQ(tapfmt_name("ipc:///run/exoplex/tap-ingress-transcoder.sock",
	            at, sizeof(at), link, sizeof(link)),
	    0);
	TEST_STREQ(at, "ingress");
	TEST_STREQ(link, "transcoder");
	TEST_EQ(tapfmt_name("ipc:///x/tap-egress-control.sock", at, sizeof(at),
	            link, sizeof(link)),
	    0);
	TEST_STREQ(at, "egress");
	TEST_STREQ(link, "control");
	TEST_EQ(
	    tapfmt_name("tcp://h:7200", at, sizeof(at), link, sizeof(link)),
	    EINVAL);
	TEST_EQ(tapfmt_name(
	            "ipc:///x/tap-.sock", at, sizeof(at), link, sizeof(link)),
	    EINVAL);
	TEST_EQ(tapfmt_name("ipc:///x/tap-a-.sock", at, sizeof(at), link,
	            sizeof(link)),
	    EINVAL);
	return 0;
}

static int
test_bad_line(void)
{
	char            *buf = NULL;
	size_t           len = 0;
	FILE            *out = open_memstream(&buf, &len);
	struct tap_where w   = { .at = "egress", .link = "egress" };
	tapfmt_bad(out, &w, 12, 1700000000000000ull);
	fclose(out);
	cJSON *j = line(buf, 0);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "kind"), "bad_message");
	TEST_EQ(num(j, "bytes"), 12);
	cJSON_Delete(j);
	free(buf);
	return 0;
}

/* call_mode (egress's decision) and call_stop's mode are shown. */
static int
test_call_mode(void)
{
	struct sample s;
	Exo__CallMode m;
	size_t        n;
	cJSON        *j;
	char         *txt;

	sample_init(&s);
	exo__call_mode__init(&m);
	m.mode           = "transcribe";
	m.by             = "custom_parameter";
	s.env.sender     = "egress";
	s.f[0].body_case = EXO__FRAME__BODY_CALL_MODE;
	s.f[0].call_mode = &m;
	s.st.mode        = "transcribe";
	txt              = render(&s.env, "egress", NULL, &n);
	TEST_EQ(n, 4);
	j = line(txt, 0);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "kind"), "call_mode");
	TEST_STREQ(str(j, "mode"), "transcribe");
	TEST_STREQ(str(j, "by"), "custom_parameter");
	cJSON_Delete(j);
	j = line(txt, 3);
	TEST_ASSERT(j != NULL);
	TEST_STREQ(str(j, "mode"), "transcribe");
	cJSON_Delete(j);
	free(txt);
	return 0;
}

TEST_MAIN(TEST(test_every_frame_a_json_line), TEST(test_filters),
    TEST(test_call_mode), TEST(test_control_chars_escaped), TEST(test_names),
    TEST(test_bad_line))
