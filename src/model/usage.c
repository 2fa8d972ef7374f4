/*
 * usage.c - see usage.h.
 */
#include "model/usage.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MARKETPLACE_SUFFIX " (Amazon Bedrock Edition)"

/* Case-insensitive search for @needle in @hay, treating '-', '_' and ' ' alike,
 * and optionally ignoring them altogether ("CacheRead" matches "cache-read"). */
static bool has_word(const char *hay, const char *needle)
{
	char a[256], b[64];
	size_t n = 0;
	for (const char *p = hay; *p && n + 1 < sizeof(a); p++)
		if (*p != '-' && *p != '_' && *p != ' ')
			a[n++] = (char)tolower((unsigned char)*p);
	a[n] = '\0';
	n = 0;
	for (const char *p = needle; *p && n + 1 < sizeof(b); p++)
		if (*p != '-' && *p != '_' && *p != ' ')
			b[n++] = (char)tolower((unsigned char)*p);
	b[n] = '\0';
	return strstr(a, b) != NULL;
}

const char *usage_token_type(const char *u)
{
	if (has_word(u, "cache-read") || has_word(u, "cacheread"))
		return "cache_read";
	if (has_word(u, "cache-write") || has_word(u, "cachewrite"))
		return "cache_write";
	if (has_word(u, "input"))
		return "input";
	if (has_word(u, "output"))
		return "output";
	return "other";
}

/* Skips a region prefix such as "USE1-", "EU-", "APN1-" (upper-case letters and digits). */
static const char *skip_region(const char *u)
{
	const char *dash = strchr(u, '-');
	if (!dash || dash == u || dash - u > 5)
		return u;
	for (const char *p = u; p < dash; p++)
		if (!isupper((unsigned char)*p) && !isdigit((unsigned char)*p))
			return u;
	return dash + 1;
}

void usage_model(const char *service, const char *usage_type, char *out, size_t outlen)
{
	size_t sl = strlen(service), xl = strlen(MARKETPLACE_SUFFIX);
	/* Marketplace-billed models are named by their service */
	if (sl > xl && strcmp(service + sl - xl, MARKETPLACE_SUFFIX) == 0) {
		snprintf(out, outlen, "%.*s", (int)(sl - xl), service);
		return;
	}
	const char *u = skip_region(usage_type);
	const char *m = strstr(u, "-mantle-");
	if (m) {
		snprintf(out, outlen, "%.*s", (int)(m - u), u);
		return;
	}
	/* classic usage types: "<Model>-input-tokens", "<Model>-cache-read-input-token-count" */
	static const char *const markers[] = { "-cache-read", "-cache-write", "-input", "-output",
					       "-Input", "-Output", NULL };
	const char *cut = NULL;
	for (const char *const *k = markers; *k; k++) {
		const char *p = strstr(u, *k);
		if (p && (!cut || p < cut))
			cut = p;
	}
	size_t n = cut ? (size_t)(cut - u) : strlen(u);
	snprintf(out, outlen, "%.*s", (int)n, u);
}
