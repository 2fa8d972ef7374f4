/*
 * jsontape_cjson.h - test helper shared by tests/unit/test_jsontape.c and
 * tests/fuzz/fuzz_jsontape.c: does a tape token describe the same JSON value
 * as a cJSON item? Include after jsontape.h (or jsontape.c) and cJSON.h. Its
 * functions are static inline, so a test may include it for ref_utf8_fix() or
 * ref_utf8_valid() alone (test_jsonw.c does).
 *
 * cJSON reads strings differently from the tape (jsontape.h: strings come out
 * as valid UTF-8): it keeps raw bytes that are not UTF-8, ends a string at
 * \u0000 and rejects a document with a lone surrogate escape. So the
 * reference is cJSON plus the same rule, applied here independently of
 * jsontape.c: cjson_text() gives cJSON the document with every \u0000 and
 * lone surrogate escape spelt \ufffd (same length, same structure), and
 * same() replaces what cJSON kept of invalid UTF-8 with ref_utf8_fix() before
 * comparing. Both are written from the Unicode Standard's Table 3-7
 * (well-formed byte sequences) and section 3.9 (U+FFFD for each maximal
 * subpart), not from the tape's code.
 */
#ifndef BCE_TEST_JSONTAPE_CJSON_H
#define BCE_TEST_JSONTAPE_CJSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unicode Table 3-7: the well-formed UTF-8 byte sequences, as a byte range per position. */
static const struct {
	int len;
	unsigned char lo[4], hi[4];
} ref_utf8_rows[] = {
	{ 1, { 0x00 }, { 0x7F } },
	{ 2, { 0xC2, 0x80 }, { 0xDF, 0xBF } },
	{ 3, { 0xE0, 0xA0, 0x80 }, { 0xE0, 0xBF, 0xBF } },
	{ 3, { 0xE1, 0x80, 0x80 }, { 0xEC, 0xBF, 0xBF } },
	{ 3, { 0xED, 0x80, 0x80 }, { 0xED, 0x9F, 0xBF } },
	{ 3, { 0xEE, 0x80, 0x80 }, { 0xEF, 0xBF, 0xBF } },
	{ 4, { 0xF0, 0x90, 0x80, 0x80 }, { 0xF0, 0xBF, 0xBF, 0xBF } },
	{ 4, { 0xF1, 0x80, 0x80, 0x80 }, { 0xF3, 0xBF, 0xBF, 0xBF } },
	{ 4, { 0xF4, 0x80, 0x80, 0x80 }, { 0xF4, 0x8F, 0xBF, 0xBF } },
};

/*
 * At @s (@n >= 1 bytes): the length of the well-formed sequence there, or
 * minus the length of the longest prefix of one (at least 1: a byte that
 * starts none is its own maximal subpart).
 */
static inline int ref_utf8_at(const unsigned char *s, size_t n)
{
	int best = 1;
	for (size_t r = 0; r < sizeof(ref_utf8_rows) / sizeof(ref_utf8_rows[0]); r++) {
		int k = 0;
		while (k < ref_utf8_rows[r].len && (size_t)k < n && s[k] >= ref_utf8_rows[r].lo[k] &&
		       s[k] <= ref_utf8_rows[r].hi[k])
			k++;
		if (k == ref_utf8_rows[r].len)
			return k;
		if (k > best)
			best = k;
	}
	return -best;
}

/* Are the @n bytes at @s valid UTF-8 (no NUL either: the tape's strings never hold one)? */
static inline bool ref_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		int k = ref_utf8_at(u + i, n - i);
		if (k < 0 || u[i] == '\0')
			return false;
		i += (size_t)k;
	}
	return true;
}

/* @s with each maximal subpart of invalid UTF-8 replaced by U+FFFD (caller frees). */
static inline char *ref_utf8_fix(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(3 * n + 1);
	for (size_t i = 0; i < n;) {
		int k = ref_utf8_at((const unsigned char *)s + i, n - i);
		if (k > 0) {
			memcpy(out + o, s + i, (size_t)k);
			o += (size_t)k;
			i += (size_t)k;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i += (size_t)-k;
		}
	}
	out[o] = '\0';
	return out;
}

/* The value of the 4 hex digits at @s, or -1 (reads no further than a non-hex byte). */
static inline long ref_hex4(const char *s)
{
	long v = 0;
	for (int k = 0; k < 4; k++) {
		char c = s[k];
		int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/*
 * The @len bytes of @doc as text for cJSON (NUL-terminated, caller frees):
 * \u0000 and every surrogate escape that is not half of a pair become \ufffd.
 * Escapes are found left to right, two bytes at a backslash, so \\u0000 stays.
 */
static inline char *cjson_text(const char *doc, size_t len)
{
	char *t = malloc(len + 1);
	memcpy(t, doc, len);
	t[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (t[i] != '\\')
			continue;
		if (i + 6 > len || t[i + 1] != 'u' || ref_hex4(t + i + 2) < 0) {
			i++; /* skip the escaped byte; a bad escape stays for cJSON to reject */
			continue;
		}
		long u = ref_hex4(t + i + 2);
		if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && t[i + 6] == '\\' && t[i + 7] == 'u' &&
		    ref_hex4(t + i + 8) >= 0xDC00 && ref_hex4(t + i + 8) <= 0xDFFF) {
			i += 11; /* a pair */
			continue;
		}
		if (u == 0 || (u >= 0xD800 && u <= 0xDFFF))
			memcpy(t + i + 2, "fffd", 4);
		i += 5;
	}
	return t;
}

/*
 * Is string token @i the string @raw that cJSON read, after the rule? Checks
 * every way out of the tape: jt_strdup, jt_str at the exact size and one byte
 * short, jt_str_eq (which must also agree on @raw itself).
 */
static inline bool same_string(const struct jsontape *t, size_t i, const char *raw)
{
	char *want = ref_utf8_fix(raw), *s = jt_strdup(t, i);
	size_t n = strlen(want);
	char *buf = malloc(n + 1);
	bool eq = s && strcmp(s, want) == 0 && ref_utf8_valid(s, strlen(s)) &&
		  jt_str(t, i, buf, n + 1) == (long)n && memcmp(buf, want, n + 1) == 0 &&
		  jt_str(t, i, buf, n) == -1 && jt_str_eq(t, i, want) &&
		  jt_str_eq(t, i, raw) == (strcmp(raw, want) == 0);
	free(buf);
	free(s);
	free(want);
	return eq;
}

/* Does tape token @i describe the same value as cJSON item @j (read from cjson_text())? */
static inline bool same(const struct jsontape *t, size_t i, const cJSON *j)
{
	if (cJSON_IsNull(j))
		return jt_is(t, i, JT_NULL);
	if (cJSON_IsFalse(j))
		return jt_is(t, i, JT_FALSE);
	if (cJSON_IsTrue(j))
		return jt_is(t, i, JT_TRUE);
	if (cJSON_IsNumber(j)) {
		if (!jt_is(t, i, JT_NUMBER))
			return false;
		char num[400];
		snprintf(num, sizeof(num), "%.*s", (int)t->t[i].len, t->text + t->t[i].start);
		return strtod(num, NULL) == j->valuedouble;
	}
	if (cJSON_IsString(j))
		return jt_is(t, i, JT_STRING) && same_string(t, i, j->valuestring);
	bool obj = cJSON_IsObject(j);
	if (!jt_is(t, i, obj ? JT_OBJECT : JT_ARRAY) || jt_count(t, i) != (size_t)cJSON_GetArraySize(j))
		return false;
	const cJSON *c = j->child;
	for (size_t k = jt_first(t, i); k != JT_NONE; k = jt_next(t, i, k), c = c->next) {
		if (obj && (!same_string(t, k, c->string) || !same(t, k + 1, c)))
			return false;
		if (!obj && !same(t, k, c))
			return false;
	}
	return c == NULL;
}

#endif
