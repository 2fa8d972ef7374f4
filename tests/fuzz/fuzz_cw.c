/* libFuzzer target: the CloudWatch response parsers (GetMetricData pages of a call of 500
 * queries, ListMetrics pages). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/cw_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void point(void *arg, size_t q, double ts, double v)
{
	size_t *n = arg;
	if (q >= CW_MAX_QUERIES || !isfinite(ts) || !isfinite(v) || ts < 0 || v < 0)
		__builtin_trap(); /* only what the request asked for, as non-negative numbers */
	(*n)++;
}

static void metric(void *arg, const char *project, const char *model)
{
	size_t *n = arg;
	if (!*project || !*model)
		__builtin_trap();
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char err[256];
	char *next = NULL;
	size_t n = 0;
	if (cw_parse_metric_data(body, size, CW_MAX_QUERIES, point, &n, &next, err,
				 sizeof(err)) == 0)
		free(next);
	else if (n)
		__builtin_trap(); /* a rejected page reports nothing */
	next = NULL;
	n = 0;
	if (cw_parse_list_metrics(body, size, metric, &n, &next, err, sizeof(err)) == 0)
		free(next);
	else if (n)
		__builtin_trap();
	return 0;
}
