/*
 * snapshot.h - the published exposition: an immutable, reference-counted
 * bundle of the /metrics body (plain and gzip) and the landing page.
 *
 * Publish, don't share: the poller builds a complete snapshot and swaps the
 * current pointer under a mutex held only for the swap; HTTP threads take a
 * reference, hand the bytes to libmicrohttpd without copying, and drop the
 * reference when the response is freed. Nothing in a published snapshot is
 * ever written again, so readers need no lock.
 *
 * Each /metrics body is moved once per publish into a sealed memfd (no
 * write, grow or shrink can ever happen to it), and the body pointer becomes
 * a read-only mapping of that memfd: one copy of the bytes, in the page cache.
 * The server answers plain HTTP from the descriptor with sendfile(), as a
 * static file server does, and TLS from the mapping. A duplicate of the
 * descriptor keeps the bytes alive by itself, whatever happens to the
 * snapshot. If memfd_create() or mmap() fails the body stays on the heap
 * and its descriptor is -1.
 */
#ifndef BCE_SNAPSHOT_H
#define BCE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct snapshot {
	atomic_int refs;
	char *plain;  /* heap, or a read-only mapping of plain_fd */
	size_t plain_len;
	int plain_fd; /* sealed memfd holding plain, or -1 */
	char *gzip;   /* NULL if compression failed: serve plain */
	size_t gzip_len;
	int gzip_fd;  /* sealed memfd holding gzip, or -1 */
	char *landing;
	size_t landing_len;
	bool ready; /* every enabled source has data */
	char *not_ready_reason;
};

/*
 * Returns a snapshot holding one reference, taking ownership of @plain,
 * @landing and @reason (may be NULL). Compresses @plain and seals both bodies
 * into memfds here (poller thread; a failure is logged once and the body
 * served from the heap).
 */
struct snapshot *snapshot_new(char *plain, size_t plain_len, char *landing, size_t landing_len,
			      bool ready, char *reason);

/* Makes @s current, consuming the caller's reference. Any thread. */
void snapshot_publish(struct snapshot *s);
/* Returns a new reference to the current snapshot, or NULL. Any thread. */
struct snapshot *snapshot_acquire(void);
/* Drops a reference; frees on the last (unmaps and closes the memfds). Any
 * thread. NULL is ignored. */
void snapshot_release(struct snapshot *s);

#endif
