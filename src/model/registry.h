/*
 * registry.h - a set of metric families and samples, rendered once into the
 * Prometheus text format.
 *
 * A registry is built by one thread, rendered, and freed; it is never shared.
 * Guarantees of reg_render(): families sorted by name and contiguous, each
 * with HELP and TYPE; samples sorted by their label set; a repeated series
 * (same family and labels) is dropped and counted, never written twice;
 * invalid metric or label names never reach the output; no timestamps.
 */
#ifndef BCE_REGISTRY_H
#define BCE_REGISTRY_H

#include <stddef.h>
#include "base/util.h"

enum metric_type { METRIC_GAUGE, METRIC_COUNTER };

/* A family definition. Usually static const tables in the caller. */
struct metric_def {
	const char *name;
	enum metric_type type;
	const char *help;
};

struct reg;

/* Returns a new, empty registry. Caller frees with reg_free(). */
struct reg *reg_new(void);
void reg_free(struct reg *r);

/*
 * Adds one sample of family @def (the pointer must outlive the registry) with
 * @n labels. Label values are copied and escaped. Returns 0; -EINVAL when a
 * metric or label name is invalid (logged; the sample is dropped); -ENOSPC
 * when the registry is full (logged once; reg_render then fails).
 */
int reg_add(struct reg *r, const struct metric_def *def, double value, size_t n,
	    const char *const names[], const char *const values[]);

/* Convenience for up to 4 labels given inline: reg_addv(r, def, v, "k", "v", ..., NULL). */
int reg_addv(struct reg *r, const struct metric_def *def, double value, ...)
	__attribute__((sentinel));

/*
 * Renders all families into @out (appended). Returns 0, or -ENOSPC when a
 * sample did not fit the registry or the exposition does not fit @out; then
 * @out is exactly as it was (an exposition is whole or absent, never cut).
 * @dropped (optional) receives the number of duplicate series dropped.
 */
int reg_render(struct reg *r, struct buf *out, size_t *dropped);

/* Number of samples added so far. */
size_t reg_count(const struct reg *r);

#endif
