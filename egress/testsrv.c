/*
 * testsrv.c - a tiny PersonaPlex stand-in for egress's unit tests.
 */
#include "testsrv.h"

#include <string.h>

void
fake_queue(struct fake *f, const void *data, size_t len, size_t split)
{
	struct smsg *m;

	if (f->nout >= MAXMSG || len > sizeof(m->data))
		return;
	m = &f->out[f->nout++];
	memcpy(m->data, data, len);
	m->len   = len;
	m->split = split;
	if (f->wsi)
		lws_callback_on_writable(f->wsi);
}

/* lws 4.1 copies "name=value" and points at the value: keep the value. */
static void
urlarg(struct lws *wsi, const char *name, char *buf, int len)
{
	const char *v = lws_get_urlarg_by_name(wsi, name, buf, len);
	if (v)
		memmove(buf, v, strlen(v) + 1);
	else
		buf[0] = '\0';
}

static int
fake_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
    void *in, size_t len)
{
	const struct lws_protocols *pr = lws_get_protocol(wsi);
	struct fake                *f  = pr ? pr->user : NULL;

	if (!f)
		return 0;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		f->wsi = wsi;
		f->connections++;
		f->hs_sent = false;
		if (++f->open > f->max_open)
			f->max_open = f->open;
		if (f->auto_hs && !f->close_at_once)
			fake_queue(f, "", 1, 0);
		lws_hdr_copy(wsi, f->uri, sizeof(f->uri), WSI_TOKEN_GET_URI);
		urlarg(wsi, "voice_prompt=", f->voice, sizeof(f->voice));
		urlarg(wsi, "text_prompt=", f->text, sizeof(f->text));
		if (f->iout < f->nout)
			lws_callback_on_writable(wsi);
		if (f->close_at_once) {
			lws_close_reason(wsi,
			    LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			    (unsigned char *)"no", 2);
			return -1;
		}
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (!f->hs_sent)
			f->rx_before_hs++;
		if (f->nrx < MAXMSG && len <= sizeof(f->rx[0])) {
			memcpy(f->rx[f->nrx], in, len);
			f->rx_len[f->nrx++] = len;
		}
		/* Echo audio back, as fakeplex's echo mode would. */
		if (len && ((uint8_t *)in)[0] == 0x01 && !f->mute)
			fake_queue(f, in, len, 0);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		struct smsg  *m;
		unsigned char buf[LWS_PRE + 4096];
		size_t        off, n;
		int           flags;
		if (f->iout >= f->nout)
			return 0;
		m = &f->out[f->iout];
		if (m->split && !f->frag_pending) {
			off             = 0;
			n               = m->split;
			flags           = LWS_WRITE_BINARY | LWS_WRITE_NO_FIN;
			f->frag_pending = true;
		} else if (m->split) {
			off             = m->split;
			n               = m->len - m->split;
			flags           = LWS_WRITE_CONTINUATION;
			f->frag_pending = false;
			f->iout++;
		} else {
			off   = 0;
			n     = m->len;
			flags = LWS_WRITE_BINARY;
			f->iout++;
		}
		/* A 0-length "text" marker means a WebSocket text frame. */
		if (!m->split && m->len > 1 && m->data[0] == 'T') {
			off++;
			n--;
			flags = LWS_WRITE_TEXT;
		}
		if (m->len && m->data[0] == 0x00)
			f->hs_sent = true;
		memcpy(buf + LWS_PRE, m->data + off, n);
		if (lws_write(
		        wsi, buf + LWS_PRE, n, (enum lws_write_protocol)flags)
		    < (int)n)
			return -1;
		if (f->iout < f->nout)
			lws_callback_on_writable(wsi);
		return 0;
	}
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2)
			f->close_code
			    = ((uint8_t *)in)[0] << 8 | ((uint8_t *)in)[1];
		return 0;
	case LWS_CALLBACK_CLOSED:
		f->closed = true;
		f->closes++;
		f->open--;
		/* What it had not sent yet dies with the connection. */
		f->iout         = f->nout;
		f->frag_pending = false;
		if (f->wsi == wsi)
			f->wsi = NULL;
		return 0;
	default:
		return 0;
	}
}

int
testsrv_start(
    struct fake *f, struct lws_context *ctx, const char *cert, const char *key)
{
	struct lws_context_creation_info ci;
	struct lws_vhost                *vh;

	f->protos[0] = (struct lws_protocols) { .name = "fake",
		.callback                             = fake_cb,
		.user                                 = f,
		.rx_buffer_size                       = 8192 };
	memset(&ci, 0, sizeof(ci));
	ci.port       = 0;
	ci.iface      = "127.0.0.1";
	ci.vhost_name = "fake";
	ci.protocols  = f->protos;
	/* Room for a 2032-byte request target. */
	ci.max_http_header_data = 8192;
	if (cert) {
		ci.options           = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		ci.ssl_cert_filepath = cert;
		ci.ssl_private_key_filepath = key;
	}
	vh = lws_create_vhost(ctx, &ci);
	return vh ? lws_get_vhost_listen_port(vh) : -1;
}
