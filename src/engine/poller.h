/*
 * poller.h - the engine: one generic loop over the source table. It
 * refreshes each enabled source on its own interval (with jitter), retries
 * after failures, waits for the next UTC day when a source has spent its
 * daily request ceiling, reloads the configuration on request, writes the
 * state file, and publishes a new snapshot after each change. It knows no
 * source by name (sources/source.h).
 *
 * Threads: the poller thread owns the configuration, the sources and the
 * HTTP client. poller_reload() and poller_stop() may be called from any
 * thread (main, after sigwait); they only set a flag and wake the poller, so
 * a slow AWS call never blocks a signal, and shutdown aborts transfers and
 * waits at once.
 */
#ifndef BCE_POLLER_H
#define BCE_POLLER_H

#include "base/util.h"
#include "config/conf.h"
#include "sources/source.h"

struct hc;
struct poller;

struct poller_opts {
	const char *config_path;     /* reloaded from here; copied */
	const char *telemetry_path;  /* for the landing page; copied */
	/* For tests; NULL = the daemon's: */
	const struct source_def *const *sources; /* the table (NULL-terminated); source_table */
	struct hc *hc;               /* the HTTP client, owned by the poller; a real one */
	double (*mono_now)(void);    /* the clocks; mono_now and wall_now of base/util.h */
	double (*wall_now)(void);
	size_t max_exposition;       /* bytes; 0 = 1 GiB */
};

/*
 * Returns a poller that takes ownership of @conf (freed here on failure
 * too). Nothing runs until poller_prepare/poller_start/poller_run_once.
 * Returns NULL if libcurl cannot be initialised (logged).
 */
struct poller *poller_new(struct conf *conf, const struct poller_opts *o);

/* Loads the state file and publishes the first snapshot (no network). */
void poller_prepare(struct poller *p);

/*
 * One turn of the loop (the thread runs it until stopped; tests call it with
 * their own clocks): reloads the configuration if asked, refreshes every due
 * source (in table order; a source that runs `after` another right after it
 * succeeds), then writes the state file and publishes once for the round.
 * Returns the monotonic time of the next turn: when the next source is due,
 * or the next UTC midnight (the windows move), whichever comes first.
 */
double poller_step(struct poller *p);

/* Starts the thread (after poller_prepare, which it calls if needed). Returns 0 or -errno. */
int poller_start(struct poller *p);

/* Asks the poller to reload the configuration file. Any thread. */
void poller_reload(struct poller *p);

/* Stops and joins the thread (aborting any transfer). Any thread but the poller. */
void poller_stop(struct poller *p);

/*
 * --once: refreshes every enabled source synchronously in the calling thread
 * and appends the exposition to @out. Returns 0 if every source succeeded,
 * -EIO otherwise (the exposition is still written); -ENOSPC if it could not
 * be rendered.
 */
int poller_run_once(struct poller *p, struct buf *out);

/* The sources and their health (borrowed; poller thread, or any thread while it is stopped). */
const struct source_set *poller_sources(const struct poller *p);

/* Frees everything; the thread must be stopped. */
void poller_free(struct poller *p);

#endif
