/* Unit tests for statefile.c: round trip (hostile strings, exact amounts), the format against
 * the former cJSON-tree writer, skipping unchanged writes, corrupt, foreign and old-version files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "../../src/engine/statefile.c"
#include "../../src/model/expfmt.h"

#define DIR "build/unit"

static void fill(struct ce_source *ce)
{
	memset(ce, 0, sizeof(*ce));
	ce->req_day = 20000;
	ce->req_count = 7;
	strlist_push(&ce->services, xstrdup("Amazon Bedrock"));
	ce->services_at = 1795651200.5;
	ce->services_search = xstrdup("Bedrock");
	ce->costs_at = 1795651300.25;
	ce->spend_sig = xstrdup("spend|sig");
	ce->spend.days = xcalloc(2, sizeof(struct ce_day));
	ce->spend.n = 2;
	ce->spend.days[0] = (struct ce_day){ 19999, false, xcalloc(2, sizeof(struct ce_group)), 2 };
	ce->spend.days[0].g[0] = (struct ce_group){ { xstrdup("Chat \"x\""), xstrdup("") }, 0.1 + 0.2 };
	ce->spend.days[0].g[1] = (struct ce_group){ { xstrdup(""), xstrdup("") }, 1e-10 };
	ce->spend.days[1] = (struct ce_day){ 20000, true, xcalloc(1, sizeof(struct ce_group)), 0 };
	ce->has_forecast = true;
	ce->forecast_day = 20000;
	ce->forecast_mean = 123.456789;
	ce->forecast_lower = 100;
	ce->forecast_upper = 150;
	ce->forecast_at = 1795651400;
	strlist_push(&ce->tag_keys, xstrdup("Application"));
	strlist_push(&ce->tag_keys, xstrdup("CostCenter"));
	ce->tag_active = xcalloc(2, sizeof(bool));
	ce->tag_active[0] = true;
	ce->tags_at = 1795651500;
}

static void round_trip(void **state)
{
	(void)state;
	const char *path = DIR "/state_rt.json";
	struct ce_source ce, back = { 0 };
	fill(&ce);
	struct region_state regions[2] = { { .region = "us-east-1" }, { .region = "eu-west-1" } };
	const char *page = "{\"data\":[{\"id\":\"p1\",\"name\":\"n\",\"arn\":\"a\",\"status\":\"active\","
			   "\"created_at\":5,\"tags\":{\"Team\":\"CX\"}}],\"has_more\":false}";
	bool more;
	char err[256];
	assert_int_equal(projects_parse_page(page, strlen(page), &regions[0].projects, &more, err, sizeof(err)), 0);
	regions[0].has_data = true;
	assert_int_equal(statefile_save(NULL, path, &ce, regions, 2, 1795651600, err, sizeof(err)), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	struct region_state loaded[2] = { { .region = "us-east-1" }, { .region = "eu-west-1" } };
	assert_int_equal(statefile_load(path, &back, loaded, 2, err, sizeof(err)), 0);
	assert_int_equal(back.req_day, 20000);
	assert_int_equal(back.req_count, 7);
	assert_string_equal(back.services.v[0], "Amazon Bedrock");
	assert_true(back.costs_at == ce.costs_at);
	assert_string_equal(back.spend_sig, "spend|sig");
	assert_int_equal(back.spend.n, 2);
	assert_string_equal(back.spend.days[0].g[0].k[0], "Chat \"x\"");
	assert_true(back.spend.days[0].g[0].amount == 0.1 + 0.2); /* exact round trip */
	assert_true(back.spend.days[0].g[1].amount == 1e-10);
	assert_true(back.spend.days[1].estimated);
	assert_true(back.has_forecast);
	assert_true(back.forecast_mean == 123.456789);
	assert_int_equal(back.tag_keys.n, 2);
	assert_true(back.tag_active[0]);
	assert_false(back.tag_active[1]);
	assert_true(loaded[0].has_data);
	assert_string_equal(project_tag(&loaded[0].projects.v[0], "Team"), "CX");
	assert_false(loaded[1].has_data);
	ce_source_free(&ce);
	ce_source_free(&back);
	project_list_free(&regions[0].projects);
	project_list_free(&loaded[0].projects);
	remove(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void bad_files_change_nothing(void **state)
{
	(void)state;
	const char *path = DIR "/state_bad.json";
	const char *cases[] = {
		"{\"format\":\"bedrock-cost-exporter-state\",\"version\":1,",           /* truncated */
		"not json at all",
		"{\"format\":\"something-else\",\"version\":1}",                         /* foreign */
		"{\"format\":\"bedrock-cost-exporter-state\",\"version\":0}",            /* old version */
		"{\"format\":\"bedrock-cost-exporter-state\",\"version\":1,\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":\"3\"}}",
		"{\"format\":\"bedrock-cost-exporter-state\",\"version\":1,\"ce_requests\":{\"day\":\"2026-11-26\",\"count\":3},"
		"\"services\":{\"at\":1,\"search\":\"Bedrock\",\"values\":[]},\"costs_at\":1,"
		"\"spend\":{\"signature\":\"s\",\"days\":[{\"day\":\"2026-11-26\",\"estimated\":true,\"groups\":[{\"k\":[1],\"amount\":1}]}]},"
		"\"models\":{\"signature\":\"\",\"days\":[]},\"projects\":{}}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(path, cases[i]);
		struct ce_source ce;
		fill(&ce);
		struct region_state r[1] = { { .region = "us-east-1" } };
		char err[256] = "";
		if (statefile_load(path, &ce, r, 1, err, sizeof(err)) != -EPROTO)
			fail_msg("case %zu accepted", i);
		assert_true(*err);
		assert_int_equal(ce.req_count, 7); /* untouched */
		assert_int_equal(ce.spend.n, 2);
		assert_false(r[0].has_data);
		ce_source_free(&ce);
	}
	remove(path);
	struct ce_source ce = { 0 };
	char err[256];
	assert_int_equal(statefile_load(DIR "/no_such_state.json", &ce, NULL, 0, err, sizeof(err)), -ENOENT);
}

/* ---- helpers for the tests below ---- */

static int cmp_tag_for_test(const void *a, const void *b)
{
	return strcmp(((const struct project_tag *)a)->key, ((const struct project_tag *)b)->key);
}

static uint64_t rng_state = 0x243f6a8885a308d3u;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* A NUL-terminated string of random bytes 1..255 (quotes, backslashes, control bytes,
 * invalid UTF-8), @min..@max bytes long. Caller frees. */
static char *hostile(size_t min, size_t max)
{
	size_t n = min + (size_t)(rnd() % (max - min + 1));
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		static const char pick[] = "\"\\\b\f\n\r\t\x01\x1f\x7f\x80\xc3\xff/u";
		uint64_t r = rnd();
		s[i] = (char)(r % 3 ? 1 + (r >> 8) % 255 : (unsigned char)pick[(r >> 8) % (sizeof(pick) - 1)]);
	}
	s[n] = '\0';
	return s;
}

static bool same_double(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

/* Cost Explorer-like: up to 10 decimals, parsed from text as ce_api does. */
static double ce_amount(void)
{
	static const uint64_t mod[] = { 10u, 1000u, 100000u, 10000000000u, 1000000000000u,
					100000000000000u, 9000000000000000u };
	uint64_t n = rnd() % mod[rnd() % 7];
	char s[48];
	snprintf(s, sizeof(s), "%s%llu.%010llu", rnd() % 5 ? "" : "-",
		 (unsigned long long)(n / 10000000000u), (unsigned long long)(n % 10000000000u));
	return strtod(s, NULL);
}

/* Any double at all, from its bits (non-finite ones included). */
static double any_double(void)
{
	uint64_t bits = rnd();
	double v;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

static void expect_exact(double v)
{
	char out[32];
	size_t n = format_exact(v, out);
	if (!isfinite(v)) {
		assert_int_equal(n, 0);
		return;
	}
	assert_true(n > 0 && n < 32);
	out[n] = '\0';
	char *end;
	double back = strtod(out, &end);
	if (*end || !same_double(back, v))
		fail_msg("%a written as \"%s\" reads back as %a", v, out, back);
	/* and as the loader reads it: a JSON number through cJSON */
	cJSON *j = cJSON_Parse(out);
	assert_true(cJSON_IsNumber(j));
	assert_true(same_double(j->valuedouble, v));
	cJSON_Delete(j);
}

/* ---- numbers ---- */

static void amounts_round_trip_exactly(void **state)
{
	(void)state;
	const double special[] = { 0.0, -0.0, 1.0, -1.0, 0.1, 0.1 + 0.2, 1e-10, -1e-10, 5e-11, 1.5e-10,
				   1e-11, 123.456789, 0.30000000000000004, DBL_MIN, -DBL_MIN,
				   4.9406564584124654e-324, DBL_MAX, -DBL_MAX, DBL_EPSILON, 9e5,
				   899999.9999999999, 900000.0000000001, 9007199254740991.0,
				   9007199254740992.0, 9007199254740994.0, 18446744073709551616.0,
				   1e21, 1e22, 123456789012345678.0, 1795651600.1234567, 0.5, 1e300,
				   NAN, -NAN, INFINITY, -INFINITY };
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		expect_exact(special[i]);
	for (int i = 0; i < 200000; i++) {
		double a = ce_amount();
		expect_exact(a);
		expect_exact(nextafter(a, INFINITY)); /* one ulp off: the fast path must notice */
		expect_exact(nextafter(a, -INFINITY));
		expect_exact(any_double());
		expect_exact(a * 1e-7);
		expect_exact((double)(rnd() >> (rnd() % 64)));
	}
	/* the fast path writes Cost Explorer's own decimals, not %.17g noise */
	const struct {
		const char *in, *out;
	} text[] = { { "0.1234567891", "0.1234567891" }, { "0.0000000001", "0.0000000001" },
		     { "-12.5000000000", "-12.5" }, { "899999.9999999999", "899999.9999999999" },
		     { "42", "42" }, { "-0", "-0" }, { "0.3", "0.3" } };
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		char out[32];
		size_t n = format_exact(strtod(text[i].in, NULL), out);
		out[n] = '\0';
		assert_string_equal(out, text[i].out);
	}
}

/* ---- strings ---- */

static void check_string(const char *s)
{
	struct jw w = { .err = 0 };
	buf_init(&w.b, 1 << 20);
	jw_str(&w, s);
	assert_int_equal(w.err, 0);
	/* the bytes cJSON's printer makes */
	cJSON *c = cJSON_CreateString(s);
	char *ref = cJSON_PrintUnformatted(c);
	assert_non_null(ref);
	assert_string_equal(w.b.data, ref);
	/* and cJSON's parser gives @s back byte for byte */
	cJSON *back = cJSON_Parse(w.b.data);
	assert_true(cJSON_IsString(back));
	assert_string_equal(back->valuestring, s);
	cJSON_Delete(back);
	cJSON_free(ref);
	cJSON_Delete(c);
	buf_free(&w.b);
}

static void strings_escape_like_cjson(void **state)
{
	(void)state;
	for (int c = 1; c < 256; c++) {
		char s[4] = { 'a', (char)c, 'b', '\0' };
		check_string(s);
	}
	check_string("");
	check_string("\xc3\x28 \xa0\xa1 \xe2\x82 \xf0\x28\x8c\x28 \xed\xa0\x80 \\u0000 \"}],{\"k\":");
	for (int i = 0; i < 20000; i++) {
		char *s = hostile(0, 64);
		check_string(s);
		free(s);
	}
}

/* ---- whole files ---- */

/* A state whose every string is hostile and whose amounts are random (finite). */
static void hostile_state(struct ce_source *ce, struct region_state *r)
{
	memset(ce, 0, sizeof(*ce));
	ce->req_day = 20000;
	ce->req_count = 12345;
	for (int i = 0; i < 3; i++)
		strlist_push(&ce->services, hostile(0, 30));
	ce->services_at = 1795651200.123456789;
	ce->services_search = hostile(0, 20);
	ce->costs_at = 1795651300.987654321;
	ce->spend_sig = hostile(1, 40);
	ce->models_sig = hostile(1, 40);
	struct ce_series *ss[2] = { &ce->spend, &ce->models };
	for (int si = 0; si < 2; si++) {
		struct ce_series *s = ss[si];
		s->n = 5;
		s->days = xcalloc(s->n, sizeof(*s->days));
		for (size_t d = 0; d < s->n; d++) {
			struct ce_day *day = &s->days[d];
			day->day = 19990 + (long)d;
			day->estimated = d % 2;
			day->n = 200;
			day->g = xcalloc(day->n, sizeof(*day->g));
			for (size_t g = 0; g < day->n; g++) {
				int nk = (int)(g % 3); /* 0, 1 or 2 keys */
				for (int q = 0; q < nk; q++)
					day->g[g].k[q] = hostile(0, 24);
				day->g[g].amount = g % 4 == 3 ? any_double() : ce_amount();
				if (!isfinite(day->g[g].amount))
					day->g[g].amount = 0.1 + 0.2;
			}
		}
	}
	ce->has_forecast = true;
	ce->forecast_day = 20001;
	ce->forecast_at = 1795651400.5;
	ce->forecast_mean = ce_amount();
	ce->forecast_lower = 0.1 + 0.2;
	ce->forecast_upper = 1e-300;
	for (int i = 0; i < 4; i++) {
		char *k = hostile(0, 12);
		char *key = xasprintf("%s%d", k, i); /* distinct */
		free(k);
		strlist_push(&ce->tag_keys, key);
	}
	ce->tag_active = xcalloc(4, sizeof(bool));
	ce->tag_active[1] = ce->tag_active[2] = true;
	ce->tags_at = 1795651500.25;

	r->has_data = true;
	r->projects.n = 30;
	r->projects.v = xcalloc(r->projects.n, sizeof(struct project));
	for (size_t i = 0; i < r->projects.n; i++) {
		struct project *p = &r->projects.v[i];
		p->id = hostile(1, 20);
		p->name = hostile(0, 40);
		p->arn = hostile(0, 60);
		p->status = hostile(0, 10);
		p->created_at = i % 2 ? 1767225600 + (double)i : 1767225600.123 + (double)i / 7;
		p->ntags = i % 5;
		p->tags = xcalloc(p->ntags + 1, sizeof(*p->tags));
		for (size_t t = 0; t < p->ntags; t++) {
			char *k = hostile(0, 10);
			p->tags[t].key = xasprintf("%s%zu", k, t);
			free(k);
			p->tags[t].value = hostile(0, 30);
		}
		qsort(p->tags, p->ntags, sizeof(*p->tags), cmp_tag_for_test);
	}
}

static void expect_same_series(const struct ce_series *a, const struct ce_series *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t d = 0; d < a->n; d++) {
		assert_int_equal(a->days[d].day, b->days[d].day);
		assert_int_equal(a->days[d].estimated, b->days[d].estimated);
		assert_int_equal(a->days[d].n, b->days[d].n);
		for (size_t g = 0; g < a->days[d].n; g++) {
			const struct ce_group *x = &a->days[d].g[g], *y = &b->days[d].g[g];
			for (int q = 0; q < 2; q++) {
				assert_int_equal(!x->k[q], !y->k[q]);
				if (x->k[q])
					assert_string_equal(x->k[q], y->k[q]);
			}
			assert_true(same_double(x->amount, y->amount));
		}
	}
}

/* The former writer (a cJSON tree), kept here as the definition of the format. */
static cJSON *old_series(const struct ce_series *s, const char *sig)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "signature", sig ? sig : "");
	cJSON *days = cJSON_AddArrayToObject(o, "days");
	for (size_t i = 0; i < s->n; i++) {
		const struct ce_day *d = &s->days[i];
		char ds[11], num[32];
		days_format(d->day, ds);
		cJSON *jd = cJSON_CreateObject();
		cJSON_AddStringToObject(jd, "day", ds);
		cJSON_AddBoolToObject(jd, "estimated", d->estimated);
		cJSON *gs = cJSON_AddArrayToObject(jd, "groups");
		for (size_t j = 0; j < d->n; j++) {
			cJSON *g = cJSON_CreateObject();
			cJSON *k = cJSON_AddArrayToObject(g, "k");
			for (int q = 0; q < 2 && d->g[j].k[q]; q++)
				cJSON_AddItemToArray(k, cJSON_CreateString(d->g[j].k[q]));
			cJSON_AddRawToObject(g, "amount", expfmt_format_double(d->g[j].amount, num));
			cJSON_AddItemToArray(gs, g);
		}
		cJSON_AddItemToArray(days, jd);
	}
	return o;
}

static cJSON *old_tree(const struct ce_source *ce, const struct region_state *regions, size_t n,
		       double now)
{
	char ds[11], num[32];
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "format", FORMAT);
	cJSON_AddNumberToObject(root, "version", STATEFILE_VERSION);
	cJSON_AddNumberToObject(root, "written_at", now);
	cJSON *q = cJSON_AddObjectToObject(root, "ce_requests");
	days_format(ce->req_day, ds);
	cJSON_AddStringToObject(q, "day", ds);
	cJSON_AddNumberToObject(q, "count", (double)ce->req_count);
	cJSON *sv = cJSON_AddObjectToObject(root, "services");
	cJSON_AddNumberToObject(sv, "at", ce->services_at);
	cJSON_AddStringToObject(sv, "search", ce->services_search ? ce->services_search : "");
	cJSON *vals = cJSON_AddArrayToObject(sv, "values");
	for (size_t i = 0; i < ce->services.n; i++)
		cJSON_AddItemToArray(vals, cJSON_CreateString(ce->services.v[i]));
	cJSON_AddNumberToObject(root, "costs_at", ce->costs_at);
	cJSON_AddItemToObject(root, "spend", old_series(&ce->spend, ce->spend_sig));
	cJSON_AddItemToObject(root, "models", old_series(&ce->models, ce->models_sig));
	if (ce->has_forecast) {
		cJSON *f = cJSON_AddObjectToObject(root, "forecast");
		days_format(ce->forecast_day, ds);
		cJSON_AddStringToObject(f, "day", ds);
		cJSON_AddNumberToObject(f, "at", ce->forecast_at);
		cJSON_AddRawToObject(f, "mean", expfmt_format_double(ce->forecast_mean, num));
		cJSON_AddRawToObject(f, "lower", expfmt_format_double(ce->forecast_lower, num));
		cJSON_AddRawToObject(f, "upper", expfmt_format_double(ce->forecast_upper, num));
	}
	if (ce->tags_at > 0) {
		cJSON *t = cJSON_AddObjectToObject(root, "allocation_tags");
		cJSON_AddNumberToObject(t, "at", ce->tags_at);
		cJSON *a = cJSON_AddObjectToObject(t, "active");
		for (size_t i = 0; i < ce->tag_keys.n; i++)
			cJSON_AddBoolToObject(a, ce->tag_keys.v[i], ce->tag_active[i]);
	}
	cJSON *o = cJSON_AddObjectToObject(root, "projects");
	for (size_t r = 0; r < n; r++) {
		if (!regions[r].has_data)
			continue;
		cJSON *a = cJSON_AddArrayToObject(o, regions[r].region);
		for (size_t i = 0; i < regions[r].projects.n; i++) {
			const struct project *p = &regions[r].projects.v[i];
			cJSON *jp = cJSON_CreateObject();
			cJSON_AddStringToObject(jp, "id", p->id);
			cJSON_AddStringToObject(jp, "name", p->name);
			cJSON_AddStringToObject(jp, "arn", p->arn);
			cJSON_AddStringToObject(jp, "status", p->status);
			cJSON_AddRawToObject(jp, "created_at", expfmt_format_double(p->created_at, num));
			cJSON *t = cJSON_AddObjectToObject(jp, "tags");
			for (size_t k = 0; k < p->ntags; k++)
				cJSON_AddStringToObject(t, p->tags[k].key, p->tags[k].value);
			cJSON_AddItemToArray(a, jp);
		}
	}
	return root;
}

static void expect_same_doc(const cJSON *a, const cJSON *b)
{
	assert_int_equal(a->type & 0xff, b->type & 0xff);
	assert_int_equal(!a->string, !b->string);
	if (a->string)
		assert_string_equal(a->string, b->string);
	if (cJSON_IsString(a))
		assert_string_equal(a->valuestring, b->valuestring);
	if (cJSON_IsNumber(a)) {
		double x = a->valuedouble, y = b->valuedouble;
		assert_true(fabs(x - y) <= DBL_EPSILON * fmax(fabs(x), fabs(y)));
	}
	const cJSON *ca = a->child, *cb = b->child;
	for (; ca && cb; ca = ca->next, cb = cb->next)
		expect_same_doc(ca, cb);
	assert_true(!ca && !cb);
}

static char *slurp(const char *path, size_t *len)
{
	char *text = NULL;
	assert_int_equal(read_file_max(path, MAX_STATE_BYTES, &text, len), 0);
	return text;
}

static void hostile_state_round_trips(void **state)
{
	(void)state;
	const char *path = DIR "/state_hostile.json";
	char err[256];
	for (int round = 0; round < 5; round++) {
		struct ce_source ce, back = { 0 };
		struct region_state regions[2] = { { .region = "eu-west-1" }, { .region = "us-east-1" } };
		hostile_state(&ce, &regions[1]);
		double now = 1795651600.0 + round / 3.0;
		assert_int_equal(statefile_save(NULL, path, &ce, regions, 2, now, err, sizeof(err)), 0);

		/* the same document the cJSON-tree writer made: keys in the same order, nesting,
		 * types, strings byte for byte; numbers within cJSON's own epsilon (its printer
		 * rounds timestamps to 15 digits when that is "close enough"; ours are exact, and
		 * the exact check is the load below) */
		size_t len;
		char *text = slurp(path, &len);
		cJSON *got = cJSON_ParseWithLength(text, len);
		assert_non_null(got);
		cJSON *want = old_tree(&ce, regions, 2, now);
		char *want_text = cJSON_PrintUnformatted(want);
		cJSON *want_parsed = cJSON_Parse(want_text);
		expect_same_doc(got, want_parsed);
		cJSON_free(want_text);
		cJSON_Delete(want_parsed);
		cJSON_Delete(want);
		cJSON_Delete(got);
		free(text);

		struct region_state loaded[2] = { { .region = "eu-west-1" }, { .region = "us-east-1" } };
		assert_int_equal(statefile_load(path, &back, loaded, 2, err, sizeof(err)), 0);
		assert_int_equal(back.req_count, 12345);
		assert_int_equal(back.services.n, 3);
		for (size_t i = 0; i < 3; i++)
			assert_string_equal(back.services.v[i], ce.services.v[i]);
		assert_string_equal(back.services_search, ce.services_search);
		assert_true(same_double(back.services_at, ce.services_at));
		assert_true(same_double(back.costs_at, ce.costs_at));
		assert_string_equal(back.spend_sig, ce.spend_sig);
		assert_string_equal(back.models_sig, ce.models_sig);
		expect_same_series(&ce.spend, &back.spend);
		expect_same_series(&ce.models, &back.models);
		assert_true(same_double(back.forecast_at, ce.forecast_at));
		assert_true(same_double(back.forecast_mean, ce.forecast_mean));
		assert_true(same_double(back.forecast_lower, ce.forecast_lower));
		assert_true(same_double(back.forecast_upper, ce.forecast_upper));
		assert_true(same_double(back.tags_at, ce.tags_at));
		assert_int_equal(back.tag_keys.n, 4);
		for (size_t i = 0; i < 4; i++) {
			assert_string_equal(back.tag_keys.v[i], ce.tag_keys.v[i]);
			assert_int_equal(back.tag_active[i], ce.tag_active[i]);
		}
		assert_false(loaded[0].has_data);
		assert_true(loaded[1].has_data);
		const struct project_list *a = &regions[1].projects, *b = &loaded[1].projects;
		assert_int_equal(a->n, b->n);
		for (size_t i = 0; i < a->n; i++) {
			assert_string_equal(a->v[i].id, b->v[i].id);
			assert_string_equal(a->v[i].name, b->v[i].name);
			assert_string_equal(a->v[i].arn, b->v[i].arn);
			assert_string_equal(a->v[i].status, b->v[i].status);
			assert_true(same_double(a->v[i].created_at, b->v[i].created_at));
			assert_int_equal(a->v[i].ntags, b->v[i].ntags);
			for (size_t t = 0; t < a->v[i].ntags; t++) {
				assert_string_equal(a->v[i].tags[t].key, b->v[i].tags[t].key);
				assert_string_equal(a->v[i].tags[t].value, b->v[i].tags[t].value);
			}
		}
		ce_source_free(&ce);
		ce_source_free(&back);
		project_list_free(&regions[1].projects);
		project_list_free(&loaded[1].projects);
	}
	remove(path);
}

static void non_finite_is_not_written(void **state)
{
	(void)state;
	const char *path = DIR "/state_nan.json";
	struct ce_source ce;
	fill(&ce);
	char err[256] = "";
	assert_int_equal(statefile_save(NULL, path, &ce, NULL, 0, 1795651600, err, sizeof(err)), 0);
	size_t len0;
	char *before = slurp(path, &len0);
	const double bad[] = { NAN, INFINITY, -INFINITY };
	for (size_t i = 0; i < 3; i++) {
		double keep = ce.spend.days[0].g[1].amount;
		ce.spend.days[0].g[1].amount = bad[i];
		*err = '\0';
		assert_int_equal(statefile_save(NULL, path, &ce, NULL, 0, 1795651700, err, sizeof(err)), -EDOM);
		assert_true(*err);
		ce.spend.days[0].g[1].amount = keep;
		ce.forecast_mean = bad[i];
		assert_int_equal(statefile_save(NULL, path, &ce, NULL, 0, 1795651700, err, sizeof(err)), -EDOM);
		ce.forecast_mean = 1;
	}
	size_t len1;
	char *after = slurp(path, &len1); /* the last good file stays */
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	struct stat st;
	assert_int_not_equal(stat(DIR "/state_nan.json.tmp", &st), 0);
	free(before);
	free(after);
	ce_source_free(&ce);
	remove(path);
}

/* ---- skipping unchanged writes ---- */

static void stat_ok(const char *path, struct stat *st)
{
	assert_int_equal(stat(path, st), 0);
}

static void unchanged_state_is_not_rewritten(void **state)
{
	(void)state;
	const char *path = DIR "/state_skip.json";
	remove(path);
	struct ce_source ce, back = { 0 };
	fill(&ce);
	struct region_state r[1] = { { .region = "us-east-1" } };
	char err[256];
	struct statefile_writer w = { 0 };
	struct stat st0, st;

	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 1000, err, sizeof(err)), 0);
	assert_true(w.written);
	stat_ok(path, &st0);
	size_t len0;
	char *first = slurp(path, &len0);

	/* Same state, later time: not written. Every write renames a new file (a new inode,
	 * mode 0600) into place, so an unchanged inode, and a mode we changed by hand staying
	 * as it is, show that nothing was written; the bytes (written_at too) are the first ones. */
	assert_int_equal(chmod(path, 0640), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(statefile_save(&w, path, &ce, r, 1, 2000 + i, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_int_equal(st.st_mode & 0777, 0640);
	size_t len;
	char *text = slurp(path, &len);
	assert_int_equal(len, len0);
	assert_memory_equal(text, first, len);
	assert_non_null(strstr(text, "\"written_at\":1000,"));
	free(text);

	/* without a writer: always written */
	assert_int_equal(statefile_save(NULL, path, &ce, r, 1, 2500, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* ... and then @w no longer describes the file on disk: written again */
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 2600, err, sizeof(err)), 0);
	text = slurp(path, &len);
	assert_non_null(strstr(text, "\"written_at\":2600,"));
	free(text);
	stat_ok(path, &st0);

	/* a changed state is written: a new count, a new amount, a new project */
	ce.req_count = 8;
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3000, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	assert_int_equal(statefile_load(path, &back, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(back.req_count, 8);
	ce_source_free(&back);
	st0 = st;
	ce.spend.days[0].g[1].amount = nextafter(1e-10, 1); /* one ulp */
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3100, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	assert_int_equal(statefile_load(path, &back, NULL, 0, err, sizeof(err)), 0);
	assert_true(same_double(back.spend.days[0].g[1].amount, nextafter(1e-10, 1)));
	ce_source_free(&back);
	st0 = st;
	const char *page = "{\"data\":[{\"id\":\"p1\",\"name\":\"n\",\"status\":\"active\",\"created_at\":5}],"
			   "\"has_more\":false}";
	bool more;
	assert_int_equal(projects_parse_page(page, strlen(page), &r[0].projects, &more, err, sizeof(err)), 0);
	r[0].has_data = true;
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3200, err, sizeof(err)), 0);
	stat_ok(path, &st);
	assert_int_not_equal(st.st_ino, st0.st_ino);
	st0 = st;

	/* removed by someone: written again although the state did not change */
	assert_int_equal(remove(path), 0);
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3300, err, sizeof(err)), 0);
	stat_ok(path, &st0);
	/* replaced by someone (another inode, other bytes): written again */
	write_file(DIR "/state_skip.other", "{}");
	assert_int_equal(rename(DIR "/state_skip.other", path), 0);
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3400, err, sizeof(err)), 0);
	struct region_state lr[1] = { { .region = "us-east-1" } };
	assert_int_equal(statefile_load(path, &back, lr, 1, err, sizeof(err)), 0);
	assert_true(lr[0].has_data);
	ce_source_free(&back);
	project_list_free(&lr[0].projects);

	/* a failed write (the temporary name is taken by a directory) leaves the old file;
	 * the next save writes */
	stat_ok(path, &st0);
	ce.req_count = 9;
	assert_int_equal(mkdir(DIR "/state_skip.json.tmp", 0700), 0);
	assert_true(statefile_save(&w, path, &ce, r, 1, 3500, err, sizeof(err)) < 0);
	assert_false(w.written);
	stat_ok(path, &st);
	assert_int_equal(st.st_ino, st0.st_ino);
	assert_int_equal(rmdir(DIR "/state_skip.json.tmp"), 0);
	assert_int_equal(statefile_save(&w, path, &ce, r, 1, 3600, err, sizeof(err)), 0);
	assert_int_equal(statefile_load(path, &back, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(back.req_count, 9);
	ce_source_free(&back);

	free(first);
	ce_source_free(&ce);
	project_list_free(&r[0].projects);
	remove(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(bad_files_change_nothing),
		cmocka_unit_test(amounts_round_trip_exactly),
		cmocka_unit_test(strings_escape_like_cjson),
		cmocka_unit_test(hostile_state_round_trips),
		cmocka_unit_test(non_finite_is_not_written),
		cmocka_unit_test(unchanged_state_is_not_rewritten),
	};
	return cmocka_run_group_tests_name("statefile", tests, NULL, NULL);
}
