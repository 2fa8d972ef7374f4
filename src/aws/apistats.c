/*
 * apistats.c - see apistats.h.
 */
#include "aws/apistats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[REASON_COUNT] = {
	"throttled", "auth", "client", "server", "timeout", "network", "parse",
};

static struct {
	struct api_op_def def;
	double requests;
	double retries;
	double errors[REASON_COUNT];
} ops[APISTATS_MAX_OPS];
static size_t nops;

api_op apistats_op(const char *api, const char *operation)
{
	for (size_t i = 0; i < nops; i++)
		if (strcmp(ops[i].def.api, api) == 0 && strcmp(ops[i].def.operation, operation) == 0)
			return (api_op)i;
	if (nops == APISTATS_MAX_OPS) {
		fprintf(stderr, "level=error msg=\"more than %d AWS operations registered\"\n",
			APISTATS_MAX_OPS);
		abort();
	}
	ops[nops].def = (struct api_op_def){ api, operation };
	return (api_op)nops++;
}

void apistats_register(const struct api_op_def *defs)
{
	for (; defs && defs->api; defs++)
		apistats_op(defs->api, defs->operation);
}

size_t apistats_count(void)
{
	return nops;
}

const char *apistats_reason_name(enum api_reason r)
{
	return r < REASON_COUNT ? reason_names[r] : "unknown";
}

const char *apistats_api_name(api_op op)
{
	return op < nops ? ops[op].def.api : "unknown";
}

const char *apistats_operation_name(api_op op)
{
	return op < nops ? ops[op].def.operation : "unknown";
}

void apistats_request(api_op op)
{
	if (op < nops)
		ops[op].requests++;
}

void apistats_retry(api_op op)
{
	if (op < nops)
		ops[op].retries++;
}

void apistats_error(api_op op, enum api_reason r)
{
	if (op < nops && r < REASON_COUNT)
		ops[op].errors[r]++;
}

double apistats_requests(api_op op)
{
	return op < nops ? ops[op].requests : 0;
}

double apistats_retries(api_op op)
{
	return op < nops ? ops[op].retries : 0;
}

double apistats_errors(api_op op, enum api_reason r)
{
	return op < nops && r < REASON_COUNT ? ops[op].errors[r] : 0;
}
