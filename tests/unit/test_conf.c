/* Unit tests for conf.c: the example file, defaults, one fixture per error class. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config/conf.c"
#include "model/expfmt.h"

#define FIX "tests/unit/fixtures/conf/"

static void example_config_is_valid(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_load("etc/bedrock-cost-exporter.conf", &errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	/* the example spells out the defaults */
	struct conf *d = conf_defaults();
	assert_true(textlist_equal(&c->projects_regions, &d->projects_regions));
	assert_true(textlist_equal(&c->projects_tag_labels, &d->projects_tag_labels));
	assert_string_equal(c->projects_endpoint, d->projects_endpoint);
	assert_int_equal(c->projects_refresh_interval, d->projects_refresh_interval);
	conf_free(d);
	conf_free(c);
}

static void defaults(void **state)
{
	(void)state;
	struct conf *c = conf_defaults();
	assert_true(c->projects_enabled);
	assert_int_equal(c->projects_regions.n, 1);
	assert_string_equal(c->projects_regions.v[0], "us-east-1");
	assert_string_equal(c->projects_endpoint, "https://bedrock-mantle.{region}.api.aws/v1");
	assert_int_equal(c->projects_auth, AUTH_API_KEY);
	assert_string_equal(c->projects_api_key_env, "BEDROCK_API_KEY");
	assert_string_equal(c->projects_api_key_file, "");
	assert_int_equal(c->projects_refresh_interval, 300);
	assert_int_equal(c->projects_tag_labels.n, 4);
	assert_string_equal(c->projects_tag_label_names.v[3], "tag_costcenter");
	assert_int_equal(c->projects_page_size, 100);
	assert_int_equal(c->projects_max_projects, 1100);
	conf_free(c);
}

static void every_key_is_read(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_load(FIX "good.conf", &errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	assert_int_equal(c->projects_regions.n, 2);
	assert_string_equal(c->projects_regions.v[1], "eu-west-1");
	assert_string_equal(c->projects_endpoint, "http://127.0.0.1:8080/mantle/{region}/v1/");
	assert_int_equal(c->projects_auth, AUTH_SIGV4);
	assert_string_equal(c->projects_api_key_env, "MY_KEY");
	assert_string_equal(c->projects_api_key_file, "/run/secrets/key");
	assert_int_equal(c->projects_refresh_interval, 60);
	assert_int_equal(c->projects_tag_label_names.n, 2);
	assert_string_equal(c->projects_tag_label_names.v[0], "tag_team");
	assert_string_equal(c->projects_tag_label_names.v[1], "tag_cost_center");
	assert_int_equal(c->projects_page_size, 50);
	assert_int_equal(c->projects_max_projects, 2000);
	assert_int_equal(c->http_connect_timeout, 2);
	assert_int_equal(c->http_request_timeout, 9);
	assert_int_equal(c->http_max_retries, 0);
	assert_int_equal(c->http_retry_max_delay, 5);
	assert_int_equal(c->http_max_response_mib, 2);
	conf_free(c);
}

/* Loads a bad fixture; asserts one error starting with "file:line: " and containing @what. */
static void expect_error(const char *name, int line, const char *what)
{
	char path[256], prefix[300];
	snprintf(path, sizeof(path), FIX "%s", name);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	struct textlist errs = { 0 };
	struct conf *c = conf_load(path, &errs);
	assert_null(c);
	if (errs.n < 1)
		fail_msg("%s: no error reported", name);
	if (strncmp(errs.v[0], prefix, strlen(prefix)) != 0 || !strstr(errs.v[0], what))
		fail_msg("%s: got \"%s\", want prefix \"%s\" and \"%s\"", name, errs.v[0], prefix, what);
	textlist_free(&errs);
}

static void bad_fixtures(void **state)
{
	(void)state;
	expect_error("unknown_key.conf", 3, "unknown key \"projects.colour\"");
	expect_error("unknown_top.conf", 3, "unknown key \"metrics_prefix\"");
	expect_error("wrong_type.conf", 2, "projects.refresh_interval: wrong type (expected integer)");
	expect_error("wrong_type_bool.conf", 2, "projects.enabled: wrong type (expected boolean)");
	expect_error("out_of_range.conf", 3, "projects.page_size: value out of range (allowed 1..100)");
	expect_error("out_of_range_negative.conf", 2, "http.max_retries: value out of range");
	expect_error("empty_list.conf", 2, "projects.regions: list length out of range");
	expect_error("list_wrong_element.conf", 2, "every entry must be a string");
	expect_error("list_duplicate.conf", 2, "\"Team\" is listed twice");
	expect_error("syntax.conf", 3, "syntax error");
	expect_error("bad_enum.conf", 2, "projects.auth: unknown value \"oauth\"");
	expect_error("label_collision.conf", 2, "map to the same label name");
	expect_error("bad_region.conf", 2, "\"US East\" is not a region name");
	expect_error("bad_endpoint.conf", 2, "is not an http(s) base URL");
	expect_error("group_wrong_type.conf", 1, "projects: wrong type");
	expect_error("sts_session_name.conf", 2, "aws.role_session_name: not what STS accepts");
	expect_error("sts_external_id.conf", 2, "aws.external_id: not what STS accepts");
	expect_error("sts_role_arn.conf", 2, "aws.role_arn: not what STS accepts");
	expect_error("does_not_exist.conf", 0, "cannot read configuration: No such file or directory");
}

static void every_error_is_reported(void **state)
{
	(void)state;
	/* two independent errors in one file: both reported, in file order */
	const char *path = "build/unit/two_errors.conf";
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("projects: {\n  page_size = 0;\n  bogus = 1;\n};\n", f);
	fclose(f);
	struct textlist errs = { 0 };
	assert_null(conf_load(path, &errs));
	assert_int_equal(errs.n, 2);
	assert_non_null(strstr(errs.v[0], ":2: projects.page_size"));
	assert_non_null(strstr(errs.v[1], ":3: unknown key"));
	textlist_free(&errs);
	remove(path);
}

/* cloudwatch.prices: a list of groups, each checked as a budget is. */
static void cloudwatch_prices(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_parse_string("p.conf",
		"cloudwatch: { refresh_interval = 60; max_metrics_per_day = 10;\n"
		"  prices = ( { model = \"Claude X\"; input_per_million = 3; "
		"output_per_million = 15.5; } ); };\n", &errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	assert_int_equal(c->cw_prices.n, 1);
	assert_string_equal(c->cw_prices.v[0].model, "Claude X");
	assert_true(c->cw_prices.v[0].per_million[0] == 3 && c->cw_prices.v[0].per_million[1] == 15.5);
	assert_int_equal(c->cw_refresh_interval, 60);
	assert_true(c->cw_enabled);
	conf_free(c);
	struct {
		const char *text, *want;
	} bad[] = {
		{ "cloudwatch: { prices = ( { model = \"x\"; input_per_million = 1; } ); };",
		  "p.conf:1: cloudwatch.prices: every entry needs model, input_per_million and "
		  "output_per_million" },
		{ "cloudwatch: { prices = ( { model = \"x\"; input_per_million = -1; "
		  "output_per_million = 1; } ); };",
		  "p.conf:1: cloudwatch.prices.input_per_million: expected a number of USD" },
		{ "cloudwatch: { prices = ( { model = \"x\"; input_per_million = 1; "
		  "output_per_million = 1; colour = 1; } ); };",
		  "p.conf:1: unknown key \"cloudwatch.prices.colour\"" },
		{ "cloudwatch: { prices = ( { model = \"x\"; input_per_million = 1; "
		  "output_per_million = 1; }, { model = \"x\"; input_per_million = 2; "
		  "output_per_million = 2; } ); };",
		  "p.conf:1: cloudwatch.prices: \"x\" is listed twice" },
		{ "cloudwatch: { prices = ( 1 ); };",
		  "p.conf:1: cloudwatch.prices: every entry must be a group" },
		{ "cloudwatch: { prices = \"x\"; };",
		  "p.conf:1: cloudwatch.prices: wrong type (expected list of price groups)" },
		{ "cloudwatch: { refresh_interval = 59; };",
		  "p.conf:1: cloudwatch.refresh_interval: value out of range (allowed 60..86400)" },
		{ "cloudwatch: { endpoint = \"monitoring.{region}\"; };",
		  "is not an http(s) base URL" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct textlist e = { 0 };
		assert_null(conf_parse_string("p.conf", bad[i].text, &e));
		if (e.n < 1 || !strstr(e.v[0], bad[i].want))
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].text, e.n ? e.v[0] : "",
				 bad[i].want);
		textlist_free(&e);
	}
}

/* An s3:// state_file names a bucket and a key; anything else there is a local path. */
/* {shard} in state_file: each shard its own file, and the shards other than 0 know shard 0's */
static void state_per_shard(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	const char *text = "organization: { accounts = ( { id = \"111122223333\"; } ); "
			   "role_name = \"R\"; };\nprojects: { auth = \"sigv4\"; };\n"
			   "state_file = \"s3://bkt/x/shard-{shard}-of-{total_shards}.json\";\n";
	conf_set_sharding(2, 3);
	struct conf *c = conf_parse_string("p.conf", text, &errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(c->state_file, "s3://bkt/x/shard-2-of-3.json");
	assert_string_equal(c->state_s3_key, "x/shard-2-of-3.json");
	assert_string_equal(c->shard0_state_file, "s3://bkt/x/shard-0-of-3.json");
	conf_free(c);
	conf_set_sharding(0, 3); /* shard 0 reads no one's */
	c = conf_parse_string("p.conf", text, &errs);
	assert_string_equal(c->state_file, "s3://bkt/x/shard-0-of-3.json");
	assert_null(c->shard0_state_file);
	conf_free(c);
	conf_set_sharding(1, 3); /* one file for every shard named: nothing to read */
	c = conf_parse_string("p.conf", "organization: { accounts = ( { id = \"111122223333\"; } ); "
			      "role_name = \"R\"; };\nprojects: { auth = \"sigv4\"; };\n"
			      "state_file = \"/var/lib/s-{total_shards}.json\";\n", &errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(c->state_file, "/var/lib/s-3.json");
	assert_null(c->shard0_state_file);
	conf_free(c);
	conf_set_sharding(0, 1);
}

static void state_in_s3(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_parse_string("p.conf",
		"state_file = \"s3://my-bucket.prod/exporters/shard-0/state.json\";\n"
		"state_s3: { endpoint = \"http://127.0.0.1:9000/s3\"; region = \"eu-west-1\"; };\n",
		&errs);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	assert_string_equal(c->state_s3_bucket, "my-bucket.prod");
	assert_string_equal(c->state_s3_key, "exporters/shard-0/state.json");
	assert_string_equal(c->state_s3_endpoint, "http://127.0.0.1:9000/s3");
	assert_string_equal(c->state_s3_region, "eu-west-1");
	conf_free(c);
	c = conf_parse_string("p.conf", "state_file = \"/tmp/s3:/x.json\";\n", &errs);
	assert_non_null(c);
	assert_null(c->state_s3_bucket);
	assert_string_equal(c->state_s3_endpoint, "https://{bucket}.s3.{region}.amazonaws.com");
	conf_free(c);
	const char *bad[] = { "s3://bucket", "s3://bucket/", "s3://ab/key", "s3://My_Bucket/key",
			      "s3:///key" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = xasprintf("state_file = \"%s\";\n", bad[i]);
		c = conf_parse_string("p.conf", text, &errs);
		assert_null(c);
		assert_int_equal(errs.n, 1);
		assert_non_null(strstr(errs.v[0], "is not s3://bucket/key"));
		textlist_free(&errs);
		free(text);
	}
	/* a bucket with dots cannot be reached by HTTPS virtual-hosted addressing */
	c = conf_parse_string("p.conf", "state_file = \"s3://a.b.c/k\";\n", &errs);
	assert_null(c);
	assert_non_null(strstr(errs.v[0], "state_s3.endpoint: the bucket \"a.b.c\" has dots"));
	textlist_free(&errs);
	c = conf_parse_string("p.conf", "state_file = \"s3://a.b.c/k\";\n"
			      "state_s3: { endpoint = \"https://s3.{region}.amazonaws.com\"; };\n", &errs);
	assert_non_null(c);
	assert_int_equal(errs.n, 0);
	conf_free(c);
	c = conf_parse_string("p.conf", "state_s3: { endpoint = \"s3.amazonaws.com\"; };\n", &errs);
	assert_null(c);
	assert_non_null(strstr(errs.v[0], "state_s3.endpoint"));
	textlist_free(&errs);
}

static void tag_label_names(void **state)
{
	(void)state;
	struct {
		const char *key, *want;
	} cases[] = {
		{ "Application", "tag_application" },
		{ "CostCenter", "tag_costcenter" },
		{ "cost-center", "tag_cost_center" },
		{ "aws:createdBy", "tag_aws_createdby" },
		{ "Owner Email", "tag_owner_email" },
		{ "\xc3\x9c" "ber", "tag___ber" }, /* each non-ASCII byte becomes _ */
		{ "9lives", "tag_9lives" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = conf_tag_label_name(cases[i].key);
		assert_string_equal(got, cases[i].want);
		assert_true(expfmt_valid_label_name(got));
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tag_label_names),
		cmocka_unit_test(cloudwatch_prices),
		cmocka_unit_test(example_config_is_valid),
		cmocka_unit_test(defaults),
		cmocka_unit_test(every_key_is_read),
		cmocka_unit_test(bad_fixtures),
		cmocka_unit_test(state_in_s3),
		cmocka_unit_test(state_per_shard),
		cmocka_unit_test(every_error_is_reported),
	};
	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
