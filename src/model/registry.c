/*
 * registry.c - see registry.h.
 *
 * Each sample stores its label set pre-serialised ({a="x",b="y"}, already
 * escaped) in one arena, so rendering is a sort plus memcpy. Label sets
 * compare bytewise: within a family with fixed label names this orders
 * samples by their first label value, then the next.
 */
#include "model/registry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/numfmt.h"
#include "model/expfmt.h"

struct sample {
	const struct metric_def *def;
	size_t labels_off; /* into r->arena */
	size_t labels_len;
	double value;
};

struct reg {
	struct sample *samples;
	size_t n, cap;
	struct buf arena;
	bool overflow; /* a sample did not fit: the registry cannot be rendered whole */
};

/* Arena cap: comfortably above 10,000 projects with a wide taxonomy. */
#define REG_ARENA_MAX ((size_t)512 * 1024 * 1024)

struct reg *reg_new(void)
{
	struct reg *r = xcalloc(1, sizeof(*r));
	buf_init(&r->arena, REG_ARENA_MAX);
	return r;
}

void reg_free(struct reg *r)
{
	if (!r)
		return;
	free(r->samples);
	buf_free(&r->arena);
	free(r);
}

size_t reg_count(const struct reg *r)
{
	return r->n;
}

int reg_add(struct reg *r, const struct metric_def *def, double value, size_t n,
	    const char *const names[], const char *const values[])
{
	if (!expfmt_valid_metric_name(def->name)) {
		log_error("registry: invalid metric name, sample dropped", "metric", def->name);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!expfmt_valid_label_name(names[i])) {
			log_error("registry: invalid label name, sample dropped", "metric",
				  def->name, "label", names[i]);
			return -EINVAL;
		}
	}
	size_t off = r->arena.len;
	int rc = 0;
	if (n) {
		rc |= buf_putc(&r->arena, '{');
		for (size_t i = 0; i < n; i++) {
			if (i)
				rc |= buf_putc(&r->arena, ',');
			rc |= buf_puts(&r->arena, names[i]);
			rc |= buf_puts(&r->arena, "=\"");
			rc |= expfmt_put_label_value(&r->arena, values[i] ? values[i] : "");
			rc |= buf_putc(&r->arena, '"');
		}
		rc |= buf_putc(&r->arena, '}');
	}
	if (rc) {
		r->arena.len = off;
		if (!r->overflow)
			log_error("registry: exposition too large; it will not be rendered", "metric",
				  def->name);
		r->overflow = true;
		return -ENOSPC;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->samples = xrealloc(r->samples, r->cap * sizeof(*r->samples));
	}
	r->samples[r->n++] = (struct sample){ def, off, r->arena.len - off, value };
	return 0;
}

int reg_addv(struct reg *r, const struct metric_def *def, double value, ...)
{
	const char *names[8], *values[8];
	size_t n = 0;
	va_list ap;
	va_start(ap, value);
	for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
		const char *v = va_arg(ap, const char *);
		if (n < 8) {
			names[n] = k;
			values[n] = v;
		}
		n++;
	}
	va_end(ap);
	if (n > 8) {
		log_error("registry: too many inline labels", "metric", def->name);
		return -EINVAL;
	}
	return reg_add(r, def, value, n, names, values);
}

/* qsort has no context argument in C11; the arena is passed through this. */
static _Thread_local const char *sort_arena;

static int cmp_sample(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	if (x->def != y->def) {
		int c = strcmp(x->def->name, y->def->name);
		if (c)
			return c;
	}
	size_t n = x->labels_len < y->labels_len ? x->labels_len : y->labels_len;
	if (n) {
		int c = memcmp(sort_arena + x->labels_off, sort_arena + y->labels_off, n);
		if (c)
			return c;
	}
	return (x->labels_len > y->labels_len) - (x->labels_len < y->labels_len);
}

static bool same_series(const struct reg *r, const struct sample *a, const struct sample *b)
{
	return strcmp(a->def->name, b->def->name) == 0 && a->labels_len == b->labels_len &&
	       (a->labels_len == 0 || memcmp(r->arena.data + a->labels_off, r->arena.data + b->labels_off,
		      a->labels_len) == 0);
}

int reg_render(struct reg *r, struct buf *out, size_t *dropped)
{
	size_t drop = 0, start = out->len;
	if (r->overflow)
		return -ENOSPC;
	sort_arena = r->arena.data;
	if (r->n)
		qsort(r->samples, r->n, sizeof(*r->samples), cmp_sample);
	int rc = 0;
	const char *family = NULL;
	for (size_t i = 0; i < r->n && !rc; i++) {
		const struct sample *s = &r->samples[i];
		if (i && same_series(r, s, &r->samples[i - 1])) {
			if (drop++ == 0)
				log_error("registry: duplicate series dropped", "metric", s->def->name);
			continue;
		}
		if (!family || strcmp(family, s->def->name) != 0) {
			family = s->def->name;
			rc |= buf_puts(out, "# HELP ");
			rc |= buf_puts(out, family);
			rc |= buf_putc(out, ' ');
			rc |= expfmt_put_help(out, s->def->help);
			rc |= buf_puts(out, "\n# TYPE ");
			rc |= buf_puts(out, family);
			rc |= buf_puts(out, s->def->type == METRIC_COUNTER ? " counter\n" : " gauge\n");
		}
		char num[32];
		rc |= buf_puts(out, s->def->name);
		rc |= buf_append(out, r->arena.data + s->labels_off, s->labels_len);
		rc |= buf_putc(out, ' ');
		rc |= buf_puts(out, numfmt_double(s->value, num));
		rc |= buf_putc(out, '\n');
	}
	if (dropped)
		*dropped = drop;
	if (rc) { /* never half an exposition: give back what was appended */
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return -ENOSPC;
	}
	return 0;
}
