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

/* Bytes that end the fast scan of a string: the quote, the backslash, controls. */
static const unsigned char string_stop[256] = {
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
	[0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
	[0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
	[0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
	[0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};

/*
 * Does any byte of @w stop the scan? The classic bit tricks (exact as a yes/no
 * for the whole word): a byte equal to c is a zero byte of w ^ (c * ONES), and
 * "has a byte below n" for n <= 128 is (w - n * ONES) & ~w & HIGHS.
 */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline bool word_has_stop(uint64_t w)
{
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
	return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w)) & HIGHS;
}

static size_t push(struct parser *p, enum jt_type type, size_t start)
{
	struct jsontape *tp = p->tp;
	if (tp->n == tp->cap) {
		/* Cost Explorer pages hold about one token per 11 bytes: one growth at most */
		tp->cap = tp->cap ? 2 * tp->cap : 64 + p->len / 10;
		tp->t = xrealloc(tp->t, tp->cap * sizeof(*tp->t));
	}
	tp->t[tp->n] = (struct jt_tok){ (uint32_t)start, 0, (uint32_t)(tp->n + 1), (uint16_t)type, 0 };
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

/* At the opening quote. Validates the string, including escapes and surrogate pairs. */
static int string(struct parser *p)
{
	size_t tok = push(p, JT_STRING, ++p->i);
	bool esc = false;
	while (p->i < p->len) {
		size_t i = p->i, end = p->len; /* locals: the scan runs in registers */
		const unsigned char *s = p->s;
		/* eight bytes at a time while none of them is a quote, a backslash or a control */
		while (end - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, 8);
			if (word_has_stop(w))
				break;
			i += 8;
		}
		while (i < end && !string_stop[s[i]])
			i++;
		p->i = i;
		if (i >= end)
			break;
		unsigned char c = p->s[p->i];
		if (c == '"') {
			p->tp->t[tok].len = (uint32_t)(p->i - p->tp->t[tok].start);
			p->tp->t[tok].escaped = esc;
			p->i++;
			return 0;
		}
		if (c < 0x20)
			return -EPROTO;
		esc = true; /* at a backslash */
		if (p->i + 1 >= p->len)
			return -EPROTO;
		c = p->s[p->i + 1];
		if (c != 'u') {
			if (!strchr("\"\\/bfnrt", c) || c == '\0')
				return -EPROTO;
			p->i += 2;
			continue;
		}
		if (p->i + 6 > p->len)
			return -EPROTO;
		long u = hex4(p->s + p->i + 2);
		if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
			return -EPROTO; /* not hex, or a lone low surrogate */
		p->i += 6;
		if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate needs its low half */
			if (p->i + 6 > p->len || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
				return -EPROTO;
			long lo = hex4(p->s + p->i + 2);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return -EPROTO;
			p->i += 6;
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

static void put_utf8(char *out, size_t *o, unsigned long cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xC0 | (cp >> 6));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xE0 | (cp >> 12));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*o)++] = (char)(0xF0 | (cp >> 18));
		out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	}
}

/* Unescapes a validated string span into @out (room for len + 1 bytes: UTF-8
 * never takes more bytes than its escape). Returns the length, NUL-terminated. */
static size_t unescape(const unsigned char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		if (s[i] != '\\') {
			if (s[i] == '\0')
				break;
			out[o++] = (char)s[i++];
			continue;
		}
		unsigned char c = s[i + 1];
		i += 2;
		switch (c) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			unsigned long cp = (unsigned long)hex4(s + i);
			i += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned long lo = (unsigned long)hex4(s + i + 2);
				i += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			if (cp == 0) {
				out[o] = '\0';
				return o; /* as cJSON: a C string ends at NUL */
			}
			put_utf8(out, &o, cp);
			break;
		}
		default: out[o++] = (char)c; break; /* " \ / */
		}
	}
	out[o] = '\0';
	return o;
}

long jt_str(const struct jsontape *tape, size_t i, char *out, size_t outlen)
{
	if (!jt_is(tape, i, JT_STRING))
		return -1;
	const struct jt_tok *t = &tape->t[i];
	const unsigned char *s = (const unsigned char *)tape->text + t->start;
	if (!t->escaped) {
		const void *nul = memchr(s, '\0', t->len);
		size_t n = nul ? (size_t)((const unsigned char *)nul - s) : t->len;
		if (n + 1 > outlen)
			return -1;
		memcpy(out, s, n);
		out[n] = '\0';
		return (long)n;
	}
	if (t->len + 1 > outlen) { /* the unescaped text may still fit */
		char *tmp = xmalloc((size_t)t->len + 1);
		size_t n = unescape(s, t->len, tmp);
		long rc = -1;
		if (n + 1 <= outlen) {
			memcpy(out, tmp, n + 1);
			rc = (long)n;
		}
		free(tmp);
		return rc;
	}
	return (long)unescape(s, t->len, out);
}

char *jt_strdup(const struct jsontape *tape, size_t i)
{
	if (!jt_is(tape, i, JT_STRING))
		return NULL;
	char *out = xmalloc((size_t)tape->t[i].len + 1);
	jt_str(tape, i, out, (size_t)tape->t[i].len + 1);
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
	size_t n = strlen(s);
	if (!t->escaped)
		return t->len == n && memcmp(tape->text + t->start, s, n) == 0;
	if (n > t->len) /* unescaping never lengthens */
		return false;
	char small[256], *tmp = t->len < sizeof(small) ? small : xmalloc((size_t)t->len + 1);
	size_t m = unescape((const unsigned char *)tape->text + t->start, t->len, tmp);
	bool eq = m == n && memcmp(tmp, s, n) == 0;
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
