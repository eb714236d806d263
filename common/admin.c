/*
 * admin.c - /healthz, /readyz, /metrics on libmicrohttpd's own thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"

struct admin {
	struct MHD_Daemon *d;
	struct admin_opts o;
	_Atomic uint64_t beat_us;
};

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

static mhd_result
reply(struct MHD_Connection *c, unsigned status, char *body, int owned,
    const char *ctype)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body),
	    body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	mhd_result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static mhd_result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct admin *a = cls;
	char detail[1024] = "";

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed\n", 0, "text/plain");
	if (!strcmp(url, "/healthz")) {
		uint64_t age = mono_us() - atomic_load(&a->beat_us);
		if (age > (uint64_t) a->o.stall_ms * 1000u) {
			char *b = malloc(64);
			if (!b)
				return MHD_NO;
			snprintf(b, 64, "stalled for %llu ms\n",
			    (unsigned long long) (age / 1000));
			return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, b, 1,
			    "text/plain");
		}
		return reply(c, MHD_HTTP_OK, "ok\n", 0, "text/plain");
	}
	if (!strcmp(url, "/readyz")) {
		int ok = a->o.ready ? a->o.ready(a->o.arg, detail,
						  sizeof(detail))
				    : 1;
		char *b = malloc(sizeof(detail) + 16);
		if (!b)
			return MHD_NO;
		snprintf(b, sizeof(detail) + 16, "%s%s%s\n",
		    ok ? "ready" : "not ready", *detail ? ": " : "", detail);
		return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
		    b, 1, "text/plain");
	}
	if (!strcmp(url, "/metrics") && a->o.metrics) {
		char *txt = metrics_render(a->o.metrics, NULL);
		if (!txt)
			return MHD_NO;
		return reply(c, MHD_HTTP_OK, txt, 1,
		    "text/plain; version=0.0.4; charset=utf-8");
	}
	if (a->o.path) {
		char *body = NULL;
		const char *ctype = "text/plain";
		int status = a->o.path(a->o.arg, url, &body, &ctype);
		if (status && body)
			return reply(c, (unsigned) status, body, 1, ctype);
		free(body);
	}
	return reply(c, MHD_HTTP_NOT_FOUND, "not found\n", 0, "text/plain");
}

int
admin_start(struct admin **out, const struct admin_opts *o)
{
	char host[256];
	int port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char portstr[16];
	struct admin *a;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;

	if (cfg_split_addr(o->addr, host, sizeof(host), &port)) {
		LOGE(o->log, NULL, "admin: bad address '%s'", o->addr);
		return EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%d", port);
	int gai = getaddrinfo(*host ? host : NULL, portstr, &hints, &ai);
	if (gai) {
		LOGE(o->log, NULL, "admin: cannot resolve '%s': %s", host,
		    gai_strerror(gai));
		return EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		freeaddrinfo(ai);
		return ENOMEM;
	}
	a->o = *o;
	if (!a->o.stall_ms)
		a->o.stall_ms = 5000;
	atomic_store(&a->beat_us, mono_us());
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, (uint16_t) port, NULL, NULL, handle, a,
	    MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned) 64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
	    MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!a->d) {
		LOGE(o->log, NULL, "admin: cannot listen on %s", o->addr);
		free(a);
		return EADDRINUSE;
	}
	LOGI(o->log, NULL, "admin: http://%s/ (healthz, readyz, metrics)",
	    o->addr);
	*out = a;
	return 0;
}

void
admin_stop(struct admin *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->d);
	free(a);
}

void
admin_heartbeat(struct admin *a)
{
	if (a)
		atomic_store_explicit(&a->beat_us, mono_us(),
		    memory_order_relaxed);
}
