/*
 * table.c - the source table: every source the daemon runs, in the order
 * they refresh when due together (the accounts first, whose projects are listed and
 * whose spend is asked for; the projects next, so a first cost
 * refresh already has projects to attribute spend to; cloudwatch after
 * cost_explorer, whose bill prices its tokens). Adding a source is a
 * new file beside this one and a row here.
 */
#include "sources/source.h"

#include "sources/accounts.h"
#include "sources/allocation_tags.h"
#include "sources/cloudwatch.h"
#include "sources/cost_explorer.h"
#include "sources/data_exports.h"
#include "sources/forecast.h"
#include "sources/projects.h"

const struct source_def *const source_table[] = {
	&accounts_source,
	&projects_source,
	&cost_explorer_source,
	&data_exports_source,
	&forecast_source,
	&allocation_tags_source,
	&cloudwatch_source,
	NULL,
};
