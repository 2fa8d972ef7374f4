/*
 * conf.h - the configuration file: schema, loading, validation.
 *
 * The schema is one table (conf.c: keys[]): every key has a type, a
 * default, an allowed range and one line of help. The same table drives
 * validation, defaults, `--help` and the README's key list, so they cannot
 * drift apart. Unknown keys, wrong types and out-of-range values are errors,
 * reported as "file:line: message".
 *
 * A struct conf is immutable once loaded; reload builds a new one and swaps
 * it in on success (poller.c). Not thread-safe to build; safe to read from
 * any thread once published.
 */
#ifndef BCE_CONF_H
#define BCE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/textlist.h"

enum projects_auth { AUTH_API_KEY, AUTH_SIGV4 };

/* One entry of the `budgets` list: a project (by name or id) or a tag value. */
struct budget {
	char *project; /* NULL for a tag budget */
	char *tag;
	char *value;
	double monthly_usd;
};

struct budget_list {
	struct budget *v;
	size_t n;
};

/* One entry of `cloudwatch.prices`: a fallback rate for a model with no billed day yet. */
struct cw_price {
	char *model;              /* matched on usage_model_key() (model/usage.h) */
	double per_million[2];    /* USD per million tokens: [0] input, [1] output */
};

struct cw_price_list {
	struct cw_price *v;
	size_t n;
};

/* One entry of `organization.accounts`: a member account and how to reach it. */
struct org_account {
	char *id;          /* 12 digits */
	char *name;        /* "" = none given (ListAccounts may name it) */
	char *role_arn;    /* "" = arn:aws:iam::<id>:role/<organization.role_name> */
	char *external_id; /* "" = organization.external_id */
	struct textlist regions; /* empty = projects.regions */
};

struct org_account_list {
	struct org_account *v;
	size_t n;
};

struct conf {
	char *path; /* file it came from; "" for built-in defaults */

	/* projects: the bedrock-mantle Projects API */
	bool projects_enabled;
	struct textlist projects_regions;
	char *projects_endpoint; /* may contain {region} */
	char *projects_auth_name;
	enum projects_auth projects_auth;
	char *projects_api_key_env;
	char *projects_api_key_file;
	long projects_refresh_interval;
	struct textlist projects_tag_labels;
	struct textlist projects_tag_label_names; /* derived: tag_<key> */
	long projects_page_size;
	long projects_max_projects;

	/* aws: credentials and the endpoints they come from */
	char *aws_region;
	char *aws_role_arn;
	char *aws_external_id;
	char *aws_profile;
	char *aws_role_session_name;
	char *aws_sts_endpoint;       /* may contain {region} */
	bool aws_imds_enabled;
	char *aws_imds_endpoint;
	char *aws_container_endpoint; /* base for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI */

	/* cost_explorer: GetCostAndUsage and friends */
	bool ce_enabled;
	char *ce_endpoint;
	char *ce_signing_region;
	long ce_refresh_interval;
	struct textlist ce_attribution_tags;
	char *ce_cost_metric;
	struct textlist ce_services; /* empty = discover */
	char *ce_service_search;
	long ce_max_requests_per_day;
	double ce_request_price_usd;
	long ce_settle_days;
	long ce_max_pages;
	bool ce_forecast;
	long ce_allocation_tags_interval;

	/* cloudwatch: near-real-time tokens from AWS/BedrockMantle, in projects.regions */
	bool cw_enabled;
	char *cw_endpoint; /* may contain {region} */
	long cw_refresh_interval;
	long cw_max_metrics_per_day;
	double cw_price_per_1000_metrics_usd;
	long cw_late_data_minutes;
	struct cw_price_list cw_prices;

	/* data_exports: AWS Data Exports (CUR 2.0) in S3, the second cost source */
	bool dx_enabled;
	char *dx_bucket, *dx_prefix, *dx_export_name, *dx_region;
	char *dx_endpoint; /* may contain {bucket} and {region} */
	long dx_refresh_interval;
	struct textlist dx_tag_columns; /* empty = found by name */
	char *dx_cost_column;
	long dx_top_principals;
	long dx_hours;

	/* organization: member accounts, reached through an assumed role each */
	struct org_account_list org_accounts;
	bool org_discover;        /* ListAccounts from the management account */
	char *org_endpoint;
	char *org_role_name;
	char *org_external_id;
	long org_refresh_interval;
	bool org_mode;            /* derived: accounts listed or discovered */
	/* sharding, from --shard / --total-shards (conf_set_sharding), not from the file */
	long shard, total_shards;
	/* derived: shard 0's state_file, when this is another shard and state_file names
	 * {shard} (one file or object per shard); else NULL. Shard 0 discovers the Bedrock
	 * service names for every shard (cost_explorer.c). */
	char *shard0_state_file;

	struct budget_list budgets;
	char *state_file; /* "" = none; "s3://bucket/key" = in S3 (the two below) */
	char *state_s3_endpoint; /* may contain {bucket} (virtual-hosted) and {region} */
	char *state_s3_region;
	char *state_s3_bucket, *state_s3_key; /* derived from an s3:// state_file, else NULL */

	/* http: the client side, shared by every AWS source */
	long http_connect_timeout;
	long http_request_timeout;
	long http_max_retries;
	long http_retry_max_delay;
	long http_max_response_mib;
};

/*
 * Sets the shard this process is (--shard=@shard of --total-shards=@total) for every
 * configuration loaded afterwards: conf->shard and ->total_shards, and the placeholders
 * {shard} and {total_shards} in state_file. Call once, before the first load.
 */
void conf_set_sharding(long shard, long total);

/* @id is an AWS account id: 12 digits. */
bool conf_account_id_ok(const char *id);

/* The shard that owns account @id (12 digits): FNV-1a of the id, mod @total. Pure. */
long conf_account_shard(const char *id, long total);

/* "s3://bucket/key" split into @bucket and @key (caller frees both): false when @url is not
 * a bucket of 3..63 characters of [a-z0-9.-] and a non-empty key. */
bool conf_s3_url_split(const char *url, char **bucket, char **key);

/* The role to assume in member account @a: its role_arn, else
 * arn:aws:iam::<id>:role/<organization.role_name>, or "" when neither is set. Caller frees. */
char *conf_account_role(const struct conf *c, const struct org_account *a);

/* Returns a configuration holding every default. Caller frees. */
struct conf *conf_defaults(void);

/*
 * Loads and validates @path. On success returns a new configuration (caller
 * frees with conf_free) and leaves @errors empty. On failure returns NULL and
 * fills @errors with "file:line: message" strings (caller frees with
 * textlist_free). Never logs.
 */
struct conf *conf_load(const char *path, struct textlist *errors);

/* As conf_load, from @text in memory; @name stands for the file in messages. */
struct conf *conf_parse_string(const char *name, const char *text, struct textlist *errors);

void conf_free(struct conf *c);

/* Writes one line per key: "  group.key  type  default  range  help". */
void conf_print_keys(FILE *f);

/*
 * The label name of tag key @key: "tag_" + the key lower-cased with every
 * byte outside [a-z0-9_] replaced by '_'. Caller frees. Pure.
 */
char *conf_tag_label_name(const char *key);

#endif
