/*
 * landing.h - the HTML landing page served at "/": name, version, a link to
 * the metrics, and the state of each source. Rendered by the poller into the
 * snapshot, never per request. Pure.
 */
#ifndef BCE_LANDING_H
#define BCE_LANDING_H

#include <stddef.h>
#include "model/state.h"

/* Returns the page (caller frees) and its length in *len. */
char *landing_render(const struct exporter_state *st, size_t *len);

#endif
