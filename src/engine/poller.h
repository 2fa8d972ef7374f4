/*
 * poller.h - the background thread that refreshes every source on its own
 * interval (with jitter), reloads the configuration on request, and
 * publishes a new snapshot after each change.
 *
 * Threads: the poller thread owns the configuration, the exporter state and
 * the HTTP client. poller_reload() and poller_stop() may be called from any
 * thread (main, after sigwait); they only set a flag and wake the poller, so
 * a slow AWS call never blocks a signal, and shutdown aborts transfers and
 * waits at once.
 */
#ifndef BCE_POLLER_H
#define BCE_POLLER_H

#include "config/conf.h"
#include "base/util.h"

struct poller;

/*
 * Returns a poller that takes ownership of @conf (loaded from @config_path).
 * @telemetry_path is copied. Nothing runs until poller_start/poller_run_once.
 * Returns NULL if libcurl cannot be initialised (logged).
 */
struct poller *poller_new(struct conf *conf, const char *config_path, const char *telemetry_path);

/* Loads the state file and publishes the first snapshot (no network). */
void poller_prepare(struct poller *p);

/* Starts the thread (after poller_prepare, which it calls if needed). Returns 0 or -errno. */
int poller_start(struct poller *p);

/* Asks the poller to reload the configuration file. Any thread. */
void poller_reload(struct poller *p);

/* Stops and joins the thread (aborting any transfer). Any thread but the poller. */
void poller_stop(struct poller *p);

/*
 * --once: refreshes every enabled source synchronously in the calling thread
 * and appends the exposition to @out. Returns 0 if every source succeeded,
 * -EIO otherwise (the exposition is still written).
 */
int poller_run_once(struct poller *p, struct buf *out);

/* Frees everything; the thread must be stopped. */
void poller_free(struct poller *p);

#endif
