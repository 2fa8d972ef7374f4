/*
 * ce_series.c - see ce_series.h.
 */
#include "model/ce_series.h"

#include <math.h>
#include <stdlib.h>

#include "base/util.h"

void ce_day_free(struct ce_day *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->g[i].k[0]);
		free(d->g[i].k[1]);
	}
	free(d->g);
	d->g = NULL;
	d->n = 0;
}

long ce_day_end(const struct ce_day *d)
{
	return d->end ? d->end : d->day + 1;
}

void ce_series_free(struct ce_series *s)
{
	for (size_t i = 0; i < s->n; i++)
		ce_day_free(&s->days[i]);
	free(s->days);
	s->days = NULL;
	s->n = 0;
}

void ce_series_copy_range(const struct ce_series *s, long from, long to, struct ce_series *out)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		if (d->day < from || d->day >= to)
			continue;
		out->days = xrealloc(out->days, (out->n + 1) * sizeof(*out->days));
		struct ce_day *c = &out->days[out->n++];
		c->day = d->day;
		c->end = d->end;
		c->estimated = d->estimated;
		c->n = d->n;
		c->g = xcalloc(d->n ? d->n : 1, sizeof(*c->g));
		for (size_t j = 0; j < d->n; j++) {
			c->g[j].k[0] = xstrdup(d->g[j].k[0]);
			c->g[j].k[1] = xstrdup(d->g[j].k[1]);
			c->g[j].amount = d->g[j].amount;
		}
	}
}

const struct ce_day *ce_series_find(const struct ce_series *s, long day)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->days[mid].day == day)
			return &s->days[mid];
		if (s->days[mid].day < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

double ce_series_sum(const struct ce_series *s, long from, long to)
{
	double v = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->days[i].day >= from && s->days[i].day < to)
			for (size_t j = 0; j < s->days[i].n; j++)
				v += s->days[i].g[j].amount;
	return v;
}

double ce_money(double v)
{
	return round(v * 1e10) / 1e10;
}
