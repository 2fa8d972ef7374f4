/*
 * jsontape.c - see jsontape.h. A recursive-descent validator that records a
 * token per value; recursion is bounded by JSONTAPE_MAX_DEPTH.
 */
#include "base/jsontape.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

struct parser {
	const unsigned char *s;
	size_t i, len;
	struct jsontape *tp;
	int depth;
};

/*
 * Bytes that end the fast scan of a string: the quote, the backslash, controls,
 * and every byte of a multibyte UTF-8 sequence (checked where it stands).
 */
#define STOP16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char string_stop[256] = {
	[0x00] = STOP16, STOP16, /* 0x00-0x1f: controls */
	['"'] = 1, ['\\'] = 1,
	[0x80] = STOP16, STOP16, STOP16, STOP16, STOP16, STOP16, STOP16, STOP16,
};

/*
 * Does any byte of @w stop the scan? The classic bit tricks (exact as a yes/no
 * for the whole word): a byte equal to c is a zero byte of w ^ (c * ONES),
 * "has a byte below n" for n <= 128 is (w - n * ONES) & ~w & HIGHS, and a
 * byte from 0x80 up has its high bit set in w itself.
 */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline bool word_has_stop(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
	return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w) | w) & HIGHS;
}

/*
 * At a byte from 0x80 up, with @n >= 1 bytes left: the length of the
 * well-formed UTF-8 sequence there (2-4 bytes; Unicode Table 3-7, which
 * excludes overlongs, encoded surrogates and code points above U+10FFFF), or
 * minus the length of its maximal subpart (1-3 bytes: the longest start of a
 * well-formed sequence), which is the unit that one U+FFFD replaces.
 */
static int utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF; /* the range of the second byte */
	size_t len;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong below U+0800 */
		else if (c == 0xED)
			hi = 0x9F; /* U+D800-U+DFFF */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else {
		return -1; /* a continuation byte, C0, C1 or F5-FF: never starts a character */
	}
	if (n < 2 || s[1] < lo || s[1] > hi)
		return -1;
	for (size_t k = 2; k < len; k++)
		if (k >= n || (s[k] & 0xC0) != 0x80)
			return -(int)k;
	return (int)len;
}

static size_t push(struct parser *p, enum jt_type type, size_t start)
{
	struct jsontape *tp = p->tp;
	if (tp->n == tp->cap) {
		/* Cost Explorer pages hold about one token per 11 bytes: one growth at most */
		tp->cap = tp->cap ? 2 * tp->cap : 64 + p->len / 10;
		tp->t = xrealloc(tp->t, tp->cap * sizeof(*tp->t));
	}
	tp->t[tp->n] = (struct jt_tok){ (uint32_t)start, 0, (uint32_t)(tp->n + 1), (uint16_t)type, 0, 0 };
	return tp->n++;
}

static void ws(struct parser *p)
{
	size_t i = p->i;
	while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t' || p->s[i] == '\n' || p->s[i] == '\r'))
		i++;
	p->i = i;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the 4 hex digits at @s (bounds checked by the caller). -1 if not hex. */
static long hex4(const unsigned char *s)
{
	long v = 0;
	for (int k = 0; k < 4; k++) {
		int h = hexval(s[k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/*
 * At the opening quote. Validates the string: escapes must be JSON's (a \u
 * with four hex digits; a surrogate escape need not be half of a pair, RFC
 * 8259 section 8.2), control characters must be escaped. Raw bytes that are not
 * UTF-8 are allowed (they become U+FFFD when copied out) and marked on the token.
 */
static int string(struct parser *p)
{
	size_t tok = push(p, JT_STRING, ++p->i);
	bool esc = false, bad = false;
	size_t i = p->i, end = p->len; /* locals: the scan runs in registers */
	const unsigned char *s = p->s;
	while (i < end) {
		/* eight bytes at a time while none of them stops the scan */
		while (end - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (word_has_stop(w))
				break;
			i += 8;
		}
		while (i < end && !string_stop[s[i]])
			i++;
		if (i >= end)
			break;
		unsigned char c = s[i];
		if (c >= 0x80) {
			int n = utf8_seq(s + i, end - i);
			bad |= n < 0;
			i += (size_t)(n < 0 ? -n : n);
			continue;
		}
		if (c == '"') {
			p->tp->t[tok].len = (uint32_t)(i - p->tp->t[tok].start);
			p->tp->t[tok].escaped = esc;
			p->tp->t[tok].bad_utf8 = bad;
			p->i = i + 1;
			return 0;
		}
		if (c < 0x20)
			return -EPROTO;
		esc = true; /* at a backslash */
		if (i + 1 >= end)
			return -EPROTO;
		c = s[i + 1];
		if (c == 'u') {
			if (end - i < 6 || hex4(s + i + 2) < 0)
				return -EPROTO;
			i += 6;
		} else if (c != '\0' && strchr("\"\\/bfnrt", c)) {
			i += 2;
		} else {
			return -EPROTO;
		}
	}
	return -EPROTO;
}

static bool digit(const struct parser *p)
{
	return p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

static int number(struct parser *p)
{
	size_t start = p->i, tok = push(p, JT_NUMBER, start);
	if (p->s[p->i] == '-')
		p->i++;
	if (!digit(p))
		return -EPROTO;
	if (p->s[p->i] == '0')
		p->i++;
	else
		while (digit(p))
			p->i++;
	if (p->i < p->len && p->s[p->i] == '.') {
		p->i++;
		if (!digit(p))
			return -EPROTO;
		while (digit(p))
			p->i++;
	}
	if (p->i < p->len && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->len && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!digit(p))
			return -EPROTO;
		while (digit(p))
			p->i++;
	}
	p->tp->t[tok].len = (uint32_t)(p->i - start);
	return 0;
}

static int literal(struct parser *p, const char *word, enum jt_type type)
{
	size_t n = strlen(word);
	if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0)
		return -EPROTO;
	size_t tok = push(p, type, p->i);
	p->tp->t[tok].len = (uint32_t)n;
	p->i += n;
	return 0;
}

static int value(struct parser *p);

/* At '[' or '{'. */
static int container(struct parser *p, bool object)
{
	if (++p->depth > JSONTAPE_MAX_DEPTH)
		return -EPROTO;
	size_t tok = push(p, object ? JT_OBJECT : JT_ARRAY, p->i);
	char close = object ? '}' : ']';
	p->i++;
	ws(p);
	if (p->i < p->len && p->s[p->i] == close) {
		p->i++;
	} else {
		for (;;) {
			if (object) {
				if (p->i >= p->len || p->s[p->i] != '"' || string(p))
					return -EPROTO;
				ws(p);
				if (p->i >= p->len || p->s[p->i] != ':')
					return -EPROTO;
				p->i++;
				ws(p);
			}
			if (value(p))
				return -EPROTO;
			ws(p);
			if (p->i >= p->len)
				return -EPROTO;
			char c = (char)p->s[p->i++];
			if (c == close)
				break;
			if (c != ',')
				return -EPROTO;
			ws(p);
		}
	}
	p->tp->t[tok].len = (uint32_t)(p->i - p->tp->t[tok].start);
	p->tp->t[tok].next = (uint32_t)p->tp->n;
	p->depth--;
	return 0;
}

static int value(struct parser *p)
{
	if (p->i >= p->len)
		return -EPROTO;
	switch (p->s[p->i]) {
	case '{':
		return container(p, true);
	case '[':
		return container(p, false);
	case '"':
		return string(p);
	case 't':
		return literal(p, "true", JT_TRUE);
	case 'f':
		return literal(p, "false", JT_FALSE);
	case 'n':
		return literal(p, "null", JT_NULL);
	default:
		return number(p);
	}
}

int jsontape_parse(struct jsontape *tape, const char *text, size_t len)
{
	memset(tape, 0, sizeof(*tape));
	tape->text = text;
	if (len >= UINT32_MAX)
		return -EPROTO;
	struct parser p = { (const unsigned char *)text, 0, len, tape, 0 };
	ws(&p);
	int rc = value(&p);
	ws(&p);
	if (rc || p.i != len) {
		jsontape_free(tape);
		tape->text = text;
		return -EPROTO;
	}
	return 0;
}

void jsontape_free(struct jsontape *tape)
{
	free(tape->t);
	tape->t = NULL;
	tape->n = tape->cap = 0;
}

bool jt_is(const struct jsontape *tape, size_t i, enum jt_type type)
{
	return i < tape->n && tape->t[i].type == type;
}

size_t jt_first(const struct jsontape *tape, size_t c)
{
	if (!jt_is(tape, c, JT_ARRAY) && !jt_is(tape, c, JT_OBJECT))
		return JT_NONE;
	return c + 1 < tape->t[c].next ? c + 1 : JT_NONE;
}

size_t jt_next(const struct jsontape *tape, size_t c, size_t child)
{
	if (child == JT_NONE || child >= tape->n)
		return JT_NONE;
	/* an object member is a key token followed by its value */
	size_t after = tape->t[c].type == JT_OBJECT ? tape->t[child + 1].next : tape->t[child].next;
	return after < tape->t[c].next ? after : JT_NONE;
}

size_t jt_count(const struct jsontape *tape, size_t c)
{
	size_t n = 0;
	for (size_t i = jt_first(tape, c); i != JT_NONE; i = jt_next(tape, c, i))
		n++;
	return n;
}

/* Writes code point @cp as UTF-8 at @out, unless @out is NULL. Returns its length. */
static size_t put_utf8(char *out, unsigned long cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (out)
		memcpy(out, u, n);
	return n;
}

#define REPLACEMENT 0xFFFDul

/*
 * Copies a validated string span into @out as valid UTF-8 (see jsontape.h):
 * escapes decoded, a pair of surrogate escapes joined, and U+FFFD for a lone
 * surrogate escape, for \u0000 and for each maximal subpart of raw bytes that
 * are not UTF-8. With @out NULL it only counts. Returns the length, which is
 * at most 3 * @len (a raw invalid byte becomes 3 bytes; every escape
 * shrinks); @out gets no terminating NUL.
 */
static size_t decode(const unsigned char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c >= 0x80) {
			int n = utf8_seq(s + i, len - i);
			if (n > 0) {
				if (out)
					memcpy(out + o, s + i, (size_t)n);
				o += (size_t)n;
				i += (size_t)n;
			} else {
				o += put_utf8(out ? out + o : NULL, REPLACEMENT);
				i += (size_t)-n;
			}
			continue;
		}
		i++;
		if (c == '\\') {
			c = s[i];
			i++;
			switch (c) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned long cp = (unsigned long)hex4(s + i);
				i += 4;
				if (cp >= 0xD800 && cp <= 0xDBFF && len - i >= 6 && s[i] == '\\' &&
				    s[i + 1] == 'u') {
					unsigned long lo = (unsigned long)hex4(s + i + 2);
					if (lo >= 0xDC00 && lo <= 0xDFFF) {
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						i += 6;
					}
				}
				if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
					cp = REPLACEMENT; /* \u0000, or half a pair */
				o += put_utf8(out ? out + o : NULL, cp);
				continue;
			}
			default: break; /* " \ / */
			}
		}
		if (out)
			out[o] = (char)c;
		o++;
	}
	return o;
}

/* Can string token @t be copied as it stands (valid UTF-8, no escape)? */
static bool verbatim(const struct jt_tok *t)
{
	return !t->escaped && !t->bad_utf8;
}

long jt_str(const struct jsontape *tape, size_t i, char *out, size_t outlen)
{
	if (!jt_is(tape, i, JT_STRING) || outlen == 0)
		return -1;
	const struct jt_tok *t = &tape->t[i];
	const unsigned char *s = (const unsigned char *)tape->text + t->start;
	size_t n;
	if (verbatim(t)) {
		n = t->len;
		if (n >= outlen)
			return -1;
		memcpy(out, s, n);
	} else if (t->len <= (outlen - 1) / 3) { /* even the longest result fits */
		n = decode(s, t->len, out);
	} else {
		n = decode(s, t->len, NULL);
		if (n >= outlen)
			return -1;
		decode(s, t->len, out);
	}
	out[n] = '\0';
	return (long)n;
}

char *jt_strdup(const struct jsontape *tape, size_t i)
{
	if (!jt_is(tape, i, JT_STRING))
		return NULL;
	const struct jt_tok *t = &tape->t[i];
	const unsigned char *s = (const unsigned char *)tape->text + t->start;
	size_t n = verbatim(t) ? t->len : decode(s, t->len, NULL);
	char *out = xmalloc(n + 1);
	if (verbatim(t))
		memcpy(out, s, n);
	else
		decode(s, t->len, out);
	out[n] = '\0';
	return out;
}

int jt_number(const struct jsontape *tape, size_t i, double *out)
{
	if (!jt_is(tape, i, JT_NUMBER))
		return -1;
	size_t n = tape->t[i].len;
	char small[64], *s = n < sizeof(small) ? small : xmalloc(n + 1);
	memcpy(s, tape->text + tape->t[i].start, n);
	s[n] = '\0';
	*out = strtod(s, NULL);
	if (s != small)
		free(s);
	return 0;
}

bool jt_str_eq(const struct jsontape *tape, size_t i, const char *s)
{
	if (!jt_is(tape, i, JT_STRING))
		return false;
	const struct jt_tok *t = &tape->t[i];
	const unsigned char *text = (const unsigned char *)tape->text + t->start;
	size_t n = strlen(s);
	if (verbatim(t))
		return t->len == n && memcmp(text, s, n) == 0;
	if (n > 3 * (size_t)t->len || decode(text, t->len, NULL) != n)
		return false;
	char small[256], *tmp = n < sizeof(small) ? small : xmalloc(n);
	decode(text, t->len, tmp);
	bool eq = memcmp(tmp, s, n) == 0;
	if (tmp != small)
		free(tmp);
	return eq;
}

size_t jt_get(const struct jsontape *tape, size_t obj, const char *key)
{
	if (!jt_is(tape, obj, JT_OBJECT))
		return JT_NONE;
	for (size_t k = jt_first(tape, obj); k != JT_NONE; k = jt_next(tape, obj, k))
		if (jt_str_eq(tape, k, key))
			return k + 1;
	return JT_NONE;
}
