/* Unit tests for usage.c: model and token type from SERVICE and USAGE_TYPE. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/model/usage.c"

static void cases(void **state)
{
	(void)state;
	struct {
		const char *service, *usage, *model, *token;
	} c[] = {
		{ "Amazon Bedrock", "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard",
		  "openai.gpt-oss-120b", "input" },
		{ "Amazon Bedrock", "USE1-openai.gpt-oss-120b-mantle-output-tokens-standard",
		  "openai.gpt-oss-120b", "output" },
		{ "Amazon Bedrock", "USE1-amazon.nova-pro-v1:0-mantle-cache-read-tokens-standard",
		  "amazon.nova-pro-v1:0", "cache_read" },
		{ "Amazon Bedrock", "EU-openai.gpt-oss-20b-mantle-cache-write-tokens-priority",
		  "openai.gpt-oss-20b", "cache_write" },
		{ "Amazon Bedrock", "openai.gpt-oss-20b-mantle-input-tokens-standard",
		  "openai.gpt-oss-20b", "input" }, /* no region prefix */
		{ "Claude Sonnet 4.5 (Amazon Bedrock Edition)", "USE1-MP:USE1_InputTokens-Units",
		  "Claude Sonnet 4.5", "input" },
		{ "Claude Sonnet 4.5 (Amazon Bedrock Edition)", "USE1-MP:USE1_OutputTokens-Units",
		  "Claude Sonnet 4.5", "output" },
		{ "Claude Sonnet 4.5 (Amazon Bedrock Edition)", "USE1-MP:USE1_CacheReadInputTokens-Units",
		  "Claude Sonnet 4.5", "cache_read" },
		{ "Amazon Bedrock", "USE1-Llama3-70B-input-tokens", "Llama3-70B", "input" },
		{ "Amazon Bedrock", "USW2-TitanEmbeddingsG1-Text-input-tokens", "TitanEmbeddingsG1-Text", "input" },
		{ "Amazon Bedrock", "USE1-ProvisionedThroughput-Hours", "ProvisionedThroughput-Hours", "other" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char model[256];
		usage_model(c[i].service, c[i].usage, model, sizeof(model));
		if (strcmp(model, c[i].model) != 0)
			fail_msg("%s: model \"%s\", want \"%s\"", c[i].usage, model, c[i].model);
		if (strcmp(usage_token_type(c[i].usage), c[i].token) != 0)
			fail_msg("%s: token \"%s\", want \"%s\"", c[i].usage, usage_token_type(c[i].usage),
				 c[i].token);
	}
}

/* CloudWatch's and Cost Explorer's names of one model meet on one key. */
static void model_keys(void **state)
{
	(void)state;
	struct {
		const char *model, *key;
	} c[] = {
		{ "openai.gpt-oss-120b", "gpt-oss-120b" },
		{ "amazon.nova-pro-v1:0", "nova-pro" },
		{ "amazon.nova-lite-v1:0", "nova-lite" },
		{ "Claude Sonnet 4.5", "claude-sonnet-4-5" },
		{ "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5" },
		{ "anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku" },
		{ "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5" },
		{ "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5" },
		{ "meta.llama3-70b-instruct-v1:0", "llama3-70b-instruct" },
		{ "Llama3-70B", "llama3-70b" },
		{ "deepseek.v3-v1:0", "v3" },
		{ "", "" },
		{ "::", "" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char key[256];
		usage_model_key(c[i].model, key, sizeof(key));
		if (strcmp(key, c[i].key) != 0)
			fail_msg("%s: key \"%s\", want \"%s\"", c[i].model, key, c[i].key);
	}
	char small[5];
	usage_model_key("openai.gpt-oss-120b", small, sizeof(small));
	assert_string_equal(small, "gpt-");
}

static void regions_and_directions(void **state)
{
	(void)state;
	assert_string_equal(usage_region("USE1-openai.gpt-oss-120b-mantle-input-tokens-standard"),
			    "us-east-1");
	assert_string_equal(usage_region("EU-amazon.nova-lite-v1:0-mantle-input-tokens-standard"),
			    "eu-west-1");
	assert_string_equal(usage_region("APN1-x"), "ap-northeast-1");
	assert_string_equal(usage_region("APE1-x"), "ap-east-1");
	assert_null(usage_region("openai.gpt-oss-20b-mantle-input-tokens-standard"));
	assert_null(usage_region("XYZ9-a"));
	assert_string_equal(usage_direction("output"), "output");
	assert_string_equal(usage_direction("input"), "input");
	assert_string_equal(usage_direction("cache_read"), "input");
	assert_string_equal(usage_direction("other"), "input");
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(cases), cmocka_unit_test(model_keys),
					    cmocka_unit_test(regions_and_directions) };
	return cmocka_run_group_tests_name("usage", tests, NULL, NULL);
}
