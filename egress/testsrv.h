/*
 * testsrv.h - a tiny PersonaPlex stand-in for egress's unit tests: an lws
 * server vhost that records the request, what arrives before and after
 * its handshake and the close code, sends a scripted list of messages
 * (whole or in two fragments) and echoes 0x01 messages back.
 *
 * The real stand-in is tools/fakeplex; this one lives in the test's own
 * lws loop so a test can look at both ends of the socket.
 */
#ifndef EXO_TESTSRV_H
#define EXO_TESTSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#define MAXMSG 64

struct smsg {
	uint8_t data[4096];
	size_t  len;
	size_t  split; /* >0: sent as two fragments, the first split bytes */
};

/* The stand-in server. */
struct fake {
	struct lws_protocols protos[2];
	struct lws          *wsi;
	int                  connections;
	char                 uri[4096];
	char                 voice[256];
	char                 text[4096];
	bool        close_at_once; /* refuse: close right after the upgrade */
	bool        auto_hs; /* send 0x00 on every connection at once */
	bool        mute; /* do not echo 0x01 messages */
	bool        hs_sent; /* on the current connection */
	int         rx_before_hs;
	uint8_t     rx[MAXMSG][512];
	size_t      rx_len[MAXMSG];
	int         nrx;
	struct smsg out[MAXMSG];
	int         nout, iout;
	bool        frag_pending; /* first fragment of out[iout] sent */
	int         close_code;
	bool        closed;
	int         closes; /* connections closed so far */
	int         open; /* connections open now */
	int         max_open; /* most open at once */
};

/* Adds the stand-in as a vhost of ctx listening on 127.0.0.1 (a port the
 * kernel picks), with TLS when cert and key (PEM files) are given; ctx
 * must then have been created with LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT.
 * Returns the port, or -1. f must outlive the vhost. */
int testsrv_start(struct fake *f, struct lws_context *ctx, const char *cert,
    const char *key);

/* Queues a message for the server to send (split > 0: as two fragments;
 * a message starting with 'T' goes as a text frame without the 'T').
 * Dropped when MAXMSG messages were queued already. */
void fake_queue(struct fake *f, const void *data, size_t len, size_t split);

#endif
