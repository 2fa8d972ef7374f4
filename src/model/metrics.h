/*
 * metrics.h - renders an exporter_state into the Prometheus text format.
 * This is where every metric family is named and documented (the table at
 * the top of metrics.c). Pure: no clock, no I/O. Poller thread.
 */
#ifndef BCE_METRICS_H
#define BCE_METRICS_H

#include "model/state.h"
#include "base/util.h"

/* Appends the exposition for @st to @out. Returns 0 or -ENOSPC. */
int metrics_render(const struct exporter_state *st, struct buf *out);

/* Whether every enabled source has data; if not, *why (caller frees) says which. */
bool metrics_ready(const struct exporter_state *st, char **why);

#endif
