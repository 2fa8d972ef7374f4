/*
 * metrics.c - see metrics.h.
 */
#include "metrics.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apistats.h"
#include "registry.h"
#include "strmap.h"
#include "version.h"

static const struct metric_def m_project_info = {
	"bedrock_cost_project_info", METRIC_GAUGE,
	"Bedrock project from the Projects API (bedrock-mantle), value 1; one tag_<key> label per "
	"projects.tag_labels entry. Refreshed every projects.refresh_interval seconds.",
};
static const struct metric_def m_project_tag_info = {
	"bedrock_cost_project_tag_info", METRIC_GAUGE,
	"Every tag of every Bedrock project, raw key and value, value 1. From the Projects API.",
};
static const struct metric_def m_project_created = {
	"bedrock_cost_project_created_timestamp_seconds", METRIC_GAUGE,
	"When the Bedrock project was created (Unix seconds), from the Projects API.",
};
static const struct metric_def m_projects = {
	"bedrock_cost_projects", METRIC_GAUGE,
	"Number of Bedrock projects per region and status, from the Projects API (quota: 1,000 "
	"per region).",
};
static const struct metric_def m_build_info = {
	"bedrock_cost_exporter_build_info", METRIC_GAUGE,
	"Version and libraries of this bedrock-cost-exporter, value 1.",
};
static const struct metric_def m_source_up = {
	"bedrock_cost_exporter_source_up", METRIC_GAUGE,
	"1 if the last refresh of the source succeeded, 0 if it failed or has not run; the last "
	"good data is still served.",
};
static const struct metric_def m_last_success = {
	"bedrock_cost_exporter_last_success_timestamp_seconds", METRIC_GAUGE,
	"When the source last refreshed successfully (Unix seconds; 0 = never).",
};
static const struct metric_def m_last_attempt = {
	"bedrock_cost_exporter_last_attempt_timestamp_seconds", METRIC_GAUGE,
	"When the source last tried to refresh (Unix seconds; 0 = never).",
};
static const struct metric_def m_refresh_duration = {
	"bedrock_cost_exporter_refresh_duration_seconds", METRIC_GAUGE,
	"Wall time of the source's last refresh, retries included.",
};
static const struct metric_def m_reload_ok = {
	"bedrock_cost_exporter_config_last_reload_successful", METRIC_GAUGE,
	"1 if the last configuration load (start or SIGHUP) succeeded; 0 if it was rejected and the "
	"previous configuration kept.",
};
static const struct metric_def m_reload_ts = {
	"bedrock_cost_exporter_config_last_reload_success_timestamp_seconds", METRIC_GAUGE,
	"When the configuration was last loaded successfully (Unix seconds).",
};

static void collect_projects(const struct exporter_state *st, struct reg *r)
{
	const struct conf *c = st->conf;
	size_t ntl = c->projects_tag_labels.n;
	size_t nl = 5 + ntl;
	const char **names = xcalloc(nl, sizeof(*names));
	const char **values = xcalloc(nl, sizeof(*values));
	names[0] = "region";
	names[1] = "project_id";
	names[2] = "project_name";
	names[3] = "project_arn";
	names[4] = "status";
	for (size_t k = 0; k < ntl; k++)
		names[5 + k] = c->projects_tag_label_names.v[k];

	for (size_t i = 0; i < st->nregions; i++) {
		const struct region_state *rs = &st->regions[i];
		if (!rs->has_data)
			continue;
		/* count per status; active and archived always exist, others as seen */
		struct strmap *idx = strmap_new();
		const char **status = xcalloc(rs->projects.n + 2, sizeof(*status));
		size_t *count = xcalloc(rs->projects.n + 2, sizeof(*count));
		size_t nstatus = 0;
		status[nstatus++] = "active";
		status[nstatus++] = "archived";
		strmap_put(idx, "active", (void *)(uintptr_t)1);
		strmap_put(idx, "archived", (void *)(uintptr_t)2);
		for (size_t j = 0; j < rs->projects.n; j++) {
			const struct project *p = &rs->projects.v[j];
			values[0] = rs->region;
			values[1] = p->id;
			values[2] = p->name;
			values[3] = p->arn;
			values[4] = p->status;
			for (size_t k = 0; k < ntl; k++) {
				const char *v = project_tag(p, c->projects_tag_labels.v[k]);
				values[5 + k] = v ? v : "";
			}
			reg_add(r, &m_project_info, 1, nl, names, values);
			reg_addv(r, &m_project_created, p->created_at, "region", rs->region,
				 "project_id", p->id, (char *)0);
			for (size_t t = 0; t < p->ntags; t++)
				reg_addv(r, &m_project_tag_info, 1, "region", rs->region, "project_id",
					 p->id, "key", p->tags[t].key, "value", p->tags[t].value,
					 (char *)0);
			uintptr_t slot = (uintptr_t)strmap_get(idx, p->status, NULL);
			if (!slot) {
				status[nstatus] = p->status;
				slot = ++nstatus;
				strmap_put(idx, p->status, (void *)slot);
			}
			count[slot - 1]++;
		}
		for (size_t j = 0; j < nstatus; j++)
			reg_addv(r, &m_projects, (double)count[j], "region", rs->region, "status",
				 status[j], (char *)0);
		strmap_free(idx);
		free(status);
		free(count);
	}
	free(names);
	free(values);
}

static void collect_source(const struct source_state *s, struct reg *r)
{
	if (!s->enabled)
		return;
	reg_addv(r, &m_source_up, s->up ? 1 : 0, "source", s->name, (char *)0);
	reg_addv(r, &m_last_success, s->last_success, "source", s->name, (char *)0);
	reg_addv(r, &m_last_attempt, s->last_attempt, "source", s->name, (char *)0);
	reg_addv(r, &m_refresh_duration, s->last_duration, "source", s->name, (char *)0);
}

int metrics_render(const struct exporter_state *st, struct buf *out)
{
	struct reg *r = reg_new();
	char mhd[32];
	snprintf(mhd, sizeof(mhd), "%s", MHD_get_version());
	reg_addv(r, &m_build_info, 1, "version", BCE_VERSION, "revision", BCE_REVISION, "libcurl",
		 curl_version_info(CURLVERSION_NOW)->version, "libmicrohttpd", mhd, (char *)0);
	collect_source(&st->projects, r);
	reg_addv(r, &m_reload_ok, st->reload_ok ? 1 : 0, (char *)0);
	reg_addv(r, &m_reload_ts, st->reload_success_ts, (char *)0);
	apistats_collect(r);
	if (st->projects.enabled)
		collect_projects(st, r);
	int rc = reg_render(r, out, NULL);
	reg_free(r);
	return rc;
}

bool metrics_ready(const struct exporter_state *st, char **why)
{
	if (st->projects.enabled && !st->projects.has_data) {
		if (why)
			*why = xstrdup("waiting for the first successful refresh of: projects");
		return false;
	}
	return true;
}
