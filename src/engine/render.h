/*
 * render.h - what the engine publishes, built from the source table: the
 * /metrics exposition (every enabled source's families plus the exporter's
 * own), readiness, and the landing page's rows. Pure apart from reading the
 * AWS request counters (aws/apistats.h); poller thread.
 */
#ifndef BCE_RENDER_H
#define BCE_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"
#include "sources/source.h"

struct conf;

/* The exporter's own state that is not a source's. */
struct render_info {
	const char *telemetry_path;
	bool reload_ok;              /* the last configuration load succeeded */
	double reload_success_ts;    /* Unix seconds */
	double render_failures;      /* expositions that could not be rendered (counter) */
};

/*
 * Appends the exposition for @set under @c at wall time @now to @out.
 * Returns 0, or -ENOSPC when it does not fit @out's maximum (then @out is as
 * it was: an exposition is never cut).
 */
int render_metrics(const struct source_set *set, const struct conf *c,
		   const struct render_info *info, double now, struct buf *out);

/* Whether every enabled source has data; if not, *why (caller frees) says which. */
bool render_ready(const struct source_set *set, char **why);

/* The landing page (caller frees), its length in *len. */
char *render_landing(const struct source_set *set, const char *telemetry_path, size_t *len);

#endif
