/*
 * apistats.c - see apistats.h.
 */
#include "aws/apistats.h"

static const char *const reason_names[REASON_COUNT] = {
	"throttled", "auth", "client", "server", "timeout", "network", "parse",
};

static const struct {
	const char *api;
	const char *operation;
} ops[OP_COUNT] = {
	[OP_LIST_PROJECTS] = { "bedrock_mantle", "ListProjects" },
	[OP_CE_GET_COST_AND_USAGE] = { "cost_explorer", "GetCostAndUsage" },
	[OP_CE_GET_COST_FORECAST] = { "cost_explorer", "GetCostForecast" },
	[OP_CE_GET_DIMENSION_VALUES] = { "cost_explorer", "GetDimensionValues" },
	[OP_CE_LIST_COST_ALLOCATION_TAGS] = { "cost_explorer", "ListCostAllocationTags" },
	[OP_STS_ASSUME_ROLE] = { "sts", "AssumeRole" },
	[OP_STS_ASSUME_ROLE_WEB_IDENTITY] = { "sts", "AssumeRoleWithWebIdentity" },
	[OP_IMDS_CREDENTIALS] = { "imds", "GetRoleCredentials" },
	[OP_CONTAINER_CREDENTIALS] = { "container", "GetCredentials" },
};

static struct {
	double requests;
	double retries;
	double errors[REASON_COUNT];
} counters[OP_COUNT];

static const struct metric_def m_requests = {
	"bedrock_cost_exporter_api_requests_total", METRIC_COUNTER,
	"HTTP requests sent to AWS APIs, retries included, by API and operation.",
};
static const struct metric_def m_errors = {
	"bedrock_cost_exporter_api_request_errors_total", METRIC_COUNTER,
	"AWS API requests that failed, by reason: throttled (429/throttling), auth (401/403), "
	"client (other 4xx), server (5xx), timeout, network, parse (unusable or oversized body).",
};
static const struct metric_def m_retries = {
	"bedrock_cost_exporter_api_retries_total", METRIC_COUNTER,
	"AWS API requests retried after a throttle, 5xx, timeout or network error.",
};

const char *apistats_reason_name(enum api_reason r)
{
	return r < REASON_COUNT ? reason_names[r] : "unknown";
}

void apistats_request(enum api_op op)
{
	counters[op].requests++;
}

void apistats_retry(enum api_op op)
{
	counters[op].retries++;
}

void apistats_error(enum api_op op, enum api_reason r)
{
	counters[op].errors[r]++;
}

double apistats_errors(enum api_op op, enum api_reason r)
{
	return counters[op].errors[r];
}

double apistats_requests(enum api_op op)
{
	return counters[op].requests;
}

void apistats_collect(struct reg *r)
{
	for (int i = 0; i < OP_COUNT; i++) {
		reg_addv(r, &m_requests, counters[i].requests, "api", ops[i].api, "operation",
			 ops[i].operation, (char *)0);
		reg_addv(r, &m_retries, counters[i].retries, "api", ops[i].api, "operation",
			 ops[i].operation, (char *)0);
		for (int j = 0; j < REASON_COUNT; j++)
			reg_addv(r, &m_errors, counters[i].errors[j], "api", ops[i].api, "operation",
				 ops[i].operation, "reason", reason_names[j], (char *)0);
	}
}
