/*
 * cw_api.c - see cw_api.h.
 */
#include "sources/cw_api.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/util.h"

/* 500 queries of names up to 2 KiB each fit easily. */
#define MAX_BODY ((size_t)8 << 20)
#define MAX_TOKEN 8192

static char *finish(struct jsonw *w)
{
	jsonw_object_end(w);
	char *s = jsonw_steal(w, NULL);
	if (!s)
		abort(); /* only a programming error: every input is capped far below MAX_BODY */
	return s;
}

static void dimension(struct jsonw *w, const char *name, const char *value)
{
	jsonw_object_begin(w);
	jsonw_key(w, "Name");
	jsonw_string(w, name);
	if (value) {
		jsonw_key(w, "Value");
		jsonw_string(w, value);
	}
	jsonw_object_end(w);
}

char *cw_body_list_metrics(const char *metric, bool recent, const char *token)
{
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	jsonw_key(&w, "Namespace");
	jsonw_string(&w, CW_NAMESPACE);
	jsonw_key(&w, "MetricName");
	jsonw_string(&w, metric);
	jsonw_key(&w, "Dimensions");
	jsonw_array_begin(&w);
	dimension(&w, "Project", NULL);
	dimension(&w, "Model", NULL);
	jsonw_array_end(&w);
	if (recent) {
		jsonw_key(&w, "RecentlyActive");
		jsonw_string(&w, "PT3H");
	}
	if (token) {
		jsonw_key(&w, "NextToken");
		jsonw_string(&w, token);
	}
	return finish(&w);
}

char *cw_body_get_metric_data(const struct cw_query *q, size_t n, long period, long start,
			      long end, const char *token)
{
	struct jsonw w;
	jsonw_init(&w, MAX_BODY);
	jsonw_object_begin(&w);
	jsonw_key(&w, "MetricDataQueries");
	jsonw_array_begin(&w);
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "q%zu", i);
		jsonw_object_begin(&w);
		jsonw_key(&w, "Id");
		jsonw_string(&w, id);
		jsonw_key(&w, "MetricStat");
		jsonw_object_begin(&w);
		jsonw_key(&w, "Metric");
		jsonw_object_begin(&w);
		jsonw_key(&w, "Namespace");
		jsonw_string(&w, CW_NAMESPACE);
		jsonw_key(&w, "MetricName");
		jsonw_string(&w, q[i].metric);
		jsonw_key(&w, "Dimensions");
		jsonw_array_begin(&w);
		dimension(&w, "Project", q[i].project);
		dimension(&w, "Model", q[i].model);
		jsonw_array_end(&w);
		jsonw_object_end(&w);
		jsonw_key(&w, "Period");
		jsonw_int(&w, period);
		jsonw_key(&w, "Stat");
		jsonw_string(&w, "Sum");
		jsonw_object_end(&w);
		jsonw_key(&w, "ReturnData");
		jsonw_bool(&w, true);
		jsonw_object_end(&w);
	}
	jsonw_array_end(&w);
	jsonw_key(&w, "StartTime");
	jsonw_int(&w, start);
	jsonw_key(&w, "EndTime");
	jsonw_int(&w, end);
	jsonw_key(&w, "ScanBy");
	jsonw_string(&w, "TimestampAscending");
	if (token) {
		jsonw_key(&w, "NextToken");
		jsonw_string(&w, token);
	}
	return finish(&w);
}

/* *next = the string member @name of @root, NULL when absent, null or "". */
static int get_next(const struct jsontape *t, char **next, char *err, size_t errlen)
{
	size_t v = jt_get(t, 0, "NextToken");
	*next = NULL;
	if (v == JT_NONE || jt_is(t, v, JT_NULL))
		return 0;
	if (!jt_is(t, v, JT_STRING) || t->t[v].len > MAX_TOKEN) {
		snprintf(err, errlen, "NextToken: expected a string");
		return -EPROTO;
	}
	char *s = jt_strdup(t, v);
	if (s && !*s) {
		free(s);
		s = NULL;
	}
	*next = s;
	return 0;
}

/* A dimension value of @metric's Dimensions, or JT_NONE. */
static size_t dimension_value(const struct jsontape *t, size_t dims, const char *name)
{
	for (size_t d = jt_first(t, dims); d != JT_NONE; d = jt_next(t, dims, d))
		if (jt_str_eq(t, jt_get(t, d, "Name"), name))
			return jt_get(t, d, "Value");
	return JT_NONE;
}

int cw_parse_list_metrics(const char *body, size_t len, cw_metric_fn fn, void *arg,
			  char **next, char *err, size_t errlen)
{
	struct jsontape t;
	int rc = -EPROTO;
	*next = NULL;
	if (jsontape_parse(&t, body, len)) {
		snprintf(err, errlen, "response is not valid JSON");
		goto out;
	}
	size_t ms = jt_get(&t, 0, "Metrics");
	if (ms != JT_NONE && !jt_is(&t, ms, JT_ARRAY)) {
		snprintf(err, errlen, "Metrics: expected an array");
		goto out;
	}
	size_t i = 0;
	for (size_t m = ms == JT_NONE ? JT_NONE : jt_first(&t, ms); m != JT_NONE;
	     m = jt_next(&t, ms, m), i++) {
		size_t dims = jt_get(&t, m, "Dimensions");
		if (!jt_is(&t, m, JT_OBJECT) || (dims != JT_NONE && !jt_is(&t, dims, JT_ARRAY))) {
			snprintf(err, errlen, "Metrics[%zu]: expected an object with a Dimensions "
				 "array", i);
			goto out;
		}
		for (size_t d = dims == JT_NONE ? JT_NONE : jt_first(&t, dims); d != JT_NONE;
		     d = jt_next(&t, dims, d)) {
			if (!jt_is(&t, jt_get(&t, d, "Name"), JT_STRING) ||
			    !jt_is(&t, jt_get(&t, d, "Value"), JT_STRING)) {
				snprintf(err, errlen, "Metrics[%zu].Dimensions: Name and Value must "
					 "be strings", i);
				goto out;
			}
		}
	}
	if (get_next(&t, next, err, errlen))
		goto out;
	for (size_t m = ms == JT_NONE ? JT_NONE : jt_first(&t, ms); m != JT_NONE;
	     m = jt_next(&t, ms, m)) {
		size_t dims = jt_get(&t, m, "Dimensions");
		if (dims == JT_NONE)
			continue;
		size_t p = dimension_value(&t, dims, "Project"), mo = dimension_value(&t, dims, "Model");
		if (p == JT_NONE || mo == JT_NONE)
			continue;
		char *project = jt_strdup(&t, p), *model = jt_strdup(&t, mo);
		if (*project && *model)
			fn(arg, project, model);
		free(project);
		free(model);
	}
	rc = 0;
out:
	jsontape_free(&t);
	return rc;
}

/* The index of Id "q<i>" below @n, or -1. */
static long query_index(const struct jsontape *t, size_t id, size_t n)
{
	char s[32];
	if (!jt_is(t, id, JT_STRING) || jt_str(t, id, s, sizeof(s)) < 0 || s[0] != 'q' ||
	    s[1] < '0' || s[1] > '9' || (s[1] == '0' && s[2]))
		return -1;
	char *end;
	unsigned long v = strtoul(s + 1, &end, 10);
	return *end || v >= n ? -1 : (long)v;
}

int cw_parse_metric_data(const char *body, size_t len, size_t n, cw_point_fn fn, void *arg,
			 char **next, char *err, size_t errlen)
{
	struct jsontape t;
	int rc = -EPROTO;
	*next = NULL;
	if (jsontape_parse(&t, body, len)) {
		snprintf(err, errlen, "response is not valid JSON");
		goto out;
	}
	size_t rs = jt_get(&t, 0, "MetricDataResults");
	if (!jt_is(&t, rs, JT_ARRAY)) {
		snprintf(err, errlen, "MetricDataResults: %s",
			 rs == JT_NONE ? "missing" : "expected an array");
		goto out;
	}
	/* check everything first: a page is taken whole or not at all */
	size_t i = 0;
	for (size_t r = jt_first(&t, rs); r != JT_NONE; r = jt_next(&t, rs, r), i++) {
		size_t ts = jt_get(&t, r, "Timestamps"), vs = jt_get(&t, r, "Values");
		if (query_index(&t, jt_get(&t, r, "Id"), n) < 0) {
			snprintf(err, errlen, "MetricDataResults[%zu].Id: not a query of the request", i);
			goto out;
		}
		size_t sc = jt_get(&t, r, "StatusCode");
		if (sc != JT_NONE && !jt_str_eq(&t, sc, "Complete") &&
		    !jt_str_eq(&t, sc, "PartialData")) {
			char code[32] = "";
			if (jt_is(&t, sc, JT_STRING))
				jt_str(&t, sc, code, sizeof(code));
			snprintf(err, errlen, "MetricDataResults[%zu].StatusCode: %s", i,
				 *code ? code : "not a string");
			goto out;
		}
		if (!jt_is(&t, ts, JT_ARRAY) || !jt_is(&t, vs, JT_ARRAY) ||
		    jt_count(&t, ts) != jt_count(&t, vs)) {
			snprintf(err, errlen, "MetricDataResults[%zu]: Timestamps and Values must be "
				 "arrays of one length", i);
			goto out;
		}
		for (size_t a = jt_first(&t, ts), b = jt_first(&t, vs); a != JT_NONE;
		     a = jt_next(&t, ts, a), b = jt_next(&t, vs, b)) {
			double tv, vv;
			if (jt_number(&t, a, &tv) || jt_number(&t, b, &vv) || !(tv >= 0) ||
			    !(tv < 1e11) || !(vv >= 0) || !(vv <= CW_MAX_VALUE)) {
				snprintf(err, errlen, "MetricDataResults[%zu]: Timestamps and Values "
					 "must be numbers, seconds and counts of at most %g", i,
					 CW_MAX_VALUE);
				goto out;
			}
		}
	}
	if (get_next(&t, next, err, errlen))
		goto out;
	for (size_t r = jt_first(&t, rs); r != JT_NONE; r = jt_next(&t, rs, r)) {
		size_t q = (size_t)query_index(&t, jt_get(&t, r, "Id"), n);
		size_t ts = jt_get(&t, r, "Timestamps"), vs = jt_get(&t, r, "Values");
		for (size_t a = jt_first(&t, ts), b = jt_first(&t, vs); a != JT_NONE;
		     a = jt_next(&t, ts, a), b = jt_next(&t, vs, b)) {
			double tv, vv;
			jt_number(&t, a, &tv);
			jt_number(&t, b, &vv);
			fn(arg, q, tv, vv);
		}
	}
	rc = 0;
out:
	jsontape_free(&t);
	return rc;
}
