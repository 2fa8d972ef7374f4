/*
 * statefile.h - the state file: what a restart needs to serve at once
 * without fetching (and paying for) its data again. The core here knows the file, not its
 * content: a JSON object with "format", "version" and "written_at", and then
 * every source's own members, written by the source's save() and read back
 * by its restore() (sources/source.h). Which members a source owns is the
 * source's business; the members of the sources of one table never collide.
 * They are written in table order; readers look them up by name, so member
 * order is not part of the format (a file whose members come in another
 * order loads, and saves back the same members).
 *
 * Written atomically (a temporary file in the same directory, fsync, rename,
 * fsync of the directory) with mode 0600, so a crash at any moment leaves
 * either the old or the new file. Loaded all or nothing: a file that is
 * corrupt, foreign or of another version, or any source's part that does not
 * read back, changes nothing. Poller thread (or main under --once).
 */
#ifndef BCE_STATEFILE_H
#define BCE_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/source.h"

struct conf;

#define STATEFILE_VERSION 1
/* The largest state: a larger one is neither written nor read. */
#define STATEFILE_MAX_BYTES ((size_t)256 * 1024 * 1024)

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
 * Writes every source of @set (those with a save()) to @path atomically.
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
 */
int statefile_save(struct statefile_writer *w, const char *path, const struct source_set *set,
		   double now, char *err, size_t errlen);

/*
 * Loads @path: every source of @set with a restore() builds a new private
 * state for @c from the file, and only when all of them succeed are they
 * installed (the old ones destroyed); @restored[i] then says what source i
 * got back (zeroed for sources without restore). Returns 0; -ENOENT when there
 * is no file; -EPROTO when it is corrupt, foreign or of another version, with
 * @err saying why (nothing changed).
 */
int statefile_load(const char *path, struct source_set *set, const struct conf *c, double now,
		   struct source_restored *restored, char *err, size_t errlen);

/*
 * The text statefile_save writes, for a store of another kind (engine/shared_state.h):
 * 0 with @text (caller frees), its length and the hash of everything but written_at;
 * or an error as statefile_save's, with the reason in @err.
 */
int statefile_render(const struct source_set *set, double now, char **text, size_t *len,
		     uint64_t *hash, char *err, size_t errlen);

/*
 * statefile_load of a text already read (@path names it in messages). With @newer (one
 * Unix time per source of @set), a part is installed only when what it restores was
 * fetched later than newer[i] (restored.at > newer[i]), after the source's adopt() (if
 * any) took what the state it replaces must not lose; @restored[i] is zeroed for the
 * parts not installed. With NULL, as statefile_load: all or nothing.
 */
int statefile_parse(const char *path, const char *text, size_t len, struct source_set *set,
		    const struct conf *c, double now, const double *newer,
		    struct source_restored *restored, char *err, size_t errlen);

#endif
