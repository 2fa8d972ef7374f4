/*
 * cloudwatch.c - see cloudwatch.h.
 *
 * Time is counted in minutes (Unix seconds / 60) and days (base/days.h). A pair's
 * tokens of today are settled[] (minutes from 00:00 UTC that left the ring) plus the
 * ring's minutes from 00:00 on; the ring holds minute m at [m % RING] for m in
 * [upto - RING, upto).
 */
#include "sources/cloudwatch.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/http_client.h"
#include "base/days.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/textmap.h"
#include "base/util.h"
#include "config/conf.h"
#include "model/attribution.h"
#include "model/ce_series.h"
#include "model/registry.h"
#include "model/usage.h"
#include "sources/aws_json.h"
#include "sources/accounts.h"
#include "sources/cost_explorer.h"
#include "sources/data_exports.h"
#include "sources/cw_api.h"

#define RING 80          /* minutes kept per pair: the hour, the re-read, slack */
#define HOUR 60          /* minutes of the spend rate */
#define HIST_DAYS CE_CLOUDWATCH_DAYS /* the history: daily sums of [today - 16, today) */
#define RATE_DAYS 7      /* the token-weighted rate's settled days */
#define SETTLED 2        /* a day's rates come from its day - 2 back */
#define NFROZEN (CE_JUDGE_MAX + 1) /* frozen tables: the days today - 1 .. today - 7 */
#define MAX_PAIRS 200000 /* (project, model) pairs over all regions */
#define MAX_PAGES 1000   /* pages of one listing or one call */
#define MAX_VALUE (HIST_DAYS * 1440 * CW_MAX_VALUE) /* a restored day's tokens, at most */

enum { IN, OUT, NDIR };
static const char *const dir_names[NDIR] = { "input", "output" };
static const char *const dir_metrics[NDIR] = { "InputTokens", "OutputTokens" };

struct pair {
	char *region, *project, *model; /* CloudWatch's dimension values */
	char key[128];                  /* usage_model_key(model) */
	bool active;                    /* in the last recent listing of its region */
	bool listed;                    /* in the last listing of 14 days (the history's) */
	long upto;                      /* the ring holds minutes < upto; 0 = never read */
	double settled[NDIR];           /* today's tokens before the ring's minutes */
	double ring[NDIR][RING];
	bool has_hist;
	long hist_day;                  /* the day its history was read for */
	double hist[NDIR][HIST_DAYS];   /* tokens of day hist_day - HIST_DAYS + i */
};

/* A rate of (region, model key, direction), USD per token. */
struct rate {
	char *region, *key;
	int dir;
	double last;  /* the last settled day's */
	long day;     /* that day */
	double week;  /* token-weighted over the RATE_DAYS settled days; < 0 = none */
};

struct rates {
	struct rate *v;
	size_t n;
	long for_day; /* the day it prices; 0 = none */
};

struct state {
	struct pair *pairs;    /* may move when a pair is added: keep indexes, not pointers */
	size_t n, cap;
	struct textmap *index; /* "region\x1fproject\x1fmodel" -> index + 1 */
	long today;            /* the day settled[] counts */
	long hist_day;         /* the day the history was read for; 0 = never */
	long end;              /* minutes < end were read (the last refresh) */
	struct rates now;      /* prices today: from [today - 8, today - 2] */
	/* the tables that priced the days before today, each frozen at its day's turn (or, after
	 * a fresh start, rebuilt from the days before it); slot day % NFROZEN */
	struct rates frozen[NFROZEN];
	/* the meter */
	long metrics_day, metrics_today;
	double metrics_total, lists_total;
	long need;             /* metrics one steady refresh asks for */
	long saved_day, saved_metrics; /* the meter when the state file last took it */
};

static const struct metric_def m_tokens = {
	"bedrock_usage_project_tokens_today", METRIC_GAUGE,
	"Tokens of the project and model so far in the current UTC day (CloudWatch "
	"AWS/BedrockMantle InputTokens/OutputTokens, Sum; refreshed every "
	"cloudwatch.refresh_interval). Absent from 00:00 UTC until the day's first read.",
};
static const struct metric_def m_today_est = {
	"bedrock_cost_project_today_estimated_usd", METRIC_GAUGE,
	"Estimated spend of the project so far in the current UTC day: CloudWatch tokens times "
	"the rate in use (bedrock_cost_rate_usd_per_million_tokens); minutes old, unlike the "
	"billed bedrock_cost_project_today_usd. Absent while none of its models has a rate.",
};
static const struct metric_def m_per_hour = {
	"bedrock_cost_project_estimated_usd_per_hour", METRIC_GAUGE,
	"Estimated spend rate of the project over the last 60 complete minutes read, in USD "
	"per hour (CloudWatch tokens times the rate in use).",
};
static const struct metric_def m_rate = {
	"bedrock_cost_rate_usd_per_million_tokens", METRIC_GAUGE,
	"Rate in use for today's estimates: source=\"billed\": billed cost of the model's usage "
	"types (cache included, as input) / CloudWatch tokens, token-weighted over the settled "
	"days today-8..today-2 (else the last settled day's); source=\"configured\": "
	"cloudwatch.prices.",
};
static const struct metric_def m_error = {
	"bedrock_cost_project_estimate_error_ratio", METRIC_GAUGE,
	"(estimated - billed) / billed for the last settled UTC day (today - "
	"cost_explorer.settle_days, at most 7): that day's CloudWatch tokens priced with the "
	"rates the exporter had that day (built from the days before it, before its bill), "
	"against Cost Explorer's spend of the day attributed to the project.",
};
static const struct metric_def m_requested = {
	"bedrock_cost_exporter_cloudwatch_metrics_requested_total", METRIC_COUNTER,
	"Metrics requested from CloudWatch GetMetricData (each metric of each call attempt is "
	"billed).",
};
static const struct metric_def m_spend = {
	"bedrock_cost_exporter_cloudwatch_spend_usd_total", METRIC_COUNTER,
	"What the CloudWatch requests cost: metrics requested and ListMetrics requests, each "
	"at cloudwatch.price_per_1000_metrics_usd / 1000.",
};
static const struct metric_def m_remaining = {
	"bedrock_cost_exporter_cloudwatch_metrics_remaining_today", METRIC_GAUGE,
	"Metrics that may still be requested from CloudWatch this UTC day "
	"(cloudwatch.max_metrics_per_day minus those requested).",
};

static bool enabled(const struct conf *c)
{
	return c->cw_enabled && c->projects_regions.n > 0;
}

static long interval(const struct conf *c)
{
	return c->cw_refresh_interval;
}

static void *create(const struct conf *c)
{
	(void)c;
	struct state *s = xcalloc(1, sizeof(*s));
	s->index = textmap_new();
	return s;
}

static void rates_free(struct rates *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].region);
		free(r->v[i].key);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static void destroy(void *priv)
{
	struct state *s = priv;
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->pairs[i].region);
		free(s->pairs[i].project);
		free(s->pairs[i].model);
	}
	free(s->pairs);
	textmap_free(s->index);
	rates_free(&s->now);
	for (int i = 0; i < NFROZEN; i++)
		rates_free(&s->frozen[i]);
	free(s);
}

static bool reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)priv;
	return !old->cw_enabled || strcmp(old->cw_endpoint, c->cw_endpoint) != 0 ||
	       !textlist_equal(&old->projects_regions, &c->projects_regions) ||
	       c->cw_max_metrics_per_day > old->cw_max_metrics_per_day;
}

/* ---- pairs ---- */

static char *pair_key(const char *region, const char *project, const char *model)
{
	return xasprintf("%s\x1f%s\x1f%s", region, project, model);
}

static struct pair *pair_find(const struct state *s, const char *region, const char *project,
			      const char *model)
{
	char *k = pair_key(region, project, model);
	uintptr_t i = (uintptr_t)textmap_get(s->index, k, NULL);
	free(k);
	return i ? &s->pairs[i - 1] : NULL;
}

/* The pair, added when new (which may move every pair); NULL past MAX_PAIRS. */
static struct pair *pair_get(struct state *s, const char *region, const char *project,
			     const char *model)
{
	struct pair *p = pair_find(s, region, project, model);
	if (p || s->n >= MAX_PAIRS)
		return p;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->pairs = xrealloc(s->pairs, s->cap * sizeof(*s->pairs));
	}
	p = &s->pairs[s->n++];
	memset(p, 0, sizeof(*p));
	p->region = xstrdup(region);
	p->project = xstrdup(project);
	p->model = xstrdup(model);
	usage_model_key(model, p->key, sizeof(p->key));
	char *k = pair_key(region, project, model);
	textmap_put(s->index, k, (void *)(uintptr_t)s->n);
	free(k);
	return p;
}

/* The minute index of Unix time @t. */
static long minute_of(double t)
{
	return (long)floor(t / 60.0);
}

static long midnight_minute(long day)
{
	return (long)(days_start_time(day) / 60.0);
}

/* Today's tokens of @p in direction @d (minutes of @today only). */
static double tokens_today(const struct pair *p, int d, long today)
{
	long from = midnight_minute(today);
	double v = p->settled[d];
	for (long m = p->upto - RING > from ? p->upto - RING : from; m < p->upto; m++)
		v += p->ring[d][m % RING];
	return v;
}

/* Tokens of @p in direction @d in the minutes [end - HOUR, end). */
static double tokens_last_hour(const struct pair *p, int d, long end)
{
	double v = 0;
	long from = end - HOUR > p->upto - RING ? end - HOUR : p->upto - RING;
	long to = end < p->upto ? end : p->upto;
	for (long m = from; m < to; m++)
		v += p->ring[d][m % RING];
	return v;
}

/* The table that priced @day (frozen), or NULL. */
static const struct rates *frozen_for(const struct state *s, long day)
{
	const struct rates *r = &s->frozen[day % NFROZEN];
	return day > 0 && r->for_day == day ? r : NULL;
}

/* Keeps @r (emptied) as the table that priced its day. */
static void freeze(struct state *s, struct rates *r)
{
	if (r->for_day <= 0) {
		rates_free(r);
		return;
	}
	struct rates *slot = &s->frozen[r->for_day % NFROZEN];
	rates_free(slot);
	*slot = *r;
	memset(r, 0, sizeof(*r));
}

/* A new UTC day: today's sums start again (the ring keeps the minutes before midnight for
 * the hourly rate); the table that priced the day that ended is frozen with it. */
static void day_turn(struct state *s, long today)
{
	for (size_t i = 0; i < s->n; i++)
		s->pairs[i].settled[IN] = s->pairs[i].settled[OUT] = 0;
	freeze(s, &s->now);
	s->today = today;
}

/* ---- one CloudWatch call ---- */

struct admit_arg {
	struct state *s;
	long metrics;
	long max_per_day;
	double now;
};

/* Every metric of every GetMetricData attempt is billed: counted before it is sent. */
static int admit(void *arg)
{
	struct admit_arg *a = arg;
	struct state *s = a->s;
	long today = days_of_time(a->now);
	if (s->metrics_day != today) {
		s->metrics_day = today;
		s->metrics_today = 0;
	}
	if (!a->metrics) {
		s->lists_total++;
		return 0;
	}
	if (s->metrics_today + a->metrics > a->max_per_day)
		return 1;
	s->metrics_today += a->metrics;
	s->metrics_total += (double)a->metrics;
	return 0;
}

static long remaining_today(const struct state *s, const struct conf *c, double now)
{
	long used = s->metrics_day == days_of_time(now) ? s->metrics_today : 0;
	return c->cw_max_metrics_per_day > used ? c->cw_max_metrics_per_day - used : 0;
}

/* Sends @body to @region's CloudWatch as @target, @metrics metrics (0: a ListMetrics).
 * Returns as hc_perform; @resp filled on success (caller frees resp->body). */
static int cw_call(struct state *s, struct source_ctx *x, const char *region, api_op op,
		   const char *target, const char *body, long metrics, struct hc_resp *resp,
		   char *err, size_t errlen)
{
	const struct conf *c = x->conf;
	char *base = region_url(c->cw_endpoint, region);
	char *url = xasprintf("%s/", base);
	char *tg = xasprintf("GraniteServiceVersion20100801.%s", target);
	char *what = xasprintf("%s in %s", target, region);
	struct admit_arg aa = { s, metrics, c->cw_max_metrics_per_day, x->now };
	struct aws_json_req r = { .op = op, .url = url, .version = "1.0", .target = tg,
				  .service = "monitoring", .region = region, .body = body,
				  .admit = admit, .admit_arg = &aa };
	int rc = aws_json_call(x, &r, what, resp, NULL, err, errlen);
	if (rc == -EDQUOT)
		snprintf(err, errlen, "%s: daily ceiling of %ld metrics reached "
			 "(cloudwatch.max_metrics_per_day)", what, c->cw_max_metrics_per_day);
	free(what);
	free(tg);
	free(url);
	free(base);
	return rc;
}

/* One page's request body (@token NULL: the first page), and its parse: 0 with *@next (NULL
 * at the end), or -EPROTO with a reason in @perr. */
typedef char *(*page_body_fn)(void *arg, const char *token);
typedef int (*page_parse_fn)(void *arg, const char *body, size_t len, char **next, char *perr,
			     size_t perrlen);

/* Runs one paginated operation of @metrics metrics a call (0: ListMetrics) to its end, with
 * the guard against endless pagination (MAX_PAGES, a repeated token). */
static int paginate(struct state *s, struct source_ctx *x, const char *region, api_op op,
		    const char *target, long metrics, page_body_fn body_fn,
		    page_parse_fn parse_fn, void *arg, char *err, size_t errlen)
{
	char *token = NULL;
	int rc = 0;
	for (long page = 0;; page++) {
		if (page >= MAX_PAGES) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s in %s: pagination did not end after %d pages", target,
				 region, MAX_PAGES);
			rc = -EPROTO;
			break;
		}
		char *body = body_fn(arg, token);
		struct hc_resp resp = { 0 };
		rc = cw_call(s, x, region, op, target, body, metrics, &resp, err, errlen);
		free(body);
		if (rc)
			break;
		char *next = NULL, perr[256];
		if (parse_fn(arg, resp.body, resp.len, &next, perr, sizeof(perr))) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s in %s: %s", target, region, perr);
			rc = -EPROTO;
		} else if (next && token && strcmp(next, token) == 0) {
			apistats_error(op, REASON_PARSE);
			snprintf(err, errlen, "%s in %s: the same NextToken twice", target, region);
			rc = -EPROTO;
		}
		free(resp.body);
		free(token);
		token = next;
		if (rc || !token)
			break;
	}
	free(token);
	return rc;
}

/* ---- listing ---- */

struct list_arg {
	struct state *s;
	const char *region;
	bool recent;
	size_t seen;
};

static void listed(void *arg, const char *project, const char *model)
{
	struct list_arg *a = arg;
	struct pair *p = pair_get(a->s, a->region, project, model);
	a->seen++;
	if (p && a->recent)
		p->active = true;
	else if (p)
		p->listed = true;
}

/* Forgets the pairs without data in 14 days (not in the history's listing) that were not
 * read today, and those of regions no longer configured: a deleted project or a retired
 * model does not stay forever. */
static void prune(struct state *s, long today, const struct conf *c)
{
	size_t kept = 0;
	textmap_free(s->index);
	s->index = textmap_new();
	for (size_t i = 0; i < s->n; i++) {
		struct pair *p = &s->pairs[i];
		if ((!p->listed && p->upto <= midnight_minute(today)) ||
		    textlist_find(&c->projects_regions, p->region) < 0) {
			free(p->region);
			free(p->project);
			free(p->model);
			continue;
		}
		s->pairs[kept++] = *p;
		char *k = pair_key(p->region, p->project, p->model);
		textmap_put(s->index, k, (void *)(uintptr_t)kept);
		free(k);
	}
	s->n = kept;
}

static char *list_body(void *arg, const char *token)
{
	return cw_body_list_metrics(dir_metrics[IN], ((struct list_arg *)arg)->recent, token);
}

static int list_parse(void *arg, const char *body, size_t len, char **next, char *perr,
		      size_t perrlen)
{
	return cw_parse_list_metrics(body, len, listed, arg, next, perr, perrlen);
}

/* Lists the region's (project, model) pairs: those with data in the last 3 hours when
 * @recent (they become the active ones), else every pair with data in 14 days. */
static int list_pairs(struct state *s, struct source_ctx *x, const char *region, bool recent,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->pairs[i].region, region) != 0)
			continue;
		if (recent)
			s->pairs[i].active = false;
		else
			s->pairs[i].listed = false;
	}
	struct list_arg a = { s, region, recent, 0 };
	return paginate(s, x, region, OP_CW_LIST_METRICS, "ListMetrics", 0, list_body, list_parse,
			&a, err, errlen);
}

/* ---- reading the data ---- */

/* One query of a batch: a pair and a direction. */
struct slot {
	size_t pair;
	int dir;
};

/* Data points of a batch, minute by minute over [start, start + width) per query. */
struct points {
	const struct slot *slots;
	size_t n;
	long start;     /* Unix seconds of the first period */
	long period;    /* seconds */
	long width;     /* periods */
	double *v;      /* n x width */
};

static void got_point(void *arg, size_t q, double ts, double value)
{
	struct points *pt = arg;
	double k = floor((ts - (double)pt->start) / (double)pt->period);
	if (k >= 0 && k < (double)pt->width)
		pt->v[q * (size_t)pt->width + (size_t)k] += value;
}

struct batch_arg {
	const struct cw_query *q;
	size_t n;
	struct points *pt;
};

static char *batch_body(void *arg, const char *token)
{
	const struct batch_arg *b = arg;
	const struct points *pt = b->pt;
	return cw_body_get_metric_data(b->q, b->n, pt->period, pt->start,
				       pt->start + pt->period * pt->width, token);
}

static int batch_parse(void *arg, const char *body, size_t len, char **next, char *perr,
		       size_t perrlen)
{
	const struct batch_arg *b = arg;
	return cw_parse_metric_data(body, len, b->n, got_point, b->pt, next, perr, perrlen);
}

/* Reads [start, start + period * width) of every slot of @sl (at most CW_MAX_QUERIES) into
 * @pt->v, page after page. Nothing of the state changes. */
static int read_batch(struct state *s, struct source_ctx *x, const char *region,
		      const struct slot *sl, size_t n, long start, long period, long width,
		      struct points *pt, char *err, size_t errlen)
{
	struct cw_query q[CW_MAX_QUERIES];
	for (size_t i = 0; i < n; i++) {
		const struct pair *p = &s->pairs[sl[i].pair];
		q[i] = (struct cw_query){ dir_metrics[sl[i].dir], p->project, p->model };
	}
	*pt = (struct points){ sl, n, start, period, width,
			       xcalloc(n * (size_t)width + 1, sizeof(double)) };
	struct batch_arg b = { q, n, pt };
	int rc = paginate(s, x, region, OP_CW_GET_METRIC_DATA, "GetMetricData", (long)n,
			  batch_body, batch_parse, &b, err, errlen);
	if (rc) {
		free(pt->v);
		pt->v = NULL;
	}
	return rc;
}

/* Moves @p's ring on to hold [end - RING, end): minutes leaving it that belong to today
 * join settled[]; minutes not read yet are 0. */
static void ring_advance(struct pair *p, long end, long today)
{
	long from = midnight_minute(today);
	for (long m = p->upto - RING; m < p->upto && m < end - RING; m++)
		for (int d = 0; d < NDIR; d++)
			if (m >= from)
				p->settled[d] += p->ring[d][m % RING];
	long clear = p->upto > end - RING ? p->upto : end - RING;
	for (long m = clear; m < end; m++)
		for (int d = 0; d < NDIR; d++)
			p->ring[d][m % RING] = 0;
	p->upto = end;
}

/* Batches of whole pairs: both directions of a pair in one call. */
#define BATCH_PAIRS (CW_MAX_QUERIES / NDIR)

/*
 * Reads the minutes of @idx's pairs (@n of them, one region) up to @end: incremental pairs
 * from @start (their last minutes again), fresh ones (@fresh) as one sum from 00:00 UTC to
 * the ring, then the ring's minutes. Each batch is applied when all its calls succeeded.
 */
static int read_minutes(struct state *s, struct source_ctx *x, const char *region,
			const size_t *idx, size_t n, bool fresh, long start, long end, long today,
			char *err, size_t errlen)
{
	long midnight = midnight_minute(today);
	for (size_t b = 0; b < n; b += BATCH_PAIRS) {
		size_t np = n - b < BATCH_PAIRS ? n - b : BATCH_PAIRS;
		struct slot sl[CW_MAX_QUERIES];
		for (size_t i = 0; i < np; i++)
			for (int d = 0; d < NDIR; d++)
				sl[i * NDIR + (size_t)d] = (struct slot){ idx[b + i], d };
		size_t nq = np * NDIR;
		struct points bulk = { 0 }, mins;
		long ring_from = fresh ? end - RING : start;
		if (fresh && ring_from > midnight) {
			int rc = read_batch(s, x, region, sl, nq, midnight * 60,
					    (ring_from - midnight) * 60, 1, &bulk, err, errlen);
			if (rc)
				return rc;
		}
		int rc = read_batch(s, x, region, sl, nq, ring_from * 60, 60, end - ring_from, &mins,
				    err, errlen);
		if (rc) {
			free(bulk.v);
			return rc;
		}
		for (size_t i = 0; i < nq; i++) {
			struct pair *p = &s->pairs[sl[i].pair];
			int d = sl[i].dir;
			if (d == 0) {
				if (fresh) {
					memset(p->ring, 0, sizeof(p->ring));
					p->settled[IN] = p->settled[OUT] = 0;
					p->upto = end;
				} else {
					ring_advance(p, end, today);
				}
			}
			if (bulk.v)
				p->settled[d] = bulk.v[i];
			for (long m = ring_from; m < end; m++)
				p->ring[d][m % RING] = mins.v[i * (size_t)(end - ring_from) +
							     (size_t)(m - ring_from)];
		}
		free(bulk.v);
		free(mins.v);
	}
	return 0;
}

/* Reads the history (daily sums of [today - HIST_DAYS, today)) of every pair of @region. */
static int read_history(struct state *s, struct source_ctx *x, const char *region, long today,
			char *err, size_t errlen)
{
	size_t *idx = xcalloc(s->n + 1, sizeof(*idx)), n = 0;
	for (size_t i = 0; i < s->n; i++) /* a retry after a failure reads only what is missing */
		if (strcmp(s->pairs[i].region, region) == 0 && s->pairs[i].hist_day != today)
			idx[n++] = i;
	int rc = 0;
	for (size_t b = 0; !rc && b < n; b += BATCH_PAIRS) {
		size_t np = n - b < BATCH_PAIRS ? n - b : BATCH_PAIRS;
		struct slot sl[CW_MAX_QUERIES];
		for (size_t i = 0; i < np; i++)
			for (int d = 0; d < NDIR; d++)
				sl[i * NDIR + (size_t)d] = (struct slot){ idx[b + i], d };
		struct points pt;
		rc = read_batch(s, x, region, sl, np * NDIR,
				(long)days_start_time(today - HIST_DAYS), 86400, HIST_DAYS, &pt, err,
				errlen);
		for (size_t i = 0; !rc && i < np * NDIR; i++) {
			struct pair *p = &s->pairs[sl[i].pair];
			memcpy(p->hist[sl[i].dir], pt.v + i * HIST_DAYS, sizeof(p->hist[0]));
			p->has_hist = true;
			p->hist_day = today;
		}
		free(pt.v);
	}
	free(idx);
	return rc;
}

/* ---- rates ---- */

/* Billed cost and tokens of one (region, model key, direction) per history day. */
struct acc {
	char *region, *key;
	int dir;
	double billed[HIST_DAYS], tokens[HIST_DAYS];
};

struct accs {
	struct acc *v;
	size_t n;
	struct textmap *index;
};

static struct acc *acc_get(struct accs *a, const char *region, const char *key, int dir)
{
	char *k = xasprintf("%s\x1f%s\x1f%d", region, key, dir);
	uintptr_t i = (uintptr_t)textmap_get(a->index, k, NULL);
	if (!i) {
		a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
		memset(&a->v[a->n], 0, sizeof(a->v[0]));
		a->v[a->n].region = xstrdup(region);
		a->v[a->n].key = xstrdup(key);
		a->v[a->n].dir = dir;
		i = ++a->n;
		textmap_put(a->index, k, (void *)i);
	}
	free(k);
	return &a->v[i - 1];
}

static void accs_free(struct accs *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].region);
		free(a->v[i].key);
	}
	free(a->v);
	textmap_free(a->index);
}

/* The rate of @acc from the days [first, last] of the history (indexes). */
static bool acc_rate(const struct acc *a, int first, int last, long day0, struct rate *out)
{
	double b = 0, t = 0;
	int days = 0;
	out->last = -1;
	for (int i = last; i >= first; i--) {
		if (!(a->billed[i] > 0 && a->tokens[i] > 0))
			continue;
		if (out->last < 0) {
			out->last = a->billed[i] / a->tokens[i];
			out->day = day0 + i;
		}
		b += a->billed[i];
		t += a->tokens[i];
		days++;
	}
	out->week = days ? b / t : -1;
	return days > 0;
}

/* The table pricing day @day: rates from the settled days [day - 8, day - 2], and the
 * entries of @old that these days do not give (the last known rate is kept). */
static void rates_build(const struct accs *a, long day0, long day, const struct rates *old,
			struct rates *out)
{
	memset(out, 0, sizeof(*out));
	out->for_day = day;
	int first = (int)(day - SETTLED - RATE_DAYS + 1 - day0), last = (int)(day - SETTLED - day0);
	if (first < 0)
		first = 0;
	out->v = xcalloc(a->n + (old ? old->n : 0) + 1, sizeof(*out->v));
	for (size_t i = 0; last >= 0 && i < a->n; i++) {
		struct rate r = { 0 };
		if (!acc_rate(&a->v[i], first, last < HIST_DAYS ? last : HIST_DAYS - 1, day0, &r))
			continue;
		r.region = xstrdup(a->v[i].region);
		r.key = xstrdup(a->v[i].key);
		r.dir = a->v[i].dir;
		out->v[out->n++] = r;
	}
	size_t fresh = out->n;
	for (size_t i = 0; old && i < old->n; i++) {
		bool have = false;
		for (size_t j = 0; !have && j < fresh; j++)
			have = out->v[j].dir == old->v[i].dir &&
			       strcmp(out->v[j].region, old->v[i].region) == 0 &&
			       strcmp(out->v[j].key, old->v[i].key) == 0;
		if (have)
			continue;
		struct rate r = old->v[i];
		r.region = xstrdup(r.region);
		r.key = xstrdup(r.key);
		out->v[out->n++] = r;
	}
}

/*
 * Brings the rates up to date from Cost Explorer's daily spend by usage type and the
 * history's tokens: the table pricing today, and the one that priced the judged day when it
 * was not frozen at the day's turn (a fresh start).
 */
static void rates_refresh(struct state *s, const struct ce_series *models, long today,
			  long judged)
{
	if (!models)
		return;
	long day0 = today - HIST_DAYS;
	struct accs a = { NULL, 0, textmap_new() };
	for (size_t i = 0; i < s->n; i++) {
		const struct pair *p = &s->pairs[i];
		if (!p->has_hist || p->hist_day != today)
			continue;
		for (int d = 0; d < NDIR; d++) {
			struct acc *ac = acc_get(&a, p->region, p->key, d);
			for (int k = 0; k < HIST_DAYS; k++)
				ac->tokens[k] += p->hist[d][k];
		}
	}
	for (size_t i = 0; i < models->n; i++) {
		const struct ce_day *cd = &models->days[i];
		if (cd->day < day0 || cd->day >= today || ce_day_end(cd) != cd->day + 1)
			continue;
		for (size_t g = 0; g < cd->n; g++) {
			const char *service = cd->g[g].k[0] ? cd->g[g].k[0] : "";
			const char *usage = cd->g[g].k[1] ? cd->g[g].k[1] : "";
			const char *region = usage_region(usage);
			if (!region)
				continue;
			char model[256], key[128];
			usage_model(service, usage, model, sizeof(model));
			usage_model_key(model, key, sizeof(key));
			int d = strcmp(usage_direction(usage_token_type(usage)), "output") == 0 ? OUT : IN;
			char *k = xasprintf("%s\x1f%s\x1f%d", region, key, d);
			bool known = textmap_get(a.index, k, NULL) != NULL;
			free(k);
			if (known) /* only models CloudWatch has tokens of */
				acc_get(&a, region, key, d)->billed[cd->day - day0] += cd->g[g].amount;
		}
	}
	struct rates now;
	/* what the days no longer give keeps its last rate: today's table, or yesterday's right
	 * after the turn */
	rates_build(&a, day0, today, s->now.n ? &s->now : frozen_for(s, today - 1), &now);
	rates_free(&s->now);
	s->now = now;
	/* the judged day's table, when it was not frozen here (a fresh start): as the exporter
	 * would have built it that day, from the days before it; only from a history of every
	 * region (a table built without a region's tokens would be kept all day) */
	const struct rates *j = frozen_for(s, judged);
	if ((!j || !j->n) && s->hist_day == today) {
		struct rates t;
		rates_build(&a, day0, judged, NULL, &t);
		freeze(s, &t);
	}
	accs_free(&a);
}

static void rates_update(struct state *s, struct source_ctx *x, long today)
{
	const struct ce_series *models =
		x->conf->dx_enabled ? data_exports_models(source_peer(x->set, &data_exports_source), "")
				    : cost_explorer_models(source_peer(x->set, &cost_explorer_source));
	rates_refresh(s, models, today,
		      cost_explorer_judged_day(x->conf, today));
}

/* The rate in use for @p's direction @d in table @r, in USD per token; @source "billed" or
 * "configured"; < 0 when there is none. */
static double rate_of(const struct rates *r, const struct conf *c, const struct pair *p, int d,
		      const char **source)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct rate *e = &r->v[i];
		if (e->dir == d && strcmp(e->key, p->key) == 0 && strcmp(e->region, p->region) == 0) {
			*source = "billed";
			return e->week >= 0 ? e->week : e->last;
		}
	}
	for (size_t i = 0; i < c->cw_prices.n; i++) {
		char key[128];
		usage_model_key(c->cw_prices.v[i].model, key, sizeof(key));
		if (strcmp(key, p->key) == 0) {
			*source = "configured";
			return c->cw_prices.v[i].per_million[d] / 1e6;
		}
	}
	return -1;
}

/* ---- refresh ---- */

/* Has the state file take the meter when it moved by a twentieth of the ceiling (so that a
 * restart cannot spend more than that twice) or a new day began; not at every refresh, which
 * would rewrite the whole file every few minutes. */
static void meter_saved(struct state *s, const struct conf *c, struct source_ctx *x)
{
	long step = c->cw_max_metrics_per_day / 20 > 0 ? c->cw_max_metrics_per_day / 20 : 1;
	if (s->metrics_day != s->saved_day || s->metrics_today - s->saved_metrics >= step) {
		s->saved_day = s->metrics_day;
		s->saved_metrics = s->metrics_today;
		x->state_changed = true;
	}
}

/* Keeps the first failure of a refresh (@rc, @msg) in @err; later ones are only logged at
 * debug level. Returns whether the refresh must stop (the ceiling, a shutdown). */
static bool failed(int rc, const char *msg, int *first, char *err, size_t errlen)
{
	if (!rc)
		return false;
	if (!*first) {
		*first = rc;
		snprintf(err, errlen, "%s", msg);
	} else {
		log_debug("cloudwatch: another region failed too", "error", msg);
	}
	return rc == -EDQUOT || rc == -ECANCELED;
}

/*
 * One refresh: the history once a day, then each region's active pairs. A region that fails
 * does not stop the others (their estimates stay current); the refresh then reports the
 * first failure, and what succeeded is kept.
 */
static int refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct state *s = priv;
	const struct conf *c = x->conf;
	long today = days_of_time(x->now), end = minute_of(x->now);
	if (s->today != today) {
		day_turn(s, today);
		x->state_changed = true; /* the rates that priced yesterday */
	}
	long left = remaining_today(s, c, x->now);
	if (s->need > 0 && left < s->need) {
		snprintf(err, errlen, "skipped: %ld metrics left today, a read needs about %ld "
			 "(cloudwatch.max_metrics_per_day = %ld); reads go on after 00:00 UTC, or at "
			 "once after a SIGHUP that raises it", left, s->need,
			 c->cw_max_metrics_per_day);
		return -EDQUOT;
	}
	int first = 0;
	bool stop = false;
	char e[512];
	if (s->hist_day != today) {
		bool listed_all = true;
		for (size_t r = 0; !stop && r < c->projects_regions.n; r++) {
			int rc = list_pairs(s, x, c->projects_regions.v[r], false, e, sizeof(e));
			listed_all = listed_all && !rc;
			stop = failed(rc, e, &first, err, errlen);
		}
		if (listed_all)
			prune(s, today, c);
		bool read_all = listed_all;
		for (size_t r = 0; !stop && r < c->projects_regions.n; r++) {
			int rc = read_history(s, x, c->projects_regions.v[r], today, e, sizeof(e));
			read_all = read_all && !rc;
			stop = failed(rc, e, &first, err, errlen);
		}
		if (read_all)
			s->hist_day = today;
		x->state_changed = true;
	}
	rates_update(s, x, today);
	long late = c->cw_late_data_minutes, need = 0;
	size_t *fresh = NULL, *inc = NULL;
	for (size_t r = 0; !stop && r < c->projects_regions.n; r++) {
		const char *region = c->projects_regions.v[r];
		int rc = list_pairs(s, x, region, true, e, sizeof(e));
		if ((stop = failed(rc, e, &first, err, errlen)) || rc)
			continue;
		fresh = xrealloc(fresh, (s->n + 1) * sizeof(size_t));
		inc = xrealloc(inc, (s->n + 1) * sizeof(size_t));
		size_t nf = 0, ni = 0;
		long start = end;
		for (size_t i = 0; i < s->n; i++) {
			const struct pair *p = &s->pairs[i];
			if (!p->active || strcmp(p->region, region) != 0)
				continue;
			if (p->upto > midnight_minute(today) && p->upto - late >= end - RING &&
			    p->upto <= end) {
				inc[ni++] = i;
				if (p->upto - late < start)
					start = p->upto - late;
				need += NDIR;
			} else {
				fresh[nf++] = i;
				/* a sum from 00:00 and the ring's minutes, or the ring alone */
				need += end - RING > midnight_minute(today) ? 2 * NDIR : NDIR;
			}
		}
		if (ni && start < end)
			rc = read_minutes(s, x, region, inc, ni, false, start, end, today, e, sizeof(e));
		if (!rc && nf)
			rc = read_minutes(s, x, region, fresh, nf, true, 0, end, today, e, sizeof(e));
		stop = failed(rc, e, &first, err, errlen);
	}
	free(fresh);
	free(inc);
	meter_saved(s, c, x);
	if (first)
		return first;
	s->end = end;
	s->need = need;
	return 0;
}

/* Spreads the refreshes over the rest of the UTC day when the ceiling cannot cover one
 * every interval: as many reads as are left, evenly; when not one is left, the next read is
 * the first of the next UTC day. */
static double delay(const void *priv, const struct conf *c, double now)
{
	const struct state *s = priv;
	long left = remaining_today(s, c, now);
	double until = days_start_time(days_of_time(now) + 1) - now;
	if (s->need <= 0)
		return 0;
	if (left < s->need)
		return until + 1;
	return until / (double)(left / s->need);
}
/* ---- state file ---- */

/* One table, as member @name of the object being written (NULL: an array element). */
static void save_rates(struct jsonw *w, const char *name, const struct rates *r)
{
	if (name)
		jsonw_key(w, name);
	jsonw_object_begin(w);
	jsonw_key(w, "for_day");
	jsonw_int(w, r->for_day);
	jsonw_key(w, "v");
	jsonw_array_begin(w);
	for (size_t i = 0; i < r->n; i++) {
		const struct rate *e = &r->v[i];
		jsonw_array_begin(w);
		jsonw_string(w, e->region);
		jsonw_string(w, e->key);
		jsonw_int(w, e->dir);
		jsonw_number(w, e->last);
		jsonw_int(w, e->day);
		jsonw_number(w, e->week);
		jsonw_array_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

/* "cloudwatch": {"hist_day", the meter, "pairs": [[region, project, model, its history's
 * day, [input by day], [output by day]], ...], "rates": {...}, "rates_frozen": [{...}]} */
static void save(const void *priv, struct jsonw *w)
{
	const struct state *s = priv;
	if (!s->hist_day && !s->metrics_total && !s->lists_total)
		return;
	jsonw_key(w, "cloudwatch");
	jsonw_object_begin(w);
	jsonw_key(w, "hist_day");
	jsonw_int(w, s->hist_day);
	jsonw_key(w, "metrics_day");
	jsonw_int(w, s->metrics_day);
	jsonw_key(w, "metrics_today");
	jsonw_int(w, s->metrics_today);
	jsonw_key(w, "metrics_total");
	jsonw_number(w, s->metrics_total);
	jsonw_key(w, "lists_total");
	jsonw_number(w, s->lists_total);
	jsonw_key(w, "pairs");
	jsonw_array_begin(w);
	for (size_t i = 0; i < s->n; i++) {
		const struct pair *p = &s->pairs[i];
		if (!p->has_hist)
			continue;
		jsonw_array_begin(w);
		jsonw_string(w, p->region);
		jsonw_string(w, p->project);
		jsonw_string(w, p->model);
		jsonw_int(w, p->hist_day);
		for (int d = 0; d < NDIR; d++) {
			jsonw_array_begin(w);
			for (int k = 0; k < HIST_DAYS; k++)
				jsonw_number(w, p->hist[d][k]);
			jsonw_array_end(w);
		}
		jsonw_array_end(w);
	}
	jsonw_array_end(w);
	save_rates(w, "rates", &s->now);
	jsonw_key(w, "rates_frozen");
	jsonw_array_begin(w);
	for (int i = 0; i < NFROZEN; i++)
		if (s->frozen[i].for_day > 0)
			save_rates(w, NULL, &s->frozen[i]);
	jsonw_array_end(w);
	jsonw_object_end(w);
}

/* A whole number in [0, @max]. */
static bool whole_number(const struct jsontape *t, size_t i, double max, double *out)
{
	return !jt_number(t, i, out) && *out >= 0 && *out <= max && *out == floor(*out);
}

/* A day number (days.h; 0 = none) up to the year 9999. */
static bool day_number(const struct jsontape *t, size_t i, double *out)
{
	return whole_number(t, i, 3e6, out);
}

/* A counter of metrics or requests. */
static bool count_number(const struct jsontape *t, size_t i, double *out)
{
	return whole_number(t, i, 1e15, out);
}

static bool restore_rates(const struct jsontape *t, size_t o, struct rates *r)
{
	double fd;
	size_t v = jt_get(t, o, "v");
	if (!jt_is(t, o, JT_OBJECT) || !day_number(t, jt_get(t, o, "for_day"), &fd) ||
	    !jt_is(t, v, JT_ARRAY))
		return false;
	r->for_day = (long)fd;
	r->v = xcalloc(jt_count(t, v) + 1, sizeof(*r->v));
	for (size_t e = jt_first(t, v); e != JT_NONE; e = jt_next(t, v, e)) {
		size_t f[6], k = 0;
		for (size_t m = jt_is(t, e, JT_ARRAY) ? jt_first(t, e) : JT_NONE; m != JT_NONE && k < 6;
		     m = jt_next(t, e, m))
			f[k++] = m;
		double dir, last, day, week;
		if (k != 6 || !jt_is(t, f[0], JT_STRING) || !jt_is(t, f[1], JT_STRING) ||
		    jt_number(t, f[2], &dir) || (dir != IN && dir != OUT) ||
		    jt_number(t, f[3], &last) || !day_number(t, f[4], &day) ||
		    jt_number(t, f[5], &week) || !(last >= 0 && last < 1) || !(week < 1))
			return false;
		r->v[r->n++] = (struct rate){ jt_strdup(t, f[0]), jt_strdup(t, f[1]), (int)dir, last,
					      (long)day, week };
	}
	return true;
}

static void *restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		     struct source_restored *out, char *err, size_t errlen)
{
	(void)out; /* today's minutes are not kept: the first refresh reads them */
	struct state *s = create(c);
	size_t o = jt_get(t, root, "cloudwatch");
	if (o == JT_NONE)
		return s;
	double hd, md, mt, mtot, ltot;
	size_t pairs = jt_get(t, o, "pairs");
	bool ok = jt_is(t, o, JT_OBJECT) && day_number(t, jt_get(t, o, "hist_day"), &hd) &&
		  day_number(t, jt_get(t, o, "metrics_day"), &md) &&
		  count_number(t, jt_get(t, o, "metrics_today"), &mt) &&
		  count_number(t, jt_get(t, o, "metrics_total"), &mtot) &&
		  count_number(t, jt_get(t, o, "lists_total"), &ltot) && jt_is(t, pairs, JT_ARRAY) &&
		  restore_rates(t, jt_get(t, o, "rates"), &s->now);
	size_t fz = jt_get(t, o, "rates_frozen");
	ok = ok && jt_is(t, fz, JT_ARRAY);
	for (size_t e = ok ? jt_first(t, fz) : JT_NONE; ok && e != JT_NONE; e = jt_next(t, fz, e)) {
		struct rates r = { 0 };
		ok = restore_rates(t, e, &r);
		freeze(s, &r);
		rates_free(&r);
	}
	for (size_t e = ok ? jt_first(t, pairs) : JT_NONE; ok && e != JT_NONE;
	     e = jt_next(t, pairs, e)) {
		size_t f[6], k = 0;
		for (size_t m = jt_is(t, e, JT_ARRAY) ? jt_first(t, e) : JT_NONE; m != JT_NONE && k < 6;
		     m = jt_next(t, e, m))
			f[k++] = m;
		double phd;
		ok = k == 6 && jt_is(t, f[0], JT_STRING) && jt_is(t, f[1], JT_STRING) &&
		     jt_is(t, f[2], JT_STRING) && day_number(t, f[3], &phd) &&
		     jt_is(t, f[4], JT_ARRAY) && jt_count(t, f[4]) == HIST_DAYS &&
		     jt_is(t, f[5], JT_ARRAY) && jt_count(t, f[5]) == HIST_DAYS;
		if (!ok)
			break;
		char *region = jt_strdup(t, f[0]), *project = jt_strdup(t, f[1]),
		     *model = jt_strdup(t, f[2]);
		struct pair *p = pair_get(s, region, project, model);
		free(region);
		free(project);
		free(model);
		for (int d = 0; p && ok && d < NDIR; d++) {
			int i = 0;
			for (size_t m = jt_first(t, f[4 + d]); ok && m != JT_NONE;
			     m = jt_next(t, f[4 + d], m), i++)
				ok = !jt_number(t, m, &p->hist[d][i]) && p->hist[d][i] >= 0 &&
				     p->hist[d][i] < MAX_VALUE;
		}
		if (p) {
			p->has_hist = true;
			p->hist_day = (long)phd;
		}
	}
	if (!ok) {
		snprintf(err, errlen, "cloudwatch: malformed");
		destroy(s);
		return NULL;
	}
	long today = days_of_time(now);
	s->hist_day = (long)hd <= today ? (long)hd : 0;
	s->metrics_day = s->saved_day = (long)md;
	s->metrics_today = s->saved_metrics = (long)mt;
	s->metrics_total = mtot;
	s->lists_total = ltot;
	s->today = today;
	if (s->now.for_day != today) /* the day turned while the exporter was away */
		freeze(s, &s->now);
	return s;
}

/* ---- metrics ---- */

/* Sums per project: today's estimate, the last hour's, the judged day's; whether priced. */
struct proj_sum {
	const char *project;
	double today, hour, judged;
	bool priced, hour_priced, judged_priced, judged_unpriced;
};

static void collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct state *s = priv;
	const struct conf *c = x->conf;
	long today = days_of_time(x->now);
	reg_addv(r, &m_requested, s->metrics_total, (char *)0);
	reg_addv(r, &m_spend,
		 ce_money((s->metrics_total + s->lists_total) * c->cw_price_per_1000_metrics_usd /
			  1000.0),
		 (char *)0);
	reg_addv(r, &m_remaining, (double)remaining_today(s, c, x->now), (char *)0);
	/* Until the first read of a new UTC day, the day's families are absent (nothing of it
	 * has been read); the hourly rate spans midnight and stays. */
	bool day_read = s->today == today;
	long judged = cost_explorer_judged_day(c, today);
	int ji = (int)(HIST_DAYS - (today - judged)); /* its index in the history */
	static const struct rates none = { 0 };
	const struct rates *jr = frozen_for(s, judged);
	if (!jr)
		jr = &none;
	struct textmap *projects = textmap_new();
	struct proj_sum *sums = xcalloc(s->n + 1, sizeof(*sums));
	size_t ns = 0;
	struct textmap *rates_seen = textmap_new();
	long midnight = midnight_minute(today);
	const char *account = accounts_label(x->set); /* one account: not in an organization */
	for (size_t i = 0; i < s->n; i++) {
		const struct pair *p = &s->pairs[i];
		/* read today (at 00:00:30 it is read up to midnight: 0 tokens so far) */
		bool read_today = day_read && p->upto >= midnight;
		/* read (since the start) within the hour before the last read: an hourly rate */
		long hour_end = p->upto > s->end ? p->upto : s->end;
		bool read_lately = p->upto > 0 && p->upto > hour_end - HOUR;
		uintptr_t k = (uintptr_t)textmap_get(projects, p->project, NULL);
		if (!k) {
			sums[ns].project = p->project;
			k = ++ns;
			textmap_put(projects, p->project, (void *)k);
		}
		struct proj_sum *ps = &sums[k - 1];
		for (int d = 0; d < NDIR; d++) {
			const char *src = NULL;
			double rate = rate_of(&s->now, c, p, d, &src);
			double tok = read_today ? tokens_today(p, d, today) : 0;
			if (read_today)
				reg_addv(r, &m_tokens, tok, "account_id", account, "region", p->region,
					 "project_id", p->project, "model", p->model, "direction",
					 dir_names[d], (char *)0);
			if (rate >= 0 && read_today) {
				ps->today += tok * rate;
				ps->priced = true;
			}
			if (rate >= 0 && read_lately) {
				/* a region read after the others failed is ahead of s->end */
				ps->hour += tokens_last_hour(p, d, hour_end) * rate;
				ps->hour_priced = true;
			}
			if (rate >= 0) {
				char *rk = xasprintf("%s\x1f%s\x1f%d", p->region, p->model, d);
				if (textmap_put(rates_seen, rk, (void *)1))
					reg_addv(r, &m_rate, rate * 1e6, "account_id", account,
						 "region", p->region, "model",
						 p->model, "direction", dir_names[d], "source", src,
						 (char *)0);
				free(rk);
			}
			/* the judged day's tokens, priced with the rates of that day */
			double jtok = p->has_hist && p->hist_day == today ? p->hist[d][ji] : 0;
			if (jtok > 0) {
				const char *jsrc;
				double jrate = rate_of(jr, c, p, d, &jsrc);
				if (jrate >= 0) {
					ps->judged += jtok * jrate;
					ps->judged_priced = true;
				} else {
					ps->judged_unpriced = true;
				}
			}
		}
	}
	for (size_t i = 0; i < ns; i++) {
		if (sums[i].priced)
			reg_addv(r, &m_today_est, ce_money(sums[i].today), "account_id", account,
				 "project_id", sums[i].project, (char *)0);
		if (sums[i].hour_priced)
			reg_addv(r, &m_per_hour, ce_money(sums[i].hour * 60.0 / HOUR), "account_id",
				 account, "project_id", sums[i].project, (char *)0);
	}
	/* the error ratio against Cost Explorer's spend of the judged day, per project it
	 * attributes (its windows as on the day after it: "yesterday" is the judged day) */
	const void *ce = source_peer(x->set, &cost_explorer_source);
	if (ce) {
		struct attribution a;
		cost_explorer_attribute_judged(ce, c, x->set, today, &a);
		for (size_t i = 0; a.present[WIN_YESTERDAY] && i < a.nrows; i++) {
			uintptr_t k = (uintptr_t)textmap_get(projects, a.rows[i].project_id, NULL);
			double billed = a.rows[i].v[WIN_YESTERDAY];
			if (!k || !(billed > 0) || !sums[k - 1].judged_priced ||
			    sums[k - 1].judged_unpriced)
				continue;
			reg_addv(r, &m_error, (sums[k - 1].judged - billed) / billed, "account_id",
				 account, "project_id", a.rows[i].project_id, (char *)0);
		}
		attribution_free(&a);
	}
	textmap_free(rates_seen);
	textmap_free(projects);
	free(sums);
}

static bool has_data(const void *priv)
{
	const struct state *s = priv;
	return s->end > 0;
}

static const struct api_op_def operations[] = {
	{ "cloudwatch", "ListMetrics" },
	{ "cloudwatch", "GetMetricData" },
	{ NULL, NULL },
};

const struct source_def cloudwatch_source = {
	.name = "cloudwatch",
	.enabled = enabled,
	.interval = interval,
	.retry_after_failure = 0, /* the interval: a retry costs as much as a read */
	.operations = operations,
	.create = create,
	.destroy = destroy,
	.reconfigure = reconfigure,
	.refresh = refresh,
	.save = save,
	.restore = restore,
	.collect = collect,
	.has_data = has_data,
	.delay = delay,
};
