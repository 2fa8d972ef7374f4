/*
 * ce_api.h - the AWS Cost Explorer wire format (awsJson1.1): request bodies
 * and response parsers for GetCostAndUsage, GetCostForecast,
 * GetDimensionValues and ListCostAllocationTags, plus error classification.
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

#include "config/conf.h"
#include "aws/http_client.h"

/* One group of one day: up to two group-by values and the cost. */
struct ce_group {
	char *k[2]; /* tag values (the part after '$') or dimension values; NULL if unused */
	double amount;
};

struct ce_day {
	long day; /* days.h day number */
	bool estimated;
	struct ce_group *g;
	size_t n;
};

/* Daily results, ascending by day, each day once. */
struct ce_series {
	struct ce_day *days;
	size_t n;
};

void ce_series_free(struct ce_series *s);
/* Deep copy of days [from, to) of @s appended to @out. */
void ce_series_copy_range(const struct ce_series *s, long from, long to, struct ce_series *out);
/* Returns the day's entry or NULL (binary search). */
const struct ce_day *ce_series_find(const struct ce_series *s, long day);

/* Strict decimal: -?[0-9]+(.[0-9]+)?([eE][-+]?[0-9]+)?, finite. 0 or -EINVAL. */
int ce_parse_amount(const char *s, double *out);

/* Splits a TAG group key "Key$Value" at the first '$'; *value points into @k. */
int ce_split_tag_key(const char *k, const char *want_key, const char **value);

/* "UnblendedCost" -> "UNBLENDED_COST" (GetCostForecast's spelling). */
void ce_forecast_metric(const char *metric, char *out, size_t outlen);

enum ce_group_type { CE_GROUP_TAG, CE_GROUP_DIMENSION };

struct ce_query {
	long start, end;            /* [start, end) days */
	const char *granularity;    /* "DAILY" or "MONTHLY" */
	const char *metric;         /* "UnblendedCost" ... */
	const struct strlist *services; /* SERVICE filter (non-empty) */
	size_t ngroups;             /* 0..2 */
	enum ce_group_type group_type[2];
	const char *group_key[2];
};

/* Request bodies. Each returns a new JSON string; caller frees. */
char *ce_body_cost_and_usage(const struct ce_query *q, const char *next_token);
char *ce_body_forecast(long start, long end, const char *metric, const struct strlist *services);
char *ce_body_dimension_values(long start, long end, const char *dimension, const char *search,
			       const char *next_token);
char *ce_body_allocation_tags(const struct strlist *keys, const char *next_token);

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
int ce_parse_dimension_values(const char *body, size_t len, struct strlist *out, char **next,
			      char *err, size_t errlen);

/* For every CostAllocationTags[] entry, appends its TagKey to @keys and 1/0 (Active) to
 * @active (grown with xrealloc, *n updated). *next as above. */
int ce_parse_allocation_tags(const char *body, size_t len, struct strlist *keys, bool **active,
			     char **next, char *err, size_t errlen);

/* The exception name of an error body ("LimitExceededException"), or "". */
void ce_error_type(const char *body, size_t len, char *out, size_t outlen);

/* http_client classifier for Cost Explorer (and STS): throttling arrives as 400. */
enum hc_verdict ce_classify(long status, const char *body, size_t len, enum api_reason *reason,
			    char *msg, size_t msglen);

#endif
