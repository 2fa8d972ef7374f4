/*
 * ce_client.h - one paid Cost Explorer request, and a paginated operation,
 * for the three Cost Explorer sources (cost_explorer, forecast,
 * allocation_tags): SigV4 (service "ce"), the awsJson1.1 headers, the AWS
 * error model, and the daily request ceiling.
 *
 * Spend discipline: every attempt (retries included) is counted against
 * cost_explorer.max_requests_per_day before it is sent; none is sent past it.
 * The meter that counts them belongs to the cost_explorer source and is saved
 * with it, so a restart does not reset the day's count. Poller thread.
 */
#ifndef BCE_CE_CLIENT_H
#define BCE_CE_CLIENT_H

#include <stddef.h>

#include "aws/apistats.h"
#include "aws/http_client.h"
#include "sources/source.h"

/* The Cost Explorer operations (apistats.h); each source lists those it calls in its
 * struct source_def, so their counters exist from the first scrape. */
#define OP_CE_GET_COST_AND_USAGE apistats_op("cost_explorer", "GetCostAndUsage")
#define OP_CE_GET_COST_FORECAST apistats_op("cost_explorer", "GetCostForecast")
#define OP_CE_GET_DIMENSION_VALUES apistats_op("cost_explorer", "GetDimensionValues")
#define OP_CE_LIST_COST_ALLOCATION_TAGS apistats_op("cost_explorer", "ListCostAllocationTags")

/* Requests sent: today's count for the ceiling, and the total since start. */
struct ce_meter {
	long day;              /* the UTC day `count` counts */
	long count;
	double billable_total; /* since start (a counter) */
};

/* Requests left today under @max_per_day at wall time @now. */
long ce_meter_remaining(const struct ce_meter *m, long max_per_day, double now);

/*
 * Sends one Cost Explorer request (X-Amz-Target AWSInsightsIndexService.@target)
 * with @body. Returns 0 with @resp filled (caller frees resp->body); -EDQUOT
 * when the ceiling refused it; -ECANCELED when stopped; another negative errno
 * with a one-line reason in @err (and, for -EIO, the failure's class in *@reason,
 * which may be NULL). An authentication failure forgets the cached credentials.
 */
int ce_call(struct source_ctx *x, struct ce_meter *m, api_op op, const char *target,
	    const char *body, struct hc_resp *resp, enum api_reason *reason, char *err,
	    size_t errlen);

/* Builds the body of one page; @token is NULL for the first. Caller frees. */
typedef char *(*ce_body_fn)(void *arg, const char *token);
/* Parses one page into @arg's accumulator; *next receives the next token or NULL, *items
 * how many items (groups, values) the page held. */
typedef int (*ce_parse_fn)(void *arg, const char *body, size_t len, char **next, size_t *items,
			   char *err, size_t errlen);

/*
 * Where a paginated operation stands, so that it can stop (the daily ceiling, a failure, a
 * restart) and go on later from the page it had reached: pages already paid for are not
 * asked again. Zero it to start an operation.
 */
struct ce_pages {
	char *token;     /* the next page to ask for; NULL: the first. Owned (ce_pages_clear) */
	long pages;      /* pages received so far */
	size_t expected; /* items the whole operation is expected to hold; 0 = unknown */
	size_t per_page; /* items the first page held (learnt) */
};

void ce_pages_clear(struct ce_pages *p);

/*
 * Runs a paginated operation from where @pg stands to its end. Returns 0 (then @pg is
 * clear), or as ce_call; then @pg->token is the page to ask for next and the pages received
 * stay in @arg, except when the answers cannot be trusted (-EPROTO: malformed, a loop) or a
 * resumed token is refused (a client error on it): then @pg is clear and the caller drops
 * what @arg holds, so the next attempt starts the operation over.
 *
 * The guard against endless pagination: cost_explorer.max_pages when set (> 0); else derived
 * from the expected size, 2 x ceil(expected / per_page) + 2 pages (100 while either is
 * unknown). A token that repeats is a pagination loop. An unusable answer counts as reason
 * "parse".
 */
int ce_paginate(struct source_ctx *x, struct ce_meter *m, api_op op, const char *target,
		ce_body_fn make_body, ce_parse_fn parse, void *arg, struct ce_pages *pg, char *err,
		size_t errlen);

#endif
