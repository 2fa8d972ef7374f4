/* Unit tests for ce_api.c: amounts, group keys, request bodies, page parsing and merging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <cjson/cJSON.h>

#include "../../src/sources/ce_api.c"

static void amounts(void **state)
{
	(void)state;
	double v;
	assert_int_equal(ce_parse_amount("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(ce_parse_amount("3.4172839012", &v), 0);
	assert_true(v == 3.4172839012);
	assert_int_equal(ce_parse_amount("-0.0000001", &v), 0);
	assert_true(v == -0.0000001);
	assert_int_equal(ce_parse_amount("1.5E-7", &v), 0);
	assert_true(v == 1.5e-7);
	const char *bad[] = { "", "-", ".5", "5.", "1,5", " 1", "1 ", "0x10", "nan", "inf", "1e",
			      "1e999", "+1", "1.2.3", "12abc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ce_parse_amount(bad[i], &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

/* The fast path must give exactly what strtod() gives, bit for bit. */
static void amounts_match_strtod(void **state)
{
	(void)state;
	const char *fixed[] = { "0.0000000000", "-0", "-0.0", "0.1", "0.3", "1.0000000001",
				"9007199254740993", "123456789012345", "1234567890123456",
				"0.12345678901234567890", "99999999999999.9999999999", "1e22", "1e23",
				"1e-22", "1e-23", "4.9e-324", "1.7976931348623157e308", "12345e-5",
				"000000000000000000001.5", "0.000000000000000000000000001" };
	char s[80];
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 200000; i++) {
		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			snprintf(s, sizeof(s), "%s", fixed[i]);
		} else {
			/* CE-like amounts: up to 12 integer digits and 0..12 decimals, some exponents */
			unsigned r = (unsigned)rand();
			long long ip = (long long)(((unsigned long long)rand() << 31 | (unsigned)rand()) %
						   (r % 4 == 0 ? 1000000000000ULL : 1000ULL));
			int dec = rand() % 13;
			long long frac = ((long long)rand() << 20 | rand()) % 10000000000000LL;
			int n = snprintf(s, sizeof(s), "%s%lld", r % 7 == 0 ? "-" : "", ip);
			if (dec)
				n += snprintf(s + n, sizeof(s) - (size_t)n, ".%0*lld", dec,
					      frac % (long long)pow(10, dec));
			if (r % 11 == 0)
				snprintf(s + n, sizeof(s) - (size_t)n, "e%d", rand() % 60 - 30);
		}
		double v, want = strtod(s, NULL);
		if (!isfinite(want))
			continue;
		assert_int_equal(ce_parse_amount(s, &v), 0);
		if (memcmp(&v, &want, sizeof(v)) != 0)
			fail_msg("\"%s\": %.17g, strtod %.17g", s, v, want);
	}
}

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

static struct strlist services(void)
{
	struct strlist s = { 0 };
	strlist_push(&s, xstrdup("Amazon Bedrock"));
	strlist_push(&s, xstrdup("Claude Sonnet 4.5 (Amazon Bedrock Edition)"));
	return s;
}

static void request_body(void **state)
{
	(void)state;
	struct strlist sv = services();
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
	strlist_free(&sv);
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

static struct ce_query tag_query(struct strlist *sv)
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
	struct strlist sv = services();
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
	strlist_free(&sv);
}

static void rejects_bad_pages(void **state)
{
	(void)state;
	struct strlist sv = services();
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
	strlist_free(&sv);
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

	struct strlist vals = { 0 };
	char *next = NULL;
	const char *dv = "{\"DimensionValues\":[{\"Value\":\"Amazon Bedrock\",\"Attributes\":{}},"
			 "{\"Value\":\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\",\"Attributes\":{}}],"
			 "\"ReturnSize\":2,\"TotalSize\":2,\"NextPageToken\":\"\"}";
	assert_int_equal(ce_parse_dimension_values(dv, strlen(dv), &vals, &next, err, sizeof(err)), 0);
	assert_int_equal(vals.n, 2);
	assert_null(next); /* an empty token ends pagination */
	strlist_free(&vals);

	struct strlist keys = { 0 };
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
	strlist_free(&keys);
}

static void errors(void **state)
{
	(void)state;
	enum api_reason r;
	char msg[256];
	const char *thr = "{\"__type\":\"com.amazonaws.awsinsightsindexservice#LimitExceededException\",\"Message\":\"Rate exceeded\"}";
	assert_int_equal(ce_classify(400, thr, strlen(thr), &r, msg, sizeof(msg)), HC_RETRY);
	assert_int_equal(r, REASON_THROTTLED);
	assert_string_equal(msg, "HTTP 400 LimitExceededException: Rate exceeded");
	const char *du = "{\"__type\":\"x#DataUnavailableException\",\"Message\":\"no data\"}";
	assert_int_equal(ce_classify(400, du, strlen(du), &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_CLIENT);
	const char *ex = "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\",\"message\":\"expired\"}";
	assert_int_equal(ce_classify(400, ex, strlen(ex), &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(ce_classify(403, "{}", 2, &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_AUTH);
	assert_int_equal(ce_classify(503, "", 0, &r, msg, sizeof(msg)), HC_RETRY);
	assert_int_equal(r, REASON_SERVER);
	const char *sts = "{\"Error\":{\"Code\":\"InvalidIdentityToken\",\"Message\":\"bad\"}}";
	assert_int_equal(ce_classify(400, sts, strlen(sts), &r, msg, sizeof(msg)), HC_FAIL);
	assert_int_equal(r, REASON_AUTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(amounts),
		cmocka_unit_test(amounts_match_strtod),
		cmocka_unit_test(group_keys),
		cmocka_unit_test(request_body),
		cmocka_unit_test(pages_merge),
		cmocka_unit_test(rejects_bad_pages),
		cmocka_unit_test(other_operations),
		cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests_name("ce_api", tests, NULL, NULL);
}
