/*
 * metrics.c - see metrics.h.
 */
#include "model/metrics.h"

#include <curl/curl.h>
#include <math.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/apistats.h"
#include "model/attribution.h"
#include "base/days.h"
#include "model/registry.h"
#include "base/strmap.h"
#include "base/version.h"

static const struct metric_def m_project_info = {
	"bedrock_cost_project_info", METRIC_GAUGE,
	"Bedrock project from the Projects API (bedrock-mantle), value 1; one tag_<key> label per "
	"projects.tag_labels entry. Refreshed every projects.refresh_interval seconds.",
};
static const struct metric_def m_project_tag_info = {
	"bedrock_cost_project_tag_info", METRIC_GAUGE,
	"Every tag of every Bedrock project, raw key and value, value 1. From the Projects API.",
};
static const struct metric_def m_project_created = {
	"bedrock_cost_project_created_timestamp_seconds", METRIC_GAUGE,
	"When the Bedrock project was created (Unix seconds), from the Projects API.",
};
static const struct metric_def m_projects = {
	"bedrock_cost_projects", METRIC_GAUGE,
	"Number of Bedrock projects per region and status, from the Projects API (quota: 1,000 "
	"per region).",
};
static const struct metric_def m_build_info = {
	"bedrock_cost_exporter_build_info", METRIC_GAUGE,
	"Version and libraries of this bedrock-cost-exporter, value 1.",
};
static const struct metric_def m_source_up = {
	"bedrock_cost_exporter_source_up", METRIC_GAUGE,
	"1 if the last refresh of the source succeeded, 0 if it failed or has not run; the last "
	"good data is still served.",
};
static const struct metric_def m_last_success = {
	"bedrock_cost_exporter_last_success_timestamp_seconds", METRIC_GAUGE,
	"When the source last refreshed successfully (Unix seconds; 0 = never).",
};
static const struct metric_def m_last_attempt = {
	"bedrock_cost_exporter_last_attempt_timestamp_seconds", METRIC_GAUGE,
	"When the source last tried to refresh (Unix seconds; 0 = never).",
};
static const struct metric_def m_refresh_duration = {
	"bedrock_cost_exporter_refresh_duration_seconds", METRIC_GAUGE,
	"Wall time of the source's last refresh, retries included.",
};
static const struct metric_def m_reload_ok = {
	"bedrock_cost_exporter_config_last_reload_successful", METRIC_GAUGE,
	"1 if the last configuration load (start or SIGHUP) succeeded; 0 if it was rejected and the "
	"previous configuration kept.",
};
static const struct metric_def m_reload_ts = {
	"bedrock_cost_exporter_config_last_reload_success_timestamp_seconds", METRIC_GAUGE,
	"When the configuration was last loaded successfully (Unix seconds).",
};

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
static const struct metric_def m_forecast[3] = {
	{ "bedrock_cost_month_forecast_usd", METRIC_GAUGE,
	  "Forecast Bedrock spend for the whole current UTC month, USD: actual spend before the "
	  "forecast's day plus GetCostForecast's mean for the rest of the month." },
	{ "bedrock_cost_month_forecast_lower_usd", METRIC_GAUGE,
	  "Lower bound (80% prediction interval) of bedrock_cost_month_forecast_usd." },
	{ "bedrock_cost_month_forecast_upper_usd", METRIC_GAUGE,
	  "Upper bound (80% prediction interval) of bedrock_cost_month_forecast_usd." },
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
static const struct metric_def m_tag_active = {
	"bedrock_cost_allocation_tag_active", METRIC_GAUGE,
	"1 if the tag key is an active cost allocation tag (ListCostAllocationTags), else 0; "
	"inactive keys cannot group spend.",
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

/*
 * Cost Explorer amounts carry at most 10 decimals; sums of doubles grow noise
 * below that (155.19560290789997). Rounding to 1e-10 USD prints 155.1956029079.
 */
static double money(double v)
{
	return round(v * 1e10) / 1e10;
}

/* Sum of every group of @s over days [from, to). */
static double series_sum(const struct ce_series *s, long from, long to)
{
	double v = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->days[i].day >= from && s->days[i].day < to)
			for (size_t j = 0; j < s->days[i].n; j++)
				v += s->days[i].g[j].amount;
	return v;
}

static void collect_costs(const struct exporter_state *st, struct reg *r)
{
	const struct conf *c = st->conf;
	const struct ce_source *ce = &st->ce;
	long today = days_of_time(st->now);

	size_t np = 0;
	for (size_t i = 0; i < st->nregions; i++)
		np += st->regions[i].projects.n;
	const struct project **projects = xcalloc(np + 1, sizeof(*projects));
	np = 0;
	for (size_t i = 0; i < st->nregions; i++)
		for (size_t j = 0; j < st->regions[i].projects.n; j++)
			projects[np++] = &st->regions[i].projects.v[j];

	if (st->costs.has_data) {
		struct attr_input in = { .projects = projects, .nprojects = np,
					 .keys = &c->ce_attribution_tags,
					 .tag_labels = &c->projects_tag_labels, .spend = &ce->spend,
					 .models = &ce->models, .today = today };
		struct attribution a;
		attribution_compute(&in, &a);
		for (size_t i = 0; i < a.nrows; i++)
			for (int w = 0; w < WIN_COUNT; w++)
				reg_addv(r, &m_project_cost[w], money(a.rows[i].v[w]), "project_id",
					 a.rows[i].project_id, (char *)0);
		for (size_t i = 0; i < a.ntags; i++)
			for (int w = 0; w < WIN_COUNT; w++)
				if (m_tag_cost[w].name)
					reg_addv(r, &m_tag_cost[w], money(a.tags[i].v[w]), "tag_key", a.tags[i].key,
						 "tag_value", a.tags[i].value, (char *)0);
		for (size_t i = 0; i < a.nambiguous; i++)
			reg_addv(r, &m_ambiguous, (double)a.ambiguous[i].projects, "attribution_value",
				 a.ambiguous[i].value, (char *)0);
		for (size_t i = 0; i < a.nmodels; i++) {
			const struct model_row *m = &a.models[i];
			reg_addv(r, &m_model_yesterday, money(m->yesterday), "service", m->service, "usage_type",
				 m->usage_type, "model", m->model, "token_type", m->token_type, (char *)0);
			reg_addv(r, &m_model_mtd, money(m->month_to_date), "service", m->service, "usage_type",
				 m->usage_type, "model", m->model, "token_type", m->token_type, (char *)0);
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
	if (st->forecast.has_data && ce->has_forecast &&
	    days_month_start(ce->forecast_day) == days_month_start(today)) {
		double actual = series_sum(&ce->spend, days_month_start(today), ce->forecast_day);
		reg_addv(r, &m_forecast[0], money(actual + ce->forecast_mean), (char *)0);
		reg_addv(r, &m_forecast[1], money(actual + ce->forecast_lower), (char *)0);
		reg_addv(r, &m_forecast[2], money(actual + ce->forecast_upper), (char *)0);
	}
	if (st->alloc_tags.has_data)
		for (size_t i = 0; i < ce->tag_keys.n; i++)
			reg_addv(r, &m_tag_active, ce->tag_active[i] ? 1 : 0, "tag_key", ce->tag_keys.v[i],
				 (char *)0);
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
	reg_addv(r, &m_billable, ce->billable_total, (char *)0);
	reg_addv(r, &m_spend, money(ce->billable_total * c->ce_request_price_usd), (char *)0);
	reg_addv(r, &m_remaining, (double)ce_requests_remaining(ce, c, st->now), (char *)0);
	reg_addv(r, &m_ceiling, (double)c->ce_max_requests_per_day, (char *)0);
	free(projects);
}

static void collect_projects(const struct exporter_state *st, struct reg *r)
{
	const struct conf *c = st->conf;
	size_t ntl = c->projects_tag_labels.n;
	size_t nl = 5 + ntl;
	const char **names = xcalloc(nl, sizeof(*names));
	const char **values = xcalloc(nl, sizeof(*values));
	names[0] = "region";
	names[1] = "project_id";
	names[2] = "project_name";
	names[3] = "project_arn";
	names[4] = "status";
	for (size_t k = 0; k < ntl; k++)
		names[5 + k] = c->projects_tag_label_names.v[k];

	for (size_t i = 0; i < st->nregions; i++) {
		const struct region_state *rs = &st->regions[i];
		if (!rs->has_data)
			continue;
		/* count per status; active and archived always exist, others as seen */
		struct strmap *idx = strmap_new();
		const char **status = xcalloc(rs->projects.n + 2, sizeof(*status));
		size_t *count = xcalloc(rs->projects.n + 2, sizeof(*count));
		size_t nstatus = 0;
		status[nstatus++] = "active";
		status[nstatus++] = "archived";
		strmap_put(idx, "active", (void *)(uintptr_t)1);
		strmap_put(idx, "archived", (void *)(uintptr_t)2);
		for (size_t j = 0; j < rs->projects.n; j++) {
			const struct project *p = &rs->projects.v[j];
			values[0] = rs->region;
			values[1] = p->id;
			values[2] = p->name;
			values[3] = p->arn;
			values[4] = p->status;
			for (size_t k = 0; k < ntl; k++) {
				const char *v = project_tag(p, c->projects_tag_labels.v[k]);
				values[5 + k] = v ? v : "";
			}
			reg_add(r, &m_project_info, 1, nl, names, values);
			reg_addv(r, &m_project_created, p->created_at, "region", rs->region,
				 "project_id", p->id, (char *)0);
			for (size_t t = 0; t < p->ntags; t++)
				reg_addv(r, &m_project_tag_info, 1, "region", rs->region, "project_id",
					 p->id, "key", p->tags[t].key, "value", p->tags[t].value,
					 (char *)0);
			uintptr_t slot = (uintptr_t)strmap_get(idx, p->status, NULL);
			if (!slot) {
				status[nstatus] = p->status;
				slot = ++nstatus;
				strmap_put(idx, p->status, (void *)slot);
			}
			count[slot - 1]++;
		}
		for (size_t j = 0; j < nstatus; j++)
			reg_addv(r, &m_projects, (double)count[j], "region", rs->region, "status",
				 status[j], (char *)0);
		strmap_free(idx);
		free(status);
		free(count);
	}
	free(names);
	free(values);
}

static void collect_source(const struct source_state *s, struct reg *r)
{
	if (!s->enabled)
		return;
	reg_addv(r, &m_source_up, s->up ? 1 : 0, "source", s->name, (char *)0);
	reg_addv(r, &m_last_success, s->last_success, "source", s->name, (char *)0);
	reg_addv(r, &m_last_attempt, s->last_attempt, "source", s->name, (char *)0);
	reg_addv(r, &m_refresh_duration, s->last_duration, "source", s->name, (char *)0);
}

int metrics_render(const struct exporter_state *st, struct buf *out)
{
	struct reg *r = reg_new();
	char mhd[32];
	snprintf(mhd, sizeof(mhd), "%s", MHD_get_version());
	reg_addv(r, &m_build_info, 1, "version", BCE_VERSION, "revision", BCE_REVISION, "libcurl",
		 curl_version_info(CURLVERSION_NOW)->version, "libmicrohttpd", mhd, (char *)0);
	collect_source(&st->projects, r);
	collect_source(&st->costs, r);
	collect_source(&st->forecast, r);
	collect_source(&st->alloc_tags, r);
	reg_addv(r, &m_reload_ok, st->reload_ok ? 1 : 0, (char *)0);
	reg_addv(r, &m_reload_ts, st->reload_success_ts, (char *)0);
	apistats_collect(r);
	if (st->projects.enabled)
		collect_projects(st, r);
	if (st->conf->ce_enabled)
		collect_costs(st, r);
	int rc = reg_render(r, out, NULL);
	reg_free(r);
	return rc;
}

bool metrics_ready(const struct exporter_state *st, char **why)
{
	const struct source_state *all[] = { &st->projects, &st->costs, &st->forecast,
					     &st->alloc_tags };
	struct buf b;
	buf_init(&b, 1024);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i]->enabled && !all[i]->has_data)
			buf_printf(&b, "%s%s", b.len ? ", " : "", all[i]->name);
	bool ready = b.len == 0;
	if (!ready && why)
		*why = xasprintf("Not ready: waiting for the first successful refresh of: %s\n", b.data);
	buf_free(&b);
	return ready;
}
