/* Unit tests for metrics.c: the projects families rendered from a known state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/model/metrics.c"

static struct project mk(const char *id, const char *name, const char *status, double created,
			 const char *k1, const char *v1, const char *k2, const char *v2)
{
	struct project p = { xstrdup(id), xstrdup(name), xstrdup(""), xstrdup(status), created,
			     NULL, 0 };
	p.tags = xcalloc(2, sizeof(*p.tags));
	/* keys given in sorted order, as the parser stores them */
	if (k1) {
		p.tags[p.ntags].key = xstrdup(k1);
		p.tags[p.ntags++].value = xstrdup(v1);
	}
	if (k2) {
		p.tags[p.ntags].key = xstrdup(k2);
		p.tags[p.ntags++].value = xstrdup(v2);
	}
	return p;
}

static char *render_state(struct exporter_state *st)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(st, &b), 0);
	return buf_steal(&b, NULL);
}

static void projects_families(void **state)
{
	(void)state;
	struct conf *c = conf_defaults();
	struct region_state regions[2] = { { 0 } };
	regions[0].region = "us-east-1";
	regions[0].has_data = true;
	regions[0].projects.n = 3;
	regions[0].projects.v = xcalloc(3, sizeof(struct project));
	regions[0].projects.v[0] = mk("default", "Default project", "active", 100, NULL, NULL, NULL, NULL);
	regions[0].projects.v[1] = mk("proj_a", "A \"quoted\"", "archived", 200, "Application", "Chat",
				      "Owner", "x\\y");
	regions[0].projects.v[2] = mk("proj_b", "B", "suspended", 300, "Team", "DS", NULL, NULL);
	regions[1].region = "eu-west-1";
	regions[1].has_data = false; /* never listed: no series at all */

	struct exporter_state st = { .conf = c, .telemetry_path = "/metrics", .regions = regions,
				     .nregions = 2, .reload_ok = true };
	st.projects = (struct source_state){ .name = "projects", .enabled = true, .up = true,
					     .has_data = true, .last_success = 5, .last_attempt = 4 };
	char *out = render_state(&st);

	assert_non_null(strstr(out,
		"bedrock_cost_project_info{region=\"us-east-1\",project_id=\"proj_a\","
		"project_name=\"A \\\"quoted\\\"\",project_arn=\"\",status=\"archived\","
		"tag_application=\"Chat\",tag_environment=\"\",tag_team=\"\",tag_costcenter=\"\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_project_tag_info{region=\"us-east-1\",project_id=\"proj_a\",key=\"Owner\","
		"value=\"x\\\\y\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_project_created_timestamp_seconds{region=\"us-east-1\",project_id=\"proj_b\"} 300\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{region=\"us-east-1\",status=\"active\"} 1\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{region=\"us-east-1\",status=\"archived\"} 1\n"));
	assert_non_null(strstr(out, "bedrock_cost_projects{region=\"us-east-1\",status=\"suspended\"} 1\n"));
	assert_null(strstr(out, "eu-west-1"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_source_up{source=\"projects\"} 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_exporter_last_success_timestamp_seconds{source=\"projects\"} 5\n"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_config_last_reload_successful 1\n"));
	assert_non_null(strstr(out,
		"bedrock_cost_exporter_api_request_errors_total{api=\"bedrock_mantle\","
		"operation=\"ListProjects\",reason=\"throttled\"} 0\n"));
	/* the default project has no tag_info series */
	assert_null(strstr(out, "project_tag_info{region=\"us-east-1\",project_id=\"default\""));
	free(out);

	char *why = NULL;
	assert_true(metrics_ready(&st, &why));
	st.projects.has_data = false;
	assert_false(metrics_ready(&st, &why));
	assert_non_null(strstr(why, "projects"));
	free(why);

	project_list_free(&regions[0].projects);
	conf_free(c);
}

/* Budgets: a project by name or by id, a tag value; unknown projects export nothing. */
static void budget_matching(void **state)
{
	(void)state;
	struct strlist errs = { 0 };
	struct conf *c = conf_parse_string("t.conf",
		"budgets = ( { project = \"Chat Prod\"; monthly_usd = 500.0; },\n"
		"            { project = \"proj_b\"; monthly_usd = 7; },\n"
		"            { project = \"Gone\"; monthly_usd = 1.5; },\n"
		"            { tag = \"Team\"; value = \"DataScience\"; monthly_usd = 2000; } );\n"
		"cost_explorer: { enabled = true; };\n", &errs);
	assert_non_null(c);
	struct region_state region = { .region = "us-east-1", .has_data = true };
	region.projects.n = 2;
	region.projects.v = xcalloc(2, sizeof(struct project));
	region.projects.v[0] = mk("proj_a", "Chat Prod", "active", 1, NULL, NULL, NULL, NULL);
	region.projects.v[1] = mk("proj_b", "B", "active", 1, NULL, NULL, NULL, NULL);
	struct exporter_state st = { .conf = c, .telemetry_path = "/metrics", .regions = &region,
				     .nregions = 1, .reload_ok = true, .now = 1795651200 };
	st.projects = (struct source_state){ .name = "projects", .enabled = true, .has_data = true };
	st.costs = (struct source_state){ .name = "cost_explorer", .enabled = true };
	char *out = render_state(&st);
	assert_non_null(strstr(out, "bedrock_cost_project_budget_monthly_usd{project_id=\"proj_a\"} 500\n"));
	assert_non_null(strstr(out, "bedrock_cost_project_budget_monthly_usd{project_id=\"proj_b\"} 7\n"));
	assert_null(strstr(out, "Gone"));
	assert_non_null(strstr(out, "bedrock_cost_tag_budget_monthly_usd{tag_key=\"Team\",tag_value=\"DataScience\"} 2000\n"));
	/* no cost data yet: no cost series, but the request counters exist */
	assert_null(strstr(out, "bedrock_cost_project_today_usd"));
	assert_non_null(strstr(out, "bedrock_cost_exporter_cost_explorer_requests_remaining_today 40\n"));
	free(out);
	project_list_free(&region.projects);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(projects_families),
		cmocka_unit_test(budget_matching),
	};
	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
