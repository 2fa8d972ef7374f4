/*
 * projects.c - see projects.h.
 */
#include "sources/projects.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/awscreds.h"
#include "base/files.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/textmap.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/registry.h"
#include "sources/accounts.h"
#include "sources/projects_api.h"

struct state {
	struct project_catalog cat;
	bool budgets_checked; /* budgets naming no project warned about, for this configuration */
	bool key_checked;     /* the API key file's permissions, for this configuration */
	bool synced;          /* an organization's accounts were known at a refresh (a shard
			       * may have none) */
};

static const struct metric_def m_project_info = {
	"bedrock_cost_project_info", METRIC_GAUGE,
	"Bedrock project from the Projects API (bedrock-mantle), value 1; one tag_<key> label per "
	"projects.tag_labels entry. Refreshed every projects.refresh_interval seconds.",
};
static const struct metric_def m_project_tag_info = {
	"bedrock_cost_project_tag_info", METRIC_GAUGE,
	"Every tag of every Bedrock project, raw key and value, value 1. From the Projects API.",
};
static const struct metric_def m_project_created = {
	"bedrock_cost_project_created_timestamp_seconds", METRIC_GAUGE,
	"When the Bedrock project was created (Unix seconds), from the Projects API.",
};
static const struct metric_def m_account_up = {
	"bedrock_cost_exporter_account_up", METRIC_GAUGE,
	"1 if every region of the account was listed by its last projects refresh (with its "
	"assumed role in an organization), else 0: one account failing never blanks another.",
};
static const struct metric_def m_account_success = {
	"bedrock_cost_exporter_account_last_success_timestamp_seconds", METRIC_GAUGE,
	"When every region of the account was last listed successfully (the oldest of its "
	"regions' last good listings), Unix seconds; 0 = not yet.",
};
static const struct metric_def m_account_failures = {
	"bedrock_cost_exporter_account_refresh_failures_total", METRIC_COUNTER,
	"Project listings of the account (one per region and refresh) that failed: credentials, "
	"the assumed role, or the Projects API.",
};
static const struct metric_def m_projects = {
	"bedrock_cost_projects", METRIC_GAUGE,
	"Number of Bedrock projects per region and status, from the Projects API (quota: 1,000 "
	"per region).",
};

const struct project_catalog *projects_catalog(const void *priv)
{
	return priv ? &((const struct state *)priv)->cat : NULL;
}

/* Moves what @from holds for the same account and region into @to. */
static void take_over(struct region_projects *to, struct project_catalog *from)
{
	for (size_t j = 0; j < from->nregions; j++) {
		struct region_projects *old = &from->regions[j];
		if (!old->region || strcmp(old->region, to->region) || strcmp(old->account, to->account))
			continue;
		project_list_move(&to->projects, &old->projects);
		to->has_data = old->has_data;
		to->attempted = old->attempted;
		to->last_success = old->last_success;
		to->failures = old->failures;
		to->last_error = old->last_error;
		old->last_error = NULL;
	}
}

static void pair_init(struct region_projects *rp, const char *account, const char *region)
{
	*rp = (struct region_projects){ .account = xstrdup(account), .region = xstrdup(region) };
}

/*
 * Makes the catalog's (account, region) pairs those @c asks for, keeping the data of pairs
 * that stay: without an organization the regions of @c in the credentials' own account
 * (""), in an organization every region of every account @served (NULL: keep the pairs as
 * they are until the accounts are known).
 */
static void sync_regions(struct state *s, const struct conf *c, const struct account_list *served)
{
	if (c->org_mode && !served)
		return;
	size_t n = 0;
	if (!c->org_mode)
		n = c->projects_regions.n;
	for (size_t a = 0; c->org_mode && a < served->n; a++)
		n += served->v[a].regions.n;
	struct region_projects *regions = xcalloc(n + 1, sizeof(*regions));
	size_t k = 0;
	if (!c->org_mode)
		for (size_t i = 0; i < c->projects_regions.n; i++)
			pair_init(&regions[k++], "", c->projects_regions.v[i]);
	for (size_t a = 0; c->org_mode && a < served->n; a++)
		for (size_t i = 0; i < served->v[a].regions.n; i++)
			pair_init(&regions[k++], served->v[a].id, served->v[a].regions.v[i]);
	for (size_t i = 0; i < k; i++)
		take_over(&regions[i], &s->cat);
	project_catalog_free(&s->cat);
	s->cat.regions = regions;
	s->cat.nregions = k;
}

static bool enabled(const struct conf *c)
{
	return c->projects_enabled;
}

static long interval(const struct conf *c)
{
	return c->projects_refresh_interval;
}

static void *create(const struct conf *c)
{
	struct state *s = xcalloc(1, sizeof(*s));
	sync_regions(s, c, NULL);
	return s;
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	project_catalog_free(&s->cat);
	free(s);
}

static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)old;
	struct state *s = priv;
	sync_regions(s, c, NULL);
	s->budgets_checked = false;
	s->key_checked = false;
	return true; /* regions, endpoint, auth or labels may have changed: list again */
}

/* Logs a region's outcome once per change of state (complain once, then on recovery). */
static void note_region(struct region_projects *rs, int rc, const char *err, size_t count)
{
	if (rc == 0) {
		if (rs->last_error)
			log_info("projects listing recovered", "account", rs->account, "region",
				 rs->region, "projects", LOG_INT(count));
		else
			log_debug("projects listed", "account", rs->account, "region", rs->region,
				  "projects", LOG_INT(count));
		free(rs->last_error);
		rs->last_error = NULL;
		return;
	}
	if (same_failure(rs->last_error, err)) {
		log_debug("projects listing still failing", "account", rs->account, "region",
			  rs->region, "error", err);
		return;
	}
	log_warn("projects listing failed; serving the last good data", "account", rs->account,
		 "region", rs->region, "error", err);
	free(rs->last_error);
	rs->last_error = xstrdup(err);
}

static bool same_project(const struct project *a, const struct project *b)
{
	if (strcmp(a->id, b->id) || strcmp(a->name, b->name) || strcmp(a->arn, b->arn) ||
	    strcmp(a->status, b->status) || a->created_at != b->created_at || a->ntags != b->ntags)
		return false;
	for (size_t t = 0; t < a->ntags; t++)
		if (strcmp(a->tags[t].key, b->tags[t].key) || strcmp(a->tags[t].value, b->tags[t].value))
			return false;
	return true;
}

/* Whether two listings hold the same projects in the same order. */
static bool same_listing(const struct project_list *a, const struct project_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!same_project(&a->v[i], &b->v[i]))
			return false;
	return true;
}

/* Every region has been listed (or restored) at least once; in an organization, every
 * account's regions have been tried (one account whose role fails does not hold the others
 * back). */
static bool has_data(const void *priv)
{
	const struct state *s = priv;
	bool all = s->cat.nregions > 0 || s->synced;
	for (size_t i = 0; i < s->cat.nregions; i++)
		all = all && (s->cat.regions[i].has_data ||
			      (*s->cat.regions[i].account && s->cat.regions[i].attempted));
	return all;
}

/* Warns once per configuration about project budgets that name no listed project, once
 * every region has been listed (before, a budget's project may be in a region not yet read). */
static void check_budgets(struct state *s, const struct conf *c)
{
	if (s->budgets_checked || !has_data(s))
		return;
	s->budgets_checked = true;
	for (size_t i = 0; i < c->budgets.n; i++) {
		const struct budget *b = &c->budgets.v[i];
		if (b->project && !project_catalog_find(&s->cat, b->project))
			log_warn("budget names no listed project (by name or id); it is not exported",
				 "project", b->project);
	}
}

/* Credentials for the pairs of account @account ("" = the credentials' own, or none with
 * an API key). 0, or a negative errno with the reason in @err. */
static int account_creds(struct source_ctx *x, const struct account_list *served,
			 const char *account, struct aws_creds *out, char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	if (c->projects_auth != AUTH_SIGV4)
		return 0;
	const struct account *a = *account ? accounts_find(served, account) : NULL;
	if (a && *a->role_arn)
		return aws_provider_get_role(x->creds, x->hc, x->http, c, x->now, a->role_arn,
					     a->external_id, out, err, errlen);
	return aws_provider_get(x->creds, x->hc, x->http, c, x->now, out, err, errlen);
}

/* Lists every region of every account; the source succeeds when every one does. */
static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	bool sigv4 = c->projects_auth == AUTH_SIGV4;
	if (!s->key_checked && !sigv4)
		warn_if_world_readable(c->projects_api_key_file, "projects.api_key_file");
	s->key_checked = true;
	const struct account_list *served = accounts_served(source_peer(x->set, &accounts_source));
	if (c->org_mode) {
		if (!served) {
			snprintf(err, errlen, "no account to list yet (the accounts source has not "
				 "found this shard's accounts)");
			return -EAGAIN;
		}
		sync_regions(s, c, served);
		s->synced = true;
	}
	int failed = 0;
	for (size_t i = 0; i < s->cat.nregions;) {
		/* the pairs of one account are together: its credentials once */
		const char *account = s->cat.regions[i].account;
		struct aws_creds creds = { 0 };
		char cerr[512] = "";
		int crc = account_creds(x, served, account, &creds, cerr, sizeof(cerr));
		if (crc == -ECANCELED)
			return crc;
		for (; i < s->cat.nregions && strcmp(s->cat.regions[i].account, account) == 0; i++) {
			struct region_projects *rs = &s->cat.regions[i];
			struct project_list fresh = { 0 };
			char rerr[512] = "";
			int rc;
			if (crc) {
				snprintf(rerr, sizeof(rerr), "AWS credentials: %s", cerr);
				rc = -EACCES;
			} else {
				rc = projects_list_region(x->hc, x->http, c, sigv4 ? &creds : NULL,
							  rs->region, &fresh, rerr, sizeof(rerr));
			}
			if (rc == -EIO && strstr(rerr, "(auth)"))
				aws_provider_invalidate(x->creds);
			if (rc == -ECANCELED) {
				awscreds_clear(&creds);
				return rc;
			}
			note_region(rs, rc, rerr, fresh.n);
			rs->attempted = true;
			if (rc == 0 || rc == -E2BIG) { /* -E2BIG: as many as projects.max_projects allows */
				/* the state file is written when a listing changed, not at every listing */
				if (!rs->has_data || !same_listing(&rs->projects, &fresh))
					x->state_changed = true;
				project_list_move(&rs->projects, &fresh);
				rs->has_data = true;
				rs->last_success = x->now;
			} else {
				rs->failures++;
			}
			if (rc && !failed++)
				snprintf(err, errlen, "%s%s%s: %s", rs->account, *rs->account ? "/" : "",
					 rs->region, rerr);
		}
		awscreds_clear(&creds);
	}
	check_budgets(s, c);
	if (failed > 1)
		snprintf(err + strlen(err), errlen - strlen(err), " (and %d more)", failed - 1);
	return failed ? -EIO : 0;
}

/* "projects": {"<region>": [<project as the API gives it>, ...], ...} */
static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	jsonw_key(w, "projects");
	jsonw_object_begin(w);
	for (size_t r = 0; r < s->cat.nregions; r++) {
		const struct region_projects *rs = &s->cat.regions[r];
		if (!rs->has_data)
			continue;
		if (*rs->account) { /* an organization's account: "<account>/<region>" */
			char *k = xasprintf("%s/%s", rs->account, rs->region);
			jsonw_key(w, k);
			free(k);
		} else {
			jsonw_key(w, rs->region);
		}
		jsonw_array_begin(w);
		for (size_t i = 0; i < rs->projects.n; i++) {
			const struct project *p = &rs->projects.v[i];
			jsonw_object_begin(w);
			jsonw_key(w, "id");
			jsonw_string(w, p->id);
			jsonw_key(w, "name");
			jsonw_string(w, p->name);
			jsonw_key(w, "arn");
			jsonw_string(w, p->arn);
			jsonw_key(w, "status");
			jsonw_string(w, p->status);
			jsonw_key(w, "created_at");
			jsonw_number(w, p->created_at);
			jsonw_key(w, "tags");
			jsonw_object_begin(w);
			for (size_t k = 0; k < p->ntags; k++) {
				jsonw_key(w, p->tags[k].key);
				jsonw_string(w, p->tags[k].value);
			}
			jsonw_object_end(w);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
	}
	jsonw_object_end(w);
}

/* The regions of @c that the file lists come back with their projects. */
/* The saved listing @a (an array) into @rs. */
static int restore_pair(const struct jsontape *t, size_t a, struct region_projects *rs, char *err,
			size_t errlen)
{
	if (!jt_is(t, a, JT_ARRAY)) {
		snprintf(err, errlen, "projects.%s: expected an array", rs->region);
		return -EPROTO;
	}
	rs->projects.v = xcalloc(jt_count(t, a) + 1, sizeof(struct project));
	size_t idx = 0;
	for (size_t e = jt_first(t, a); e != JT_NONE; e = jt_next(t, a, e), idx++) {
		char perr[256];
		if (projects_parse_item(t, e, idx, &rs->projects.v[rs->projects.n], perr,
					sizeof(perr))) {
			snprintf(err, errlen, "projects.%s: %s", rs->region, perr);
			return -EPROTO;
		}
		rs->projects.n++;
	}
	rs->has_data = rs->attempted = true;
	return 0;
}

/* The regions of @c that the file lists come back with their projects; in an organization,
 * every "<account>/<region>" it lists (the accounts source's next refresh says which stay). */
static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	(void)now;
	size_t o = jt_get(t, root, "projects");
	if (o == JT_NONE)
		return create(c);
	if (!jt_is(t, o, JT_OBJECT)) {
		snprintf(err, errlen, "projects: expected an object");
		return NULL;
	}
	struct state *s = create(c);
	if (c->org_mode) {
		s->cat.regions = xcalloc(jt_count(t, o) + 1, sizeof(*s->cat.regions));
		for (size_t k = jt_first(t, o); k != JT_NONE; k = jt_next(t, o, k)) {
			char key[128];
			char *slash;
			if (jt_str(t, k, key, sizeof(key)) < 0 || !(slash = strchr(key, '/')))
				continue; /* a region of the single-account setup */
			*slash = '\0';
			if (!conf_account_id_ok(key))
				continue;
			struct region_projects *rs = &s->cat.regions[s->cat.nregions++];
			pair_init(rs, key, slash + 1);
			if (restore_pair(t, k + 1, rs, err, errlen)) {
				destroy(s);
				return NULL;
			}
			out->has_data = true;
		}
		return s;
	}
	for (size_t r = 0; r < s->cat.nregions; r++) {
		struct region_projects *rs = &s->cat.regions[r];
		size_t a = jt_get(t, o, rs->region);
		if (a == JT_NONE)
			continue;
		if (restore_pair(t, a, rs, err, errlen)) {
			destroy(s);
			return NULL;
		}
		out->has_data = true;
	}
	return s;
}

/* The account_id label of pair @rs: its account in an organization, else the caller's
 * (the accounts source), else, when no cost is read (that source is off), the account of
 * the region's first project arn ("arn:aws:bedrock-mantle:<region>:<account>:project/<id>"),
 * into @buf. "" when none says. */
static const char *account_label(const struct region_projects *rs, const struct collect_ctx *x,
				 char *buf, size_t buflen)
{
	if (*rs->account)
		return rs->account;
	const char *caller = accounts_label(x->set);
	if (*caller)
		return caller;
	buf[0] = '\0';
	for (size_t i = 0; i < rs->projects.n && !buf[0]; i++) {
		const char *f = rs->projects.v[i].arn;
		for (int k = 0; k < 4 && f; k++)
			f = strchr(f, ':') ? strchr(f, ':') + 1 : NULL;
		size_t n = f ? strcspn(f, ":") : 0;
		if (n == 12 && n < buflen) {
			memcpy(buf, f, n);
			buf[n] = '\0';
			if (!conf_account_id_ok(buf))
				buf[0] = '\0';
		}
	}
	return buf;
}

/* bedrock_cost_exporter_account_up and friends, per account (its pairs are together). */
static void collect_accounts(const struct state *s, const struct collect_ctx *x, struct reg *r)
{
	for (size_t i = 0; i < s->cat.nregions;) {
		const struct region_projects *first = &s->cat.regions[i];
		char buf[16];
		const char *account = account_label(first, x, buf, sizeof(buf));
		bool up = true;
		double last = -1, failures = 0;
		for (; i < s->cat.nregions && strcmp(s->cat.regions[i].account, first->account) == 0;
		     i++) {
			const struct region_projects *rs = &s->cat.regions[i];
			up = up && rs->has_data && !rs->last_error;
			if (last < 0 || rs->last_success < last)
				last = rs->last_success;
			failures += rs->failures;
		}
		if (!*account)
			continue; /* the credentials' account is not known yet */
		reg_addv(r, &m_account_up, up ? 1 : 0, "account_id", account, (char *)0);
		reg_addv(r, &m_account_success, last > 0 ? last : 0, "account_id", account,
			 (char *)0);
		reg_addv(r, &m_account_failures, failures, "account_id", account, (char *)0);
	}
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	const struct conf *c = x->conf;
	size_t ntl = c->projects_tag_labels.n;
	size_t nl = 6 + ntl;
	const char **names = xcalloc(nl, sizeof(*names));
	const char **values = xcalloc(nl, sizeof(*values));
	names[0] = "account_id";
	names[1] = "region";
	names[2] = "project_id";
	names[3] = "project_name";
	names[4] = "project_arn";
	names[5] = "status";
	for (size_t k = 0; k < ntl; k++)
		names[6 + k] = c->projects_tag_label_names.v[k];
	collect_accounts(s, x, r);

	for (size_t i = 0; i < s->cat.nregions; i++) {
		const struct region_projects *rs = &s->cat.regions[i];
		if (!rs->has_data)
			continue;
		char buf[16];
		const char *account = account_label(rs, x, buf, sizeof(buf));
		/* count per status; active and archived always exist, others as seen */
		struct textmap *idx = textmap_new();
		const char **status = xcalloc(rs->projects.n + 2, sizeof(*status));
		size_t *count = xcalloc(rs->projects.n + 2, sizeof(*count));
		size_t nstatus = 0;
		status[nstatus++] = "active";
		status[nstatus++] = "archived";
		textmap_put(idx, "active", (void *)(uintptr_t)1);
		textmap_put(idx, "archived", (void *)(uintptr_t)2);
		for (size_t j = 0; j < rs->projects.n; j++) {
			const struct project *p = &rs->projects.v[j];
			values[0] = account;
			values[1] = rs->region;
			values[2] = p->id;
			values[3] = p->name;
			values[4] = p->arn;
			values[5] = p->status;
			for (size_t k = 0; k < ntl; k++) {
				const char *v = project_tag(p, c->projects_tag_labels.v[k]);
				values[6 + k] = v ? v : "";
			}
			reg_add(r, &m_project_info, 1, nl, names, values);
			reg_addv(r, &m_project_created, p->created_at, "account_id", account, "region",
				 rs->region, "project_id", p->id, (char *)0);
			for (size_t t = 0; t < p->ntags; t++)
				reg_addv(r, &m_project_tag_info, 1, "account_id", account, "region",
					 rs->region, "project_id", p->id, "key", p->tags[t].key, "value",
					 p->tags[t].value, (char *)0);
			uintptr_t slot = (uintptr_t)textmap_get(idx, p->status, NULL);
			if (!slot) {
				status[nstatus] = p->status;
				slot = ++nstatus;
				textmap_put(idx, p->status, (void *)slot);
			}
			count[slot - 1]++;
		}
		for (size_t j = 0; j < nstatus; j++)
			reg_addv(r, &m_projects, (double)count[j], "account_id", account, "region",
				 rs->region, "status", status[j], (char *)0);
		textmap_free(idx);
		free(status);
		free(count);
	}
	free(names);
	free(values);
}

static const struct api_op_def operations[] = {
	{ "bedrock_mantle", "ListProjects" },
	{ NULL, NULL },
};

const struct source_def projects_source = {
	.name = "projects",
	.enabled = enabled,
	.interval = interval,
	.logs_own_failures = true, /* per region: note_region() */
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
