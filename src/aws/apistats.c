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

const char *apistats_reason_name(enum api_reason r)
{
	return r < REASON_COUNT ? reason_names[r] : "unknown";
}

const char *apistats_api_name(enum api_op op)
{
	return op < OP_COUNT ? ops[op].api : "unknown";
}

const char *apistats_operation_name(enum api_op op)
{
	return op < OP_COUNT ? ops[op].operation : "unknown";
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

double apistats_requests(enum api_op op)
{
	return counters[op].requests;
}

double apistats_retries(enum api_op op)
{
	return counters[op].retries;
}

double apistats_errors(enum api_op op, enum api_reason r)
{
	return counters[op].errors[r];
}
