/*
 * Unit tests for sources/cost_explorer.c: the source "cost_explorer" driven through its
 * table row (create, refresh, reconfigure, collect, destroy), with the projects, forecast
 * and allocation_tags sources beside it in one source_set, as the engine runs them.
 *
 * The HTTP client is hc_new_fake(): admission (the daily ceiling), apistats, classification
 * and retries are the real ones, only the transfer is this file's fake Cost Explorer. It
 * answers in the wire shapes of product.md and tests/fake_aws/ from a small in-memory
 * ledger (days x tag combinations, days x SERVICE/USAGE_TYPE), paginates by days when told
 * to, throttles when told to, and records every request it sees (operation from
 * X-Amz-Target, TimePeriod, NextPageToken, GroupBy, Metrics, the SERVICE filter).
 *
 * The wall clock is the test's (struct source_ctx.now); retries wait through hc_opts.wait,
 * which returns at once. No network, no sleep. Credentials come from the environment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/sources/cost_explorer.c"
#include "aws/awscreds.h"
#include "sources/allocation_tags.h"
#include "sources/forecast.h"

/* ---- the ledger the fake answers from ---- */

/* Spend by attribution tags: one row per tag combination, amounts in cents. */
static const struct {
	const char *app, *env, *team;
	long base_cents;
} combos[] = {
	{ "Chatbot", "Prod", "Support", 1200 }, /* project proj_chat */
	{ "Search", "Dev", "Data", 345 },       /* project proj_search */
	{ "", "", "", 77 },                      /* untagged */
};
#define NCOMBOS (sizeof(combos) / sizeof(combos[0]))

/* Spend by SERVICE and USAGE_TYPE. */
static const struct {
	const char *service, *usage;
	long base_cents;
} models[] = {
	{ "Amazon Bedrock", "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard", 250 },
	{ "Claude Sonnet 4.5 (Amazon Bedrock Edition)", "USE1-MP:USE1_InputTokenCount-Units", 980 },
};
#define NMODELS (sizeof(models) / sizeof(models[0]))

/* ---- the fake Cost Explorer (and Projects API) ---- */

#define MAX_RECS 256

/* One request the fake saw. */
struct rec {
	char op[48];      /* X-Amz-Target's operation, "ListProjects", or "?" */
	long start, end;  /* TimePeriod as day numbers; -1 when absent */
	char token[64];   /* NextPageToken / NextToken sent; "" on a first page */
	char group0[48];  /* "TAG:Application", "DIMENSION:SERVICE", "" */
	int ngroups;
	char metric[32];  /* Metrics[0] (GetCostAndUsage) or Metric (GetCostForecast) */
	int nservices;    /* Filter.Dimensions.Values */
	char search[32];  /* SearchString (GetDimensionValues) */
	char url[256];
};

static struct {
	struct rec r[MAX_RECS];
	int n;
	long page_days;    /* > 0: a GetCostAndUsage page holds at most this many days */
	int throttle;      /* the next N Cost Explorer attempts are throttled; -1: all of them */
	long bump_cents;   /* added to every amount from now on */
	long est_day[2];   /* days answered Estimated=true; 0 = none */
	int waits;         /* hc_opts.wait calls (retry backoffs) */
} F;

static long cents(size_t c, long day, long bump, bool amortized)
{
	long v = combos[c].base_cents + (day % 7) * 10 + bump;
	return amortized ? 2 * v : v;
}

static long model_cents(size_t m, long day, long bump, bool amortized)
{
	long v = models[m].base_cents + (day % 5) * 3 + bump;
	return amortized ? 2 * v : v;
}

static const char *tag_of(size_t c, const char *key)
{
	if (strcmp(key, "Application") == 0)
		return combos[c].app;
	if (strcmp(key, "Environment") == 0)
		return combos[c].env;
	if (strcmp(key, "Team") == 0)
		return combos[c].team;
	return "";
}

static bool is_estimated(long day)
{
	return (F.est_day[0] && day == F.est_day[0]) || (F.est_day[1] && day == F.est_day[1]);
}

/* The value of header @name in the request, or NULL. */
static const char *header(const struct hc_req *req, const char *name)
{
	size_t n = strlen(name);
	for (const struct curl_slist *h = req->headers; h; h = h->next)
		if (strncasecmp(h->data, name, n) == 0 && h->data[n] == ':')
			return h->data + n + 1 + (h->data[n + 1] == ' ');
	return NULL;
}

static long json_day(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	long d;
	if (!cJSON_IsString(v) || days_parse(v->valuestring, &d))
		return -1;
	return d;
}

static void copy_str(char *out, size_t outlen, const cJSON *v)
{
	if (cJSON_IsString(v))
		snprintf(out, outlen, "%s", v->valuestring);
}

static void put_money(struct buf *b, const char *metric, long c)
{
	buf_printf(b, "\"%s\":{\"Amount\":\"%ld.%02ld\",\"Unit\":\"USD\"}", metric, c / 100, c % 100);
}

/* GetCostAndUsage: DAILY results for the requested days, a page of F.page_days at a time. */
static void answer_cost_and_usage(const cJSON *req, const struct rec *r, struct buf *out)
{
	const cJSON *gb = cJSON_GetObjectItemCaseSensitive(req, "GroupBy");
	bool tags = strncmp(r->group0, "TAG:", 4) == 0;
	bool amortized = strcmp(r->metric, "AmortizedCost") == 0;
	long from = r->token[0] ? strtol(r->token + strlen("page-"), NULL, 10) : r->start;
	long stop = r->end;
	if (F.page_days > 0 && from + F.page_days < r->end)
		stop = from + F.page_days;
	buf_puts(out, "{\"GroupDefinitions\":[],\"ResultsByTime\":[");
	for (long d = from; d < stop; d++) {
		char s[11], e[11];
		days_format(d, s);
		days_format(d + 1, e);
		buf_printf(out, "%s{\"TimePeriod\":{\"Start\":\"%s\",\"End\":\"%s\"},"
			   "\"Total\":{},\"Groups\":[", d > from ? "," : "", s, e);
		size_t n = tags ? NCOMBOS : NMODELS;
		for (size_t c = 0; c < n; c++) {
			buf_puts(out, c ? ",{\"Keys\":[" : "{\"Keys\":[");
			for (int k = 0; k < r->ngroups; k++) {
				const cJSON *key =
					cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(gb, k), "Key");
				if (tags)
					buf_printf(out, "%s\"%s$%s\"", k ? "," : "", key->valuestring,
						   tag_of(c, key->valuestring));
				else
					buf_printf(out, "%s\"%s\"", k ? "," : "",
						   k == 0 ? models[c].service : models[c].usage);
			}
			buf_puts(out, "],\"Metrics\":{");
			put_money(out, r->metric, tags ? cents(c, d, F.bump_cents, amortized)
						       : model_cents(c, d, F.bump_cents, amortized));
			buf_puts(out, "}}");
		}
		buf_printf(out, "],\"Estimated\":%s}", is_estimated(d) ? "true" : "false");
	}
	buf_puts(out, "]");
	if (stop < r->end)
		buf_printf(out, ",\"NextPageToken\":\"page-%ld\"", stop);
	buf_puts(out, ",\"DimensionValueAttributes\":[]}");
}

static const char projects_page[] =
	"{\"object\":\"list\",\"data\":["
	"{\"id\":\"proj_chat\",\"object\":\"organization.project\",\"name\":\"Chatbot-Prod\","
	"\"arn\":\"arn:aws:bedrock:us-east-1:123456789012:project/proj_chat\",\"status\":\"active\","
	"\"created_at\":1760000000,\"tags\":{\"Application\":\"Chatbot\",\"Environment\":\"Prod\","
	"\"Team\":\"Support\"}},"
	"{\"id\":\"proj_search\",\"object\":\"organization.project\",\"name\":\"Search-Dev\","
	"\"arn\":\"arn:aws:bedrock:us-east-1:123456789012:project/proj_search\",\"status\":\"active\","
	"\"created_at\":1760000100,\"tags\":{\"Application\":\"Search\",\"Environment\":\"Dev\","
	"\"Team\":\"Data\"}}],"
	"\"first_id\":\"proj_chat\",\"last_id\":\"proj_search\",\"has_more\":false}";

static int fake(void *arg, const struct hc_req *req, long *status, struct buf *out)
{
	(void)arg;
	if (F.n >= MAX_RECS)
		return -EIO;
	struct rec *r = &F.r[F.n++];
	memset(r, 0, sizeof(*r));
	r->start = r->end = -1;
	snprintf(r->url, sizeof(r->url), "%s", req->url);
	const char *target = header(req, "X-Amz-Target");
	if (!target) {
		bool listing = strstr(req->url, "/organization/projects") != NULL;
		snprintf(r->op, sizeof(r->op), "%s", listing ? "ListProjects" : "?");
		*status = listing ? 200 : 404;
		buf_puts(out, listing ? projects_page : "{}");
		return 0;
	}
	const char *prefix = "AWSInsightsIndexService.";
	snprintf(r->op, sizeof(r->op), "%s",
		 strncmp(target, prefix, strlen(prefix)) == 0 ? target + strlen(prefix) : "?");

	cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
	const cJSON *tp = cJSON_GetObjectItemCaseSensitive(body, "TimePeriod");
	r->start = json_day(tp, "Start");
	r->end = json_day(tp, "End");
	copy_str(r->token, sizeof(r->token), cJSON_GetObjectItemCaseSensitive(body, "NextPageToken"));
	copy_str(r->token, sizeof(r->token), cJSON_GetObjectItemCaseSensitive(body, "NextToken"));
	const cJSON *gb = cJSON_GetObjectItemCaseSensitive(body, "GroupBy");
	r->ngroups = cJSON_GetArraySize(gb);
	if (r->ngroups) {
		const cJSON *g = cJSON_GetArrayItem(gb, 0);
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(g, "Type");
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(g, "Key");
		snprintf(r->group0, sizeof(r->group0), "%s:%s",
			 cJSON_IsString(type) ? type->valuestring : "?",
			 cJSON_IsString(key) ? key->valuestring : "?");
	}
	copy_str(r->metric, sizeof(r->metric),
		 cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "Metrics"), 0));
	copy_str(r->metric, sizeof(r->metric), cJSON_GetObjectItemCaseSensitive(body, "Metric"));
	const cJSON *filter = cJSON_GetObjectItemCaseSensitive(body, "Filter");
	r->nservices = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(filter, "Dimensions"), "Values"));
	copy_str(r->search, sizeof(r->search), cJSON_GetObjectItemCaseSensitive(body, "SearchString"));

	if (F.throttle) {
		if (F.throttle > 0)
			F.throttle--;
		*status = 400;
		buf_puts(out, "{\"__type\":\"com.amazonaws.ce#LimitExceededException\","
			      "\"Message\":\"Rate exceeded\"}");
	} else if (strcmp(r->op, "GetCostAndUsage") == 0) {
		*status = 200;
		answer_cost_and_usage(body, r, out);
	} else if (strcmp(r->op, "GetDimensionValues") == 0) {
		*status = 200;
		buf_puts(out, "{\"DimensionValues\":["
			      "{\"Value\":\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\",\"Attributes\":{}},"
			      "{\"Value\":\"Amazon Elastic Compute Cloud - Compute\",\"Attributes\":{}},"
			      "{\"Value\":\"Amazon Bedrock\",\"Attributes\":{}}],"
			      "\"ReturnSize\":3,\"TotalSize\":3}");
	} else if (strcmp(r->op, "GetCostForecast") == 0) {
		*status = 200;
		char s[11], e[11];
		days_format(r->start, s);
		days_format(r->end, e);
		buf_printf(out, "{\"Total\":{\"Amount\":\"300.00\",\"Unit\":\"USD\"},"
			   "\"ForecastResultsByTime\":[{\"TimePeriod\":{\"Start\":\"%s\",\"End\":\"%s\"},"
			   "\"MeanValue\":\"300.00\",\"PredictionIntervalLowerBound\":\"250.00\","
			   "\"PredictionIntervalUpperBound\":\"350.00\"}]}", s, e);
	} else if (strcmp(r->op, "ListCostAllocationTags") == 0) {
		*status = 200;
		buf_puts(out, "{\"CostAllocationTags\":["
			      "{\"TagKey\":\"Application\",\"Type\":\"UserDefined\",\"Status\":\"Active\"},"
			      "{\"TagKey\":\"Environment\",\"Type\":\"UserDefined\",\"Status\":\"Active\"},"
			      "{\"TagKey\":\"Team\",\"Type\":\"UserDefined\",\"Status\":\"Inactive\"}]}");
	} else {
		*status = 400;
		buf_puts(out, "{\"__type\":\"com.amazonaws.ce#ValidationException\",\"Message\":\"?\"}");
	}
	cJSON_Delete(body);
	return 0;
}

static int count_op(const char *op, int from)
{
	int n = 0;
	for (int i = from; i < F.n; i++)
		n += strcmp(F.r[i].op, op) == 0;
	return n;
}

/* ---- the harness: one source_set, one client, one clock ---- */

static const struct source_def *const table[] = {
	&projects_source, &cost_explorer_source, &forecast_source, &allocation_tags_source, NULL,
};

struct h {
	struct conf *conf;
	struct source_set set;
	bool started;
	struct hc *hc;
	struct hc_opts opts;
	struct aws_provider *creds;
	double now;
};

/* 2026-11-26 12:00:00 UTC */
static long T;      /* its day */
static double T0;

static int no_wait(void *arg, double seconds)
{
	(void)arg;
	(void)seconds;
	F.waits++;
	return 0;
}

static struct conf *conf_with(const char *projects_extra, const char *ce_extra)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "projects: { endpoint = \"http://127.0.0.1:9/v1\"; %s };\n"
		 "cost_explorer: { endpoint = \"http://127.0.0.1:9\"; settle_days = 3; %s };\n"
		 "state_file = \"\";\n",
		 projects_extra, ce_extra);
	struct textlist errors = { 0 };
	struct conf *c = conf_parse_string("t.conf", text, &errors);
	for (size_t i = 0; i < errors.n; i++)
		print_error("%s\n", errors.v[i]);
	textlist_free(&errors);
	assert_non_null(c);
	return c;
}

static int group_setup(void **state)
{
	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_ROLE_ARN");
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	setenv("BEDROCK_API_KEY", "bedrock-api-key-for-tests", 1);
	log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT);
	T = days_from_civil(2026, 11, 26);
	T0 = days_start_time(T) + 12 * 3600;
	return 0;
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	struct h *h = xcalloc(1, sizeof(*h));
	h->hc = hc_new_fake(fake, NULL);
	h->opts = (struct hc_opts){ .connect_timeout = 1, .request_timeout = 1, .max_retries = 0,
				    .retry_max_delay = 1, .max_body = 1 << 20, .wait = no_wait };
	h->creds = aws_provider_new();
	h->now = T0;
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct h *h = *state;
	if (h->started)
		source_set_free(&h->set);
	conf_free(h->conf);
	hc_free(h->hc);
	aws_provider_free(h->creds);
	free(h);
	return 0;
}

static void start(struct h *h, struct conf *c)
{
	h->conf = c;
	source_set_init(&h->set, table, c);
	h->started = true;
}

static struct source *row(struct h *h, const struct source_def *def)
{
	for (size_t i = 0; i < h->set.n; i++)
		if (h->set.v[i].def == def)
			return &h->set.v[i];
	fail_msg("source %s is not in the set", def->name);
	return NULL;
}

static int run(struct h *h, const struct source_def *def, char *err, size_t errlen)
{
	struct source_ctx x = { .conf = h->conf, .now = h->now, .hc = h->hc, .http = &h->opts,
				.creds = h->creds, .set = &h->set };
	err[0] = '\0';
	return def->refresh(row(h, def)->priv, &x, err, errlen);
}

/* Swaps in configuration @c as a reload does; returns what the source's reconfigure said. */
static bool reload(struct h *h, struct conf *c)
{
	bool requery = cost_explorer_source.reconfigure(row(h, &cost_explorer_source)->priv, h->conf, c);
	conf_free(h->conf);
	h->conf = c;
	return requery;
}

static struct state *ce(struct h *h)
{
	return source_peer(&h->set, &cost_explorer_source);
}

static long remaining(struct h *h)
{
	return ce_meter_remaining(cost_explorer_meter(ce(h)), h->conf->ce_max_requests_per_day, h->now);
}

/* The amount of the group (@k0, @k1) on @day of @s, or NaN. @k1 NULL: a one-key group. */
static double amount(const struct ce_series *s, long day, const char *k0, const char *k1)
{
	const struct ce_day *d = ce_series_find(s, day);
	for (size_t i = 0; d && i < d->n; i++) {
		const struct ce_group *g = &d->g[i];
		if (g->k[0] && strcmp(g->k[0], k0) == 0 &&
		    (k1 ? g->k[1] && strcmp(g->k[1], k1) == 0 : g->k[1] == NULL))
			return g->amount;
	}
	return NAN;
}

#define assert_near(a, b)                                                                       \
	do {                                                                                    \
		double a_ = (a), b_ = (b);                                                      \
		if (!(fabs(a_ - b_) < 1e-6))                                                    \
			fail_msg("%s = %.10g, expected %.10g", #a, a_, b_);                     \
	} while (0)

#define assert_contains(hay, needle)                                                           \
	do {                                                                                    \
		if (!strstr((hay), (needle)))                                                   \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));            \
	} while (0)

static void assert_request(int i, const char *op, long start, long end, const char *group0,
			   const char *token)
{
	assert_true(i < F.n);
	const struct rec *r = &F.r[i];
	char s[11] = "-", e[11] = "-", ws[11], we[11];
	if (r->start > 0)
		days_format(r->start, s);
	if (r->end > 0)
		days_format(r->end, e);
	days_format(start, ws);
	days_format(end, we);
	if (strcmp(r->op, op) != 0 || r->start != start || r->end != end ||
	    strcmp(r->group0, group0) != 0 || strcmp(r->token, token) != 0)
		fail_msg("request %d: %s [%s, %s) %s token \"%s\"; expected %s [%s, %s) %s token \"%s\"",
			 i, r->op, s, e, r->group0, r->token, op, ws, we, group0, token);
}

#define SERVICES "services = [\"Amazon Bedrock\"];"
#define TAGQ "TAG:Application"
#define DIMQ "DIMENSION:SERVICE"

/* ---- 1. the ceiling is never exceeded ---- */

/* Pages count: a query that needs more pages than the ceiling allows stops at the ceiling,
 * and nothing more is sent that day by any of the three Cost Explorer sources. */
static void test_ceiling_stops_pagination(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 5; " SERVICES));
	long ws, we;
	days_query_window(T, &ws, &we);
	F.page_days = 5; /* 57 days: 12 pages */

	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 5);
	for (int i = 0; i < 5; i++) {
		char tok[32] = "";
		if (i)
			snprintf(tok, sizeof(tok), "page-%ld", ws + 5 * i);
		assert_request(i, "GetCostAndUsage", ws, we, TAGQ, tok);
	}
	assert_contains(err, "max_requests_per_day");
	assert_int_equal(remaining(h), 0);
	assert_int_equal((long)ce(h)->meter.billable_total, 5);
	assert_int_equal(ce(h)->spend.n, 0); /* nothing half-read is kept */

	/* later that day: every Cost Explorer source refuses before sending */
	h->now = T0 + 3 * 3600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "skipped");
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "skipped");
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "skipped");
	h->now = days_start_time(T + 1) - 1; /* 23:59:59 */
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 5);
	assert_int_equal(remaining(h), 0);

	/* the next UTC day the meter starts again */
	h->now = days_start_time(T + 1);
	assert_int_equal(remaining(h), 5);
	F.page_days = 0;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	days_query_window(T + 1, &ws, &we);
	assert_request(5, "GetCostAndUsage", ws, we, TAGQ, "");
	assert_request(6, "GetCostAndUsage", days_month_start(T + 1), we, DIMQ, "");
	assert_int_equal(remaining(h), 3);
	assert_int_equal((long)ce(h)->meter.billable_total, 7);
	assert_int_equal(ce(h)->spend.n, (size_t)(we - ws));
}

/* Retries are attempts: a throttled answer retried costs two requests, and retries stop at
 * the ceiling however many hc_opts.max_retries allows. */
static void test_ceiling_counts_retries(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 10; " SERVICES));
	long ws, we;
	days_query_window(T, &ws, &we);
	double retries0 = apistats_retries(OP_CE_GET_COST_AND_USAGE);
	double throttled0 = apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_THROTTLED);
	h->opts.max_retries = 1;
	F.throttle = 1;

	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 3);
	assert_request(0, "GetCostAndUsage", ws, we, TAGQ, ""); /* throttled */
	assert_request(1, "GetCostAndUsage", ws, we, TAGQ, ""); /* the retry */
	assert_request(2, "GetCostAndUsage", days_month_start(T), we, DIMQ, "");
	assert_int_equal(F.waits, 1);
	assert_int_equal(remaining(h), 7);
	assert_int_equal((long)ce(h)->meter.billable_total, 3);
	assert_int_equal(ce(h)->costs_requests, 3);
	assert_near(apistats_retries(OP_CE_GET_COST_AND_USAGE) - retries0, 1);
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_THROTTLED) - throttled0, 1);

	/* throttled for good, retries allowed beyond the ceiling: the ceiling wins */
	h->now = T0 + 3600;
	h->opts.max_retries = 10;
	F.throttle = -1;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 10);
	for (int i = 3; i < 10; i++)
		assert_request(i, "GetCostAndUsage", T - 3, we, TAGQ, "");
	assert_int_equal(F.waits, 8);
	assert_int_equal(remaining(h), 0);
	assert_int_equal((long)ce(h)->meter.billable_total, 10);
	assert_contains(err, "ceiling");
}

/* ---- 2. a refresh that cannot finish is not started ---- */

static void test_skip_when_it_cannot_finish(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 8; " SERVICES));
	long ws, we;
	days_query_window(T, &ws, &we);
	F.page_days = 20; /* attribution: 57 days, 3 pages; models: 26 days, 2 pages */

	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_int_equal(count_op("GetCostAndUsage", 0), 5);
	assert_int_equal(ce(h)->costs_requests, 5);
	assert_int_equal(remaining(h), 3);
	size_t days = ce(h)->spend.n;
	assert_int_equal(days, (size_t)(we - ws));

	/* 3 left would do for the two incremental queries, but the last refresh took 5 */
	h->now = T0 + 3600;
	F.page_days = 0;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 5);
	assert_contains(err, "skipped");
	assert_contains(err, "3 of 8");
	assert_contains(err, "at least 5");
	assert_int_equal(remaining(h), 3);
	assert_int_equal(ce(h)->spend.n, days);

	/* the next day it runs, and learns that 2 requests do */
	h->now = T0 + 86400;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	assert_int_equal(ce(h)->costs_requests, 2);
	assert_int_equal(remaining(h), 6);
}

/* A refresh that must discover services first needs one request more. */
static void test_skip_counts_discovery(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 2;"));
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 0);
	assert_contains(err, "2 of 2");
	assert_contains(err, "at least 3");
	assert_int_equal(remaining(h), 2);

	/* with the services configured, 2 are enough */
	assert_true(reload(h, conf_with("", "max_requests_per_day = 2; " SERVICES)));
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 2);
	assert_int_equal(count_op("GetDimensionValues", 0), 0);
	assert_int_equal(remaining(h), 0);
}

/* A reload that changes only service_search makes discovery due again: the pre-check counts
 * it (3 requests, not 2) instead of running out of the ceiling part-way through the refresh. */
static void test_search_change_counts_discovery(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 7;"));
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 3); /* discovery + the two queries */
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5); /* incremental, no discovery within a day */
	assert_int_equal(remaining(h), 2);
	assert_true(reload(h, conf_with("", "max_requests_per_day = 7; service_search = \"Claude\";")));
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "at least 3");
	assert_int_equal(F.n, 5);
	assert_int_equal(remaining(h), 2);
}

/* ---- 3. incremental re-reads and discovery ---- */

static void test_incremental_rereads(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40;"));
	long ws, we;
	days_query_window(T, &ws, &we);
	assert_int_equal(ws, days_from_civil(2026, 10, 1));
	assert_int_equal(we, T + 1);

	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 3);
	assert_request(0, "GetDimensionValues", ws, we, "", "");
	assert_string_equal(F.r[0].search, "Bedrock");
	assert_request(1, "GetCostAndUsage", ws, we, TAGQ, "");
	assert_request(2, "GetCostAndUsage", days_month_start(T), we, DIMQ, "");
	assert_int_equal(F.r[1].ngroups, 2);
	assert_string_equal(F.r[1].metric, "UnblendedCost");
	/* discovery keeps the names that contain "Bedrock", sorted, and filters on both */
	double at;
	const struct textlist *sv = cost_explorer_services(ce(h), &at);
	assert_int_equal(sv->n, 2);
	assert_string_equal(sv->v[0], "Amazon Bedrock");
	assert_string_equal(sv->v[1], "Claude Sonnet 4.5 (Amazon Bedrock Edition)");
	assert_near(at, T0);
	assert_int_equal(F.r[1].nservices, 2);
	assert_int_equal(F.r[2].nservices, 2);

	const struct ce_series *sp = cost_explorer_spend(ce(h));
	assert_int_equal(sp->n, (size_t)(we - ws));
	for (long d = ws; d < we; d++) {
		assert_near(amount(sp, d, "Chatbot", "Prod"), (double)cents(0, d, 0, false) / 100);
		assert_near(amount(sp, d, "", ""), (double)cents(2, d, 0, false) / 100);
	}

	/* every day final: the same day, only the last settle_days + today are asked again */
	F.bump_cents = 10000;
	h->now = T0 + 6 * 3600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_request(3, "GetCostAndUsage", T - 3, we, TAGQ, "");
	assert_request(4, "GetCostAndUsage", T - 3, we, DIMQ, "");
	sp = cost_explorer_spend(ce(h));
	assert_int_equal(sp->n, (size_t)(we - ws));
	for (long d = ws; d < we; d++) {
		long bump = d >= T - 3 ? 10000 : 0; /* settled days keep what was read first */
		assert_near(amount(sp, d, "Chatbot", "Prod"), (double)cents(0, d, bump, false) / 100);
		assert_near(amount(sp, d, "Search", "Dev"), (double)cents(1, d, bump, false) / 100);
		assert_false(ce_series_find(sp, d)->estimated);
	}
	assert_near(amount(&ce(h)->models, T - 4, models[1].service, models[1].usage),
		    (double)model_cents(1, T - 4, 0, false) / 100);
	assert_near(amount(&ce(h)->models, T - 3, models[1].service, models[1].usage),
		    (double)model_cents(1, T - 3, 10000, false) / 100);

	/* the next day, 23 h 59 min after discovery: no discovery, the window moves on */
	h->now = T0 + 86400 - 60;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	assert_request(5, "GetCostAndUsage", T + 1 - 3, T + 2, TAGQ, "");
	assert_request(6, "GetCostAndUsage", T + 1 - 3, T + 2, DIMQ, "");
	assert_int_equal(cost_explorer_spend(ce(h))->n, (size_t)(T + 2 - ws));
	/* 24 h after: discovery again, then the same incremental queries */
	h->now = T0 + 86400;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 10);
	assert_string_equal(F.r[7].op, "GetDimensionValues");
	assert_request(8, "GetCostAndUsage", T + 1 - 3, T + 2, TAGQ, "");
	assert_request(9, "GetCostAndUsage", T + 1 - 3, T + 2, DIMQ, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 2);
}

/* A day Cost Explorer still marks Estimated is where the next refresh starts, in each series. */
static void test_estimated_day_is_read_again(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40; " SERVICES));
	long ws, we, oct20 = days_from_civil(2026, 10, 20);
	days_query_window(T, &ws, &we);
	F.est_day[0] = oct20; /* in the attribution window only */
	F.est_day[1] = T - 10;

	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 2);
	const struct ce_series *sp = cost_explorer_spend(ce(h));
	assert_true(ce_series_find(sp, oct20)->estimated);
	assert_true(ce_series_find(sp, T - 10)->estimated);
	assert_false(ce_series_find(sp, T - 11)->estimated);

	/* both days final now, amounts revised */
	F.est_day[0] = F.est_day[1] = 0;
	F.bump_cents = 500;
	h->now = T0 + 3600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4);
	assert_request(2, "GetCostAndUsage", oct20, we, TAGQ, "");
	assert_request(3, "GetCostAndUsage", T - 10, we, DIMQ, "");
	sp = cost_explorer_spend(ce(h));
	assert_int_equal(sp->n, (size_t)(we - ws));
	assert_near(amount(sp, oct20 - 1, "Chatbot", "Prod"), (double)cents(0, oct20 - 1, 0, false) / 100);
	assert_near(amount(sp, oct20, "Chatbot", "Prod"), (double)cents(0, oct20, 500, false) / 100);
	assert_near(amount(sp, T - 10, "Chatbot", "Prod"), (double)cents(0, T - 10, 500, false) / 100);
	assert_false(ce_series_find(sp, oct20)->estimated);
	assert_false(ce_series_find(sp, T - 10)->estimated);
	assert_near(amount(&ce(h)->models, T - 11, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 11, 0, false) / 100);
	assert_near(amount(&ce(h)->models, T - 10, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 10, 500, false) / 100);

	/* everything settled: back to the last settle_days */
	h->now = T0 + 7200;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_request(4, "GetCostAndUsage", T - 3, we, TAGQ, "");
	assert_request(5, "GetCostAndUsage", T - 3, we, DIMQ, "");
}

/* Configured services: no discovery ever. On the 1st of a month the model query starts
 * yesterday (the previous month), and the windows move with the month. */
static void test_configured_services_and_month_start(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40; services = [\"Amazon Bedrock\", "
			       "\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\"];"));
	long dec1 = days_from_civil(2026, 12, 1);
	h->now = days_start_time(dec1) + 12 * 3600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 2);
	assert_request(0, "GetCostAndUsage", days_from_civil(2026, 11, 1), dec1 + 1, TAGQ, "");
	assert_request(1, "GetCostAndUsage", dec1 - 1, dec1 + 1, DIMQ, "");
	assert_int_equal(F.r[0].nservices, 2);

	h->now += 2 * 86400; /* Dec 3, past the daily discovery interval */
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4);
	assert_request(2, "GetCostAndUsage", dec1 + 2 - 3, dec1 + 3, TAGQ, "");
	assert_request(3, "GetCostAndUsage", dec1, dec1 + 3, DIMQ, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 0);
	double at;
	const struct textlist *sv = cost_explorer_services(ce(h), &at);
	assert_int_equal(sv->n, 2);
	assert_string_equal(sv->v[0], "Amazon Bedrock");
	/* the models cache dropped Nov 30, which left its window */
	assert_null(ce_series_find(&ce(h)->models, dec1 - 1));
	assert_non_null(ce_series_find(&ce(h)->models, dec1));
}

/* ---- 4. a changed query reads the whole window again ---- */

static void test_changed_query_reads_again(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40; " SERVICES));
	long ws, we;
	days_query_window(T, &ws, &we);
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	h->now += 600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4);
	assert_request(2, "GetCostAndUsage", T - 3, we, TAGQ, "");

	/* another attribution tag: the spend cache goes, the models cache stays */
	struct conf *team = conf_with("", "max_requests_per_day = 40; attribution_tags = [\"Team\"]; "
					  SERVICES);
	assert_true(cost_explorer_query_changed(h->conf, team));
	assert_true(reload(h, team));
	h->now += 600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_request(4, "GetCostAndUsage", ws, we, "TAG:Team", "");
	assert_int_equal(F.r[4].ngroups, 1);
	assert_request(5, "GetCostAndUsage", T - 3, we, DIMQ, "");
	const struct ce_series *sp = cost_explorer_spend(ce(h));
	assert_int_equal(sp->n, (size_t)(we - ws));
	for (size_t i = 0; i < sp->n; i++) {
		assert_int_equal(sp->days[i].n, NCOMBOS);
		for (size_t g = 0; g < sp->days[i].n; g++)
			assert_null(sp->days[i].g[g].k[1]); /* nothing left of the two-tag query */
	}
	assert_near(amount(sp, ws, "Support", NULL), (double)cents(0, ws, 0, false) / 100);
	assert_near(amount(sp, T, "", NULL), (double)cents(2, T, 0, false) / 100);

	/* another metric: both caches go */
	struct conf *amortized = conf_with("", "max_requests_per_day = 40; attribution_tags = "
					       "[\"Team\"]; cost_metric = \"AmortizedCost\"; " SERVICES);
	assert_true(cost_explorer_query_changed(h->conf, amortized));
	assert_true(reload(h, amortized));
	h->now += 600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 8);
	assert_request(6, "GetCostAndUsage", ws, we, "TAG:Team", "");
	assert_request(7, "GetCostAndUsage", days_month_start(T), we, DIMQ, "");
	assert_string_equal(F.r[6].metric, "AmortizedCost");
	assert_string_equal(F.r[7].metric, "AmortizedCost");
	sp = cost_explorer_spend(ce(h));
	assert_near(amount(sp, ws, "Support", NULL), (double)cents(0, ws, 0, true) / 100);
	assert_near(amount(&ce(h)->models, T - 10, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 10, 0, true) / 100);

	/* an unrelated change asks nothing new */
	struct conf *other = conf_with("refresh_interval = 600;",
				       "max_requests_per_day = 40; attribution_tags = [\"Team\"]; "
				       "cost_metric = \"AmortizedCost\"; " SERVICES);
	assert_false(cost_explorer_query_changed(h->conf, other));
	assert_false(reload(h, other));
	h->now += 600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 10);
	assert_request(8, "GetCostAndUsage", T - 3, we, "TAG:Team", "");
	assert_request(9, "GetCostAndUsage", T - 3, we, DIMQ, "");

	/* the services filter is part of the query too; the ceiling is not */
	struct conf *svc = conf_with("refresh_interval = 600;",
				     "max_requests_per_day = 40; attribution_tags = [\"Team\"]; "
				     "cost_metric = \"AmortizedCost\"; services = [\"Amazon Bedrock\", "
				     "\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\"];");
	struct conf *ceiling = conf_with("refresh_interval = 600;",
					 "max_requests_per_day = 41; attribution_tags = [\"Team\"]; "
					 "cost_metric = \"AmortizedCost\"; " SERVICES);
	assert_true(cost_explorer_query_changed(h->conf, svc));
	assert_false(cost_explorer_query_changed(h->conf, ceiling));
	conf_free(svc);
	conf_free(ceiling);
}

/* ---- 5. forecast and allocation_tags pay from the same meter ---- */

static void test_shared_meter(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 10; " SERVICES));
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(remaining(h), 8);

	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 3);
	assert_request(2, "GetCostForecast", T, days_next_month(T), "", "");
	assert_string_equal(F.r[2].metric, "UNBLENDED_COST");
	assert_int_equal(remaining(h), 7);

	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4);
	assert_string_equal(F.r[3].op, "ListCostAllocationTags");
	assert_int_equal(remaining(h), 6);
	assert_int_equal((long)ce(h)->meter.billable_total, 4);

	/* a throttled forecast retried costs two */
	h->opts.max_retries = 1;
	F.throttle = 1;
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(count_op("GetCostForecast", 0), 3);
	assert_int_equal(remaining(h), 4);

	/* spend what is left: then nobody sends */
	h->now += 600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0); /* needs 2 */
	assert_int_equal(remaining(h), 2);
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(remaining(h), 0);
	int sent = F.n;
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, sent);
	assert_int_equal(sent, 10);
	assert_int_equal((long)ce(h)->meter.billable_total, 10);
}

/* ---- 6. the families ---- */

/* The value of the sample written exactly as @series ("name{labels}"), or NaN. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

/* Renders what @def collects at wall time @now. Caller frees. */
static char *collect_text(struct h *h, const struct source_def *def, double now)
{
	struct source_health health = { .up = true, .has_data = true, .last_success = h->now };
	struct collect_ctx x = { .conf = h->conf, .now = now, .set = &h->set, .health = &health };
	struct reg *r = reg_new();
	def->collect(row(h, def)->priv, &x, r);
	struct buf out;
	buf_init(&out, 16 << 20);
	assert_int_equal(reg_render(r, &out, NULL), 0);
	reg_free(r);
	return buf_steal(&out, NULL);
}

static void test_families(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 10; request_price_usd = 0.01; " SERVICES));

	/* the project catalog, listed through the same client: not a Cost Explorer request */
	assert_int_equal(run(h, &projects_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 1);
	assert_string_equal(F.r[0].op, "ListProjects");
	assert_contains(F.r[0].url, "http://127.0.0.1:9/v1/organization/projects?limit=");
	assert_int_equal(remaining(h), 10);

	h->opts.max_retries = 1;
	F.throttle = 1; /* 3 billable requests */
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4);

	char *text = collect_text(h, &cost_explorer_source, h->now);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today"), 7);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total"), 3);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_spend_usd_total"), 0.03);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_max_requests_per_day"), 10);
	assert_contains(text, "# TYPE bedrock_cost_exporter_cost_explorer_billable_requests_total counter");

	assert_near(sample(text, "bedrock_cost_project_today_usd{project_id=\"proj_chat\"}"),
		    (double)cents(0, T, 0, false) / 100);
	assert_near(sample(text, "bedrock_cost_project_yesterday_usd{project_id=\"proj_chat\"}"),
		    (double)cents(0, T - 1, 0, false) / 100);
	assert_near(sample(text, "bedrock_cost_project_yesterday_usd{project_id=\"proj_search\"}"),
		    (double)cents(1, T - 1, 0, false) / 100);
	assert_near(sample(text, "bedrock_cost_project_yesterday_usd{project_id=\"__untagged__\"}"),
		    (double)cents(2, T - 1, 0, false) / 100);
	long mtd = 0, prev = 0;
	for (long d = days_month_start(T); d <= T; d++)
		mtd += cents(0, d, 0, false);
	for (long d = days_prev_month(T); d < days_month_start(T); d++)
		prev += cents(0, d, 0, false);
	assert_near(sample(text, "bedrock_cost_project_month_to_date_usd{project_id=\"proj_chat\"}"),
		    (double)mtd / 100);
	assert_near(sample(text, "bedrock_cost_project_previous_month_usd{project_id=\"proj_chat\"}"),
		    (double)prev / 100);
	free(text);

	/* rendered after midnight UTC without a refresh: a new day's allowance, same counters */
	text = collect_text(h, &cost_explorer_source, days_start_time(T + 1) + 60);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today"), 10);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total"), 3);
	free(text);

	/* a refresh that day: today's count starts at 0, the counters keep counting */
	h->now = days_start_time(T + 1) + 3600;
	assert_int_equal(run(h, &cost_explorer_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	text = collect_text(h, &cost_explorer_source, h->now);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today"), 8);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total"), 5);
	assert_near(sample(text, "bedrock_cost_exporter_cost_explorer_spend_usd_total"), 0.05);
	/* yesterday is now the 26th, as read the day before */
	assert_near(sample(text, "bedrock_cost_project_yesterday_usd{project_id=\"proj_chat\"}"),
		    (double)cents(0, T, 0, false) / 100);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ceiling_stops_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ceiling_counts_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip_when_it_cannot_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip_counts_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_change_counts_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_rereads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_estimated_day_is_read_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configured_services_and_month_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_query_reads_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_meter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_families, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
