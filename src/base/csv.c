/*
 * csv.c - see csv.h.
 */
#include "base/csv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

const struct csv_limits CSV_DEFAULT_LIMITS = {
	.max_field = 256 * 1024,
	.max_record = 1024 * 1024,
	.max_fields = 4096,
};

enum state {
	S_START,  /* at the start of a field */
	S_PLAIN,  /* in an unquoted field */
	S_QUOTED, /* in a quoted field */
	S_QUOTE,  /* a '"' in a quoted field: the end of it, or the first of "" */
	S_CR,     /* a CR outside quotes: LF must follow */
	S_FAILED, /* refused; nothing more is read */
};

struct csv {
	struct csv_limits lim;
	csv_record_fn fn;
	void *arg;
	enum state st;
	char *buf; /* the record's fields, each followed by a NUL */
	size_t len, cap;
	size_t field_start;     /* offset of the current field in buf */
	bool quoted;            /* the current field was quoted (so it is there, even empty) */
	size_t *starts, *lens;  /* per finished field */
	char **ptrs;            /* built for the callback */
	size_t nf, capf;
	unsigned long long records, line, record_line;
	int failed_rc;
};

struct csv *csv_new(const struct csv_limits *limits, csv_record_fn fn, void *arg)
{
	struct csv *p = xcalloc(1, sizeof(*p));
	p->lim = limits ? *limits : CSV_DEFAULT_LIMITS;
	p->fn = fn;
	p->arg = arg;
	p->line = 1;
	p->record_line = 1;
	return p;
}

void csv_free(struct csv *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->starts);
	free(p->lens);
	free(p->ptrs);
	free(p);
}

static int refuse(struct csv *p, int rc, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "CSV record %llu (line %llu): %s", p->records + 1, p->record_line,
		 what);
	p->st = S_FAILED;
	p->failed_rc = rc;
	return rc;
}

/* Appends @n bytes to the current field, within the limits. */
static int put(struct csv *p, const char *s, size_t n, char *err, size_t errlen)
{
	if (p->len - p->field_start + n > p->lim.max_field) {
		char what[96];
		snprintf(what, sizeof(what), "a field longer than %zu bytes", p->lim.max_field);
		return refuse(p, -EMSGSIZE, err, errlen, what);
	}
	if (p->len - p->nf + n > p->lim.max_record) { /* the fields' bytes, without their NULs */
		char what[96];
		snprintf(what, sizeof(what), "a record longer than %zu bytes", p->lim.max_record);
		return refuse(p, -EMSGSIZE, err, errlen, what);
	}
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 4096;
		while (cap < p->len + n + 1)
			cap *= 2;
		p->buf = xrealloc(p->buf, cap);
		p->cap = cap;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	return 0;
}

/* Ends the current field. */
static int end_field(struct csv *p, char *err, size_t errlen)
{
	if (p->nf == p->lim.max_fields) {
		char what[96];
		snprintf(what, sizeof(what), "more than %zu fields", p->lim.max_fields);
		return refuse(p, -E2BIG, err, errlen, what);
	}
	if (p->nf == p->capf) {
		p->capf = p->capf ? 2 * p->capf : 64;
		p->starts = xrealloc(p->starts, p->capf * sizeof(*p->starts));
		p->lens = xrealloc(p->lens, p->capf * sizeof(*p->lens));
		p->ptrs = xrealloc(p->ptrs, p->capf * sizeof(*p->ptrs));
	}
	int rc = put(p, "", 0, err, errlen); /* room for the NUL */
	if (rc)
		return rc;
	p->starts[p->nf] = p->field_start;
	p->lens[p->nf] = p->len - p->field_start;
	p->nf++;
	p->buf[p->len++] = '\0';
	p->field_start = p->len;
	p->quoted = false;
	return 0;
}

/* Ends the record (its last field already ended) and hands it over. */
static int end_record(struct csv *p)
{
	for (size_t i = 0; i < p->nf; i++)
		p->ptrs[i] = p->buf + p->starts[i];
	p->records++;
	struct csv_record r = { .n = p->nf, .field = p->ptrs, .len = p->lens,
				.number = p->records, .line = p->record_line };
	int rc = p->fn ? p->fn(p->arg, &r) : 0;
	p->nf = 0;
	p->len = p->field_start = 0;
	p->record_line = p->line;
	if (rc) {
		p->st = S_FAILED;
		p->failed_rc = rc;
	}
	return rc;
}

/* A separator outside quotes: ',' ends the field, '\n' the record (an empty line, with
 * nothing in it and no quotes, is skipped). */
static int separator(struct csv *p, char c, char *err, size_t errlen)
{
	p->st = S_START;
	if (c == ',')
		return end_field(p, err, errlen);
	p->line++;
	if (p->nf == 0 && p->len == 0 && !p->quoted) {
		p->record_line = p->line;
		return 0;
	}
	int rc = end_field(p, err, errlen);
	return rc ? rc : end_record(p);
}

/* The length of the run of @s that is plain field text (no separator, CR or quote). */
static size_t plain_run(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r' && s[i] != '"')
		i++;
	return i;
}

int csv_feed(struct csv *p, const char *data, size_t len, char *err, size_t errlen)
{
	if (p->st == S_FAILED) {
		snprintf(err, errlen, "CSV: reading stopped at an earlier error");
		return p->failed_rc;
	}
	size_t i = 0;
	int rc = 0;
	while (i < len && !rc) {
		char c = data[i];
		switch (p->st) {
		case S_START:
			if (c == '"') {
				p->quoted = true;
				p->st = S_QUOTED;
				i++;
				break;
			}
			p->st = S_PLAIN; /* the byte is read there */
			break;
		case S_PLAIN: {
			size_t run = plain_run(data + i, len - i);
			if (run) {
				rc = put(p, data + i, run, err, errlen);
				i += run;
			} else if (c == '"') {
				rc = refuse(p, -EPROTO, err, errlen, "a '\"' inside an unquoted field");
			} else {
				i++;
				rc = c == '\r' ? (p->st = S_CR, 0) : separator(p, c, err, errlen);
			}
			break;
		}
		case S_QUOTED: {
			const char *q = memchr(data + i, '"', len - i);
			size_t run = q ? (size_t)(q - (data + i)) : len - i;
			const char *end = data + i + run;
			for (const char *nl = data + i; (nl = memchr(nl, '\n', (size_t)(end - nl))); nl++)
				p->line++;
			rc = put(p, data + i, run, err, errlen);
			i += run;
			if (q && !rc) {
				i++;
				p->st = S_QUOTE;
			}
			break;
		}
		case S_QUOTE:
			if (c == '"') { /* "" is one quote */
				rc = put(p, "\"", 1, err, errlen);
				p->st = S_QUOTED;
				i++;
			} else if (c == ',' || c == '\n' || c == '\r') {
				i++;
				rc = c == '\r' ? (p->st = S_CR, 0) : separator(p, c, err, errlen);
			} else {
				rc = refuse(p, -EPROTO, err, errlen,
					  "a character after the closing quote of a field");
			}
			break;
		case S_CR:
			if (c == '\n') {
				i++;
				rc = separator(p, c, err, errlen);
			} else {
				rc = refuse(p, -EPROTO, err, errlen, "a CR not followed by LF");
			}
			break;
		case S_FAILED:
			return p->failed_rc;
		}
	}
	return rc;
}

int csv_finish(struct csv *p, char *err, size_t errlen)
{
	switch (p->st) {
	case S_FAILED:
		snprintf(err, errlen, "CSV: reading stopped at an earlier error");
		return p->failed_rc;
	case S_QUOTED:
		return refuse(p, -EPROTO, err, errlen, "a quoted field still open at the end of the input");
	case S_START:
		if (p->nf == 0 && !p->quoted)
			return 0; /* ended with a newline (or nothing at all) */
		break;
	case S_PLAIN:
	case S_QUOTE:
	case S_CR: /* a last CR without its LF ends the record all the same */
		break;
	}
	p->line--; /* separator() counts the newline the input does not have */
	return separator(p, '\n', err, errlen);
}
