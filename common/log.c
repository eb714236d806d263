/*
 * log.c - text or JSON lines, one write(2) each.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *level_names[] = { "debug", "info", "warn", "error" };

int
log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (s && !strcasecmp(s, level_names[i])) {
			*out = (enum log_level) i;
			return 0;
		}
	if (s && !strcasecmp(s, "warning")) {
		*out = LOG_WARN;
		return 0;
	}
	return EINVAL;
}

int
log_parse_format(const char *s, int *json)
{
	if (s && !strcasecmp(s, "text"))
		*json = 0;
	else if (s && !strcasecmp(s, "json"))
		*json = 1;
	else
		return EINVAL;
	return 0;
}

int
log_init(struct log *lg, const char *proc, const char *format,
    const char *level)
{
	lg->proc = proc;
	lg->fd = 2;
	lg->json = 0;
	lg->level = LOG_INFO;
	if (format && log_parse_format(format, &lg->json))
		return EINVAL;
	if (level && log_parse_level(level, &lg->level))
		return EINVAL;
	return 0;
}

/* Appends s to buf as a JSON string body (no quotes). */
static size_t
json_esc(char *buf, size_t cap, size_t len, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char) *s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char) c;
		} else if (c == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else if (c < 0x20) {
			len += (size_t) snprintf(buf + len, cap - len,
			    "\\u%04x", c);
		} else {
			buf[len++] = (char) c;
		}
	}
	return len;
}

static size_t
put(char *buf, size_t cap, size_t len, const char *s)
{
	size_t n = strlen(s);
	if (len + n >= cap)
		n = cap - len - 1;
	memcpy(buf + len, s, n);
	return len + n;
}

void
log_vwrite(const struct log *lg, enum log_level lvl,
    const struct log_call *call, const char *fmt, va_list ap)
{
	char msg[2048], line[4096], ts[40];
	struct timespec now;
	struct tm tm;
	size_t len = 0;
	int n;

	if (lvl < lg->level)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = (int) strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - (size_t) n, ".%03ldZ",
	    now.tv_nsec / 1000000);

	const char *csid = call && call->call_sid ? call->call_sid : "";
	const char *ssid = call && call->stream_sid ? call->stream_sid : "";
	if (lg->json) {
		len = put(line, sizeof(line), len, "{\"ts\":\"");
		len = put(line, sizeof(line), len, ts);
		len = put(line, sizeof(line), len, "\",\"level\":\"");
		len = put(line, sizeof(line), len, level_names[lvl]);
		len = put(line, sizeof(line), len, "\",\"proc\":\"");
		len = json_esc(line, sizeof(line), len, lg->proc);
		len = put(line, sizeof(line), len, "\",\"msg\":\"");
		len = json_esc(line, sizeof(line), len, msg);
		len = put(line, sizeof(line), len, "\"");
		if (*csid || *ssid) {
			len = put(line, sizeof(line), len, ",\"call_sid\":\"");
			len = json_esc(line, sizeof(line), len, csid);
			len = put(line, sizeof(line), len,
			    "\",\"stream_sid\":\"");
			len = json_esc(line, sizeof(line), len, ssid);
			len = put(line, sizeof(line), len, "\"");
		}
		len = put(line, sizeof(line), len, "}\n");
	} else {
		n = snprintf(line, sizeof(line), "%s %-5s %s: %s", ts,
		    level_names[lvl], lg->proc, msg);
		len = n < 0 ? 0 : (size_t) n;
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		if (*csid || *ssid) {
			n = snprintf(line + len, sizeof(line) - len,
			    " call_sid=%s stream_sid=%s", csid, ssid);
			if (n > 0)
				len += (size_t) n;
			if (len >= sizeof(line))
				len = sizeof(line) - 1;
		}
		if (len >= sizeof(line) - 1)
			len = sizeof(line) - 2;
		line[len++] = '\n';
	}
	/* One write per line: lines from threads never interleave. */
	ssize_t w = write(lg->fd, line, len);
	(void) w;
}

void
log_write(const struct log *lg, enum log_level lvl,
    const struct log_call *call, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(lg, lvl, call, fmt, ap);
	va_end(ap);
}
