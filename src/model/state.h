/*
 * state.h - what the exporter knows: the last good data of every source and
 * the health of each. Owned and written by the poller thread only (or main
 * under --once); rendered by the same thread into a snapshot, so it is never
 * shared with the HTTP threads.
 */
#ifndef BCE_STATE_H
#define BCE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config/conf.h"
#include "sources/cost_explorer.h"
#include "sources/projects.h"

struct source_state {
	const char *name;     /* the `source` label */
	bool enabled;
	bool up;              /* the last refresh succeeded */
	bool has_data;        /* some refresh succeeded */
	double last_success;  /* Unix seconds; 0 = never */
	double last_attempt;
	double last_duration; /* seconds */
	char *last_error;     /* NULL while up */
};

struct region_state {
	char *region;
	struct project_list projects; /* last good listing */
	bool has_data;
	char *last_error;     /* for complain-once logging */
};

struct exporter_state {
	const struct conf *conf; /* borrowed */
	const char *telemetry_path;
	double now;              /* wall clock of the render: the windows' "today" */
	struct source_state projects;
	struct source_state costs;       /* source="cost_explorer" */
	struct source_state forecast;
	struct source_state alloc_tags;  /* source="allocation_tags" */
	struct region_state *regions;
	size_t nregions;
	struct ce_source ce;
	bool reload_ok;
	double reload_success_ts;
};

#endif
