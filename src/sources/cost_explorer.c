/*
 * cost_explorer.c - see cost_explorer.h.
 *
 * The query plan: each exported window is read at the coarsest granularity that gives it,
 * in the order the windows matter (the spike alert first):
 *
 *   daily      DAILY   [today-1, today+1)         today, yesterday     every refresh
 *   baseline   MONTHLY [today-8, today-1)         the 7-day baseline   once a UTC day
 *   month      MONTHLY [month start, today+1)     month to date        every refresh
 *   previous   MONTHLY [previous month)           previous month       once a day until final
 *   models     DAILY, SERVICE x USAGE_TYPE, from the first day that can still change
 *              (the series spans the month, or the 16 days before today when the
 *              cloudwatch source is on, whichever starts first)
 *   judged     DAILY   [today-settle, +1 day)     the bill per project the cloudwatch
 *              estimates are judged on (with that source on)          once a UTC day
 *
 * A MONTHLY query answers one period per calendar month it touches, one group per tag
 * combination: a page or two however long the period. A query cut short (the daily
 * ceiling, a failure, a restart) keeps the pages it has and goes on from its next-page
 * token; completed queries keep serving until they are read again.
 */
#include "sources/cost_explorer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/s3.h"
#include "base/days.h"
#include "base/files.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/attribution.h"
#include "model/registry.h"
#include "sources/accounts.h"
#include "sources/ce_api.h"
#include "sources/data_exports.h"
#include "sources/projects.h"

#define DISCOVERY_INTERVAL 86400.0
/* More SERVICE names than this containing the search string is not Bedrock's answer. */
#define MAX_SERVICES 64

enum spend_query { Q_DAILY, Q_BASELINE, Q_MONTH, Q_PREVIOUS, Q_JUDGED, Q_COUNT };

/* In the state file and in messages. */
static const char *const query_names[Q_COUNT] = { "daily", "baseline", "month", "previous",
						  "judged" };
static const char *const query_windows[Q_COUNT] = { "today and yesterday", "baseline",
						    "month_to_date", "previous_month",
						    "the settled day the estimates are judged on" };

/* One spend query: its last complete answer, and an answer being filled. */
struct query {
	struct ce_series series; /* the last complete answer */
	long day;                /* the UTC day it answered for; 0 = never */
	struct ce_series partial;/* the pages of the answer being filled */
	struct ce_pages pages;   /* where that fill stands (token, pages) */
	long partial_day;        /* the UTC day that fill is for */
};

/*
 * One account's spend. Without an organization there is one, the credentials' own account
 * (id "": no LINKED_ACCOUNT filter); in an organization one per account this shard serves,
 * each query filtered on LINKED_ACCOUNT (the attribution tags fill both GroupBy slots).
 */
struct acct {
	char *id;
	char *spend_sig;           /* what the spend queries were asked with */
	struct query q[Q_COUNT];   /* grouped by the attribution tags */
	struct ce_series models;   /* grouped by SERVICE, USAGE_TYPE, daily */
	char *models_sig;
	double costs_at;           /* last refresh that brought every query up to date; 0 = never */
};

struct state {
	struct ce_meter meter;
	struct textlist services;  /* the SERVICE values filtered on */
	double services_at;        /* when discovered; 0 = never */
	char *services_search;     /* the search string they were discovered with */
	double shard0_wait_since;  /* another shard: since when shard 0 has had no names for it */
	struct acct *acct;         /* in the accounts source's order; never empty */
	size_t nacct;
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
static const struct metric_def m_cost_source = {
	"bedrock_cost_exporter_cost_source_info", METRIC_GAUGE,
	"Where the per-project, per-tag and per-model spend comes from: source=\"cost_explorer\" "
	"(GetCostAndUsage) or \"data_exports\" (CUR 2.0 line items, data_exports.enabled).",
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

/* Whether the periods of @s inside [from, to) cover each of its days. */
static bool covers(const struct ce_series *s, long from, long to)
{
	long next = from;
	for (size_t d = 0; d < s->n && next < to; d++) {
		const struct ce_day *p = &s->days[d];
		if (p->day < from || ce_day_end(p) > to)
			continue;
		if (p->day != next)
			return false;
		next = ce_day_end(p);
	}
	return next >= to;
}

/* Sum of the periods of @s inside [from, to). */
static double sum_within(const struct ce_series *s, long from, long to)
{
	double v = 0;
	for (size_t d = 0; d < s->n; d++)
		if (s->days[d].day >= from && ce_day_end(&s->days[d]) <= to)
			for (size_t j = 0; j < s->days[d].n; j++)
				v += s->days[d].g[j].amount;
	return v;
}

/* The first account's spend: the only one without an organization, what the forecast and
 * the cloudwatch source read (both run only then). */
static const struct acct *first(const struct state *s)
{
	static const struct acct none = { .id = "" };
	return s->nacct ? &s->acct[0] : &none;
}

bool cost_explorer_spend_before(const void *priv, long day, double *out)
{
	if (!priv)
		return false;
	const struct acct *s = first(priv);
	long m = days_month_start(day);
	const struct query *qm = &s->q[Q_MONTH], *qd = &s->q[Q_DAILY];
	/* the month's answer less the days from @day on, which the daily answer has */
	if (qm->day && qm->day >= day && days_month_start(qm->day) == m &&
	    covers(&qd->series, day, qm->day + 1)) {
		*out = sum_within(&qm->series, m, qm->day + 1) - sum_within(&qd->series, day, qm->day + 1);
		return true;
	}
	/* a daily answer that spans the month so far (a state file of the previous release) */
	if (covers(&qd->series, m, day)) {
		*out = sum_within(&qd->series, m, day);
		return true;
	}
	return false;
}

const struct ce_series *cost_explorer_spend(const void *priv)
{
	return priv ? &first(priv)->q[Q_DAILY].series : NULL;
}

static void *create(const struct conf *c)
{
	(void)c;
	struct state *s = xcalloc(1, sizeof(*s));
	s->acct = xcalloc(1, sizeof(*s->acct));
	s->acct[0].id = xstrdup("");
	s->nacct = 1;
	return s;
}

static void query_clear(struct query *q)
{
	ce_series_free(&q->series);
	ce_series_free(&q->partial);
	ce_pages_clear(&q->pages);
	q->day = q->partial_day = 0;
}

static void acct_free(struct acct *a)
{
	for (int i = 0; i < Q_COUNT; i++)
		query_clear(&a->q[i]);
	ce_series_free(&a->models);
	free(a->spend_sig);
	free(a->models_sig);
	free(a->id);
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	textlist_free(&s->services);
	free(s->services_search);
	for (size_t i = 0; i < s->nacct; i++)
		acct_free(&s->acct[i]);
	free(s->acct);
	free(s);
}

/* Makes the accounts those of @ids (NULL: the credentials' own, ""; an organization's
 * shard may have none), keeping the spend of those that stay. */
static void sync_accounts(struct state *s, const struct account_list *ids)
{
	size_t n = ids ? ids->n : 1;
	struct acct *v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		const char *id = ids ? ids->v[i].id : "";
		for (size_t j = 0; j < s->nacct && !v[i].id; j++)
			if (s->acct[j].id && strcmp(s->acct[j].id, id) == 0) {
				v[i] = s->acct[j];
				s->acct[j] = (struct acct){ 0 };
			}
		if (!v[i].id)
			v[i].id = xstrdup(id);
	}
	for (size_t j = 0; j < s->nacct; j++)
		if (s->acct[j].id)
			acct_free(&s->acct[j]);
	free(s->acct);
	s->acct = v;
	s->nacct = n;
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
	       old->dx_enabled != c->dx_enabled ||
	       !textlist_equal(&old->ce_services, &c->ce_services) ||
	       (!c->ce_services.n && strcmp(old->ce_service_search, c->ce_service_search) != 0);
}

/* With data_exports on, the source runs for the windows it serves from the export (and, with
 * cost_explorer on, the SERVICE names the forecast filters on), without GetCostAndUsage. */
static bool enabled(const struct conf *c)
{
	return c->ce_enabled || c->dx_enabled;
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

static int discover_parse(void *arg, const char *body, size_t len, char **next, size_t *items,
			  char *err, size_t errlen)
{
	struct discover_arg *d = arg;
	size_t before = d->found.n;
	int rc = ce_parse_dimension_values(body, len, &d->found, next, err, errlen);
	*items = d->found.n - before;
	if (!rc && d->found.n > 100 * MAX_SERVICES) {
		snprintf(err, errlen, "more than %d SERVICE values", 100 * MAX_SERVICES);
		rc = -EPROTO;
	}
	return rc;
}

/* Whether discover() will ask Cost Explorer: no services configured, and none discovered
 * within a day with the current search string. */
static bool discovery_due(const struct state *s, const struct conf *c, double now)
{
	return !c->ce_services.n &&
	       (s->services_at <= 0 || now - s->services_at >= DISCOVERY_INTERVAL ||
		!s->services_search || strcmp(s->services_search, c->ce_service_search) != 0);
}

/* How long another shard waits for shard 0's names before asking Cost Explorer itself, and
 * how old they may be (shard 0 rediscovers daily, at its next refresh after a day). */
#define SHARD0_WAIT 300.0
#define SHARD0_MAX_AGE (2 * DISCOVERY_INTERVAL)
/* The largest state read (statefile.h's limit). */
#define SHARD0_MAX_BYTES ((size_t)256 * 1024 * 1024)

/* Shard 0's state, read from its file or S3 object: 0 with @text (caller frees); -errno
 * with @err. */
static int read_shard0_state(struct source_ctx *x, char **text, size_t *len, char *err,
			     size_t errlen)
{
	const struct conf *c = x->conf;
	const char *where = c->shard0_state_file;
	if (!c->state_s3_bucket) {
		int rc = read_file_max(where, SHARD0_MAX_BYTES, text, len);
		if (rc)
			snprintf(err, errlen, "%s: %s", where, strerror(-rc));
		return rc;
	}
	char *bucket = NULL, *key = NULL;
	if (!conf_s3_url_split(where, &bucket, &key)) {
		snprintf(err, errlen, "%s is not s3://bucket/key", where);
		return -EINVAL;
	}
	char *url = s3_object_url(c->state_s3_endpoint, c->state_s3_region, bucket, key);
	free(bucket);
	free(key);
	struct hc_opts o = *x->http;
	o.max_body = SHARD0_MAX_BYTES;
	struct s3_ctx sx = { .hc = x->hc, .http = &o, .creds = x->creds, .conf = c, .now = x->now,
			     .get_op = apistats_op("s3", "GetObject"),
			     .put_op = apistats_op("s3", "PutObject") };
	struct hc_resp resp = { 0 };
	int rc = s3_get(&sx, url, c->state_s3_region, NULL, &resp, err, errlen);
	if (!rc && resp.status != 200) {
		snprintf(err, errlen, "%s: no object yet", url);
		rc = -ENOENT;
	}
	free(url);
	if (rc) {
		free(resp.body);
		return rc;
	}
	*text = resp.body;
	*len = resp.len;
	return 0;
}

/*
 * Another shard of a state_file naming {shard}: takes the Bedrock service names shard 0
 * discovered (its state's "services"), so that M shards ask GetDimensionValues once a day
 * as one exporter does. Returns 0 when taken; -EINPROGRESS with @err while shard 0 has
 * none yet (the poller asks again soon); 1 when it has had none for SHARD0_WAIT seconds:
 * this shard discovers them itself.
 */
static int services_from_shard0(struct state *s, struct source_ctx *x, char *err,
				size_t errlen)
{
	const struct conf *c = x->conf;
	char why[512] = "";
	char *text = NULL;
	size_t len = 0;
	struct jsontape t = { 0 };
	bool taken = false;
	if (!read_shard0_state(x, &text, &len, why, sizeof(why))) {
		size_t sv = JT_NONE, values = JT_NONE;
		double at = 0;
		if (jsontape_parse(&t, text, len) == 0) {
			sv = jt_get(&t, 0, "services");
			values = jt_get(&t, sv, "values");
		}
		if (!jt_is(&t, values, JT_ARRAY) || jt_number(&t, jt_get(&t, sv, "at"), &at) ||
		    !jt_str_eq(&t, jt_get(&t, sv, "search"), c->ce_service_search))
			snprintf(why, sizeof(why), "%s holds no service names discovered with "
				 "service_search \"%s\"", c->shard0_state_file, c->ce_service_search);
		else if (!(at > 0 && x->now - at < SHARD0_MAX_AGE))
			snprintf(why, sizeof(why), "%s holds service names older than %.0f days",
				 c->shard0_state_file, SHARD0_MAX_AGE / 86400);
		else
			taken = true;
		if (taken) {
			struct textlist got = { 0 };
			for (size_t v = jt_first(&t, values); v != JT_NONE; v = jt_next(&t, values, v)) {
				char *str = jt_strdup(&t, v);
				if (str && got.n < MAX_SERVICES)
					textlist_push(&got, str);
				else
					free(str);
			}
			qsort(got.v, got.n, sizeof(char *), cmp_str);
			if (!textlist_equal(&got, &s->services))
				log_info("Bedrock service names taken from shard 0", "state",
					 c->shard0_state_file, "count", LOG_INT((long)got.n));
			textlist_free(&s->services);
			s->services = got;
			s->services_at = x->now;
			free(s->services_search);
			s->services_search = xstrdup(c->ce_service_search);
			s->shard0_wait_since = 0;
		}
	}
	jsontape_free(&t);
	free(text);
	if (taken)
		return 0;
	if (s->shard0_wait_since <= 0)
		s->shard0_wait_since = x->now;
	if (!x->once && x->now - s->shard0_wait_since < SHARD0_WAIT) {
		snprintf(err, errlen, "waiting for shard 0 to discover the Bedrock service names "
			 "(%s)", why);
		return -EINPROGRESS;
	}
	log_warn("shard 0 has no Bedrock service names for this shard; discovering them here "
		 "(one GetDimensionValues a day)", "reason", why);
	s->shard0_wait_since = x->now; /* asked again in a day, when these are due */
	return 1;
}

/* The SERVICE values to filter on: configured, taken from shard 0, or discovered once a
 * day. */
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
	if (c->shard0_state_file) {
		int rc = services_from_shard0(s, x, err, errlen);
		if (rc <= 0)
			return rc;
	}
	long today = days_of_time(x->now), start, end;
	days_query_window(today, &start, &end);
	struct discover_arg da = { start, end, c->ce_service_search, { 0 } };
	struct ce_pages pg = { 0 };
	int rc = ce_paginate(x, &s->meter, OP_CE_GET_DIMENSION_VALUES, "GetDimensionValues",
			     discover_body, discover_parse, &da, &pg, err, errlen);
	ce_pages_clear(&pg);
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
	if (keep.n > MAX_SERVICES) {
		snprintf(err, errlen, "GetDimensionValues: %zu SERVICE values contain \"%s\" (at most %d "
			 "are taken for Bedrock; set cost_explorer.services or service_search)", keep.n,
			 c->ce_service_search, MAX_SERVICES);
		textlist_free(&keep);
		return -EPROTO;
	}
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
	struct ce_pages *pg; /* its expected size is raised from what the answer shows */
	size_t periods;      /* periods the whole answer holds */
};

static char *query_body(void *arg, const char *token)
{
	return ce_body_cost_and_usage(((struct query_arg *)arg)->q, token);
}

static size_t groups_of(const struct ce_series *s)
{
	size_t n = 0;
	for (size_t d = 0; d < s->n; d++)
		n += s->days[d].n;
	return n;
}

static int query_parse(void *arg, const char *body, size_t len, char **next, size_t *items,
		       char *err, size_t errlen)
{
	struct query_arg *a = arg;
	size_t before = groups_of(a->acc);
	int rc = ce_parse_cost_and_usage(body, len, a->q, a->acc, next, err, errlen);
	*items = groups_of(a->acc) - before;
	/* the expected size is a guess until the answer shows a whole period (one followed by
	 * another; the last one received may go on on the next page): then it is at least
	 * that period's groups x the periods */
	for (size_t d = 0; !rc && d + 1 < a->acc->n; d++)
		if (a->acc->days[d].n * a->periods > a->pg->expected)
			a->pg->expected = a->acc->days[d].n * a->periods;
	return rc;
}

long cost_explorer_judged_day(const struct conf *c, long today)
{
	long k = c->ce_settle_days < 1 ? 1 : c->ce_settle_days > CE_JUDGE_MAX ? CE_JUDGE_MAX
									  : c->ce_settle_days;
	return today - k;
}

/* Whether the cloudwatch source's estimates are judged (its source is on). */
static bool judging(const struct conf *c)
{
	return c->cw_enabled && c->projects_regions.n > 0;
}

/* The days and granularity of spend query @qi on UTC day @today. */
/* (@c is only read for Q_JUDGED.) */
static const char *query_window(const struct conf *c, int qi, long today, long *start,
				long *end)
{
	switch (qi) {
	case Q_JUDGED:
		*start = cost_explorer_judged_day(c, today);
		*end = *start + 1;
		return "DAILY";
	case Q_DAILY:
		*start = today - 1;
		*end = today + 1;
		return "DAILY";
	case Q_BASELINE:
		*start = today - 1 - BASELINE_DAYS;
		*end = today - 1;
		return "MONTHLY";
	case Q_MONTH:
		*start = days_month_start(today);
		*end = today + 1;
		return "MONTHLY";
	default:
		*start = days_prev_month(today);
		*end = days_month_start(today);
		return "MONTHLY";
	}
}

static bool any_estimated(const struct ce_series *s)
{
	for (size_t d = 0; d < s->n; d++)
		if (s->days[d].estimated)
			return true;
	return false;
}

/* Whether spend query @qi must be read on @today. */
static bool query_due(const struct acct *s, int qi, long today, const struct conf *c)
{
	const struct query *q = &s->q[qi];
	if (q->pages.token && q->partial_day == today)
		return true; /* a fill to go on with */
	switch (qi) {
	case Q_DAILY:
	case Q_MONTH:
		return true; /* today moves at every refresh */
	case Q_BASELINE:
		return q->day != today;
	case Q_JUDGED: /* a settled day does not change: once a day, for the next one */
		return judging(c) && q->day != today;
	default: {
		long start, end;
		query_window(c, qi, today, &start, &end);
		/* the previous month is final once Cost Explorer says so and the settling days
		 * after its end are over: then it is kept for the rest of the month */
		bool final = q->day && q->series.n && q->series.days[0].day == start &&
			     !any_estimated(&q->series) && q->day >= end + c->ce_settle_days;
		return !final && q->day != today;
	}
	}
}

/* Tag combinations to expect per period: the projects (each may be one) and the reserved
 * rows, or what an earlier answer held, whichever is more. */
static size_t expected_combos(const struct acct *s, const struct source_ctx *x)
{
	const struct project_catalog *cat = projects_catalog(source_peer(x->set, &projects_source));
	size_t n = 3;
	if (cat) {
		size_t np = 0;
		free(project_catalog_flatten(cat, s->id, &np));
		n += np;
	}
	for (int i = 0; i < Q_COUNT; i++)
		for (size_t d = 0; d < s->q[i].series.n; d++)
			if (s->q[i].series.days[d].n > n)
				n = s->q[i].series.days[d].n;
	return n;
}

/* Reads (or goes on reading) spend query @qi for @today. */
static int run_query(struct state *s, struct acct *ac, struct source_ctx *x, int qi, long today,
		     char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	struct query *q = &ac->q[qi];
	if (q->partial_day != today) { /* a fill of another day's window is of no use */
		ce_series_free(&q->partial);
		ce_pages_clear(&q->pages);
		q->partial_day = today;
	}
	struct ce_query cq = { .metric = c->ce_cost_metric, .services = &s->services,
			       .linked_account = ac->id, .ngroups = c->ce_attribution_tags.n };
	cq.granularity = query_window(c, qi, today, &cq.start, &cq.end);
	for (size_t i = 0; i < cq.ngroups; i++) {
		cq.group_type[i] = CE_GROUP_TAG;
		cq.group_key[i] = c->ce_attribution_tags.v[i];
	}
	if (s->services.n) {
		long periods = qi == Q_DAILY ? cq.end - cq.start
			       : days_month_start(cq.start) != days_month_start(cq.end - 1) ? 2 : 1;
		q->pages.expected = expected_combos(ac, x) * (size_t)periods;
		struct query_arg a = { &cq, &q->partial, &q->pages, (size_t)periods };
		int rc = ce_paginate(x, &s->meter, OP_CE_GET_COST_AND_USAGE, "GetCostAndUsage",
				     query_body, query_parse, &a, &q->pages, err, errlen);
		if (rc) {
			if (!q->pages.token) /* nothing to go on from: start over next time */
				ce_series_free(&q->partial);
			return rc;
		}
	}
	/* nothing billed as Bedrock yet: an empty answer, and nothing to pay for */
	ce_series_free(&q->series);
	q->series = q->partial;
	memset(&q->partial, 0, sizeof(q->partial));
	q->day = today;
	q->partial_day = 0;
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char a[11], b[11];
		days_format(cq.start, a);
		days_format(cq.end, b);
		log_debug("cost query read", "query", query_names[qi], "account", ac->id, "from", a,
			  "to", b);
	}
	return 0;
}

/*
 * Brings the daily per-model series up to date for [q->start, q->end): keeps the settled
 * days, asks again from the first day that can still change.
 */
static int refresh_models(struct state *st, struct acct *s, struct source_ctx *x,
			  struct ce_query *q, const char *want_sig, char *err, size_t errlen)
{
	long today = days_of_time(x->now);
	if (!s->models_sig || strcmp(s->models_sig, want_sig) != 0) {
		ce_series_free(&s->models);
		free(s->models_sig);
		s->models_sig = xstrdup(want_sig);
	}
	long from = q->start;
	for (; from < q->end; from++) {
		const struct ce_day *d = ce_series_find(&s->models, from);
		bool settled = d && !d->estimated && from < today - x->conf->ce_settle_days;
		if (!settled)
			break;
	}
	struct ce_series fresh = { 0 };
	struct ce_query qq = *q;
	qq.start = from;
	if (q->services->n) {
		struct ce_pages pg = { .expected = 64 * (size_t)(q->end - from) };
		struct query_arg a = { &qq, &fresh, &pg, (size_t)(q->end - from) };
		int rc = ce_paginate(x, &st->meter, OP_CE_GET_COST_AND_USAGE, "GetCostAndUsage",
				     query_body, query_parse, &a, &pg, err, errlen);
		ce_pages_clear(&pg);
		if (rc) {
			ce_series_free(&fresh);
			return rc;
		}
	}
	struct ce_series merged = { 0 };
	ce_series_copy_range(&s->models, q->start, from, &merged);
	merged.days = xrealloc(merged.days, (merged.n + fresh.n + 1) * sizeof(*merged.days));
	memcpy(merged.days + merged.n, fresh.days, fresh.n * sizeof(*fresh.days));
	merged.n += fresh.n;
	free(fresh.days);
	ce_series_free(&s->models);
	s->models = merged;
	return 0;
}

/* Whether any account's query @qi must be read on @today (or was never asked). */
static bool any_due(const struct state *s, int qi, long today, const struct conf *c)
{
	for (size_t a = 0; a < s->nacct; a++)
		if (!s->acct[a].spend_sig || query_due(&s->acct[a], qi, today, c))
			return true;
	return false;
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	x->state_changed = true; /* requests are counted even when the refresh fails */
	long today = days_of_time(x->now);
	int first_missing = 0; /* the first spend query not brought up to date */
	if (c->org_mode) {
		const struct account_list *ids =
			accounts_served(source_peer(x->set, &accounts_source));
		if (!ids) {
			snprintf(err, errlen, "no account to ask for yet (the accounts source has not "
				 "found this shard's accounts)");
			return -EAGAIN;
		}
		sync_accounts(s, ids);
	} else if (s->nacct != 1 || *s->acct[0].id) {
		sync_accounts(s, NULL);
	}
	if (c->dx_enabled) { /* the spend comes from the export: no GetCostAndUsage */
		int rc = c->ce_enabled ? discover(s, x, err, errlen) : 0;
		for (size_t a = 0; !rc && a < s->nacct; a++)
			s->acct[a].costs_at = x->now;
		return rc;
	}
	int rc = discover(s, x, err, errlen);
	if (rc == -EDQUOT)
		goto ceiling;
	if (rc)
		return rc;
	char *sig = spend_signature(c, &s->services);
	for (size_t a = 0; a < s->nacct; a++) {
		struct acct *ac = &s->acct[a];
		if (!ac->spend_sig || strcmp(ac->spend_sig, sig) != 0) {
			for (int i = 0; i < Q_COUNT; i++)
				query_clear(&ac->q[i]);
			free(ac->spend_sig);
			ac->spend_sig = xstrdup(sig);
		}
	}
	free(sig);
	/* each window for every account before the next window: the spike alert first */
	for (int i = 0; i < Q_COUNT; i++) {
		for (size_t a = 0; a < s->nacct; a++) {
			if (!query_due(&s->acct[a], i, today, c))
				continue;
			rc = run_query(s, &s->acct[a], x, i, today, err, errlen);
			if (rc == -EDQUOT) {
				first_missing = i;
				goto ceiling;
			}
			if (rc)
				return rc;
		}
	}
	first_missing = Q_COUNT;
	long mstart = days_month_start(today), end = today + 1;
	long mfirst = mstart < today - 1 ? mstart : today - 1;
	/* the cloudwatch source prices tokens with the days before today, also early in a
	 * month (settled days are kept, so this costs a page or two at most, once) */
	if (c->cw_enabled && mfirst > today - CE_CLOUDWATCH_DAYS)
		mfirst = today - CE_CLOUDWATCH_DAYS;
	sig = models_signature(c, &s->services);
	for (size_t a = 0; a < s->nacct; a++) {
		struct acct *ac = &s->acct[a];
		struct ce_query m = { .start = mfirst, .end = end,
				      .granularity = "DAILY", .metric = c->ce_cost_metric,
				      .services = &s->services, .linked_account = ac->id,
				      .ngroups = 2,
				      .group_type = { CE_GROUP_DIMENSION, CE_GROUP_DIMENSION },
				      .group_key = { "SERVICE", "USAGE_TYPE" } };
		rc = refresh_models(s, ac, x, &m, sig, err, errlen);
		if (rc)
			break;
		ac->costs_at = x->now;
	}
	free(sig);
	if (rc == -EDQUOT)
		goto ceiling;
	return rc;
ceiling:;
	/* what this refresh could not bring up to date, in the order it would have */
	struct buf missing;
	buf_init(&missing, 4096);
	for (int i = first_missing; i < Q_COUNT; i++)
		if (any_due(s, i, today, c))
			buf_printf(&missing, "%s%s", missing.len ? ", " : "", query_windows[i]);
	buf_printf(&missing, "%sthe per-model spend", missing.len ? ", " : "");
	if (s->nacct > 1)
		buf_printf(&missing, " (of %zu accounts)", s->nacct);
	snprintf(err, errlen, "daily ceiling of %ld requests reached (cost_explorer."
		 "max_requests_per_day); still to read: %s; it goes on after 00:00 UTC, or at once "
		 "after a SIGHUP that raises the ceiling", c->ce_max_requests_per_day, missing.data);
	buf_free(&missing);
	return -EDQUOT;
}

/* ---- the state file: ce_requests, services, costs_at, spend, spend_queries, models ---- */

static void save_days(struct jsonw *w, const struct ce_series *s)
{
	jsonw_key(w, "days");
	jsonw_array_begin(w);
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		char ds[11];
		days_format(d->day, ds);
		jsonw_object_begin(w);
		jsonw_key(w, "day");
		jsonw_string(w, ds);
		if (d->end) { /* a period longer than a day (MONTHLY) */
			days_format(d->end, ds);
			jsonw_key(w, "end");
			jsonw_string(w, ds);
		}
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
}

static void save_series(struct jsonw *w, const char *key, const struct ce_series *s,
			const char *sig)
{
	jsonw_key(w, key);
	jsonw_object_begin(w);
	jsonw_key(w, "signature");
	jsonw_string(w, sig);
	save_days(w, s);
	jsonw_object_end(w);
}

static void save_day_member(struct jsonw *w, const char *key, long day)
{
	char ds[11] = "";
	if (day)
		days_format(day, ds);
	jsonw_key(w, key);
	jsonw_string(w, ds);
}

/* The spend queries but the daily one (which "spend" holds, as it always did), and every
 * fill in progress with the pages it has and where it goes on. */
static void save_queries(struct jsonw *w, const struct acct *s)
{
	jsonw_key(w, "spend_queries");
	jsonw_object_begin(w);
	for (int i = 0; i < Q_COUNT; i++) {
		const struct query *q = &s->q[i];
		if (i == Q_JUDGED && !q->day && !q->pages.token)
			continue; /* never read (the cloudwatch source is off): as the file was */
		jsonw_key(w, query_names[i]);
		jsonw_object_begin(w);
		save_day_member(w, "day", q->day);
		if (i != Q_DAILY)
			save_days(w, &q->series);
		if (q->pages.token) {
			jsonw_key(w, "partial");
			jsonw_object_begin(w);
			save_day_member(w, "day", q->partial_day);
			jsonw_key(w, "pages");
			jsonw_int(w, q->pages.pages);
			jsonw_key(w, "per_page");
			jsonw_int(w, (long long)q->pages.per_page);
			jsonw_key(w, "token");
			jsonw_string(w, q->pages.token);
			save_days(w, &q->partial);
			jsonw_object_end(w);
		}
		jsonw_object_end(w);
	}
	jsonw_object_end(w);
}

/* One account's members: costs_at, spend, spend_queries, models. */
static void save_acct(struct jsonw *w, const struct acct *a)
{
	jsonw_key(w, "costs_at");
	jsonw_number(w, a->costs_at);
	save_series(w, "spend", &a->q[Q_DAILY].series, a->spend_sig);
	save_queries(w, a);
	save_series(w, "models", &a->models, a->models_sig);
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
	if (s->nacct == 1 && !*s->acct[0].id) {
		save_acct(w, &s->acct[0]); /* as the file always was */
		return;
	}
	/* an organization: "ce_accounts": {"<account>": {<the same members>}, ...} */
	jsonw_key(w, "ce_accounts");
	jsonw_object_begin(w);
	for (size_t i = 0; i < s->nacct; i++) {
		jsonw_key(w, s->acct[i].id);
		jsonw_object_begin(w);
		save_acct(w, &s->acct[i]);
		jsonw_object_end(w);
	}
	jsonw_object_end(w);
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

/* A date member that may be "" (0), or -EPROTO. */
static int get_day_or_none(const struct jsontape *t, size_t o, const char *k, long *out)
{
	if (jt_str_eq(t, jt_get(t, o, k), "")) {
		*out = 0;
		return 0;
	}
	return get_day(t, o, k, out);
}

/* The periods of array @days into @out (empty), ascending, each with its groups. */
static int restore_days(const struct jsontape *t, size_t days, struct ce_series *out)
{
	if (!jt_is(t, days, JT_ARRAY))
		return -EPROTO;
	long prev = LONG_MIN;
	out->days = xcalloc(jt_count(t, days) + 1, sizeof(*out->days));
	for (size_t jd = jt_first(t, days); jd != JT_NONE; jd = jt_next(t, days, jd)) {
		long day, end = 0;
		size_t est = jt_get(t, jd, "estimated"), gs = jt_get(t, jd, "groups");
		if (!jt_is(t, jd, JT_OBJECT) || get_day(t, jd, "day", &day) || day < prev ||
		    (jt_get(t, jd, "end") != JT_NONE && (get_day(t, jd, "end", &end) || end <= day)) ||
		    (!jt_is(t, est, JT_TRUE) && !jt_is(t, est, JT_FALSE)) || !jt_is(t, gs, JT_ARRAY))
			return -EPROTO;
		prev = end ? end : day + 1;
		struct ce_day *d = &out->days[out->n++];
		d->day = day;
		d->end = end;
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
	return 0;
}

static int restore_series(const struct jsontape *t, size_t o, struct ce_series *out, char **sig)
{
	size_t sv = jt_get(t, o, "signature");
	if (!jt_is(t, o, JT_OBJECT) || !jt_is(t, sv, JT_STRING) ||
	    restore_days(t, jt_get(t, o, "days"), out))
		return -EPROTO;
	char *s = jt_strdup(t, sv);
	if (*s)
		*sig = s;
	else
		free(s);
	return 0;
}

/* "spend_queries" (absent in a file of the previous release: nothing to restore). */
static int restore_queries(const struct jsontape *t, size_t o, struct acct *s)
{
	if (o == JT_NONE)
		return 0;
	if (!jt_is(t, o, JT_OBJECT))
		return -EPROTO;
	for (int i = 0; i < Q_COUNT; i++) {
		size_t qo = jt_get(t, o, query_names[i]);
		struct query *q = &s->q[i];
		if (qo == JT_NONE)
			continue;
		if (!jt_is(t, qo, JT_OBJECT) || get_day_or_none(t, qo, "day", &q->day) ||
		    (i != Q_DAILY && restore_days(t, jt_get(t, qo, "days"), &q->series)))
			return -EPROTO;
		size_t p = jt_get(t, qo, "partial");
		if (p == JT_NONE)
			continue;
		double pages, per_page;
		char *token = jt_strdup(t, jt_get(t, p, "token"));
		if (!token || !*token || strlen(token) > 8192 || get_day(t, p, "day", &q->partial_day) ||
		    get_num(t, p, "pages", &pages) || !(pages >= 0 && pages <= 1e6) ||
		    get_num(t, p, "per_page", &per_page) || !(per_page >= 0 && per_page <= 1e9) ||
		    restore_days(t, jt_get(t, p, "days"), &q->partial)) {
			free(token);
			return -EPROTO;
		}
		q->pages.token = token;
		q->pages.pages = (long)pages;
		q->pages.per_page = (size_t)per_page;
	}
	return 0;
}

/* One account's members of object @o into @a; whether it can be served at @now as asked
 * with the services of @s and @c, in *@same. */
static int restore_acct(const struct jsontape *t, size_t o, struct acct *a, const struct state *s,
			const struct conf *c, double now, bool *same)
{
	if (get_num(t, o, "costs_at", &a->costs_at) ||
	    restore_series(t, jt_get(t, o, "spend"), &a->q[Q_DAILY].series, &a->spend_sig) ||
	    restore_queries(t, jt_get(t, o, "spend_queries"), a) ||
	    restore_series(t, jt_get(t, o, "models"), &a->models, &a->models_sig))
		return -EPROTO;
	/* A file of the previous release has the daily series only (for the day it was read):
	 * it is served at once and the other queries are made at once. */
	if (jt_get(t, o, "spend_queries") == JT_NONE && a->costs_at > 0)
		a->q[Q_DAILY].day = days_of_time(a->costs_at);
	char *want = spend_signature(c, &s->services);
	*same = a->spend_sig && strcmp(want, a->spend_sig) == 0 && a->costs_at > 0 &&
		a->costs_at <= now;
	free(want);
	if (a->costs_at > now)
		log_warn("state file's cost data is dated in the future (was the clock set back?); "
			 "querying again", "account", a->id);
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
	    !jt_is(t, values, JT_ARRAY))
		goto corrupt;
	s->meter.count = (long)count;
	s->services_search = jt_strdup(t, jt_get(t, sv, "search"));
	for (size_t v = jt_first(t, values); v != JT_NONE; v = jt_next(t, values, v)) {
		char *str = jt_strdup(t, v);
		if (!str)
			goto corrupt;
		textlist_push(&s->services, str);
	}
	size_t orgs = jt_get(t, root, "ce_accounts");
	bool all_same = true, previous_release = false;
	double oldest = 0;
	if (c->org_mode != (orgs != JT_NONE)) {
		all_same = false; /* saved for another setup: asked again */
	} else if (orgs != JT_NONE) {
		if (!jt_is(t, orgs, JT_OBJECT))
			goto corrupt;
		acct_free(&s->acct[0]);
		s->nacct = 0;
		s->acct = xrealloc(s->acct, (jt_count(t, orgs) + 1) * sizeof(*s->acct));
		for (size_t k = jt_first(t, orgs); k != JT_NONE; k = jt_next(t, orgs, k)) {
			struct acct *a = &s->acct[s->nacct];
			*a = (struct acct){ .id = jt_strdup(t, k) };
			s->nacct++;
			bool same;
			if (!a->id || !conf_account_id_ok(a->id) || !jt_is(t, k + 1, JT_OBJECT) ||
			    restore_acct(t, k + 1, a, s, c, now, &same))
				goto corrupt;
			all_same = all_same && same;
			if (!oldest || a->costs_at < oldest)
				oldest = a->costs_at;
		}

	} else {
		if (restore_acct(t, root, &s->acct[0], s, c, now, &all_same))
			goto corrupt;
		oldest = s->acct[0].costs_at;
		previous_release = jt_get(t, root, "spend_queries") == JT_NONE;
	}
	if (all_same) {
		out->has_data = true;
		out->at = previous_release ? 0 : oldest;
		log_info("Cost Explorer data restored", "requests_left_today",
			 LOG_INT(ce_meter_remaining(&s->meter, c->ce_max_requests_per_day, now)));
	} else if (oldest > 0 && oldest <= now) {
		log_info("state file's cost data was queried with another configuration; querying again");
	}
	return s;
corrupt:
	snprintf(err, errlen, "the Cost Explorer cache (ce_requests, services, costs_at, spend, "
		 "spend_queries, models, ce_accounts) is malformed");
	destroy(s);
	return NULL;
}

/* ---- collect ---- */

/*
 * The answer each window is served from (NULL: not known yet, no series). The daily and the
 * month's answers serve only on the day they were read and the day after: after midnight,
 * until the next refresh, the daily answer has yesterday but not today (today is 0), the
 * month's answer is the month to date without today (or, read on the last day of a month,
 * the whole previous month, and the new month to date is 0). Older ones (an outage over two
 * midnights, a clock set back) would serve a wrong 0. The baseline is served for its own days
 * (window_start says which); the previous month's answer while it is that month.
 */
static void choose_windows(const struct acct *s, long today, struct attr_input *in)
{
	static const struct ce_series empty;
	const struct query *qd = &s->q[Q_DAILY], *qb = &s->q[Q_BASELINE], *qm = &s->q[Q_MONTH];
	const struct query *qp = &s->q[Q_PREVIOUS];
	long m = days_month_start(today), p = days_prev_month(today);
	if (qd->day && (qd->day == today || qd->day == today - 1)) {
		in->spend[WIN_TODAY] = &qd->series;
		in->spend[WIN_YESTERDAY] = &qd->series;
	}
	if (qb->day) {
		in->spend[WIN_BASELINE] = &qb->series;
		query_window(NULL, Q_BASELINE, qb->day, &in->from[WIN_BASELINE],
			     &in->to[WIN_BASELINE]);
	}
	bool month_fresh = qm->day && (qm->day == today || qm->day == today - 1);
	if (month_fresh)
		in->spend[WIN_MONTH_TO_DATE] = days_month_start(qm->day) == m ? &qm->series : &empty;
	if (qp->day && qp->series.n && qp->series.days[0].day == p)
		in->spend[WIN_PREVIOUS_MONTH] = &qp->series;
	else if (qm->day == today - 1 && days_month_start(qm->day) == p)
		in->spend[WIN_PREVIOUS_MONTH] = &qm->series;
	/* a daily answer that spans a window (a state file of the previous release) */
	for (int w = 0; w < WIN_COUNT && qd->day; w++) {
		long ws, we;
		days_window((enum window)w, today, &ws, &we);
		if (we > qd->day + 1)
			we = qd->day + 1;
		if (!in->spend[w] && ws < we && covers(&qd->series, ws, we))
			in->spend[w] = &qd->series;
	}
}

const struct ce_series *cost_explorer_models(const void *priv)
{
	const struct acct *s = priv ? first(priv) : NULL;
	return s && s->models_sig ? &s->models : NULL;
}

/* As cost_explorer_attribute, with the flattened catalog it used in *@projects (the caller
 * frees the array, not the projects) and its input in @in. */
/* The input of an attribution on UTC day @today, no window chosen yet: the projects
 * catalog flattened into *@projects (the caller frees the array, not the projects). */
static void attr_input_init(const struct conf *c, const struct source_set *set,
			    const struct acct *a, long today, const struct project ***projects,
			    size_t *np, struct attr_input *in)
{
	const struct project_catalog *cat = projects_catalog(source_peer(set, &projects_source));
	const struct project_catalog none = { 0 };
	*np = 0;
	/* an account's spend goes to that account's projects only */
	*projects = project_catalog_flatten(cat ? cat : &none, a->id, np);
	*in = (struct attr_input){ .projects = *projects, .nprojects = *np,
				   .keys = &c->ce_attribution_tags,
				   .tag_labels = &c->projects_tag_labels, .today = today };
}

static void attribute(const struct acct *s, const struct conf *c, const struct source_set *set,
		      long today, struct attribution *a, const struct project ***projects,
		      size_t *np, struct attr_input *in)
{
	attr_input_init(c, set, s, today, projects, np, in);
	if (c->dx_enabled) { /* one cost model, two sources: the same attribution */
		const void *dx = source_peer(set, &data_exports_source);
		const struct ce_series *daily = data_exports_spend(dx, s->id);
		if (daily)
			attribution_spend_all(in, daily);
		in->models = data_exports_models(dx, s->id);
	} else {
		in->models = s->models_sig ? &s->models : NULL;
		choose_windows(s, today, in);
	}
	attribution_compute(in, a);
}

void cost_explorer_attribute(const void *priv, const struct conf *c,
			     const struct source_set *set, long today, struct attribution *out)
{
	const struct project **projects;
	size_t np;
	struct attr_input in;
	attribute(first(priv), c, set, today, out, &projects, &np, &in);
	free(projects);
}

void cost_explorer_attribute_judged(const void *priv, const struct conf *c,
				    const struct source_set *set, long today,
				    struct attribution *out)
{
	const struct acct *s = first(priv);
	const struct query *q = &s->q[Q_JUDGED];
	long day = cost_explorer_judged_day(c, today);
	const struct project **projects;
	size_t np;
	struct attr_input in;
	/* the windows of the day after it: its "yesterday" is the judged day */
	attr_input_init(c, set, s, day + 1, &projects, &np, &in);
	const struct ce_series *dx = c->dx_enabled
		? data_exports_spend(source_peer(set, &data_exports_source), s->id) : NULL;
	if (dx && covers(dx, day, day + 1))
		in.spend[WIN_YESTERDAY] = dx;
	else if (!c->dx_enabled && q->day && covers(&q->series, day, day + 1))
		in.spend[WIN_YESTERDAY] = &q->series;
	attribution_compute(&in, out);
	free(projects);
}

/* The families of account @ac (label @account) into @r. */
static void collect_acct(const struct acct *ac, const char *account, const struct collect_ctx *x,
			 struct reg *r)
{
	const struct conf *c = x->conf;
	long today = days_of_time(x->now);
	size_t np = 0;
	const struct project **projects;
	struct attribution a;
	struct attr_input in;
	attribute(ac, c, x->set, today, &a, &projects, &np, &in);
	for (int w = 0; w < WIN_COUNT; w++) {
		if (!a.present[w])
			continue; /* not read yet: no series rather than a wrong 0 */
		for (size_t i = 0; i < a.nrows; i++)
			reg_addv(r, &m_project_cost[w], ce_money(a.rows[i].v[w]), "account_id", account,
				 "project_id", a.rows[i].project_id, (char *)0);
		for (size_t i = 0; m_tag_cost[w].name && i < a.ntags; i++)
			reg_addv(r, &m_tag_cost[w], ce_money(a.tags[i].v[w]), "account_id", account,
				 "tag_key", a.tags[i].key, "tag_value", a.tags[i].value, (char *)0);
		long ws, we;
		days_window((enum window)w, today, &ws, &we);
		if (in.from[w] || in.to[w])
			ws = in.from[w];
		reg_addv(r, &m_window_estimated, a.estimated[w] ? 1 : 0, "account_id", account,
			 "window", days_window_name((enum window)w), (char *)0);
		reg_addv(r, &m_window_start, days_start_time(ws), "account_id", account, "window",
			 days_window_name((enum window)w), (char *)0);
	}
	for (size_t i = 0; i < a.nambiguous; i++)
		reg_addv(r, &m_ambiguous, (double)a.ambiguous[i].projects, "account_id", account,
			 "attribution_value", a.ambiguous[i].value, (char *)0);
	for (size_t i = 0; i < a.nmodels; i++) {
		const struct model_row *mr = &a.models[i];
		reg_addv(r, &m_model_yesterday, ce_money(mr->yesterday), "account_id", account,
			 "service", mr->service, "usage_type", mr->usage_type, "model", mr->model,
			 "token_type", mr->token_type, (char *)0);
		reg_addv(r, &m_model_mtd, ce_money(mr->month_to_date), "account_id", account,
			 "service", mr->service, "usage_type", mr->usage_type, "model", mr->model,
			 "token_type", mr->token_type, (char *)0);
	}
	attribution_free(&a);
	/* a tag budget holds in every account: each account's spend is measured against it */
	for (size_t i = 0; i < c->budgets.n; i++) {
		const struct budget *b = &c->budgets.v[i];
		if (b->tag)
			reg_addv(r, &m_tag_budget, b->monthly_usd, "account_id", account, "tag_key",
				 b->tag, "tag_value", b->value, (char *)0);
		for (size_t j = 0; !b->tag && j < np; j++)
			if (strcmp(projects[j]->id, b->project) == 0 ||
			    strcmp(projects[j]->name, b->project) == 0)
				reg_addv(r, &m_project_budget, b->monthly_usd, "account_id", account,
					 "project_id", projects[j]->id, (char *)0);
	}
	free(projects);
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	const struct conf *c = x->conf;
	for (size_t i = 0; i < s->nacct; i++)
		collect_acct(&s->acct[i], *s->acct[i].id ? s->acct[i].id : accounts_label(x->set), x,
			     r);
	reg_addv(r, &m_cost_source, 1, "source", c->dx_enabled ? "data_exports" : "cost_explorer",
		 (char *)0);
	reg_addv(r, &m_billable, s->meter.billable_total, (char *)0);
	reg_addv(r, &m_spend, ce_money(s->meter.billable_total * c->ce_request_price_usd), (char *)0);
	reg_addv(r, &m_remaining,
		 (double)ce_meter_remaining(&s->meter, c->ce_max_requests_per_day, x->now), (char *)0);
	reg_addv(r, &m_ceiling, (double)c->ce_max_requests_per_day, (char *)0);
}

static const struct api_op_def operations[] = {
	{ "cost_explorer", "GetCostAndUsage" },
	{ "cost_explorer", "GetDimensionValues" },
	{ NULL, NULL },
};

/* Another replica's newer part replaces this one: the requests this replica counted today
 * stay counted (the larger of the two meters), so the daily ceiling is not reset by it. */
static void adopt(const void *old, void *fresh)
{
	const struct state *o = old;
	struct state *f = fresh;
	double total = o->meter.billable_total > f->meter.billable_total
			       ? o->meter.billable_total
			       : f->meter.billable_total;
	if (o->meter.day == f->meter.day && o->meter.count > f->meter.count)
		f->meter.count = o->meter.count;
	if (o->meter.day > f->meter.day)
		f->meter = o->meter;
	f->meter.billable_total = total;
}

const struct source_def cost_explorer_source = {
	.name = "cost_explorer",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 900,
	.operations = operations,
	.create = create,
	.destroy = destroy,
	.adopt = adopt,
	.reconfigure = reconfigure,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
};
