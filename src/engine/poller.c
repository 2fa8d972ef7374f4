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
#include "base/days.h"
#include "aws/http_client.h"
#include "serve/landing.h"
#include "base/log.h"
#include "model/metrics.h"
#include "sources/projects.h"
#include "serve/snapshot.h"
#include "model/state.h"
#include "engine/statefile.h"

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
	struct aws_provider *creds;
	/* when each source is due, monotonic seconds */
	double next_projects;
	double next_costs;
	double next_tags;
	long rendered_day;    /* UTC day of the last render: re-render at midnight */
	char *state_error;    /* last state-file write error, for complain-once */
	struct statefile_writer state_writer; /* lets an unchanged state file go unwritten */
	bool budgets_checked; /* unmatched project budgets warned for this config */
	bool prepared;        /* state loaded, first snapshot published */
	bool state_dirty;     /* cost data changed since the state file was written */
};

/* After a failed Cost Explorer refresh, try again this soon (or at the interval). */
#define CE_RETRY_AFTER_FAILURE 900.0

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
	if (p->conf->projects_auth == AUTH_API_KEY)
		warn_if_world_readable(p->conf->projects_api_key_file, "projects.api_key_file");
	p->st.projects.enabled = p->conf->projects_enabled;
	p->st.costs.enabled = p->conf->ce_enabled;
	p->st.forecast.enabled = p->conf->ce_enabled && p->conf->ce_forecast;
	p->st.alloc_tags.enabled = p->conf->ce_enabled;
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
	p->creds = aws_provider_new();
	p->config_path = xstrdup(config_path);
	p->conf = conf;
	p->st.telemetry_path = xstrdup(telemetry_path);
	p->st.projects.name = "projects";
	p->st.costs.name = "cost_explorer";
	p->st.forecast.name = "forecast";
	p->st.alloc_tags.name = "allocation_tags";
	p->rendered_day = days_of_time(wall_now());
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
	free(p->st.costs.last_error);
	free(p->st.forecast.last_error);
	free(p->st.alloc_tags.last_error);
	ce_source_free(&p->st.ce);
	aws_provider_free(p->creds);
	free(p->state_error);
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
	if (same_failure(rs->last_error, err)) {
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
	struct aws_creds creds = { 0 };
	char cerr[512] = "";
	int crc = p->conf->projects_auth == AUTH_SIGV4
			  ? aws_provider_get(p->creds, p->hc, &o, p->conf, wall_now(), &creds, cerr,
					     sizeof(cerr))
			  : 0;
	if (crc == -ECANCELED)
		return crc;
	for (size_t i = 0; i < p->st.nregions; i++) {
		struct region_state *rs = &p->st.regions[i];
		struct project_list fresh = { 0 };
		char err[512] = "";
		int rc;
		if (crc) {
			snprintf(err, sizeof(err), "AWS credentials: %s", cerr);
			rc = -EACCES;
		} else {
			rc = projects_list_region(p->hc, &o, p->conf,
						  p->conf->projects_auth == AUTH_SIGV4 ? &creds : NULL,
						  rs->region, &fresh, err, sizeof(err));
		}
		if (rc == -EIO && strstr(err, "(auth)"))
			aws_provider_invalidate(p->creds);
		if (rc == -ECANCELED) {
			awscreds_clear(&creds);
			return rc;
		}
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
	awscreds_clear(&creds);
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

static double jittered(long interval)
{
	return (double)interval * (1.0 + JITTER * (2.0 * rand_unit() - 1.0));
}

/* Complain once per change of a source's outcome; note recovery. */
static void note_source(struct source_state *s, int rc, const char *err, double started)
{
	s->last_duration = mono_now() - started;
	if (rc == 0) {
		if (s->last_error)
			log_info("source recovered", "source", s->name);
		free(s->last_error);
		s->last_error = NULL;
		s->up = true;
		s->has_data = true;
		s->last_success = wall_now();
		return;
	}
	s->up = false;
	if (same_failure(s->last_error, err)) {
		log_debug("source still failing", "source", s->name, "error", err);
		return;
	}
	log_warn("refresh failed; serving the last good data", "source", s->name, "error", err);
	free(s->last_error);
	s->last_error = xstrdup(err);
}

static void save_state(struct poller *p)
{
	const char *path = p->conf->state_file;
	p->state_dirty = false;
	if (!*path)
		return;
	char err[512] = "";
	int rc = statefile_save(&p->state_writer, path, &p->st.ce, p->st.regions, p->st.nregions,
				wall_now(), err, sizeof(err));
	if (rc) {
		if (!same_failure(p->state_error, err))
			log_warn("cannot write the state file; a restart will query Cost Explorer again",
				 "error", err);
		free(p->state_error);
		p->state_error = xstrdup(err);
	} else if (p->state_error) {
		log_info("state file written again", "file", path);
		free(p->state_error);
		p->state_error = NULL;
	}
}

static struct ce_ctx ce_context(struct poller *p, const struct hc_opts *o)
{
	return (struct ce_ctx){ .hc = p->hc, .opts = o, .creds = p->creds, .conf = p->conf,
				.src = &p->st.ce, .now = wall_now() };
}

/* Seconds from @now until the next UTC midnight. */
static double until_midnight(double now)
{
	return days_start_time(days_of_time(now) + 1) - now;
}

/* Refreshes costs, then the forecast. Returns -ECANCELED when stopped. */
static int refresh_costs(struct poller *p)
{
	struct hc_opts o = client_opts(p);
	struct ce_ctx x = ce_context(p, &o);
	char err[512] = "";
	double t0 = mono_now();
	p->st.costs.last_attempt = wall_now();
	int rc = ce_refresh_costs(&x, err, sizeof(err));
	if (rc == -ECANCELED)
		return rc;
	note_source(&p->st.costs, rc, err, t0);
	double now = wall_now();
	if (rc == 0)
		p->next_costs = mono_now() + jittered(p->conf->ce_refresh_interval);
	else if (rc == -EDQUOT)
		p->next_costs = mono_now() + until_midnight(now) + 60 * rand_unit();
	else
		p->next_costs = mono_now() + (p->conf->ce_refresh_interval < CE_RETRY_AFTER_FAILURE
						      ? jittered(p->conf->ce_refresh_interval)
						      : CE_RETRY_AFTER_FAILURE * (1 + rand_unit() * JITTER));
	if (p->conf->ce_forecast && rc == 0) { /* a failed cost refresh pays for no forecast */
		t0 = mono_now();
		x.now = wall_now();
		p->st.forecast.last_attempt = x.now;
		int frc = ce_refresh_forecast(&x, err, sizeof(err));
		if (frc == -ECANCELED)
			return frc;
		note_source(&p->st.forecast, frc, err, t0);
	}
	p->state_dirty = true;
	return 0;
}

static int refresh_tags(struct poller *p)
{
	struct hc_opts o = client_opts(p);
	struct ce_ctx x = ce_context(p, &o);
	char err[512] = "";
	double t0 = mono_now();
	p->st.alloc_tags.last_attempt = wall_now();
	int rc = ce_refresh_allocation_tags(&x, err, sizeof(err));
	if (rc == -ECANCELED)
		return rc;
	note_source(&p->st.alloc_tags, rc, err, t0);
	p->next_tags = mono_now() + (rc == 0 ? jittered(p->conf->ce_allocation_tags_interval)
					     : CE_RETRY_AFTER_FAILURE * (1 + rand_unit() * JITTER));
	if (rc == 0)
		p->state_dirty = true;
	return 0;
}

/* Warns once per configuration about project budgets naming no listed project. */
static void check_budgets(struct poller *p)
{
	if (p->budgets_checked || !p->st.projects.has_data)
		return;
	p->budgets_checked = true;
	for (size_t i = 0; i < p->conf->budgets.n; i++) {
		const struct budget *b = &p->conf->budgets.v[i];
		if (!b->project)
			continue;
		bool found = false;
		for (size_t r = 0; r < p->st.nregions && !found; r++)
			for (size_t j = 0; j < p->st.regions[r].projects.n && !found; j++) {
				const struct project *pr = &p->st.regions[r].projects.v[j];
				found = strcmp(pr->id, b->project) == 0 || strcmp(pr->name, b->project) == 0;
			}
		if (!found)
			log_warn("budget names no listed project (by name or id); it is not exported",
				 "project", b->project);
	}
}

static void publish(struct poller *p)
{
	struct buf body;
	buf_init(&body, (size_t)1 << 30);
	p->st.now = wall_now();
	p->rendered_day = days_of_time(p->st.now);
	if (metrics_render(&p->st, &body))
		log_error("exposition exceeds 1 GiB; serving what fits");
	size_t llen;
	char *landing = landing_render(&p->st, &llen);
	char *why = NULL;
	bool ready = metrics_ready(&p->st, &why);
	size_t len;
	char *plain = buf_steal(&body, &len);
	snapshot_publish(snapshot_new(plain, len, landing, llen, ready, why));
	/* parsing and rendering freed a lot; give it back instead of holding the peak */
	malloc_trim(0);
}

/* Restores the state file; schedules the cost sources after the restored data's age. */
static void load_state(struct poller *p)
{
	const char *path = p->conf->state_file;
	if (!*path || !p->conf->ce_enabled)
		return;
	char err[512] = "";
	int rc = statefile_load(path, &p->st.ce, p->st.regions, p->st.nregions, err, sizeof(err));
	if (rc == -ENOENT) {
		log_info("no state file yet; it is written after the first refresh", "file", path);
		return;
	}
	if (rc) {
		log_warn("state file ignored; starting afresh", "error", err);
		return;
	}
	double now = wall_now(), mono = mono_now();
	struct ce_source *ce = &p->st.ce;
	char *want = ce_spend_signature(p->conf, &ce->services);
	bool same = ce->spend_sig && strcmp(want, ce->spend_sig) == 0;
	free(want);
	for (size_t r = 0; r < p->st.nregions; r++)
		if (p->st.regions[r].has_data)
			p->st.projects.has_data = true;
	if (same && ce->costs_at > 0 && ce->costs_at <= now) {
		p->st.costs.has_data = true;
		p->st.costs.up = true; /* restored data is good data; the next refresh may say otherwise */
		p->st.costs.last_success = ce->costs_at;
		double due = ce->costs_at + (double)p->conf->ce_refresh_interval - now;
		p->next_costs = mono + (due > 0 ? due : 0);
	} else {
		log_info("state file's cost data was queried with another configuration; querying again");
	}
	if (ce->has_forecast && ce->forecast_at > 0) {
		p->st.forecast.has_data = true;
		p->st.forecast.up = true;
		p->st.forecast.last_success = ce->forecast_at;
	}
	if (ce->tags_at > 0 && ce->tags_at <= now) {
		p->st.alloc_tags.has_data = true;
		p->st.alloc_tags.up = true;
		p->st.alloc_tags.last_success = ce->tags_at;
		double due = ce->tags_at + (double)p->conf->ce_allocation_tags_interval - now;
		p->next_tags = mono + (due > 0 ? due : 0);
	}
	char n[32];
	snprintf(n, sizeof(n), "%ld", ce_requests_remaining(ce, p->conf, now));
	log_info("state restored", "file", path, "cost_explorer_requests_left_today", n);
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
	char *old_sig = ce_spend_signature(old, &p->st.ce.services);
	char *new_sig = ce_spend_signature(c, &p->st.ce.services);
	bool ce_changed = strcmp(old_sig, new_sig) != 0 || old->ce_enabled != c->ce_enabled ||
			  strcmp(old->ce_endpoint, c->ce_endpoint) != 0 ||
			  !strlist_equal(&old->ce_services, &c->ce_services);
	free(old_sig);
	free(new_sig);
	p->conf = c;
	sync_regions(p);
	aws_provider_invalidate(p->creds); /* aws.* may have changed */
	p->st.reload_ok = true;
	p->st.reload_success_ts = wall_now();
	p->budgets_checked = false;
	conf_free(old);
	/* list again at once: regions, endpoint, auth or labels may have changed */
	p->next_projects = mono_now();
	if (ce_changed) {
		p->next_costs = mono_now();
		p->next_tags = mono_now();
	}
	log_info("configuration reloaded", "file", p->config_path);
}

/* Is any source due at @now (monotonic)? */
static bool any_due(const struct poller *p, double now)
{
	const struct conf *c = p->conf;
	return (c->projects_enabled && now >= p->next_projects) ||
	       (c->ce_enabled && (now >= p->next_costs || now >= p->next_tags));
}

/*
 * The loop refreshes whichever source is due, one at a time. Sources due at
 * the same moment (at start, after a reload) are refreshed back to back and
 * then published, and the state file written, once: each publish renders and
 * compresses the whole exposition, which at 1,000 projects costs more than
 * attributing the spend.
 */
static void *run(void *arg)
{
	struct poller *p = arg;
	bool dirty = false; /* something changed that is not published yet */
	pthread_mutex_lock(&p->mu);
	while (!atomic_load(&p->stop)) {
		if (p->reload_requested) {
			p->reload_requested = false;
			pthread_mutex_unlock(&p->mu);
			reload(p);
			dirty = true;
			pthread_mutex_lock(&p->mu);
			continue;
		}
		double now = mono_now();
		const struct conf *c = p->conf;
		int rc = 0;
		bool work = true;
		pthread_mutex_unlock(&p->mu);
		if (c->projects_enabled && now >= p->next_projects) {
			rc = refresh_projects(p);
			p->next_projects = mono_now() + jittered(c->projects_refresh_interval);
			/* the state file is written with each cost refresh (projects included);
			 * writing it every few minutes for the free listing would cost CPU for nothing */
			check_budgets(p);
		} else if (c->ce_enabled && now >= p->next_costs) {
			rc = refresh_costs(p);
		} else if (c->ce_enabled && now >= p->next_tags) {
			rc = refresh_tags(p);
		} else if (days_of_time(wall_now()) != p->rendered_day) {
			log_debug("UTC midnight: windows move");
		} else {
			work = false;
		}
		if (work && rc != -ECANCELED)
			dirty = true;
		if (dirty && rc != -ECANCELED && !any_due(p, mono_now())) {
			if (p->state_dirty)
				save_state(p);
			publish(p);
			dirty = false;
		}
		pthread_mutex_lock(&p->mu);
		if (work)
			continue;
		/* sleep until the next source is due, or midnight, or a signal */
		double deadline = now + until_midnight(wall_now()) + 0.01;
		if (c->projects_enabled && p->next_projects < deadline)
			deadline = p->next_projects;
		if (c->ce_enabled && p->next_costs < deadline)
			deadline = p->next_costs;
		if (c->ce_enabled && p->next_tags < deadline)
			deadline = p->next_tags;
		struct timespec ts = { (time_t)deadline,
				       (long)((deadline - (double)(time_t)deadline) * 1e9) };
		if (!p->reload_requested && !atomic_load(&p->stop))
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	if (p->state_dirty) /* stopped mid-round: keep what was paid for */
		save_state(p);
	return NULL;
}

void poller_prepare(struct poller *p)
{
	double mono = mono_now();
	p->next_projects = p->next_costs = p->next_tags = mono;
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
	int rc = 0;
	load_state(p);
	if (p->conf->projects_enabled && refresh_projects(p))
		rc = -EIO;
	if (p->conf->ce_enabled) {
		refresh_costs(p);
		refresh_tags(p);
		if (!p->st.costs.up || !p->st.alloc_tags.up || (p->conf->ce_forecast && !p->st.forecast.up))
			rc = -EIO;
	}
	if (p->state_dirty)
		save_state(p);
	p->st.now = wall_now();
	if (metrics_render(&p->st, out))
		rc = -ENOSPC;
	return rc;
}
