/*
 * expfmt.h - the Prometheus text exposition format (0.0.4), the low-level
 * pieces: name validation, escaping and number formatting. Pure functions,
 * thread-safe. The registry (registry.h) builds on these.
 */
#ifndef BCE_EXPFMT_H
#define BCE_EXPFMT_H

#include <stdbool.h>
#include <stdint.h>
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

/*
 * Formats @v so that strtod() gives back the same double: the shortest of
 * %.15g/%.16g/%.17g that round-trips; "NaN", "+Inf", "-Inf" by hand.
 * @out must hold at least 32 bytes. Returns @out.
 */
char *expfmt_format_double(double v, char out[32]);

/* Writes the decimal digits of @u at @out (no NUL); returns the end. */
char *expfmt_put_u64(char *out, uint64_t u);

/*
 * Cost Explorer amounts have at most 10 decimals. If @a (0 <= a < 9e5) is the
 * double nearest to n / 10^10 for an integer n, writes that decimal at @out
 * ("155.1956029079": trailing zeros dropped, no point when n / 10^10 is whole;
 * no NUL) and returns the end; strtod() reads it back as exactly @a. Returns
 * NULL when @a is not such a value. No printf, no strtod.
 */
char *expfmt_put_decimal10(char *out, double a);

/*
 * Writes the label name for a tag key: "tag_" + key lower-cased with every
 * byte outside [a-z0-9_] replaced by '_'. Caller frees.
 */
char *expfmt_tag_label_name(const char *key);

#endif
