/*
 * attribution.h - turns Cost Explorer's tag-grouped daily spend into spend
 * per project, per tag value and per model, over the reporting windows.
 * Pure: no clock (today is passed in), no I/O; thread-safe.
 *
 * A group's attribution-tag values are matched against every listed
 * project's tags (a missing tag counts as ""):
 *   - all values empty                 -> __untagged__ (default project, untagged use)
 *   - exactly one project has them     -> that project
 *   - no project has them              -> __unmatched__
 *   - several projects have them       -> __ambiguous__ (and the combination is listed)
 * so the sum over project_id always equals Cost Explorer's total.
 */
#ifndef BCE_ATTRIBUTION_H
#define BCE_ATTRIBUTION_H

#include <stdbool.h>
#include <stddef.h>

#include "base/days.h"
#include "base/textlist.h"
#include "model/ce_series.h"
#include "model/project.h"

#define ATTR_UNTAGGED "__untagged__"
#define ATTR_UNMATCHED "__unmatched__"
#define ATTR_AMBIGUOUS "__ambiguous__"

struct attr_row {
	char *project_id;
	double v[WIN_COUNT]; /* WIN_BASELINE holds the daily mean */
};

struct attr_tag {
	char *key;
	char *value;
	double v[WIN_COUNT];
};

struct attr_ambiguous {
	char *value; /* "Application=X,Environment=Y" */
	size_t projects;
};

struct model_row {
	char *service;
	char *usage_type;
	char *model;
	const char *token_type;
	double yesterday;
	double month_to_date;
};

struct attribution {
	struct attr_row *rows; /* every listed project but "default", then the reserved rows */
	size_t nrows;
	struct attr_tag *tags; /* every tag_labels key x value, plus __untagged__ */
	size_t ntags;
	struct attr_ambiguous *ambiguous;
	size_t nambiguous;
	struct model_row *models;
	size_t nmodels;
	double total[WIN_COUNT];
	bool present[WIN_COUNT];   /* the window's spend is known (input spend[w] given) */
	bool estimated[WIN_COUNT]; /* a period of the window is Estimated, or a day is not covered */
};

struct attr_input {
	const struct project *const *projects; /* every listed project, all regions */
	size_t nprojects;
	const struct textlist *keys;       /* cost_explorer.attribution_tags */
	const struct textlist *tag_labels; /* projects.tag_labels */
	const struct ce_series *models;   /* grouped by SERVICE, USAGE_TYPE; may be NULL */
	long today;
	/*
	 * Spend grouped by the attribution tags, per window: the periods of spend[w] that lie
	 * within window w are summed (WIN_BASELINE is then divided by BASELINE_DAYS). One
	 * daily series may serve every window, or each window its own query's periods
	 * (DAILY days, a MONTHLY period). NULL: the window's spend is not known; its values
	 * are 0 and present[w] is false.
	 */
	const struct ce_series *spend[WIN_COUNT];
	/* The days a window's spend covers when they differ from the window's own (a baseline
	 * read the day before): [from[w], to[w]); both 0 = the window's own days. */
	long from[WIN_COUNT], to[WIN_COUNT];
};

/* The same series for every window (a daily series covering them all). */
void attribution_spend_all(struct attr_input *in, const struct ce_series *daily);

/* Fills @out (caller frees with attribution_free). */
void attribution_compute(const struct attr_input *in, struct attribution *out);
void attribution_free(struct attribution *a);

/*
 * Where spend with attribution-tag values (@a, @b) goes, as attribution_compute decides it:
 * a project's id, or ATTR_UNTAGGED, ATTR_UNMATCHED or ATTR_AMBIGUOUS. For breakdowns that
 * are not windows (a project's principals, its line item types). The index borrows
 * in->projects and their tags: they must outlive it.
 */
struct attr_owner;
struct attr_owner *attr_owner_new(const struct attr_input *in);
const char *attr_owner_of(const struct attr_owner *o, const char *a, const char *b);
void attr_owner_free(struct attr_owner *o);

#endif
