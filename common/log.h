/*
 * log.h - one line per event, as text or JSON, to stderr.
 *
 * A struct log is created by a process's main and handed to every module
 * that logs (no global logger). Each line is written with one write(2), so
 * lines from threads never interleave. A line about a call passes that
 * call's ids (struct log_call) and they appear on the line: as
 * call_sid=... stream_sid=... in text, as keys in JSON.
 */
#ifndef EXO_LOG_H
#define EXO_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

struct log_call {
	const char *call_sid;   /* may be NULL or "" */
	const char *stream_sid; /* may be NULL or "" */
};

struct log {
	const char    *proc;  /* process name, e.g. "ingress" */
	int            json;  /* 1: JSON lines, 0: text */
	enum log_level level; /* lines below this are not written */
	int            fd;    /* where lines go; 2 by default */
};

/* log_init fills lg; returns 0, or EINVAL naming nothing (the caller's
 * config layer validates format and level strings with log_parse_*). */
int log_init(struct log *lg, const char *proc, const char *format,
    const char *level);
int log_parse_level(const char *s, enum log_level *out);
int log_parse_format(const char *s, int *json);

void log_write(const struct log *lg, enum log_level lvl,
    const struct log_call *call, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vwrite(const struct log *lg, enum log_level lvl,
    const struct log_call *call, const char *fmt, va_list ap);

#define LOGD(lg, call, ...) log_write((lg), LOG_DEBUG, (call), __VA_ARGS__)
#define LOGI(lg, call, ...) log_write((lg), LOG_INFO, (call), __VA_ARGS__)
#define LOGW(lg, call, ...) log_write((lg), LOG_WARN, (call), __VA_ARGS__)
#define LOGE(lg, call, ...) log_write((lg), LOG_ERROR, (call), __VA_ARGS__)

#endif
