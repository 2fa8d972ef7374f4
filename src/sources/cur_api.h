/*
 * cur_api.h - the wire format of AWS Data Exports (CUR 2.0) for the data_exports source:
 * the manifest of a billing period, and the gzip CSV line items, read as a stream into
 * small aggregate tables (never a line kept).
 *
 * What is read from a line (columns found by the header row's names, in any order):
 *   line_item_usage_start_date   the hour (ISO 8601: 2026-12-01T05:00:00Z, .000Z, or a
 *                                space for the T)                               required
 *   <cost column>                data_exports.cost_column (line_item_unblended_cost) required
 *   line_item_usage_type                                                          required
 *   line_item_usage_account_id, line_item_product_code, line_item_line_item_type ("Usage"
 *   when absent), line_item_usage_amount, pricing_unit, line_item_iam_principal, and the
 *   service name: product_product_name, product_servicename, or the "product" map's
 *   product_name (else the product code).
 *   Each attribution tag: data_exports.tag_columns[i] when set (a column, or "map.key" for a
 *   key of a map column), else the first present of: the aliased column <key> lower-cased
 *   (every byte outside [a-z0-9_] made '_'), resource_tags_user_<that>, and the key
 *   user_<that> of the map column resource_tags.
 * A map column's cell is read as a JSON object ({"user_team":"A"}), or as Athena prints a
 * map ({user_team=A, user_env=B}); the JSON form is an assumption until checked against a
 * real CUR 2.0 CSV sample (src/sources/README in the docs says so).
 *
 * Which lines count: Bedrock ones, as Cost Explorer's filter: the product code
 * AmazonBedrock, or a service name containing cost_explorer.service_search (case-insensitive;
 * Marketplace "(Amazon Bedrock Edition)" names included), or listed in cost_explorer.services
 * when that is set.
 *
 * Not thread-safe; one owner.
 */
#ifndef BCE_CUR_API_H
#define BCE_CUR_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/textlist.h"

/* ---- aggregate tables ---- */

/* Fields of a key are joined with CUR_SEP; the first is a number (a day, an hour) or text. */
#define CUR_SEP '\x1f'

struct cur_cell {
	char *key;
	double cost, usage;
};

/* Cells keyed by a string; a lookup is one hash. */
struct cur_table {
	struct textmap *index; /* key -> cell index + 1 */
	struct cur_cell *v;
	size_t n, cap;
};

/* What one file (or one period) adds up to. Each table is one projection of the lines:
 * spend by (day, account, tag values), by model, by hour, by line item type and by
 * principal, so memory follows the projects and days, not the lines. */
enum cur_tab {
	CUR_SPEND,      /* day, account, tag 1, tag 2 -> cost */
	CUR_MODELS,     /* day, account, service, usage type -> cost, usage */
	CUR_HOURS,      /* hour (hours since the epoch), account -> cost */
	CUR_TYPES,      /* account, tag 1, tag 2, line item type -> cost */
	CUR_PRINCIPALS, /* account, tag 1, tag 2, principal ("" = none) -> cost */
	CUR_RATES,      /* account, service, usage type, tokens per usage unit -> cost, usage
			 * (line item type Usage only) */
	CUR_NTABS
};

struct cur_agg {
	struct cur_table t[CUR_NTABS];
	uint64_t lines, bedrock_lines;
	long first_hour, last_hour; /* of the Bedrock lines; last_hour < first_hour: none */
};

void cur_agg_init(struct cur_agg *a);
void cur_agg_free(struct cur_agg *a);
/* Adds @cost and @usage to the cell @key of table @t. */
void cur_table_add(struct cur_table *t, const char *key, double cost, double usage);
/* Adds every cell of @from into @to. */
void cur_agg_merge(struct cur_agg *to, const struct cur_agg *from);
/* Splits @key into at most @max fields (pointers into @copy, which the caller frees). */
size_t cur_key_split(const char *key, char **copy, char **fields, size_t max);

/* The names of the tables in the state file. */
extern const char *const cur_tab_names[CUR_NTABS];

/* ---- the manifest ---- */

struct cur_manifest {
	char *execution_id;
	char *export_arn;
	struct textlist files; /* dataFiles: s3://bucket/key */
	bool parquet;          /* a data file or a format field names Parquet */
};

/* Reads a Manifest.json document. Returns 0, or -EPROTO with @err (no executionId, no
 * dataFiles list, a data file that is not an s3:// URI). */
int cur_manifest_parse(const char *json, size_t len, struct cur_manifest *out, char *err,
		       size_t errlen);
void cur_manifest_clear(struct cur_manifest *m);

/* ---- line items ---- */

struct cur_opts {
	const struct textlist *tag_keys;    /* cost_explorer.attribution_tags (1 or 2) */
	const struct textlist *tag_columns; /* data_exports.tag_columns (may be empty) */
	const char *cost_column;
	const char *service_search;         /* cost_explorer.service_search */
	const struct textlist *services;    /* cost_explorer.services (empty = search) */
};

struct cur_reader;

/* A reader of one file's inflated bytes into @agg (borrowed; lines are added to it). */
struct cur_reader *cur_reader_new(const struct cur_opts *o, struct cur_agg *agg);
void cur_reader_free(struct cur_reader *r);
/* Feeds inflated bytes. Returns 0, or a negative errno with @err naming the line: the
 * CSV is malformed (-EPROTO, -EMSGSIZE, -E2BIG), a line's field count differs from the
 * header's or a number or date does not read (-EPROTO), or a column is missing
 * (-ENOENT). */
int cur_reader_feed(struct cur_reader *r, const char *data, size_t len, char *err,
		    size_t errlen);
/* The end of the file. A file of no bytes at all is empty, not an error. */
int cur_reader_finish(struct cur_reader *r, char *err, size_t errlen);

/* The factor from a line's usage amount to tokens, from its pricing unit: "1K tokens"
 * 1000, "1M tokens" 1e6, anything else 1. */
double cur_tokens_per_unit(const char *pricing_unit);

#endif
