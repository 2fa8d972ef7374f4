/* Unit tests for render.c: the exposition built from the source table (the projects families,
 * budgets, health and readiness), and that an exposition is whole or absent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/render.c"
#include "base/jsontape.h"
#include "sources/cost_explorer.h"
#include "sources/projects.h"

/* Puts the projects of the state-file document @doc in place through the projects source's
 * own restore(), as a restart does. */
static void restore_projects(struct source_set *set, const struct conf *c, const char *doc)
{
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, doc, strlen(doc)), 0);
	struct source_restored got = { 0 };
	char err[256] = "";
	void *priv = projects_source.restore(&t, 0, c, 1795651200, &got, err, sizeof(err));
	jsontape_free(&t);
	if (!priv)
		fail_msg("restore: %s", err);
	assert_true(got.has_data);
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].def == &projects_source) {
			projects_source.destroy(set->v[i].priv);
			set->v[i].priv = priv;
			set->v[i].health.has_data = true;
		}
}

static char *render(const struct source_set *set, const struct conf *c, double now)
{
	struct render_info info = { .telemetry_path = "/metrics", .reload_ok = true };
	struct buf b;
	buf_init(&b, 1 << 22);
	assert_int_equal(render_metrics(set, c, &info, now, &b), 0);
	return buf_steal(&b, NULL);
}

static struct source *find(struct source_set *set, const struct source_def *d)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].def == d)
			return &set->v[i];
	fail_msg("source %s not in the set", d->name);
	return NULL;
}

static void projects_families(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_parse_string("t.conf", "projects: { regions = [\"us-east-1\", \"eu-west-1\"]; };\n"
					   "cost_explorer: { enabled = false; };\n"
					   "cloudwatch: { enabled = false; };\n", &errs);
	assert_non_null(c);
	struct source_set set;
	source_set_init(&set, source_table, c);
	restore_projects(&set, c,
		"{\"projects\":{\"us-east-1\":["
		"{\"id\":\"default\",\"name\":\"Default project\",\"status\":\"active\",\"created_at\":100},"
		"{\"id\":\"proj_a\",\"name\":\"A \\\"quoted\\\"\",\"status\":\"archived\",\"created_at\":200,"
		"\"tags\":{\"Application\":\"Chat\",\"Owner\":\"x\\\\y\"}},"
		"{\"id\":\"proj_b\",\"name\":\"B\",\"status\":\"suspended\",\"created_at\":300,"
		"\"tags\":{\"Team\":\"DS\"}}]}}");
	struct source *ps = find(&set, &projects_source);
	ps->health = (struct source_health){ .up = true, .has_data = true, .last_success = 5,
					     .last_attempt = 4 };
	char *out = render(&set, c, 1795651200);

	assert_non_null(strstr(out,
		"bedrock_cost_project_info{account_id=\"\",region=\"us-east-1\",project_id=\"proj_a\","
		"project_name=\"A \\\"quoted\\\"\",project_arn=\"\",status=\"archived\","
		"tag_application=\"Chat\",tag_environment=\"\",tag_team=\"\",tag_costcenter=\"\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_project_tag_info{account_id=\"\",region=\"us-east-1\",project_id=\"proj_a\",key=\"Owner\","
		"value=\"x\\\\y\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_project_created_timestamp_seconds{account_id=\"\",region=\"us-east-1\",project_id=\"proj_b\"} 300\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{account_id=\"\",region=\"us-east-1\",status=\"active\"} 1\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{account_id=\"\",region=\"us-east-1\",status=\"archived\"} 1\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{account_id=\"\",region=\"us-east-1\",status=\"suspended\"} 1\n"));
	assert_null(strstr(out, "eu-west-1")); /* never listed: no series at all */
	assert_non_null(strstr(out, "bedrock_cost_exporter_source_up{source=\"projects\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_exporter_last_success_timestamp_seconds{source=\"projects\"} 5\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_config_last_reload_successful 1\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_render_failures_total 0\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_exporter_api_request_errors_total{api=\"bedrock_mantle\","
		"operation=\"ListProjects\",reason=\"throttled\"} 0\n"));
	/* the default project has no tag_info series */
	assert_null(strstr(out, "project_tag_info{account_id=\"\",region=\"us-east-1\",project_id=\"default\""));
	/* disabled sources (cost_explorer.enabled = false) export nothing, not even health */
	assert_null(strstr(out, "source=\"cost_explorer\""));
	assert_null(strstr(out, "bedrock_cost_exporter_cost_explorer_"));
	free(out);

	char *why = NULL;
	assert_true(render_ready(&set, &why));
	ps->health.has_data = false;
	assert_false(render_ready(&set, &why));
	assert_non_null(strstr(why, "projects"));
	assert_null(strstr(why, "cost_explorer"));
	free(why);

	size_t len;
	char *page = render_landing(&set, "/m<x>", &len);
	assert_int_equal(strlen(page), len);
	assert_non_null(strstr(page, "href=\"/m&lt;x&gt;\""));
	assert_non_null(strstr(page, "<td>projects</td><td>up</td>"));
	assert_null(strstr(page, "cost_explorer"));
	free(page);
	source_set_free(&set);
	conf_free(c);
}

/* Budgets: a project by name or by id, a tag value; unknown projects export nothing. */
static void budget_matching(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	struct conf *c = conf_parse_string("t.conf",
		"budgets = ( { project = \"Chat Prod\"; monthly_usd = 500.0; },\n"
		"            { project = \"proj_b\"; monthly_usd = 7; },\n"
		"            { project = \"Gone\"; monthly_usd = 1.5; },\n"
		"            { tag = \"Team\"; value = \"DataScience\"; monthly_usd = 2000; } );\n"
		"cost_explorer: { enabled = true; };\n", &errs);
	assert_non_null(c);
	struct source_set set;
	source_set_init(&set, source_table, c);
	restore_projects(&set, c,
		"{\"projects\":{\"us-east-1\":["
		"{\"id\":\"proj_a\",\"name\":\"Chat Prod\",\"status\":\"active\",\"created_at\":1},"
		"{\"id\":\"proj_b\",\"name\":\"B\",\"status\":\"active\",\"created_at\":1}]}}");
	char *out = render(&set, c, 1795651200);
	assert_non_null(strstr(out, "bedrock_cost_project_budget_monthly_usd{account_id=\"\",project_id=\"proj_a\"} 500\n"));
	assert_non_null(strstr(out, "bedrock_cost_project_budget_monthly_usd{account_id=\"\",project_id=\"proj_b\"} 7\n"));
	assert_null(strstr(out, "Gone"));
	assert_non_null(strstr(out, "bedrock_cost_tag_budget_monthly_usd{account_id=\"\",tag_key=\"Team\",tag_value=\"DataScience\"} 2000\n"));
	/* no cost data yet: no cost series, but the request counters exist */
	assert_null(strstr(out, "bedrock_cost_project_today_usd"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_cost_explorer_requests_remaining_today 40\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_source_up{source=\"cost_explorer\"} 0\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_source_up{source=\"forecast\"} 0\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_source_up{source=\"allocation_tags\"} 0\n"));
	free(out);
	source_set_free(&set);
	conf_free(c);
}

/* An exposition that does not fit is not written at all: the buffer is as it was. */
static void never_half_an_exposition(void **state)
{
	(void)state;
	struct conf *c = conf_defaults();
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct render_info info = { .telemetry_path = "/metrics", .reload_ok = true };
	struct buf whole;
	buf_init(&whole, 1 << 22);
	assert_int_equal(render_metrics(&set, c, &info, 1795651200, &whole), 0);
	assert_true(whole.len > 1000);
	for (size_t max = 7; max < whole.len; max = max * 3 + 1) {
		struct buf b;
		buf_init(&b, max);
		assert_int_equal(buf_puts(&b, "keep\n"), 0);
		assert_int_equal(render_metrics(&set, c, &info, 1795651200, &b), -ENOSPC);
		assert_int_equal(b.len, 5);
		assert_string_equal(b.data, "keep\n");
		buf_free(&b);
	}
	buf_free(&whole);
	source_set_free(&set);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(projects_families),
		cmocka_unit_test(budget_matching),
		cmocka_unit_test(never_half_an_exposition),
	};
	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
