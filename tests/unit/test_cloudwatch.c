/*
 * Unit tests for cloudwatch.c: the minute ring across a refresh and a UTC midnight, the rates
 * from bill and tokens (token-weighted, last settled day, kept, yesterday's without
 * yesterday's bill), the spread of refreshes under the metric ceiling, and the state file.
 * The wire is tested in test_cw_api.c and end to end in tests/integration/cloudwatch.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/sources/cloudwatch.c"

#define DAY0 20418L /* 2025-11-26 */

static struct pair *new_pair(struct state *s, const char *project)
{
	return pair_get(s, "us-east-1", project, "openai.gpt-oss-120b");
}

/* Minute m of @day. */
static long min_of(long day, long m)
{
	return midnight_minute(day) + m;
}

static void ring_across_midnight(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	struct pair *p = new_pair(s, "proj_a");
	long today = DAY0;
	s->today = today;
	/* a fresh read at 23:50 of DAY0: 600 tokens before the ring, the ring's minutes 1 each */
	long end = min_of(today, 23 * 60 + 50);
	p->upto = end;
	p->settled[IN] = 600;
	for (long m = end - RING; m < end; m++)
		p->ring[IN][m % RING] = 1;
	assert_true(tokens_today(p, IN, today) == 600 + RING);
	assert_true(tokens_last_hour(p, IN, end) == HOUR);
	/* ten minutes later (00:00 of the next day is the end), read from end - 5 */
	long end2 = end + 10;
	ring_advance(p, end2, today);
	for (long m = end - 5; m < end2; m++)
		p->ring[IN][m % RING] = 2;
	/* the 10 minutes that left the ring joined today's sum; the re-read ones count as 2 */
	assert_true(tokens_today(p, IN, today) == 600 + (RING - 5) * 1 + 15 * 2);
	assert_true(tokens_last_hour(p, IN, end2) == 45 * 1 + 15 * 2);

	/* the day turns: today's sum starts again, the hour still spans midnight */
	day_turn(s, today + 1);
	assert_true(p->settled[IN] == 0);
	assert_true(tokens_today(p, IN, today + 1) == 0); /* end2 is 00:00 */
	long end3 = end2 + 20;
	ring_advance(p, end3, today + 1);
	for (long m = end2; m < end3; m++)
		p->ring[IN][m % RING] = 3;
	assert_true(tokens_today(p, IN, today + 1) == 20 * 3);
	assert_true(tokens_last_hour(p, IN, end3) == 25 * 1 + 15 * 2 + 20 * 3);
	/* minutes before midnight that leave the ring are not today's */
	ring_advance(p, end3 + RING, today + 1);
	assert_true(p->settled[IN] == 20 * 3);
	assert_true(tokens_last_hour(p, IN, end3 + RING) == 0);
	destroy(s);
}

/* The history's listing forgets pairs with no data in 14 days unless they were read today. */
static void quiet_pairs_are_forgotten(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	new_pair(s, "proj_gone");
	new_pair(s, "proj_listed")->listed = true;
	new_pair(s, "proj_today")->upto = min_of(DAY0, 30);
	new_pair(s, "proj_yesterday")->upto = min_of(DAY0, 0);
	new_pair(s, "proj_listed2")->listed = true;
	pair_get(s, "eu-west-9", "proj_listed3", "m")->listed = true; /* a region dropped */
	struct conf c = { 0 };
	textlist_push(&c.projects_regions, xstrdup("us-east-1"));
	prune(s, DAY0, &c);
	textlist_free(&c.projects_regions);
	assert_int_equal(s->n, 3);
	assert_null(pair_find(s, "us-east-1", "proj_gone", "openai.gpt-oss-120b"));
	assert_null(pair_find(s, "us-east-1", "proj_yesterday", "openai.gpt-oss-120b"));
	assert_null(pair_find(s, "eu-west-9", "proj_listed3", "m"));
	const char *kept[] = { "proj_listed", "proj_today", "proj_listed2" };
	for (size_t i = 0; i < 3; i++) {
		struct pair *p = pair_find(s, "us-east-1", kept[i], "openai.gpt-oss-120b");
		assert_non_null(p);
		assert_string_equal(p->project, kept[i]);
	}
	new_pair(s, "proj_new"); /* the index still adds after the compaction */
	assert_int_equal(s->n, 4);
	assert_string_equal(pair_find(s, "us-east-1", "proj_new", "openai.gpt-oss-120b")->project,
			    "proj_new");
	destroy(s);
}

/* Billed cost per token over the settled days, kept when the days no longer give it. */
static void rates_from_bill_and_tokens(void **state)
{
	(void)state;
	long today = DAY0, day0 = today - HIST_DAYS;
	struct accs a = { NULL, 0, textmap_new() };
	struct acc *in = acc_get(&a, "us-east-1", "gpt-oss-120b", IN);
	/* index i is day day0 + i; today - 1 is index HIST_DAYS - 1, today - 2 HIST_DAYS - 2 */
	for (int i = 0; i < HIST_DAYS; i++) {
		in->tokens[i] = 1e6;
		in->billed[i] = 0.10;
	}
	in->tokens[HIST_DAYS - 2] = 3e6; /* today - 2: 0.30 for 3M tokens... */
	in->billed[HIST_DAYS - 2] = 0.60; /* ...at 0.20 per million */
	in->billed[HIST_DAYS - 1] = 99;   /* yesterday's bill must never price yesterday or today */
	struct rates now, prev;
	rates_build(&a, day0, today, NULL, &now);
	assert_int_equal(now.n, 1);
	assert_int_equal(now.v[0].day, today - 2);
	assert_true(fabs(now.v[0].last - 0.20e-6) < 1e-15);
	/* token-weighted over today-8 .. today-2: (6 x 0.10 + 0.60) / (6M + 3M) */
	assert_true(fabs(now.v[0].week - 1.2 / 9e6) < 1e-15);
	rates_build(&a, day0, today - 1, NULL, &prev);
	assert_int_equal(prev.v[0].day, today - 3);
	assert_true(fabs(prev.v[0].week - 0.10e-6) < 1e-15); /* days today-9 .. today-3 */

	/* a model the days no longer give keeps its last rate */
	struct accs b = { NULL, 0, textmap_new() };
	acc_get(&b, "us-east-1", "nova-pro", OUT)->tokens[HIST_DAYS - 2] = 5;
	struct rates later;
	rates_build(&b, day0, today, &now, &later);
	assert_int_equal(later.n, 1);
	assert_string_equal(later.v[0].key, "gpt-oss-120b");
	assert_true(later.v[0].week == now.v[0].week);

	/* the rate in use: billed first, then configured, else none */
	struct state *s = create(NULL);
	new_pair(s, "proj_a");
	struct pair *q = pair_get(s, "us-east-1", "proj_a", "anthropic.claude-x-v1:0");
	struct pair *p = new_pair(s, "proj_a"); /* after the addition that may move pairs */
	struct conf c = { 0 };
	struct cw_price price = { "Claude X", { 3.0, 15.0 } };
	c.cw_prices = (struct cw_price_list){ &price, 1 };
	const char *src = NULL;
	assert_true(rate_of(&later, &c, p, IN, &src) == now.v[0].week);
	assert_string_equal(src, "billed");
	assert_true(fabs(rate_of(&later, &c, q, OUT, &src) - 15e-6) < 1e-18);
	assert_string_equal(src, "configured");
	assert_true(rate_of(&later, &c, p, OUT, &src) < 0);
	destroy(s);
	rates_free(&now);
	rates_free(&prev);
	rates_free(&later);
	accs_free(&a);
	accs_free(&b);
}

/* A rate the settled days no longer give is kept across the day's turn (and the turn
 * freezes today's table as the one that priced yesterday). */
static void rates_survive_the_turn(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	long today = DAY0;
	struct pair *p = new_pair(s, "proj_a");
	p->has_hist = true;
	p->hist_day = today;
	for (int k = 0; k < HIST_DAYS; k++)
		p->hist[IN][k] = 1e6;
	/* the bill of today - 9 only: 0.10 for 1M input tokens */
	struct ce_group g = { { (char *)"Amazon Bedrock",
				(char *)"USE1-openai.gpt-oss-120b-mantle-input-tokens-standard" },
			      0.10 };
	struct ce_day d = { today - 9, false, &g, 1, 0 };
	struct ce_series models = { &d, 1 };
	s->today = today;
	/* the history of some region missing: the judged day's table waits for it */
	rates_refresh(s, &models, today, today - 3);
	assert_null(frozen_for(s, today - 3));
	s->hist_day = today;
	rates_refresh(s, &models, today, today - 3);
	/* today - 9 is outside [today-8, today-2]: no rate from the days for today... */
	assert_int_equal(s->now.n, 0);
	/* ...but the judged day's table ([today-11, today-5]), rebuilt after a fresh start,
	 * has it */
	assert_non_null(frozen_for(s, today - 3));
	assert_int_equal(frozen_for(s, today - 3)->n, 1);
	assert_null(frozen_for(s, today - 1));
	/* a day later: today's table keeps what yesterday's knew */
	rates_free(&s->now);
	s->now.for_day = today; /* as if it had priced today */
	s->now.v = xcalloc(2, sizeof(struct rate));
	s->now.v[0] = (struct rate){ xstrdup("us-east-1"), xstrdup("gpt-oss-120b"), IN, 1e-7,
				     today - 9, 1e-7 };
	s->now.n = 1;
	day_turn(s, today + 1);
	assert_non_null(frozen_for(s, today)); /* frozen with its day */
	assert_int_equal(frozen_for(s, today)->n, 1);
	assert_int_equal(s->now.n, 0);
	assert_int_equal(frozen_for(s, today - 3)->n, 1); /* still there */
	p = pair_find(s, "us-east-1", "proj_a", "openai.gpt-oss-120b");
	p->hist_day = today + 1;
	struct ce_series none = { NULL, 0 };
	rates_refresh(s, &none, today + 1, today - 2);
	assert_int_equal(s->now.n, 1);
	const char *src;
	assert_true(fabs(rate_of(&s->now, &(struct conf){ 0 }, p, IN, &src) - 1e-7) < 1e-18);
	assert_string_equal(src, "billed");
	destroy(s);
}

/* Renders what the source collects at wall time @now (no Cost Explorer peer). Caller frees. */
static char *collect_text(const struct state *s, const struct conf *c, double now)
{
	struct source_health health = { .up = true, .has_data = true };
	struct collect_ctx x = { .conf = c, .now = now, .set = NULL, .health = &health };
	struct reg *r = reg_new();
	collect(s, &x, r);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(reg_render(r, &out, NULL), 0);
	reg_free(r);
	return buf_steal(&out, NULL);
}

/* The value of the sample line starting with @series, or NAN when there is none. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return NAN;
}

/* Around midnight: before the new day's first read its families are absent and the hourly
 * rate (which spans midnight) stays; a read at 00:00:30 shows 0 tokens so far, not nothing. */
static void midnight_families(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	struct pair *p = new_pair(s, "proj_a");
	struct cw_price price = { (char *)"openai.gpt-oss-120b", { 2.0, 8.0 } };
	struct conf c = { .cw_prices = { &price, 1 } };
	long today = DAY0;
	s->today = today;
	const char *hour = "bedrock_cost_project_estimated_usd_per_hour{account_id=\"\",project_id=\"proj_a\"}";
	/* as restored from the state file: never read since the start, no hourly rate */
	char *t = collect_text(s, &c, (double)min_of(today, 600) * 60);
	assert_true(isnan(sample(t, hour)));
	free(t);
	long end = min_of(today, 23 * 60 + 50);
	p->upto = s->end = end;
	p->settled[IN] = 1e6;
	for (long m = end - RING; m < end; m++)
		p->ring[IN][m % RING] = 1000;
	const char *tok = "bedrock_usage_project_tokens_today{account_id=\"\",region=\"us-east-1\","
			  "project_id=\"proj_a\",model=\"openai.gpt-oss-120b\",direction=\"input\"}";
	const char *est = "bedrock_cost_project_today_estimated_usd{account_id=\"\",project_id=\"proj_a\"}";
	t = collect_text(s, &c, (double)end * 60 + 30);
	assert_true(sample(t, tok) == 1e6 + RING * 1000);
	assert_true(fabs(sample(t, est) - (1e6 + RING * 1000) * 2.0 / 1e6) < 1e-9);
	assert_true(fabs(sample(t, hour) - HOUR * 1000 * 2.0 / 1e6) < 1e-9);
	free(t);
	/* 00:00:20 of the next day, not read yet */
	long midnight = min_of(today + 1, 0);
	t = collect_text(s, &c, (double)midnight * 60 + 20);
	assert_true(isnan(sample(t, tok)));
	assert_true(isnan(sample(t, est)));
	assert_true(fabs(sample(t, hour) - HOUR * 1000 * 2.0 / 1e6) < 1e-9);
	free(t);
	/* read at 00:00:30: up to midnight, the ten minutes before it 1000 each */
	day_turn(s, today + 1);
	ring_advance(p, midnight, today + 1);
	for (long m = end; m < midnight; m++)
		p->ring[IN][m % RING] = 1000;
	s->end = midnight;
	t = collect_text(s, &c, (double)midnight * 60 + 40);
	assert_true(sample(t, tok) == 0);
	assert_true(sample(t, est) == 0);
	assert_true(fabs(sample(t, hour) - HOUR * 1000 * 2.0 / 1e6) < 1e-9);
	free(t);
	/* an hour without a read of the pair (others were read): no hourly rate of it */
	s->end = midnight + HOUR;
	t = collect_text(s, &c, (double)s->end * 60 + 10);
	assert_true(isnan(sample(t, hour)));
	free(t);
	destroy(s);
}

/* The ceiling lasts until midnight: refreshes are spread when it cannot cover every interval. */
static void spread_under_the_ceiling(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	struct conf c = { .cw_max_metrics_per_day = 190000 };
	double noon = days_start_time(DAY0) + 43200;
	assert_true(delay(s, &c, noon) == 0); /* nothing known yet */
	s->need = 2000;                       /* 1,000 active pairs */
	s->metrics_day = DAY0;
	s->metrics_today = 95000;
	/* 95,000 left for 12 hours at 2,000 a read: 47 reads, one every 919 s */
	assert_true(fabs(delay(s, &c, noon) - 43200.0 / 47) < 1e-6);
	s->metrics_today = 189000; /* not enough for one more: the next read is after midnight */
	assert_true(delay(s, &c, noon) > 43200 && delay(s, &c, noon) < 43200 + 60);
	assert_int_equal(remaining_today(s, &c, noon), 1000);
	assert_int_equal(remaining_today(s, &c, noon + 43200), 190000); /* a new day */
	destroy(s);
}

static void state_round_trip(void **state)
{
	(void)state;
	struct state *s = create(NULL);
	struct pair *p = new_pair(s, "proj_\"a\"");
	p->has_hist = true;
	for (int k = 0; k < HIST_DAYS; k++) {
		p->hist[IN][k] = 1000.5 * k;
		p->hist[OUT][k] = 7 * k;
	}
	new_pair(s, "proj_b"); /* no history: not kept */
	s->hist_day = DAY0;
	s->metrics_day = DAY0;
	s->metrics_today = 1234;
	s->metrics_total = 5678;
	s->lists_total = 9;
	s->now.for_day = DAY0;
	s->now.v = xcalloc(2, sizeof(struct rate));
	s->now.v[0] = (struct rate){ xstrdup("us-east-1"), xstrdup("gpt-oss-120b"), OUT, 6e-7,
				     DAY0 - 2, -1 };
	s->now.n = 1;
	struct jsonw w;
	jsonw_init(&w, 1 << 20);
	jsonw_object_begin(&w);
	save(s, &w);
	jsonw_object_end(&w);
	size_t len;
	char *text = jsonw_steal(&w, &len);
	assert_non_null(text);
	struct jsontape t;
	assert_int_equal(jsontape_parse(&t, text, len), 0);
	struct source_restored out = { 0 };
	char err[128] = "";
	/* restored the same day: everything back; today's minutes are read again */
	struct state *r = restore(&t, 0, NULL, days_start_time(DAY0) + 100, &out, err, sizeof(err));
	assert_non_null(r);
	assert_false(out.has_data);
	assert_int_equal(r->n, 1);
	assert_string_equal(r->pairs[0].project, "proj_\"a\"");
	assert_true(r->pairs[0].hist[IN][3] == 3001.5 && r->pairs[0].hist[OUT][8] == 56);
	assert_int_equal(r->hist_day, DAY0);
	assert_int_equal(r->metrics_today, 1234);
	assert_true(r->metrics_total == 5678 && r->lists_total == 9);
	assert_int_equal(r->now.n, 1);
	assert_true(r->now.v[0].last == 6e-7 && r->now.v[0].week == -1);
	assert_int_equal(r->pairs[0].upto, 0);
	destroy(r);
	/* restored the next day: today's rates become the frozen table of their day */
	r = restore(&t, 0, NULL, days_start_time(DAY0 + 1) + 100, &out, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(r->now.n, 0);
	assert_non_null(frozen_for(r, DAY0));
	assert_int_equal(frozen_for(r, DAY0)->n, 1);
	/* which a save keeps, and a restore gives back, frozen */
	jsonw_init(&w, 1 << 20);
	jsonw_object_begin(&w);
	save(r, &w);
	jsonw_object_end(&w);
	char *text2 = jsonw_steal(&w, &len);
	destroy(r);
	struct jsontape t2;
	assert_int_equal(jsontape_parse(&t2, text2, len), 0);
	r = restore(&t2, 0, NULL, days_start_time(DAY0 + 3) + 100, &out, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(frozen_for(r, DAY0)->n, 1);
	assert_true(frozen_for(r, DAY0)->v[0].last == 6e-7);
	assert_null(frozen_for(r, DAY0 + 1));
	destroy(r);
	jsontape_free(&t2);
	free(text2);
	jsontape_free(&t);
	free(text);
	destroy(s);

	const char *bad[] = {
		"{\"cloudwatch\":[]}",
		"{\"cloudwatch\":{\"hist_day\":1,\"metrics_day\":1,\"metrics_today\":1,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[[\"r\",\"p\",\"m\",[1],[2]]],"
		"\"rates\":{\"for_day\":1,\"v\":[]},\"rates_frozen\":[]}}",
		"{\"cloudwatch\":{\"hist_day\":1,\"metrics_day\":1,\"metrics_today\":1,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[],"
		"\"rates\":{\"for_day\":1,\"v\":[[\"r\",\"k\",3,1,1,1]]},\"rates_frozen\":[]}}",
		/* a meter that would lift the ceiling, a day beyond any calendar */
		"{\"cloudwatch\":{\"hist_day\":1,\"metrics_day\":1,\"metrics_today\":-100000000,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[],"
		"\"rates\":{\"for_day\":1,\"v\":[]},\"rates_frozen\":[]}}",
		"{\"cloudwatch\":{\"hist_day\":1e300,\"metrics_day\":1,\"metrics_today\":1,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[],"
		"\"rates\":{\"for_day\":1,\"v\":[]},\"rates_frozen\":[]}}",
		"{\"cloudwatch\":{\"hist_day\":1,\"metrics_day\":1,\"metrics_today\":1,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[[\"r\",\"p\",\"m\",1,"
		"[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,-1],[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]],"
		"\"rates\":{\"for_day\":1,\"v\":[]},\"rates_frozen\":[]}}",
		/* a frozen table that is not one */
		"{\"cloudwatch\":{\"hist_day\":1,\"metrics_day\":1,\"metrics_today\":1,"
		"\"metrics_total\":1,\"lists_total\":1,\"pairs\":[],"
		"\"rates\":{\"for_day\":1,\"v\":[]},\"rates_frozen\":[{\"for_day\":-3,\"v\":[]}]}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(jsontape_parse(&t, bad[i], strlen(bad[i])), 0);
		err[0] = '\0';
		if (restore(&t, 0, NULL, days_start_time(DAY0), &out, err, sizeof(err)))
			fail_msg("accepted: %s", bad[i]);
		assert_string_equal(err, "cloudwatch: malformed");
		jsontape_free(&t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_across_midnight),
		cmocka_unit_test(quiet_pairs_are_forgotten),
		cmocka_unit_test(rates_from_bill_and_tokens),
		cmocka_unit_test(rates_survive_the_turn),
		cmocka_unit_test(spread_under_the_ceiling),
		cmocka_unit_test(state_round_trip),
		cmocka_unit_test(midnight_families),
	};
	return cmocka_run_group_tests_name("cloudwatch", tests, NULL, NULL);
}
