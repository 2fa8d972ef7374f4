/*
 * poller.c - see poller.h.
 */
#include "poller.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_client.h"
#include "landing.h"
#include "log.h"
#include "metrics.h"
#include "projects.h"
#include "snapshot.h"
#include "state.h"

/* Each interval is stretched or shrunk by up to this fraction, at random. */
#define JITTER 0.1

struct poller {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool reload_requested; /* under mu */
	atomic_bool stop;

	char *config_path;
	struct conf *conf;
	struct exporter_state st;
	struct hc *hc;
	double next_projects; /* monotonic seconds */
};

/* Makes st.regions match conf->projects_regions, keeping data of regions that stay. */
static void sync_regions(struct poller *p)
{
	const struct strlist *want = &p->conf->projects_regions;
	struct region_state *regions = xcalloc(want->n ? want->n : 1, sizeof(*regions));
	for (size_t i = 0; i < want->n; i++) {
		regions[i].region = xstrdup(want->v[i]);
		for (size_t j = 0; j < p->st.nregions; j++) {
			struct region_state *old = &p->st.regions[j];
			if (old->region && strcmp(old->region, want->v[i]) == 0) {
				project_list_move(&regions[i].projects, &old->projects);
				regions[i].has_data = old->has_data;
				regions[i].last_error = old->last_error;
				old->last_error = NULL;
			}
		}
	}
	for (size_t j = 0; j < p->st.nregions; j++) {
		free(p->st.regions[j].region);
		project_list_free(&p->st.regions[j].projects);
		free(p->st.regions[j].last_error);
	}
	free(p->st.regions);
	p->st.regions = regions;
	p->st.nregions = want->n;
	p->st.conf = p->conf;
	p->st.projects.enabled = p->conf->projects_enabled;
}

struct poller *poller_new(struct conf *conf, const char *config_path, const char *telemetry_path)
{
	struct hc *hc = hc_new();
	if (!hc) {
		log_error("cannot initialise libcurl");
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
	p->config_path = xstrdup(config_path);
	p->conf = conf;
	p->st.telemetry_path = xstrdup(telemetry_path);
	p->st.projects.name = "projects";
	p->st.reload_ok = true;
	p->st.reload_success_ts = wall_now();
	sync_regions(p);
	return p;
}

void poller_free(struct poller *p)
{
	if (!p)
		return;
	for (size_t j = 0; j < p->st.nregions; j++) {
		free(p->st.regions[j].region);
		project_list_free(&p->st.regions[j].projects);
		free(p->st.regions[j].last_error);
	}
	free(p->st.regions);
	free(p->st.projects.last_error);
	free((char *)p->st.telemetry_path);
	conf_free(p->conf);
	hc_free(p->hc);
	free(p->config_path);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
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
	};
}

/* Logs a region's outcome once per change of state (complain once, then on recovery). */
static void note_region(struct region_state *rs, int rc, const char *err, size_t count)
{
	char n[32];
	snprintf(n, sizeof(n), "%zu", count);
	if (rc == 0) {
		if (rs->last_error)
			log_info("projects listing recovered", "region", rs->region, "projects", n);
		else
			log_debug("projects listed", "region", rs->region, "projects", n);
		free(rs->last_error);
		rs->last_error = NULL;
		return;
	}
	if (rs->last_error && strcmp(rs->last_error, err) == 0) {
		log_debug("projects listing still failing", "region", rs->region, "error", err);
		return;
	}
	log_warn("projects listing failed; serving the last good data", "region", rs->region,
		 "error", err);
	free(rs->last_error);
	rs->last_error = xstrdup(err);
}

/* Refreshes the projects source. Returns 0 if every region succeeded. */
static int refresh_projects(struct poller *p)
{
	struct source_state *s = &p->st.projects;
	struct hc_opts o = client_opts(p);
	double t0 = mono_now();
	char first_err[512] = "";
	int failed = 0;

	s->last_attempt = wall_now();
	for (size_t i = 0; i < p->st.nregions; i++) {
		struct region_state *rs = &p->st.regions[i];
		struct project_list fresh = { 0 };
		char err[512] = "";
		int rc = projects_list_region(p->hc, &o, p->conf, rs->region, &fresh, err, sizeof(err));
		if (rc == -ECANCELED)
			return rc;
		note_region(rs, rc, err, fresh.n);
		if (rc == 0) {
			project_list_move(&rs->projects, &fresh);
			rs->has_data = true;
		} else {
			if (!failed)
				snprintf(first_err, sizeof(first_err), "%s: %s", rs->region, err);
			failed++;
		}
	}
	s->last_duration = mono_now() - t0;
	s->up = failed == 0;
	free(s->last_error);
	s->last_error = failed ? xstrdup(first_err) : NULL;
	if (!failed) {
		s->last_success = wall_now();
		s->has_data = true;
	} else {
		/* ready once every region has data, even if from an earlier refresh */
		bool all = p->st.nregions > 0;
		for (size_t i = 0; i < p->st.nregions; i++)
			all = all && p->st.regions[i].has_data;
		s->has_data = all;
	}
	return failed ? -EIO : 0;
}

static void publish(struct poller *p)
{
	struct buf body;
	buf_init(&body, (size_t)1 << 30);
	if (metrics_render(&p->st, &body))
		log_error("exposition exceeds 1 GiB; serving what fits");
	size_t llen;
	char *landing = landing_render(&p->st, &llen);
	char *why = NULL;
	bool ready = metrics_ready(&p->st, &why);
	size_t len;
	char *plain = buf_steal(&body, &len);
	snapshot_publish(snapshot_new(plain, len, landing, llen, ready, why));
}

static double jittered(long interval)
{
	return (double)interval * (1.0 + JITTER * (2.0 * rand_unit() - 1.0));
}

static void reload(struct poller *p)
{
	struct strlist errors = { 0 };
	struct conf *c = conf_load(p->config_path, &errors);
	if (!c) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("configuration rejected, keeping the previous one", "error",
				  errors.v[i]);
		strlist_free(&errors);
		p->st.reload_ok = false;
		return;
	}
	struct conf *old = p->conf;
	p->conf = c;
	sync_regions(p);
	p->st.reload_ok = true;
	p->st.reload_success_ts = wall_now();
	conf_free(old);
	/* list again at once: regions, endpoint, auth or labels may have changed */
	p->next_projects = mono_now();
	log_info("configuration reloaded", "file", p->config_path);
}

static void *run(void *arg)
{
	struct poller *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop)) {
		if (p->reload_requested) {
			p->reload_requested = false;
			pthread_mutex_unlock(&p->mu);
			reload(p);
			publish(p);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		double now = mono_now();
		if (p->conf->projects_enabled && now >= p->next_projects) {
			pthread_mutex_unlock(&p->mu);
			int rc = refresh_projects(p);
			p->next_projects = mono_now() + jittered(p->conf->projects_refresh_interval);
			if (rc != -ECANCELED)
				publish(p);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		double deadline = p->conf->projects_enabled ? p->next_projects : now + 3600;
		struct timespec ts = { (time_t)deadline,
				       (long)((deadline - (double)(time_t)deadline) * 1e9) };
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int poller_start(struct poller *p)
{
	publish(p);
	p->next_projects = mono_now();
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
	pthread_join(p->thread, NULL);
	p->started = false;
}

int poller_run_once(struct poller *p, struct buf *out)
{
	int rc = 0;
	if (p->conf->projects_enabled && refresh_projects(p))
		rc = -EIO;
	if (metrics_render(&p->st, out))
		rc = -ENOSPC;
	return rc;
}
