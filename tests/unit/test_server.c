/*
 * Unit tests for server.c: listen addresses and Accept-Encoding (pure), and
 * the served bytes: a real server on 127.0.0.1 answering GET and HEAD from
 * snapshots while the poller's publish swaps them under responses in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <netinet/in.h>
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
	};
	return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
