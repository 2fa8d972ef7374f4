/*
 * server.c - see server.h.
 */
#include "serve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "serve/snapshot.h"
#include "serve/webauth.h"

struct server {
	struct MHD_Daemon *d;
	char *telemetry_path;
	struct webauth *auth;
	bool tls; /* libmicrohttpd cannot sendfile() under TLS: serve the mapping */
};

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

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	(void)version, (void)upload;
	struct server *srv = cls;
	static int seen;

	/*
	 * libmicrohttpd calls this once when the headers are in, then once per body
	 * chunk, then once more. Answering on the first call would make it close
	 * the connection (the request is not complete yet), so keep-alive needs the
	 * answer on the last call. Any body is read and dropped.
	 */
	if (!*req_cls) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n");
	if (srv->auth) {
		enum webauth_verdict v = webauth_check(srv->auth, c);
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
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
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
	struct MHD_OptionItem opts[16];
	size_t n = 0;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL };
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
			free(s->telemetry_path);
			free(s);
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
		free(s->telemetry_path);
		free(s);
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
	MHD_stop_daemon(s->d);
	free(s->telemetry_path);
	free(s);
}
