/*
 * libFuzzer target: label values round-trip through the exposition writer.
 * The input is split into a project name and a tag value; both are rendered
 * by the registry, then read back by the small, independent text-format
 * parser below (not the exporter's code). Valid UTF-8 up to the cap must come
 * back byte for byte; anything else must come back as valid UTF-8. The output
 * must always be well-formed: one sample line, HELP/TYPE first.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/expfmt.h"
#include "model/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct metric_def m = { "fuzz_metric", METRIC_GAUGE, "help" };

/* Reads one quoted label value at *p (after the opening quote); returns a new string. */
static char *unquote(const char **p)
{
	size_t cap = strlen(*p) + 1, n = 0;
	char *out = malloc(cap);
	const char *s = *p;
	for (;;) {
		char c = *s++;
		if (c == '\0' || c == '\n')
			__builtin_trap(); /* unterminated: the line is broken */
		if (c == '"')
			break;
		if (c == '\\') {
			char e = *s++;
			if (e == 'n')
				c = '\n';
			else if (e == '\\' || e == '"')
				c = e;
			else
				__builtin_trap(); /* an escape the format does not have */
		}
		out[n++] = c;
	}
	out[n] = '\0';
	*p = s;
	return out;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned int c = *s, cp, len;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return 0;
		for (unsigned int i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += len;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *in = malloc(size + 1);
	memcpy(in, data, size);
	in[size] = '\0';
	/* split at the first NUL or the middle */
	size_t cut = strlen(in) < size ? strlen(in) : size / 2;
	char *a = strndup(in, cut);
	char *b = strdup(cut < size ? in + cut + (in[cut] == '\0') : "");
	const char *names[2] = { "project_name", "tag_value" };
	const char *values[2] = { a, b };
	struct reg *r = reg_new();
	reg_add(r, &m, 1.5, 2, names, values);
	struct buf out;
	buf_init(&out, 1 << 20);
	if (reg_render(r, &out, NULL))
		__builtin_trap();
	const char *want = "# HELP fuzz_metric help\n# TYPE fuzz_metric gauge\nfuzz_metric{project_name=\"";
	if (strncmp(out.data, want, strlen(want)) != 0)
		__builtin_trap();
	const char *p = out.data + strlen(want);
	char *got_a = unquote(&p);
	if (strncmp(p, ",tag_value=\"", 12) != 0)
		__builtin_trap();
	p += 12;
	char *got_b = unquote(&p);
	if (strcmp(p, "} 1.5\n") != 0)
		__builtin_trap();
	const char *orig[2] = { a, b };
	char *got[2] = { got_a, got_b };
	for (int i = 0; i < 2; i++) {
		if (!valid_utf8((const unsigned char *)got[i]))
			__builtin_trap();
		if (strlen(orig[i]) <= EXPFMT_MAX_LABEL_VALUE && valid_utf8((const unsigned char *)orig[i]) &&
		    strcmp(orig[i], got[i]) != 0)
			__builtin_trap();
	}
	free(got_a);
	free(got_b);
	buf_free(&out);
	reg_free(r);
	free(a);
	free(b);
	free(in);
	return 0;
}
