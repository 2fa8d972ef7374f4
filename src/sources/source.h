/*
 * source.h - what a source is. Every AWS surface the exporter reads is one
 * source: one file under sources/ and one row of the table in
 * sources/table.c. The engine (engine/poller.c) knows no source by name: it
 * loops over the table and calls the row's functions, as node_exporter's
 * registry calls its collectors or the kernel calls a file_operations table.
 *
 * A row says
 *   - its name (the `source` label, the landing page, the log),
 *   - when it runs: enabled(conf), interval(conf) with 10% jitter, the delay
 *     after a failure, or `after` another source (then it has no schedule of
 *     its own: it runs right after that one succeeds, in the same round),
 *   - how it refreshes: refresh(), returning 0, -EDQUOT (the daily request
 *     ceiling is spent: the engine waits for the next UTC day), -EINPROGRESS
 *     (waiting on another instance: down for now, asked again in ~10 s), -ECANCELED
 *     (stopped), or another negative errno (failed; the last good data stays),
 *   - its part of the state file: save() writes its members into the file's
 *     top-level object, restore() builds a new private state from them,
 *   - its metric families: collect() adds samples to the registry.
 *
 * A source keeps its data in a private state (create()/destroy()). Sources
 * that build on another one's data (the cost attribution needs the project
 * catalog; the forecast needs the Cost Explorer cache) ask for that source's
 * private state with source_peer() and read it through that source's header.
 *
 * Threads: everything here runs on the poller thread (or main under --once).
 */
#ifndef BCE_SOURCE_H
#define BCE_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

struct api_op_def;
struct aws_provider;
struct conf;
struct hc;
struct hc_opts;
struct jsontape;
struct jsonw;
struct reg;
struct source_set;

/* What a refresh may use. Owned by the engine, valid during the call. */
struct source_ctx {
	const struct conf *conf;
	double now;                    /* wall clock (Unix seconds) at the start of the call */
	struct hc *hc;                 /* the HTTP client: one connection pool for every source */
	const struct hc_opts *http;    /* timeouts, retries, the stop flag */
	struct aws_provider *creds;    /* the AWS credential chain, cached across sources */
	const struct source_set *set;  /* for source_peer() */
	bool once;                     /* --once: a refresh that waits (-EINPROGRESS) is not
					* asked again, so it does not wait */
	bool state_changed;            /* out: set when the source's state-file part changed */
};

/* The health of a source, kept by the engine. */
struct source_health {
	bool up;              /* the last refresh succeeded and no attempt of the running one
			       * has failed (each failed attempt is published at once) */
	bool has_data;        /* some refresh succeeded (or data was restored) */
	double last_success;  /* Unix seconds; 0 = never */
	double last_attempt;
	double last_duration; /* seconds */
	char *last_error;     /* NULL while up */
	char *logged_error;   /* engine: the refresh failure last logged (complain-once) */
	int last_rc;          /* what the last refresh returned */
};

/* What collect may use. */
struct collect_ctx {
	const struct conf *conf;
	double now;                          /* the render's clock: the windows' "today" */
	const struct source_set *set;        /* for source_peer() */
	const struct source_health *health;  /* this source's */
};

/* What restore found in the state file. */
struct source_restored {
	bool has_data;  /* serve it: the source counts as ready */
	double at;      /* when it was fetched (Unix seconds): the source is up and next due at
			 * at + interval; 0 = not known, refresh at once */
};

struct source_def {
	const char *name;
	bool (*enabled)(const struct conf *c);
	long (*interval)(const struct conf *c);   /* seconds between successful refreshes */
	long retry_after_failure;                 /* seconds, capped at the interval; 0 = interval */
	const struct source_def *after;           /* runs right after this source succeeds */
	bool logs_own_failures;                   /* the engine does not log its failures */
	/* The AWS operations it calls ({ NULL }-terminated; may be NULL): registered when the
	 * source is set up, so their request and error counters exist from the first scrape. */
	const struct api_op_def *operations;

	/* A private state for @c (never NULL; aborts on out-of-memory). */
	void *(*create)(const struct conf *c);
	void (*destroy)(void *priv);
	/* A part restored from the shared state (another replica's newer data) replaces
	 * @old at run time: carry into @fresh what this replica counted itself and must not
	 * lose (the daily request meter). May be NULL. */
	void (*adopt)(const void *old, void *fresh);
	/* The configuration changed from @old to @c (@c stays valid until the next call).
	 * Returns true when the source must refresh at once. May be NULL (false). */
	bool (*reconfigure)(void *priv, const struct conf *old, const struct conf *c);
	/* Brings the private state up to date; @err receives a one-line reason (never a
	 * secret) on failure. What collect reads must be whole whenever it makes a request:
	 * the engine renders (calls collect) after every failed attempt, mid-refresh. */
	int (*refresh)(void *priv, struct source_ctx *x, char *err, size_t errlen);
	/* Writes the source's members ("key": value ...) into the open top-level object.
	 * May be NULL: the source keeps nothing across restarts. */
	void (*save)(const void *priv, struct jsonw *w);
	/* Builds a new private state for @c from the members of object @root of the state
	 * file; a member that is missing means "nothing saved". Returns NULL with @err
	 * filled when a member is malformed. May be NULL. */
	void *(*restore)(const struct jsontape *t, size_t root, const struct conf *c, double now,
			 struct source_restored *out, char *err, size_t errlen);
	/* Adds the source's samples to @r (called only while the source is enabled). */
	void (*collect)(const void *priv, const struct collect_ctx *x, struct reg *r);
	/* Whether the source has data to serve, after each refresh whatever it returned (the
	 * projects: every region listed once). May be NULL: a refresh that succeeded once. */
	bool (*has_data)(const void *priv);
	/* Seconds until the next refresh after a successful one at wall time @now, when a
	 * daily budget needs more than interval(c) (the refreshes spread over the rest of the
	 * UTC day); <= interval(c) keeps the interval. May be NULL. */
	double (*delay)(const void *priv, const struct conf *c, double now);
};

/* One row of the table with its private state, health and schedule. */
struct source {
	const struct source_def *def;
	void *priv;
	bool enabled;                /* def->enabled(conf) of the current configuration */
	struct source_health health;
	double next;                 /* engine: monotonic seconds when due */
};

/* Every source of a table, in table order. */
struct source_set {
	struct source *v;
	size_t n;
};

/* The table the daemon runs: NULL-terminated (sources/table.c). */
extern const struct source_def *const source_table[];

/* Instantiates every row of @table (NULL-terminated) for @c. Free with source_set_free. */
void source_set_init(struct source_set *s, const struct source_def *const *table,
		     const struct conf *c);
void source_set_free(struct source_set *s);

/* The private state of the source @def in @set, or NULL when it is not there. */
void *source_peer(const struct source_set *set, const struct source_def *def);

#endif
