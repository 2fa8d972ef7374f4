/*
 * data_exports.h - the source "data_exports": Bedrock spend from an AWS Data Exports
 * (CUR 2.0) export in S3, read straight from its gzip CSV files (wire: cur_api.h).
 *
 * Every data_exports.refresh_interval it checks the manifest of the current and the
 * previous billing period (s3://<bucket>/<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/,
 * listed once to find its name, then a conditional GET): an unchanged manifest (304)
 * costs nothing more; a new executionId reads each data file again with If-None-Match on
 * the ETag it was read with, so only changed files are downloaded. A file is streamed
 * through gunzip and the CSV reader in bounded memory into aggregate tables (per file, so
 * an unchanged file keeps its part). A period is replaced only when every file of it read
 * whole: a truncated gzip, a missing file, a Parquet export or malformed CSV keeps the
 * last good data, fails the refresh with the reason, and counts
 * bedrock_cost_exporter_data_exports_errors_total{reason}.
 *
 * The cost_explorer source takes its windows (per project, tag value and model) from here
 * when data_exports.enabled, attributed by the same code; this source adds what only line
 * items give: spend per hour, per line item type, per IAM principal, and effective rates.
 * State file member: "data_exports" (the tables, ETags and executionIds), so a restart
 * downloads nothing unchanged. Poller thread.
 */
#ifndef BCE_DATA_EXPORTS_H
#define BCE_DATA_EXPORTS_H

#include "model/ce_series.h"
#include "sources/source.h"

extern const struct source_def data_exports_source;

/*
 * From the source's private state @priv (source_peer): the daily Bedrock spend grouped by
 * the attribution tags' values, of account @account ("" = every account: without an
 * organization), and the daily spend grouped by SERVICE and USAGE_TYPE (the model
 * families), over the previous and the current billing period as far as the export
 * covers them (a day after the export's last line is not in the series; days within
 * cost_explorer.settle_days of the last read are Estimated). NULL until an export was read.
 * Valid until the next refresh.
 */
const struct ce_series *data_exports_spend(const void *priv, const char *account);
const struct ce_series *data_exports_models(const void *priv, const char *account);

#endif
