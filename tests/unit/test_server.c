/*
 * Unit tests for server.c: listen addresses and Accept-Encoding (pure), and
 * the served bytes: a real server on 127.0.0.1 answering GET and HEAD from
 * snapshots while the poller's publish swaps them under responses in flight.
 * Then hostile clients against a real server: requests that trickle or never
 * come are cut off at their deadline, clients that vanish are noticed at once,
 * and bcrypt never holds up a serving thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <crypt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <zlib.h>

#include "../../src/serve/server.c"

static void listen_addresses(void **state)
{
	(void)state;
	char host[64];
	unsigned short port;
	assert_int_equal(server_parse_listen(":19880", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 19880);
	assert_int_equal(server_parse_listen("127.0.0.1:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	assert_int_equal(server_parse_listen("[::1]:9100", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9100);
	assert_int_equal(server_parse_listen("localhost:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "localhost");
	const char *bad[] = { "19880", ":", "host:", ":65536", ":-1", ":12ab", "::1:80", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (server_parse_listen(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void accept_encoding(void **state)
{
	(void)state;
	assert_true(server_accepts_gzip("gzip"));
	assert_true(server_accepts_gzip("GZIP"));
	assert_true(server_accepts_gzip("deflate, gzip;q=0.5"));
	assert_true(server_accepts_gzip("gzip, deflate, br"));
	assert_true(server_accepts_gzip("*"));
	assert_true(server_accepts_gzip("br;q=1.0, *;q=0.1"));
	assert_false(server_accepts_gzip(NULL));
	assert_false(server_accepts_gzip(""));
	assert_false(server_accepts_gzip("identity"));
	assert_false(server_accepts_gzip("gzip;q=0"));
	assert_false(server_accepts_gzip("gzip; q=0.0, *"));   /* explicit refusal wins over * */
	assert_false(server_accepts_gzip("x-gzip2"));
	assert_false(server_accepts_gzip("*;q=0"));
}

/* A body of @len bytes of exposition-like lines with pseudo-random hex
 * values, so that gzip keeps it large (about half). Caller frees. */
static char *make_body(size_t len, uint64_t seed)
{
	char *b = xmalloc(len);
	size_t n = 0;
	uint64_t x = seed | 1;
	while (n < len) {
		char line[96];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int l = snprintf(line, sizeof(line), "m_%" PRIx64 "{l=\"%" PRIx64 "\"} %" PRIu64 "\n",
				 seed, x, x >> 11);
		size_t take = (size_t)l < len - n ? (size_t)l : len - n;
		memcpy(b + n, line, take);
		n += take;
	}
	return b;
}

static char *dup_bytes(const char *p, size_t n)
{
	char *d = xmalloc(n);
	memcpy(d, p, n);
	return d;
}

static char *gunzip(const char *in, size_t len, size_t *outlen)
{
	size_t cap = 64 * len + 1024, n = 0;
	char *out = xmalloc(cap);
	z_stream zs = { 0 };
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	n = zs.total_out;
	inflateEnd(&zs);
	*outlen = n;
	return out;
}

/* snapshot_new() puts both bodies in sealed memfds that hold the same bytes
 * as the mappings it serves from, and nothing can change them. */
static void snapshot_bodies_are_sealed(void **state)
{
	(void)state;
	size_t len = 300000;
	char *plain = make_body(len, 7);
	char *want = dup_bytes(plain, len);
	struct snapshot *s = snapshot_new(plain, len, xstrdup("<html></html>"), 13, true, NULL);
	assert_true(s->plain_fd >= 0);
	assert_true(s->gzip_fd >= 0);
	assert_memory_equal(s->plain, want, len);
	size_t glen;
	char *unz = gunzip(s->gzip, s->gzip_len, &glen);
	assert_int_equal(glen, len);
	assert_memory_equal(unz, want, len);
	free(unz);
	int fds[] = { s->plain_fd, s->gzip_fd };
	size_t lens[] = { s->plain_len, s->gzip_len };
	const char *maps[] = { s->plain, s->gzip };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fcntl(fds[i], F_GET_SEALS),
				 F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
		assert_true(pwrite(fds[i], "x", 1, 0) < 0);
		assert_true(ftruncate(fds[i], 1) < 0);
		assert_true(ftruncate(fds[i], (off_t)lens[i] + 1) < 0);
		assert_true(fcntl(fds[i], F_ADD_SEALS, 0) < 0); /* F_SEAL_SEAL */
		char *back = xmalloc(lens[i]);
		assert_int_equal(pread(fds[i], back, lens[i], 0), (ssize_t)lens[i]);
		assert_memory_equal(back, maps[i], lens[i]);
		free(back);
		/* a writable shared mapping of a write-sealed memfd is refused */
		assert_true(mmap(NULL, lens[i], PROT_WRITE, MAP_SHARED, fds[i], 0) == MAP_FAILED);
	}
	snapshot_release(s);
	free(want);
}

/* An empty body has no memfd (mmap() of nothing fails) and is served from the heap. */
static void empty_body_stays_on_the_heap(void **state)
{
	(void)state;
	struct snapshot *s = snapshot_new(xstrdup(""), 0, xstrdup(""), 0, false, NULL);
	assert_int_equal(s->plain_fd, -1);
	assert_non_null(s->plain);
	snapshot_release(s);
}

/* ---- a tiny HTTP/1.1 client over one keep-alive connection ---- */

struct conn {
	int fd;
	char buf[65536];
	size_t off, len;
};

static void conn_open(struct conn *c, unsigned short port)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	/* a small receive window keeps a large answer in flight at the server */
	int rcv = 65536;
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void conn_send(struct conn *c, const char *method, bool gzip)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "%s /metrics HTTP/1.1\r\nHost: t\r\n%s\r\n", method,
			 gzip ? "Accept-Encoding: gzip\r\n" : "");
	assert_int_equal(send(c->fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

static void conn_fill(struct conn *c)
{
	if (c->off == c->len)
		c->off = c->len = 0;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		fail_msg("connection closed or failed: %zd", n);
	c->len += (size_t)n;
}

/* Reads the status line and headers into @head (NUL-terminated). */
static void conn_head(struct conn *c, char *head, size_t cap)
{
	size_t n = 0;
	for (;;) {
		while (c->off < c->len) {
			assert_true(n + 1 < cap);
			head[n++] = c->buf[c->off++];
			head[n] = '\0';
			if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
				return;
		}
		conn_fill(c);
	}
}

static void conn_body(struct conn *c, char *dst, size_t n)
{
	size_t got = 0;
	while (got < n) {
		if (c->off == c->len)
			conn_fill(c);
		size_t take = c->len - c->off < n - got ? c->len - c->off : n - got;
		memcpy(dst + got, c->buf + c->off, take);
		c->off += take;
		got += take;
	}
}

/* Value of header @name in @head (case-insensitive), copied to @out; false if absent. */
static bool header(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = (size_t)(strstr(v, "\r\n") - v);
			assert_true(vl < cap);
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
	}
	return false;
}

/* Checks the status and headers of a /metrics answer; returns Content-Length. */
static size_t check_head(const char *head, bool gzip)
{
	char v[128];
	assert_true(strncmp(head, "HTTP/1.1 200 ", 13) == 0);
	assert_true(header(head, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, CT_METRICS);
	assert_true(header(head, "Vary", v, sizeof(v)));
	assert_string_equal(v, "Accept-Encoding");
	assert_int_equal(header(head, "Content-Encoding", v, sizeof(v)), gzip);
	if (gzip)
		assert_string_equal(v, "gzip");
	assert_true(header(head, "Content-Length", v, sizeof(v)));
	return (size_t)strtoull(v, NULL, 10);
}

/* Sends GET (or HEAD) and checks that the answer is exactly @want. */
static void expect_answer(struct conn *c, const char *method, bool gzip, const char *want,
			  size_t want_len)
{
	char head[4096];
	conn_send(c, method, gzip);
	conn_head(c, head, sizeof(head));
	assert_int_equal(check_head(head, gzip), want_len);
	if (strcmp(method, "HEAD") == 0)
		return;
	char *got = xmalloc(want_len);
	conn_body(c, got, want_len);
	assert_memory_equal(got, want, want_len);
	free(got);
}

struct bodies {
	char *plain, *gzip;
	size_t plain_len, gzip_len;
};

/* Publishes a new snapshot with a @len-byte body; copies what it will serve to @b. */
static void publish_body(size_t len, uint64_t seed, struct bodies *b)
{
	struct snapshot *s = snapshot_new(make_body(len, seed), len, xstrdup("<html></html>"), 13,
					  true, NULL);
	assert_non_null(s->gzip);
	b->plain = dup_bytes(s->plain, s->plain_len);
	b->plain_len = s->plain_len;
	b->gzip = dup_bytes(s->gzip, s->gzip_len);
	b->gzip_len = s->gzip_len;
	snapshot_publish(s);
}

static void bodies_free(struct bodies *b)
{
	free(b->plain);
	free(b->gzip);
}

/*
 * Two large answers (plain and gzip) are started from snapshot A, A is
 * replaced by B while they are still being sent, and both finish with A's
 * exact bytes; the same connections then get B's bytes for GET and B's
 * lengths for HEAD. @state says whether to pretend TLS: then the server
 * answers from the mapping (the buffer path libmicrohttpd's TLS uses)
 * instead of sendfile() from the memfd.
 */
static void swap_under_answers_in_flight(void **state)
{
	bool pretend_tls = *state != NULL;
	struct server_opts o = {
		.listen_address = "127.0.0.1:0",
		.per_ip_connections = 16,
		.telemetry_path = "/metrics",
		.max_connections = 16,
		.connection_timeout = 30,
		.threads = 2,
	};
	struct bodies a, b;
	/* 16 MiB plain, about 9 MiB gzip: more than socket buffers can take (4 MiB) */
	publish_body((size_t)16 << 20, 11, &a);
	struct server *srv = server_start(&o);
	assert_non_null(srv);
	srv->tls = pretend_tls;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);

	struct conn *plain = xmalloc(sizeof(*plain)), *gz = xmalloc(sizeof(*gz));
	conn_open(plain, info->port);
	conn_open(gz, info->port);
	char head[4096];
	conn_send(plain, "GET", false);
	conn_send(gz, "GET", true);
	conn_head(plain, head, sizeof(head));
	assert_int_equal(check_head(head, false), a.plain_len);
	conn_head(gz, head, sizeof(head));
	assert_int_equal(check_head(head, true), a.gzip_len);
	char *gotp = xmalloc(a.plain_len), *gotz = xmalloc(a.gzip_len);
	conn_body(plain, gotp, 1000);
	conn_body(gz, gotz, 1000);

	publish_body((size_t)3 << 20, 12, &b); /* drops the last published reference to A */

	conn_body(plain, gotp + 1000, a.plain_len - 1000);
	conn_body(gz, gotz + 1000, a.gzip_len - 1000);
	assert_memory_equal(gotp, a.plain, a.plain_len);
	assert_memory_equal(gotz, a.gzip, a.gzip_len);
	free(gotp);
	free(gotz);

	expect_answer(plain, "GET", false, b.plain, b.plain_len);
	expect_answer(plain, "HEAD", false, b.plain, b.plain_len);
	expect_answer(plain, "GET", true, b.gzip, b.gzip_len);
	expect_answer(gz, "HEAD", true, b.gzip, b.gzip_len);
	expect_answer(gz, "GET", true, b.gzip, b.gzip_len);
	expect_answer(gz, "GET", false, b.plain, b.plain_len);

	close(plain->fd);
	close(gz->fd);
	free(plain);
	free(gz);
	server_stop(srv);
	snapshot_publish(NULL);
	bodies_free(&a);
	bodies_free(&b);
}

/* ---- hostile clients ---- */

/* Connections the server is tracking (accepted and not yet closed). */
static unsigned int tracked_count(struct server *srv)
{
	unsigned int n = 0;
	pthread_mutex_lock(&srv->dl_mu);
	for (struct tracked *t = srv->conns; t; t = t->next)
		n++;
	pthread_mutex_unlock(&srv->dl_mu);
	return n;
}

static unsigned short port_of(struct server *srv)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	return info->port;
}

static void send_text(int fd, const char *text)
{
	ssize_t n = send(fd, text, strlen(text), MSG_NOSIGNAL);
	assert_int_equal(n, (ssize_t)strlen(text));
}

/*
 * Sends "X-Trickle: 1\r\n" every 200 ms until the server closes @fd; returns the
 * seconds from @since until it did, or -1 if it still had not after @limit s.
 */
static double trickle_until_closed(int fd, double since, double limit)
{
	double next = mono_now();
	while (mono_now() - since < limit) {
		if (mono_now() >= next) {
			if (send(fd, "X-Trickle: 1\r\n", 14, MSG_NOSIGNAL) < 0)
				return mono_now() - since; /* reset: closed */
			next += 0.2;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0) {
			char b[4096];
			ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return mono_now() - since;
			/* an answer to a trickled request would be a bug: it has no end */
			assert_true(n < 0);
		}
	}
	return -1;
}

static struct server *hostile_server(unsigned int request_timeout, struct webauth *auth,
				     unsigned int threads)
{
	struct server_opts o = {
		.listen_address = "127.0.0.1:0",
		.auth = auth,
		.per_ip_connections = 256,
		.telemetry_path = "/metrics",
		.max_connections = 256,
		.connection_timeout = 30, /* far beyond every deadline tested here */
		.threads = threads,
		.request_timeout = request_timeout,
	};
	struct server *srv = server_start(&o);
	assert_non_null(srv);
	return srv;
}

/*
 * A request must be complete within request_timeout of the connection, however
 * it trickles (the idle timeout restarts with every byte and would never fire);
 * a connection that sends nothing goes at the same deadline; a complete
 * request lifts it, so a kept-alive connection outlives it; and the next
 * request on that connection has request_timeout from its request line.
 */
static void slow_requests_are_cut_off(void **state)
{
	(void)state;
	struct bodies b;
	publish_body(1000, 21, &b);
	struct server *srv = hostile_server(1, NULL, 2);
	unsigned short port = port_of(srv);

	/* a header line every 200 ms: closed at the deadline, 1 s after the connection */
	struct conn *c = xmalloc(sizeof(*c));
	conn_open(c, port);
	double t0 = mono_now();
	send_text(c->fd, "GET /metrics HTTP/1.1\r\nHost: t\r\n");
	double took = trickle_until_closed(c->fd, t0, 5);
	if (took < 0.9 || took > 1.8)
		fail_msg("a trickling request was closed after %.2f s, want about 1 s", took);
	close(c->fd);

	/* silence: the same deadline, not the 30 s idle timeout */
	conn_open(c, port);
	t0 = mono_now();
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	char byte;
	assert_true(recv(c->fd, &byte, 1, 0) <= 0);
	took = mono_now() - t0;
	if (took < 0.9 || took > 1.8)
		fail_msg("a silent connection was closed after %.2f s, want about 1 s", took);
	close(c->fd);

	/* kept alive past the deadline once a request is in, and served again */
	conn_open(c, port);
	expect_answer(c, "GET", false, b.plain, b.plain_len);
	usleep(1500 * 1000);
	expect_answer(c, "GET", false, b.plain, b.plain_len);
	/* the next request trickles: request_timeout from its request line */
	t0 = mono_now();
	send_text(c->fd, "GET /metrics HTTP/1.1\r\n");
	took = trickle_until_closed(c->fd, t0, 5);
	if (took < 0.9 || took > 1.8)
		fail_msg("a trickling second request was closed after %.2f s, want about 1 s", took);
	close(c->fd);
	free(c);

	assert_true(srv->reaped >= 3);
	server_stop(srv);
	snapshot_publish(NULL);
	bodies_free(&b);
}

/*
 * Clients that send part of a request and close at once are gone from the
 * server within moments, not after an idle or request timeout: libmicrohttpd's
 * epoll mode lost the end of file that arrives with the data and kept each in
 * CLOSE-WAIT for the 10 s idle timeout (1,000 of them locked out every scrape).
 */
static void vanished_clients_are_noticed_at_once(void **state)
{
	(void)state;
	struct bodies b;
	publish_body(1000, 22, &b);
	struct server *srv = hostile_server(30, NULL, 2);
	unsigned short port = port_of(srv);
	for (int i = 0; i < 200; i++) {
		struct conn c;
		conn_open(&c, port);
		send_text(c.fd, "GET /metrics HTTP/1.1\r\nHost: t\r\nUser-Agent: van");
		close(c.fd);
	}
	double t0 = mono_now();
	unsigned int left = 0;
	while ((left = tracked_count(srv)) > 0 && mono_now() - t0 < 5)
		usleep(10 * 1000);
	if (left || mono_now() - t0 > 1.0)
		fail_msg("%u of 200 vanished clients still held after %.2f s", left, mono_now() - t0);
	assert_int_equal(srv->reaped, 0); /* noticed by reading, not by a deadline */
	struct conn *c = xmalloc(sizeof(*c));
	conn_open(c, port);
	expect_answer(c, "GET", false, b.plain, b.plain_len);
	close(c->fd);
	free(c);
	server_stop(srv);
	snapshot_publish(NULL);
	bodies_free(&b);
}

/* ---- bcrypt off the serving threads ---- */

static char auth_dir[64];

/* A web configuration with user "fast" (cost 4, "fast-pw") and "slow" (cost 13). */
static void hash_of(const char *password, unsigned long cost, char *out, size_t cap)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	assert_non_null(crypt_gensalt_rn("$2b$", cost, NULL, 0, setting, (int)sizeof(setting)));
	const char *h = crypt_r(password, setting, cd);
	assert_non_null(h);
	assert_int_equal(strlen(h), 60);
	snprintf(out, cap, "%s", h);
	free(cd);
}

static struct webauth *two_users(void)
{
	char text[256], path[128], fast[64], slow[64];
	hash_of("fast-pw", 4, fast, sizeof(fast));
	hash_of("slow-pw", 13, slow, sizeof(slow));
	snprintf(auth_dir, sizeof(auth_dir), "/tmp/bce-test-server-XXXXXX");
	assert_non_null(mkdtemp(auth_dir));
	snprintf(path, sizeof(path), "%s/web.yml", auth_dir);
	snprintf(text, sizeof(text), "basic_auth_users:\n  fast: '%s'\n  slow: '%s'\n", fast, slow);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct textlist errors = { 0 };
	struct webauth *a = webauth_new(path, &errors);
	assert_non_null(a);
	textlist_free(&errors);
	return a;
}

static void two_users_free(struct webauth *a)
{
	char path[128];
	webauth_free(a);
	snprintf(path, sizeof(path), "%s/web.yml", auth_dir);
	unlink(path);
	rmdir(auth_dir);
}

#define FAST_OK "ZmFzdDpmYXN0LXB3"         /* fast:fast-pw */
#define SLOW_WRONG "c2xvdzp3cm9uZy1wdw==" /* slow:wrong-pw */

/* Sends GET /metrics with Basic @b64 and returns the status, or 0 if the
 * connection ended without an answer. */
static int status_with(unsigned short port, const char *b64)
{
	struct conn c;
	conn_open(&c, port);
	char req[256];
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Basic %s\r\n\r\n",
		 b64);
	send_text(c.fd, req);
	char head[64] = { 0 };
	size_t n = 0;
	while (n < 12) {
		ssize_t r = recv(c.fd, head + n, sizeof(head) - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(c.fd);
	return n >= 12 ? atoi(head + 9) : 0;
}

struct guess {
	unsigned short port;
	pthread_t th;
	int status;
};

static void *guess_main(void *cls)
{
	struct guess *g = cls;
	g->status = status_with(g->port, SLOW_WRONG);
	return NULL;
}

/*
 * With one serving thread, a wrong password for the cost-13 user (about half a
 * second of bcrypt) is checked by a worker while the serving thread answers a
 * scrape whose credentials are cached at once; run on the serving thread it
 * held that scrape for the whole bcrypt.
 */
static void bcrypt_never_blocks_a_cached_scrape(void **state)
{
	(void)state;
	struct bodies b;
	publish_body(1000, 23, &b);
	struct webauth *a = two_users();
	struct server *srv = hostile_server(5, a, 1);
	unsigned short port = port_of(srv);
	assert_int_equal(status_with(port, FAST_OK), 200); /* now in the success cache */

	struct guess g[2];
	for (int i = 0; i < 2; i++) {
		g[i].port = port;
		assert_int_equal(pthread_create(&g[i].th, NULL, guess_main, &g[i]), 0);
	}
	usleep(100 * 1000); /* both wrong passwords are in bcrypt now */
	double worst = 0;
	for (int i = 0; i < 5; i++) {
		double t0 = mono_now();
		assert_int_equal(status_with(port, FAST_OK), 200);
		double t = mono_now() - t0;
		worst = t > worst ? t : worst;
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(g[i].th, NULL);
		assert_int_equal(g[i].status, 401);
	}
	if (worst > 0.15)
		fail_msg("a cached scrape took %.0f ms while bcrypt ran", worst * 1000);
	server_stop(srv);
	two_users_free(a);
	snapshot_publish(NULL);
	bodies_free(&b);
}

/*
 * server_stop() while passwords are being checked and more wait in the queue:
 * libmicrohttpd must not be stopped with a suspended connection (it aborts), so
 * the queued ones are answered 401 and the running ones finish first.
 */
static void stop_while_passwords_are_checked(void **state)
{
	(void)state;
	struct bodies b;
	publish_body(1000, 24, &b);
	struct webauth *a = two_users();
	struct server *srv = hostile_server(5, a, 2);
	unsigned short port = port_of(srv);
	struct guess g[5];
	for (int i = 0; i < 5; i++) {
		g[i].port = port;
		assert_int_equal(pthread_create(&g[i].th, NULL, guess_main, &g[i]), 0);
	}
	usleep(150 * 1000); /* two in bcrypt, three queued */
	double t0 = mono_now();
	server_stop(srv);
	double took = mono_now() - t0;
	for (int i = 0; i < 5; i++) {
		pthread_join(g[i].th, NULL);
		if (g[i].status != 401 && g[i].status != 0)
			fail_msg("a guess got %d", g[i].status);
	}
	if (took > 2.0)
		fail_msg("server_stop() took %.2f s", took);
	two_users_free(a);
	snapshot_publish(NULL);
	bodies_free(&b);
}

int main(void)
{
	static int tls = 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(listen_addresses),
		cmocka_unit_test(accept_encoding),
		cmocka_unit_test(snapshot_bodies_are_sealed),
		cmocka_unit_test(empty_body_stays_on_the_heap),
		cmocka_unit_test_prestate(swap_under_answers_in_flight, NULL),
		cmocka_unit_test_prestate(swap_under_answers_in_flight, &tls),
		cmocka_unit_test(slow_requests_are_cut_off),
		cmocka_unit_test(vanished_clients_are_noticed_at_once),
		cmocka_unit_test(bcrypt_never_blocks_a_cached_scrape),
		cmocka_unit_test(stop_while_passwords_are_checked),
	};
	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
