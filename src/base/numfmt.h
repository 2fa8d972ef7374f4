/*
 * numfmt.h - numbers as text that reads back exactly, and strict decimals
 * read exactly: for the exposition (expfmt, registry), JSON (jsonw) and Cost
 * Explorer's amounts (ce_api). No printf or strtod on the common
 * paths (integers, money with at most 10 decimals). Pure, thread-safe.
 */
#ifndef BCE_NUMFMT_H
#define BCE_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes the decimal digits of @u at @out (no NUL); returns the end. */
char *numfmt_u64(char *out, uint64_t u);

/*
 * Cost Explorer amounts have at most 10 decimals. If @a (0 <= a < 9e5) is the
 * double nearest to n / 10^10 for an integer n, writes that decimal at @out
 * ("155.1956029079": trailing zeros dropped, no point when n / 10^10 is whole;
 * no NUL) and returns the end; strtod() reads it back as exactly @a. Returns
 * NULL when @a is not such a value.
 */
char *numfmt_decimal10(char *out, double a);

/*
 * The exposition format's spelling of @v (NUL-terminated in @out, which must
 * hold 32 bytes; returns @out): the shortest of %.15g/%.16g/%.17g that reads
 * back as @v, integers and money without printf; "NaN", "+Inf", "-Inf".
 */
char *numfmt_double(double v, char out[32]);

/*
 * JSON's spelling of finite @v (no NUL; @out holds 32 bytes) so that strtod
 * gives back exactly @v: integers below 2^53 as digits, money as above,
 * anything else %.17g. Returns the length, or 0 for NaN and infinities
 * (JSON cannot spell them).
 */
size_t numfmt_exact(double v, char out[32]);

/*
 * Reads a strict decimal, -?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?, at most 64
 * bytes, finite, into *out: exactly the double strtod() gives (Cost Explorer's
 * amounts take a fast path without strtod). Returns 0 or -EINVAL.
 */
int numfmt_parse_decimal(const char *s, double *out);

#endif
