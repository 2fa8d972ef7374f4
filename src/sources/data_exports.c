/*
 * data_exports.c - see data_exports.h.
 */
#include "sources/data_exports.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/apistats.h"
#include "aws/s3.h"
#include "base/days.h"
#include "base/gunzip.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/textmap.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/attribution.h"
#include "model/registry.h"
#include "model/usage.h"
#include "sources/accounts.h"
#include "sources/cur_api.h"
#include "sources/projects.h"

/* A gzip bomb stops here: no real month of Bedrock lines inflates to this. */
#define DX_MAX_INFLATED ((uint64_t)256 << 30)
/* Manifests are kilobytes; a listing of one billing period's metadata holds a few keys. */
#define DX_MAX_META_KEYS 1000

enum reason { R_MANIFEST, R_FORMAT, R_MISSING, R_GZIP, R_CSV, R_S3, R_COUNT };
static const char *const reason_names[R_COUNT] = { "manifest", "format", "missing_file",
						   "gzip", "csv", "s3" };

struct dx_file {
	char *uri;      /* s3://bucket/key, as the manifest names it */
	char etag[128]; /* of the bytes the tables were read from */
	struct cur_agg agg;
};

/* One billing period (a month) of the export. */
struct period {
	long month;          /* its first day; 0 = unused */
	char *manifest_key;  /* NULL until listed */
	char manifest_etag[128];
	char *execution_id;  /* NULL until read */
	struct dx_file *files;
	size_t nfiles;
	struct cur_agg sum;  /* the files merged */
};

/* What the cost source reads: one account's daily series. */
struct view {
	char *account; /* "" = every account */
	struct ce_series spend, models;
};

struct state {
	struct period p[2]; /* [0] the previous month, [1] the current one */
	double read_at;     /* the last refresh that brought both up to date; 0 = never */
	struct view *views;
	size_t nviews;
	struct ce_series empty; /* the days the views cover, without a group */
	bool have;              /* some billing period was read: the views hold it */
	/* this process's counters */
	double errors[R_COUNT];
	double downloads, bytes;
};

/* ---- families ---- */

#define DX_HELP " From AWS Data Exports (CUR 2.0) line items, read every data_exports.refresh_interval seconds."

static const struct metric_def m_hourly = {
	"bedrock_cost_hourly_usd", METRIC_GAUGE,
	"Bedrock spend of the account in one complete hour, USD; hours_ago=\"1\" is the hour "
	"before the export's latest (which may still be filling), up to data_exports.hours." DX_HELP,
};
static const struct metric_def m_hourly_start = {
	"bedrock_cost_hourly_last_complete_hour_timestamp_seconds", METRIC_GAUGE,
	"Start of the hour bedrock_cost_hourly_usd{hours_ago=\"1\"} measures (Unix seconds)." DX_HELP,
};
static const struct metric_def m_types = {
	"bedrock_cost_project_line_item_type_month_to_date_usd", METRIC_GAUGE,
	"Bedrock spend of the project in the current billing period by line_item_line_item_type "
	"(Usage, Credit, Refund, Tax, discounts), USD; the types sum to the project's month to "
	"date." DX_HELP,
};
static const struct metric_def m_principal = {
	"bedrock_cost_project_principal_month_to_date_usd", METRIC_GAUGE,
	"Bedrock spend of the project in the current billing period by IAM principal "
	"(line_item_iam_principal), USD: the data_exports.top_principals largest, the rest as "
	"principal=\"__other__\", lines without one as \"__none__\"." DX_HELP,
};
static const struct metric_def m_rate = {
	"bedrock_cost_model_effective_usd_per_million_tokens", METRIC_GAUGE,
	"What the account paid per million tokens of each model and direction in the billing "
	"period (Usage lines: cost / usage amount), a cross-check of the CloudWatch estimate's "
	"rates." DX_HELP,
};
static const struct metric_def m_last_hour = {
	"bedrock_cost_data_exports_last_hour_timestamp_seconds", METRIC_GAUGE,
	"End of the latest hour with Bedrock line items in each billing period of the export "
	"(Unix seconds): how far the export reaches.",
};
static const struct metric_def m_errors = {
	"bedrock_cost_exporter_data_exports_errors_total", METRIC_COUNTER,
	"Data Exports reads that failed, by reason (manifest, format: Parquet, missing_file, "
	"gzip, csv, s3); the last good data stays.",
};
static const struct metric_def m_downloads = {
	"bedrock_cost_exporter_data_exports_downloads_total", METRIC_COUNTER,
	"Data Exports objects downloaded (manifests and data files answered 200; a 304 for an "
	"unchanged object is not counted).",
};
static const struct metric_def m_bytes = {
	"bedrock_cost_exporter_data_exports_downloaded_bytes_total", METRIC_COUNTER,
	"Bytes of Data Exports objects downloaded (compressed).",
};

/* ---- the private state ---- */

static void file_free(struct dx_file *f)
{
	free(f->uri);
	cur_agg_free(&f->agg);
}

static void period_clear(struct period *p)
{
	free(p->manifest_key);
	free(p->execution_id);
	for (size_t i = 0; i < p->nfiles; i++)
		file_free(&p->files[i]);
	free(p->files);
	cur_agg_free(&p->sum);
	memset(p, 0, sizeof(*p));
}

static void views_free(struct state *s)
{
	for (size_t i = 0; i < s->nviews; i++) {
		free(s->views[i].account);
		ce_series_free(&s->views[i].spend);
		ce_series_free(&s->views[i].models);
	}
	free(s->views);
	s->views = NULL;
	s->nviews = 0;
	ce_series_free(&s->empty);
	s->have = false;
}

static void *create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, sizeof(struct state));
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	for (int i = 0; i < 2; i++)
		period_clear(&s->p[i]);
	views_free(s);
	free(s);
}

static void period_sum(struct period *p)
{
	cur_agg_free(&p->sum);
	cur_agg_init(&p->sum);
	for (size_t i = 0; i < p->nfiles; i++)
		cur_agg_merge(&p->sum, &p->files[i].agg);
}

/* ---- views: the daily series the cost source attributes ---- */

struct item {
	long day;
	char *k0, *k1; /* borrowed from the split copy */
	double amount;
	char *copy;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	int c = strcmp(x->k0, y->k0);
	return c ? c : strcmp(x->k1, y->k1);
}

/* The series of table @tab (day, account, k0, k1) of account @acct ("" = all) over the
 * days [from[i], to[i]) of each period; each day of those present, groups merged. */
static void build_series(const struct state *s, enum cur_tab tab, const char *acct,
			 const long from[2], const long to[2], long settled_before,
			 struct ce_series *out)
{
	struct item *it = NULL;
	size_t n = 0, cap = 0;
	for (int p = 0; p < 2; p++) {
		const struct cur_table *t = &s->p[p].sum.t[tab];
		for (size_t i = 0; i < t->n; i++) {
			char *copy, *f[4];
			if (cur_key_split(t->v[i].key, &copy, f, 4) != 4 || (*acct && strcmp(f[1], acct))) {
				free(copy);
				continue;
			}
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				it = xrealloc(it, cap * sizeof(*it));
			}
			it[n++] = (struct item){ atol(f[0]), f[2], f[3], t->v[i].cost, copy };
		}
	}
	if (n)
		qsort(it, n, sizeof(*it), cmp_item);
	memset(out, 0, sizeof(*out));
	size_t ndays = 0;
	for (int p = 0; p < 2; p++)
		ndays += to[p] > from[p] ? (size_t)(to[p] - from[p]) : 0;
	out->days = xcalloc(ndays + 1, sizeof(*out->days));
	size_t j = 0;
	for (int p = 0; p < 2; p++) {
		for (long d = from[p]; d < to[p]; d++) {
			struct ce_day *cd = &out->days[out->n++];
			cd->day = d;
			cd->estimated = d >= settled_before;
			while (j < n && it[j].day < d)
				j++;
			size_t gcap = 0;
			for (; j < n && it[j].day == d; j++) {
				if (cd->n && strcmp(cd->g[cd->n - 1].k[0], it[j].k0) == 0 &&
				    strcmp(cd->g[cd->n - 1].k[1], it[j].k1) == 0) {
					cd->g[cd->n - 1].amount += it[j].amount;
					continue;
				}
				if (cd->n == gcap) {
					gcap = gcap ? 2 * gcap : 16;
					cd->g = xrealloc(cd->g, gcap * sizeof(*cd->g));
				}
				cd->g[cd->n++] = (struct ce_group){ { xstrdup(it[j].k0), xstrdup(it[j].k1) },
								    it[j].amount };
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(it[i].copy);
	free(it);
}

/* Rebuilds the views: one per account seen ("" without an organization). */
static void build_views(struct state *s, const struct conf *c, double now)
{
	views_free(s);
	long from[2] = { 0, 0 }, to[2] = { 0, 0 };
	bool any = false;
	for (int p = 0; p < 2; p++) {
		const struct period *pp = &s->p[p];
		if (!pp->execution_id)
			continue;
		any = true;
		from[p] = pp->month;
		/* the days the export reaches: through the day of its latest line (of any service) */
		long last = pp->sum.last_hour >= pp->sum.first_hour ? pp->sum.last_hour / 24 + 1
								     : pp->month;
		to[p] = last < days_next_month(pp->month) ? last : days_next_month(pp->month);
	}
	if (!any)
		return;
	s->have = true;
	long settled = days_of_time(now) - c->ce_settle_days;
	struct textlist accts = { 0 };
	if (c->org_mode) {
		struct textmap *seen = textmap_new();
		for (int p = 0; p < 2; p++)
			for (size_t i = 0; i < s->p[p].sum.t[CUR_SPEND].n; i++) {
				char *copy, *f[4];
				if (cur_key_split(s->p[p].sum.t[CUR_SPEND].v[i].key, &copy, f, 4) == 4 &&
				    textmap_put(seen, f[1], NULL))
					textlist_push(&accts, xstrdup(f[1]));
				free(copy);
			}
		textmap_free(seen);
	} else {
		textlist_push(&accts, xstrdup(""));
	}
	s->views = xcalloc(accts.n + 1, sizeof(*s->views));
	for (size_t i = 0; i < accts.n; i++) {
		struct view *v = &s->views[s->nviews++];
		v->account = xstrdup(accts.v[i]);
		build_series(s, CUR_SPEND, v->account, from, to, settled, &v->spend);
		build_series(s, CUR_MODELS, v->account, from, to, settled, &v->models);
	}
	textlist_free(&accts);
	build_series(s, CUR_SPEND, "\x1e", from, to, settled, &s->empty); /* no such account */
}

static const struct view *view_of(const void *priv, const char *account)
{
	const struct state *s = priv;
	for (size_t i = 0; s && i < s->nviews; i++)
		if (strcmp(s->views[i].account, account ? account : "") == 0)
			return &s->views[i];
	return NULL;
}

const struct ce_series *data_exports_spend(const void *priv, const char *account)
{
	const struct state *s = priv;
	const struct view *v = view_of(priv, account);
	/* an account of the organization without a Bedrock line: the days read, no spend */
	return v ? &v->spend : s && s->have ? &s->empty : NULL;
}

const struct ce_series *data_exports_models(const void *priv, const char *account)
{
	const struct view *v = view_of(priv, account);
	return v ? &v->models : data_exports_spend(priv, account);
}

/* ---- reading the export ---- */

static bool enabled(const struct conf *c)
{
	return c->dx_enabled;
}

static long interval(const struct conf *c)
{
	return c->dx_refresh_interval;
}

static const struct api_op_def operations[] = {
	{ "data_exports", "ListObjectsV2" },
	{ "data_exports", "GetObject" },
	{ NULL, NULL },
};

/* "<prefix>/<export>/<what>/BILLING_PERIOD=YYYY-MM/" */
static char *period_prefix(const struct conf *c, const char *what, long month)
{
	int y, m, d;
	days_to_civil(month, &y, &m, &d);
	size_t pl = strlen(c->dx_prefix);
	while (pl && c->dx_prefix[pl - 1] == '/')
		pl--;
	return xasprintf("%.*s%s%s/%s/BILLING_PERIOD=%04d-%02d/", (int)pl, c->dx_prefix,
			 pl ? "/" : "", c->dx_export_name, what, y, m);
}

static void month_name(long month, char out[16])
{
	int y, m, d;
	days_to_civil(month, &y, &m, &d);
	snprintf(out, 16, "%04d-%02d", y, m);
}

struct reading {
	struct gunzip *gz;
	struct cur_reader *rd;
	struct cur_agg agg;
	const struct cur_opts *o;
	enum reason failed; /* R_COUNT while none */
	char err[512];
};

static int on_inflated(void *arg, const char *data, size_t len)
{
	struct reading *r = arg;
	int rc = cur_reader_feed(r->rd, data, len, r->err, sizeof(r->err));
	if (rc)
		r->failed = R_CSV;
	return rc;
}

static void reading_start(struct reading *r)
{
	cur_agg_init(&r->agg);
	r->rd = cur_reader_new(r->o, &r->agg);
	r->gz = gunzip_new(DX_MAX_INFLATED, on_inflated, r);
	if (!r->gz)
		abort(); /* zlib could not start: out of memory */
	r->failed = R_COUNT;
	r->err[0] = '\0';
}

static void reading_end(struct reading *r)
{
	gunzip_free(r->gz);
	cur_reader_free(r->rd);
	r->gz = NULL;
	r->rd = NULL;
}

static int on_bytes(void *arg, const char *data, size_t len)
{
	struct reading *r = arg;
	int rc = gunzip_feed(r->gz, data, len, r->err, sizeof(r->err));
	if (rc && r->failed == R_COUNT)
		r->failed = R_GZIP;
	return rc;
}

static int on_restart(void *arg)
{
	struct reading *r = arg;
	reading_end(r);
	cur_agg_free(&r->agg);
	reading_start(r);
	return 0;
}

struct refresh_ctx {
	struct state *s;
	struct source_ctx *x;
	struct s3_ctx s3;
	struct cur_opts opts;
	enum reason failed;
};

/* The S3 URL of "s3://bucket/key". */
static char *url_of(const struct conf *c, const char *uri)
{
	char *bucket, *key;
	if (!conf_s3_url_split(uri, &bucket, &key))
		return NULL;
	char *u = s3_object_url(c->dx_endpoint, c->dx_region, bucket, key);
	free(bucket);
	free(key);
	return u;
}

/* Reads data file @uri into @f (new), or keeps @old's tables when its ETag still holds. */
static int read_file(struct refresh_ctx *rx, const char *uri, const struct dx_file *old,
		     struct dx_file *f, char *err, size_t errlen)
{
	const struct conf *c = rx->x->conf;
	char *url = url_of(c, uri);
	if (!url) {
		snprintf(err, errlen, "the manifest names %s, not s3://bucket/key", uri);
		rx->failed = R_MANIFEST;
		return -EPROTO;
	}
	struct reading r = { .o = &rx->opts };
	reading_start(&r);
	struct s3_stream st = { on_bytes, on_restart, &r };
	struct hc_resp resp = { 0 };
	char e[512] = "";
	int rc = s3_get_stream(&rx->s3, url, c->dx_region, old ? old->etag : NULL, &st, &resp, e,
			       sizeof(e));
	free(url);
	free(resp.body);
	if (rc == -ECANCELED)
		goto out;
	if (rc) {
		rx->failed = r.failed != R_COUNT ? r.failed : R_S3;
		snprintf(err, errlen, "%s: %s", uri, r.failed != R_COUNT ? r.err : e);
		goto out;
	}
	if (resp.status == 404) {
		rx->failed = R_MISSING;
		snprintf(err, errlen, "%s: the manifest names it, S3 has no such object (a chunk "
			 "missing; the export may be being written)", uri);
		rc = -ENOENT;
		goto out;
	}
	f->uri = xstrdup(uri);
	if (resp.status == 304) { /* unchanged: its tables stay */
		snprintf(f->etag, sizeof(f->etag), "%s", old->etag);
		cur_agg_init(&f->agg);
		cur_agg_merge(&f->agg, &old->agg);
		goto out;
	}
	rx->s->downloads++;
	rx->s->bytes += (double)resp.streamed;
	if (resp.streamed) /* an object of no bytes is an emptied chunk */
		rc = gunzip_finish(r.gz, r.err, sizeof(r.err));
	if (rc)
		r.failed = R_GZIP;
	if (!rc && (rc = cur_reader_finish(r.rd, r.err, sizeof(r.err))))
		r.failed = R_CSV;
	if (rc) {
		rx->failed = r.failed;
		snprintf(err, errlen, "%s: %s", uri, r.err);
		free(f->uri);
		f->uri = NULL;
		goto out;
	}
	snprintf(f->etag, sizeof(f->etag), "%s", resp.etag);
	f->agg = r.agg;
	memset(&r.agg, 0, sizeof(r.agg));
	log_debug("data export file read", "file", uri, "bytes", LOG_INT(resp.streamed));
out:
	reading_end(&r);
	cur_agg_free(&r.agg);
	return rc;
}

/* Finds the period's manifest key: the newest *Manifest.json under its metadata prefix.
 * 0 with p->manifest_key NULL when there is none (the export has not written it yet). */
static int find_manifest(struct refresh_ctx *rx, struct period *p, char *err, size_t errlen)
{
	const struct conf *c = rx->x->conf;
	char *prefix = period_prefix(c, "metadata", p->month);
	struct s3_listing l = { 0 };
	int rc = s3_list(&rx->s3, c->dx_endpoint, c->dx_region, c->dx_bucket, prefix,
			 DX_MAX_META_KEYS, &l, err, errlen);
	if (!rc) {
		const struct s3_object *best = NULL;
		for (size_t i = 0; i < l.n; i++) {
			size_t n = strlen(l.v[i].key);
			if (n >= 13 && strcmp(l.v[i].key + n - 13, "Manifest.json") == 0 &&
			    (!best || l.v[i].last_modified >= best->last_modified))
				best = &l.v[i];
		}
		free(p->manifest_key);
		p->manifest_key = best ? xstrdup(best->key) : NULL;
		p->manifest_etag[0] = '\0';
	} else if (rc != -ECANCELED) {
		rx->failed = R_S3;
	}
	s3_listing_clear(&l);
	free(prefix);
	return rc;
}

/* Brings period @p up to date. */
static int refresh_period(struct refresh_ctx *rx, struct period *p, char *err, size_t errlen)
{
	const struct conf *c = rx->x->conf;
	int rc;
	struct hc_resp resp = { 0 };
	for (int attempt = 0;; attempt++) {
		if (!p->manifest_key && (rc = find_manifest(rx, p, err, errlen)))
			return rc;
		if (!p->manifest_key)
			return 0; /* nothing exported for this month yet */
		char *url = s3_object_url(c->dx_endpoint, c->dx_region, c->dx_bucket, p->manifest_key);
		rc = s3_get(&rx->s3, url, c->dx_region, *p->manifest_etag ? p->manifest_etag : NULL,
			    &resp, err, errlen);
		free(url);
		if (rc) {
			if (rc != -ECANCELED)
				rx->failed = R_S3;
			return rc;
		}
		if (resp.status != 200) { /* 304 and 404 carry no manifest */
			free(resp.body);
			resp.body = NULL;
		}
		if (resp.status != 404 || attempt)
			break;
		free(p->manifest_key); /* renamed or removed: list again */
		p->manifest_key = NULL;
	}
	if (resp.status == 404) {
		free(p->manifest_key);
		p->manifest_key = NULL;
		return 0;
	}
	if (resp.status == 304)
		return 0; /* unchanged: nothing to download */
	rx->s->downloads++;
	rx->s->bytes += (double)resp.len;
	struct cur_manifest m;
	rc = cur_manifest_parse(resp.body, resp.len, &m, err, errlen);
	free(resp.body);
	if (rc) {
		rx->failed = R_MANIFEST;
		char e[512];
		snprintf(e, sizeof(e), "%s", err);
		snprintf(err, errlen, "%s: %s", p->manifest_key, e);
		return rc;
	}
	if (m.parquet) {
		snprintf(err, errlen, "%s: the export writes Parquet, which the exporter cannot read "
			 "(no Debian-packaged reader); create the export with the format "
			 "\"text or CSV\" and GZIP compression", p->manifest_key);
		rx->failed = R_FORMAT;
		cur_manifest_clear(&m);
		return -ENOTSUP;
	}
	bool same = p->execution_id && strcmp(p->execution_id, m.execution_id) == 0 &&
		    p->nfiles == m.files.n;
	for (size_t i = 0; same && i < m.files.n; i++)
		same = strcmp(p->files[i].uri, m.files.v[i]) == 0;
	if (same) { /* the manifest was rewritten, not the export */
		snprintf(p->manifest_etag, sizeof(p->manifest_etag), "%s", resp.etag);
		cur_manifest_clear(&m);
		return 0;
	}
	struct dx_file *files = xcalloc(m.files.n + 1, sizeof(*files));
	size_t n = 0;
	for (; n < m.files.n; n++) {
		const struct dx_file *old = NULL;
		for (size_t j = 0; j < p->nfiles && !old; j++)
			if (strcmp(p->files[j].uri, m.files.v[n]) == 0)
				old = &p->files[j];
		if ((rc = read_file(rx, m.files.v[n], old, &files[n], err, errlen)))
			break;
	}
	if (rc) { /* the period stays as it was, the manifest unread */
		for (size_t j = 0; j < n; j++)
			file_free(&files[j]);
		free(files);
		cur_manifest_clear(&m);
		return rc;
	}
	for (size_t j = 0; j < p->nfiles; j++)
		file_free(&p->files[j]);
	free(p->files);
	p->files = files;
	p->nfiles = n;
	free(p->execution_id);
	p->execution_id = m.execution_id;
	m.execution_id = NULL;
	snprintf(p->manifest_etag, sizeof(p->manifest_etag), "%s", resp.etag);
	period_sum(p);
	char mn[16];
	month_name(p->month, mn);
	log_info("data export read", "billing_period", mn, "execution_id", p->execution_id,
		 "files", LOG_INT(n), "bedrock_lines", LOG_INT(p->sum.bedrock_lines));
	cur_manifest_clear(&m);
	rx->x->state_changed = true;
	return 0;
}

/* Moves the periods to @today's months: the current month becomes the previous one. */
static void roll(struct state *s, long today)
{
	long cur = days_month_start(today), prev = days_prev_month(today);
	if (s->p[1].month == cur && s->p[0].month == prev)
		return;
	struct period keep[2] = { { 0 }, { 0 } };
	for (int i = 0; i < 2; i++) {
		if (s->p[i].month == prev)
			keep[0] = s->p[i];
		else if (s->p[i].month == cur)
			keep[1] = s->p[i];
		else
			period_clear(&s->p[i]);
	}
	s->p[0] = keep[0];
	s->p[1] = keep[1];
	s->p[0].month = prev;
	s->p[1].month = cur;
}

static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	roll(s, days_of_time(x->now));
	struct refresh_ctx rx = {
		.s = s, .x = x,
		.s3 = { .hc = x->hc, .http = x->http, .creds = x->creds, .conf = c, .now = x->now,
			.get_op = apistats_op(operations[1].api, operations[1].operation),
			.list_op = apistats_op(operations[0].api, operations[0].operation) },
		.opts = { .tag_keys = &c->ce_attribution_tags, .tag_columns = &c->dx_tag_columns,
			  .cost_column = c->dx_cost_column, .service_search = c->ce_service_search,
			  .services = &c->ce_services },
		.failed = R_COUNT,
	};
	int rc = 0;
	/* the current month first: it is what changes */
	for (int i = 1; i >= 0 && !rc; i--)
		rc = refresh_period(&rx, &s->p[i], err, errlen);
	if (rx.failed != R_COUNT && rc != -ECANCELED)
		s->errors[rx.failed]++;
	build_views(s, c, x->now);
	if (!rc) {
		s->read_at = x->now;
		x->state_changed = true;
	}
	return rc;
}

static bool has_data(const void *priv)
{
	const struct state *s = priv;
	return s->read_at > 0 || s->have;
}

/* A reload that changes what is read (the export, the cost column, the attribution tags
 * and their columns, the Bedrock filter) drops what was read; any other change of the
 * data_exports group (endpoint, region, interval, ...) keeps it. Either checks the
 * manifests at once. */
static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	struct state *s = priv;
	bool reread = strcmp(old->dx_bucket, c->dx_bucket) || strcmp(old->dx_prefix, c->dx_prefix) ||
		      strcmp(old->dx_export_name, c->dx_export_name) ||
		      strcmp(old->dx_cost_column, c->dx_cost_column) ||
		      !textlist_equal(&old->dx_tag_columns, &c->dx_tag_columns) ||
		      !textlist_equal(&old->ce_attribution_tags, &c->ce_attribution_tags) ||
		      !textlist_equal(&old->ce_services, &c->ce_services) ||
		      strcmp(old->ce_service_search, c->ce_service_search);
	bool changed = reread || !old->dx_enabled || strcmp(old->dx_endpoint, c->dx_endpoint) ||
		       strcmp(old->dx_region, c->dx_region) ||
		       old->dx_refresh_interval != c->dx_refresh_interval ||
		       old->dx_top_principals != c->dx_top_principals || old->dx_hours != c->dx_hours;
	if (reread) {
		for (int i = 0; i < 2; i++)
			period_clear(&s->p[i]);
		views_free(s);
		s->read_at = 0;
	}
	return changed;
}

/* ---- the state file: "data_exports" ---- */

static void save_agg(struct jsonw *w, const struct cur_agg *a)
{
	jsonw_key(w, "lines");
	jsonw_number(w, (double)a->lines);
	jsonw_key(w, "bedrock_lines");
	jsonw_number(w, (double)a->bedrock_lines);
	jsonw_key(w, "first_hour");
	jsonw_int(w, a->first_hour);
	jsonw_key(w, "last_hour");
	jsonw_int(w, a->last_hour);
	for (int t = 0; t < CUR_NTABS; t++) {
		jsonw_key(w, cur_tab_names[t]);
		jsonw_array_begin(w);
		for (size_t i = 0; i < a->t[t].n; i++) {
			jsonw_array_begin(w);
			jsonw_string(w, a->t[t].v[i].key);
			jsonw_number(w, a->t[t].v[i].cost);
			jsonw_number(w, a->t[t].v[i].usage);
			jsonw_array_end(w);
		}
		jsonw_array_end(w);
	}
}

static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	if (!s->read_at && !s->p[0].execution_id && !s->p[1].execution_id)
		return; /* never read: the file stays as a release without the source wrote it */
	jsonw_key(w, "data_exports");
	jsonw_object_begin(w);
	jsonw_key(w, "read_at");
	jsonw_number(w, s->read_at);
	jsonw_key(w, "periods");
	jsonw_array_begin(w);
	for (int i = 0; i < 2; i++) {
		const struct period *p = &s->p[i];
		if (!p->month || !p->execution_id)
			continue;
		char ds[11];
		days_format(p->month, ds);
		jsonw_object_begin(w);
		jsonw_key(w, "month");
		jsonw_string(w, ds);
		jsonw_key(w, "manifest_key");
		jsonw_string(w, p->manifest_key ? p->manifest_key : "");
		jsonw_key(w, "manifest_etag");
		jsonw_string(w, p->manifest_etag);
		jsonw_key(w, "execution_id");
		jsonw_string(w, p->execution_id);
		jsonw_key(w, "files");
		jsonw_array_begin(w);
		for (size_t f = 0; f < p->nfiles; f++) {
			jsonw_object_begin(w);
			jsonw_key(w, "uri");
			jsonw_string(w, p->files[f].uri);
			jsonw_key(w, "etag");
			jsonw_string(w, p->files[f].etag);
			save_agg(w, &p->files[f].agg);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

static int get_str(const struct jsontape *t, size_t o, const char *k, char *out, size_t outlen)
{
	return jt_str(t, jt_get(t, o, k), out, outlen) < 0 ? -EPROTO : 0;
}

static int get_num(const struct jsontape *t, size_t o, const char *k, double *out)
{
	size_t v = jt_get(t, o, k);
	return v == JT_NONE || jt_number(t, v, out) || !isfinite(*out) ? -EPROTO : 0;
}

static int restore_agg(const struct jsontape *t, size_t o, struct cur_agg *a)
{
	double lines, bl, fh, lh;
	if (get_num(t, o, "lines", &lines) || get_num(t, o, "bedrock_lines", &bl) ||
	    get_num(t, o, "first_hour", &fh) || get_num(t, o, "last_hour", &lh))
		return -EPROTO;
	a->lines = (uint64_t)lines;
	a->bedrock_lines = (uint64_t)bl;
	a->first_hour = (long)fh;
	a->last_hour = (long)lh;
	for (int k = 0; k < CUR_NTABS; k++) {
		size_t arr = jt_get(t, o, cur_tab_names[k]);
		if (arr == JT_NONE || !jt_is(t, arr, JT_ARRAY))
			return -EPROTO;
		for (size_t c = jt_first(t, arr); c != JT_NONE; c = jt_next(t, arr, c)) {
			size_t kk = jt_first(t, c);
			size_t cost = kk != JT_NONE ? jt_next(t, c, kk) : JT_NONE;
			size_t use = cost != JT_NONE ? jt_next(t, c, cost) : JT_NONE;
			double vc, vu;
			char *key = kk != JT_NONE && jt_is(t, c, JT_ARRAY) ? jt_strdup(t, kk) : NULL;
			if (!key || use == JT_NONE || jt_number(t, cost, &vc) || jt_number(t, use, &vu)) {
				free(key);
				return -EPROTO;
			}
			cur_table_add(&a->t[k], key, vc, vu);
			free(key);
		}
	}
	return 0;
}

static int restore_period(const struct jsontape *t, size_t o, struct period *p)
{
	char buf[1024];
	if (get_str(t, o, "month", buf, sizeof(buf)) || days_parse(buf, &p->month))
		return -EPROTO;
	size_t files = jt_get(t, o, "files");
	if (get_str(t, o, "manifest_etag", p->manifest_etag, sizeof(p->manifest_etag)) ||
	    files == JT_NONE || !jt_is(t, files, JT_ARRAY))
		return -EPROTO;
	p->manifest_key = jt_strdup(t, jt_get(t, o, "manifest_key"));
	p->execution_id = jt_strdup(t, jt_get(t, o, "execution_id"));
	if (!p->manifest_key || !p->execution_id)
		return -EPROTO;
	if (!*p->manifest_key) {
		free(p->manifest_key);
		p->manifest_key = NULL;
	}
	p->files = xcalloc(jt_count(t, files) + 1, sizeof(*p->files));
	for (size_t f = jt_first(t, files); f != JT_NONE; f = jt_next(t, files, f)) {
		struct dx_file *df = &p->files[p->nfiles++];
		cur_agg_init(&df->agg);
		df->uri = jt_strdup(t, jt_get(t, f, "uri"));
		if (!df->uri || get_str(t, f, "etag", df->etag, sizeof(df->etag)) ||
		    restore_agg(t, f, &df->agg))
			return -EPROTO;
	}
	period_sum(p);
	return 0;
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	struct state *s = create(c);
	size_t o = jt_get(t, root, "data_exports");
	if (o == JT_NONE)
		return s;
	size_t periods = jt_get(t, o, "periods");
	if (!jt_is(t, o, JT_OBJECT) || get_num(t, o, "read_at", &s->read_at) ||
	    periods == JT_NONE || !jt_is(t, periods, JT_ARRAY))
		goto bad;
	long today = days_of_time(now);
	for (size_t p = jt_first(t, periods); p != JT_NONE; p = jt_next(t, periods, p)) {
		struct period tmp = { 0 };
		if (restore_period(t, p, &tmp)) {
			period_clear(&tmp);
			goto bad;
		}
		int i = tmp.month == days_month_start(today) ? 1
			: tmp.month == days_prev_month(today) ? 0
							      : -1;
		if (i < 0 || s->p[i].month) { /* another month's: of no use now */
			period_clear(&tmp);
			continue;
		}
		s->p[i] = tmp;
	}
	roll(s, today);
	build_views(s, c, now);
	out->has_data = s->have;
	out->at = out->has_data ? s->read_at : 0;
	return s;
bad:
	snprintf(err, errlen, "member \"data_exports\" is malformed");
	destroy(s);
	return NULL;
}

/* ---- collect ---- */

struct amount {
	char *name;
	double v;
};

static int cmp_amount_desc(const void *a, const void *b)
{
	const struct amount *x = a, *y = b;
	if (x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Adds @v under @name in the list @l (linear: a project has few principals and types). */
static void amount_add(struct amount **l, size_t *n, const char *name, double v)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*l)[i].name, name) == 0) {
			(*l)[i].v += v;
			return;
		}
	*l = xrealloc(*l, (*n + 1) * sizeof(**l));
	(*l)[(*n)++] = (struct amount){ xstrdup(name), v };
}

struct owner_rows {
	char *project;
	struct amount *v;
	size_t n;
};

/* Per project (of account @acct, "" = all), the cells of table @tab (account, k0, k1, name)
 * of the current period summed by name. */
static struct owner_rows *by_project(const struct state *s, enum cur_tab tab, const char *acct,
				     const struct attr_owner *own, size_t *nrows)
{
	const struct cur_table *t = &s->p[1].sum.t[tab];
	struct textmap *idx = textmap_new();
	struct owner_rows *rows = NULL;
	*nrows = 0;
	for (size_t i = 0; i < t->n; i++) {
		char *copy, *f[4];
		if (cur_key_split(t->v[i].key, &copy, f, 4) != 4 || (*acct && strcmp(f[0], acct))) {
			free(copy);
			continue;
		}
		const char *pid = attr_owner_of(own, f[1], f[2]);
		uintptr_t r = (uintptr_t)textmap_get(idx, pid, NULL);
		if (!r) {
			rows = xrealloc(rows, (*nrows + 1) * sizeof(*rows));
			rows[*nrows] = (struct owner_rows){ xstrdup(pid), NULL, 0 };
			r = ++*nrows;
			textmap_put(idx, pid, (void *)r);
		}
		amount_add(&rows[r - 1].v, &rows[r - 1].n, *f[3] ? f[3] : "__none__", t->v[i].cost);
		free(copy);
	}
	textmap_free(idx);
	return rows;
}

static void owner_rows_free(struct owner_rows *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < rows[i].n; j++)
			free(rows[i].v[j].name);
		free(rows[i].v);
		free(rows[i].project);
	}
	free(rows);
}

static void collect_projects(const struct state *s, const struct collect_ctx *x,
			     const char *acct, const char *label, struct reg *r)
{
	const struct conf *c = x->conf;
	const struct project_catalog *cat = projects_catalog(source_peer(x->set, &projects_source));
	const struct project_catalog none = { 0 };
	size_t np = 0;
	const struct project **projects = project_catalog_flatten(cat ? cat : &none, acct, &np);
	struct attr_input in = { .projects = projects, .nprojects = np,
				 .keys = &c->ce_attribution_tags, .tag_labels = &c->projects_tag_labels };
	struct attr_owner *own = attr_owner_new(&in);
	size_t n;
	struct owner_rows *rows = by_project(s, CUR_TYPES, acct, own, &n);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < rows[i].n; j++)
			reg_addv(r, &m_types, ce_money(rows[i].v[j].v), "account_id", label,
				 "project_id", rows[i].project, "line_item_type", rows[i].v[j].name,
				 (char *)0);
	owner_rows_free(rows, n);
	rows = by_project(s, CUR_PRINCIPALS, acct, own, &n);
	for (size_t i = 0; i < n; i++) {
		struct owner_rows *o = &rows[i];
		qsort(o->v, o->n, sizeof(*o->v), cmp_amount_desc);
		double other = 0;
		bool any_other = false;
		size_t shown = 0;
		for (size_t j = 0; j < o->n; j++) {
			bool none_row = strcmp(o->v[j].name, "__none__") == 0;
			if (!none_row && shown >= (size_t)c->dx_top_principals) {
				other += o->v[j].v;
				any_other = true;
				continue;
			}
			shown += !none_row;
			reg_addv(r, &m_principal, ce_money(o->v[j].v), "account_id", label, "project_id",
				 o->project, "principal", o->v[j].name, (char *)0);
		}
		if (any_other)
			reg_addv(r, &m_principal, ce_money(other), "account_id", label, "project_id",
				 o->project, "principal", "__other__", (char *)0);
	}
	owner_rows_free(rows, n);
	attr_owner_free(own);
	free(projects);
}

/* Effective USD per million tokens per (model, direction) of account @acct in the current
 * period (the previous one while the current has no Usage line). */
static void collect_rates(const struct state *s, const char *acct, const char *label,
			  struct reg *r)
{
	const struct cur_table *t = &s->p[1].sum.t[CUR_RATES];
	if (!t->n)
		t = &s->p[0].sum.t[CUR_RATES];
	struct amount *cost = NULL, *tokens = NULL;
	size_t nc = 0, nt = 0;
	for (size_t i = 0; i < t->n; i++) {
		char *copy, *f[4];
		if (cur_key_split(t->v[i].key, &copy, f, 4) != 4 || (*acct && strcmp(f[0], acct))) {
			free(copy);
			continue;
		}
		const char *tt = usage_token_type(f[2]);
		if (strcmp(tt, "other") != 0) {
			char model[512], key[600];
			usage_model(f[1], f[2], model, sizeof(model));
			snprintf(key, sizeof(key), "%s%c%s", model, CUR_SEP, usage_direction(tt));
			amount_add(&cost, &nc, key, t->v[i].cost);
			amount_add(&tokens, &nt, key, t->v[i].usage * atof(f[3]));
		}
		free(copy);
	}
	for (size_t i = 0; i < nc; i++) {
		char *copy, *f[2];
		cur_key_split(cost[i].name, &copy, f, 2);
		if (tokens[i].v > 0)
			reg_addv(r, &m_rate, cost[i].v / tokens[i].v * 1e6, "account_id", label, "model",
				 f[0], "direction", f[1], (char *)0);
		free(copy);
		free(cost[i].name);
		free(tokens[i].name);
	}
	free(cost);
	free(tokens);
}

static void collect_hours(const struct state *s, const struct collect_ctx *x, const char *acct,
			  const char *label, struct reg *r, long last)
{
	long nh = x->conf->dx_hours;
	double *v = xcalloc((size_t)nh + 1, sizeof(*v));
	for (int p = 0; p < 2; p++) {
		const struct cur_table *t = &s->p[p].sum.t[CUR_HOURS];
		for (size_t i = 0; i < t->n; i++) {
			char *copy, *f[2];
			if (cur_key_split(t->v[i].key, &copy, f, 2) == 2 && (!*acct || !strcmp(f[1], acct))) {
				long ago = last - atol(f[0]) + 1;
				if (ago >= 1 && ago <= nh)
					v[ago - 1] += t->v[i].cost;
			}
			free(copy);
		}
	}
	for (long k = 1; k <= nh; k++) {
		char ago[24];
		snprintf(ago, sizeof(ago), "%ld", k);
		reg_addv(r, &m_hourly, ce_money(v[k - 1]), "account_id", label, "hours_ago", ago,
			 (char *)0);
	}
	free(v);
}

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	const struct conf *c = x->conf;
	for (int i = 0; i < R_COUNT; i++)
		reg_addv(r, &m_errors, s->errors[i], "reason", reason_names[i], (char *)0);
	reg_addv(r, &m_downloads, s->downloads, (char *)0);
	reg_addv(r, &m_bytes, s->bytes, (char *)0);
	if (!s->have)
		return;
	long last = 0; /* the latest hour with a line, of either period */
	for (int p = 0; p < 2; p++) {
		const struct cur_agg *a = &s->p[p].sum;
		if (a->last_hour < a->first_hour)
			continue;
		char mn[16];
		month_name(s->p[p].month, mn);
		reg_addv(r, &m_last_hour, (double)(a->last_hour + 1) * 3600.0, "billing_period", mn,
			 (char *)0);
		if (a->last_hour > last)
			last = a->last_hour;
	}
	if (last && c->dx_hours > 0)
		reg_addv(r, &m_hourly_start, (double)(last - 1) * 3600.0, (char *)0);
	const struct account_list *served = c->org_mode
		? accounts_served(source_peer(x->set, &accounts_source)) : NULL;
	size_t n = c->org_mode ? (served ? served->n : 0) : 1;
	for (size_t i = 0; i < n; i++) {
		const char *acct = c->org_mode ? served->v[i].id : "";
		const char *label = c->org_mode ? acct : accounts_label(x->set);
		if (last && c->dx_hours > 0)
			collect_hours(s, x, acct, label, r, last - 1);
		collect_projects(s, x, acct, label, r);
		collect_rates(s, acct, label, r);
	}
}

const struct source_def data_exports_source = {
	.name = "data_exports",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 900,
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
