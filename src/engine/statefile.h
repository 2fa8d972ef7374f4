/*
 * statefile.h - the state file: what a restart needs to serve at once
 * without paying Cost Explorer again (cached cost series, discovered
 * services, forecast, tag activation, today's request count for the
 * ceiling, and the last project listings).
 *
 * JSON, versioned ("format" and "version" fields), validated field by field
 * on load; written atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory) with mode 0600, so a crash at any moment
 * leaves either the old or the new file. Poller thread only.
 */
#ifndef BCE_STATEFILE_H
#define BCE_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/cost_explorer.h"
#include "model/state.h"

#define STATEFILE_VERSION 1

/*
 * What statefile_save remembers of its last successful write, so that it can
 * skip rewriting a file whose content would not change. Owned by the caller,
 * one per state file, used by one thread at a time (the poller's); plain data
 * (no pointers, nothing to free). Zero-initialise it: {0} means "nothing
 * written yet". Callers only pass it along; the fields are statefile.c's.
 */
struct statefile_writer {
	bool written;          /* the fields below describe a successful write */
	uint64_t hash;         /* of the serialized body, without its written_at value */
	uint64_t dev, ino;     /* the file that write produced (fstat before the rename) */
	int64_t size, mtime_sec, mtime_nsec;
};

/*
 * Serializes the state and writes it to @path atomically (see above).
 * Returns 0 or a negative errno with @err filled; on failure the previous
 * file (if any) is left as it was.
 *
 * Skipping: when @w is not NULL and the body (everything but the
 * "written_at" value, which a restart does not read) hashes the same as the
 * last body written through @w, and @path is still the file that write
 * produced (same device, inode, size and mtime: not removed, replaced or
 * rewritten since), nothing is written and 0 is returned; "written_at" then
 * keeps the time of the write that produced the file. @w NULL: always writes.
 * A failed write clears @w, so the next call writes.
 *
 * Numbers are written so that they read back as the identical double; a NaN
 * or infinite number fails the save with -EDOM (the loader would reject the
 * file); a body over 256 MiB fails with -EFBIG.
 *
 * Poller thread (or main under --once).
 */
int statefile_save(struct statefile_writer *w, const char *path, const struct ce_source *ce,
		   const struct region_state *regions, size_t nregions, double now, char *err,
		   size_t errlen);

/*
 * Loads @path into @ce (replaced) and into the regions of @regions that the
 * file has (their projects and has_data). Returns 0; -ENOENT when there is
 * no file; -EPROTO when it is corrupt, foreign or of another version (nothing
 * changed; the caller warns and starts afresh).
 */
int statefile_load(const char *path, struct ce_source *ce, struct region_state *regions,
		   size_t nregions, char *err, size_t errlen);

#endif
