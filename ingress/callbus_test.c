/*
 * callbus_test.c - the call_start built from a real start (R1) survives
 * protobuf packing with every field; audio/stop/dtmf frames too.
 */
#include "callbus.h"

#include "test.h"

static const char r1[]
    = "{\"event\":\"start\",\"stream_sid\":"
      "\"95be037f0ff02b427c3a4a59ae72198c\","
      "\"sequence_number\":\"1\",\"start\":{\"stream_sid\":"
      "\"95be037f0ff02b427c3a4a59ae72198c\",\"call_sid\":"
      "\"75b90b4b77ce9e6fe9a60a26f03d198c\",\"account_sid\":\"ezora2\","
      "\"from\":\"+14129162450\",\"to\":\"08045680571\",\"leg_sid\":\"L1\","
      "\"custom_parameters\":{\"serviceHost\":\"customer-support.acme-corp\","
      "\"flag\":\"\"},\"media_format\":{\"encoding\":\"base64\","
      "\"sample_rate\":\"8000\",\"bit_rate\":\"128kbps\"}}}";

static Exo__Frame *
roundtrip(const Exo__Frame *f, uint8_t *buf, size_t cap)
{
	size_t n = exo__frame__get_packed_size(f);

	if (n > cap)
		return NULL;
	exo__frame__pack(f, buf);
	return exo__frame__unpack(NULL, n, buf);
}

static int
test_start(void)
{
	static struct exotel_msg m;
	static uint8_t           pcm[64], buf[4096];
	struct call_info         ci;
	struct callbus_start     b;
	Exo__Frame               f = EXO__FRAME__INIT, *g;
	Exo__CallStart          *cs;

	TEST_EQ(exotel_parse(&m, r1, strlen(r1), pcm, sizeof(pcm)), 0);
	memset(&ci, 0, sizeof(ci));
	snprintf(ci.stream_sid, sizeof(ci.stream_sid), "%s", m.stream_sid);
	ci.start      = m.u.start;
	ci.rate       = 8000;
	ci.started_us = 1234567;
	callbus_start_frame(&f, &b, &ci, true);
	f.seq = 1;
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_STREQ(g->call_id, "95be037f0ff02b427c3a4a59ae72198c");
	TEST_EQ(g->body_case, EXO__FRAME__BODY_CALL_START);
	cs = g->call_start;
	TEST_STREQ(cs->stream_sid, "95be037f0ff02b427c3a4a59ae72198c");
	TEST_STREQ(cs->call_sid, "75b90b4b77ce9e6fe9a60a26f03d198c");
	TEST_STREQ(cs->account_sid, "ezora2");
	TEST_STREQ(cs->from, "+14129162450");
	TEST_STREQ(cs->to, "08045680571");
	TEST_EQ(cs->sample_rate, 8000);
	TEST_STREQ(cs->encoding, "base64");
	TEST_STREQ(cs->bit_rate, "128kbps");
	TEST_EQ(cs->started_us, 1234567);
	TEST_ASSERT(cs->reannounce);
	TEST_ASSERT(cs->custom_parameters_present);
	TEST_EQ(cs->n_custom_parameters, 2);
	TEST_STREQ(cs->custom_parameters[0]->key, "serviceHost");
	TEST_STREQ(
	    cs->custom_parameters[0]->value, "customer-support.acme-corp");
	TEST_STREQ(cs->custom_parameters[1]->key, "flag");
	TEST_STREQ(cs->custom_parameters[1]->value, "");
	TEST_EQ(cs->n_extra, 1);
	TEST_STREQ(cs->extra[0]->key, "leg_sid");
	TEST_STREQ(cs->extra[0]->value, "L1");
	/* Not decided: egress decides (call_mode). */
	TEST_STREQ(cs->mode, "");
	exo__frame__free_unpacked(g, NULL);
	ci.mode = "transcribe";
	callbus_start_frame(&f, &b, &ci, true);
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_STREQ(g->call_start->mode, "transcribe");
	exo__frame__free_unpacked(g, NULL);
	ci.mode = NULL;

	/* A refused call says so, and a token taken out never travels. */
	{
		char tok[64];
		TEST_ASSERT(!exotel_custom_take(&ci.start, "token", tok, 64));
		strcpy(ci.start.custom[0].key, "token");
		strcpy(ci.start.custom[0].val, "s3cret");
		TEST_ASSERT(exotel_custom_take(&ci.start, "token", tok, 64));
		TEST_STREQ(tok, "s3cret");
		TEST_EQ(ci.start.n_custom, 1);
		TEST_STREQ(ci.start.custom[0].key, "flag");
		TEST_STREQ(ci.start.custom[1].val, "");
	}
	ci.refused = "auth_failed";
	callbus_start_frame(&f, &b, &ci, false);
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	cs = g->call_start;
	TEST_STREQ(cs->refused, "auth_failed");
	TEST_ASSERT(!cs->reannounce);
	TEST_EQ(cs->n_custom_parameters, 1);
	TEST_STREQ(cs->custom_parameters[0]->key, "flag");
	TEST_ASSERT(cs->custom_parameters_present);
	exo__frame__free_unpacked(g, NULL);
	return 0;
}

static int
test_others(void)
{
	static uint8_t     buf[4096];
	struct call_info   ci;
	Exo__Frame         f = EXO__FRAME__INIT, *g;
	Exo__Audio         a;
	Exo__CallStop      st;
	Exo__Dtmf          d;
	Exo__Mark          mk;
	Exo__Playout       po;
	struct exotel_dtmf x
	    = { .digit = "#", .has_duration = true, .duration_ms = 200 };
	const uint8_t pcm[4] = { 1, 2, 3, 4 };

	memset(&ci, 0, sizeof(ci));
	strcpy(ci.stream_sid, "S");
	ci.rate = 16000;
	callbus_audio_frame(&f, &a, &ci, pcm, sizeof(pcm));
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_EQ(g->body_case, EXO__FRAME__BODY_CALLER_AUDIO);
	TEST_EQ(g->caller_audio->sample_rate, 16000);
	TEST_EQ(g->caller_audio->pcm.len, 4);
	TEST_EQ(g->caller_audio->pcm.data[3], 4);
	exo__frame__free_unpacked(g, NULL);

	callbus_stop_frame(&f, &st, &ci, "callended");
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_EQ(g->body_case, EXO__FRAME__BODY_CALL_STOP);
	TEST_STREQ(g->call_stop->reason, "callended");
	TEST_STREQ(g->call_stop->mode, "");
	exo__frame__free_unpacked(g, NULL);
	ci.mode = "transcribe";
	callbus_stop_frame(&f, &st, &ci, "stopped");
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_STREQ(g->call_stop->mode, "transcribe");
	exo__frame__free_unpacked(g, NULL);

	callbus_dtmf_frame(&f, &d, &ci, &x);
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_EQ(g->body_case, EXO__FRAME__BODY_DTMF);
	TEST_STREQ(g->dtmf->digit, "#");
	TEST_EQ(g->dtmf->duration_ms, 200);
	TEST_STREQ(g->call_id, "S");
	exo__frame__free_unpacked(g, NULL);

	callbus_mark_frame(&f, &mk, &ci, "exo-7");
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_EQ(g->body_case, EXO__FRAME__BODY_MARK);
	TEST_STREQ(g->mark->name, "exo-7");
	exo__frame__free_unpacked(g, NULL);

	callbus_playout_frame(&f, &po, &ci, true, 240);
	TEST_ASSERT((g = roundtrip(&f, buf, sizeof(buf))) != NULL);
	TEST_EQ(g->body_case, EXO__FRAME__BODY_PLAYOUT);
	TEST_ASSERT(g->playout->playing);
	TEST_EQ(g->playout->lag_ms, 240);
	exo__frame__free_unpacked(g, NULL);
	return 0;
}

/* custom_parameters.mode: agent or transcribe, any case; anything else
 * is reported and asks for nothing. */
static int
test_mode_asked(void)
{
	struct exotel_start s;
	bool                bad;

	memset(&s, 0, sizeof(s));
	TEST_ASSERT(callbus_mode_asked(&s, &bad) == NULL);
	TEST_ASSERT(!bad);
	strcpy(s.custom[0].key, "persona");
	strcpy(s.custom[0].val, "assist");
	strcpy(s.custom[1].key, "mode");
	strcpy(s.custom[1].val, "Transcribe");
	s.n_custom = 2;
	TEST_STREQ(callbus_mode_asked(&s, &bad), "transcribe");
	TEST_ASSERT(!bad);
	strcpy(s.custom[1].val, "agent");
	TEST_STREQ(callbus_mode_asked(&s, NULL), "agent");
	strcpy(s.custom[1].val, "listen");
	TEST_ASSERT(callbus_mode_asked(&s, &bad) == NULL);
	TEST_ASSERT(bad);
	TEST_STREQ(callbus_mode_name("AGENT"), "agent");
	TEST_ASSERT(callbus_mode_name(NULL) == NULL);
	TEST_ASSERT(callbus_mode_name("") == NULL);
	/* Keys are case-sensitive, like every custom parameter. */
	strcpy(s.custom[1].key, "Mode");
	strcpy(s.custom[1].val, "transcribe");
	TEST_ASSERT(callbus_mode_asked(&s, &bad) == NULL);
	TEST_ASSERT(!bad);
	return 0;
}

TEST_MAIN(TEST(test_start), TEST(test_others), TEST(test_mode_asked))
