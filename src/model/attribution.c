/*
 * attribution.c - see attribution.h.
 *
 * Cost: linear in projects + groups. Each project's row and tag rows, and
 * each distinct combination of attribution-tag values (what it maps to), are
 * resolved once; a group then costs one hash lookup of its two borrowed key
 * strings and a few additions. No string is built or copied per group.
 */
#include "model/attribution.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/textmap.h"
#include "base/util.h"
#include "model/usage.h"

struct ctx {
	const struct attr_input *in;
	struct attribution *out;
	struct textmap *rows;   /* project_id -> row index + 1 */
	struct pairmap *tagrow; /* (key, value) -> tag index + 1 */
	size_t rows_cap, tags_cap, amb_cap;
	long win_start[WIN_COUNT], win_end[WIN_COUNT];
};

static size_t row_index(struct ctx *x, const char *id)
{
	uintptr_t i = (uintptr_t)textmap_get(x->rows, id, NULL);
	if (i)
		return i - 1;
	struct attribution *a = x->out;
	if (a->nrows == x->rows_cap) { /* grow geometrically: linear overall */
		x->rows_cap = x->rows_cap ? 2 * x->rows_cap : 64;
		a->rows = xrealloc(a->rows, x->rows_cap * sizeof(*a->rows));
	}
	memset(&a->rows[a->nrows], 0, sizeof(a->rows[0]));
	a->rows[a->nrows].project_id = xstrdup(id);
	textmap_put(x->rows, id, (void *)(uintptr_t)(a->nrows + 1));
	return a->nrows++;
}

/* @key and @value must outlive the computation (the map borrows them). */
static size_t tag_index(struct ctx *x, const char *key, const char *value)
{
	bool fresh;
	size_t *slot = pairmap_slot(x->tagrow, key, value, &fresh);
	if (fresh) {
		struct attribution *a = x->out;
		if (a->ntags == x->tags_cap) {
			x->tags_cap = x->tags_cap ? 2 * x->tags_cap : 64;
			a->tags = xrealloc(a->tags, x->tags_cap * sizeof(*a->tags));
		}
		memset(&a->tags[a->ntags], 0, sizeof(a->tags[0]));
		a->tags[a->ntags].key = xstrdup(key);
		a->tags[a->ntags].value = xstrdup(value);
		*slot = ++a->ntags;
	}
	return *slot - 1;
}

static void note_ambiguous(struct ctx *x, const char *a, const char *b, size_t nprojects)
{
	const struct textlist *keys = x->in->keys;
	struct attribution *out = x->out;
	if (out->nambiguous == x->amb_cap) {
		x->amb_cap = x->amb_cap ? 2 * x->amb_cap : 16;
		out->ambiguous = xrealloc(out->ambiguous, x->amb_cap * sizeof(*out->ambiguous));
	}
	char *v = keys->n == 2 ? xasprintf("%s=%s,%s=%s", keys->v[0], a, keys->v[1], b)
			       : xasprintf("%s=%s", keys->v[0], a);
	out->ambiguous[out->nambiguous++] = (struct attr_ambiguous){ v, nprojects };
}

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct attr_row *)a)->project_id, ((const struct attr_row *)b)->project_id);
}

static void compute_models(const struct ctx *x)
{
	const struct ce_series *s = x->in->models;
	struct attribution *a = x->out;
	if (!s)
		return;
	struct pairmap *idx = pairmap_new(0);
	size_t cap = 0;
	long ys = x->win_start[WIN_YESTERDAY], ms = x->win_start[WIN_MONTH_TO_DATE];
	long end = x->win_end[WIN_MONTH_TO_DATE];
	for (size_t d = 0; d < s->n; d++) {
		const struct ce_day *day = &s->days[d];
		bool in_y = day->day == ys, in_m = day->day >= ms && day->day < end;
		if (!in_y && !in_m)
			continue;
		for (size_t i = 0; i < day->n; i++) {
			const struct ce_group *g = &day->g[i];
			bool fresh;
			size_t *j = pairmap_slot(idx, g->k[0], g->k[1], &fresh);
			if (fresh) {
				if (a->nmodels == cap) {
					cap = cap ? 2 * cap : 64;
					a->models = xrealloc(a->models, cap * sizeof(*a->models));
				}
				struct model_row *m = &a->models[a->nmodels];
				memset(m, 0, sizeof(*m));
				m->service = xstrdup(g->k[0] ? g->k[0] : "");
				m->usage_type = xstrdup(g->k[1] ? g->k[1] : "");
				char model[512];
				usage_model(m->service, m->usage_type, model, sizeof(model));
				m->model = xstrdup(model);
				m->token_type = usage_token_type(m->usage_type);
				*j = ++a->nmodels;
			}
			if (in_y)
				a->models[*j - 1].yesterday += g->amount;
			if (in_m)
				a->models[*j - 1].month_to_date += g->amount;
		}
	}
	pairmap_free(idx);
}

/*
 * What one combination of attribution-tag values maps to, resolved once:
 * the project row and, per tag label, the tag row its spend counts under.
 */
struct combo {
	size_t count;   /* projects carrying it */
	size_t first;   /* the first of them (index into projects) */
	size_t row;     /* SIZE_MAX until resolved */
	size_t tag0;    /* its tag rows: tagrows[tag0 .. tag0 + nlabels) */
	bool noted;     /* listed as ambiguous */
};

struct combos {
	struct pairmap *map; /* (a, b) -> index + 1 */
	struct combo *v;
	size_t n, cap;
	size_t *tagrows;
	size_t ntagrows, tagrows_cap;
};

static size_t combo_add(struct combos *cs, size_t *slot)
{
	if (cs->n == cs->cap) {
		cs->cap = cs->cap ? 2 * cs->cap : 64;
		cs->v = xrealloc(cs->v, cs->cap * sizeof(*cs->v));
	}
	cs->v[cs->n] = (struct combo){ .first = SIZE_MAX, .row = SIZE_MAX };
	*slot = ++cs->n;
	return cs->n - 1;
}

/* Reserves @n tag-row slots; returns the first. */
static size_t tagrows_add(struct combos *cs, size_t n)
{
	if (cs->ntagrows + n > cs->tagrows_cap) {
		cs->tagrows_cap = 2 * (cs->ntagrows + n) + 64;
		cs->tagrows = xrealloc(cs->tagrows, cs->tagrows_cap * sizeof(*cs->tagrows));
	}
	cs->ntagrows += n;
	return cs->ntagrows - n;
}

/*
 * Resolves a combination no single project owns (untagged, unmatched,
 * ambiguous): its row is @row, and its tag rows come from the group's own
 * values for labels that are attribution keys, __untagged__ otherwise.
 */
static void resolve_unowned(struct ctx *x, struct combos *cs, size_t c, size_t row, const char *a,
			    const char *b)
{
	const struct textlist *keys = x->in->keys, *labels = x->in->tag_labels;
	size_t t0 = tagrows_add(cs, labels->n);
	for (size_t k = 0; k < labels->n; k++) {
		const char *v = NULL;
		for (size_t q = 0; q < keys->n; q++)
			if (strcmp(keys->v[q], labels->v[k]) == 0)
				v = q == 0 ? a : b;
		cs->tagrows[t0 + k] = tag_index(x, labels->v[k], v && *v ? v : ATTR_UNTAGGED);
	}
	cs->v[c].row = row;
	cs->v[c].tag0 = t0;
}

/* Resolves a combination exactly one project carries to that project's rows. */
static void resolve_owned(struct ctx *x, struct combos *cs, size_t c, const size_t *prow,
			  const size_t *ptag)
{
	size_t nl = x->in->tag_labels->n, p = cs->v[c].first;
	size_t t0 = tagrows_add(cs, nl);
	if (nl)
		memcpy(cs->tagrows + t0, ptag + p * nl, nl * sizeof(*ptag));
	/* "default" has no row of its own until spend reaches it */
	cs->v[c].row = prow[p] != SIZE_MAX ? prow[p] : row_index(x, x->in->projects[p]->id);
	cs->v[c].tag0 = t0;
}

void attribution_spend_all(struct attr_input *in, const struct ce_series *daily)
{
	for (int w = 0; w < WIN_COUNT; w++)
		in->spend[w] = daily;
}

/* Whether the final periods of @s inside [from, to) cover every day of it. */
static bool covered(const struct ce_series *s, long from, long to)
{
	long next = from;
	for (size_t d = 0; s && d < s->n && next < to; d++) {
		const struct ce_day *p = &s->days[d];
		if (p->day < from || ce_day_end(p) > to)
			continue;
		if (p->day != next || p->estimated)
			return false;
		next = ce_day_end(p);
	}
	return next >= to;
}

void attribution_compute(const struct attr_input *in, struct attribution *out)
{
	memset(out, 0, sizeof(*out));
	struct ctx x = { .in = in, .out = out, .rows = textmap_new(),
			 .tagrow = pairmap_new(in->nprojects) };
	for (int w = 0; w < WIN_COUNT; w++) {
		days_window((enum window)w, in->today, &x.win_start[w], &x.win_end[w]);
		if (in->from[w] || in->to[w]) {
			x.win_start[w] = in->from[w];
			x.win_end[w] = in->to[w];
		}
	}
	const struct textlist *keys = in->keys;
	const struct textlist *labels = in->tag_labels;
	size_t nl = labels->n;

	/* per project, once: its row and its tag rows; per combination: who carries it
	 * (a combination is resolved to rows when spend first reaches it) */
	struct combos cs = { .map = pairmap_new(in->nprojects) };
	size_t *prow = xcalloc(in->nprojects + 1, sizeof(*prow));
	size_t *ptag = xcalloc(in->nprojects * nl + 1, sizeof(*ptag));
	for (size_t i = 0; i < in->nprojects; i++) {
		const struct project *p = in->projects[i];
		const char *a = project_tag(p, keys->v[0]);
		const char *b = keys->n > 1 ? project_tag(p, keys->v[1]) : "";
		prow[i] = strcmp(p->id, "default") != 0 ? row_index(&x, p->id) : SIZE_MAX;
		for (size_t k = 0; k < nl; k++) {
			const char *v = project_tag(p, labels->v[k]);
			ptag[i * nl + k] = tag_index(&x, labels->v[k], v && *v ? v : ATTR_UNTAGGED);
		}
		if ((!a || !*a) && (!b || !*b))
			continue; /* cannot carry attributed spend */
		bool fresh;
		size_t *slot = pairmap_slot(cs.map, a, b, &fresh);
		size_t c = fresh ? combo_add(&cs, slot) : *slot - 1;
		if (cs.v[c].count++ == 0)
			cs.v[c].first = i;
	}
	size_t r_untagged = row_index(&x, ATTR_UNTAGGED);
	size_t r_unmatched = row_index(&x, ATTR_UNMATCHED);
	size_t r_ambiguous = row_index(&x, ATTR_AMBIGUOUS);
	for (size_t k = 0; k < nl; k++)
		tag_index(&x, labels->v[k], ATTR_UNTAGGED);
	for (int w = 0; w < WIN_COUNT; w++) {
		const struct ce_series *s = in->spend[w];
		out->present[w] = s != NULL;
		for (size_t d = 0; s && d < s->n; d++) {
			const struct ce_day *day = &s->days[d];
			if (day->day < x.win_start[w] || ce_day_end(day) > x.win_end[w])
				continue; /* not a period of this window */
			for (size_t i = 0; i < day->n; i++) {
				const struct ce_group *g = &day->g[i];
				const char *a = g->k[0] ? g->k[0] : "";
				const char *b = keys->n > 1 && g->k[1] ? g->k[1] : "";
				bool fresh;
				size_t *slot = pairmap_slot(cs.map, a, b, &fresh);
				size_t c = fresh ? combo_add(&cs, slot) : *slot - 1;
				if (cs.v[c].row == SIZE_MAX && cs.v[c].count == 1)
					resolve_owned(&x, &cs, c, prow, ptag);
				else if (cs.v[c].row == SIZE_MAX) /* no project carries ("", ""): untagged */
					resolve_unowned(&x, &cs, c,
							!*a && !*b       ? r_untagged
							: cs.v[c].count ? r_ambiguous
									: r_unmatched,
							a, b);
				if (cs.v[c].count > 1 && !cs.v[c].noted) {
					cs.v[c].noted = true;
					note_ambiguous(&x, a, b, cs.v[c].count);
				}
				const struct combo *cb = &cs.v[c];
				double amount = g->amount;
				const size_t *tr = cs.tagrows + cb->tag0;
				out->rows[cb->row].v[w] += amount;
				out->total[w] += amount;
				for (size_t k = 0; k < nl; k++)
					out->tags[tr[k]].v[w] += amount;
			}
		}
	}
	/* the baseline is a daily mean */
	for (size_t r = 0; r < out->nrows; r++)
		out->rows[r].v[WIN_BASELINE] /= BASELINE_DAYS;
	for (size_t t = 0; t < out->ntags; t++)
		out->tags[t].v[WIN_BASELINE] /= BASELINE_DAYS;
	out->total[WIN_BASELINE] /= BASELINE_DAYS;

	for (int w = 0; w < WIN_COUNT; w++)
		out->estimated[w] = w == WIN_TODAY || !covered(in->spend[w], x.win_start[w], x.win_end[w]);
	qsort(out->rows, out->nrows, sizeof(*out->rows), cmp_row);
	compute_models(&x);

	pairmap_free(cs.map);
	free(cs.v);
	free(cs.tagrows);
	free(prow);
	free(ptag);
	textmap_free(x.rows);
	pairmap_free(x.tagrow);
}

void attribution_free(struct attribution *a)
{
	for (size_t i = 0; i < a->nrows; i++)
		free(a->rows[i].project_id);
	free(a->rows);
	for (size_t i = 0; i < a->ntags; i++) {
		free(a->tags[i].key);
		free(a->tags[i].value);
	}
	free(a->tags);
	for (size_t i = 0; i < a->nambiguous; i++)
		free(a->ambiguous[i].value);
	free(a->ambiguous);
	for (size_t i = 0; i < a->nmodels; i++) {
		free(a->models[i].service);
		free(a->models[i].usage_type);
		free(a->models[i].model);
	}
	free(a->models);
	memset(a, 0, sizeof(*a));
}

struct attr_owner {
	const struct attr_input *in;
	struct pairmap *map; /* (a, b) -> index of the one project carrying it + 1, or SIZE_MAX */
};

struct attr_owner *attr_owner_new(const struct attr_input *in)
{
	struct attr_owner *o = xcalloc(1, sizeof(*o));
	o->in = in;
	o->map = pairmap_new(in->nprojects);
	const struct textlist *keys = in->keys;
	for (size_t i = 0; i < in->nprojects; i++) {
		const char *a = project_tag(in->projects[i], keys->v[0]);
		const char *b = keys->n > 1 ? project_tag(in->projects[i], keys->v[1]) : "";
		if ((!a || !*a) && (!b || !*b))
			continue;
		bool fresh;
		size_t *slot = pairmap_slot(o->map, a, b, &fresh);
		*slot = fresh ? i + 1 : SIZE_MAX;
	}
	return o;
}

const char *attr_owner_of(const struct attr_owner *o, const char *a, const char *b)
{
	a = a ? a : "";
	b = o->in->keys->n > 1 && b ? b : "";
	if (!*a && !*b)
		return ATTR_UNTAGGED;
	const size_t *slot = pairmap_find(o->map, a, b);
	if (!slot)
		return ATTR_UNMATCHED;
	return *slot == SIZE_MAX ? ATTR_AMBIGUOUS : o->in->projects[*slot - 1]->id;
}

void attr_owner_free(struct attr_owner *o)
{
	if (!o)
		return;
	pairmap_free(o->map);
	free(o);
}
