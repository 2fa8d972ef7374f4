/*
 * cost_explorer.h - the three Cost Explorer sources and their cache:
 *   cost_explorer    Bedrock SERVICE discovery (daily), spend grouped by the
 *                    attribution tags, spend grouped by SERVICE and USAGE_TYPE
 *   forecast         GetCostForecast for the rest of the month
 *   allocation_tags  ListCostAllocationTags for the attribution and label keys
 *
 * Spend discipline: every request costs money, so a refresh re-reads only
 * the days that can still change (from the first day that is Estimated, or
 * within cost_explorer.settle_days of today) and keeps the settled ones;
 * every request passes a hard per-UTC-day ceiling
 * (cost_explorer.max_requests_per_day), and a refresh that cannot finish
 * within what is left is skipped before it starts.
 *
 * Poller thread only (or main under --once).
 */
#ifndef BCE_COST_EXPLORER_H
#define BCE_COST_EXPLORER_H

#include <stdbool.h>

#include "aws/awscreds.h"
#include "sources/ce_api.h"
#include "config/conf.h"
#include "aws/http_client.h"

struct ce_source {
	struct strlist services;   /* the SERVICE values filtered on */
	double services_at;        /* when discovered; 0 = never */
	char *services_search;     /* the search string they were discovered with */

	struct ce_series spend;    /* grouped by the attribution tags */
	char *spend_sig;           /* what the cache was queried with */
	struct ce_series models;   /* grouped by SERVICE, USAGE_TYPE */
	char *models_sig;
	double costs_at;           /* last successful cost refresh; 0 = never */
	long costs_requests;       /* requests the last successful cost refresh took */

	bool has_forecast;
	long forecast_day;         /* the UTC day the forecast was made on */
	double forecast_mean, forecast_lower, forecast_upper; /* rest of the month */
	char *forecast_sig;
	double forecast_at;

	struct strlist tag_keys;   /* as returned by ListCostAllocationTags */
	bool *tag_active;
	double tags_at;

	long req_day;              /* UTC day req_count counts */
	long req_count;
	double billable_total;     /* since start (counter) */
};

struct ce_ctx {
	struct hc *hc;
	const struct hc_opts *opts;
	struct aws_provider *creds;
	const struct conf *conf;
	struct ce_source *src;
	double now;
};

void ce_source_free(struct ce_source *s);

/* Requests left today under the ceiling. */
long ce_requests_remaining(const struct ce_source *s, const struct conf *c, double now);

/*
 * Each returns 0; -EDQUOT when skipped or cut short by the daily ceiling;
 * -ECANCELED when stopped; another negative errno on failure. @err receives
 * a one-line reason (never a secret). On failure the cache keeps the last
 * good data.
 */
int ce_refresh_costs(struct ce_ctx *x, char *err, size_t errlen);
int ce_refresh_forecast(struct ce_ctx *x, char *err, size_t errlen);
int ce_refresh_allocation_tags(struct ce_ctx *x, char *err, size_t errlen);

/* The signature a cached spend series must carry to be reused with @c. Caller frees. */
char *ce_spend_signature(const struct conf *c, const struct strlist *services);
char *ce_models_signature(const struct conf *c, const struct strlist *services);

#endif
