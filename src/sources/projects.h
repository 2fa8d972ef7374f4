/*
 * projects.h - the source "projects": every Bedrock project of every
 * configured region, listed every projects.refresh_interval seconds through
 * the Projects API (projects_api.h), and the families that describe them
 * (bedrock_cost_project_info, _project_tag_info, _project_created_timestamp_seconds,
 * bedrock_cost_projects).
 *
 * A region that fails keeps its last good listing; each region's failure is
 * logged once and its recovery once. Poller thread.
 */
#ifndef BCE_PROJECTS_H
#define BCE_PROJECTS_H

#include "model/project.h"
#include "sources/source.h"

extern const struct source_def projects_source;

/* The catalog of the projects source's private state @priv (from source_peer). */
const struct project_catalog *projects_catalog(const void *priv);

#endif
