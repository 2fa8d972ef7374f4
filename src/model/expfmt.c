/*
 * expfmt.c - see expfmt.h.
 */
#include "model/expfmt.h"

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

