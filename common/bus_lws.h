/*
 * bus_lws.h - lets a libwebsockets event loop receive from bus links.
 *
 * The bus's receive fd is adopted into the lws context as a raw file, so
 * the thread that owns the lws context also reads the bus: no extra
 * thread, no lock. When an Envelope is waiting, the adopted wsi gets
 * LWS_CALLBACK_RAW_RX_FILE on the protocol named at adoption; the
 * protocol's callback then calls bus_recv until EAGAIN. The adopted fd is
 * a dup of NNG's, so lws closing it never touches NNG's own.
 */
#ifndef EXO_BUS_LWS_H
#define EXO_BUS_LWS_H

struct bus;
struct lws_vhost;
struct lws;

/* Adopts b's receive fd into vh, bound to protocol `proto`, with `user`
 * stored as the wsi's opaque user data (lws_get_opaque_user_data).
 * Returns the wsi, or NULL after failing. */
struct lws *bus_lws_adopt(struct bus *b, struct lws_vhost *vh,
    const char *proto, void *user);

#endif
