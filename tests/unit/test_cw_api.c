/* Unit tests for cw_api.c: CloudWatch request bodies and the parsing of their answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "../../src/sources/cw_api.c"

/* The bodies, read back with cJSON (the reference reader): the members botocore's model
 * names, in the shapes it documents. */
static void bodies(void **state)
{
	(void)state;
	char *b = cw_body_list_metrics("InputTokens", true, NULL);
	cJSON *j = cJSON_Parse(b);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "Namespace")->valuestring, "AWS/BedrockMantle");
	assert_string_equal(cJSON_GetObjectItem(j, "MetricName")->valuestring, "InputTokens");
	assert_string_equal(cJSON_GetObjectItem(j, "RecentlyActive")->valuestring, "PT3H");
	cJSON *dims = cJSON_GetObjectItem(j, "Dimensions");
	assert_int_equal(cJSON_GetArraySize(dims), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(dims, 0), "Name")->valuestring,
			    "Project");
	assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(dims, 0), "Value"));
	assert_null(cJSON_GetObjectItem(j, "NextToken"));
	cJSON_Delete(j);
	free(b);
	b = cw_body_list_metrics("InputTokens", false, "tok\"1");
	j = cJSON_Parse(b);
	assert_null(cJSON_GetObjectItem(j, "RecentlyActive"));
	assert_string_equal(cJSON_GetObjectItem(j, "NextToken")->valuestring, "tok\"1");
	cJSON_Delete(j);
	free(b);

	struct cw_query q[2] = { { "InputTokens", "proj_a", "openai.gpt-oss-120b" },
				 { "OutputTokens", "default", "m\"x" } };
	b = cw_body_get_metric_data(q, 2, 60, 1796000000, 1796003600, NULL);
	j = cJSON_Parse(b);
	assert_non_null(j);
	cJSON *qs = cJSON_GetObjectItem(j, "MetricDataQueries");
	assert_int_equal(cJSON_GetArraySize(qs), 2);
	cJSON *q1 = cJSON_GetArrayItem(qs, 1);
	assert_string_equal(cJSON_GetObjectItem(q1, "Id")->valuestring, "q1");
	cJSON *ms = cJSON_GetObjectItem(q1, "MetricStat");
	assert_int_equal(cJSON_GetObjectItem(ms, "Period")->valueint, 60);
	assert_string_equal(cJSON_GetObjectItem(ms, "Stat")->valuestring, "Sum");
	cJSON *m = cJSON_GetObjectItem(ms, "Metric");
	assert_string_equal(cJSON_GetObjectItem(m, "MetricName")->valuestring, "OutputTokens");
	cJSON *d1 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "Dimensions"), 1);
	assert_string_equal(cJSON_GetObjectItem(d1, "Name")->valuestring, "Model");
	assert_string_equal(cJSON_GetObjectItem(d1, "Value")->valuestring, "m\"x");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(q1, "ReturnData")));
	assert_int_equal((long)cJSON_GetObjectItem(j, "StartTime")->valuedouble, 1796000000);
	assert_int_equal((long)cJSON_GetObjectItem(j, "EndTime")->valuedouble, 1796003600);
	assert_string_equal(cJSON_GetObjectItem(j, "ScanBy")->valuestring, "TimestampAscending");
	cJSON_Delete(j);
	free(b);
}

struct seen {
	char text[1024];
	size_t n;
};

static void on_metric(void *arg, const char *project, const char *model)
{
	struct seen *s = arg;
	size_t l = strlen(s->text);
	snprintf(s->text + l, sizeof(s->text) - l, "%s/%s;", project, model);
	s->n++;
}

static void on_point(void *arg, size_t q, double ts, double v)
{
	struct seen *s = arg;
	size_t l = strlen(s->text);
	snprintf(s->text + l, sizeof(s->text) - l, "%zu@%.0f=%g;", q, ts, v);
	s->n++;
}

static void list_pages(void **state)
{
	(void)state;
	const char *page =
		"{\"Metrics\":[{\"Namespace\":\"AWS/BedrockMantle\",\"MetricName\":\"InputTokens\","
		"\"Dimensions\":[{\"Name\":\"Model\",\"Value\":\"m1\"},{\"Name\":\"Project\","
		"\"Value\":\"proj_a\"}]},"
		"{\"MetricName\":\"TotalInputTokens\",\"Dimensions\":[{\"Name\":\"Project\","
		"\"Value\":\"proj_b\"}]},{\"MetricName\":\"InputTokens\"}],\"NextToken\":\"n2\"}";
	struct seen s = { "", 0 };
	char *next = NULL, err[128];
	assert_int_equal(cw_parse_list_metrics(page, strlen(page), on_metric, &s, &next, err,
					       sizeof(err)), 0);
	assert_string_equal(s.text, "proj_a/m1;"); /* the Project-only metric is not a pair */
	assert_string_equal(next, "n2");
	free(next);
	const char *last = "{\"Metrics\":[]}";
	assert_int_equal(cw_parse_list_metrics(last, strlen(last), on_metric, &s, &next, err,
					       sizeof(err)), 0);
	assert_null(next);
	const char *bad[] = {
		"{\"Metrics\":{}}",
		"{\"Metrics\":[{\"Dimensions\":[{\"Name\":\"Project\",\"Value\":7}]}]}",
		"{\"Metrics\":[],\"NextToken\":5}",
		"{\"Metrics\":[",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct seen z = { "", 0 };
		if (cw_parse_list_metrics(bad[i], strlen(bad[i]), on_metric, &z, &next, err,
					  sizeof(err)) != -EPROTO || z.n)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void data_pages(void **state)
{
	(void)state;
	const char *page =
		"{\"MetricDataResults\":[{\"Id\":\"q1\",\"Label\":\"OutputTokens\","
		"\"Timestamps\":[1796000000,1796000060],\"Values\":[10,2.5],"
		"\"StatusCode\":\"Complete\"},{\"Id\":\"q0\",\"Timestamps\":[],\"Values\":[],"
		"\"StatusCode\":\"PartialData\"}],\"Messages\":[],\"NextToken\":\"t\"}";
	struct seen s = { "", 0 };
	char *next = NULL, err[128];
	assert_int_equal(cw_parse_metric_data(page, strlen(page), 2, on_point, &s, &next, err,
					      sizeof(err)), 0);
	assert_string_equal(s.text, "1@1796000000=10;1@1796000060=2.5;");
	assert_string_equal(next, "t");
	free(next);
	const char *bad[] = {
		"{}",
		"{\"MetricDataResults\":[{\"Id\":\"q2\",\"Timestamps\":[],\"Values\":[]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"x0\",\"Timestamps\":[],\"Values\":[]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q01\",\"Timestamps\":[],\"Values\":[]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[1],\"Values\":[]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[1],\"Values\":[\"3\"]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[\"2026-01-01T00:00:00Z\"],"
		"\"Values\":[3]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[1],\"Values\":[-3]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[1],\"Values\":[1e16]}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[],\"Values\":[],"
		"\"StatusCode\":\"Forbidden\"}]}",
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[],\"Values\":[],"
		"\"StatusCode\":\"InternalError\"}]}",
		/* a good result before a bad one: nothing is reported */
		"{\"MetricDataResults\":[{\"Id\":\"q0\",\"Timestamps\":[1],\"Values\":[3]},"
		"{\"Id\":\"q1\",\"Timestamps\":{},\"Values\":[]}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct seen z = { "", 0 };
		if (cw_parse_metric_data(bad[i], strlen(bad[i]), 2, on_point, &z, &next, err,
					 sizeof(err)) != -EPROTO || z.n)
			fail_msg("accepted: %s", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bodies),
		cmocka_unit_test(list_pages),
		cmocka_unit_test(data_pages),
	};
	return cmocka_run_group_tests_name("cw_api", tests, NULL, NULL);
}
