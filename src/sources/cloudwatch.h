/*
 * cloudwatch.h - the source "cloudwatch": each project's spend within
 * minutes, from the CloudWatch token metrics of AWS/BedrockMantle
 * (InputTokens and OutputTokens by Project and Model), priced with rates
 * derived from the account's own bill.
 *
 *   - Every cloudwatch.refresh_interval, in every projects.regions region:
 *     ListMetrics (RecentlyActive PT3H) finds the (project, model) pairs with
 *     recent data; GetMetricData reads their one-minute sums that it does not
 *     have yet, plus cloudwatch.late_data_minutes again for late points. A
 *     pair first seen today (or after a long gap) is read as one sum from
 *     00:00 UTC plus its last minutes. The last 80 minutes are kept per pair
 *     (the hour for the spend rate, and the re-read), the rest of the day as a
 *     sum.
 *   - Once a UTC day: the daily token sums of the 16 days before today, for
 *     every pair with data in the last 14 days (the history).
 *   - Rates, per (region, model, direction): the billed cost of the model's
 *     usage types on a settled day (today - 2 or older; Cost Explorer's daily
 *     SERVICE x USAGE_TYPE spend, read by the cost_explorer source) divided by
 *     CloudWatch's tokens of that model that day; the rate in use is the
 *     token-weighted rate of the 7 settled days [today-8, today-2], or the
 *     last settled day's, kept across days; cloudwatch.prices for models with
 *     no billed day. Cache-token costs count as input (CloudWatch has no cache
 *     metrics). Models meet on usage_model_key() (model/usage.h).
 *   - The estimate of the last settled day D (today - cost_explorer.settle_days,
 *     at most 7 days back) is priced with the rates the exporter had on D
 *     (from [D-8, D-2], before D's bill), frozen at D's turn and kept in the
 *     state file; after a fresh start they are derived the same way from the
 *     history. Against Cost Explorer's bill of D per project (the query
 *     "judged" of the cost_explorer source) it gives the error ratio.
 *
 * Spend discipline: every metric of every GetMetricData attempt is counted
 * against cloudwatch.max_metrics_per_day before it is sent; refreshes are
 * spread so that the day's ceiling lasts until midnight UTC (the interval
 * stretches), and none is sent past it. Poller thread.
 */
#ifndef BCE_CLOUDWATCH_H
#define BCE_CLOUDWATCH_H

#include "sources/source.h"

extern const struct source_def cloudwatch_source;

#endif
