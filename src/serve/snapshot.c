/*
 * snapshot.c - see snapshot.h.
 */
#include "serve/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "serve/gzip.h"

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;
/* whether the last seal_body() failed: log a failure once, and the recovery (poller thread) */
static bool seal_failing;

/*
 * Copies @len bytes at *@data into a new sealed memfd named @name, frees the
 * heap buffer and points *@data at a read-only mapping of the memfd. Returns
 * the descriptor, or -errno with *@data untouched.
 */
static int seal_body(const char *name, char **data, size_t len)
{
	int fd = -1, rc = 0;
	if (!len)
		return -EINVAL; /* mmap() of nothing fails; an empty body is served from the heap */
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, *data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS, SEALS)) {
		rc = -errno;
		goto out;
	}
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	free(*data);
	*data = map;
out:
	if (rc && fd >= 0)
		close(fd);
	return rc ? rc : fd;
}

/* Seals *@data (see seal_body()); *@fd is the memfd or -1. */
static void seal_or_complain(const char *name, char **data, size_t len, int *fd)
{
	int rc = seal_body(name, data, len);
	*fd = rc >= 0 ? rc : -1;
	if (rc == -EINVAL)
		return; /* an empty body: nothing worth saying */
	if (rc >= 0) {
		if (seal_failing)
			log_info("memfd works again, serving /metrics with sendfile()");
		seal_failing = false;
		return;
	}
	if (!seal_failing)
		log_warn("cannot put the exposition in a sealed memfd, serving it from memory",
			 "error", strerror(-rc));
	seal_failing = true;
}

static void drop_body(char *data, size_t len, int fd)
{
	if (fd < 0) {
		free(data);
		return;
	}
	munmap(data, len);
	close(fd);
}

struct snapshot *snapshot_new(char *plain, size_t plain_len, char *landing, size_t landing_len,
			      bool ready, char *reason)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->plain = plain;
	s->plain_len = plain_len;
	s->plain_fd = -1;
	s->gzip_fd = -1;
	s->landing = landing;
	s->landing_len = landing_len;
	s->ready = ready;
	s->not_ready_reason = reason;
	if (gzip_compress(plain, plain_len, &s->gzip, &s->gzip_len)) {
		log_error("gzip compression failed, serving uncompressed");
		s->gzip = NULL;
	}
	seal_or_complain("bce-metrics", &s->plain, s->plain_len, &s->plain_fd);
	if (s->gzip)
		seal_or_complain("bce-metrics.gz", &s->gzip, s->gzip_len, &s->gzip_fd);
	return s;
}

void snapshot_publish(struct snapshot *s)
{
	pthread_mutex_lock(&current_mu);
	struct snapshot *old = current;
	current = s;
	pthread_mutex_unlock(&current_mu);
	snapshot_release(old);
}

struct snapshot *snapshot_acquire(void)
{
	pthread_mutex_lock(&current_mu);
	struct snapshot *s = current;
	if (s)
		atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&current_mu);
	return s;
}

void snapshot_release(struct snapshot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	drop_body(s->plain, s->plain_len, s->plain_fd);
	drop_body(s->gzip, s->gzip_len, s->gzip_fd);
	free(s->landing);
	free(s->not_ready_reason);
	free(s);
}
