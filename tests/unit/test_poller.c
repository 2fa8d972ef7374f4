/*
 * Unit tests for poller.c, the engine: one generic loop over a table of sources.
 *
 * The sources here are the test's own: "test", a do-nothing source that is one definition
 * and one table row in this file, and "test_after", which runs after it. The clocks are
 * fake (the test moves them), the HTTP client is a fake that no source here calls, so the
 * loop's scheduling, retries, the daily-ceiling wait, reload, the state file and publishing
 * are checked without a network or a sleep.
 */
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
#include <sys/stat.h>

#include "../../src/engine/poller.c"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "model/registry.h"

#define DIR "build/unit"
#define CONF DIR "/poller.conf"
#define STATE DIR "/poller_state.json"

/* ---- the fake clocks: 2026-11-26 12:00:00 UTC ---- */

static double fake_mono, fake_wall;

static double mono(void)
{
	return fake_mono;
}

static double wall(void)
{
	return fake_wall;
}

static void advance(double seconds)
{
	fake_mono += seconds;
	fake_wall += seconds;
}

/* ---- the test sources ---- */

struct tstate {
	long value;          /* what it exports and saves */
	double at;           /* when it last succeeded */
	int refreshes;
	int reconfigures;
};

/* What the sources do, set by each test. */
static struct {
	int rc;              /* what "test" returns */
	bool requery;        /* what its reconfigure returns */
	int samples;         /* how many samples its collect adds */
	int after_refreshes; /* calls of "test_after" */
	double takes;        /* seconds a refresh of "test" takes on the fake clocks */
	double delay;        /* what its delay returns */
	struct tstate *live; /* the private state of "test" in use */
} ctl;

static bool t_enabled(const struct conf *c)
{
	(void)c;
	return true;
}

static long t_interval(const struct conf *c)
{
	(void)c;
	return 600;
}

static void *t_create(const struct conf *c)
{
	(void)c;
	struct tstate *s = xcalloc(1, sizeof(*s));
	ctl.live = s;
	return s;
}

static void t_destroy(void *priv)
{
	if (ctl.live == priv)
		ctl.live = NULL;
	free(priv);
}

static bool t_reconfigure(void *priv, const struct conf *old, const struct conf *c)
{
	(void)old;
	(void)c;
	((struct tstate *)priv)->reconfigures++;
	return ctl.requery;
}

static int t_refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	struct tstate *s = priv;
	s->refreshes++;
	advance(ctl.takes);
	if (ctl.rc) {
		snprintf(err, errlen, "test failure %d", s->refreshes);
		return ctl.rc;
	}
	s->value++;
	s->at = x->now;
	x->state_changed = true;
	return 0;
}

static void t_save(const void *priv, struct jsonw *w)
{
	const struct tstate *s = priv;
	jsonw_key(w, "test");
	jsonw_object_begin(w);
	jsonw_key(w, "value");
	jsonw_int(w, s->value);
	jsonw_key(w, "at");
	jsonw_number(w, s->at);
	jsonw_object_end(w);
}

static void *t_restore(const struct jsontape *t, size_t root, const struct conf *c, double now,
		       struct source_restored *out, char *err, size_t errlen)
{
	(void)now;
	(void)c;
	struct tstate *s = xcalloc(1, sizeof(*s)); /* ctl.live: only once it is installed */
	size_t o = jt_get(t, root, "test");
	if (o == JT_NONE) {
		ctl.live = s;
		return s;
	}
	double v;
	if (jt_number(t, jt_get(t, o, "value"), &v) || jt_number(t, jt_get(t, o, "at"), &s->at)) {
		snprintf(err, errlen, "test: malformed");
		t_destroy(s);
		return NULL;
	}
	s->value = (long)v;
	out->has_data = true;
	out->at = s->at;
	ctl.live = s;
	return s;
}

static double t_delay(const void *priv, const struct conf *c, double now)
{
	(void)priv;
	(void)c;
	(void)now;
	return ctl.delay;
}

static const struct metric_def m_value = { "test_value", METRIC_GAUGE, "The test source's value." };

static void t_collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	const struct tstate *s = priv;
	if (x->health->has_data)
		reg_addv(r, &m_value, (double)s->value, (char *)0);
	for (int i = 0; i < ctl.samples; i++) {
		char label[64];
		snprintf(label, sizeof(label), "sample %d with some text to make it longer", i);
		reg_addv(r, &m_value, i, "i", label, (char *)0);
	}
}

/* The whole cost of adding a source to the engine: this definition and its row below. */
static const struct source_def test_source = {
	.name = "test",
	.enabled = t_enabled,
	.interval = t_interval,
	.retry_after_failure = 120,
	.create = t_create,
	.destroy = t_destroy,
	.reconfigure = t_reconfigure,
	.refresh = t_refresh,
	.save = t_save,
	.restore = t_restore,
	.collect = t_collect,
	.delay = t_delay,
};

static int a_refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	(void)priv;
	(void)x;
	(void)err;
	(void)errlen;
	ctl.after_refreshes++;
	return 0;
}

static void *a_create(const struct conf *c)
{
	(void)c;
	return xcalloc(1, 1);
}

static void a_collect(const void *priv, const struct collect_ctx *x, struct reg *r)
{
	(void)priv;
	(void)x;
	(void)r;
}

static const struct source_def after_source = {
	.name = "test_after",
	.enabled = t_enabled,
	.interval = t_interval,
	.after = &test_source,
	.create = a_create,
	.destroy = free,
	.refresh = a_refresh,
	.collect = a_collect,
};

static const struct source_def *const table[] = {
	&test_source,
	&after_source,
	NULL,
};

/* ---- helpers ---- */

static int no_network(void *arg, const struct hc_req *req, long *status, struct buf *body)
{
	(void)arg;
	(void)req;
	(void)status;
	(void)body;
	fail_msg("a test source made an HTTP request");
	return -EIO;
}

static void write_conf(const char *text)
{
	FILE *f = fopen(CONF, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define GOOD_CONF "state_file = \"" STATE "\";\n"

static struct poller *start(size_t max_exposition)
{
	struct textlist errs = { 0 };
	struct conf *c = conf_load(CONF, &errs);
	assert_non_null(c);
	struct poller_opts o = { .config_path = CONF, .telemetry_path = "/metrics", .sources = table,
				 .hc = hc_new_fake(no_network, NULL), .mono_now = mono,
				 .wall_now = wall, .max_exposition = max_exposition };
	struct poller *p = poller_new(c, &o);
	assert_non_null(p);
	poller_prepare(p);
	return p;
}

static void setup_each(void)
{
	memset(&ctl, 0, sizeof(ctl));
	fake_mono = 1000;
	fake_wall = 1795694400; /* 2026-11-26 12:00:00 UTC */
	remove(STATE);
	write_conf(GOOD_CONF);
}

/* The published /metrics body, as a new string. */
static char *published(void)
{
	struct snapshot *s = snapshot_acquire();
	assert_non_null(s);
	char *body = xstrndup(s->plain, s->plain_len);
	snapshot_release(s);
	return body;
}

static bool published_ready(void)
{
	struct snapshot *s = snapshot_acquire();
	bool ready = s->ready;
	snapshot_release(s);
	return ready;
}

static const struct source *source_named(struct poller *p, const char *name)
{
	const struct source_set *set = poller_sources(p);
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].def->name, name) == 0)
			return &set->v[i];
	fail_msg("no source %s", name);
	return NULL;
}

/* ---- tests ---- */

/* A source that is one definition and one row is refreshed, exported and made ready. */
static void a_test_source_is_one_row(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	/* the first snapshot (before any refresh): not ready, the test source is waiting */
	assert_false(published_ready());
	char *body = published();
	assert_non_null(strstr(body, "bedrock_cost_exporter_source_up{source=\"test\"} 0\n"));
	assert_null(strstr(body, "test_value "));
	free(body);

	double next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);
	assert_int_equal(ctl.after_refreshes, 1); /* right after its source, same round */
	assert_true(published_ready());
	body = published();
	assert_non_null(strstr(body, "bedrock_cost_exporter_source_up{source=\"test\"} 1\n"));
	assert_non_null(strstr(body, "bedrock_cost_exporter_source_up{source=\"test_after\"} 1\n"));
	assert_non_null(strstr(body, "test_value 1\n"));
	char want[96];
	snprintf(want, sizeof(want),
		 "bedrock_cost_exporter_last_success_timestamp_seconds{source=\"test\"} %.0f\n", fake_wall);
	assert_non_null(strstr(body, want));
	free(body);
	/* the interval with 10% jitter */
	assert_true(next >= fake_mono + 540 && next <= fake_mono + 660);
	struct snapshot *s = snapshot_acquire();
	assert_non_null(strstr(s->landing, "<td>test</td><td>up</td>"));
	snapshot_release(s);
	poller_free(p);
}

static void refreshes_on_schedule(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	double next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);

	/* nothing is due before the deadline: a turn refreshes nothing and waits for it */
	advance(next - fake_mono - 1);
	struct snapshot *before = snapshot_acquire();
	assert_true(poller_step(p) == next);
	assert_int_equal(ctl.live->refreshes, 1);
	struct snapshot *after = snapshot_acquire();
	assert_ptr_equal(before, after); /* nothing changed, nothing published */
	snapshot_release(before);
	snapshot_release(after);

	advance(1);
	next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 2);
	assert_int_equal(ctl.after_refreshes, 2);
	assert_true(next >= fake_mono + 540 && next <= fake_mono + 660);
	char *body = published();
	assert_non_null(strstr(body, "test_value 2\n"));
	free(body);
	poller_free(p);
}

/* A source whose daily budget needs more than its interval stretches it (delay); one that
 * does not keeps the jittered interval. */
static void delay_stretches_the_interval(void **state)
{
	(void)state;
	setup_each();
	ctl.delay = 5000;
	struct poller *p = start(0);
	double next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);
	assert_true(fabs(next - (fake_mono + 5000)) < 1e-6);
	advance(4999);
	poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);
	ctl.delay = 100; /* less than the 600 s interval: the interval wins */
	advance(1);
	next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 2);
	assert_true(next >= fake_mono + 540 && next <= fake_mono + 660);
	poller_free(p);
}

/* A failure keeps the last good data, retries sooner, and does not run what follows it. */
static void failure_retries_and_keeps_data(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	double next = poller_step(p);
	advance(next - fake_mono);
	ctl.rc = -EIO;
	next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 2);
	assert_int_equal(ctl.after_refreshes, 1);
	/* retry_after_failure (120 s) with up to 10% more, not the 600 s interval */
	assert_true(next >= fake_mono + 120 && next <= fake_mono + 132);
	const struct source *s = source_named(p, "test");
	assert_false(s->health.up);
	assert_true(s->health.has_data);
	assert_string_equal(s->health.last_error, "test failure 2");
	char *body = published();
	assert_non_null(strstr(body, "bedrock_cost_exporter_source_up{source=\"test\"} 0\n"));
	assert_non_null(strstr(body, "test_value 1\n")); /* the last good data */
	free(body);
	assert_true(published_ready()); /* readiness is not lost once reached */

	ctl.rc = 0;
	advance(next - fake_mono);
	poller_step(p);
	assert_int_equal(ctl.live->refreshes, 3);
	assert_int_equal(ctl.after_refreshes, 2);
	assert_true(s->health.up);
	assert_null(s->health.last_error);
	poller_free(p);
}

/* -EDQUOT (the daily ceiling is spent) waits for the next UTC day; midnight re-renders. */
static void ceiling_waits_for_the_next_day(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	ctl.rc = -EDQUOT;
	double next = poller_step(p);
	double midnight = fake_mono + (1795737600 - fake_wall); /* 2026-11-27 00:00:00 UTC */
	assert_true(next >= midnight && next <= midnight + 61);
	assert_int_equal(ctl.live->refreshes, 1);

	/* at midnight the windows move: a new snapshot even though nothing was refreshed */
	advance(midnight - fake_mono + 0.02);
	struct snapshot *before = snapshot_acquire();
	ctl.rc = 0;
	next = poller_step(p);
	struct snapshot *after = snapshot_acquire();
	assert_ptr_not_equal(before, after);
	snapshot_release(before);
	snapshot_release(after);
	if (ctl.live->refreshes == 1) { /* the jitter put it a little after midnight */
		advance(next - fake_mono);
		poller_step(p);
	}
	assert_int_equal(ctl.live->refreshes, 2);
	assert_true(source_named(p, "test")->health.up);
	poller_free(p);
}

/* SIGHUP: a good file is swapped in and the sources are asked; a bad one is refused. */
static void reload_swaps_or_refuses(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	double next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);

	/* a source that says the change matters is refreshed at once */
	ctl.requery = true;
	write_conf(GOOD_CONF "http: { max_retries = 1; };\n");
	poller_reload(p);
	poller_step(p);
	assert_int_equal(ctl.live->reconfigures, 1);
	assert_int_equal(ctl.live->refreshes, 2);
	assert_int_equal(p->conf->http_max_retries, 1);

	/* one that says it does not keeps its schedule */
	ctl.requery = false;
	next = poller_step(p);
	write_conf(GOOD_CONF "http: { max_retries = 2; };\n");
	poller_reload(p);
	assert_true(poller_step(p) == next);
	assert_int_equal(ctl.live->reconfigures, 2);
	assert_int_equal(ctl.live->refreshes, 2);
	char *body = published();
	assert_non_null(strstr(body, "bedrock_cost_exporter_config_last_reload_successful 1\n"));
	free(body);

	/* a bad file: the old configuration stays, and the metric says so */
	write_conf(GOOD_CONF "http: { max_retries = \"many\"; };\n");
	poller_reload(p);
	poller_step(p);
	assert_int_equal(ctl.live->reconfigures, 2);
	assert_int_equal(p->conf->http_max_retries, 2);
	body = published();
	assert_non_null(strstr(body, "bedrock_cost_exporter_config_last_reload_successful 0\n"));
	free(body);
	poller_free(p);
}

/* The state file brings a source back after a restart: ready at once, up, refreshed when due. */
static void state_survives_a_restart(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(0);
	poller_step(p);
	poller_step(p);
	assert_int_equal(ctl.live->value, 1);
	double at = ctl.live->at;
	poller_free(p);
	struct stat st;
	assert_int_equal(stat(STATE, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	advance(100); /* restarted 100 s later */
	p = start(0);
	/* "test" is ready from its state; "test_after" keeps nothing, so it still waits */
	struct snapshot *snap = snapshot_acquire();
	assert_false(snap->ready);
	assert_non_null(strstr(snap->not_ready_reason, "test_after"));
	assert_null(strstr(snap->not_ready_reason, "test,"));
	snapshot_release(snap);
	const struct source *s = source_named(p, "test");
	assert_true(s->health.up);
	assert_true(s->health.last_success == at);
	assert_int_equal(ctl.live->value, 1);
	/* not refreshed before its interval since the restored data is over */
	double next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 0);
	assert_true(fabs(next - (fake_mono - 100 + 600)) < 0.01);
	advance(next - fake_mono);
	poller_step(p);
	assert_int_equal(ctl.live->refreshes, 1);
	assert_int_equal(ctl.live->value, 2);
	poller_free(p);

	/* a state file that does not read back is ignored as a whole */
	FILE *f = fopen(STATE, "w");
	fputs("{\"format\":\"bedrock-cost-exporter-state\",\"version\":1,\"test\":{\"value\":\"x\"}}", f);
	fclose(f);
	p = start(0);
	assert_false(source_named(p, "test")->health.has_data);
	assert_int_equal(ctl.live->value, 0);
	poller_free(p);
}

/* Two sources whose refreshes take longer than their interval keep each other due: the loop
 * still publishes after each round instead of waiting for a moment when nothing is due. */
static int slow_refreshes;

static int slow_refresh(void *priv, struct source_ctx *x, char *err, size_t errlen)
{
	(void)priv;
	(void)x;
	(void)err;
	(void)errlen;
	slow_refreshes++;
	advance(700); /* the interval is 600 s */
	return 0;
}

static const struct source_def slow_source = {
	.name = "test_slow",
	.enabled = t_enabled,
	.interval = t_interval,
	.create = a_create,
	.destroy = free,
	.refresh = slow_refresh,
	.collect = a_collect,
};

static void slow_sources_do_not_starve_publishing(void **state)
{
	(void)state;
	setup_each();
	static const struct source_def *const slow_table[] = { &test_source, &slow_source, NULL };
	struct textlist errs = { 0 };
	struct conf *c = conf_load(CONF, &errs);
	struct poller_opts o = { .config_path = CONF, .sources = slow_table,
				 .hc = hc_new_fake(no_network, NULL), .mono_now = mono,
				 .wall_now = wall };
	struct poller *p = poller_new(c, &o);
	poller_prepare(p);
	ctl.takes = 700;
	slow_refreshes = 0;
	for (int round = 1; round <= 3; round++) {
		struct snapshot *before = snapshot_acquire();
		double next = poller_step(p);
		assert_true(next <= fake_mono); /* one of them is due again already */
		struct snapshot *after = snapshot_acquire();
		assert_ptr_not_equal(before, after); /* published all the same */
		snapshot_release(before);
		snapshot_release(after);
		char want[32];
		snprintf(want, sizeof(want), "test_value %d\n", ctl.live->refreshes);
		char *body = published();
		assert_non_null(strstr(body, want));
		free(body);
	}
	assert_true(slow_refreshes >= 2);
	poller_free(p);
}

/* An exposition too large to render is not published: the previous one stays, and it counts. */
static void failed_render_keeps_the_snapshot(void **state)
{
	(void)state;
	setup_each();
	struct poller *p = start(64 * 1024);
	double next = poller_step(p);
	char *good = published();
	assert_non_null(strstr(good, "bedrock_cost_exporter_render_failures_total 0\n"));

	ctl.samples = 5000; /* well over 64 KiB */
	advance(next - fake_mono);
	next = poller_step(p);
	assert_int_equal(ctl.live->refreshes, 2);
	char *now = published();
	assert_string_equal(now, good); /* whole, and the previous one */
	free(now);

	ctl.samples = 0;
	advance(next - fake_mono);
	poller_step(p);
	now = published();
	assert_non_null(strstr(now, "bedrock_cost_exporter_render_failures_total 1\n"));
	assert_non_null(strstr(now, "test_value 3\n"));
	free(now);
	free(good);
	poller_free(p);
}

/* --once: every source once, the exposition, and whether all succeeded. */
static void once(void **state)
{
	(void)state;
	setup_each();
	struct textlist errs = { 0 };
	struct conf *c = conf_load(CONF, &errs);
	struct poller_opts o = { .config_path = CONF, .sources = table,
				 .hc = hc_new_fake(no_network, NULL), .mono_now = mono,
				 .wall_now = wall };
	struct poller *p = poller_new(c, &o);
	struct buf out;
	buf_init(&out, 1 << 20);
	assert_int_equal(poller_run_once(p, &out), 0);
	assert_int_equal(ctl.live->refreshes, 1);
	assert_int_equal(ctl.after_refreshes, 1);
	assert_non_null(strstr(out.data, "test_value 1\n"));
	buf_free(&out);
	poller_free(p);

	remove(STATE);
	ctl.rc = -EIO;
	c = conf_load(CONF, &errs);
	o.hc = hc_new_fake(no_network, NULL);
	p = poller_new(c, &o);
	buf_init(&out, 1 << 20);
	assert_int_equal(poller_run_once(p, &out), -EIO);
	assert_int_equal(ctl.after_refreshes, 1); /* not run after a failure */
	assert_non_null(strstr(out.data, "bedrock_cost_exporter_source_up{source=\"test\"} 0\n"));
	buf_free(&out);
	poller_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_test_source_is_one_row),
		cmocka_unit_test(refreshes_on_schedule),
		cmocka_unit_test(delay_stretches_the_interval),
		cmocka_unit_test(failure_retries_and_keeps_data),
		cmocka_unit_test(ceiling_waits_for_the_next_day),
		cmocka_unit_test(reload_swaps_or_refuses),
		cmocka_unit_test(state_survives_a_restart),
		cmocka_unit_test(slow_sources_do_not_starve_publishing),
		cmocka_unit_test(failed_render_keeps_the_snapshot),
		cmocka_unit_test(once),
	};
	int rc = cmocka_run_group_tests_name("poller", tests, NULL, NULL);
	remove(CONF);
	remove(STATE);
	return rc;
}
