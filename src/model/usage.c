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

/* Usage-type prefixes of the regions (AWS's billing codes). */
static const struct {
	const char *prefix, *region;
} regions[] = {
	{ "USE1", "us-east-1" },      { "USE2", "us-east-2" },      { "USW1", "us-west-1" },
	{ "USW2", "us-west-2" },      { "CAN1", "ca-central-1" },   { "EU", "eu-west-1" },
	{ "EUW2", "eu-west-2" },      { "EUW3", "eu-west-3" },      { "EUC1", "eu-central-1" },
	{ "EUC2", "eu-central-2" },   { "EUN1", "eu-north-1" },     { "EUS1", "eu-south-1" },
	{ "EUS2", "eu-south-2" },     { "APN1", "ap-northeast-1" }, { "APN2", "ap-northeast-2" },
	{ "APN3", "ap-northeast-3" }, { "APE1", "ap-east-1" },      { "APS1", "ap-southeast-1" }, { "APS2", "ap-southeast-2" },
	{ "APS3", "ap-south-1" },     { "APS4", "ap-southeast-3" }, { "APS5", "ap-south-2" },
	{ "APS6", "ap-southeast-4" }, { "SAE1", "sa-east-1" },      { "MES1", "me-south-1" },
	{ "MEC1", "me-central-1" },   { "AFS1", "af-south-1" },     { "ILC1", "il-central-1" },
	{ "UGW1", "us-gov-west-1" },  { "UGE1", "us-gov-east-1" },
};

const char *usage_region(const char *u)
{
	const char *dash = strchr(u, '-');
	if (!dash)
		return NULL;
	size_t n = (size_t)(dash - u);
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++)
		if (strlen(regions[i].prefix) == n && strncmp(u, regions[i].prefix, n) == 0)
			return regions[i].region;
	return NULL;
}

const char *usage_direction(const char *token_type)
{
	return strcmp(token_type, "output") == 0 ? "output" : "input";
}

/* Whether @s (@n bytes) is all digits. */
static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return n > 0;
}

void usage_model_key(const char *model, char *out, size_t outlen)
{
	if (!outlen)
		return;
	/* the provider prefix, and a cross-region inference profile's geography before it
	 * ("us.anthropic.claude-..."): every leading part before a '.' that is a plain word */
	const char *m = model;
	for (const char *dot = strchr(m, '.'); dot && dot > m; dot = strchr(m, '.')) {
		bool word = true;
		for (const char *p = m; p < dot; p++)
			word = word && isalpha((unsigned char)*p);
		if (!word)
			break;
		m = dot + 1;
	}
	size_t n = 0;
	bool sep = false;
	for (const char *p = m; *p && n + 1 < outlen; p++) {
		if (isalnum((unsigned char)*p)) {
			if (sep && n)
				out[n++] = '-';
			if (n + 1 < outlen)
				out[n++] = (char)tolower((unsigned char)*p);
			sep = false;
		} else {
			sep = true;
		}
	}
	out[n] = '\0';
	/* version suffixes, last first: "-v1-0" ("-v1:0"), "-v2", then a date "-20250929" */
	char *last = strrchr(out, '-');
	if (last && last[1] && all_digits(last + 1, strlen(last + 1)) && last > out) {
		/* "-v1-0": the minor part of a version */
		char *prev = last - 1;
		while (prev > out && *prev != '-')
			prev--;
		if (*prev == '-' && prev[1] == 'v' && all_digits(prev + 2, (size_t)(last - prev - 2)))
			*prev = '\0';
	}
	last = strrchr(out, '-');
	if (last && last[1] == 'v' && all_digits(last + 2, strlen(last + 2)))
		*last = '\0';
	last = strrchr(out, '-');
	if (last && strlen(last + 1) == 8 && all_digits(last + 1, 8))
		*last = '\0';
}
