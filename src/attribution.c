/*
 * attribution.c - see attribution.h.
 *
 * Cost: one pass over the days and groups; every lookup (combination ->
 * projects, project -> row, tag value -> row) goes through a hash map, so
 * the work is linear in projects + groups.
 */
#include "attribution.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "usage.h"
#include "util.h"

/* Combination key of two values, length-prefixed so no value can imitate the
 * boundary (a missing value counts as ""). Written into @scratch, which is
 * reused: the hot loop below makes no allocation per group. */
static const char *combo_in(struct buf *scratch, const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	size_t la = strlen(a);
	char len[24];
	int n = snprintf(len, sizeof(len), "%zu:", la);
	buf_reset(scratch);
	buf_append(scratch, len, (size_t)n);
	buf_append(scratch, a, la);
	buf_putc(scratch, '|');
	buf_puts(scratch, b);
	return scratch->data;
}

/* As combo_in, as a new string (caller frees). */
static char *combo(const char *a, const char *b)
{
	struct buf s;
	buf_init(&s, (size_t)1 << 20);
	combo_in(&s, a, b);
	return buf_steal(&s, NULL);
}

struct candidates {
	size_t first; /* index into projects */
	size_t count;
};

struct ctx {
	const struct attr_input *in;
	struct attribution *out;
	struct strmap *rows;   /* project_id -> row index + 1 */
	struct strmap *tagrow; /* key \x1f value -> tag index + 1 */
	struct strmap *amb;    /* ambiguous combination -> index + 1 */
	struct buf scratch;    /* for composite keys, reused */
	size_t rows_cap, tags_cap;
	long win_start[WIN_COUNT], win_end[WIN_COUNT];
};

static size_t row_index(struct ctx *x, const char *id)
{
	uintptr_t i = (uintptr_t)strmap_get(x->rows, id, NULL);
	if (i)
		return i - 1;
	struct attribution *a = x->out;
	if (a->nrows == x->rows_cap) { /* grow geometrically: linear overall */
		x->rows_cap = x->rows_cap ? 2 * x->rows_cap : 64;
		a->rows = xrealloc(a->rows, x->rows_cap * sizeof(*a->rows));
	}
	memset(&a->rows[a->nrows], 0, sizeof(a->rows[0]));
	a->rows[a->nrows].project_id = xstrdup(id);
	strmap_put(x->rows, id, (void *)(uintptr_t)(a->nrows + 1));
	return a->nrows++;
}

static size_t tag_index(struct ctx *x, const char *key, const char *value)
{
	const char *k = combo_in(&x->scratch, key, value);
	uintptr_t i = (uintptr_t)strmap_get(x->tagrow, k, NULL);
	if (!i) {
		struct attribution *a = x->out;
		if (a->ntags == x->tags_cap) {
			x->tags_cap = x->tags_cap ? 2 * x->tags_cap : 64;
			a->tags = xrealloc(a->tags, x->tags_cap * sizeof(*a->tags));
		}
		memset(&a->tags[a->ntags], 0, sizeof(a->tags[0]));
		a->tags[a->ntags].key = xstrdup(key);
		a->tags[a->ntags].value = xstrdup(value);
		strmap_put(x->tagrow, k, (void *)(uintptr_t)(a->ntags + 1));
		i = ++a->ntags;
	}
	return i - 1;
}

static void note_ambiguous(struct ctx *x, const struct ce_group *g, size_t nprojects)
{
	const struct strlist *keys = x->in->keys;
	char *v = keys->n == 2 ? xasprintf("%s=%s,%s=%s", keys->v[0], g->k[0], keys->v[1], g->k[1])
			       : xasprintf("%s=%s", keys->v[0], g->k[0]);
	if (!strmap_get(x->amb, v, NULL)) {
		struct attribution *a = x->out;
		a->ambiguous = xrealloc(a->ambiguous, (a->nambiguous + 1) * sizeof(*a->ambiguous));
		a->ambiguous[a->nambiguous] = (struct attr_ambiguous){ xstrdup(v), nprojects };
		strmap_put(x->amb, v, (void *)(uintptr_t)(++a->nambiguous));
	}
	free(v);
}

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct attr_row *)a)->project_id, ((const struct attr_row *)b)->project_id);
}

/* Adds @amount to window slots of @v the @day falls into. */
static void add(const struct ctx *x, double *v, long day, double amount)
{
	for (int w = 0; w < WIN_COUNT; w++)
		if (day >= x->win_start[w] && day < x->win_end[w])
			v[w] += amount;
}

static void compute_models(const struct ctx *x)
{
	const struct ce_series *s = x->in->models;
	struct attribution *a = x->out;
	if (!s)
		return;
	struct strmap *idx = strmap_new();
	struct buf scratch;
	buf_init(&scratch, (size_t)1 << 20);
	long ys = x->win_start[WIN_YESTERDAY], ms = x->win_start[WIN_MONTH_TO_DATE];
	long end = x->win_end[WIN_MONTH_TO_DATE];
	for (size_t d = 0; d < s->n; d++) {
		const struct ce_day *day = &s->days[d];
		bool in_y = day->day == ys, in_m = day->day >= ms && day->day < end;
		if (!in_y && !in_m)
			continue;
		for (size_t i = 0; i < day->n; i++) {
			const struct ce_group *g = &day->g[i];
			const char *k = combo_in(&scratch, g->k[0], g->k[1]);
			uintptr_t j = (uintptr_t)strmap_get(idx, k, NULL);
			if (!j) {
				a->models = xrealloc(a->models, (a->nmodels + 1) * sizeof(*a->models));
				struct model_row *m = &a->models[a->nmodels];
				memset(m, 0, sizeof(*m));
				m->service = xstrdup(g->k[0] ? g->k[0] : "");
				m->usage_type = xstrdup(g->k[1] ? g->k[1] : "");
				char model[512];
				usage_model(m->service, m->usage_type, model, sizeof(model));
				m->model = xstrdup(model);
				m->token_type = usage_token_type(m->usage_type);
				strmap_put(idx, k, (void *)(uintptr_t)(++a->nmodels));
				j = a->nmodels;
			}
			if (in_y)
				a->models[j - 1].yesterday += g->amount;
			if (in_m)
				a->models[j - 1].month_to_date += g->amount;
		}
	}
	strmap_free(idx);
	buf_free(&scratch);
}

void attribution_compute(const struct attr_input *in, struct attribution *out)
{
	memset(out, 0, sizeof(*out));
	struct ctx x = { .in = in, .out = out, .rows = strmap_new(), .tagrow = strmap_new(),
			 .amb = strmap_new() };
	buf_init(&x.scratch, (size_t)1 << 20);
	for (int w = 0; w < WIN_COUNT; w++)
		days_window((enum window)w, in->today, &x.win_start[w], &x.win_end[w]);
	const struct strlist *keys = in->keys;
	const struct strlist *labels = in->tag_labels;

	/* combination -> projects: sort project indices by combination, then index runs */
	struct strmap *combos = strmap_new();
	struct candidates *cands = xcalloc(in->nprojects + 1, sizeof(*cands));
	size_t *order = xcalloc(in->nprojects + 1, sizeof(*order));
	size_t ncands = 0;
	for (size_t i = 0; i < in->nprojects; i++) {
		const struct project *p = in->projects[i];
		const char *a = project_tag(p, keys->v[0]);
		const char *b = keys->n > 1 ? project_tag(p, keys->v[1]) : "";
		if (strcmp(p->id, "default") != 0)
			row_index(&x, p->id);
		for (size_t k = 0; k < labels->n; k++) {
			const char *v = project_tag(p, labels->v[k]);
			if (v && *v)
				tag_index(&x, labels->v[k], v);
		}
		if ((!a || !*a) && (!b || !*b))
			continue; /* cannot carry attributed spend */
		char *c = combo(a, b);
		uintptr_t j = (uintptr_t)strmap_get(combos, c, NULL);
		if (!j) {
			cands[ncands].count = 0;
			strmap_put(combos, c, (void *)(uintptr_t)(++ncands));
			j = ncands;
		}
		cands[j - 1].count++;
		order[i] = j - 1;
		free(c);
	}
	/* first project index per combination, to name it when unique */
	for (size_t j = 0; j < ncands; j++)
		cands[j].first = SIZE_MAX;
	for (size_t i = 0; i < in->nprojects; i++) {
		const struct project *p = in->projects[i];
		const char *a = project_tag(p, keys->v[0]);
		const char *b = keys->n > 1 ? project_tag(p, keys->v[1]) : "";
		if ((!a || !*a) && (!b || !*b))
			continue;
		if (cands[order[i]].first == SIZE_MAX)
			cands[order[i]].first = i;
	}
	size_t r_untagged = row_index(&x, ATTR_UNTAGGED);
	size_t r_unmatched = row_index(&x, ATTR_UNMATCHED);
	size_t r_ambiguous = row_index(&x, ATTR_AMBIGUOUS);
	for (size_t k = 0; k < labels->n; k++)
		tag_index(&x, labels->v[k], ATTR_UNTAGGED);

	struct buf scratch;
	buf_init(&scratch, (size_t)1 << 20);
	const struct ce_series *s = in->spend;
	for (size_t d = 0; s && d < s->n; d++) {
		const struct ce_day *day = &s->days[d];
		for (size_t i = 0; i < day->n; i++) {
			const struct ce_group *g = &day->g[i];
			const char *a = g->k[0] ? g->k[0] : "";
			const char *b = keys->n > 1 && g->k[1] ? g->k[1] : "";
			size_t row;
			const struct project *owner = NULL;
			if (!*a && !*b) {
				row = r_untagged;
			} else {
				uintptr_t j = (uintptr_t)strmap_get(combos, combo_in(&scratch, a, b), NULL);
				if (!j) {
					row = r_unmatched;
				} else if (cands[j - 1].count > 1) {
					row = r_ambiguous;
					note_ambiguous(&x, g, cands[j - 1].count);
				} else {
					owner = in->projects[cands[j - 1].first];
					row = row_index(&x, owner->id);
				}
			}
			add(&x, out->rows[row].v, day->day, g->amount);
			add(&x, out->total, day->day, g->amount);
			for (size_t k = 0; k < labels->n; k++) {
				const char *v = NULL;
				if (owner) {
					v = project_tag(owner, labels->v[k]);
				} else {
					/* no single project: the group's own value still tells the truth */
					for (size_t q = 0; q < keys->n; q++)
						if (strcmp(keys->v[q], labels->v[k]) == 0)
							v = q == 0 ? a : b;
				}
				size_t t = tag_index(&x, labels->v[k], v && *v ? v : ATTR_UNTAGGED);
				add(&x, out->tags[t].v, day->day, g->amount);
			}
		}
	}
	/* the baseline is a daily mean */
	for (size_t r = 0; r < out->nrows; r++)
		out->rows[r].v[WIN_BASELINE] /= BASELINE_DAYS;
	for (size_t t = 0; t < out->ntags; t++)
		out->tags[t].v[WIN_BASELINE] /= BASELINE_DAYS;
	out->total[WIN_BASELINE] /= BASELINE_DAYS;

	for (int w = 0; w < WIN_COUNT; w++) {
		bool est = w == WIN_TODAY;
		for (long day = x.win_start[w]; day < x.win_end[w] && !est; day++) {
			const struct ce_day *cd = s ? ce_series_find(s, day) : NULL;
			est = !cd || cd->estimated;
		}
		out->estimated[w] = est;
	}
	qsort(out->rows, out->nrows, sizeof(*out->rows), cmp_row);
	compute_models(&x);

	buf_free(&scratch);
	(void)r_unmatched;
	(void)r_ambiguous;
	strmap_free(combos);
	free(cands);
	free(order);
	strmap_free(x.rows);
	strmap_free(x.tagrow);
	strmap_free(x.amb);
	buf_free(&x.scratch);
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
