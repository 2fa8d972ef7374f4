/* Unit tests for ce_api.c: group keys, request bodies, page parsing and merging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <cjson/cJSON.h>

#include "../../src/sources/ce_api.c"

/* The fast path must give exactly what strtod() gives, bit for bit. */
static void group_keys(void **state)
{
	(void)state;
	const char *v;
	assert_int_equal(ce_split_tag_key("Application$CustomerChatbot", "Application", &v), 0);
	assert_string_equal(v, "CustomerChatbot");
	assert_int_equal(ce_split_tag_key("Application$", "Application", &v), 0);
	assert_string_equal(v, "");
	assert_int_equal(ce_split_tag_key("Team$A$B", "Team", &v), 0); /* split on the first $ */
	assert_string_equal(v, "A$B");
	assert_int_equal(ce_split_tag_key("Team", "Team", &v), -EINVAL);
	assert_int_equal(ce_split_tag_key("Other$x", "Team", &v), -EINVAL);
	assert_int_equal(ce_split_tag_key("Tea$x", "Team", &v), -EINVAL);
	char m[64];
	ce_forecast_metric("UnblendedCost", m, sizeof(m));
	assert_string_equal(m, "UNBLENDED_COST");
	ce_forecast_metric("NetAmortizedCost", m, sizeof(m));
	assert_string_equal(m, "NET_AMORTIZED_COST");
}

static struct textlist services(void)
{
	struct textlist s = { 0 };
	textlist_push(&s, xstrdup("Amazon Bedrock"));
	textlist_push(&s, xstrdup("Claude Sonnet 4.5 (Amazon Bedrock Edition)"));
	return s;
}

static void request_body(void **state)
{
	(void)state;
	struct textlist sv = services();
	long s, e;
	days_parse("2026-10-01", &s);
	days_parse("2026-11-27", &e);
	struct ce_query q = { .start = s, .end = e, .granularity = "DAILY", .metric = "UnblendedCost",
			      .services = &sv, .ngroups = 2, .group_type = { CE_GROUP_TAG, CE_GROUP_TAG },
			      .group_key = { "Application", "Environment" } };
	char *body = ce_body_cost_and_usage(&q, "tok");
	cJSON *j = cJSON_Parse(body);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "TimePeriod"), "Start")->valuestring, "2026-10-01");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "TimePeriod"), "End")->valuestring, "2026-11-27");
	assert_string_equal(cJSON_GetObjectItem(j, "Granularity")->valuestring, "DAILY");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "Metrics"), 0)->valuestring, "UnblendedCost");
	cJSON *dim = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Filter"), "Dimensions");
	assert_string_equal(cJSON_GetObjectItem(dim, "Key")->valuestring, "SERVICE");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(dim, "Values")), 2);
	cJSON *gb = cJSON_GetObjectItem(j, "GroupBy");
	assert_int_equal(cJSON_GetArraySize(gb), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(gb, 1), "Type")->valuestring, "TAG");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(gb, 1), "Key")->valuestring, "Environment");
	assert_string_equal(cJSON_GetObjectItem(j, "NextPageToken")->valuestring, "tok");
	cJSON_Delete(j);
	free(body);
	textlist_free(&sv);
}

static const char page1[] =
	"{\"GroupDefinitions\":[{\"Type\":\"TAG\",\"Key\":\"Application\"},{\"Type\":\"TAG\",\"Key\":\"Environment\"}],"
	"\"ResultsByTime\":["
	"{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Total\":{},\"Groups\":["
	"{\"Keys\":[\"Application$Chat\",\"Environment$Prod\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1.25\",\"Unit\":\"USD\"}}},"
	"{\"Keys\":[\"Application$\",\"Environment$\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"0.5\",\"Unit\":\"USD\"}}}],"
	"\"Estimated\":false},"
	"{\"TimePeriod\":{\"Start\":\"2026-11-25\",\"End\":\"2026-11-26\"},\"Total\":{},\"Groups\":["
	"{\"Keys\":[\"Application$Chat\",\"Environment$Prod\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"2\",\"Unit\":\"USD\"}}}],"
	"\"Estimated\":true}],"
	"\"DimensionValueAttributes\":[],\"NextPageToken\":\"p2\"}";
/* the second page continues 2026-11-25 (a period split across pages) and adds a day without spend */
static const char page2[] =
	"{\"ResultsByTime\":["
	"{\"TimePeriod\":{\"Start\":\"2026-11-25\",\"End\":\"2026-11-26\"},\"Groups\":["
	"{\"Keys\":[\"Application$Doc$Sum\",\"Environment$Prod\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"3.5\",\"Unit\":\"USD\"}}}],"
	"\"Estimated\":true},"
	"{\"TimePeriod\":{\"Start\":\"2026-11-26\",\"End\":\"2026-11-27\"},\"Groups\":[],\"Estimated\":true}]}";

static struct ce_query tag_query(struct textlist *sv)
{
	long s, e;
	days_parse("2026-11-24", &s);
	days_parse("2026-11-27", &e);
	return (struct ce_query){ .start = s, .end = e, .granularity = "DAILY", .metric = "UnblendedCost",
				  .services = sv, .ngroups = 2,
				  .group_type = { CE_GROUP_TAG, CE_GROUP_TAG },
				  .group_key = { "Application", "Environment" } };
}

static void pages_merge(void **state)
{
	(void)state;
	struct textlist sv = services();
	struct ce_query q = tag_query(&sv);
	struct ce_series acc = { 0 };
	char *next = NULL, err[256];
	assert_int_equal(ce_parse_cost_and_usage(page1, strlen(page1), &q, &acc, &next, err, sizeof(err)), 0);
	assert_string_equal(next, "p2");
	free(next);
	assert_int_equal(ce_parse_cost_and_usage(page2, strlen(page2), &q, &acc, &next, err, sizeof(err)), 0);
	assert_null(next);
	assert_int_equal(acc.n, 3);
	assert_false(acc.days[0].estimated);
	assert_int_equal(acc.days[0].n, 2);
	assert_string_equal(acc.days[0].g[1].k[0], "");
	assert_int_equal(acc.days[1].n, 2); /* merged */
	assert_string_equal(acc.days[1].g[1].k[0], "Doc$Sum");
	assert_true(acc.days[1].g[1].amount == 3.5);
	assert_int_equal(acc.days[2].n, 0);
	long day;
	days_parse("2026-11-25", &day);
	assert_non_null(ce_series_find(&acc, day));
	assert_null(ce_series_find(&acc, day + 5));
	/* a page continuing the last day with no Groups at all (found by fuzzing: memcpy from NULL) */
	const char *empty = "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-26\",\"End\":\"2026-11-27\"},\"Estimated\":true}]}";
	assert_int_equal(ce_parse_cost_and_usage(empty, strlen(empty), &q, &acc, &next, err, sizeof(err)), 0);
	assert_int_equal(acc.n, 3);
	assert_int_equal(acc.days[2].n, 0);
	/* the same page again would repeat groups of 2026-11-25: refused, acc unchanged */
	assert_int_equal(ce_parse_cost_and_usage(page2, strlen(page2), &q, &acc, &next, err, sizeof(err)), -EPROTO);
	assert_int_equal(acc.n, 3);
	assert_int_equal(acc.days[1].n, 2);
	ce_series_free(&acc);
	textlist_free(&sv);
}

/* A tag value of 1,000 raw bytes that are not UTF-8 (3,000 bytes once each is U+FFFD) and
 * one of 5,000 characters: read whole, not refused for its length. */
static void long_keys_are_read(void **state)
{
	(void)state;
	struct textlist sv = services();
	struct ce_query q = tag_query(&sv);
	struct ce_series acc = { 0 };
	char *next = NULL, err[256];
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_puts(&b, "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-25\",\"End\":"
		     "\"2026-11-26\"},\"Estimated\":false,\"Groups\":[{\"Keys\":[\"Application$");
	for (int i = 0; i < 1000; i++)
		buf_putc(&b, '\xff');
	buf_puts(&b, "\",\"Environment$");
	for (int i = 0; i < 5000; i++)
		buf_putc(&b, 'e');
	buf_puts(&b, "\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1.5\",\"Unit\":\"USD\"}}}]}]}");
	size_t len;
	char *page = buf_steal(&b, &len);
	if (ce_parse_cost_and_usage(page, len, &q, &acc, &next, err, sizeof(err)))
		fail_msg("refused: %s", err);
	assert_int_equal(acc.n, 1);
	assert_int_equal(acc.days[0].n, 1);
	const char *k0 = acc.days[0].g[0].k[0], *k1 = acc.days[0].g[0].k[1];
	assert_int_equal(strlen(k0), 3000);
	for (size_t i = 0; i < 3000; i += 3)
		assert_memory_equal(k0 + i, "\xef\xbf\xbd", 3);
	assert_int_equal(strlen(k1), 5000);
	assert_true(acc.days[0].g[0].amount == 1.5);
	free(page);
	ce_series_free(&acc);
	textlist_free(&sv);
}

static void rejects_bad_pages(void **state)
{
	(void)state;
	struct textlist sv = services();
	struct ce_query q = tag_query(&sv);
	struct {
		const char *body, *why;
	} c[] = {
		{ "{", "not valid JSON" },
		{ "{}", "ResultsByTime: missing" },
		{ "{\"ResultsByTime\":{}}", "ResultsByTime: expected an array" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\"},\"Groups\":[]}]}", "TimePeriod" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-01\",\"End\":\"2026-11-02\"},\"Groups\":[]}]}",
		  "not a day of the requested window" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Estimated\":\"no\",\"Groups\":[]}]}",
		  "Estimated: expected a boolean" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[{\"Keys\":\"Application$X\"}]}]}",
		  "Keys: expected 2 strings" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[{\"Keys\":[\"Team$X\",\"Environment$\"],"
		  "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1\",\"Unit\":\"USD\"}}}]}]}",
		  "expected \"Application$...\"" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[{\"Keys\":[\"Application$X\",\"Environment$\"],"
		  "\"Metrics\":{\"UnblendedCost\":{\"Amount\":1.5,\"Unit\":\"USD\"}}}]}]}",
		  "Amount: expected a decimal string" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[{\"Keys\":[\"Application$X\",\"Environment$\"],"
		  "\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1.5\",\"Unit\":\"EUR\"}}}]}]}",
		  "Unit: expected \"USD\", got \"EUR\"" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[{\"Keys\":[\"Application$X\",\"Environment$\"],"
		  "\"Metrics\":{\"AmortizedCost\":{\"Amount\":\"1.5\",\"Unit\":\"USD\"}}}]}]}",
		  "UnblendedCost: missing" },
		{ "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-11-25\",\"End\":\"2026-11-26\"},\"Groups\":[]},"
		  "{\"TimePeriod\":{\"Start\":\"2026-11-24\",\"End\":\"2026-11-25\"},\"Groups\":[]}]}",
		  "out of order" },
		{ "{\"ResultsByTime\":[],\"NextPageToken\":7}", "NextPageToken: expected a string" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct ce_series acc = { 0 };
		char *next = NULL, err[256] = "";
		int rc = ce_parse_cost_and_usage(c[i].body, strlen(c[i].body), &q, &acc, &next, err, sizeof(err));
		if (rc != -EPROTO || !strstr(err, c[i].why))
			fail_msg("case %zu: rc=%d err=\"%s\", want \"%s\"", i, rc, err, c[i].why);
		assert_int_equal(acc.n, 0);
		assert_null(next);
	}
	textlist_free(&sv);
}

static void other_operations(void **state)
{
	(void)state;
	char err[256];
	double m, lo, hi;
	const char *fc = "{\"Total\":{\"Amount\":\"123.45\",\"Unit\":\"USD\"},\"ForecastResultsByTime\":["
			 "{\"TimePeriod\":{\"Start\":\"2026-11-26\",\"End\":\"2026-12-01\"},\"MeanValue\":\"123.45\","
			 "\"PredictionIntervalLowerBound\":\"100.5\",\"PredictionIntervalUpperBound\":\"150\"}]}";
	assert_int_equal(ce_parse_forecast(fc, strlen(fc), &m, &lo, &hi, err, sizeof(err)), 0);
	assert_true(m == 123.45 && lo == 100.5 && hi == 150);
	const char *fbad = "{\"Total\":{\"Amount\":\"1\",\"Unit\":\"JPY\"}}";
	assert_int_equal(ce_parse_forecast(fbad, strlen(fbad), &m, &lo, &hi, err, sizeof(err)), -EPROTO);

	struct textlist vals = { 0 };
	char *next = NULL;
	const char *dv = "{\"DimensionValues\":[{\"Value\":\"Amazon Bedrock\",\"Attributes\":{}},"
			 "{\"Value\":\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\",\"Attributes\":{}}],"
			 "\"ReturnSize\":2,\"TotalSize\":2,\"NextPageToken\":\"\"}";
	assert_int_equal(ce_parse_dimension_values(dv, strlen(dv), &vals, &next, err, sizeof(err)), 0);
	assert_int_equal(vals.n, 2);
	assert_null(next); /* an empty token ends pagination */
	textlist_free(&vals);

	struct textlist keys = { 0 };
	bool *active = NULL;
	const char *at = "{\"CostAllocationTags\":[{\"TagKey\":\"Application\",\"Type\":\"UserDefined\",\"Status\":\"Active\"},"
			 "{\"TagKey\":\"CostCenter\",\"Type\":\"UserDefined\",\"Status\":\"Inactive\"}],\"NextToken\":\"n\"}";
	assert_int_equal(ce_parse_allocation_tags(at, strlen(at), &keys, &active, &next, err, sizeof(err)), 0);
	assert_int_equal(keys.n, 2);
	assert_true(active[0]);
	assert_false(active[1]);
	assert_string_equal(next, "n");
	free(next);
	free(active);
	textlist_free(&keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(group_keys),
		cmocka_unit_test(request_body),
		cmocka_unit_test(pages_merge),
		cmocka_unit_test(long_keys_are_read),
		cmocka_unit_test(rejects_bad_pages),
		cmocka_unit_test(other_operations),
	};
	return cmocka_run_group_tests_name("ce_api", tests, NULL, NULL);
}
