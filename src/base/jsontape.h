/*
 * jsontape.h - a validating JSON parser that allocates nothing per value.
 *
 * One pass over the text checks it against RFC 8259 and writes a "tape": one
 * 16-byte token per value and per object key, in document order, each
 * holding its span in the text and the index of the token after it, so
 * siblings are skipped in O(1). Strings stay escaped in the text until a
 * caller copies one out. Made for the megabytes of Cost Explorer pages per
 * refresh, where building (and freeing) a cJSON tree costs more than the
 * parse. It is the exporter's one JSON reader: Cost Explorer, Projects, STS,
 * instance-metadata and container-credential responses, AWS error bodies and
 * the state file (base/jsonw.h is the one writer). cJSON stays the tests'
 * reference: what the tape accepts, cJSON must read as the same tree.
 *
 * Semantics follow cJSON where a reader could tell: a duplicate object key
 * finds the first occurrence; nesting deeper than JSONTAPE_MAX_DEPTH is
 * rejected. Unlike cJSON, text after the top-level value (other than
 * whitespace) is an error, and strings follow the rule below. Pure;
 * thread-safe; a tape is owned by its caller.
 *
 * Strings come out as valid UTF-8, always. Every string copied out of the
 * tape (jt_str, jt_strdup, and what jt_str_eq and jt_get compare) has each
 * invalid sequence replaced by U+FFFD (EF BF BD) and everything else kept:
 *  - raw bytes that are not UTF-8 (stray or truncated sequences, overlongs,
 *    surrogates encoded in UTF-8, beyond U+10FFFF): one U+FFFD for each
 *    maximal subpart, as the Unicode Standard (section 3.9) recommends and
 *    Python's decode(errors="replace") does: FF gives one, C0 80 two,
 *    ED A0 80 three, a 3-byte sequence cut after 2 bytes one;
 *  - an escaped surrogate that is not half of a pair (\ud800 not followed by
 *    a low-surrogate escape, or a lone \udc00): one U+FFFD per escape; a pair
 *    becomes its 4-byte character;
 *  - \u0000: one U+FFFD (a C string cannot hold NUL; cJSON cuts there).
 * So one bad tag value never fails a page and never reaches the state file,
 * logs or labels as broken UTF-8. Text that is not JSON is still rejected:
 * unknown escapes (\x), \u without four hex digits, unescaped control
 * characters, unterminated strings. A lone surrogate escape is valid JSON
 * (RFC 8259 section 8.2), which cJSON rejects and the tape accepts. Strings
 * of valid UTF-8 without escapes (nearly all of a Cost Explorer page) are one
 * memcpy; a replacement can make a string longer (a raw byte becomes three),
 * at most 3 times its length in the text.
 */
#ifndef BCE_JSONTAPE_H
#define BCE_JSONTAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONTAPE_MAX_DEPTH 1000

enum jt_type { JT_NULL, JT_FALSE, JT_TRUE, JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT };

struct jt_tok {
	uint32_t start, len; /* span in the text; a string's excludes the quotes */
	uint32_t next;       /* index of the token after this value (and its children) */
	uint16_t type;       /* enum jt_type */
	uint8_t escaped;     /* string: contains a backslash escape */
	uint8_t bad_utf8;    /* string: contains raw bytes that are not UTF-8 */
};

struct jsontape {
	const char *text;    /* borrowed: must outlive the tape */
	struct jt_tok *t;
	size_t n, cap;
};

/*
 * Parses @len bytes of @text into @tape (which borrows @text). Returns 0, or
 * -EPROTO for text that is not one JSON value (or over 4 GiB); then the tape
 * holds nothing. Free with jsontape_free() either way.
 */
int jsontape_parse(struct jsontape *tape, const char *text, size_t len);
void jsontape_free(struct jsontape *tape);

/* Type tests on token @i; false for the out-of-range index JT_NONE. */
#define JT_NONE ((size_t)-1)
bool jt_is(const struct jsontape *tape, size_t i, enum jt_type type);

/* For object @obj: the value token of the first member named @key, or JT_NONE. */
size_t jt_get(const struct jsontape *tape, size_t obj, const char *key);

/* Children of array @arr: jt_first() then jt_next() until JT_NONE. Members of an
 * object: jt_first() gives the first key; its value is key + 1. */
size_t jt_first(const struct jsontape *tape, size_t container);
size_t jt_next(const struct jsontape *tape, size_t container, size_t child);
/* Number of elements of an array (members of an object). O(n). */
size_t jt_count(const struct jsontape *tape, size_t container);

/*
 * Copies string token @i, unescaped (\uXXXX as UTF-8) and made valid UTF-8 as
 * above, NUL-terminated into @out of @outlen bytes. Returns its length in
 * bytes (never holding a NUL), or -1 if it and its NUL do not fit or @i is not
 * a string (then @out is untouched). The length may exceed the token's span
 * (up to 3 times): size @out for the result, not for the text.
 */
long jt_str(const struct jsontape *tape, size_t i, char *out, size_t outlen);
/* As jt_str into a new string of the exact size (caller frees); NULL if @i is
 * not a string. */
char *jt_strdup(const struct jsontape *tape, size_t i);
/* Reads number token @i with strtod(). Returns 0, or -1 if @i is not a number. */
int jt_number(const struct jsontape *tape, size_t i, double *out);
/* Is string token @i equal to @s, as jt_strdup() would copy it (so @s that is
 * not valid UTF-8 never matches)? */
bool jt_str_eq(const struct jsontape *tape, size_t i, const char *s);

#endif
