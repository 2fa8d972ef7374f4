/*
 * forecast.h - the source "forecast": GetCostForecast for the rest of the
 * current UTC month, one request, run right after each successful
 * cost_explorer refresh (a failed cost refresh pays for no forecast). It
 * exports bedrock_cost_month_forecast_usd and its bounds: the actual spend
 * before the forecast's day (from the cost_explorer source) plus the
 * forecast. Poller thread.
 */
#ifndef BCE_FORECAST_H
#define BCE_FORECAST_H

#include "sources/source.h"

extern const struct source_def forecast_source;

#endif
