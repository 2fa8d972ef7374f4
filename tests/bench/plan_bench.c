/*
 * plan_bench.c - the Cost Explorer query plan, measured on the exporter's real engine
 * (issue 12): how many paid requests, and which, a first fill, a steady day and a restart
 * make. Driven by tests/bench/plan_bench.py, which starts the fake AWS account and writes
 * the configuration; see tests/bench/README.md.
 *
 * It runs what the daemon runs (poller_new with the real source table and a real HTTP
 * client, poller_prepare, poller_step, the state file), but on a simulated clock: mono_now
 * and wall_now of the poller are this file's, and after each turn the clock jumps to the
 * time poller_step says the next turn is due. Work takes no simulated time. libcurl signs
 * SigV4 with the real clock, which is what the fake checks the skew against.
 *
 * Requests are counted with the exporter's own counters (aws/apistats.h: every attempt of
 * every operation of api "cost_explorer"). The jitter of the schedule (base/util.c's
 * rand_unit) is replaced at link time (-Wl,--wrap=rand_unit) by a seeded generator of the
 * same distribution, so a run is reproducible; --seed changes it.
 *
 * Phases (one simulated run, one poller and then a second one on the same state file):
 *   fill            from an empty state file at START until every enabled source is up
 *                   (all windows served); across days if the daily ceiling cuts it
 *   fill_day_rest   the rest of that UTC day
 *   steady          the next full UTC day, 00:00 -> 00:00
 *   restart_before  the day after it, 00:00 -> RESTART_HOUR
 *   restart         poller_free, a new poller on the same state file (ready at once?), until
 *                   the first cost refresh that new poller has scheduled (exclusive; when it
 *                   is due at once, the turns at the restart moment count)
 *   restart_rest    from there to the end of that day
 *   day_YYYY-MM-DD  --days N: N more full UTC days on the restarted poller, one phase each
 *
 * Protocol with plan_bench.py (stdout/stdin, one line each; logs go to stderr):
 *   DAY YYYY-MM-DD   the simulated clock enters this UTC day; the fake's today must follow
 *                    (PUT /_fake/config): answer "ok"
 *   MARK <phase>     a phase starts ("end": the last one ended); the Python side takes the
 *                    fake's own counters (/_fake/requests?surface=ce): answer "ok"
 *   RESULT {json}    the figures, last
 *
 *   plan_bench CONFIG START_EPOCH [--seed N] [--restart-hour H] [--max-fill-days N] [--days N]
 *
 * Exit 0 when every phase ran (whether the targets hold is the Python side's verdict),
 * 1 when the fill never completed or the restart was not ready at once (a defect), 2 on
 * a usage or set-up error. Only 127.0.0.1 is spoken to (the configuration's endpoints).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/apistats.h"
#include "base/days.h"
#include "base/jsonw.h"
#include "base/log.h"
#include "base/textlist.h"
#include "base/util.h"
#include "config/conf.h"
#include "engine/poller.h"
#include "engine/render.h"
#include "sources/source.h"

#define MAX_SOURCES 16
#define MAX_PHASES 128
/* Further steady days after the restart day (--days), at most. */
#define MAX_EXTRA_DAYS (MAX_PHASES - 8)
/* Turns in a row that do not move the clock before the run is called stuck. */
#define MAX_STILL_TURNS 1000

/* ---- the simulated clock ---- */

static double sim_mono = 1000.0; /* monotonic seconds */
static double sim_offset;        /* wall = mono + offset */
static long sim_day;             /* the UTC day announced to the Python side */

static double sim_mono_now(void)
{
	return sim_mono;
}

static double sim_wall_now(void)
{
	return sim_mono + sim_offset;
}

/* ---- the schedule's jitter, seeded (the real one seeds from the clock) ---- */

static unsigned short rng_state[3] = { 0x330e, 0x1234, 0xabcd };

double __wrap_rand_unit(void);
double __wrap_rand_unit(void)
{
	return erand48(rng_state);
}

/* ---- the Python side ---- */

/* Writes one line to the Python side and waits for its "ok". Exits on anything else. */
static void ask(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ask(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin) || strcmp(line, "ok\n") != 0) {
		fprintf(stderr, "plan_bench: the driver did not answer ok\n");
		exit(2);
	}
}

/* Moves the simulated clock to @mono (never back), announcing a new UTC day first. */
static void set_clock(double mono)
{
	if (mono < sim_mono)
		mono = sim_mono;
	long d = days_of_time(mono + sim_offset);
	if (d != sim_day) {
		char ds[11];
		days_format(d, ds);
		ask("DAY %s", ds);
		sim_day = d;
	}
	sim_mono = mono;
}

/* ---- counting ---- */

/* The Cost Explorer counters and the refreshes of each source at one moment. */
struct counts {
	double req[APISTATS_MAX_OPS], retries[APISTATS_MAX_OPS], errors[APISTATS_MAX_OPS];
	long refreshes[MAX_SOURCES];
};

static long refreshes[MAX_SOURCES];  /* refreshes seen so far, per source (table order) */
static double seen_attempt[MAX_SOURCES];
static const char *source_names[MAX_SOURCES];
static size_t nsources;

static bool is_ce(api_op op)
{
	return strcmp(apistats_api_name(op), "cost_explorer") == 0;
}

static void counts_take(struct counts *c)
{
	memset(c, 0, sizeof(*c));
	for (api_op op = 0; op < apistats_count(); op++) {
		if (!is_ce(op))
			continue;
		c->req[op] = apistats_requests(op);
		c->retries[op] = apistats_retries(op);
		for (int r = 0; r < REASON_COUNT; r++)
			c->errors[op] += apistats_errors(op, (enum api_reason)r);
	}
	memcpy(c->refreshes, refreshes, sizeof(refreshes));
}

static double ce_requests(void)
{
	struct counts c;
	counts_take(&c);
	double n = 0;
	for (api_op op = 0; op < apistats_count(); op++)
		n += c.req[op];
	return n;
}

/* A refresh moved a source's last_attempt (the wall time it started at). */
static void note_refreshes(const struct poller *p)
{
	const struct source_set *s = poller_sources(p);
	for (size_t i = 0; i < s->n && i < MAX_SOURCES; i++)
		if (s->v[i].health.last_attempt != seen_attempt[i]) {
			seen_attempt[i] = s->v[i].health.last_attempt;
			refreshes[i]++;
		}
}

static void watch(const struct poller *p)
{
	const struct source_set *s = poller_sources(p);
	nsources = s->n < MAX_SOURCES ? s->n : MAX_SOURCES;
	for (size_t i = 0; i < nsources; i++) {
		source_names[i] = s->v[i].def->name;
		seen_attempt[i] = s->v[i].health.last_attempt;
	}
}

/* Every enabled source up with data (its last refresh succeeded, or restored). */
static bool all_up(const struct poller *p)
{
	const struct source_set *s = poller_sources(p);
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].enabled && (!s->v[i].health.up || !s->v[i].health.has_data))
			return false;
	return true;
}

static const struct source *source_named(const struct poller *p, const char *name)
{
	const struct source_set *s = poller_sources(p);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].def->name, name) == 0)
			return &s->v[i];
	return NULL;
}

/* How many windows bedrock_cost_window_start_timestamp_seconds has in the exposition. */
static int windows_served(const struct poller *p, const struct conf *c)
{
	struct render_info info = { .telemetry_path = "/metrics", .reload_ok = true };
	struct buf out;
	buf_init(&out, (size_t)1 << 30);
	int n = -1;
	if (render_metrics(poller_sources(p), c, &info, sim_wall_now(), &out) == 0) {
		n = 0;
		static const char fam[] = "\nbedrock_cost_window_start_timestamp_seconds{";
		for (const char *q = out.data; q && (q = strstr(q, fam)); q += sizeof(fam) - 1)
			n++;
	}
	buf_free(&out);
	return n;
}

/* ---- phases ---- */

struct phase {
	const char *name;
	double from, to;    /* simulated wall clock */
	double real;        /* real seconds the phase took (the exporter and the fake) */
	struct counts d;    /* what happened during it */
	long turns;         /* poller_step calls */
};

static struct phase phases[MAX_PHASES];
static size_t nphases;
static struct counts phase_start;
static double phase_real;

static double real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void phase_begin(const char *name)
{
	ask("MARK %s", name);
	struct phase *ph = &phases[nphases++];
	ph->name = name;
	ph->from = sim_wall_now();
	counts_take(&phase_start);
	phase_real = real_now();
}

static void phase_end(void)
{
	struct phase *ph = &phases[nphases - 1];
	struct counts now;
	counts_take(&now);
	for (size_t i = 0; i < APISTATS_MAX_OPS; i++) {
		ph->d.req[i] = now.req[i] - phase_start.req[i];
		ph->d.retries[i] = now.retries[i] - phase_start.retries[i];
		ph->d.errors[i] = now.errors[i] - phase_start.errors[i];
	}
	for (size_t i = 0; i < MAX_SOURCES; i++)
		ph->d.refreshes[i] = now.refreshes[i] - phase_start.refreshes[i];
	ph->to = sim_wall_now();
	ph->real = real_now() - phase_real;
}

/* The turn due next (monotonic), from the last poller_step. */
static double next_turn;

/* One turn at the time it is due. */
static void turn(struct poller *p)
{
	static long still;
	double before = sim_mono;
	set_clock(next_turn);
	still = sim_mono > before ? 0 : still + 1;
	if (still > MAX_STILL_TURNS) {
		fprintf(stderr, "plan_bench: %d turns without the clock moving: stuck\n",
			MAX_STILL_TURNS);
		exit(1);
	}
	next_turn = poller_step(p);
	phases[nphases - 1].turns++;
	note_refreshes(p);
}

/* Runs turns due before wall time @until, then sets the clock there. */
static void run_until(struct poller *p, double until)
{
	while (next_turn + sim_offset < until)
		turn(p);
	set_clock(until - sim_offset);
}

static double midnight_after(double wall)
{
	return days_start_time(days_of_time(wall) + 1);
}

/* ---- the result ---- */

static void write_counts(struct jsonw *w, const struct counts *c)
{
	double total = 0, retries = 0, errors = 0;
	jsonw_key(w, "requests");
	jsonw_object_begin(w);
	for (api_op op = 0; op < apistats_count(); op++) {
		if (!is_ce(op))
			continue;
		jsonw_key(w, apistats_operation_name(op));
		jsonw_number(w, c->req[op]);
		total += c->req[op];
		retries += c->retries[op];
		errors += c->errors[op];
	}
	jsonw_object_end(w);
	jsonw_key(w, "total");
	jsonw_number(w, total);
	jsonw_key(w, "retries");
	jsonw_number(w, retries);
	jsonw_key(w, "errors");
	jsonw_number(w, errors);
	jsonw_key(w, "refreshes");
	jsonw_object_begin(w);
	for (size_t i = 0; i < nsources; i++) {
		jsonw_key(w, source_names[i]);
		jsonw_int(w, c->refreshes[i]);
	}
	jsonw_object_end(w);
}

static struct conf *load(const char *path)
{
	struct textlist errors = { 0 };
	struct conf *c = conf_load(path, &errors);
	for (size_t i = 0; i < errors.n; i++)
		fprintf(stderr, "plan_bench: %s\n", errors.v[i]);
	textlist_free(&errors);
	return c;
}

static struct poller *start_poller(const char *path, struct conf **conf)
{
	*conf = load(path);
	if (!*conf)
		exit(2);
	struct poller_opts o = { .config_path = path, .mono_now = sim_mono_now,
				 .wall_now = sim_wall_now };
	struct poller *p = poller_new(*conf, &o);
	if (!p)
		exit(2);
	return p;
}

static void usage(void)
{
	fprintf(stderr, "usage: plan_bench CONFIG START_EPOCH [--seed N] [--restart-hour H] "
			"[--max-fill-days N] [--days N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *config = argv[1];
	double start = strtod(argv[2], NULL);
	double restart_hour = 10;
	long seed = 1, max_fill_days = 7, extra_days = 0;
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--seed") == 0)
			seed = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--restart-hour") == 0)
			restart_hour = strtod(argv[i + 1], NULL);
		else if (strcmp(argv[i], "--max-fill-days") == 0)
			max_fill_days = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--days") == 0)
			extra_days = atol(argv[i + 1]);
		else
			usage();
	}
	if (start < 1e9 || restart_hour < 0 || restart_hour >= 24 || max_fill_days < 1 ||
	    extra_days < 0 || extra_days > MAX_EXTRA_DAYS)
		usage();
	rng_state[1] = (unsigned short)seed;
	rng_state[2] = (unsigned short)(seed >> 16);
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_setup(LOG_LEVEL_WARN, LOG_FORMAT_LOGFMT);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		fprintf(stderr, "plan_bench: cannot initialise libcurl\n");
		return 2;
	}
	sim_offset = start - sim_mono;
	set_clock(sim_mono);
	int rc = 0;

	/* 1. the first fill, from an empty state file */
	struct conf *c1;
	struct poller *p1 = start_poller(config, &c1);
	phase_begin("fill");
	poller_prepare(p1);
	watch(p1);
	next_turn = sim_mono;
	double give_up = start + (double)max_fill_days * 86400;
	bool filled = false;
	while (sim_wall_now() < give_up) {
		turn(p1);
		if ((filled = all_up(p1)))
			break;
	}
	phase_end();
	int fill_windows = windows_served(p1, c1);
	long fill_days = days_of_time(sim_wall_now()) - days_of_time(start) + 1;
	if (!filled) {
		fprintf(stderr, "plan_bench: the first fill did not complete in %ld days\n",
			max_fill_days);
		rc = 1;
	}

	/* 2. the rest of that day, then one full steady day */
	double steady_from = midnight_after(sim_wall_now());
	phase_begin("fill_day_rest");
	run_until(p1, steady_from);
	phase_end();
	phase_begin("steady");
	run_until(p1, steady_from + 86400);
	phase_end();

	/* 3. a restart on the next day: the state file is written after every turn that
	 * changed it (poller_step), so freeing the poller loses nothing */
	double restart_at = steady_from + 86400 + restart_hour * 3600;
	phase_begin("restart_before");
	run_until(p1, restart_at);
	phase_end();
	const struct source *ce1 = source_named(p1, "cost_explorer");
	double old_next = ce1 ? ce1->next + sim_offset : 0;

	phase_begin("restart");
	double before = ce_requests();
	poller_free(p1);
	struct conf *c2;
	struct poller *p2 = start_poller(config, &c2);
	poller_prepare(p2);
	watch(p2);
	char *why = NULL;
	bool ready_at_once = render_ready(poller_sources(p2), &why);
	/* the product's readiness (/-/ready) and the cost sources' health; the projects are
	 * listed again at once (a free API), so that source is up after the first turn */
	const struct source *ce_restored = source_named(p2, "cost_explorer");
	bool ce_up_at_once = ce_restored && ce_restored->health.up;
	/* each source's health as restored, before any turn */
	const struct source_set *set2 = poller_sources(p2);
	struct source_set restored = { xcalloc(set2->n + 1, sizeof(struct source)), set2->n };
	memcpy(restored.v, set2->v, set2->n * sizeof(struct source));
	double prepare_requests = ce_requests() - before;
	int restart_windows = windows_served(p2, c2);
	double new_next = ce_restored ? ce_restored->next + sim_offset : 0;
	next_turn = sim_mono;
	/* a cost refresh due at once is the restart's doing: then the window takes the turns
	 * at the restart moment */
	double restart_end = midnight_after(restart_at);
	double window_end = new_next > restart_at ? new_next : restart_at + 1;
	run_until(p2, window_end < restart_end ? window_end : restart_end);
	phase_end();
	phase_begin("restart_rest");
	run_until(p2, restart_end);
	phase_end();
	char *day_names[MAX_EXTRA_DAYS] = { 0 };
	for (long d = 0; d < extra_days; d++) {
		char ds[11];
		days_format(days_of_time(restart_end) + d, ds);
		phase_begin(day_names[d] = xasprintf("day_%s", ds));
		run_until(p2, restart_end + (double)(d + 1) * 86400);
		phase_end();
	}
	ask("MARK end");
	if (!ready_at_once || !ce_up_at_once) {
		fprintf(stderr, "plan_bench: not ready at once after the restart: %s\n",
			why ? why : "cost_explorer is down");
		rc = 1;
	}

	struct jsonw w;
	jsonw_init(&w, 1 << 20);
	jsonw_object_begin(&w);
	jsonw_key(&w, "price_usd");
	jsonw_number(&w, c2->ce_request_price_usd);
	jsonw_key(&w, "max_requests_per_day");
	jsonw_int(&w, c2->ce_max_requests_per_day);
	jsonw_key(&w, "refresh_interval");
	jsonw_int(&w, c2->ce_refresh_interval);
	jsonw_key(&w, "seed");
	jsonw_int(&w, seed);
	jsonw_key(&w, "fill");
	jsonw_object_begin(&w);
	jsonw_key(&w, "complete");
	jsonw_bool(&w, filled);
	jsonw_key(&w, "days");
	jsonw_int(&w, fill_days);
	jsonw_key(&w, "windows");
	jsonw_int(&w, fill_windows);
	jsonw_object_end(&w);
	jsonw_key(&w, "restart");
	jsonw_object_begin(&w);
	jsonw_key(&w, "at");
	jsonw_number(&w, restart_at);
	jsonw_key(&w, "ready_at_once");
	jsonw_bool(&w, ready_at_once);
	jsonw_key(&w, "cost_explorer_up_at_once");
	jsonw_bool(&w, ce_up_at_once);
	jsonw_key(&w, "not_ready_because");
	jsonw_string(&w, why ? why : "");
	jsonw_key(&w, "sources");
	jsonw_object_begin(&w);
	for (size_t i = 0; i < restored.n; i++) {
		jsonw_key(&w, restored.v[i].def->name);
		jsonw_object_begin(&w);
		jsonw_key(&w, "enabled");
		jsonw_bool(&w, restored.v[i].enabled);
		jsonw_key(&w, "up");
		jsonw_bool(&w, restored.v[i].health.up);
		jsonw_key(&w, "has_data");
		jsonw_bool(&w, restored.v[i].health.has_data);
		jsonw_key(&w, "last_success");
		jsonw_number(&w, restored.v[i].health.last_success);
		jsonw_object_end(&w);
	}
	jsonw_object_end(&w);
	jsonw_key(&w, "requests_while_loading");
	jsonw_number(&w, prepare_requests);
	jsonw_key(&w, "windows");
	jsonw_int(&w, restart_windows);
	jsonw_key(&w, "old_next_cost_refresh");
	jsonw_number(&w, old_next);
	jsonw_key(&w, "new_next_cost_refresh");
	jsonw_number(&w, new_next);
	jsonw_object_end(&w);
	jsonw_key(&w, "phases");
	jsonw_array_begin(&w);
	for (size_t i = 0; i < nphases; i++) {
		const struct phase *ph = &phases[i];
		jsonw_object_begin(&w);
		jsonw_key(&w, "name");
		jsonw_string(&w, ph->name);
		jsonw_key(&w, "from");
		jsonw_number(&w, ph->from);
		jsonw_key(&w, "to");
		jsonw_number(&w, ph->to);
		jsonw_key(&w, "real_seconds");
		jsonw_number(&w, ph->real);
		jsonw_key(&w, "turns");
		jsonw_int(&w, ph->turns);
		write_counts(&w, &ph->d);
		jsonw_object_end(&w);
	}
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	size_t len;
	char *text = jsonw_steal(&w, &len);
	printf("RESULT %s\n", text ? text : "{}");
	free(text);
	free(why);
	free(restored.v);
	for (long d = 0; d < extra_days; d++)
		free(day_names[d]);
	poller_free(p2);
	curl_global_cleanup();
	return rc;
}
