/*
 * expfmt.h - the Prometheus text exposition format (0.0.4), the low-level
 * pieces: name validation and escaping (numbers: base/numfmt.h). Pure functions,
 * thread-safe. The registry (registry.h) builds on these.
 */
#ifndef BCE_EXPFMT_H
#define BCE_EXPFMT_H

#include <stdbool.h>
#include "base/util.h"

/* Longest label value written, in bytes; longer values are cut at a UTF-8
 * character boundary. AWS caps tag values at 256 characters. */
#define EXPFMT_MAX_LABEL_VALUE 1024

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool expfmt_valid_metric_name(const char *s);
/* [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (reserved). */
bool expfmt_valid_label_name(const char *s);

/*
 * Appends @v escaped as a label value (\\ \" \n), without the quotes.
 * Invalid UTF-8 is replaced by U+FFFD so Prometheus never rejects the scrape;
 * output is capped at EXPFMT_MAX_LABEL_VALUE input bytes.
 * Returns 0 or -ENOSPC from the buffer.
 */
int expfmt_put_label_value(struct buf *b, const char *v);
/* Appends @s escaped as HELP text (\\ and \n). */
int expfmt_put_help(struct buf *b, const char *s);

#endif
