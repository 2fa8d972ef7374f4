/*
 * log.c - see log.h.
 */
#include "base/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/util.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static enum log_format out_format = LOG_FORMAT_LOGFMT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_parse_format(const char *s, enum log_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = LOG_FORMAT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

void log_setup(enum log_level level, enum log_format format)
{
	min_level = level;
	out_format = format;
}

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

const char *log_fmt_int(char out[24], long long v)
{
	snprintf(out, 24, "%c%lld", LOG_TYPED, v);
	return out;
}

const char *log_fmt_fixed(char out[48], double v, int decimals)
{
	if (!isfinite(v)) /* JSON has no NaN: such a value stays a string */
		snprintf(out, 48, "%g", v);
	else
		snprintf(out, 48, "%c%.*f", LOG_TYPED, decimals, v);
	return out;
}

static int needs_quotes(const char *v)
{
	if (!*v)
		return 1;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			return 1;
	return 0;
}

/* Escapes @v as a JSON/logfmt string body: quotes, backslashes, controls. */
static void put_escaped(struct buf *b, const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		switch (*p) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				buf_printf(b, "\\u%04x", *p);
			else
				buf_putc(b, (char)*p);
		}
	}
}

/* A JSON literal the typed log values spell: true, false, or a number. */
static bool json_literal(const char *v)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
		return true;
	const char *p = v;
	if (*p == '-')
		p++;
	if (!(*p >= '0' && *p <= '9'))
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0' && p - v < 40;
}

static void put_field(struct buf *b, const char *k, const char *v, int first)
{
	/* a number or a boolean (LOG_INT, LOG_FIXED, LOG_BOOL): written bare only when it is
	 * one; any other string that starts with the marker byte stays an escaped string */
	bool typed = *v == LOG_TYPED && json_literal(v + 1);
	if (typed)
		v++;
	if (out_format == LOG_FORMAT_JSON) {
		buf_puts(b, first ? "{\"" : ",\"");
		put_escaped(b, k);
		buf_puts(b, "\":");
		if (typed) {
			buf_puts(b, v);
			return;
		}
		buf_putc(b, '"');
		put_escaped(b, v);
		buf_putc(b, '"');
		return;
	}
	if (!first)
		buf_putc(b, ' ');
	buf_puts(b, k);
	buf_putc(b, '=');
	if (needs_quotes(v)) {
		buf_putc(b, '"');
		put_escaped(b, v);
		buf_putc(b, '"');
	} else {
		buf_puts(b, v);
	}
}

void log_event(enum log_level level, const char *msg, ...)
{
	if (level < min_level)
		return;
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	struct buf b;
	buf_init(&b, 64 * 1024);
	put_field(&b, "ts", ts, 1);
	put_field(&b, "level", level_names[level], 0);
	put_field(&b, "msg", msg, 0);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		put_field(&b, k, v ? v : "", 0);
	}
	va_end(ap);
	buf_puts(&b, out_format == LOG_FORMAT_JSON ? "}\n" : "\n");
	if (b.data) {
		flockfile(stderr);
		fwrite(b.data, 1, b.len, stderr);
		if (b.data[b.len - 1] != '\n') /* line hit the cap */
			fputs(out_format == LOG_FORMAT_JSON ? "\"}\n" : "\n", stderr);
		funlockfile(stderr);
	}
	buf_free(&b);
}
