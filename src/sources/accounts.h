/*
 * accounts.h - the source "accounts": which AWS accounts this instance serves, and
 * the account_id every project and cost series carries.
 *
 *   - single account (no organization group): the account of the credentials, from STS
 *     GetCallerIdentity (free);
 *   - an organization: the member accounts of organization.accounts, and with
 *     organization.discover the ACTIVE accounts AWS Organizations ListAccounts gives
 *     (free; from the management account), kept only when their id hashes to this
 *     instance's --shard (conf_account_shard). The management account (the caller) is
 *     read with the found credentials; every other account through an assumed role.
 *
 * Refreshed every organization.refresh_interval seconds; a failure keeps the last list.
 * Family: bedrock_cost_account_info. Poller thread.
 */
#ifndef BCE_ACCOUNTS_H
#define BCE_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/textlist.h"
#include "sources/source.h"

struct conf;

extern const struct source_def accounts_source;

/* An account this instance serves. */
struct account {
	char *id;          /* 12 digits */
	char *name;        /* "" when unknown */
	char *status;      /* ListAccounts' Status, "" when not discovered */
	char *role_arn;    /* "" = the caller's own account: the found credentials */
	char *external_id; /* "" = none */
	struct textlist regions; /* where its projects are listed */
};

struct account_list {
	struct account *v; /* ascending by id */
	size_t n;
};

/* From the source's private state @priv (source_peer; NULL gives NULL / ""): the accounts
 * served (NULL until the caller's account is known; then possibly none: a shard may own
 * no account), and the caller's account ("" until known). Valid until the next refresh. */
const struct account_list *accounts_served(const void *priv);
const char *accounts_caller(const void *priv);

/* The account @id in @l, or NULL. */
const struct account *accounts_find(const struct account_list *l, const char *id);

/* The account_id label of a single-account series (cost from the caller's Cost Explorer):
 * the caller's account from @set's accounts source, or "". */
const char *accounts_label(const struct source_set *set);

#endif
