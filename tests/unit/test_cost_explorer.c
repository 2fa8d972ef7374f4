/*
 * Unit tests for sources/cost_explorer.c: the source "cost_explorer" driven through its
 * table row (create, refresh, reconfigure, save, restore, collect, destroy), with the
 * projects, forecast and allocation_tags sources beside it in one source_set, as the engine
 * runs them.
 *
 * The query plan under test (the comment at the top of cost_explorer.c):
 *
 *   discovery  GetDimensionValues(SERVICE, "Bedrock")  once a day, unless services are set
 *   daily      DAILY   [today-1, today+1)               every refresh
 *   baseline   MONTHLY [today-8, today-1)               once a UTC day
 *   month      MONTHLY [month start, today+1)           every refresh
 *   previous   MONTHLY [previous month)                 once a day until final
 *   models     DAILY, SERVICE x USAGE_TYPE, from the first day that can still change
 *
 * The HTTP client is hc_new_fake(): admission (the daily ceiling), apistats, classification
 * and retries are the real ones, only the transfer is this file's fake Cost Explorer. It
 * answers in the wire shapes of product.md and tests/fake_aws/ from a small in-memory
 * ledger (days x tag combinations, days x SERVICE/USAGE_TYPE), DAILY or MONTHLY (one period
 * per calendar month touched, clipped to the TimePeriod), paginates by a number of groups
 * when told to (a period may continue on the next page, as AWS does), can be told never to
 * stop paginating, to loop on one token, to refuse tokens or to answer garbage for them, and
 * records every request it sees (operation from X-Amz-Target, Granularity, TimePeriod,
 * NextPageToken, GroupBy, Metrics, the SERVICE filter).
 *
 * Every expected amount is computed from the ledger, never from what the source read. The
 * wall clock is the test's (struct source_ctx.now); retries wait through hc_opts.wait, which
 * returns at once. No network, no sleep. Credentials come from the environment.
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

/* Spend by attribution tags: one row per tag combination, amounts in cents a day. */
static const struct {
	const char *app, *env, *team;
	long base_cents;
} combos[] = {
	{ "Chatbot", "Prod", "Support", 1200 }, /* project proj_chat */
	{ "Search", "Dev", "Data", 345 },       /* project proj_search */
	{ "", "", "", 77 },                      /* untagged */
	{ "Batch", "Prod", "Ops", 50 },          /* no project has these tags: unmatched */
};
#define NCOMBOS (sizeof(combos) / sizeof(combos[0]))

/* The exported project rows and the combination each one carries (projects listed). */
static const struct {
	const char *id;
	size_t combo;
} rows_of[] = {
	{ "proj_chat", 0 },
	{ "proj_search", 1 },
	{ ATTR_UNTAGGED, 2 },
	{ ATTR_UNMATCHED, 3 },
};
#define NROWS (sizeof(rows_of) / sizeof(rows_of[0]))

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

#define MAX_RECS 512

/* One request the fake saw. */
struct rec {
	char op[48];      /* X-Amz-Target's operation, "ListProjects", or "?" */
	char gran[16];    /* Granularity (GetCostAndUsage) */
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
	size_t tag_page;    /* > 0: a page grouped by tags holds at most this many groups */
	size_t model_page;  /* > 0: the same for the SERVICE x USAGE_TYPE query */
	const char *endless;/* pagination of this Granularity ("*": any) never ends: after the
			     * last page, empty pages with a fresh token each; NULL: it ends */
	bool loop;          /* the next-page token is always "loop" */
	bool reject_tokens; /* a page asked with a token: 400 InvalidNextTokenException */
	bool garble_tokens; /* a page asked with a token: a malformed answer */
	int throttle;       /* the next N Cost Explorer attempts are throttled; -1: all of them */
	long bump_cents;    /* added to every amount from now on */
	long est_day[2];    /* days answered Estimated=true; 0 = none */
	int waits;          /* hc_opts.wait calls (retry backoffs) */
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

/* The ledger's spend of combination @c over days [from, to), USD (no bump). */
static double ledger(size_t c, long from, long to)
{
	long v = 0;
	for (long d = from; d < to; d++)
		v += cents(c, d, 0, false);
	return (double)v / 100;
}

/* The same over every combination. */
static double ledger_all(long from, long to)
{
	double v = 0;
	for (size_t c = 0; c < NCOMBOS; c++)
		v += ledger(c, from, to);
	return v;
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

/*
 * GetCostAndUsage. The periods: each day (DAILY) or each calendar month touched, clipped to
 * the TimePeriod (MONTHLY); each period holds every group of the ledger. A page holds the
 * groups [from, stop) of that flat list (period by period); its token "g-<stop>" says where
 * the next page starts, so a period may continue on the next page.
 */
static void answer_cost_and_usage(const cJSON *req, const struct rec *r, struct buf *out)
{
	const cJSON *gb = cJSON_GetObjectItemCaseSensitive(req, "GroupBy");
	bool tags = strncmp(r->group0, "TAG:", 4) == 0;
	bool amortized = strcmp(r->metric, "AmortizedCost") == 0;
	bool monthly = strcmp(r->gran, "MONTHLY") == 0;
	long ps[128], pe[128];
	size_t np = 0;
	for (long s = r->start; s < r->end && np < 128;) {
		long e = monthly ? days_next_month(s) : s + 1;
		if (e > r->end)
			e = r->end;
		ps[np] = s;
		pe[np++] = e;
		s = e;
	}
	size_t ng = tags ? NCOMBOS : NMODELS, total = np * ng;
	size_t page = tags ? F.tag_page : F.model_page;
	bool looping = strcmp(r->token, "loop") == 0;
	size_t from = r->token[0] && !looping ? strtoul(r->token + 2, NULL, 10) : 0;
	size_t stop = looping || from >= total ? from : page && from + page < total ? from + page : total;
	if (looping)
		from = stop = total; /* an empty page */
	buf_puts(out, "{\"GroupDefinitions\":[],\"ResultsByTime\":[");
	size_t open = SIZE_MAX;
	for (size_t i = from; i < stop; i++) {
		size_t p = i / ng, c = i % ng;
		if (p != open) {
			bool est = false;
			for (long d = ps[p]; d < pe[p]; d++)
				est = est || is_estimated(d);
			char s[11], e[11];
			days_format(ps[p], s);
			days_format(pe[p], e);
			buf_printf(out, "%s{\"TimePeriod\":{\"Start\":\"%s\",\"End\":\"%s\"},\"Total\":{},"
				   "\"Estimated\":%s,\"Groups\":[",
				   open == SIZE_MAX ? "" : "]},", s, e, est ? "true" : "false");
			open = p;
		} else {
			buf_putc(out, ',');
		}
		buf_puts(out, "{\"Keys\":[");
		for (int k = 0; k < r->ngroups; k++) {
			const cJSON *key = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(gb, k), "Key");
			if (tags)
				buf_printf(out, "%s\"%s$%s\"", k ? "," : "", key->valuestring,
					   tag_of(c, key->valuestring));
			else
				buf_printf(out, "%s\"%s\"", k ? "," : "",
					   k == 0 ? models[c].service : models[c].usage);
		}
		buf_puts(out, "],\"Metrics\":{");
		long v = 0;
		for (long d = ps[p]; d < pe[p]; d++)
			v += tags ? cents(c, d, F.bump_cents, amortized)
				  : model_cents(c, d, F.bump_cents, amortized);
		put_money(out, r->metric, v);
		buf_puts(out, "}}");
	}
	buf_puts(out, open == SIZE_MAX ? "]" : "]}]");
	if (F.loop)
		buf_puts(out, ",\"NextPageToken\":\"loop\"");
	else if (stop < total ||
		 (F.endless && (strcmp(F.endless, "*") == 0 || strcmp(F.endless, r->gran) == 0)))
		buf_printf(out, ",\"NextPageToken\":\"g-%zu\"", stop > from ? stop : from + 1);
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
	copy_str(r->gran, sizeof(r->gran), cJSON_GetObjectItemCaseSensitive(body, "Granularity"));
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
	} else if (r->token[0] && F.reject_tokens) {
		*status = 400;
		buf_puts(out, "{\"__type\":\"com.amazonaws.ce#InvalidNextTokenException\","
			      "\"Message\":\"The token has expired\"}");
	} else if (r->token[0] && F.garble_tokens) {
		*status = 200;
		buf_puts(out, "{\"ResultsByTime\":[{\"TimePeriod\":\"tomorrow\"}]}");
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

/* 2026-11-26 12:00:00 UTC, its day, and the first days of its month, the previous one and
 * the next one. */
static long T, NOV1, OCT1, DEC1;
static double T0;

static int no_wait(void *arg, double seconds)
{
	(void)arg;
	(void)seconds;
	F.waits++;
	return 0;
}

/* The cloudwatch group of conf_with: off, unless a test is about what it changes. */
static const char *cw_group = "cloudwatch: { enabled = false; };";

static struct conf *conf_with(const char *projects_extra, const char *ce_extra)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "projects: { endpoint = \"http://127.0.0.1:9/v1\"; %s };\n"
		 "cost_explorer: { endpoint = \"http://127.0.0.1:9\"; settle_days = 3; %s };\n"
		 "%s\nstate_file = \"\";\n",
		 projects_extra, ce_extra, cw_group);
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
	NOV1 = days_from_civil(2026, 11, 1);
	OCT1 = days_from_civil(2026, 10, 1);
	DEC1 = days_from_civil(2026, 12, 1);
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

/* A refresh of the cost_explorer source. */
static int run_ce(struct h *h, char *err, size_t errlen)
{
	return run(h, &cost_explorer_source, err, errlen);
}

/* Lists the projects (not a Cost Explorer request), so that spend maps to project rows. */
static void list_projects(struct h *h)
{
	char err[512];
	int before = F.n;
	assert_int_equal(run(h, &projects_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, before + 1);
	assert_string_equal(F.r[before].op, "ListProjects");
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

/*
 * A restart: the source's part of the state file is written (save, into one JSON object as
 * the state file core does), read back with jsontape, and restored into a new private state
 * that replaces the old one. Returns the saved text (caller frees); *@restored says whether
 * the restored source has data to serve.
 */
static char *save_restore(struct h *h, bool *restored)
{
	struct source *sr = row(h, &cost_explorer_source);
	struct jsonw w;
	jsonw_init(&w, 64 << 20);
	jsonw_object_begin(&w);
	cost_explorer_source.save(sr->priv, &w);
	jsonw_object_end(&w);
	size_t len = 0;
	char *text = jsonw_steal(&w, &len);
	assert_non_null(text);
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, text, len), 0);
	struct source_restored out = { 0 };
	char err[512] = "";
	void *priv = cost_explorer_source.restore(&t, 0, h->conf, h->now, &out, err, sizeof(err));
	jsontape_free(&t);
	if (!priv)
		fail_msg("restore failed: %s", err);
	cost_explorer_source.destroy(sr->priv);
	sr->priv = priv;
	if (restored)
		*restored = out.has_data;
	return text;
}

/* The amount of the group (@k0, @k1) in the period starting @day of @s, or NaN. @k1 NULL: a
 * one-key group. */
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

#define assert_lacks(hay, needle)                                                              \
	do {                                                                                    \
		if (strstr((hay), (needle)))                                                    \
			fail_msg("\"%.300s...\" contains \"%s\"", (hay), (needle));             \
	} while (0)

/* Request @i was @op over [@start, @end) at @gran ("" when the operation has none), grouped
 * first by @group0, with NextPageToken @token ("" on a first page). */
static void assert_req(int i, const char *op, const char *gran, long start, long end,
		       const char *group0, const char *token)
{
	if (i >= F.n)
		fail_msg("request %d expected, only %d were sent", i, F.n);
	const struct rec *r = &F.r[i];
	char s[11] = "-", e[11] = "-", ws[11], we[11];
	if (r->start > 0)
		days_format(r->start, s);
	if (r->end > 0)
		days_format(r->end, e);
	days_format(start, ws);
	days_format(end, we);
	if (strcmp(r->op, op) != 0 || strcmp(r->gran, gran) != 0 || r->start != start ||
	    r->end != end || strcmp(r->group0, group0) != 0 || strcmp(r->token, token) != 0)
		fail_msg("request %d: %s %s [%s, %s) %s token \"%s\"; expected %s %s [%s, %s) %s "
			 "token \"%s\"", i, r->op, r->gran, s, e, r->group0, r->token, op, gran, ws, we,
			 group0, token);
}

#define SERVICES "services = [\"Amazon Bedrock\"];"
#define TAGQ "TAG:Application"
#define DIMQ "DIMENSION:SERVICE"
#define CAU "GetCostAndUsage"

/* The spend queries of day @d, written out from the plan (not from the source's code). */
static void assert_daily(int i, long d, const char *token)
{
	assert_req(i, CAU, "DAILY", d - 1, d + 1, TAGQ, token);
}

static void assert_baseline(int i, long d, const char *token)
{
	assert_req(i, CAU, "MONTHLY", d - 8, d - 1, TAGQ, token);
}

static void assert_month(int i, long d, const char *token)
{
	assert_req(i, CAU, "MONTHLY", days_month_start(d), d + 1, TAGQ, token);
}

static void assert_previous(int i, long d, const char *token)
{
	assert_req(i, CAU, "MONTHLY", days_prev_month(d), days_month_start(d), TAGQ, token);
}

static void assert_models(int i, long from, long d, const char *token)
{
	assert_req(i, CAU, "DAILY", from, d + 1, DIMQ, token);
}

/* ---- the exposition ---- */

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

/* The value of the first sample whose line starts with @prefix, or NaN. */
static double sample_prefix(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, n) == 0) {
			const char *v = strstr(p, "} ");
			return v ? strtod(v + 2, NULL) : NAN;
		}
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

static void expect_sample(const char *text, const char *series, double want)
{
	double got = sample(text, series);
	if (!(fabs(got - want) < 1e-6))
		fail_msg("%s = %.10g, expected %.10g", series, got, want);
}

/*
 * Window @w as rendered in @text: for each project row the ledger's spend over [from, to)
 * (the baseline: its daily mean over BASELINE_DAYS), and a window start of @from. @from < 0:
 * the window has no series at all (never read).
 */
static void expect_window(const char *text, enum window w, long from, long to)
{
	char name[256];
	const char *wn = days_window_name(w);
	if (from < 0) {
		snprintf(name, sizeof(name), "%s{", m_project_cost[w].name);
		assert_lacks(text, name);
		snprintf(name, sizeof(name), "bedrock_cost_window_start_timestamp_seconds{account_id=\"\",window=\"%s\"}",
			 wn);
		assert_lacks(text, name);
		return;
	}
	for (size_t i = 0; i < NROWS; i++) {
		double want = ledger(rows_of[i].combo, from, to);
		if (w == WIN_BASELINE)
			want /= BASELINE_DAYS;
		snprintf(name, sizeof(name), "%s{account_id=\"\",project_id=\"%s\"}", m_project_cost[w].name,
			 rows_of[i].id);
		expect_sample(text, name, want);
	}
	snprintf(name, sizeof(name), "bedrock_cost_window_start_timestamp_seconds{account_id=\"\",window=\"%s\"}", wn);
	expect_sample(text, name, days_start_time(from));
}

/* Every window of @today from the ledger; bit w of @present: window w is served. */
static void expect_windows(const char *text, long today, unsigned present)
{
	for (int w = 0; w < WIN_COUNT; w++) {
		long ws, we;
		days_window((enum window)w, today, &ws, &we);
		expect_window(text, (enum window)w, present & (1u << w) ? ws : -1, we);
	}
}

#define ALL_WINDOWS ((1u << WIN_COUNT) - 1)
#define BIT(w) (1u << (w))

/* ---- 1. the first fill ---- */

/* Discovery, then the spend queries in the plan's order at their granularities, every page of
 * each, then the per-model query; every window is the ledger's. */
static void test_first_fill(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40;"));
	list_projects(h);
	F.n = 0;
	F.tag_page = 3;   /* 4 groups a period: DAILY 2 days = 3 pages, a MONTHLY period 2 */
	F.model_page = 10; /* 26 days x 2 groups = 6 pages */

	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 1 + 3 + 2 + 2 + 2 + 6);
	assert_req(0, "GetDimensionValues", "", OCT1, T + 1, "", "");
	assert_string_equal(F.r[0].search, "Bedrock");
	/* daily: DAILY [Nov 25, Nov 27) */
	assert_req(1, CAU, "DAILY", days_from_civil(2026, 11, 25), days_from_civil(2026, 11, 27), TAGQ,
		   "");
	assert_req(2, CAU, "DAILY", T - 1, T + 1, TAGQ, "g-3");
	assert_req(3, CAU, "DAILY", T - 1, T + 1, TAGQ, "g-6");
	/* baseline: MONTHLY [Nov 18, Nov 25) */
	assert_req(4, CAU, "MONTHLY", days_from_civil(2026, 11, 18), days_from_civil(2026, 11, 25),
		   TAGQ, "");
	assert_req(5, CAU, "MONTHLY", T - 8, T - 1, TAGQ, "g-3");
	/* month: MONTHLY [Nov 1, Nov 27) */
	assert_req(6, CAU, "MONTHLY", NOV1, T + 1, TAGQ, "");
	assert_req(7, CAU, "MONTHLY", NOV1, T + 1, TAGQ, "g-3");
	/* previous: MONTHLY [Oct 1, Nov 1) */
	assert_req(8, CAU, "MONTHLY", OCT1, NOV1, TAGQ, "");
	assert_req(9, CAU, "MONTHLY", OCT1, NOV1, TAGQ, "g-3");
	/* models: DAILY by SERVICE x USAGE_TYPE [Nov 1, Nov 27) */
	for (int i = 0; i < 6; i++) {
		char tok[16] = "";
		if (i)
			snprintf(tok, sizeof(tok), "g-%d", 10 * i);
		assert_models(10 + i, NOV1, T, tok);
		assert_int_equal(F.r[10 + i].ngroups, 2);
	}
	for (int i = 1; i < F.n; i++) {
		assert_int_equal(F.r[i].nservices, 2);
		assert_string_equal(F.r[i].metric, "UnblendedCost");
		if (i < 10)
			assert_int_equal(F.r[i].ngroups, 2);
	}
	assert_int_equal(remaining(h), 40 - 16);
	assert_int_equal((long)ce(h)->meter.billable_total, 16);
	assert_near(ce(h)->acct[0].costs_at, T0);
	/* discovery keeps the names that contain "Bedrock", sorted */
	double at;
	const struct textlist *sv = cost_explorer_services(ce(h), &at);
	assert_int_equal(sv->n, 2);
	assert_string_equal(sv->v[0], "Amazon Bedrock");
	assert_string_equal(sv->v[1], "Claude Sonnet 4.5 (Amazon Bedrock Edition)");
	assert_near(at, T0);

	/* what each query holds: the periods Cost Explorer answered, pages merged */
	const struct ce_series *qb = &ce(h)->acct[0].q[Q_BASELINE].series, *qm = &ce(h)->acct[0].q[Q_MONTH].series;
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].series.n, 2);
	assert_int_equal(qb->n, 1);
	assert_int_equal(qb->days[0].day, T - 8);
	assert_int_equal(ce_day_end(&qb->days[0]), T - 1);
	assert_int_equal(qb->days[0].n, NCOMBOS);
	assert_int_equal(qm->n, 1);
	assert_int_equal(qm->days[0].n, NCOMBOS);
	assert_near(amount(qm, NOV1, "Chatbot", "Prod"), ledger(0, NOV1, T + 1));
	assert_near(amount(qm, NOV1, "", ""), ledger(2, NOV1, T + 1));
	for (int i = 0; i < Q_COUNT; i++) {
		/* the judged day is read only for the cloudwatch source (off here) */
		assert_int_equal(ce(h)->acct[0].q[i].day, i == Q_JUDGED ? 0 : T);
		assert_null(ce(h)->acct[0].q[i].pages.token);
		assert_int_equal(ce(h)->acct[0].q[i].partial.n, 0);
	}
	assert_near(amount(&ce(h)->acct[0].models, T - 4, models[1].service, models[1].usage),
		    (double)model_cents(1, T - 4, 0, false) / 100);

	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, ALL_WINDOWS);
	/* the windows one by one, written out */
	expect_sample(text, "bedrock_cost_project_today_usd{account_id=\"\",project_id=\"proj_chat\"}",
		      (double)cents(0, T, 0, false) / 100);
	expect_sample(text, "bedrock_cost_project_yesterday_usd{account_id=\"\",project_id=\"__untagged__\"}",
		      (double)cents(2, T - 1, 0, false) / 100);
	long base = 0;
	for (long d = T - 8; d < T - 1; d++)
		base += cents(1, d, 0, false);
	expect_sample(text, "bedrock_cost_project_baseline_daily_usd{account_id=\"\",project_id=\"proj_search\"}",
		      (double)base / 100 / 7);
	long mtd = 0, prev = 0;
	for (long d = NOV1; d <= T; d++)
		mtd += cents(0, d, 0, false);
	for (long d = OCT1; d < NOV1; d++)
		prev += cents(2, d, 0, false);
	expect_sample(text, "bedrock_cost_project_month_to_date_usd{account_id=\"\",project_id=\"proj_chat\"}",
		      (double)mtd / 100);
	expect_sample(text, "bedrock_cost_project_previous_month_usd{account_id=\"\",project_id=\"__untagged__\"}",
		      (double)prev / 100);
	/* tag families: a project's Team, and __untagged__ for untagged and unmatched spend */
	expect_sample(text, "bedrock_cost_tag_yesterday_usd{account_id=\"\",tag_key=\"Team\",tag_value=\"Support\"}",
		      ledger(0, T - 1, T));
	expect_sample(text,
		      "bedrock_cost_tag_month_to_date_usd{account_id=\"\",tag_key=\"Team\",tag_value=\"__untagged__\"}",
		      ledger(2, NOV1, T + 1) + ledger(3, NOV1, T + 1));
	/* today is always estimated; the others are final in this ledger */
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"today\"}", 1);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"baseline\"}", 0);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"month_to_date\"}", 0);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"previous_month\"}", 0);
	/* the per-model families, from the model query's pages */
	long model_mtd = 0;
	for (long d = NOV1; d <= T; d++)
		model_mtd += model_cents(1, d, 0, false);
	assert_near(sample_prefix(text, "bedrock_cost_model_month_to_date_usd{account_id=\"\",service=\"Claude Sonnet "
					"4.5 (Amazon Bedrock Edition)\",usage_type=\"USE1-MP:"
					"USE1_InputTokenCount-Units\","),
		    (double)model_mtd / 100);
	assert_near(sample_prefix(text, "bedrock_cost_model_yesterday_usd{account_id=\"\",service=\"Amazon Bedrock\","),
		    (double)model_cents(0, T - 1, 0, false) / 100);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total", 16);
	free(text);
}

/* ---- 2. what is read again, and when ---- */

/* The same day only daily, month and models (from today - settle_days); the next UTC day the
 * baseline too, and the previous month while it is not final; a final previous month is kept
 * for the rest of the month. */
static void test_rereads_by_day(void **state)
{
	struct h *h = *state;
	char err[512];
	start(h, conf_with("", "max_requests_per_day = 40; " SERVICES));
	list_projects(h);
	F.n = 0;

	/* Nov 26: the first fill; October was final long ago (read 25 days after its end) */
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_daily(0, T, "");
	assert_baseline(1, T, "");
	assert_month(2, T, "");
	assert_previous(3, T, "");
	assert_models(4, NOV1, T, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 0);

	/* 6 hours later: daily, month, and the models from today - settle_days */
	F.bump_cents = 10000;
	h->now = T0 + 6 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 8);
	assert_daily(5, T, "");
	assert_month(6, T, "");
	assert_models(7, T - 3, T, "");
	/* the models' settled days keep what was read first */
	assert_near(amount(&ce(h)->acct[0].models, T - 4, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 4, 0, false) / 100);
	assert_near(amount(&ce(h)->acct[0].models, T - 3, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 3, 10000, false) / 100);
	assert_int_equal(ce(h)->acct[0].models.n, (size_t)(T + 1 - NOV1));
	/* the baseline and the previous month were not asked again: as read first */
	assert_near(amount(&ce(h)->acct[0].q[Q_BASELINE].series, T - 8, "Chatbot", "Prod"),
		    ledger(0, T - 8, T - 1));
	assert_near(amount(&ce(h)->acct[0].q[Q_DAILY].series, T, "Chatbot", "Prod"),
		    (double)cents(0, T, 10000, false) / 100);
	F.bump_cents = 0;

	/* Nov 27: the baseline moves; October is final: not asked */
	h->now = T0 + 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 12);
	assert_daily(8, T + 1, "");
	assert_baseline(9, T + 1, "");
	assert_month(10, T + 1, "");
	assert_models(11, T + 1 - 3, T + 1, "");
	assert_int_equal(ce(h)->acct[0].q[Q_PREVIOUS].day, T);
	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T + 1, ALL_WINDOWS);
	free(text);

	/* Dec 2: a new month, a new previous month (November, not final yet) */
	long d2 = DEC1 + 1;
	h->now = days_start_time(d2) + 12 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 17);
	assert_daily(12, d2, "");
	assert_req(13, CAU, "MONTHLY", days_from_civil(2026, 11, 24), DEC1, TAGQ, "");
	assert_req(14, CAU, "MONTHLY", DEC1, d2 + 1, TAGQ, "");
	assert_req(15, CAU, "MONTHLY", NOV1, DEC1, TAGQ, "");
	assert_models(16, DEC1, d2, "");
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, d2, ALL_WINDOWS);
	free(text);

	/* Dec 3: the baseline spans two months (two MONTHLY periods); November is read again
	 * (read on Dec 2, less than settle_days after its end) */
	h->now += 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 22);
	assert_daily(17, d2 + 1, "");
	assert_req(18, CAU, "MONTHLY", days_from_civil(2026, 11, 25), d2, TAGQ, "");
	assert_month(19, d2 + 1, "");
	assert_previous(20, d2 + 1, "");
	assert_models(21, DEC1, d2 + 1, "");
	const struct ce_series *qb = &ce(h)->acct[0].q[Q_BASELINE].series;
	assert_int_equal(qb->n, 2);
	assert_int_equal(ce_day_end(&qb->days[0]), DEC1);
	assert_int_equal(qb->days[1].day, DEC1);
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, d2 + 1, ALL_WINDOWS);
	free(text);

	/* Dec 4: read once more, now settle_days after its end: final */
	h->now += 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 27);
	assert_daily(22, d2 + 2, "");
	assert_baseline(23, d2 + 2, "");
	assert_month(24, d2 + 2, "");
	assert_previous(25, d2 + 2, "");
	assert_models(26, DEC1, d2 + 2, "");

	/* Dec 5: November is kept; the models' settled days move on */
	h->now += 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 31);
	assert_daily(27, d2 + 3, "");
	assert_baseline(28, d2 + 3, "");
	assert_month(29, d2 + 3, "");
	assert_models(30, d2, d2 + 3, "");
	assert_int_equal(count_op(CAU, 0), 31);
	/* and later that day: daily, month, models */
	h->now += 6 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 34);
	assert_daily(31, d2 + 3, "");
	assert_month(32, d2 + 3, "");
	assert_models(33, d2 + 3 - 3, d2 + 3, "");
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, d2 + 3, ALL_WINDOWS);
	free(text);
	assert_int_equal(count_op("GetDimensionValues", 0), 0);
}

/* ---- 3. the ceiling: the fill goes on where it stopped ---- */

/* A fill cut short by the ceiling keeps its pages and its next token, in memory and across a
 * restart; raising the ceiling the same day goes on from that token. No page is asked twice:
 * the requests are the pages the answers need, plus the re-reads the plan makes at every
 * refresh (daily, month). */
static void test_ceiling_resumes(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 2; " SERVICES));
	list_projects(h);
	F.n = 0;
	F.tag_page = 3; /* daily: 3 pages; baseline, month, previous: 2 each; models: 1 */

	/* two of the daily query's three pages, then the ceiling */
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 2);
	assert_daily(0, T, "");
	assert_daily(1, T, "g-3");
	assert_int_equal(remaining(h), 0);
	assert_contains(err, "daily ceiling of 2 requests reached");
	assert_contains(err, "still to read: today and yesterday, baseline, month_to_date, "
			     "previous_month, the per-model spend");
	const struct query *qd = &ce(h)->acct[0].q[Q_DAILY];
	assert_string_equal(qd->pages.token, "g-6");
	assert_int_equal(qd->pages.pages, 2);
	assert_int_equal(qd->pages.per_page, 3);
	assert_int_equal(qd->partial_day, T);
	assert_int_equal(qd->day, 0);
	assert_int_equal(qd->partial.n, 2); /* Nov 25 whole, Nov 26 begun */
	assert_int_equal(qd->partial.days[0].n, NCOMBOS);
	assert_int_equal(qd->partial.days[1].n, 6 - NCOMBOS);
	assert_near(ce(h)->acct[0].costs_at, 0);
	/* nothing is served of a window not read */
	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, 0);
	free(text);

	/* a restart: the pages and the token survive it, and so does the day's count */
	bool has_data = true;
	text = save_restore(h, &has_data);
	assert_contains(text, "\"partial\":{\"day\":\"2026-11-26\",\"pages\":2,\"per_page\":3,"
			      "\"token\":\"g-6\"");
	free(text);
	assert_false(has_data);
	qd = &ce(h)->acct[0].q[Q_DAILY];
	assert_string_equal(qd->pages.token, "g-6");
	assert_int_equal(qd->pages.pages, 2);
	assert_int_equal(qd->partial_day, T);
	assert_int_equal(qd->partial.n, 2);
	assert_int_equal(qd->partial.days[1].n, 6 - NCOMBOS);
	assert_int_equal(remaining(h), 0);

	/* the ceiling raised by 6, the same day: the daily query goes on from its token */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 8; " SERVICES)));
	h->now = T0 + 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 8);
	assert_daily(2, T, "g-6"); /* the refresh's first request */
	assert_baseline(3, T, "");
	assert_baseline(4, T, "g-3");
	assert_month(5, T, "");
	assert_month(6, T, "g-3");
	assert_previous(7, T, "");
	assert_contains(err, "still to read: previous_month, the per-model spend");
	assert_lacks(err, "baseline");
	assert_int_equal(remaining(h), 0);
	/* the windows whose query completed are served, and equal the ledger */
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, ALL_WINDOWS & ~BIT(WIN_PREVIOUS_MONTH));
	free(text);
	assert_string_equal(ce(h)->acct[0].q[Q_PREVIOUS].pages.token, "g-3");

	/* another restart, then a ceiling that covers the rest */
	text = save_restore(h, NULL);
	assert_contains(text, "\"token\":\"g-3\"");
	free(text);
	/* the restored answers serve as before */
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, ALL_WINDOWS & ~BIT(WIN_PREVIOUS_MONTH));
	free(text);
	assert_int_equal(ce(h)->acct[0].q[Q_PREVIOUS].pages.pages, 1);
	assert_false(reload(h, conf_with("", "max_requests_per_day = 40; " SERVICES)));
	h->now = T0 + 1200;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 15);
	assert_daily(8, T, ""); /* read at every refresh */
	assert_daily(9, T, "g-3");
	assert_daily(10, T, "g-6");
	assert_month(11, T, ""); /* read at every refresh */
	assert_month(12, T, "g-3");
	assert_previous(13, T, "g-3"); /* goes on: its first page is not asked again */
	assert_models(14, NOV1, T, "");
	assert_int_equal(remaining(h), 40 - 15);
	assert_near(ce(h)->acct[0].costs_at, T0 + 1200);
	for (int i = 0; i < Q_COUNT; i++) {
		assert_null(ce(h)->acct[0].q[i].pages.token);
		assert_int_equal(ce(h)->acct[0].q[i].partial.n, 0);
	}
	/* pages the answers need: daily 3, baseline 2, month 2, previous 2, models 1 = 10;
	 * sent: 15 = those 10 + the daily (3) and month (2) queries read again by the plan */
	int fill = 0;
	for (int i = 0; i < F.n; i++)
		fill += i < 8 || i >= 13;
	assert_int_equal(fill, 3 + 2 + 2 + 2 + 1);
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, ALL_WINDOWS);
	free(text);
	bool again = false;
	free(save_restore(h, &again));
	assert_true(again); /* a complete fill restores as data to serve */
}

/* Retries are attempts: a throttled answer retried costs two requests, and retries stop at
 * the ceiling however many hc_opts.max_retries allows. */
static void test_ceiling_counts_retries(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 10; " SERVICES));
	double retries0 = apistats_retries(OP_CE_GET_COST_AND_USAGE);
	double throttled0 = apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_THROTTLED);
	h->opts.max_retries = 1;
	F.throttle = 1;

	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_daily(0, T, ""); /* throttled */
	assert_daily(1, T, ""); /* the retry */
	assert_baseline(2, T, "");
	assert_month(3, T, "");
	assert_previous(4, T, "");
	assert_models(5, NOV1, T, "");
	assert_int_equal(F.waits, 1);
	assert_int_equal(remaining(h), 4);
	assert_int_equal((long)ce(h)->meter.billable_total, 6);
	assert_near(apistats_retries(OP_CE_GET_COST_AND_USAGE) - retries0, 1);
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_THROTTLED) - throttled0, 1);

	/* throttled for good, retries allowed beyond the ceiling: the ceiling wins */
	h->now = T0 + 3600;
	h->opts.max_retries = 10;
	F.throttle = -1;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 10);
	for (int i = 6; i < 10; i++)
		assert_daily(i, T, "");
	assert_int_equal(F.waits, 5);
	assert_int_equal(remaining(h), 0);
	assert_int_equal((long)ce(h)->meter.billable_total, 10);
	assert_contains(err, "ceiling");
	assert_contains(err, "still to read: today and yesterday, month_to_date, the per-model spend");
	/* the answers read before still serve */
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].day, T);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].series.n, 2);
}

/* ---- 4. a partial fill of an earlier day ---- */

/* Pages of the baseline cut short on Nov 26 are of no use on Nov 27, whose baseline is
 * another week: the query starts over with the new window, in memory and after a restart. */
static void test_partial_of_earlier_day_dropped(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 4; " SERVICES));
	list_projects(h);
	F.n = 0;
	F.tag_page = 3;

	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 4);
	assert_daily(0, T, "");
	assert_daily(1, T, "g-3");
	assert_daily(2, T, "g-6");
	assert_baseline(3, T, "");
	assert_string_equal(ce(h)->acct[0].q[Q_BASELINE].pages.token, "g-3");
	assert_int_equal(ce(h)->acct[0].q[Q_BASELINE].partial_day, T);
	assert_contains(err, "still to read: baseline, month_to_date, previous_month, the per-model "
			     "spend");
	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, BIT(WIN_TODAY) | BIT(WIN_YESTERDAY));
	free(text);
	free(save_restore(h, NULL));

	/* Nov 27: a new allowance; the baseline starts over, [Nov 19, Nov 26), no token */
	h->now = T0 + 86400;
	assert_int_equal(remaining(h), 4);
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 8);
	assert_daily(4, T + 1, "");
	assert_daily(5, T + 1, "g-3");
	assert_daily(6, T + 1, "g-6");
	assert_req(7, CAU, "MONTHLY", T - 7, T, TAGQ, "");
	assert_int_equal(ce(h)->acct[0].q[Q_BASELINE].partial_day, T + 1);
	assert_int_equal(ce(h)->acct[0].q[Q_BASELINE].partial.n, 1);
	assert_int_equal(ce(h)->acct[0].q[Q_BASELINE].partial.days[0].day, T - 7);
	assert_int_equal(ce(h)->acct[0].q[Q_BASELINE].partial.days[0].n, 3);

	/* the same day with a higher ceiling: that fill (of today) goes on */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 40; " SERVICES)));
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 8 + 3 + 1 + 2 + 2 + 1);
	assert_daily(8, T + 1, "");
	assert_req(11, CAU, "MONTHLY", T - 7, T, TAGQ, "g-3");
	assert_month(12, T + 1, "");
	assert_month(13, T + 1, "g-3");
	assert_previous(14, T + 1, "");
	assert_previous(15, T + 1, "g-3");
	assert_models(16, NOV1, T + 1, "");
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T + 1, ALL_WINDOWS);
	free(text);
}

/* ---- 5. the page cap, and answers that cannot be trusted ---- */

/* Pagination that never ends stops at 2 x ceil(expected / per page) + 2 pages, expected being
 * (projects + 3, or the most groups a period of an earlier answer held) x periods; a
 * configured max_pages wins; a token that repeats is a loop. Each is -EPROTO counted as
 * reason "parse", and drops the fill in progress but not the last complete answer. */
static void test_page_cap(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 1000; " SERVICES));
	F.tag_page = 2;
	F.endless = "*";
	double parse0 = apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE);

	/* no project listed, nothing read: (0 + 3) x 2 days = 6 groups guessed; once the answer
	 * shows a whole day of 4 groups, 4 x 2 = 8, 2 a page: 2 x 4 + 2 */
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n, 10);
	static const char *const toks[] = { "", "g-2", "g-4", "g-6", "g-8", "g-9", "g-10", "g-11",
					    "g-12", "g-13" };
	for (int i = 0; i < 10; i++)
		assert_daily(i, T, toks[i]);
	assert_contains(err, "pagination did not end after 10 pages");
	assert_contains(err, "twice the pages its size needs");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE) - parse0, 1);
	assert_null(ce(h)->acct[0].q[Q_DAILY].pages.token);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].partial.n, 0);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].day, 0);

	/* the pagination ends again: the next refresh starts over and reads everything */
	F.endless = NULL;
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 10 + 4 + 2 + 2 + 2 + 1);
	assert_daily(10, T, "");
	assert_daily(13, T, "g-6");
	assert_baseline(14, T, "");

	/* now an earlier answer held 4 groups a period, more than 0 projects + 3: 4 x 2 / 2 = 4
	 * pages needed, the cap is 10 */
	F.endless = "*";
	h->now += 600;
	int sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 10);
	assert_contains(err, "pagination did not end after 10 pages");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE) - parse0, 2);
	/* the last complete daily answer still serves */
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].day, T);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].series.n, 2);
	assert_null(ce(h)->acct[0].q[Q_DAILY].pages.token);
	char *text = collect_text(h, &cost_explorer_source, h->now);
	assert_contains(text, "bedrock_cost_project_today_usd{");
	free(text);

	/* two projects listed: (2 + 3) x 2 = 10 groups, 5 pages needed, the cap is 12 */
	list_projects(h);
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 12);
	assert_contains(err, "pagination did not end after 12 pages");

	/* MONTHLY: one period per month the query touches. The month, [Nov 1, Nov 27): 5 x 1 = 5
	 * groups, 3 pages needed, the cap is 8 (after the daily query's 4 pages) */
	F.endless = "MONTHLY";
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 4 + 8);
	assert_daily(sent, T, "");
	static const char *const mtoks[] = { "", "g-2", "g-4", "g-5", "g-6", "g-7", "g-8", "g-9" };
	for (int i = 0; i < 8; i++)
		assert_month(sent + 4 + i, T, mtoks[i]);
	assert_contains(err, "pagination did not end after 8 pages");
	/* Dec 3: the baseline, [Nov 25, Dec 2), spans two months: 5 x 2 = 10, the cap is 12 */
	h->now = days_start_time(DEC1 + 2) + 12 * 3600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 4 + 12);
	assert_req(sent + 4, CAU, "MONTHLY", days_from_civil(2026, 11, 25), DEC1 + 1, TAGQ, "");
	assert_req(F.n - 1, CAU, "MONTHLY", days_from_civil(2026, 11, 25), DEC1 + 1, TAGQ,
		   F.r[F.n - 1].token);
	assert_contains(err, "pagination did not end after 12 pages");
	F.endless = "*";

	/* cost_explorer.max_pages set: it is the cap */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 1000; max_pages = 3; " SERVICES)));
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 3);
	assert_daily(sent + 2, DEC1 + 2, "g-4");
	assert_contains(err, "pagination did not end after 3 pages (cost_explorer.max_pages)");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE) - parse0, 6);

	/* a token that comes back is a loop, well below any cap */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 1000; " SERVICES)));
	F.endless = NULL;
	F.loop = true;
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 2);
	assert_daily(sent, DEC1 + 2, "");
	assert_daily(sent + 1, DEC1 + 2, "loop");
	assert_contains(err, "repeats");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE) - parse0, 7);
	assert_null(ce(h)->acct[0].q[Q_DAILY].pages.token);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].partial.n, 0);
}

/* A fill cut by the ceiling survives a transient failure (throttled, retries spent): the
 * next refresh asks the same token again. Its token refused (a client error: an expired
 * token), or answered with garbage, it is dropped: the next refresh starts the query over. */
static void test_bad_resume_starts_over(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 2; " SERVICES));
	F.tag_page = 3;
	double client0 = apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_CLIENT);
	double parse0 = apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE);

	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_string_equal(ce(h)->acct[0].q[Q_DAILY].pages.token, "g-6");

	/* throttled, no retry left: a failure, the fill kept as it was */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 40; " SERVICES)));
	F.throttle = 1;
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EIO);
	assert_int_equal(F.n, 3);
	assert_daily(2, T, "g-6");
	assert_string_equal(ce(h)->acct[0].q[Q_DAILY].pages.token, "g-6");
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].pages.pages, 2);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].partial.n, 2);

	/* the resumed token is refused */
	F.reject_tokens = true;
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n, 4);
	assert_daily(3, T, "g-6");
	assert_contains(err, "InvalidNextTokenException");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_CLIENT) - client0, 1);
	assert_null(ce(h)->acct[0].q[Q_DAILY].pages.token);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].partial.n, 0);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].pages.pages, 0);

	/* then all of it again, from the first page */
	F.reject_tokens = false;
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 4 + 3 + 2 + 2 + 2 + 1);
	assert_daily(4, T, "");
	assert_daily(5, T, "g-3");
	assert_daily(6, T, "g-6");
	const struct ce_series *sd = &ce(h)->acct[0].q[Q_DAILY].series;
	assert_int_equal(sd->n, 2);
	for (long d = T - 1; d <= T; d++) {
		assert_int_equal(ce_series_find(sd, d)->n, NCOMBOS);
		assert_near(amount(sd, d, "Chatbot", "Prod"), ledger(0, d, d + 1));
		assert_near(amount(sd, d, "Batch", "Prod"), ledger(3, d, d + 1));
	}

	/* cut again, later that day; the resumed page is malformed */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 16; " SERVICES)));
	h->now += 600;
	int sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n - sent, 2);
	assert_string_equal(ce(h)->acct[0].q[Q_DAILY].pages.token, "g-6");
	assert_false(reload(h, conf_with("", "max_requests_per_day = 40; " SERVICES)));
	F.garble_tokens = true;
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EPROTO);
	assert_int_equal(F.n - sent, 1);
	assert_daily(sent, T, "g-6");
	assert_near(apistats_errors(OP_CE_GET_COST_AND_USAGE, REASON_PARSE) - parse0, 1);
	assert_null(ce(h)->acct[0].q[Q_DAILY].pages.token);
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].partial.n, 0);
	/* the last complete answer stays */
	assert_int_equal(ce(h)->acct[0].q[Q_DAILY].series.n, 2);
	F.garble_tokens = false;
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_daily(sent, T, "");
}

/* ---- 6. the signature: what the answers were asked with ---- */

/* Another attribution tag drops every spend query's answer and fill in progress (the per-model
 * series stays); another metric drops that too; an unrelated change drops nothing. */
static void test_signature_drops_answers(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 40; " SERVICES));
	list_projects(h);
	F.n = 0;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);

	/* later: the month query cut after its first page */
	F.tag_page = 3;
	assert_false(reload(h, conf_with("", "max_requests_per_day = 9; " SERVICES)));
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 9);
	assert_month(8, T, "");
	assert_string_equal(ce(h)->acct[0].q[Q_MONTH].pages.token, "g-3");
	assert_int_equal(ce(h)->acct[0].q[Q_MONTH].day, T); /* the answer of the first fill */

	/* another attribution tag, no request left: every answer and the fill are gone */
	struct conf *team = conf_with("", "max_requests_per_day = 9; attribution_tags = [\"Team\"]; "
					  SERVICES);
	assert_true(cost_explorer_query_changed(h->conf, team));
	assert_true(reload(h, team));
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 9);
	for (int i = 0; i < Q_COUNT; i++) {
		assert_int_equal(ce(h)->acct[0].q[i].day, 0);
		assert_int_equal(ce(h)->acct[0].q[i].series.n, 0);
		assert_null(ce(h)->acct[0].q[i].pages.token);
		assert_int_equal(ce(h)->acct[0].q[i].partial.n, 0);
	}
	assert_contains(err, "still to read: today and yesterday, baseline, month_to_date, "
			     "previous_month, the per-model spend");
	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, 0);
	/* the per-model series was not asked by tag: it stays */
	assert_contains(text, "bedrock_cost_model_month_to_date_usd{");
	free(text);

	/* room again: every spend query from its first page, grouped by Team; models go on */
	assert_false(reload(h, conf_with("", "max_requests_per_day = 40; attribution_tags = "
					     "[\"Team\"]; " SERVICES)));
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 9 + 3 + 2 + 2 + 2 + 1);
	static const struct {
		const char *gran;
		long start, end;
		const char *token;
	} want[] = {
		{ "DAILY", 0, 0, "" }, { "DAILY", 0, 0, "g-3" }, { "DAILY", 0, 0, "g-6" },
		{ "MONTHLY", -8, -1, "" }, { "MONTHLY", -8, -1, "g-3" },
		{ "MONTHLY", 1, 1, "" }, { "MONTHLY", 1, 1, "g-3" },
		{ "MONTHLY", 2, 2, "" }, { "MONTHLY", 2, 2, "g-3" },
	};
	for (int i = 0; i < 9; i++) {
		long s = want[i].start, e = want[i].end;
		if (i < 3) {
			s = T - 1;
			e = T + 1;
		} else if (i < 5) {
			s += T;
			e += T;
		} else if (i < 7) {
			s = NOV1;
			e = T + 1;
		} else {
			s = OCT1;
			e = NOV1;
		}
		assert_req(9 + i, CAU, want[i].gran, s, e, "TAG:Team", want[i].token);
		assert_int_equal(F.r[9 + i].ngroups, 1);
	}
	assert_models(18, T - 3, T, "");
	for (int i = 0; i < Q_JUDGED; i++) { /* (not read with the cloudwatch source off) */
		const struct ce_series *s = &ce(h)->acct[0].q[i].series;
		assert_true(s->n > 0);
		for (size_t d = 0; d < s->n; d++) {
			assert_int_equal(s->days[d].n, NCOMBOS);
			for (size_t g = 0; g < s->days[d].n; g++)
				assert_null(s->days[d].g[g].k[1]); /* nothing left of the two-tag query */
		}
	}
	assert_near(amount(&ce(h)->acct[0].q[Q_DAILY].series, T, "Support", NULL), ledger(0, T, T + 1));
	assert_near(amount(&ce(h)->acct[0].q[Q_PREVIOUS].series, OCT1, "Ops", NULL), ledger(3, OCT1, NOV1));
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, T, ALL_WINDOWS); /* the projects' Team tags match as before */
	free(text);

	/* another metric: the per-model series goes too */
	F.tag_page = 0;
	struct conf *amortized = conf_with("", "max_requests_per_day = 40; attribution_tags = "
					       "[\"Team\"]; cost_metric = \"AmortizedCost\"; " SERVICES);
	assert_true(cost_explorer_query_changed(h->conf, amortized));
	assert_true(reload(h, amortized));
	h->now += 600;
	int sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n - sent, 5);
	assert_req(sent + 0, CAU, "DAILY", T - 1, T + 1, "TAG:Team", "");
	assert_req(sent + 1, CAU, "MONTHLY", T - 8, T - 1, "TAG:Team", "");
	assert_req(sent + 2, CAU, "MONTHLY", NOV1, T + 1, "TAG:Team", "");
	assert_req(sent + 3, CAU, "MONTHLY", OCT1, NOV1, "TAG:Team", "");
	assert_models(sent + 4, NOV1, T, "");
	for (int i = sent; i < F.n; i++)
		assert_string_equal(F.r[i].metric, "AmortizedCost");
	assert_near(amount(&ce(h)->acct[0].q[Q_MONTH].series, NOV1, "Support", NULL),
		    2 * ledger(0, NOV1, T + 1));
	assert_near(amount(&ce(h)->acct[0].models, T - 10, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 10, 0, true) / 100);

	/* an unrelated change asks nothing new */
	struct conf *other = conf_with("refresh_interval = 600;",
				       "max_requests_per_day = 40; attribution_tags = [\"Team\"]; "
				       "cost_metric = \"AmortizedCost\"; " SERVICES);
	assert_false(cost_explorer_query_changed(h->conf, other));
	assert_false(reload(h, other));
	h->now += 600;
	sent = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n - sent, 3);
	assert_req(sent + 0, CAU, "DAILY", T - 1, T + 1, "TAG:Team", "");
	assert_req(sent + 1, CAU, "MONTHLY", NOV1, T + 1, "TAG:Team", "");
	assert_models(sent + 2, T - 3, T, "");

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

/* ---- 7. forecast and allocation_tags pay from the same meter ---- */

static void test_shared_meter(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 14; " SERVICES));
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_int_equal(remaining(h), 9);

	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_req(5, "GetCostForecast", "MONTHLY", T, DEC1, "", "");
	assert_string_equal(F.r[5].metric, "UNBLENDED_COST");
	assert_int_equal(remaining(h), 8);

	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	assert_string_equal(F.r[6].op, "ListCostAllocationTags");
	assert_int_equal(remaining(h), 7);
	assert_int_equal((long)ce(h)->meter.billable_total, 7);

	/* a second forecast the same UTC day asks nothing (Cost Explorer makes its forecasts
	 * about daily) and still serves */
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	assert_int_equal(remaining(h), 7);

	/* a throttled request retried costs two */
	h->opts.max_retries = 1;
	F.throttle = 1;
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(count_op("ListCostAllocationTags", 0), 3);
	assert_int_equal(remaining(h), 5);

	/* spend what is left: then nobody sends */
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0); /* daily, month, models */
	assert_int_equal(remaining(h), 2);
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), 0);
	assert_int_equal(remaining(h), 0);
	int sent = F.n;
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0); /* today's, unasked */
	assert_int_equal(run(h, &allocation_tags_source, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "skipped");
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_contains(err, "still to read: today and yesterday, month_to_date, the per-model spend");
	h->now = days_start_time(T + 1) - 1; /* 23:59:59 */
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, sent);
	assert_int_equal(sent, 14);
	assert_int_equal((long)ce(h)->meter.billable_total, 14);

	/* the next UTC day the meter starts again */
	h->now = days_start_time(T + 1);
	assert_int_equal(remaining(h), 14);
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 18); /* daily, baseline, month, models: October is final */
	assert_int_equal(remaining(h), 10);
	/* and a new day's forecast is asked */
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 19);
	assert_req(18, "GetCostForecast", "MONTHLY", T + 1, DEC1, "", "");
}

/* ---- 8. the families, and windows across midnight ---- */

static void test_families_and_midnight(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 10; request_price_usd = 0.01; " SERVICES));

	/* the project catalog, listed through the same client: not a Cost Explorer request */
	assert_int_equal(run(h, &projects_source, err, sizeof(err)), 0);
	assert_int_equal(F.n, 1);
	assert_string_equal(F.r[0].op, "ListProjects");
	assert_contains(F.r[0].url, "http://127.0.0.1:9/v1/organization/projects?limit=");
	assert_int_equal(remaining(h), 10);

	h->opts.max_retries = 1;
	F.throttle = 1; /* 6 billable requests */
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 7);
	h->opts.max_retries = 0;

	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today", 4);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total", 6);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_spend_usd_total", 0.06);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_max_requests_per_day", 10);
	assert_contains(text, "# TYPE bedrock_cost_exporter_cost_explorer_billable_requests_total counter");
	assert_contains(text, "# TYPE bedrock_cost_project_today_usd gauge");
	expect_windows(text, T, ALL_WINDOWS);
	free(text);

	/* the forecast's actual spend before its day: the month's answer less the daily answer's
	 * days from that day on */
	assert_int_equal(run(h, &forecast_source, err, sizeof(err)), 0);
	double actual = -1;
	assert_true(cost_explorer_spend_before(ce(h), T, &actual));
	assert_near(actual, ledger_all(NOV1, T));
	assert_false(cost_explorer_spend_before(ce(h), T - 5, &actual)); /* not from what was read */
	text = collect_text(h, &forecast_source, h->now);
	expect_sample(text, "bedrock_cost_month_forecast_usd{account_id=\"\"}", ledger_all(NOV1, T) + 300);
	expect_sample(text, "bedrock_cost_month_forecast_lower_usd{account_id=\"\"}", ledger_all(NOV1, T) + 250);
	free(text);

	/* rendered after midnight UTC without a refresh: a new day's allowance, the same counters;
	 * today is 0, yesterday is what was today, the baseline is the one read the day before
	 * (its own days), the month so far is still November's */
	text = collect_text(h, &cost_explorer_source, days_start_time(T + 1) + 60);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today", 10);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total", 7);
	expect_window(text, WIN_TODAY, T + 1, T + 1);
	expect_window(text, WIN_YESTERDAY, T, T + 1);
	expect_window(text, WIN_BASELINE, T - 8, T - 1);
	expect_window(text, WIN_MONTH_TO_DATE, NOV1, T + 1);
	expect_window(text, WIN_PREVIOUS_MONTH, OCT1, NOV1);
	/* a month to date missing its last day is marked as such */
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"month_to_date\"}", 1);
	free(text);
	text = collect_text(h, &forecast_source, days_start_time(T + 1) + 60);
	expect_sample(text, "bedrock_cost_month_forecast_usd{account_id=\"\"}", ledger_all(NOV1, T) + 300);
	free(text);
	/* two midnights without a refresh (a day-long outage): the daily answer holds neither
	 * today nor yesterday and the month's misses two days, so they have no series rather
	 * than a wrong 0; the baseline (its own days) and October (final) still serve */
	text = collect_text(h, &cost_explorer_source, days_start_time(T + 2) + 60);
	expect_window(text, WIN_TODAY, -1, 0);
	expect_window(text, WIN_YESTERDAY, -1, 0);
	expect_window(text, WIN_MONTH_TO_DATE, -1, 0);
	expect_window(text, WIN_BASELINE, T - 8, T - 1);
	expect_window(text, WIN_PREVIOUS_MONTH, OCT1, NOV1);
	free(text);
	/* a clock set back a day: the month's answer read "tomorrow" does not serve; the daily
	 * one holds that day, which serves as today */
	text = collect_text(h, &cost_explorer_source, days_start_time(T - 1) + 60);
	expect_window(text, WIN_TODAY, T - 1, T);
	expect_window(text, WIN_MONTH_TO_DATE, -1, 0);
	free(text);

	/* a refresh that day: today's count starts at 0, the counters keep counting */
	h->now = days_start_time(T + 1) + 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 12); /* daily, baseline, month, models */
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_requests_remaining_today", 6);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_billable_requests_total", 11);
	expect_sample(text, "bedrock_cost_exporter_cost_explorer_spend_usd_total", 0.11);
	expect_windows(text, T + 1, ALL_WINDOWS);
	free(text);

	/* the last day of the month, then its midnight: the month to date of December is 0, and
	 * November's month query serves as the previous month */
	long nov30 = DEC1 - 1;
	h->now = days_start_time(nov30) + 12 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 16);
	assert_month(14, nov30, "");
	assert_int_equal(ce(h)->acct[0].q[Q_MONTH].series.days[0].day, NOV1);
	assert_int_equal(ce_day_end(&ce(h)->acct[0].q[Q_MONTH].series.days[0]), DEC1);
	text = collect_text(h, &cost_explorer_source, days_start_time(DEC1) + 60);
	expect_window(text, WIN_TODAY, DEC1, DEC1);
	expect_window(text, WIN_YESTERDAY, nov30, DEC1);
	expect_window(text, WIN_BASELINE, nov30 - 8, nov30 - 1);
	expect_window(text, WIN_MONTH_TO_DATE, DEC1, DEC1);
	expect_window(text, WIN_PREVIOUS_MONTH, NOV1, DEC1);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"previous_month\"}", 0);
	free(text);

	/* a refresh on Dec 1: the previous month is November, read on its own */
	h->now = days_start_time(DEC1) + 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 21);
	assert_previous(19, DEC1, "");
	assert_models(20, nov30, DEC1, "");
	text = collect_text(h, &cost_explorer_source, h->now);
	expect_windows(text, DEC1, ALL_WINDOWS);
	free(text);
	assert_true(cost_explorer_spend_before(ce(h), DEC1, &actual));
	assert_near(actual, 0);
}

/* ---- 9. discovery ---- */

/* Discovery is a paid request: with one request a day it is all a refresh gets. */
static void test_discovery_counted(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 1;"));
	assert_int_equal(run_ce(h, err, sizeof(err)), -EDQUOT);
	assert_int_equal(F.n, 1);
	assert_req(0, "GetDimensionValues", "", OCT1, T + 1, "", "");
	assert_int_equal(remaining(h), 0);
	assert_contains(err, "still to read: today and yesterday, baseline, month_to_date, "
			     "previous_month, the per-model spend");
	double at;
	assert_int_equal(cost_explorer_services(ce(h), &at)->n, 2);
	assert_near(at, T0);

	/* with the services configured, five requests are the whole fill */
	assert_true(reload(h, conf_with("", "max_requests_per_day = 6; " SERVICES)));
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_int_equal(count_op("GetDimensionValues", 0), 1);
	assert_int_equal(remaining(h), 0);
}

/* Discovery once a day; a reload that changes only service_search makes it due at once, and
 * what it finds is a new filter: every query is asked again. */
static void test_discovery_due(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 40;"));
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6); /* discovery + the five queries */
	assert_string_equal(F.r[0].op, "GetDimensionValues");
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 9); /* daily, month, models; no discovery within a day */
	assert_int_equal(count_op("GetDimensionValues", 0), 1);

	/* the next day, 23 h 59 min after discovery: no discovery */
	h->now = T0 + 86400 - 60;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 13);
	assert_daily(9, T + 1, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 1);
	/* 24 h after: discovery again, first */
	h->now = T0 + 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 17);
	assert_req(13, "GetDimensionValues", "", OCT1, T + 2, "", "");
	assert_daily(14, T + 1, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 2);

	/* another search string */
	struct conf *claude = conf_with("", "max_requests_per_day = 40; service_search = \"Claude\";");
	assert_true(cost_explorer_query_changed(h->conf, claude));
	assert_true(reload(h, claude));
	h->now += 600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 23);
	assert_req(17, "GetDimensionValues", "", OCT1, T + 2, "", "");
	assert_string_equal(F.r[17].search, "Claude");
	const struct textlist *sv = cost_explorer_services(ce(h), NULL);
	assert_int_equal(sv->n, 1);
	assert_string_equal(sv->v[0], "Claude Sonnet 4.5 (Amazon Bedrock Edition)");
	/* a new filter: every query from scratch, the models from the month's start */
	assert_daily(18, T + 1, "");
	assert_baseline(19, T + 1, "");
	assert_month(20, T + 1, "");
	assert_previous(21, T + 1, "");
	assert_models(22, NOV1, T + 1, "");
	for (int i = 18; i < 23; i++)
		assert_int_equal(F.r[i].nservices, 1);
}

/* Configured services: no discovery ever. On the 1st of a month the model query starts
 * yesterday (the previous month), and the windows move with the month. */
static void test_configured_services_and_month_start(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 40; services = [\"Amazon Bedrock\", "
			       "\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\"];"));
	h->now = days_start_time(DEC1) + 12 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_req(0, CAU, "DAILY", DEC1 - 1, DEC1 + 1, TAGQ, "");
	assert_req(1, CAU, "MONTHLY", DEC1 - 8, DEC1 - 1, TAGQ, "");
	assert_req(2, CAU, "MONTHLY", DEC1, DEC1 + 1, TAGQ, "");
	assert_req(3, CAU, "MONTHLY", NOV1, DEC1, TAGQ, "");
	assert_models(4, DEC1 - 1, DEC1, "");
	assert_int_equal(F.r[0].nservices, 2);

	h->now += 2 * 86400; /* Dec 3, past the daily discovery interval */
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 10);
	assert_daily(5, DEC1 + 2, "");
	assert_baseline(6, DEC1 + 2, "");
	assert_month(7, DEC1 + 2, "");
	assert_previous(8, DEC1 + 2, ""); /* read on Dec 1: not final yet */
	assert_models(9, DEC1, DEC1 + 2, "");
	assert_int_equal(count_op("GetDimensionValues", 0), 0);
	double at;
	const struct textlist *sv = cost_explorer_services(ce(h), &at);
	assert_int_equal(sv->n, 2);
	assert_string_equal(sv->v[0], "Amazon Bedrock");
	/* the models cache dropped Nov 30, which left its window */
	assert_null(ce_series_find(&ce(h)->acct[0].models, DEC1 - 1));
	assert_non_null(ce_series_find(&ce(h)->acct[0].models, DEC1));
}

/* With the cloudwatch source on, the per-model days reach CE_CLOUDWATCH_DAYS back also early
 * in a month (its rates need the bill of the days before today), and the settled day its
 * estimates are judged on is read per tag combination, once a day. */
static void test_models_reach_back_for_cloudwatch(void **state)
{
	struct h *h = *state;
	char err[1024];
	cw_group = "";
	start(h, conf_with("", "max_requests_per_day = 40; services = [\"Amazon Bedrock\", "
			       "\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\"];"));
	cw_group = "cloudwatch: { enabled = false; };";
	h->now = days_start_time(DEC1) + 12 * 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 6);
	assert_req(4, CAU, "DAILY", DEC1 - 3, DEC1 - 2, TAGQ, ""); /* settle_days = 3 */
	assert_models(5, DEC1 - CE_CLOUDWATCH_DAYS, DEC1, "");
	assert_non_null(ce_series_find(&ce(h)->acct[0].models, DEC1 - CE_CLOUDWATCH_DAYS));
	/* and not further */
	assert_null(ce_series_find(&ce(h)->acct[0].models, DEC1 - CE_CLOUDWATCH_DAYS - 1));
	assert_int_equal(cost_explorer_judged_day(h->conf, DEC1), DEC1 - 3);
	/* its spend per project, as "yesterday" of the day after it */
	struct attribution a;
	cost_explorer_attribute_judged(ce(h), h->conf, &h->set, DEC1, &a);
	assert_true(a.present[WIN_YESTERDAY]);
	assert_false(a.present[WIN_TODAY]);
	double sum = 0;
	for (size_t i = 0; i < a.nrows; i++)
		sum += a.rows[i].v[WIN_YESTERDAY];
	assert_true(sum > 0);
	attribution_free(&a);
	/* 6 hours later the same day: not read again */
	h->now += 6 * 3600;
	int before = F.n;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	for (int i = before; i < F.n; i++)
		assert_false(F.r[i].start == DEC1 - 3 && F.r[i].end == DEC1 - 2);
}

/* Another replica's newer part (the shared state) does not take away the requests this one
 * counted today: the larger meter stays; a later day's meter wins. */
static void test_adopt_keeps_the_meter(void **state)
{
	(void)state;
	struct state *old = create(NULL), *fresh = create(NULL);
	old->meter = (struct ce_meter){ DEC1, 12, 30 };
	fresh->meter = (struct ce_meter){ DEC1, 7, 25 };
	adopt(old, fresh);
	assert_int_equal(fresh->meter.day, DEC1);
	assert_int_equal(fresh->meter.count, 12);
	assert_true(fresh->meter.billable_total == 30);
	fresh->meter = (struct ce_meter){ DEC1, 20, 40 };
	adopt(old, fresh);
	assert_int_equal(fresh->meter.count, 20); /* the other replica counted more */
	fresh->meter = (struct ce_meter){ DEC1 - 1, 39, 41 };
	adopt(old, fresh); /* its meter is of yesterday: today's count is this replica's */
	assert_int_equal(fresh->meter.day, DEC1);
	assert_int_equal(fresh->meter.count, 12);
	assert_true(fresh->meter.billable_total == 41);
	destroy(old);
	destroy(fresh);
}

/* ---- estimated periods are read again ---- */

/* A day Cost Explorer still marks Estimated is where the next models query starts; a previous
 * month with an Estimated day is not final: read again each day until it is, then kept. */
static void test_estimated_is_read_again(void **state)
{
	struct h *h = *state;
	char err[1024];
	start(h, conf_with("", "max_requests_per_day = 40; " SERVICES));
	list_projects(h);
	F.n = 0;
	long oct20 = days_from_civil(2026, 10, 20);
	F.est_day[0] = oct20; /* the previous month */
	F.est_day[1] = T - 10; /* this month */

	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 5);
	assert_true(ce(h)->acct[0].q[Q_PREVIOUS].series.days[0].estimated);
	assert_true(ce(h)->acct[0].q[Q_MONTH].series.days[0].estimated);
	assert_true(ce_series_find(&ce(h)->acct[0].models, T - 10)->estimated);
	assert_false(ce_series_find(&ce(h)->acct[0].models, T - 11)->estimated);
	char *text = collect_text(h, &cost_explorer_source, h->now);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"previous_month\"}", 1);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"month_to_date\"}", 1);
	expect_sample(text, "bedrock_cost_window_estimated{account_id=\"\",window=\"baseline\"}", 0);
	free(text);

	/* the same day: the models from the Estimated day; the previous month not again today */
	h->now = T0 + 3600;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 8);
	assert_daily(5, T, "");
	assert_month(6, T, "");
	assert_models(7, T - 10, T, "");

	/* the next day, both days final, amounts revised: the previous month is read again */
	F.est_day[0] = F.est_day[1] = 0;
	F.bump_cents = 500;
	h->now = T0 + 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 13);
	assert_daily(8, T + 1, "");
	assert_baseline(9, T + 1, "");
	assert_month(10, T + 1, "");
	assert_previous(11, T + 1, "");
	assert_models(12, T - 10, T + 1, "");
	const struct ce_series *qp = &ce(h)->acct[0].q[Q_PREVIOUS].series;
	assert_false(qp->days[0].estimated);
	assert_near(amount(qp, OCT1, "Chatbot", "Prod"), ledger(0, OCT1, NOV1) + 31 * 5.0);
	assert_near(amount(&ce(h)->acct[0].models, T - 11, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 11, 0, false) / 100);
	assert_near(amount(&ce(h)->acct[0].models, T - 10, models[0].service, models[0].usage),
		    (double)model_cents(0, T - 10, 500, false) / 100);
	assert_false(ce_series_find(&ce(h)->acct[0].models, T - 10)->estimated);

	/* final now: kept for the rest of the month; the models back to the last settle_days */
	h->now = T0 + 2 * 86400;
	assert_int_equal(run_ce(h, err, sizeof(err)), 0);
	assert_int_equal(F.n, 17);
	assert_daily(13, T + 2, "");
	assert_baseline(14, T + 2, "");
	assert_month(15, T + 2, "");
	assert_models(16, T + 2 - 3, T + 2, "");
	assert_int_equal(count_op(CAU, 0), 17);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rereads_by_day, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ceiling_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ceiling_counts_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_of_earlier_day_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_resume_starts_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signature_drops_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_meter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_families_and_midnight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_models_reach_back_for_cloudwatch, setup, teardown),
		cmocka_unit_test(test_adopt_keeps_the_meter),
		cmocka_unit_test_setup_teardown(test_configured_services_and_month_start, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_estimated_is_read_again, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
