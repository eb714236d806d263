/*
 * bus_lws.c - adopts a bus's receive fd into a libwebsockets loop.
 */
#include <fcntl.h>
#include <libwebsockets.h>
#include <unistd.h>

#include "bus.h"
#include "bus_lws.h"

struct lws *
bus_lws_adopt(struct bus *b, struct lws_vhost *vh, const char *proto,
    void *user)
{
	lws_sock_file_fd_type u;
	int fd = bus_fd(b);
	if (fd < 0)
		return NULL;
	/* lws closes what it adopts; give it a dup so NNG's fd is never
	 * closed behind NNG's back. */
	u.filefd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (u.filefd < 0)
		return NULL;
	struct lws *wsi = lws_adopt_descriptor_vhost(vh,
	    LWS_ADOPT_RAW_FILE_DESC, u, proto, NULL);
	if (!wsi) {
		close(u.filefd);
		return NULL;
	}
	lws_set_opaque_user_data(wsi, user);
	return wsi;
}
