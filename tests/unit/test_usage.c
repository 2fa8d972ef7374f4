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

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(cases) };
	return cmocka_run_group_tests_name("usage", tests, NULL, NULL);
}
