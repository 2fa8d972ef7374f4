/*
 * conf.c - see conf.h.
 *
 * Loading is two passes over libconfig's tree: the first checks every
 * setting against the schema table (unknown key, type, range) and copies
 * values out; the second checks what no single key can (derived label-name
 * collisions). libconfig memory never leaves conf_load().
 */
#include "config/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

enum key_type { T_BOOL, T_INT, T_STRING, T_ENUM, T_STRLIST, T_FLOAT, T_BUDGETS, T_PRICES,
		T_ACCOUNTS };

static const char *const type_names[] = { "boolean", "integer", "string", "string",
					   "list of strings", "number", "list of budget groups",
					   "list of price groups", "list of account groups" };

struct key {
	const char *path;  /* "group.name" */
	enum key_type type;
	size_t offset;     /* into struct conf */
	long def_int;      /* T_BOOL, T_INT */
	const char *def_str; /* T_STRING, T_ENUM; T_STRLIST: comma-separated */
	long min, max;     /* T_INT: value range; T_STRING/T_STRLIST: length/count range */
	const char *const *choices; /* T_ENUM */
	const char *help;
	double fdef, fmin, fmax; /* T_FLOAT */
};

static const char *const auth_choices[] = { "api_key", "sigv4", NULL };
static const char *const metric_choices[] = { "UnblendedCost", "AmortizedCost", "BlendedCost",
					      "NetUnblendedCost", "NetAmortizedCost", NULL };

#define OFF(f) offsetof(struct conf, f)

/* Only T_FLOAT entries spell out the trailing float fields. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct key keys[] = {
	{ "projects.enabled", T_BOOL, OFF(projects_enabled), 1, NULL, 0, 1, NULL,
	  "Poll the Bedrock Projects API (source \"projects\")." },
	{ "projects.regions", T_STRLIST, OFF(projects_regions), 0, "us-east-1", 1, 32, NULL,
	  "AWS regions whose projects are listed, one listing per region." },
	{ "projects.endpoint", T_STRING, OFF(projects_endpoint), 0,
	  "https://bedrock-mantle.{region}.api.aws/v1", 8, 1024, NULL,
	  "Base URL of the Projects API; {region} is replaced by each region." },
	{ "projects.auth", T_ENUM, OFF(projects_auth_name), 0, "api_key", 0, 0, auth_choices,
	  "api_key (Authorization: Bearer) or sigv4 (signing name bedrock-mantle)." },
	{ "projects.api_key_env", T_STRING, OFF(projects_api_key_env), 0, "BEDROCK_API_KEY", 0, 256,
	  NULL, "Environment variable holding the Bedrock API key (auth = api_key)." },
	{ "projects.api_key_file", T_STRING, OFF(projects_api_key_file), 0, "", 0, 4096, NULL,
	  "File holding the API key; read at every refresh; wins over api_key_env." },
	{ "projects.refresh_interval", T_INT, OFF(projects_refresh_interval), 300, NULL, 10, 86400,
	  NULL, "Seconds between two listings (10% jitter is added)." },
	{ "projects.tag_labels", T_STRLIST, OFF(projects_tag_labels), 0,
	  "Application,Environment,Team,CostCenter", 0, 32, NULL,
	  "Tag keys exposed as tag_<key> labels on bedrock_cost_project_info." },
	{ "projects.page_size", T_INT, OFF(projects_page_size), 100, NULL, 1, 100, NULL,
	  "Projects per page requested (the API's limit parameter)." },
	{ "projects.max_projects", T_INT, OFF(projects_max_projects), 1100, NULL, 1, 100000, NULL,
	  "Most projects served per region (AWS quota: 1,000, plus the default project); more are "
	  "cut off, counted as an error and logged." },
	{ "aws.region", T_STRING, OFF(aws_region), 0, "us-east-1", 1, 32, NULL,
	  "Region for STS (AssumeRole, web identity)." },
	{ "aws.role_arn", T_STRING, OFF(aws_role_arn), 0, "", 0, 2048, NULL,
	  "Role to assume with STS AssumeRole on top of the found credentials (\"\" = none; "
	  "else 20..2048 characters, as AWS requires)." },
	{ "aws.external_id", T_STRING, OFF(aws_external_id), 0, "", 0, 1224, NULL,
	  "ExternalId for AssumeRole, if the role's trust policy requires one (\"\" = none; else "
	  "2..1224 characters of [A-Za-z0-9_+=,.@:/-], as AWS requires)." },
	{ "aws.profile", T_STRING, OFF(aws_profile), 0, "", 0, 256, NULL,
	  "Profile in the shared credentials file (\"\" = $AWS_PROFILE or \"default\")." },
	{ "aws.role_session_name", T_STRING, OFF(aws_role_session_name), 0, "bedrock-cost-exporter",
	  2, 64, NULL, "RoleSessionName sent to STS: 2..64 characters of [A-Za-z0-9_+=,.@-], as AWS "
	  "requires." },
	{ "aws.sts_endpoint", T_STRING, OFF(aws_sts_endpoint), 0, "https://sts.{region}.amazonaws.com",
	  8, 1024, NULL, "STS endpoint; {region} is aws.region." },
	{ "aws.imds_enabled", T_BOOL, OFF(aws_imds_enabled), 1, NULL, 0, 1, NULL,
	  "Try EC2 instance metadata (IMDSv2) last in the credential chain." },
	{ "aws.imds_endpoint", T_STRING, OFF(aws_imds_endpoint), 0, "http://169.254.169.254", 8, 1024,
	  NULL, "IMDS endpoint ($AWS_EC2_METADATA_SERVICE_ENDPOINT wins)." },
	{ "aws.container_endpoint", T_STRING, OFF(aws_container_endpoint), 0, "http://169.254.170.2",
	  8, 1024, NULL, "Base URL for $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI." },
	{ "cost_explorer.enabled", T_BOOL, OFF(ce_enabled), 1, NULL, 0, 1, NULL,
	  "Read Bedrock spend from Cost Explorer (sources cost_explorer, forecast, allocation_tags)." },
	{ "cost_explorer.endpoint", T_STRING, OFF(ce_endpoint), 0, "https://ce.us-east-1.amazonaws.com",
	  8, 1024, NULL, "Cost Explorer endpoint." },
	{ "cost_explorer.signing_region", T_STRING, OFF(ce_signing_region), 0, "us-east-1", 1, 32, NULL,
	  "SigV4 region for Cost Explorer (always us-east-1 on AWS)." },
	{ "cost_explorer.refresh_interval", T_INT, OFF(ce_refresh_interval), 21600, NULL, 10, 604800,
	  NULL, "Seconds between cost refreshes (10% jitter); billing data moves slowly." },
	{ "cost_explorer.attribution_tags", T_STRLIST, OFF(ce_attribution_tags), 0,
	  "Application,Environment", 1, 2, NULL,
	  "1 or 2 tag keys whose values identify a project; spend is grouped by them." },
	{ "cost_explorer.cost_metric", T_ENUM, OFF(ce_cost_metric), 0, "UnblendedCost", 0, 0,
	  metric_choices, "Cost Explorer metric to report." },
	{ "cost_explorer.services", T_STRLIST, OFF(ce_services), 0, "", 0, 64, NULL,
	  "SERVICE values counted as Bedrock spend; empty = discover them daily." },
	{ "cost_explorer.service_search", T_STRING, OFF(ce_service_search), 0, "Bedrock", 1, 64, NULL,
	  "Discovery keeps the SERVICE values containing this string." },
	{ "cost_explorer.max_requests_per_day", T_INT, OFF(ce_max_requests_per_day), 40, NULL, 1, 100000,
	  NULL, "Hard ceiling on Cost Explorer requests per UTC day (each costs money)." },
	{ "cost_explorer.request_price_usd", T_FLOAT, OFF(ce_request_price_usd), 0, NULL, 0, 0, NULL,
	  "Price of one Cost Explorer request, for the spend counter.", 0.01, 0, 10 },
	{ "cost_explorer.settle_days", T_INT, OFF(ce_settle_days), 3, NULL, 1, 31, NULL,
	  "Days treated as still changing even when Cost Explorer says final." },
	{ "cost_explorer.max_pages", T_INT, OFF(ce_max_pages), 0, NULL, 0, 100000, NULL,
	  "Pages one query may take before it fails (endless pagination guard); 0 = twice what "
	  "its size needs (tag combinations x periods / a page's groups) plus 2." },
	{ "cost_explorer.forecast", T_BOOL, OFF(ce_forecast), 1, NULL, 0, 1, NULL,
	  "Ask GetCostForecast for the month-end forecast (one request a UTC day)." },
	{ "cost_explorer.allocation_tags_interval", T_INT, OFF(ce_allocation_tags_interval), 86400, NULL,
	  3600, 604800, NULL, "Seconds between checks that the tag keys are active cost allocation tags." },
	{ "cloudwatch.enabled", T_BOOL, OFF(cw_enabled), 1, NULL, 0, 1, NULL,
	  "Estimate each project's spend within minutes from CloudWatch token metrics "
	  "(AWS/BedrockMantle) in every projects.regions region (source \"cloudwatch\"); off in "
	  "an organization." },
	{ "cloudwatch.endpoint", T_STRING, OFF(cw_endpoint), 0,
	  "https://monitoring.{region}.amazonaws.com", 8, 1024, NULL,
	  "CloudWatch endpoint; {region} is replaced by each region." },
	{ "cloudwatch.refresh_interval", T_INT, OFF(cw_refresh_interval), 300, NULL, 60, 86400, NULL,
	  "Seconds between token reads (10% jitter); stretched when max_metrics_per_day cannot "
	  "cover every read until midnight UTC." },
	{ "cloudwatch.max_metrics_per_day", T_INT, OFF(cw_max_metrics_per_day), 190000, NULL, 10,
	  100000000, NULL, "Hard ceiling on metrics requested per UTC day (GetMetricData bills "
	  "each metric of each call; 190,000 = $1.90 a day)." },
	{ "cloudwatch.price_per_1000_metrics_usd", T_FLOAT, OFF(cw_price_per_1000_metrics_usd), 0,
	  NULL, 0, 0, NULL, "Price of 1,000 metrics requested (and of 1,000 ListMetrics requests), "
	  "for the spend counter.", 0.01, 0, 10 },
	{ "cloudwatch.late_data_minutes", T_INT, OFF(cw_late_data_minutes), 10, NULL, 0, 30, NULL,
	  "Minutes read again at each refresh, for data points that arrive late." },
	{ "cloudwatch.prices", T_PRICES, OFF(cw_prices), 0, NULL, 0, 1000, NULL,
	  "( { model = \"name\"; input_per_million = N; output_per_million = N; } ): rates for "
	  "models with no billed day yet." },
	{ "data_exports.enabled", T_BOOL, OFF(dx_enabled), 0, NULL, 0, 1, NULL,
	  "Read Bedrock spend from an AWS Data Exports (CUR 2.0) export in S3 (source "
	  "\"data_exports\"); the per-project, per-tag and per-model windows then come from it "
	  "and Cost Explorer asks no GetCostAndUsage." },
	{ "data_exports.bucket", T_STRING, OFF(dx_bucket), 0, "", 0, 63, NULL,
	  "The export's S3 bucket." },
	{ "data_exports.prefix", T_STRING, OFF(dx_prefix), 0, "", 0, 512, NULL,
	  "The export's S3 path prefix (\"\" = none): s3://<bucket>/<prefix>/<export_name>/." },
	{ "data_exports.export_name", T_STRING, OFF(dx_export_name), 0, "", 0, 128, NULL,
	  "The export's name (a CSV export with GZIP compression, overwrite mode)." },
	{ "data_exports.region", T_STRING, OFF(dx_region), 0, "us-east-1", 1, 32, NULL,
	  "Region of the export's bucket (the SigV4 scope)." },
	{ "data_exports.endpoint", T_STRING, OFF(dx_endpoint), 0,
	  "https://{bucket}.s3.{region}.amazonaws.com", 8, 1024, NULL,
	  "S3 endpoint: with {bucket} virtual-hosted addressing, without it path-style "
	  "({endpoint}/bucket/key, VPC endpoints, tests); {region} is data_exports.region." },
	{ "data_exports.refresh_interval", T_INT, OFF(dx_refresh_interval), 3600, NULL, 300, 86400,
	  NULL, "Seconds between checks of the manifests (an unchanged manifest costs one "
	  "conditional GET and no download)." },
	{ "data_exports.tag_columns", T_STRLIST, OFF(dx_tag_columns), 0, "", 0, 2, NULL,
	  "The column of each cost_explorer.attribution_tags key, in its order: an aliased column "
	  "(\"application\") or map.key (\"resource_tags.user_application\"); empty = found by "
	  "name (<key lower-cased>, resource_tags_user_<key>, resource_tags['user_<key>'])." },
	{ "data_exports.cost_column", T_STRING, OFF(dx_cost_column), 0, "line_item_unblended_cost",
	  1, 128, NULL, "The cost column summed (line_item_unblended_cost matches Cost "
	  "Explorer's UnblendedCost; line_item_net_unblended_cost, ...)." },
	{ "data_exports.top_principals", T_INT, OFF(dx_top_principals), 5, NULL, 0, 100, NULL,
	  "IAM principals listed per project by month-to-date spend; the rest are summed as "
	  "principal=\"__other__\" (0 = only __other__)." },
	{ "data_exports.hours", T_INT, OFF(dx_hours), 24, NULL, 0, 168, NULL,
	  "Complete hours exported per account in bedrock_cost_hourly_usd (hours_ago 1..N)." },
	{ "organization.accounts", T_ACCOUNTS, OFF(org_accounts), 0, NULL, 0, 10000, NULL,
	  "( { id = \"111122223333\"; name = \"\"; role_arn = \"\"; external_id = \"\"; regions = []; } ): "
	  "member accounts whose projects are listed through an assumed role (the management "
	  "account itself uses the found credentials); empty regions = projects.regions." },
	{ "organization.discover", T_BOOL, OFF(org_discover), 0, NULL, 0, 1, NULL,
	  "Also list the organization's ACTIVE accounts with AWS Organizations ListAccounts (from "
	  "the management account; needs organization.role_name)." },
	{ "organization.endpoint", T_STRING, OFF(org_endpoint), 0,
	  "https://organizations.us-east-1.amazonaws.com", 8, 1024, NULL,
	  "AWS Organizations endpoint (SigV4 organizations, us-east-1)." },
	{ "organization.role_name", T_STRING, OFF(org_role_name), 0, "", 0, 64, NULL,
	  "Role assumed in every member account without its own role_arn: "
	  "arn:aws:iam::<id>:role/<role_name>." },
	{ "organization.external_id", T_STRING, OFF(org_external_id), 0, "", 0, 1224, NULL,
	  "ExternalId for the member roles' AssumeRole (\"\" = none)." },
	{ "organization.refresh_interval", T_INT, OFF(org_refresh_interval), 3600, NULL, 60, 86400,
	  NULL, "Seconds between two listings of the accounts (ListAccounts, GetCallerIdentity; both free)." },
	{ "budgets", T_BUDGETS, OFF(budgets), 0, NULL, 0, 1000, NULL,
	  "( { project = \"name or id\"; monthly_usd = N; }, { tag = \"Team\"; value = \"X\"; monthly_usd = N; } )" },
	{ "state_file", T_STRING, OFF(state_file), 0, "/var/lib/bedrock-cost-exporter/state.json", 0,
	  4096, NULL, "Where cost data survives restarts (\"\" = nowhere): a local path, or "
	  "\"s3://bucket/key\" to share it between replicas and pod moves (conditional writes). "
	  "{shard} and {total_shards} are replaced by --shard and --total-shards; with {shard}, "
	  "shards other than 0 read the Bedrock service names from shard 0's state." },
	{ "state_s3.endpoint", T_STRING, OFF(state_s3_endpoint), 0,
	  "https://{bucket}.s3.{region}.amazonaws.com", 8, 1024, NULL,
	  "S3 endpoint of an s3:// state_file: with {bucket} virtual-hosted addressing, without it "
	  "path-style ({endpoint}/bucket/key); {region} is state_s3.region." },
	{ "state_s3.region", T_STRING, OFF(state_s3_region), 0, "us-east-1", 1, 32, NULL,
	  "Region of the state file's bucket (the SigV4 scope)." },
	{ "http.connect_timeout", T_INT, OFF(http_connect_timeout), 5, NULL, 1, 120, NULL,
	  "Seconds to establish a connection to an AWS endpoint." },
	{ "http.request_timeout", T_INT, OFF(http_request_timeout), 30, NULL, 1, 600, NULL,
	  "Seconds one HTTP request may take in total, body included." },
	{ "http.max_retries", T_INT, OFF(http_max_retries), 3, NULL, 0, 10, NULL,
	  "Retries after a throttled, 5xx, timed-out or network-failed request." },
	{ "http.retry_max_delay", T_INT, OFF(http_retry_max_delay), 30, NULL, 1, 600, NULL,
	  "Longest wait before a retry; a longer Retry-After gives up the refresh." },
	{ "http.max_response_mib", T_INT, OFF(http_max_response_mib), 16, NULL, 1, 1024, NULL,
	  "Largest response body accepted, in MiB; a larger one is an error." },
};

#pragma GCC diagnostic pop

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void split_default(struct textlist *l, const char *csv)
{
	const char *p = csv;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		textlist_push(l, xstrndup(p, n));
		p += n + (e ? 1 : 0);
	}
}

static void set_default(struct conf *c, const struct key *k)
{
	char *base = (char *)c + k->offset;
	switch (k->type) {
	case T_BOOL:
		*(bool *)(void *)base = k->def_int != 0;
		break;
	case T_INT:
		*(long *)(void *)base = k->def_int;
		break;
	case T_STRING:
	case T_ENUM:
		*(char **)(void *)base = xstrdup(k->def_str);
		break;
	case T_STRLIST:
		split_default((struct textlist *)(void *)base, k->def_str);
		break;
	case T_FLOAT:
		*(double *)(void *)base = k->fdef;
		break;
	case T_BUDGETS:
	case T_PRICES:
	case T_ACCOUNTS:
		break; /* empty */
	}
}

static void budgets_free(struct budget_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].project);
		free(l->v[i].tag);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void prices_free(struct cw_price_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].model);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void org_account_free(struct org_account *a)
{
	free(a->id);
	free(a->name);
	free(a->role_arn);
	free(a->external_id);
	textlist_free(&a->regions);
}

static void accounts_free(struct org_account_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		org_account_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void free_value(struct conf *c, const struct key *k)
{
	char *base = (char *)c + k->offset;
	if (k->type == T_STRING || k->type == T_ENUM) {
		free(*(char **)(void *)base);
		*(char **)(void *)base = NULL;
	} else if (k->type == T_STRLIST) {
		textlist_free((struct textlist *)(void *)base);
	} else if (k->type == T_BUDGETS) {
		budgets_free((struct budget_list *)(void *)base);
	} else if (k->type == T_PRICES) {
		prices_free((struct cw_price_list *)(void *)base);
	} else if (k->type == T_ACCOUNTS) {
		accounts_free((struct org_account_list *)(void *)base);
	}
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		free_value(c, &keys[i]);
	textlist_free(&c->projects_tag_label_names);
	free(c->state_s3_bucket);
	free(c->state_s3_key);
	free(c->shard0_state_file);
	free(c->path);
	free(c);
}

/* "s3://bucket/key": a bucket of 3..63 characters of [a-z0-9.-] and a non-empty key, into
 * @bucket and @key (caller frees). */
bool conf_s3_url_split(const char *url, char **bucket, char **key)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	if (!slash || slash - b < 3 || slash - b > 63 || !slash[1])
		return false;
	for (const char *p = b; p < slash; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return false;
	*bucket = xstrndup(b, (size_t)(slash - b));
	*key = xstrdup(slash + 1);
	return true;
}

static long g_shard = 0, g_total_shards = 1;

void conf_set_sharding(long shard, long total)
{
	g_shard = shard;
	g_total_shards = total;
}

long conf_account_shard(const char *id, long total)
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across versions and machines */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return total > 1 ? (long)(h % (uint32_t)total) : 0;
}

char *conf_account_role(const struct conf *c, const struct org_account *a)
{
	if (a && *a->role_arn)
		return xstrdup(a->role_arn);
	if (!*c->org_role_name)
		return xstrdup("");
	return xasprintf("arn:aws:iam::%s:role/%s", a ? a->id : "", c->org_role_name);
}

/* @s with {shard} and {total_shards} replaced. Caller frees. */
static char *shard_subst(const char *s, long shard, long total)
{
	struct buf b;
	buf_init(&b, 8192);
	while (*s) {
		if (strncmp(s, "{shard}", 7) == 0) {
			buf_printf(&b, "%ld", shard);
			s += 7;
		} else if (strncmp(s, "{total_shards}", 14) == 0) {
			buf_printf(&b, "%ld", total);
			s += 14;
		} else {
			buf_append(&b, s++, 1);
		}
	}
	char *out = xstrdup(b.data ? b.data : "");
	buf_free(&b);
	return out;
}

/* Fills everything derived from keys; returns 0 or -EINVAL with @errors filled. */
static int derive(struct conf *c, struct textlist *errors, const char *file, const int *lines,
		  const char *const *files);

struct conf *conf_defaults(void)
{
	struct conf *c = xcalloc(1, sizeof(*c));
	c->path = xstrdup("");
	for (size_t i = 0; i < NKEYS; i++)
		set_default(c, &keys[i]);
	struct textlist errs = { 0 };
	int lines[NKEYS] = { 0 };
	const char *files[NKEYS] = { 0 };
	derive(c, &errs, "", lines, files); /* the defaults are valid by construction */
	textlist_free(&errs);
	return c;
}

static const struct key *find_key(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

static bool is_group(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].path, name, n) == 0 && keys[i].path[n] == '.')
			return true;
	return false;
}

/* Records "file:line: message" (or "file: message" without a line). */
static void add_error(struct textlist *errors, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_error(struct textlist *errors, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *msg = xmalloc(n > 0 ? (size_t)n + 1 : 1);
	msg[0] = '\0';
	va_start(ap, fmt);
	if (n > 0)
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
	va_end(ap);
	textlist_push(errors, line > 0 ? xasprintf("%s:%d: %s", file, line, msg)
				       : xasprintf("%s: %s", file, msg));
	free(msg);
}

char *conf_tag_label_name(const char *key)
{
	size_t n = strlen(key);
	char *s = xmalloc(n + 5);
	memcpy(s, "tag_", 4);
	for (size_t i = 0; i < n; i++) {
		char ch = (char)tolower((unsigned char)key[i]);
		s[4 + i] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_') ? ch : '_';
	}
	s[4 + n] = '\0';
	return s;
}

static bool region_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

/* Reads the budgets list: each entry a group with project, or tag + value, and monthly_usd. */
static int read_budgets(struct budget_list *out, const struct key *k, const config_setting_t *s,
			const char *file, struct textlist *errors)
{
	struct budget_list l = { 0 };
	int n = config_setting_length(s);
	int rc = 0;
	if (n > k->max) {
		add_error(errors, file, (int)config_setting_source_line(s),
			  "%s: more than 1000 entries", k->path);
		return -EINVAL;
	}
	l.v = xcalloc((size_t)n + 1, sizeof(*l.v));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
		int line = (int)config_setting_source_line(e);
		struct budget *b = &l.v[l.n++];
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			add_error(errors, file, line, "budgets: every entry must be a group { ... }");
			rc = -EINVAL;
			continue;
		}
		bool have_amount = false;
		for (int j = 0; j < config_setting_length(e); j++) {
			const config_setting_t *f = config_setting_get_elem(e, (unsigned int)j);
			const char *name = config_setting_name(f);
			int ft = config_setting_type(f);
			int fl = (int)config_setting_source_line(f);
			char **dst = strcmp(name, "project") == 0 ? &b->project
				   : strcmp(name, "tag") == 0	? &b->tag
				   : strcmp(name, "value") == 0 ? &b->value
								: NULL;
			if (dst) {
				if (ft != CONFIG_TYPE_STRING || !*config_setting_get_string(f)) {
					add_error(errors, file, fl, "budgets.%s: expected a non-empty string",
						  name);
					rc = -EINVAL;
				} else {
					free(*dst);
					*dst = xstrdup(config_setting_get_string(f));
				}
			} else if (strcmp(name, "monthly_usd") == 0) {
				double v = ft == CONFIG_TYPE_FLOAT ? config_setting_get_float(f)
					 : (ft == CONFIG_TYPE_INT || ft == CONFIG_TYPE_INT64)
						 ? (double)config_setting_get_int64(f)
						 : -1;
				if (ft != CONFIG_TYPE_FLOAT && ft != CONFIG_TYPE_INT && ft != CONFIG_TYPE_INT64) {
					add_error(errors, file, fl, "budgets.monthly_usd: wrong type (expected number)");
					rc = -EINVAL;
				} else if (!(v > 0 && v < 1e12)) {
					add_error(errors, file, fl, "budgets.monthly_usd: value out of range (allowed > 0)");
					rc = -EINVAL;
				}
				b->monthly_usd = v;
				have_amount = true;
			} else {
				add_error(errors, file, fl, "unknown key \"budgets.%s\"", name);
				rc = -EINVAL;
			}
		}
		bool is_project = b->project && !b->tag && !b->value;
		bool is_tag = !b->project && b->tag && b->value;
		if (!is_project && !is_tag) {
			add_error(errors, file, line, "budgets: give either project, or tag and value");
			rc = -EINVAL;
		} else if (!have_amount) {
			add_error(errors, file, line, "budgets: monthly_usd missing");
			rc = -EINVAL;
		}
		for (size_t j = 0; rc == 0 && j + 1 < l.n; j++) {
			const struct budget *o = &l.v[j];
			bool same = is_project ? o->project && strcmp(o->project, b->project) == 0
					       : o->tag && strcmp(o->tag, b->tag) == 0 &&
							 strcmp(o->value, b->value) == 0;
			if (same) {
				add_error(errors, file, line, "budgets: \"%s\" has two budgets",
					  is_project ? b->project : b->value);
				rc = -EINVAL;
			}
		}
	}
	if (rc) {
		budgets_free(&l);
		return rc;
	}
	budgets_free(out);
	*out = l;
	return 0;
}

/* Reads cloudwatch.prices: each entry a group with model, input_per_million and
 * output_per_million (USD, >= 0). */
static int read_prices(struct cw_price_list *out, const struct key *k, const config_setting_t *s,
		       const char *file, struct textlist *errors)
{
	struct cw_price_list l = { 0 };
	int n = config_setting_length(s);
	int rc = 0;
	if (n > k->max) {
		add_error(errors, file, (int)config_setting_source_line(s),
			  "%s: more than %ld entries", k->path, k->max);
		return -EINVAL;
	}
	l.v = xcalloc((size_t)n + 1, sizeof(*l.v));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
		int line = (int)config_setting_source_line(e);
		struct cw_price *p = &l.v[l.n++];
		p->per_million[0] = p->per_million[1] = -1;
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			add_error(errors, file, line, "%s: every entry must be a group { ... }", k->path);
			rc = -EINVAL;
			continue;
		}
		for (int j = 0; j < config_setting_length(e); j++) {
			const config_setting_t *f = config_setting_get_elem(e, (unsigned int)j);
			const char *name = config_setting_name(f);
			int ft = config_setting_type(f);
			int fl = (int)config_setting_source_line(f);
			int dir = strcmp(name, "input_per_million") == 0    ? 0
				: strcmp(name, "output_per_million") == 0 ? 1
									  : -1;
			if (strcmp(name, "model") == 0) {
				if (ft != CONFIG_TYPE_STRING || !*config_setting_get_string(f) ||
				    strlen(config_setting_get_string(f)) > 256) {
					add_error(errors, file, fl, "%s.model: expected 1..256 characters",
						  k->path);
					rc = -EINVAL;
				} else {
					free(p->model);
					p->model = xstrdup(config_setting_get_string(f));
				}
			} else if (dir >= 0) {
				bool num = ft == CONFIG_TYPE_FLOAT || ft == CONFIG_TYPE_INT ||
					   ft == CONFIG_TYPE_INT64;
				double v = ft == CONFIG_TYPE_FLOAT ? config_setting_get_float(f)
					 : num			   ? (double)config_setting_get_int64(f)
								   : -1;
				if (!num || !(v >= 0 && v < 1e6)) {
					add_error(errors, file, fl, "%s.%s: expected a number of USD, "
						  "0..1000000", k->path, name);
					rc = -EINVAL;
				}
				p->per_million[dir] = v;
			} else {
				add_error(errors, file, fl, "unknown key \"%s.%s\"", k->path, name);
				rc = -EINVAL;
			}
		}
		if (!p->model || p->per_million[0] < 0 || p->per_million[1] < 0) {
			add_error(errors, file, line, "%s: every entry needs model, input_per_million "
				  "and output_per_million", k->path);
			rc = -EINVAL;
		}
		for (size_t j = 0; rc == 0 && j + 1 < l.n; j++) {
			if (strcmp(l.v[j].model, p->model) == 0) {
				add_error(errors, file, line, "%s: \"%s\" is listed twice", k->path,
					  p->model);
				rc = -EINVAL;
			}
		}
	}
	if (rc) {
		prices_free(&l);
		return rc;
	}
	prices_free(out);
	*out = l;
	return 0;
}

bool conf_account_id_ok(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (id[n] < '0' || id[n] > '9')
			return false;
	return n == 12;
}

/* Reads organization.accounts: each entry a group with id (12 digits) and optionally
 * name, role_arn, external_id and regions. */
static int read_accounts(struct org_account_list *out, const struct key *k,
			 const config_setting_t *s, const char *file, struct textlist *errors)
{
	struct org_account_list l = { 0 };
	int n = config_setting_length(s);
	int rc = 0;
	if (n > k->max) {
		add_error(errors, file, (int)config_setting_source_line(s),
			  "%s: more than %ld entries", k->path, k->max);
		return -EINVAL;
	}
	l.v = xcalloc((size_t)n + 1, sizeof(*l.v));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
		int line = (int)config_setting_source_line(e);
		struct org_account *a = &l.v[l.n++];
		if (config_setting_type(e) != CONFIG_TYPE_GROUP) {
			add_error(errors, file, line, "%s: every entry must be a group { ... }", k->path);
			rc = -EINVAL;
			continue;
		}
		for (int j = 0; j < config_setting_length(e); j++) {
			const config_setting_t *f = config_setting_get_elem(e, (unsigned int)j);
			const char *name = config_setting_name(f);
			int fl = (int)config_setting_source_line(f);
			char **str = strcmp(name, "id") == 0	      ? &a->id
				   : strcmp(name, "name") == 0	      ? &a->name
				   : strcmp(name, "role_arn") == 0    ? &a->role_arn
				   : strcmp(name, "external_id") == 0 ? &a->external_id
								      : NULL;
			if (str) {
				const char *v = config_setting_type(f) == CONFIG_TYPE_STRING
							? config_setting_get_string(f)
							: NULL;
				if (!v || strlen(v) > 2048) {
					add_error(errors, file, fl, "%s.%s: expected a string", k->path,
						  name);
					rc = -EINVAL;
				} else {
					free(*str);
					*str = xstrdup(v);
				}
			} else if (strcmp(name, "regions") == 0) {
				int t = config_setting_type(f);
				bool ok = t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;
				for (int r = 0; ok && r < config_setting_length(f); r++) {
					const config_setting_t *re =
						config_setting_get_elem(f, (unsigned int)r);
					const char *v = config_setting_type(re) == CONFIG_TYPE_STRING
								? config_setting_get_string(re)
								: NULL;
					ok = v && region_ok(v);
					if (ok)
						textlist_push(&a->regions, xstrdup(v));
				}
				if (!ok) {
					add_error(errors, file, fl, "%s.regions: expected a list of region "
						  "names", k->path);
					rc = -EINVAL;
				}
			} else {
				add_error(errors, file, fl, "unknown key \"%s.%s\"", k->path, name);
				rc = -EINVAL;
			}
		}
		if (!a->id || !conf_account_id_ok(a->id)) {
			add_error(errors, file, line, "%s: every entry needs id, an account id of 12 "
				  "digits", k->path);
			rc = -EINVAL;
			continue;
		}
		if (!a->name)
			a->name = xstrdup("");
		if (!a->role_arn)
			a->role_arn = xstrdup("");
		if (!a->external_id)
			a->external_id = xstrdup("");
		for (size_t j = 0; j + 1 < l.n; j++) {
			if (l.v[j].id && strcmp(l.v[j].id, a->id) == 0) {
				add_error(errors, file, line, "%s: account %s is listed twice", k->path,
					  a->id);
				rc = -EINVAL;
			}
		}
	}
	if (rc) {
		accounts_free(&l);
		return rc;
	}
	accounts_free(out);
	*out = l;
	return 0;
}

/* Reads one setting into @c per @k. Returns 0 or -EINVAL (error recorded). */
static int read_value(struct conf *c, const struct key *k, const config_setting_t *s,
		      const char *file, struct textlist *errors)
{
	int line = (int)config_setting_source_line(s);
	int type = config_setting_type(s);
	char *base = (char *)c + k->offset;
	char range[64];

	switch (k->type) {
	case T_BOOL:
		if (type != CONFIG_TYPE_BOOL)
			goto wrong_type;
		*(bool *)(void *)base = config_setting_get_bool(s) != 0;
		return 0;
	case T_INT: {
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			goto wrong_type;
		long long v = config_setting_get_int64(s);
		if (v < k->min || v > k->max) {
			snprintf(range, sizeof(range), "%ld..%ld", k->min, k->max);
			add_error(errors, file, line, "%s: value out of range (allowed %s)", k->path, range);
			return -EINVAL;
		}
		*(long *)(void *)base = (long)v;
		return 0;
	}
	case T_STRING:
	case T_ENUM: {
		if (type != CONFIG_TYPE_STRING)
			goto wrong_type;
		const char *v = config_setting_get_string(s);
		size_t n = strlen(v);
		if (k->type == T_ENUM) {
			bool ok = false;
			for (const char *const *ch = k->choices; *ch; ch++)
				ok = ok || strcmp(*ch, v) == 0;
			if (!ok) {
				add_error(errors, file, line, "%s: unknown value \"%s\"", k->path, v);
				return -EINVAL;
			}
		} else if ((long)n < k->min || (long)n > k->max) {
			snprintf(range, sizeof(range), "%ld..%ld characters", k->min, k->max);
			add_error(errors, file, line, "%s: length out of range (allowed %s)", k->path, range);
			return -EINVAL;
		}
		free(*(char **)(void *)base);
		*(char **)(void *)base = xstrdup(v);
		return 0;
	}
	case T_STRLIST: {
		if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
			goto wrong_type;
		int n = config_setting_length(s);
		if (n < k->min || n > k->max) {
			snprintf(range, sizeof(range), "%ld..%ld entries", k->min, k->max);
			add_error(errors, file, line, "%s: list length out of range (allowed %s)", k->path, range);
			return -EINVAL;
		}
		struct textlist l = { 0 };
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				add_error(errors, file, line, "%s: every entry must be a string", k->path);
				textlist_free(&l);
				return -EINVAL;
			}
			const char *v = config_setting_get_string(e);
			if (!*v || strlen(v) > 256) {
				add_error(errors, file, line, "%s: entries must be 1..256 characters", k->path);
				textlist_free(&l);
				return -EINVAL;
			}
			for (size_t j = 0; j < l.n; j++) {
				if (strcmp(l.v[j], v) == 0) {
					add_error(errors, file, line, "%s: \"%s\" is listed twice", k->path, v);
					textlist_free(&l);
					return -EINVAL;
				}
			}
			textlist_push(&l, xstrdup(v));
		}
		textlist_free((struct textlist *)(void *)base);
		*(struct textlist *)(void *)base = l;
		return 0;
	}
	case T_FLOAT: {
		if (type != CONFIG_TYPE_FLOAT && type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			goto wrong_type;
		double v = type == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
						     : (double)config_setting_get_int64(s);
		if (!(v >= k->fmin && v <= k->fmax)) {
			snprintf(range, sizeof(range), "%g..%g", k->fmin, k->fmax);
			add_error(errors, file, line, "%s: value out of range (allowed %s)", k->path, range);
			return -EINVAL;
		}
		*(double *)(void *)base = v;
		return 0;
	}
	case T_BUDGETS:
		if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
			goto wrong_type;
		return read_budgets((struct budget_list *)(void *)base, k, s, file, errors);
	case T_PRICES:
		if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
			goto wrong_type;
		return read_prices((struct cw_price_list *)(void *)base, k, s, file, errors);
	case T_ACCOUNTS:
		if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
			goto wrong_type;
		return read_accounts((struct org_account_list *)(void *)base, k, s, file, errors);
	}
	return 0;
wrong_type:
	add_error(errors, file, line, "%s: wrong type (expected %s)", k->path, type_names[k->type]);
	return -EINVAL;
}

static int line_of(const struct key *k, const int *lines)
{
	return lines[k - keys];
}

/* The file a key was set in (an @include may differ from the main file). */
static const char *file_of(const struct key *k, const char *const *files, const char *main)
{
	return files[k - keys] ? files[k - keys] : main;
}

static int derive(struct conf *c, struct textlist *errors, const char *file, const int *lines,
		  const char *const *files)
{
	int rc = 0;
	c->projects_auth = strcmp(c->projects_auth_name, "sigv4") == 0 ? AUTH_SIGV4 : AUTH_API_KEY;

	for (size_t i = 0; i < c->projects_regions.n; i++) {
		if (!region_ok(c->projects_regions.v[i])) {
			add_error(errors, file_of(find_key("projects.regions"), files, file), line_of(find_key("projects.regions"), lines),
				  "projects.regions: \"%s\" is not a region name", c->projects_regions.v[i]);
			rc = -EINVAL;
		}
	}
	static const char *const urls[] = { "projects.endpoint", "aws.sts_endpoint",
					     "aws.imds_endpoint", "aws.container_endpoint",
					     "cost_explorer.endpoint", "cloudwatch.endpoint",
					     "state_s3.endpoint", "organization.endpoint",
					     "data_exports.endpoint" };
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		const struct key *k = find_key(urls[i]);
		const char *ep = *(char **)(void *)((char *)c + k->offset);
		if ((strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
		    strpbrk(ep, " \t\r\n?#")) {
			add_error(errors, file_of(k, files, file), line_of(k, lines), "%s: \"%s\" is not an http(s) base URL",
				  urls[i], ep);
			rc = -EINVAL;
		}
	}
	/* what STS itself accepts (AssumeRole's parameter constraints), so --check-config fails
	 * where AWS would */
	static const struct {
		const char *key, *extra;
		size_t min;
	} sts[] = {
		{ "aws.role_session_name", "_+=,.@-", 2 },
		{ "aws.external_id", "_+=,.@:/-", 2 },
		{ "aws.role_arn", NULL, 20 },
		{ "organization.external_id", "_+=,.@:/-", 2 },
		{ "organization.role_name", "_+=,.@-", 1 },
	};
	for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++) {
		const struct key *k = find_key(sts[i].key);
		const char *v = *(char **)(void *)((char *)c + k->offset);
		if (!*v && strcmp(sts[i].key, "aws.role_session_name") != 0)
			continue; /* "" = not used */
		bool ok = strlen(v) >= sts[i].min;
		for (const char *p = v; ok && sts[i].extra && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr(sts[i].extra, *p);
		if (!ok) {
			/* the value is not echoed: an ExternalId is shared between two accounts only */
			add_error(errors, file_of(k, files, file), line_of(k, lines),
				  sts[i].extra ? "%s: not what STS accepts (%zu or more of "
						 "A-Z a-z 0-9 %s)"
					       : "%s: not what STS accepts (%zu or more characters)%s",
				  sts[i].key, sts[i].min, sts[i].extra ? sts[i].extra : "");
			rc = -EINVAL;
		}
	}
	static const char *const regions[] = { "aws.region", "cost_explorer.signing_region",
					       "state_s3.region", "data_exports.region" };
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		const struct key *k = find_key(regions[i]);
		const char *r = *(char **)(void *)((char *)c + k->offset);
		if (!region_ok(r)) {
			add_error(errors, file_of(k, files, file), line_of(k, lines), "%s: \"%s\" is not a region name",
				  regions[i], r);
			rc = -EINVAL;
		}
	}
	c->shard = g_shard;
	c->total_shards = g_total_shards;
	free(c->shard0_state_file);
	c->shard0_state_file = NULL;
	if (c->shard > 0 && strstr(c->state_file, "{shard}"))
		c->shard0_state_file = shard_subst(c->state_file, 0, c->total_shards);
	char *sf = shard_subst(c->state_file, c->shard, c->total_shards);
	free(c->state_file);
	c->state_file = sf;
	c->org_mode = c->org_accounts.n > 0 || c->org_discover;
	if (c->total_shards > 1 && !c->org_mode) {
		add_error(errors, file, 0, "--total-shards=%ld: shards split an organization's "
			  "accounts; configure organization.accounts or organization.discover",
			  c->total_shards);
		rc = -EINVAL;
	}
	if (c->org_discover && !*c->org_role_name) {
		const struct key *k = find_key("organization.discover");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "organization.discover: needs organization.role_name, the role assumed in "
			  "each discovered account");
		rc = -EINVAL;
	}
	/* the near-real-time estimate is of one account: not in an organization (yet) */
	if (c->org_mode)
		c->cw_enabled = false;
	if (c->org_mode && c->projects_enabled && c->projects_auth != AUTH_SIGV4) {
		const struct key *k = find_key("projects.auth");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "projects.auth: an organization's projects are listed with each account's "
			  "assumed role: set it to \"sigv4\"");
		rc = -EINVAL;
	}
	for (size_t i = 0; i < c->org_accounts.n; i++) {
		const struct org_account *a = &c->org_accounts.v[i];
		if (!*a->role_arn && !*c->org_role_name) {
			const struct key *k = find_key("organization.accounts");
			add_error(errors, file_of(k, files, file), line_of(k, lines),
				  "organization.accounts: account %s has no role_arn, and "
				  "organization.role_name is not set", a->id);
			rc = -EINVAL;
		}
	}
	free(c->state_s3_bucket);
	free(c->state_s3_key);
	c->state_s3_bucket = c->state_s3_key = NULL;
	if (strncmp(c->state_file, "s3://", 5) == 0 &&
	    !conf_s3_url_split(c->state_file, &c->state_s3_bucket, &c->state_s3_key)) {
		const struct key *k = find_key("state_file");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "state_file: \"%s\" is not s3://bucket/key (a bucket name of 3..63 "
			  "characters of a-z 0-9 . -, and a key)", c->state_file);
		rc = -EINVAL;
	} else if (c->state_s3_bucket && strchr(c->state_s3_bucket, '.') &&
		   strstr(c->state_s3_endpoint, "{bucket}") &&
		   strncmp(c->state_s3_endpoint, "https://", 8) == 0) {
		/* bucket.with.dots.s3.region.amazonaws.com does not match S3's certificate */
		const struct key *k = find_key("state_s3.endpoint");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "state_s3.endpoint: the bucket \"%s\" has dots, which HTTPS virtual-hosted "
			  "addressing cannot verify; use path-style (an endpoint without {bucket}, "
			  "e.g. \"https://s3.{region}.amazonaws.com\")", c->state_s3_bucket);
		rc = -EINVAL;
	}
	if (c->dx_enabled && (!*c->dx_bucket || !*c->dx_export_name)) {
		const struct key *k = find_key("data_exports.enabled");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "data_exports.enabled: needs data_exports.bucket and data_exports.export_name");
		rc = -EINVAL;
	}
	if (c->dx_enabled && c->dx_tag_columns.n && c->dx_tag_columns.n != c->ce_attribution_tags.n) {
		const struct key *k = find_key("data_exports.tag_columns");
		add_error(errors, file_of(k, files, file), line_of(k, lines),
			  "data_exports.tag_columns: %zu columns for %zu cost_explorer.attribution_tags",
			  c->dx_tag_columns.n, c->ce_attribution_tags.n);
		rc = -EINVAL;
	}
	for (size_t i = 0; i < c->budgets.n; i++) {
		const struct budget *b = &c->budgets.v[i];
		bool known = !b->tag;
		for (size_t j = 0; b->tag && j < c->projects_tag_labels.n; j++)
			known = known || strcmp(c->projects_tag_labels.v[j], b->tag) == 0;
		if (!known) {
			add_error(errors, file_of(find_key("budgets"), files, file), line_of(find_key("budgets"), lines),
				  "budgets: tag \"%s\" is not in projects.tag_labels", b->tag);
			rc = -EINVAL;
		}
	}

	textlist_free(&c->projects_tag_label_names);
	for (size_t i = 0; i < c->projects_tag_labels.n; i++) {
		char *name = conf_tag_label_name(c->projects_tag_labels.v[i]);
		for (size_t j = 0; j < c->projects_tag_label_names.n; j++) {
			if (strcmp(c->projects_tag_label_names.v[j], name) == 0) {
				add_error(errors, file_of(find_key("projects.tag_labels"), files, file), line_of(find_key("projects.tag_labels"), lines),
					  "projects.tag_labels: \"%s\" and \"%s\" map to the same label name",
					  c->projects_tag_labels.v[j], c->projects_tag_labels.v[i]);
				rc = -EINVAL;
			}
		}
		textlist_push(&c->projects_tag_label_names, name);
	}
	return rc;
}

/* Reads @path, or @text when it is not NULL (then @path only names it). */
static struct conf *load(const char *path, const char *text, struct textlist *errors)
{
	config_t cfg;
	struct conf *c = conf_defaults();
	int lines[NKEYS] = { 0 };
	const char *files[NKEYS] = { 0 }; /* into libconfig's memory: used before config_destroy */
	int rc = 0;

	config_init(&cfg);
	free(c->path);
	c->path = xstrdup(path);
	int ok = text ? config_read_string(&cfg, text) : config_read_file(&cfg, path);
	if (ok != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO) {
			FILE *f = fopen(path, "r");
			const char *why = f ? "cannot parse" : strerror(errno);
			if (f)
				fclose(f);
			add_error(errors, path, 0, "cannot read configuration: %s", why);
		} else {
			const char *file = config_error_file(&cfg);
			add_error(errors, file ? file : path, config_error_line(&cfg), "%s",
				  config_error_text(&cfg));
		}
		rc = -EINVAL;
		goto out;
	}

	config_setting_t *root = config_root_setting(&cfg);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *g = config_setting_get_elem(root, (unsigned int)i);
		const char *gname = config_setting_name(g);
		const char *file = config_setting_source_file(g) ? config_setting_source_file(g) : path;
		int gline = (int)config_setting_source_line(g);
		if (!is_group(gname)) {
			const struct key *k = find_key(gname);
			if (!k) {
				add_error(errors, file, gline, "unknown key \"%s\"", gname);
				rc = -EINVAL;
			} else {
				lines[k - keys] = gline;
				files[k - keys] = file;
				if (read_value(c, k, g, file, errors))
					rc = -EINVAL;
			}
			continue;
		}
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			add_error(errors, file, gline, "%s: wrong type (expected a group { ... })", gname);
			rc = -EINVAL;
			continue;
		}
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *s = config_setting_get_elem(g, (unsigned int)j);
			const char *sfile = config_setting_source_file(s) ? config_setting_source_file(s)
									  : file;
			char *kpath = xasprintf("%s.%s", gname, config_setting_name(s));
			const struct key *k = find_key(kpath);
			if (!k) {
				add_error(errors, sfile, (int)config_setting_source_line(s),
					  "unknown key \"%s\"", kpath);
				rc = -EINVAL;
			} else {
				lines[k - keys] = (int)config_setting_source_line(s);
				files[k - keys] = sfile;
				if (read_value(c, k, s, sfile, errors))
					rc = -EINVAL;
			}
			free(kpath);
		}
	}
	if (derive(c, errors, path, lines, files))
		rc = -EINVAL;
out:
	config_destroy(&cfg);
	if (rc) {
		conf_free(c);
		return NULL;
	}
	return c;
}

struct conf *conf_load(const char *path, struct textlist *errors)
{
	return load(path, NULL, errors);
}

struct conf *conf_parse_string(const char *name, const char *text, struct textlist *errors)
{
	return load(name, text, errors);
}

void conf_print_keys(FILE *f)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		char def[160], range[128] = "";
		switch (k->type) {
		case T_BOOL:
			snprintf(def, sizeof(def), "%s", k->def_int ? "true" : "false");
			break;
		case T_INT:
			snprintf(def, sizeof(def), "%ld", k->def_int);
			snprintf(range, sizeof(range), "%ld..%ld", k->min, k->max);
			break;
		case T_STRING:
			snprintf(def, sizeof(def), "\"%s\"", k->def_str);
			break;
		case T_ENUM: {
			snprintf(def, sizeof(def), "\"%s\"", k->def_str);
			size_t n = 0;
			for (const char *const *ch = k->choices; *ch && n < sizeof(range); ch++)
				n += (size_t)snprintf(range + n, sizeof(range) - n, "%s%s",
						      n ? "|" : "", *ch);
			break;
		}
		case T_FLOAT:
			snprintf(def, sizeof(def), "%g", k->fdef);
			snprintf(range, sizeof(range), "%g..%g", k->fmin, k->fmax);
			break;
		case T_BUDGETS:
		case T_PRICES:
		case T_ACCOUNTS:
			snprintf(def, sizeof(def), "()");
			break;
		case T_STRLIST: {
			struct textlist l = { 0 };
			split_default(&l, k->def_str);
			size_t n = (size_t)snprintf(def, sizeof(def), "[");
			for (size_t j = 0; j < l.n && n < sizeof(def); j++)
				n += (size_t)snprintf(def + n, sizeof(def) - n, "%s\"%s\"", j ? ", " : "", l.v[j]);
			if (n < sizeof(def))
				snprintf(def + n, sizeof(def) - n, "]");
			textlist_free(&l);
			snprintf(range, sizeof(range), "%ld..%ld entries", k->min, k->max);
			break;
		}
		}
		fprintf(f, "  %-40s %-7s default %s%s%s\n      %s\n", k->path,
			k->type == T_STRLIST || k->type == T_BUDGETS || k->type == T_PRICES ||
					k->type == T_ACCOUNTS
				? "list"
				: type_names[k->type],
			def,
			*range ? ", allowed " : "", range, k->help);
	}
}
