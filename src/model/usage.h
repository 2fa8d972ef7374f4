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

#endif
