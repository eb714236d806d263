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

/* A bounded line buffer: appends past cap are cut, never overflow. cap
 * leaves room for the line's terminator, which is always written. */
struct lb {
	char *p;
	size_t len, cap;
};

static void
lb_put(struct lb *b, const char *s, size_t n)
{
	size_t room = b->cap - b->len;
	if (n > room)
		n = room;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
lb_str(struct lb *b, const char *s)
{
	lb_put(b, s, strlen(s));
}

/* Appends s as the body of a JSON string (no quotes). */
static void
lb_json(struct lb *b, const char *s)
{
	char esc[8];
	for (; *s; s++) {
		unsigned char c = (unsigned char) *s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char) c;
			lb_put(b, esc, 2);
		} else if (c == '\n') {
			lb_put(b, "\\n", 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			lb_put(b, esc, 6);
		} else {
			lb_put(b, (const char *) &c, 1);
		}
	}
}

void
log_vwrite(const struct log *lg, enum log_level lvl,
    const struct log_call *call, const char *fmt, va_list ap)
{
	char msg[2048], line[4096], ts[40];
	struct lb b = { .p = line, .cap = sizeof(line) - 2 };
	struct timespec now;
	struct tm tm;
	size_t n;

	if (lvl < lg->level)
		return;
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ",
	    (int) (now.tv_nsec / 1000000));

	const char *csid = call && call->call_sid ? call->call_sid : "";
	const char *ssid = call && call->stream_sid ? call->stream_sid : "";
	if (lg->json) {
		lb_str(&b, "{\"ts\":\"");
		lb_str(&b, ts);
		lb_str(&b, "\",\"level\":\"");
		lb_str(&b, level_names[lvl]);
		lb_str(&b, "\",\"proc\":\"");
		lb_json(&b, lg->proc);
		lb_str(&b, "\",\"msg\":\"");
		lb_json(&b, msg);
		if (*csid || *ssid) {
			lb_str(&b, "\",\"call_sid\":\"");
			lb_json(&b, csid);
			lb_str(&b, "\",\"stream_sid\":\"");
			lb_json(&b, ssid);
		}
		/* Room for the closing quote and brace was not reserved:
		 * cut the message so they always fit. */
		if (b.len > b.cap - 2)
			b.len = b.cap - 2;
		lb_str(&b, "\"}");
	} else {
		lb_str(&b, ts);
		lb_str(&b, " ");
		lb_str(&b, level_names[lvl]);
		lb_str(&b, lvl == LOG_INFO || lvl == LOG_WARN ? "  " : " ");
		lb_str(&b, lg->proc);
		lb_str(&b, ": ");
		lb_str(&b, msg);
		if (*csid || *ssid) {
			lb_str(&b, " call_sid=");
			lb_str(&b, csid);
			lb_str(&b, " stream_sid=");
			lb_str(&b, ssid);
		}
	}
	line[b.len++] = '\n';
	/* One write per line: lines from threads never interleave. */
	ssize_t w = write(lg->fd, line, b.len);
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
