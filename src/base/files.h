/*
 * files.h - reading small files whole, and the permission check for files
 * that hold secrets. Thread-safe.
 */
#ifndef BCE_FILES_H
#define BCE_FILES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Reads the whole file at @path, at most @max bytes. Returns 0 with a
 * NUL-terminated buffer in *out (caller frees; use free_secret for secrets)
 * and its length in *len (may be NULL); -errno if it cannot be read; -EFBIG
 * when larger than @max (the partial bytes are zeroed and freed).
 */
int read_file_max(const char *path, size_t max, char **out, size_t *len);

/* Logs a warning when @path (a file holding a secret) is readable by other
 * users. Returns true if it is. @what names the setting, for the message. */
bool warn_if_world_readable(const char *path, const char *what);

#endif
