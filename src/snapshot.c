/*
 * snapshot.c - see snapshot.h.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdlib.h>

#include "gz.h"
#include "log.h"
#include "util.h"

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;

struct snapshot *snapshot_new(char *plain, size_t plain_len, char *landing, size_t landing_len,
			      bool ready, char *reason)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->plain = plain;
	s->plain_len = plain_len;
	s->landing = landing;
	s->landing_len = landing_len;
	s->ready = ready;
	s->not_ready_reason = reason;
	if (gz_compress(plain, plain_len, &s->gzip, &s->gzip_len)) {
		log_error("gzip compression failed, serving uncompressed");
		s->gzip = NULL;
	}
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
	free(s->plain);
	free(s->gzip);
	free(s->landing);
	free(s->not_ready_reason);
	free(s);
}
