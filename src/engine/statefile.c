/*
 * statefile.c - see statefile.h. The JSON is written with base/jsonw.h and
 * read with base/jsontape.h, like every other JSON document of the exporter.
 */
#include "engine/statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/files.h"
#include "base/jsontape.h"
#include "base/jsonw.h"
#include "base/util.h"

#define FORMAT "bedrock-cost-exporter-state"
#define MAX_STATE_BYTES STATEFILE_MAX_BYTES

/* ---- the atomic write ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool same_file(const struct statefile_writer *w, const struct stat *st)
{
	return w->dev == (uint64_t)st->st_dev && w->ino == (uint64_t)st->st_ino &&
	       w->size == (int64_t)st->st_size && w->mtime_sec == (int64_t)st->st_mtim.tv_sec &&
	       w->mtime_nsec == (int64_t)st->st_mtim.tv_nsec;
}

static void remember_file(struct statefile_writer *w, const struct stat *st)
{
	w->dev = (uint64_t)st->st_dev;
	w->ino = (uint64_t)st->st_ino;
	w->size = (int64_t)st->st_size;
	w->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	w->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
}

int statefile_render(const struct source_set *set, double now, char **text, size_t *len,
		     uint64_t *hash, char *err, size_t errlen)
{
	struct jsonw w;
	jsonw_init(&w, MAX_STATE_BYTES);
	jsonw_object_begin(&w);
	jsonw_key(&w, "format");
	jsonw_string(&w, FORMAT);
	jsonw_key(&w, "version");
	jsonw_int(&w, STATEFILE_VERSION);
	jsonw_key(&w, "written_at");
	jsonw_number(&w, now);
	/* the bytes before here are constant but for written_at: the rest decides "changed" */
	size_t tail = w.b.len;
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].def->save)
			set->v[i].def->save(set->v[i].priv, &w);
	jsonw_object_end(&w);
	if (!w.err && w.depth) /* a source left a container open: no load would accept the file */
		w.err = -EINVAL;
	if (w.err) {
		snprintf(err, errlen, "%s",
			 w.err == -EDOM ? "the state holds a number that is NaN or infinite"
			 : w.err == -EFBIG ? "the state is larger than 256 MiB"
					   : "a source wrote malformed JSON");
		int rc = w.err;
		jsonw_free(&w);
		return rc;
	}
	*hash = hash64(w.b.data + tail, w.b.len - tail, HASH64_INIT);
	*text = jsonw_steal(&w, len);
	return 0;
}

int statefile_save(struct statefile_writer *sw, const char *path, const struct source_set *set,
		   double now, char *err, size_t errlen)
{
	char *text, rerr[200];
	size_t len;
	uint64_t hash;
	int rc = statefile_render(set, now, &text, &len, &hash, rerr, sizeof(rerr));
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", path, rerr);
		return rc;
	}

	/* unchanged content, and the file on disk is still the one we wrote: nothing to do */
	struct stat st;
	if (sw && sw->written && sw->hash == hash && stat(path, &st) == 0 && same_file(sw, &st)) {
		free(text);
		return 0;
	}
	if (sw)
		sw->written = false; /* until this write has succeeded */

	/* one fixed name: a write cut short by a crash is overwritten by the next one */
	char *tmp = xasprintf("%s.tmp", path);
	char *dircopy = xstrdup(path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = write_all(fd, text, len);
	if (!rc && fsync(fd))
		rc = -errno;
	if (!rc && fstat(fd, &st))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		unlink(tmp);
		goto out;
	}
	int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	if (sw) {
		sw->hash = hash;
		remember_file(sw, &st);
		sw->written = true;
	}
out:
	free(text);
	free(tmp);
	free(dircopy);
	return rc;
}

int statefile_load(const char *path, struct source_set *set, const struct conf *c, double now,
		   struct source_restored *restored, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file_max(path, MAX_STATE_BYTES, &text, &len);
	if (rc == -ENOENT)
		return -ENOENT;
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
		return -EPROTO;
	}
	rc = statefile_parse(path, text, len, set, c, now, NULL, restored, err, errlen);
	free(text);
	return rc;
}

int statefile_parse(const char *path, const char *text, size_t len, struct source_set *set,
		    const struct conf *c, double now, const double *newer,
		    struct source_restored *restored, char *err, size_t errlen)
{
	int rc;
	struct jsontape t;
	void **fresh = xcalloc(set->n + 1, sizeof(*fresh));
	size_t done = 0;
	char f[64];
	double version;
	memset(restored, 0, set->n * sizeof(*restored));
	rc = -EPROTO;
	if (jsontape_parse(&t, text, len) || !jt_is(&t, 0, JT_OBJECT)) {
		snprintf(err, errlen, "%s is not valid JSON", path);
		goto out;
	}
	if (jt_str(&t, jt_get(&t, 0, "format"), f, sizeof(f)) < 0 || strcmp(f, FORMAT) != 0) {
		snprintf(err, errlen, "%s is not a bedrock-cost-exporter state file", path);
		goto out;
	}
	if (jt_number(&t, jt_get(&t, 0, "version"), &version) || version != STATEFILE_VERSION) {
		snprintf(err, errlen, "%s has state version %g, this exporter reads version %d", path,
			 jt_is(&t, jt_get(&t, 0, "version"), JT_NUMBER) ? version : NAN,
			 STATEFILE_VERSION);
		goto out;
	}
	for (; done < set->n; done++) {
		const struct source_def *d = set->v[done].def;
		if (!d->restore)
			continue;
		char serr[256] = "";
		fresh[done] = d->restore(&t, 0, c, now, &restored[done], serr, sizeof(serr));
		if (!fresh[done]) {
			snprintf(err, errlen, "%s is corrupt (%s: %s)", path, d->name, serr);
			goto out;
		}
	}
	/* every part read back: install (with @newer, only the parts newer than what is held) */
	for (size_t i = 0; i < set->n; i++) {
		if (!fresh[i])
			continue;
		if (newer && !(restored[i].at > newer[i])) {
			memset(&restored[i], 0, sizeof(restored[i]));
			continue;
		}
		if (newer && set->v[i].def->adopt)
			set->v[i].def->adopt(set->v[i].priv, fresh[i]);
		set->v[i].def->destroy(set->v[i].priv);
		set->v[i].priv = fresh[i];
		fresh[i] = NULL;
	}
	rc = 0;
out:
	for (size_t i = 0; i < done && i < set->n; i++)
		if (fresh[i])
			set->v[i].def->destroy(fresh[i]);
	if (rc)
		memset(restored, 0, set->n * sizeof(*restored));
	free(fresh);
	jsontape_free(&t);
	return rc;
}
