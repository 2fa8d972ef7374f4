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
 * with a one-line reason in @err. An authentication failure forgets the
 * cached credentials.
 */
int ce_call(struct source_ctx *x, struct ce_meter *m, enum api_op op, const char *target,
	    const char *body, struct hc_resp *resp, char *err, size_t errlen);

/* Builds the body of one page; @token is NULL for the first. Caller frees. */
typedef char *(*ce_body_fn)(void *arg, const char *token);
/* Parses one page into @arg's accumulator; *next receives the next token or NULL. */
typedef int (*ce_parse_fn)(void *arg, const char *body, size_t len, char **next, char *err,
			   size_t errlen);

/*
 * Runs a paginated operation to its end: at most cost_explorer.max_pages
 * pages, and a token that repeats is a pagination loop. An unusable answer
 * counts as reason "parse". Returns as ce_call.
 */
int ce_paginate(struct source_ctx *x, struct ce_meter *m, enum api_op op, const char *target,
		ce_body_fn make_body, ce_parse_fn parse, void *arg, char *err, size_t errlen);

#endif
