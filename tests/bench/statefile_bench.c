/*
 * statefile_bench.c - the state file's writer, measured: is a streaming JSON writer worth
 * having, at a refresh every 6 hours? (issue 11: "no hand-written JSON writer unless a
 * benchmark shows it matters").
 *
 * Builds a synthetic account shaped like tests/bench/gen_account.py's (9 tags per project;
 * spend grouped by Application x Environment: 57 days x ~850 groups per 1,000 projects;
 * models grouped by SERVICE x USAGE_TYPE: 57 days x 36 groups; amounts with up to 10
 * decimals, as Cost Explorer gives them), loads it into the real sources (statefile_load),
 * then measures, for the same document:
 *   jsonw   statefile_save() as the exporter runs it (base/jsonw.c, streamed), changed and
 *           unchanged state;
 *   cJSON   the same document built as a cJSON tree and printed (cJSON_PrintUnformatted),
 *           the way the exporter wrote it before issue 7.
 * CPU milliseconds (min and median of the runs) and the heap each writer needs at its peak
 * (mallinfo2: bytes in use while the document exists, minus before).
 *
 *   make statefile-bench                      build and run (tests/bench/bench.mk)
 *   build/bench/statefile_bench [dir] [projects] [runs]
 *
 * Not part of make check. Only the local file system is touched.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/days.h"
#include "base/files.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/util.h"
#include "config/conf.h"
#include "engine/statefile.h"
#include "sources/source.h"

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

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static const char *ENVS[] = { "Production", "Staging", "Development", "Sandbox" };
static const char *WA[] = { "Customer", "Invoice", "Fraud", "Search", "Voice", "Code", "Doc",
			    "Claims", "Support", "Sales", "Risk", "Legal", "Travel", "Health",
			    "Retail", "Media", "Payroll", "Supply", "Market", "Insight" };
static const char *WB[] = { "Chatbot", "Summarizer", "Detector", "Assistant", "Agent", "Translator",
			    "Classifier", "Extractor", "Copilot", "Router", "Analyzer", "Writer" };

/* An amount as Cost Explorer prints it (at most 10 decimals), parsed as the exporter does. */
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

static void series(struct jsonw *w, const char *key, size_t ndays, size_t ngroups, char **k0,
		   char **k1, size_t nk0, size_t nk1)
{
	jsonw_key(w, key);
	jsonw_object_begin(w);
	jsonw_key(w, "signature");
	jsonw_string(w, key);
	jsonw_key(w, "days");
	jsonw_array_begin(w);
	for (size_t d = 0; d < ndays; d++) {
		char ds[11];
		days_format(20400 + (long)d, ds);
		jsonw_object_begin(w);
		jsonw_key(w, "day");
		jsonw_string(w, ds);
		jsonw_key(w, "estimated");
		jsonw_bool(w, d + 3 >= ndays);
		jsonw_key(w, "groups");
		jsonw_array_begin(w);
		for (size_t g = 0; g < ngroups; g++) {
			jsonw_object_begin(w);
			jsonw_key(w, "k");
			jsonw_array_begin(w);
			jsonw_string(w, k0[g % nk0]);
			jsonw_string(w, k1[(g / nk0) % nk1]);
			jsonw_array_end(w);
			jsonw_key(w, "amount");
			jsonw_number(w, amount());
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

/* The synthetic account as a state file (the format the sources read back). */
static char *account(size_t nproj, size_t *len)
{
	size_t napps = (nproj + 2) / 3;
	char **apps = xcalloc(napps + 1, sizeof(char *));
	for (size_t a = 0; a < napps; a++)
		apps[a] = xasprintf("%s%s-%04zu", WA[a % 20], WB[(a / 20) % 12], a);
	struct jsonw w;
	jsonw_init(&w, (size_t)1 << 30);
	jsonw_object_begin(&w);
	jsonw_key(&w, "format");
	jsonw_string(&w, "bedrock-cost-exporter-state");
	jsonw_key(&w, "version");
	jsonw_int(&w, 1);
	jsonw_key(&w, "written_at");
	jsonw_number(&w, 1795651600);
	jsonw_key(&w, "ce_requests");
	jsonw_object_begin(&w);
	jsonw_key(&w, "day");
	jsonw_string(&w, "2026-01-07");
	jsonw_key(&w, "count");
	jsonw_int(&w, 123);
	jsonw_object_end(&w);
	jsonw_key(&w, "services");
	jsonw_object_begin(&w);
	jsonw_key(&w, "at");
	jsonw_number(&w, 1795651200.123456);
	jsonw_key(&w, "search");
	jsonw_string(&w, "Bedrock");
	jsonw_key(&w, "values");
	jsonw_array_begin(&w);
	jsonw_string(&w, "Amazon Bedrock");
	jsonw_string(&w, "Claude Sonnet 4.5 (Amazon Bedrock Edition)");
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	jsonw_key(&w, "costs_at");
	jsonw_number(&w, 1795651300.654321);
	char *envs[4] = { "Production", "Staging", "Development", "" };
	/* ~850 groups a day per 1,000 projects: most applications in their environments */
	series(&w, "spend", 57, nproj * 850 / 1000, apps, envs, napps, 4);
	char *svc[4] = { "Amazon Bedrock", "Claude Sonnet 4.5 (Amazon Bedrock Edition)",
			 "Claude Haiku 4.5 (Amazon Bedrock Edition)",
			 "Claude Opus 4.1 (Amazon Bedrock Edition)" };
	char *ut[9];
	for (int i = 0; i < 9; i++)
		ut[i] = xasprintf("USE1-model%d-mantle-tokens-%s", i, i % 3 ? "output" : "input");
	series(&w, "models", 57, 36, svc, ut, 4, 9);
	jsonw_key(&w, "forecast");
	jsonw_object_begin(&w);
	jsonw_key(&w, "day");
	jsonw_string(&w, "2026-01-07");
	const char *fk[] = { "at", "mean", "lower", "upper" };
	const double fv[] = { 1795651400.5, 12345.6789012345, 11000.5, 13000.25 };
	for (int i = 0; i < 4; i++) {
		jsonw_key(&w, fk[i]);
		jsonw_number(&w, fv[i]);
	}
	jsonw_object_end(&w);
	jsonw_key(&w, "allocation_tags");
	jsonw_object_begin(&w);
	jsonw_key(&w, "at");
	jsonw_number(&w, 1795651500);
	jsonw_key(&w, "active");
	jsonw_object_begin(&w);
	jsonw_key(&w, "Application");
	jsonw_bool(&w, true);
	jsonw_key(&w, "Environment");
	jsonw_bool(&w, true);
	jsonw_object_end(&w);
	jsonw_object_end(&w);
	/* projects: Application x Environment, 3 environments per application, 9 tags */
	static const char *keys[] = { "Application", "BusinessUnit", "CostCenter",
				      "DataClassification", "Environment", "Owner", "Project",
				      "Team", "Tier" };
	jsonw_key(&w, "projects");
	jsonw_object_begin(&w);
	jsonw_key(&w, "us-east-1");
	jsonw_array_begin(&w);
	for (size_t i = 0; i < nproj; i++) {
		const char *env = ENVS[i % 3];
		char *id = xasprintf("proj_%016llx", (unsigned long long)next());
		char *s = xasprintf("%s-%.4s-%05zu", apps[i / 3], env, i);
		jsonw_object_begin(&w);
		jsonw_key(&w, "id");
		jsonw_string(&w, id);
		jsonw_key(&w, "name");
		jsonw_string(&w, s);
		free(s);
		s = xasprintf("arn:aws:bedrock:us-east-1:123456789012:project/%s", id);
		jsonw_key(&w, "arn");
		jsonw_string(&w, s);
		free(s);
		free(id);
		jsonw_key(&w, "status");
		jsonw_string(&w, i % 10 == 9 ? "archived" : "active");
		jsonw_key(&w, "created_at");
		jsonw_number(&w, 1767225600 + (double)(next() % 5000000));
		jsonw_key(&w, "tags");
		jsonw_object_begin(&w);
		for (size_t t = 0; t < 9; t++) {
			jsonw_key(&w, keys[t]);
			if (t == 0 || t == 4) {
				jsonw_string(&w, t == 0 ? apps[i / 3] : env);
			} else {
				s = xasprintf("%s-%03llu", keys[t], (unsigned long long)(next() % 200));
				jsonw_string(&w, s);
				free(s);
			}
		}
		jsonw_object_end(&w);
		jsonw_object_end(&w);
	}
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	jsonw_object_end(&w);
	char *text = jsonw_steal(&w, len);
	for (size_t a = 0; a < napps; a++)
		free(apps[a]);
	free(apps);
	for (int i = 0; i < 9; i++)
		free(ut[i]);
	return text;
}

/* The cJSON tree of tape value @i (what a cJSON writer builds from the state). */
static cJSON *tree(const struct jsontape *t, size_t i)
{
	if (jt_is(t, i, JT_OBJECT)) {
		cJSON *o = cJSON_CreateObject();
		for (size_t k = jt_first(t, i); k != JT_NONE; k = jt_next(t, i, k)) {
			char *key = jt_strdup(t, k);
			cJSON_AddItemToObject(o, key, tree(t, k + 1));
			free(key);
		}
		return o;
	}
	if (jt_is(t, i, JT_ARRAY)) {
		cJSON *a = cJSON_CreateArray();
		for (size_t e = jt_first(t, i); e != JT_NONE; e = jt_next(t, i, e))
			cJSON_AddItemToArray(a, tree(t, e));
		return a;
	}
	if (jt_is(t, i, JT_STRING)) {
		char *s = jt_strdup(t, i);
		cJSON *v = cJSON_CreateString(s);
		free(s);
		return v;
	}
	if (jt_is(t, i, JT_NUMBER)) {
		double d;
		jt_number(t, i, &d);
		return cJSON_CreateNumber(d);
	}
	return cJSON_CreateBool(jt_is(t, i, JT_TRUE));
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *what, double *cpu, int runs, size_t peak)
{
	qsort(cpu, (size_t)runs, sizeof(double), cmp);
	printf("  %-34s cpu min %7.1f ms  median %7.1f ms   peak heap %7.1f MB\n", what, cpu[0],
	       cpu[runs / 2], (double)peak / 1e6);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "build/bench";
	size_t nproj = argc > 2 ? (size_t)atol(argv[2]) : 1000;
	int runs = argc > 3 ? atoi(argv[3]) : 15;
	if (runs < 1 || runs > 1000)
		runs = 15;
	mkdir(dir, 0700);
	char *src = xasprintf("%s/statefile_bench.src.json", dir);
	char *path = xasprintf("%s/statefile_bench.json", dir);
	char err[512];

	/* the account, as a file, read back into the real sources */
	size_t len;
	char *text = account(nproj, &len);
	FILE *f = fopen(src, "w");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", src);
		return 1;
	}
	free(text);
	struct conf *c = conf_defaults();
	struct source_set set;
	source_set_init(&set, source_table, c);
	struct source_restored *got = xcalloc(set.n + 1, sizeof(*got));
	if (statefile_load(src, &set, c, 1795651600, got, err, sizeof(err))) {
		fprintf(stderr, "statefile_load: %s\n", err);
		return 1;
	}
	free(got);

	double *cpu = xcalloc((size_t)runs, sizeof(double));
	size_t peak = 0;
	/* jsonw, as the exporter saves: a changed state (no writer: always written) */
	for (int r = 0; r < runs; r++) {
		double c0 = cpu_ms();
		if (statefile_save(NULL, path, &set, 1795651600 + r, err, sizeof(err))) {
			fprintf(stderr, "statefile_save: %s\n", err);
			return 1;
		}
		cpu[r] = cpu_ms() - c0;
	}
	struct stat st;
	stat(path, &st);
	/* jsonw's peak: its one buffer, the file's size rounded up to a power of two (it grows
	 * by doubling) */
	size_t cap = 256;
	while (cap < (size_t)st.st_size + 1)
		cap *= 2;
	peak = cap;
	size_t groups = 0;
	{
		char *doc;
		size_t dl;
		read_file_max(path, (size_t)1 << 30, &doc, &dl);
		struct jsontape t;
		jsontape_parse(&t, doc, dl);
		const char *names[] = { "spend", "models" };
		for (int s = 0; s < 2; s++) {
			size_t days = jt_get(&t, jt_get(&t, 0, names[s]), "days");
			for (size_t d = jt_first(&t, days); d != JT_NONE; d = jt_next(&t, days, d))
				groups += jt_count(&t, jt_get(&t, d, "groups"));
		}
		printf("state file: %zu projects, %zu cost groups, %.2f MB, %d runs each\n", nproj,
		       groups, (double)st.st_size / 1e6, runs);
		report("jsonw (statefile_save, changed)", cpu, runs, peak);

		/* jsonw, unchanged state: serialized and hashed, not written */
		struct statefile_writer sw = { 0 };
		statefile_save(&sw, path, &set, 1795652600, err, sizeof(err));
		for (int r = 0; r < runs; r++) {
			double c0 = cpu_ms();
			statefile_save(&sw, path, &set, 1795652700 + r, err, sizeof(err));
			cpu[r] = cpu_ms() - c0;
		}
		report("jsonw (statefile_save, unchanged)", cpu, runs, peak);

		/* cJSON: the same document as a tree, printed */
		size_t cpeak = 0;
		for (int r = 0; r < runs; r++) {
			malloc_trim(0);
			size_t h0 = heap_in_use();
			double c0 = cpu_ms();
			cJSON *root = tree(&t, 0);
			char *out = cJSON_PrintUnformatted(root);
			cpu[r] = cpu_ms() - c0;
			size_t h1 = heap_in_use();
			if (h1 - h0 > cpeak)
				cpeak = h1 - h0;
			if (!out || strlen(out) < dl / 2) {
				fprintf(stderr, "cJSON printed nothing sensible\n");
				return 1;
			}
			cJSON_free(out);
			cJSON_Delete(root);
		}
		report("cJSON tree + PrintUnformatted", cpu, runs, cpeak);
		jsontape_free(&t);
		free(doc);
	}
	remove(path);
	remove(src);
	free(path);
	free(src);
	free(cpu);
	source_set_free(&set);
	conf_free(c);
	return 0;
}
