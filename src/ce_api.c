/*
 * ce_api.c - see ce_api.h.
 */
#include "ce_api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "days.h"
#include "jsonarena.h"
#include "strmap.h"
#include "util.h"

/* Caps on what one page may hold; real pages are far smaller. */
#define MAX_GROUPS_PER_DAY 100000
#define MAX_KEY_LEN 2048

static void day_free(struct ce_day *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->g[i].k[0]);
		free(d->g[i].k[1]);
	}
	free(d->g);
}

void ce_series_free(struct ce_series *s)
{
	for (size_t i = 0; i < s->n; i++)
		day_free(&s->days[i]);
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

/*
 * Clinger's fast path: a decimal with at most 15 significant digits (so the
 * digits fit a double exactly) and a power of ten up to 1e22 (also exact) is
 * one correctly rounded multiplication or division away from its value, which
 * is exactly what strtod() returns. Cost Explorer's amounts ("0.0123456789")
 * all take this path; anything else falls back to strtod().
 */
static const double pow10_exact[] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
				      1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				      1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

int ce_parse_amount(const char *s, double *out)
{
	const char *p = s;
	uint64_t mant = 0;
	int digits = 0, scale = 0; /* significant digits; value = mant * 10^scale */
	bool neg = *p == '-';
	if (neg)
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++)
		if (mant || *p != '0') {
			if (++digits <= 15)
				mant = mant * 10 + (uint64_t)(*p - '0');
			else
				scale++;
		}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (mant || *p != '0') {
				if (++digits <= 15) {
					mant = mant * 10 + (uint64_t)(*p - '0');
					scale--;
				}
			} else {
				scale--;
			}
	}
	bool fast = digits <= 15;
	if (*p == 'e' || *p == 'E') {
		p++;
		int esign = 1;
		long e = 0;
		if (*p == '+' || *p == '-')
			esign = *p++ == '-' ? -1 : 1;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		if (e >= 100000)
			fast = false;
		else
			scale += esign * (int)e;
	}
	if (*p || p - s > 64)
		return -EINVAL;
	double v;
	if (fast && mant == 0) {
		v = 0.0;
	} else if (fast && scale >= -22 && scale <= 22) {
		v = scale < 0 ? (double)mant / pow10_exact[-scale] : (double)mant * pow10_exact[scale];
	} else {
		v = strtod(s, NULL);
		neg = false; /* strtod read the sign */
	}
	if (neg)
		v = -v;
	if (!isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int ce_split_tag_key(const char *k, const char *want_key, const char **value)
{
	const char *dollar = strchr(k, '$');
	if (!dollar)
		return -EINVAL;
	size_t n = (size_t)(dollar - k);
	if (strlen(want_key) != n || strncmp(k, want_key, n) != 0)
		return -EINVAL;
	*value = dollar + 1;
	return 0;
}

void ce_forecast_metric(const char *metric, char *out, size_t outlen)
{
	size_t n = 0;
	for (const char *p = metric; *p && n + 2 < outlen; p++) {
		if (p != metric && isupper((unsigned char)*p))
			out[n++] = '_';
		out[n++] = (char)toupper((unsigned char)*p);
	}
	out[n] = '\0';
}

static cJSON *time_period(long start, long end)
{
	char s[11], e[11];
	days_format(start, s);
	days_format(end, e);
	cJSON *tp = cJSON_CreateObject();
	cJSON_AddStringToObject(tp, "Start", s);
	cJSON_AddStringToObject(tp, "End", e);
	return tp;
}

static cJSON *service_filter(const struct strlist *services)
{
	cJSON *f = cJSON_CreateObject();
	cJSON *dim = cJSON_AddObjectToObject(f, "Dimensions");
	cJSON_AddStringToObject(dim, "Key", "SERVICE");
	cJSON *vals = cJSON_AddArrayToObject(dim, "Values");
	for (size_t i = 0; i < services->n; i++)
		cJSON_AddItemToArray(vals, cJSON_CreateString(services->v[i]));
	cJSON *mo = cJSON_AddArrayToObject(dim, "MatchOptions");
	cJSON_AddItemToArray(mo, cJSON_CreateString("EQUALS"));
	return f;
}

static char *print_and_free(cJSON *root)
{
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		abort(); /* cJSON only fails on out-of-memory */
	char *copy = xstrdup(s);
	cJSON_free(s);
	return copy;
}

char *ce_body_cost_and_usage(const struct ce_query *q, const char *next_token)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "TimePeriod", time_period(q->start, q->end));
	cJSON_AddStringToObject(root, "Granularity", q->granularity);
	cJSON *metrics = cJSON_AddArrayToObject(root, "Metrics");
	cJSON_AddItemToArray(metrics, cJSON_CreateString(q->metric));
	cJSON_AddItemToObject(root, "Filter", service_filter(q->services));
	if (q->ngroups) {
		cJSON *gb = cJSON_AddArrayToObject(root, "GroupBy");
		for (size_t i = 0; i < q->ngroups; i++) {
			cJSON *g = cJSON_CreateObject();
			cJSON_AddStringToObject(g, "Type",
						q->group_type[i] == CE_GROUP_TAG ? "TAG" : "DIMENSION");
			cJSON_AddStringToObject(g, "Key", q->group_key[i]);
			cJSON_AddItemToArray(gb, g);
		}
	}
	if (next_token)
		cJSON_AddStringToObject(root, "NextPageToken", next_token);
	return print_and_free(root);
}

char *ce_body_forecast(long start, long end, const char *metric, const struct strlist *services)
{
	char m[64];
	ce_forecast_metric(metric, m, sizeof(m));
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "TimePeriod", time_period(start, end));
	cJSON_AddStringToObject(root, "Metric", m);
	cJSON_AddStringToObject(root, "Granularity", "MONTHLY");
	cJSON_AddItemToObject(root, "Filter", service_filter(services));
	cJSON_AddNumberToObject(root, "PredictionIntervalLevel", 80);
	return print_and_free(root);
}

char *ce_body_dimension_values(long start, long end, const char *dimension, const char *search,
			       const char *next_token)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "TimePeriod", time_period(start, end));
	cJSON_AddStringToObject(root, "Dimension", dimension);
	if (search)
		cJSON_AddStringToObject(root, "SearchString", search);
	cJSON_AddStringToObject(root, "Context", "COST_AND_USAGE");
	if (next_token)
		cJSON_AddStringToObject(root, "NextPageToken", next_token);
	return print_and_free(root);
}

char *ce_body_allocation_tags(const struct strlist *keys, const char *next_token)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *tk = cJSON_AddArrayToObject(root, "TagKeys");
	for (size_t i = 0; i < keys->n; i++)
		cJSON_AddItemToArray(tk, cJSON_CreateString(keys->v[i]));
	cJSON_AddNumberToObject(root, "MaxResults", 100);
	if (next_token)
		cJSON_AddStringToObject(root, "NextToken", next_token);
	return print_and_free(root);
}

/* Where a field is, for error messages: "@where" or "@where.Groups[@gi]". */
struct loc {
	const char *where;
	size_t gi; /* SIZE_MAX: not in a group */
};

static const char *loc_str(struct loc l, char *out, size_t outlen)
{
	if (l.gi == SIZE_MAX)
		return l.where;
	snprintf(out, outlen, "%s.Groups[%zu]", l.where, l.gi);
	return out;
}

/* Reads {"Amount": "1.23", "Unit": "USD"} at @obj[@name]. */
static int get_money(const cJSON *obj, const char *name, double *out, struct loc l, char *err,
		     size_t errlen)
{
	char wbuf[96];
	const char *where;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsObject(m)) {
		where = loc_str(l, wbuf, sizeof(wbuf));
		snprintf(err, errlen, "%s.%s: %s", where, name, m ? "expected an object" : "missing");
		return -EPROTO;
	}
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "Amount");
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "Unit");
	if (!cJSON_IsString(a) || ce_parse_amount(a->valuestring, out)) {
		where = loc_str(l, wbuf, sizeof(wbuf));
		snprintf(err, errlen, "%s.%s.Amount: expected a decimal string", where, name);
		return -EPROTO;
	}
	if (!cJSON_IsString(u) || strcmp(u->valuestring, "USD") != 0) {
		where = loc_str(l, wbuf, sizeof(wbuf));
		snprintf(err, errlen, "%s.%s.Unit: expected \"USD\", got %s%.16s%s", where, name,
			 cJSON_IsString(u) ? "\"" : "", cJSON_IsString(u) ? u->valuestring : "a non-string",
			 cJSON_IsString(u) ? "\"" : "");
		return -EPROTO;
	}
	return 0;
}

static int get_next(const cJSON *root, const char *name, char **next, char *err, size_t errlen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);
	if (!t || cJSON_IsNull(t)) {
		*next = NULL;
		return 0;
	}
	if (!cJSON_IsString(t) || strlen(t->valuestring) > 8192) {
		snprintf(err, errlen, "%s: expected a string", name);
		return -EPROTO;
	}
	*next = *t->valuestring ? xstrdup(t->valuestring) : NULL;
	return 0;
}

/* A parsed period before it is merged. */
struct period {
	long day;
	bool estimated;
	struct ce_group *g;
	size_t n;
};

static void period_free(struct period *p)
{
	struct ce_day d = { p->day, p->estimated, p->g, p->n };
	day_free(&d);
}

static int parse_period(const cJSON *r, size_t idx, const struct ce_query *q, struct period *out,
			char *err, size_t errlen)
{
	char where[48];
	snprintf(where, sizeof(where), "ResultsByTime[%zu]", idx);
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(r)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -EPROTO;
	}
	const cJSON *tp = cJSON_GetObjectItemCaseSensitive(r, "TimePeriod");
	const cJSON *st = cJSON_IsObject(tp) ? cJSON_GetObjectItemCaseSensitive(tp, "Start") : NULL;
	const cJSON *en = cJSON_IsObject(tp) ? cJSON_GetObjectItemCaseSensitive(tp, "End") : NULL;
	long s, e;
	if (!cJSON_IsString(st) || !cJSON_IsString(en) || days_parse(st->valuestring, &s) ||
	    days_parse(en->valuestring, &e) || e <= s) {
		snprintf(err, errlen, "%s.TimePeriod: expected Start and End dates", where);
		return -EPROTO;
	}
	if (strcmp(q->granularity, "DAILY") == 0 && (e != s + 1 || s < q->start || s >= q->end)) {
		snprintf(err, errlen, "%s.TimePeriod: not a day of the requested window", where);
		return -EPROTO;
	}
	out->day = s;
	const cJSON *est = cJSON_GetObjectItemCaseSensitive(r, "Estimated");
	if (est && !cJSON_IsBool(est)) {
		snprintf(err, errlen, "%s.Estimated: expected a boolean", where);
		return -EPROTO;
	}
	out->estimated = !est || cJSON_IsTrue(est); /* missing: assume it may still change */

	if (q->ngroups == 0) {
		out->g = xcalloc(1, sizeof(*out->g));
		out->n = 1;
		const cJSON *total = cJSON_GetObjectItemCaseSensitive(r, "Total");
		char w2[64];
		snprintf(w2, sizeof(w2), "%s.Total", where);
		if (!cJSON_IsObject(total) || get_money(total, q->metric, &out->g[0].amount, (struct loc){ w2, SIZE_MAX }, err,
						       errlen)) {
			if (!cJSON_IsObject(total))
				snprintf(err, errlen, "%s.Total: missing", where);
			period_free(out);
			return -EPROTO;
		}
		return 0;
	}
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(r, "Groups");
	if (!groups || cJSON_IsNull(groups))
		return 0; /* a period without spend */
	if (!cJSON_IsArray(groups) || cJSON_GetArraySize(groups) > MAX_GROUPS_PER_DAY) {
		snprintf(err, errlen, "%s.Groups: expected an array", where);
		return -EPROTO;
	}
	out->g = xcalloc((size_t)cJSON_GetArraySize(groups) + 1, sizeof(*out->g));
	const cJSON *g;
	size_t gi = 0;
	cJSON_ArrayForEach(g, groups) {
		/* the group's location is formatted only for an error message */
		struct loc l = { where, gi++ };
		char gw[96];
		const cJSON *keys = cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, "Keys") : NULL;
		if (!cJSON_IsArray(keys) || (size_t)cJSON_GetArraySize(keys) != q->ngroups) {
			snprintf(err, errlen, "%s.Keys: expected %zu strings", loc_str(l, gw, sizeof(gw)),
				 q->ngroups);
			period_free(out);
			return -EPROTO;
		}
		struct ce_group *cg = &out->g[out->n++];
		for (size_t k = 0; k < q->ngroups; k++) {
			const cJSON *kv = cJSON_GetArrayItem(keys, (int)k);
			const char *v = NULL;
			if (!cJSON_IsString(kv) || strlen(kv->valuestring) > MAX_KEY_LEN) {
				snprintf(err, errlen, "%s.Keys[%zu]: expected a string",
					 loc_str(l, gw, sizeof(gw)), k);
				period_free(out);
				return -EPROTO;
			}
			if (q->group_type[k] == CE_GROUP_TAG) {
				if (ce_split_tag_key(kv->valuestring, q->group_key[k], &v)) {
					snprintf(err, errlen, "%s.Keys[%zu]: expected \"%s$...\"",
						 loc_str(l, gw, sizeof(gw)), k, q->group_key[k]);
					period_free(out);
					return -EPROTO;
				}
			} else {
				v = kv->valuestring;
			}
			cg->k[k] = xstrdup(v);
		}
		const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(g, "Metrics");
		if (!cJSON_IsObject(metrics)) {
			snprintf(err, errlen, "%s.Metrics: %s", loc_str(l, gw, sizeof(gw)),
				 metrics ? "expected an object" : "missing");
			period_free(out);
			return -EPROTO;
		}
		if (get_money(metrics, q->metric, &cg->amount, l, err, errlen)) {
			period_free(out);
			return -EPROTO;
		}
	}
	return 0;
}

int ce_parse_cost_and_usage(const char *body, size_t len, const struct ce_query *q,
			    struct ce_series *acc, char **next, char *err, size_t errlen)
{
	/* the tree lives in an arena, released at once below: every value kept is copied */
	jsonarena_begin();
	cJSON *root = cJSON_ParseWithLength(body, len);
	struct period *ps = NULL;
	size_t np = 0;
	char *tok = NULL;
	int rc = 0;
	if (!root) {
		jsonarena_end();
		snprintf(err, errlen, "response is not valid JSON");
		return -EPROTO;
	}
	const cJSON *results = cJSON_GetObjectItemCaseSensitive(root, "ResultsByTime");
	if (!cJSON_IsObject(root) || !cJSON_IsArray(results)) {
		snprintf(err, errlen, "ResultsByTime: %s", results ? "expected an array" : "missing");
		rc = -EPROTO;
		goto out;
	}
	if (get_next(root, "NextPageToken", &tok, err, errlen)) {
		rc = -EPROTO;
		goto out;
	}
	ps = xcalloc((size_t)cJSON_GetArraySize(results) + 1, sizeof(*ps));
	const cJSON *r;
	cJSON_ArrayForEach(r, results) {
		if (parse_period(r, np, q, &ps[np], err, errlen)) {
			rc = -EPROTO;
			goto out;
		}
		np++;
	}
	/* validate the merge before touching @acc: days ascending, no group twice */
	for (size_t i = 0; i < np; i++) {
		if (i && ps[i].day <= ps[i - 1].day) {
			snprintf(err, errlen, "ResultsByTime: periods out of order");
			rc = -EPROTO;
			goto out;
		}
		const struct ce_day *prev = acc->n ? &acc->days[acc->n - 1] : NULL;
		if (prev && ps[i].day < prev->day) {
			snprintf(err, errlen, "ResultsByTime: page goes back in time");
			rc = -EPROTO;
			goto out;
		}
		/* a hash set of the day's keys (borrowed): linear, even with 10,000 groups a day */
		const struct ce_day *cont = prev && prev->day == ps[i].day ? prev : NULL;
		struct pairmap *seen = pairmap_new((cont ? cont->n : 0) + ps[i].n);
		bool dup = false, fresh;
		for (size_t b = 0; cont && b < cont->n; b++)
			pairmap_slot(seen, cont->g[b].k[0], cont->g[b].k[1], &fresh);
		for (size_t a = 0; a < ps[i].n && !dup; a++) {
			pairmap_slot(seen, ps[i].g[a].k[0], ps[i].g[a].k[1], &fresh);
			dup = !fresh;
		}
		pairmap_free(seen);
		if (dup)
			goto dup;
	}
	for (size_t i = 0; i < np; i++) {
		struct ce_day *last = acc->n ? &acc->days[acc->n - 1] : NULL;
		if (last && last->day == ps[i].day) {
			last->g = xrealloc(last->g, (last->n + ps[i].n + 1) * sizeof(*last->g));
			if (ps[i].n) /* a continued period may bring no groups (g is NULL) */
				memcpy(last->g + last->n, ps[i].g, ps[i].n * sizeof(*ps[i].g));
			last->n += ps[i].n;
			last->estimated = last->estimated || ps[i].estimated;
			free(ps[i].g);
		} else {
			acc->days = xrealloc(acc->days, (acc->n + 1) * sizeof(*acc->days));
			acc->days[acc->n++] = (struct ce_day){ ps[i].day, ps[i].estimated, ps[i].g, ps[i].n };
		}
		ps[i].g = NULL;
		ps[i].n = 0;
	}
	*next = tok;
	tok = NULL;
	goto out;
dup:
	snprintf(err, errlen, "ResultsByTime: a group appears twice for one day");
	rc = -EPROTO;
out:
	for (size_t i = 0; i < np; i++)
		period_free(&ps[i]);
	free(ps);
	free(tok);
	jsonarena_end(); /* frees the tree */
	return rc;
}

int ce_parse_forecast(const char *body, size_t len, double *mean, double *lower, double *upper,
		      char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	int rc = -EPROTO;
	double m, lo = 0, hi = 0;
	if (!root) {
		snprintf(err, errlen, "response is not valid JSON");
		return -EPROTO;
	}
	if (!cJSON_IsObject(root) || get_money(root, "Total", &m, (struct loc){ "response", SIZE_MAX }, err, errlen))
		goto out;
	const cJSON *byt = cJSON_GetObjectItemCaseSensitive(root, "ForecastResultsByTime");
	bool have_bounds = false;
	if (byt && !cJSON_IsArray(byt)) {
		snprintf(err, errlen, "ForecastResultsByTime: expected an array");
		goto out;
	}
	const cJSON *r;
	cJSON_ArrayForEach(r, byt) {
		const cJSON *l = cJSON_IsObject(r) ? cJSON_GetObjectItemCaseSensitive(r, "PredictionIntervalLowerBound") : NULL;
		const cJSON *u = cJSON_IsObject(r) ? cJSON_GetObjectItemCaseSensitive(r, "PredictionIntervalUpperBound") : NULL;
		double a, b;
		if (!cJSON_IsString(l) || !cJSON_IsString(u) || ce_parse_amount(l->valuestring, &a) ||
		    ce_parse_amount(u->valuestring, &b)) {
			snprintf(err, errlen, "ForecastResultsByTime: bounds must be decimal strings");
			goto out;
		}
		lo += a;
		hi += b;
		have_bounds = true;
	}
	*mean = m;
	*lower = have_bounds ? lo : m;
	*upper = have_bounds ? hi : m;
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int ce_parse_dimension_values(const char *body, size_t len, struct strlist *out, char **next,
			      char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	struct strlist vals = { 0 };
	char *tok = NULL;
	int rc = -EPROTO;
	if (!root) {
		snprintf(err, errlen, "response is not valid JSON");
		return -EPROTO;
	}
	const cJSON *dv = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "DimensionValues") : NULL;
	if (!cJSON_IsArray(dv)) {
		snprintf(err, errlen, "DimensionValues: %s", dv ? "expected an array" : "missing");
		goto out;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, dv) {
		const cJSON *v = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "Value") : NULL;
		if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 1024) {
			snprintf(err, errlen, "DimensionValues[].Value: expected a string");
			goto out;
		}
		strlist_push(&vals, xstrdup(v->valuestring));
	}
	if (get_next(root, "NextPageToken", &tok, err, errlen))
		goto out;
	for (size_t i = 0; i < vals.n; i++)
		strlist_push(out, vals.v[i]);
	free(vals.v);
	vals.v = NULL;
	vals.n = 0;
	*next = tok;
	tok = NULL;
	rc = 0;
out:
	strlist_free(&vals);
	free(tok);
	cJSON_Delete(root);
	return rc;
}

int ce_parse_allocation_tags(const char *body, size_t len, struct strlist *keys, bool **active,
			     char **next, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	char *tok = NULL;
	int rc = -EPROTO;
	if (!root) {
		snprintf(err, errlen, "response is not valid JSON");
		return -EPROTO;
	}
	const cJSON *tags = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "CostAllocationTags") : NULL;
	if (!cJSON_IsArray(tags)) {
		snprintf(err, errlen, "CostAllocationTags: %s", tags ? "expected an array" : "missing");
		goto out;
	}
	const cJSON *t;
	cJSON_ArrayForEach(t, tags) {
		const cJSON *k = cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "TagKey") : NULL;
		const cJSON *s = cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "Status") : NULL;
		if (!cJSON_IsString(k) || !cJSON_IsString(s)) {
			snprintf(err, errlen, "CostAllocationTags[]: TagKey and Status must be strings");
			goto out;
		}
	}
	if (get_next(root, "NextToken", &tok, err, errlen))
		goto out;
	cJSON_ArrayForEach(t, tags) {
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(t, "TagKey");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "Status");
		*active = xrealloc(*active, (keys->n + 1) * sizeof(**active));
		(*active)[keys->n] = strcmp(s->valuestring, "Active") == 0;
		strlist_push(keys, xstrdup(k->valuestring));
	}
	*next = tok;
	tok = NULL;
	rc = 0;
out:
	free(tok);
	cJSON_Delete(root);
	return rc;
}

void ce_error_type(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (!root)
		return;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "__type");
	if (!cJSON_IsString(t)) {
		/* STS answers {"Error":{"Code":...}} */
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "Error");
		t = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "Code") : NULL;
	}
	if (cJSON_IsString(t)) {
		const char *h = strrchr(t->valuestring, '#');
		const char *name = h ? h + 1 : t->valuestring;
		size_t n = 0;
		for (const char *p = name; *p && n + 1 < outlen && n < 64; p++)
			if (isalnum((unsigned char)*p))
				out[n++] = *p;
		out[n] = '\0';
	}
	cJSON_Delete(root);
}

enum hc_verdict ce_classify(long status, const char *body, size_t len, enum api_reason *reason,
			    char *msg, size_t msglen)
{
	if (status >= 200 && status < 300)
		return HC_OK;
	char type[72], detail[128];
	ce_error_type(body, len, type, sizeof(type));
	hc_error_message(body, len, detail, sizeof(detail));
	snprintf(msg, msglen, "HTTP %ld%s%s%s%s", status, *type ? " " : "", type,
		 *detail ? ": " : "", detail);
	static const char *const auth_types[] = {
		"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
		"ExpiredToken", "AccessDeniedException", "AccessDenied", "IncompleteSignature",
		"MissingAuthenticationToken", "InvalidClientTokenId", "InvalidIdentityToken", NULL,
	};
	if (status == 429 || strstr(type, "LimitExceeded") || strstr(type, "Throttl")) {
		*reason = REASON_THROTTLED;
		return HC_RETRY;
	}
	for (const char *const *a = auth_types; *a; a++) {
		if (strcmp(type, *a) == 0) {
			*reason = REASON_AUTH;
			return HC_FAIL;
		}
	}
	if (status == 401 || status == 403) {
		*reason = REASON_AUTH;
		return HC_FAIL;
	}
	if (status >= 500) {
		*reason = REASON_SERVER;
		return HC_RETRY;
	}
	*reason = REASON_CLIENT;
	return HC_FAIL;
}
