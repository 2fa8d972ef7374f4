/*
 * accounts.c - see accounts.h.
 */
#include "sources/accounts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awscreds.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/registry.h"
#include "sources/aws_json.h"

#define OP_ORG_LIST_ACCOUNTS apistats_op("organizations", "ListAccounts")
/* ListAccounts pages of 20: 500 pages is 10,000 accounts, the most an organization has. */
#define MAX_PAGES 500

/* An account as ListAccounts (or the state file) names it. */
struct known {
	char *id, *name, *status;
};

struct known_list {
	struct known *v;
	size_t n;
};

struct state {
	char *caller;               /* the credentials' account; "" until known */
	struct known_list found;    /* ListAccounts' answer (organization.discover), every status */
	struct account_list served; /* this instance's accounts */
	double at;                  /* last successful refresh; 0 = never */
};

static const struct metric_def m_account_info = {
	"bedrock_cost_account_info", METRIC_GAUGE,
	"An AWS account this instance serves, value 1: the credentials' own account (STS "
	"GetCallerIdentity), or in an organization the member accounts of this shard "
	"(organization.accounts, and ListAccounts with organization.discover). Refreshed every "
	"organization.refresh_interval seconds.",
};

const struct account_list *accounts_served(const void *priv)
{
	const struct state *s = priv;
	return s && *s->caller ? &s->served : NULL;
}

const char *accounts_caller(const void *priv)
{
	return priv ? ((const struct state *)priv)->caller : "";
}

const struct account *accounts_find(const struct account_list *l, const char *id)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (strcmp(l->v[i].id, id) == 0)
			return &l->v[i];
	return NULL;
}

const char *accounts_label(const struct source_set *set)
{
	return accounts_caller(source_peer(set, &accounts_source));
}

static void known_list_free(struct known_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
		free(l->v[i].status);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void account_list_free(struct account_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct account *a = &l->v[i];
		free(a->id);
		free(a->name);
		free(a->status);
		free(a->role_arn);
		free(a->external_id);
		textlist_free(&a->regions);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void known_push(struct known_list *l, const char *id, const char *name, const char *status)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = (struct known){ xstrdup(id), xstrdup(name), xstrdup(status) };
}

/* Wherever costs are read (the cost series need an account_id; GetCallerIdentity needs
 * the credentials they are read with) or an organization is served. Projects listed alone
 * name their account from their arn (projects.c). */
static bool enabled(const struct conf *c)
{
	return c->org_mode || c->ce_enabled || c->cw_enabled;
}

static long interval(const struct conf *c)
{
	return c->org_refresh_interval;
}

static void *create(const struct conf *c)
{
	(void)c;
	struct state *s = xcalloc(1, sizeof(*s));
	s->caller = xstrdup("");
	return s;
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	free(s->caller);
	known_list_free(&s->found);
	account_list_free(&s->served);
	free(s);
}

static int cmp_account(const void *a, const void *b)
{
	return strcmp(((const struct account *)a)->id, ((const struct account *)b)->id);
}

/* Adds account @id to @l unless it is there, reached as @c says: the caller's account with
 * the found credentials, another through its role. */
static void serve(struct account_list *l, const struct conf *c, const char *caller,
		  const struct org_account *conf_entry, const char *id, const char *name,
		  const char *status)
{
	if (accounts_find(l, id))
		return;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	struct account *a = &l->v[l->n++];
	*a = (struct account){ .id = xstrdup(id) };
	a->name = xstrdup(conf_entry && *conf_entry->name ? conf_entry->name : name);
	a->status = xstrdup(status);
	bool own = strcmp(id, caller) == 0 && !(conf_entry && *conf_entry->role_arn);
	if (own) {
		a->role_arn = xstrdup("");
	} else {
		struct org_account tmp = { .id = (char *)id, .role_arn = "" };
		a->role_arn = conf_account_role(c, conf_entry ? conf_entry : &tmp);
	}
	a->external_id = xstrdup(conf_entry && *conf_entry->external_id ? conf_entry->external_id
									 : c->org_external_id);
	const struct textlist *regions = conf_entry && conf_entry->regions.n
						 ? &conf_entry->regions
						 : &c->projects_regions;
	for (size_t i = 0; i < regions->n; i++)
		textlist_push(&a->regions, xstrdup(regions->v[i]));
}

/* The accounts this instance serves, from the caller, what ListAccounts found and @c. */
static void build_served(struct state *s, const struct conf *c, struct account_list *out)
{
	*out = (struct account_list){ 0 };
	if (!c->org_mode) {
		if (*s->caller)
			serve(out, c, s->caller, NULL, s->caller, "", "");
		return;
	}
	for (size_t i = 0; i < c->org_accounts.n; i++) {
		const struct org_account *e = &c->org_accounts.v[i];
		if (conf_account_shard(e->id, c->total_shards) != c->shard)
			continue;
		const char *name = "", *status = "";
		for (size_t j = 0; j < s->found.n; j++)
			if (strcmp(s->found.v[j].id, e->id) == 0) {
				name = s->found.v[j].name;
				status = s->found.v[j].status;
			}
		serve(out, c, s->caller, e, e->id, name, status);
	}
	for (size_t j = 0; c->org_discover && j < s->found.n; j++) {
		const struct known *k = &s->found.v[j];
		/* a suspended or closing account has nothing to list; a configured one is tried */
		if (strcmp(k->status, "ACTIVE") != 0 ||
		    conf_account_shard(k->id, c->total_shards) != c->shard)
			continue;
		serve(out, c, s->caller, NULL, k->id, k->name, k->status);
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_account);
}

static bool same_served(const struct account_list *a, const struct account_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].id, b->v[i].id) || strcmp(a->v[i].name, b->v[i].name) ||
		    strcmp(a->v[i].status, b->v[i].status) ||
		    strcmp(a->v[i].role_arn, b->v[i].role_arn) ||
		    !textlist_equal(&a->v[i].regions, &b->v[i].regions))
			return false;
	return true;
}

/* Rebuilds the served list; tells the engine when the state file's part changed. */
static void rebuild(struct state *s, const struct conf *c, bool *changed)
{
	struct account_list fresh;
	build_served(s, c, &fresh);
	if (!same_served(&fresh, &s->served)) {
		if (changed)
			*changed = true;
		log_info("accounts served", "accounts", LOG_INT(fresh.n), "shard", LOG_INT(c->shard),
			 "total_shards", LOG_INT(c->total_shards));
	}
	account_list_free(&s->served);
	s->served = fresh;
}

static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)old;
	rebuild(priv, c, NULL);
	return true; /* credentials, accounts, roles or shards may have changed */
}

/* One ListAccounts page into @out; *next receives NextToken (caller frees) or NULL. */
static int parse_page(const char *body, size_t len, struct known_list *out, char **next,
		      char *err, size_t errlen)
{
	struct jsontape t;
	if (jsontape_parse(&t, body, len)) {
		snprintf(err, errlen, "ListAccounts: the answer is not JSON");
		return -EPROTO;
	}
	int rc = 0;
	size_t accts = jt_get(&t, 0, "Accounts"), tok = jt_get(&t, 0, "NextToken");
	if (!jt_is(&t, accts, JT_ARRAY) ||
	    (tok != JT_NONE && !jt_is(&t, tok, JT_STRING) && !jt_is(&t, tok, JT_NULL))) {
		snprintf(err, errlen, "ListAccounts: no Accounts array");
		rc = -EPROTO;
	}
	for (size_t e = rc ? JT_NONE : jt_first(&t, accts); e != JT_NONE; e = jt_next(&t, accts, e)) {
		char id[16], name[256] = "", status[32] = "";
		size_t n = jt_get(&t, e, "Name"), st = jt_get(&t, e, "Status");
		if (jt_str(&t, jt_get(&t, e, "Id"), id, sizeof(id)) < 0 || !conf_account_id_ok(id) ||
		    (n != JT_NONE && jt_str(&t, n, name, sizeof(name)) < 0) ||
		    jt_str(&t, st, status, sizeof(status)) < 0) {
			snprintf(err, errlen, "ListAccounts: an account without a 12-digit Id, a Name "
				 "or a Status");
			rc = -EPROTO;
			break;
		}
		known_push(out, id, name, status);
	}
	*next = !rc && jt_is(&t, tok, JT_STRING) ? jt_strdup(&t, tok) : NULL;
	if (*next && (!**next || strlen(*next) > 8192)) {
		free(*next);
		*next = NULL;
		snprintf(err, errlen, "ListAccounts: an unusable NextToken");
		rc = -EPROTO;
	}
	jsontape_free(&t);
	return rc;
}

/* Every account of the organization (ListAccounts, paginated) into @out. */
static int list_accounts(struct source_ctx *x, struct known_list *out, char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	char *url = xasprintf("%s/", c->org_endpoint);
	char *token = NULL;
	int rc = 0;
	for (int page = 0;; page++) {
		if (page == MAX_PAGES) {
			snprintf(err, errlen, "ListAccounts: more than %d pages", MAX_PAGES);
			rc = -E2BIG;
			break;
		}
		struct jsonw w;
		jsonw_init(&w, 16384);
		jsonw_object_begin(&w);
		jsonw_key(&w, "MaxResults");
		jsonw_int(&w, 20);
		if (token) {
			jsonw_key(&w, "NextToken");
			jsonw_string(&w, token);
		}
		jsonw_object_end(&w);
		char *body = jsonw_steal(&w, NULL);
		struct aws_json_req r = { .op = OP_ORG_LIST_ACCOUNTS, .url = url, .version = "1.1",
					  .target = "AWSOrganizationsV20161128.ListAccounts",
					  .service = "organizations", .region = "us-east-1",
					  .body = body };
		struct hc_resp resp = { 0 };
		rc = aws_json_call(x, &r, "Organizations ListAccounts", &resp, NULL, err, errlen);
		free(body);
		char *next = NULL;
		if (rc == 0) {
			rc = parse_page(resp.body, resp.len, out, &next, err, errlen);
			if (rc)
				apistats_error(OP_ORG_LIST_ACCOUNTS, REASON_PARSE);
		}
		free(resp.body);
		if (rc == 0 && next && token && strcmp(next, token) == 0) {
			snprintf(err, errlen, "ListAccounts: the same NextToken twice");
			apistats_error(OP_ORG_LIST_ACCOUNTS, REASON_PARSE);
			rc = -EPROTO;
		}
		free(token);
		token = next;
		if (rc || !token)
			break;
	}
	free(token);
	free(url);
	return rc;
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	char caller[16] = "";
	int rc = aws_caller_account(x->creds, x->hc, x->http, c, x->now, caller, sizeof(caller),
				    err, errlen);
	if (rc)
		return rc;
	if (strcmp(caller, s->caller) != 0) {
		free(s->caller);
		s->caller = xstrdup(caller);
		x->state_changed = true;
	}
	if (c->org_discover) {
		struct known_list found = { 0 };
		rc = list_accounts(x, &found, err, errlen);
		if (rc) {
			known_list_free(&found);
			rebuild(s, c, &x->state_changed); /* the configured ones, the caller known */
			return rc;
		}
		known_list_free(&s->found);
		s->found = found;
	}
	rebuild(s, c, &x->state_changed);
	s->at = x->now;
	return 0;
}

/* "accounts": {"at": T, "caller": "<id>", "found": [{"id","name","status"}, ...]} */
static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	if (!(s->at > 0))
		return;
	jsonw_key(w, "accounts");
	jsonw_object_begin(w);
	jsonw_key(w, "at");
	jsonw_number(w, s->at);
	jsonw_key(w, "caller");
	jsonw_string(w, s->caller);
	jsonw_key(w, "found");
	jsonw_array_begin(w);
	for (size_t i = 0; i < s->found.n; i++) {
		jsonw_object_begin(w);
		jsonw_key(w, "id");
		jsonw_string(w, s->found.v[i].id);
		jsonw_key(w, "name");
		jsonw_string(w, s->found.v[i].name);
		jsonw_key(w, "status");
		jsonw_string(w, s->found.v[i].status);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	struct state *s = create(c);
	size_t o = jt_get(t, root, "accounts");
	if (o == JT_NONE)
		return s;
	size_t found = jt_get(t, o, "found");
	char caller[16];
	bool ok = jt_is(t, o, JT_OBJECT) && jt_number(t, jt_get(t, o, "at"), &s->at) == 0 &&
		  isfinite(s->at) && jt_str(t, jt_get(t, o, "caller"), caller, sizeof(caller)) >= 0 &&
		  conf_account_id_ok(caller) && jt_is(t, found, JT_ARRAY);
	for (size_t e = ok ? jt_first(t, found) : JT_NONE; ok && e != JT_NONE;
	     e = jt_next(t, found, e)) {
		char id[16], name[256], status[32];
		ok = jt_str(t, jt_get(t, e, "id"), id, sizeof(id)) >= 0 && conf_account_id_ok(id) &&
		     jt_str(t, jt_get(t, e, "name"), name, sizeof(name)) >= 0 &&
		     jt_str(t, jt_get(t, e, "status"), status, sizeof(status)) >= 0;
		if (ok)
			known_push(&s->found, id, name, status);
	}
	if (!ok) {
		snprintf(err, errlen, "accounts: malformed");
		destroy(s);
		return NULL;
	}
	free(s->caller);
	s->caller = xstrdup(caller);
	rebuild(s, c, NULL);
	if (s->at > 0 && s->at <= now) {
		out->has_data = true;
		out->at = s->at;
	}
	return s;
}

static bool has_data(const void *priv)
{
	return *((const struct state *)priv)->caller != '\0';
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	(void)x;
	const struct state *s = priv;
	for (size_t i = 0; i < s->served.n; i++)
		reg_addv(r, &m_account_info, 1, "account_id", s->served.v[i].id, "account_name",
			 s->served.v[i].name, "status", s->served.v[i].status, (char *)0);
}

static const struct api_op_def operations[] = {
	{ "sts", "GetCallerIdentity" },
	{ "organizations", "ListAccounts" },
	{ NULL, NULL },
};

const struct source_def accounts_source = {
	.name = "accounts",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 60,
	.operations = operations,
	.create = create,
	.destroy = destroy,
	.reconfigure = reconfigure,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
	.has_data = has_data,
};
