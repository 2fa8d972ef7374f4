/*
 * jsonw.c - see jsonw.h.
 */
#include "base/jsonw.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/numfmt.h"

void jsonw_init(struct jsonw *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	buf_init(&w->b, max);
	w->first[0] = true;
}

void jsonw_free(struct jsonw *w)
{
	buf_free(&w->b);
}

char *jsonw_steal(struct jsonw *w, size_t *len)
{
	if (w->err || w->depth) {
		buf_free(&w->b);
		return NULL;
	}
	return buf_steal(&w->b, len);
}

/* Room for @n more bytes at the end, or NULL after a failure. */
static char *room(struct jsonw *w, size_t n)
{
	if (w->err)
		return NULL;
	if (buf_reserve(&w->b, n)) {
		w->err = -EFBIG;
		return NULL;
	}
	return w->b.data + w->b.len;
}

static void advance(struct jsonw *w, char *end)
{
	w->b.len = (size_t)(end - w->b.data);
	*end = '\0';
}

static void invalid(struct jsonw *w)
{
	if (!w->err)
		w->err = -EINVAL;
}

/* The separator a new value (or key) needs at the current depth. */
static void separate(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (!w->first[w->depth]) {
		char *o = room(w, 1);
		if (o) {
			*o = ',';
			advance(w, o + 1);
		}
	}
	w->first[w->depth] = false;
}

static void raw(struct jsonw *w, const char *s, size_t n)
{
	char *o = room(w, n);
	if (o) {
		memcpy(o, s, n);
		advance(w, o + n);
	}
}

/* Before a value: inside an object it must follow its key. */
static void value_begins(struct jsonw *w)
{
	if (w->object[w->depth] && !w->after_key)
		invalid(w); /* a value in an object without a key */
	separate(w);
}

static void open_container(struct jsonw *w, char c)
{
	value_begins(w);
	if (w->depth >= JSONW_MAX_DEPTH) {
		invalid(w);
		return;
	}
	raw(w, &c, 1);
	w->first[++w->depth] = true;
	w->object[w->depth] = c == '{';
}

static void close_container(struct jsonw *w, char c)
{
	/* nothing open, the other bracket, or a key without its value */
	if (w->depth <= 0 || w->object[w->depth] != (c == '}') || w->after_key) {
		invalid(w);
		return;
	}
	w->depth--;
	raw(w, &c, 1);
}

void jsonw_object_begin(struct jsonw *w)
{
	open_container(w, '{');
}

void jsonw_object_end(struct jsonw *w)
{
	close_container(w, '}');
}

void jsonw_array_begin(struct jsonw *w)
{
	open_container(w, '[');
}

void jsonw_array_end(struct jsonw *w)
{
	close_container(w, ']');
}

/* The escaped string with its quotes. */
static void put_string(struct jsonw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (!s)
		s = "";
	size_t n = strlen(s);
	if (n > (SIZE_MAX - 2) / 6) {
		w->err = w->err ? w->err : -EFBIG;
		return;
	}
	char *o = room(w, 6 * n + 2); /* worst case: every byte as \u00xx */
	if (!o)
		return;
	*o++ = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	advance(w, o);
}

void jsonw_key(struct jsonw *w, const char *key)
{
	if (w->after_key || !w->object[w->depth])
		invalid(w); /* the previous key has no value, or this is not an object */
	separate(w);
	put_string(w, key);
	raw(w, ":", 1);
	w->after_key = true;
}

void jsonw_string(struct jsonw *w, const char *s)
{
	value_begins(w);
	put_string(w, s);
}

void jsonw_number(struct jsonw *w, double v)
{
	value_begins(w);
	char *o = room(w, 32);
	if (!o)
		return;
	size_t n = numfmt_exact(v, o);
	if (!n) {
		w->err = -EDOM;
		return;
	}
	advance(w, o + n);
}

void jsonw_int(struct jsonw *w, long long v)
{
	value_begins(w);
	char *o = room(w, 21);
	if (!o)
		return;
	if (v < 0)
		*o++ = '-';
	advance(w, numfmt_u64(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v));
}

void jsonw_bool(struct jsonw *w, bool v)
{
	value_begins(w);
	if (v)
		raw(w, "true", 4);
	else
		raw(w, "false", 5);
}
