/* Unit tests for attribution.c: unique, ambiguous, unmatched, untagged, partial tags,
 * windows across a month boundary, tag roll-ups and models. Expected values are
 * worked out by hand in the comments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "../../src/model/attribution.c"

static struct project mkp(const char *id, const char *app, const char *env, const char *team)
{
	struct project p = { xstrdup(id), xstrdup(id), xstrdup(""), xstrdup("active"), 0, NULL, 0 };
	p.tags = xcalloc(3, sizeof(*p.tags));
	/* keys in sorted order: Application, Environment, Team */
	if (app) {
		p.tags[p.ntags].key = xstrdup("Application");
		p.tags[p.ntags++].value = xstrdup(app);
	}
	if (env) {
		p.tags[p.ntags].key = xstrdup("Environment");
		p.tags[p.ntags++].value = xstrdup(env);
	}
	if (team) {
		p.tags[p.ntags].key = xstrdup("Team");
		p.tags[p.ntags++].value = xstrdup(team);
	}
	return p;
}

static long D(const char *s)
{
	long d;
	assert_int_equal(days_parse(s, &d), 0);
	return d;
}

static void add_group(struct ce_series *s, const char *day, bool est, const char *a, const char *b,
		      double amount)
{
	long d = D(day);
	struct ce_day *cd = NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->days[i].day == d)
			cd = &s->days[i];
	if (!cd) {
		s->days = xrealloc(s->days, (s->n + 1) * sizeof(*s->days));
		cd = &s->days[s->n++];
		*cd = (struct ce_day){ d, est, NULL, 0, 0 };
	}
	cd->g = xrealloc(cd->g, (cd->n + 1) * sizeof(*cd->g));
	cd->g[cd->n++] = (struct ce_group){ { xstrdup(a), xstrdup(b) }, amount };
}

static const struct attr_row *row(const struct attribution *a, const char *id)
{
	for (size_t i = 0; i < a->nrows; i++)
		if (strcmp(a->rows[i].project_id, id) == 0)
			return &a->rows[i];
	fail_msg("no row %s", id);
	return NULL;
}

static const struct attr_tag *tag(const struct attribution *a, const char *k, const char *v)
{
	for (size_t i = 0; i < a->ntags; i++)
		if (strcmp(a->tags[i].key, k) == 0 && strcmp(a->tags[i].value, v) == 0)
			return &a->tags[i];
	fail_msg("no tag %s=%s", k, v);
	return NULL;
}

#define NEAR(x, y) assert_true(fabs((x) - (y)) < 1e-9)

static void attribution_windows_and_reserved_rows(void **state)
{
	(void)state;
	struct project ps[6] = {
		mkp("p1", "Chat", "Prod", "CX"), mkp("p2", "Chat", "Dev", "CX"),
		mkp("p3", "Doc", "Prod", "DS"),  mkp("p4", "Doc", "Prod", "DS"),
		mkp("p5", "Solo", NULL, NULL),   mkp("default", NULL, NULL, NULL),
	};
	const struct project *pp[6];
	for (int i = 0; i < 6; i++)
		pp[i] = &ps[i];
	struct textlist keys = { 0 }, labels = { 0 };
	textlist_push(&keys, xstrdup("Application"));
	textlist_push(&keys, xstrdup("Environment"));
	textlist_push(&labels, xstrdup("Application"));
	textlist_push(&labels, xstrdup("Team"));

	struct ce_series spend = { 0 }, models = { 0 };
	add_group(&spend, "2026-10-31", false, "Chat", "Prod", 100); /* outside every window */
	add_group(&spend, "2026-11-23", false, "Chat", "Prod", 7);   /* baseline */
	add_group(&spend, "2026-11-29", false, "Chat", "Prod", 14);  /* baseline */
	add_group(&spend, "2026-11-30", false, "Chat", "Prod", 10);  /* yesterday */
	add_group(&spend, "2026-11-30", false, "Doc", "Prod", 4);    /* ambiguous */
	add_group(&spend, "2026-11-30", false, "", "", 1);           /* untagged */
	add_group(&spend, "2026-11-30", false, "Legacy", "Prod", 2); /* unmatched */
	add_group(&spend, "2026-11-30", false, "Solo", "", 3);       /* partial tags, unique */
	add_group(&spend, "2026-12-01", true, "Chat", "Dev", 0.5);   /* today */
	add_group(&models, "2026-11-30", false, "Amazon Bedrock",
		  "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard", 2);
	add_group(&models, "2026-12-01", true, "Amazon Bedrock",
		  "USE1-openai.gpt-oss-120b-mantle-input-tokens-standard", 3);
	add_group(&models, "2026-12-01", true, "Claude Sonnet 4.5 (Amazon Bedrock Edition)",
		  "USE1-MP:USE1_OutputTokens-Units", 1);

	struct attr_input in = { pp, 6, &keys, &labels, &models, D("2026-12-01"), { 0 }, { 0 }, { 0 } };
	attribution_spend_all(&in, &spend);
	struct attribution a;
	attribution_compute(&in, &a);

	/* p1: yesterday 10; baseline (7 + 14) / 7 = 3; previous month 7 + 14 + 10 = 31 */
	NEAR(row(&a, "p1")->v[WIN_TODAY], 0);
	NEAR(row(&a, "p1")->v[WIN_YESTERDAY], 10);
	NEAR(row(&a, "p1")->v[WIN_BASELINE], 3);
	NEAR(row(&a, "p1")->v[WIN_MONTH_TO_DATE], 0);
	NEAR(row(&a, "p1")->v[WIN_PREVIOUS_MONTH], 31);
	NEAR(row(&a, "p2")->v[WIN_TODAY], 0.5);
	NEAR(row(&a, "p2")->v[WIN_MONTH_TO_DATE], 0.5);
	NEAR(row(&a, "p5")->v[WIN_YESTERDAY], 3);
	NEAR(row(&a, "p3")->v[WIN_YESTERDAY], 0); /* shared values: nothing to p3 or p4 */
	NEAR(row(&a, ATTR_AMBIGUOUS)->v[WIN_YESTERDAY], 4);
	NEAR(row(&a, ATTR_UNTAGGED)->v[WIN_YESTERDAY], 1);
	NEAR(row(&a, ATTR_UNMATCHED)->v[WIN_YESTERDAY], 2);
	for (size_t i = 0; i < a.nrows; i++)
		assert_string_not_equal(a.rows[i].project_id, "default");
	/* sum over project_id equals the total, per window: yesterday 10+4+1+2+3 = 20 */
	for (int w = 0; w < WIN_COUNT; w++) {
		double sum = 0;
		for (size_t i = 0; i < a.nrows; i++)
			sum += a.rows[i].v[w];
		NEAR(sum, a.total[w]);
	}
	NEAR(a.total[WIN_YESTERDAY], 20);
	NEAR(a.total[WIN_PREVIOUS_MONTH], 41);
	assert_int_equal(a.nambiguous, 1);
	assert_string_equal(a.ambiguous[0].value, "Application=Doc,Environment=Prod");
	assert_int_equal(a.ambiguous[0].projects, 2);

	/* Team: p1 -> CX 10; everything else yesterday has no single project with a Team: 4+1+2+3 */
	NEAR(tag(&a, "Team", "CX")->v[WIN_YESTERDAY], 10);
	NEAR(tag(&a, "Team", ATTR_UNTAGGED)->v[WIN_YESTERDAY], 10);
	NEAR(tag(&a, "Team", "DS")->v[WIN_YESTERDAY], 0); /* listed, no spend of its own */
	/* Application is an attribution key: the group's own value is used when no single project */
	NEAR(tag(&a, "Application", "Chat")->v[WIN_YESTERDAY], 10);
	NEAR(tag(&a, "Application", "Doc")->v[WIN_YESTERDAY], 4);
	NEAR(tag(&a, "Application", "Legacy")->v[WIN_YESTERDAY], 2);
	NEAR(tag(&a, "Application", "Solo")->v[WIN_YESTERDAY], 3);
	NEAR(tag(&a, "Application", ATTR_UNTAGGED)->v[WIN_YESTERDAY], 1);

	/* estimated: today always; yesterday's day is final; baseline has missing days */
	assert_true(a.estimated[WIN_TODAY]);
	assert_false(a.estimated[WIN_YESTERDAY]);
	assert_true(a.estimated[WIN_BASELINE]);

	/* models: yesterday 2, month to date (December) 3; Marketplace named by service */
	assert_int_equal(a.nmodels, 2);
	for (size_t i = 0; i < a.nmodels; i++) {
		if (strcmp(a.models[i].service, "Amazon Bedrock") == 0) {
			assert_string_equal(a.models[i].model, "openai.gpt-oss-120b");
			assert_string_equal(a.models[i].token_type, "input");
			NEAR(a.models[i].yesterday, 2);
			NEAR(a.models[i].month_to_date, 3);
		} else {
			assert_string_equal(a.models[i].model, "Claude Sonnet 4.5");
			assert_string_equal(a.models[i].token_type, "output");
			NEAR(a.models[i].month_to_date, 1);
		}
	}
	attribution_free(&a);

	/* one attribution key: Application only -> Doc is still ambiguous, Chat now too (p1, p2) */
	struct textlist one = { 0 };
	textlist_push(&one, xstrdup("Application"));
	struct ce_series s1 = { 0 };
	add_group(&s1, "2026-11-30", false, "Chat", NULL, 6);
	add_group(&s1, "2026-11-30", false, "Solo", NULL, 1);
	struct attr_input in1 = { pp, 6, &one, &labels, NULL, D("2026-12-01"), { 0 }, { 0 }, { 0 } };
	attribution_spend_all(&in1, &s1);
	attribution_compute(&in1, &a);
	NEAR(row(&a, ATTR_AMBIGUOUS)->v[WIN_YESTERDAY], 6);
	NEAR(row(&a, "p5")->v[WIN_YESTERDAY], 1);
	assert_string_equal(a.ambiguous[0].value, "Application=Chat");
	attribution_free(&a);

	ce_series_free(&s1);
	ce_series_free(&spend);
	ce_series_free(&models);
	textlist_free(&one);
	textlist_free(&keys);
	textlist_free(&labels);
	struct project_list pl = { xcalloc(6, sizeof(struct project)), 6 };
	memcpy(pl.v, ps, sizeof(ps));
	project_list_free(&pl);
}

/*
 * Random accounts against a reference written the obvious way (scan every
 * project for every group): rows, tag roll-ups, totals and the ambiguous list
 * must agree. Few distinct values, so unmatched, ambiguous, untagged and
 * "default"-owned spend all occur.
 */
static const char *pick(const char *const *v, size_t n)
{
	return v[(size_t)rand() % n];
}

static void attribution_matches_reference(void **state)
{
	(void)state;
	static const char *const apps[] = { "", "A", "B", "C", "D", "E", "F", "G" };
	static const char *const envs[] = { "", "prod", "dev" };
	static const char *const teams[] = { "", "T1", "T2", "T\"3" };
	struct textlist keys = { 0 }, labels = { 0 };
	textlist_push(&keys, xstrdup("Application"));
	textlist_push(&keys, xstrdup("Environment"));
	textlist_push(&labels, xstrdup("Team"));
	textlist_push(&labels, xstrdup("Environment"));
	for (int round = 0; round < 30; round++) {
		size_t np = 1 + (size_t)rand() % 25;
		struct project *ps = xcalloc(np, sizeof(*ps));
		const struct project **pp = xcalloc(np, sizeof(*pp));
		for (size_t i = 0; i < np; i++) {
			char id[16];
			snprintf(id, sizeof(id), i == 0 && round % 2 ? "default" : "p%zu", i);
			const char *app = pick(apps, 8), *env = pick(envs, 3), *team = pick(teams, 4);
			ps[i] = mkp(id, *app ? app : NULL, *env ? env : NULL, *team ? team : NULL);
			pp[i] = &ps[i];
		}
		struct ce_series s = { 0 };
		long today = D("2026-12-03");
		for (int g = 0; g < 400; g++) {
			char day[11];
			days_format(today - 40 + rand() % 41, day);
			add_group(&s, day, false, pick(apps, 8), pick(envs, 3), (double)(rand() % 1000) / 8);
		}
		/* add_group appends days in random order; the series is ascending */
		for (size_t i = 1; i < s.n; i++)
			for (size_t j = i; j > 0 && s.days[j - 1].day > s.days[j].day; j--) {
				struct ce_day t = s.days[j];
				s.days[j] = s.days[j - 1];
				s.days[j - 1] = t;
			}
		struct attr_input in = { pp, np, &keys, &labels, NULL, today, { 0 }, { 0 }, { 0 } };
		attribution_spend_all(&in, &s);
		struct attribution a;
		attribution_compute(&in, &a);

		long ws[WIN_COUNT], we[WIN_COUNT];
		for (int w = 0; w < WIN_COUNT; w++)
			days_window((enum window)w, today, &ws[w], &we[w]);
		size_t namb = 0;
		for (int w = 0; w < WIN_COUNT; w++) {
			double total = 0;
			for (size_t r = 0; r < a.nrows; r++)
				total += a.rows[r].v[w];
			for (size_t k = 0; k < labels.n; k++) {
				double tsum = 0;
				for (size_t t = 0; t < a.ntags; t++)
					if (strcmp(a.tags[t].key, labels.v[k]) == 0)
						tsum += a.tags[t].v[w];
				NEAR(tsum, total); /* every label's roll-up covers all spend */
			}
			NEAR(total, a.total[w]);
		}
		/* per project: the reference sum of the groups only it carries */
		for (size_t i = 0; i < np; i++) {
			double want[WIN_COUNT] = { 0 };
			bool hit = false;
			for (size_t d = 0; d < s.n; d++)
				for (size_t g = 0; g < s.days[d].n; g++) {
					const struct ce_group *cg = &s.days[d].g[g];
					if (!*cg->k[0] && !*cg->k[1])
						continue;
					size_t owners = 0, owner = 0;
					for (size_t j = 0; j < np; j++) {
						const char *pa = project_tag(pp[j], "Application");
						const char *pe = project_tag(pp[j], "Environment");
						if (strcmp(pa ? pa : "", cg->k[0]) == 0 &&
						    strcmp(pe ? pe : "", cg->k[1]) == 0) {
							owners++;
							owner = j;
						}
					}
					if (owners != 1 || owner != i)
						continue;
					hit = true;
					for (int w = 0; w < WIN_COUNT; w++)
						if (s.days[d].day >= ws[w] && s.days[d].day < we[w])
							want[w] += cg->amount;
				}
			if (strcmp(ps[i].id, "default") == 0 && !hit)
				continue; /* no row until spend reaches it */
			const struct attr_row *r = row(&a, ps[i].id);
			for (int w = 0; w < WIN_COUNT; w++)
				NEAR(r->v[w], w == WIN_BASELINE ? want[w] / BASELINE_DAYS : want[w]);
		}
		/* Team roll-up of an owned group is the owner's Team; check one value */
		double t1 = 0;
		for (size_t d = 0; d < s.n; d++) {
			if (s.days[d].day < ws[WIN_PREVIOUS_MONTH] || s.days[d].day >= we[WIN_PREVIOUS_MONTH])
				continue;
			for (size_t g = 0; g < s.days[d].n; g++) {
				const struct ce_group *cg = &s.days[d].g[g];
				size_t owners = 0, owner = 0;
				for (size_t j = 0; j < np && (*cg->k[0] || *cg->k[1]); j++) {
					const char *pa = project_tag(pp[j], "Application");
					const char *pe = project_tag(pp[j], "Environment");
					if (strcmp(pa ? pa : "", cg->k[0]) == 0 && strcmp(pe ? pe : "", cg->k[1]) == 0) {
						owners++;
						owner = j;
					}
				}
				const char *team = owners == 1 ? project_tag(pp[owner], "Team") : NULL;
				if (team && strcmp(team, "T1") == 0)
					t1 += cg->amount;
			}
		}
		double got = 0;
		for (size_t t = 0; t < a.ntags; t++)
			if (strcmp(a.tags[t].key, "Team") == 0 && strcmp(a.tags[t].value, "T1") == 0)
				got = a.tags[t].v[WIN_PREVIOUS_MONTH];
		NEAR(got, t1);
		/* each ambiguous combination listed once */
		for (size_t i = 0; i < a.nambiguous; i++, namb++)
			for (size_t j = 0; j < i; j++)
				assert_string_not_equal(a.ambiguous[i].value, a.ambiguous[j].value);
		attribution_free(&a);
		ce_series_free(&s);
		struct project_list pl = { ps, np };
		project_list_free(&pl);
		free(pp);
	}
	textlist_free(&keys);
	textlist_free(&labels);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(attribution_windows_and_reserved_rows),
		cmocka_unit_test(attribution_matches_reference),
	};
	return cmocka_run_group_tests_name("attribution", tests, NULL, NULL);
}
