/*
 * landing.h - the HTML landing page served at "/": name, version, a link to
 * the metrics, and the state of each source. Rendered by the poller into the
 * snapshot, never per request. Pure.
 */
#ifndef BCE_LANDING_H
#define BCE_LANDING_H

#include <stddef.h>

/* One row of the sources table. */
struct landing_source {
	const char *name;
	const char *state;       /* "up", "down", "starting" */
	double last_success;     /* Unix seconds; 0 = never */
	const char *last_error;  /* NULL or "" = none */
};

/* Returns the page (caller frees) and its length in *len. */
char *landing_render(const char *telemetry_path, const struct landing_source *sources, size_t n,
		     size_t *len);

#endif
