/*
 * ce_api.h - the AWS Cost Explorer wire format (awsJson1.1): request bodies
 * (base/jsonw.h) and response parsers (base/jsontape.h) for GetCostAndUsage,
 * GetCostForecast, GetDimensionValues and ListCostAllocationTags. The data
 * they fill is model/ce_series.h; errors are classified in aws/aws_error.h.
 *
 * Pure functions: no network, no clock, no logging; thread-safe. Parsers
 * never trust the input: every field is type-checked, amounts are decimal
 * strings parsed with full error checking, a unit other than USD is an error.
 * On failure a parser returns -EPROTO, writes the reason to @err and leaves
 * its outputs as they were.
 */
#ifndef BCE_CE_API_H
#define BCE_CE_API_H

#include <stdbool.h>
#include <stddef.h>

#include "base/textlist.h"
#include "model/ce_series.h"

/* Splits a TAG group key "Key$Value" at the first '$'; *value points into @k. */
int ce_split_tag_key(const char *k, const char *want_key, const char **value);

/* "UnblendedCost" -> "UNBLENDED_COST" (GetCostForecast's spelling). */
void ce_forecast_metric(const char *metric, char *out, size_t outlen);

enum ce_group_type { CE_GROUP_TAG, CE_GROUP_DIMENSION };

struct ce_query {
	long start, end;            /* [start, end) days */
	const char *granularity;    /* "DAILY" or "MONTHLY" */
	const char *metric;         /* "UnblendedCost" ... */
	const struct textlist *services; /* SERVICE filter (non-empty) */
	const char *linked_account; /* and LINKED_ACCOUNT = this; NULL or "" = no such filter */
	size_t ngroups;             /* 0..2 */
	enum ce_group_type group_type[2];
	const char *group_key[2];
};

/* Request bodies. Each returns a new JSON string; caller frees. */
char *ce_body_cost_and_usage(const struct ce_query *q, const char *next_token);
char *ce_body_forecast(long start, long end, const char *metric, const struct textlist *services);
char *ce_body_dimension_values(long start, long end, const char *dimension, const char *search,
			       const char *next_token);
char *ce_body_allocation_tags(const struct textlist *keys, const char *next_token);

/*
 * Parses one GetCostAndUsage page for query @q and merges it into @acc
 * (a period split across pages is merged; a group repeated within a day is
 * an error). *next receives the NextPageToken (caller frees) or NULL.
 */
int ce_parse_cost_and_usage(const char *body, size_t len, const struct ce_query *q,
			    struct ce_series *acc, char **next, char *err, size_t errlen);

/* Parses GetCostForecast: Total and the summed prediction interval bounds. */
int ce_parse_forecast(const char *body, size_t len, double *mean, double *lower, double *upper,
		      char *err, size_t errlen);

/* Appends every DimensionValues[].Value to @out; *next as above. */
int ce_parse_dimension_values(const char *body, size_t len, struct textlist *out, char **next,
			      char *err, size_t errlen);

/* For every CostAllocationTags[] entry, appends its TagKey to @keys and 1/0 (Active) to
 * @active (grown with xrealloc, *n updated). *next as above. */
int ce_parse_allocation_tags(const char *body, size_t len, struct textlist *keys, bool **active,
			     char **next, char *err, size_t errlen);

#endif
