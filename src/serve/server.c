/*
 * server.c - see server.h.
 *
 * Threads: libmicrohttpd's pool (o->threads) serves; one reaper thread closes
 * connections whose request is late (see "Request deadlines"); with a web
 * configuration, BCRYPT_WORKERS threads check passwords (see "Passwords off
 * the serving threads"). Each part's shared state sits under its own mutex.
 */
#include "serve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "serve/snapshot.h"
#include "serve/webauth.h"

/* A connection libmicrohttpd has accepted; its socket context. */
struct tracked {
	struct tracked *prev, *next;
	int fd;
	double deadline; /* CLOCK_MONOTONIC seconds by which its request must be in; 0 = none */
	bool shut;       /* the reaper has shut it down */
	char addr[INET6_ADDRSTRLEN];
};

/* A request that waits for a bcrypt worker; its req_cls from then on. */
struct request {
	struct request *next; /* in the queue */
	struct MHD_Connection *c;
	struct webauth_pending *check; /* freed once run */
	enum webauth_verdict verdict;
};

#define BCRYPT_WORKERS 2

struct server {
	struct MHD_Daemon *d;
	char *telemetry_path;
	struct webauth *auth;
	bool tls; /* libmicrohttpd cannot sendfile() under TLS: serve the mapping */

	/* request deadlines: under dl_mu */
	pthread_mutex_t dl_mu;
	pthread_cond_t dl_cv;
	struct tracked *conns;
	double dl_wake_at;        /* when the reaper looks next; 0 = when woken */
	double request_timeout;   /* seconds */
	double idle_timeout;      /* seconds, libmicrohttpd's; 0 = none */
	unsigned long reaped;
	bool dl_stop, reaper_running;
	pthread_t reaper;

	/* bcrypt workers: under bq_mu */
	pthread_mutex_t bq_mu;
	pthread_cond_t bq_cv;
	struct request *bq_head, *bq_tail;
	bool bq_stop;
	unsigned int nworkers;
	pthread_t workers[BCRYPT_WORKERS];
};

/* *req_cls once a request's headers are in, unless it has a struct request */
static int headers_seen;

/* Adds what every response carries: the web configuration's headers. */
static void common_headers(struct server *srv, struct MHD_Response *r)
{
	if (srv && srv->auth)
		webauth_add_headers(srv->auth, r);
}

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

/*
 * Bodies from this size on are sent from their memfd with sendfile(); smaller
 * ones from the mapping with one writev() of headers and body. sendfile()
 * costs a dup(), a separate send of the headers and per-page splicing, which
 * a copy of a small body undercuts: at 8 KB it was 30% more CPU per scrape, at
 * 330 KB about even with 64 connections and 20% more with one; at 2.5 MB it
 * halved the CPU per scrape (tests/bench, 1,000 projects).
 */
#define SENDFILE_MIN ((size_t)1 << 20)
#define CT_TEXT "text/plain; charset=utf-8"

int server_parse_listen(const char *addr, char *host, size_t hostlen, unsigned short *port)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	size_t hl = (size_t)(colon - addr);
	const char *h = addr;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	} else if (memchr(h, ':', hl)) {
		return -EINVAL; /* an IPv6 address needs brackets */
	}
	if (hl >= hostlen)
		return -EINVAL;
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || *end || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned short)p;
	return 0;
}

const char *server_library_version(void)
{
	return MHD_get_version();
}

bool server_accepts_gzip(const char *h)
{
	if (!h)
		return false;
	bool gzip = false, star = false, gzip_seen = false;
	const char *p = h;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *tok = p;
		while (*p && *p != ';' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t tl = (size_t)(p - tok);
		double q = 1.0;
		while (*p && *p != ',') {
			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
				q = strtod(p + 2, NULL);
			}
			while (*p && *p != ';' && *p != ',')
				p++;
		}
		if (tl == 4 && strncasecmp(tok, "gzip", 4) == 0) {
			gzip_seen = true;
			gzip = q > 0;
		} else if (tl == 1 && tok[0] == '*') {
			star = q > 0;
		}
	}
	return gzip_seen ? gzip : star;
}

static void release_snapshot(void *cls)
{
	snapshot_release(cls);
}

static enum MHD_Result reply_text(struct server *srv, struct MHD_Connection *c, unsigned int status,
				  const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								  MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
	common_headers(srv, r);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Basic realm=\"bedrock-cost-exporter\", charset=\"UTF-8\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * The response for @len bytes at @data, which snapshot @s owns; takes over the
 * caller's reference to @s. For a large body with a sealed memfd (@fd >= 0)
 * and no TLS, the response reads a duplicate of @fd, which libmicrohttpd sends
 * with sendfile() and closes when it frees the response; the memfd keeps the
 * bytes, so the reference is dropped at once. Otherwise the response points
 * at @data (zero copy) and the reference is dropped when libmicrohttpd frees
 * it. NULL if libmicrohttpd cannot allocate (the reference is dropped then too).
 *
 * One response per request, not one per snapshot shared by all connections:
 * libmicrohttpd holds an fd-backed response's mutex across each sendfile(), so
 * a shared response serialises the sends of every connection (one A/B run:
 * about 20% fewer gzip scrapes at 64 connections), and the web configuration's
 * headers may change between two publishes. A request costs a dup() and a
 * small allocation, nothing proportional to the body.
 */
static struct MHD_Response *snapshot_body(struct server *srv, struct snapshot *s, int fd,
					  const char *data, size_t len)
{
	if (fd >= 0 && !srv->tls && len >= SENDFILE_MIN) {
		int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		struct MHD_Response *r =
			copy < 0 ? NULL : MHD_create_response_from_fd_at_offset64(len, copy, 0);
		if (r) {
			snapshot_release(s);
			return r;
		}
		if (copy >= 0)
			close(copy);
		/* out of descriptors: the mapping serves just as well */
	}
	struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
		len, (void *)data, release_snapshot, s);
	if (!r)
		snapshot_release(s);
	return r;
}

/*
 * Answers with a body of snapshot @s (see snapshot_body(), @fd may be -1),
 * taking over the caller's reference. @encoding (may be NULL) becomes
 * Content-Encoding; @vary adds Vary: Accept-Encoding.
 */
static enum MHD_Result reply_snapshot(struct server *srv, struct MHD_Connection *c, struct snapshot *s,
				      unsigned int status, int fd, const char *data, size_t len,
				      const char *type, const char *encoding, bool vary)
{
	struct MHD_Response *r = snapshot_body(srv, s, fd, data, len);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (vary)
		MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	common_headers(srv, r);
	if (encoding)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, encoding);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result serve_metrics(struct server *srv, struct MHD_Connection *c, struct snapshot *s)
{
	const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (s->gzip && server_accepts_gzip(ae))
		return reply_snapshot(srv, c, s, MHD_HTTP_OK, s->gzip_fd, s->gzip, s->gzip_len,
				      CT_METRICS, "gzip", true);
	return reply_snapshot(srv, c, s, MHD_HTTP_OK, s->plain_fd, s->plain, s->plain_len, CT_METRICS,
			      NULL, true);
}

/*
 * ---- Request deadlines ----
 *
 * libmicrohttpd 0.9.75 has only an idle timeout, which every byte restarts:
 * a client that sends a header line every 3 s keeps its slot for ever, and
 * 256 of them hold every slot. So each connection must deliver its whole
 * request (TLS handshake, request line, headers, body) within
 * request_timeout of being accepted, however it trickles. The access
 * handler's last call (the request is in) lifts the deadline. On a kept-alive
 * connection the next request must arrive within the idle timeout plus
 * request_timeout of the previous answer, and be complete within
 * request_timeout of its request line (the URI callback). Prometheus sends
 * its request in one segment at once, so none of this touches a scraper.
 *
 * The reaper thread enforces the deadlines with shutdown(SHUT_RDWR) on the
 * late socket: libmicrohttpd then reads end-of-file at its next poll and
 * closes the connection in its own thread, as if the client had left. The
 * socket is closed only after MHD_CONNECTION_NOTIFY_CLOSED, which unlinks it
 * under dl_mu, so the reaper never touches a descriptor that has been reused.
 */

static struct tracked *tracked_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* Sets @t's deadline to @when (0 = none); @tighten keeps an earlier one. Under dl_mu. */
static void set_deadline(struct server *srv, struct tracked *t, double when, bool tighten)
{
	if (tighten && t->deadline && t->deadline <= when)
		return;
	t->deadline = when;
	if (when && (!srv->dl_wake_at || when < srv->dl_wake_at))
		pthread_cond_signal(&srv->dl_cv);
}

static void *reaper_main(void *cls)
{
	struct server *srv = cls;
	pthread_mutex_lock(&srv->dl_mu);
	while (!srv->dl_stop) {
		double now = mono_now(), next = 0;
		for (struct tracked *t = srv->conns; t; t = t->next) {
			if (!t->deadline || t->shut)
				continue;
			if (t->deadline <= now) {
				shutdown(t->fd, SHUT_RDWR);
				t->shut = true;
				srv->reaped++;
				log_debug("http server: request not complete in time, connection closed",
					  "client", t->addr);
			} else if (!next || t->deadline < next) {
				next = t->deadline;
			}
		}
		srv->dl_wake_at = next;
		if (!next) {
			pthread_cond_wait(&srv->dl_cv, &srv->dl_mu);
		} else {
			struct timespec ts;
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&srv->dl_cv, &srv->dl_mu, &ts);
		}
	}
	pthread_mutex_unlock(&srv->dl_mu);
	return NULL;
}

/* MHD_OPTION_NOTIFY_CONNECTION: accepted (the deadline starts) and closed. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct server *srv = cls;
	struct tracked *t = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *sa =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		t = xcalloc(1, sizeof(*t));
		t->fd = fd ? fd->connect_fd : -1;
		if (sa && sa->client_addr && sa->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)sa->client_addr)->sin_addr, t->addr,
				  sizeof(t->addr));
		else if (sa && sa->client_addr && sa->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa->client_addr)->sin6_addr,
				  t->addr, sizeof(t->addr));
		*socket_context = t;
		if (t->fd < 0)
			return; /* not tracked (libmicrohttpd always has the descriptor) */
		pthread_mutex_lock(&srv->dl_mu);
		t->next = srv->conns;
		if (t->next)
			t->next->prev = t;
		srv->conns = t;
		set_deadline(srv, t, mono_now() + srv->request_timeout, false);
		pthread_mutex_unlock(&srv->dl_mu);
		return;
	}
	if (!t)
		return;
	if (t->fd >= 0) {
		pthread_mutex_lock(&srv->dl_mu);
		if (t->prev)
			t->prev->next = t->next;
		else
			srv->conns = t->next;
		if (t->next)
			t->next->prev = t->prev;
		pthread_mutex_unlock(&srv->dl_mu);
	}
	free(t);
	*socket_context = NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: a request line is in; the rest is due within the timeout. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)uri;
	struct server *srv = cls;
	struct tracked *t = tracked_of(c);
	if (t && t->fd >= 0) {
		pthread_mutex_lock(&srv->dl_mu);
		set_deadline(srv, t, mono_now() + srv->request_timeout, true);
		pthread_mutex_unlock(&srv->dl_mu);
	}
	return NULL; /* req_cls stays NULL until handle() */
}

/* The access handler's last call: the whole request is in. */
static void request_received(struct server *srv, struct MHD_Connection *c)
{
	struct tracked *t = tracked_of(c);
	if (t && t->fd >= 0 && t->deadline) {
		pthread_mutex_lock(&srv->dl_mu);
		t->deadline = 0;
		pthread_mutex_unlock(&srv->dl_mu);
	}
}

/*
 * ---- Passwords off the serving threads ----
 *
 * bcrypt costs 50 ms at cost 10 and 200 ms at cost 12 (the shipped example).
 * Run on libmicrohttpd's threads, 8 clients sending wrong passwords kept both
 * busy, and every other connection of a thread, an authorised scrape
 * included, waited behind them: the pool binds a connection to one thread
 * when it accepts it, so more threads with a bound on concurrent bcrypt would
 * still leave a scrape stuck behind whichever check its thread is running.
 * Instead a request whose password is not in the success cache is suspended
 * (MHD_suspend_connection) and queued; BCRYPT_WORKERS threads at a lower
 * scheduling priority (nice +10) run the checks in arrival order and resume
 * the connections, and the serving threads never run bcrypt. An authorised
 * scrape, answered from the cache, never waits for one. The queue is at most
 * one request per connection, so the connection limits bound it.
 *
 * server_stop() answers what is still queued with 401 and joins the workers
 * before it stops libmicrohttpd, which must not hold suspended connections
 * then; from the moment it starts, checks run on the serving threads again.
 */

static void *bcrypt_main(void *cls)
{
	struct server *srv = cls;
	/* below the serving threads: Linux gives each thread its own nice value */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10))
		log_debug("http server: cannot lower the priority of a bcrypt worker", "error",
			  strerror(errno));
	pthread_mutex_lock(&srv->bq_mu);
	for (;;) {
		while (!srv->bq_head && !srv->bq_stop)
			pthread_cond_wait(&srv->bq_cv, &srv->bq_mu);
		struct request *rq = srv->bq_head;
		if (!rq)
			break; /* stopping */
		srv->bq_head = rq->next;
		if (!srv->bq_head)
			srv->bq_tail = NULL;
		pthread_mutex_unlock(&srv->bq_mu);
		rq->verdict = webauth_pending_run(rq->check);
		webauth_pending_free(rq->check); /* the password copy goes now */
		rq->check = NULL;
		/* the connection stays suspended, and @rq alive, until this call */
		MHD_resume_connection(rq->c);
		pthread_mutex_lock(&srv->bq_mu);
	}
	pthread_mutex_unlock(&srv->bq_mu);
	return NULL;
}

/*
 * Suspends @c and queues @check for a worker; the request's *@req_cls becomes
 * its struct request (freed by on_completed()). False when the server is
 * stopping or has no workers: then the caller runs @check itself.
 */
static bool check_later(struct server *srv, struct MHD_Connection *c,
			struct webauth_pending *check, void **req_cls)
{
	pthread_mutex_lock(&srv->bq_mu);
	if (srv->bq_stop || !srv->nworkers) {
		pthread_mutex_unlock(&srv->bq_mu);
		return false;
	}
	struct request *rq = xcalloc(1, sizeof(*rq));
	rq->c = c;
	rq->check = check;
	/* suspended before any worker can see it, so its resume always comes after */
	MHD_suspend_connection(c);
	if (srv->bq_tail)
		srv->bq_tail->next = rq;
	else
		srv->bq_head = rq;
	srv->bq_tail = rq;
	pthread_cond_signal(&srv->bq_cv);
	pthread_mutex_unlock(&srv->bq_mu);
	*req_cls = rq;
	return true;
}

/* MHD_OPTION_NOTIFY_COMPLETED: a request has ended (answered, failed or abandoned). */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct server *srv = cls;
	if (*req_cls && *req_cls != &headers_seen) {
		struct request *rq = *req_cls;
		webauth_pending_free(rq->check);
		free(rq);
	}
	*req_cls = NULL;
	/* a kept-alive connection: libmicrohttpd's idle timeout, then a new request deadline */
	struct tracked *t = tracked_of(c);
	if (t && t->fd >= 0) {
		pthread_mutex_lock(&srv->dl_mu);
		set_deadline(srv, t,
			     srv->idle_timeout ? mono_now() + srv->idle_timeout + srv->request_timeout
					       : 0,
			     false);
		pthread_mutex_unlock(&srv->dl_mu);
	}
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	(void)version, (void)upload;
	struct server *srv = cls;

	/*
	 * libmicrohttpd calls this once when the headers are in, then once per body
	 * chunk, then once more. Answering on the first call would make it close
	 * the connection (the request is not complete yet), so keep-alive needs the
	 * answer on the last call. Any body is read and dropped. A request whose
	 * password goes to a bcrypt worker gets one more last call when resumed.
	 */
	if (!*req_cls) {
		*req_cls = &headers_seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	request_received(srv, c);

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n");
	if (srv->auth) {
		enum webauth_verdict v;
		if (*req_cls != &headers_seen) {
			/* resumed: a worker has checked the password */
			v = ((struct request *)*req_cls)->verdict;
		} else {
			struct webauth_pending *check = NULL;
			v = webauth_check(srv->auth, c, &check);
			if (v == WEBAUTH_PENDING) {
				if (check_later(srv, c, check, req_cls))
					return MHD_YES; /* suspended until a worker resumes it */
				v = webauth_pending_run(check); /* stopping: here, then */
				webauth_pending_free(check);
			}
		}
		if (v == WEBAUTH_UNAUTHORIZED)
			return reply_text(srv, c, MHD_HTTP_UNAUTHORIZED, "Unauthorized\n");
		if (v == WEBAUTH_FORBIDDEN)
			return reply_text(srv, c, MHD_HTTP_FORBIDDEN, "Forbidden: client certificate\n");
	}
	if (strcmp(url, "/-/healthy") == 0)
		return reply_text(srv, c, MHD_HTTP_OK, "OK\n");

	bool metrics = strcmp(url, srv->telemetry_path) == 0;
	bool ready = strcmp(url, "/-/ready") == 0;
	bool landing = strcmp(url, "/") == 0;
	if (!metrics && !ready && !landing)
		return reply_text(srv, c, MHD_HTTP_NOT_FOUND, "Not found\n");

	struct snapshot *s = snapshot_acquire();
	if (!s)
		return reply_text(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "Starting\n");
	if (metrics)
		return serve_metrics(srv, c, s);
	if (landing)
		return reply_snapshot(srv, c, s, MHD_HTTP_OK, -1, s->landing, s->landing_len,
				      "text/html; charset=utf-8", NULL, false);
	if (s->ready) {
		snapshot_release(s);
		return reply_text(srv, c, MHD_HTTP_OK, "OK\n");
	}
	/* the reason lives in the snapshot: serve it from there, zero copy */
	const char *why = s->not_ready_reason ? s->not_ready_reason : "Not ready\n";
	return reply_snapshot(srv, c, s, MHD_HTTP_SERVICE_UNAVAILABLE, -1, why, strlen(why), CT_TEXT,
			      NULL, false);
}

/* Starts the reaper, and the bcrypt workers when there is a web configuration. */
static void threads_start(struct server *s)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&s->dl_mu, NULL);
	pthread_cond_init(&s->dl_cv, &ca);
	pthread_mutex_init(&s->bq_mu, NULL);
	pthread_cond_init(&s->bq_cv, NULL);
	pthread_condattr_destroy(&ca);
	s->reaper_running = pthread_create(&s->reaper, NULL, reaper_main, s) == 0;
	if (!s->reaper_running)
		log_warn("http server: no thread for request deadlines; only the idle timeout applies");
	for (unsigned int i = 0; s->auth && i < BCRYPT_WORKERS; i++) {
		if (pthread_create(&s->workers[i], NULL, bcrypt_main, s))
			break; /* passwords are then checked on the serving threads */
		s->nworkers++;
	}
}

/* Answers what waits for a worker with 401, resumes it, joins the workers. */
static void workers_stop(struct server *s)
{
	pthread_mutex_lock(&s->bq_mu);
	s->bq_stop = true;
	struct request *rq = s->bq_head;
	s->bq_head = s->bq_tail = NULL;
	pthread_cond_broadcast(&s->bq_cv);
	pthread_mutex_unlock(&s->bq_mu);
	while (rq) {
		struct request *next = rq->next; /* @rq may be freed once resumed */
		webauth_pending_free(rq->check);
		rq->check = NULL;
		rq->verdict = WEBAUTH_UNAUTHORIZED;
		MHD_resume_connection(rq->c);
		rq = next;
	}
	for (unsigned int i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	s->nworkers = 0;
}

/* Stops the threads (libmicrohttpd has stopped, or never started) and frees @s. */
static void server_free(struct server *s)
{
	workers_stop(s);
	if (s->reaper_running) {
		pthread_mutex_lock(&s->dl_mu);
		s->dl_stop = true;
		pthread_cond_signal(&s->dl_cv);
		pthread_mutex_unlock(&s->dl_mu);
		pthread_join(s->reaper, NULL);
	}
	pthread_cond_destroy(&s->dl_cv);
	pthread_mutex_destroy(&s->dl_mu);
	pthread_cond_destroy(&s->bq_cv);
	pthread_mutex_destroy(&s->bq_mu);
	free(s->telemetry_path);
	free(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("http server", "detail", msg);
}

struct server *server_start(const struct server_opts *o)
{
	char host[256];
	unsigned short port;
	if (server_parse_listen(o->listen_address, host, sizeof(host), &port)) {
		log_error("invalid --web.listen-address, expected [HOST]:PORT", "address",
			  o->listen_address);
		return NULL;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	/*
	 * poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll loses the
	 * end of file of a client that sends part of a request and closes at once.
	 * Data and FIN arrive together, the short read of the data clears the
	 * connection's read-readiness, and no new edge ever comes, so it sat in
	 * CLOSE-WAIT until the idle timeout: 1,000 of them held every slot and the
	 * client's address past its limit. Level-triggered poll() reads the end of
	 * file on the next turn. With a few hundred connections split over the
	 * pool, poll() costs nothing measurable next to serving a scrape.
	 */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
	bool have_addr = false;
	if (*host) {
		struct addrinfo hints = { .ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
		struct addrinfo *ai = NULL;
		char ps[8];
		snprintf(ps, sizeof(ps), "%u", port);
		int rc = getaddrinfo(host, ps, &hints, &ai);
		if (rc || !ai) {
			log_error("cannot resolve listen address", "address", o->listen_address,
				  "error", gai_strerror(rc));
			return NULL;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ai->ai_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		freeaddrinfo(ai);
		have_addr = true;
	} else {
		flags |= MHD_USE_DUAL_STACK;
	}

	struct server *s = xcalloc(1, sizeof(*s));
	s->telemetry_path = xstrdup(o->telemetry_path);
	s->auth = o->auth;
	s->request_timeout = o->request_timeout ? o->request_timeout : SERVER_REQUEST_TIMEOUT;
	s->idle_timeout = o->connection_timeout;
	threads_start(s);
	if (o->auth)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	struct MHD_OptionItem opts[20];
	size_t n = 0;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_request_line, s };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, o->threads, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, o->max_connections, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
					      o->per_ip_connections, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, o->connection_timeout, NULL };
	/* request line and headers must fit in 32 KiB */
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32 * 1024, NULL };
	if (have_addr)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	char *prio = NULL;
	if (o->auth && webauth_initial(o->auth)->tls) {
		if (webauth_install_tls(o->auth)) {
			server_free(s);
			return NULL;
		}
		flags |= MHD_USE_TLS;
		s->tls = true;
		prio = webconfig_tls_priorities(webauth_initial(o->auth));
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
						      webauth_cert_callback() };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, prio };
		if (webauth_trust_pem(o->auth))
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0,
							      (void *)webauth_trust_pem(o->auth) };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	for (int attempt = 0; attempt < 2 && !s->d; attempt++) {
		s->d = MHD_start_daemon(flags, port, NULL, NULL, handle, s, MHD_OPTION_ARRAY, opts,
					MHD_OPTION_END);
		if (!s->d && !have_addr && (flags & MHD_USE_DUAL_STACK)) {
			/* no IPv6 on this host: listen on all IPv4 addresses */
			flags &= ~(unsigned int)MHD_USE_DUAL_STACK;
		}
	}
	free(prio);
	if (!s->d) {
		log_error("cannot listen (address in use or not available)", "address",
			  o->listen_address, "error", strerror(errno));
		server_free(s);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	log_info("listening", "address", o->listen_address, "port",
		 LOG_INT(info ? info->port : port), "telemetry_path",
		 o->telemetry_path, "tls", LOG_BOOL(flags & MHD_USE_TLS), "basic_auth",
		 o->auth ? "from web configuration" : "off");
	return s;
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	/* no connection may be suspended when libmicrohttpd stops */
	workers_stop(s);
	MHD_stop_daemon(s->d);
	server_free(s);
}
