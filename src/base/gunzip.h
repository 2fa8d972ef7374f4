/*
 * gunzip.h - gzip decompression as a stream: compressed bytes in, in chunks of any size,
 * plain bytes out through a callback, in a fixed 64 KiB window (zlib's inflate). Written for
 * AWS Data Exports files (sources/data_exports, issue 15): a month of line items is
 * gigabytes once inflated, and never held whole.
 *
 * A file may hold several gzip members one after the other (RFC 1952 2.2); they read as
 * one stream. What is refused, with a message that says which:
 *  - bytes that are not gzip, or corrupt (-EPROTO);
 *  - a stream that ends inside a member: a truncated file (-EPROTO, from gunzip_finish);
 *  - more than max_out bytes inflated in all, when max_out is not 0 (-EFBIG).
 * After an error everything is refused. Not thread-safe; one per stream.
 */
#ifndef BCE_GUNZIP_H
#define BCE_GUNZIP_H

#include <stddef.h>
#include <stdint.h>

/* Receives the inflated bytes; a non-zero return stops the stream and is returned. */
typedef int (*gunzip_out_fn)(void *arg, const char *data, size_t len);

struct gunzip;

/* A stream that hands what it inflates to @fn(@arg), at most @max_out bytes (0: no limit).
 * NULL when zlib cannot start (out of memory). */
struct gunzip *gunzip_new(uint64_t max_out, gunzip_out_fn fn, void *arg);
void gunzip_free(struct gunzip *g);

/* Inflates @len more bytes. Returns 0, an error as above with @err filled, or @fn's. */
int gunzip_feed(struct gunzip *g, const void *data, size_t len, char *err, size_t errlen);

/* The end of the input: -EPROTO when it ended inside a member (or held no member). */
int gunzip_finish(struct gunzip *g, char *err, size_t errlen);

/* Bytes read and inflated so far. */
uint64_t gunzip_in(const struct gunzip *g);
uint64_t gunzip_out(const struct gunzip *g);

#endif
