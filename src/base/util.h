/*
 * util.h - allocation wrappers, growable bounded buffers, clocks, and small
 * text helpers. The bottom of the house: it includes nothing of ours.
 *
 * Out-of-memory aborts through the x-wrappers. That is acceptable only
 * because every size an outsider controls is capped before it reaches an
 * allocation: HTTP bodies (http_client), projects per region (projects),
 * label lengths (expfmt), and every struct buf has a maximum.
 *
 * All functions are thread-safe (they touch no shared state).
 */
#ifndef BCE_UTIL_H
#define BCE_UTIL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Returns a copy of @s (NULL stays NULL). Caller frees. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a formatted string. Caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Zeroes @p's string bytes (if any) and frees it. For secrets. */
void free_secret(char *p);
/* Zeroes @n bytes at @p in a way the compiler may not elide. */
void secure_zero(void *p, size_t n);

/*
 * A growable byte buffer with a hard maximum. Always NUL-terminated after
 * the first append. buf_append* return 0, or -ENOSPC when the maximum would
 * be exceeded (the buffer is then unchanged).
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void buf_init(struct buf *b, size_t max);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Makes room for @extra more bytes and the NUL after them, without changing
 * len: 0, or -ENOSPC (buffer unchanged). For writers that fill data + len
 * themselves; they then advance len and store the NUL at data[len].
 */
int buf_reserve(struct buf *b, size_t extra);
/* Hands the bytes to the caller (caller frees) and resets @b. Never NULL. */
char *buf_steal(struct buf *b, size_t *len);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* Seconds on CLOCK_MONOTONIC and CLOCK_REALTIME. */
double mono_now(void);
double wall_now(void);

/* A uniformly distributed double in [0, 1). Thread-safe, not for crypto. */
double rand_unit(void);

/* Strips ASCII whitespace at both ends of @s in place; returns @s. */
char *text_trim(char *s);

/* An endpoint template with every "{region}" replaced by @region and trailing '/'
 * removed ("https://monitoring.{region}.amazonaws.com/" -> "https://monitoring.
 * eu-west-1.amazonaws.com"). Caller frees. */
char *region_url(const char *endpoint, const char *region);

/*
 * Do two error texts describe the same failure, for complain-once logging?
 * They do when they differ only in the digits of their numbers: AWS messages
 * carry timestamps and counts ("Signature expired: 20261126T120000Z is now
 * earlier than ..."), which would otherwise log the same failure at every
 * refresh. NULL equals nothing. Pure.
 */
bool same_failure(const char *a, const char *b);

/*
 * FNV-1a (64 bits) of @len bytes at @data, continuing from @h (start with
 * HASH64_INIT): for hash tables and change detection; not cryptographic. Pure.
 */
#define HASH64_INIT 0xcbf29ce484222325u
uint64_t hash64(const void *data, size_t len, uint64_t h);

#endif
