/*
 * cost_explorer.h - the source "cost_explorer": Bedrock spend from AWS Cost
 * Explorer, and everything the exporter derives from it.
 *
 *   - Bedrock SERVICE names discovered daily (GetDimensionValues), so
 *     Marketplace models that bill under their own SERVICE are counted;
 *   - spend grouped by the attribution tags (GetCostAndUsage), one query per
 *     window at the coarsest granularity that gives it (the plan is at the top
 *     of cost_explorer.c), mapped to projects (model/attribution.h) through the
 *     projects source's catalog;
 *   - spend grouped by SERVICE and USAGE_TYPE (the per-model families).
 *
 * Spend discipline: a window is read again only while it can change; the
 * queries run in the order the windows matter (today and yesterday, the
 * baseline, the month, the previous month, the models) until the daily
 * ceiling stops them (-EDQUOT, saying what is still missing); a query cut
 * short keeps its pages and goes on from there, in memory and across restarts.
 * The ceiling's meter lives here and is shared with the forecast and
 * allocation_tags sources. Poller thread.
 */
#ifndef BCE_COST_EXPLORER_H
#define BCE_COST_EXPLORER_H

#include <stdbool.h>

#include "base/textlist.h"
#include "model/attribution.h"
#include "model/ce_series.h"
#include "sources/ce_client.h"
#include "sources/source.h"

struct conf;

extern const struct source_def cost_explorer_source;

/* With the cloudwatch source on, the per-model days reach this far back (also early in a
 * month): its history of daily tokens, the rate days before the day it judges. */
#define CE_CLOUDWATCH_DAYS 16

/* From the source's private state @priv (source_peer): the request meter the
 * three Cost Explorer sources share, the SERVICE values filtered on (and when
 * they were discovered, 0 = never), and the spend by attribution tags. */
struct ce_meter *cost_explorer_meter(void *priv);
const struct textlist *cost_explorer_services(const void *priv, double *discovered_at);
const struct ce_series *cost_explorer_spend(const void *priv);
/* The spend of @day's month before @day (month start .. @day, exclusive), from what was read;
 * false when the answers read do not give it. */
bool cost_explorer_spend_before(const void *priv, long day, double *out);

/* The daily spend by SERVICE and USAGE_TYPE read so far (the per-model families), or NULL. */
const struct ce_series *cost_explorer_models(const void *priv);

/* The spend per project, tag value and model of the UTC day @today's windows, as the
 * exported families have it (the projects source's catalog from @set). Fills @out; the
 * caller frees it with attribution_free. */
void cost_explorer_attribute(const void *priv, const struct conf *c,
			     const struct source_set *set, long today, struct attribution *out);

/* The settled UTC day the cloudwatch source's estimates are judged on: today -
 * cost_explorer.settle_days, at most CE_JUDGE_MAX days back. With the cloudwatch source on,
 * its spend per tag combination is read once a day (the query "judged"). */
#define CE_JUDGE_MAX 7
long cost_explorer_judged_day(const struct conf *c, long today);
/* The spend per project of that day, attributed as the exported families are, in
 * out->rows[i].v[WIN_YESTERDAY] (out->present[WIN_YESTERDAY] false while it is not read).
 * The caller frees it with attribution_free. */
void cost_explorer_attribute_judged(const void *priv, const struct conf *c,
				    const struct source_set *set, long today,
				    struct attribution *out);
/* Whether a configuration change asks Cost Explorer something else (metric, attribution
 * tags, services, endpoint, enabled): then the cost sources query again at once. */
bool cost_explorer_query_changed(const struct conf *old, const struct conf *c);

#endif
