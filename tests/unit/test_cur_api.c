/* Unit tests for cur_api.c: the Data Exports manifest, and CUR 2.0 lines into the tables
 * (the aliased and the map form, the Bedrock filter, every refusal). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/textlist.h"
#include "base/util.h"
#include "sources/cur_api.h"

static void manifests(void **state)
{
	(void)state;
	char err[256];
	struct cur_manifest m;
	const char *good = "{\"executionId\":\"e-1\",\"exportArn\":\"arn:x\",\"columns\":[{\"name\":"
			   "\"a\",\"type\":\"string\"}],\"dataFiles\":[\"s3://b/p/x-00001.csv.gz\","
			   "\"s3://b/p/x-00002.csv.gz\"]}";
	assert_int_equal(cur_manifest_parse(good, strlen(good), &m, err, sizeof(err)), 0);
	assert_string_equal(m.execution_id, "e-1");
	assert_string_equal(m.export_arn, "arn:x");
	assert_int_equal(m.files.n, 2);
	assert_string_equal(m.files.v[1], "s3://b/p/x-00002.csv.gz");
	assert_false(m.parquet);
	cur_manifest_clear(&m);

	const char *pq = "{\"executionId\":\"e\",\"dataFiles\":[\"s3://b/k/x-00001.snappy.parquet\"]}";
	assert_int_equal(cur_manifest_parse(pq, strlen(pq), &m, err, sizeof(err)), 0);
	assert_true(m.parquet);
	cur_manifest_clear(&m);
	const char *pq2 = "{\"executionId\":\"e\",\"format\":\"PARQUET\",\"dataFiles\":[]}";
	assert_int_equal(cur_manifest_parse(pq2, strlen(pq2), &m, err, sizeof(err)), 0);
	assert_true(m.parquet);
	cur_manifest_clear(&m);

	static const char *const bad[] = {
		"[]", "{\"dataFiles\":[]}", "{\"executionId\":\"e\"}",
		"{\"executionId\":\"e\",\"dataFiles\":[\"https://b/k\"]}",
		"{\"executionId\":\"e\",\"dataFiles\":[\"s3://bucket-only\"]}",
		"{\"executionId\":\"e\",\"dataFiles\":[1]}", "{\"executionId\":",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(cur_manifest_parse(bad[i], strlen(bad[i]), &m, err, sizeof(err)),
				 -EPROTO);
		assert_true(err[0] != '\0');
		assert_null(m.execution_id);
	}
}

struct fixture {
	struct textlist keys, columns, services;
	struct cur_opts o;
	struct cur_agg agg;
	char err[512];
};

static void fx_init(struct fixture *f, int nkeys)
{
	memset(f, 0, sizeof(*f));
	textlist_push(&f->keys, xstrdup("Application"));
	if (nkeys > 1)
		textlist_push(&f->keys, xstrdup("Environment"));
	f->o = (struct cur_opts){ .tag_keys = &f->keys, .tag_columns = &f->columns,
				  .cost_column = "line_item_unblended_cost",
				  .service_search = "Bedrock", .services = &f->services };
	cur_agg_init(&f->agg);
}

static void fx_free(struct fixture *f)
{
	cur_agg_free(&f->agg);
	textlist_free(&f->keys);
	textlist_free(&f->columns);
	textlist_free(&f->services);
}

/* Reads @text in pieces of @step bytes (0: whole). Returns what the reader returned. */
static int read_text(struct fixture *f, const char *text, size_t step)
{
	struct cur_reader *r = cur_reader_new(&f->o, &f->agg);
	size_t n = strlen(text), at = 0;
	int rc = 0;
	while (!rc && at < n) {
		size_t k = step && step < n - at ? step : n - at;
		rc = cur_reader_feed(r, text + at, k, f->err, sizeof(f->err));
		at += k;
	}
	if (!rc)
		rc = cur_reader_finish(r, f->err, sizeof(f->err));
	cur_reader_free(r);
	return rc;
}

/* The cost of cell @key of table @t (NAN when absent); fields joined with '|'. */
static double cell(const struct fixture *f, enum cur_tab t, const char *key)
{
	char *k = xstrdup(key);
	for (char *p = k; *p; p++)
		if (*p == '|')
			*p = CUR_SEP;
	double v = NAN;
	for (size_t i = 0; i < f->agg.t[t].n; i++)
		if (strcmp(f->agg.t[t].v[i].key, k) == 0)
			v = f->agg.t[t].v[i].cost;
	free(k);
	return v;
}

static double usage_of(const struct fixture *f, enum cur_tab t, const char *key)
{
	char *k = xstrdup(key);
	for (char *p = k; *p; p++)
		if (*p == '|')
			*p = CUR_SEP;
	double v = NAN;
	for (size_t i = 0; i < f->agg.t[t].n; i++)
		if (strcmp(f->agg.t[t].v[i].key, k) == 0)
			v = f->agg.t[t].v[i].usage;
	free(k);
	return v;
}

/* 2026-12-01 is day 20788. */
#define D1 "20788"

static const char aliased[] =
	"line_item_usage_start_date,line_item_usage_account_id,line_item_product_code,"
	"product_product_name,line_item_usage_type,line_item_line_item_type,"
	"line_item_usage_amount,pricing_unit,line_item_unblended_cost,line_item_iam_principal,"
	"application,environment\r\n"
	"2026-12-01T05:00:00Z,111122223333,AmazonBedrock,Amazon Bedrock,"
	"USE1-nova-pro-input-tokens,Usage,1000000,tokens,0.8,arn:aws:iam::111122223333:role/a,"
	"Chatbot,Prod\r\n"
	"2026-12-01T05:00:00Z,111122223333,AmazonBedrock,Amazon Bedrock,"
	"USE1-nova-pro-input-tokens,Usage,500,1K tokens,0.4,arn:aws:iam::111122223333:role/b,"
	"Chatbot,Prod\r\n"
	"2026-12-01T06:00:00.000Z,111122223333,prod-abcdefghij,"
	"Claude Sonnet 4.5 (Amazon Bedrock Edition),USE1-MP:claude-output-tokens,Usage,10,"
	"tokens,1.5,,\"Doc, \"\"Summ\"\"\nary\",Dev\r\n"
	"2026-12-01 07:00:00,111122223333,AmazonBedrock,Amazon Bedrock,USE1-nova-pro-input-tokens,"
	"Credit,0,,-0.25,,Chatbot,Prod\r\n"
	"2026-12-01T07:00:00Z,111122223333,AmazonEC2,Amazon Elastic Compute Cloud,"
	"BoxUsage:t3.micro,Usage,1,Hrs,9.99,,Chatbot,Prod\r\n"
	"2026-12-02T00:00:00Z,444455556666,AmazonBedrock,Amazon Bedrock,"
	"USE1-nova-pro-output-tokens,Usage,100,tokens,0.1,,,\r\n";

static void aliased_form(void **state)
{
	(void)state;
	struct fixture f;
	fx_init(&f, 2);
	assert_int_equal(read_text(&f, aliased, 0), 0);
	assert_int_equal(f.agg.lines, 6);
	assert_int_equal(f.agg.bedrock_lines, 5); /* not the EC2 line */
	assert_int_equal(f.agg.first_hour, 20788L * 24 + 5);
	assert_int_equal(f.agg.last_hour, 20789L * 24);
	assert_true(fabs(cell(&f, CUR_SPEND, D1 "|111122223333|Chatbot|Prod") - 0.95) < 1e-12);
	assert_true(fabs(cell(&f, CUR_SPEND, D1 "|111122223333|Doc, \"Summ\"\nary|Dev") - 1.5) < 1e-12);
	assert_true(fabs(cell(&f, CUR_SPEND, "20789|444455556666||") - 0.1) < 1e-12);
	/* by type: credits are their own row */
	assert_true(fabs(cell(&f, CUR_TYPES, "111122223333|Chatbot|Prod|Usage") - 1.2) < 1e-12);
	assert_true(fabs(cell(&f, CUR_TYPES, "111122223333|Chatbot|Prod|Credit") + 0.25) < 1e-12);
	/* by principal: "" for lines without one */
	assert_true(fabs(cell(&f, CUR_PRINCIPALS,
			      "111122223333|Chatbot|Prod|arn:aws:iam::111122223333:role/a") - 0.8) < 1e-12);
	assert_true(fabs(cell(&f, CUR_PRINCIPALS, "111122223333|Chatbot|Prod|") + 0.25) < 1e-12);
	/* by hour */
	assert_true(fabs(cell(&f, CUR_HOURS, "498917|111122223333") - 1.2) < 1e-12);
	/* the models, with usage; the rates table: Usage lines only, the unit's tokens */
	assert_true(fabs(cell(&f, CUR_MODELS, D1 "|111122223333|Amazon Bedrock|USE1-nova-pro-input-tokens") -
			 0.95) < 1e-12);
	assert_true(fabs(usage_of(&f, CUR_RATES,
				  "111122223333|Amazon Bedrock|USE1-nova-pro-input-tokens|1") - 1e6) < 1e-6);
	assert_true(fabs(usage_of(&f, CUR_RATES,
				  "111122223333|Amazon Bedrock|USE1-nova-pro-input-tokens|1000") - 500) < 1e-9);
	assert_true(isnan(cell(&f, CUR_MODELS, D1 "|111122223333|Amazon Elastic Compute Cloud|BoxUsage:t3.micro")));

	/* the same bytes in any pieces give the same tables */
	struct fixture g;
	fx_init(&g, 2);
	assert_int_equal(read_text(&g, aliased, 1), 0);
	for (int t = 0; t < CUR_NTABS; t++) {
		assert_int_equal(g.agg.t[t].n, f.agg.t[t].n);
		for (size_t i = 0; i < f.agg.t[t].n; i++)
			assert_true(cell(&g, (enum cur_tab)t, f.agg.t[t].v[i].key) == f.agg.t[t].v[i].cost);
	}
	fx_free(&g);
	fx_free(&f);
}

static void map_form(void **state)
{
	(void)state;
	static const char text[] =
		"line_item_usage_start_date,line_item_usage_account_id,line_item_product_code,"
		"line_item_usage_type,line_item_unblended_cost,product,resource_tags\n"
		"2026-12-01T00:00:00.000Z,1,AmazonBedrock,USE1-x-input-tokens,1,"
		"\"{\"\"product_name\"\":\"\"Amazon Bedrock\"\"}\","
		"\"{\"\"user_application\"\":\"\"Chat\"\",\"\"user_environment\"\":\"\"Prod\"\"}\"\n"
		"2026-12-01T00:00:00.000Z,1,prod-x,USE1-y-output-tokens,2,"
		"\"{\"\"product_name\"\":\"\"Claude (Amazon Bedrock Edition)\"\"}\","
		"\"{user_application=Chat, user_environment=Prod}\"\n"
		"2026-12-01T00:00:00.000Z,1,AWSLambda,Request,4,\"{\"\"product_name\"\":\"\"AWS Lambda\"\"}\",{}\n"
		"2026-12-01T01:00:00.000Z,1,AmazonBedrock,USE1-x-input-tokens,8,{},{}\n";
	struct fixture f;
	fx_init(&f, 2);
	assert_int_equal(read_text(&f, text, 7), 0);
	assert_int_equal(f.agg.bedrock_lines, 3);
	assert_true(cell(&f, CUR_SPEND, D1 "|1|Chat|Prod") == 3);
	assert_true(cell(&f, CUR_SPEND, D1 "|1||") == 8);
	assert_true(cell(&f, CUR_MODELS, D1 "|1|Claude (Amazon Bedrock Edition)|USE1-y-output-tokens") == 2);
	fx_free(&f);

	/* a configured column: map.key, and an aliased column by name */
	fx_init(&f, 1);
	textlist_push(&f.columns, xstrdup("resource_tags.user_environment"));
	assert_int_equal(read_text(&f, text, 0), 0);
	assert_true(cell(&f, CUR_SPEND, D1 "|1|Prod|") == 3);
	fx_free(&f);

	/* cost_explorer.services set: only those names (a line whose product map names no
	 * product is known by its product code only, which is not a SERVICE name) */
	fx_init(&f, 1);
	textlist_push(&f.services, xstrdup("Amazon Bedrock"));
	assert_int_equal(read_text(&f, text, 0), 0);
	assert_int_equal(f.agg.bedrock_lines, 1);
	fx_free(&f);
}

static void refusals(void **state)
{
	(void)state;
	static const char head[] = "line_item_usage_start_date,line_item_usage_type,"
				   "line_item_unblended_cost,application\n";
	struct {
		const char *body;
		int rc;
		const char *says;
	} cases[] = {
		{ "2026-12-01T00:00:00Z,USE1-x,1\n", -EPROTO, "line 3 has 3 fields" },
		{ "2026-12-01T00:00:00Z,USE1-x,1,a,b\n", -EPROTO, "has 5 fields" },
		{ "2026-13-01T00:00:00Z,USE1-x,1,a\n", -EPROTO, "not an ISO 8601" },
		{ "yesterday,USE1-x,1,a\n", -EPROTO, "not an ISO 8601" },
		{ "2026-12-01T00:00:00Z,USE1-x,1.2.3,a\n", -EPROTO, "not a number" },
		{ "2026-12-01T00:00:00Z,USE1-x,1,ab\"c\n", -EPROTO, "quote" },
		{ "2026-12-01T00:00:00Z,USE1-x,1,\"open\n", -EPROTO, "quote" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture f;
		fx_init(&f, 1);
		char *text = xasprintf("%s2026-12-01T00:00:00Z,USE1-ok,1,a\n%s", head, cases[i].body);
		/* no product code or service column: the service name is "", which this list
		 * names, so every line is read */
		textlist_push(&f.services, xstrdup(""));
		int rc = read_text(&f, text, 0);
		assert_int_equal(rc, cases[i].rc);
		if (!strstr(f.err, cases[i].says))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, f.err, cases[i].says);
		free(text);
		fx_free(&f);
	}
	/* a column missing, named */
	struct fixture f;
	fx_init(&f, 2);
	assert_int_equal(read_text(&f, head, 0), -ENOENT);
	assert_non_null(strstr(f.err, "Environment"));
	fx_free(&f);
	fx_init(&f, 1);
	assert_int_equal(read_text(&f, "line_item_usage_start_date,application\n", 0), -ENOENT);
	assert_non_null(strstr(f.err, "line_item_unblended_cost"));
	fx_free(&f);
	/* a field of 1.5 MB */
	fx_init(&f, 1);
	size_t big = 1500 * 1024;
	char *text = xmalloc(strlen(head) + big + 64);
	char *p = text + sprintf(text, "%s2026-12-01T00:00:00Z,USE1-x,1,", head);
	memset(p, 'x', big);
	strcpy(p + big, "\n");
	assert_int_equal(read_text(&f, text, 65536), -EMSGSIZE);
	free(text);
	fx_free(&f);
	/* no bytes at all: an emptied chunk, not an error */
	fx_init(&f, 1);
	assert_int_equal(read_text(&f, "", 0), 0);
	assert_int_equal(f.agg.lines, 0);
	fx_free(&f);
}

static void merge_and_split(void **state)
{
	(void)state;
	struct cur_agg a, b;
	cur_agg_init(&a);
	cur_agg_init(&b);
	cur_table_add(&a.t[CUR_SPEND], "1\x1f" "a", 1, 0);
	cur_table_add(&b.t[CUR_SPEND], "1\x1f" "a", 2, 5);
	cur_table_add(&b.t[CUR_SPEND], "2\x1f" "b", 4, 0);
	b.first_hour = 10;
	b.last_hour = 20;
	cur_agg_merge(&a, &b);
	assert_int_equal(a.t[CUR_SPEND].n, 2);
	assert_true(a.t[CUR_SPEND].v[0].cost == 3 && a.t[CUR_SPEND].v[0].usage == 5);
	assert_int_equal(a.first_hour, 10);
	assert_int_equal(a.last_hour, 20);
	char *copy, *f[3];
	assert_int_equal(cur_key_split("x\x1fy\x1f", &copy, f, 3), 3);
	assert_string_equal(f[0], "x");
	assert_string_equal(f[1], "y");
	assert_string_equal(f[2], "");
	free(copy);
	assert_true(cur_tokens_per_unit("1K tokens") == 1000);
	assert_true(cur_tokens_per_unit("tokens") == 1);
	assert_true(cur_tokens_per_unit(NULL) == 1);
	cur_agg_free(&a);
	cur_agg_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(manifests),
		cmocka_unit_test(aliased_form),
		cmocka_unit_test(map_form),
		cmocka_unit_test(refusals),
		cmocka_unit_test(merge_and_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
