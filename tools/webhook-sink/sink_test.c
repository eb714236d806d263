/*
 * sink_test.c - the sink against hand-made requests on loopback.
 */
#include "sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <unistd.h>

#include "test.h"

#define SECRET "s3cret"

static char out_path[] = "/tmp/sink_test.XXXXXX";

static void
sign(const char *body, char *hdr)
{
	unsigned char mac[32];
	unsigned      n = 0;

	HMAC(EVP_sha256(), SECRET, 6, (const unsigned char *)body,
	    strlen(body), mac, &n);
	strcpy(hdr, "X-Exoplex-Signature: sha256=");
	for (unsigned i = 0; i < n; i++)
		sprintf(hdr + strlen(hdr), "%02x", mac[i]);
}

static size_t
sink_body(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* POSTs body with the given event and delivery headers (NULL = left
 * out); sig: 1 = right, 0 = none, -1 = wrong. Returns the status. */
static long
post(int port, const char *event, const char *delivery, const char *body,
    int sig)
{
	CURL              *h = curl_easy_init();
	struct curl_slist *l = NULL;
	char               url[64], line[256];
	long               status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks", port);
	l = curl_slist_append(l, "Content-Type: application/json");
	if (event) {
		snprintf(line, sizeof(line), "X-Exoplex-Event: %s", event);
		l = curl_slist_append(l, line);
	}
	if (delivery) {
		snprintf(
		    line, sizeof(line), "X-Exoplex-Delivery: %s", delivery);
		l = curl_slist_append(l, line);
	}
	if (sig) {
		sign(body, line);
		if (sig < 0)
			line[strlen(line) - 1] ^= 1;
		l = curl_slist_append(l, line);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(l);
	curl_easy_cleanup(h);
	return status;
}

static long
get(int port, const char *path)
{
	CURL *h = curl_easy_init();
	char  url[128];
	long  status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_body);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

static void
body(char *b, size_t len, const char *event, const char *sid, int seq)
{
	snprintf(b, len,
	    "{\"event\":\"%s\",\"call_sid\":\"CA\",\"stream_sid\":\"%s\","
	    "\"account_sid\":\"AC\",\"seq\":%d,"
	    "\"ts\":\"2026-11-21T16:40:00.123Z\"}",
	    event, sid, seq);
}

static int
test_checks(void)
{
	struct sink      *s  = NULL;
	struct sink_opts  o  = { .secret = SECRET, .fail_first = 1 };
	struct sink_stats st = { 0 };
	char              err[256], b[512];
	int               port;

	o.out = out_path;
	TEST_EQ(sink_start(&s, &o, err, sizeof(err)), 0);
	port = sink_port(s);
	TEST_ASSERT(port > 0);

	body(b, sizeof(b), "call.started", "S1", 1);
	/* The first request fails as told; its retry is accepted; a third
	 * copy is a duplicate. */
	TEST_EQ(post(port, "call.started", "d1", b, 1), 500);
	TEST_EQ(post(port, "call.started", "d1", b, 1), 200);
	TEST_EQ(post(port, "call.started", "d1", b, 1), 200);
	/* A wrong signature is accepted but counted. */
	body(b, sizeof(b), "dtmf", "S1", 2);
	TEST_EQ(post(port, "dtmf", "d2", b, -1), 200);
	/* seq 4 before 3: out of order. */
	body(b, sizeof(b), "transcript", "S1", 4);
	TEST_EQ(post(port, "transcript", "d4", b, 1), 200);
	body(b, sizeof(b), "transcript", "S1", 3);
	TEST_EQ(post(port, "transcript", "d3", b, 1), 200);
	/* Missing headers, a header that disagrees, a body that is not
	 * JSON: 400. */
	body(b, sizeof(b), "call.ended", "S1", 5);
	TEST_EQ(post(port, NULL, "d5", b, 1), 400);
	TEST_EQ(post(port, "call.ended", NULL, b, 1), 400);
	TEST_EQ(post(port, "dtmf", "d5", b, 1), 400);
	TEST_EQ(post(port, "call.ended", "d5", "{not json", 1), 400);
	/* An id reused for another event; an event under a new id. */
	TEST_EQ(post(port, "call.ended", "d1", b, 1), 200);
	TEST_EQ(post(port, "call.ended", "d5", b, 1), 200);
	body(b, sizeof(b), "call.ended", "S1", 5);
	TEST_EQ(post(port, "call.ended", "d5-again", b, 1), 200);

	sink_stats(s, &st);
	TEST_EQ(st.requests, 13);
	TEST_EQ(st.failed_on_demand, 1);
	TEST_EQ(st.bad_requests, 4);
	TEST_EQ(st.accepted, 8);
	TEST_EQ(st.bad_signatures, 1);
	TEST_EQ(st.verified, 12);
	TEST_EQ(st.duplicates, 1);
	TEST_EQ(st.retries, 1);
	TEST_EQ(st.delivery_reused, 1);
	TEST_EQ(st.seq_reused, 1);
	TEST_EQ(st.out_of_order, 2); /* 4 after 2, then 3 after 4 */
	TEST_EQ(st.events, 5);
	TEST_EQ(st.started, 1);
	TEST_EQ(st.dtmf, 1);
	TEST_EQ(st.transcripts, 2);
	TEST_EQ(st.ended, 1);
	TEST_EQ(get(port, "/stats"), 200);
	sink_stop(s);

	/* One JSON line per request. */
	FILE *f     = fopen(out_path, "r");
	int   lines = 0, c;
	TEST_ASSERT(f);
	while ((c = fgetc(f)) != EOF)
		lines += c == '\n';
	fclose(f);
	TEST_EQ(lines, 13);
	return 0;
}

static int
test_failure_modes(void)
{
	struct sink     *s = NULL;
	struct sink_opts o = { .fail_first = 2, .fail_for_ms = 3600000 };
	char             err[256], b[512];
	int              port;

	TEST_EQ(sink_start(&s, &o, err, sizeof(err)), 0);
	port = sink_port(s);
	body(b, sizeof(b), "dtmf", "S", 1);
	/* 500 twice, then 503 for the window, then (told) ok. */
	TEST_EQ(post(port, "dtmf", "a", b, 0), 500);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 500);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 503);
	TEST_EQ(get(port, "/control/ok-now"), 200);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 200);
	TEST_EQ(get(port, "/control/fail-now"), 200);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 503);
	TEST_EQ(get(port, "/control/ok-now"), 200);
	TEST_EQ(get(port, "/control/fail-next?n=1"), 200);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 500);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 200);
	TEST_EQ(get(port, "/control/fail-for?ms=3600000"), 200);
	TEST_EQ(post(port, "dtmf", "a", b, 0), 503);
	TEST_EQ(get(port, "/control/nonsense"), 404);
	/* No secret: signatures are not judged. */
	struct sink_stats st;
	sink_stats(s, &st);
	TEST_EQ(st.verified, 0);
	TEST_EQ(st.bad_signatures, 0);
	TEST_EQ(st.failed_on_demand, 6);
	TEST_EQ(st.duplicates, 4); /* every copy after the first 200 */
	sink_stop(s);
	return 0;
}

static int
setup(void)
{
	int fd = mkstemp(out_path);
	TEST_ASSERT(fd >= 0);
	close(fd);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

static int
teardown(void)
{
	unlink(out_path);
	curl_global_cleanup();
	return 0;
}

TEST_MAIN(
    TEST(setup), TEST(test_checks), TEST(test_failure_modes), TEST(teardown))
