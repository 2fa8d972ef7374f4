/*
 * statefile_bench.c - micro-benchmark of statefile_save (issue 7).
 *
 * Builds a synthetic account shaped like tests/bench/gen_account.py's at 1,000 projects
 * (9 tags each; spend grouped by Application x Environment: 57 days x ~850 groups; models
 * grouped by SERVICE x USAGE_TYPE: 57 days x 36 groups; amounts with up to 10 decimals, as
 * Cost Explorer gives them) and times statefile_save into a directory (default build/bench).
 *
 *   make statefile-bench                      build and run (tests/bench/bench.mk)
 *   build/bench/statefile_bench [dir] [projects] [runs]
 *
 * Prints wall and CPU milliseconds (min and median of the runs) and the file size. Not part of
 * make check. Only the local file system is touched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/statefile.h"
#include "base/util.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double wall_ms(void)
{
	return mono_now() * 1e3;
}

static const char *ENVS[] = { "Production", "Staging", "Development", "Sandbox" };
static const char *WA[] = { "Customer", "Invoice", "Fraud", "Search", "Voice", "Code", "Doc",
			    "Claims", "Support", "Sales", "Risk", "Legal", "Travel", "Health",
			    "Retail", "Media", "Payroll", "Supply", "Market", "Insight" };
static const char *WB[] = { "Chatbot", "Summarizer", "Detector", "Assistant", "Agent", "Translator",
			    "Classifier", "Extractor", "Copilot", "Router", "Analyzer", "Writer" };

/* An amount as Cost Explorer prints it (at most 10 decimals), parsed the way ce_api does. */
static double amount(void)
{
	uint64_t n = next() % 50000000000u; /* < $5 */
	if (next() % 8 == 0)
		n = n / 1000000 * 1000000; /* some have fewer decimals */
	char s[40];
	snprintf(s, sizeof(s), "%llu.%010llu", (unsigned long long)(n / 10000000000u),
		 (unsigned long long)(n % 10000000000u));
	return strtod(s, NULL);
}

static void series(struct ce_series *s, size_t ndays, size_t ngroups, char **k0, char **k1,
		   size_t nk0, size_t nk1)
{
	s->n = ndays;
	s->days = xcalloc(ndays, sizeof(*s->days));
	for (size_t d = 0; d < ndays; d++) {
		struct ce_day *day = &s->days[d];
		day->day = 20400 + (long)d;
		day->estimated = d + 3 >= ndays;
		day->n = ngroups;
		day->g = xcalloc(ngroups, sizeof(*day->g));
		for (size_t g = 0; g < ngroups; g++) {
			day->g[g].k[0] = xstrdup(k0[g % nk0]);
			day->g[g].k[1] = xstrdup(k1[(g / nk0) % nk1]);
			day->g[g].amount = amount();
		}
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "build/bench";
	size_t nproj = argc > 2 ? (size_t)atol(argv[2]) : 1000;
	int runs = argc > 3 ? atoi(argv[3]) : 15;
	if (runs < 1 || runs > 1000)
		runs = 15;
	mkdir(dir, 0700);

	/* projects: Application x Environment pairs, 3 environments per application */
	size_t napps = (nproj + 2) / 3;
	char **apps = xcalloc(napps + 1, sizeof(char *));
	for (size_t a = 0; a < napps; a++)
		apps[a] = xasprintf("%s%s-%04zu", WA[a % 20], WB[(a / 20) % 12], a);
	struct region_state region = { .region = xstrdup("us-east-1"), .has_data = true };
	region.projects.n = nproj;
	region.projects.v = xcalloc(nproj + 1, sizeof(struct project));
	for (size_t i = 0; i < nproj; i++) {
		struct project *p = &region.projects.v[i];
		const char *env = ENVS[i % 3];
		p->id = xasprintf("proj_%016llx", (unsigned long long)next());
		p->name = xasprintf("%s-%.4s-%05zu", apps[i / 3], env, i);
		p->arn = xasprintf("arn:aws:bedrock:us-east-1:123456789012:project/%s", p->id);
		p->status = xstrdup(i % 10 == 9 ? "archived" : "active");
		p->created_at = 1767225600 + (double)(next() % 5000000);
		const char *keys[] = { "Application", "BusinessUnit", "CostCenter", "DataClassification",
				       "Environment", "Owner", "Project", "Team", "Tier" };
		p->ntags = 9;
		p->tags = xcalloc(9, sizeof(*p->tags));
		for (size_t t = 0; t < 9; t++) {
			p->tags[t].key = xstrdup(keys[t]);
			p->tags[t].value = t == 0 ? xstrdup(apps[i / 3]) :
					   t == 4 ? xstrdup(env) :
						    xasprintf("%s-%03llu", keys[t], (unsigned long long)(next() % 200));
		}
	}

	struct ce_source ce = { 0 };
	ce.req_day = 20458;
	ce.req_count = 123;
	strlist_push(&ce.services, xstrdup("Amazon Bedrock"));
	strlist_push(&ce.services, xstrdup("Claude Sonnet 4.5 (Amazon Bedrock Edition)"));
	ce.services_at = 1795651200.123456;
	ce.services_search = xstrdup("Bedrock");
	ce.costs_at = 1795651300.654321;
	ce.spend_sig = xstrdup("UnblendedCost|TAG:Application|TAG:Environment|Amazon Bedrock");
	ce.models_sig = xstrdup("UnblendedCost|SERVICE|USAGE_TYPE|Amazon Bedrock");
	char *envs[4] = { "Production", "Staging", "Development", "" };
	/* ~850 groups a day: most applications in their environments, plus untagged */
	series(&ce.spend, 57, nproj * 850 / 1000, apps, envs, napps, 4);
	char *svc[4] = { "Amazon Bedrock", "Claude Sonnet 4.5 (Amazon Bedrock Edition)",
			 "Claude Haiku 4.5 (Amazon Bedrock Edition)", "Claude Opus 4.1 (Amazon Bedrock Edition)" };
	char *ut[9];
	for (int i = 0; i < 9; i++)
		ut[i] = xasprintf("USE1-model%d-mantle-tokens-%s", i, i % 3 ? "output" : "input");
	series(&ce.models, 57, 36, svc, ut, 4, 9);
	ce.has_forecast = true;
	ce.forecast_day = 20458;
	ce.forecast_mean = 12345.6789012345;
	ce.forecast_lower = 11000.5;
	ce.forecast_upper = 13000.25;
	ce.forecast_at = 1795651400.5;
	strlist_push(&ce.tag_keys, xstrdup("Application"));
	strlist_push(&ce.tag_keys, xstrdup("Environment"));
	ce.tag_active = xcalloc(2, sizeof(bool));
	ce.tag_active[0] = ce.tag_active[1] = true;
	ce.tags_at = 1795651500;

	char *path = xasprintf("%s/statefile_bench.json", dir);
	double *wall = xcalloc((size_t)runs, sizeof(double)), *cpu = xcalloc((size_t)runs, sizeof(double));
	double *uwall = xcalloc((size_t)runs, sizeof(double)), *ucpu = xcalloc((size_t)runs, sizeof(double));
	char err[512];
	struct statefile_writer sw = { 0 };
	for (int r = 0; r < runs; r++) {
		ce.req_count++; /* a changed state: every run writes */
		double w0 = wall_ms(), c0 = cpu_ms();
		int rc = statefile_save(&sw, path, &ce, &region, 1, 1795651600 + r, err, sizeof(err));
		wall[r] = wall_ms() - w0;
		cpu[r] = cpu_ms() - c0;
		if (rc) {
			fprintf(stderr, "statefile_save: %s\n", err);
			return 1;
		}
	}
	struct stat st;
	stat(path, &st);
	for (int r = 0; r < runs; r++) {
		/* the same state again (only the time differs): serialized and hashed, not written */
		double w0 = wall_ms(), c0 = cpu_ms();
		int rc = statefile_save(&sw, path, &ce, &region, 1, 1795652600 + r, err, sizeof(err));
		uwall[r] = wall_ms() - w0;
		ucpu[r] = cpu_ms() - c0;
		struct stat st2;
		if (rc || stat(path, &st2) || st2.st_ino != st.st_ino) {
			fprintf(stderr, "statefile_save of an unchanged state wrote the file (%s)\n", err);
			return 1;
		}
	}
	qsort(wall, (size_t)runs, sizeof(double), cmp);
	qsort(cpu, (size_t)runs, sizeof(double), cmp);
	qsort(uwall, (size_t)runs, sizeof(double), cmp);
	qsort(ucpu, (size_t)runs, sizeof(double), cmp);
	size_t groups = 0;
	for (size_t d = 0; d < ce.spend.n; d++)
		groups += ce.spend.days[d].n + ce.models.days[d].n;
	printf("statefile_save: %zu projects, %zu cost groups, %.2f MB, %d runs\n", nproj, groups,
	       (double)st.st_size / 1e6, runs);
	printf("  changed state   wall min %.1f ms  median %.1f ms   cpu min %.1f ms  median %.1f ms\n",
	       wall[0], wall[runs / 2], cpu[0], cpu[runs / 2]);
	printf("  unchanged state wall min %.1f ms  median %.1f ms   cpu min %.1f ms  median %.1f ms\n",
	       uwall[0], uwall[runs / 2], ucpu[0], ucpu[runs / 2]);
	remove(path);
	free(path);
	free(wall);
	free(cpu);
	free(uwall);
	free(ucpu);
	ce_source_free(&ce);
	project_list_free(&region.projects);
	free(region.region);
	for (size_t a = 0; a < napps; a++)
		free(apps[a]);
	free(apps);
	for (int i = 0; i < 9; i++)
		free(ut[i]);
	return 0;
}
