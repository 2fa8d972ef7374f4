/*
 * expfmt.c - see expfmt.h.
 */
#include "model/expfmt.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (colon && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

bool expfmt_valid_metric_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char(*p, p == s, true))
			return false;
	return true;
}

bool expfmt_valid_label_name(const char *s)
{
	if (!s || !*s || (s[0] == '_' && s[1] == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char(*p, p == s, false))
			return false;
	return true;
}

/*
 * Length of the valid UTF-8 sequence at @p (at most @n bytes), or 0 if the
 * bytes there are not valid UTF-8 (overlongs, surrogates, > U+10FFFF).
 */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t len;
	unsigned int cp;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1fu;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0fu;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	static const unsigned int min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int expfmt_put_label_value(struct buf *b, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v);
	if (n > EXPFMT_MAX_LABEL_VALUE)
		n = EXPFMT_MAX_LABEL_VALUE;
	size_t i = 0;
	int rc = 0;
	while (i < n && !rc) {
		const unsigned char *run = p + i;
		size_t runlen = 0;
		/* copy the longest run that needs no escaping in one append */
		while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '\\' && p[i] != '"') {
			i++;
			runlen++;
		}
		if (runlen) {
			rc = buf_append(b, run, runlen);
			continue;
		}
		if (p[i] == '\\') {
			rc = buf_puts(b, "\\\\");
			i++;
		} else if (p[i] == '"') {
			rc = buf_puts(b, "\\\"");
			i++;
		} else if (p[i] == '\n') {
			rc = buf_puts(b, "\\n");
			i++;
		} else if (p[i] < 0x80) {
			/* other control characters are legal in the format */
			rc = buf_putc(b, (char)p[i]);
			i++;
		} else {
			size_t len = utf8_len(p + i, n - i);
			if (len) {
				rc = buf_append(b, p + i, len);
				i += len;
			} else {
				/* invalid, or a character cut by the length cap */
				rc = buf_puts(b, "\xef\xbf\xbd");
				i++;
			}
		}
	}
	return rc;
}

int expfmt_put_help(struct buf *b, const char *s)
{
	int rc = 0;
	for (const char *p = s; *p && !rc; p++) {
		if (*p == '\\')
			rc = buf_puts(b, "\\\\");
		else if (*p == '\n')
			rc = buf_puts(b, "\\n");
		else
			rc = buf_putc(b, *p);
	}
	return rc;
}

char *expfmt_put_u64(char *o, uint64_t u)
{
	char tmp[20];
	size_t i = 0;
	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (i)
		*o++ = tmp[--i];
	return o;
}

/*
 * Why the text reads back as @a: n < 9e15 < 2^53 and 1e10 are exact doubles,
 * so n / 1e10 in double arithmetic is the double nearest to the real n / 10^10
 * (IEEE division rounds correctly), and strtod, also correctly rounded in the
 * same round-to-nearest-even mode, makes the same double of the text. Needs
 * double arithmetic without excess precision (FLT_EVAL_METHOD 0; an x87 double
 * rounding could break the argument), so elsewhere the function declines.
 */
char *expfmt_put_decimal10(char *o, double a)
{
#if FLT_EVAL_METHOD == 0
	if (!(a >= 0 && a < 9e5))
		return NULL;
	double scaled = a * 1e10;
	uint64_t n = (uint64_t)scaled;
	if (scaled - (double)n >= 0.5) /* exact: n <= scaled < n + 1 */
		n++;
	if ((double)n / 1e10 != a)
		return NULL;
	uint64_t frac = n % 10000000000u;
	o = expfmt_put_u64(o, n / 10000000000u);
	if (!frac)
		return o;
	int digits = 10;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	*o++ = '.';
	for (int i = digits - 1; i >= 0; i--) {
		o[i] = (char)('0' + frac % 10);
		frac /= 10;
	}
	return o + digits;
#else
	(void)o, (void)a;
	return NULL;
#endif
}

/*
 * Money values: metrics.c rounds amounts to 1e-10 USD. For 1e-4 <= |v| < 1e5
 * the 10-decimal text has at most 15 significant digits, and as v is its
 * nearest double, "%.15g" prints exactly that text (no exponent in this
 * range), so the fast path changes no output. Returns false when it does not
 * apply.
 */
static bool format_money(double v, char out[32])
{
	double a = fabs(v);
	if (!(a >= 1e-4 && a < 1e5))
		return false;
	char *o = out;
	if (v < 0)
		*o++ = '-';
	o = expfmt_put_decimal10(o, a);
	if (!o)
		return false;
	*o = '\0';
	return true;
}

char *expfmt_format_double(double v, char out[32])
{
	if (isnan(v)) {
		strcpy(out, "NaN");
	} else if (isinf(v)) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
	} else if (v == (double)(long long)v && v > -9007199254740992.0 && v < 9007199254740992.0) {
		/* integers (info values, counts, most timestamps): no printf, no strtod */
		char *o = out;
		if (v < 0 || signbit(v))
			*o++ = '-';
		o = expfmt_put_u64(o, (uint64_t)fabs(v));
		*o = '\0';
	} else if (!format_money(v, out)) {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, 32, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
	return out;
}

char *expfmt_tag_label_name(const char *key)
{
	size_t n = strlen(key);
	char *s = xmalloc(n + 5);
	memcpy(s, "tag_", 4);
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)key[i]);
		s[4 + i] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
	}
	s[4 + n] = '\0';
	return s;
}
