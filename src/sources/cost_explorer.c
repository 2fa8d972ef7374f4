/*
 * cost_explorer.c - see cost_explorer.h.
 */
#include "sources/cost_explorer.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/days.h"
#include "base/log.h"
#include "base/util.h"

#define DISCOVERY_INTERVAL 86400.0

void ce_source_free(struct ce_source *s)
{
	strlist_free(&s->services);
	free(s->services_search);
	ce_series_free(&s->spend);
	ce_series_free(&s->models);
	free(s->spend_sig);
	free(s->models_sig);
	free(s->forecast_sig);
	strlist_free(&s->tag_keys);
	free(s->tag_active);
	memset(s, 0, sizeof(*s));
}

static void roll_day(struct ce_source *s, double now)
{
	long today = days_of_time(now);
	if (s->req_day != today) {
		s->req_day = today;
		s->req_count = 0;
	}
}

long ce_requests_remaining(const struct ce_source *s, const struct conf *c, double now)
{
	long used = s->req_day == days_of_time(now) ? s->req_count : 0;
	long left = c->ce_max_requests_per_day - used;
	return left > 0 ? left : 0;
}

struct admit_arg {
	struct ce_ctx *x;
};

/* Every Cost Explorer attempt is billable: counted before it is sent. */
static int admit(void *arg)
{
	struct ce_ctx *x = ((struct admit_arg *)arg)->x;
	roll_day(x->src, x->now);
	if (x->src->req_count >= x->conf->ce_max_requests_per_day)
		return 1;
	x->src->req_count++;
	x->src->billable_total++;
	return 0;
}

static void join(struct buf *b, const struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		buf_puts(b, l->v[i]);
		buf_putc(b, '\x1f');
	}
}

char *ce_spend_signature(const struct conf *c, const struct strlist *services)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_printf(&b, "spend|%s|", c->ce_cost_metric);
	join(&b, &c->ce_attribution_tags);
	buf_putc(&b, '|');
	join(&b, services);
	return buf_steal(&b, NULL);
}

char *ce_models_signature(const struct conf *c, const struct strlist *services)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_printf(&b, "models|%s|", c->ce_cost_metric);
	join(&b, services);
	return buf_steal(&b, NULL);
}

/* One Cost Explorer call: SigV4, awsJson1.1, the ceiling, the CE error model. */
static int call(struct ce_ctx *x, enum api_op op, const char *target, const char *body,
		struct hc_resp *resp, char *err, size_t errlen)
{
	struct aws_creds cr = { 0 };
	int rc = aws_provider_get(x->creds, x->hc, x->opts, x->conf, x->now, &cr, err, errlen);
	if (rc)
		return rc;
	const char *ep = x->conf->ce_endpoint;
	size_t el = strlen(ep);
	while (el && ep[el - 1] == '/')
		el--;
	char *url = xasprintf("%.*s/", (int)el, ep);
	char *sig = xasprintf("aws:amz:%s:ce", x->conf->ce_signing_region);
	char *userpwd = awscreds_userpwd(&cr);
	char *th = xasprintf("X-Amz-Target: AWSInsightsIndexService.%s", target);
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-amz-json-1.1");
	h = curl_slist_append(h, th);
	h = curl_slist_append(h, "Accept: application/json");
	if (cr.session_token) {
		char *t = xasprintf("X-Amz-Security-Token: %s", cr.session_token);
		h = curl_slist_append(h, t);
		free_secret(t);
	}
	struct admit_arg aa = { x };
	struct hc_req req = { .op = op, .method = "POST", .url = url, .body = body,
			      .body_len = strlen(body), .headers = h, .aws_sigv4 = sig,
			      .userpwd = userpwd, .classify = ce_classify, .admit = admit,
			      .admit_arg = &aa };
	enum api_reason reason = REASON_NETWORK;
	char herr[256] = "";
	rc = hc_perform(x->hc, x->opts, &req, resp, &reason, herr, sizeof(herr));
	if (rc == -EDQUOT)
		snprintf(err, errlen, "%s: daily ceiling of %ld requests reached "
			 "(cost_explorer.max_requests_per_day)", target, x->conf->ce_max_requests_per_day);
	else if (rc && rc != -ECANCELED)
		snprintf(err, errlen, "%s failed (%s): %s", target, apistats_reason_name(reason), herr);
	if (rc == -EIO && reason == REASON_AUTH)
		aws_provider_invalidate(x->creds); /* e.g. expired token: fetch anew next time */
	hc_slist_free_secret(h);
	free_secret(userpwd);
	awscreds_clear(&cr);
	free(th);
	free(sig);
	free(url);
	return rc;
}

/* Builds a request body for one page; @token is NULL for the first. Caller frees. */
typedef char *(*body_fn)(void *arg, const char *token);
/* Parses one page into @arg's accumulator; *next receives the next token or NULL. */
typedef int (*parse_fn)(void *arg, const char *body, size_t len, char **next, char *err,
			size_t errlen);

/*
 * Runs a paginated operation to the end: at most cost_explorer.max_pages
 * pages, and a token that repeats is a pagination loop. Errors in the
 * answers count as reason="parse".
 */
static int paginate(struct ce_ctx *x, enum api_op op, const char *target, body_fn make_body,
		    parse_fn parse, void *arg, char *err, size_t errlen)
{
	char *token = NULL, *prev = NULL;
	int rc = 0;
	for (long page = 0;; page++) {
		if (page >= x->conf->ce_max_pages) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: pagination did not end after %ld pages "
				 "(cost_explorer.max_pages)", target, page);
			rc = -EPROTO;
			break;
		}
		char *body = make_body(arg, token);
		struct hc_resp resp = { 0 };
		rc = call(x, op, target, body, &resp, err, errlen);
		free(body);
		if (rc)
			break;
		free(prev);
		prev = token;
		token = NULL;
		char perr[256];
		rc = parse(arg, resp.body, resp.len, &token, perr, sizeof(perr));
		free(resp.body);
		if (rc) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s page %ld: %s", target, page + 1, perr);
			break;
		}
		if (!token)
			break;
		if (prev && strcmp(prev, token) == 0) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s: the next-page token repeats (pagination loop)", target);
			rc = -EPROTO;
			break;
		}
	}
	free(token);
	free(prev);
	return rc;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (const char *p = hay; *p; p++)
		if (strncasecmp(p, needle, n) == 0)
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct discover_arg {
	long start, end;
	const char *search;
	struct strlist found;
};

static char *discover_body(void *arg, const char *token)
{
	struct discover_arg *d = arg;
	return ce_body_dimension_values(d->start, d->end, "SERVICE", d->search, token);
}

static int discover_parse(void *arg, const char *body, size_t len, char **next, char *err,
			  size_t errlen)
{
	return ce_parse_dimension_values(body, len, &((struct discover_arg *)arg)->found, next, err,
					 errlen);
}

static int discover(struct ce_ctx *x, char *err, size_t errlen)
{
	struct ce_source *s = x->src;
	const struct conf *c = x->conf;
	if (c->ce_services.n) {
		if (!strlist_equal(&s->services, &c->ce_services)) {
			strlist_free(&s->services);
			for (size_t i = 0; i < c->ce_services.n; i++)
				strlist_push(&s->services, xstrdup(c->ce_services.v[i]));
			qsort(s->services.v, s->services.n, sizeof(char *), cmp_str);
		}
		s->services_at = x->now;
		return 0;
	}
	if (s->services_at > 0 && x->now - s->services_at < DISCOVERY_INTERVAL &&
	    s->services_search && strcmp(s->services_search, c->ce_service_search) == 0)
		return 0;
	long today = days_of_time(x->now), start, end;
	days_query_window(today, &start, &end);
	struct discover_arg da = { start, end, c->ce_service_search, { 0 } };
	int rc = paginate(x, OP_CE_GET_DIMENSION_VALUES, "GetDimensionValues", discover_body,
			  discover_parse, &da, err, errlen);
	struct strlist found = da.found;
	if (rc) {
		strlist_free(&found);
		return rc;
	}
	/* keep only what really matches, de-duplicated and sorted */
	struct strlist keep = { 0 };
	qsort(found.v, found.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < found.n; i++)
		if (contains_ci(found.v[i], c->ce_service_search) &&
		    (!keep.n || strcmp(keep.v[keep.n - 1], found.v[i]) != 0))
			strlist_push(&keep, xstrdup(found.v[i]));
	strlist_free(&found);
	if (!strlist_equal(&keep, &s->services)) {
		struct buf names;
		buf_init(&names, 8192);
		for (size_t i = 0; i < keep.n; i++)
			buf_printf(&names, "%s%s", i ? ", " : "", keep.v[i]);
		log_info("Bedrock services discovered in Cost Explorer", "services",
			 names.data ? names.data : "(none)");
		buf_free(&names);
	}
	strlist_free(&s->services);
	s->services = keep;
	s->services_at = x->now;
	free(s->services_search);
	s->services_search = xstrdup(c->ce_service_search);
	return 0;
}

struct query_arg {
	const struct ce_query *q;
	struct ce_series *acc;
};

static char *query_body(void *arg, const char *token)
{
	return ce_body_cost_and_usage(((struct query_arg *)arg)->q, token);
}

static int query_parse(void *arg, const char *body, size_t len, char **next, char *err,
		       size_t errlen)
{
	struct query_arg *a = arg;
	return ce_parse_cost_and_usage(body, len, a->q, a->acc, next, err, errlen);
}

/* Runs a paginated GetCostAndUsage for @q into @acc. */
static int query(struct ce_ctx *x, const struct ce_query *q, struct ce_series *acc, char *err,
		 size_t errlen)
{
	struct query_arg a = { q, acc };
	return paginate(x, OP_CE_GET_COST_AND_USAGE, "GetCostAndUsage", query_body, query_parse, &a,
			err, errlen);
}

/*
 * Brings @series up to date for [start, end): keeps the settled days, asks
 * again for everything from the first day that can still change.
 */
static int refresh_series(struct ce_ctx *x, struct ce_query *q, struct ce_series *series,
			  char **sig, const char *want_sig, char *err, size_t errlen)
{
	long today = days_of_time(x->now);
	if (!*sig || strcmp(*sig, want_sig) != 0) {
		ce_series_free(series);
		free(*sig);
		*sig = xstrdup(want_sig);
	}
	long from = q->start;
	for (; from < q->end; from++) {
		const struct ce_day *d = ce_series_find(series, from);
		bool settled = d && !d->estimated && from < today - x->conf->ce_settle_days;
		if (!settled)
			break;
	}
	struct ce_series fresh = { 0 };
	struct ce_query qq = *q;
	qq.start = from;
	if (q->services->n) {
		int rc = query(x, &qq, &fresh, err, errlen);
		if (rc) {
			ce_series_free(&fresh);
			return rc;
		}
	}
	struct ce_series merged = { 0 };
	ce_series_copy_range(series, q->start, from, &merged);
	merged.days = xrealloc(merged.days, (merged.n + fresh.n + 1) * sizeof(*merged.days));
	memcpy(merged.days + merged.n, fresh.days, fresh.n * sizeof(*fresh.days));
	merged.n += fresh.n;
	free(fresh.days);
	ce_series_free(series);
	*series = merged;
	char a[11], b[11];
	days_format(from, a);
	days_format(q->end, b);
	log_debug("cost series refreshed", "from", a, "to", b);
	return 0;
}

int ce_refresh_costs(struct ce_ctx *x, char *err, size_t errlen)
{
	struct ce_source *s = x->src;
	const struct conf *c = x->conf;
	bool discovery_due = !c->ce_services.n &&
			     (s->services_at == 0 || x->now - s->services_at >= DISCOVERY_INTERVAL);
	/* what the last refresh took is the best guess of what this one needs */
	long need = 2 + (discovery_due ? 1 : 0);
	if (s->costs_requests > need)
		need = s->costs_requests;
	long left = ce_requests_remaining(s, c, x->now);
	if (left < need) {
		snprintf(err, errlen, "skipped: %ld of %ld Cost Explorer requests left today, a refresh "
			 "needs at least %ld (cost_explorer.max_requests_per_day)", left,
			 c->ce_max_requests_per_day, need);
		return -EDQUOT;
	}
	roll_day(s, x->now);
	long used_before = s->req_count;
	int rc = discover(x, err, errlen);
	if (rc)
		return rc;
	long today = days_of_time(x->now), start, end;
	days_query_window(today, &start, &end);

	struct ce_query q = { .start = start, .end = end, .granularity = "DAILY",
			      .metric = c->ce_cost_metric, .services = &s->services,
			      .ngroups = c->ce_attribution_tags.n };
	for (size_t i = 0; i < q.ngroups; i++) {
		q.group_type[i] = CE_GROUP_TAG;
		q.group_key[i] = c->ce_attribution_tags.v[i];
	}
	char *sig = ce_spend_signature(c, &s->services);
	rc = refresh_series(x, &q, &s->spend, &s->spend_sig, sig, err, errlen);
	free(sig);
	if (rc)
		return rc;

	long mstart = days_month_start(today);
	struct ce_query m = { .start = mstart < today - 1 ? mstart : today - 1, .end = end,
			      .granularity = "DAILY", .metric = c->ce_cost_metric,
			      .services = &s->services, .ngroups = 2,
			      .group_type = { CE_GROUP_DIMENSION, CE_GROUP_DIMENSION },
			      .group_key = { "SERVICE", "USAGE_TYPE" } };
	sig = ce_models_signature(c, &s->services);
	rc = refresh_series(x, &m, &s->models, &s->models_sig, sig, err, errlen);
	free(sig);
	if (rc)
		return rc;
	s->costs_at = x->now;
	s->costs_requests = s->req_count >= used_before ? s->req_count - used_before : 0; /* midnight */
	return 0;
}

int ce_refresh_forecast(struct ce_ctx *x, char *err, size_t errlen)
{
	struct ce_source *s = x->src;
	const struct conf *c = x->conf;
	long today = days_of_time(x->now);
	if (!s->services.n) {
		/* nothing billed as Bedrock yet: nothing to forecast, and no request to pay for */
		s->has_forecast = s->services_at > 0;
		s->forecast_day = today;
		s->forecast_mean = s->forecast_lower = s->forecast_upper = 0;
		if (!s->has_forecast) {
			snprintf(err, errlen, "waiting for Bedrock service discovery");
			return -EAGAIN;
		}
		s->forecast_at = x->now;
		return 0;
	}
	if (ce_requests_remaining(s, c, x->now) < 1) {
		snprintf(err, errlen, "skipped: no Cost Explorer requests left today "
			 "(cost_explorer.max_requests_per_day)");
		return -EDQUOT;
	}
	char *body = ce_body_forecast(today, days_next_month(today), c->ce_cost_metric, &s->services);
	struct hc_resp resp = { 0 };
	int rc = call(x, OP_CE_GET_COST_FORECAST, "GetCostForecast", body, &resp, err, errlen);
	free(body);
	if (rc)
		return rc;
	double mean, lo, hi;
	char perr[256];
	rc = ce_parse_forecast(resp.body, resp.len, &mean, &lo, &hi, perr, sizeof(perr));
	free(resp.body);
	if (rc) {
		apistats_error(OP_CE_GET_COST_FORECAST, REASON_PARSE);
		snprintf(err, errlen, "GetCostForecast: %s", perr);
		return rc;
	}
	s->has_forecast = true;
	s->forecast_day = today;
	s->forecast_mean = mean;
	s->forecast_lower = lo;
	s->forecast_upper = hi;
	s->forecast_at = x->now;
	return 0;
}

struct tags_arg {
	const struct strlist *want;
	struct strlist keys;
	bool *active;
};

static char *tags_body(void *arg, const char *token)
{
	return ce_body_allocation_tags(((struct tags_arg *)arg)->want, token);
}

static int tags_parse(void *arg, const char *body, size_t len, char **next, char *err,
		      size_t errlen)
{
	struct tags_arg *t = arg;
	return ce_parse_allocation_tags(body, len, &t->keys, &t->active, next, err, errlen);
}

int ce_refresh_allocation_tags(struct ce_ctx *x, char *err, size_t errlen)
{
	struct ce_source *s = x->src;
	const struct conf *c = x->conf;
	if (ce_requests_remaining(s, c, x->now) < 1) {
		snprintf(err, errlen, "skipped: no Cost Explorer requests left today "
			 "(cost_explorer.max_requests_per_day)");
		return -EDQUOT;
	}
	struct strlist want = { 0 };
	for (size_t i = 0; i < c->ce_attribution_tags.n; i++)
		strlist_push(&want, xstrdup(c->ce_attribution_tags.v[i]));
	for (size_t i = 0; i < c->projects_tag_labels.n; i++) {
		bool dup = false;
		for (size_t j = 0; j < want.n; j++)
			dup = dup || strcmp(want.v[j], c->projects_tag_labels.v[i]) == 0;
		if (!dup)
			strlist_push(&want, xstrdup(c->projects_tag_labels.v[i]));
	}
	struct tags_arg ta = { &want, { 0 }, NULL };
	int rc = paginate(x, OP_CE_LIST_COST_ALLOCATION_TAGS, "ListCostAllocationTags", tags_body,
			  tags_parse, &ta, err, errlen);
	struct strlist keys = ta.keys;
	bool *active = ta.active;
	if (rc) {
		strlist_free(&want);
		strlist_free(&keys);
		free(active);
		return rc;
	}
	/* one entry per wanted key: active only if Cost Explorer says so */
	bool *result = xcalloc(want.n + 1, sizeof(*result));
	struct buf inactive;
	buf_init(&inactive, 8192);
	for (size_t i = 0; i < want.n; i++) {
		for (size_t j = 0; j < keys.n; j++)
			if (strcmp(keys.v[j], want.v[i]) == 0 && active[j])
				result[i] = true;
		if (!result[i])
			buf_printf(&inactive, "%s%s", inactive.len ? ", " : "", want.v[i]);
	}
	bool changed = want.n != s->tag_keys.n;
	for (size_t i = 0; !changed && i < want.n; i++)
		changed = strcmp(want.v[i], s->tag_keys.v[i]) != 0 || result[i] != s->tag_active[i];
	if (changed && inactive.len)
		log_warn("tag keys are not active cost allocation tags; their spend cannot be grouped "
			 "(activate them in the Billing console; it takes up to 24 h and is not retroactive)",
			 "tag_keys", inactive.data);
	buf_free(&inactive);
	strlist_free(&keys);
	free(active);
	strlist_free(&s->tag_keys);
	free(s->tag_active);
	s->tag_keys = want;
	s->tag_active = result;
	s->tags_at = x->now;
	return 0;
}
