/*
 * ce_api.c - see ce_api.h.
 */
#include "sources/ce_api.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/days.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/numfmt.h"
#include "base/textmap.h"
#include "base/util.h"

/* Caps on what one page may hold; real pages are far smaller. */
#define MAX_GROUPS_PER_DAY 100000

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

static void time_period(struct jsonw *w, long start, long end)
{
	char s[11], e[11];
	days_format(start, s);
	days_format(end, e);
	jsonw_key(w, "TimePeriod");
	jsonw_object_begin(w);
	jsonw_key(w, "Start");
	jsonw_string(w, s);
	jsonw_key(w, "End");
	jsonw_string(w, e);
	jsonw_object_end(w);
}

static void dimension(struct jsonw *w, const char *key, const char *const *values, size_t n)
{
	jsonw_key(w, "Dimensions");
	jsonw_object_begin(w);
	jsonw_key(w, "Key");
	jsonw_string(w, key);
	jsonw_key(w, "Values");
	jsonw_array_begin(w);
	for (size_t i = 0; i < n; i++)
		jsonw_string(w, values[i]);
	jsonw_array_end(w);
	jsonw_key(w, "MatchOptions");
	jsonw_array_begin(w);
	jsonw_string(w, "EQUALS");
	jsonw_array_end(w);
	jsonw_object_end(w);
}

/* SERVICE in @services, and LINKED_ACCOUNT = @account unless it is NULL or "". */
static void service_filter(struct jsonw *w, const struct textlist *services, const char *account)
{
	jsonw_key(w, "Filter");
	jsonw_object_begin(w);
	if (account && *account) {
		jsonw_key(w, "And");
		jsonw_array_begin(w);
		jsonw_object_begin(w);
		dimension(w, "SERVICE", (const char *const *)services->v, services->n);
		jsonw_object_end(w);
		jsonw_object_begin(w);
		dimension(w, "LINKED_ACCOUNT", &account, 1);
		jsonw_object_end(w);
		jsonw_array_end(w);
	} else {
		dimension(w, "SERVICE", (const char *const *)services->v, services->n);
	}
	jsonw_object_end(w);
}

/* A request body is far below this; the inputs (tags, services, tokens) are capped. */
#define MAX_BODY ((size_t)4 << 20)

static char *finish(struct jsonw *w)
{
	jsonw_object_end(w);
	char *s = jsonw_steal(w, NULL);
	if (!s)
		abort(); /* only a programming error: every input is capped far below MAX_BODY */
	return s;
}

char *ce_body_cost_and_usage(const struct ce_query *q, const char *next_token)
{
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	time_period(&w, q->start, q->end);
	jsonw_key(&w, "Granularity");
	jsonw_string(&w, q->granularity);
	jsonw_key(&w, "Metrics");
	jsonw_array_begin(&w);
	jsonw_string(&w, q->metric);
	jsonw_array_end(&w);
	service_filter(&w, q->services, q->linked_account);
	if (q->ngroups) {
		jsonw_key(&w, "GroupBy");
		jsonw_array_begin(&w);
		for (size_t i = 0; i < q->ngroups; i++) {
			jsonw_object_begin(&w);
			jsonw_key(&w, "Type");
			jsonw_string(&w, q->group_type[i] == CE_GROUP_TAG ? "TAG" : "DIMENSION");
			jsonw_key(&w, "Key");
			jsonw_string(&w, q->group_key[i]);
			jsonw_object_end(&w);
		}
		jsonw_array_end(&w);
	}
	if (next_token) {
		jsonw_key(&w, "NextPageToken");
		jsonw_string(&w, next_token);
	}
	return finish(&w);
}

char *ce_body_forecast(long start, long end, const char *metric, const struct textlist *services)
{
	char m[64];
	ce_forecast_metric(metric, m, sizeof(m));
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	time_period(&w, start, end);
	jsonw_key(&w, "Metric");
	jsonw_string(&w, m);
	jsonw_key(&w, "Granularity");
	jsonw_string(&w, "MONTHLY");
	service_filter(&w, services, NULL);
	jsonw_key(&w, "PredictionIntervalLevel");
	jsonw_int(&w, 80);
	return finish(&w);
}

char *ce_body_dimension_values(long start, long end, const char *dimension, const char *search,
			       const char *next_token)
{
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	time_period(&w, start, end);
	jsonw_key(&w, "Dimension");
	jsonw_string(&w, dimension);
	if (search) {
		jsonw_key(&w, "SearchString");
		jsonw_string(&w, search);
	}
	jsonw_key(&w, "Context");
	jsonw_string(&w, "COST_AND_USAGE");
	if (next_token) {
		jsonw_key(&w, "NextPageToken");
		jsonw_string(&w, next_token);
	}
	return finish(&w);
}

char *ce_body_allocation_tags(const struct textlist *keys, const char *next_token)
{
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	jsonw_key(&w, "TagKeys");
	jsonw_array_begin(&w);
	for (size_t i = 0; i < keys->n; i++)
		jsonw_string(&w, keys->v[i]);
	jsonw_array_end(&w);
	jsonw_key(&w, "MaxResults");
	jsonw_int(&w, 100);
	if (next_token) {
		jsonw_key(&w, "NextToken");
		jsonw_string(&w, next_token);
	}
	return finish(&w);
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
	if (jt_str(t, a, s, sizeof(s)) < 0 || numfmt_parse_decimal(s, out)) {
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
	long day, end;
	bool estimated;
	struct ce_group *g;
	size_t n;
};

static void period_free(struct period *p)
{
	struct ce_day d = { p->day, p->estimated, p->g, p->n, p->end };
	ce_day_free(&d);
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
	out->end = e == s + 1 ? 0 : e;
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
			char *key = jt_strdup(t, kv);
			const char *v = key;
			if (!key) {
				snprintf(err, errlen, "%s.Keys[%zu]: expected a string",
					 loc_str(l, gw, sizeof(gw)), k);
				period_free(out);
				return -EPROTO;
			}
			if (q->group_type[k] == CE_GROUP_TAG &&
			    ce_split_tag_key(key, q->group_key[k], &v)) {
				snprintf(err, errlen, "%s.Keys[%zu]: expected \"%s$...\"",
					 loc_str(l, gw, sizeof(gw)), k, q->group_key[k]);
				free(key);
				period_free(out);
				return -EPROTO;
			}
			cg->k[k] = v == key ? key : xstrdup(v);
			if (v != key)
				free(key);
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
			acc->days[acc->n++] = (struct ce_day){ ps[i].day, ps[i].estimated, ps[i].g,
							       ps[i].n, ps[i].end };
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
		    numfmt_parse_decimal(ls, &a) || numfmt_parse_decimal(us, &b)) {
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

int ce_parse_dimension_values(const char *body, size_t len, struct textlist *out, char **next,
			      char *err, size_t errlen)
{
	struct jsontape t;
	struct textlist vals = { 0 };
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
		textlist_push(&vals, xstrdup(v));
	}
	if (get_next(&t, 0, "NextPageToken", &tok, err, errlen))
		goto out;
	for (size_t i = 0; i < vals.n; i++)
		textlist_push(out, vals.v[i]);
	free(vals.v);
	vals.v = NULL;
	vals.n = 0;
	*next = tok;
	tok = NULL;
	rc = 0;
out:
	textlist_free(&vals);
	free(tok);
	jsontape_free(&t);
	return rc;
}

int ce_parse_allocation_tags(const char *body, size_t len, struct textlist *keys, bool **active,
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
		textlist_push(keys, jt_strdup(&t, jt_get(&t, e, "TagKey")));
	}
	*next = tok;
	tok = NULL;
	rc = 0;
out:
	free(tok);
	jsontape_free(&t);
	return rc;
}
