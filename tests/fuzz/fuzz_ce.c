/* libFuzzer target: the Cost Explorer response parsers (GetCostAndUsage pages merged
 * across two pages, forecast, dimension values, allocation tags, error types). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_error.h"
#include "base/days.h"
#include "base/util.h"
#include "sources/ce_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct textlist sv = { 0 };
	textlist_push(&sv, xstrdup("Amazon Bedrock"));
	long start, end;
	days_parse("2026-10-01", &start);
	days_parse("2026-11-27", &end);
	struct ce_query q = { .start = start, .end = end, .granularity = "DAILY",
			      .metric = "UnblendedCost", .services = &sv, .ngroups = 2,
			      .group_type = { CE_GROUP_TAG, CE_GROUP_TAG },
			      .group_key = { "Application", "Environment" } };
	struct ce_series acc = { 0 };
	char *next = NULL;
	char err[256];
	/* the same input twice, as two pages: exercises the merge and duplicate checks */
	for (int page = 0; page < 2; page++) {
		if (ce_parse_cost_and_usage(body, size, &q, &acc, &next, err, sizeof(err)) == 0)
			free(next);
		next = NULL;
	}
	for (size_t i = 1; i < acc.n; i++)
		if (acc.days[i].day <= acc.days[i - 1].day)
			__builtin_trap(); /* days must stay ascending and unique */
	ce_series_free(&acc);

	struct ce_query m = q;
	m.group_type[0] = m.group_type[1] = CE_GROUP_DIMENSION;
	m.group_key[0] = "SERVICE";
	m.group_key[1] = "USAGE_TYPE";
	if (ce_parse_cost_and_usage(body, size, &m, &acc, &next, err, sizeof(err)) == 0)
		free(next);
	ce_series_free(&acc);

	double a, b, c;
	ce_parse_forecast(body, size, &a, &b, &c, err, sizeof(err));
	struct textlist vals = { 0 };
	next = NULL;
	if (ce_parse_dimension_values(body, size, &vals, &next, err, sizeof(err)) == 0)
		free(next);
	textlist_free(&vals);
	struct textlist keys = { 0 };
	bool *active = NULL;
	next = NULL;
	if (ce_parse_allocation_tags(body, size, &keys, &active, &next, err, sizeof(err)) == 0)
		free(next);
	textlist_free(&keys);
	free(active);
	char type[72], msg[200];
	aws_error_type(body, size, type, sizeof(type));
	aws_error_message(body, size, msg, sizeof(msg));
	textlist_free(&sv);
	return 0;
}
