/*
 * cw_api.h - Amazon CloudWatch on the wire (AWS JSON 1.0, X-Amz-Target
 * GraniteServiceVersion20100801.<Operation>): the request bodies of
 * ListMetrics and GetMetricData for the AWS/BedrockMantle token metrics, and
 * parsers of their answers. Member names as botocore's model
 * (cloudwatch/2010-08-01/service-2.json). Pure: no I/O; thread-safe.
 */
#ifndef BCE_CW_API_H
#define BCE_CW_API_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/apistats.h"

#define OP_CW_LIST_METRICS apistats_op("cloudwatch", "ListMetrics")
#define OP_CW_GET_METRIC_DATA apistats_op("cloudwatch", "GetMetricData")

#define CW_NAMESPACE "AWS/BedrockMantle"
/* The largest data point value accepted (tokens of one period): more is not an answer. */
#define CW_MAX_VALUE 1e15
/* Most MetricDataQueries one GetMetricData call may hold. */
#define CW_MAX_QUERIES 500

/* ListMetrics of @metric in CW_NAMESPACE with both dimensions Project and Model; only
 * those with data in the last 3 hours when @recent. @token: NULL for the first page. */
char *cw_body_list_metrics(const char *metric, bool recent, const char *token);

/* Called for each metric of a page that has both a Project and a Model dimension. */
typedef void (*cw_metric_fn)(void *arg, const char *project, const char *model);

/* Parses a ListMetrics page; *@next receives the next token or NULL (caller frees).
 * Returns 0, or -EPROTO with a reason in @err (nothing reported then). */
int cw_parse_list_metrics(const char *body, size_t len, cw_metric_fn fn, void *arg,
			  char **next, char *err, size_t errlen);

/* One metric of a GetMetricData call: @metric of CW_NAMESPACE for (Project, Model). */
struct cw_query {
	const char *metric;
	const char *project;
	const char *model;
};

/* GetMetricData of @n (1..CW_MAX_QUERIES) queries with Ids "q0".."q<n-1>", Stat Sum over
 * @period seconds (a multiple of 60), from @start to @end (Unix seconds), ascending. */
char *cw_body_get_metric_data(const struct cw_query *q, size_t n, long period, long start,
			      long end, const char *token);

/* Called for each data point: the query's index, the period's start, the sum. */
typedef void (*cw_point_fn)(void *arg, size_t query, double timestamp, double value);

/* Parses a GetMetricData page of a call of @n queries; *@next as above. Every result must
 * name one of the queries (Id "q<i>"), have StatusCode Complete or PartialData (the rest on
 * a later page; Forbidden and InternalError fail the page), and hold as many Timestamps as
 * Values (numbers, 0..CW_MAX_VALUE).
 * Returns 0 (after reporting every point), or -EPROTO with @err (nothing reported). */
int cw_parse_metric_data(const char *body, size_t len, size_t n, cw_point_fn fn, void *arg,
			 char **next, char *err, size_t errlen);

#endif
