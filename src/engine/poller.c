/*
 * poller.c - see poller.h.
 */
#include "engine/poller.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/awscreds.h"
#include "aws/http_client.h"
#include "base/days.h"
#include "base/log.h"
#include "engine/render.h"
#include "engine/shared_state.h"
#include "engine/statefile.h"
#include "serve/snapshot.h"

/* Each interval is stretched or shrunk by up to this fraction, at random. */
#define JITTER 0.1
/* seconds before a source that is waiting (-EINPROGRESS) asks again */
#define SOON 10.0
/* Largest exposition rendered by default; a larger one is not served (the previous one stays). */
#define MAX_EXPOSITION ((size_t)1 << 30)

struct poller {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool reload_requested; /* under mu */
	atomic_bool stop;

	char *config_path;
	struct conf *conf;
	struct source_set set;
	struct hc *hc;
	struct aws_provider *creds;
	double (*mono)(void);
	double (*wall)(void);
	size_t max_exposition;
	struct render_info info;
	long rendered_day;    /* UTC day of the last render: re-render at midnight */
	char *state_error;    /* last state-file write error, for complain-once */
	struct statefile_writer state_writer; /* lets an unchanged state file go unwritten */
	struct shared_state *shared; /* the state file in S3 (state_file = "s3://...") */
	char *shared_error;   /* last error reading the shared state, for complain-once */
	bool prepared;        /* state loaded, first snapshot published */
	bool state_dirty;     /* a source's state-file part changed since the last write */
	bool dirty;           /* something changed that is not published yet */
	long render_failing;  /* renders failed in a row, for complain-once */
	bool once;            /* poller_run_once: one round, nothing waits */
	struct source *refreshing; /* the source whose refresh is running, or NULL */
};

/* The S3 operations of a shared state file (registered when one is configured, so that
 * their counters exist from the first scrape). */
static const struct api_op_def s3_ops[] = {
	{ "s3", "GetObject" },
	{ "s3", "PutObject" },
	{ NULL, NULL },
};

struct poller *poller_new(struct conf *conf, const struct poller_opts *o)
{
	struct hc *hc = o->hc ? o->hc : hc_new();
	if (!hc) {
		log_error("cannot initialise libcurl");
		conf_free(conf);
		return NULL;
	}
	struct poller *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&p->stop, false);
	p->hc = hc;
	p->creds = aws_provider_new();
	p->config_path = xstrdup(o->config_path);
	p->conf = conf;
	p->mono = o->mono_now ? o->mono_now : mono_now;
	p->wall = o->wall_now ? o->wall_now : wall_now;
	p->max_exposition = o->max_exposition ? o->max_exposition : MAX_EXPOSITION;
	p->info.telemetry_path = xstrdup(o->telemetry_path ? o->telemetry_path : "/metrics");
	p->info.reload_ok = true;
	p->info.reload_success_ts = p->wall();
	p->rendered_day = days_of_time(p->wall());
	source_set_init(&p->set, o->sources ? o->sources : source_table, conf);
	p->shared = shared_state_new();
	if (shared_state_configured(conf))
		apistats_register(s3_ops);
	return p;
}

void poller_free(struct poller *p)
{
	if (!p)
		return;
	shared_state_free(p->shared);
	free(p->shared_error);
	source_set_free(&p->set);
	aws_provider_free(p->creds);
	free(p->state_error);
	free((char *)p->info.telemetry_path);
	conf_free(p->conf);
	hc_free(p->hc);
	free(p->config_path);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

const struct source_set *poller_sources(const struct poller *p)
{
	return &p->set;
}

/* Sleeps on the condition variable; returns non-zero if asked to stop. */
static int wait_interruptible(void *arg, double seconds)
{
	struct poller *p = arg;
	double deadline = mono_now() + seconds;
	struct timespec ts = { (time_t)deadline,
			       (long)((deadline - (double)(time_t)deadline) * 1e9) };
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop) && mono_now() < deadline)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&p->mu);
	return atomic_load(&p->stop);
}

static void publish(struct poller *p);

/*
 * An attempt of the running refresh failed: the source is down from now, with that error,
 * published at once (a hung endpoint shows at its first timeout, not after every retry).
 * The refresh's outcome, when it ends, replaces this; failures are logged there, once.
 */
static void attempt_failed(void *arg, const char *err, bool will_retry)
{
	(void)will_retry;
	struct poller *p = arg;
	struct source *s = p->refreshing;
	if (!s || !p->prepared)
		return;
	s->health.up = false;
	free(s->health.last_error);
	s->health.last_error = xstrdup(err);
	publish(p);
}

static struct hc_opts client_opts(struct poller *p)
{
	const struct conf *c = p->conf;
	return (struct hc_opts){
		.connect_timeout = c->http_connect_timeout,
		.request_timeout = c->http_request_timeout,
		.max_retries = c->http_max_retries,
		.retry_max_delay = c->http_retry_max_delay,
		.max_body = (size_t)c->http_max_response_mib * 1024 * 1024,
		.stop = &p->stop,
		.wait = wait_interruptible,
		.wait_arg = p,
		.attempt_failed = attempt_failed,
		.attempt_failed_arg = p,
	};
}

static double jittered(double interval)
{
	return interval * (1.0 + JITTER * (2.0 * rand_unit() - 1.0));
}

/* Seconds from @now until the next UTC midnight. */
static double until_midnight(double now)
{
	return days_start_time(days_of_time(now) + 1) - now;
}

/* When @s is due again after a refresh that returned @rc. */
static void schedule(struct poller *p, struct source *s, int rc)
{
	const struct source_def *d = s->def;
	if (d->after)
		return; /* runs with the source it follows */
	double interval = (double)d->interval(p->conf), retry = (double)d->retry_after_failure;
	double now = p->mono();
	if (rc == 0) {
		double spread = d->delay ? d->delay(s->priv, p->conf, p->wall()) : 0;
		s->next = now + (spread > interval ? spread : jittered(interval));
	} else if (rc == -EINPROGRESS) { /* waiting on another shard: soon, not at the interval */
		s->next = now + SOON * (1 + rand_unit() * JITTER);
	} else if (rc == -EDQUOT) { /* the daily ceiling is spent: a new UTC day brings a new one */
		s->next = now + until_midnight(p->wall()) + 60 * rand_unit();
	} else if (!retry || interval < retry) {
		s->next = now + jittered(interval);
	} else {
		s->next = now + retry * (1 + rand_unit() * JITTER);
	}
}

/* Records the outcome of a refresh; complains once per change of outcome, notes recovery. */
static void note(struct source *s, int rc, const char *err, double started, double mono)
{
	struct source_health *h = &s->health;
	bool quiet = s->def->logs_own_failures;
	h->last_duration = mono - started;
	h->last_rc = rc;
	if (rc == 0) {
		if (h->logged_error && !quiet)
			log_info("source recovered", "source", s->def->name);
		free(h->last_error);
		h->last_error = NULL;
		free(h->logged_error);
		h->logged_error = NULL;
		h->up = true;
		h->has_data = true;
		return;
	}
	h->up = false;
	if (!quiet) {
		if (same_failure(h->logged_error, err))
			log_debug("source still failing", "source", s->def->name, "error", err);
		else
			log_warn("refresh failed; serving the last good data", "source", s->def->name,
				 "error", err);
	}
	free(h->last_error);
	h->last_error = xstrdup(err);
	free(h->logged_error);
	h->logged_error = xstrdup(err);
}

/* Refreshes one source now. Returns what its refresh returned. */
static int refresh(struct poller *p, struct source *s)
{
	struct hc_opts o = client_opts(p);
	struct source_ctx x = { .conf = p->conf, .now = p->wall(), .hc = p->hc, .http = &o,
				.creds = p->creds, .set = &p->set, .once = p->once };
	char err[512] = "";
	double t0 = p->mono();
	p->refreshing = s;
	int rc = s->def->refresh(s->priv, &x, err, sizeof(err));
	p->refreshing = NULL;
	/* published when the refresh ends (its failed attempts are published as they fail):
	 * a moved last_attempt means a finished refresh */
	s->health.last_attempt = x.now;
	if (x.state_changed)
		p->state_dirty = true;
	if (rc == -ECANCELED)
		return rc;
	if (rc == 0)
		s->health.last_success = p->wall();
	note(s, rc, err, t0, p->mono());
	if (s->def->has_data)
		s->health.has_data = s->def->has_data(s->priv);
	schedule(p, s, rc);
	return rc;
}

/* Refreshes @s, then the sources that run after it when it succeeded. */
static int refresh_chain(struct poller *p, struct source *s)
{
	int rc = refresh(p, s);
	for (size_t j = 0; rc == 0 && j < p->set.n; j++) {
		struct source *t = &p->set.v[j];
		if (t->enabled && t->def->after == s->def && refresh_chain(p, t) == -ECANCELED)
			return -ECANCELED;
	}
	return rc;
}

/* The HTTP options of a request for the shared state: a body as large as a state may be
 * (http.max_response_mib caps AWS API answers, not the exporter's own state). */
static struct hc_opts shared_opts(struct poller *p)
{
	struct hc_opts o = client_opts(p);
	o.max_body = STATEFILE_MAX_BYTES;
	return o;
}

static struct s3_ctx s3_ctx_of(struct poller *p, const struct hc_opts *o)
{
	return (struct s3_ctx){ .hc = p->hc, .http = o, .creds = p->creds, .conf = p->conf,
				.now = p->wall(),
				.get_op = apistats_op(s3_ops[0].api, s3_ops[0].operation),
				.put_op = apistats_op(s3_ops[1].api, s3_ops[1].operation) };
}

/* Restored data is good data (the next refresh may say otherwise): each source that got
 * data in @got is up, and due again one interval after its data was fetched. */
static void apply_restored(struct poller *p, const struct source_restored *got)
{
	double now = p->wall(), mono = p->mono();
	for (size_t i = 0; i < p->set.n; i++) {
		struct source *s = &p->set.v[i];
		if (got[i].has_data)
			s->health.has_data = true;
		if (got[i].at <= 0)
			continue;
		s->health.up = true;
		s->health.last_success = got[i].at;
		free(s->health.last_error);
		s->health.last_error = NULL;
		double due = got[i].at + (double)s->def->interval(p->conf) - now;
		if (!s->def->after)
			s->next = mono + (due > 0 ? due : 0);
	}
}

/*
 * Takes from the shared state (S3) every source part another replica fetched later than
 * this one holds, so that a source another replica has just refreshed is not fetched (and
 * paid for) again. Returns true when something was taken. Failures are logged once and
 * cost nothing but the refresh the pull would have saved.
 */
static bool pull_shared(struct poller *p)
{
	struct hc_opts o = shared_opts(p);
	struct s3_ctx x = s3_ctx_of(p, &o);
	double *newer = xcalloc(p->set.n + 1, sizeof(*newer));
	struct source_restored *got = xcalloc(p->set.n + 1, sizeof(*got));
	for (size_t i = 0; i < p->set.n; i++)
		newer[i] = p->set.v[i].health.has_data ? p->set.v[i].health.last_success : 0;
	char err[512] = "";
	int rc = shared_state_pull(p->shared, &x, &p->set, newer, got, err, sizeof(err));
	bool took = false;
	if (rc == 0) {
		for (size_t i = 0; i < p->set.n; i++)
			if (got[i].at > 0) {
				took = true;
				log_info("source taken from the shared state; not fetched",
					 "source", p->set.v[i].def->name, "fetched_at",
					 LOG_FIXED(got[i].at, 3));
			}
		apply_restored(p, got);
	}
	if (rc == 0 || rc == -EALREADY || rc == -ENOENT) {
		if (p->shared_error)
			log_info("shared state read again", "url",
				 shared_state_url(p->shared, p->conf));
		free(p->shared_error);
		p->shared_error = NULL;
	} else if (rc != -ECANCELED) {
		if (!same_failure(p->shared_error, err))
			log_warn("cannot read the shared state; refreshing from AWS", "error", err);
		free(p->shared_error);
		p->shared_error = xstrdup(err);
	}
	free(newer);
	free(got);
	return took;
}

static void save_state(struct poller *p)
{
	const char *path = p->conf->state_file;
	p->state_dirty = false;
	if (!*path)
		return;
	char err[512] = "";
	int rc;
	if (shared_state_configured(p->conf)) {
		struct hc_opts o = shared_opts(p);
		struct s3_ctx x = s3_ctx_of(p, &o);
		rc = shared_state_push(p->shared, &x, &p->set, err, sizeof(err));
		for (int n = 0; rc == -EAGAIN && n < 3; n++) {
			/* another replica wrote first: take its newer parts, then write the union */
			log_info("the shared state changed under this write; merging", "detail", err);
			if (pull_shared(p))
				p->dirty = true;
			x.now = p->wall();
			rc = shared_state_push(p->shared, &x, &p->set, err, sizeof(err));
		}
	} else {
		rc = statefile_save(&p->state_writer, path, &p->set, p->wall(), err, sizeof(err));
	}
	if (rc) {
		if (!same_failure(p->state_error, err))
			log_warn("cannot write the state file; a restart will fetch (and pay for) its data "
				 "again", "error", err);
		free(p->state_error);
		p->state_error = xstrdup(err);
	} else if (p->state_error) {
		log_info("state file written again", "file", path);
		free(p->state_error);
		p->state_error = NULL;
	}
}

/* Renders and publishes a new snapshot; a failed render keeps the previous one. */
static void publish(struct poller *p)
{
	struct buf body;
	buf_init(&body, p->max_exposition);
	double now = p->wall();
	p->rendered_day = days_of_time(now);
	if (render_metrics(&p->set, p->conf, &p->info, now, &body)) {
		if (p->render_failing++ == 0) /* complain once, then on recovery */
			log_error("the exposition does not fit; the previous one stays served",
				  "max_bytes", LOG_INT(p->max_exposition));
		p->info.render_failures++;
		buf_free(&body);
		return;
	}
	if (p->render_failing) {
		log_info("the exposition fits again", "failed_renders", LOG_INT(p->render_failing));
		p->render_failing = 0;
	}
	size_t llen;
	char *landing = render_landing(&p->set, p->info.telemetry_path, &llen);
	char *why = NULL;
	bool ready = render_ready(&p->set, &why);
	size_t len;
	char *plain = buf_steal(&body, &len);
	snapshot_publish(snapshot_new(plain, len, landing, llen, ready, why));
	/* parsing and rendering freed a lot; give it back instead of holding the peak */
	malloc_trim(0);
}

/* Restores the state file; schedules each source after the restored data's age. */
static void load_state(struct poller *p)
{
	const char *path = p->conf->state_file;
	if (!*path)
		return;
	char err[512] = "";
	struct source_restored *got = xcalloc(p->set.n + 1, sizeof(*got));
	int rc;
	if (shared_state_configured(p->conf)) {
		struct hc_opts o = shared_opts(p);
		struct s3_ctx x = s3_ctx_of(p, &o);
		rc = shared_state_pull(p->shared, &x, &p->set, NULL, got, err, sizeof(err));
		path = shared_state_url(p->shared, p->conf);
		if (rc == -EIO) /* unreachable, denied: the first refresh's push will say again */
			log_warn("cannot read the shared state; starting afresh", "error", err);
	} else {
		rc = statefile_load(path, &p->set, p->conf, p->wall(), got, err, sizeof(err));
	}
	if (rc == -ENOENT)
		log_info("no state file yet; it is written after the first refresh", "file", path);
	else if (rc == -EPROTO)
		log_warn("state file ignored; starting afresh", "error", err);
	if (!rc) {
		apply_restored(p, got);
		log_info("state restored", "file", path);
	}
	free(got);
}

static void reload(struct poller *p)
{
	struct textlist errors = { 0 };
	struct conf *c = conf_load(p->config_path, &errors);
	if (!c) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("configuration rejected, keeping the previous one", "error",
				  errors.v[i]);
		textlist_free(&errors);
		p->info.reload_ok = false;
		return;
	}
	struct conf *old = p->conf;
	p->conf = c;
	double mono = p->mono();
	for (size_t i = 0; i < p->set.n; i++) {
		struct source *s = &p->set.v[i];
		bool was = s->enabled;
		bool again = s->def->reconfigure && s->def->reconfigure(s->priv, old, c);
		s->enabled = s->def->enabled(c);
		/* a source waiting for the next UTC day's ceiling tries again at once: the reload
		 * may have raised it (if not, the try costs nothing and waits again) */
		if (s->enabled && (again || !was || s->health.last_rc == -EDQUOT))
			s->next = mono;
	}
	if (shared_state_configured(c))
		apistats_register(s3_ops);
	aws_provider_invalidate(p->creds); /* aws.* may have changed */
	p->info.reload_ok = true;
	p->info.reload_success_ts = p->wall();
	conf_free(old);
	log_info("configuration reloaded", "file", p->config_path);
}

/* The earliest time (monotonic) a source with a schedule of its own is due. */
static double next_due(const struct poller *p)
{
	double next = -1;
	for (size_t i = 0; i < p->set.n; i++) {
		const struct source *s = &p->set.v[i];
		if (s->enabled && !s->def->after && (next < 0 || s->next < next))
			next = s->next;
	}
	return next;
}

/*
 * Refreshes every due source, in table order. Sources due at the same moment
 * (at start, after a reload) are refreshed back to back and then published,
 * and the state file written, once: each publish renders and compresses the
 * whole exposition, which for a large account costs more than attributing the
 * spend. Returns -ECANCELED when stopped.
 */
static int run_due(struct poller *p)
{
	/* with a shared state, what another replica fetched meanwhile is not fetched again */
	bool due = false;
	for (size_t i = 0; i < p->set.n; i++) {
		const struct source *s = &p->set.v[i];
		due = due || (s->enabled && !s->def->after && p->mono() >= s->next);
	}
	if (due && shared_state_configured(p->conf) && pull_shared(p))
		p->dirty = true;
	for (size_t i = 0; i < p->set.n && !atomic_load(&p->stop); i++) {
		struct source *s = &p->set.v[i];
		if (!s->enabled || s->def->after || p->mono() < s->next)
			continue;
		p->dirty = true;
		if (refresh_chain(p, s) == -ECANCELED)
			return -ECANCELED;
	}
	return atomic_load(&p->stop) ? -ECANCELED : 0;
}

double poller_step(struct poller *p)
{
	pthread_mutex_lock(&p->mu);
	bool reload_now = p->reload_requested;
	p->reload_requested = false;
	pthread_mutex_unlock(&p->mu);
	if (reload_now) {
		reload(p);
		p->dirty = true;
	}
	if (run_due(p) == -ECANCELED)
		return p->mono();
	if (days_of_time(p->wall()) != p->rendered_day) {
		log_debug("UTC midnight: windows move");
		p->dirty = true;
	}
	/* publish now even if a source is due again already (its refresh took longer than its
	 * interval): sources due together ran back to back above, and waiting for a moment when
	 * nothing is due could starve the snapshot */
	double now = p->mono(), next = next_due(p);
	if (p->dirty) {
		if (p->state_dirty)
			save_state(p);
		publish(p);
		p->dirty = false;
	}
	double midnight = now + until_midnight(p->wall()) + 0.01;
	return next >= 0 && next < midnight ? next : midnight;
}

static void *run(void *arg)
{
	struct poller *p = arg;
	while (!atomic_load(&p->stop)) {
		double deadline = poller_step(p);
		struct timespec ts = { (time_t)deadline,
				       (long)((deadline - (double)(time_t)deadline) * 1e9) };
		pthread_mutex_lock(&p->mu);
		if (!p->reload_requested && !atomic_load(&p->stop) && deadline > p->mono())
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		pthread_mutex_unlock(&p->mu);
	}
	if (p->state_dirty) /* stopped mid-round: keep what was paid for */
		save_state(p);
	return NULL;
}

void poller_prepare(struct poller *p)
{
	double mono = p->mono();
	for (size_t i = 0; i < p->set.n; i++)
		p->set.v[i].next = mono;
	load_state(p);
	publish(p);
	p->prepared = true;
}

int poller_start(struct poller *p)
{
	if (!p->prepared)
		poller_prepare(p);
	int rc = pthread_create(&p->thread, NULL, run, p);
	if (rc) {
		log_error("cannot start the poller thread", "error", strerror(rc));
		return -rc;
	}
	p->started = true;
	return 0;
}

void poller_reload(struct poller *p)
{
	pthread_mutex_lock(&p->mu);
	p->reload_requested = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void poller_stop(struct poller *p)
{
	if (!p->started)
		return;
	atomic_store(&p->stop, true);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	hc_wakeup(p->hc);
	pthread_join(p->thread, NULL);
	p->started = false;
}

int poller_run_once(struct poller *p, struct buf *out)
{
	p->once = true;
	load_state(p);
	for (size_t i = 0; i < p->set.n; i++) {
		struct source *s = &p->set.v[i];
		if (s->enabled && !s->def->after)
			refresh_chain(p, s);
	}
	if (p->state_dirty)
		save_state(p);
	int rc = 0;
	for (size_t i = 0; i < p->set.n; i++)
		if (p->set.v[i].enabled && !p->set.v[i].health.up)
			rc = -EIO;
	if (render_metrics(&p->set, p->conf, &p->info, p->wall(), out))
		rc = -ENOSPC;
	return rc;
}
