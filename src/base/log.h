/*
 * log.h - structured logging to stderr, logfmt or JSON, one line per event.
 *
 * A line is "ts=... level=... msg=... key=value ...". Values are quoted and
 * escaped as needed, so a hostile string can never start a new line.
 * Secrets must never be passed here; callers log names of secrets
 * (the environment variable, the file), never their contents.
 *
 * Thread-safe: each line is formatted privately and written with one
 * fwrite() under the stdio lock.
 */
#ifndef BCE_LOG_H
#define BCE_LOG_H

#include <stdbool.h>

/* Prefixed: <syslog.h> defines LOG_DEBUG, LOG_INFO, LOG_ERR, ... as macros. */
enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

/* Parses "debug|info|warn|error" / "logfmt|json". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
int log_parse_format(const char *s, enum log_format *out);

/* Call once before threads start. */
void log_setup(enum log_level level, enum log_format format);
bool log_enabled(enum log_level level);

/*
 * Writes one event. The variadic part is (const char *key, const char *value)
 * pairs terminated by a NULL key; a NULL value is written as an empty string.
 * Callers use the macros below.
 */
void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/*
 * The level is checked before any argument is evaluated: a value that needs
 * formatting costs nothing when its line is not written. Format numbers in
 * the argument list with LOG_INT / LOG_FIXED (their buffers live until the
 * end of the statement).
 */
#define log_at(level, ...)                                                   \
	do {                                                                 \
		if (log_enabled(level))                                      \
			log_event((level), __VA_ARGS__, (char *)0);          \
	} while (0)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)

/*
 * An integer, a number with @decimals digits after the point, a boolean, as a log value:
 * logfmt writes them as they read (port=19880), JSON as numbers and booleans ("port":19880,
 * "tls":false), not strings. (They carry a leading LOG_TYPED byte that only the writer sees.)
 */
#define LOG_TYPED '\x01'
#define LOG_INT(v) log_fmt_int((char[24]){ 0 }, (long long)(v))
#define LOG_FIXED(v, decimals) log_fmt_fixed((char[48]){ 0 }, (double)(v), (decimals))
#define LOG_BOOL(v) ((v) ? "\001true" : "\001false")
const char *log_fmt_int(char out[24], long long v);
const char *log_fmt_fixed(char out[48], double v, int decimals);

#endif
