/*
 * jsonw.h - the JSON writer: compact JSON streamed into one bounded buffer,
 * no tree. Every JSON document the exporter writes goes through it: the AWS
 * request bodies and the state file (jsontape.h is the one reader).
 *
 * Strings are escaped as cJSON's printer does (", \, \b \f \n \r \t, other
 * bytes below 0x20 as \u00xx, every other byte as it is). Numbers are written
 * so that strtod gives back the identical double (numfmt_exact). Commas and
 * nesting are tracked by the writer: callers only open, name and close.
 *
 * Errors are sticky: the first failure (the buffer's maximum reached: -EFBIG;
 * a NaN or infinity: -EDOM; nesting deeper than JSONW_MAX_DEPTH, closing what
 * is not open or with the other bracket, a key outside an object or without a
 * value, a value in an object without a key: -EINVAL)
 * is kept in w->err and every later call does nothing, so a writer checks
 * once at the end. Not thread-safe; one owner.
 */
#ifndef BCE_JSONW_H
#define BCE_JSONW_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"

#define JSONW_MAX_DEPTH 32

struct jsonw {
	struct buf b;
	int err;                          /* 0, or the first failure */
	int depth;
	bool first[JSONW_MAX_DEPTH + 1];  /* no value written yet at this depth */
	bool object[JSONW_MAX_DEPTH + 1]; /* the container at this depth is an object */
	bool after_key;                   /* a key was written: its value follows */
};

/* Starts an empty document of at most @max bytes. */
void jsonw_init(struct jsonw *w, size_t max);
/* Frees the buffer. */
void jsonw_free(struct jsonw *w);
/* Hands the text to the caller (caller frees) and its length in *len; NULL
 * (and the buffer freed) if the writer failed or a container is still open. */
char *jsonw_steal(struct jsonw *w, size_t *len);

void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
/* A member name inside an object; the next call writes its value. */
void jsonw_key(struct jsonw *w, const char *key);

/* Values. A NULL string is written as "". */
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_number(struct jsonw *w, double v);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_bool(struct jsonw *w, bool v);

#endif
