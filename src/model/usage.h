/*
 * usage.h - best-effort model and token type from a Cost Explorer SERVICE
 * and USAGE_TYPE. Pure, thread-safe.
 *
 *   Amazon Bedrock / USE1-openai.gpt-oss-120b-mantle-input-tokens-standard
 *       -> model "openai.gpt-oss-120b", token_type "input"
 *   Claude Sonnet 4.5 (Amazon Bedrock Edition) / USE1-MP:USE1_OutputTokens-Units
 *       -> model "Claude Sonnet 4.5", token_type "output"
 */
#ifndef BCE_USAGE_H
#define BCE_USAGE_H

#include <stddef.h>

/* Token types: "input", "output", "cache_read", "cache_write", "other". */
const char *usage_token_type(const char *usage_type);

/* Writes the model name into @out (possibly "" when nothing is recognisable). */
void usage_model(const char *service, const char *usage_type, char *out, size_t outlen);

/*
 * The AWS region of a usage type's prefix ("USE1-..." -> "us-east-1", "EU-..." ->
 * "eu-west-1"), or NULL when the prefix is missing or unknown.
 */
const char *usage_region(const char *usage_type);

/*
 * The token direction CloudWatch counts a token type under: "output" for output tokens,
 * "input" for everything else (input, cache read and write, other): the namespace
 * AWS/BedrockMantle has no cache-token metrics, so their cost is priced per input token.
 */
const char *usage_direction(const char *token_type);

/*
 * A model name reduced so that Cost Explorer's and CloudWatch's names of one model meet:
 * lower-case, the provider prefix ("openai.", "anthropic.", and a geography before it:
 * "us.", "eu.", "global.") and the version suffixes
 * ("-v1:0", "-20250929") dropped, every run of characters outside [a-z0-9] one '-':
 *   "openai.gpt-oss-120b"                        -> "gpt-oss-120b"
 *   "amazon.nova-pro-v1:0"                       -> "nova-pro"
 *   "Claude Sonnet 4.5"                          -> "claude-sonnet-4-5"
 *   "anthropic.claude-sonnet-4-5-20250929-v1:0"  -> "claude-sonnet-4-5"
 *   "us.anthropic.claude-sonnet-4-5-20250929-v1:0" (a cross-region profile) -> the same
 */
void usage_model_key(const char *model, char *out, size_t outlen);

#endif
