/*
 * apistats.h - counters of the AWS API calls the exporter makes, by API,
 * operation and failure reason; the exposition turns them into
 * bedrock_cost_exporter_api_requests_total, _api_request_errors_total and
 * _api_retries_total.
 *
 * Operations are registered, not listed here: the module that calls an API
 * names its operations (a source in its struct source_def, the credential
 * chain in aws_provider_new), and they are registered before the first
 * render, so every series exists (at 0) from the first scrape, which keeps
 * rate() and alerts honest. Registering, counting and reading happen on the
 * thread that does network I/O (the poller, or main under --once).
 */
#ifndef BCE_APISTATS_H
#define BCE_APISTATS_H

#include <stddef.h>

enum api_reason {
	REASON_THROTTLED,
	REASON_AUTH,
	REASON_CLIENT,
	REASON_SERVER,
	REASON_TIMEOUT,
	REASON_NETWORK,
	REASON_PARSE,
	REASON_COUNT
};

/* An operation: its `api` and `operation` label values, e.g. {"cost_explorer", "GetCostAndUsage"}. */
struct api_op_def {
	const char *api;
	const char *operation;
};

/* A registered operation: an index into the counters. */
typedef unsigned api_op;

/* Most operations one process registers. */
#define APISTATS_MAX_OPS 64

/*
 * The handle of (@api, @operation), registering it at the first call. The strings are
 * borrowed and must live as long as the process (string literals). Aborts past
 * APISTATS_MAX_OPS (a programming error). Cheap enough to call at each request.
 */
api_op apistats_op(const char *api, const char *operation);
/* Registers every operation of the { NULL }-terminated @defs (may be NULL). */
void apistats_register(const struct api_op_def *defs);
/* How many operations are registered; handles are 0 .. count - 1. */
size_t apistats_count(void);

/* Label values: "throttled", "auth", ...; "bedrock_mantle", "cost_explorer", ...;
 * "ListProjects", "GetCostAndUsage", ... */
const char *apistats_reason_name(enum api_reason r);
const char *apistats_api_name(api_op op);
const char *apistats_operation_name(api_op op);

void apistats_request(api_op op);
void apistats_retry(api_op op);
void apistats_error(api_op op, enum api_reason r);

/* The current value of each counter. */
double apistats_requests(api_op op);
double apistats_retries(api_op op);
double apistats_errors(api_op op, enum api_reason r);

#endif
