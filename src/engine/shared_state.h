/*
 * shared_state.h - the state file in S3 (state_file = "s3://bucket/key"), shared by the
 * replicas of one exporter and kept when a pod moves.
 *
 * The content is the state file's (statefile.h). What S3 adds is concurrency:
 *  - pull: a conditional GET (If-None-Match with the ETag last seen), so an unchanged
 *    object costs one small request and no transfer; a changed one installs each source
 *    part that another replica fetched later than this one holds;
 *  - push: a conditional PUT (If-Match with the ETag last seen, or If-None-Match: * when
 *    there was no object), so a replica never overwrites a newer object it has not read.
 *    A lost race (-EAGAIN) is settled by the caller: pull, then push again.
 * One per poller, poller thread only. The object is named by the configuration passed
 * to each call; when it names another object (a reload), what was known is forgotten.
 */
#ifndef BCE_SHARED_STATE_H
#define BCE_SHARED_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/s3.h"
#include "sources/source.h"

struct conf;
struct shared_state;

/* A new, empty handle (nothing read or written yet). */
struct shared_state *shared_state_new(void);
void shared_state_free(struct shared_state *s);

/* Whether @c keeps its state in S3. */
bool shared_state_configured(const struct conf *c);

/* Where @c's object is (its URL), for messages. */
const char *shared_state_url(struct shared_state *s, const struct conf *c);

/*
 * Reads the object. Returns 0 when it was read and parsed: sources are installed as
 * statefile_parse() does with @newer (NULL: all or nothing, at start-up) and
 * @restored[i] says what source i got; -EALREADY when unchanged since the last pull or
 * push (nothing installed); -ENOENT when there is no object; -EPROTO when it is not a
 * state this exporter reads; -ECANCELED; -EIO with @err.
 */
int shared_state_pull(struct shared_state *s, const struct s3_ctx *x, struct source_set *set,
		      const double *newer, struct source_restored *restored, char *err,
		      size_t errlen);

/*
 * Writes the state of @set, unless it is what this handle last wrote and the object has
 * not changed since. Returns 0; -EAGAIN when another writer changed the object since
 * this handle last read or wrote it (nothing written: pull, then push again); other
 * negative errnos with @err.
 */
int shared_state_push(struct shared_state *s, const struct s3_ctx *x,
		      const struct source_set *set, char *err, size_t errlen);

#endif
