/*
 * apistats.h - counters of the AWS API calls the exporter makes, by API,
 * operation and failure reason; the exposition turns them into
 * bedrock_cost_exporter_api_requests_total, _api_request_errors_total and
 * _api_retries_total.
 *
 * The table of operations is fixed at compile time so every series exists
 * (at 0) from the first scrape, which keeps rate() and alerts honest.
 * Counters are written only by the thread that does network I/O (the poller,
 * or main under --once) and read by the same thread when it renders.
 */
#ifndef BCE_APISTATS_H
#define BCE_APISTATS_H

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

enum api_op {
	OP_LIST_PROJECTS,
	OP_CE_GET_COST_AND_USAGE,
	OP_CE_GET_COST_FORECAST,
	OP_CE_GET_DIMENSION_VALUES,
	OP_CE_LIST_COST_ALLOCATION_TAGS,
	OP_STS_ASSUME_ROLE,
	OP_STS_ASSUME_ROLE_WEB_IDENTITY,
	OP_IMDS_CREDENTIALS,
	OP_CONTAINER_CREDENTIALS,
	OP_COUNT
};

/* Label values: "throttled", "auth", ...; "bedrock_mantle", "cost_explorer", ...;
 * "ListProjects", "GetCostAndUsage", ... */
const char *apistats_reason_name(enum api_reason r);
const char *apistats_api_name(enum api_op op);
const char *apistats_operation_name(enum api_op op);

void apistats_request(enum api_op op);
void apistats_retry(enum api_op op);
void apistats_error(enum api_op op, enum api_reason r);

/* The current value of each counter. */
double apistats_requests(enum api_op op);
double apistats_retries(enum api_op op);
double apistats_errors(enum api_op op, enum api_reason r);

#endif
