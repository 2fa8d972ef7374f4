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

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

/* Parses "debug|info|warn|error" / "logfmt|json". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
int log_parse_format(const char *s, enum log_format *out);

/* Call once before threads start. */
void log_setup(enum log_level level, enum log_format format);
int log_enabled(enum log_level level);

/*
 * Writes one event. The variadic part is (const char *key, const char *value)
 * pairs terminated by a NULL key; a NULL value is written as an empty string.
 */
void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#define log_debug(...) log_event(LOG_DEBUG, __VA_ARGS__, (char *)0)
#define log_info(...) log_event(LOG_INFO, __VA_ARGS__, (char *)0)
#define log_warn(...) log_event(LOG_WARN, __VA_ARGS__, (char *)0)
#define log_error(...) log_event(LOG_ERROR, __VA_ARGS__, (char *)0)

#endif
