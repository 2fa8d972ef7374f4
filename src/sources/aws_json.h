/*
 * aws_json.h - one request to an AWS API of the JSON protocol (Cost Explorer speaks
 * awsJson1.1, CloudWatch awsJson1.0): credentials from the shared chain, the
 * Content-Type and X-Amz-Target headers, SigV4, the JSON error model
 * (aws_classify_json), and an admission hook for a daily ceiling. The sources' metered
 * clients (ce_client.c, cloudwatch.c) build on it. Poller thread.
 */
#ifndef BCE_AWS_JSON_H
#define BCE_AWS_JSON_H

#include <stddef.h>

#include "aws/apistats.h"
#include "aws/http_client.h"
#include "sources/source.h"

struct aws_json_req {
	api_op op;
	const char *url;              /* the endpoint, '/' included */
	const char *version;          /* "1.0" or "1.1" */
	const char *target;           /* X-Amz-Target, e.g. "AWSInsightsIndexService.GetCostAndUsage" */
	const char *service, *region; /* the SigV4 scope */
	const char *body;
	int (*admit)(void *arg);      /* as hc_req.admit; may be NULL */
	void *admit_arg;
};

/*
 * Sends @r. Returns 0 with @resp filled (caller frees resp->body); -EDQUOT when admit
 * refused (@err untouched: the caller says which ceiling); -ECANCELED when stopped; a
 * credential failure as the chain returns it, with its reason in @err; -EIO with
 * "@what failed (<reason>): <detail>" in @err and the reason in *@reason (may be NULL).
 * An authentication failure forgets the cached credentials.
 */
int aws_json_call(struct source_ctx *x, const struct aws_json_req *r, const char *what,
		  struct hc_resp *resp, enum api_reason *reason, char *err, size_t errlen);

#endif
