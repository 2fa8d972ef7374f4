/*
 * gzip.h - gzip (RFC 1952) compression of a whole buffer with zlib.
 * Used once per refresh, so scrapes serve pre-compressed bytes. Thread-safe.
 */
#ifndef BCE_GZIP_H
#define BCE_GZIP_H

#include <stddef.h>

/* Compresses @in. Returns 0 and a new buffer in *out (caller frees), or
 * -EIO if zlib fails (nothing allocated). */
int gzip_compress(const char *in, size_t len, char **out, size_t *outlen);

#endif
