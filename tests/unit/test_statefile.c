/*
 * Unit tests for statefile.c, the state file's generic core, with the real source table
 * (projects, cost_explorer, forecast, allocation_tags) and with a small source of the test's
 * own. The format is defined here by the former writer (a cJSON tree, old_tree()) and by a file
 * the previous release wrote: what the table restores and saves again must be that document.
 * Also: exact numbers and hostile strings, all-or-nothing loading, corrupt, foreign and
 * old-version files, NaN, skipping unchanged writes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <sys/stat.h>

#include "../../src/engine/statefile.c"
#include "base/days.h"
#include "base/log.h"
#include "base/textlist.h"
#include "config/conf.h"
#include "model/ce_series.h"
#include "model/project.h"
#include "sources/allocation_tags.h"
#include "sources/cloudwatch.h"
#include "sources/cost_explorer.h"
#include "sources/forecast.h"
#include "sources/projects.h"
#include "jsontape_cjson.h"
#include "random_values.h"

#define DIR "build/unit"

/* The rows of source_table (sources/table.c), in whatever order it lists them: a set
 * made from the table, and its restored[] flags, follow that order. Set by find_rows(). */
#define N_SOURCES 7
static size_t I_PROJECTS, I_COSTS, I_FORECAST, I_TAGS, I_CW;

static size_t row_of(const struct source_def *d)
{
	size_t i = 0;
	while (source_table[i] && source_table[i] != d)
		i++;
	return i;
}

/* The group's setup: fails the whole group when the table holds other rows. */
static int find_rows(void **state)
{
	(void)state;
	I_PROJECTS = row_of(&projects_source);
	I_COSTS = row_of(&cost_explorer_source);
	I_FORECAST = row_of(&forecast_source);
	I_TAGS = row_of(&allocation_tags_source);
	I_CW = row_of(&cloudwatch_source);
	size_t n = 0;
	while (source_table[n])
		n++;
	bool all_there = I_PROJECTS < n && I_COSTS < n && I_FORECAST < n && I_TAGS < n && I_CW < n;
	return n == N_SOURCES && all_there ? 0 : -1;
}

static void table_is_as_expected(const struct source_set *set)
{
	assert_int_equal(set->n, N_SOURCES);
	assert_ptr_equal(set->v[I_PROJECTS].def, &projects_source);
	assert_ptr_equal(set->v[I_COSTS].def, &cost_explorer_source);
	assert_ptr_equal(set->v[I_FORECAST].def, &forecast_source);
	assert_ptr_equal(set->v[I_TAGS].def, &allocation_tags_source);
	assert_ptr_equal(set->v[I_CW].def, &cloudwatch_source);
}

/* ---- small helpers ---- */

/* Any finite double at all, from its bits. */
static double any_finite(void)
{
	for (;;) {
		uint64_t bits = rnd();
		double v;
		memcpy(&v, &bits, sizeof(v));
		if (isfinite(v))
			return v;
	}
}

static void write_bytes(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void write_file(const char *path, const char *text)
{
	write_bytes(path, text, strlen(text));
}

static char *slurp(const char *path, size_t *len)
{
	char *text = NULL;
	int rc = read_file_max(path, MAX_STATE_BYTES, &text, len);
	if (rc)
		fail_msg("cannot read %s: %s", path, strerror(-rc));
	return text;
}

static void expect_same_file(const char *path, const char *want, size_t wlen)
{
	size_t len;
	char *got = slurp(path, &len);
	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, len);
	free(got);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static struct conf *parse_conf(const char *text)
{
	struct textlist errs = { 0 };
	struct conf *c = conf_parse_string("test.conf", text, &errs);
	if (!c)
		fail_msg("configuration rejected: %s", errs.n ? errs.v[0] : "?");
	return c;
}

/* ---- the fixture: every field the four sources keep, as plain data ---- */

struct fixture {
	long req_day, req_count;
	struct textlist services;
	double services_at;
	char *services_search;
	double costs_at;
	struct ce_series spend, models;
	char *spend_sig, *models_sig;
	/* "spend_queries" (none in the previous release's file: @v1): the day each spend query
	 * answered for, the series of all but the daily one (that is @spend), and a fill in
	 * progress (@token set) with the pages it has */
	bool v1;
	struct fixture_query {
		long day, partial_day, pages, per_page;
		struct ce_series series, partial;
		char *token;
	} q[4];
	bool has_forecast;
	long forecast_day;
	double forecast_at, forecast_mean, forecast_lower, forecast_upper;
	struct textlist tag_keys;
	bool *tag_active;
	double tags_at;
	struct project_catalog cat; /* the regions of the configuration, in its order */
};

static void fixture_regions(struct fixture *f, const char *r0, const char *r1)
{
	f->cat.nregions = 2;
	f->cat.regions = xcalloc(2, sizeof(*f->cat.regions));
	f->cat.regions[0].region = xstrdup(r0);
	f->cat.regions[1].region = xstrdup(r1);
	f->cat.regions[0].account = xstrdup("");
	f->cat.regions[1].account = xstrdup("");
}

static void fixture_free(struct fixture *f)
{
	textlist_free(&f->services);
	free(f->services_search);
	ce_series_free(&f->spend);
	ce_series_free(&f->models);
	for (int i = 0; i < 4; i++) {
		ce_series_free(&f->q[i].series);
		ce_series_free(&f->q[i].partial);
		free(f->q[i].token);
	}
	free(f->spend_sig);
	free(f->models_sig);
	textlist_free(&f->tag_keys);
	free(f->tag_active);
	project_catalog_free(&f->cat);
	memset(f, 0, sizeof(*f));
}

static void add_project(struct region_projects *r, const char *id, const char *name,
			const char *arn, const char *status, double created_at, size_t ntags,
			const char *const *kv)
{
	r->projects.v = xrealloc(r->projects.v, (r->projects.n + 1) * sizeof(struct project));
	struct project *p = &r->projects.v[r->projects.n++];
	memset(p, 0, sizeof(*p));
	p->id = xstrdup(id);
	p->name = xstrdup(name);
	p->arn = xstrdup(arn);
	p->status = xstrdup(status);
	p->created_at = created_at;
	p->ntags = ntags;
	p->tags = xcalloc(ntags + 1, sizeof(*p->tags));
	for (size_t i = 0; i < ntags; i++) {
		p->tags[i].key = xstrdup(kv[2 * i]);
		p->tags[i].value = xstrdup(kv[2 * i + 1]);
	}
	r->has_data = true;
}

/* Adds the period [@day, @end) (@end 0: one day) with @ngroups zeroed groups, returned. */
static struct ce_group *add_period(struct ce_series *s, long day, long end, bool estimated,
				   size_t ngroups)
{
	s->days = xrealloc(s->days, (s->n + 1) * sizeof(*s->days));
	struct ce_day *d = &s->days[s->n++];
	*d = (struct ce_day){ day, estimated, xcalloc(ngroups + 1, sizeof(struct ce_group)), ngroups,
			      end };
	return d->g;
}

static struct ce_group *add_day(struct ce_series *s, long day, bool estimated, size_t ngroups)
{
	return add_period(s, day, 0, estimated, ngroups);
}

/* The configuration round_trip loads with, and the spend signature a cache queried with it
 * carries (cost_explorer.c: "spend|" metric "|" each tag and US, "|" each service and US). */
#define RT_CONF "projects: { regions = [\"us-east-1\", \"eu-west-1\"]; };\n" \
		"cost_explorer: { attribution_tags = [\"Application\", \"CostCenter\"];\n" \
		"                 cost_metric = \"AmortizedCost\"; };\n"
#define RT_SPEND_SIG "spend|AmortizedCost|Application\x1f" "CostCenter\x1f" "|Amazon Bedrock\x1f"

static void fill(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->req_day = 20000;
	f->req_count = 7;
	textlist_push(&f->services, xstrdup("Amazon Bedrock"));
	f->services_at = 1795651200.5;
	f->services_search = xstrdup("Bedrock");
	f->costs_at = 1795651300.25;
	f->spend_sig = xstrdup(RT_SPEND_SIG);
	struct ce_group *g = add_day(&f->spend, 19999, false, 2);
	g[0] = (struct ce_group){ { xstrdup("Chat \"x\""), xstrdup("") }, 0.1 + 0.2 };
	g[1] = (struct ce_group){ { xstrdup(""), xstrdup("") }, 1e-10 };
	add_day(&f->spend, 20000, true, 0);
	f->models_sig = xstrdup("models|AmortizedCost|Amazon Bedrock\x1f");
	g = add_day(&f->models, 19999, false, 1);
	g[0] = (struct ce_group){ { xstrdup("Amazon Bedrock"), xstrdup("USE1-nova-pro-input") }, 12.5 };
	/* the daily query for 20000; the baseline (one MONTHLY period) read the day before; the
	 * month half read (a token to go on with); no previous month yet */
	f->q[0].day = 20000;
	f->q[1].day = 19999;
	g = add_period(&f->q[1].series, 19991, 19998, false, 1);
	g[0] = (struct ce_group){ { xstrdup("Chat \"x\""), xstrdup("") }, 7.25 };
	f->q[2].day = 19999;
	g = add_period(&f->q[2].series, 19997, 20000, true, 1);
	g[0] = (struct ce_group){ { xstrdup(""), xstrdup("") }, 0.5 };
	f->q[2].partial_day = 20000;
	f->q[2].pages = 3;
	f->q[2].per_page = 1;
	f->q[2].token = xstrdup("tok\"3/");
	g = add_period(&f->q[2].partial, 19997, 20001, true, 2);
	g[0] = (struct ce_group){ { xstrdup("A"), xstrdup("B") }, 1.5 };
	g[1] = (struct ce_group){ { xstrdup("A"), xstrdup("C") }, 2.5 };
	f->has_forecast = true;
	f->forecast_day = 20000;
	f->forecast_mean = 123.456789;
	f->forecast_lower = 100;
	f->forecast_upper = 150;
	f->forecast_at = 1795651400;
	textlist_push(&f->tag_keys, xstrdup("Application"));
	textlist_push(&f->tag_keys, xstrdup("CostCenter"));
	f->tag_active = xcalloc(2, sizeof(bool));
	f->tag_active[0] = true;
	f->tags_at = 1795651500;
	fixture_regions(f, "us-east-1", "eu-west-1");
	static const char *const tags[] = { "Team", "CX" };
	add_project(&f->cat.regions[0], "p1", "n", "a", "active", 5, 1, tags);
}

/* ---- the former writer (a cJSON tree), kept as the definition of the format, with the
 * member added since ("spend_queries") ---- */

/* A number as raw text that strtod reads back exactly (%.17g, not the code under test). */
static cJSON *num(double v)
{
	char s[40];
	assert_true(isfinite(v));
	snprintf(s, sizeof(s), "%.17g", v);
	assert_true(same_double(strtod(s, NULL), v));
	return cJSON_CreateRaw(s);
}

/* A day member: "" for 0 (not read yet). */
static void add_day_member(cJSON *o, const char *key, long day)
{
	char ds[11] = "";
	if (day)
		days_format(day, ds);
	cJSON_AddStringToObject(o, key, ds);
}

/* The "days" array of @s into @o: each period with "end" when it is longer than a day. */
static void add_days(cJSON *o, const struct ce_series *s)
{
	cJSON *days = cJSON_AddArrayToObject(o, "days");
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		cJSON *jd = cJSON_CreateObject();
		add_day_member(jd, "day", d->day);
		if (d->end)
			add_day_member(jd, "end", d->end);
		cJSON_AddBoolToObject(jd, "estimated", d->estimated);
		cJSON *gs = cJSON_AddArrayToObject(jd, "groups");
		for (size_t j = 0; j < d->n; j++) {
			cJSON *g = cJSON_CreateObject();
			cJSON *k = cJSON_AddArrayToObject(g, "k");
			for (int q = 0; q < 2 && d->g[j].k[q]; q++)
				cJSON_AddItemToArray(k, cJSON_CreateString(d->g[j].k[q]));
			cJSON_AddItemToObject(g, "amount", num(d->g[j].amount));
			cJSON_AddItemToArray(gs, g);
		}
		cJSON_AddItemToArray(days, jd);
	}
}

static cJSON *old_series(const struct ce_series *s, const char *sig)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "signature", sig ? sig : "");
	add_days(o, s);
	return o;
}

/* "spend_queries", added after the previous release: daily, baseline, month, previous. */
static cJSON *queries_tree(const struct fixture *f)
{
	static const char *const names[4] = { "daily", "baseline", "month", "previous" };
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; i < 4; i++) {
		const struct fixture_query *q = &f->q[i];
		cJSON *jq = cJSON_AddObjectToObject(o, names[i]);
		add_day_member(jq, "day", q->day);
		if (i != 0)
			add_days(jq, &q->series);
		if (q->token) {
			cJSON *p = cJSON_AddObjectToObject(jq, "partial");
			add_day_member(p, "day", q->partial_day);
			cJSON_AddItemToObject(p, "pages", num((double)q->pages));
			cJSON_AddItemToObject(p, "per_page", num((double)q->per_page));
			cJSON_AddStringToObject(p, "token", q->token);
			add_days(p, &q->partial);
		}
	}
	return o;
}

static cJSON *old_tree(const struct fixture *f, double now)
{
	char ds[11];
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", "bedrock-cost-exporter-state");
	cJSON_AddItemToObject(root, "version", num(1));
	cJSON_AddItemToObject(root, "written_at", num(now));
	cJSON *q = cJSON_AddObjectToObject(root, "ce_requests");
	days_format(f->req_day, ds);
	cJSON_AddStringToObject(q, "day", ds);
	cJSON_AddItemToObject(q, "count", num((double)f->req_count));
	cJSON *sv = cJSON_AddObjectToObject(root, "services");
	cJSON_AddItemToObject(sv, "at", num(f->services_at));
	cJSON_AddStringToObject(sv, "search", f->services_search ? f->services_search : "");
	cJSON *vals = cJSON_AddArrayToObject(sv, "values");
	for (size_t i = 0; i < f->services.n; i++)
		cJSON_AddItemToArray(vals, cJSON_CreateString(f->services.v[i]));
	cJSON_AddItemToObject(root, "costs_at", num(f->costs_at));
	cJSON_AddItemToObject(root, "spend", old_series(&f->spend, f->spend_sig));
	if (!f->v1)
		cJSON_AddItemToObject(root, "spend_queries", queries_tree(f));
	cJSON_AddItemToObject(root, "models", old_series(&f->models, f->models_sig));
	if (f->has_forecast) {
		cJSON *fc = cJSON_AddObjectToObject(root, "forecast");
		days_format(f->forecast_day, ds);
		cJSON_AddStringToObject(fc, "day", ds);
		cJSON_AddItemToObject(fc, "at", num(f->forecast_at));
		cJSON_AddItemToObject(fc, "mean", num(f->forecast_mean));
		cJSON_AddItemToObject(fc, "lower", num(f->forecast_lower));
		cJSON_AddItemToObject(fc, "upper", num(f->forecast_upper));
	}
	if (f->tags_at > 0) {
		cJSON *t = cJSON_AddObjectToObject(root, "allocation_tags");
		cJSON_AddItemToObject(t, "at", num(f->tags_at));
		cJSON *a = cJSON_AddObjectToObject(t, "active");
		for (size_t i = 0; i < f->tag_keys.n; i++)
			cJSON_AddBoolToObject(a, f->tag_keys.v[i], f->tag_active[i]);
	}
	cJSON *o = cJSON_AddObjectToObject(root, "projects");
	for (size_t r = 0; r < f->cat.nregions; r++) {
		const struct region_projects *rp = &f->cat.regions[r];
		if (!rp->has_data)
			continue;
		cJSON *a = cJSON_AddArrayToObject(o, rp->region);
		for (size_t i = 0; i < rp->projects.n; i++) {
			const struct project *p = &rp->projects.v[i];
			cJSON *jp = cJSON_CreateObject();
			cJSON_AddStringToObject(jp, "id", p->id);
			cJSON_AddStringToObject(jp, "name", p->name);
			cJSON_AddStringToObject(jp, "arn", p->arn);
			cJSON_AddStringToObject(jp, "status", p->status);
			cJSON_AddItemToObject(jp, "created_at", num(p->created_at));
			cJSON *t = cJSON_AddObjectToObject(jp, "tags");
			for (size_t k = 0; k < p->ntags; k++)
				cJSON_AddStringToObject(t, p->tags[k].key, p->tags[k].value);
			cJSON_AddItemToArray(a, jp);
		}
	}
	return root;
}

/* The reference document's text for @f written at @now. Caller frees (cJSON_free). */
static char *reference_text(const struct fixture *f, double now)
{
	cJSON *tree = old_tree(f, now);
	char *text = cJSON_PrintUnformatted(tree);
	assert_non_null(text);
	cJSON_Delete(tree);
	return text;
}

/* ---- comparing documents ---- */

/* @got equals @want: same type, members with the same names in the same order, strings byte
 * for byte, numbers bit for bit. @path names the value in messages. */
static void same_value(const cJSON *got, const cJSON *want, const char *path)
{
	if ((got->type & 0xff) != (want->type & 0xff))
		fail_msg("%s: JSON type %d, the reference has %d", path, got->type & 0xff,
			 want->type & 0xff);
	if (cJSON_IsString(want) && strcmp(got->valuestring, want->valuestring) != 0)
		fail_msg("%s: string differs", path);
	if (cJSON_IsNumber(want) && !same_double(got->valuedouble, want->valuedouble))
		fail_msg("%s: %.17g, the reference has %.17g", path, got->valuedouble, want->valuedouble);
	const cJSON *g = got->child, *w = want->child;
	for (size_t i = 0; g && w; g = g->next, w = w->next, i++) {
		char sub[400];
		if (cJSON_IsObject(want)) {
			if (strcmp(g->string, w->string) != 0)
				fail_msg("%s: member %zu is \"%.40s\", the reference has \"%.40s\"", path, i,
					 g->string, w->string);
			snprintf(sub, sizeof(sub), "%.300s.%.40s", path, w->string);
		} else {
			snprintf(sub, sizeof(sub), "%.300s[%zu]", path, i);
		}
		same_value(g, w, sub);
	}
	if (g || w)
		fail_msg("%s: %s members or elements than the reference", path, g ? "more" : "fewer");
}

/*
 * The saved document @got equals the reference @want (both JSON texts): inside every
 * top-level member exactly as same_value() says; the top-level members themselves by name
 * (each exactly once, none missing or extra), since each source writes its own members
 * (their order is the source table's, not part of the format).
 */
static void expect_same_doc(const char *got, size_t glen, const char *want)
{
	cJSON *g = cJSON_ParseWithLength(got, glen), *w = cJSON_Parse(want);
	assert_non_null(g);
	assert_non_null(w);
	assert_true(cJSON_IsObject(g) && cJSON_IsObject(w));
	assert_int_equal(cJSON_GetArraySize(g), cJSON_GetArraySize(w));
	for (const cJSON *m = w->child; m; m = m->next) {
		const cJSON *found = NULL;
		int times = 0;
		for (const cJSON *x = g->child; x; x = x->next)
			if (strcmp(x->string, m->string) == 0) {
				found = found ? found : x;
				times++;
			}
		if (times != 1)
			fail_msg("top-level member \"%s\" saved %d times", m->string, times);
		same_value(found, m, m->string);
	}
	cJSON_Delete(g);
	cJSON_Delete(w);
}

/* ---- reading the restored state back through the sources' accessors ---- */

static void expect_same_series(const struct ce_series *got, const struct ce_series *want)
{
	assert_int_equal(got->n, want->n);
	for (size_t d = 0; d < want->n; d++) {
		assert_int_equal(got->days[d].day, want->days[d].day);
		assert_int_equal(got->days[d].estimated, want->days[d].estimated);
		assert_int_equal(got->days[d].n, want->days[d].n);
		for (size_t g = 0; g < want->days[d].n; g++) {
			const struct ce_group *x = &got->days[d].g[g], *y = &want->days[d].g[g];
			for (int q = 0; q < 2; q++) {
				assert_int_equal(!x->k[q], !y->k[q]);
				if (y->k[q])
					assert_string_equal(x->k[q], y->k[q]);
			}
			assert_true(same_double(x->amount, y->amount));
		}
	}
}

static void expect_same_catalog(const struct project_catalog *got, const struct project_catalog *want)
{
	assert_int_equal(got->nregions, want->nregions);
	for (size_t r = 0; r < want->nregions; r++) {
		const struct region_projects *a = &got->regions[r], *b = &want->regions[r];
		assert_string_equal(a->region, b->region);
		assert_int_equal(a->has_data, b->has_data);
		assert_int_equal(a->projects.n, b->projects.n);
		for (size_t i = 0; i < b->projects.n; i++) {
			const struct project *x = &a->projects.v[i], *y = &b->projects.v[i];
			assert_string_equal(x->id, y->id);
			assert_string_equal(x->name, y->name);
			assert_string_equal(x->arn, y->arn);
			assert_string_equal(x->status, y->status);
			assert_true(same_double(x->created_at, y->created_at));
			assert_int_equal(x->ntags, y->ntags);
			for (size_t t = 0; t < y->ntags; t++) {
				assert_string_equal(x->tags[t].key, y->tags[t].key);
				assert_string_equal(x->tags[t].value, y->tags[t].value);
				assert_string_equal(project_tag(x, y->tags[t].key), y->tags[t].value);
			}
		}
	}
}

/* What the cost_explorer source holds equals @f (as far as its accessors show it). */
static void expect_costs(const struct source_set *set, const struct fixture *f)
{
	void *ce = set->v[I_COSTS].priv;
	const struct ce_meter *m = cost_explorer_meter(ce);
	assert_int_equal(m->day, f->req_day);
	assert_int_equal(m->count, f->req_count);
	double at = -1;
	const struct textlist *sv = cost_explorer_services(ce, &at);
	assert_true(same_double(at, f->services_at));
	assert_true(textlist_equal(sv, &f->services));
	expect_same_series(cost_explorer_spend(ce), &f->spend);
}

/* The spend signature a cache queried with @c and @services carries, built as
 * cost_explorer.c's spend_signature() builds it. Caller frees. */
static char *spend_sig_for(const struct conf *c, const struct textlist *services)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_printf(&b, "spend|%s|", c->ce_cost_metric);
	for (size_t i = 0; i < c->ce_attribution_tags.n; i++) {
		buf_puts(&b, c->ce_attribution_tags.v[i]);
		buf_putc(&b, '\x1f');
	}
	buf_putc(&b, '|');
	for (size_t i = 0; i < services->n; i++) {
		buf_puts(&b, services->v[i]);
		buf_putc(&b, '\x1f');
	}
	return buf_steal(&b, NULL);
}

static void garbage(struct source_restored *got, size_t n)
{
	for (size_t i = 0; i < n; i++)
		got[i] = (struct source_restored){ true, -1 };
}

static void expect_restored(const struct source_restored *got, bool has_data, double at)
{
	assert_int_equal(got->has_data, has_data);
	if (!same_double(got->at, at))
		fail_msg("restored at %.17g, expected %.17g", got->at, at);
}

/* ---- whole documents through the real table ---- */

static void round_trip(void **state)
{
	(void)state;
	const char *path = DIR "/state_rt.json", *path2 = DIR "/state_rt2.json";
	const double written = 1795651600;
	struct conf *c = parse_conf(RT_CONF);
	struct fixture f;
	fill(&f);
	char *want_sig = spend_sig_for(c, &f.services);
	assert_string_equal(want_sig, f.spend_sig); /* the literal says what the code builds */
	free(want_sig);
	char *ref = reference_text(&f, written);
	write_file(path, ref);

	struct source_set set;
	source_set_init(&set, source_table, c);
	table_is_as_expected(&set);
	struct source_restored got[N_SOURCES];
	garbage(got, N_SOURCES);
	char err[256] = "";
	if (statefile_load(path, &set, c, written, got, err, sizeof(err)))
		fail_msg("load: %s", err);
	expect_restored(&got[I_PROJECTS], true, 0);        /* served, and listed again at once */
	expect_restored(&got[I_COSTS], true, f.costs_at);  /* the signature matches */
	expect_restored(&got[I_FORECAST], true, f.forecast_at);
	expect_restored(&got[I_TAGS], true, f.tags_at);
	expect_costs(&set, &f);
	const struct ce_series *spend = cost_explorer_spend(set.v[I_COSTS].priv);
	assert_true(spend->days[0].g[0].amount == 0.1 + 0.2); /* exact round trip */
	assert_true(spend->days[0].g[1].amount == 1e-10);
	assert_true(spend->days[1].estimated);
	const struct project_catalog *cat = projects_catalog(set.v[I_PROJECTS].priv);
	expect_same_catalog(cat, &f.cat);
	assert_string_equal(project_tag(&cat->regions[0].projects.v[0], "Team"), "CX");
	assert_false(cat->regions[1].has_data);

	/* saved again: the reference document, mode 0600 */
	remove(path2);
	assert_int_equal(statefile_save(NULL, path2, &set, written, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(path2, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t len;
	char *text = slurp(path2, &len);
	expect_same_doc(text, len, ref);
	free(text);

	/* restored under another configuration (metric, attribution tags, one region): the cost
	 * data is kept but not served, and saved again as it was */
	struct conf *d = conf_defaults();
	struct source_set other;
	source_set_init(&other, source_table, d);
	garbage(got, N_SOURCES);
	assert_int_equal(statefile_load(path, &other, d, written, got, err, sizeof(err)), 0);
	expect_restored(&got[I_PROJECTS], true, 0);
	expect_restored(&got[I_COSTS], false, 0);
	expect_restored(&got[I_FORECAST], true, f.forecast_at);
	expect_restored(&got[I_TAGS], true, f.tags_at);
	expect_costs(&other, &f);
	assert_int_equal(projects_catalog(other.v[I_PROJECTS].priv)->nregions, 1);
	assert_int_equal(statefile_save(NULL, path2, &other, written, err, sizeof(err)), 0);
	text = slurp(path2, &len);
	expect_same_doc(text, len, ref);
	free(text);

	/* data stamped later than now (a clock set back) is not served */
	garbage(got, N_SOURCES);
	assert_int_equal(statefile_load(path, &set, c, f.costs_at - 1, got, err, sizeof(err)), 0);
	expect_restored(&got[I_COSTS], false, 0);
	expect_restored(&got[I_TAGS], false, 0);
	expect_costs(&set, &f);

	source_set_free(&other);
	source_set_free(&set);
	conf_free(d);
	conf_free(c);
	cJSON_free(ref);
	fixture_free(&f);
	remove(path);
	remove(path2);
}

#define FMT "\"format\":\"bedrock-cost-exporter-state\""
#define HEAD "{" FMT ",\"version\":1,\"written_at\":1795651600,"
#define CE_REQ "\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":3}"
#define CE_SVC "\"services\":{\"at\":1,\"search\":\"Bedrock\",\"values\":[]}"
#define CE_AT "\"costs_at\":1"
#define CE_SPEND "\"spend\":{\"signature\":\"\",\"days\":[]}"
#define CE_MODELS "\"models\":{\"signature\":\"\",\"days\":[]}"
#define CE_WITH_SPEND(days) \
	CE_REQ "," CE_SVC "," CE_AT ",\"spend\":{\"signature\":\"s\",\"days\":[" days "]}," CE_MODELS
#define CE_OK CE_WITH_SPEND("")
#define DAY(d, est, groups) "{\"day\":\"" d "\",\"estimated\":" est ",\"groups\":" groups "}"
#define ONE_DAY(groups) HEAD CE_WITH_SPEND(DAY("2026-11-26", "true", groups)) "}"
#define PROJ(body) HEAD "\"projects\":{\"us-east-1\":[" body "]}}"
#define P_ID_NAME "\"id\":\"p\",\"name\":\"n\","
#define FORECAST(body) HEAD CE_OK ",\"forecast\":" body "}"
#define TAGS(body) HEAD CE_OK ",\"allocation_tags\":" body "}"

static const struct {
	const char *text;
	const char *says; /* in the error message */
} bad_cases[] = {
	/* the file */
	{ "{" FMT ",\"version\":1,", "not valid JSON" }, /* truncated */
	{ "not json at all", "not valid JSON" },
	{ "", "not valid JSON" },
	{ "[{" FMT ",\"version\":1}]", "not valid JSON" },
	{ HEAD CE_OK "} {}", "not valid JSON" },
	{ "{\"format\":\"something-else\",\"version\":1}", "not a bedrock-cost-exporter state file" },
	{ "{\"version\":1," CE_OK "}", "not a bedrock-cost-exporter state file" },
	{ "{" FMT ",\"version\":0}", "state version 0" },
	{ "{" FMT ",\"version\":2," CE_OK "}", "state version 2" },
	{ "{" FMT ",\"version\":\"1\"," CE_OK "}", "state version" },
	{ "{" FMT "," CE_OK "}", "state version" },
	/* cost_explorer: ce_requests, services, costs_at, spend, models */
	{ "{" FMT ",\"version\":1,\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":\"3\"}}",
	  "cost_explorer:" },
	{ "{" FMT ",\"version\":1,\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":3},"
	  "\"services\":{\"at\":1,\"search\":\"Bedrock\",\"values\":[]},\"costs_at\":1,"
	  "\"spend\":{\"signature\":\"s\",\"days\":[{\"day\":\"2026-11-26\",\"estimated\":true,"
	  "\"groups\":[{\"k\":[1],\"amount\":1}]}]},"
	  "\"models\":{\"signature\":\"\",\"days\":[]},\"projects\":{}}",
	  "cost_explorer:" }, /* a group key that is not a string */
	{ HEAD "\"ce_requests\":[]," CE_SVC "," CE_AT "," CE_SPEND "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD "\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":-1}," CE_SVC "," CE_AT "," CE_SPEND
	  "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD "\"ce_requests\":{\"day\":\"2026-13-01\",\"count\":1}," CE_SVC "," CE_AT "," CE_SPEND
	  "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD CE_REQ ",\"services\":{\"at\":1,\"search\":\"Bedrock\",\"values\":[1]}," CE_AT ","
	  CE_SPEND "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD CE_REQ ",\"services\":{\"at\":1,\"values\":[]}," CE_AT "," CE_SPEND "," CE_MODELS "}",
	  "cost_explorer:" },
	{ HEAD CE_REQ "," CE_AT "," CE_SPEND "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD CE_REQ "," CE_SVC ",\"costs_at\":\"1\"," CE_SPEND "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD CE_REQ "," CE_SVC "," CE_AT "," CE_MODELS "}", "cost_explorer:" },
	{ HEAD CE_REQ "," CE_SVC "," CE_AT "," CE_SPEND ",\"models\":5}", "cost_explorer:" },
	{ HEAD CE_REQ "," CE_SVC "," CE_AT ",\"spend\":{\"signature\":5,\"days\":[]}," CE_MODELS "}",
	  "cost_explorer:" },
	{ HEAD CE_WITH_SPEND(DAY("2026-11-26", "true", "[]") "," DAY("2026-11-25", "true", "[]")) "}",
	  "cost_explorer:" }, /* days out of order */
	{ HEAD CE_WITH_SPEND(DAY("2026-11-26", "true", "[]") "," DAY("2026-11-26", "true", "[]")) "}",
	  "cost_explorer:" }, /* a day twice */
	{ HEAD CE_WITH_SPEND(DAY("2026-11-26", "\"yes\"", "[]")) "}", "cost_explorer:" },
	{ ONE_DAY("{}"), "cost_explorer:" },
	{ ONE_DAY("[{\"k\":[\"a\",\"b\",\"c\"],\"amount\":1}]"), "cost_explorer:" },
	{ ONE_DAY("[{\"k\":[],\"amount\":\"1\"}]"), "cost_explorer:" },
	{ ONE_DAY("[{\"k\":[]}]"), "cost_explorer:" },
	{ ONE_DAY("[[]]"), "cost_explorer:" },
	/* projects */
	{ HEAD "\"projects\":[]}", "projects:" },
	{ HEAD "\"projects\":{\"us-east-1\":{}}}", "projects:" },
	{ PROJ("{\"name\":\"n\",\"status\":\"active\",\"created_at\":5}"), "projects:" }, /* no id */
	{ PROJ("{\"id\":\"\",\"name\":\"n\",\"status\":\"active\",\"created_at\":5}"), "projects:" },
	{ PROJ("{\"id\":\"p\",\"status\":\"active\",\"created_at\":5}"), "projects:" },
	{ PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":\"5\"}"), "projects:" },
	{ PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":-1}"), "projects:" },
	{ PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":5,\"tags\":{\"Team\":1}}"),
	  "projects:" },
	{ PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":5,\"tags\":{\"T\":\"a\",\"T\":\"b\"}}"),
	  "projects:" },
	{ PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":5},7"), "projects:" },
	/* forecast */
	{ FORECAST("5"), "forecast:" },
	{ FORECAST("{\"day\":\"2026-11-26\",\"at\":1,\"mean\":\"1\",\"lower\":0,\"upper\":0}"), "forecast:" },
	{ FORECAST("{\"day\":\"2026-11-26\",\"at\":1,\"mean\":1,\"lower\":0}"), "forecast:" },
	{ FORECAST("{\"day\":\"2026-02-30\",\"at\":1,\"mean\":1,\"lower\":0,\"upper\":0}"), "forecast:" },
	{ FORECAST("{\"at\":1,\"mean\":1,\"lower\":0,\"upper\":0}"), "forecast:" },
	/* allocation_tags */
	{ TAGS("{\"at\":1,\"active\":{\"Application\":1}}"), "allocation_tags:" },
	{ TAGS("{\"at\":1,\"active\":{\"Application\":true,\"Team\":\"false\"}}"), "allocation_tags:" },
	{ TAGS("{\"at\":1,\"active\":[]}"), "allocation_tags:" },
	{ TAGS("{\"active\":{}}"), "allocation_tags:" },
	{ TAGS("{\"at\":\"1\",\"active\":{}}"), "allocation_tags:" },
	{ TAGS("true"), "allocation_tags:" },
};

static void bad_files_change_nothing(void **state)
{
	(void)state;
	const char *good = DIR "/state_good.json", *path = DIR "/state_bad.json";
	const char *saved = DIR "/state_bad_saved.json";
	struct conf *c = parse_conf(RT_CONF);
	struct fixture f;
	fill(&f);
	char *ref = reference_text(&f, 1795651600);
	write_file(good, ref);
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct source_restored got[N_SOURCES];
	char err[256] = "";
	assert_int_equal(statefile_load(good, &set, c, 1795651600, got, err, sizeof(err)), 0);
	void *privs[N_SOURCES];
	for (size_t i = 0; i < N_SOURCES; i++)
		privs[i] = set.v[i].priv;

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		write_file(path, bad_cases[i].text);
		*err = '\0';
		garbage(got, N_SOURCES);
		int rc = statefile_load(path, &set, c, 1795651600, got, err, sizeof(err));
		if (rc != -EPROTO)
			fail_msg("case %zu: %d (%s)", i, rc, bad_cases[i].text);
		if (!strstr(err, bad_cases[i].says))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad_cases[i].says);
		for (size_t s = 0; s < N_SOURCES; s++)
			assert_ptr_equal(set.v[s].priv, privs[s]); /* nothing installed */
		expect_costs(&set, &f);
		expect_same_catalog(projects_catalog(set.v[I_PROJECTS].priv), &f.cat);
	}
	/* the controls: the same documents mended, each into a set of its own, load */
	static const char *const mended[] = {
		"{" FMT ",\"version\":1}",
		HEAD CE_OK "}",
		HEAD CE_WITH_SPEND(DAY("2026-11-25", "true", "[{\"k\":[\"a\",\"b\"],\"amount\":1}]") ","
				   DAY("2026-11-26", "false",
				       "[{\"k\":[],\"amount\":-0.5},{\"k\":[\"\"],\"amount\":0}]")) "}",
		PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":5,\"tags\":{\"T\":\"a\",\"U\":\"b\"}}"),
		PROJ("{" P_ID_NAME "\"status\":\"active\",\"created_at\":5}"),
		FORECAST("{\"day\":\"2026-11-26\",\"at\":1,\"mean\":1,\"lower\":0,\"upper\":0}"),
		TAGS("{\"at\":1,\"active\":{\"Application\":true,\"Team\":false}}"),
	};
	for (size_t i = 0; i < sizeof(mended) / sizeof(mended[0]); i++) {
		struct source_set other;
		source_set_init(&other, source_table, c);
		write_file(path, mended[i]);
		if (statefile_load(path, &other, c, 1795651600, got, err, sizeof(err)))
			fail_msg("mended %zu: %s", i, err);
		source_set_free(&other);
	}

	/* a path that cannot be read is as bad */
	*err = '\0';
	assert_int_equal(statefile_load(DIR, &set, c, 1795651600, got, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "Is a directory")); /* not "Input/output error" */
	/* no file: -ENOENT, nothing changed */
	remove(DIR "/no_such_state.json");
	assert_int_equal(statefile_load(DIR "/no_such_state.json", &set, c, 1795651600, got, err,
					 sizeof(err)), -ENOENT);
	for (size_t s = 0; s < N_SOURCES; s++)
		assert_ptr_equal(set.v[s].priv, privs[s]);
	/* and every source still saves what the good file held (forecast and allocation tags
	 * have no accessor: this shows theirs is untouched too) */
	assert_int_equal(statefile_save(NULL, saved, &set, 1795651600, err, sizeof(err)), 0);
	size_t len;
	char *text = slurp(saved, &len);
	expect_same_doc(text, len, ref);
	free(text);

	source_set_free(&set);
	conf_free(c);
	cJSON_free(ref);
	fixture_free(&f);
	remove(good);
	remove(path);
	remove(saved);
}

/* A file whose cost part is fine but whose allocation_tags part is not installs nothing. */
static void all_or_nothing(void **state)
{
	(void)state;
	const char *good = DIR "/state_aon_good.json", *path = DIR "/state_aon.json";
	struct conf *c = parse_conf(RT_CONF);
	struct fixture f;
	fill(&f);
	char *ref = reference_text(&f, 1795651600);
	write_file(good, ref);

	/* other costs, other projects, a good forecast: each part alone would load */
	static const char *const head =
		HEAD "\"ce_requests\":{\"day\":\"2024-09-30\",\"count\":99}," CE_SVC "," CE_AT ","
		"\"spend\":{\"signature\":\"s\",\"days\":["
		DAY("2024-09-30", "false", "[{\"k\":[\"x\"],\"amount\":42}]") "]},"
		CE_MODELS ",\"forecast\":{\"day\":\"2024-09-30\",\"at\":1,\"mean\":1,\"lower\":0,\"upper\":2},"
		"\"projects\":{\"us-east-1\":[{\"id\":\"other\",\"name\":\"o\",\"status\":\"active\","
		"\"created_at\":1}]},";
	char *bad = xasprintf("%s\"allocation_tags\":{\"at\":1,\"active\":{\"Team\":null}}}", head);
	char *fine = xasprintf("%s\"allocation_tags\":{\"at\":1,\"active\":{\"Team\":false}}}", head);
	write_file(path, bad);

	/* into a set with data: that data stays */
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct source_restored got[N_SOURCES];
	char err[256] = "";
	assert_int_equal(statefile_load(good, &set, c, 1795651600, got, err, sizeof(err)), 0);
	void *privs[N_SOURCES];
	for (size_t i = 0; i < N_SOURCES; i++)
		privs[i] = set.v[i].priv;
	*err = '\0';
	assert_int_equal(statefile_load(path, &set, c, 1795651600, got, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "allocation_tags"));
	assert_null(strstr(err, "cost_explorer"));
	for (size_t i = 0; i < N_SOURCES; i++)
		assert_ptr_equal(set.v[i].priv, privs[i]);
	expect_costs(&set, &f);
	expect_same_catalog(projects_catalog(set.v[I_PROJECTS].priv), &f.cat);

	/* into a fresh set: it stays empty */
	struct source_set fresh;
	source_set_init(&fresh, source_table, c);
	for (size_t i = 0; i < N_SOURCES; i++)
		privs[i] = fresh.v[i].priv;
	assert_int_equal(statefile_load(path, &fresh, c, 1795651600, got, err, sizeof(err)), -EPROTO);
	for (size_t i = 0; i < N_SOURCES; i++)
		assert_ptr_equal(fresh.v[i].priv, privs[i]);
	assert_int_equal(cost_explorer_meter(fresh.v[I_COSTS].priv)->count, 0);
	assert_int_equal(cost_explorer_spend(fresh.v[I_COSTS].priv)->n, 0);
	assert_false(projects_catalog(fresh.v[I_PROJECTS].priv)->regions[0].has_data);

	/* the same file with that one part mended loads whole */
	write_file(path, fine);
	assert_int_equal(statefile_load(path, &fresh, c, 1795651600, got, err, sizeof(err)), 0);
	assert_int_equal(cost_explorer_meter(fresh.v[I_COSTS].priv)->count, 99);
	assert_true(cost_explorer_spend(fresh.v[I_COSTS].priv)->days[0].g[0].amount == 42);
	assert_string_equal(projects_catalog(fresh.v[I_PROJECTS].priv)->regions[0].projects.v[0].id,
			    "other");
	expect_restored(&got[I_TAGS], true, 1);

	source_set_free(&fresh);
	source_set_free(&set);
	free(bad);
	free(fine);
	conf_free(c);
	cJSON_free(ref);
	fixture_free(&f);
	remove(good);
	remove(path);
}

static int cmp_tag_for_test(const void *a, const void *b)
{
	return strcmp(((const struct project_tag *)a)->key, ((const struct project_tag *)b)->key);
}

/* A hostile string as the exporter can hold one: everything it keeps came through the
 * JSON reader (or is a key the writer is given), so it is valid UTF-8 (jsontape.h); the
 * replacement is the test helper's. Caller frees. */
static char *hostile_text(size_t min, size_t max)
{
	char *raw = hostile(min, max), *fixed = ref_utf8_fix(raw);
	free(raw);
	return fixed;
}

/* Random groups (0, 1 or 2 hostile keys; amounts finite) for @n periods of @s from @day,
 * each @len days long (1: DAILY). */
static void hostile_periods(struct ce_series *s, long day, long len, long n, size_t ngroups)
{
	for (long d = 0; d < n; d++) {
		long start = day + d * len;
		struct ce_group *g = add_period(s, start, len > 1 ? start + len : 0, d % 2, ngroups);
		for (size_t j = 0; j < ngroups; j++) {
			int nk = (int)(j % 3);
			for (int q = 0; q < nk; q++)
				g[j].k[q] = hostile_text(0, 24);
			g[j].amount = j % 4 == 3 ? any_finite() : ce_amount();
		}
	}
}

/* A state whose every string is hostile and whose amounts are random (finite); a file of the
 * previous release (no "spend_queries") if @v1. */
static void hostile_fixture(struct fixture *f, bool v1)
{
	memset(f, 0, sizeof(*f));
	f->req_day = 20000;
	f->req_count = 12345;
	for (int i = 0; i < 3; i++)
		textlist_push(&f->services, hostile_text(0, 30));
	f->services_at = 1795651200.123456789;
	f->services_search = hostile_text(0, 20);
	f->costs_at = 1795651300.987654321;
	f->spend_sig = hostile_text(1, 40);
	f->models_sig = hostile_text(1, 40);
	hostile_periods(&f->spend, 19990, 1, 5, 200);
	hostile_periods(&f->models, 19990, 1, 5, 200);
	f->v1 = v1;
	if (!v1) {
		f->q[0].day = 19994;
		for (int i = 1; i < 4; i++) {
			f->q[i].day = 19993 + i;
			hostile_periods(&f->q[i].series, 19960 + 10 * i, 3 * i, 2, 50);
		}
		f->q[3].partial_day = 19994;
		f->q[3].pages = 7;
		f->q[3].per_page = 50;
		f->q[3].token = hostile_text(1, 100);
		hostile_periods(&f->q[3].partial, 19900, 31, 1, 50);
	}
	f->has_forecast = true;
	f->forecast_day = 20001;
	f->forecast_at = 1795651400.5;
	f->forecast_mean = ce_amount();
	f->forecast_lower = 0.1 + 0.2;
	f->forecast_upper = 1e-300;
	for (int i = 0; i < 4; i++) {
		char *k = hostile_text(0, 12);
		textlist_push(&f->tag_keys, xasprintf("%s%d", k, i)); /* distinct */
		free(k);
	}
	f->tag_active = xcalloc(4, sizeof(bool));
	f->tag_active[1] = f->tag_active[2] = true;
	f->tags_at = 1795651500.25;

	fixture_regions(f, "eu-west-1", "us-east-1");
	struct region_projects *r = &f->cat.regions[1];
	r->has_data = true;
	r->projects.n = 30;
	r->projects.v = xcalloc(r->projects.n, sizeof(struct project));
	for (size_t i = 0; i < r->projects.n; i++) {
		struct project *p = &r->projects.v[i];
		p->id = hostile_text(1, 20);
		p->name = hostile_text(0, 40);
		p->arn = hostile_text(0, 60);
		p->status = hostile_text(0, 10);
		p->created_at = i % 2 ? 1767225600 + (double)i : 1767225600.123 + (double)i / 7;
		p->ntags = i % 5;
		p->tags = xcalloc(p->ntags + 1, sizeof(*p->tags));
		for (size_t t = 0; t < p->ntags; t++) {
			char *k = hostile_text(0, 10);
			p->tags[t].key = xasprintf("%s%zu", k, t);
			free(k);
			p->tags[t].value = hostile_text(0, 30);
		}
		qsort(p->tags, p->ntags, sizeof(*p->tags), cmp_tag_for_test);
	}
}

static void hostile_state_round_trips(void **state)
{
	(void)state;
	const char *path = DIR "/state_hostile.json", *path2 = DIR "/state_hostile2.json";
	const char *path3 = DIR "/state_hostile3.json";
	struct conf *c = parse_conf("projects: { regions = [\"eu-west-1\", \"us-east-1\"]; };\n");
	char err[256] = "";
	for (int round = 0; round < 5; round++) {
		struct fixture f;
		bool v1 = round == 2; /* a file of the previous release */
		hostile_fixture(&f, v1);
		bool matching = round % 2 == 0; /* the cost cache was queried with this configuration */
		if (matching) {
			free(f.spend_sig);
			f.spend_sig = spend_sig_for(c, &f.services);
		}
		double now = 1795651600.0 + round / 3.0;
		char *ref = reference_text(&f, now);
		write_file(path, ref);

		struct source_set set;
		source_set_init(&set, source_table, c);
		struct source_restored got[N_SOURCES];
		garbage(got, N_SOURCES);
		if (statefile_load(path, &set, c, now, got, err, sizeof(err)))
			fail_msg("round %d: %s", round, err);
		expect_restored(&got[I_PROJECTS], true, 0);
		/* the previous release's cache is served and queried again at once */
		expect_restored(&got[I_COSTS], matching, matching && !v1 ? f.costs_at : 0);
		expect_restored(&got[I_FORECAST], true, f.forecast_at);
		expect_restored(&got[I_TAGS], true, f.tags_at);
		expect_costs(&set, &f);
		expect_same_catalog(projects_catalog(set.v[I_PROJECTS].priv), &f.cat);

		/* saved again: the same document (from the previous release's, one that says the
		 * daily series answered for the day it was read, and nothing else) */
		if (v1) {
			cJSON_free(ref);
			f.v1 = false;
			f.q[0].day = (long)floor(f.costs_at / 86400);
			ref = reference_text(&f, now);
		}
		assert_int_equal(statefile_save(NULL, path2, &set, now, err, sizeof(err)), 0);
		size_t len;
		char *text = slurp(path2, &len);
		expect_same_doc(text, len, ref);

		/* and what is saved is a fixed point: loaded and saved again, the same bytes */
		struct source_set again;
		source_set_init(&again, source_table, c);
		assert_int_equal(statefile_load(path2, &again, c, now, got, err, sizeof(err)), 0);
		assert_int_equal(statefile_save(NULL, path3, &again, now, err, sizeof(err)), 0);
		expect_same_file(path3, text, len);

		free(text);
		source_set_free(&again);
		source_set_free(&set);
		cJSON_free(ref);
		fixture_free(&f);
	}
	conf_free(c);
	remove(path);
	remove(path2);
	remove(path3);
}

/* ---- the generic core, driven by a source of the test's own ---- */

struct tsrc {
	long count;
	double value;
	char *name;
};

static bool leave_open; /* the test source's save() forgets to close its object */

static bool ts_enabled(const struct conf *c)
{
	(void)c;
	return true;
}

static long ts_interval(const struct conf *c)
{
	(void)c;
	return 600;
}

static void *ts_create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, sizeof(struct tsrc));
}

static void ts_destroy(void *priv)
{
	struct tsrc *s = priv;
	if (!s)
		return;
	free(s->name);
	free(s);
}

/* "test": {"count": <int>, "value": <number>, "name": <string>} */
static void ts_save(const void *priv, struct jsonw *w)
{
	const struct tsrc *s = priv;
	jsonw_key(w, "test");
	jsonw_object_begin(w);
	jsonw_key(w, "count");
	jsonw_int(w, s->count);
	jsonw_key(w, "value");
	jsonw_number(w, s->value);
	jsonw_key(w, "name");
	jsonw_string(w, s->name);
	if (!leave_open)
		jsonw_object_end(w);
}

static void *ts_restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
			struct source_restored *out, char *err, size_t errlen)
{
	struct tsrc *s = ts_create(c);
	size_t o = jt_get(t, root, "test");
	if (o == JT_NONE)
		return s;
	double count;
	if (!jt_is(t, o, JT_OBJECT) || jt_number(t, jt_get(t, o, "count"), &count) ||
	    jt_number(t, jt_get(t, o, "value"), &s->value) ||
	    !(s->name = jt_strdup(t, jt_get(t, o, "name")))) {
		snprintf(err, errlen, "test: malformed");
		ts_destroy(s);
		return NULL;
	}
	s->count = (long)count;
	out->has_data = true;
	out->at = now;
	return s;
}

static const struct source_def test_source = {
	.name = "test",
	.enabled = ts_enabled,
	.interval = ts_interval,
	.create = ts_create,
	.destroy = ts_destroy,
	.save = ts_save,
	.restore = ts_restore,
};

static const struct source_def *const test_table[] = { &test_source, NULL };

static struct tsrc *live(const struct source_set *set)
{
	return set->v[0].priv;
}

/* Loads @path into a fresh set of the test table; caller frees with source_set_free. */
static void load_test_state(const char *path, struct source_set *set, const struct conf *c)
{
	struct source_restored got[1];
	char err[256] = "";
	source_set_init(set, test_table, c);
	if (statefile_load(path, set, c, 5000, got, err, sizeof(err)))
		fail_msg("load %s: %s", path, err);
	assert_true(got[0].has_data);
}

static void non_finite_is_not_written(void **state)
{
	(void)state;
	const char *path = DIR "/state_nan.json";
	remove(path);
	struct conf *c = conf_defaults();
	struct source_set set;
	source_set_init(&set, test_table, c);
	struct tsrc *ts = live(&set);
	ts->count = 7;
	ts->value = 0.1 + 0.2;
	ts->name = xstrdup("n");
	char err[256] = "";
	struct statefile_writer w = { 0 };
	assert_int_equal(statefile_save(&w, path, &set, 1795651600, err, sizeof(err)), 0);
	size_t len0;
	char *before = slurp(path, &len0);
	const double bad[] = { NAN, -NAN, INFINITY, -INFINITY };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ts->value = bad[i];
		*err = '\0';
		assert_int_equal(statefile_save(NULL, path, &set, 1795651700, err, sizeof(err)), -EDOM);
		assert_true(*err);
		*err = '\0';
		assert_int_equal(statefile_save(&w, path, &set, 1795651700, err, sizeof(err)), -EDOM);
		assert_true(*err);
	}
	ts->value = 0.1 + 0.2;
	ts->count = 8; /* so the writer cannot skip the next save */

	/* the same through a real source: a NaN amount in the cost cache */
	struct conf *rc = parse_conf(RT_CONF);
	struct fixture f;
	fill(&f);
	char *ref = reference_text(&f, 1795651600);
	write_file(DIR "/state_nan_ref.json", ref);
	struct source_set real;
	source_set_init(&real, source_table, rc);
	struct source_restored got[N_SOURCES];
	assert_int_equal(statefile_load(DIR "/state_nan_ref.json", &real, rc, 1795651600, got, err,
					sizeof(err)), 0);
	struct ce_series *spend = (struct ce_series *)cost_explorer_spend(real.v[I_COSTS].priv);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		spend->days[0].g[1].amount = bad[i];
		*err = '\0';
		assert_int_equal(statefile_save(NULL, path, &real, 1795651700, err, sizeof(err)), -EDOM);
		assert_true(*err);
	}

	expect_same_file(path, before, len0); /* the last good file stays */
	assert_false(exists(DIR "/state_nan.json.tmp"));

	/* the good state writes, and its numbers read back exactly */
	assert_int_equal(statefile_save(&w, path, &set, 1795651800, err, sizeof(err)), 0);
	struct source_set back;
	load_test_state(path, &back, c);
	assert_int_equal(live(&back)->count, 8);
	assert_true(same_double(live(&back)->value, 0.1 + 0.2));
	assert_string_equal(live(&back)->name, "n");

	free(before);
	source_set_free(&back);
	source_set_free(&real);
	source_set_free(&set);
	cJSON_free(ref);
	fixture_free(&f);
	conf_free(rc);
	conf_free(c);
	remove(path);
	remove(DIR "/state_nan_ref.json");
}

/* A source whose save() leaves its object open would write a file no load accepts: the save
 * fails and the last good file stays. */
static void malformed_source_part_is_not_written(void **state)
{
	(void)state;
	const char *path = DIR "/state_open.json";
	remove(path);
	struct conf *c = conf_defaults();
	struct source_set set;
	source_set_init(&set, test_table, c);
	struct tsrc *ts = live(&set);
	ts->count = 7;
	ts->name = xstrdup("n");
	char err[256] = "";
	struct statefile_writer w = { 0 };
	assert_int_equal(statefile_save(&w, path, &set, 1000, err, sizeof(err)), 0);
	size_t len0;
	char *before = slurp(path, &len0);

	leave_open = true;
	ts->count = 8;
	*err = '\0';
	int rc = statefile_save(NULL, path, &set, 2000, err, sizeof(err));
	int rcw = statefile_save(&w, path, &set, 2000, err, sizeof(err));
	leave_open = false;
	if (rc >= 0 || rcw >= 0) {
		size_t len;
		char *now = slurp(path, &len);
		fail_msg("saved (%d, %d) a document with an open object: %.*s", rc, rcw, (int)len, now);
	}
	assert_true(*err);
	expect_same_file(path, before, len0);
	assert_false(exists(DIR "/state_open.json.tmp"));

	struct source_set back;
	load_test_state(path, &back, c);
	assert_int_equal(live(&back)->count, 7);
	free(before);
	source_set_free(&back);
	source_set_free(&set);
	conf_free(c);
	remove(path);
}

static void stat_ok(const char *path, struct stat *st)
{
	assert_int_equal(stat(path, st), 0);
}

static void unchanged_state_is_not_rewritten(void **state)
{
	(void)state;
	const char *path = DIR "/state_skip.json";
	remove(path);
	rmdir(DIR "/state_skip.json.tmp");
	struct conf *c = conf_defaults();
	struct source_set set, back;
	source_set_init(&set, test_table, c);
	struct tsrc *ts = live(&set);
	ts->count = 7;
	ts->value = 1e-10;
	ts->name = xstrdup("n");
	char err[256] = "";
	struct statefile_writer w = { 0 };
	struct stat st0, st;

	assert_int_equal(statefile_save(&w, path, &set, 1000, err, sizeof(err)), 0);
	assert_true(w.written);
	stat_ok(path, &st0);
	size_t len0;
	char *first = slurp(path, &len0);

	/* Same state, later time: not written. Every write renames a new file (a new inode,
	 * mode 0600) into place, so an unchanged inode, and a mode we changed by hand staying
	 * as it is, show that nothing was written; the bytes (written_at too) are the first ones. */
	assert_int_equal(chmod(path, 0640), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(statefile_save(&w, path, &set, 2000 + i, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_int_equal(st.st_mode & 0777, 0640);
	expect_same_file(path, first, len0);
	assert_non_null(strstr(first, "\"written_at\":1000,"));

	/* without a writer: always written */
	assert_int_equal(statefile_save(NULL, path, &set, 2500, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* ... and then @w no longer describes the file on disk: written again */
	assert_int_equal(statefile_save(&w, path, &set, 2600, err, sizeof(err)), 0);
	size_t len;
	char *text = slurp(path, &len);
	assert_non_null(strstr(text, "\"written_at\":2600,"));
	free(text);
	stat_ok(path, &st0);

	/* a changed state is written: a new count, one ulp of a number, a new string */
	ts->count = 8;
	assert_int_equal(statefile_save(&w, path, &set, 3000, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	load_test_state(path, &back, c);
	assert_int_equal(live(&back)->count, 8);
	source_set_free(&back);
	st0 = st;
	ts->value = nextafter(1e-10, 1);
	assert_int_equal(statefile_save(&w, path, &set, 3100, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	load_test_state(path, &back, c);
	assert_true(same_double(live(&back)->value, nextafter(1e-10, 1)));
	source_set_free(&back);
	st0 = st;
	free(ts->name);
	ts->name = xstrdup("m");
	assert_int_equal(statefile_save(&w, path, &set, 3200, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	st0 = st;
	assert_int_equal(statefile_save(&w, path, &set, 3250, err, sizeof(err)), 0); /* unchanged */
	stat_ok(path, &st);
	assert_int_equal(st.st_ino, st0.st_ino);

	/* removed by someone: written again although the state did not change */
	assert_int_equal(remove(path), 0);
	assert_int_equal(statefile_save(&w, path, &set, 3300, err, sizeof(err)), 0);
	stat_ok(path, &st0);
	/* replaced by someone (another inode, other bytes): written again */
	write_file(DIR "/state_skip.other", "{}");
	assert_int_equal(rename(DIR "/state_skip.other", path), 0);
	assert_int_equal(statefile_save(&w, path, &set, 3400, err, sizeof(err)), 0);
	load_test_state(path, &back, c);
	assert_int_equal(live(&back)->count, 8);
	assert_string_equal(live(&back)->name, "m");
	source_set_free(&back);

	/* a failed write (the temporary name is taken by a directory) leaves the old file and
	 * clears @w: the next save writes, even of the state the file already holds */
	stat_ok(path, &st0);
	ts->count = 9;
	assert_int_equal(mkdir(DIR "/state_skip.json.tmp", 0700), 0);
	*err = '\0';
	assert_true(statefile_save(&w, path, &set, 3500, err, sizeof(err)) < 0);
	assert_true(*err);
	assert_false(w.written);
	stat_ok(path, &st);
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_int_equal(rmdir(DIR "/state_skip.json.tmp"), 0);
	ts->count = 8; /* what the file holds */
	assert_int_equal(statefile_save(&w, path, &set, 3600, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	text = slurp(path, &len);
	assert_non_null(strstr(text, "\"written_at\":3600,"));
	free(text);
	ts->count = 9;
	assert_int_equal(statefile_save(&w, path, &set, 3700, err, sizeof(err)), 0);
	load_test_state(path, &back, c);
	assert_int_equal(live(&back)->count, 9);
	source_set_free(&back);

	free(first);
	source_set_free(&set);
	conf_free(c);
	remove(path);
}

/* ---- the previous release's file ---- */

/*
 * A state file exactly as the previous release (032a678) wrote it, byte for byte: its
 * daemon ran once (--once) against tests/fake_aws with two regions, three ledger rows (one
 * of them untagged) and the default allocation tags, configured with
 * projects.regions = ["us-east-1", "eu-west-1"] and the default attribution tags.
 */
static const char previous_release_file[] =
	"{\"format\":\"bedrock-cost-exporter-state\",\"version\":1,\"written_at\":1796402173.8543291,"
	"\"ce_requests\":{\"day\":\"2026-12-04\",\"count\":5},\"services\":{\"at\":1796402173.6303055"
	",\"search\":\"Bedrock\",\"values\":[\"Amazon Bedrock\",\"Claude Sonnet 4.5 (Amazon Bedrock E"
	"dition)\"]},\"costs_at\":1796402173.6303055,\"spend\":{\"signature\":\"spend|UnblendedCost|A"
	"pplication\\u001fEnvironment\\u001f|Amazon Bedrock\\u001fClaude Sonnet 4.5 (Amazon Bedrock E"
	"dition)\\u001f\",\"days\":[{\"day\":\"2026-11-01\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-02\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-03\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-04\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-05\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-06\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-07\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-08\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-09\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-10\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-11\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-12\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-13\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-14\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-15\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-16\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-17\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-18\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-19\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-20\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-21\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-22\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-23\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-24\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-25\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-26\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-27\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-28\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-11-29\",\"estimated\":false,\"groups\":[]},{\"day\":\"2026-11-30\","
	"\"estimated\":false,\"groups\":[]},{\"day\":\"2026-12-01\",\"estimated\":false,\"groups\":"
	"[]},{\"day\":\"2026-12-02\",\"estimated\":true,\"groups\":[{\"k\":[\"\",\"\"],\"amount\":"
	"0.25},{\"k\":[\"CustomerChatbot\",\"Production\"],\"amount\":3.4172839012}]},{\"day\":"
	"\"2026-12-03\",\"estimated\":true,\"groups\":[]},{\"day\":\"2026-12-04\",\"estimated\":"
	"true,\"groups\":[{\"k\":[\"Translator\",\"Production\"],\"amount\":1.0000000001}]}]},"
	"\"models\":{\"signature\":\"models|UnblendedCost|Amazon Bedrock\\u001fClaude Sonnet 4.5 (Ama"
	"zon Bedrock Edition)\\u001f\",\"days\":[{\"day\":\"2026-12-01\",\"estimated\":false,"
	"\"groups\":[]},{\"day\":\"2026-12-02\",\"estimated\":true,\"groups\":[{\"k\":[\"Amazon Bedro"
	"ck\",\"USE1-openai.gpt-oss-120b-mantle-input-tokens-standard\"],\"amount\":3.4172839012},"
	"{\"k\":[\"Claude Sonnet 4.5 (Amazon Bedrock Edition)\",\"USE1-MP:USE1_InputTokens-Units\"],"
	"\"amount\":0.25}]},{\"day\":\"2026-12-03\",\"estimated\":true,\"groups\":[]},{\"day\":"
	"\"2026-12-04\",\"estimated\":true,\"groups\":[{\"k\":[\"Amazon Bedrock\",\"EU-openai.gpt-oss"
	"-20b-mantle-output-tokens-standard\"],\"amount\":1.0000000001}]}]},\"forecast\":"
	"{\"day\":\"2026-12-04\",\"at\":1796402173.7663333,\"mean\":14.6691356048,\"lower\":"
	"12.4687652641,\"upper\":16.8695059455},\"allocation_tags\":{\"at\":1796402173.8102815,"
	"\"active\":{\"Application\":true,\"Environment\":true,\"Team\":true,\"CostCenter\":"
	"false}},\"projects\":{\"us-east-1\":[{\"id\":\"default\",\"name\":\"Default project\","
	"\"arn\":\"arn:aws:bedrock-mantle:us-east-1:123456789012:project/default\",\"status\":"
	"\"active\",\"created_at\":1767603600,\"tags\":{}},{\"id\":\"proj_chat\",\"name\":"
	"\"Chat \\\"Prod\\\" \303\274n\303\257\",\"arn\":\"arn:aws:bedrock-mantle:us-east-1:"
	"123456789012:project/proj_chat\",\"status\":\"active\",\"created_at\":1768226601.5,"
	"\"tags\":{\"Application\":\"CustomerChatbot\",\"Environment\":\"Production\",\"Team\":"
	"\"CX\\\\ops\"}}],\"eu-west-1\":[{\"id\":\"proj_tr\",\"name\":\"Translator-Prod\","
	"\"arn\":\"arn:aws:bedrock-mantle:eu-west-1:123456789012:project/proj_tr\",\"status\":"
	"\"archived\",\"created_at\":1768000000,\"tags\":{\"Application\":\"Translator\","
	"\"Environment\":\"Production\"}}]}}"
	;

#define PREV_CONF "projects: { regions = [\"us-east-1\", \"eu-west-1\"]; };\n"
#define PREV_WRITTEN_AT 1796402173.8543291

/* The top-level members of JSON object text @text: name and value as raw bytes. */
struct member {
	const char *key, *val;
	size_t klen, vlen;
};

static size_t top_members(const char *text, size_t len, struct member *m, size_t max)
{
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, text, len), 0);
	assert_true(jt_is(&t, 0, JT_OBJECT));
	size_t n = 0;
	for (size_t k = jt_first(&t, 0); k != JT_NONE; k = jt_next(&t, 0, k)) {
		assert_true(n < max);
		const struct jt_tok *kt = &t.t[k], *vt = &t.t[k + 1];
		size_t quote = vt->type == JT_STRING; /* a string's span leaves out its quotes */
		m[n++] = (struct member){ text + kt->start, text + vt->start - quote, kt->len,
					  vt->len + 2 * quote };
	}
	jsontape_free(&t);
	return n;
}

/* @got and @want (JSON object texts) have the same top-level members, each exactly once, and
 * each member's value is the same bytes. */
static void expect_same_members_bytes(const char *got, size_t glen, const char *want, size_t wlen)
{
	struct member g[32], w[32];
	size_t ng = top_members(got, glen, g, 32), nw = top_members(want, wlen, w, 32);
	assert_int_equal(ng, nw);
	for (size_t i = 0; i < nw; i++) {
		const struct member *found = NULL;
		for (size_t j = 0; j < ng; j++)
			if (g[j].klen == w[i].klen && memcmp(g[j].key, w[i].key, w[i].klen) == 0) {
				if (found)
					fail_msg("\"%.*s\" saved twice", (int)w[i].klen, w[i].key);
				found = &g[j];
			}
		if (!found)
			fail_msg("\"%.*s\" not saved", (int)w[i].klen, w[i].key);
		if (found->vlen != w[i].vlen || memcmp(found->val, w[i].val, w[i].vlen) != 0)
			fail_msg("\"%.*s\" saved as\n%.*s\nthe previous release wrote\n%.*s",
				 (int)w[i].klen, w[i].key, (int)found->vlen, found->val, (int)w[i].vlen,
				 w[i].val);
	}
}

/*
 * The previous release's file as this release saves it (caller frees): the same bytes with
 * "spend_queries" after "spend", saying that the daily query answered for the day the costs
 * were read (2026-12-04) and no other query has been made.
 */
#define PREV_QUERIES                                                                       \
	",\"spend_queries\":{\"daily\":{\"day\":\"2026-12-04\"},"                             \
	"\"baseline\":{\"day\":\"\",\"days\":[]},\"month\":{\"day\":\"\",\"days\":[]},"          \
	"\"previous\":{\"day\":\"\",\"days\":[]}}"

static char *previous_release_file_saved(size_t *len)
{
	size_t plen = sizeof(previous_release_file) - 1, qlen = sizeof(PREV_QUERIES) - 1;
	struct member m[32];
	size_t n = top_members(previous_release_file, plen, m, 32), at = 0;
	for (size_t i = 0; i < n; i++)
		if (m[i].klen == 5 && memcmp(m[i].key, "spend", 5) == 0)
			at = (size_t)(m[i].val - previous_release_file) + m[i].vlen;
	assert_true(at > 0);
	char *out = xmalloc(plen + qlen + 1);
	memcpy(out, previous_release_file, at);
	memcpy(out + at, PREV_QUERIES, qlen);
	memcpy(out + at + qlen, previous_release_file + at, plen - at + 1);
	*len = plen + qlen;
	return out;
}

static const struct ce_day *day_of(const struct ce_series *s, int y, int m, int d)
{
	const struct ce_day *day = ce_series_find(s, days_from_civil(y, m, d));
	assert_non_null(day);
	return day;
}

static void expect_group(const struct ce_group *g, const char *k0, const char *k1, double amount)
{
	assert_string_equal(g->k[0], k0);
	assert_string_equal(g->k[1], k1);
	assert_true(same_double(g->amount, amount));
}

static void previous_release_file_loads(void **state)
{
	(void)state;
	const char *path = DIR "/state_prev.json", *path2 = DIR "/state_prev2.json";
	size_t plen = sizeof(previous_release_file) - 1;
	assert_int_equal(plen, 3864); /* the file's size: the literal is whole */
	write_bytes(path, previous_release_file, plen);
	struct conf *c = parse_conf(PREV_CONF);
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct source_restored got[N_SOURCES];
	garbage(got, N_SOURCES);
	char err[256] = "";
	if (statefile_load(path, &set, c, PREV_WRITTEN_AT + 60, got, err, sizeof(err)))
		fail_msg("%s", err);
	expect_restored(&got[I_PROJECTS], true, 0);
	/* same attribution tags: served, and the queries the previous release did not make are
	 * made at once */
	expect_restored(&got[I_COSTS], true, 0);
	expect_restored(&got[I_FORECAST], true, 1796402173.7663333);
	expect_restored(&got[I_TAGS], true, 1796402173.8102815);

	void *ce = set.v[I_COSTS].priv;
	const struct ce_meter *m = cost_explorer_meter(ce);
	assert_int_equal(m->day, days_from_civil(2026, 12, 4));
	assert_int_equal(m->count, 5);
	assert_int_equal(ce_meter_remaining(m, 40, PREV_WRITTEN_AT + 60), 35);
	double at;
	const struct textlist *sv = cost_explorer_services(ce, &at);
	assert_true(same_double(at, 1796402173.6303055));
	assert_int_equal(sv->n, 2);
	assert_string_equal(sv->v[0], "Amazon Bedrock");
	assert_string_equal(sv->v[1], "Claude Sonnet 4.5 (Amazon Bedrock Edition)");
	const struct ce_series *spend = cost_explorer_spend(ce);
	assert_int_equal(spend->n, 34); /* 2026-11-01 .. 2026-12-04 */
	assert_int_equal(spend->days[0].day, days_from_civil(2026, 11, 1));
	assert_false(day_of(spend, 2026, 12, 1)->estimated);
	assert_int_equal(day_of(spend, 2026, 12, 1)->n, 0);
	const struct ce_day *d = day_of(spend, 2026, 12, 2);
	assert_true(d->estimated);
	assert_int_equal(d->n, 2);
	expect_group(&d->g[0], "", "", 0.25); /* untagged */
	expect_group(&d->g[1], "CustomerChatbot", "Production", 3.4172839012);
	d = day_of(spend, 2026, 12, 4);
	assert_int_equal(d->n, 1);
	expect_group(&d->g[0], "Translator", "Production", 1.0000000001);

	const struct project_catalog *cat = projects_catalog(set.v[I_PROJECTS].priv);
	assert_int_equal(cat->nregions, 2);
	const struct region_projects *us = &cat->regions[0], *eu = &cat->regions[1];
	assert_string_equal(us->region, "us-east-1");
	assert_true(us->has_data);
	assert_int_equal(us->projects.n, 2);
	assert_string_equal(us->projects.v[0].id, "default");
	assert_string_equal(us->projects.v[0].name, "Default project");
	assert_string_equal(us->projects.v[0].arn,
			    "arn:aws:bedrock-mantle:us-east-1:123456789012:project/default");
	assert_int_equal(us->projects.v[0].ntags, 0);
	const struct project *p = &us->projects.v[1];
	assert_string_equal(p->id, "proj_chat");
	assert_string_equal(p->name, "Chat \"Prod\" \303\274n\303\257");
	assert_string_equal(p->status, "active");
	assert_true(p->created_at == 1768226601.5);
	assert_int_equal(p->ntags, 3);
	assert_string_equal(project_tag(p, "Application"), "CustomerChatbot");
	assert_string_equal(project_tag(p, "Environment"), "Production");
	assert_string_equal(project_tag(p, "Team"), "CX\\ops");
	assert_string_equal(eu->region, "eu-west-1");
	assert_true(eu->has_data);
	assert_int_equal(eu->projects.n, 1);
	assert_string_equal(eu->projects.v[0].id, "proj_tr");
	assert_string_equal(eu->projects.v[0].status, "archived");
	assert_true(eu->projects.v[0].created_at == 1768000000);

	/* saved again at the same time: every member the same bytes as the previous release's,
	 * and the new one */
	assert_int_equal(statefile_save(NULL, path2, &set, PREV_WRITTEN_AT, err, sizeof(err)), 0);
	size_t len, wlen;
	char *text = slurp(path2, &len), *want = previous_release_file_saved(&wlen);
	expect_same_members_bytes(text, len, want, wlen);
	free(want);
	free(text);

	source_set_free(&set);
	conf_free(c);
	remove(path);
	remove(path2);
}

/* What this release saves of the previous release's file is that file, byte for byte, with
 * the one new member: the members in the order the previous release wrote them too. */
static void saves_what_the_previous_release_saved(void **state)
{
	(void)state;
	const char *path = DIR "/state_prevb.json", *path2 = DIR "/state_prevb2.json";
	size_t plen = sizeof(previous_release_file) - 1;
	write_bytes(path, previous_release_file, plen);
	struct conf *c = parse_conf(PREV_CONF);
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct source_restored got[N_SOURCES];
	char err[256] = "";
	assert_int_equal(statefile_load(path, &set, c, PREV_WRITTEN_AT + 60, got, err, sizeof(err)), 0);
	assert_int_equal(statefile_save(NULL, path2, &set, PREV_WRITTEN_AT, err, sizeof(err)), 0);
	size_t len, wlen;
	char *text = slurp(path2, &len), *want = previous_release_file_saved(&wlen);
	/* the same bytes, member by member; the members come in the order of the source table
	 * (readers look them up by name, so the order is not part of the format) */
	expect_same_members_bytes(text, len, want, wlen);
	assert_int_equal(len, wlen);
	free(want);
	free(text);
	source_set_free(&set);
	conf_free(c);
	remove(path);
	remove(path2);
}

int main(void)
{
	log_setup(LOG_LEVEL_WARN, LOG_FORMAT_LOGFMT); /* restores under another configuration say so */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(bad_files_change_nothing),
		cmocka_unit_test(all_or_nothing),
		cmocka_unit_test(hostile_state_round_trips),
		cmocka_unit_test(non_finite_is_not_written),
		cmocka_unit_test(malformed_source_part_is_not_written),
		cmocka_unit_test(unchanged_state_is_not_rewritten),
		cmocka_unit_test(previous_release_file_loads),
		cmocka_unit_test(saves_what_the_previous_release_saved),
	};
	return cmocka_run_group_tests_name("statefile", tests, find_rows, NULL);
}
