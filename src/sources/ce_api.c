/*
 * ce_api.c - see ce_api.h.
 */
#include "sources/ce_api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/days.h"
#include "base/jsontape.h"
#include "base/strmap.h"
#include "base/util.h"

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

/*
 * The response parsers read a jsontape (no allocation per JSON value): a
 * refresh at 1,000 projects parses megabytes of GetCostAndUsage pages.
 */

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

static int parse_json(struct jsontape *t, const char *body, size_t len, char *err, size_t errlen)
{
	if (jsontape_parse(t, body, len)) {
		snprintf(err, errlen, "response is not valid JSON");
		return -EPROTO;
	}
	return 0;
}

/* Reads {"Amount": "1.23", "Unit": "USD"} at @obj[@name]. */
static int get_money(const struct jsontape *t, size_t obj, const char *name, double *out,
		     struct loc l, char *err, size_t errlen)
{
	char wbuf[96], s[80];
	size_t m = jt_get(t, obj, name);
	if (!jt_is(t, m, JT_OBJECT)) {
		snprintf(err, errlen, "%s.%s: %s", loc_str(l, wbuf, sizeof(wbuf)), name,
			 m != JT_NONE ? "expected an object" : "missing");
		return -EPROTO;
	}
	size_t a = jt_get(t, m, "Amount"), u = jt_get(t, m, "Unit");
	if (jt_str(t, a, s, sizeof(s)) < 0 || ce_parse_amount(s, out)) {
		snprintf(err, errlen, "%s.%s.Amount: expected a decimal string",
			 loc_str(l, wbuf, sizeof(wbuf)), name);
		return -EPROTO;
	}
	if (!jt_str_eq(t, u, "USD")) {
		char *us = jt_strdup(t, u);
		snprintf(err, errlen, "%s.%s.Unit: expected \"USD\", got %s%.16s%s",
			 loc_str(l, wbuf, sizeof(wbuf)), name, us ? "\"" : "", us ? us : "a non-string",
			 us ? "\"" : "");
		free(us);
		return -EPROTO;
	}
	return 0;
}

static int get_next(const struct jsontape *t, size_t root, const char *name, char **next, char *err,
		    size_t errlen)
{
	size_t v = jt_get(t, root, name);
	if (v == JT_NONE || jt_is(t, v, JT_NULL)) {
		*next = NULL;
		return 0;
	}
	char *s = jt_strdup(t, v);
	if (!s || strlen(s) > 8192) {
		free(s);
		snprintf(err, errlen, "%s: expected a string", name);
		return -EPROTO;
	}
	if (!*s) {
		free(s);
		s = NULL;
	}
	*next = s;
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

/* Reads a date string ("2026-11-24") at @obj[@key]. */
static int get_day(const struct jsontape *t, size_t obj, const char *key, long *day)
{
	char s[32];
	return jt_str(t, jt_get(t, obj, key), s, sizeof(s)) < 0 || days_parse(s, day) ? -EPROTO : 0;
}

static int parse_period(const struct jsontape *t, size_t r, size_t idx, const struct ce_query *q,
			struct period *out, char *err, size_t errlen)
{
	char where[48];
	snprintf(where, sizeof(where), "ResultsByTime[%zu]", idx);
	memset(out, 0, sizeof(*out));
	if (!jt_is(t, r, JT_OBJECT)) {
		snprintf(err, errlen, "%s: expected an object", where);
		return -EPROTO;
	}
	size_t tp = jt_get(t, r, "TimePeriod");
	long s, e;
	if (!jt_is(t, tp, JT_OBJECT) || get_day(t, tp, "Start", &s) || get_day(t, tp, "End", &e) ||
	    e <= s) {
		snprintf(err, errlen, "%s.TimePeriod: expected Start and End dates", where);
		return -EPROTO;
	}
	if (strcmp(q->granularity, "DAILY") == 0 && (e != s + 1 || s < q->start || s >= q->end)) {
		snprintf(err, errlen, "%s.TimePeriod: not a day of the requested window", where);
		return -EPROTO;
	}
	out->day = s;
	size_t est = jt_get(t, r, "Estimated");
	if (est != JT_NONE && !jt_is(t, est, JT_TRUE) && !jt_is(t, est, JT_FALSE)) {
		snprintf(err, errlen, "%s.Estimated: expected a boolean", where);
		return -EPROTO;
	}
	out->estimated = !jt_is(t, est, JT_FALSE); /* missing: assume it may still change */

	if (q->ngroups == 0) {
		out->g = xcalloc(1, sizeof(*out->g));
		out->n = 1;
		size_t total = jt_get(t, r, "Total");
		char w2[64];
		snprintf(w2, sizeof(w2), "%s.Total", where);
		if (!jt_is(t, total, JT_OBJECT) ||
		    get_money(t, total, q->metric, &out->g[0].amount, (struct loc){ w2, SIZE_MAX }, err,
			      errlen)) {
			if (!jt_is(t, total, JT_OBJECT))
				snprintf(err, errlen, "%s.Total: missing", where);
			period_free(out);
			return -EPROTO;
		}
		return 0;
	}
	size_t groups = jt_get(t, r, "Groups");
	if (groups == JT_NONE || jt_is(t, groups, JT_NULL))
		return 0; /* a period without spend */
	size_t count = jt_is(t, groups, JT_ARRAY) ? jt_count(t, groups) : 0;
	if (!jt_is(t, groups, JT_ARRAY) || count > MAX_GROUPS_PER_DAY) {
		snprintf(err, errlen, "%s.Groups: expected an array", where);
		return -EPROTO;
	}
	out->g = xcalloc(count + 1, sizeof(*out->g));
	size_t gi = 0;
	char key[MAX_KEY_LEN + 1];
	for (size_t g = jt_first(t, groups); g != JT_NONE; g = jt_next(t, groups, g)) {
		/* the group's location is formatted only for an error message */
		struct loc l = { where, gi++ };
		char gw[96];
		size_t keys = jt_get(t, g, "Keys");
		if (!jt_is(t, keys, JT_ARRAY) || jt_count(t, keys) != q->ngroups) {
			snprintf(err, errlen, "%s.Keys: expected %zu strings", loc_str(l, gw, sizeof(gw)),
				 q->ngroups);
			period_free(out);
			return -EPROTO;
		}
		struct ce_group *cg = &out->g[out->n++];
		size_t kv = jt_first(t, keys);
		for (size_t k = 0; k < q->ngroups; k++, kv = jt_next(t, keys, kv)) {
			const char *v = key;
			if (jt_str(t, kv, key, sizeof(key)) < 0) {
				snprintf(err, errlen, "%s.Keys[%zu]: expected a string",
					 loc_str(l, gw, sizeof(gw)), k);
				period_free(out);
				return -EPROTO;
			}
			if (q->group_type[k] == CE_GROUP_TAG &&
			    ce_split_tag_key(key, q->group_key[k], &v)) {
				snprintf(err, errlen, "%s.Keys[%zu]: expected \"%s$...\"",
					 loc_str(l, gw, sizeof(gw)), k, q->group_key[k]);
				period_free(out);
				return -EPROTO;
			}
			cg->k[k] = xstrdup(v);
		}
		size_t metrics = jt_get(t, g, "Metrics");
		if (!jt_is(t, metrics, JT_OBJECT)) {
			snprintf(err, errlen, "%s.Metrics: %s", loc_str(l, gw, sizeof(gw)),
				 metrics != JT_NONE ? "expected an object" : "missing");
			period_free(out);
			return -EPROTO;
		}
		if (get_money(t, metrics, q->metric, &cg->amount, l, err, errlen)) {
			period_free(out);
			return -EPROTO;
		}
	}
	return 0;
}

int ce_parse_cost_and_usage(const char *body, size_t len, const struct ce_query *q,
			    struct ce_series *acc, char **next, char *err, size_t errlen)
{
	struct jsontape t;
	struct period *ps = NULL;
	size_t np = 0;
	char *tok = NULL;
	int rc = parse_json(&t, body, len, err, errlen);
	if (rc)
		goto out;
	size_t results = jt_get(&t, 0, "ResultsByTime");
	if (!jt_is(&t, 0, JT_OBJECT) || !jt_is(&t, results, JT_ARRAY)) {
		snprintf(err, errlen, "ResultsByTime: %s",
			 results != JT_NONE ? "expected an array" : "missing");
		rc = -EPROTO;
		goto out;
	}
	if (get_next(&t, 0, "NextPageToken", &tok, err, errlen)) {
		rc = -EPROTO;
		goto out;
	}
	ps = xcalloc(jt_count(&t, results) + 1, sizeof(*ps));
	for (size_t r = jt_first(&t, results); r != JT_NONE; r = jt_next(&t, results, r)) {
		if (parse_period(&t, r, np, q, &ps[np], err, errlen)) {
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
	jsontape_free(&t);
	return rc;
}

int ce_parse_forecast(const char *body, size_t len, double *mean, double *lower, double *upper,
		      char *err, size_t errlen)
{
	struct jsontape t;
	double m, lo = 0, hi = 0;
	int rc = parse_json(&t, body, len, err, errlen);
	if (rc)
		goto out;
	rc = -EPROTO;
	if (!jt_is(&t, 0, JT_OBJECT) ||
	    get_money(&t, 0, "Total", &m, (struct loc){ "response", SIZE_MAX }, err, errlen))
		goto out;
	size_t byt = jt_get(&t, 0, "ForecastResultsByTime");
	bool have_bounds = false;
	if (byt != JT_NONE && !jt_is(&t, byt, JT_ARRAY)) {
		snprintf(err, errlen, "ForecastResultsByTime: expected an array");
		goto out;
	}
	for (size_t r = jt_first(&t, byt); r != JT_NONE; r = jt_next(&t, byt, r)) {
		char ls[80], us[80];
		double a, b;
		if (jt_str(&t, jt_get(&t, r, "PredictionIntervalLowerBound"), ls, sizeof(ls)) < 0 ||
		    jt_str(&t, jt_get(&t, r, "PredictionIntervalUpperBound"), us, sizeof(us)) < 0 ||
		    ce_parse_amount(ls, &a) || ce_parse_amount(us, &b)) {
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
	jsontape_free(&t);
	return rc;
}

int ce_parse_dimension_values(const char *body, size_t len, struct strlist *out, char **next,
			      char *err, size_t errlen)
{
	struct jsontape t;
	struct strlist vals = { 0 };
	char *tok = NULL;
	int rc = parse_json(&t, body, len, err, errlen);
	if (rc)
		goto out;
	rc = -EPROTO;
	size_t dv = jt_get(&t, 0, "DimensionValues");
	if (!jt_is(&t, dv, JT_ARRAY)) {
		snprintf(err, errlen, "DimensionValues: %s", dv != JT_NONE ? "expected an array" : "missing");
		goto out;
	}
	for (size_t e = jt_first(&t, dv); e != JT_NONE; e = jt_next(&t, dv, e)) {
		char v[1025];
		if (jt_str(&t, jt_get(&t, e, "Value"), v, sizeof(v)) <= 0) {
			snprintf(err, errlen, "DimensionValues[].Value: expected a string");
			goto out;
		}
		strlist_push(&vals, xstrdup(v));
	}
	if (get_next(&t, 0, "NextPageToken", &tok, err, errlen))
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
	jsontape_free(&t);
	return rc;
}

int ce_parse_allocation_tags(const char *body, size_t len, struct strlist *keys, bool **active,
			     char **next, char *err, size_t errlen)
{
	struct jsontape t;
	char *tok = NULL;
	int rc = parse_json(&t, body, len, err, errlen);
	if (rc)
		goto out;
	rc = -EPROTO;
	size_t tags = jt_get(&t, 0, "CostAllocationTags");
	if (!jt_is(&t, tags, JT_ARRAY)) {
		snprintf(err, errlen, "CostAllocationTags: %s", tags != JT_NONE ? "expected an array" : "missing");
		goto out;
	}
	for (size_t e = jt_first(&t, tags); e != JT_NONE; e = jt_next(&t, tags, e)) {
		if (!jt_is(&t, jt_get(&t, e, "TagKey"), JT_STRING) ||
		    !jt_is(&t, jt_get(&t, e, "Status"), JT_STRING)) {
			snprintf(err, errlen, "CostAllocationTags[]: TagKey and Status must be strings");
			goto out;
		}
	}
	if (get_next(&t, 0, "NextToken", &tok, err, errlen))
		goto out;
	for (size_t e = jt_first(&t, tags); e != JT_NONE; e = jt_next(&t, tags, e)) {
		*active = xrealloc(*active, (keys->n + 1) * sizeof(**active));
		(*active)[keys->n] = jt_str_eq(&t, jt_get(&t, e, "Status"), "Active");
		strlist_push(keys, jt_strdup(&t, jt_get(&t, e, "TagKey")));
	}
	*next = tok;
	tok = NULL;
	rc = 0;
out:
	free(tok);
	jsontape_free(&t);
	return rc;
}

void ce_error_type(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	struct jsontape t;
	if (jsontape_parse(&t, body, len))
		return;
	size_t ty = jt_get(&t, 0, "__type");
	if (!jt_is(&t, ty, JT_STRING)) /* STS answers {"Error":{"Code":...}} */
		ty = jt_get(&t, jt_get(&t, 0, "Error"), "Code");
	char *s = jt_strdup(&t, ty);
	if (s) {
		const char *h = strrchr(s, '#');
		const char *name = h ? h + 1 : s;
		size_t n = 0;
		for (const char *p = name; *p && n + 1 < outlen && n < 64; p++)
			if (isalnum((unsigned char)*p))
				out[n++] = *p;
		out[n] = '\0';
		free(s);
	}
	jsontape_free(&t);
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
