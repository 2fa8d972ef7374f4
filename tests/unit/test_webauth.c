/*
 * Unit tests for webauth.c, the runtime side of --web.config.file.
 *
 * bcrypt is checked directly against hashes made here with libxcrypt's
 * crypt_gensalt_rn()/crypt_r(), never with hashes the code under test made.
 * Verdicts are checked over real requests: an in-process libmicrohttpd daemon
 * on 127.0.0.1 (port 0) whose handler answers 200/401/403 from webauth_check(),
 * driven by libcurl (proxies off, loopback only). Certificates for the TLS
 * tests are made here with GnuTLS. Nothing sleeps: the once-a-second reload
 * check is driven by setting the static 'checked_at' and the files' mtimes
 * (utimensat), which is all the reload compares.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/serve/webauth.c"

/* ---- files ------------------------------------------------------------------------------- */

static char dir[64];

/* Writes @text to @dir/@name (in place, or as a new inode when @replace) and sets its mtime
 * to @mtime seconds, so that every version of a file differs in what file_id() compares. */
static void put(const char *name, const char *text, time_t mtime, bool replace)
{
	char path[256], tmp[280];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	const char *target = replace ? tmp : path;
	int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	assert_int_equal(futimens(fd, ts), 0);
	assert_int_equal(close(fd), 0);
	if (replace)
		assert_int_equal(rename(tmp, path), 0);
}

/* Sets the mtime of @dir/@name without touching its bytes. */
static void set_mtime(const char *name, time_t mtime)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void drop(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);
}

static char *path_of(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static int make_dir(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/bce-webauth.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	return rmdir(dir);
}

/* ---- bcrypt hashes, made by libxcrypt ---------------------------------------------------- */

/* A bcrypt hash of @password with @prefix ("$2b$"...) and @cost, in @out (at least 128). */
static void make_hash(const char *prefix, unsigned long cost, const char *password, char *out)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	assert_non_null(crypt_gensalt_rn(prefix, cost, NULL, 0, setting, (int)sizeof(setting)));
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	const char *h = crypt_r(password, setting, cd);
	snprintf(out, 128, "%s", h ? h : "(null)");
	free(cd);
	if (strncmp(out, prefix, 4) != 0 || strlen(out) != 60)
		fail_msg("crypt_r(%s) made \"%s\"", setting, out);
}

/* ---- an in-process server: 200 / 401 / 403 from webauth_check() ------------------------- */

struct srv {
	struct MHD_Daemon *d;
	unsigned short port;
	bool tls;
};

/*
 * How the handler checks: CHECK_HERE lets webauth_check() run bcrypt itself (@later NULL);
 * CHECK_LATER takes the pending check and runs it with webauth_pending_run(), as the
 * server's bcrypt workers do; CHECK_HOLD keeps it in 'held' and answers 202. 'pendings'
 * counts the checks that came back pending. Requests are one at a time.
 */
static enum { CHECK_HERE, CHECK_LATER, CHECK_HOLD } check_mode;
static struct webauth_pending *held;
static unsigned int pendings;

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	(void)url, (void)method, (void)version, (void)upload;
	static int seen;
	struct webauth *a = cls;
	if (!*req_cls) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	struct webauth_pending *p = NULL;
	enum webauth_verdict v = webauth_check(a, c, check_mode == CHECK_HERE ? NULL : &p);
	unsigned int status = 0;
	if (v == WEBAUTH_PENDING) {
		assert_non_null(p);
		pendings++;
		if (check_mode == CHECK_HOLD) {
			assert_null(held);
			held = p;
			status = MHD_HTTP_ACCEPTED;
		} else {
			v = webauth_pending_run(p);
			webauth_pending_free(p);
		}
	} else {
		assert_null(p);
	}
	if (!status)
		status = v == WEBAUTH_OK ? MHD_HTTP_OK
			 : v == WEBAUTH_UNAUTHORIZED ? MHD_HTTP_UNAUTHORIZED
						     : MHD_HTTP_FORBIDDEN;
	static const char body[] = "answer\n";
	struct MHD_Response *r =
		MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	webauth_add_headers(a, r);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Starts a daemon on 127.0.0.1 and a free port; with TLS, set up the way server.c does. */
static void srv_start(struct srv *s, struct webauth *a)
{
	memset(s, 0, sizeof(*s));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD;
	struct MHD_OptionItem opts[8];
	size_t n = 0;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &sa };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL };
	char *prio = NULL;
	const struct webconfig *w = webauth_initial(a);
	if (w->tls) {
		assert_int_equal(webauth_install_tls(a), 0);
		flags |= MHD_USE_TLS;
		s->tls = true;
		prio = webconfig_tls_priorities(w);
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
						      webauth_cert_callback() };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, prio };
		if (webauth_trust_pem(a))
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0,
							      (void *)webauth_trust_pem(a) };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_ARRAY, opts,
				MHD_OPTION_END);
	free(prio);
	assert_non_null(s->d);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	assert_true(info->port != 0);
	s->port = info->port;
}

static void srv_stop(struct srv *s)
{
	MHD_stop_daemon(s->d);
	s->d = NULL;
}

/* ---- the client: libcurl, 127.0.0.1 only ------------------------------------------------ */

struct req {
	const char *user, *password; /* basic auth by libcurl, or */
	const char *authorization;   /* this Authorization header value as is */
	const char *cert, *key;      /* client certificate files (TLS) */
};

struct reply {
	long status; /* 0 when the request failed (see err) */
	char headers[4096];
	size_t hlen;
	char server_cert[4096]; /* TLS: libcurl's text of the server certificate */
	char err[CURL_ERROR_SIZE];
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t len = size * n;
	size_t take = len < sizeof(r->headers) - 1 - r->hlen ? len : sizeof(r->headers) - 1 - r->hlen;
	memcpy(r->headers + r->hlen, p, take);
	r->hlen += take;
	r->headers[r->hlen] = '\0';
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	(void)p, (void)ud;
	return size * n;
}

/* One request on a new connection (so TLS does a full handshake each time). */
static void get(const struct srv *s, const struct req *q, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	CURL *h = curl_easy_init();
	assert_non_null(h);
	char url[64];
	snprintf(url, sizeof(url), "%s://127.0.0.1:%u/metrics", s->tls ? "https" : "http", s->port);
	struct curl_slist *hdrs = NULL;
	char line[512];
	assert_int_equal(curl_easy_setopt(h, CURLOPT_URL, url), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https"), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_PROXY, ""), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_NOPROXY, "*"), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_HEADERDATA, r), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err), CURLE_OK);
	if (q && q->user) {
		assert_int_equal(curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC), CURLE_OK);
		assert_int_equal(curl_easy_setopt(h, CURLOPT_USERNAME, q->user), CURLE_OK);
		assert_int_equal(curl_easy_setopt(h, CURLOPT_PASSWORD, q->password), CURLE_OK);
	}
	if (q && q->authorization) {
		snprintf(line, sizeof(line), "Authorization: %s", q->authorization);
		hdrs = curl_slist_append(hdrs, line);
		assert_int_equal(curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs), CURLE_OK);
	}
	if (s->tls) {
		assert_int_equal(curl_easy_setopt(h, CURLOPT_CAINFO, path_of("ca.crt")), CURLE_OK);
		assert_int_equal(curl_easy_setopt(h, CURLOPT_CERTINFO, 1L), CURLE_OK);
		if (q && q->cert) {
			assert_int_equal(curl_easy_setopt(h, CURLOPT_SSLCERT, q->cert), CURLE_OK);
			assert_int_equal(curl_easy_setopt(h, CURLOPT_SSLKEY, q->key), CURLE_OK);
		}
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		assert_int_equal(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status), CURLE_OK);
		struct curl_certinfo *ci = NULL;
		if (s->tls && curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
		    ci->num_of_certs > 0)
			for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next)
				if (strncmp(l->data, "Subject:", 8) == 0)
					snprintf(r->server_cert, sizeof(r->server_cert), "%s", l->data);
	} else if (!r->err[0]) {
		snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(rc));
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
}

/* The status of one request (fails the test when the request itself failed). */
static long status_of(const struct srv *s, const struct req *q)
{
	struct reply r;
	get(s, q, &r);
	if (!r.status)
		fail_msg("request to 127.0.0.1:%u failed: %s", s->port, r.err);
	return r.status;
}

static long basic(const struct srv *s, const char *user, const char *password)
{
	return status_of(s, &(struct req){ .user = user, .password = password });
}

static long raw_auth(const struct srv *s, const char *authorization)
{
	return status_of(s, &(struct req){ .authorization = authorization });
}

/* Value of response header @name (case-insensitive) in @r, copied to @out; false if absent. */
static bool header(const struct reply *r, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = r->headers; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = strcspn(v, "\r\n");
			assert_true(vl < cap);
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
	}
	return false;
}

static char *b64(const char *in, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0;
	const unsigned char *p = (const unsigned char *)in;
	for (size_t i = 0; i < n; i += 3) {
		unsigned int v = (unsigned int)p[i] << 16 | (i + 1 < n ? (unsigned int)p[i + 1] << 8 : 0) |
				 (i + 2 < n ? p[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static struct webauth *load(const char *name)
{
	struct textlist errs = { 0 };
	struct webauth *a = webauth_new(path_of(name), &errs);
	if (!a)
		fail_msg("webauth_new(%s) failed: %s", name, errs.n ? errs.v[0] : "?");
	return a;
}

/* The reload looks at the file at most once a second, comparing mono_now() with the static
 * 'checked_at'. Setting that makes the next webauth_check() look again (a second and more
 * has passed), or not (no time has passed), whatever the clock says. */
static void set_last_check(struct webauth *a, double when)
{
	pthread_mutex_lock(&a->mu);
	a->checked_at = when;
	pthread_mutex_unlock(&a->mu);
}
static void recheck_now(struct webauth *a)
{
	set_last_check(a, -1e12);
}
static void recheck_not_yet(struct webauth *a)
{
	set_last_check(a, 1e12);
}

static unsigned int cache_count(struct webauth *a)
{
	pthread_mutex_lock(&a->mu);
	unsigned int n = a->cache_next;
	pthread_mutex_unlock(&a->mu);
	return n;
}

static bool cache_has(struct webauth *a, const char *user, const char *password, const char *hash)
{
	unsigned char d[32];
	digest(user, password, hash, d);
	bool found = false;
	pthread_mutex_lock(&a->mu);
	for (unsigned int i = 0; i < CACHE_SLOTS; i++)
		found = found || memcmp(a->cache[i], d, 32) == 0;
	pthread_mutex_unlock(&a->mu);
	return found;
}

/* ---- certificates, made with GnuTLS ----------------------------------------------------- */

enum role { ROLE_CA, ROLE_SERVER, ROLE_CLIENT };

struct pki {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char *crt_pem, *key_pem;
};

static char *datum_str(gnutls_datum_t d)
{
	char *s = malloc(d.size + 1);
	assert_non_null(s);
	memcpy(s, d.data, d.size);
	s[d.size] = '\0';
	gnutls_free(d.data);
	return s;
}

/* A P-256 key and a certificate for @cn signed by @issuer (self-signed when NULL). */
static void make_cert(struct pki *p, const char *cn, enum role role, const struct pki *issuer,
		      unsigned char serial)
{
	assert_int_equal(gnutls_x509_privkey_init(&p->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA,
						      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
			 0);
	gnutls_x509_crt_t c;
	assert_int_equal(gnutls_x509_crt_init(&c), 0);
	p->crt = c;
	time_t now = time(NULL);
	unsigned char ser[2] = { 0x01, serial };
	assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(c, ser, sizeof(ser)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c, now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + 30 * 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						       (unsigned int)strlen(cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c, p->key), 0);
	unsigned char id[64];
	size_t idlen = sizeof(id);
	assert_int_equal(gnutls_x509_crt_get_key_id(c, 0, id, &idlen), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_key_id(c, id, idlen), 0);
	if (role == ROLE_CA) {
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, 1, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN |
								      GNUTLS_KEY_CRL_SIGN |
								      GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	} else {
		assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, 0, -1), 0);
		assert_int_equal(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
		assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(
					 c, role == ROLE_SERVER ? GNUTLS_KP_TLS_WWW_SERVER
								: GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
	}
	if (role == ROLE_SERVER) {
		unsigned char ip[4] = { 127, 0, 0, 1 };
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, ip,
								      sizeof(ip), GNUTLS_FSAN_SET), 0);
	}
	if (issuer) {
		idlen = sizeof(id);
		assert_int_equal(gnutls_x509_crt_get_key_id(issuer->crt, 0, id, &idlen), 0);
		assert_int_equal(gnutls_x509_crt_set_authority_key_id(c, id, idlen), 0);
	}
	assert_int_equal(gnutls_x509_crt_sign2(c, issuer ? issuer->crt : c,
					       issuer ? issuer->key : p->key, GNUTLS_DIG_SHA256, 0),
			 0);
	gnutls_datum_t d;
	assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_PEM, &d), 0);
	p->crt_pem = datum_str(d);
	assert_int_equal(gnutls_x509_privkey_export2_pkcs8(p->key, GNUTLS_X509_FMT_PEM, NULL,
							   GNUTLS_PKCS_PLAIN, &d), 0);
	p->key_pem = datum_str(d);
}

static void pki_free(struct pki *p)
{
	gnutls_x509_crt_deinit(p->crt);
	gnutls_x509_privkey_deinit(p->key);
	free(p->crt_pem);
	free(p->key_pem);
}

/* The CA, two generations of the server certificate, a client certificate the CA signed
 * and one nobody signed. Made once: key generation is the slow part. */
static struct pki ca, server1, server2, client_ok, client_rogue;

static int group_setup(void **state)
{
	if (make_dir(state))
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	make_cert(&ca, "bce-test-ca", ROLE_CA, NULL, 1);
	make_cert(&server1, "bce-test-server-gen1", ROLE_SERVER, &ca, 2);
	make_cert(&server2, "bce-test-server-gen2", ROLE_SERVER, &ca, 3);
	make_cert(&client_ok, "bce-test-client", ROLE_CLIENT, &ca, 4);
	make_cert(&client_rogue, "bce-test-rogue", ROLE_CLIENT, NULL, 5);
	put("ca.crt", ca.crt_pem, 1000000000, false);
	put("client.crt", client_ok.crt_pem, 1000000000, false);
	put("client.key", client_ok.key_pem, 1000000000, false);
	put("rogue.crt", client_rogue.crt_pem, 1000000000, false);
	put("rogue.key", client_rogue.key_pem, 1000000000, false);
	return 0;
}

static int group_teardown(void **state)
{
	pki_free(&ca);
	pki_free(&server1);
	pki_free(&server2);
	pki_free(&client_ok);
	pki_free(&client_rogue);
	curl_global_cleanup();
	return remove_dir(state);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* webauth_bcrypt_ok() against hashes libxcrypt made: every prefix the web-config format
 * allows, wrong passwords, and hashes that are malformed, truncated or of the wrong cost. */
static void bcrypt_hashes(void **state)
{
	(void)state;
	char h[128];
	const char *prefixes[] = { "$2a$", "$2b$", "$2y$" };
	for (size_t i = 0; i < 3; i++) {
		make_hash(prefixes[i], 4, "correct horse", h);
		if (!webauth_bcrypt_ok("correct horse", h))
			fail_msg("%s hash of the right password refused: %s", prefixes[i], h);
		assert_false(webauth_bcrypt_ok("correct hors", h));
		assert_false(webauth_bcrypt_ok("correct horse ", h));
		assert_false(webauth_bcrypt_ok("Correct horse", h));
		assert_false(webauth_bcrypt_ok("", h));
	}

	/* htpasswd writes $2y$, Python's bcrypt $2b$: for the same bytes they are one hash */
	make_hash("$2b$", 5, "s3cret", h);
	h[2] = 'y';
	assert_true(webauth_bcrypt_ok("s3cret", h));
	h[2] = 'a';
	assert_true(webauth_bcrypt_ok("s3cret", h));

	/* the empty password has a hash of its own */
	make_hash("$2b$", 4, "", h);
	assert_true(webauth_bcrypt_ok("", h));
	assert_false(webauth_bcrypt_ok("x", h));

	make_hash("$2b$", 4, "pw", h);
	char bad[160];
	/* truncated: one character short, only the setting, only the prefix */
	snprintf(bad, sizeof(bad), "%.59s", h);
	assert_false(webauth_bcrypt_ok("pw", bad));
	snprintf(bad, sizeof(bad), "%.29s", h); /* "$2b$04$" + 22 characters of salt */
	assert_false(webauth_bcrypt_ok("pw", bad));
	assert_false(webauth_bcrypt_ok("pw", "$2b$04$"));
	assert_false(webauth_bcrypt_ok("pw", ""));
	/* one character longer */
	snprintf(bad, sizeof(bad), "%sx", h);
	assert_false(webauth_bcrypt_ok("pw", bad));
	/* a changed checksum character */
	strcpy(bad, h);
	bad[59] = bad[59] == 'a' ? 'b' : 'a';
	assert_false(webauth_bcrypt_ok("pw", bad));
	/* wrong cost: another valid cost is another hash; 03 and 32 are out of range */
	const char *costs[] = { "05", "03", "32", "99", "4$", "xx" };
	for (size_t i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
		strcpy(bad, h);
		memcpy(bad + 4, costs[i], 2);
		if (webauth_bcrypt_ok("pw", bad))
			fail_msg("accepted a hash with cost \"%s\": %s", costs[i], bad);
	}
	/* bcrypt reads 72 bytes, but a password longer than libxcrypt takes (512 bytes) is
	 * refused, not truncated into a match */
	char *huge = malloc(2048);
	assert_non_null(huge);
	memset(huge, 'p', 2047);
	huge[72] = '\0';
	char h72[128];
	make_hash("$2b$", 4, huge, h72);
	huge[72] = 'p';
	huge[100] = '\0';
	bool ok100 = webauth_bcrypt_ok(huge, h72);
	huge[100] = 'p';
	huge[2047] = '\0';
	bool ok2047 = webauth_bcrypt_ok(huge, h72);
	free(huge);
	assert_true(ok100);
	assert_false(ok2047);
	/* unknown variants and junk */
	strcpy(bad, h);
	bad[2] = 'c';
	assert_false(webauth_bcrypt_ok("pw", bad));
	assert_false(webauth_bcrypt_ok("pw", "*0"));
	assert_false(webauth_bcrypt_ok("pw", "$2b$04$!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"));
}

/* The hash of the user that @name stands in for, if @name is unknown; NULL otherwise. */
static const char *stand_in_for(struct webauth *a, const char *name)
{
	pthread_mutex_lock(&a->mu);
	const char *h = stand_in_hash(a, name);
	pthread_mutex_unlock(&a->mu);
	return h;
}

/*
 * An unknown name is checked against the hash of a configured user: always the same user
 * for the same name, every user for some names, and picked with a key of the process's
 * own (another webauth picks differently), so the pick cannot be predicted.
 */
static void unknown_names_stand_in_for_users(void **state)
{
	(void)state;
	char h1[128], h2[128], text[512];
	make_hash("$2y$", 4, "one-pw", h1);
	make_hash("$2b$", 5, "two-pw", h2);
	snprintf(text, sizeof(text), "basic_auth_users:\n  one: %s\n  two: %s\n", h1, h2);
	put("standin.yml", text, 1000000000, false);
	struct webauth *a = load("standin.yml"), *b = load("standin.yml");
	unsigned int ones = 0, twos = 0, differ = 0;
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof(name), "nobody-%d", i);
		const char *h = stand_in_for(a, name);
		assert_true(h == a->cur->users[0].hash || h == a->cur->users[1].hash);
		assert_ptr_equal(stand_in_for(a, name), h); /* the same one every time */
		ones += strcmp(h, h1) == 0;
		twos += strcmp(h, h2) == 0;
		differ += strcmp(stand_in_for(b, name), h) != 0;
	}
	assert_int_equal(ones + twos, 200);
	if (ones < 50 || twos < 50)
		fail_msg("200 unknown names stood in for the users %u and %u times", ones, twos);
	assert_true(differ > 0);
	webauth_free(a);
	webauth_free(b);
}

/* Seconds one request with basic auth @user:@password takes (the status must be @want). */
static double timed(const struct srv *s, const char *user, const char *password, long want)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long st = basic(s, user, password);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(st, want);
	return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Timing does not tell which users exist. With the shipped example's cost 12, a wrong
 * password for an unknown name took 52 ms (a cost-10 dummy hash) against 206 ms for the
 * user. Now: a cost-12 user alone, then a cost-10 and a cost-12 user together, a wrong
 * password for unknown names costs what it costs for the user each name stands in for
 * (medians of 5 interleaved tries differ by less than 20%).
 */
static void unknown_names_cost_what_users_cost(void **state)
{
	(void)state;
	char h12[128], h10[128], text[512];
	make_hash("$2y$", 12, "prom-pw", h12);
	make_hash("$2y$", 10, "graf-pw", h10);
	snprintf(text, sizeof(text), "basic_auth_users:\n  prometheus: %s\n", h12);
	put("cost.yml", text, 1000000000, false);
	struct webauth *a = load("cost.yml");
	struct srv s;
	srv_start(&s, a);
	recheck_not_yet(a);
	double known[5], unknown[5];
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "nobody-%d", i);
		known[i] = timed(&s, "prometheus", "wrong", 401);
		unknown[i] = timed(&s, name, "wrong", 401);
	}
	double mk = median(known, 5), mu = median(unknown, 5);
	if (fabs(mu - mk) > 0.2 * mk)
		fail_msg("cost-12 user: %.0f ms, unknown names: %.0f ms", mk * 1000, mu * 1000);
	srv_stop(&s);
	webauth_free(a);

	/* two costs: each unknown name costs what its stand-in user costs */
	snprintf(text, sizeof(text), "basic_auth_users:\n  prometheus: %s\n  grafana: %s\n", h12,
		 h10);
	put("cost.yml", text, 1000000001, false);
	a = load("cost.yml");
	srv_start(&s, a);
	recheck_not_yet(a);
	char names[2][5][32]; /* [0]: stands in for the cost-12 user, [1]: for the cost-10 one */
	unsigned int found[2] = { 0, 0 };
	for (int i = 0; found[0] < 5 || found[1] < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "guest-%d", i);
		int k = strcmp(stand_in_for(a, name), h12) == 0 ? 0 : 1;
		if (found[k] < 5)
			snprintf(names[k][found[k]++], 32, "%s", name);
	}
	double t[4][5]; /* user 12, unknown as 12, user 10, unknown as 10 */
	for (int i = 0; i < 5; i++) {
		t[0][i] = timed(&s, "prometheus", "wrong", 401);
		t[1][i] = timed(&s, names[0][i], "wrong", 401);
		t[2][i] = timed(&s, "grafana", "wrong", 401);
		t[3][i] = timed(&s, names[1][i], "wrong", 401);
	}
	double m[4];
	for (int k = 0; k < 4; k++)
		m[k] = median(t[k], 5);
	if (fabs(m[1] - m[0]) > 0.2 * m[0] || fabs(m[3] - m[2]) > 0.2 * m[2])
		fail_msg("cost 12: user %.0f ms, unknown %.0f ms; cost 10: user %.0f ms, unknown %.0f ms",
			 m[0] * 1000, m[1] * 1000, m[2] * 1000, m[3] * 1000);
	/* and the clock sees the costs at all: 4 times the work shows */
	if (m[0] < 2 * m[2])
		fail_msg("cost 12 took %.0f ms and cost 10 %.0f ms", m[0] * 1000, m[2] * 1000);
	srv_stop(&s);
	webauth_free(a);
}

/*
 * With @later, a check that needs bcrypt comes back WEBAUTH_PENDING for the caller to run
 * (the server's workers do) and a cached success does not; webauth_pending_run() gives
 * the verdict and remembers a success, but not one checked against a file that has been
 * reloaded since.
 */
static void pending_checks(void **state)
{
	(void)state;
	char h[128], text[256];
	make_hash("$2b$", 4, "erin-pw", h);
	snprintf(text, sizeof(text), "basic_auth_users:\n  erin: %s\n", h);
	put("later.yml", text, 1000000000, false);
	struct webauth *a = load("later.yml");
	struct srv s;
	srv_start(&s, a);
	recheck_not_yet(a);
	check_mode = CHECK_LATER;
	pendings = 0;

	assert_int_equal(basic(&s, "erin", "erin-pw"), 200);
	assert_int_equal(pendings, 1);
	assert_true(cache_has(a, "erin", "erin-pw", h));
	assert_int_equal(basic(&s, "erin", "erin-pw"), 200); /* from the cache */
	assert_int_equal(pendings, 1);
	assert_int_equal(basic(&s, "erin", "wrong"), 401);
	assert_int_equal(basic(&s, "nobody", "erin-pw"), 401); /* an unknown name costs one too */
	assert_int_equal(pendings, 3);
	assert_int_equal(status_of(&s, NULL), 401);            /* nothing to check */
	assert_int_equal(pendings, 3);

	/* a check held across a reload of the file: its verdict stands, but is not remembered */
	put("later.yml", text, 1000000100, false);
	recheck_now(a);
	check_mode = CHECK_HOLD;
	held = NULL;
	assert_int_equal(basic(&s, "erin", "erin-pw"), 202); /* reloaded (cache emptied), held */
	assert_non_null(held);
	assert_int_equal(pendings, 4);
	put("later.yml", text, 1000000200, false);
	recheck_now(a);
	assert_int_equal(status_of(&s, NULL), 401); /* reloads again */
	assert_int_equal(webauth_pending_run(held), WEBAUTH_OK);
	assert_false(cache_has(a, "erin", "erin-pw", h));
	webauth_pending_free(held);
	/* one that is never run is freed all the same */
	held = NULL;
	assert_int_equal(basic(&s, "erin", "wrong"), 202);
	webauth_pending_free(held);
	held = NULL;
	check_mode = CHECK_LATER;
	assert_int_equal(basic(&s, "erin", "erin-pw"), 200);
	assert_true(cache_has(a, "erin", "erin-pw", h));
	srv_stop(&s);
	webauth_free(a);
	check_mode = CHECK_HERE;
}

/* The verdicts of webauth_check() over real requests. */
static void basic_auth_verdicts(void **state)
{
	(void)state;
	char alice_hash[128], bob_hash[128];
	make_hash("$2y$", 4, "alice-pw", alice_hash);
	make_hash("$2b$", 4, "pa:ss", bob_hash);
	char text[512];
	snprintf(text, sizeof(text), "basic_auth_users:\n  alice: %s\n  bob: \"%s\"\n", alice_hash,
		 bob_hash);
	put("web.yml", text, 1000000000, false);
	struct webauth *a = load("web.yml");
	struct srv s;
	srv_start(&s, a);
	char b[256];

	assert_int_equal(status_of(&s, NULL), 401);                /* no Authorization header */
	assert_int_equal(basic(&s, "alice", "alice-pw"), 200);    /* right credentials */
	assert_int_equal(basic(&s, "bob", "pa:ss"), 200);         /* split at the first colon */
	assert_int_equal(basic(&s, "mallory", "alice-pw"), 401);  /* unknown user */
	assert_int_equal(basic(&s, "Alice", "alice-pw"), 401);    /* user names are exact */
	assert_int_equal(basic(&s, "alice", "alice-pW"), 401);    /* wrong password */
	assert_int_equal(basic(&s, "alice", ""), 401);
	assert_int_equal(basic(&s, "bob", "alice-pw"), 401);      /* another user's password */
	assert_int_equal(basic(&s, "", ""), 401);

	/* malformed Basic headers */
	assert_int_equal(raw_auth(&s, b64("alice:alice-pw", b)), 401); /* no scheme */
	snprintf(text, sizeof(text), "Basic %s", b64("alice:alice-pw", b));
	assert_int_equal(raw_auth(&s, text), 200); /* the same, well formed, passes */
	snprintf(text, sizeof(text), "Bearer %s", b64("alice:alice-pw", b));
	assert_int_equal(raw_auth(&s, text), 401); /* another scheme */
	snprintf(text, sizeof(text), "Basic %s", b64("alicealice-pw", b));
	assert_int_equal(raw_auth(&s, text), 401); /* no colon */
	snprintf(text, sizeof(text), "Basic %s", b64("alice", b));
	assert_int_equal(raw_auth(&s, text), 401); /* a user name alone */
	assert_int_equal(raw_auth(&s, "Basic !!!!not*base64!!!!"), 401);
	assert_int_equal(raw_auth(&s, "Basic YWxpY2U6YWxpY2UtcH"), 401); /* cut short */
	assert_int_equal(raw_auth(&s, "Basic"), 401);
	assert_int_equal(raw_auth(&s, "Basic "), 401);

	/* bcrypt reads the first 72 bytes; a 1025-byte password with those bytes is refused
	 * (check_basic() takes at most 1024, libxcrypt at most 512) */
	char *long_pw = malloc(1100);
	assert_non_null(long_pw);
	memset(long_pw, 'p', 1025);
	long_pw[72] = '\0';
	char long_hash[128];
	make_hash("$2b$", 4, long_pw, long_hash);
	snprintf(text, sizeof(text), "basic_auth_users:\n  carol: %s\n", long_hash);
	put("web.yml", text, 1000000001, false);
	recheck_now(a);
	assert_int_equal(basic(&s, "carol", long_pw), 200);
	long_pw[72] = 'p';
	long_pw[1025] = '\0';
	long status = basic(&s, "carol", long_pw);
	free(long_pw);
	assert_int_equal(status, 401);

	srv_stop(&s);
	webauth_free(a);
}

/* Without basic_auth_users, nobody is asked for a password. */
static void no_users_no_password(void **state)
{
	(void)state;
	put("open.yml", "http_server_config:\n  headers:\n    X-Frame-Options: deny\n", 1000000000,
	    false);
	struct webauth *a = load("open.yml");
	struct srv s;
	srv_start(&s, a);
	assert_int_equal(status_of(&s, NULL), 200);
	assert_int_equal(basic(&s, "anyone", "anything"), 200);
	srv_stop(&s);
	webauth_free(a);
}

/* A success is remembered as a digest of user, password and hash; a remembered digest is
 * honoured without bcrypt; failures are not remembered. */
static void success_is_cached(void **state)
{
	(void)state;
	char h[128], text[256];
	make_hash("$2b$", 4, "dave-pw", h);
	snprintf(text, sizeof(text), "basic_auth_users:\n  dave: %s\n", h);
	put("cache.yml", text, 1000000000, false);
	struct webauth *a = load("cache.yml");
	struct srv s;
	srv_start(&s, a);
	recheck_not_yet(a);

	assert_int_equal(cache_count(a), 0);
	assert_int_equal(basic(&s, "dave", "wrong"), 401);
	assert_int_equal(basic(&s, "nobody", "dave-pw"), 401);
	assert_int_equal(cache_count(a), 0); /* failures are not cached */
	assert_false(cache_has(a, "dave", "wrong", h));

	assert_int_equal(basic(&s, "dave", "dave-pw"), 200);
	assert_int_equal(cache_count(a), 1);
	assert_true(cache_has(a, "dave", "dave-pw", h));
	/* the cache holds digests, not the password */
	pthread_mutex_lock(&a->mu);
	assert_null(memmem(a->cache, sizeof(a->cache), "dave-pw", 7));
	pthread_mutex_unlock(&a->mu);

	/* the same credentials again: answered from the cache, nothing new stored */
	assert_int_equal(basic(&s, "dave", "dave-pw"), 200);
	assert_int_equal(basic(&s, "dave", "dave-pw"), 200);
	assert_int_equal(cache_count(a), 1);
	/* still exact: a wrong password is not let in by the cached success */
	assert_int_equal(basic(&s, "dave", "dave-pw2"), 401);

	/* the cache is looked at before bcrypt: plant the digest of a password bcrypt refuses */
	unsigned char d[32];
	digest("dave", "planted", h, d);
	pthread_mutex_lock(&a->mu);
	memcpy(a->cache[7], d, 32);
	pthread_mutex_unlock(&a->mu);
	assert_false(webauth_bcrypt_ok("planted", h));
	assert_int_equal(basic(&s, "dave", "planted"), 200);
	/* a digest is bound to the hash it was checked against */
	char other[128];
	make_hash("$2b$", 4, "planted-2", other);
	digest("dave", "planted-2", other, d);
	pthread_mutex_lock(&a->mu);
	memcpy(a->cache[8], d, 32);
	pthread_mutex_unlock(&a->mu);
	assert_int_equal(basic(&s, "dave", "planted-2"), 401);

	/* a reload of a changed file forgets everything: new users or hashes */
	put("cache.yml", text, 1000000100, false);
	recheck_now(a);
	assert_int_equal(basic(&s, "dave", "planted"), 401);
	assert_false(cache_has(a, "dave", "dave-pw", h));
	assert_int_equal(basic(&s, "dave", "dave-pw"), 200); /* by bcrypt again */
	assert_true(cache_has(a, "dave", "dave-pw", h));

	srv_stop(&s);
	webauth_free(a);
}

/* Users and headers follow the file, checked at most once a second; a broken or missing
 * file keeps the previous configuration. */
static void reload_follows_the_file(void **state)
{
	(void)state;
	char h1[128], h2[128], text[512], v[128];
	struct reply r;
	make_hash("$2b$", 4, "one", h1);
	make_hash("$2y$", 4, "two", h2);
	snprintf(text, sizeof(text),
		 "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
		 "basic_auth_users:\n  first: %s\n", h1);
	put("reload.yml", text, 1000000000, false);
	struct webauth *a = load("reload.yml");
	struct srv s;
	srv_start(&s, a);
	get(&s, &(struct req){ .user = "first", .password = "one" }, &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "X-Frame-Options", v, sizeof(v)));
	assert_string_equal(v, "deny");

	/* v2 (written in place): another user, another header value, one more header */
	snprintf(text, sizeof(text),
		 "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
		 "    X-Content-Type-Options: nosniff\n"
		 "basic_auth_users:\n  second: %s\n", h2);
	put("reload.yml", text, 1000000100, false);
	/* within the second after the last look: not read yet */
	recheck_not_yet(a);
	assert_int_equal(basic(&s, "first", "one"), 200);
	assert_int_equal(basic(&s, "second", "two"), 401);
	/* after it: read */
	recheck_now(a);
	get(&s, &(struct req){ .user = "second", .password = "two" }, &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "X-Frame-Options", v, sizeof(v)));
	assert_string_equal(v, "sameorigin");
	assert_true(header(&r, "X-Content-Type-Options", v, sizeof(v)));
	assert_string_equal(v, "nosniff");
	recheck_now(a);
	assert_int_equal(basic(&s, "first", "one"), 401);
	pthread_mutex_lock(&a->mu);
	assert_null(a->reload_error);
	pthread_mutex_unlock(&a->mu);

	/* v3 broken (a new inode, as editors and config management write): v2 stays */
	put("reload.yml", "basic_auth_users: [a, b]\n", 1000000200, true);
	recheck_now(a);
	get(&s, &(struct req){ .user = "second", .password = "two" }, &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "X-Frame-Options", v, sizeof(v)));
	assert_string_equal(v, "sameorigin");
	pthread_mutex_lock(&a->mu);
	assert_non_null(a->reload_error);
	assert_non_null(strstr(a->reload_error, "basic_auth_users"));
	pthread_mutex_unlock(&a->mu);
	recheck_now(a);
	assert_int_equal(basic(&s, "first", "one"), 401);

	/* v4 (an unknown header, which the format forbids): v2 stays */
	snprintf(text, sizeof(text), "http_server_config:\n  headers:\n    Server: evil\n"
				     "basic_auth_users:\n  first: %s\n", h1);
	put("reload.yml", text, 1000000300, true);
	recheck_now(a);
	assert_int_equal(basic(&s, "first", "one"), 401);
	assert_int_equal(basic(&s, "second", "two"), 200);

	/* the file gone (mid-rotation): v2 stays */
	drop("reload.yml");
	recheck_now(a);
	assert_int_equal(basic(&s, "second", "two"), 200);

	/* v5 fixed: read, error cleared; no users means no password */
	put("reload.yml", "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
	    1000000400, true);
	recheck_now(a);
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(header(&r, "X-Frame-Options", v, sizeof(v)));
	assert_string_equal(v, "deny");
	assert_false(header(&r, "X-Content-Type-Options", v, sizeof(v)));
	pthread_mutex_lock(&a->mu);
	assert_null(a->reload_error);
	pthread_mutex_unlock(&a->mu);

	/* only the mtime changes (touch): read again, same result */
	set_mtime("reload.yml", 1000000500);
	recheck_now(a);
	assert_int_equal(status_of(&s, NULL), 200);

	srv_stop(&s);
	webauth_free(a);
}

/* webauth_add_headers() adds exactly the configured headers, and follows reloads. */
static void add_headers(void **state)
{
	(void)state;
	put("headers.yml",
	    "http_server_config:\n  headers:\n"
	    "    Strict-Transport-Security: max-age=31536000\n"
	    "    Content-Security-Policy: \"default-src 'none'\"\n"
	    "    X-XSS-Protection: \"0\"\n",
	    1000000000, false);
	struct webauth *a = load("headers.yml");
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	assert_non_null(r);
	assert_null(MHD_get_response_header(r, "Strict-Transport-Security"));
	webauth_add_headers(a, r);
	const char *v = MHD_get_response_header(r, "Strict-Transport-Security");
	assert_non_null(v);
	assert_string_equal(v, "max-age=31536000");
	v = MHD_get_response_header(r, "Content-Security-Policy");
	assert_non_null(v);
	assert_string_equal(v, "default-src 'none'");
	v = MHD_get_response_header(r, "X-XSS-Protection");
	assert_non_null(v);
	assert_string_equal(v, "0");
	assert_null(MHD_get_response_header(r, "X-Frame-Options"));
	int n = MHD_get_response_headers(r, NULL, NULL);
	assert_int_equal(n, 3);
	MHD_destroy_response(r);

	/* a configuration without headers adds none */
	put("noheaders.yml", "", 1000000000, false);
	struct webauth *b = load("noheaders.yml");
	r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	webauth_add_headers(b, r);
	assert_int_equal(MHD_get_response_headers(r, NULL, NULL), 0);
	MHD_destroy_response(r);
	webauth_free(b);
	webauth_free(a);
}

/* webauth_new() refuses what cannot work, naming the file. */
static void new_refuses(void **state)
{
	(void)state;
	struct textlist errs = { 0 };
	assert_null(webauth_new(path_of("absent.yml"), &errs));
	assert_true(errs.n > 0);
	assert_non_null(strstr(errs.v[0], "absent.yml"));
	textlist_free(&errs);

	put("bad.yml", "basic_auth_users:\n  x: plain\n", 1000000000, false);
	assert_null(webauth_new(path_of("bad.yml"), &errs));
	assert_true(errs.n > 0);
	assert_non_null(strstr(errs.v[0], "bad.yml:2"));
	textlist_free(&errs);

	/* the client CA is read at start; a missing one is an error then, not at a handshake */
	put("noca.yml",
	    "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n"
	    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: no-such-ca.crt\n",
	    1000000000, false);
	assert_null(webauth_new(path_of("noca.yml"), &errs));
	assert_true(errs.n > 0);
	assert_non_null(strstr(errs.v[0], "no-such-ca.crt"));
	textlist_free(&errs);
}

/* The server certificate and key are re-read at the next handshake after they change;
 * a broken or half-written pair keeps the previous one. */
static void tls_certificate_rotation(void **state)
{
	(void)state;
	struct reply r;
	put("rot.yml", "tls_server_config:\n  cert_file: rot.crt\n  key_file: rot.key\n", 1000000000,
	    false);
	/* unusable at start: webauth_install_tls() says so */
	put("rot.crt", "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n",
	    1000000000, false);
	put("rot.key", server1.key_pem, 1000000000, false);
	struct webauth *a = load("rot.yml");
	assert_true(webauth_initial(a)->tls);
	assert_int_equal(webauth_install_tls(a), -EINVAL);
	assert_non_null(a->tls_error);

	put("rot.crt", server1.crt_pem, 1000000010, true);
	struct srv s;
	srv_start(&s, a); /* webauth_install_tls() succeeds now */
	assert_null(a->tls_error);
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.server_cert, "bce-test-server-gen1"));

	/* rotated: certificate first, then key, as a deploy would */
	put("rot.crt", server2.crt_pem, 1000000020, true);
	put("rot.key", server2.key_pem, 1000000020, true);
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.server_cert, "bce-test-server-gen2"));
	pthread_mutex_lock(&a->mu);
	assert_non_null(a->tls->older); /* the first generation is kept for handshakes in flight */
	pthread_mutex_unlock(&a->mu);

	/* a broken certificate: gen2 stays, the error is kept for complain-once logging */
	put("rot.crt", "garbage\n", 1000000030, true);
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.server_cert, "bce-test-server-gen2"));
	pthread_mutex_lock(&a->mu);
	assert_non_null(a->tls_error);
	assert_non_null(strstr(a->tls_error, "rot.crt"));
	pthread_mutex_unlock(&a->mu);

	/* a new certificate whose key is not there yet (mid-rotation): gen2 stays */
	put("rot.crt", server1.crt_pem, 1000000040, true);
	drop("rot.key");
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.server_cert, "bce-test-server-gen2"));

	/* back to gen1, complete: served, error cleared */
	put("rot.key", server1.key_pem, 1000000050, true);
	get(&s, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.server_cert, "bce-test-server-gen1"));
	pthread_mutex_lock(&a->mu);
	assert_null(a->tls_error);
	pthread_mutex_unlock(&a->mu);

	srv_stop(&s);
	webauth_free(a);
}

/* client_auth_type: what each mode answers to no certificate, one the CA signed, and a
 * self-signed one; and that the certificate is checked before the password. */
static void client_certificates(void **state)
{
	(void)state;
	put("srv.crt", server1.crt_pem, 1000000000, false);
	put("srv.key", server1.key_pem, 1000000000, false);
	static const struct {
		const char *mode;
		bool with_ca;
		long none, signed_by_ca, self_signed;
	} cases[] = {
		{ "NoClientCert", false, 200, 200, 200 },
		{ "RequestClientCert", true, 200, 200, 200 },
		/* without client_ca_file the server's own certificate makes MHD ask for one */
		{ "RequireAnyClientCert", false, 403, 200, 200 },
		{ "VerifyClientCertIfGiven", true, 200, 200, 403 },
		{ "RequireAndVerifyClientCert", true, 403, 200, 403 },
	};
	char text[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
			 "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n"
			 "  client_auth_type: %s\n%s",
			 cases[i].mode, cases[i].with_ca ? "  client_ca_file: ca.crt\n" : "");
		put("mtls.yml", text, 1000000000 + (time_t)i, false);
		struct webauth *a = load("mtls.yml");
		struct srv s;
		srv_start(&s, a);
		char crt[256], key[256], rcrt[256], rkey[256];
		snprintf(crt, sizeof(crt), "%s", path_of("client.crt"));
		snprintf(key, sizeof(key), "%s", path_of("client.key"));
		snprintf(rcrt, sizeof(rcrt), "%s", path_of("rogue.crt"));
		snprintf(rkey, sizeof(rkey), "%s", path_of("rogue.key"));
		long got[3] = {
			status_of(&s, NULL),
			status_of(&s, &(struct req){ .cert = crt, .key = key }),
			status_of(&s, &(struct req){ .cert = rcrt, .key = rkey }),
		};
		if (got[0] != cases[i].none || got[1] != cases[i].signed_by_ca ||
		    got[2] != cases[i].self_signed)
			fail_msg("%s: none %ld (want %ld), CA-signed %ld (want %ld), self-signed %ld "
				 "(want %ld)",
				 cases[i].mode, got[0], cases[i].none, got[1], cases[i].signed_by_ca,
				 got[2], cases[i].self_signed);
		srv_stop(&s);
		webauth_free(a);
	}

	/* with basic auth too: a refused certificate is 403 before any password is asked */
	char h[128];
	make_hash("$2b$", 4, "frank-pw", h);
	snprintf(text, sizeof(text),
		 "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n"
		 "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
		 "basic_auth_users:\n  frank: %s\n", h);
	put("mtls.yml", text, 1000000100, false);
	struct webauth *a = load("mtls.yml");
	struct srv s;
	srv_start(&s, a);
	char crt[256], key[256], rcrt[256], rkey[256];
	snprintf(crt, sizeof(crt), "%s", path_of("client.crt"));
	snprintf(key, sizeof(key), "%s", path_of("client.key"));
	snprintf(rcrt, sizeof(rcrt), "%s", path_of("rogue.crt"));
	snprintf(rkey, sizeof(rkey), "%s", path_of("rogue.key"));
	assert_int_equal(status_of(&s, &(struct req){ .user = "frank", .password = "frank-pw" }), 403);
	assert_int_equal(status_of(&s, &(struct req){ .user = "frank", .password = "frank-pw",
						       .cert = rcrt, .key = rkey }), 403);
	assert_int_equal(status_of(&s, &(struct req){ .cert = crt, .key = key }), 401);
	assert_int_equal(status_of(&s, &(struct req){ .user = "frank", .password = "nope",
						       .cert = crt, .key = key }), 401);
	assert_int_equal(status_of(&s, &(struct req){ .user = "frank", .password = "frank-pw",
						       .cert = crt, .key = key }), 200);
	srv_stop(&s);
	webauth_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bcrypt_hashes),
		cmocka_unit_test(unknown_names_stand_in_for_users),
		cmocka_unit_test(unknown_names_cost_what_users_cost),
		cmocka_unit_test(pending_checks),
		cmocka_unit_test(basic_auth_verdicts),
		cmocka_unit_test(no_users_no_password),
		cmocka_unit_test(success_is_cached),
		cmocka_unit_test(reload_follows_the_file),
		cmocka_unit_test(add_headers),
		cmocka_unit_test(new_refuses),
		cmocka_unit_test(tls_certificate_rotation),
		cmocka_unit_test(client_certificates),
	};
	return cmocka_run_group_tests_name("webauth", tests, group_setup, group_teardown);
}
