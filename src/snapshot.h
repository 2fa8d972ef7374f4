/*
 * snapshot.h - the published exposition: an immutable, reference-counted
 * bundle of the /metrics body (plain and gzip) and the landing page.
 *
 * Publish, don't share: the poller builds a complete snapshot and swaps the
 * current pointer under a mutex held only for the swap; HTTP threads take a
 * reference, hand the bytes to libmicrohttpd without copying, and drop the
 * reference when the response is freed. Nothing in a published snapshot is
 * ever written again, so readers need no lock.
 */
#ifndef BCE_SNAPSHOT_H
#define BCE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct snapshot {
	atomic_int refs;
	char *plain;
	size_t plain_len;
	char *gzip; /* NULL if compression failed: serve plain */
	size_t gzip_len;
	char *landing;
	size_t landing_len;
	bool ready; /* every enabled source has data */
	char *not_ready_reason;
};

/*
 * Returns a snapshot holding one reference, taking ownership of @plain,
 * @landing and @reason (may be NULL). Compresses @plain here.
 */
struct snapshot *snapshot_new(char *plain, size_t plain_len, char *landing, size_t landing_len,
			      bool ready, char *reason);

/* Makes @s current, consuming the caller's reference. Any thread. */
void snapshot_publish(struct snapshot *s);
/* Returns a new reference to the current snapshot, or NULL. Any thread. */
struct snapshot *snapshot_acquire(void);
/* Drops a reference; frees on the last. Any thread. NULL is ignored. */
void snapshot_release(struct snapshot *s);

#endif
