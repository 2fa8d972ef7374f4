/* Unit tests for statefile.c: round trip, corrupt, foreign and old-version files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "../../src/statefile.c"

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
	assert_int_equal(statefile_save(path, &ce, regions, 2, 1795651600, err, sizeof(err)), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(bad_files_change_nothing),
	};
	return cmocka_run_group_tests_name("statefile", tests, NULL, NULL);
}
