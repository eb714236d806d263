/*
 * wsraw_test.c - framing, parsing, and a client against a scripted peer
 * on a loopback socket (one thread: the peer's bytes are written before
 * the client reads them).
 */
#include "wsraw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int
test_header_lengths(void)
{
	uint8_t h[14], mask[4] = { 1, 2, 3, 4 };

	TEST_EQ(wsraw_frame_header(h, WSRAW_TEXT, true, 5, mask), 6);
	TEST_EQ(h[0], 0x81);
	TEST_EQ(h[1], 0x85);
	TEST_ASSERT(memcmp(h + 2, mask, 4) == 0);
	TEST_EQ(wsraw_frame_header(h, WSRAW_BINARY, true, 125, mask), 6);
	TEST_EQ(h[1], 0x80 | 125);
	TEST_EQ(wsraw_frame_header(h, WSRAW_BINARY, false, 126, mask), 8);
	TEST_EQ(h[0], 0x02);
	TEST_EQ(h[1], 0x80 | 126);
	TEST_EQ(h[2], 0);
	TEST_EQ(h[3], 126);
	TEST_EQ(wsraw_frame_header(h, WSRAW_TEXT, true, 1u << 20, mask), 14);
	TEST_EQ(h[1], 0x80 | 127);
	TEST_EQ(h[7], 0x10); /* 0x00100000, big-endian in bytes 2..9 */
	TEST_EQ(h[9], 0);
	return 0;
}

static int
test_mask_round_trip(void)
{
	uint8_t p[10] = "abcdefghi", mask[4] = { 0x11, 0x22, 0x33, 0x44 };

	wsraw_mask(p, 9, mask, 0);
	TEST_EQ(p[0], 'a' ^ 0x11);
	TEST_EQ(p[5], 'f' ^ 0x22);
	/* Two halves with the right offset undo the whole. */
	wsraw_mask(p, 4, mask, 0);
	wsraw_mask(p + 4, 5, mask, 4);
	TEST_ASSERT(memcmp(p, "abcdefghi", 9) == 0);
	return 0;
}

static int
test_parse(void)
{
	struct wsraw_frame f;
	uint8_t            b[300];

	/* text "hi" */
	b[0] = 0x81, b[1] = 2, b[2] = 'h', b[3] = 'i';
	TEST_EQ(wsraw_parse(b, 4, 100, &f), 4);
	TEST_EQ(f.opcode, WSRAW_TEXT);
	TEST_ASSERT(f.fin);
	TEST_EQ(f.len, 2);
	TEST_EQ(f.payload[1], 'i');
	TEST_EQ(wsraw_parse(b, 3, 100, &f), 0); /* incomplete */
	TEST_EQ(wsraw_parse(b, 1, 100, &f), 0);
	/* 16-bit length */
	b[0] = 0x82, b[1] = 126, b[2] = 0, b[3] = 200;
	TEST_EQ(wsraw_parse(b, 100, 1000, &f), 0);
	TEST_EQ(wsraw_parse(b, 204, 1000, &f), 204);
	TEST_EQ(f.len, 200);
	TEST_EQ(wsraw_parse(b, 204, 100, &f), -1); /* over max */
	/* 64-bit length, incomplete header then too large */
	b[0] = 0x81, b[1] = 127;
	memset(b + 2, 0, 8);
	b[5] = 1; /* 2^32 */
	TEST_EQ(wsraw_parse(b, 9, 1u << 20, &f), 0);
	TEST_EQ(wsraw_parse(b, 10, 1u << 20, &f), -1);
	/* a masked frame from a server */
	b[0] = 0x81, b[1] = 0x82;
	TEST_EQ(wsraw_parse(b, 8, 100, &f), -1);
	/* close 1008 "x", not final is still parsed as it is */
	b[0] = 0x88, b[1] = 3, b[2] = 0x03, b[3] = 0xf0, b[4] = 'x';
	TEST_EQ(wsraw_parse(b, 5, 100, &f), 5);
	TEST_EQ(f.opcode, WSRAW_CLOSE);
	TEST_EQ((f.payload[0] << 8) | f.payload[1], 1008);
	return 0;
}

static int
test_http_status(void)
{
	const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
	                 "websocket\r\n\r\n\x81\x01";
	const char *no = "HTTP/1.1 401 Unauthorized\r\n\r\n";
	size_t      hl = 0;

	TEST_EQ(wsraw_http_status(ok, strlen(ok), &hl), 101);
	TEST_EQ(hl, strlen(ok) - 2);
	TEST_EQ(wsraw_http_status(ok, 20, &hl), 0);
	TEST_EQ(wsraw_http_status(no, strlen(no), &hl), 401);
	TEST_EQ(wsraw_http_status("SSH-2.0-x\r\n\r\n", 13, &hl), -1);
	TEST_EQ(wsraw_http_status("HTTP/1.1 9\r\n\r\n", 14, &hl), -1);
	TEST_EQ(wsraw_http_status("HTT", 3, &hl), 0);
	return 0;
}

/* A listening socket on 127.0.0.1:0; *port gets its port. */
static int
listen_any(int *port)
{
	struct sockaddr_in a;
	socklen_t          al = sizeof(a);
	int                fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family      = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0
	    || listen(fd, 4) != 0
	    || getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static const char resp101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "\r\n";

static int
test_server_close_seen_while_writing(void)
{
	struct wsraw              *w = NULL;
	int                        port, lfd = listen_any(&port), sfd;
	char                       req[4096];
	static uint8_t             big[1 << 20];
	const struct wsraw_status *st;

	TEST_ASSERT(lfd >= 0);
	TEST_EQ(wsraw_connect(&w, "127.0.0.1", port, 1000), 0);
	sfd = accept(lfd, NULL, NULL);
	TEST_ASSERT(sfd >= 0);
	/* The answer and a text message wait in the socket already. */
	TEST_ASSERT(write(sfd, resp101, sizeof(resp101) - 1) > 0);
	TEST_ASSERT(write(sfd, "\x81\x02hi", 4) == 4);
	TEST_EQ(wsraw_upgrade(w, "h:1", "/exotel?x=1", "Bearer t", 1000), 0);
	ssize_t n = read(sfd, req, sizeof(req) - 1);
	TEST_ASSERT(n > 0);
	req[n] = '\0';
	TEST_ASSERT(strstr(req, "GET /exotel?x=1 HTTP/1.1\r\n") == req);
	TEST_ASSERT(strstr(req, "\r\nAuthorization: Bearer t\r\n"));
	TEST_ASSERT(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
	st = wsraw_status(w);
	TEST_EQ(st->http_status, 101);
	TEST_EQ(st->messages_received, 1);
	TEST_EQ(st->end, WSRAW_OPEN);

	/* The server closes (1009 "too big") and goes: a long write ends
	 * early, and the close frame is what we report. */
	TEST_ASSERT(write(sfd, "\x88\x09\x03\xf1too big", 11) == 11);
	close(sfd);
	TEST_EQ(wsraw_send(w, WSRAW_TEXT, big, sizeof(big), 2000), EPIPE);
	TEST_EQ(st->end, WSRAW_BY_SERVER);
	TEST_EQ(st->close_code, 1009);
	TEST_STREQ(st->close_reason, "too big");
	TEST_ASSERT(wsraw_wait(w, 10));
	wsraw_free(w);
	close(lfd);
	return 0;
}

static int
test_refused_and_client_close(void)
{
	struct wsraw              *w = NULL;
	int                        port, lfd = listen_any(&port), sfd;
	char                       buf[4096];
	const struct wsraw_status *st;

	TEST_ASSERT(lfd >= 0);
	TEST_EQ(wsraw_connect(&w, "127.0.0.1", port, 1000), 0);
	sfd                      = accept(lfd, NULL, NULL);
	static const char r401[] = "HTTP/1.1 401 Unauthorized\r\n"
	                           "Content-Length: 0\r\n\r\n";
	TEST_ASSERT(write(sfd, r401, sizeof(r401) - 1) > 0);
	TEST_EQ(wsraw_upgrade(w, "h", "/", NULL, 1000), EACCES);
	st = wsraw_status(w);
	TEST_EQ(st->http_status, 401);
	TEST_ASSERT(!st->upgraded);
	wsraw_free(w);
	close(sfd);

	/* Still open after the wait: we close, 1000, and it is ours. */
	TEST_EQ(wsraw_connect(&w, "127.0.0.1", port, 1000), 0);
	sfd = accept(lfd, NULL, NULL);
	TEST_ASSERT(write(sfd, resp101, sizeof(resp101) - 1) > 0);
	TEST_EQ(wsraw_upgrade(w, "h", "/", NULL, 1000), 0);
	TEST_ASSERT(!wsraw_wait(w, 20));
	TEST_EQ(wsraw_send(w, WSRAW_TEXT, "{}", 2, 1000), 0);
	TEST_ASSERT(write(sfd, "\x88\x02\x03\xe8", 4) == 4); /* the answer */
	wsraw_close(w, 1000, 1000);
	st = wsraw_status(w);
	/* The server's frame was there before ours went out. */
	TEST_EQ(st->end, WSRAW_BY_SERVER);
	TEST_EQ(st->close_code, 1000);
	ssize_t n = read(sfd, buf, sizeof(buf));
	TEST_ASSERT(n >= 2 + 4 + 2 + 2 + 4); /* request, {}, our close */
	wsraw_free(w);
	close(sfd);

	TEST_EQ(wsraw_connect(&w, "127.0.0.1", port, 1000), 0);
	sfd = accept(lfd, NULL, NULL);
	TEST_ASSERT(write(sfd, resp101, sizeof(resp101) - 1) > 0);
	TEST_EQ(wsraw_upgrade(w, "h", "/", NULL, 1000), 0);
	/* No answer to our close: it is still ours. */
	wsraw_close(w, 1000, 50);
	st = wsraw_status(w);
	TEST_EQ(st->end, WSRAW_BY_CLIENT);
	TEST_EQ(st->close_code, 0);
	wsraw_free(w);
	close(sfd);
	close(lfd);
	return 0;
}

TEST_MAIN({ "header_lengths", test_header_lengths },
    { "mask_round_trip", test_mask_round_trip }, { "parse", test_parse },
    { "http_status", test_http_status },
    { "server_close_seen_while_writing",
        test_server_close_seen_while_writing },
    { "refused_and_client_close", test_refused_and_client_close })
