/*
 * evloop_test.c - an lws server on an evloop, and an lws client on lws's
 * own loop, in one thread: close frames keep their code, timers and
 * lws_cancel_service wake a waiting turn, forced service runs, a busy
 * port is an error. Nothing is timed: every wait is bounded only so that
 * a broken loop fails instead of hanging.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "test.h"

/* lws 4.1 leaks a few bytes when it fails to create a context, on its
 * own loop too (a process that cannot listen exits); not ours to count. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EXO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(EXO_ASAN)
#include <sanitizer/lsan_interface.h>
#define LWS_LEAK_BEGIN() __lsan_disable()
#define LWS_LEAK_END() __lsan_enable()
#else
#define LWS_LEAK_BEGIN()
#define LWS_LEAK_END()
#endif

struct fix {
	struct evloop         *srv;
	struct lws_context    *cli;
	int                    port;
	int                    srv_rx; /* messages the server received */
	int                    srv_bye; /* the server is to close */
	int                    srv_closed; /* server saw the socket go */
	int                    cancelled; /* EVENT_WAIT_CANCELLED seen */
	int                    cli_up; /* client established */
	int                    cli_gone; /* client closed */
	int                    close_code; /* from the server's close frame */
	char                   close_why[32];
	const char            *send; /* client: message to send once */
	int                    fired; /* sul count */
	lws_sorted_usec_list_t sul;
};

static struct fix fx;

static int
srv_cb(struct lws *wsi, enum lws_callback_reasons r, void *user, void *in,
    size_t len)
{
	(void)user;
	switch (r) {
	case LWS_CALLBACK_RECEIVE:
		fx.srv_rx++;
		if (len == 3 && memcmp(in, "bye", 3) == 0) {
			fx.srv_bye = 1;
			lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!fx.srv_bye)
			break;
		/* Ending the socket from a callback, as ingress does: on
		 * lws 4.1 over libuv this lost its close frame. */
		lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
		    (unsigned char *)"going", 5);
		return -1;
	case LWS_CALLBACK_CLOSED:
		fx.srv_closed++;
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		fx.cancelled++;
		break;
	default:
		break;
	}
	return 0;
}

static int
cli_cb(struct lws *wsi, enum lws_callback_reasons r, void *user, void *in,
    size_t len)
{
	unsigned char  buf[LWS_PRE + 16];
	const uint8_t *p = in;

	(void)user;
	switch (r) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		fx.cli_up = 1;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (fx.send) {
			size_t n = strlen(fx.send);
			memcpy(buf + LWS_PRE, fx.send, n);
			fx.send = NULL;
			if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT)
			    != (int)n)
				return -1;
		}
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			fx.close_code = p[0] << 8 | p[1];
			snprintf(fx.close_why, sizeof(fx.close_why), "%.*s",
			    (int)(len - 2), (const char *)p + 2);
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		fx.cli_gone = 1;
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols srv_protos[] = {
	{ "t", srv_cb, 0, 256, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};
static const struct lws_protocols cli_protos[] = {
	{ "t", cli_cb, 0, 256, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keeps the client's lws_service from sleeping past 5 ms (lws 4.1 waits
 * for its next timer, not for the timeout given). */
static lws_sorted_usec_list_t cli_tick;

static void
cli_tick_cb(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(fx.cli, 0, sul, cli_tick_cb, 5000);
}

/* Turns both loops until cond or 5 s. The server's turn never waits, so
 * the client's poll() is where this thread sleeps. */
#define PUMP_UNTIL(cond)                                                      \
	do {                                                                  \
		uint64_t end_ = now_ms() + 5000;                              \
		while (!(cond) && now_ms() < end_) {                          \
			evloop_turn(fx.srv, false);                           \
			lws_service(fx.cli, 0);                               \
		}                                                             \
		TEST_ASSERT(cond);                                            \
	} while (0)

static int
fix_init(void)
{
	struct lws_context_creation_info info;

	memset(&fx, 0, sizeof(fx));
	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port      = 0;
	info.iface     = "127.0.0.1";
	info.protocols = srv_protos;
	info.options   = LWS_SERVER_OPTION_DISABLE_IPV6;
	TEST_EQ(evloop_create(&fx.srv, &info), 0);
	fx.port = lws_get_vhost_listen_port(
	    lws_get_vhost_by_name(evloop_lws(fx.srv), "default"));
	TEST_ASSERT(fx.port > 0);
	memset(&info, 0, sizeof(info));
	info.port      = CONTEXT_PORT_NO_LISTEN;
	info.protocols = cli_protos;
	fx.cli         = lws_create_context(&info);
	TEST_ASSERT(fx.cli != NULL);
	memset(&cli_tick, 0, sizeof(cli_tick));
	lws_sul_schedule(fx.cli, 0, &cli_tick, cli_tick_cb, 5000);
	return 0;
}

static void
fix_fini(void)
{
	lws_sul_cancel(&cli_tick);
	lws_context_destroy(fx.cli);
	evloop_destroy(fx.srv);
}

static int
connect_client(void)
{
	struct lws_client_connect_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.context  = fx.cli;
	ci.address  = "127.0.0.1";
	ci.port     = fx.port;
	ci.path     = "/";
	ci.host     = "127.0.0.1";
	ci.origin   = "127.0.0.1";
	ci.protocol = "t";
	TEST_ASSERT(lws_client_connect_via_info(&ci) != NULL);
	PUMP_UNTIL(fx.cli_up || fx.cli_gone);
	TEST_ASSERT(fx.cli_up);
	return 0;
}

/* A server callback that returns -1 after lws_close_reason: the client
 * gets the close frame with that code and reason. */
static int
test_close_keeps_code(void)
{
	TEST_EQ(fix_init(), 0);
	TEST_EQ(connect_client(), 0);
	fx.send = "hi";
	lws_callback_on_writable_all_protocol(fx.cli, &cli_protos[0]);
	PUMP_UNTIL(fx.srv_rx == 1);
	fx.send = "bye";
	lws_callback_on_writable_all_protocol(fx.cli, &cli_protos[0]);
	PUMP_UNTIL(fx.cli_gone && fx.srv_closed);
	TEST_EQ(fx.close_code, LWS_CLOSE_STATUS_GOINGAWAY);
	TEST_STREQ(fx.close_why, "going");
	fix_fini();
	return 0;
}

static void
sul_cb(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	fx.fired++;
}

static lws_sorted_usec_list_t tick_sul;

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(evloop_lws(fx.srv), 0, sul, tick_cb, 20000);
}

/* A timer set from outside any callback wakes a waiting turn. lws 4.1's
 * libev glue would leave it until the timer already armed fires (here a
 * 10 s one); the periodic tick every owner keeps (here 20 ms) bounds
 * that, and so the 5 s bound here is not reached. */
static int
test_timer_wakes_turn(void)
{
	lws_sorted_usec_list_t far;
	uint64_t               end;

	TEST_EQ(fix_init(), 0);
	memset(&far, 0, sizeof(far));
	memset(&tick_sul, 0, sizeof(tick_sul));
	lws_sul_schedule(
	    evloop_lws(fx.srv), 0, &far, sul_cb, 10 * LWS_USEC_PER_SEC);
	lws_sul_schedule(evloop_lws(fx.srv), 0, &tick_sul, tick_cb, 20000);
	evloop_turn(fx.srv, false);
	lws_sul_schedule(evloop_lws(fx.srv), 0, &fx.sul, sul_cb, 2000);
	end = now_ms() + 5000;
	while (fx.fired == 0 && now_ms() < end)
		evloop_turn(fx.srv, true);
	lws_sul_cancel(&far);
	lws_sul_cancel(&tick_sul);
	TEST_EQ(fx.fired, 1);
	fix_fini();
	return 0;
}

/* evloop_wake_in ends waits that nothing else would end soon: twenty
 * turns with a 1 ms wake each take well under the 10 s bound, which
 * without it they would spend waiting for lws's own timers or forever. */
static int
test_wake_in(void)
{
	uint64_t end;

	TEST_EQ(fix_init(), 0);
	end = now_ms() + 10000;
	for (int i = 0; i < 20; i++) {
		evloop_wake_in(fx.srv, 1000);
		evloop_turn(fx.srv, true);
	}
	TEST_ASSERT(now_ms() < end);
	evloop_wake_in(fx.srv, -1);
	fix_fini();
	return 0;
}

static void *
cancel_later(void *arg)
{
	struct timespec ts = { 0, 50 * 1000000 };

	nanosleep(&ts, NULL);
	lws_cancel_service(arg);
	return NULL;
}

/* Another thread wakes a turn that waits with nothing else to do. */
static int
test_cancel_wakes_turn(void)
{
	pthread_t th;
	uint64_t  end;

	TEST_EQ(fix_init(), 0);
	TEST_EQ(
	    pthread_create(&th, NULL, cancel_later, evloop_lws(fx.srv)), 0);
	end = now_ms() + 5000;
	while (fx.cancelled == 0 && now_ms() < end)
		evloop_turn(fx.srv, true);
	pthread_join(th, NULL);
	TEST_ASSERT(fx.cancelled > 0);
	fix_fini();
	return 0;
}

/* A second server on the same port: an error, nothing left behind. */
static int
test_port_in_use(void)
{
	struct lws_context_creation_info info;
	struct evloop                   *l = NULL;
	int                              rv;

	TEST_EQ(fix_init(), 0);
	memset(&info, 0, sizeof(info));
	info.port      = fx.port;
	info.iface     = "127.0.0.1";
	info.protocols = srv_protos;
	info.options   = LWS_SERVER_OPTION_DISABLE_IPV6;
	LWS_LEAK_BEGIN();
	rv = evloop_create(&l, &info);
	LWS_LEAK_END();
	TEST_EQ(rv, EIO);
	TEST_ASSERT(l == NULL);
	fix_fini();
	return 0;
}

/* Destroying the loop with a client still connected closes it. */
static int
test_destroy_with_client(void)
{
	TEST_EQ(fix_init(), 0);
	TEST_EQ(connect_client(), 0);
	evloop_destroy(fx.srv);
	fx.srv = NULL;
	{
		uint64_t end = now_ms() + 5000;
		while (!fx.cli_gone && now_ms() < end)
			lws_service(fx.cli, 0);
	}
	TEST_ASSERT(fx.cli_gone);
	lws_sul_cancel(&cli_tick);
	lws_context_destroy(fx.cli);
	return 0;
}

/* lws draws a client's handshake key and every frame's mask through
 * evloop.c's lws_get_random: the library's own calls reach it. */
static int
test_client_draws_here(void)
{
	unsigned long before = evloop_random_draws();

	TEST_EQ(fix_init(), 0);
	TEST_EQ(connect_client(), 0);
	TEST_ASSERT(evloop_random_draws() > before); /* the key */
	before  = evloop_random_draws();
	fx.send = "hi";
	lws_callback_on_writable_all_protocol(fx.cli, &cli_protos[0]);
	PUMP_UNTIL(fx.srv_rx == 1);
	TEST_ASSERT(evloop_random_draws() > before); /* the mask */
	fix_fini();
	return 0;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Requests across and beyond the buffer are served whole, never twice,
 * and a forked child does not repeat what its parent gets. */
static int
test_random_served_once(void)
{
	uint8_t a[16], b[16], big[1000];
	int     fd[2];
	pid_t   pid;
	int     st;

	TEST_EQ(lws_get_random(NULL, a, sizeof(a)), sizeof(a));
	TEST_EQ(lws_get_random(NULL, b, sizeof(b)), sizeof(b));
	TEST_ASSERT(memcmp(a, b, sizeof(a)) != 0);
	TEST_EQ(lws_get_random(NULL, big, sizeof(big)), sizeof(big));
	for (size_t i = 0; i + 16 <= sizeof(big); i += 16)
		TEST_ASSERT(!all_zero(big + i, 16));
	for (int i = 0; i < 100; i++) {
		uint8_t m[4];
		TEST_EQ(lws_get_random(NULL, m, sizeof(m)), sizeof(m));
	}
	/* The buffer now holds bytes the child must not reuse. */
	TEST_EQ(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		uint8_t c[16] = { 0 };
		bool    ok    = lws_get_random(NULL, c, sizeof(c)) == sizeof(c)
		    && write(fd[1], c, sizeof(c)) == (ssize_t)sizeof(c);
		_exit(ok ? 0 : 1);
	}
	TEST_ASSERT(pid > 0);
	TEST_EQ(lws_get_random(NULL, a, sizeof(a)), sizeof(a));
	TEST_EQ(read(fd[0], b, sizeof(b)), (ssize_t)sizeof(b));
	TEST_EQ(waitpid(pid, &st, 0), pid);
	TEST_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	TEST_ASSERT(memcmp(a, b, sizeof(a)) != 0);
	close(fd[0]);
	close(fd[1]);
	return 0;
}

TEST_MAIN({ "test_close_keeps_code", test_close_keeps_code },
    { "test_client_draws_here", test_client_draws_here },
    { "test_random_served_once", test_random_served_once },
    { "test_timer_wakes_turn", test_timer_wakes_turn },
    { "test_wake_in", test_wake_in },
    { "test_cancel_wakes_turn", test_cancel_wakes_turn },
    { "test_port_in_use", test_port_in_use },
    { "test_destroy_with_client", test_destroy_with_client })
