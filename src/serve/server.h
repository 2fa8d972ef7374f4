/*
 * server.h - the HTTP side: /metrics, /, /-/healthy, /-/ready, served from
 * the current snapshot by libmicrohttpd's own threads. A request never
 * renders AWS data and never calls AWS: it takes a snapshot reference and
 * hands its bytes to libmicrohttpd without copying, a large /metrics body as
 * its sealed memfd (sendfile() from the page cache, like a static file
 * server), anything else and everything under TLS as a pointer into the
 * snapshot. A scrape allocates nothing proportional to the body.
 *
 * Slots are guarded against slow and vanishing clients: a client has
 * request_timeout from its connection (or from its request line, on a kept-
 * alive connection) to deliver a whole request, however it trickles; a client
 * that closes is noticed at once; one address gets at most
 * per_ip_connections. With a web configuration, bcrypt runs on worker threads
 * while the connection is suspended, so password guessing never delays a
 * scrape whose credentials are in the success cache.
 */
#ifndef BCE_SERVER_H
#define BCE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct server;

struct webauth;

struct server_opts {
	const char *listen_address; /* "[HOST]:PORT"; HOST empty = all addresses */
	struct webauth *auth;       /* --web.config.file, or NULL; borrowed, outlives the server */
	unsigned int per_ip_connections;
	const char *telemetry_path;
	unsigned int max_connections;
	unsigned int connection_timeout; /* seconds idle, after which a connection is closed */
	unsigned int threads;
	unsigned int request_timeout; /* seconds to deliver a request; 0 = SERVER_REQUEST_TIMEOUT */
};

/*
 * Default request_timeout: from accept, TLS handshake, request line, headers
 * and body must all be in within it. Prometheus needs a round trip or two;
 * a client that trickles its headers keeps a slot no longer than this.
 */
#define SERVER_REQUEST_TIMEOUT 5

/* Starts serving (libmicrohttpd's threads, a deadline reaper, and with @o->auth
 * the bcrypt workers). Returns NULL on failure (logged: bad address, port in use). */
struct server *server_start(const struct server_opts *o);
/* Stops accepting, answers requests still waiting for bcrypt with 401, closes
 * connections, joins the server's threads, frees. Main thread. */
void server_stop(struct server *s);

/*
 * Splits "[HOST]:PORT" / "HOST:PORT" / ":PORT". Returns 0 and writes @host
 * (possibly empty, brackets removed) and @port, or -EINVAL. Pure.
 */
int server_parse_listen(const char *addr, char *host, size_t hostlen, unsigned short *port);

/* libmicrohttpd's version, for bedrock_cost_exporter_build_info. */
const char *server_library_version(void);

/* Whether an Accept-Encoding header value accepts gzip (q > 0). Pure. */
bool server_accepts_gzip(const char *accept_encoding);

#endif
