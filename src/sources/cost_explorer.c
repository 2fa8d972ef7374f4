/*
 * cost_explorer.c - see cost_explorer.h.
 */
#include "sources/cost_explorer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/days.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/attribution.h"
#include "model/registry.h"
#include "sources/ce_api.h"
#include "sources/projects.h"

#define DISCOVERY_INTERVAL 86400.0

struct state {
	struct ce_meter meter;
	struct textlist services;  /* the SERVICE values filtered on */
	double services_at;        /* when discovered; 0 = never */
	char *services_search;     /* the search string they were discovered with */
	struct ce_series spend;    /* grouped by the attribution tags */
	char *spend_sig;           /* what the cache was queried with */
	struct ce_series models;   /* grouped by SERVICE, USAGE_TYPE */
	char *models_sig;
	double costs_at;           /* last successful cost refresh; 0 = never */
	long costs_requests;       /* requests the last successful cost refresh took */
};

/* ---- families ---- */

#define CE_HELP " From Cost Explorer (GetCostAndUsage, grouped by cost_explorer.attribution_tags and " \
		"mapped to projects by their tags), refreshed every cost_explorer.refresh_interval seconds."

static const struct metric_def m_project_cost[WIN_COUNT] = {
	{ "bedrock_cost_project_today_usd", METRIC_GAUGE,
	  "Bedrock spend of the project on the current UTC day so far (estimated, partial), USD." CE_HELP },
	{ "bedrock_cost_project_yesterday_usd", METRIC_GAUGE,
	  "Bedrock spend of the project on the previous UTC day, USD." CE_HELP },
	{ "bedrock_cost_project_baseline_daily_usd", METRIC_GAUGE,
	  "Mean daily Bedrock spend of the project over the 7 complete UTC days before yesterday, USD "
	  "(the spike baseline)." CE_HELP },
	{ "bedrock_cost_project_month_to_date_usd", METRIC_GAUGE,
	  "Bedrock spend of the project in the current UTC month so far, USD." CE_HELP },
	{ "bedrock_cost_project_previous_month_usd", METRIC_GAUGE,
	  "Bedrock spend of the project in the previous UTC month, USD (for chargeback)." CE_HELP },
};
#define TAG_HELP " Derived from the per-project spend and each project's current tags; project_id " \
		 "rows without the tag (and untagged, unmatched or ambiguous spend) count as __untagged__."
static const struct metric_def m_tag_cost[WIN_COUNT] = {
	{ "bedrock_cost_tag_today_usd", METRIC_GAUGE,
	  "Bedrock spend per tag value on the current UTC day so far, USD." TAG_HELP },
	{ "bedrock_cost_tag_yesterday_usd", METRIC_GAUGE,
	  "Bedrock spend per tag value on the previous UTC day, USD." TAG_HELP },
	{ NULL, METRIC_GAUGE, NULL },
	{ "bedrock_cost_tag_month_to_date_usd", METRIC_GAUGE,
	  "Bedrock spend per tag value in the current UTC month so far, USD." TAG_HELP },
	{ "bedrock_cost_tag_previous_month_usd", METRIC_GAUGE,
	  "Bedrock spend per tag value in the previous UTC month, USD." TAG_HELP },
};
static const struct metric_def m_ambiguous = {
	"bedrock_cost_attribution_ambiguous", METRIC_GAUGE,
	"Attribution tag values shared by several projects (value: how many); their spend is "
	"reported as project_id=\"__ambiguous__\".",
};
static const struct metric_def m_model_yesterday = {
	"bedrock_cost_model_yesterday_usd", METRIC_GAUGE,
	"Bedrock spend per SERVICE and USAGE_TYPE on the previous UTC day, USD; model and token_type "
	"parsed best effort. From Cost Explorer, refreshed every cost_explorer.refresh_interval seconds.",
};
static const struct metric_def m_model_mtd = {
	"bedrock_cost_model_month_to_date_usd", METRIC_GAUGE,
	"Bedrock spend per SERVICE and USAGE_TYPE in the current UTC month so far, USD; model and "
	"token_type parsed best effort. From Cost Explorer.",
};
static const struct metric_def m_window_estimated = {
	"bedrock_cost_window_estimated", METRIC_GAUGE,
	"1 if Cost Explorer marked any day of the window Estimated (or it is missing): the "
	"figures may still change.",
};
static const struct metric_def m_window_start = {
	"bedrock_cost_window_start_timestamp_seconds", METRIC_GAUGE,
	"Start of each reporting window (UTC midnight, Unix seconds).",
};
static const struct metric_def m_project_budget = {
	"bedrock_cost_project_budget_monthly_usd", METRIC_GAUGE,
	"Monthly Bedrock budget of the project, USD, from the budgets configuration.",
};
static const struct metric_def m_tag_budget = {
	"bedrock_cost_tag_budget_monthly_usd", METRIC_GAUGE,
	"Monthly Bedrock budget of the tag value, USD, from the budgets configuration.",
};
static const struct metric_def m_billable = {
	"bedrock_cost_exporter_cost_explorer_billable_requests_total", METRIC_COUNTER,
	"Cost Explorer requests sent (each is billed, failures and retries included).",
};
static const struct metric_def m_spend = {
	"bedrock_cost_exporter_cost_explorer_spend_usd_total", METRIC_COUNTER,
	"What the Cost Explorer requests sent have cost, USD (cost_explorer.request_price_usd each).",
};
static const struct metric_def m_ceiling = {
	"bedrock_cost_exporter_cost_explorer_max_requests_per_day", METRIC_GAUGE,
	"The daily ceiling on Cost Explorer requests (cost_explorer.max_requests_per_day); used "
	"today = this minus _requests_remaining_today.",
};
static const struct metric_def m_remaining = {
	"bedrock_cost_exporter_cost_explorer_requests_remaining_today", METRIC_GAUGE,
	"Cost Explorer requests left today (UTC) under cost_explorer.max_requests_per_day.",
};

/* ---- the private state ---- */

struct ce_meter *cost_explorer_meter(void *priv)
{
	return priv ? &((struct state *)priv)->meter : NULL;
}

const struct textlist *cost_explorer_services(const void *priv, double *discovered_at)
{
	const struct state *s = priv;
	if (discovered_at)
		*discovered_at = s ? s->services_at : 0;
	return s ? &s->services : NULL;
}

const struct ce_series *cost_explorer_spend(const void *priv)
{
	return priv ? &((const struct state *)priv)->spend : NULL;
}

static void *create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, sizeof(struct state));
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	textlist_free(&s->services);
	free(s->services_search);
	ce_series_free(&s->spend);
	ce_series_free(&s->models);
	free(s->spend_sig);
	free(s->models_sig);
	free(s);
}

static void join(struct buf *b, const struct textlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		buf_puts(b, l->v[i]);
		buf_putc(b, '\x1f');
	}
}

/* What a cached series must have been queried with to be reused. Caller frees. */
static char *spend_signature(const struct conf *c, const struct textlist *services)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_printf(&b, "spend|%s|", c->ce_cost_metric);
	join(&b, &c->ce_attribution_tags);
	buf_putc(&b, '|');
	join(&b, services);
	return buf_steal(&b, NULL);
}

static char *models_signature(const struct conf *c, const struct textlist *services)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_printf(&b, "models|%s|", c->ce_cost_metric);
	join(&b, services);
	return buf_steal(&b, NULL);
}

bool cost_explorer_query_changed(const struct conf *old, const struct conf *c)
{
	return strcmp(old->ce_cost_metric, c->ce_cost_metric) != 0 ||
	       !textlist_equal(&old->ce_attribution_tags, &c->ce_attribution_tags) ||
	       old->ce_enabled != c->ce_enabled || strcmp(old->ce_endpoint, c->ce_endpoint) != 0 ||
	       !textlist_equal(&old->ce_services, &c->ce_services) ||
	       (!c->ce_services.n && strcmp(old->ce_service_search, c->ce_service_search) != 0);
}

static bool enabled(const struct conf *c)
{
	return c->ce_enabled;
}

static long interval(const struct conf *c)
{
	return c->ce_refresh_interval;
}

static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)priv;
	return cost_explorer_query_changed(old, c);
}

/* ---- refresh ---- */

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *p = hay; *p; p++)
		if (strncasecmp(p, needle, n) == 0)
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct discover_arg {
	long start, end;
	const char *search;
	struct textlist found;
};

static char *discover_body(void *arg, const char *token)
{
	struct discover_arg *d = arg;
	return ce_body_dimension_values(d->start, d->end, "SERVICE", d->search, token);
}

static int discover_parse(void *arg, const char *body, size_t len, char **next, char *err,
			  size_t errlen)
{
	return ce_parse_dimension_values(body, len, &((struct discover_arg *)arg)->found, next, err,
					 errlen);
}

/* Whether discover() will ask Cost Explorer: no services configured, and none discovered
 * within a day with the current search string. */
static bool discovery_due(const struct state *s, const struct conf *c, double now)
{
	return !c->ce_services.n &&
	       (s->services_at <= 0 || now - s->services_at >= DISCOVERY_INTERVAL ||
		!s->services_search || strcmp(s->services_search, c->ce_service_search) != 0);
}

/* The SERVICE values to filter on: configured, or discovered once a day. */
static int discover(struct state *s, struct source_ctx *x, char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	if (c->ce_services.n) {
		if (!textlist_equal(&s->services, &c->ce_services)) {
			textlist_free(&s->services);
			for (size_t i = 0; i < c->ce_services.n; i++)
				textlist_push(&s->services, xstrdup(c->ce_services.v[i]));
			qsort(s->services.v, s->services.n, sizeof(char *), cmp_str);
		}
		s->services_at = x->now;
		return 0;
	}
	if (!discovery_due(s, c, x->now))
		return 0;
	long today = days_of_time(x->now), start, end;
	days_query_window(today, &start, &end);
	struct discover_arg da = { start, end, c->ce_service_search, { 0 } };
	int rc = ce_paginate(x, &s->meter, OP_CE_GET_DIMENSION_VALUES, "GetDimensionValues",
			     discover_body, discover_parse, &da, err, errlen);
	struct textlist found = da.found;
	if (rc) {
		textlist_free(&found);
		return rc;
	}
	/* keep only what really matches, de-duplicated and sorted */
	struct textlist keep = { 0 };
	qsort(found.v, found.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < found.n; i++)
		if (contains_ci(found.v[i], c->ce_service_search) &&
		    (!keep.n || strcmp(keep.v[keep.n - 1], found.v[i]) != 0))
			textlist_push(&keep, xstrdup(found.v[i]));
	textlist_free(&found);
	if (!textlist_equal(&keep, &s->services) && log_enabled(LOG_LEVEL_INFO)) {
		struct buf names;
		buf_init(&names, 8192);
		for (size_t i = 0; i < keep.n; i++)
			buf_printf(&names, "%s%s", i ? ", " : "", keep.v[i]);
		log_info("Bedrock services discovered in Cost Explorer", "services",
			 names.data ? names.data : "(none)");
		buf_free(&names);
	}
	textlist_free(&s->services);
	s->services = keep;
	s->services_at = x->now;
	free(s->services_search);
	s->services_search = xstrdup(c->ce_service_search);
	return 0;
}

struct query_arg {
	const struct ce_query *q;
	struct ce_series *acc;
};

static char *query_body(void *arg, const char *token)
{
	return ce_body_cost_and_usage(((struct query_arg *)arg)->q, token);
}

static int query_parse(void *arg, const char *body, size_t len, char **next, char *err,
		       size_t errlen)
{
	struct query_arg *a = arg;
	return ce_parse_cost_and_usage(body, len, a->q, a->acc, next, err, errlen);
}

/*
 * Brings @series up to date for [q->start, q->end): keeps the settled days,
 * asks again for everything from the first day that can still change.
 */
static int refresh_series(struct state *s, struct source_ctx *x, struct ce_query *q,
			  struct ce_series *series, char **sig, const char *want_sig, char *err,
			  size_t errlen)
{
	long today = days_of_time(x->now);
	if (!*sig || strcmp(*sig, want_sig) != 0) {
		ce_series_free(series);
		free(*sig);
		*sig = xstrdup(want_sig);
	}
	long from = q->start;
	for (; from < q->end; from++) {
		const struct ce_day *d = ce_series_find(series, from);
		bool settled = d && !d->estimated && from < today - x->conf->ce_settle_days;
		if (!settled)
			break;
	}
	struct ce_series fresh = { 0 };
	struct ce_query qq = *q;
	qq.start = from;
	if (q->services->n) {
		struct query_arg a = { &qq, &fresh };
		int rc = ce_paginate(x, &s->meter, OP_CE_GET_COST_AND_USAGE, "GetCostAndUsage",
				     query_body, query_parse, &a, err, errlen);
		if (rc) {
			ce_series_free(&fresh);
			return rc;
		}
	}
	struct ce_series merged = { 0 };
	ce_series_copy_range(series, q->start, from, &merged);
	merged.days = xrealloc(merged.days, (merged.n + fresh.n + 1) * sizeof(*merged.days));
	memcpy(merged.days + merged.n, fresh.days, fresh.n * sizeof(*fresh.days));
	merged.n += fresh.n;
	free(fresh.days);
	ce_series_free(series);
	*series = merged;
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char a[11], b[11];
		days_format(from, a);
		days_format(q->end, b);
		log_debug("cost series refreshed", "from", a, "to", b);
	}
	return 0;
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	x->state_changed = true; /* requests are counted even when the refresh fails */
	/* what the last refresh took is the best guess of what this one needs */
	long need = 2 + (discovery_due(s, c, x->now) ? 1 : 0);
	if (s->costs_requests > need)
		need = s->costs_requests;
	long left = ce_meter_remaining(&s->meter, c->ce_max_requests_per_day, x->now);
	if (left < need) {
		snprintf(err, errlen, "skipped: %ld of %ld Cost Explorer requests left today, a refresh "
			 "needs at least %ld (cost_explorer.max_requests_per_day)", left,
			 c->ce_max_requests_per_day, need);
		return -EDQUOT;
	}
	long today = days_of_time(x->now);
	long used_before = s->meter.day == today ? s->meter.count : 0;
	int rc = discover(s, x, err, errlen);
	if (rc)
		return rc;
	long start, end;
	days_query_window(today, &start, &end);

	struct ce_query q = { .start = start, .end = end, .granularity = "DAILY",
			      .metric = c->ce_cost_metric, .services = &s->services,
			      .ngroups = c->ce_attribution_tags.n };
	for (size_t i = 0; i < q.ngroups; i++) {
		q.group_type[i] = CE_GROUP_TAG;
		q.group_key[i] = c->ce_attribution_tags.v[i];
	}
	char *sig = spend_signature(c, &s->services);
	rc = refresh_series(s, x, &q, &s->spend, &s->spend_sig, sig, err, errlen);
	free(sig);
	if (rc)
		return rc;

	long mstart = days_month_start(today);
	struct ce_query m = { .start = mstart < today - 1 ? mstart : today - 1, .end = end,
			      .granularity = "DAILY", .metric = c->ce_cost_metric,
			      .services = &s->services, .ngroups = 2,
			      .group_type = { CE_GROUP_DIMENSION, CE_GROUP_DIMENSION },
			      .group_key = { "SERVICE", "USAGE_TYPE" } };
	sig = models_signature(c, &s->services);
	rc = refresh_series(s, x, &m, &s->models, &s->models_sig, sig, err, errlen);
	free(sig);
	if (rc)
		return rc;
	s->costs_at = x->now;
	long used = s->meter.day == today ? s->meter.count : 0;
	s->costs_requests = used >= used_before ? used - used_before : 0;
	return 0;
}

/* ---- the state file: ce_requests, services, costs_at, spend, models ---- */

static void save_series(struct jsonw *w, const char *key, const struct ce_series *s,
			const char *sig)
{
	jsonw_key(w, key);
	jsonw_object_begin(w);
	jsonw_key(w, "signature");
	jsonw_string(w, sig);
	jsonw_key(w, "days");
	jsonw_array_begin(w);
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		char ds[11];
		days_format(d->day, ds);
		jsonw_object_begin(w);
		jsonw_key(w, "day");
		jsonw_string(w, ds);
		jsonw_key(w, "estimated");
		jsonw_bool(w, d->estimated);
		jsonw_key(w, "groups");
		jsonw_array_begin(w);
		for (size_t j = 0; j < d->n; j++) {
			jsonw_object_begin(w);
			jsonw_key(w, "k");
			jsonw_array_begin(w);
			for (int q = 0; q < 2 && d->g[j].k[q]; q++)
				jsonw_string(w, d->g[j].k[q]);
			jsonw_array_end(w);
			jsonw_key(w, "amount");
			jsonw_number(w, d->g[j].amount);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	char ds[11];
	days_format(s->meter.day, ds);
	jsonw_key(w, "ce_requests");
	jsonw_object_begin(w);
	jsonw_key(w, "day");
	jsonw_string(w, ds);
	jsonw_key(w, "count");
	jsonw_int(w, s->meter.count);
	jsonw_object_end(w);
	jsonw_key(w, "services");
	jsonw_object_begin(w);
	jsonw_key(w, "at");
	jsonw_number(w, s->services_at);
	jsonw_key(w, "search");
	jsonw_string(w, s->services_search);
	jsonw_key(w, "values");
	jsonw_array_begin(w);
	for (size_t i = 0; i < s->services.n; i++)
		jsonw_string(w, s->services.v[i]);
	jsonw_array_end(w);
	jsonw_object_end(w);
	jsonw_key(w, "costs_at");
	jsonw_number(w, s->costs_at);
	save_series(w, "spend", &s->spend, s->spend_sig);
	save_series(w, "models", &s->models, s->models_sig);
}

/* A finite number member of object @o, or -EPROTO. */
static int get_num(const struct jsontape *t, size_t o, const char *k, double *out)
{
	size_t v = jt_get(t, o, k);
	if (jt_number(t, v, out) || !isfinite(*out))
		return -EPROTO;
	return 0;
}

/* A date member ("2026-11-26"), or -EPROTO. */
static int get_day(const struct jsontape *t, size_t o, const char *k, long *out)
{
	char s[16];
	if (jt_str(t, jt_get(t, o, k), s, sizeof(s)) < 0 || days_parse(s, out))
		return -EPROTO;
	return 0;
}

static int restore_series(const struct jsontape *t, size_t o, struct ce_series *out, char **sig)
{
	size_t sv = jt_get(t, o, "signature"), days = jt_get(t, o, "days");
	if (!jt_is(t, o, JT_OBJECT) || !jt_is(t, sv, JT_STRING) || !jt_is(t, days, JT_ARRAY))
		return -EPROTO;
	long prev = LONG_MIN;
	out->days = xcalloc(jt_count(t, days) + 1, sizeof(*out->days));
	for (size_t jd = jt_first(t, days); jd != JT_NONE; jd = jt_next(t, days, jd)) {
		long day;
		size_t est = jt_get(t, jd, "estimated"), gs = jt_get(t, jd, "groups");
		if (!jt_is(t, jd, JT_OBJECT) || get_day(t, jd, "day", &day) || day <= prev ||
		    (!jt_is(t, est, JT_TRUE) && !jt_is(t, est, JT_FALSE)) || !jt_is(t, gs, JT_ARRAY))
			return -EPROTO;
		prev = day;
		struct ce_day *d = &out->days[out->n++];
		d->day = day;
		d->estimated = jt_is(t, est, JT_TRUE);
		d->g = xcalloc(jt_count(t, gs) + 1, sizeof(*d->g));
		for (size_t g = jt_first(t, gs); g != JT_NONE; g = jt_next(t, gs, g)) {
			size_t k = jt_get(t, g, "k");
			struct ce_group *cg = &d->g[d->n];
			if (!jt_is(t, g, JT_OBJECT) || !jt_is(t, k, JT_ARRAY) || jt_count(t, k) > 2 ||
			    get_num(t, g, "amount", &cg->amount))
				return -EPROTO;
			d->n++;
			int q = 0;
			for (size_t kv = jt_first(t, k); kv != JT_NONE; kv = jt_next(t, k, kv), q++)
				if (!(cg->k[q] = jt_strdup(t, kv)))
					return -EPROTO;
		}
	}
	char *s = jt_strdup(t, sv);
	if (*s)
		*sig = s;
	else
		free(s);
	return 0;
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	size_t q = jt_get(t, root, "ce_requests");
	if (q == JT_NONE)
		return create(c); /* nothing saved */
	struct state *s = create(c);
	size_t sv = jt_get(t, root, "services");
	size_t values = jt_get(t, sv, "values");
	double count;
	if (!jt_is(t, q, JT_OBJECT) || get_day(t, q, "day", &s->meter.day) ||
	    get_num(t, q, "count", &count) || !(count >= 0 && count <= 1e9) ||
	    !jt_is(t, sv, JT_OBJECT) ||
	    get_num(t, sv, "at", &s->services_at) || !jt_is(t, jt_get(t, sv, "search"), JT_STRING) ||
	    !jt_is(t, values, JT_ARRAY) || get_num(t, root, "costs_at", &s->costs_at))
		goto corrupt;
	s->meter.count = (long)count;
	s->services_search = jt_strdup(t, jt_get(t, sv, "search"));
	for (size_t v = jt_first(t, values); v != JT_NONE; v = jt_next(t, values, v)) {
		char *str = jt_strdup(t, v);
		if (!str)
			goto corrupt;
		textlist_push(&s->services, str);
	}
	if (restore_series(t, jt_get(t, root, "spend"), &s->spend, &s->spend_sig) ||
	    restore_series(t, jt_get(t, root, "models"), &s->models, &s->models_sig))
		goto corrupt;

	char *want = spend_signature(c, &s->services);
	bool same = s->spend_sig && strcmp(want, s->spend_sig) == 0;
	free(want);
	if (same && s->costs_at > 0 && s->costs_at <= now) {
		out->has_data = true;
		out->at = s->costs_at;
	} else if (same && s->costs_at > now) {
		log_warn("state file's cost data is dated in the future (was the clock set back?); "
			 "querying again");
	} else if (s->costs_at > 0) {
		log_info("state file's cost data was queried with another configuration; querying again");
	}
	return s;
corrupt:
	snprintf(err, errlen, "the Cost Explorer cache (ce_requests, services, costs_at, spend, "
		 "models) is malformed");
	destroy(s);
	return NULL;
}

/* ---- collect ---- */

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	const struct conf *c = x->conf;
	long today = days_of_time(x->now);
	const struct project_catalog *cat = projects_catalog(source_peer(x->set, &projects_source));
	const struct project_catalog none = { 0 };
	size_t np = 0;
	const struct project **projects = project_catalog_flatten(cat ? cat : &none, &np);

	if (x->health->has_data) {
		struct attr_input in = { .projects = projects, .nprojects = np,
					 .keys = &c->ce_attribution_tags,
					 .tag_labels = &c->projects_tag_labels, .spend = &s->spend,
					 .models = &s->models, .today = today };
		struct attribution a;
		attribution_compute(&in, &a);
		for (size_t i = 0; i < a.nrows; i++)
			for (int w = 0; w < WIN_COUNT; w++)
				reg_addv(r, &m_project_cost[w], ce_money(a.rows[i].v[w]), "project_id",
					 a.rows[i].project_id, (char *)0);
		for (size_t i = 0; i < a.ntags; i++)
			for (int w = 0; w < WIN_COUNT; w++)
				if (m_tag_cost[w].name)
					reg_addv(r, &m_tag_cost[w], ce_money(a.tags[i].v[w]), "tag_key",
						 a.tags[i].key, "tag_value", a.tags[i].value, (char *)0);
		for (size_t i = 0; i < a.nambiguous; i++)
			reg_addv(r, &m_ambiguous, (double)a.ambiguous[i].projects, "attribution_value",
				 a.ambiguous[i].value, (char *)0);
		for (size_t i = 0; i < a.nmodels; i++) {
			const struct model_row *m = &a.models[i];
			reg_addv(r, &m_model_yesterday, ce_money(m->yesterday), "service", m->service,
				 "usage_type", m->usage_type, "model", m->model, "token_type",
				 m->token_type, (char *)0);
			reg_addv(r, &m_model_mtd, ce_money(m->month_to_date), "service", m->service,
				 "usage_type", m->usage_type, "model", m->model, "token_type",
				 m->token_type, (char *)0);
		}
		for (int w = 0; w < WIN_COUNT; w++) {
			long ws, we;
			days_window((enum window)w, today, &ws, &we);
			reg_addv(r, &m_window_estimated, a.estimated[w] ? 1 : 0, "window",
				 days_window_name((enum window)w), (char *)0);
			reg_addv(r, &m_window_start, days_start_time(ws), "window",
				 days_window_name((enum window)w), (char *)0);
		}
		attribution_free(&a);
	}
	for (size_t i = 0; i < c->budgets.n; i++) {
		const struct budget *b = &c->budgets.v[i];
		if (b->tag) {
			reg_addv(r, &m_tag_budget, b->monthly_usd, "tag_key", b->tag, "tag_value", b->value,
				 (char *)0);
			continue;
		}
		for (size_t j = 0; j < np; j++)
			if (strcmp(projects[j]->id, b->project) == 0 ||
			    strcmp(projects[j]->name, b->project) == 0)
				reg_addv(r, &m_project_budget, b->monthly_usd, "project_id", projects[j]->id,
					 (char *)0);
	}
	reg_addv(r, &m_billable, s->meter.billable_total, (char *)0);
	reg_addv(r, &m_spend, ce_money(s->meter.billable_total * c->ce_request_price_usd), (char *)0);
	reg_addv(r, &m_remaining,
		 (double)ce_meter_remaining(&s->meter, c->ce_max_requests_per_day, x->now), (char *)0);
	reg_addv(r, &m_ceiling, (double)c->ce_max_requests_per_day, (char *)0);
	free(projects);
}

const struct source_def cost_explorer_source = {
	.name = "cost_explorer",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 900,
	.create = create,
	.destroy = destroy,
	.reconfigure = reconfigure,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
};
