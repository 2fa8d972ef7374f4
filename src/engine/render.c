/*
 * render.c - see render.h. The families defined here are the exporter's
 * own; each source defines and collects its own families (sources/).
 */
#include "engine/render.h"

#include <stdio.h>
#include <stdlib.h>

#include "aws/apistats.h"
#include "aws/http_client.h"
#include "base/version.h"
#include "config/conf.h"
#include "model/registry.h"
#include "serve/landing.h"
#include "serve/server.h"

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
	"When the source's last finished refresh started (Unix seconds; 0 = never).",
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
static const struct metric_def m_render_failures = {
	"bedrock_cost_exporter_render_failures_total", METRIC_COUNTER,
	"Expositions that could not be rendered (larger than the limit); the previous snapshot "
	"stays served.",
};
static const struct metric_def m_requests = {
	"bedrock_cost_exporter_api_requests_total", METRIC_COUNTER,
	"HTTP requests sent to AWS APIs, retries included, by API and operation.",
};
static const struct metric_def m_errors = {
	"bedrock_cost_exporter_api_request_errors_total", METRIC_COUNTER,
	"AWS API requests that failed, by reason: throttled (429/throttling), auth (401/403), "
	"client (other 4xx), server (5xx), timeout, network, parse (unusable or oversized body).",
};
static const struct metric_def m_retries = {
	"bedrock_cost_exporter_api_retries_total", METRIC_COUNTER,
	"AWS API requests retried after a throttle, 5xx, timeout or network error.",
};

static const struct metric_def m_shard = {
	"bedrock_cost_exporter_shard_ordinal", METRIC_GAUGE,
	"This instance's shard (--shard): it serves the organization's accounts whose id hashes "
	"to it.",
};
static const struct metric_def m_total_shards = {
	"bedrock_cost_exporter_total_shards", METRIC_GAUGE,
	"Number of shards the organization's accounts are split between (--total-shards).",
};

static void collect_api_stats(struct reg *r)
{
	for (api_op i = 0; i < apistats_count(); i++) {
		const char *api = apistats_api_name(i);
		const char *op = apistats_operation_name(i);
		reg_addv(r, &m_requests, apistats_requests(i), "api", api, "operation", op, (char *)0);
		reg_addv(r, &m_retries, apistats_retries(i), "api", api, "operation", op, (char *)0);
		for (int j = 0; j < REASON_COUNT; j++)
			reg_addv(r, &m_errors, apistats_errors(i, (enum api_reason)j), "api", api,
				 "operation", op, "reason", apistats_reason_name((enum api_reason)j),
				 (char *)0);
	}
}

static void collect_health(const struct source *s, struct reg *r)
{
	const char *n = s->def->name;
	const struct source_health *h = &s->health;
	reg_addv(r, &m_source_up, h->up ? 1 : 0, "source", n, (char *)0);
	reg_addv(r, &m_last_success, h->last_success, "source", n, (char *)0);
	reg_addv(r, &m_last_attempt, h->last_attempt, "source", n, (char *)0);
	reg_addv(r, &m_refresh_duration, h->last_duration, "source", n, (char *)0);
}

int render_metrics(const struct source_set *set, const struct conf *c,
		   const struct render_info *info, double now, struct buf *out)
{
	struct reg *r = reg_new();
	char mhd[32];
	snprintf(mhd, sizeof(mhd), "%s", server_library_version());
	reg_addv(r, &m_build_info, 1, "version", BCE_VERSION, "revision", BCE_REVISION, "libcurl",
		 hc_library_version(), "libmicrohttpd", mhd, (char *)0);
	reg_addv(r, &m_reload_ok, info->reload_ok ? 1 : 0, (char *)0);
	reg_addv(r, &m_reload_ts, info->reload_success_ts, (char *)0);
	reg_addv(r, &m_render_failures, info->render_failures, (char *)0);
	reg_addv(r, &m_shard, (double)c->shard, (char *)0);
	reg_addv(r, &m_total_shards, (double)c->total_shards, (char *)0);
	collect_api_stats(r);
	for (size_t i = 0; i < set->n; i++) {
		const struct source *s = &set->v[i];
		if (!s->enabled)
			continue;
		collect_health(s, r);
		struct collect_ctx x = { c, now, set, &s->health };
		s->def->collect(s->priv, &x, r);
	}
	int rc = reg_render(r, out, NULL);
	reg_free(r);
	return rc;
}

bool render_ready(const struct source_set *set, char **why)
{
	struct buf b;
	buf_init(&b, 1024 * 1024);
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].enabled && !set->v[i].health.has_data)
			buf_printf(&b, "%s%s", b.len ? ", " : "", set->v[i].def->name);
	bool ready = b.len == 0;
	if (!ready && why)
		*why = xasprintf("Not ready: waiting for the first successful refresh of: %s\n", b.data);
	buf_free(&b);
	return ready;
}

char *render_landing(const struct source_set *set, const char *telemetry_path, size_t *len)
{
	struct landing_source *rows = xcalloc(set->n + 1, sizeof(*rows));
	size_t n = 0;
	for (size_t i = 0; i < set->n; i++) {
		const struct source *s = &set->v[i];
		if (!s->enabled)
			continue;
		rows[n++] = (struct landing_source){
			.name = s->def->name,
			.state = s->health.up ? "up"
				 : s->health.last_attempt > 0 || s->health.last_error ? "down"
				 : "starting",
			.last_success = s->health.last_success,
			.last_error = s->health.last_error,
		};
	}
	char *page = landing_render(telemetry_path, rows, n, len);
	free(rows);
	return page;
}
