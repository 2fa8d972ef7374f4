/*
 * files.c - see files.h.
 */
#include "base/files.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/util.h"

int read_file_max(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f); /* a directory opens, then every read fails with EIO: say what it is */
		return -EISDIR;
	}
	struct buf b;
	buf_init(&b, max);
	char chunk[8192];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n)) {
			rc = -EFBIG;
			break;
		}
	}
	if (!rc && ferror(f))
		rc = -EIO;
	secure_zero(chunk, sizeof(chunk));
	fclose(f);
	if (rc) {
		if (b.data)
			secure_zero(b.data, b.len);
		buf_free(&b);
		return rc;
	}
	*out = buf_steal(&b, len);
	return 0;
}

bool warn_if_world_readable(const char *path, const char *what)
{
	struct stat st;
	if (!path || !*path || stat(path, &st) || !(st.st_mode & S_IROTH))
		return false;
	log_warn("a file holding secrets is readable by every user; make it readable by its owner "
		 "only (chmod o-rwx)", "setting", what, "file", path);
	return true;
}
