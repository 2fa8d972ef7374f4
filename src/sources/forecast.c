/*
 * forecast.c - see forecast.h.
 */
#include "sources/forecast.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/days.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/registry.h"
#include "sources/accounts.h"
#include "sources/ce_api.h"
#include "sources/ce_client.h"
#include "sources/cost_explorer.h"

struct state {
	bool has_forecast;
	bool asked;                 /* it is GetCostForecast's (not the "nothing billed" zero) */
	long day;                   /* the UTC day the forecast was made on */
	double mean, lower, upper;  /* the rest of the month */
	double at;                  /* when; 0 = never */
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

/* Not in an organization (yet): the management account's forecast is the organization's,
 * which no shard's spend adds up to. */
static bool enabled(const struct conf *c)
{
	return c->ce_enabled && c->ce_forecast && !c->org_mode;
}

static long interval(const struct conf *c)
{
	return c->ce_refresh_interval;
}

static void *create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, sizeof(struct state));
}

static void destroy(void *priv)
{
	free(priv);
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	void *ce = source_peer(x->set, &cost_explorer_source);
	if (!ce) {
		snprintf(err, errlen, "needs the cost_explorer source");
		return -EINVAL;
	}
	double discovered_at;
	const struct textlist *services = cost_explorer_services(ce, &discovered_at);
	struct ce_meter *meter = cost_explorer_meter(ce);
	long today = days_of_time(x->now);
	x->state_changed = true;
	if (!services->n) {
		/* nothing billed as Bedrock yet: nothing to forecast, and no request to pay for */
		s->has_forecast = discovered_at > 0;
		s->day = today;
		s->asked = false;
		s->mean = s->lower = s->upper = 0;
		if (!s->has_forecast) {
			snprintf(err, errlen, "waiting for Bedrock service discovery");
			return -EAGAIN;
		}
		s->at = x->now;
		return 0;
	}
	if (s->asked && s->day == today) {
		/* Cost Explorer makes its forecasts about once a day: one request a UTC day (the
		 * actual spend before today, added at collect, is the cost source's latest) */
		s->at = x->now;
		return 0;
	}
	if (ce_meter_remaining(meter, c->ce_max_requests_per_day, x->now) < 1) {
		snprintf(err, errlen, "skipped: no Cost Explorer requests left today "
			 "(cost_explorer.max_requests_per_day)");
		return -EDQUOT;
	}
	char *body = ce_body_forecast(today, days_next_month(today), c->ce_cost_metric, services);
	struct hc_resp resp = { 0 };
	int rc = ce_call(x, meter, OP_CE_GET_COST_FORECAST, "GetCostForecast", body, &resp, NULL, err,
			 errlen);
	free(body);
	if (rc)
		return rc;
	double mean, lo, hi;
	char perr[256];
	rc = ce_parse_forecast(resp.body, resp.len, &mean, &lo, &hi, perr, sizeof(perr));
	free(resp.body);
	if (rc) {
		apistats_error(OP_CE_GET_COST_FORECAST, REASON_PARSE);
		snprintf(err, errlen, "GetCostForecast: %s", perr);
		return rc;
	}
	*s = (struct state){ true, true, today, mean, lo, hi, x->now };
	return 0;
}

/* "forecast": {"day", "at", "mean", "lower", "upper"}, only once there is one */
static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	if (!s->has_forecast)
		return;
	char ds[11];
	days_format(s->day, ds);
	jsonw_key(w, "forecast");
	jsonw_object_begin(w);
	jsonw_key(w, "day");
	jsonw_string(w, ds);
	jsonw_key(w, "at");
	jsonw_number(w, s->at);
	jsonw_key(w, "mean");
	jsonw_number(w, s->mean);
	jsonw_key(w, "lower");
	jsonw_number(w, s->lower);
	jsonw_key(w, "upper");
	jsonw_number(w, s->upper);
	jsonw_object_end(w);
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	(void)now;
	struct state *s = create(c);
	size_t f = jt_get(t, root, "forecast");
	if (f == JT_NONE)
		return s;
	char ds[16];
	double *num[] = { &s->at, &s->mean, &s->lower, &s->upper };
	const char *names[] = { "at", "mean", "lower", "upper" };
	bool ok = jt_is(t, f, JT_OBJECT) && jt_str(t, jt_get(t, f, "day"), ds, sizeof(ds)) >= 0 &&
		  days_parse(ds, &s->day) == 0;
	for (int i = 0; ok && i < 4; i++)
		ok = jt_number(t, jt_get(t, f, names[i]), num[i]) == 0 && isfinite(*num[i]);
	if (!ok) {
		snprintf(err, errlen, "forecast: malformed");
		destroy(s);
		return NULL;
	}
	s->has_forecast = true;
	s->asked = true; /* what was saved is served; a new day asks again */
	if (s->at > 0) {
		out->has_data = true;
		out->at = s->at;
	}
	return s;
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	long today = days_of_time(x->now);
	double actual;
	if (!x->health->has_data || !s->has_forecast ||
	    days_month_start(s->day) != days_month_start(today) ||
	    !cost_explorer_spend_before(source_peer(x->set, &cost_explorer_source), s->day, &actual))
		return;
	const char *account = accounts_label(x->set);
	reg_addv(r, &m_forecast[0], ce_money(actual + s->mean), "account_id", account, (char *)0);
	reg_addv(r, &m_forecast[1], ce_money(actual + s->lower), "account_id", account, (char *)0);
	reg_addv(r, &m_forecast[2], ce_money(actual + s->upper), "account_id", account, (char *)0);
}

static const struct api_op_def operations[] = {
	{ "cost_explorer", "GetCostForecast" },
	{ NULL, NULL },
};

const struct source_def forecast_source = {
	.name = "forecast",
	.enabled = enabled,
	.interval = interval,
	.after = &cost_explorer_source,
	.operations = operations,
	.create = create,
	.destroy = destroy,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
};
